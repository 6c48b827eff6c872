"""The wire under every driver: one keep-alive HTTP/1.1 connection per device, on the standard library's
http.client. ONVIF's zeep transport and the Hikvision/Dahua channel (drivers/http.py, which keeps httpx for
requests and Digest) both send through it, so every vendor gets the same connection rules:

- one request at a time; head and body leave in one send (http.client would send them separately: one more
  syscall and one more wake-up of the device per request); TCP_NODELAY, or Nagle holds the tail of a request
  for the device's delayed ACK (up to 40 ms);
- connect capped at 5 s; then the whole answer — status line, headers and body — must arrive within the
  request's budget: every read waits only for what is left of it, so a device that drips bytes (or headers)
  cannot hold a thread past its deadline; bodies are capped and never decompressed (we ask for identity; a
  compressed answer is refused: no gzip bombs);
- a reused keep-alive connection that the device closed before answering is reopened once: the device never
  saw the request, so sending it again is not a second login attempt. Nothing else is retried;
- no proxy, no redirects, no cookies: devices are on the site LAN and answer one request with one answer.

Why not httpx's own transport (httpcore + h11): against the lab an exchange costs ~0.12 ms of CPU here and
~0.27 ms there, and a 1,000-device fleet check makes about 10,000 exchanges (docs/benchmarks.md).
"""

from __future__ import annotations

import http.client
import io
import socket
import ssl
import threading
import time

from canteen_ops.drivers.base import Offline, ProtocolError, Timeout

CONNECT_TIMEOUT_CAP = 5.0  # a LAN device that has not accepted within 5 s is not going to
CHUNK = 64 * 1024


class DeviceConnection:
    def __init__(self, scheme: str, host: str, port: int, tls_context=None):
        """tls_context: for https, the default is device_tls_context() (self-signed certificates accepted)."""
        self.scheme, self.host, self.port = scheme, host, port
        self._tls_context = tls_context
        self._conn: http.client.HTTPConnection | None = None

    @property
    def host_header(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def adopt(self, sock: socket.socket) -> bool:
        """Use an open plain-TCP connection to the device (the reachable check's) instead of opening one."""
        if self.scheme != "http" or self._conn is not None:
            return False
        conn = http.client.HTTPConnection(self.host, self.port)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.sock = sock
        self._conn = conn
        return True

    def _connect(self, budget: float) -> http.client.HTTPConnection:
        limit = min(budget, CONNECT_TIMEOUT_CAP)
        if self.scheme == "https":
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                self.host, self.port, timeout=limit, context=self._tls_context or device_tls_context())
        else:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=limit)
        try:
            conn.connect()
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except TimeoutError:  # an unanswered connect is a timeout, as a silent device is
            conn.close()
            raise Timeout(f"no connection within {limit:.1f} s") from None
        except ssl.SSLError as exc:  # it is there, but we do not agree on TLS: not "offline"
            conn.close()
            raise ProtocolError(f"TLS handshake failed ({reason(exc)})") from None
        except OSError as exc:
            conn.close()
            raise Offline(f"cannot connect ({exc.strerror or reason(exc)})") from None
        return conn

    def exchange(self, method: str, target: str, headers: list[tuple[str, str]], body: bytes,
                 budget: float) -> http.client.HTTPResponse:
        """Send one request (`headers` complete, Host included) and read the answer's status and headers. The
        answer, body included (read_body), must be complete within `budget` seconds of this call."""
        deadline = time.monotonic() + budget
        head = "".join([f"{method} {target} HTTP/1.1\r\n", *(f"{k}: {v}\r\n" for k, v in headers), "\r\n"])
        data = head.encode("latin-1") + body
        for attempt in (1, 2):
            reused = self._conn is not None
            if self._conn is None:
                self._conn = self._connect(budget)
            try:
                sock = self._conn.sock
                sock.settimeout(max(0.001, deadline - time.monotonic()))
                sock.sendall(data)
                resp = http.client.HTTPResponse(_DeadlineReader(sock, deadline), method=method)
                resp.begin()
                return resp
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                self.close()
                if reused and attempt == 1:
                    continue
                raise ProtocolError(f"connection closed without an answer ({reason(exc)})") from None
            except TimeoutError:
                self.close()
                raise Timeout(f"no complete answer head within {budget:.1f} s") from None
            except (http.client.HTTPException, OSError) as exc:
                self.close()
                raise ProtocolError(f"broken HTTP answer ({reason(exc)})") from None
        raise AssertionError("unreachable")

    def read_body(self, resp: http.client.HTTPResponse, cap: int) -> bytes:
        """The whole body, within the budget given to exchange(); more than `cap` bytes or any Content-Encoding is
        refused. Keeps the connection for the next request unless the device said close."""
        try:
            encoding = (resp.getheader("content-encoding") or "identity").strip().lower()
            if encoding not in ("", "identity"):
                raise ProtocolError(f"unexpected Content-Encoding {encoding[:20]!r}")
            declared = resp.getheader("content-length")
            if declared and declared.strip().isdigit() and int(declared) > cap:
                raise ProtocolError(f"body of {int(declared)} bytes exceeds the {size(cap)} limit")
            buf = bytearray()
            while True:
                chunk = resp.read1(CHUNK)
                if not chunk:
                    break
                buf += chunk
                if len(buf) > cap:
                    raise ProtocolError(f"body exceeds the {size(cap)} limit")
        except TimeoutError:
            self.close()
            raise Timeout("body not complete at the deadline") from None
        except (http.client.HTTPException, OSError) as exc:
            self.close()
            raise ProtocolError(f"connection broken mid-body ({reason(exc)})") from None
        except ProtocolError:
            self.close()  # the rest of that body is still on the connection
            raise
        if resp.will_close:
            self.close()
        return bytes(buf)


class _DeadlineReader(io.RawIOBase):
    """The device's socket as http.client.HTTPResponse reads it (it only calls makefile("rb")), every receive
    limited to what is left until `deadline` (monotonic). Per-read timeouts alone would let a device that sends
    a byte now and then hold the read for ever."""

    SLACK_S = 0.05  # the socket's timeout is lowered only when it would overshoot the deadline by more than this:
    # a fast answer then costs no extra system calls (settimeout is two fcntl calls)

    def __init__(self, sock: socket.socket, deadline: float):
        self._sock, self._deadline = sock, deadline
        self._timeout = sock.gettimeout() or 0.0

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(self)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("deadline")
        if left < self._timeout - self.SLACK_S:
            self._sock.settimeout(left)
            self._timeout = left
        return self._sock.recv_into(buffer)


_TLS_CONTEXT = None
_TLS_LOCK = threading.Lock()


def device_tls_context():
    """One shared SSL context for all devices (building one per connection costs ~100 ms with CA loading).

    Cameras ship self-signed certificates and a canteen LAN has no CA, so certificates are not verified; the
    transport is still encrypted.
    """
    global _TLS_CONTEXT
    with _TLS_LOCK:
        if _TLS_CONTEXT is None:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            _TLS_CONTEXT = ctx
        return _TLS_CONTEXT


def size(n: int) -> str:
    mib = 1024 * 1024
    return f"{n // mib} MiB" if n >= mib else f"{n // 1024} KiB" if n >= 1024 else f"{n} bytes"


def reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:160]


__all__ = ["DeviceConnection", "CONNECT_TIMEOUT_CAP", "device_tls_context"]

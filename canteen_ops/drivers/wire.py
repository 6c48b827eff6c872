"""The wire under every driver: one keep-alive HTTP/1.1 connection per device, on the standard library's
http.client. ONVIF's zeep transport and the Hikvision/Dahua channel (drivers/http.py) both send through it, so
every vendor gets the same connection rules:

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
~0.27 ms there, and a 1,000-device fleet check makes about 7,000 exchanges (docs/benchmarks.md). The answer's
head and body framing are read here too (Answer), not by http.client.HTTPResponse: that parses every head with
the email package, ~4x the cost of the rest of reading an answer.
"""

from __future__ import annotations

import http.client
import io
import socket
import ssl
import threading
import time

from canteen_ops.drivers.base import Offline, ProtocolError, Timeout, reason

CONNECT_TIMEOUT_CAP = 5.0  # a LAN device that has not accepted within 5 s is not going to
CHUNK = 64 * 1024
MAX_LINE = 64 * 1024  # one status or header line (http.client's limit too)
MAX_HEADERS = 100


class _NoAnswer(Exception):
    """The connection ended before a status line: a keep-alive connection the device had closed."""


class _BadAnswer(Exception):
    """Not an HTTP/1.x answer we can read."""


class Headers(dict):
    """An answer's headers by lower-case name (repeated ones joined with ", "); get() takes any case."""

    def get(self, name: str, default=None):  # type: ignore[override]
        return super().get(name.lower(), default)


class Answer:
    """One HTTP/1.x answer on a device connection: its head (read by DeviceConnection.exchange) and its body,
    framed by Content-Length, chunked transfer coding or the end of the connection (read by read_body)."""

    def __init__(self, fp: io.BufferedReader, method: str):
        self._fp = fp
        while True:  # 1xx interim answers (100 Continue) are skipped
            version, self.status, self.reason = self._status_line()
            raw = self._header_lines()
            if not 100 <= self.status < 200 or self.status == 101:
                break
        self.raw_headers = raw
        self.headers = Headers()
        for name, value in raw:
            key = name.lower()
            self.headers[key] = f"{self.headers[key]}, {value}" if key in self.headers else value
        connection = self.headers.get("connection", "").lower()
        self.will_close = "close" in connection or (version == "HTTP/1.0" and "keep-alive" not in connection)
        self._chunked = "chunked" in self.headers.get("transfer-encoding", "").lower()
        self._left: int | None = None  # bytes left in the body (or in the current chunk when chunked)
        self._done = method == "HEAD" or self.status in (204, 304)
        if self._done or self._chunked:
            self._left = 0
        else:
            length = self.headers.get("content-length")
            if length is not None:
                values = {v.strip() for v in length.split(",")}
                if len(values) != 1 or not next(iter(values)).isdigit():
                    raise _BadAnswer(f"bad Content-Length {length[:40]!r}")
                self._left = int(next(iter(values)))
                self._done = self._left == 0
            else:
                self.will_close = True  # the body ends with the connection

    def _line(self) -> bytes:
        line = self._fp.readline(MAX_LINE + 1)
        if len(line) > MAX_LINE:
            raise _BadAnswer("line too long")
        return line

    def _status_line(self) -> tuple[str, int, str]:
        line = self._line()
        if not line:
            raise _NoAnswer("connection closed without an answer")
        version, _, rest = line.decode("iso-8859-1").strip().partition(" ")
        code, _, reason = rest.partition(" ")
        if not version.startswith("HTTP/1.") or len(code) != 3 or not code.isdigit():
            raise _BadAnswer(f"bad status line {line[:40]!r}")
        return version, int(code), reason.strip()

    def _header_lines(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        for _ in range(MAX_HEADERS + 1):  # folded continuation lines count too: a head cannot grow without end
            line = self._line()
            if line in (b"\r\n", b"\n", b""):
                return out
            text = line.decode("iso-8859-1").rstrip("\r\n")
            if text[:1] in (" ", "\t") and out:  # obsolete line folding: continues the previous value
                out[-1] = (out[-1][0], f"{out[-1][1]} {text.strip()}")
                continue
            name, sep, value = text.partition(":")
            if sep and name and name == name.strip():
                out.append((name, value.strip()))
        raise _BadAnswer(f"more than {MAX_HEADERS} header lines")

    def read1(self, n: int) -> bytes:
        """Up to n bytes of the body (at most one receive); b"" at its end."""
        if self._done:
            return b""
        if self._chunked and self._left == 0 and not self._next_chunk():
            return b""
        if self._left is None:  # until the connection ends
            data = self._fp.read1(n)
            self._done = not data
            return data
        data = self._fp.read1(min(n, self._left))
        if not data:
            raise _BadAnswer("connection closed mid-body")
        self._left -= len(data)
        if self._left == 0:
            if self._chunked:
                if self._line() not in (b"\r\n", b"\n"):
                    raise _BadAnswer("bad chunk end")
            else:
                self._done = True
        return data

    def _next_chunk(self) -> bool:
        line = self._line()
        size = line.split(b";", 1)[0].strip()
        try:
            self._left = int(size, 16)
        except ValueError:
            raise _BadAnswer(f"bad chunk size {line[:20]!r}") from None
        if self._left < 0:
            raise _BadAnswer("bad chunk size")
        if self._left == 0:
            while self._line() not in (b"\r\n", b"\n", b""):  # trailers
                pass
            self._done = True
            return False
        return True


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
                 budget: float) -> Answer:
        """Send one request (`headers` complete, Host included) and read the answer's status and headers. The
        answer, body included (read_body), must be complete within `budget` seconds of this call."""
        deadline = time.monotonic() + budget
        head = "".join([f"{method} {target} HTTP/1.1\r\n", *(f"{k}: {v}\r\n" for k, v in headers), "\r\n"])
        if head.count("\n") != len(headers) + 2 or head.count("\r") != len(headers) + 2:
            raise ValueError("a line break inside the request line or a header")  # would smuggle a header in
        data = head.encode("latin-1") + body
        for attempt in (1, 2):
            reused = self._conn is not None
            if self._conn is None:
                self._conn = self._connect(budget)
            try:
                sock = self._conn.sock
                sock.settimeout(max(0.001, deadline - time.monotonic()))
                sock.sendall(data)
                return Answer(io.BufferedReader(_DeadlineReader(sock, deadline)), method)
            except (_NoAnswer, BrokenPipeError, ConnectionResetError) as exc:
                self.close()
                if reused and attempt == 1:
                    continue
                raise ProtocolError(f"connection closed without an answer ({reason(exc)})") from None
            except TimeoutError:
                self.close()
                raise Timeout(f"no complete answer head within {budget:.1f} s") from None
            except (_BadAnswer, OSError) as exc:
                self.close()
                raise ProtocolError(f"broken HTTP answer ({reason(exc)})") from None
        raise AssertionError("unreachable")

    def read_body(self, resp: Answer, cap: int) -> bytes:
        """The whole body, within the budget given to exchange(); more than `cap` bytes or any Content-Encoding is
        refused. Keeps the connection for the next request unless the device said close."""
        try:
            encoding = (resp.headers.get("content-encoding") or "identity").strip().lower()
            if encoding not in ("", "identity"):
                raise ProtocolError(f"unexpected Content-Encoding {encoding[:20]!r}")
            declared = resp.headers.get("content-length")
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
        except (_BadAnswer, OSError) as exc:
            self.close()
            raise ProtocolError(f"connection broken mid-body ({reason(exc)})") from None
        except ProtocolError:
            self.close()  # the rest of that body is still on the connection
            raise
        if resp.will_close:
            self.close()
        return bytes(buf)


class _DeadlineReader(io.RawIOBase):
    """The device's socket as an Answer reads it, every receive limited to what is left until `deadline`
    (monotonic). Per-read timeouts alone would let a device that sends a byte now and then hold the read for
    ever."""

    SLACK_S = 0.05  # the socket's timeout is lowered only when it would overshoot the deadline by more than this:
    # a fast answer then costs no extra system call (settimeout is an ioctl each time)

    def __init__(self, sock: socket.socket, deadline: float):
        self._sock, self._deadline = sock, deadline
        self._timeout = sock.gettimeout() or 0.0

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


__all__ = ["Answer", "DeviceConnection", "CONNECT_TIMEOUT_CAP", "device_tls_context"]

"""The HTTP transport under every driver: one httpx.Client per device, on one keep-alive connection.

ONVIF's zeep transport and the Hikvision/Dahua channel (drivers/http.py) both send through `device_client`, so
every vendor gets the same connection rules. httpx (h11 underneath) does the framing; what is ours:

- the device's budget bounds the whole answer, not each receive: every connect, read and write of the connection
  waits only for what is left until the request's deadline (httpx's timeouts are per read, so a device that
  drips a byte now and then would otherwise hold a thread for ever). `DeviceTransport.budget` is the
  per-request timeout capped by the optional overall per-device deadline; connect is capped at 5 s;
- bodies are capped (a 401's at AUTH_BODY_MAX whatever the caller allows) and never decompressed: we ask for
  identity and refuse any Content-Encoding (no gzip bombs); a Content-Length over the cap is refused unread;
- no proxy from the environment, no redirects, no cookies: devices are on the site LAN and answer one request
  with one answer; nothing is retried here (a keep-alive connection the device closed while idle is noticed
  by httpcore before it is reused);
- TLS per device (TlsPolicy): verify against a CA bundle, pin the certificate (trust on first use; a changed
  certificate raises CertChanged before anything is sent on it), or accept any certificate (still encrypted);
  a legacy-compatible context only for devices marked tls_legacy;
- every httpcore error becomes a driver error (Offline, Timeout, ProtocolError) naming what happened.

The transport is an httpx.BaseTransport over an httpcore.ConnectionPool of one connection with our network
backend (both public APIs): the backend is where the deadline, the adopted socket and the certificate check
live. Plain-TCP connections are our non-blocking stream (_PlainStream: one system call per send or receive, so
a pool of hundreds of threads hands the GIL over less); TLS ones are httpcore's.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import select
import socket
import ssl
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpcore
import httpx

from canteen_ops.drivers import wirelog
from canteen_ops.drivers.base import DriverError, Offline, ProtocolError, Refused, Timeout, reason

CONNECT_TIMEOUT_CAP = 5.0  # a LAN device that has not accepted within 5 s is not going to
MIB = 1024 * 1024
DEFAULT_MAX_BYTES = 8 * MIB
AUTH_BODY_MAX = 64 * 1024  # 401 bodies are tiny (userCheck / ResponseStatus)
HEADERS = {"Accept": "*/*", "Accept-Encoding": "identity", "User-Agent": "canteen-ops"}
TLS_MODES = ("insecure", "verify", "pin")


class CertChanged(Refused):
    """tls: pin — the device shows another certificate than the one accepted for it. Nothing was sent on it."""

    def __init__(self, message: str, fingerprint: str):
        super().__init__(message)
        self.fingerprint = fingerprint


@dataclass(frozen=True)
class TlsPolicy:
    mode: str = "insecure"  # TLS_MODES
    ca_file: str | None = None  # verify: this bundle instead of the system's
    legacy: bool = False  # older cipher suites, TLS 1.0/1.1 and legacy renegotiation (tls_legacy: true)
    pinned: str | None = None  # pin: the accepted SHA-256 fingerprint (hex); None = first use

    @classmethod
    def of(cls, device, pinned: str | None = None) -> "TlsPolicy":
        return cls(mode=getattr(device, "tls", None) or "insecure", ca_file=getattr(device, "tls_ca", None),
                   legacy=bool(getattr(device, "tls_legacy", False)), pinned=pinned)


def fingerprint(der: bytes) -> str:
    """A certificate's SHA-256 fingerprint as colon-separated upper-case hex (what browsers show)."""
    return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())


_contexts: dict[tuple, ssl.SSLContext] = {}
_contexts_lock = threading.Lock()


def tls_context(policy: TlsPolicy) -> ssl.SSLContext:
    """One shared SSL context per kind (building one costs ~100 ms with CA loading).

    verify checks the chain and the host name; insecure and pin accept any certificate (cameras ship self-signed
    ones and a canteen LAN has no CA): pin then compares the fingerprint itself. legacy lowers OpenSSL's
    security level (older suites such as RSA key exchange and SHA-1 MACs), allows TLS 1.0/1.1 where this
    OpenSSL build still has them and legacy renegotiation."""
    key = (policy.mode == "verify", policy.ca_file if policy.mode == "verify" else None, policy.legacy)
    with _contexts_lock:
        ctx = _contexts.get(key)
        if ctx is None:
            if key[0]:
                ctx = ssl.create_default_context(cafile=policy.ca_file)
            else:
                ctx = ssl.create_default_context()
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            if policy.legacy:
                ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
                ctx.options |= getattr(ssl, "OP_LEGACY_SERVER_CONNECT", 0x4)
                with warnings.catch_warnings():  # deprecated, and wanted here: only for devices that need it
                    warnings.simplefilter("ignore", DeprecationWarning)
                    try:
                        ctx.minimum_version = ssl.TLSVersion.TLSv1
                    except (ValueError, ssl.SSLError):  # pragma: no cover - an OpenSSL built without them
                        pass
            _contexts[key] = ctx
        return ctx


class Headers(dict):
    """An answer's headers by lower-case name (repeated ones joined with ", "); get() takes any case."""

    def get(self, name: str, default=None):  # type: ignore[override]
        return super().get(name.lower(), default)


@dataclass
class Reply:
    """One answer as the drivers read it (DeviceHTTP.request's result, the vendor hooks' argument)."""

    status: int
    headers: Headers  # by lower-case name, repeated ones joined
    body: bytes
    path: str
    sent_utc: dt.datetime  # host UTC just before the request that produced this reply
    received_utc: dt.datetime  # host UTC when its headers arrived
    raw_headers: list[tuple[str, str]] = field(default_factory=list, repr=False)

    @classmethod
    def of(cls, response: httpx.Response, body: bytes) -> "Reply":
        raw = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in response.headers.raw]
        headers = Headers()
        for name, value in raw:
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        now = dt.datetime.now(dt.timezone.utc)
        ext = response.extensions
        path = response.request.url.raw_path.decode("ascii").partition("?")[0]
        return cls(status=response.status_code, headers=headers, body=body, path=path,
                   sent_utc=ext.get("sent_utc", now), received_utc=ext.get("received_utc", now), raw_headers=raw)

    @property
    def challenges(self) -> list[str]:
        """The WWW-Authenticate headers, in order."""
        return [v for k, v in self.raw_headers if k.lower() == "www-authenticate"]

    @property
    def mid_utc(self) -> dt.datetime:
        """Our best estimate of the instant the device read its clock: the middle of the round trip."""
        return self.sent_utc + (self.received_utc - self.sent_utc) / 2

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


# --- the network backend: deadline, adopted socket, certificate check ----------------------------------------
class _Backend(httpcore.NetworkBackend):
    def __init__(self, on_tls: Callable[[ssl.SSLSocket], None], https: bool):
        self._inner = httpcore.SyncBackend()
        self.deadline = float("inf")  # monotonic; set per request by DeviceTransport
        self.adopted: socket.socket | None = None
        self.adopted_used: socket.socket | None = None  # the adopted socket, once a request went out on it
        self._on_tls = on_tls
        self._https = https

    def left(self, timeout: float | None, exc: type[Exception]) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise exc("the device's time budget ran out")
        return left if timeout is None else min(timeout, left)

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        sock, self.adopted = self.adopted, None
        if sock is not None:
            if not _readable(sock):
                self.adopted_used = sock
                return _PlainStream(sock, self)
            sock.close()  # the device closed it (or sent something unasked) while it waited: open a new one
        limit = self.left(min(timeout or CONNECT_TIMEOUT_CAP, CONNECT_TIMEOUT_CAP), httpcore.ConnectTimeout)
        stream = self._inner.connect_tcp(host, port, limit, local_address, socket_options)
        if self._https:
            return _Stream(stream, self)
        return _PlainStream(stream.get_extra_info("socket"), self)

    def sleep(self, seconds: float) -> None:  # pragma: no cover - httpcore sleeps only between retries (none)
        time.sleep(seconds)


def _ready(sock: socket.socket, write: bool, timeout: float) -> bool:
    """Wait until the socket can be read (or written), at most `timeout` seconds."""
    if hasattr(select, "poll"):  # select() cannot take descriptors above 1023 (a big fleet has them)
        poller = select.poll()
        poller.register(sock, select.POLLOUT if write else select.POLLIN)
        return bool(poller.poll(max(0, math.ceil(timeout * 1000))))
    ready = select.select([], [sock], [], timeout)[1] if write else select.select([sock], [], [], timeout)[0]
    return bool(ready)  # Windows: no poll, and no such limit


def _readable(sock: socket.socket) -> bool:
    """An idle connection with something to read has been closed by the device (or is out of step)."""
    try:
        return _ready(sock, False, 0)
    except (OSError, ValueError):
        return True


class _PlainStream(httpcore.NetworkStream):
    """A plain-TCP connection, non-blocking, bounded by the request's deadline.

    A socket with a timeout polls before every call and switches its mode on every settimeout, and every one of
    those system calls hands the GIL to another thread: with hundreds of devices in flight that was 14 hand-overs
    an exchange and a third of a fleet check's CPU. Here a send is one call, and a receive one call plus a poll
    when the answer is not there yet."""

    def __init__(self, sock: socket.socket, backend: _Backend):
        sock.setblocking(False)
        self._sock, self._backend = sock, backend
        self._asked = False  # a request just went out: its answer cannot be there yet, so wait before reading

    def _wait(self, write: bool, timeout: float | None, exc: type[Exception]) -> None:
        if not _ready(self._sock, write, self._backend.left(timeout, exc)):
            raise exc("timed out")

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        if self._asked:
            self._asked = False
            self._wait(False, timeout, httpcore.ReadTimeout)
        while True:
            try:
                return self._sock.recv(max_bytes)
            except BlockingIOError:
                self._wait(False, timeout, httpcore.ReadTimeout)
            except OSError as exc:
                raise httpcore.ReadError(exc) from exc

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        view = memoryview(buffer)
        while view:
            try:
                view = view[self._sock.send(view):]
            except BlockingIOError:
                self._wait(True, timeout, httpcore.WriteTimeout)
            except OSError as exc:
                raise httpcore.WriteError(exc) from exc
        self._asked = True

    def close(self) -> None:
        self._sock.close()

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            return _readable(self._sock)
        return self._sock if info == "socket" else None


class _Stream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream, backend: _Backend):
        self._inner, self._backend = inner, backend

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._backend.left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._backend.left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context, server_hostname=None, timeout=None):
        limit = self._backend.left(timeout, httpcore.ConnectTimeout)
        try:
            inner = self._inner.start_tls(ssl_context, server_hostname, limit)
        except httpcore.ConnectError as exc:
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, ssl.SSLError):  # it is there, but we do not agree on TLS: not "offline"
                raise ProtocolError(f"TLS handshake failed ({reason(cause)})") from None
            raise
        stream = _Stream(inner, self._backend)
        try:
            self._backend._on_tls(inner.get_extra_info("socket"))
        except BaseException:
            stream.close()
            raise
        return stream

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


# --- the transport --------------------------------------------------------------------------------------------
def _driver_error(exc: httpcore.NetworkError | httpcore.TimeoutException | httpcore.ProtocolError | Exception,
                  budget: float) -> DriverError | ValueError:
    text = reason(exc) or type(exc).__name__
    if isinstance(exc, httpcore.ConnectTimeout):
        return Timeout(f"no connection within {min(budget, CONNECT_TIMEOUT_CAP):.1f} s")
    if isinstance(exc, httpcore.TimeoutException):
        return Timeout(f"no complete answer within {budget:.1f} s ({text})")
    if isinstance(exc, httpcore.ConnectError):
        cause = exc.__cause__
        return Offline(f"cannot connect ({getattr(cause, 'strerror', None) or text})")
    if isinstance(exc, httpcore.RemoteProtocolError):
        if text.startswith("Server disconnected without"):
            return ProtocolError("connection closed without an answer")
        return ProtocolError(f"broken HTTP answer ({text})")
    if isinstance(exc, httpcore.LocalProtocolError):  # our request, refused by h11 before it was sent
        return ValueError(f"request not sent: a line break or another character not allowed in the request "
                          f"head ({text})")
    return ProtocolError(f"connection broken ({text})")


_HTTPCORE_ERRORS = (httpcore.TimeoutException, httpcore.NetworkError, httpcore.ProtocolError,
                    httpcore.UnsupportedProtocol)


class DeviceTransport(httpx.BaseTransport):
    """One device's connection (see the module docstring). Not for concurrent use: one request at a time."""

    def __init__(self, timeout: float, tls: TlsPolicy | None = None, https: bool = False):
        self.timeout = float(timeout)
        self.deadline: float | None = None  # monotonic: the overall per-device deadline
        self.requests = 0  # on the wire, for tests and benchmarks
        self.tls = tls or TlsPolicy()
        self.fingerprint: str | None = None  # the certificate the device showed (https)
        self.first_use = False  # tls: pin with no accepted fingerprint yet: this one is to be recorded
        self._budget = self.timeout
        self._backend = _Backend(self._check_certificate, https)
        self._pool = httpcore.ConnectionPool(
            ssl_context=tls_context(self.tls) if https else None, max_connections=1, max_keepalive_connections=1,
            http1=True, http2=False, network_backend=self._backend)

    def set_deadline(self, seconds: float | None) -> None:
        self.deadline = None if seconds is None else time.monotonic() + seconds

    def budget(self) -> float:
        """Seconds the next request may take: the device timeout, capped by the overall deadline."""
        budget = self.timeout
        if self.deadline is not None:
            budget = min(budget, self.deadline - time.monotonic())
        if budget <= 0:
            raise Timeout("deadline passed before the request could be sent")
        return budget

    def adopt(self, sock: socket.socket, https: bool) -> bool:
        """Use an open plain-TCP connection to the device (the reachable check's) for the first request."""
        if https or self.requests or self._backend.adopted is not None:
            return False
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._backend.adopted = sock
        return True

    @property
    def adopted_used(self) -> socket.socket | None:
        """The adopted socket, when a request went out on it."""
        return self._backend.adopted_used

    def _check_certificate(self, sock: ssl.SSLSocket) -> None:
        der = sock.getpeercert(binary_form=True) if sock is not None else None
        if not der:
            raise ProtocolError("TLS: the device showed no certificate")
        self.fingerprint = fingerprint(der)
        if self.tls.mode != "pin":
            return
        if self.tls.pinned is None:
            self.first_use = True
        elif self.fingerprint != self.tls.pinned.upper():
            raise CertChanged(f"TLS certificate changed: SHA-256 {self.fingerprint}, accepted "
                              f"{self.tls.pinned.upper()}; nothing was sent (if the device really got a new "
                              f"certificate: canteen-ops device accept-cert)", self.fingerprint)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self._budget = budget = self.budget()
        self._backend.deadline = time.monotonic() + budget
        cap = int(request.extensions.get("max_bytes", DEFAULT_MAX_BYTES))
        url = request.url
        req = httpcore.Request(
            method=request.method,
            url=httpcore.URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path),
            headers=request.headers.raw, content=request.stream,
            extensions={"timeout": {"connect": min(budget, CONNECT_TIMEOUT_CAP), "read": budget, "write": budget,
                                    "pool": budget}})
        self.requests += 1
        peer = f"{url.host}:{url.port}" if wirelog.enabled() else None
        if peer:
            wirelog.log_request(peer, request.method, url.raw_path.decode("ascii"), request.headers.raw,
                                request.content)
        sent_utc = dt.datetime.now(dt.timezone.utc)
        try:
            resp = self._pool.handle_request(req)
        except _HTTPCORE_ERRORS as exc:
            raise _driver_error(exc, budget) from None
        received_utc = dt.datetime.now(dt.timezone.utc)
        if resp.status == 401:
            cap = min(cap, AUTH_BODY_MAX)
        try:
            _refuse_framing(resp, cap)
        except ProtocolError:
            resp.close()  # the rest of that body is still on the connection: httpcore drops the connection
            raise
        return httpx.Response(status_code=resp.status, headers=resp.headers,
                              stream=_Body(resp, cap, budget, peer),
                              extensions={**resp.extensions, "sent_utc": sent_utc, "received_utc": received_utc})

    def close(self) -> None:
        self._pool.close()
        sock, self._backend.adopted = self._backend.adopted, None
        if sock is not None:
            sock.close()


def _refuse_framing(resp: httpcore.Response, cap: int) -> None:
    """What h11 accepts but we do not: any Content-Encoding (we asked for identity), a length over the cap."""
    encoding = b",".join(v for k, v in resp.headers if k.lower() == b"content-encoding").strip().lower()
    if encoding not in (b"", b"identity"):
        raise ProtocolError(f"unexpected Content-Encoding {encoding[:20].decode('latin-1')!r}")
    for k, v in resp.headers:
        if k.lower() == b"content-length" and v.strip().isdigit() and int(v) > cap:
            raise ProtocolError(f"body of {int(v)} bytes exceeds the {size(cap)} limit")


class _Body(httpx.SyncByteStream):
    """An answer's body as httpcore reads it, cut at `cap` bytes, errors mapped to driver errors."""

    def __init__(self, resp: httpcore.Response, cap: int, budget: float, peer: str | None = None):
        self._resp, self._cap, self._budget = resp, cap, budget
        self._peer = peer  # wire debug log on: the answer is logged when closed
        self._seen = 0
        self._start = bytearray()

    def __iter__(self) -> Iterator[bytes]:
        try:
            for chunk in self._resp.stream:  # type: ignore[union-attr]
                self._seen += len(chunk)
                if self._peer and len(self._start) < wirelog.WIRELOG_BODY:
                    self._start += chunk[:wirelog.WIRELOG_BODY - len(self._start)]
                if self._seen > self._cap:
                    raise ProtocolError(f"body exceeds the {size(self._cap)} limit")
                yield chunk
        except _HTTPCORE_ERRORS as exc:
            raise _driver_error(exc, self._budget) from None

    def close(self) -> None:
        self._resp.close()
        if self._peer:
            peer, self._peer = self._peer, None
            wirelog.log_response(peer, self._resp.status, self._resp.headers, bytes(self._start), self._seen)


def device_client(transport: DeviceTransport, base_url: str) -> httpx.Client:
    """The httpx.Client for one device: its transport, no proxies or .netrc from the environment, no redirects,
    no cookies kept (the jar is emptied after every answer), identity encoding asked for."""
    client = httpx.Client(transport=transport, base_url=base_url, trust_env=False, follow_redirects=False,
                          headers=HEADERS, timeout=transport.timeout,
                          event_hooks={"response": [lambda _r: client.cookies.clear()]})
    return client


def read_body(response: httpx.Response) -> bytes:
    """The whole body of a streamed answer (capped by the transport); the connection stays open for the next
    request unless the device said close."""
    try:
        if response.is_stream_consumed:  # the auth flow read it already (a 401/403 it looked into, then returned)
            return response.content
        return b"".join(response.iter_raw())
    finally:
        response.close()


def device_certificate(device, timeout: float | None = None) -> str:
    """The SHA-256 fingerprint of the certificate an HTTPS device shows now: a TLS handshake with the device's
    context (legacy if it is tls_legacy), nothing sent on it (for `device accept-cert`)."""
    limit = min(float(timeout or device.timeout), CONNECT_TIMEOUT_CAP)
    ctx = tls_context(TlsPolicy(mode="pin", legacy=bool(getattr(device, "tls_legacy", False))))
    try:
        with socket.create_connection((device.host, device.port), timeout=limit) as raw:
            with ctx.wrap_socket(raw, server_hostname=device.host) as sock:
                der = sock.getpeercert(binary_form=True)
    except TimeoutError:
        raise Timeout(f"{device.id}: no TLS connection within {limit:.1f} s") from None
    except ssl.SSLError as exc:
        raise ProtocolError(f"{device.id}: TLS handshake failed ({reason(exc)})") from None
    except OSError as exc:
        raise Offline(f"{device.id}: cannot connect ({exc.strerror or reason(exc)})") from None
    if not der:
        raise ProtocolError(f"{device.id}: the device showed no certificate")
    return fingerprint(der)


def size(n: int) -> str:
    return f"{n // MIB} MiB" if n >= MIB else f"{n // 1024} KiB" if n >= 1024 else f"{n} bytes"


__all__ = ["AUTH_BODY_MAX", "CONNECT_TIMEOUT_CAP", "CertChanged", "DEFAULT_MAX_BYTES", "DeviceTransport",
           "device_certificate", "Headers", "Reply",
           "TLS_MODES", "TlsPolicy", "device_client", "fingerprint", "read_body", "tls_context"]

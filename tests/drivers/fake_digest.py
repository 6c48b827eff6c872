"""A tiny Digest/Basic HTTP server on 127.0.0.1 for testing the driver plumbing's auth discipline.

Not the lab: it knows nothing of devices; it counts authenticated attempts and can expire nonces, make each nonce
good for one request (rotate: a reused one is called stale, or refused with 401 or 403 and counted as a failed
login), lock like Hikvision, stream huge bodies or never answer.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REALM = "DS-6e392e44"
TLS_DIR = Path(__file__).resolve().parent.parent / "fixtures" / "tls"


def cert_fingerprint(cert: str = "device") -> str:
    """The SHA-256 fingerprint of a fixture certificate, as drivers/transport.py writes it."""
    der = ssl.PEM_cert_to_DER_cert((TLS_DIR / f"{cert}-cert.pem").read_text(encoding="ascii"))
    return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())


def _md5(s: str) -> str:
    return hashlib.md5(s.encode()).hexdigest()


class FakeDevice:
    def __init__(self, *, password="secret", user="admin", scheme="digest", stale_after=None, rotate=False,
                 stale_style="header", locked=False, routes=None, tls=False, challenge=None, cert="device",
                 legacy_only=False, port=0):
        self.user, self.password, self.scheme = user, password, scheme
        # WWW-Authenticate headers instead of ours: one value or a list (one header each); "{nonce}" in them is
        # replaced by a nonce of ours, which the device then accepts.
        self.challenge = challenge
        self.stale_after, self.rotate, self.stale_style, self.locked = stale_after, rotate, stale_style, locked
        self.routes = routes or {}
        self.nonces: dict[str, int] = {}
        self.used: set[str] = set()  # nonces spent under rotate
        self.reuse_refusals = 0
        self.requests = 0
        self.auth_attempts = 0
        self.auth_failures = 0
        self.authorizations: list[str | None] = []  # the Authorization header of every request, None if absent
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        dev = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                super().setup()
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_message(self, *a):
                pass

            def do_GET(self):
                dev._handle(self)

            def do_POST(self):
                dev._handle(self)

            def do_PUT(self):
                dev._handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.tls = tls
        if tls:  # a self-signed certificate, as cameras ship (tests/fixtures/tls: "device", or "replaced")
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(TLS_DIR / f"{cert}-cert.pem", TLS_DIR / f"{cert}-key.pem")
            if legacy_only:  # an old embedded web server: TLS 1.2 at most, RSA key exchange, SHA-1 MAC
                ctx.maximum_version = ssl.TLSVersion.TLSv1_2
                ctx.set_ciphers("AES128-SHA:@SECLEVEL=0")
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_event.set()
        self.server.shutdown()
        self.server.server_close()

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    # --- protocol -------------------------------------------------------------------------------------------
    def _new_nonce(self) -> str:
        n = os.urandom(8).hex()
        self.nonces[n] = 0
        return n

    def _challenge(self, stale=False) -> str | list[str]:
        if self.challenge is not None:
            nonce = self._new_nonce()
            given = [self.challenge] if isinstance(self.challenge, str) else self.challenge
            return [c.replace("{nonce}", nonce) for c in given]
        if self.scheme == "basic":
            return 'Basic realm="Device_CGI"'
        return (f'Digest realm="{REALM}", qop="auth", nonce="{self._new_nonce()}", algorithm="MD5"'
                + (", stale=true" if stale and self.stale_style == "header" else ""))

    def _reply(self, h, status, body=b"", headers=None):
        h.send_response(status)
        for k, v in (headers or {}).items():
            for one in [v] if isinstance(v, str) else v:
                h.send_header(k, one)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(body)

    def _unauthorized(self, h, body: bytes, stale=False):
        self._reply(h, 401, body, {"WWW-Authenticate": self._challenge(stale), "Content-Type": "application/xml"})

    def _check(self, h) -> str:
        """'none' (no credentials), 'ok', 'bad', or 'stale'."""
        header = h.headers.get("Authorization")
        if not header:
            return "none"
        with self.lock:
            self.auth_attempts += 1
        if header.startswith("Basic "):
            ok = base64.b64decode(header[6:]).decode() == f"{self.user}:{self.password}"
            return "ok" if ok else "bad"
        fields = dict(re.findall(r'(\w+)="?([^",]*)"?', header[7:]))
        nonce = fields.get("nonce", "")
        if nonce not in self.nonces:
            return "reused" if nonce in self.used and self.rotate in ("401", "403") else "stale"
        ha1 = _md5(f"{fields.get('username')}:{REALM}:{self.password}")
        ha2 = _md5(f"{h.command}:{fields.get('uri')}")
        expected = _md5(f"{ha1}:{nonce}:{fields.get('nc')}:{fields.get('cnonce')}:{fields.get('qop')}:{ha2}")
        if fields.get("response") != expected or fields.get("username") != self.user:
            return "bad"
        self.nonces[nonce] += 1
        if self.stale_after is not None and self.nonces[nonce] > self.stale_after:
            del self.nonces[nonce]
            return "stale"
        if self.rotate:
            del self.nonces[nonce]
            self.used.add(nonce)
        return "ok"

    def _handle(self, h):
        with self.lock:
            self.requests += 1
        length = int(h.headers.get("Content-Length") or 0)
        h.body = h.rfile.read(length) if length else b""
        with self.lock:
            self.authorizations.append(h.headers.get("Authorization"))
        if self.locked:
            self._unauthorized(h, LOCK_BODY)
            return
        verdict = self._check(h)
        if verdict == "none":
            self._unauthorized(h, b"")
            return
        if verdict == "stale":
            self._unauthorized(h, STALE_BODY if self.stale_style == "body" else b"", stale=True)
            return
        if verdict == "bad":
            with self.lock:
                self.auth_failures += 1
            self._unauthorized(h, BAD_BODY)
            return
        if verdict == "reused":  # the worst case: counted as a failed login
            with self.lock:
                self.auth_failures += 1
                self.reuse_refusals += 1
            if self.rotate == "403":
                self._reply(h, 403, b"Error\r\nForbidden!\r\n", {"Content-Type": "text/plain"})
            else:
                self._unauthorized(h, b"")
            return
        route = self.routes.get(h.path.split("?")[0])
        if route is None:
            self._reply(h, 200, b"<DeviceInfo><model>X</model></DeviceInfo>", {"Content-Type": "application/xml"})
        else:
            route(self, h)


BAD_BODY = (b'<?xml version="1.0" encoding="UTF-8"?><userCheck version="2.0" '
            b'xmlns="http://www.isapi.org/ver20/XMLSchema"><statusValue>401</statusValue>'
            b"<statusString>Unauthorized</statusString><lockStatus>unlock</lockStatus><unlockTime>0</unlockTime>"
            b"<retryLoginTime>4</retryLoginTime></userCheck>")
LOCK_BODY = (b'<userCheck version="2.0" xmlns="http://www.isapi.org/ver20/XMLSchema">'
             b"<statusValue>401</statusValue><statusString>Unauthorized</statusString>"
             b"<isActivated>true</isActivated><lockStatus>lock</lockStatus>"
             b"<unlockTime>1800</unlockTime><retryLoginTime>0</retryLoginTime></userCheck>")
STALE_BODY = (b'<ResponseStatus version="1.0" xmlns="http://www.isapi.org/ver20/XMLSchema"><statusCode>4</statusCode>'
              b"<statusString>Invalid Operation</statusString><subStatusCode>invalidOperation</subStatusCode>"
              b"</ResponseStatus>")


def huge_chunked(total: int):
    """A route that streams `total` bytes chunked, without Content-Length (the cap must stop it)."""
    def route(dev, h):
        h.send_response(200)
        h.send_header("Content-Type", "application/xml")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        chunk = b"<a>" + b"x" * (1024 * 1024 - 3)
        sent = 0
        try:
            while sent < total and not dev.stop_event.is_set():
                h.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
            h.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass  # the client hung up at its cap: expected
    return route


def declared_huge(total: int):
    def route(dev, h):
        h.send_response(200)
        h.send_header("Content-Length", str(total))
        h.end_headers()
        try:
            h.wfile.write(b"<a>")
        except OSError:
            pass
    return route


def never_answers(dev, h):
    dev.stop_event.wait(10)


def slow_drip(dev, h):
    h.send_response(200)
    h.send_header("Content-Length", "100000")
    h.end_headers()
    try:
        for _ in range(100):
            if dev.stop_event.wait(0.05):
                return
            h.wfile.write(b"x" * 10)
            h.wfile.flush()
    except OSError:
        pass


def gzip_body(dev, h):
    dev._reply(h, 200, b"\x1f\x8b" + b"\x00" * 20, {"Content-Encoding": "gzip"})


def wait_until(pred, timeout=2.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.01)
    return pred()

"""Shared HTTP plumbing for the Hikvision ISAPI and Dahua CGI drivers.

One DeviceHTTP per device: requests go out on the device's connection (drivers/wire.py, the same wire as ONVIF's),
one at a time (a lock), every request bounded by the device timeout and by an optional overall deadline, every
body read in chunks up to a size cap. Challenges are answered by drivers/httpauth.py (Digest and Basic, the
headers httpx would send).

Authentication, the part that can lock a technician out of a device for 30 minutes:
- The first request goes out without credentials. Its 401 challenge picks the scheme (Digest → digest,
  Basic → basic); unauthenticated requests do not count toward the illegal-login lock. A probe answer that
  already says "locked" stops us before any credentials are sent.
- A 401 after credentials were sent is an AuthFailed (or Locked), recorded in auth_guard and never retried:
  later calls raise again without touching the network. The one exception: a 401 that says the nonce of a
  challenge we had already used successfully went stale (the vendor hook decides) is answered once with its
  fresh challenge. A wrong password therefore costs exactly one failed authenticated request on the wire.
- Later requests pre-send credentials with the challenge that worked (nc counting up), one exchange per
  request. Dahua firmware differs here: most take a nonce again (rroller/dahua#597: a real NVR logged 2 logins a
  second while every call was probe + request, and far fewer once the challenge was reused), one NVR answered a
  reused nonce with 403 (rroller/dahua#647). With reuse_until_refused, the first refusal (401 or 403) of a
  reused nonce is answered once with a fresh challenge, and the device gets a fresh challenge for every later
  request of the run (auth_guard remembers it), so such a device sees at most one refused reuse per run.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from canteen_ops.drivers.base import (
    AuthFailed,
    Driver,
    Offline,
    ProtocolError,
    Timeout,
    auth_guard,
)
from canteen_ops.drivers import recorder
from canteen_ops.drivers.httpauth import Digest, basic, challenge_is_stale, first_digest, pick_scheme
from canteen_ops.drivers.wire import DeviceConnection


MIB = 1024 * 1024
DEFAULT_MAX_BYTES = 8 * MIB
AUTH_BODY_MAX = 64 * 1024  # 401 bodies are tiny (userCheck / ResponseStatus)
_HEADERS = [("Accept", "*/*"), ("Accept-Encoding", "identity"), ("User-Agent", "canteen-ops")]


class _Request(NamedTuple):
    method: str
    target: str  # path and query, as on the request line
    headers: list[tuple[str, str]]  # without Authorization
    body: bytes


@dataclass
class Reply:
    status: int
    headers: dict[str, str]  # by lower-case name, repeated ones joined (wire.Headers)
    body: bytes
    path: str
    sent_utc: dt.datetime  # host UTC just before the request that produced this reply
    received_utc: dt.datetime  # host UTC when its headers arrived
    raw_headers: list[tuple[str, str]] = field(default_factory=list, repr=False)

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


class DeviceHTTP:
    """The single HTTP channel to one device.

    Vendor hooks:
      on_auth_failure(reply, authenticated) → AuthFailed | Locked | None: reads the 401 body. With
        authenticated=False (our unauthenticated probe) it returns an error only when the device says we are
        locked already; with True it always returns the error to raise.
      is_stale(reply) → bool: the 401 to a reused challenge was a stale nonce, not a bad password.
      reuse_challenge: pre-send credentials with the last challenge that worked; without it every request starts
        with an unauthenticated probe.
      reuse_until_refused: a 401 or 403 to a reused nonce ends reuse for this device for the run (Dahua, see the
        module docstring); the refused request is sent once more with a fresh challenge.
    """

    def __init__(
        self,
        *,
        device_id: str,
        base_url: str,
        username: str,
        password: str,
        timeout: float,
        on_auth_failure: Callable[[Reply, bool], AuthFailed | None],
        is_stale: Callable[[Reply], bool] = lambda r: challenge_is_stale(r.challenges),
        reuse_challenge: bool = True,
        reuse_until_refused: bool = False,
        verify_tls: bool = False,
    ):
        self.device_id = device_id
        self.timeout = float(timeout)
        self._username = username
        self._password = password
        self._on_auth_failure = on_auth_failure
        self._is_stale = is_stale
        self._reuse = reuse_challenge
        self._reuse_until_refused = reuse_until_refused
        self._scheme: str | None = None  # picked from the first challenge
        self._digest: Digest | None = None  # the Digest challenge we answer
        self._auth_ok = False  # it has carried a successful request
        self._deadline: float | None = None
        self._lock = threading.Lock()
        self.requests_sent = 0  # on the wire, for tests and benchmarks
        # No HTTP client session (httpx.Client): cookie jars, redirects and proxies from the environment are things
        # a device needs none of (a Client's cookie handling alone was 12 % of a Dahua NVR check's CPU).
        url = urlsplit(base_url)
        https = url.scheme == "https"
        self._host = url.netloc.rpartition("@")[2]
        if url.port == (443 if https else 80):
            self._host = self._host.rpartition(":")[0]  # httpx leaves a default port out of Host, as browsers do
        tls = None
        if https and verify_tls:
            import ssl

            tls = ssl.create_default_context()
        self._wire = DeviceConnection(url.scheme, url.hostname or "", url.port or (443 if https else 80), tls)

    # --- lifecycle and deadlines ------------------------------------------------------------------------
    def close(self) -> None:
        self._wire.close()

    def adopt(self, sock) -> bool:
        return self._wire.adopt(sock)

    def set_deadline(self, seconds: float | None) -> None:
        """Bound everything this device does from now on (the runner's per-device deadline)."""
        self._deadline = None if seconds is None else time.monotonic() + seconds

    def _budget(self) -> float:
        budget = self.timeout
        if self._deadline is not None:
            budget = min(budget, self._deadline - time.monotonic())
        if budget <= 0:
            raise Timeout(f"{self.device_id}: deadline passed before the request could be sent")
        return budget

    # --- the public call --------------------------------------------------------------------------------
    def request(
        self,
        method: str,
        target: str,
        *,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> Reply:
        """Send one authenticated request and return the reply, whatever its status (except 401).

        target: the path and query exactly as they go on the request line (already percent-encoded)."""
        if not target.startswith("/") or not target.isascii() or not target.isprintable() or " " in target:
            raise ValueError(f"not a request target: {target[:80]!r}")  # a bug in the driver, not the device
        auth_guard.check(self.device_id)
        with self._lock:
            auth_guard.check(self.device_id)  # another thread may have failed while we waited
            try:
                reply = self._request(_Request(method, target, self._head(method, headers, content), content or b""),
                                      max_bytes)
                recorder.note(self.device_id, method, target, reply.status, reply.headers, reply.body)
                return reply
            except AuthFailed as exc:
                auth_guard.record(self.device_id, exc)
                raise

    def _head(self, method: str, headers: dict[str, str] | None, content: bytes | None) -> list[tuple[str, str]]:
        """The request's headers as httpx orders them (Authorization is added per attempt)."""
        head = [("Host", self._host)]
        if content is None and method in ("POST", "PUT", "PATCH"):
            head.append(("Content-Length", "0"))
        head += _HEADERS
        if headers:
            head += headers.items()
        if content is not None:
            head.append(("Content-Length", str(len(content))))
        return head

    def _request(self, request: _Request, max_bytes: int) -> Reply:
        if self._scheme is None:
            probe = self._send(request, max_bytes)
            if probe.status != 401:
                return probe  # the device does not ask for credentials here
            self._scheme = pick_scheme(probe.challenges)
            recorder.note_challenge(self.device_id, probe.challenges)
            if self._scheme is None:
                raise ProtocolError(f"{self.device_id}: 401 without a Digest or Basic challenge "
                                    f"({'; '.join(probe.challenges)[:120] or 'no WWW-Authenticate'})")
            self._raise_if_locked(probe)
            return self._authenticated(request, max_bytes, probe=probe)
        if self._scheme == "digest" and not self._reusing():
            self._digest = None  # a fresh challenge for this request
        return self._authenticated(request, max_bytes, probe=None)

    def _reusing(self) -> bool:
        return self._reuse and not (self._reuse_until_refused and auth_guard.refuses_reuse(self.device_id))

    def _authenticated(self, request: _Request, max_bytes: int, probe: Reply | None) -> Reply:
        if self._scheme == "basic":
            return self._judge(self._send(request, max_bytes, basic(self._username, self._password)), None,
                               max_bytes)
        if self._digest is None:
            # No challenge to answer yet: this request is (or was) the unauthenticated probe.
            if probe is None:
                probe = self._send(request, max_bytes)
                if probe.status != 401:
                    return probe
                self._raise_if_locked(probe)
            self._answer(probe)
            return self._judge(self._send_digest(request, max_bytes), None, max_bytes)
        # Credentials go out with a challenge used before.
        reused = self._auth_ok
        reply = self._send_digest(request, max_bytes)
        if reused and self._reuse_until_refused and reply.status in (401, 403) and not self._is_stale(reply):
            return self._after_refused_reuse(request, reply, max_bytes)
        return self._judge(reply, request if reused else None, max_bytes)

    def _answer(self, reply: Reply) -> None:
        """From now on, answer the Digest challenge of this 401."""
        try:
            self._digest = Digest(self._username, self._password, first_digest(reply.challenges))
        except ProtocolError as exc:
            raise ProtocolError(f"{self.device_id}: {exc}") from None
        self._auth_ok = False

    def _send_digest(self, request: _Request, max_bytes: int) -> Reply:
        assert self._digest is not None
        return self._send(request, max_bytes, self._digest.authorization(request.method, request.target))

    def _after_refused_reuse(self, request: _Request, refused: Reply, max_bytes: int) -> Reply:
        """A reused nonce was refused: send the request once more with a fresh challenge (the 401's own, or a new
        probe after a 403). A 401 to it is the AuthFailed; a 403 to it too means the 403 answered the request,
        not the nonce, and reuse goes on."""
        self._digest = None
        probe = None
        if refused.status == 401:
            self._raise_if_locked(refused)
            if pick_scheme(refused.challenges) == "digest":
                probe = refused  # a Digest 401 carries a fresh challenge
        try:
            reply = self._authenticated(request, max_bytes, probe=probe)
        except AuthFailed:
            auth_guard.record_refused_reuse(self.device_id)
            raise
        if not (refused.status == 403 and reply.status == 403):
            auth_guard.record_refused_reuse(self.device_id)
        return reply

    def _judge(self, reply: Reply, retry: _Request | None, max_bytes: int) -> Reply:
        """retry: the request, when its credentials used a challenge that had worked before (a stale nonce is then
        answered once with the 401's fresh challenge)."""
        if reply.status != 401:
            self._auth_ok = True
            return reply
        if retry is not None and pick_scheme(reply.challenges) == "digest" and self._is_stale(reply):
            self._answer(reply)  # a nonce that worked before has expired
            return self._judge(self._send_digest(retry, max_bytes), None, max_bytes)
        if challenge_is_stale(reply.challenges):
            # stale=true means the digest was right and only the nonce was refused (RFC 7616) — here a nonce we
            # had just been given: the device is confused (its clock?). Not an AuthFailed, so it is not
            # remembered as a rejected login.
            raise ProtocolError(f"{self.device_id}: device rejects even a fresh nonce as stale")
        exc = self._on_auth_failure(reply, True) or AuthFailed(f"{self.device_id}: credentials rejected (401)")
        raise exc

    def _raise_if_locked(self, probe: Reply) -> None:
        exc = self._on_auth_failure(probe, False)
        if exc is not None:
            raise exc

    # --- one exchange on the wire ------------------------------------------------------------------------
    def _send(self, request: _Request, max_bytes: int, authorization: str | None = None) -> Reply:
        budget = self._budget()
        sent_utc = dt.datetime.now(dt.timezone.utc)
        self.requests_sent += 1
        path = request.target.partition("?")[0]
        headers = request.headers
        if authorization is not None:
            # The wire writes the head as Latin-1; a UTF-8 user name goes out as its bytes (what httpx sends).
            headers = [*headers, ("Authorization", authorization if authorization.isascii()
                                  else authorization.encode("utf-8").decode("latin-1"))]
        try:
            resp = self._wire.exchange(request.method, request.target, headers, request.body, budget)
            received_utc = dt.datetime.now(dt.timezone.utc)
            body = self._wire.read_body(resp, AUTH_BODY_MAX if resp.status == 401 else max_bytes)
        except (Offline, Timeout, ProtocolError) as exc:
            raise type(exc)(f"{self.device_id}: {request.method} {path}: {exc}") from None
        return Reply(status=resp.status, headers=resp.headers, body=body, path=path,
                     sent_utc=sent_utc, received_utc=received_utc, raw_headers=resp.raw_headers)


class HttpDriver(Driver):
    """What the drivers that talk through one DeviceHTTP (Hikvision ISAPI, Dahua CGI) share: building it, its
    deadline, its request count, closing it. Subclasses read 401 bodies (_auth_failure) and pass their
    DeviceHTTP options (is_stale, reuse_challenge)."""

    def __init__(self, device, password: str, *, timeout: float | None = None, timezone: str | None = None,
                 **http_options: Any):
        super().__init__(device, password, timeout=timeout, timezone=timezone)
        user = device.credentials.username if device.credentials else "admin"
        self._http = DeviceHTTP(device_id=device.id, base_url=device.base_url, username=user, password=password,
                                timeout=self.timeout, on_auth_failure=self._auth_failure, **http_options)

    def _auth_failure(self, reply: Reply, authenticated: bool) -> AuthFailed | None:
        raise NotImplementedError  # the vendor's reading of a 401 body (DeviceHTTP's on_auth_failure)

    def close(self) -> None:
        self._http.close()

    def adopt_connection(self, sock) -> bool:
        return self._http.adopt(sock)

    def set_deadline(self, seconds: float | None) -> None:
        super().set_deadline(seconds)
        self._http.set_deadline(seconds)

    @property
    def requests_sent(self) -> int:
        return self._http.requests_sent


__all__ = ["DeviceHTTP", "HttpDriver", "Reply"]

"""Shared HTTP plumbing for the Hikvision ISAPI and Dahua CGI drivers (httpx).

One DeviceHTTP per device: httpx builds the requests and drives Digest/Basic, the device's connection
(drivers/wire.py, the same wire as ONVIF's) carries them; one request at a time (a lock), every request bounded by
the device timeout and by an optional overall deadline, every body read in chunks up to a size cap.

Authentication, the part that can lock a technician out of a device for 30 minutes:
- The first request goes out without credentials. Its 401 challenge picks the scheme (Digest → digest,
  Basic → basic); unauthenticated requests do not count toward the illegal-login lock. A probe answer that
  already says "locked" stops us before any credentials are sent.
- A 401 after credentials were sent is an AuthFailed (or Locked), recorded in auth_guard and never retried:
  later calls raise again without touching the network.
- httpx.DigestAuth on its own would answer every 401 with one more authenticated attempt (it re-reads the
  challenge and retries once). We drive its auth flow by hand instead, so a retry with a fresh challenge only
  happens when the vendor hook says the 401 was a stale nonce, and only for a challenge we had already used
  successfully. A wrong password therefore costs exactly one failed authenticated request on the wire.
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
from typing import Any
from urllib.parse import urlsplit

import httpx

from canteen_ops.drivers.base import (
    AuthFailed,
    Driver,
    Offline,
    ProtocolError,
    Timeout,
    auth_guard,
)
from canteen_ops.drivers.wire import DeviceConnection


MIB = 1024 * 1024
DEFAULT_MAX_BYTES = 8 * MIB
AUTH_BODY_MAX = 64 * 1024  # 401 bodies are tiny (userCheck / ResponseStatus)
_HEADERS = {"Accept": "*/*", "Accept-Encoding": "identity", "User-Agent": "canteen-ops"}


@dataclass
class Reply:
    status: int
    headers: dict[str, str]  # by lower-case name, repeated ones joined (wire.Headers)
    body: bytes
    path: str
    sent_utc: dt.datetime  # host UTC just before the request that produced this reply
    received_utc: dt.datetime  # host UTC when its headers arrived
    raw_headers: list[tuple[str, str]] = field(default_factory=list, repr=False)
    request: Any = field(default=None, repr=False)  # the httpx.Request it answers

    def as_httpx(self) -> "httpx.Response":
        """This reply as the httpx.Response that httpx's auth flows read (a 401's challenge)."""
        return httpx.Response(self.status, headers=self.raw_headers, content=self.body, request=self.request)

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


def pick_scheme(challenges: list[str]) -> str | None:
    """'digest' or 'basic' from the WWW-Authenticate headers; Digest wins when both are offered."""
    schemes = [c.strip().split(" ", 1)[0].lower() for c in challenges if c.strip()]
    if "digest" in schemes:
        return "digest"
    if "basic" in schemes:
        return "basic"
    return None


def challenge_is_stale(challenges: list[str]) -> bool:
    """RFC 7616: a server that rejects an expired nonce says stale=true in the new challenge."""
    for c in challenges:
        if c.strip().lower().startswith("digest") and "stale=true" in c.replace(" ", "").replace('"', "").lower():
            return True
    return False


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
        self._auth: httpx.Auth | None = None
        self._auth_ok = False  # the current challenge has carried a successful request
        self._deadline: float | None = None
        self._lock = threading.Lock()
        self.requests_sent = 0  # on the wire, for tests and benchmarks
        self._base_url = base_url.rstrip("/")
        # No httpx.Client: a Client adds cookie jars, redirects, proxies from the environment and its own auth
        # handling, none of which a device needs (its cookie handling alone was 12 % of a Dahua NVR check's CPU).
        url = urlsplit(self._base_url)
        https = url.scheme == "https"
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
        path: str,
        *,
        params: dict[str, Any] | list[tuple[str, Any]] | None = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> Reply:
        """Send one authenticated request and return the reply, whatever its status (except 401)."""
        auth_guard.check(self.device_id)
        with self._lock:
            auth_guard.check(self.device_id)  # another thread may have failed while we waited
            try:
                return self._request(method, path, params, content, headers, max_bytes)
            except AuthFailed as exc:
                auth_guard.record(self.device_id, exc)
                raise

    def _request(self, method, path, params, content, headers, max_bytes) -> Reply:
        request = httpx.Request(method, self._base_url + path, params=params, content=content,
                                headers={**_HEADERS, **headers} if headers else _HEADERS)
        if self._scheme is None:
            probe = self._send(request, max_bytes)
            if probe.status != 401:
                return probe  # the device does not ask for credentials here
            self._scheme = pick_scheme(probe.challenges)
            if self._scheme is None:
                raise ProtocolError(f"{self.device_id}: 401 without a Digest or Basic challenge "
                                    f"({'; '.join(probe.challenges)[:120] or 'no WWW-Authenticate'})")
            self._raise_if_locked(probe)
            self._auth = self._new_auth()
            return self._authenticated(request, max_bytes, probe=probe)

        if self._scheme == "digest" and not self._reusing():
            self._auth = self._new_auth()  # a fresh challenge for this request
        return self._authenticated(request, max_bytes, probe=None)

    def _reusing(self) -> bool:
        return self._reuse and not (self._reuse_until_refused and auth_guard.refuses_reuse(self.device_id))

    def _new_auth(self) -> "httpx.Auth":
        if self._scheme == "digest":
            return httpx.DigestAuth(self._username, self._password)
        return httpx.BasicAuth(self._username, self._password)

    def _authenticated(self, request: "httpx.Request", max_bytes: int, probe: Reply | None) -> Reply:
        assert self._auth is not None
        flow = self._auth.sync_auth_flow(request)
        outgoing = next(flow)
        if "authorization" not in outgoing.headers:
            # Digest without a cached challenge: this request is (or was) the unauthenticated probe.
            if probe is None:
                probe = self._send(outgoing, max_bytes)
                if probe.status != 401:
                    return probe
                self._raise_if_locked(probe)
            outgoing = flow.send(probe.as_httpx())
            reply = self._send(outgoing, max_bytes)
            return self._judge(reply, None, max_bytes)
        # Credentials went out with a challenge used before, or with Basic.
        reply = self._send(outgoing, max_bytes)
        reused = self._scheme == "digest" and self._auth_ok
        if reused and self._reuse_until_refused and reply.status in (401, 403) and not self._is_stale(reply):
            return self._after_refused_reuse(request, reply, max_bytes)
        return self._judge(reply, flow if reused else None, max_bytes)

    def _after_refused_reuse(self, request: "httpx.Request", refused: Reply, max_bytes: int) -> Reply:
        """A reused nonce was refused: send the request once more with a fresh challenge (the 401's own, or a new
        probe after a 403). A 401 to it is the AuthFailed; a 403 to it too means the 403 answered the request,
        not the nonce, and reuse goes on."""
        self._auth_ok = False
        self._auth = self._new_auth()
        request.headers.pop("Authorization", None)  # the refused credentials (httpx set them on this request)
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

    def _judge(self, reply: Reply, flow, max_bytes: int) -> Reply:
        if reply.status != 401:
            self._auth_ok = True
            return reply
        if flow is not None and pick_scheme(reply.challenges) == "digest" and self._is_stale(reply):
            # A nonce that worked before has expired: one more try with the fresh challenge of this 401.
            self._auth_ok = False
            outgoing = flow.send(reply.as_httpx())
            return self._judge(self._send(outgoing, max_bytes), None, max_bytes)
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
    def _send(self, request: "httpx.Request", max_bytes: int) -> Reply:
        budget = self._budget()
        sent_utc = dt.datetime.now(dt.timezone.utc)
        self.requests_sent += 1
        where = f"{self.device_id}: {request.method} {request.url.path}"
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw]
        try:
            resp = self._wire.exchange(request.method, request.url.raw_path.decode("ascii"), headers,
                                       request.read(), budget)
            received_utc = dt.datetime.now(dt.timezone.utc)
            body = self._wire.read_body(resp, AUTH_BODY_MAX if resp.status == 401 else max_bytes)
        except (Offline, Timeout, ProtocolError) as exc:
            raise type(exc)(f"{where}: {exc}") from None
        return Reply(status=resp.status, headers=resp.headers, body=body, path=request.url.path,
                     sent_utc=sent_utc, received_utc=received_utc, raw_headers=resp.raw_headers, request=request)


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


__all__ = ["DeviceHTTP", "HttpDriver", "Reply", "pick_scheme", "challenge_is_stale"]

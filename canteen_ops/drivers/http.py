"""Shared HTTP plumbing for the Hikvision ISAPI and Dahua CGI drivers.

One DeviceHTTP per device: an httpx.Client on the device's transport (drivers/transport.py, the same as ONVIF's:
one keep-alive connection, no proxies, redirects or cookies), one request at a time (a lock), every answer bounded
by the device timeout and by an optional overall deadline, every body streamed up to a size cap. Challenges are
answered by drivers/httpauth.py's DeviceAuth, an httpx.Auth that keeps the state below across requests.

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
- Basic goes out only over HTTPS, or over HTTP where the inventory says `auth: basic` for the device: otherwise
  a device asking for Basic gets no password (BasicOverHttp), since base64 is readable by anyone on the path and
  one credential set often serves a whole group.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import httpx

from canteen_ops.drivers import recorder
from canteen_ops.drivers.base import AuthFailed, Driver, DriverError, auth_guard
from canteen_ops.drivers.httpauth import DeviceAuth, challenge_is_stale
from canteen_ops.drivers.transport import (  # the size caps are re-exported: callers know them from here
    AUTH_BODY_MAX,
    DEFAULT_MAX_BYTES,
    DeviceTransport,
    Reply,
    TlsPolicy,
    device_client,
    read_body,
)


def device_allows_basic(device) -> bool:
    """The inventory's `auth: basic`: Basic may go out over plain HTTP to this device."""
    return getattr(device, "auth", None) == "basic"


class DeviceHTTP:
    """The single HTTP channel to one device. The vendor hooks and options are DeviceAuth's."""

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
        basic_over_http: bool = False,
        tls: TlsPolicy | None = None,
    ):
        self.device_id = device_id
        self.timeout = float(timeout)
        self._lock = threading.Lock()
        self.https = base_url.startswith("https:")
        self.transport = DeviceTransport(self.timeout, tls, https=self.https)
        self._client = device_client(self.transport, base_url)
        self._auth = DeviceAuth(device_id, username, password, on_auth_failure=on_auth_failure, is_stale=is_stale,
                                reuse_challenge=reuse_challenge, reuse_until_refused=reuse_until_refused,
                                basic_over_http=basic_over_http)

    # --- lifecycle and deadlines ------------------------------------------------------------------------
    def close(self) -> None:
        self._client.close()

    def adopt(self, sock) -> bool:
        return self.transport.adopt(sock, self.https)

    def set_deadline(self, seconds: float | None) -> None:
        """Bound everything this device does from now on (the runner's per-device deadline)."""
        self.transport.set_deadline(seconds)

    @property
    def requests_sent(self) -> int:
        return self.transport.requests

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
                request = self._client.build_request(method, target, content=content, headers=headers,
                                                      extensions={"max_bytes": max_bytes})
                if request.url.raw_path != target.encode("ascii"):  # the device must get the target we signed
                    raise ValueError(f"httpx would send {request.url.raw_path[:80]!r} for {target[:80]!r}")
                response = self._client.send(request, auth=self._auth, stream=True)
                reply = Reply.of(response, read_body(response))
                recorder.note(self.device_id, method, target, reply.status, reply.headers, reply.body)
                return reply
            except AuthFailed as exc:
                auth_guard.record(self.device_id, exc)
                raise
            except DriverError as exc:
                if not str(exc).startswith(f"{self.device_id}:"):
                    exc.args = (f"{self.device_id}: {method} {target.partition('?')[0]}: {exc}", *exc.args[1:])
                raise
            except httpx.HTTPError as exc:  # what the transport does not map: a request we could not build
                raise DriverError(f"{self.device_id}: {method} {target.partition('?')[0]}: {exc}") from None


class HttpDriver(Driver):
    """What the drivers that talk through one DeviceHTTP (Hikvision ISAPI, Dahua CGI) share: building it, its
    deadline, its request count, closing it. Subclasses read 401 bodies (_auth_failure) and pass their
    DeviceHTTP options (is_stale, reuse_challenge)."""

    def __init__(self, device, password: str, *, timeout: float | None = None, timezone: str | None = None,
                 tls_pin: str | None = None, **http_options: Any):
        super().__init__(device, password, timeout=timeout, timezone=timezone)
        user = device.credentials.username if device.credentials else "admin"
        self._http = DeviceHTTP(device_id=device.id, base_url=device.base_url, username=user, password=password,
                                timeout=self.timeout, on_auth_failure=self._auth_failure,
                                tls=TlsPolicy.of(device, tls_pin), basic_over_http=device_allows_basic(device),
                                **http_options)

    def _auth_failure(self, reply: Reply, authenticated: bool) -> AuthFailed | None:
        raise NotImplementedError  # the vendor's reading of a 401 body (DeviceHTTP's on_auth_failure)

    def close(self) -> None:
        self._http.close()

    def adopt_connection(self, sock) -> bool:
        return self._http.adopt(sock)

    @property
    def device_transport(self) -> DeviceTransport:
        """The device's connection (its request count, the TLS certificate it showed)."""
        return self._http.transport

    def set_deadline(self, seconds: float | None) -> None:
        super().set_deadline(seconds)
        self._http.set_deadline(seconds)

    @property
    def requests_sent(self) -> int:
        return self._http.requests_sent


__all__ = ["AUTH_BODY_MAX", "DEFAULT_MAX_BYTES", "DeviceHTTP", "HttpDriver", "Reply", "device_allows_basic"]

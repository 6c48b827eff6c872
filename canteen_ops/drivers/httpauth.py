"""HTTP authentication for the Hikvision/Dahua channel (drivers/http.py): Digest (RFC 7616; RFC 2069 when the
device offers no qop) and Basic (RFC 7617), as an httpx.Auth that keeps its state across a device's requests.

- Reading challenges: parse_challenges is a linear scanner over the WWW-Authenticate headers (several
  challenges in one or several headers, RFC 7235); Digest wins over Basic, with its own parameters.
- Answering them: Digest and basic() send what httpx.DigestAuth and httpx.BasicAuth send, field for field and
  in the same order (tests/drivers/test_httpauth.py compares them). httpx's own classes are not used because
  they probe before every request and retry any 401: devices lock the source address after a few failures.
- DeviceAuth is the lock-safe state machine described in drivers/http.py's docstring.
"""
from __future__ import annotations

import base64
import hashlib
import os
import re
from typing import NamedTuple

from collections.abc import Callable, Generator

import httpx

from canteen_ops.drivers import recorder
from canteen_ops.drivers.base import AuthFailed, ProtocolError, Refused, auth_guard
from canteen_ops.drivers.transport import Reply

_HASHES = {
    "MD5": hashlib.md5,
    "MD5-SESS": hashlib.md5,
    "SHA": hashlib.sha1,
    "SHA-SESS": hashlib.sha1,
    "SHA-256": hashlib.sha256,
    "SHA-256-SESS": hashlib.sha256,
    "SHA-512": hashlib.sha512,
    "SHA-512-SESS": hashlib.sha512,
}


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Challenge(NamedTuple):
    realm: str
    nonce: str
    algorithm: str  # as the device spelled it (echoed back)
    opaque: str | None
    qop: str | None  # "auth", or None for an RFC 2069 device


# --- reading challenges: a linear scanner ---------------------------------------------------------------------
# WWW-Authenticate = 1#challenge; challenge = auth-scheme [ 1*SP ( token68 / #auth-param ) ];
# auth-param = token BWS "=" BWS ( token / quoted-string ) (RFC 7235 §2.1, §4.1). Several challenges may share one
# header, so after a comma a token followed by "=" is a parameter and any other token starts a new challenge.
# Every pattern below is one character class repeated, matched at a position: no backtracking, and each step
# of the scanner consumes at least one character, so hostile headers cost linear time.
_TOKEN = re.compile(r'[^\s,="\\]*')
_SPACE = re.compile(r"[ \t]*")
_SEPARATORS = re.compile(r"[\s,]*")
_UNQUOTED = re.compile(r"[^,]*")
_QUOTED_RUN = re.compile(r'[^"\\]*')


def _quoted_string(s: str, i: int) -> tuple[str, int]:
    """The quoted-string whose opening quote is at s[i-1]: its unescaped value and the index after it (an
    unterminated one runs to the end of the header)."""
    parts = []
    n = len(s)
    while i < n:
        end = _QUOTED_RUN.match(s, i).end()
        parts.append(s[i:end])
        if end >= n:
            return "".join(parts), n
        if s[end] == '"':
            return "".join(parts), end + 1
        parts.append(s[end + 1:end + 2])  # quoted-pair: the escaped character itself
        i = end + 2
    return "".join(parts), n


MAX_CHALLENGES = 16  # devices send one to three; the rest of a longer list is not read


def parse_challenges(headers: list[str]) -> list[tuple[str, dict[str, str]]]:
    """The challenges of a 401's WWW-Authenticate headers, in order: (lower-case scheme, auth-params by lower-case
    name). A repeated parameter keeps its first value; parameters before any scheme are dropped."""
    out: list[tuple[str, dict[str, str]]] = []
    for s in headers:
        params: dict[str, str] | None = None
        i, n = 0, len(s)
        while i < n and len(out) <= MAX_CHALLENGES:
            i = _SEPARATORS.match(s, i).end()
            if i >= n:
                break
            end = _TOKEN.match(s, i).end()
            if end == i:  # a stray "=", quote or backslash: skip it
                i += 1
                continue
            token = s[i:end]
            j = _SPACE.match(s, end).end()
            if j < n and s[j] == "=":
                k = _SPACE.match(s, j + 1).end()
                if k < n and s[k] == '"':
                    value, i = _quoted_string(s, k + 1)
                else:
                    i = _UNQUOTED.match(s, k).end()
                    value = s[k:i].strip()
                if params is not None:
                    params.setdefault(token.lower(), value)
            else:
                params = {}
                out.append((token.lower(), params))
                i = j
    return out[:MAX_CHALLENGES]


def pick_scheme(challenges: list[str]) -> str | None:
    """'digest' or 'basic' from a 401's WWW-Authenticate headers; Digest wins when both are offered."""
    schemes = {scheme for scheme, _ in parse_challenges(challenges)}
    return "digest" if "digest" in schemes else "basic" if "basic" in schemes else None


def _digest_params(challenges: list[str]) -> dict[str, str] | None:
    """The parameters of the first Digest challenge (its own: another challenge's realm is not its realm)."""
    return next((params for scheme, params in parse_challenges(challenges) if scheme == "digest"), None)


def challenge_is_stale(challenges: list[str]) -> bool:
    """RFC 7616: a server that rejects an expired nonce says stale=true in the new challenge."""
    params = _digest_params(challenges)
    return params is not None and params.get("stale", "").lower() == "true"


def parse_challenge(header: str) -> Challenge:
    """The Digest challenge of one `Digest realm="…", nonce="…", …` header; ProtocolError when it cannot be
    answered."""
    return _challenge(_digest_params([header]), header)


def first_digest(challenges: list[str]) -> Challenge:
    """The first Digest challenge among a 401's WWW-Authenticate headers."""
    params = _digest_params(challenges)
    if params is None:
        raise ProtocolError("401 without a Digest challenge")
    return _challenge(params, "")


def _challenge(fields: dict[str, str] | None, header: str) -> Challenge:
    if fields is None:
        raise ProtocolError(f"not a Digest challenge: {header[:60]!r}")
    if "realm" not in fields or "nonce" not in fields:
        raise ProtocolError("malformed Digest challenge (no realm or nonce)")
    algorithm = fields.get("algorithm", "MD5")
    if algorithm.upper() not in _HASHES:
        raise ProtocolError(f"unsupported Digest algorithm {algorithm[:20]!r}")
    qop = None
    if "qop" in fields:
        offered = [q.strip().lower() for q in fields["qop"].split(",")]
        if "auth" not in offered:
            raise ProtocolError(f"unsupported Digest qop {fields['qop'][:30]!r} (only qop=auth is implemented)")
        qop = "auth"
    return Challenge(fields["realm"], fields["nonce"], algorithm, fields.get("opaque"), qop)


class Digest:
    """Answers one challenge, request after request (the nonce count goes up with each)."""

    def __init__(self, username: str, password: str, challenge: Challenge):
        self.challenge = challenge
        self._hash = _HASHES[challenge.algorithm.upper()]
        self._ha1 = self._hex(f"{username}:{challenge.realm}:{password}")
        self._sess = challenge.algorithm.lower().endswith("-sess")
        # The fields that stay the same for every answer to this challenge, in httpx's order around uri/response.
        self._who = f"Digest username={_quoted(username)}, realm={_quoted(challenge.realm)}, " \
                    f"nonce={_quoted(challenge.nonce)}"
        self._tail = f"algorithm={challenge.algorithm}" + (f", opaque={_quoted(challenge.opaque)}"
                                                           if challenge.opaque else "")
        self._count = 0

    def _hex(self, text: str) -> str:
        return self._hash(text.encode("utf-8")).hexdigest()

    def authorization(self, method: str, uri: str) -> str:
        ch = self.challenge
        self._count += 1
        nc = f"{self._count:08x}"
        cnonce = os.urandom(8).hex()
        ha1 = self._hex(f"{self._ha1}:{ch.nonce}:{cnonce}") if self._sess else self._ha1
        ha2 = self._hex(f"{method}:{uri}")
        if ch.qop is None:
            response = self._hex(f"{ha1}:{ch.nonce}:{ha2}")
            return f'{self._who}, uri="{uri}", response="{response}", {self._tail}'
        response = self._hex(f"{ha1}:{ch.nonce}:{nc}:{cnonce}:{ch.qop}:{ha2}")
        return f'{self._who}, uri="{uri}", response="{response}", {self._tail}, qop={ch.qop}, nc={nc}, ' \
               f'cnonce="{cnonce}"'


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode("utf-8")).decode("ascii")


def _reply(response: httpx.Response) -> Reply:
    return Reply.of(response, response.read())  # a 401 or 403: its body is small, and capped by the transport


# --- the state machine ----------------------------------------------------------------------------------------
class BasicOverHttp(Refused):
    """The device asked for Basic authentication over plain HTTP and the inventory does not allow it: the
    password (base64, readable by anyone on the path) was not sent."""


class DeviceAuth(httpx.Auth):
    """One device's authentication, across all its requests (drivers/http.py's docstring: lock-safe Digest).

    Vendor hooks:
      on_auth_failure(reply, authenticated) → AuthFailed | Locked | None: reads the 401 body. With
        authenticated=False (our unauthenticated probe) it returns an error only when the device says we are
        locked already; with True it always returns the error to raise.
      is_stale(reply) → bool: the 401 to a reused challenge was a stale nonce, not a bad password.
      reuse_challenge: pre-send credentials with the last challenge that worked; without it every request starts
        with an unauthenticated probe.
      reuse_until_refused: a 401 or 403 to a reused nonce ends reuse for this device for the run (Dahua); the
        refused request is sent once more with a fresh challenge.
      basic_over_http: the inventory allows Basic on a plain-HTTP device (auth: basic).
    Errors raised here (AuthFailed, ProtocolError, BasicOverHttp) end the exchange; DeviceHTTP records an
    AuthFailed in auth_guard.
    """

    def __init__(self, device_id: str, username: str, password: str, *,
                 on_auth_failure: Callable[[Reply, bool], AuthFailed | None],
                 is_stale: Callable[[Reply], bool] = lambda r: challenge_is_stale(r.challenges),
                 reuse_challenge: bool = True, reuse_until_refused: bool = False, basic_over_http: bool = False):
        self.device_id = device_id
        self._username, self._password = username, password
        self._on_auth_failure = on_auth_failure
        self._is_stale = is_stale
        self._reuse = reuse_challenge
        self._reuse_until_refused = reuse_until_refused
        self._basic_over_http = basic_over_http
        self.scheme: str | None = None  # picked from the first challenge
        self._digest: Digest | None = None  # the Digest challenge we answer
        self._auth_ok = False  # it has carried a successful request

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """httpx's driving loop, reading only 401 bodies (capped by the transport); every other answer stays a
        stream for the caller."""
        flow = self._flow(request)
        request = next(flow)
        while True:
            response = yield request
            if response.status_code == 401:
                response.read()
            try:
                request = flow.send(response)
            except StopIteration:
                return

    def _flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self.scheme is None:
            response = yield request
            if response.status_code != 401:
                return  # the device does not ask for credentials here
            probe = _reply(response)
            self.scheme = pick_scheme(probe.challenges)
            recorder.note_challenge(self.device_id, probe.challenges)
            if self.scheme is None:
                raise ProtocolError(f"401 without a Digest or Basic challenge "
                                    f"({'; '.join(probe.challenges)[:120] or 'no WWW-Authenticate'})")
            self._raise_if_locked(probe)
            yield from self._authenticated(request, probe)
            return
        if self.scheme == "digest" and not self._reusing():
            self._digest = None  # a fresh challenge for this request
        yield from self._authenticated(request, None)

    def _reusing(self) -> bool:
        return self._reuse and not (self._reuse_until_refused and auth_guard.refuses_reuse(self.device_id))

    def _authenticated(self, request: httpx.Request, probe: Reply | None):
        if self.scheme == "basic":
            if request.url.scheme != "https" and not self._basic_over_http:
                raise BasicOverHttp("the device asked for Basic authentication over plain HTTP; no password was "
                                    "sent (allow it for this device with auth: basic in the inventory)")
            request.headers["Authorization"] = basic(self._username, self._password)
            yield from self._judge((yield request), None)
            return
        if self._digest is None:
            # No challenge to answer yet: this request is (or was) the unauthenticated probe.
            if probe is None:
                request.headers.pop("Authorization", None)
                response = yield request
                if response.status_code != 401:
                    return
                probe = _reply(response)
                self._raise_if_locked(probe)
            self._answer(probe)
            yield from self._judge((yield self._with_digest(request)), None)
            return
        # Credentials go out with a challenge used before.
        reused = self._auth_ok
        response = yield self._with_digest(request)
        if reused and self._reuse_until_refused and response.status_code in (401, 403) \
                and not self._is_stale(_reply(response)):
            yield from self._after_refused_reuse(request, response)
            return
        yield from self._judge(response, request if reused else None)

    def _answer(self, reply: Reply) -> None:
        """From now on, answer the Digest challenge of this 401."""
        self._digest = Digest(self._username, self._password, first_digest(reply.challenges))
        self._auth_ok = False

    def _with_digest(self, request: httpx.Request) -> httpx.Request:
        assert self._digest is not None
        request.headers["Authorization"] = self._digest.authorization(request.method,
                                                                      request.url.raw_path.decode("ascii"))
        return request

    def _after_refused_reuse(self, request: httpx.Request, refused: httpx.Response):
        """A reused nonce was refused: send the request once more with a fresh challenge (the 401's own, or a new
        probe after a 403). A 401 to it is the AuthFailed; a 403 to it too means the 403 answered the request,
        not the nonce, and reuse goes on."""
        self._digest = None
        probe = None
        if refused.status_code == 401:
            probe = _reply(refused)
            self._raise_if_locked(probe)
            if pick_scheme(probe.challenges) != "digest":
                probe = None  # only a Digest 401 carries a fresh challenge
        try:
            final = yield from self._authenticated_final(request, probe)
        except AuthFailed:
            auth_guard.record_refused_reuse(self.device_id)
            raise
        if not (refused.status_code == 403 and final is not None and final.status_code == 403):
            auth_guard.record_refused_reuse(self.device_id)

    def _authenticated_final(self, request: httpx.Request, probe: Reply | None):
        """_authenticated, returning the last answer it was sent."""
        final = None
        flow = self._authenticated(request, probe)
        try:
            sent = next(flow)
            while True:
                final = yield sent
                sent = flow.send(final)
        except StopIteration:
            return final

    def _judge(self, response: httpx.Response, retry: httpx.Request | None):
        """retry: the request, when its credentials used a challenge that had worked before (a stale nonce is then
        answered once with the 401's fresh challenge)."""
        if response.status_code != 401:
            self._auth_ok = True
            return
        reply = _reply(response)
        if retry is not None and pick_scheme(reply.challenges) == "digest" and self._is_stale(reply):
            self._answer(reply)  # a nonce that worked before has expired
            yield from self._judge((yield self._with_digest(retry)), None)
            return
        if challenge_is_stale(reply.challenges):
            # stale=true means the digest was right and only the nonce was refused (RFC 7616) — here a nonce we
            # had just been given: the device is confused (its clock?). Not an AuthFailed, so it is not
            # remembered as a rejected login.
            raise ProtocolError("device rejects even a fresh nonce as stale")
        raise self._on_auth_failure(reply, True) or AuthFailed(f"{self.device_id}: credentials rejected (401)")

    def _raise_if_locked(self, probe: Reply) -> None:
        exc = self._on_auth_failure(probe, False)
        if exc is not None:
            raise exc


__all__ = ["BasicOverHttp", "Challenge", "DeviceAuth", "Digest", "basic", "challenge_is_stale", "first_digest",
           "parse_challenge", "parse_challenges", "pick_scheme"]

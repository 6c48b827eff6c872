"""Server-side HTTP authentication for the simulated devices: Digest (RFC 2617/7616, MD5, qop=auth) and Basic.

What matters for the clients under test is how a device reacts, not only whether it lets them in:
- requests without an Authorization header get a challenge and are NOT counted as failed logins;
- a wrong password (or user, or a Basic answer to a Digest-only device) is counted through
  DeviceState.record_login, and after N failures the device locks out for 30 minutes;
- a correct answer to an expired nonce is "stale" (not counted): the challenge says stale=TRUE;
- with the `nonce-once` fault, a correct answer to a nonce already used is "reused": refused, and counted as a
  failed login (the worst a device could do with it);
- while locked, even the right password is refused.
The vendor modules turn the outcome into their own 401 bodies.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import itertools
import os
import re
import time
from urllib.parse import urlsplit

from canteen_ops.lab.state import DeviceState

NONCE_TTL_S = 600.0
_SECRET = os.urandom(16)  # nonces are self-validating: HMAC(secret, device, issue time)

OK, MISSING, FAILED, STALE, REUSED, LOCKED = "ok", "missing", "failed", "stale", "reused", "locked"
USED_NONCES_KEPT = 10_000  # nonces remembered per device under `nonce-once`


def realm(state: DeviceState) -> str:
    """The vendor's realm: Hikvision `DS-xxxxxxxx` (lower-case hex), Dahua `Login to <serial>`, old Dahua Basic."""
    return _realm(state.vendor, state.auth, state.serial)


@functools.lru_cache(maxsize=4096)
def _realm(vendor: str, auth: str, serial: str) -> str:
    if vendor == "hikvision":
        return "DS-" + hashlib.sha1(serial.encode()).hexdigest()[:8]
    if auth == "basic":
        return "Device_CGI"
    return f"Login to {serial}"


_serial = itertools.count()


def make_nonce(state: DeviceState, at: float | None = None, serial: int | None = None) -> str:
    """issue time + a serial number (every challenge gets a nonce of its own) + their MAC."""
    ts = int(time.time() if at is None else at)
    n = next(_serial) & 0xFFFFFFFF if serial is None else serial
    mac = hmac.new(_SECRET, f"{state.id}:{ts}:{n}".encode(), hashlib.sha256).hexdigest()[:24]
    return f"{ts:08x}{n:08x}{mac}"


_verified: dict[tuple[str, str], int] = {}  # (device, nonce) → issue time, for nonces whose MAC was checked
VERIFIED_KEPT = 100_000


def _nonce_age(state: DeviceState, nonce: str) -> float | None:
    """Seconds since we issued this nonce, or None if we never did."""
    ts = _verified.get((state.id, nonce))
    if ts is None:
        try:
            ts, n = int(nonce[:8], 16), int(nonce[8:16], 16)
        except ValueError:
            return None
        if not hmac.compare_digest(nonce, make_nonce(state, ts, n)):
            return None
        if len(_verified) >= VERIFIED_KEPT:
            _verified.clear()
        _verified[(state.id, nonce)] = ts
    return time.time() - ts


def challenge(state: DeviceState, stale: bool = False) -> dict[str, str]:
    """The WWW-Authenticate header of a 401."""
    if state.auth == "basic":
        return {"WWW-Authenticate": f'Basic realm="{realm(state)}"'}
    nonce = make_nonce(state)
    if state.vendor == "hikvision":
        value = (f'Digest qop="auth", realm="{realm(state)}", nonce="{nonce}", '
                 f'stale="{"TRUE" if stale else "FALSE"}"')
    else:
        opaque = hashlib.md5(state.serial.encode()).hexdigest()
        value = f'Digest realm="{realm(state)}", qop="auth", nonce="{nonce}", opaque="{opaque}"'
        if stale:
            value += ", stale=TRUE"
    return {"WWW-Authenticate": value}


def _h(s: str) -> str:
    return hashlib.md5(s.encode("utf-8")).hexdigest()


_ha1 = functools.lru_cache(maxsize=4096)(_h)  # user:realm:password changes only with the wrong-password fault
_ESCAPED = re.compile(r"\\(.)")
_PARAM = re.compile(r'([\w-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))')


def parse_params(value: str) -> dict[str, str]:
    """The name=value pairs of a Digest Authorization header (quoted or not); a garbled one simply yields fewer
    pairs, and a missing one fails the check."""
    out = {}
    for name, quoted, plain in _PARAM.findall(value):
        out[name.lower()] = plain or (_ESCAPED.sub(r"\1", quoted) if "\\" in quoted else quoted)
    return out


def _check_digest(state: DeviceState, method: str, path: str, value: str) -> str:
    p = parse_params(value)
    need = ("username", "realm", "nonce", "uri", "response")
    if any(k not in p for k in need) or p.get("algorithm", "MD5").upper() != "MD5":
        return FAILED
    if p["username"] != state.username or p["realm"] != realm(state):
        return FAILED
    if urlsplit(p["uri"]).path != path:
        return FAILED
    ha1 = _ha1(f"{state.username}:{p['realm']}:{state.effective_password}")
    ha2 = _h(f"{method}:{p['uri']}")
    if p.get("qop"):
        if p["qop"] != "auth" or "nc" not in p or "cnonce" not in p:
            return FAILED
        expected = _h(f"{ha1}:{p['nonce']}:{p['nc']}:{p['cnonce']}:auth:{ha2}")
    else:  # RFC 2069 clients
        expected = _h(f"{ha1}:{p['nonce']}:{ha2}")
    if not hmac.compare_digest(expected, p["response"].lower()):
        return FAILED
    age = _nonce_age(state, p["nonce"])
    if age is None or age > NONCE_TTL_S:
        return STALE  # the password was right; only the nonce is old or not ours
    if state.has("nonce-once"):
        used = state._sessions.setdefault("used_nonces", set())
        if p["nonce"] in used:
            return REUSED
        if len(used) >= USED_NONCES_KEPT:
            used.clear()
        used.add(p["nonce"])
    return OK


def _check_basic(state: DeviceState, value: str) -> str:
    try:
        user, sep, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
    except (ValueError, UnicodeDecodeError):
        return FAILED
    ok = sep and hmac.compare_digest(user.encode(), state.username.encode()) and hmac.compare_digest(
        password.encode(), state.effective_password.encode())
    return OK if ok else FAILED


def check(state: DeviceState, method: str, path: str, authorization: str | None) -> str:
    """Authenticate one request; counts failed logins. Returns ok / missing / failed / stale / locked."""
    if state.is_locked():
        return LOCKED
    if not authorization:
        return MISSING
    scheme, _, value = authorization.strip().partition(" ")
    scheme = scheme.lower()
    if scheme == "digest" and state.auth == "digest":
        outcome = _check_digest(state, method, path, value)
    elif scheme == "basic" and state.auth == "basic":
        outcome = _check_basic(state, value)
    else:  # the wrong scheme is a failed login on a real device too
        outcome = FAILED
    if outcome == OK:
        state.record_login(True)
    elif outcome in (FAILED, REUSED):
        state.record_login(False)
        if state.is_locked():
            return LOCKED
    return outcome

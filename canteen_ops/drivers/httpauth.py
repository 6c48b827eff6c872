"""Client side of HTTP Digest (RFC 7616; RFC 2069 when the device offers no qop) and Basic (RFC 7617): reading a
401's challenges (which scheme, stale or not) and answering them.

The Hikvision/Dahua channel (drivers/http.py) answers challenges with these. They send what httpx.DigestAuth and
httpx.BasicAuth send, field for field and in the same order (tests/drivers/test_httpauth.py compares them), so
devices see the same requests as before; the lab's server side is tested against httpx's own classes. Why not
httpx's: its auth flows take an httpx.Request, and building one parses the URL character by character — ~80 µs
of the ~380 µs of CPU an exchange with a Dahua NVR costs, on ~5,600 of a 1,000-device fleet check's exchanges —
and DeviceHTTP drives challenge reuse itself anyway. When a challenge is reused or renewed is DeviceHTTP's
business; this module answers one.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from typing import NamedTuple

from canteen_ops.drivers.base import ProtocolError

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


# auth-param = token "=" ( token / quoted-string ), comma-separated (RFC 7235 §2.1); a quoted string may hold
# commas and backslash escapes (quoted-pair).
_PARAM = re.compile(r'([^\s=,]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,]*)')
_QUOTED_PAIR = re.compile(r"\\(.)")


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Challenge(NamedTuple):
    realm: str
    nonce: str
    algorithm: str  # as the device spelled it (echoed back)
    opaque: str | None
    qop: str | None  # "auth", or None for an RFC 2069 device


def _params(text: str) -> dict[str, str]:
    """The auth-params after a challenge's scheme, by lower-case name, quoted strings unquoted."""
    fields: dict[str, str] = {}
    for m in _PARAM.finditer(text):
        value = m.group(2).strip()
        if len(value) > 1 and value[0] == value[-1] == '"':
            value = _QUOTED_PAIR.sub(r"\1", value[1:-1])
        fields[m.group(1).lower()] = value
    return fields


def pick_scheme(challenges: list[str]) -> str | None:
    """'digest' or 'basic' from a 401's WWW-Authenticate headers; Digest wins when both are offered."""
    schemes = [c.strip().split(" ", 1)[0].lower() for c in challenges if c.strip()]
    if "digest" in schemes:
        return "digest"
    if "basic" in schemes:
        return "basic"
    return None


def challenge_is_stale(challenges: list[str]) -> bool:
    """RFC 7616: a server that rejects an expired nonce says stale=true in the new challenge."""
    for c in challenges:
        scheme, _, rest = c.strip().partition(" ")
        if scheme.lower() == "digest" and _params(rest).get("stale", "").lower() == "true":
            return True
    return False


def parse_challenge(header: str) -> Challenge:
    """One `Digest realm="…", nonce="…", …` challenge; ProtocolError when it cannot be answered."""
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() != "digest":
        raise ProtocolError(f"not a Digest challenge: {header[:60]!r}")
    fields = _params(rest)
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


def first_digest(challenges: list[str]) -> Challenge:
    """The first Digest challenge among a 401's WWW-Authenticate headers."""
    for header in challenges:
        if header.strip().lower().startswith("digest "):
            return parse_challenge(header)
    raise ProtocolError("401 without a Digest challenge")


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


__all__ = ["Challenge", "Digest", "basic", "challenge_is_stale", "first_digest", "parse_challenge",
           "pick_scheme"]

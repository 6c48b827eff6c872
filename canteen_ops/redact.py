"""Keep secrets out of output, logs and the maintenance log."""

from __future__ import annotations

import functools
import re
from typing import Any

# Keys whose values are secrets. Bare "pass" is left out on purpose: it would also hide "pass_rate", "passed".
SECRET_KEYS = re.compile(r"password|passwd|passphrase|pwd|secret|token|authorization|cookie|api_?key|"
                         r"credential_value", re.I)
# Every pattern here sees foreign text (device answers, notes, upstream replies) and must stay linear-time: a
# regex that can start at every position of a long run and scan to its end is quadratic (`[a-z][a-z0-9+.-]*://`
# on a 60,000-character model string took a minute). URLs are found from their "://" instead (_mask_urls).
_SCHEME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-")
# "://" user ":" password "@"; neither part can hold a "/", so a scan ends before the next "://".
_URL_TAIL = re.compile(r"://[^:/@\s]*+:(?P<pw>[^@/\s]*+)@")
# `password=hunter2`, `pwd: hunter2`, `"password": "hunter2"` inside free text (device error bodies, URLs).
INLINE_SECRET = re.compile(r"(?P<key>\b(?:password|passwd|pwd)\"?\s*+[=:]\s*+\"?)(?P<value>[^\s\"&,;}]++)",
                           re.I)
MASK = "***"

# Every password this process has resolved (Credentials.resolve registers them): masked wherever they appear,
# even in free text such as a device's error body that echoes it.
_KNOWN: set[str] = set()
# The known secrets by their first three characters, for the state of _KNOWN it was built from (the set only
# grows, so its identity and size name that state). A run may know a password per device and masks every
# string it logs or prints: with 1,000 known, trying each with str.replace cost ~80 us a string, looking up the
# string's 3-grams ~18 us (a secret in the string has its first 3-gram there).
_BY_PREFIX: tuple[tuple[int, int], dict[str, list[str]]] = ((0, -1), {})


def remember_secret(value: str | None) -> None:
    if value and len(value) >= 3:
        _KNOWN.add(value)


def redact_text(s: str, secrets: tuple[str, ...] = ()) -> str:
    if not secrets and len(s) <= _CACHED_LEN:
        return _redacted(s, id(_KNOWN), len(_KNOWN))
    return _redact_now(s, secrets)


_CACHED_LEN = 512  # longer strings (a device's error body, a 1 MB note) are rare and would fill the cache's memory


@functools.lru_cache(maxsize=8192)
def _redacted(s: str, _known_id: int, _known_size: int) -> str:
    """redact_text without extra secrets, remembered: most strings a run logs recur (its run id, school and
    device ids, check names, statuses: ~9 strings a result, 5,400 results on a 1,000-device check). The state of
    the known secrets is part of the key, so a secret learnt later is never missed."""
    return _redact_now(s)


def _redact_now(s: str, secrets: tuple[str, ...] = ()) -> str:
    return mask_known(INLINE_SECRET.sub(lambda m: f"{m['key']}{MASK}", s), secrets)


def mask_known(s: str, secrets: tuple[str, ...] = ()) -> str:
    """Mask URL passwords and every known secret value, nothing else: safe on any output (JSON stays JSON,
    a fault named `wrong-password: true` stays readable)."""
    s = _mask_urls(s)
    found = _known_in(s) if _KNOWN else []
    # longest first, so that a secret containing another is masked whole
    for secret in sorted({*found, *(x for x in secrets if x and len(x) >= 3)}, key=len, reverse=True):
        s = s.replace(secret, MASK)
    return s


def _mask_urls(s: str) -> str:
    """`scheme://user:password@` → `scheme://user:***@`, in time linear in len(s): the regex starts only at a
    "://" and its userinfo holds no "/" (so no scan crosses the next "://"); the scheme is read backwards from
    there, over a run of scheme characters that holds no ":"."""
    parts: list[str] = []
    done = 0  # s[:done] is in parts
    for m in _URL_TAIL.finditer(s):
        start = at = m.start()
        while start > done and s[start - 1] in _SCHEME_CHARS:
            start -= 1
        while start < at and not s[start].isalpha():
            start += 1  # a scheme starts with a letter: "1http://" is "http://"
        if start < at:
            parts += [s[done:m.start("pw")], MASK, "@"]
            done = m.end()
    return "".join(parts) + s[done:] if parts else s


def _known_in(s: str) -> list[str]:
    """The known secrets that may occur in s: those whose first three characters do."""
    global _BY_PREFIX
    state, index = _BY_PREFIX
    if state != (id(_KNOWN), len(_KNOWN)):
        index = {}
        for secret in _KNOWN:
            index.setdefault(secret[:3], []).append(secret)
        _BY_PREFIX = ((id(_KNOWN), len(_KNOWN)), index)
    out: list[str] = []
    if len(index) * 64 < len(s):  # a long text and few secrets: a substring search per prefix is cheaper
        grams = [g for g in index if g in s]
    else:
        grams = list({s[i:i + 3] for i in range(len(s) - 2)} & index.keys())
    for gram in grams:
        out += index[gram]
    return out


def redact(value: Any, secrets: tuple[str, ...] = ()) -> Any:
    """Recursively mask secret-looking keys, URL passwords and any known secret value."""
    if isinstance(value, dict):
        return {k: (MASK if isinstance(k, str) and SECRET_KEYS.search(k) and v not in (None, "")
                    else redact(v, secrets)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact(v, secrets) for v in value)
    if isinstance(value, str):
        return redact_text(value, secrets)
    return value


class RedactingStream:
    """A text stream that masks secrets in everything written through it: the second layer behind the
    redaction of what commands build, for whatever path (a device's error body echoing a password, a library's
    message) reaches the screen. Everything else is delegated to the wrapped stream."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(mask_known(text) if isinstance(text, str) else text)
        return len(text)

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)

"""Numbers in device answers (XML elements, Dahua key=value), read strictly.

Python's float() and int() accept more than a device should send and fail in ways a parser does not expect:
float("1e999") is inf and int(inf) raises OverflowError; float("١٢") is 12.0 (Unicode digits); int("²") raises
though "²".isdigit() is True; int() of more than 4,300 digits raises. A field that is not a number at all keeps
the parsers' old leniency (None: "not given"); a number we cannot use raises ProtocolError, so the check that
asked is `unknown` with the reason, never an internal error.
"""

from __future__ import annotations

import math
import re

from canteen_ops.drivers.base import ProtocolError

_ASCII_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,3})?")
MAX_CHARS = 40
LIMIT = 1e18  # far beyond any count, size in bytes or id a device reports; fits a 64-bit integer


def device_float(text: str | None, what: str) -> float | None:
    """A finite number from a device's text; None if the text is empty or not a number at all."""
    if text is None:
        return None
    v = text.strip()
    if not v:
        return None
    if len(v) <= MAX_CHARS and _ASCII_NUMBER.fullmatch(v):
        f = float(v)
        if math.isfinite(f) and abs(f) < LIMIT:
            return f
        raise ProtocolError(f"{what}: number out of range: {v[:MAX_CHARS]!r}")
    looks_numeric = (_ASCII_NUMBER.fullmatch(v[:MAX_CHARS * 4]) is not None  # digits too many to be a number
                     or any(c.isnumeric() and not c.isascii() for c in v)  # "²", "١٢"
                     or v.lstrip("+-").lower() in ("inf", "infinity", "nan"))
    if looks_numeric:
        raise ProtocolError(f"{what}: unreadable number: {v[:MAX_CHARS]!r}")
    return None


def device_int(text: str | None, what: str) -> int | None:
    """device_float, truncated towards zero as int(float(text)) did."""
    f = device_float(text, what)
    return None if f is None else int(f)

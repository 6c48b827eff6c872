"""Dahua CGI bodies: `key=value` lines → a flat dict and a nested tree.

    table.General.LockLoginTimes=5          → {"table": {"General": {"LockLoginTimes": "5"}}}
    list.info[0].Detail[1].Path=/dev/sda1   → {"list": {"info": [{"Detail": [None, {"Path": "/dev/sda1"}]}]}}
    TimeSection[0][1]=1 00:00:00-24:00:00   → {"TimeSection": [[None, "1 00:00:00-24:00:00"]]}

Lines split on the first '=' only (values may contain '='). Lines are CRLF or LF. A line that is not
key=value (garbage, a truncated tail) or text that is not UTF-8 is a ProtocolError. A body whose first line is
`Error` (`Error\\r\\nBad Request!`, `Error\\nAuthorization Failed!`) is an error, raised as DahuaError.
Indices are kept as positions (channel 3 stays at [3]); an absurd index from a hostile device is refused rather
than allocating a huge list.
"""

from __future__ import annotations

import re
from typing import Any

from canteen_ops.drivers.base import NotSupported, ProtocolError

MAX_INDEX = 4096  # channels, disks, items per page: real devices stay far below this
MAX_LINES = 200_000

_SEGMENT = re.compile(r"([^.\[\]]*)((?:\[\d+\])*)")
_INDEX = re.compile(r"\[(\d+)\]")


class DahuaError(ProtocolError):
    """The device answered with an `Error` body."""

    def __init__(self, message: str, detail: str):
        super().__init__(message)
        self.detail = detail


class DahuaPermissionDenied(DahuaError, NotSupported):
    """`Error\\nAuthorization Failed!`: our user lacks the right for this item (not a login failure)."""


def lines(body: str) -> list[str]:
    out = [ln.strip() for ln in body.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    out = [ln for ln in out if ln]
    if len(out) > MAX_LINES:
        raise ProtocolError(f"key=value answer has {len(out)} lines (limit {MAX_LINES})")
    return out


def check_error(body: str) -> None:
    """Raise DahuaError for `Error ...` bodies; return quietly otherwise."""
    _check_error_lines(lines(body))


def _check_error_lines(ls: list[str]) -> None:
    if not ls:
        return
    first = ls[0]
    if first == "Error" or first.startswith("Error:") or first.startswith("Error "):
        detail = " ".join([first.partition(":")[2].strip()] + ls[1:]).strip() or first
        cls = DahuaPermissionDenied if "authorization failed" in detail.lower() else DahuaError
        raise cls(f"device answered Error: {detail}", detail)


def is_ok(body: str) -> bool:
    """Write actions answer a bare `OK`."""
    ls = lines(body)
    return bool(ls) and ls[0].upper() == "OK"


def parse_flat(body: str) -> dict[str, str]:
    """Ordered key → value; raises DahuaError for error bodies.

    Every line must be `key=value` (a bare `OK` is accepted): a line without '=' or with control characters
    means a truncated or garbled answer, and a partial answer must not pass for a complete one.
    """
    ls = lines(body)
    _check_error_lines(ls)
    garbled = _CONTROL.search(body) is not None  # one scan of the body; the line is looked for only then
    out: dict[str, str] = {}
    for ln in ls:
        key, sep, value = ln.partition("=")
        key = key.strip()
        if not sep or not key or (garbled and _CONTROL.search(ln)):
            if ln.upper() == "OK" and not out:
                continue
            raise ProtocolError(f"garbled key=value answer (line {ln[:40]!r})")
        out[key] = value.strip()
    return out


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffd]")


def _split_key(key: str) -> list[str | int]:
    """'list.info[0].Detail[1].Path' → ['list', 'info', 0, 'Detail', 1, 'Path']."""
    parts: list[str | int] = []
    for seg in key.split("."):
        m = _SEGMENT.fullmatch(seg)
        if not m:
            raise ProtocolError(f"unreadable key {key[:80]!r}")
        name, idx = m.group(1), m.group(2)
        if name:
            parts.append(name)
        for i in _INDEX.findall(idx):
            n = int(i)
            if n > MAX_INDEX:
                raise ProtocolError(f"index {n} in key {key[:80]!r} exceeds {MAX_INDEX}")
            parts.append(n)
    if not parts:
        raise ProtocolError(f"unreadable key {key[:80]!r}")
    return parts


def _container_for(nxt: str | int) -> Any:
    return [] if isinstance(nxt, int) else {}


def nest(flat: dict[str, str]) -> dict[str, Any]:
    """Flat keys → nested dicts/lists. A key that is both a value and a parent keeps its value under ''."""
    root: dict[str, Any] = {}
    for key, value in flat.items():
        parts = _split_key(key)
        node: Any = root
        for here, nxt in zip(parts, parts[1:]):
            node = _descend(node, here, nxt)
        _assign(node, parts[-1], value)
    return root


def _descend(node: Any, here: str | int, nxt: str | int) -> Any:
    if isinstance(here, int):
        if not isinstance(node, list):
            raise ProtocolError("index on a non-list")
        while len(node) <= here:
            node.append(None)
        child = node[here]
        if child is None or isinstance(child, str):
            fresh = _container_for(nxt)
            if isinstance(child, str) and isinstance(fresh, dict):
                fresh[""] = child
            node[here] = child = fresh
    else:
        if not isinstance(node, dict):
            raise ProtocolError("name on a non-dict")
        child = node.get(here)
        if child is None or isinstance(child, str):
            fresh = _container_for(nxt)
            if isinstance(child, str) and isinstance(fresh, dict):
                fresh[""] = child
            node[here] = child = fresh
    if isinstance(nxt, int) and not isinstance(child, list):
        raise ProtocolError(f"conflicting shapes under {here!r}")
    if isinstance(nxt, str) and not isinstance(child, dict):
        raise ProtocolError(f"conflicting shapes under {here!r}")
    return child


def _assign(node: Any, last: str | int, value: str) -> None:
    if isinstance(last, int):
        if not isinstance(node, list):
            raise ProtocolError("index on a non-list")
        while len(node) <= last:
            node.append(None)
        if isinstance(node[last], dict):
            node[last][""] = value
        else:
            node[last] = value
    else:
        if isinstance(node.get(last), dict):
            node[last][""] = value
        else:
            node[last] = value


def parse(body: str) -> dict[str, Any]:
    """Body → nested tree (see the module docstring)."""
    return nest(parse_flat(body))


def decode(raw: bytes) -> str:
    """Dahua answers are UTF-8 (names may be Chinese); anything else is a garbled answer."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"answer is not UTF-8 text (byte {exc.start})") from None

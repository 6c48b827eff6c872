"""Tests and benchmarks talk to loopback only (127.0.0.0/8): none of their files, recorded device answers
included, names a multicast or broadcast address that code could pick up and send to."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# IPv4 multicast groups, the limited broadcast, a /24's broadcast, IPv6 multicast (ff0X::)
_MULTICAST_OR_BROADCAST = re.compile(
    rb"(?<![\d.])(?:(?:22[4-9]|23\d)(?:\.\d{1,3}){3}|255\.255\.255\.255|\d{1,3}(?:\.\d{1,3}){2}\.255)(?![\d.])"
    rb"|\bff0[0-9a-f]::", re.I)


def test_no_multicast_or_broadcast_address_in_tests_or_benchmarks():
    found = []
    for top in ("tests", "bench"):
        for path in sorted((ROOT / top).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                for m in _MULTICAST_OR_BROADCAST.finditer(path.read_bytes()):
                    found.append(f"{path.relative_to(ROOT)}: {m.group().decode()}")
    assert found == []

"""Helpers for inventory tests: write YAML, load it, and locate the text a problem must point at."""

from __future__ import annotations

import textwrap
from pathlib import Path

from canteen_ops.errors import InvalidFile, Problem
from canteen_ops.inventory.loader import load_inventory

# A small valid inventory used as the base of many tests. Keep line numbers stable: tests locate
# text by searching for it, not by counting.
BASE = """\
version: 1
credentials:
  hik: {username: admin, password_env: HIK_PW}
  dahua: {username: admin, password_file: /run/secrets/dahua}
defaults:
  credentials: hik
  timeout: 5
  working_hours: {days: [mon, tue, wed, thu, fri], start: "08:00", end: 18:00}
  policy: {clock_warn_s: 4, required_areas: [烹饪区, 专间]}
  tags: [canteen]
groups:
  dahua-sites:
    credentials: dahua
    timeout: 3
    tags: [dahua-estate]
    policy: {retention_warn_days: 20}
schools:
  - id: s1
    name: 西城区实验小学
    district: 西城区
    devices:
      - {id: s1-nvr, kind: nvr, vendor: hikvision, host: 10.0.1.10, area: 监控室}
      - {id: s1-cam-1, kind: camera, vendor: hikvision, host: 10.0.1.21, area: 烹饪区, nvr: s1-nvr, nvr_channel: 1}
      - {id: s1-cam-2, kind: camera, vendor: onvif, host: cam2.s1.example, area: 专间, nvr: s1-nvr, nvr_channel: 2, tags: [cold-room]}
  - id: s2
    name: 海淀区育才中学
    group: dahua-sites
    devices:
      - {id: s2-nvr, kind: nvr, vendor: dahua, host: 10.0.2.10}
      - {id: s2-cam-1, kind: camera, vendor: dahua, host: 10.0.2.21, area: 烹饪区, nvr: s2-nvr, nvr_channel: 1}
"""


def write(tmp_path: Path, text: str, name: str = "inventory.yaml") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text), encoding="utf-8")
    return p


def problems_of(tmp_path: Path, text: str) -> list[Problem]:
    p = write(tmp_path, text)
    try:
        load_inventory(p)
    except InvalidFile as exc:
        return exc.problems
    raise AssertionError("inventory unexpectedly valid")


def pos(text: str, needle: str, occurrence: int = 1) -> tuple[int, int]:
    """1-based (line, column) of the n-th occurrence of needle in text."""
    text = textwrap.dedent(text)
    idx = -1
    for _ in range(occurrence):
        idx = text.index(needle, idx + 1)
    line = text.count("\n", 0, idx) + 1
    col = idx - (text.rfind("\n", 0, idx) + 1) + 1
    return line, col


def one_problem(tmp_path: Path, text: str) -> Problem:
    probs = problems_of(tmp_path, text)
    assert len(probs) == 1, "\n".join(map(str, probs))
    return probs[0]


def assert_problem(p: Problem, text: str, needle: str, path: str, message: str, occurrence: int = 1,
                   shift: int = 0) -> None:
    """The problem points at `needle` (its n-th occurrence, `shift` characters in) with this path and message."""
    line, col = pos(text, needle, occurrence)
    col += shift
    assert (p.line, p.column) == (line, col), f"{p} — expected at {line}:{col} ({needle!r})"
    assert p.path == path, p
    assert message in p.message, p

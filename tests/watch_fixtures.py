"""Helpers for the watch/notify tests: a lab inventory with notify targets and a duty roster."""

from __future__ import annotations

from pathlib import Path

import yaml

from canteen_ops.lab.fleet import DUTY_ROSTER as ROSTER


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def inventory_with(base: Path, target: Path, *, notify: list[dict] | None = None, roster: list | None = ROSTER,
                   schools: tuple[str, ...] | None = None, policy: dict | None = None) -> Path:
    data = yaml.safe_load(Path(base).read_text(encoding="utf-8"))
    if notify is not None:
        data.setdefault("settings", {})["notify"] = notify
    if roster is not None:
        data["roster"] = roster
    if schools is not None:
        data["schools"] = [s for s in data["schools"] if s["id"].split("-")[0] in schools]
    if policy:
        data.setdefault("defaults", {}).setdefault("policy", {}).update(policy)
    target.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return target

"""Test support for recorded devices: the corpus folders, a replay server per test, a Device pointing at it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from canteen_ops.inventory.model import Credentials, Device, Policy
from canteen_ops.lab.replay import REPLAY_PASSWORD, REPLAY_USER, RecordedDevice, ReplayServer, corpus_folders, load

CORPUS = Path(__file__).resolve().parent / "fixtures" / "devices"


def corpus() -> list[Path]:
    return corpus_folders(CORPUS)


def folder_id(folder: Path) -> str:
    return f"{folder.parent.name}/{folder.name}"


def device_for(rec: RecordedDevice, server: ReplayServer, device_id: str = "replayed") -> Device:
    """The inventory entry a technician would write for this device (a DVR is an `nvr` to the inventory; a
    firmware that challenges with Basic over plain HTTP needs `auth: basic`)."""
    return Device(id=device_id, kind="camera" if rec.kind == "camera" else "nvr", vendor=rec.vendor,
                  host=server.host, port=server.port, rtsp_port=554, https=False, school_id="s1",
                  credentials=Credentials("replay", REPLAY_USER, password=REPLAY_PASSWORD), timeout=5.0,
                  policy=Policy(), auth="basic" if rec.auth == "basic" else None)


@contextlib.contextmanager
def replayed(source: Path | RecordedDevice, host: str = "127.0.0.1") -> Iterator[tuple[RecordedDevice, ReplayServer,
                                                                                         Device]]:
    rec = source if isinstance(source, RecordedDevice) else load(source)
    with ReplayServer(rec, host=host) as server:
        yield rec, server, device_for(rec, server)


def replay_inventory(tmp_path: Path, served: list[tuple[RecordedDevice, ReplayServer]]):
    """An inventory on disk, as a technician writes it, of the replayed devices: ids r01, r02, ... in the order
    given."""
    import yaml

    from canteen_ops.inventory.loader import load_inventory

    secret = tmp_path / "replay.password"
    secret.write_text(REPLAY_PASSWORD + "\n")
    secret.chmod(0o600)
    devices = [{"id": f"r{i:02d}", "kind": "camera" if rec.kind == "camera" else "nvr", "vendor": rec.vendor,
                "host": server.host, "port": server.port, "credentials": "replay", "model": rec.model,
                **({"auth": "basic"} if rec.auth == "basic" else {})}
               for i, (rec, server) in enumerate(served, 1)]
    inv_path = tmp_path / "inventory.yaml"
    inv_path.write_text(yaml.safe_dump({
        "version": 1, "credentials": {"replay": {"username": REPLAY_USER, "password_file": str(secret)}},
        "schools": [{"id": "corpus", "name": "corpus", "devices": devices}]}, allow_unicode=True))
    return load_inventory(inv_path)


def run_replayed_checks(tmp_path: Path, served: list[tuple[RecordedDevice, ReplayServer]], checks: list[str]):
    """`check` (run_checks) over replayed devices (see replay_inventory). Returns the check results."""
    from canteen_ops.checks.run import run_checks

    inv = replay_inventory(tmp_path, served)
    return run_checks(inv.devices, inv, checks, deadline_s=60, progress=False).results


# --- the corpus table in docs/drivers.md (regenerate: python -m tests.replay_support) --------------------------------
TABLE_GETTERS = ("facts", "clock", "storage", "channels", "streams", "settings")


def _cell(getter: str, value) -> str:
    if getter == "facts":
        return f"{value.model} · {value.firmware or 'firmware ?'}"
    if getter == "clock":
        return f"{value.device_utc:%Y-%m-%d} UTC, {value.mode or 'mode ?'}" if value.device_utc else "no time"
    if getter == "storage":
        return f"{len(value)} disk(s) {'/'.join(d.raw_status or '?' for d in value)}" if value else "no disk"
    if getter == "channels":
        known = [c for c in value if c.online is not None]
        return f"{len(value)} ({sum(c.online for c in known)} online, {len(value) - len(known)} unknown)"
    if getter == "streams":
        return f"{len(value)} stream(s)"
    return f"{len(value)} sections"


def corpus_table() -> str:
    """Markdown: every model of the corpus, what each getter reads from its recordings (n/s: not supported — the
    recording has no answer for it; ✗: a known misreading, see the getter suite's KNOWN)."""
    from canteen_ops.drivers.base import NotSupported
    from canteen_ops.drivers.registry import driver_class
    from tests.drivers.test_getters_corpus import KNOWN

    rows = ["| vendor / model | kind | " + " | ".join(TABLE_GETTERS) + " |",
            "|---|---|" + "---|" * len(TABLE_GETTERS)]
    for folder in corpus():
        with replayed(folder) as (rec, _server, device):
            cells = []
            for getter in TABLE_GETTERS:
                if (folder_id(folder), getter) in KNOWN:
                    cells.append("✗ misread (KNOWN)")
                    continue
                driver = driver_class(rec.vendor)(device, REPLAY_PASSWORD, timeout=5.0)
                try:
                    cells.append(_cell(getter, getattr(driver, getter)()).replace("|", "/"))
                except NotSupported:
                    cells.append("n/s")
                finally:
                    driver.close()
        rows.append(f"| {folder_id(folder)} ({rec.model}) | {rec.kind} | " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    import sys

    sys.stdout.write(corpus_table())

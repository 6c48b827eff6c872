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
    """The inventory entry a technician would write for this device (a DVR is an `nvr` to the inventory)."""
    return Device(id=device_id, kind="camera" if rec.kind == "camera" else "nvr", vendor=rec.vendor,
                  host=server.host, port=server.port, rtsp_port=554, https=False, school_id="s1",
                  credentials=Credentials("replay", REPLAY_USER, password=REPLAY_PASSWORD), timeout=5.0,
                  policy=Policy())


@contextlib.contextmanager
def replayed(source: Path | RecordedDevice, host: str = "127.0.0.1") -> Iterator[tuple[RecordedDevice, ReplayServer,
                                                                                         Device]]:
    rec = source if isinstance(source, RecordedDevice) else load(source)
    with ReplayServer(rec, host=host) as server:
        yield rec, server, device_for(rec, server)

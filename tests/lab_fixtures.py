"""Pytest plugin: a small device lab per test session, and safe per-test fault injection.

    def test_something(lab, lab_faults, lab_env):
        cam = lab.device("s001-cam01")           # the DeviceState (read it, assert against it)
        user, pw = lab.credentials(cam.id)
        lab_faults.set("s001-cam01", "clock-drift", "+120")   # cleared again after the test
        ... httpx.get(lab.url(cam.id) + "/ISAPI/System/time", auth=httpx.DigestAuth(user, pw)) ...
        # lab_env exported CANTEEN_OPS_INVENTORY=lab.inventory for CLI tests

Fleet: three schools — s001 Hikvision (NVR + 2 cameras + 1 ONVIF camera), s002 Dahua (same shape),
s003 ONVIF (NVR + 3 cameras). Each pytest worker gets its own random 127.x.y.0/24 block, so parallel runs
(xdist, other checkouts) never collide.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from pathlib import Path

import pytest

LAB_SCHOOLS, LAB_CAMERAS = 3, 3
LAB_VENDORS = ("hikvision", "dahua", "onvif")


@dataclass
class LabHandle:
    thread: object  # canteen_ops.lab.service.LabThread
    fleet: object  # canteen_ops.lab.fleet.Fleet
    inventory: Path
    directory: Path

    @property
    def devices(self) -> dict:
        return {d.id: d for d in self.fleet.devices}

    def device(self, device_id: str):
        return self.fleet.device(device_id)

    def first(self, vendor: str, kind: str):
        """The first device of a vendor and kind, e.g. lab.first('hikvision', 'nvr')."""
        return next(d for d in self.fleet.devices if d.vendor == vendor and d.kind == kind)

    def credentials(self, device_id: str) -> tuple[str, str]:
        d = self.device(device_id)
        return d.username, d.password

    def url(self, device_id: str) -> str:
        d = self.device(device_id)
        return f"http://{d.host}:{d.http_port}"

    def set_fault(self, device: str, fault: str, value: str | None = None) -> list[str]:
        return self.thread.set_fault(device, fault, value)

    def clear_fault(self, device: str, fault: str | None = None) -> list[str]:
        return self.thread.clear_fault(device, fault)


def _start_lab(directory: Path, rtsp_cache: Path):
    from canteen_ops.lab.fleet import build_fleet, write_inventory
    from canteen_ops.lab.service import LabError, LabThread

    last: Exception | None = None
    for _attempt in range(5):
        rng = random.Random()
        first = f"127.{rng.randrange(100, 250)}.{rng.randrange(1, 250)}.1"
        fleet = build_fleet(LAB_SCHOOLS, LAB_CAMERAS, LAB_VENDORS, first_address=first, seed=7)
        try:
            thread = LabThread(fleet, rtsp_cache_dir=rtsp_cache).start()
        except LabError as exc:  # address block taken by a parallel run: pick another
            last = exc
            continue
        # Encode the healthy pictures before any test probes a stream (a cold cache costs seconds per loop),
        # and the fault pictures in the background, so fault tests see their picture at once.
        thread.call(thread.service.warm_streams, timeout=300.0)
        asyncio.run_coroutine_threadsafe(thread.service.warm_fault_pictures(), thread._loop)
        return thread, fleet, write_inventory(fleet, directory)
    raise RuntimeError(f"could not start the test lab: {last}")


@pytest.fixture(scope="session")
def lab(tmp_path_factory, request):
    """A running lab fleet (session-scoped). Do not set faults on it directly; use `lab_faults`."""
    directory = tmp_path_factory.mktemp("lab")
    # Encoded RTSP picture loops survive between runs in pytest's cache dir (a 1080p encode takes seconds).
    cache = getattr(request.config, "cache", None)
    rtsp_cache = cache.mkdir("canteen-lab-rtsp-loops") if cache is not None else directory / "rtsp-loops"
    thread, fleet, inventory = _start_lab(directory, rtsp_cache)
    try:
        yield LabHandle(thread, fleet, inventory, directory)
    finally:
        thread.stop()


SAVED_FIELDS = ("firmware", "model", "name", "timezone", "ntp_server", "record_mode", "retention_days", "users", "channels",
                "disks", "upgrade", "created", "auth")


@dataclass
class FaultSetter:
    """Per-test changes to lab devices; `restore()` (run by the fixture) puts every touched device back."""

    lab: LabHandle
    saved: dict[str, dict] = field(default_factory=dict)

    def touch(self, device: str) -> list[str]:
        """Remember devices (glob) as they are now; call before changing them any other way (PUT, restore...)."""
        import copy

        ids = []
        for d in self.lab.fleet.match(device):
            if d.id not in self.saved:
                self.saved[d.id] = {f: copy.deepcopy(getattr(d, f)) for f in SAVED_FIELDS}
            ids.append(d.id)
        return ids

    def set(self, device: str, fault: str, value: str | None = None) -> list[str]:
        self.touch(device)
        return self.lab.set_fault(device, fault, value)

    def clear(self, device: str, fault: str | None = None) -> list[str]:
        return self.lab.clear_fault(device, fault)

    def setting(self, device: str, key: str, value: str) -> list[str]:
        """Change a device setting (config drift) for this test."""
        self.touch(device)
        return self.lab.thread.set_setting(device, key, value)

    def restore(self) -> None:
        for device_id, fields_ in self.saved.items():
            d = self.lab.device(device_id)
            for name, value in fields_.items():
                if name == "channels":  # keep the channel objects (the lab service holds references to them)
                    for current, old in zip(d.channels, value):
                        current.__dict__.update(old.__dict__)
                else:
                    setattr(d, name, value)
            d._sessions.clear()
            self.lab.clear_fault(device_id)  # all faults, the login counter and any lock; resyncs sockets/streams
        self.saved.clear()


@pytest.fixture
def lab_faults(lab):
    """Set faults and settings for one test; everything touched is cleared afterwards."""
    setter = FaultSetter(lab)
    try:
        yield setter
    finally:
        setter.restore()


@pytest.fixture
def lab_env(lab, monkeypatch):
    """CANTEEN_OPS_INVENTORY points at the lab's inventory for this test."""
    monkeypatch.setenv("CANTEEN_OPS_INVENTORY", str(lab.inventory))
    return lab

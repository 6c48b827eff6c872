"""A fake Driver (a real subclass of the interface) and a small loopback fleet for unit-testing the checks.

Each device gets a real listening TCP socket on 127.0.0.1 (so the reachable check connects for real); the
getters answer from a FakeState that a test edits to inject faults.
"""

from __future__ import annotations

import datetime as dt
import socket
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from canteen_ops.drivers.base import (AuthFailed, Channel, Clock, Disk, Driver, Facts, RecordingSpan, auth_guard)
from canteen_ops.lab.state import without

UTC = dt.timezone.utc
AREAS = ["加工区", "烹饪区", "专间", "洗消间", "备餐区", "留样区"]


@dataclass
class FakeState:
    model: str = "DS-2CD2386G2-IU"
    serial: str = "SN0001"
    firmware: str = "V5.7.18 build 240826"
    device_type: str = "IPCamera"
    drift_s: float = 0.0
    device_time: dt.datetime | None = None  # overrides drift (clock reset)
    ntp_servers: list[str] = field(default_factory=lambda: ["127.0.0.1"])
    ntp_enabled: bool | None = True
    disks: list[Disk] = field(default_factory=lambda: [Disk("1", "ok", "ok", 3815447.0, 1204.0)])
    channels: list[Channel] = field(default_factory=list)
    video_inputs: list[Channel] | None = None  # a camera's sensors (None: the driver default, one input)
    retention_days: float = 45.0
    holes: dict[int, list[tuple[dt.datetime, dt.datetime]]] = field(default_factory=dict)
    errors: dict[str, Exception] = field(default_factory=dict)  # getter → exception to raise
    login_attempts: int = 0
    calls: list[str] = field(default_factory=list)


class FakeDriver(Driver):
    vendor = "fake"

    def __init__(self, device, password: str, *, state: FakeState, timeout: float | None = None):
        super().__init__(device, password, timeout=timeout)
        self.state = state
        self.closed = False

    def _maybe_fail(self, name: str) -> None:
        self.state.calls.append(name)
        exc = self.state.errors.get(name)
        if exc is not None:
            raise exc

    def login(self) -> None:
        self.state.login_attempts += 1
        try:
            self._maybe_fail("login")
        except AuthFailed as exc:
            auth_guard.record(self.device.id, exc)
            raise

    def facts(self) -> Facts:
        self._maybe_fail("facts")
        s = self.state
        return Facts("fake", s.model, s.serial, s.firmware, s.device_type, "00:11:22:33:44:55")

    def clock(self) -> Clock:
        self._maybe_fail("clock")
        s = self.state
        now = dt.datetime.now(UTC)
        dev = s.device_time or now + dt.timedelta(seconds=s.drift_s)
        return Clock(dev, now, "CST-8:00:00", "NTP" if s.ntp_enabled else "manual", list(s.ntp_servers),
                     s.ntp_enabled)

    def storage(self) -> list[Disk]:
        self._maybe_fail("storage")
        return list(self.state.disks)

    def channels(self) -> list[Channel]:
        self._maybe_fail("channels")
        return list(self.state.channels)

    def recordings(self, channel, start, end) -> list[RecordingSpan]:
        self._maybe_fail("recordings")
        now = dt.datetime.now(UTC)
        spans = without([(now - dt.timedelta(days=self.state.retention_days), now)],
                        self.state.holes.get(channel, []))
        return [RecordingSpan(channel, max(s, start), min(e, end)) for s, e in spans if e > start and s < end]

    def video_inputs(self) -> list[Channel]:
        self._maybe_fail("video_inputs")
        return list(self.state.video_inputs) if self.state.video_inputs is not None else super().video_inputs()

    def stream_uri(self, channel: int = 1, main: bool = True) -> str:
        self._maybe_fail("stream_uri")
        return f"rtsp://{self.device.host}:{self.device.rtsp_port}/Streaming/Channels/{channel}0{1 if main else 2}"

    def close(self) -> None:
        self.closed = True


@dataclass
class ShareFactory:
    """A driver factory that reaches check's worker processes (spawned, so it is pickled): copies of the
    fleet's states, taken when it is made. exit_on: the device whose driver kills its worker process."""

    states: dict[str, FakeState]
    exit_on: str | None = None

    def __call__(self, device) -> FakeDriver:
        if device.id == self.exit_on:
            import os

            os._exit(9)  # the whole worker process disappears, as in a crash
        return FakeDriver(device, "pw", state=self.states[device.id])


class FakeFleet:
    """One school: an NVR with 6 channels and 6 cameras (one per required area), each on its own socket."""

    def __init__(self, tmp: Path):
        self.sockets: dict[str, socket.socket] = {}
        self.ports: dict[str, int] = {}
        self.states: dict[str, FakeState] = {}
        self.drivers: list[FakeDriver] = []
        ids = ["nvr-01"] + [f"cam-0{i}" for i in range(1, 7)]
        for dev_id in ids:
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            s.listen(16)
            self.sockets[dev_id] = s
            self.ports[dev_id] = s.getsockname()[1]
            self.states[dev_id] = FakeState()
        nvr = self.states["nvr-01"]
        nvr.model, nvr.serial, nvr.device_type = "DS-7608NXI-I2", "NVRSN01", "NVR"
        nvr.channels = [Channel(i, True, f"Camera {i:02d}") for i in range(1, 9)]
        nvr.channels[7].online = False  # channel 8 has no camera: unused, not a fault
        self.path = tmp / "inventory.yaml"
        cams = "\n".join(
            f"      - {{id: cam-0{i}, kind: camera, vendor: hikvision, host: 127.0.0.1, port: {self.ports[f'cam-0{i}']}, "
            f"area: {AREAS[i - 1]}, name: 摄像机{i}, nvr: nvr-01, nvr_channel: {i}, model: DS-2CD2386G2-IU, "
            f"serial: SN0001}}" for i in range(1, 7))
        self.path.write_text(textwrap.dedent("""\
            version: 1
            credentials:
              lab:
                username: admin
                password_env: FAKE_FLEET_PASSWORD
            defaults:
              credentials: lab
              timeout: 1
            schools:
              - id: sch-1
                name: 测试小学
                devices:
                  - {id: nvr-01, kind: nvr, vendor: hikvision, host: 127.0.0.1, port: %d, model: DS-7608NXI-I2, serial: NVRSN01}
            """) % self.ports["nvr-01"] + cams + "\n", encoding="utf-8")

    def factory(self, device) -> FakeDriver:
        d = FakeDriver(device, "pw", state=self.states[device.id])
        self.drivers.append(d)
        return d

    def shareable(self, exit_on: str | None = None) -> ShareFactory:
        return ShareFactory(self.states, exit_on)

    def offline(self, dev_id: str) -> None:
        """Close the device's socket: connections are refused from now on."""
        self.sockets.pop(dev_id).close()

    def close(self) -> None:
        for s in self.sockets.values():
            s.close()
        self.sockets.clear()

"""stream and picture checks: the glue between the driver's stream URI, media.probe and media.quality.

The probe is replaced by one returning synthetic frames (numpy); the lab tests run the real RTSP path.
"""

from __future__ import annotations

import numpy as np
import pytest

from canteen_ops.checks.context import History
from canteen_ops.checks.run import run_checks
from canteen_ops.drivers.base import auth_guard
from canteen_ops.inventory.loader import load_inventory
from canteen_ops.media import probe as probe_mod
from canteen_ops.status import Status
from tests.checks_fakes import FakeFleet

RNG = np.random.default_rng(3)
H, W = 180, 320


def _texture():
    t = RNG.normal(0, 1, (H, W)).astype(np.float32)
    for axis in (0, 1):
        t = sum(np.roll(t, s, axis=axis) for s in (-1, 0, 1)) / 3
    return t / t.std()


TEXTURE = _texture()


def live(n=14, amplitude=60.0):
    """A neutral textured picture with sensor noise in every frame; sharpness grows with amplitude²
    (60 → about 12,600; 30 → about 3,400), contrast is about the amplitude."""
    return [np.clip(128 + amplitude * TEXTURE + RNG.integers(-3, 4, (H, W)), 0, 255).astype(np.uint8)[..., None]
            .repeat(3, axis=2) for _ in range(n)]


@pytest.fixture
def fleet(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_FLEET_PASSWORD", "pw")
    auth_guard.reset()
    f = FakeFleet(tmp_path)
    f.probes = {}  # device port → (StreamProbe kwargs)
    f.probe_calls = []

    def fake_probe(url, *, username=None, password=None, timeout=10.0, frames=12, **kw):
        f.probe_calls.append((url, username, password, timeout, frames))
        spec = f.probes.get(url.split("/")[2], {"frames": live()})
        p = probe_mod.StreamProbe(url=url, ok=bool(spec.get("frames")), codec="h264", width=1920, height=1080,
                                  fps=25.0, bitrate_bps=4.1e6, time_to_first_frame_s=0.42, message="")
        for k, v in spec.items():
            setattr(p, k, v)
        return p

    monkeypatch.setattr(probe_mod, "probe_stream", fake_probe)
    yield f
    f.close()
    auth_guard.reset()


def run(fleet, names=("stream", "picture"), devices=("cam-01",), history=None, monkeypatch=None):
    inv = load_inventory(fleet.path)
    devs = [d for d in inv.devices if d.id in devices]
    return run_checks(devs, inv, list(names), driver_factory=fleet.factory, progress=False)


def one(out, device, check):
    found = [r for r in out.results if r.device_id == device and r.check == check]
    assert len(found) == 1, [(r.device_id, r.check, r.summary) for r in out.results]
    return found[0]


def key(fleet, cam="cam-01"):
    return "127.0.0.1:554"


def test_healthy_stream_facts_and_picture_clip(fleet):
    out = run(fleet)
    s, p = one(out, "cam-01", "stream"), one(out, "cam-01", "picture")
    assert s.status is Status.OK and s.summary == "H264, 1920x1080, 25 fps, 4.1 Mbit/s, first frame in 0.4 s"
    assert s.data["width"] == 1920 and s.data["time_to_first_frame_s"] == 0.42
    assert p.status is Status.OK and p.summary.startswith("picture ok")
    assert p.data["blur"] > 100 and p.data["baseline_blur"] is None
    # the main stream's facts without decoding, then a decoded clip of the sub-stream for the picture
    assert [(c[0], c[4]) for c in fleet.probe_calls] == [("rtsp://127.0.0.1:554/Streaming/Channels/101", 0),
                                                          ("rtsp://127.0.0.1:554/Streaming/Channels/102", 12)]
    url, user, password, timeout, frames = fleet.probe_calls[1]
    assert user == "admin" and password == "pw" and timeout == 10.0  # policy.stream_timeout_s


def test_no_stream_is_crit_and_picture_unknown(fleet):
    fleet.probes[key(fleet)] = {"frames": [], "ok": False, "error": "no_frames",
                                "message": "RTSP session set up but no video frame within 10 s"}
    out = run(fleet)
    s = one(out, "cam-01", "stream")
    assert s.status is Status.CRIT and s.summary == "no stream: RTSP session set up but no video frame within 10 s"
    p = one(out, "cam-01", "picture")
    assert p.status is Status.UNKNOWN and p.summary.startswith("no picture to assess")


def test_low_resolution_warns(fleet):
    fleet.probes[key(fleet)] = {"frames": live(), "width": 1280, "height": 720}
    s = one(run(fleet, ["stream"]), "cam-01", "stream")
    assert s.status is Status.WARN
    assert s.summary.startswith("resolution 1280x720 below policy 1920x1080 (H264, 1280x720")


def test_black_and_frozen_are_crit(fleet):
    fleet.probes[key(fleet)] = {"frames": [np.zeros((180, 320, 3), np.uint8)] * 14}
    p = one(run(fleet, ["picture"]), "cam-01", "picture")
    assert p.status is Status.CRIT and p.summary.startswith("black picture") and p.data["findings"] == ["black"]
    frame = live(1)[0]
    fleet.probes[key(fleet)] = {"frames": [frame] * 14}
    p = one(run(fleet, ["picture"]), "cam-01", "picture")
    assert p.status is Status.CRIT and p.summary.startswith("frozen picture: 14 consecutive frames")


def test_blur_against_the_cameras_own_history(fleet, tmp_path):
    from canteen_ops.status import Result
    from canteen_ops.store.log import MaintenanceLog

    clean = one(run(fleet, ["picture"]), "cam-01", "picture")
    assert clean.status is Status.OK and clean.data["blur"] > 10000
    # A film of grease: half the texture amplitude. Still far above the absolute threshold (100), so without
    # history it passes...
    fleet.probes[key(fleet)] = {"frames": live(amplitude=30)}
    soft = one(run(fleet, ["picture"]), "cam-01", "picture")
    assert soft.status is Status.OK and 1000 < soft.data["blur"] < clean.data["blur"] * 0.5
    # ...but against the median of this camera's earlier ok pictures it is a warning. Warn/unknown results
    # do not count towards the baseline.
    log = MaintenanceLog.open(tmp_path / "hist.db")
    base = clean.data["blur"]
    for v in (base * 0.9, base, base * 1.1):
        log.record_result(None, Result("cam-01", "picture", Status.OK, "ok", {"blur": v}, school_id="sch-1"))
    log.record_result(None, Result("cam-01", "picture", Status.WARN, "blurred", {"blur": 1.0}, school_id="sch-1"))
    assert History.load(log, ["cam-01"]).blur_baseline("cam-01") == pytest.approx(base)
    inv = load_inventory(fleet.path)
    out = run_checks([inv.device("cam-01")], inv, ["picture"], log=log, driver_factory=fleet.factory,
                     progress=False)
    p = one(out, "cam-01", "picture")
    assert p.status is Status.WARN and p.data["findings"] == ["blurred"]
    assert p.summary.startswith("blurred (grease or steam on the lens? clean it): ")
    assert f"below this camera's baseline {base:.0f}" in p.summary
    assert p.data["baseline_blur"] == pytest.approx(base, abs=0.1)
    log.close()


def test_picture_falls_back_to_the_main_stream_without_a_sub_stream(fleet):
    from canteen_ops.drivers.base import NotSupported

    real = fleet.factory

    def factory(device):
        d = real(device)
        orig = d.stream_uri

        def stream_uri(channel=1, main=True):
            if not main:
                raise NotSupported("no sub stream profile")
            return orig(channel, main)

        d.stream_uri = stream_uri
        return d

    fleet.factory = factory
    p = one(run(fleet, ["picture"]), "cam-01", "picture")
    assert p.status is Status.OK
    assert fleet.probe_calls[-1][0].endswith("/Channels/101") and fleet.probe_calls[-1][4] == 12


def test_stream_uri_not_supported_is_na(fleet):
    from canteen_ops.drivers.base import NotSupported

    fleet.states["cam-01"].errors["stream_uri"] = NotSupported("stream_uri")
    out = run(fleet)
    for check in ("stream", "picture"):
        r = one(out, "cam-01", check)
        assert r.status is Status.NA and "not applicable" in r.summary


def test_every_sensor_of_a_thermal_bi_spectrum_camera_is_checked_against_its_own_minima(fleet, monkeypatch):
    """The recorded DS-2TD1228-2-QA: input 1 visible 1920x1080, input 2 thermal 640x512. The thermal sensor is not
    a low-resolution fault; a visible sensor at the thermal size would be."""
    from pathlib import Path

    from canteen_ops.drivers import hikvision as H
    from canteen_ops.drivers import xmlsafe as X

    real = Path(__file__).resolve().parent / "fixtures" / "devices" / "hikvision" / "DS-2TD1228-2-QA"
    answers = {f"/ISAPI/{p.stem.replace('.', '/')}": X.parse(p.read_bytes()) for p in real.glob("*.xml")}

    class Recorded(H.HikvisionDriver):  # the driver's own logic on the recorded answers, no socket
        def __init__(self):
            self._info = answers["/ISAPI/System/deviceInfo"]

        def _get_xml(self, path):
            return answers[path]

        def _optional(self, path):
            return answers.get(path)

    inputs = Recorded().video_inputs()
    assert [(c.id, c.kind) for c in inputs] == [(1, None), (2, "thermal")]
    fleet.states["cam-01"].video_inputs = inputs
    sizes = {"101": (1920, 1080), "102": (640, 360), "201": (640, 512), "202": (640, 512)}

    def fake_probe(url, *, username=None, password=None, timeout=10.0, frames=12, **kw):
        w, h = sizes[url.rsplit("/", 1)[1]]
        return probe_mod.StreamProbe(url=url, ok=True, codec="h264", width=w, height=h, fps=25.0, bitrate_bps=2e6,
                                     time_to_first_frame_s=0.3, message="", frames=live() if frames else [])

    monkeypatch.setattr(probe_mod, "probe_stream", fake_probe)
    out = run(fleet)
    streams = [r for r in out.results if r.check == "stream"]
    assert [(r.data["channel"], r.status, r.summary.split(":")[0]) for r in streams] == [
        (1, Status.OK, "channel 1"), (2, Status.OK, "channel 2 (thermal)")]
    assert "640x512" in streams[1].summary
    assert [r.data["channel"] for r in out.results if r.check == "picture"] == [1, 2]
    fleet.states["cam-01"].video_inputs = [inputs[0], H.Channel(id=2, online=None)]  # not thermal: 640x512 is low
    streams = [r for r in run(fleet, ["stream"]).results if r.check == "stream"]
    assert streams[1].status is Status.WARN and "below policy 1920x1080" in streams[1].summary

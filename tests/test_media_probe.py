"""probe_stream against the lab over real loopback sockets, and the quality verdict on every lab fault."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from canteen_ops.inventory.model import Policy
from canteen_ops.media import quality
from canteen_ops.media.probe import probe_stream, socket_timeout_option, with_credentials
from canteen_ops.status import Status
from tests.rtsp_lab_fixtures import LAB_PASSWORD, LAB_USER

SMALL = Policy(min_resolution="320x180")  # the lab's test streams are 320x180


def probe(lab, fault=None, *, password=LAB_PASSWORD, timeout=8.0, frames=12, path=None):
    return probe_stream(lab.url(fault, path), username=LAB_USER, password=password, timeout=timeout, frames=frames)


def no_secret(result) -> None:
    text = repr(result) + repr(result.to_dict()) + result.message + result.url
    assert LAB_PASSWORD not in text


def test_healthy_stream_facts_and_frames(rtsp_lab):
    r = probe(rtsp_lab)
    assert r.ok and r.error is None, r.message
    assert (r.codec, r.width, r.height, r.resolution) == ("h264", 320, 180, "320x180")
    assert r.fps == pytest.approx(25, abs=0.5)
    assert 20_000 < r.bitrate_bps < 5_000_000
    assert 0 < r.connect_s < 1 and 0 < r.time_to_first_frame_s < 8
    assert len(r.frames) == 12 and r.frames[0].shape == (180, 320, 3) and r.frames[0].dtype.name == "uint8"
    assert r.frame_times == sorted(r.frame_times)
    assert quality.assess_probe(r, SMALL)[0].code == "ok"
    no_secret(r)


def test_wrong_password_is_unauthorized_and_tried_once(rtsp_lab):
    stream = rtsp_lab.stream(None)
    before = stream.auth_failures
    r = probe(rtsp_lab, password="not-the-password")
    assert not r.ok and r.error == "unauthorized"
    assert "401" in r.message
    assert stream.auth_failures == before + 1  # one failed login, never a retry
    assert "not-the-password" not in repr(r) + r.message


def test_unknown_path_is_not_found(rtsp_lab):
    r = probe(rtsp_lab, path="/Streaming/Channels/4401")
    assert (r.ok, r.error) == (False, "not_found")
    no_secret(r)


def test_closed_port_is_refused():
    s = socket.socket()
    s.bind(("127.0.1.8", 0))
    port = s.getsockname()[1]
    s.close()
    r = probe_stream(f"rtsp://127.0.1.8:{port}/x", username=LAB_USER, password=LAB_PASSWORD, timeout=3)
    assert (r.ok, r.error) == (False, "refused")
    assert r.elapsed_s < 1


@pytest.fixture
def black_hole():
    """A TCP listener that accepts connections and never says a word (a hung device)."""
    srv = socket.socket()
    srv.bind(("127.0.1.9", 0))
    srv.listen(8)
    held = []
    stop = threading.Event()

    def accept():
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(srv.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield srv.getsockname()
    stop.set()
    t.join(2)
    for c in held:
        c.close()
    srv.close()


def test_black_hole_times_out_within_the_deadline(black_hole):
    host, port = black_hole
    r = probe_stream(f"rtsp://{LAB_USER}:{LAB_PASSWORD}@{host}:{port}/Streaming/Channels/101", timeout=1.5)
    assert (r.ok, r.error) == (False, "timeout")
    assert 1.4 <= r.elapsed_s < 2.0
    no_secret(r)
    assert r.url == f"rtsp://{host}:{port}/Streaming/Channels/101"


def test_no_stream_fault_is_no_frames_within_the_deadline(rtsp_lab):
    t0 = time.monotonic()
    r = probe(rtsp_lab, "no_stream", timeout=2.0)
    assert (r.ok, r.error) == (False, "no_frames")
    assert time.monotonic() - t0 < 2.6
    assert quality.assess_probe(r, SMALL)[0].status is Status.CRIT


def test_ffmpeg_socket_timeout_option_is_the_one_that_works(rtsp_lab):
    """Without PyAV's interrupt timeout, only FFmpeg's own option can end a read that never gets data.
    (On this FFmpeg 8 the 4.x name `stimeout` is silently ignored: the same read then blocks forever.)"""
    import av

    assert socket_timeout_option() == "timeout"  # the bundled FFmpeg is ≥ 5
    url = with_credentials(rtsp_lab.url("no_stream"), LAB_USER, LAB_PASSWORD)
    outcome = {}

    def run():
        t0 = time.monotonic()
        try:  # open returns once stream analysis gives up; the first read then times out
            with av.open(url, options={"rtsp_transport": "tcp", "timeout": "1000000"}) as c:
                next(c.demux())
            outcome["result"] = "got a packet"
        except Exception as exc:  # noqa: BLE001
            outcome["result"] = type(exc).__name__
        outcome["elapsed"] = time.monotonic() - t0

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(15)
    assert not t.is_alive(), "FFmpeg ignored its socket timeout option"
    assert outcome["result"] == "TimeoutError" and outcome["elapsed"] < 10, outcome


def test_credentials_in_the_url_are_used_and_never_returned(rtsp_lab):
    url = f"rtsp://{LAB_USER}:{LAB_PASSWORD}@{rtsp_lab.host}:{rtsp_lab.port}/Streaming/Channels/101"
    r = probe_stream(url, timeout=8, frames=3)
    assert r.ok, r.message
    assert r.url == rtsp_lab.url()
    no_secret(r)
    assert with_credentials("rtsp://h:554/a?b=1", "ad min", "p@ss:/") == "rtsp://ad%20min:p%40ss%3A%2F@h:554/a?b=1"


@pytest.mark.parametrize("fault, code, status", [
    (None, "ok", Status.OK),
    ("black", "black", Status.CRIT),
    ("frozen", "frozen", Status.CRIT),
    ("blurred", "blurred", Status.WARN),
    ("covered", "covered", Status.CRIT),
    ("colour_cast", "colour_cast", Status.WARN),
    ("low_resolution", "low_resolution", Status.WARN),
])
def test_every_lab_fault_is_found_by_the_quality_checks(rtsp_lab, fault, code, status):
    r = probe(rtsp_lab, fault)
    assert r.ok, r.message
    findings = quality.assess_probe(r, SMALL)
    found = {f.code: f.status for f in findings}
    assert found.get(code) is status, findings
    if fault is None:
        assert list(found) == ["ok"]
    if fault == "low_resolution":
        assert (r.width, r.height) == (160, 90)
        assert set(found) == {"low_resolution"}  # the picture itself is fine


def test_1080p_stream(tmp_path):
    """The one full-HD test: what the lab advertises is what it streams, and quality runs on scaled frames."""
    from canteen_ops.lab.rtsp import RtspServerThread

    with RtspServerThread(cache_dir=tmp_path) as lab:
        s = lab.add_stream("127.0.1.10", 0, "/cam/realmonitor?channel=1&subtype=0", 1920, 1080, 25,
                           credentials=(LAB_USER, LAB_PASSWORD), warm=True)
        r = probe_stream(s.url, username=LAB_USER, password=LAB_PASSWORD, timeout=10, frames=12)
        assert r.ok, r.message
        assert (r.width, r.height) == (1920, 1080)
        assert r.frames[0].shape == (360, 640, 3)
        assert [f.code for f in quality.assess_probe(r, Policy())] == ["ok"]
        assert r.bitrate_bps > 500_000


def test_facts_only_probe_decodes_nothing_yet_reports_the_stream(rtsp_lab):
    r = probe(rtsp_lab, frames=0)
    assert r.ok, r.message
    assert (r.width, r.height, r.codec) == (320, 180, "h264") and r.frames == []
    assert r.fps == pytest.approx(25, abs=0.5) and r.bitrate_bps > 0
    assert "first keyframe" in r.message
    one = probe(rtsp_lab, frames=1)
    assert len(one.frames) == 1 and one.fps == pytest.approx(25, abs=0.5)

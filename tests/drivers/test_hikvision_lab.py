"""HikvisionDriver against the lab's simulated ISAPI devices over real loopback sockets: every getter, and
the faults a technician meets (offline, black hole, wrong password, lock, clock, disks, channels, retention,
hostile XML). The lab and the driver are independent implementations of protocols.md §A."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from canteen_ops.drivers.base import (
    AuthFailed,
    Locked,
    NotSupported,
    Offline,
    ProtocolError,
    Timeout,
)
from canteen_ops.drivers.hikvision import HikvisionDriver

UTC = dt.timezone.utc
VENDOR, DRIVER = "hikvision", HikvisionDriver  # for the fixtures in conftest.py


def test_nvr_getters_match_the_device(connect, nvr):
    drv = connect(nvr)
    drv.login()
    f = drv.facts()
    assert (f.vendor, f.model, f.serial, f.device_type) == ("hikvision", nvr.model, nvr.serial, "NVR")
    assert f.firmware == nvr.effective_firmware and f.mac == nvr.mac.lower()

    c = drv.clock()
    assert abs(c.drift_s) < 2.5  # the device reports whole seconds
    assert (c.mode, c.ntp_enabled, c.ntp_servers, c.timezone) == ("NTP", True, [nvr.ntp_server], nvr.timezone)

    disks = drv.storage()
    assert [(d.status, d.capacity_mb, d.free_mb) for d in disks] == [
        ("ok", float(d.capacity_mb), float(d.free_mb)) for d in nvr.disks]

    chans = drv.channels()
    assert [(c.id, c.name, c.online) for c in chans] == [(c.id, c.name, True) for c in nvr.channels]

    mains = [s for s in drv.streams() if s.main]
    assert [(s.channel, s.codec, s.width, s.height, s.fps) for s in mains] == [
        (c.id, c.codec, c.width, c.height, float(c.fps)) for c in nvr.channels]
    assert all(s.uri.startswith(f"rtsp://{nvr.host}:{nvr.rtsp_port}/Streaming/Channels/") for s in mains)
    assert drv.stream_uri(2) == f"rtsp://{nvr.host}:{nvr.rtsp_port}/Streaming/Channels/201"
    assert drv.stream_uri(2, main=False).endswith("/202")
    assert not drv.upgrade_status().upgrading


def test_recordings_cover_retention_and_convert_local_times(connect, nvr):
    drv = connect(nvr)
    now = dt.datetime.now(UTC)
    spans = drv.recordings(1, now - dt.timedelta(days=nvr.retention_days + 10), now)
    assert len(spans) == 1  # hourly files merged into one continuous span
    oldest = now - dt.timedelta(days=nvr.retention_days)
    # a wrong UTC offset would show as a whole-hours error here
    assert abs((spans[0].start - oldest).total_seconds()) < 5
    assert abs((spans[0].end - now).total_seconds()) < 5
    window = drv.recordings(1, now - dt.timedelta(hours=5), now - dt.timedelta(hours=2))
    assert len(window) == 1
    assert abs((window[0].start - (now - dt.timedelta(hours=5))).total_seconds()) < 1
    assert abs((window[0].end - (now - dt.timedelta(hours=2))).total_seconds()) < 1


def test_camera_getters(connect, cam):
    drv = connect(cam)
    f = drv.facts()
    assert (f.model, f.serial, f.device_type, f.firmware) == (cam.model, cam.serial, "IPCamera", cam.effective_firmware)
    chans = drv.channels()
    assert [(c.id, c.online) for c in chans] == [(1, True)]
    assert drv.stream_uri() == f"rtsp://{cam.host}:{cam.rtsp_port}/Streaming/Channels/101"
    streams = drv.streams()
    assert {s.main for s in streams} == {True, False}


def test_config_export_import_round_trip(connect, cam, lab_faults):
    lab_faults.touch(cam.id)
    drv = connect(cam)
    export = drv.export_config()
    assert export.method == "isapi-configurationData" and export.extension == ".bin"
    assert export.content and not export.content.lstrip().startswith(b"<")
    drv.import_config(export)
    assert drv.export_config().content == export.content


def test_settings_carry_no_secrets(connect, nvr, lab):
    drv = connect(nvr)
    s = drv.settings()
    for part in ("deviceInfo", "time", "ntpServers", "streamingChannels", "users", "adminAccesses", "storage",
                 "inputProxyChannels", "network", "recordTracks"):
        assert part in s, part
    _, password = lab.credentials(nvr.id)
    assert password not in repr(s)
    assert "password" not in repr(s).lower()


# --- faults ------------------------------------------------------------------------------------------------
def test_offline(connect, cam, lab_faults):
    lab_faults.set(cam.id, "offline")
    with pytest.raises(Offline):
        connect(cam).login()


def test_blackhole_times_out_within_deadline(connect, cam, lab_faults):
    lab_faults.set(cam.id, "blackhole")
    drv = connect(cam, timeout=0.8)
    t0 = time.monotonic()
    with pytest.raises(Timeout):
        drv.login()
    assert time.monotonic() - t0 < 2.0


def test_wrong_password_one_failed_attempt_on_the_wire(connect, cam, lab_faults):
    lab_faults.set(cam.id, "wrong-password")
    drv = connect(cam)
    with pytest.raises(AuthFailed) as exc:
        drv.login()
    assert not isinstance(exc.value, Locked)
    assert "attempt(s) left" in str(exc.value)
    assert cam.failed_logins == 1  # the device counted exactly one failed login
    sent = drv.requests_sent
    for getter in ("facts", "clock", "storage"):
        with pytest.raises(AuthFailed):
            getattr(drv, getter)()
    assert drv.requests_sent == sent and cam.failed_logins == 1
    with pytest.raises(AuthFailed):  # a fresh driver in the same run does not try either
        connect(cam).login()
    assert cam.failed_logins == 1


def test_locked_reports_unlock_time_without_sending_credentials(connect, cam, lab_faults):
    lab_faults.set(cam.id, "locked")
    with pytest.raises(Locked) as exc:
        connect(cam).login()
    assert exc.value.unlock_in_s and 1700 <= exc.value.unlock_in_s <= 1800
    assert cam.failed_logins == 0


def test_last_attempt_locks_and_says_so(connect, cam, lab_faults):
    lab_faults.set(cam.id, "lock-after", "1")
    lab_faults.set(cam.id, "wrong-password")
    with pytest.raises(Locked) as exc:
        connect(cam).login()
    assert exc.value.unlock_in_s and exc.value.unlock_in_s > 0
    assert cam.failed_logins == 1


@pytest.mark.parametrize("fault,value,expect", [("clock-drift", "+120", 120), ("clock-drift", "-45", -45)])
def test_clock_drift(connect, cam, lab_faults, fault, value, expect):
    lab_faults.set(cam.id, fault, value)
    assert abs(connect(cam).clock().drift_s - expect) < 2.5


def test_clock_reset_and_ntp_off(connect, cam, lab_faults):
    lab_faults.set(cam.id, "clock-reset")
    lab_faults.set(cam.id, "ntp-off")
    c = connect(cam).clock()
    assert c.device_utc.year == 1970
    assert (c.mode, c.ntp_enabled) == ("manual", False)


@pytest.mark.parametrize("fault,status", [("hdd-error", "error"), ("hdd-unformatted", "unformatted"),
                                          ("hdd-full", "full")])
def test_hdd_faults(connect, nvr, lab_faults, fault, status):
    lab_faults.set(nvr.id, fault)
    assert connect(nvr).storage()[0].status == status


def test_no_hdd(connect, nvr, lab_faults):
    lab_faults.set(nvr.id, "no-hdd")
    drv = connect(nvr)
    assert drv.storage() == []
    now = dt.datetime.now(UTC)
    assert drv.recordings(1, now - dt.timedelta(days=2), now) == []


def test_channel_offline(connect, nvr, lab_faults):
    lab_faults.set(nvr.id, "channel-offline", "2")
    chans = {c.id: c for c in connect(nvr).channels()}
    assert chans[2].online is False and chans[1].online is True
    assert chans[2].detail


def test_retention_and_gaps(connect, nvr, lab_faults):
    lab_faults.set(nvr.id, "retention", "3")
    lab_faults.set(nvr.id, "gaps", "2")
    drv = connect(nvr)
    now = dt.datetime.now(UTC)
    spans = drv.recordings(1, now - dt.timedelta(days=30), now)
    assert abs((spans[0].start - (now - dt.timedelta(days=3))).total_seconds()) < 5
    assert len(spans) == 3  # two one-hour holes in the last day
    holes = [(b.start - a.end).total_seconds() for a, b in zip(spans, spans[1:])]
    assert all(abs(h - 3600) < 2 for h in holes)


def test_firmware_and_low_res_faults(connect, cam, lab_faults):
    lab_faults.set(cam.id, "old-firmware")
    lab_faults.set(cam.id, "low-res")
    drv = connect(cam)
    assert drv.facts().firmware == cam.effective_firmware != cam.firmware
    main = next(s for s in drv.streams() if s.main)
    assert (main.width, main.height) == (1280, 720)


@pytest.mark.parametrize("fault", ["malformed-xml", "xml-bomb", "oversized-body"])
def test_hostile_answers_are_contained(connect, lab, cam, lab_faults, fault):
    lab_faults.set(cam.id, fault)
    drv = connect(cam)
    with pytest.raises(ProtocolError):
        drv.facts()
    other = next(d for d in lab.fleet.devices if d.vendor == "hikvision" and d.id != cam.id)
    assert connect(other).facts().serial == other.serial  # the rest of the fleet is unaffected


def test_slow_device_within_and_beyond_the_timeout(connect, cam, lab_faults):
    lab_faults.set(cam.id, "slow", "300")
    drv = connect(cam, timeout=3.0)
    t0 = time.monotonic()
    assert drv.facts().serial == cam.serial
    assert time.monotonic() - t0 >= 0.3
    lab_faults.set(cam.id, "slow", "1500")
    slow = connect(cam, timeout=0.5)
    t0 = time.monotonic()
    with pytest.raises(Timeout):
        slow.login()
    assert time.monotonic() - t0 < 1.4


def test_driver_deadline_bounds_a_whole_getter(connect, nvr, lab_faults):
    # recordings pages through many requests; the driver-wide deadline stops it, whatever each request takes
    lab_faults.set(nvr.id, "slow", "200")
    drv = connect(nvr, timeout=5.0)
    drv.set_deadline(0.7)
    now = dt.datetime.now(UTC)
    t0 = time.monotonic()
    with pytest.raises(Timeout):
        drv.recordings(1, now - dt.timedelta(days=40), now)
    assert time.monotonic() - t0 < 1.5


def test_expired_nonce_is_renewed_without_a_failed_login(connect, cam, monkeypatch):
    # Nonces expire after 1 s: pre-sent credentials then meet a stale 401 (ResponseStatus invalidOperation,
    # stale="TRUE"), which is the one 401 the driver answers, once, with the fresh challenge.
    import canteen_ops.lab.digest as lab_digest

    monkeypatch.setattr(lab_digest, "NONCE_TTL_S", 1.0)
    drv = connect(cam)
    drv.login()
    time.sleep(2.1)  # nonces carry whole-second timestamps: a fresh one is < 1 s old
    before = drv.requests_sent
    assert drv.facts().serial == cam.serial  # cached: no request
    drv.storage()
    assert drv.requests_sent - before == 2  # stale + retry with the fresh nonce
    assert cam.failed_logins == 0


def test_recording_search_requests(connect, nvr, lab_faults):
    # The time (device offset) is read once; a search is one POST per page of 40, ending on OK / NO MATCHES
    # without asking for an empty page.
    lab_faults.touch(nvr.id)
    drv = connect(nvr)
    now = dt.datetime.now(UTC)
    assert drv.recordings(1, now - dt.timedelta(hours=24), now)  # 24-25 hourly files: one page
    first = drv.requests_sent  # probe + time + search
    assert first == 3
    assert drv.recordings(2, now - dt.timedelta(hours=24), now)
    assert drv.requests_sent - first == 1
    sent = drv.requests_sent
    assert drv.recordings(3, now - dt.timedelta(hours=100), now)  # 100-101 files: pages of 40, 40, 20-21
    assert drv.requests_sent - sent == 3
    lab_faults.set(nvr.id, "retention", "1")
    sent = drv.requests_sent
    assert drv.recordings(1, now - dt.timedelta(days=10), now - dt.timedelta(days=9)) == []  # NO MATCHES
    assert drv.requests_sent - sent == 1


def test_recorded_any_asks_for_one_file(connect, nvr, lab_faults):
    """The retention check's first question per channel: one search, maxResults 1, one file in the answer."""
    lab_faults.touch(nvr.id)
    lab_faults.set(nvr.id, "retention", "10")
    drv = connect(nvr)
    now = dt.datetime.now(UTC)
    assert drv.recorded_any(1, now - dt.timedelta(days=6), now - dt.timedelta(days=5))
    sent = drv.requests_sent
    assert drv.recorded_any(2, now - dt.timedelta(days=6), now - dt.timedelta(days=5))
    assert drv.requests_sent - sent == 1
    assert not drv.recorded_any(2, now - dt.timedelta(days=12), now - dt.timedelta(days=11))  # before the oldest
    assert drv.requests_sent - sent == 2


def test_ntp_servers_not_offered_is_not_an_empty_list(connect, cam, monkeypatch):
    from canteen_ops.drivers import hikvision as H

    real = H.HikvisionDriver._get_xml

    def get_xml(self, path):
        if path.endswith("/ntpServers"):  # as firmware without the resource answers: 404 → NotSupported
            raise NotSupported(f"{path} is not offered by this device (HTTP 404)")
        return real(self, path)

    monkeypatch.setattr(H.HikvisionDriver, "_get_xml", get_xml)
    c = connect(cam).clock()
    assert (c.ntp_servers, c.ntp_servers_offered, c.ntp_enabled) == ([], False, True)

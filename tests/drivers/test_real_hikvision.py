"""Hikvision parsers and checks on answers real devices gave (tests/fixtures/devices/hikvision/<model>/, sources in
each SOURCE.md)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from canteen_ops.drivers import hikvision as H
from canteen_ops.drivers import xmlsafe as X

REAL = Path(__file__).resolve().parent.parent / "fixtures" / "devices" / "hikvision"


def xml(model: str, path: str):
    return X.parse((REAL / model / f"{path.replace('/', '.')}.xml").read_bytes())


def test_analog_dvr_channels_are_its_video_inputs_and_no_video_is_video_loss():
    dvr = "iDS-7204HUHI-M1"
    assert H.parse_channels(xml(dvr, "ContentMgmt/InputProxy/channels"), None) == []  # empty, size="2"
    chans = H.parse_video_inputs(xml(dvr, "System/Video/inputs/channels"))
    assert [(c.id, c.name, c.online) for c in chans] == [
        (1, "Entrada", True), (2, "Camera 02", False), (3, "Terraza - Taller", True), (4, "Camera 04", False)]
    assert chans[1].detail == "video loss (NO VIDEO)" and chans[0].detail == "2560*1440(4MP)P30"
    assert H.parse_device_info(xml(dvr, "System/deviceInfo")).device_type == "DVR"


def test_camera_video_inputs_have_no_state_not_offline():
    # A thermal bi-spectrum camera lists both sensors without resDesc: their state is unknown, never "offline".
    chans = H.parse_video_inputs(xml("DS-2TD1228-2-QA", "System/Video/inputs/channels"))
    assert [(c.id, c.name, c.online) for c in chans] == [(1, "Camera 01", None), (2, "Camera 02", None)]


def test_camera_storage_sd_card_and_nas():
    sd = H.parse_storage(xml("DS-2CD2346G2-ISU", "ContentMgmt/Storage"))
    assert [(d.id, d.name, d.status, d.capacity_mb, d.free_mb) for d in sd] == [("1", "hdde", "ok", 121942, 26623)]
    nas = H.parse_storage(xml("DS-2CD2443G0-IW", "ContentMgmt/Storage"))
    assert [(d.id, d.status, d.capacity_mb) for d in nas] == [("nas9", "ok", 15359)]
    offline = H.parse_storage(xml("DS-2CD2146G2-ISU", "ContentMgmt/Storage"))
    assert [(d.id, d.status, d.raw_status, d.capacity_mb) for d in offline] == [("nas9", "error", "offline", 0)]
    assert H.parse_storage(xml("DS-2TD1228-2-QA", "ContentMgmt/Storage"))[0].status == "ok"


def test_thermal_camera_streams_per_sensor():
    streams = H.parse_streaming_channels(xml("DS-2TD1228-2-QA", "Streaming/channels"))
    mains = [(s["channel"], s["width"], s["height"]) for s in streams if s["main"]]
    assert mains == [(1, 1920, 1080), (2, 640, 512)]


def test_model_variants_as_devices_report_them():
    models = {m: H.parse_device_info(xml(m, "System/deviceInfo")).model
              for m in ("DS-7608NXI-I2", "iDS-7208HQHI-M1", "DS-2CD2346G2-ISU", "iDS-7204HUHI-M1")}
    assert models == {"DS-7608NXI-I2": "DS-7608NXI-I2/8P/S", "iDS-7208HQHI-M1": "iDS-7208HQHI-M1(A)/S(C)",
                      "DS-2CD2346G2-ISU": "DS-2CD2346G2-ISU/SL", "iDS-7204HUHI-M1": "iDS-7204HUHI-M1/E"}


def test_base_models_of_real_variants():
    from canteen_ops.drivers.dahua import DahuaDriver
    from canteen_ops.drivers.hikvision import HikvisionDriver

    base = HikvisionDriver.base_model
    assert base("DS-7608NXI-I2/8P/S") == base("DS-7608NXI-I2") == "DS-7608NXI-I2"
    assert base("DS-2CD2346G2-ISU/SL") == "DS-2CD2346G2-ISU"
    assert base("iDS-7208HQHI-M1(A)/S(C)") == base("iDS-7208HQHI-M1") == "IDS-7208HQHI-M1"
    assert base("DS-7608NXI-I2/8P/S") != base("DS-7616NXI-I2/16P")
    assert DahuaDriver.base_model("DH-XVR5108C-X") == DahuaDriver.base_model("XVR5108C-X")


def test_facts_check_takes_a_variant_for_its_model_but_not_another_model():
    from canteen_ops.checks.device import facts
    from canteen_ops.drivers.base import Facts
    from types import SimpleNamespace

    real = H.parse_device_info(xml("DS-7608NXI-I2", "System/deviceInfo"))
    assert isinstance(real, Facts)

    def run(inventory_model, inventory_serial=None):
        dev = SimpleNamespace(id="nvr", school_id="s", vendor="hikvision", model=inventory_model,
                              serial=inventory_serial)
        ctx = SimpleNamespace(device=dev, get=lambda name: real)
        return facts(ctx)[0]

    assert run("DS-7608NXI-I2").status.value == "ok"
    assert run("DS-7608NXI-I2/8P/S").status.value == "ok"
    r = run("DS-7616NXI-I2")
    assert r.status.value == "warn" and "inventory says DS-7616NXI-I2" in r.summary
    assert run("DS-7608NXI-I2", "DS-7608NXI-I0/0P/S0000000000CCRRJ00000001WCVU").status.value == "crit"


def _storage_check(model: str, kind: str = "camera"):
    from types import SimpleNamespace

    from canteen_ops.checks.nvr import storage
    from canteen_ops.inventory.model import Policy

    disks = H.parse_storage(xml(model, "ContentMgmt/Storage"))
    dev = SimpleNamespace(id=model, school_id="s", vendor="hikvision", kind=kind)
    return storage(SimpleNamespace(device=dev, get=lambda name: disks, policy=Policy()))[0]


def test_camera_storage_check_on_real_cards_and_shares():
    r = _storage_check("DS-2CD2346G2-ISU")
    assert r.status.value == "ok" and r.summary.startswith("1 SD card ok, 26.0 GB free of 119.1 GB")
    assert _storage_check("DS-2CD2443G0-IW").summary.startswith("1 NAS ok")
    r = _storage_check("DS-2CD2146G2-ISU")  # the NAS is offline, capacity 0
    assert r.status.value == "crit" and r.summary == "NAS nas9: error (offline)"


def test_a_full_camera_card_is_judged_like_a_full_nvr_disk():
    from dataclasses import replace as dc_replace
    from types import SimpleNamespace

    from canteen_ops.checks.nvr import storage
    from canteen_ops.inventory.model import Policy

    card = H.parse_storage(xml("DS-2CD2346G2-ISU", "ContentMgmt/Storage"))[0]
    full = dc_replace(card, free_mb=0.0)
    dev = SimpleNamespace(id="cam", school_id="s", vendor="hikvision", kind="camera")
    r = storage(SimpleNamespace(device=dev, get=lambda name: [full], policy=Policy()))[0]
    assert r.status.value == "ok" and "full: the camera overwrites the oldest recordings" in r.summary
    r = storage(SimpleNamespace(device=dev, get=lambda name: [full], policy=Policy(hdd_free_warn_pct=5)))[0]
    assert r.status.value == "warn" and r.summary.startswith("SD card 1: 0.0% free")


def test_summer_wall_clock_with_the_standard_offset_is_read_by_the_zone_rule():
    """DS-7716NI-I4/16P(B) V4.61.030 wrote 07:24:29-05:00 while it stood in -04:00 (its own zone's DST rule was in
    effect; the source's workstation read 11:24:30 UTC at that moment): the clock is right, not an hour slow."""
    utc, offset, tz, mode = H.parse_time(xml("DS-7716NI-I4-16P-B", "System/time"))
    assert utc == dt.datetime(2026, 9, 9, 11, 24, 29, tzinfo=dt.timezone.utc)
    assert offset == dt.timedelta(hours=-4) and mode == "NTP"
    assert H.parse_ntp_servers(xml("DS-7716NI-I4-16P-B", "System/time/ntpServers")) == ["time.windows.com"]


@pytest.mark.parametrize("wall,hours", [
    (dt.datetime(2026, 3, 8, 1, 59), -5), (dt.datetime(2026, 3, 8, 2, 0), -4),  # 2nd Sunday of March, 02:00
    (dt.datetime(2026, 11, 1, 1, 59), -4), (dt.datetime(2026, 11, 1, 2, 0), -5),  # 1st Sunday of November
    (dt.datetime(2026, 1, 15), -5), (dt.datetime(2026, 7, 4), -4),
])
def test_dst_rule_of_the_recorded_zone(wall, hours):
    tz = X.text(xml("DS-7716NI-I4-16P-B", "System/time"), "timeZone")
    assert H.posix_dst_offset(tz, wall) == dt.timedelta(hours=hours)


def test_dst_rule_last_week_southern_zone_and_none():
    europe = "CST-1:00:00DST01:00:00,M3.5.0/02:00:00,M10.5.0/03:00:00"  # last Sundays of March and October
    assert H.posix_dst_offset(europe, dt.datetime(2024, 3, 31, 2, 0)) == dt.timedelta(hours=2)
    assert H.posix_dst_offset(europe, dt.datetime(2024, 10, 27, 3, 0)) == dt.timedelta(hours=1)
    sydney = "CST-10:00:00DST01:00:00,M10.1.0/02:00:00,M4.1.0/03:00:00"
    assert H.posix_dst_offset(sydney, dt.datetime(2026, 1, 1)) == dt.timedelta(hours=11)
    assert H.posix_dst_offset(sydney, dt.datetime(2026, 6, 1)) == dt.timedelta(hours=10)
    assert H.posix_dst_offset("CST-8:00:00", dt.datetime(2026, 6, 1)) is None  # China: no rule
    # an offset that already is the summer one is kept (only the standard-offset quirk is corrected)
    root = X.parse(b"<Time><timeMode>NTP</timeMode><localTime>2026-09-09T07:24:29-04:00</localTime><timeZone>"
                   b"CST+5:00:00DST01:00:00,M3.2.0/02:00:00,M11.1.0/02:00:00</timeZone></Time>")
    assert H.parse_time(root)[0] == dt.datetime(2026, 9, 9, 11, 24, 29, tzinfo=dt.timezone.utc)

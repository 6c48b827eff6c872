"""Hikvision ISAPI parsers against the samples of protocols.md §A (tests/fixtures/hikvision)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from canteen_ops.drivers import hikvision as H
from canteen_ops.drivers import xmlsafe as X
from canteen_ops.drivers.spans import clipped, merge_spans

FIX = Path(__file__).resolve().parent.parent / "fixtures" / "hikvision"
UTC = dt.timezone.utc


def xml(name: str):
    return X.parse((FIX / name).read_bytes())


def test_device_info_ipc_firmware_joined():
    f = H.parse_device_info(xml("deviceInfo_ipc.xml"))
    assert (f.vendor, f.model, f.device_type, f.name) == ("hikvision", "DS-2CD2386G2-IU", "IPCamera", "yard")
    assert f.serial == "DS-2CD2386G2-IU00000000AAWRJ00000000"
    assert f.firmware == "V5.7.18 build 240826"
    assert f.mac == "a6:63:9e:f8:01:09"


def test_device_info_nvr_and_psia_namespaces():
    nvr = H.parse_device_info(xml("deviceInfo_nvr.xml"))
    assert (nvr.firmware, nvr.device_type) == ("V4.62.210 build 230619", "NVR")
    psia = H.parse_device_info(xml("deviceInfo_psia.xml"))
    assert psia.firmware == "V5.5.0 build 170725"


@pytest.mark.parametrize("tz,hours", [
    ("CST-8:00:00", 8), ("CST+5:00:00", -5), ("CST-5:30:00", 5.5), ("UTC+0", 0), ("CST-8", 8),
    ("CST-2:00:00DST01:00:00,M3.5.5/02:00:00,M10.5.0/02:00:00", 2), ("<+08>-8", 8),
])
def test_posix_offset_sign_inversion(tz, hours):
    assert H.posix_utc_offset(tz) == dt.timedelta(hours=hours)


@pytest.mark.parametrize("tz", [None, "", "garbage", "CST-99:00:00", "-8:00"])
def test_posix_offset_unreadable(tz):
    assert H.posix_utc_offset(tz) is None


def test_time_with_offset_converts_to_utc():
    utc, offset, tz, mode = H.parse_time(xml("time_offset.xml"))
    assert utc == dt.datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    assert offset == dt.timedelta(hours=8) and tz == "CST-8:00:00" and mode == "NTP"


def test_time_without_offset_uses_inverted_posix_sign():
    utc, offset, _, mode = H.parse_time(xml("time_no_offset.xml"))  # CST+5 = UTC-5 (Colombia)
    assert utc == dt.datetime(2024, 5, 1, 23, 0, tzinfo=UTC)
    assert offset == dt.timedelta(hours=-5) and mode == "manual"
    utc2, offset2, _, _ = H.parse_time(xml("time_dst.xml"))
    assert offset2 == dt.timedelta(hours=2) and utc2 == dt.datetime(2024, 5, 1, 16, 0, tzinfo=UTC)


def test_time_fallback_offset_when_zone_unreadable():
    root = X.parse(b"<Time><timeMode>NTP</timeMode><localTime>2024-05-01T18:00:00</localTime>"
                   b"<timeZone>weird</timeZone></Time>")
    assert H.parse_time(root)[0] is None
    utc, offset, _, _ = H.parse_time(root, dt.timedelta(hours=8))
    assert utc == dt.datetime(2024, 5, 1, 10, 0, tzinfo=UTC) and offset == dt.timedelta(hours=8)


def test_time_reset_to_1970():
    root = X.parse(b"<Time><timeMode>manual</timeMode><localTime>1970-01-01T08:00:41+08:00</localTime>"
                   b"<timeZone>CST-8:00:00</timeZone></Time>")
    assert H.parse_time(root)[0] == dt.datetime(1970, 1, 1, 0, 0, 41, tzinfo=UTC)


def test_ntp_servers_hostname_and_ip():
    assert H.parse_ntp_servers(xml("ntpServers.xml")) == ["ntp.edu.cn", "10.0.0.1"]


def test_storage_hdd_and_nas():
    disks = H.parse_storage(xml("storage_hdd1_nas1.xml"))
    assert [(d.id, d.status, d.capacity_mb, d.free_mb, d.read_only) for d in disks] == [
        ("1", "ok", 30436.0, 27392.0, False), ("nas9", "ok", 122346.0, 119552.0, False)]
    assert disks[1].name == "192.168.0.1:/pub/hik"


def test_storage_status_words_normalized_unknown_stays_unknown():
    disks = H.parse_storage(xml("storage_faults.xml"))
    assert [(d.status, d.raw_status) for d in disks] == [
        ("error", "error"), ("unformatted", "unformatted"), ("full", "sleeping"), ("error", "smartFailed"),
        ("unknown", "fancyNewWord")]
    assert disks[2].read_only is True
    assert H.parse_storage(xml("storage_empty.xml")) == []


def test_channel_status_merge():
    chans = H.parse_channels(xml("inputproxy_channels.xml"), xml("channel_status_nvr.xml"))
    assert [(c.id, c.online, c.detail, c.name) for c in chans] == [
        (1, True, "connect", "加工区"), (2, False, "notExist", "专间")]
    assert chans[0].ip == "192.168.1.64"


def test_channel_status_without_online_is_unknown_not_offline():
    chans = H.parse_channels(None, xml("channel_status_no_online.xml"))
    assert [(c.id, c.online) for c in chans] == [(1, None), (3, None)]


def test_search_request_matches_reference_shape():
    body = H.build_search("ABC", 301, dt.datetime(2024, 1, 1), dt.datetime(2024, 12, 31, 23, 59, 59), 40)
    ours, ref = X.parse(body), xml("cmsearch_request.xml")
    for path in ("trackIDList/trackID", "timeSpanList/timeSpan/startTime", "timeSpanList/timeSpan/endTime",
                 "maxResults", "searchResultPostion", "metadataList/metadataDescriptor"):
        assert X.find(ours, path) is not None, path
        assert X.find(ref, path) is not None, path
    assert X.text(ours, "trackIDList/trackID") == "301"
    assert X.text(ours, "searchResultPostion") == "40"
    assert X.text(ours, "timeSpanList/timeSpan/startTime") == X.text(ref, "timeSpanList/timeSpan/startTime")
    assert X.find(ours, "searchResultPosition") is None  # the misspelling is what firmware pages by


def test_search_result_psia_more():
    strg, num, items = H.parse_search_result(xml("cmsearch_result_psia.xml"))
    assert (strg, num) == ("MORE", 2)
    assert items == [(120, dt.datetime(2022, 12, 6, 8, 51, 13), dt.datetime(2022, 12, 6, 8, 51, 13))]
    assert items[0][1].tzinfo is None  # 'Z' is wall-clock time: the caller applies the device offset


def test_search_result_ok_and_no_matches():
    strg, num, items = H.parse_search_result(xml("cmsearch_result_ok.xml"))
    assert (strg, num, len(items)) == ("OK", 2, 2)
    assert H.parse_search_result(xml("cmsearch_result_nomatches.xml"))[:2] == ("NO MATCHES", 0)


def test_local_with_z_times_become_utc_with_device_offset():
    _, _, items = H.parse_search_result(xml("cmsearch_result_ok.xml"))
    offset = dt.timedelta(hours=8)
    spans = merge_spans([(H.to_utc(s, offset), H.to_utc(e, offset)) for _, s, e in items])
    assert spans == [(dt.datetime(2024, 5, 1, 0, 0, tzinfo=UTC), dt.datetime(2024, 5, 1, 2, 0, tzinfo=UTC))]


def test_merge_and_clip_spans():
    t = lambda h: dt.datetime(2024, 5, 1, h, tzinfo=UTC)  # noqa: E731
    spans = [(t(5), t(6)), (t(1), t(2)), (t(2), t(3)), (t(8), t(7))]
    assert merge_spans(spans) == [(t(1), t(3)), (t(5), t(6)), (t(7), t(8))]
    out = clipped(3, spans, t(2), t(7))
    assert [(s.channel, s.start, s.end) for s in out] == [(3, t(2), t(3)), (3, t(5), t(6))]


def test_admin_accesses_rtsp_port():
    assert H.parse_admin_accesses(xml("adminAccesses.xml"))["RTSP"] == 10554


def test_streaming_channels():
    chans = H.parse_streaming_channels(xml("streaming_channels.xml"))
    main, sub = chans
    assert (main["id"], main["channel"], main["main"], main["codec"], main["width"], main["height"]) == (
        101, 1, True, "H.265", 3840, 2160)
    assert main["fps"] == 25 and main["bitrate_kbps"] == 8192
    assert (sub["main"], sub["fps"], sub["bitrate_kbps"]) == (False, 15, 512)


def test_user_check_lock_and_unlock():
    assert H.parse_lock_info(xml("usercheck_lock.xml")) == (True, 1800, 0)
    assert H.parse_lock_info(xml("usercheck_unlock.xml")) == (False, 0, 4)


def test_response_status_descriptions():
    root = xml("response_status_badxmlcontent.xml")
    assert H.parse_response_status(root) == (6, "Invalid XML Content", "badXmlContent")
    assert "badXmlContent" in H.describe_status(root)
    assert H.parse_response_status(xml("response_status_deviceerror.xml"))[2] == "deviceError"


def test_upgrade_status():
    st = H.parse_upgrade_status(xml("upgradeStatus.xml"))
    assert (st.upgrading, st.percent, st.state) == (True, 42, "upgrading")

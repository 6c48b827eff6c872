"""Snapshots: per-vendor normalizers onto one schema, stable digests, diffs, baselines, drift, the CLI."""

from __future__ import annotations

import copy
import json

import pytest

from canteen_ops.drivers.base import Offline
from canteen_ops.inventory.loader import load_inventory
from canteen_ops.status import Status
from canteen_ops.tasks import snapshot as snap_mod
from canteen_ops.tasks.snapshot import assess_drift, diff, digest, normalize
from tests.conftest import EXAMPLE
from tests.fake_driver import FakeFleet

# Raw settings in the shapes the drivers return (ISAPI XML through xmlsafe.to_dict; Dahua key=value through
# kv.nest; ONVIF already structured).
HIK_RAW = {
    "vendor": "hikvision",
    "deviceInfo": {"deviceName": "粗加工间", "model": "DS-2CD2386G2-IU", "serialNumber": "DS-2CD2386G2-IU2023",
                   "macAddress": "44:19:B6:00:00:01", "firmwareVersion": "V5.7.18",
                   "firmwareReleasedDate": "build 240826", "deviceType": "IPCamera"},
    "time": {"timeMode": "NTP", "localTime": "2026-11-27T16:00:00+08:00", "timeZone": "CST-8:00:00"},
    "ntpServers": {"NTPServer": {"id": "1", "addressingFormatType": "hostname", "hostName": "ntp.edu.cn",
                                 "portNo": "123", "synchronizeInterval": "1440"}},
    "streamingChannels": {"StreamingChannel": [
        {"id": "101", "channelName": "Camera 01", "enabled": "true",
         "Video": {"videoCodecType": "H.265", "videoResolutionWidth": "1920", "videoResolutionHeight": "1080",
                   "videoQualityControlType": "VBR", "vbrUpperCap": "4096", "maxFrameRate": "2500"}},
        {"id": "102", "channelName": "Camera 01", "enabled": "true",
         "Video": {"videoCodecType": "H.264", "videoResolutionWidth": "640", "videoResolutionHeight": "480",
                   "videoQualityControlType": "CBR", "constantBitRate": "512", "maxFrameRate": "1500"}}]},
    "users": {"User": [{"id": "1", "userName": "admin", "userLevel": "Administrator"},
                       {"id": "2", "userName": "operator", "userLevel": "Operator"}]},
    "adminAccesses": {"AdminAccessProtocol": [
        {"id": "1", "enabled": "true", "protocol": "HTTP", "portNo": "80"},
        {"id": "4", "enabled": "true", "protocol": "RTSP", "portNo": "554"}]},
    "network": {"NetworkInterface": {"id": "1", "IPAddress": {"ipVersion": "v4", "addressingType": "static",
                                                              "ipAddress": "10.12.1.21",
                                                              "subnetMask": "255.255.255.0"},
                                     "Link": {"MACAddress": "44:19:b6:00:00:01"}}},
    "storage": {"hddList": {"hdd": {"id": "1", "freeSpace": "1204"}}},
}

DAHUA_RAW = {
    "vendor": "dahua",
    "systemInfo": {"deviceType": "DHI-NVR4208-8P-4KS2", "serialNumber": "7A0000000001", "processor": "ST7108"},
    "softwareVersion": "4.001.0000000.3.R,build:2023-03-14",
    "General": {"MachineName": "NVR", "LocalNo": "8", "LockLoginEnable": "true"},
    "NTP": {"Address": "pool.ntp.org", "Enable": "true", "Port": "123", "TimeZone": "13", "UpdatePeriod": "10"},
    "Encode": [{"MainFormat": [{"Video": {"BitRate": "4096", "Compression": "H.265", "FPS": "25", "Height": "1080",
                                          "Width": "1920"}}],
                "ExtraFormat": [{"Video": {"BitRate": "512", "Compression": "H.264", "FPS": "15", "Height": "480",
                                           "Width": "704"}}]}],
    "RecordMode": [{"Mode": "0"}, {"Mode": "0"}],
    "Record": [{"PreRecord": "6", "TimeSection": [["1 00:00:00-24:00:00", "0 00:00:00-24:00:00"]] * 7},
               {"PreRecord": "6", "TimeSection": [["1 00:00:00-24:00:00"]] * 7}],
    "ChannelTitle": [{"Name": "加工区"}, {"Name": "烹饪区"}],
    "Network": {"DefaultInterface": "eth0", "Hostname": "NVR", "HttpPort": "80", "TCPPort": "37777",
                "eth0": {"IPAddress": "10.13.1.10", "SubnetMask": "255.255.255.0", "PhysicalAddress": "E0:50:8B:00:00:01",
                         "DhcpEnable": "false"}},
    "RTSP": {"Enable": "true", "Port": "554"},
    "users": [{"Name": "admin", "Group": "admin", "Password": "should-never-appear"}, {"Name": "viewer", "Group": "user"}],
}

ONVIF_RAW = {
    "identity": {"manufacturer": "Generic", "model": "IPC-G2-ONVIF", "firmware": "2.4.1", "serial": "G2-0001",
                 "hardware_id": "1.0"},
    "network": [{"token": "eth0", "enabled": True, "name": "eth0", "mac": "00:11:22:33:44:55", "mtu": 1500,
                 "ipv4": ["10.12.1.26/24"], "dhcp": False}],
    "time": {"timezone": "CST-8", "mode": "NTP", "ntp_servers": ["127.0.0.1"], "ntp_enabled": True},
    "streams": [{"token": "VideoEncoder_1", "name": "MainStream", "codec": "H.264", "width": 1920, "height": 1080,
                 "fps": 25, "bitrate_kbps": 4096, "gov_length": 50, "quality": 4.0}],
    "users": [{"name": "operator", "level": "Operator"}, {"name": "admin", "level": "Administrator"}],
    "services": ["device", "media"], "system_backup": False, "ports": {"http": 80},
}

SCHEMA_KEYS = {"schema", "identity", "network", "time", "streams", "recording", "channels", "users", "ports"}


@pytest.mark.parametrize("vendor,raw", [("hikvision", HIK_RAW), ("dahua", DAHUA_RAW), ("onvif", ONVIF_RAW)])
def test_every_vendor_normalizes_to_one_schema(vendor, raw):
    s = normalize(vendor, copy.deepcopy(raw))
    assert set(s) == SCHEMA_KEYS
    assert s["identity"]["vendor"] == vendor and s["identity"]["model"] and s["identity"]["firmware"]
    main = [x for x in s["streams"] if x["main"]]
    assert main and main[0]["width"] == 1920 and main[0]["height"] == 1080 and main[0]["fps"] == 25
    assert s["time"]["ntp_enabled"] is True and s["time"]["ntp_servers"]
    assert [u["name"] for u in s["users"]] == sorted(u["name"] for u in s["users"])
    text = json.dumps(s, ensure_ascii=False)
    assert "should-never-appear" not in text and "password" not in text.lower()
    assert "localTime" not in text and "2026-11-27T16" not in text and "freeSpace" not in text  # volatile


def test_vendor_details():
    h = normalize("hikvision", copy.deepcopy(HIK_RAW))
    assert h["identity"]["firmware"] == "V5.7.18 build 240826"
    assert h["streams"][0] == {"channel": 1, "main": True, "codec": "H.265", "width": 1920, "height": 1080,
                               "fps": 25, "bitrate_kbps": 4096}
    assert h["streams"][1]["bitrate_kbps"] == 512 and h["streams"][1]["fps"] == 15
    assert h["ports"] == {"http": 80, "rtsp": 554} and h["time"]["ntp_servers"] == ["ntp.edu.cn"]
    assert h["network"]["interfaces"][0]["ipv4"] == ["10.12.1.21/24"]
    assert h["recording"]["mode"] is None  # not reported by the ISAPI read-out
    d = normalize("dahua", copy.deepcopy(DAHUA_RAW))
    assert d["recording"]["mode"] == "continuous"  # auto mode with a full-day regular schedule every day
    assert d["channels"][0] == {"id": 1, "name": "加工区", "source": None, "protocol": None}
    assert d["users"] == [{"name": "admin", "level": "admin"}, {"name": "viewer", "level": "user"}]
    assert d["ports"] == {"http": 80, "rtsp": 554, "tcp": 37777}
    raw = copy.deepcopy(DAHUA_RAW)
    raw["RecordMode"] = [{"Mode": "2"}, {"Mode": "2"}]
    assert normalize("dahua", raw)["recording"]["mode"] == "off"
    raw["RecordMode"] = [{"Mode": "1"}, {"Mode": "2"}]
    assert normalize("dahua", raw)["recording"]["mode"] == "mixed"


def test_hostile_numbers_become_none_not_an_internal_error():
    """Device text that Python's int()/float() would take or choke on ("1e999" overflows, "nan", Unicode
    digits "١٢", "²" that isdigit() calls a digit) reads as "not given" (None); the snapshot is still made."""
    from canteen_ops.drivers import settings as S
    for hostile in ("1e999", "-1e999", "nan", "inf", "١٢", "²", "9" * 5000):
        assert S.to_int(hostile) is None and S.num(hostile) is None, hostile
    assert S.to_int(" 12 ") == 12 and S.num("12.3456") == 12.346 and S.num("25") == 25 and S.to_int("12.7") == 12
    raw = copy.deepcopy(DAHUA_RAW)
    raw["Encode"][0]["MainFormat"][0]["Video"].update(Width="1e999", Height="١٢", FPS="nan", BitRate="inf")
    raw["Record"][0]["TimeSection"] = [["² 00:00:00-24:00:00", "1" * 5000 + " 00:00:00-24:00:00"]] * 7
    raw["Network"]["HttpPort"] = "1e999"
    d = normalize("dahua", raw)
    main = [x for x in d["streams"] if x["main"]][0]
    assert (main["width"], main["height"], main["fps"], main["bitrate_kbps"]) == (None, None, None, None)
    assert d["recording"]["schedule"]["1"] == {"every day": []}  # no readable section on channel 1
    assert d["recording"]["mode"] == "mixed"  # channel 1 is no longer "continuous"; channel 2 still is
    assert "http" not in d["ports"] and d["ports"]["rtsp"] == 554
    h = copy.deepcopy(HIK_RAW)
    h["streamingChannels"]["StreamingChannel"][0]["Video"].update(videoResolutionWidth="1e999", maxFrameRate="nan")
    main = normalize("hikvision", h)["streams"][0]
    assert main["width"] is None and main["fps"] is None and main["height"] == 1080


def test_digest_is_stable_and_ignores_volatile_fields():
    a = normalize("hikvision", copy.deepcopy(HIK_RAW))
    raw = copy.deepcopy(HIK_RAW)
    raw["time"]["localTime"] = "2030-01-01T00:00:00+08:00"
    raw["storage"]["hddList"]["hdd"]["freeSpace"] = "1"
    raw["users"]["User"].reverse()  # order on the wire does not matter
    assert digest(normalize("hikvision", raw)) == digest(a)
    raw["streamingChannels"]["StreamingChannel"][0]["Video"]["videoResolutionWidth"] = "1280"
    assert digest(normalize("hikvision", raw)) != digest(a)


def test_diff_uses_dotted_paths_and_matches_records_by_identity():
    a = normalize("hikvision", copy.deepcopy(HIK_RAW))
    raw = copy.deepcopy(HIK_RAW)
    raw["streamingChannels"]["StreamingChannel"][0]["Video"]["videoResolutionWidth"] = "1280"
    raw["streamingChannels"]["StreamingChannel"][0]["Video"]["videoResolutionHeight"] = "720"
    raw["time"]["timeMode"] = "manual"
    raw["users"]["User"] = raw["users"]["User"][:1] + [{"userName": "guest", "userLevel": "Viewer"}]
    changes = [c.render() for c in diff(a, normalize("hikvision", raw))]
    assert "streams[ch1-main].width: 1920 → 1280" in changes
    assert "streams[ch1-main].height: 1080 → 720" in changes
    assert 'time.mode: "NTP" → "manual"' in changes
    assert "time.ntp_enabled: true → false" in changes
    assert 'users[operator]: {"level": "Operator", "name": "operator"} → (absent)' in changes
    assert 'users[guest]: (absent) → {"level": "Viewer", "name": "guest"}' in changes
    assert diff(a, copy.deepcopy(a)) == []


@pytest.fixture
def inv():
    return load_inventory(EXAMPLE)


def _row(snap, sid="s1"):
    return {"id": sid, "sha256": digest(snap), "data": snap}


def test_drift_policy_rules(inv):
    nvr, cam = inv.device("hd-nvr-01"), inv.device("xc-cam-01")
    good = normalize("dahua", copy.deepcopy(DAHUA_RAW))
    rep = assess_drift(nvr, _row(good), _row(good, "b"))
    assert rep.status is Status.OK and "matches the accepted baseline" in rep.summary
    raw = copy.deepcopy(DAHUA_RAW)
    raw["RecordMode"] = [{"Mode": "2"}, {"Mode": "2"}]
    raw["NTP"]["Enable"] = "false"
    bad = normalize("dahua", raw)
    rep = assess_drift(nvr, _row(bad), _row(good, "b"))
    assert rep.status is Status.CRIT
    assert "recording mode is off" in rep.summary and "NTP is not configured" in rep.summary
    assert "setting(s) differ from the baseline" in rep.summary
    raw = copy.deepcopy(HIK_RAW)
    raw["streamingChannels"]["StreamingChannel"][0]["Video"].update(videoResolutionWidth="1280",
                                                                    videoResolutionHeight="720")
    low = normalize("hikvision", raw)
    rep = assess_drift(cam, _row(low), None)
    assert rep.status is Status.WARN and "1280x720, below the policy minimum 1920x1080" in rep.summary
    rep = assess_drift(cam, _row(normalize("hikvision", copy.deepcopy(HIK_RAW))), None)
    assert rep.status is Status.UNKNOWN and "no accepted baseline" in " ".join(rep.notes)
    assert assess_drift(cam, None, None).status is Status.UNKNOWN


# --- CLI ----------------------------------------------------------------------------------------------------------
@pytest.fixture
def fleet(monkeypatch):
    f = FakeFleet()
    monkeypatch.setattr(snap_mod, "_default_factory", f.factory)
    return f


def test_cli_take_accept_diff_drift(cli, fleet):
    fleet["hd-nvr-01"].settings = copy.deepcopy(DAHUA_RAW)
    fleet["xc-cam-01"].settings = copy.deepcopy(HIK_RAW)
    sel = ["-d", "hd-nvr-01", "-d", "xc-cam-01"]
    r = cli("-i", EXAMPLE, "snapshot", "take", *sel)
    assert r.code == 0, r
    r = cli("-i", EXAMPLE, "snapshot", "drift", *sel)
    assert r.code == 3 and "no baseline" in r.out  # nothing accepted yet
    r = cli("-i", EXAMPLE, "snapshot", "accept", "--all", *sel[:0], "--school", "hd-yucai-zx")
    assert r.code == 0 and "hd-nvr-01: baseline is now" in r.out
    assert "hd-cam-01: no snapshot to accept" in r.err
    assert cli("-i", EXAMPLE, "snapshot", "accept", "xc-cam-01").code == 0
    r = cli("-i", EXAMPLE, "snapshot", "drift", *sel)
    assert r.code == 0, r

    # Identical settings are confirmed, not stored again.
    r = cli("-i", EXAMPLE, "snapshot", "take", *sel)
    assert r.code == 0 and "unchanged since snapshot" in r.out
    r = cli("-i", EXAMPLE, "snapshot", "diff", "xc-cam-01")
    assert r.code == 66 and "a diff needs two" in r.err

    # Someone lowers the resolution and switches NTP off on the camera.
    raw = fleet["xc-cam-01"].settings
    raw["streamingChannels"]["StreamingChannel"][0]["Video"].update(videoResolutionWidth="1280",
                                                                    videoResolutionHeight="720")
    raw["time"]["timeMode"] = "manual"
    r = cli("-i", EXAMPLE, "snapshot", "drift", "--take", *sel)
    assert r.code == 1, r
    assert "streams[ch1-main].width: 1920 → 1280" in r.out
    assert "NTP is not configured" in r.out and "below the policy minimum" in r.out
    r = cli("-i", EXAMPLE, "snapshot", "diff", "xc-cam-01")
    assert r.code == 1 and "streams[ch1-main].height: 1080 → 720" in r.out
    r = cli("-i", EXAMPLE, "snapshot", "diff", "xc-cam-01", "--json")
    paths = [c["path"] for c in json.loads(r.out)["changes"]]
    assert "time.mode" in paths and "streams[ch1-main].width" in paths

    # The NVR stops recording: critical.
    fleet["hd-nvr-01"].settings["RecordMode"] = [{"Mode": "2"}, {"Mode": "2"}]
    r = cli("-i", EXAMPLE, "snapshot", "drift", "--take", "-d", "hd-nvr-01")
    assert r.code == 2 and "recording mode is off" in r.out

    # Accepting the new state makes the change the baseline; the policy violations stay.
    assert cli("-i", EXAMPLE, "snapshot", "accept", "xc-cam-01").code == 0
    r = cli("-i", EXAMPLE, "snapshot", "drift", "-d", "xc-cam-01", "--json")
    (rep,) = json.loads(r.out)
    assert rep["status"] == "warn" and rep["data"]["changes"] == []
    assert {v["rule"][:20] for v in rep["data"]["violations"]} == {"NTP is not configure", "channel 1 main strea"}

    r = cli("-i", EXAMPLE, "snapshot", "show", "xc-cam-01", "--history")
    assert r.code == 0 and r.out.count("sha256") == 2 and "baseline" in r.out
    r = cli("-i", EXAMPLE, "snapshot", "show", "xc-cam-01")
    assert r.code == 0 and '"model": "DS-2CD2386G2-IU"' in r.out


def test_cli_take_unreachable_device(cli, fleet):
    fleet["xc-cam-02"].error = Offline("connection refused")
    r = cli("-i", EXAMPLE, "snapshot", "take", "-d", "xc-cam-02")
    assert r.code == 3 and "connection refused" in r.err
    r = cli("-i", EXAMPLE, "snapshot", "drift", "-d", "xc-cam-02")
    assert r.code == 3 and "no snapshot taken yet" in r.out


def _age_snapshots(db, device, hours):
    """Back-date a device's snapshots (as if taken `hours` ago)."""
    import datetime as dt
    import sqlite3

    from canteen_ops.timeutil import iso, utcnow

    conn = sqlite3.connect(db)
    conn.execute("UPDATE snapshots SET created_at = ? WHERE device_id = ?",
                 [iso(utcnow() - dt.timedelta(hours=hours)), device])
    conn.commit()
    conn.close()


def test_cli_diff_since_fleet_wide(cli, fleet, tmp_path):
    fleet["hd-nvr-01"].settings = copy.deepcopy(DAHUA_RAW)
    fleet["xc-cam-01"].settings = copy.deepcopy(HIK_RAW)
    fleet["xc-cam-02"].settings = copy.deepcopy(HIK_RAW)
    sel = ["-d", "hd-nvr-01", "-d", "xc-cam-0[12]"]
    assert cli("-i", EXAMPLE, "snapshot", "take", *sel).code == 0
    for dev in ("hd-nvr-01", "xc-cam-01", "xc-cam-02"):
        _age_snapshots(tmp_path / "log.db", dev, 48)
    r = cli("-i", EXAMPLE, "snapshot", "diff", "--since", "24h")
    assert r.code == 0 and "0 changed" in r.out, r

    # Overnight someone switches NTP off on one camera; another camera is first snapshotted today.
    fleet["xc-cam-01"].settings["time"]["timeMode"] = "manual"
    fleet["xc-cam-03"].settings = copy.deepcopy(HIK_RAW)
    assert cli("-i", EXAMPLE, "snapshot", "take", *sel, "-d", "xc-cam-03").code == 0
    r = cli("-i", EXAMPLE, "snapshot", "diff", "--since", "24h")
    assert r.code == 1, r
    assert "2 changed" in r.out and "xc-shiyan-xx/xc-cam-01: 2 fields changed" in r.out
    assert "time.mode" in r.out and "first snapshot" in r.out and "xc-cam-02" not in r.out
    assert "hd-nvr-01" not in r.out
    r = cli("-i", EXAMPLE, "snapshot", "diff", "--since", "24h", "--school", "海淀区育才中学")
    assert r.code == 0 and "0 changed" in r.out
    r = cli("-i", EXAMPLE, "snapshot", "diff", "--since", "24h", "-d", "xc-cam-01", "--json")
    rep = json.loads(r.out)
    assert [d["device_id"] for d in rep["devices"]] == ["xc-cam-01"]
    assert [c["path"] for c in rep["devices"][0]["changes"]] == ["time.mode", "time.ntp_enabled"]
    assert cli("-i", EXAMPLE, "snapshot", "diff", "--since", "72h", "-d", "xc-cam-01").code == 1
    # usage
    assert cli("-i", EXAMPLE, "snapshot", "diff").code == 64
    assert cli("-i", EXAMPLE, "snapshot", "diff", "--since", "soon").code == 64
    assert cli("-i", EXAMPLE, "snapshot", "diff", "xc-cam-01", "abcdef", "--since", "24h").code == 64


def test_snapshot_times_are_in_the_inventory_time_zone(cli, fleet, tmp_path):
    text = EXAMPLE.read_text(encoding="utf-8").replace("settings:\n  timezone: Asia/Shanghai",
                                                         "settings:\n  timezone: Asia/Urumqi", 1)
    inv = tmp_path / "inv.yaml"
    inv.write_text(text, encoding="utf-8")
    assert load_inventory(inv).settings.timezone == "Asia/Urumqi"
    fleet["xc-cam-01"].settings = copy.deepcopy(HIK_RAW)
    assert cli("-i", inv, "snapshot", "take", "-d", "xc-cam-01").code == 0
    import sqlite3

    from canteen_ops.timeutil import local

    created = sqlite3.connect(tmp_path / "log.db").execute("SELECT created_at FROM snapshots").fetchone()[0]
    r = cli("-i", inv, "snapshot", "show", "xc-cam-01", "--history")
    assert local(created, "Asia/Urumqi") in r.out and local(created, "Asia/Shanghai") not in r.out

"""The lab's Dahua CGI devices, driven with httpx + DigestAuth (or BasicAuth) over real loopback sockets.

Assertions follow protocols.md §B: key=value lines with CRLF, `table.` prefixes, `OK` for writes,
`Error\\r\\nBad Request!`, the mediaFileFind flow, the storage sample's keys; plus the faults.
"""

from __future__ import annotations

import datetime as dt
import json
import time

import httpx
import pytest

from canteen_ops.lab.firmware import firmware_image


def kv(body: str) -> dict[str, str]:
    """Parse key=value lines, splitting on the first '=' only (values may contain '=')."""
    out = {}
    for line in body.split("\r\n"):
        if line:
            k, sep, v = line.partition("=")
            assert sep, f"not a key=value line: {line!r}"
            out[k] = v
    return out


def client(lab, dev, password=None, basic=False, timeout=5.0):
    user, pw = lab.credentials(dev.id)
    auth = (httpx.BasicAuth if basic else httpx.DigestAuth)(user, password or pw)
    return httpx.Client(base_url=lab.url(dev.id), auth=auth, timeout=timeout, verify=False)


def cgi(lab, dev, path, **params):
    with client(lab, dev) as c:
        r = c.get(path, params=params)
    assert r.status_code == 200, (r.status_code, r.text)
    assert r.headers["content-type"] == "text/plain;charset=utf-8"
    return r.text


@pytest.fixture
def cam(lab):
    return lab.first("dahua", "camera")


@pytest.fixture
def nvr(lab):
    return lab.first("dahua", "nvr")


def now_local():
    return (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=8)).replace(tzinfo=None)


# --- magicBox, time ----------------------------------------------------------------------------------------------
def test_magic_box(lab, cam):
    info = kv(cgi(lab, cam, "/cgi-bin/magicBox.cgi", action="getSystemInfo"))
    assert info["deviceType"] == cam.model and info["serialNumber"] == cam.serial
    assert {"appAutoStart", "hardwareVersion", "processor", "updateSerial"} <= info.keys()
    body = cgi(lab, cam, "/cgi-bin/magicBox.cgi", action="getSoftwareVersion")
    assert body == f"version={cam.firmware}\r\n" and "," in cam.firmware and "build:" in cam.firmware
    assert kv(cgi(lab, cam, "/cgi-bin/magicBox.cgi", action="getSerialNo")) == {"sn": cam.serial}
    assert kv(cgi(lab, cam, "/cgi-bin/magicBox.cgi", action="getDeviceType")) == {"type": cam.model}
    assert kv(cgi(lab, cam, "/cgi-bin/magicBox.cgi", action="getMachineName")) == {"name": cam.name}


def test_firmware_faults(lab, lab_faults, cam):
    lab_faults.set(cam.id, "old-firmware")
    assert kv(cgi(lab, cam, "/cgi-bin/magicBox.cgi", action="getSoftwareVersion"))["version"] == \
        "2.800.0000000.8.R,build:2019-03-04"
    lab_faults.set(cam.id, "vulnerable-firmware")
    assert kv(cgi(lab, cam, "/cgi-bin/magicBox.cgi", action="getSoftwareVersion"))["version"] == \
        "2.400.0000000.16.R,build:2016-11-01"


def _device_time(lab, dev) -> dt.datetime:
    body = cgi(lab, dev, "/cgi-bin/global.cgi", action="getCurrentTime")
    assert body.startswith("result=") and body.endswith("\r\n")
    return dt.datetime.strptime(kv(body)["result"], "%Y-%m-%d %H:%M:%S")  # local time, no zone


def test_current_time_and_clock_faults(lab, lab_faults, cam):
    assert abs((_device_time(lab, cam) - now_local()).total_seconds()) < 3
    lab_faults.set(cam.id, "clock-drift", "-300")
    assert abs((_device_time(lab, cam) - now_local()).total_seconds() + 300) < 3
    lab_faults.set(cam.id, "clock-reset")
    assert _device_time(lab, cam).year == 1970


def test_set_current_time(lab, lab_faults, cam):
    lab_faults.set(cam.id, "clock-reset")
    with client(lab, cam) as c:
        r = c.get("/cgi-bin/global.cgi", params={"action": "setCurrentTime", "time": f"{now_local():%Y-%m-%d %H:%M:%S}"})
    assert r.text == "OK\r\n"
    assert abs((_device_time(lab, cam) - now_local()).total_seconds()) < 3


# --- configManager ----------------------------------------------------------------------------------------------
def test_get_config_tables(lab, lab_faults, nvr):
    general = kv(cgi(lab, nvr, "/cgi-bin/configManager.cgi", action="getConfig", name="General"))
    assert general["table.General.MachineName"] == nvr.name
    assert (general["table.General.LockLoginEnable"], general["table.General.LockLoginTimes"]) == ("true", "5")
    ntp = kv(cgi(lab, nvr, "/cgi-bin/configManager.cgi", action="getConfig", name="NTP"))
    assert (ntp["table.NTP.Address"], ntp["table.NTP.Enable"], ntp["table.NTP.Port"]) == (nvr.ntp_server, "true", "123")
    assert "table.NTP.TimeZone" in ntp and "table.NTP.UpdatePeriod" in ntp
    enc = kv(cgi(lab, nvr, "/cgi-bin/configManager.cgi", action="getConfig", name="Encode"))
    assert enc["table.Encode[0].MainFormat[0].Video.Width"] == "1920"
    assert enc["table.Encode[0].MainFormat[0].Video.Height"] == "1080"
    assert enc["table.Encode[1].MainFormat[0].Video.Compression"] == "H.264"
    assert f"table.Encode[{len(nvr.channels) - 1}].MainFormat[0].Video.FPS" in enc
    mode = kv(cgi(lab, nvr, "/cgi-bin/configManager.cgi", action="getConfig", name="RecordMode"))
    assert mode["table.RecordMode[0].Mode"] == "1"  # continuous = manual (always)
    titles = kv(cgi(lab, nvr, "/cgi-bin/configManager.cgi", action="getConfig", name="ChannelTitle"))
    assert [titles[f"table.ChannelTitle[{i}].Name"] for i in range(len(nvr.channels))] == [c.name for c in nvr.channels]
    locales = kv(cgi(lab, nvr, "/cgi-bin/configManager.cgi", action="getConfig", name="Locales"))
    assert locales["table.Locales.TimeFormat"] == "yyyy-MM-dd HH:mm:ss"
    lab_faults.set(nvr.id, "ntp-off")
    assert kv(cgi(lab, nvr, "/cgi-bin/configManager.cgi", action="getConfig", name="NTP"))["table.NTP.Enable"] == "false"
    with client(lab, nvr) as c:
        r = c.get("/cgi-bin/configManager.cgi", params={"action": "getConfig", "name": "NoSuchTable"})
    assert r.status_code == 400 and r.text == "Error\r\nBad Request!\r\n"


def test_set_config_changes_the_device(lab, lab_faults, nvr):
    lab_faults.touch(nvr.id)
    with client(lab, nvr) as c:
        r = c.get("/cgi-bin/configManager.cgi", params={
            "action": "setConfig", "NTP.Address": "10.1.1.1", "RecordMode[0].Mode": "2",
            "Encode[1].MainFormat[0].Video.Width": "1280", "Encode[1].MainFormat[0].Video.Height": "720"})
        assert r.status_code == 200 and r.text == "OK\r\n"
        r = c.get("/cgi-bin/configManager.cgi", params={"action": "setConfig", "Bogus.Key": "1",
                                                          "NTP.Address": "10.2.2.2"})
        assert r.status_code == 400  # all or nothing
    assert nvr.ntp_server == "10.1.1.1" and nvr.record_mode == "off"
    assert (nvr.channels[1].width, nvr.channels[1].height) == (1280, 720)
    enc = kv(cgi(lab, nvr, "/cgi-bin/configManager.cgi", action="getConfig", name="Encode"))
    assert enc["table.Encode[1].MainFormat[0].Video.Width"] == "1280"


def test_config_backup_json(lab, lab_faults, cam):
    with client(lab, cam) as c:
        r = c.get("/cgi-bin/Config.backup", params={"action": "All"})
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
        cfg = json.loads(r.content)
        assert r.text.startswith("{\n    ")  # pretty-printed
        assert cfg["NTP"]["Address"] == cam.ntp_server and cfg["General"]["MachineName"] == cam.name
        assert c.get("/cgi-bin/Config.backup", params={"action": "All"}).content == r.content  # deterministic
        lab_faults.setting(cam.id, "channel.1.width", "1280")
        assert json.loads(c.get("/cgi-bin/Config.backup", params={"action": "All"}).content)[
            "Encode"][0]["MainFormat"][0]["Video"]["Width"] == 1280


# --- storage, recordings, video loss -------------------------------------------------------------------------------
def _storage(lab, dev):
    return kv(cgi(lab, dev, "/cgi-bin/storageDevice.cgi", action="getDeviceAllInfo"))


def test_storage_and_disk_faults(lab, lab_faults, nvr):
    s = _storage(lab, nvr)
    assert s["list.info[0].State"] == "Success" and s["list.info[0].Name"] == "/dev/sda"
    assert s["list.info[0].Detail[0].Path"] == "/dev/sda0" and s["list.info[0].Detail[0].IsError"] == "false"
    total = sum(float(s[f"list.info[0].Detail[{i}].TotalBytes"]) for i in (0, 1))
    used = sum(float(s[f"list.info[0].Detail[{i}].UsedBytes"]) for i in (0, 1))
    assert total == 3815447 * 1024 * 1024 and 0 < total - used
    assert s["list.info[0].Detail[0].TotalBytes"].endswith(".000000")
    lab_faults.set(nvr.id, "hdd-error")
    s = _storage(lab, nvr)
    assert s["list.info[0].State"] == "Failure" and s["list.info[0].Detail[0].IsError"] == "true"
    lab_faults.clear(nvr.id, "hdd-error")
    lab_faults.set(nvr.id, "hdd-full")
    s = _storage(lab, nvr)
    assert all(s[f"list.info[0].Detail[{i}].UsedBytes"] == s[f"list.info[0].Detail[{i}].TotalBytes"] for i in (0, 1))
    lab_faults.clear(nvr.id, "hdd-full")
    lab_faults.set(nvr.id, "hdd-unformatted")
    assert _storage(lab, nvr)["list.info[0].State"] == "Unformatted"
    lab_faults.set(nvr.id, "no-hdd")
    assert _storage(lab, nvr) == {}


def _find_all(c, channel, start, end, count=100):
    """The four-step mediaFileFind flow; returns every item."""
    oid = kv(c.get("/cgi-bin/mediaFileFind.cgi", params={"action": "factory.create"}).text)["result"]
    r = c.get("/cgi-bin/mediaFileFind.cgi", params={
        "action": "findFile", "object": oid, "condition.Channel": channel,
        "condition.StartTime": f"{start:%Y-%m-%d %H:%M:%S}", "condition.EndTime": f"{end:%Y-%m-%d %H:%M:%S}"})
    assert r.text == "OK\r\n"
    items = []
    while True:
        page = kv(c.get("/cgi-bin/mediaFileFind.cgi", params={"action": "findNextFile", "object": oid,
                                                              "count": count}).text)
        n = int(page["found"])
        if n == 0:
            break
        assert n <= count
        items += [{k.split(".", 1)[1]: v for k, v in page.items() if k.startswith(f"items[{i}].")} for i in range(n)]
    assert c.get("/cgi-bin/mediaFileFind.cgi", params={"action": "close", "object": oid}).text == "OK\r\n"
    assert c.get("/cgi-bin/mediaFileFind.cgi", params={"action": "destroy", "object": oid}).text == "OK\r\n"
    return items


def test_media_file_find_flow_and_retention(lab, lab_faults, nvr):
    lab_faults.set(nvr.id, "retention", "2")
    with client(lab, nvr) as c:
        items = _find_all(c, 2, dt.datetime(2000, 1, 1), now_local() + dt.timedelta(hours=1), count=7)
        assert c.get("/cgi-bin/mediaFileFind.cgi", params={"action": "findNextFile", "object": "1",
                                                           "count": 5}).status_code == 400
    assert 48 <= len(items) <= 50
    first = items[0]
    assert first["Channel"] == "1" and first["Type"] == "dav" and first["Flags[0]"] == "Timing"
    assert first["FilePath"].startswith("/mnt/dvr/") and int(first["Length"]) > 0
    oldest = dt.datetime.strptime(first["StartTime"], "%Y-%m-%d %H:%M:%S")
    assert abs((now_local() - oldest).total_seconds() - 2 * 86400) < 5
    assert int(first["Duration"]) == (dt.datetime.strptime(first["EndTime"], "%Y-%m-%d %H:%M:%S") - oldest).seconds
    assert all(a["EndTime"] == b["StartTime"] for a, b in zip(items, items[1:]))  # continuous


def test_media_file_find_gaps(lab, lab_faults, nvr):
    lab_faults.set(nvr.id, "gaps", "3")
    with client(lab, nvr) as c:
        items = _find_all(c, 1, now_local() - dt.timedelta(hours=24), now_local() + dt.timedelta(minutes=1))
    holes = [(a["EndTime"], b["StartTime"]) for a, b in zip(items, items[1:]) if a["EndTime"] != b["StartTime"]]
    assert len(holes) == 3


def test_media_file_find_leaked_finders_run_out(lab, lab_faults, nvr):
    lab_faults.touch(nvr.id)
    with client(lab, nvr) as c:
        codes = [c.get("/cgi-bin/mediaFileFind.cgi", params={"action": "factory.create"}).status_code
                 for _ in range(17)]
    assert codes[:16] == [200] * 16 and codes[16] == 400


def test_video_loss_events(lab, lab_faults, nvr):
    body = cgi(lab, nvr, "/cgi-bin/eventManager.cgi", action="getEventIndexes", code="VideoLoss")
    assert body == "Error: No Events\r\n"
    lab_faults.set(nvr.id, "channel-offline", "3")
    assert kv(cgi(lab, nvr, "/cgi-bin/eventManager.cgi", action="getEventIndexes", code="VideoLoss")) == \
        {"channels[0]": "2"}


# --- firmware upgrade -------------------------------------------------------------------------------------------------
def test_upgrader(lab, lab_faults, cam, monkeypatch):
    from canteen_ops.lab import state as state_mod

    monkeypatch.setattr(state_mod, "UPGRADE_SECONDS", 1.5)  # long enough to see "upgrading" on a busy machine
    lab_faults.set(cam.id, "vulnerable-firmware")
    assert kv(cgi(lab, cam, "/cgi-bin/upgrader.cgi", action="getState")) == {"State": "Idle", "Progress": "0"}
    new = "2.840.0000000.9.R,build:2024-10-10"
    with client(lab, cam) as c:
        r = c.post("/cgi-bin/upgrader.cgi", params={"action": "uploadFirmware"},
                   files={"firmware": ("fw.bin", firmware_image("dahua", "OTHER", new))})
        assert r.status_code == 400
        r = c.post("/cgi-bin/upgrader.cgi", params={"action": "uploadFirmware"},
                   files={"firmware": ("fw.bin", firmware_image("dahua", cam.model, new))})
        assert r.text == "OK\r\n"
    assert kv(cgi(lab, cam, "/cgi-bin/upgrader.cgi", action="getState"))["State"] == "Upgrading"
    time.sleep(1.6)
    assert kv(cgi(lab, cam, "/cgi-bin/upgrader.cgi", action="getState")) == {"State": "Succeeded", "Progress": "100"}
    assert kv(cgi(lab, cam, "/cgi-bin/magicBox.cgi", action="getSoftwareVersion"))["version"] == new


# --- authentication ---------------------------------------------------------------------------------------------------
def test_digest_challenge_realm(lab, lab_faults, cam):
    lab_faults.touch(cam.id)
    r = httpx.get(lab.url(cam.id) + "/cgi-bin/magicBox.cgi?action=getSerialNo", timeout=5, verify=False)
    assert r.status_code == 401 and cam.failed_logins == 0
    ch = r.headers["www-authenticate"]
    assert ch.startswith("Digest ") and f'realm="Login to {cam.serial}"' in ch and 'qop="auth"' in ch
    assert "opaque=" in ch


def test_wrong_password_then_lock(lab, lab_faults, cam):
    lab_faults.set(cam.id, "lock-after", "2")
    with client(lab, cam, password="wrong") as c:
        r = c.get("/cgi-bin/magicBox.cgi", params={"action": "getSerialNo"})
        assert r.status_code == 401 and cam.failed_logins == 1 and r.text == "Error\r\nInvalid Authority!\r\n"
    with client(lab, cam, password="wrong") as c:
        r = c.get("/cgi-bin/magicBox.cgi", params={"action": "getSerialNo"})
    # The failed login that locks: 403 with the HasBeenLocked JSON (issue 15), RmLock = seconds left.
    assert r.status_code == 403 and cam.is_locked()
    assert r.json() == {"ErrorCode": 268632081, "Result": False, "RmLock": cam.unlock_in_s(), "RmLogin": 0}
    with client(lab, cam) as c:  # the right password no longer helps
        r = c.get("/cgi-bin/magicBox.cgi", params={"action": "getSerialNo"})
    assert r.status_code == 403 and r.json()["ErrorCode"] == 268632081
    r = httpx.get(lab.url(cam.id) + "/cgi-bin/magicBox.cgi?action=getSerialNo", timeout=5)
    assert r.status_code == 401 and r.text == "" and "Digest" in r.headers["www-authenticate"]
    lab_faults.clear(cam.id, "lock-after")
    assert kv(cgi(lab, cam, "/cgi-bin/magicBox.cgi", action="getSerialNo")) == {"sn": cam.serial}


def test_basic_only_device(lab, lab_faults, nvr):
    lab_faults.setting(nvr.id, "auth", "basic")
    r = httpx.get(lab.url(nvr.id) + "/cgi-bin/magicBox.cgi?action=getSerialNo", timeout=5, verify=False)
    assert r.status_code == 401 and r.headers["www-authenticate"] == 'Basic realm="Device_CGI"'
    with client(lab, nvr, basic=True) as c:
        assert kv(c.get("/cgi-bin/magicBox.cgi", params={"action": "getSerialNo"}).text) == {"sn": nvr.serial}
    with client(lab, nvr) as c:  # a Digest client gets no Digest challenge: it never answers, nothing counted
        assert c.get("/cgi-bin/magicBox.cgi", params={"action": "getSerialNo"}).status_code == 401
    assert nvr.failed_logins == 0
    with client(lab, nvr, basic=True, password="wrong") as c:
        assert c.get("/cgi-bin/magicBox.cgi", params={"action": "getSerialNo"}).status_code == 401
    assert nvr.failed_logins == 1


def test_unknown_cgi_and_action(lab, cam):
    with client(lab, cam) as c:
        r = c.get("/cgi-bin/nosuch.cgi", params={"action": "x"})
        assert r.status_code == 404
        r = c.get("/cgi-bin/magicBox.cgi", params={"action": "nosuch"})
        assert r.status_code == 400 and r.text == "Error\r\nBad Request!\r\n"


# --- transport faults on a Dahua device ---------------------------------------------------------------------------------
def test_transport_faults(lab, lab_faults, cam):
    lab_faults.set(cam.id, "offline")
    with pytest.raises(httpx.ConnectError):
        httpx.get(lab.url(cam.id) + "/cgi-bin/magicBox.cgi?action=getSerialNo", timeout=2, verify=False)
    lab_faults.clear(cam.id, "offline")
    lab_faults.set(cam.id, "blackhole")
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(lab.url(cam.id) + "/cgi-bin/magicBox.cgi?action=getSerialNo", timeout=0.3, verify=False)
    lab_faults.clear(cam.id, "blackhole")
    lab_faults.set(cam.id, "malformed-xml")
    body = cgi(lab, cam, "/cgi-bin/configManager.cgi", action="getConfig", name="Encode")
    assert any("=" not in line for line in body.split("\r\n") if line)
    lab_faults.clear(cam.id, "malformed-xml")
    lab_faults.set(cam.id, "oversized-body")
    with client(lab, cam) as c:
        with c.stream("GET", "/cgi-bin/Config.backup", params={"action": "All"}) as r:
            assert int(r.headers["content-length"]) == 64 * 1024 * 1024
            assert len(next(r.iter_bytes())) > 0


def test_network_rtsp_and_users(lab, cam):
    net = kv(cgi(lab, cam, "/cgi-bin/configManager.cgi", action="getConfig", name="Network"))
    assert net["table.Network.DefaultInterface"] == "eth0"
    assert (net["table.Network.eth0.IPAddress"], net["table.Network.eth0.PhysicalAddress"]) == (cam.host, cam.mac)
    rtsp = kv(cgi(lab, cam, "/cgi-bin/configManager.cgi", action="getConfig", name="RTSP"))
    assert rtsp["table.RTSP.Port"] == str(cam.rtsp_port)
    users = kv(cgi(lab, cam, "/cgi-bin/userManager.cgi", action="getUserInfoAll"))
    assert [users[f"users[{i}].Name"] for i in range(len(cam.users))] == [n for n, _ in cam.users]
    assert users["users[0].Group"] == "admin" and not any("Password" in k for k in users)

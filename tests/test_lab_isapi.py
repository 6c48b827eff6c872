"""The lab's Hikvision ISAPI devices, driven with httpx + DigestAuth over real loopback sockets.

Assertions follow protocols.md §A: namespaces, element names, ResponseStatus/userCheck bodies, the search
pagination and its quirks; plus every fault the lab can inject at the HTTP level.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import socket
import time

import httpx
import pytest
from defusedxml import ElementTree as DET

from canteen_ops.lab import digest
from canteen_ops.lab.firmware import firmware_image

HIK20 = "{http://www.hikvision.com/ver20/XMLSchema}"
ISAPI20 = "{http://www.isapi.org/ver20/XMLSchema}"


def local(el) -> str:
    return el.tag.rsplit("}", 1)[-1]


def find(root, name):
    return next((el for el in root.iter() if local(el) == name), None)


def text(root, name):
    el = find(root, name)
    return el.text if el is not None else None


def client(lab, dev, password=None, timeout=5.0):
    user, pw = lab.credentials(dev.id)
    return httpx.Client(base_url=lab.url(dev.id), auth=httpx.DigestAuth(user, password or pw), timeout=timeout,
                        verify=False)  # plain HTTP; skips building an SSL context per client


def get_xml(lab, dev, path):
    with client(lab, dev) as c:
        r = c.get(path)
    assert r.status_code == 200, r.text
    return DET.fromstring(r.content)


@pytest.fixture
def cam(lab):
    return lab.first("hikvision", "camera")


@pytest.fixture
def nvr(lab):
    return lab.first("hikvision", "nvr")


def search_body(tracks=(101,), start="2000-01-01T00:00:00Z", end="2037-12-31T23:59:59Z", max_results=40,
                position=0, spelling="searchResultPostion"):
    tl = "".join(f"<trackID>{t}</trackID>" for t in tracks)
    return (f'<?xml version="1.0" encoding="utf-8"?>\n<CMSearchDescription><searchID>C9827E2B-1</searchID>'
            f"<trackIDList>{tl}</trackIDList><timeSpanList><timeSpan><startTime>{start}</startTime>"
            f"<endTime>{end}</endTime></timeSpan></timeSpanList><maxResults>{max_results}</maxResults>"
            f"<{spelling}>{position}</{spelling}><metadataList><metadataDescriptor>//recordType.meta.std-cgi.com"
            "</metadataDescriptor></metadataList></CMSearchDescription>")


def search(lab, dev, **kw):
    with client(lab, dev) as c:
        r = c.post("/ISAPI/ContentMgmt/search", content=search_body(**kw))
    assert r.status_code == 200, r.text
    return DET.fromstring(r.content)


def items(root):
    return [(text(i, "trackID"), text(i, "startTime"), text(i, "endTime")) for i in root.iter()
            if local(i) == "searchMatchItem"]


# --- identity, namespaces -------------------------------------------------------------------------------------
def test_device_info_camera_and_nvr_namespaces(lab, cam, nvr):
    root = get_xml(lab, cam, "/ISAPI/System/deviceInfo")
    assert root.tag == HIK20 + "DeviceInfo" and root.get("version") == "2.0"
    assert text(root, "model") == cam.model and text(root, "serialNumber") == cam.serial
    assert text(root, "macAddress") == cam.mac and text(root, "deviceType") == "IPCamera"
    assert text(root, "firmwareVersion") == "V5.7.18" and text(root, "firmwareReleasedDate") == "build 240826"
    root = get_xml(lab, nvr, "/ISAPI/System/deviceInfo")
    assert root.tag == ISAPI20 + "DeviceInfo"
    assert text(root, "deviceType") == "NVR" and text(root, "firmwareVersion") == "V4.62.210"


def test_old_and_vulnerable_firmware(lab, lab_faults, cam):
    lab_faults.set(cam.id, "old-firmware")
    root = get_xml(lab, cam, "/ISAPI/System/deviceInfo")
    assert (text(root, "firmwareVersion"), text(root, "firmwareReleasedDate")) == ("V5.6.3", "build 200308")
    lab_faults.set(cam.id, "vulnerable-firmware")
    root = get_xml(lab, cam, "/ISAPI/System/deviceInfo")
    assert (text(root, "firmwareVersion"), text(root, "firmwareReleasedDate")) == ("V5.5.0", "build 170725")


def test_capabilities_tell_nvr_from_camera(lab, cam, nvr):
    nroot = get_xml(lab, nvr, "/ISAPI/System/capabilities")
    assert text(nroot, "inputProxyNums") == str(len(nvr.channels)) and text(nroot, "videoInputPortNums") == "0"
    croot = get_xml(lab, cam, "/ISAPI/System/capabilities")
    assert find(croot, "inputProxyNums") is None and text(croot, "videoInputPortNums") == "1"
    assert text(croot, "issupIllegalLoginLock") == "true"


def test_unknown_path_is_403_not_support(lab, cam):
    """As real firmware answers an ISAPI resource it does not offer (lab/isapi.py not_found)."""
    with client(lab, cam) as c:
        r = c.get("/ISAPI/No/Such/Thing")
        assert r.status_code == 403
        root = DET.fromstring(r.content)
        assert local(root) == "ResponseStatus" and root.tag.startswith(HIK20)
        assert (text(root, "requestURL"), text(root, "statusCode"), text(root, "statusString"),
                text(root, "subStatusCode")) == ("/ISAPI/No/Such/Thing", "4", "Invalid Operation", "notSupport")
        # cameras have no InputProxy resource; NVRs have no analog inputs (403 as in the fixture)
        assert c.get("/ISAPI/ContentMgmt/InputProxy/channels").status_code == 403  # as DS-2CD2146G2-ISU
        assert c.delete("/ISAPI/System/deviceInfo").status_code == 405


def test_nvr_video_inputs_forbidden(lab, nvr):
    with client(lab, nvr) as c:
        r = c.get("/ISAPI/System/Video/inputs/channels")
    assert r.status_code == 403 and text(DET.fromstring(r.content), "subStatusCode") == "notSupport"


# --- authentication and the illegal-login lock ------------------------------------------------------------------
def test_challenge_realm_and_unauthenticated_requests_do_not_count(lab, lab_faults, cam):
    lab_faults.touch(cam.id)
    for _ in range(7):
        r = httpx.get(lab.url(cam.id) + "/ISAPI/System/deviceInfo", timeout=5, verify=False)
        assert r.status_code == 401
    challenge = r.headers["www-authenticate"]
    assert challenge.startswith("Digest ") and 'qop="auth"' in challenge
    realm = re.search(r'realm="([^"]+)"', challenge).group(1)
    assert re.fullmatch(r"DS-[0-9a-f]{8}", realm)
    body = DET.fromstring(r.content)
    assert body.tag == ISAPI20 + "userCheck" and text(body, "lockStatus") == "unlock"
    assert cam.failed_logins == 0 and not cam.is_locked()


def test_wrong_password_counts_then_locks(lab, lab_faults, cam):
    lab_faults.set(cam.id, "lock-after", "3")
    left = []
    for _ in range(2):
        with client(lab, cam, password="wrong") as c:
            r = c.get("/ISAPI/System/deviceInfo")
        assert r.status_code == 401
        body = DET.fromstring(r.content)
        assert text(body, "statusValue") == "401" and text(body, "lockStatus") == "unlock"
        left.append(int(text(body, "retryLoginTime")))
    assert left == [2, 1] and cam.failed_logins == 2
    with client(lab, cam, password="wrong") as c:
        r = c.get("/ISAPI/System/deviceInfo")
    body = DET.fromstring(r.content)
    assert r.status_code == 401 and text(body, "lockStatus") == "lock"
    assert text(body, "retryLoginTime") == "0" and 1700 <= int(text(body, "unlockTime")) <= 1800
    with client(lab, cam) as c:  # now even the right password is refused
        r = c.get("/ISAPI/System/deviceInfo")
        assert r.status_code == 401 and text(DET.fromstring(r.content), "lockStatus") == "lock"
    lab_faults.clear(cam.id, "lock-after")
    assert get_xml(lab, cam, "/ISAPI/Security/userCheck").tag == ISAPI20 + "userCheck"


def test_locked_fault_and_user_check_probe(lab, lab_faults, cam):
    root = get_xml(lab, cam, "/ISAPI/Security/userCheck")
    assert (text(root, "statusValue"), text(root, "lockStatus"), text(root, "retryLoginTime")) == ("200", "unlock", "5")
    lab_faults.set(cam.id, "locked")
    r = httpx.get(lab.url(cam.id) + "/ISAPI/Security/userCheck", timeout=5, verify=False)
    assert r.status_code == 401 and text(DET.fromstring(r.content), "lockStatus") == "lock"


def test_wrong_password_fault_rejects_inventory_credentials(lab, lab_faults, cam):
    lab_faults.set(cam.id, "wrong-password")
    with client(lab, cam) as c:
        assert c.get("/ISAPI/System/deviceInfo").status_code == 401
    assert cam.failed_logins == 1


def test_stale_nonce_is_not_a_failed_login(lab, lab_faults, cam):
    lab_faults.touch(cam.id)
    user, pw = lab.credentials(cam.id)
    realm, uri = digest.realm(cam), "/ISAPI/System/time"
    nonce = digest.make_nonce(cam, at=time.time() - 3600)
    ha1 = hashlib.md5(f"{user}:{realm}:{pw}".encode()).hexdigest()
    ha2 = hashlib.md5(f"GET:{uri}".encode()).hexdigest()
    resp = hashlib.md5(f"{ha1}:{nonce}:00000001:abcdef:auth:{ha2}".encode()).hexdigest()
    header = (f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}", response="{resp}", '
              'qop=auth, nc=00000001, cnonce="abcdef", algorithm=MD5')
    r = httpx.get(lab.url(cam.id) + uri, headers={"Authorization": header}, timeout=5, verify=False)
    assert r.status_code == 401 and 'stale="TRUE"' in r.headers["www-authenticate"]
    assert text(DET.fromstring(r.content), "subStatusCode") == "invalidOperation"
    assert cam.failed_logins == 0
    # httpx answers the stale challenge itself and gets in
    with client(lab, cam) as c:
        assert c.get(uri).status_code == 200


def test_basic_auth_to_a_digest_device_counts(lab, lab_faults, cam):
    lab_faults.touch(cam.id)
    user, pw = lab.credentials(cam.id)
    r = httpx.get(lab.url(cam.id) + "/ISAPI/System/time", auth=httpx.BasicAuth(user, pw), timeout=5, verify=False)
    assert r.status_code == 401 and cam.failed_logins == 1


# --- time -----------------------------------------------------------------------------------------------------
def _device_utc(root) -> dt.datetime:
    return dt.datetime.fromisoformat(text(root, "localTime")).astimezone(dt.timezone.utc)


def test_time_local_with_offset_and_faults(lab, lab_faults, cam):
    root = get_xml(lab, cam, "/ISAPI/System/time")
    assert text(root, "timeMode") == "NTP" and text(root, "timeZone") == "CST-8:00:00"
    assert text(root, "localTime").endswith("+08:00")
    assert abs((_device_utc(root) - dt.datetime.now(dt.timezone.utc)).total_seconds()) < 3
    lab_faults.set(cam.id, "clock-drift", "+120")
    drift = (_device_utc(get_xml(lab, cam, "/ISAPI/System/time")) - dt.datetime.now(dt.timezone.utc))
    assert 117 <= drift.total_seconds() <= 123
    lab_faults.set(cam.id, "clock-drift", "-90")
    drift = (_device_utc(get_xml(lab, cam, "/ISAPI/System/time")) - dt.datetime.now(dt.timezone.utc))
    assert -93 <= drift.total_seconds() <= -87
    lab_faults.set(cam.id, "clock-reset")
    assert _device_utc(get_xml(lab, cam, "/ISAPI/System/time")).year == 1970
    lab_faults.set(cam.id, "ntp-off")
    assert text(get_xml(lab, cam, "/ISAPI/System/time"), "timeMode") == "manual"


def test_put_time_fixes_the_clock(lab, lab_faults, cam):
    lab_faults.set(cam.id, "clock-reset")
    now = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).replace(microsecond=0)
    body = (f'<Time xmlns="{HIK20[1:-1]}"><timeMode>manual</timeMode><localTime>{now.isoformat()}</localTime>'
            "<timeZone>CST-8:00:00</timeZone></Time>")
    with client(lab, cam) as c:
        r = c.put("/ISAPI/System/time", content=body)
        assert r.status_code == 200 and text(DET.fromstring(r.content), "statusCode") == "1"
        root = DET.fromstring(c.get("/ISAPI/System/time").content)
    assert abs((_device_utc(root) - dt.datetime.now(dt.timezone.utc)).total_seconds()) < 3
    assert text(root, "timeMode") == "manual"


def test_ntp_servers(lab, cam):
    root = get_xml(lab, cam, "/ISAPI/System/time/ntpServers")
    assert local(root) == "NTPServerList"
    assert (text(root, "id"), text(root, "addressingFormatType"), text(root, "ipAddress"), text(root, "portNo"),
            text(root, "synchronizeInterval")) == ("1", "ipaddress", cam.ntp_server, "123", "1440")


def test_status_and_security_resources(lab, cam, nvr):
    root = get_xml(lab, cam, "/ISAPI/System/status")
    assert local(root) == "DeviceStatus" and int(text(root, "deviceUpTime")) >= 0
    assert find(root, "cpuUtilization") is not None and find(root, "totalRebootCount") is not None
    assert find(get_xml(lab, nvr, "/ISAPI/System/status"), "totalRebootCount") is None
    root = get_xml(lab, cam, "/ISAPI/Security/adminAccesses")
    ports = {text(p, "protocol"): int(text(p, "portNo")) for p in root if local(p) == "AdminAccessProtocol"}
    assert ports["HTTP"] == cam.http_port and ports["RTSP"] == cam.rtsp_port
    root = get_xml(lab, cam, "/ISAPI/Security/users")
    assert [(text(u, "userName"), text(u, "userLevel")) for u in root] == cam.users


# --- storage and channels -------------------------------------------------------------------------------------
def _hdds(lab, dev):
    root = get_xml(lab, dev, "/ISAPI/ContentMgmt/Storage")
    assert root.tag == HIK20 + "storage"
    hdd_list = find(root, "hddList")
    assert hdd_list.tag == "{http://www.hikvision.com/ver10/XMLSchema}hddList"
    return hdd_list, [{local(x): x.text for x in h} for h in hdd_list]


def test_storage_and_disk_faults(lab, lab_faults, nvr):
    lst, hdds = _hdds(lab, nvr)
    assert lst.get("size") == "1" and hdds[0]["status"] == "ok" and int(hdds[0]["freeSpace"]) > 0
    assert hdds[0]["capacity"] == "3815447" and hdds[0]["property"] == "RW"
    lab_faults.set(nvr.id, "hdd-error")
    assert _hdds(lab, nvr)[1][0]["status"] == "error"
    lab_faults.clear(nvr.id, "hdd-error")
    lab_faults.set(nvr.id, "hdd-unformatted")
    assert _hdds(lab, nvr)[1][0]["status"] == "unformatted"
    lab_faults.clear(nvr.id, "hdd-unformatted")
    lab_faults.set(nvr.id, "hdd-full")
    assert _hdds(lab, nvr)[1][0]["freeSpace"] == "0"
    lab_faults.set(nvr.id, "no-hdd")
    lst, hdds = _hdds(lab, nvr)
    assert lst.get("size") == "0" and hdds == []


def test_input_proxy_channels_and_channel_offline(lab, lab_faults, nvr):
    root = get_xml(lab, nvr, "/ISAPI/ContentMgmt/InputProxy/channels")
    chans = [c for c in root if local(c) == "InputProxyChannel"]
    assert [text(c, "id") for c in chans] == [str(c.id) for c in nvr.channels]
    assert [text(c, "ipAddress") for c in chans] == [c.ip for c in nvr.channels]
    root = get_xml(lab, nvr, "/ISAPI/ContentMgmt/InputProxy/channels/status")
    assert root.tag == ISAPI20 + "InputProxyChannelStatusList"
    assert {text(s, "online") for s in root} == {"true"}
    lab_faults.set(nvr.id, "channel-offline", "2")
    root = get_xml(lab, nvr, "/ISAPI/ContentMgmt/InputProxy/channels/status")
    status = {text(s, "id"): (text(s, "online"), text(s, "chanDetectResult")) for s in root}
    assert status["2"][0] == "false" and status["1"] == ("true", "connect")
    one = get_xml(lab, nvr, "/ISAPI/ContentMgmt/InputProxy/channels/2/status")
    assert local(one) == "InputProxyChannelStatus" and text(one, "online") == "false"


def test_streaming_channels(lab, lab_faults, cam, nvr):
    root = get_xml(lab, cam, "/ISAPI/Streaming/channels")
    ids = [text(s, "id") for s in root if local(s) == "StreamingChannel"]
    assert ids == ["101", "102"]
    main = get_xml(lab, cam, "/ISAPI/Streaming/channels/101")
    assert (text(main, "videoCodecType"), text(main, "videoResolutionWidth"), text(main, "videoResolutionHeight"),
            text(main, "maxFrameRate")) == ("H.264", "1920", "1080", "2500")
    root = get_xml(lab, nvr, "/ISAPI/Streaming/channels")
    assert [text(s, "id") for s in root] == [f"{c.id}01" for c in nvr.channels]
    with client(lab, cam) as c:
        assert c.get("/ISAPI/Streaming/channels/103").status_code == 403
    lab_faults.set(cam.id, "low-res")
    main = get_xml(lab, cam, "/ISAPI/Streaming/channels/101")
    assert (text(main, "videoResolutionWidth"), text(main, "videoResolutionHeight")) == ("1280", "720")


def test_put_streaming_channel_changes_settings(lab, lab_faults, cam):
    lab_faults.touch(cam.id)
    body = (f'<StreamingChannel xmlns="{HIK20[1:-1]}"><id>101</id><Video><videoResolutionWidth>2560'
            "</videoResolutionWidth><videoResolutionHeight>1440</videoResolutionHeight><maxFrameRate>1500"
            "</maxFrameRate></Video></StreamingChannel>")
    with client(lab, cam) as c:
        assert c.put("/ISAPI/Streaming/channels/101", content=body).status_code == 200
    assert (cam.channels[0].width, cam.channels[0].height, cam.channels[0].fps) == (2560, 1440, 15)


# --- recording search -------------------------------------------------------------------------------------------
def test_search_pagination(lab, nvr):
    first = search(lab, nvr, max_results=40)
    assert first.tag == ISAPI20 + "CMSearchResult"
    total = int(text(first, "totalMatches"))
    assert text(first, "responseStatus") == "true" and text(first, "responseStatusStrg") == "MORE"
    assert text(first, "numOfMatches") == "40" and len(items(first)) == 40 and text(first, "searchID") == "C9827E2B-1"
    assert total > 24 * 40  # 45 days of hourly files
    assert len(items(search(lab, nvr, max_results=500))) == 40  # the device caps a page at 40
    page2 = search(lab, nvr, position=40)
    assert items(page2)[0] != items(first)[0] and items(page2)[0][1] == items(first)[-1][2]
    last = search(lab, nvr, position=total - 3)
    assert text(last, "responseStatusStrg") == "OK" and text(last, "numOfMatches") == "3"
    # the "correct" spelling is ignored by the device: every page is page 1 (protocols.md A.4)
    # (the oldest file's start moves as the NVR overwrites; compare from the second item)
    assert items(search(lab, nvr, position=40, spelling="searchResultPosition"))[1:] == items(first)[1:]


def test_search_track_ids_and_local_time_quirk(lab, nvr):
    root = search(lab, nvr, tracks=(201,), max_results=1)
    (track, start, end), = items(root)
    assert track == "201" and start.endswith("Z")
    # the oldest recording started `retention` ago, in the recorder's LOCAL time even though it ends in Z
    oldest_local = dt.datetime.fromisoformat(start[:-1])
    expected_local = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=8) - dt.timedelta(days=45)
                      ).replace(tzinfo=None)
    assert abs((oldest_local - expected_local).total_seconds()) < 5
    uri = text(root, "playbackURI")
    assert uri.startswith(f"rtsp://{nvr.host}/Streaming/tracks/201/?starttime=") and "&size=" in uri
    assert text(search(lab, nvr, tracks=(102,)), "responseStatusStrg") == "NO MATCHES"


def test_search_retention_and_gaps(lab, lab_faults, nvr):
    lab_faults.set(nvr.id, "retention", "3")
    (_t, start, _e), = items(search(lab, nvr, max_results=1))
    now_local = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=8)).replace(tzinfo=None)
    assert abs((now_local - dt.datetime.fromisoformat(start[:-1])).total_seconds() - 3 * 86400) < 5
    lab_faults.set(nvr.id, "gaps", "2")
    day_ago = (now_local - dt.timedelta(hours=24)).strftime("%Y-%m-%dT%H:%M:%SZ")
    found = items(search(lab, nvr, start=day_ago, end="2037-01-01T00:00:00Z"))
    holes = [(a[2], b[1]) for a, b in zip(found, found[1:]) if a[2] != b[1]]
    assert len(holes) == 2
    for end, start in holes:
        gap = dt.datetime.fromisoformat(start[:-1]) - dt.datetime.fromisoformat(end[:-1])
        assert gap == dt.timedelta(hours=1)


def test_search_channel_offline_stops_recording(lab, lab_faults, nvr):
    lab_faults.set(nvr.id, "channel-offline", "1")
    now_local = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=8)).replace(tzinfo=None)
    found = items(search(lab, nvr, start=(now_local - dt.timedelta(hours=6)).strftime("%Y-%m-%dT%H:%M:%SZ")))
    newest = dt.datetime.fromisoformat(found[-1][2][:-1])
    assert 7100 < (now_local - newest).total_seconds() < 7300  # nothing recorded for the last 2 hours


def test_search_rejects_bad_bodies(lab, nvr):
    with client(lab, nvr) as c:
        r = c.post("/ISAPI/ContentMgmt/search", content=b"<CMSearchDescription><oops>")
        assert r.status_code == 400 and text(DET.fromstring(r.content), "subStatusCode") == "badXmlFormat"
        bomb = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><CMSearchDescription>&a;</CMSearchDescription>'
        assert c.post("/ISAPI/ContentMgmt/search", content=bomb).status_code == 400


# --- configuration export/import, firmware -----------------------------------------------------------------------
def test_configuration_data_export_is_binary_and_restorable(lab, lab_faults, cam):
    lab_faults.touch(cam.id)
    with client(lab, cam) as c:
        r = c.get("/ISAPI/System/configurationData")
        assert r.status_code == 200 and r.headers["content-type"] == "application/octet-stream"
        blob = r.content
        assert not blob.startswith(b"<") and not blob.startswith(b"{")
        assert c.get("/ISAPI/System/configurationData").content == blob  # deterministic
        lab_faults.setting(cam.id, "ntp_server", "10.9.9.9")
        changed = c.get("/ISAPI/System/configurationData").content
        assert changed != blob
        r = c.put("/ISAPI/System/configurationData", content=blob,
                  headers={"Content-Type": "application/octet-stream"})
        assert r.status_code == 200 and text(DET.fromstring(r.content), "statusCode") == "1"
        assert cam.ntp_server == "127.0.0.1"
        r = c.put("/ISAPI/System/configurationData", content=b"not a config file")
        assert r.status_code == 400 and text(DET.fromstring(r.content), "subStatusCode") == "fileFormatError"
        r = c.put("/ISAPI/System/configurationData", content=blob[:-5])
        assert text(DET.fromstring(r.content), "subStatusCode") == "fileContentError"


def test_update_firmware_and_upgrade_status(lab, lab_faults, cam, monkeypatch):
    from canteen_ops.lab import state as state_mod

    monkeypatch.setattr(state_mod, "UPGRADE_SECONDS", 1.5)  # long enough to see "upgrading" on a busy machine
    lab_faults.set(cam.id, "old-firmware")
    with client(lab, cam) as c:
        root = DET.fromstring(c.get("/ISAPI/System/upgradeStatus").content)
        assert (text(root, "upgrading"), text(root, "percent")) == ("false", "0")
        bad = firmware_image("hikvision", "DS-OTHER", "V5.7.20 build 250101")
        r = c.put("/ISAPI/System/updateFirmware", content=bad)
        assert r.status_code == 403 and text(DET.fromstring(r.content), "subStatusCode") == "badDevType"
        good = firmware_image("hikvision", cam.model, "V5.7.20 build 250101")
        r = c.put("/ISAPI/System/updateFirmware", content=good, headers={"Content-Type": "application/octet-stream"})
        assert r.status_code == 200
        assert text(DET.fromstring(c.get("/ISAPI/System/upgradeStatus").content), "upgrading") == "true"
        time.sleep(1.6)
        root = DET.fromstring(c.get("/ISAPI/System/upgradeStatus").content)
        assert (text(root, "upgrading"), text(root, "percent")) == ("false", "100")
        info = DET.fromstring(c.get("/ISAPI/System/deviceInfo").content)
    assert (text(info, "firmwareVersion"), text(info, "firmwareReleasedDate")) == ("V5.7.20", "build 250101")


# --- transport faults -------------------------------------------------------------------------------------------
def test_offline_refuses_connections(lab, lab_faults, cam):
    lab_faults.set(cam.id, "offline")
    with pytest.raises(httpx.ConnectError):
        httpx.get(lab.url(cam.id) + "/ISAPI/System/deviceInfo", timeout=2, verify=False)
    lab_faults.clear(cam.id, "offline")
    assert get_xml(lab, cam, "/ISAPI/System/deviceInfo") is not None


def test_offline_drops_open_keep_alive_connections(lab, lab_faults, cam):
    with client(lab, cam) as c:
        assert c.get("/ISAPI/System/time").status_code == 200
        lab_faults.set(cam.id, "offline")
        with pytest.raises((httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError)):
            c.get("/ISAPI/System/time")


def test_blackhole_times_out(lab, lab_faults, cam):
    lab_faults.set(cam.id, "blackhole")
    t0 = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(lab.url(cam.id) + "/ISAPI/System/deviceInfo", timeout=0.5, verify=False)
    assert time.monotonic() - t0 < 2


def test_slow_adds_latency(lab, lab_faults, cam):
    lab_faults.set(cam.id, "slow", "400")
    with client(lab, cam) as c:
        t0 = time.monotonic()
        assert c.get("/ISAPI/System/time").status_code == 200
        assert time.monotonic() - t0 >= 0.4
        with pytest.raises(httpx.ReadTimeout):
            c.get("/ISAPI/System/time", timeout=0.2)


def test_malformed_xml(lab, lab_faults, cam):
    lab_faults.set(cam.id, "malformed-xml")
    with client(lab, cam) as c:
        r = c.get("/ISAPI/System/deviceInfo")
    assert r.status_code == 200 and r.content.startswith(b"<?xml")
    with pytest.raises(DET.ParseError):
        DET.fromstring(r.content)


def test_xml_bomb_has_the_real_root_and_is_caught_by_a_hardened_parser(lab, lab_faults, nvr):
    from defusedxml import EntitiesForbidden

    lab_faults.set(nvr.id, "xml-bomb")
    with client(lab, nvr) as c:
        r = c.get("/ISAPI/System/deviceInfo")
    assert r.status_code == 200 and len(r.content) < 4096
    assert b"<!DOCTYPE DeviceInfo [" in r.content and b"<DeviceInfo" in r.content and b"&lol9;" in r.content
    with pytest.raises(EntitiesForbidden):
        DET.fromstring(r.content)


def test_oversized_body_can_be_abandoned(lab, lab_faults, cam):
    lab_faults.set(cam.id, "oversized-body")
    with client(lab, cam, timeout=10) as c:
        with c.stream("GET", "/ISAPI/System/deviceInfo") as r:
            assert r.status_code == 200 and int(r.headers["content-length"]) == 64 * 1024 * 1024
            got = 0
            for chunk in r.iter_bytes():
                got += len(chunk)
                if got > 1024 * 1024:
                    break  # a careful client stops reading here
        assert got > 1024 * 1024
    lab_faults.clear(cam.id, "oversized-body")
    assert get_xml(lab, cam, "/ISAPI/System/deviceInfo") is not None  # the server did not stall


def test_oversized_body_is_well_formed_xml_padding(lab, lab_faults, cam):
    lab_faults.set(cam.id, "oversized-body")
    with client(lab, cam, timeout=20) as c:
        r = c.get("/ISAPI/Security/userCheck")
    assert len(r.content) == 64 * 1024 * 1024 and r.content.startswith(b"<?xml")
    head = r.content[:300]
    assert b"<userCheck" in head and b"<!--xxxx" in head


# --- HTTP core robustness -----------------------------------------------------------------------------------------
def test_garbage_requests_get_400_and_the_server_survives(lab, cam):
    for junk in (b"\x16\x03\x01\x02\x00garbage\r\n\r\n", b"GET /only-two-parts\r\n\r\n",
                 b"GET / HTTP/1.1\r\nbad header line\r\n\r\n", b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n"):
        with socket.create_connection((cam.host, cam.http_port), timeout=3) as s:
            s.sendall(junk)
            assert s.recv(100).startswith(b"HTTP/1.1 400")
    with socket.create_connection((cam.host, cam.http_port), timeout=3) as s:
        s.sendall(b"GET / HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 431")
    with socket.create_connection((cam.host, cam.http_port), timeout=3) as s:
        s.sendall(b"GET /ISAPI/Sys")  # half a request, then hang up
    assert get_xml(lab, cam, "/ISAPI/System/deviceInfo") is not None


def _answers(s: socket.socket, n: int) -> list[tuple[int, bytes]]:
    """Read n HTTP answers (status, body) off a raw socket, using their Content-Length."""
    buf, out = b"", []
    while len(out) < n:
        head_end = buf.find(b"\r\n\r\n")
        if head_end >= 0:
            head = buf[:head_end].decode("latin-1")
            length = int(re.search(r"(?im)^content-length:\s*(\d+)", head).group(1))
            if len(buf) >= head_end + 4 + length:
                out.append((int(head.split()[1]), buf[head_end + 4:head_end + 4 + length]))
                buf = buf[head_end + 4 + length:]
                continue
        chunk = s.recv(65536)
        assert chunk, f"connection closed after {len(out)} of {n} answers"
        buf += chunk
    return out


def test_pipelined_and_split_requests_are_answered_in_order(lab, lab_faults, cam):
    """Several requests in one send, a body arriving in pieces, a slow answer ahead of a quick one, and a client
    that half-closes after its last request: every answer comes back, in order."""
    host = f"Host: {cam.host}\r\n".encode()
    search = b"<CMSearchDescription/>"
    with socket.create_connection((cam.host, cam.http_port), timeout=5) as s:
        s.sendall(b"GET /ISAPI/System/time HTTP/1.1\r\n" + host + b"\r\n"
                  + b"GET /no/such/page HTTP/1.1\r\n" + host + b"\r\n")
        assert [status for status, _ in _answers(s, 2)] == [401, 404]
        s.sendall(b"POST /ISAPI/ContentMgmt/search HTTP/1.1\r\n" + host
                  + f"Content-Length: {len(search)}\r\n\r\n".encode() + search[:5])
        time.sleep(0.2)
        s.sendall(search[5:])
        assert [status for status, _ in _answers(s, 1)] == [401]
    lab_faults.set(cam.id, "slow", "300")
    with socket.create_connection((cam.host, cam.http_port), timeout=5) as s:
        t0 = time.monotonic()
        s.sendall((b"GET /ISAPI/System/time HTTP/1.1\r\n" + host + b"\r\n") * 2)
        s.shutdown(socket.SHUT_WR)
        assert [status for status, _ in _answers(s, 2)] == [401, 401]
        assert time.monotonic() - t0 >= 0.55  # one slow answer after the other
        assert s.recv(100) == b""  # then the device closes, as asked


def test_keep_alive_reuses_one_connection(lab, cam):
    ep = lab.thread.service.http.endpoints[cam.id]
    before = set(ep.conns)  # connections other tests left behind may still be closing
    with client(lab, cam) as c:
        for _ in range(5):
            assert c.get("/ISAPI/System/time").status_code == 200
        assert len(set(ep.conns) - before) == 1


def test_vendor_routing(lab):
    dahua = lab.first("dahua", "camera")
    r = httpx.get(lab.url(dahua.id) + "/ISAPI/System/deviceInfo", timeout=5, verify=False)
    assert r.status_code == 404 and r.text.startswith("Error")


def test_network_interfaces(lab, cam):
    root = get_xml(lab, cam, "/ISAPI/System/Network/interfaces")
    assert local(root) == "NetworkInterfaceList"
    assert (text(root, "ipAddress"), text(root, "MACAddress"), text(root, "addressingType")) == (
        cam.host, cam.mac, "static")


def test_record_tracks_follow_the_record_mode(lab, lab_faults, nvr):
    def modes():
        root = get_xml(lab, nvr, "/ISAPI/ContentMgmt/record/tracks")
        assert local(root) == "TrackList"
        tracks = [t for t in root if local(t) == "Track"]
        assert [text(t, "id") for t in tracks] == [f"{c.id}01" for c in nvr.channels]
        return {el.text for el in root.iter() if local(el) == "ActionRecordingMode"}, \
            {text(t, "Enable") for t in tracks}

    assert modes() == ({"CMR"}, {"true"})
    lab_faults.setting(nvr.id, "record_mode", "motion")
    assert modes() == ({"MOTION"}, {"true"})
    lab_faults.setting(nvr.id, "record_mode", "off")
    assert modes() == (set(), {"false"})

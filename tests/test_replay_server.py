"""The replay server on its own (challenges, vendor error answers, loading errors) and capture masking."""

from __future__ import annotations

import json

import httpx
import pytest
from lxml import etree

from canteen_ops.capture import Masker, build
from canteen_ops.drivers.recorder import Recorder
from canteen_ops.inventory.model import Credentials, Device, Policy
from canteen_ops.lab.replay import (
    REPLAY_PASSWORD,
    REPLAY_USER,
    RecordedDevice,
    ReplayError,
    ReplayServer,
    load,
    load_capture,
)
from tests.replay_support import CORPUS

HIK = CORPUS / "hikvision" / "DS-2CD2386G2-IU"
DAHUA = CORPUS / "dahua" / "NVR2X-4KS3"
BOSCH = CORPUS / "onvif" / "FLEXIDOME-indoor-5100i-IR"


def test_hikvision_challenges_with_digest_and_answers_what_was_recorded():
    rec = load(HIK)
    with ReplayServer(rec) as s:
        url = f"http://{s.host}:{s.port}"
        r = httpx.get(url + "/ISAPI/System/deviceInfo")
        assert r.status_code == 401
        ch = r.headers["www-authenticate"]
        assert ch.startswith("Digest ") and 'qop="auth"' in ch and 'realm="DS-' in ch
        r = httpx.get(url + "/ISAPI/System/deviceInfo", auth=httpx.DigestAuth(REPLAY_USER, REPLAY_PASSWORD))
        assert r.status_code == 200 and r.content == (HIK / "System.deviceInfo.xml").read_bytes()
        assert httpx.get(url + "/ISAPI/System/deviceInfo", auth=httpx.DigestAuth(REPLAY_USER, "wrong")
                         ).status_code == 401
        r = httpx.get(url + "/ISAPI/System/time", auth=httpx.DigestAuth(REPLAY_USER, REPLAY_PASSWORD))
        assert r.status_code == 403 and b"<subStatusCode>notSupport</subStatusCode>" in r.content
        r = httpx.get(url + "/ISAPI/System/IO/inputs/1/status", auth=httpx.DigestAuth(REPLAY_USER, REPLAY_PASSWORD))
        assert r.status_code == 403  # recorded as the device answered it


def test_dahua_answers_unrecorded_requests_with_bad_request():
    with ReplayServer(load(DAHUA)) as s:
        auth = httpx.DigestAuth(REPLAY_USER, REPLAY_PASSWORD)
        base = f"http://{s.host}:{s.port}/cgi-bin/"
        r = httpx.get(base + "magicBox.cgi?action=getSystemInfo", auth=auth)
        assert r.status_code == 200 and b"deviceType=31\r\n" in r.content
        r = httpx.get(base + "configManager.cgi?action=getConfig&name=NTP", auth=auth)
        assert r.status_code == 400 and r.text == "Error\r\nBad Request!\r\n"
        assert s.replayer.unanswered == ["GET /cgi-bin/configManager.cgi"]


def test_a_locked_replay_answers_credentials_with_the_recorded_lock_answer():
    folder = CORPUS / "dahua" / "DH-NVR608H-128-4KS3-I"
    with ReplayServer(load(folder), locked=True) as s:
        url = f"http://{s.host}:{s.port}/cgi-bin/magicBox.cgi?action=getSystemInfo"
        r = httpx.get(url)
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Digest ")  # no credentials
        for password in (REPLAY_PASSWORD, "wrong"):  # right or wrong, the lock answer
            r = httpx.get(url, auth=httpx.DigestAuth(REPLAY_USER, password))
            assert r.status_code == 403 and r.content == (folder / "lockout.403.json").read_bytes()
    with pytest.raises(ReplayError, match="locked"):  # a folder without a recorded lock answer cannot play one
        ReplayServer(load(DAHUA), locked=True)


def _soap(op: str, ns: str = "http://www.onvif.org/ver10/device/wsdl", inner: str = "") -> bytes:
    return (f'<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body><x:{op} xmlns:x="{ns}">{inner}'
            f"</x:{op}></s:Body></s:Envelope>").encode()


def test_onvif_pre_auth_answers_faults_and_tokens():
    with ReplayServer(load(BOSCH)) as s:
        url = f"http://{s.host}:{s.port}/onvif/device_service"
        r = httpx.post(url, content=_soap("GetSystemDateAndTime"))
        assert r.status_code == 200 and b"GetSystemDateAndTimeResponse" in r.content
        r = httpx.post(url, content=_soap("GetDeviceInformation"))
        assert r.status_code == 400 and b"ter:NotAuthorized" in r.content  # needs WS-Security
        r = httpx.post(url, content=_soap("GetServices"))
        assert r.status_code == 500 and b"ter:ActionNotSupported" in r.content  # pre-auth, but not recorded
        media = f"http://{s.host}:{s.port}/onvif/media_service"
        one = s.device.find("POST", "/onvif/media_service", "GetStreamUri",
                            _soap("GetStreamUri", inner="<x:ProfileToken>1</x:ProfileToken>"))
        assert len(one) == 1 and b"p=1&amp;" in one[0].body
        r = httpx.post(media, content=_soap("GetProfiles", "http://www.onvif.org/ver10/media/wsdl"))
        assert r.status_code == 400 and b"ter:NotAuthorized" in r.content


def test_loading_errors_name_the_file_and_field(tmp_path):
    bad = tmp_path / "m"
    bad.mkdir()
    (bad / "device.yaml").write_text("vendor: axis\nkind: camera\nmodel: X\n")
    (bad / "exchanges.yaml").write_text("[]\n")
    with pytest.raises(ReplayError, match=r"device.yaml: vendor: expected one of"):
        load(bad)
    (bad / "device.yaml").write_text("vendor: dahua\nkind: camera\nmodel: X\n")
    (bad / "exchanges.yaml").write_text("- {request: GET /x, status: 200, body_file: ../../etc/passwd}\n")
    with pytest.raises(ReplayError, match="outside the model folder"):
        load(bad)
    (bad / "exchanges.yaml").write_text("- {request: /x, status: 200}\n")
    with pytest.raises(ReplayError, match=r"entry 1: request"):
        load(bad)
    cap = tmp_path / "c.json"
    cap.write_text(json.dumps({"format": "canteen-ops-capture/1", "device": {"vendor": "dahua", "kind": "nvr",
                                                                             "model": "M"}, "exchanges": {}}))
    with pytest.raises(ReplayError, match="exchanges: expected a list"):
        load_capture(cap)
    with pytest.raises(ReplayError, match="no such model folder"):
        load(tmp_path / "nothing")


def test_basic_auth_device_from_a_capture(tmp_path):
    cap = tmp_path / "old.json"
    cap.write_text(json.dumps({
        "format": "canteen-ops-capture/1",
        "device": {"vendor": "dahua", "kind": "camera", "model": "OLD", "auth": {"scheme": "basic",
                                                                                   "realm": "Device_CGI"}},
        "exchanges": [{"request": "GET /cgi-bin/magicBox.cgi?action=getSystemInfo", "status": 200,
                       "body": "deviceType=OLD\r\n"}]}))
    with ReplayServer(load(cap)) as s:
        url = f"http://{s.host}:{s.port}/cgi-bin/magicBox.cgi?action=getSystemInfo"
        r = httpx.get(url)
        assert r.status_code == 401 and r.headers["www-authenticate"] == 'Basic realm="Device_CGI"'
        assert httpx.get(url, auth=(REPLAY_USER, REPLAY_PASSWORD)).text == "deviceType=OLD\r\n"
        assert httpx.get(url, auth=httpx.DigestAuth(REPLAY_USER, REPLAY_PASSWORD)).status_code == 401


def test_replay_listens_on_loopback_only():
    with pytest.raises(ReplayError, match="loopback only"):
        ReplayServer(RecordedDevice("dahua", "camera", "X"), host="0.0.0.0")


# --- masking -----------------------------------------------------------------------------------------------------
def _device(**kw) -> Device:
    base = dict(id="d1", kind="nvr", vendor="hikvision", host="10.1.2.3", port=80, rtsp_port=554, https=False,
                school_id="s", credentials=Credentials("c", "installer", password="s3cret-PW"), timeout=5,
                policy=Policy(), serial="SER12345678", name="食堂NVR")
    base.update(kw)
    return Device(**base)


def test_masking_is_consistent_and_keeps_xml_readable():
    rec = Recorder()
    info = (b'<?xml version="1.0"?><DeviceInfo xmlns="urn:x"><deviceName>Canteen NVR</deviceName>'
            b"<model>DS-7608NXI-I2</model><serialNumber>DS-7608NXI-I20220101CCWRK12345678</serialNumber>"
            b"<macAddress>a4:14:37:01:02:03</macAddress><deviceType>NVR</deviceType></DeviceInfo>")
    chans = (b'<InputProxyChannelList xmlns="urn:x"><InputProxyChannel><id>1</id><name>NVR</name>'
             b"<sourceInputPortDescriptor><ipAddress>10.1.2.50</ipAddress><userName>installer</userName>"
             b"<password>s3cret-PW</password></sourceInputPortDescriptor></InputProxyChannel></InputProxyChannelList>")
    rec.add("GET", "/ISAPI/System/deviceInfo", 200, {"Content-Type": "application/xml", "Set-Cookie": "x"}, info)
    rec.add("GET", "/ISAPI/ContentMgmt/InputProxy/channels", 200, {}, chans)
    rec.add("GET", "/ISAPI/System/deviceInfo", 200, {}, info)
    rec.challenges = ['Digest realm="DS-7608NXI-I20220101CCWRK12345678", qop="auth", nonce="abc"']
    doc = build(_device(), rec, model="DS-7608NXI-I2", firmware="V4.62.210", password="s3cret-PW")
    text = json.dumps(doc, ensure_ascii=False)
    for secret in ("DS-7608NXI-I20220101CCWRK12345678", "a4:14:37:01:02:03", "10.1.2.50", "installer", "s3cret-PW",
                   "Canteen NVR", "Set-Cookie"):
        assert secret not in text, secret
    first, _, third = (e["body"] for e in doc["exchanges"])
    assert first == third  # the same value gets the same mask in every answer
    assert "<model>DS-7608NXI-I2</model>" in first and "<deviceType>NVR</deviceType>" in first
    assert "<name>MASKED-NAME-" in doc["exchanges"][1]["body"]  # a short name masked where it is a name only
    realm = doc["device"]["auth"]["realm"]
    assert realm.startswith("MASKED-SERIAL-") and f"<serialNumber>{realm}</serialNumber>" in first
    for e in doc["exchanges"]:
        etree.fromstring(e["body"].encode())


def test_a_password_containing_the_user_name_is_masked_whole():
    """The password is replaced before the user name, address and serial are masked: masked first, 'admin' in
    'admin.7' became 'MASKED-USER-1.7' and the password was never found again."""
    rec = Recorder()
    rec.add("GET", "/ISAPI/System/deviceInfo", 401, {}, b"login admin.7 failed from 10.1.2.3 (SER12345678x)")
    dev = _device(credentials=Credentials("c", "admin", password="admin.7"))
    doc = build(dev, rec, model=None, firmware=None, password="admin.7")
    assert doc["exchanges"][0]["body"].startswith("login MASKED-PASSWORD failed from ")
    dev = _device(credentials=Credentials("c", "admin", password="10.1.2.3:admin"))
    rec = Recorder()
    rec.add("GET", "/x", 200, {}, b"pw=10.1.2.3:admin")
    assert build(dev, rec, model=None, firmware=None, password="10.1.2.3:admin")["exchanges"][0]["body"] == \
        "pw=MASKED-PASSWORD"


@pytest.mark.parametrize("challenges,auth", [
    (['Basic realm="site-a", Digest realm="dig", nonce="n"'], {"scheme": "digest", "realm": "dig"}),
    (['Basic realm="site-a"', 'Digest nonce="n", realm="d\\"q"'], {"scheme": "digest", "realm": 'd"q'}),
    (['Basic realm="site-a"'], {"scheme": "basic", "realm": "site-a"}),
    (['Negotiate abc'], {"scheme": "digest", "realm": None}),
    ([], {"scheme": "digest", "realm": None}),
])
def test_capture_records_the_scheme_and_realm_the_driver_answered(challenges, auth):
    """Challenges are read as DeviceHTTP reads them (httpauth): several in one header, Digest wins, the realm
    is the chosen challenge's own."""
    rec = Recorder()
    rec.challenges = challenges
    assert build(_device(), rec, model=None, firmware=None, password=None)["device"]["auth"] == auth


def test_masker_dahua_lines_and_ipv4_limits():
    m = Masker()
    text = ("serialNumber=4F07335PAZEEA9B\r\ntable.Network.eth0.IPAddress=192.168.1.108\r\n"
            "table.Network.eth0.SubnetMask=255.255.255.0\r\ntable.ChannelTitle[0].Name=后厨\r\n"
            "version=4.001.0000005.0,build:2020-11-17\r\ntable.Email.Password=hunter2\r\n"
            "table.Email.Receivers[0]=kitchen.manager@school.example.cn\r\n")
    m.collect(text)
    out = m.apply(text)
    assert "4F07335PAZEEA9B" not in out and "192.168.1.108" not in out and "后厨" not in out
    assert "hunter2" not in out and "255.255.255.0" in out and "version=4.001.0000005.0,build:2020-11-17" in out
    assert "kitchen.manager@school.example.cn" not in out and "@example.invalid" in out
    assert out.endswith("\r\n") and out.count("\r\n") == 7

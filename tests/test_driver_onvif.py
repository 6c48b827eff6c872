"""OnvifDriver against the lab ONVIF service over real loopback sockets, plus its parsing helpers."""

from __future__ import annotations

import base64
import datetime as dt
import logging
import threading
import time

import pytest

pytest.importorskip("zeep")

from canteen_ops.drivers import onvif as drv  # noqa: E402
from canteen_ops.drivers.registry import open_driver  # noqa: E402
from canteen_ops.drivers.base import (  # noqa: E402
    AuthFailed,
    Locked,
    NotSupported,
    Offline,
    ProtocolError,
    Timeout,
    auth_guard,
)
from canteen_ops.inventory.model import Credentials, Device, Policy  # noqa: E402
from canteen_ops.lab.state import DeviceState  # noqa: E402
from tests.raw_server import RawServer  # noqa: E402

UTC = dt.timezone.utc


def device_for(state: DeviceState, *, timeout: float = 3.0, password: str | None = None) -> Device:
    return Device(id=state.id, kind=state.kind, vendor="onvif", host=state.host, port=state.http_port,
                  rtsp_port=state.rtsp_port, https=False, school_id="s1",
                  credentials=Credentials("lab", state.username, password=password or state.password),
                  timeout=timeout, policy=Policy())


@pytest.fixture
def camera(lab, lab_faults):
    st = lab.first("onvif", "camera")
    lab_faults.touch(st.id)
    return st, lab_faults


@pytest.fixture
def nvr(lab, lab_faults):
    st = lab.first("onvif", "nvr")
    lab_faults.touch(st.id)
    return st, lab_faults


def driver(st, *, timeout: float = 3.0) -> drv.OnvifDriver:
    return drv.OnvifDriver(device_for(st, timeout=timeout), st.password)


def answered(lab) -> int:
    """Requests the lab has answered so far (all devices; tests in one worker run one at a time)."""
    return lab.thread.service.http.requests


# --- getters ----------------------------------------------------------------------------------------------
def test_open_driver_builds_an_onvif_driver(camera, monkeypatch):
    st, faults = camera
    monkeypatch.setenv("LAB_ONVIF_PW", st.password)
    dev = device_for(st)
    dev = Device(**{**dev.__dict__, "credentials": Credentials("lab", st.username, password_env="LAB_ONVIF_PW")})
    with open_driver(dev) as d:
        assert isinstance(d, drv.OnvifDriver)
        assert st.password not in repr(d)
        d.login()


def test_facts_clock_and_ntp(camera):
    st, faults = camera
    faults.set(st.id, "clock-drift", "+90")
    d = driver(st)
    d.login()
    f = d.facts()
    assert (f.vendor, f.model, f.serial, f.firmware) == ("onvif", st.model, st.serial, st.firmware)
    c = d.clock()
    assert 88 <= c.drift_s <= 91
    assert (c.timezone, c.mode, c.ntp_servers, c.ntp_enabled) == (st.timezone, "NTP", [st.ntp_server], True)
    faults.set(st.id, "ntp-off")
    c = driver(st).clock()
    assert (c.mode, c.ntp_servers, c.ntp_enabled) == ("manual", [], False)


@pytest.mark.parametrize("fault,value", [("clock-drift", "-3600"), ("clock-reset", None)])
def test_drifted_or_reset_device_still_accepts_us(camera, fault, value):
    st, faults = camera
    faults.set(st.id, fault, value)
    d = driver(st)
    assert d.facts().serial == st.serial  # authenticated: Created was shifted to the device clock
    c = d.clock()
    if fault == "clock-reset":
        assert c.device_utc.year == 1970
    else:
        assert -3602 <= c.drift_s <= -3598
    assert st.failed_logins == 0


def test_camera_channels_streams_and_uri(camera):
    st, faults = camera
    d = driver(st)
    assert [(c.id, c.name) for c in d.channels()] == [(1, st.channels[0].name)]
    s, sub = d.streams()  # the main profile, then the sub-stream profile of the same video source
    assert (s.channel, s.codec, s.width, s.height, s.fps, s.bitrate_kbps, s.main) == (
        1, "H.264", 1920, 1080, 25.0, 4096.0, True)
    assert (sub.channel, sub.width, sub.height, sub.main) == (1, 640, 360, False)
    assert s.uri == f"rtsp://{st.host}:{st.rtsp_port}{st.channels[0].rtsp_path}"
    assert d.stream_uri(1) == s.uri and "@" not in s.uri
    assert d.stream_uri(1, main=False) == sub.uri == f"rtsp://{st.host}:{st.rtsp_port}/onvif/media/sub"
    with pytest.raises(NotSupported):
        d.stream_uri(2, main=False)
    with pytest.raises(NotSupported):
        d.recordings(1, dt.datetime.now(UTC) - dt.timedelta(days=1), dt.datetime.now(UTC))


def test_settings_are_complete_and_carry_no_password(camera):
    st, faults = camera
    faults.set(st.id, "low-res")
    s = driver(st).settings()
    assert s["identity"]["serial"] == st.serial
    assert s["network"][0]["mac"] == st.mac and s["network"][0]["ipv4"] == [f"{st.host}/24"]
    assert s["time"] == {"timezone": st.timezone, "mode": "NTP", "ntp_servers": [st.ntp_server], "ntp_enabled": True}
    assert (s["streams"][0]["width"], s["streams"][0]["height"]) == (1280, 720)
    assert s["users"] == [{"name": n, "level": lvl} for n, lvl in st.users]
    assert s["system_backup"] is False
    assert st.password not in repr(s)


def test_export_config_only_when_the_device_says_so(camera, nvr):
    st, faults = camera
    d = driver(st)
    with pytest.raises(NotSupported, match="device offers no config export"):
        d.export_config()
    assert d.requests_sent == 1  # GetServices told us; GetSystemBackup was never sent
    st, faults = nvr  # the lab's ONVIF NVRs do offer GetSystemBackup
    e = driver(st).export_config()
    assert (e.content, e.method, e.extension, e.content_type) == (
        st.config_blob(), "onvif-GetSystemBackup", ".json", "application/json")


def test_nvr_channels_retention_and_gaps(nvr):
    st, faults = nvr
    faults.set(st.id, "retention", "12")
    faults.set(st.id, "gaps", "3")
    faults.set(st.id, "channel-offline", "3")
    d = driver(st)
    chans = d.channels()
    assert [(c.id, c.name) for c in chans] == [(c.id, c.name) for c in st.channels] and len(chans) == 3
    assert [c.online for c in chans] == [True, True, False]
    now = dt.datetime.now(UTC)
    spans = d.recordings(2, now - dt.timedelta(days=60), now)
    assert abs((now - spans[0].start).total_seconds() - 12 * 86400) < 10  # oldest recording: 12 days back
    assert len(spans) == 4  # three 1-hour gaps
    assert all(abs((b.start - a.end).total_seconds() - 3600) < 2 for a, b in zip(spans, spans[1:]))
    assert (now - spans[-1].end).total_seconds() < 10
    last_day = d.recordings(3, now - dt.timedelta(hours=24), now)
    assert (now - last_day[-1].end).total_seconds() > 7000  # video lost 2 h ago


def test_one_event_search_serves_every_channel(nvr, lab):
    """The checks ask each channel for the same window: the NVR is searched once (FindEvents, its results,
    EndSearch), not once per channel, and each channel gets only its own spans."""
    st, faults = nvr
    faults.set(st.id, "gaps", "2")
    d = driver(st)
    now = dt.datetime.now(UTC)
    d.channels()
    sent = d.requests_sent
    per_channel = {c.id: d.recordings(c.id, now - dt.timedelta(hours=24), now) for c in st.channels}
    assert d.requests_sent - sent == 3
    assert all(len(spans) == 3 and {s.channel for s in spans} == {ch} for ch, spans in per_channel.items())
    d.recordings(1, now - dt.timedelta(hours=12), now)  # another window is another search
    assert d.requests_sent - sent == 6


def test_drifted_nvr_spans_are_in_host_time(nvr):
    st, faults = nvr
    faults.set(st.id, "clock-drift", "-600")
    d = driver(st)
    now = dt.datetime.now(UTC)
    spans = d.recordings(1, now - dt.timedelta(hours=24), now)
    assert len(spans) == 1 and (now - spans[0].end).total_seconds() < 10  # no phantom 10-minute gap


def test_nvr_streams_cover_every_channel(nvr):
    st, faults = nvr
    streams = driver(st).streams()
    assert [s.channel for s in streams] == [1, 2, 3]
    assert [s.uri for s in streams] == [f"rtsp://{st.host}:{st.rtsp_port}{c.rtsp_path}" for c in st.channels]


# --- faults -------------------------------------------------------------------------------------------------
def test_offline_device(camera):
    st, faults = camera
    faults.set(st.id, "offline")
    with pytest.raises(Offline):
        driver(st).login()


def test_blackhole_times_out_within_the_deadline(camera):
    st, faults = camera
    faults.set(st.id, "blackhole")
    d = driver(st, timeout=0.5)
    t0 = time.monotonic()
    with pytest.raises(Timeout):
        d.clock()
    assert time.monotonic() - t0 < 1.5


def test_wrong_password_costs_exactly_one_login_attempt(lab, camera):
    st, faults = camera
    faults.set(st.id, "wrong-password")
    before = answered(lab)
    d = driver(st)
    with pytest.raises(AuthFailed) as exc:
        d.login()
    assert not isinstance(exc.value, Locked) and st.password not in str(exc.value)
    for getter in ("facts", "settings", "streams"):
        with pytest.raises(AuthFailed, match="not retried"):
            getattr(d, getter)()
    with pytest.raises(AuthFailed, match="not retried"):  # a new driver in the same run is refused too
        open_driver(device_for(st))
    # on the wire: the unauthenticated clock reading, then one refused GetDeviceInformation; nothing after
    assert d.requests_sent == 2 and answered(lab) - before == 2
    assert st.failed_logins == 1


@pytest.mark.parametrize("value", [None, "401"])
def test_a_device_that_wants_credentials_for_its_clock_is_asked_again_with_them(lab, camera, value):
    """Unauthenticated GetSystemDateAndTime refused ('Sender not authorized' fault, or a bare 401): nothing was
    refused since nothing was sent; the clock is asked once more with a token on this machine's clock."""
    st, faults = camera
    faults.set(st.id, "time-needs-auth", value)
    d = driver(st)
    d.login()
    assert d.facts().serial == st.serial
    assert abs(d.clock().drift_s) < 2.5
    assert st.failed_logins == 0


def test_a_device_that_wants_credentials_for_its_clock_and_refuses_ours_is_a_wrong_password(lab, camera):
    st, faults = camera
    faults.set(st.id, "time-needs-auth")
    faults.set(st.id, "wrong-password")
    d = driver(st)
    with pytest.raises(AuthFailed, match="not authorized") as exc:
        d.login()
    assert not isinstance(exc.value, Locked)
    assert d.requests_sent == 2 and st.failed_logins == 1  # the unauthenticated ask, then the one with the token
    with pytest.raises(AuthFailed, match="not retried"):
        d.facts()
    assert d.requests_sent == 2


def test_locked_device_is_reported_as_locked(camera):
    st, faults = camera
    faults.set(st.id, "locked")
    with pytest.raises(Locked) as exc:
        driver(st).login()
    assert exc.value.unlock_in_s == 1800


@pytest.mark.parametrize("fault", ["malformed-xml", "xml-bomb", "oversized-body"])
def test_hostile_answers_are_protocol_errors(camera, fault):
    st, faults = camera
    faults.set(st.id, fault)
    t0 = time.monotonic()
    with pytest.raises(ProtocolError):
        driver(st).clock()
    assert time.monotonic() - t0 < 5
    faults.clear(st.id, fault)
    assert driver(st).clock().device_utc is not None  # the same device answers normally again


def test_fault_mapping():
    from zeep.exceptions import Fault
    from lxml.etree import QName

    st = DeviceState(id="fx", kind="camera", vendor="onvif", host="127.0.0.1", http_port=9, rtsp_port=554,
                     username="u", password="p", model="m", serial="s", firmware="f", mac="m", name="n")
    d = drv.OnvifDriver(device_for(st), "p")
    ter = "http://www.onvif.org/ver10/error"
    f = Fault("Optional Action Not Implemented", code="env:Receiver", subcodes=[QName(ter, "ActionNotSupported")])
    assert isinstance(d._fault("X", f), NotSupported)
    f = Fault("bad", code="env:Sender", subcodes=[QName(ter, "InvalidArgVal"), QName(ter, "NoProfile")])
    err = d._fault("X", f)
    assert isinstance(err, ProtocolError) and "InvalidArgVal/NoProfile" in str(err)
    f = Fault("Sender not authorized", code="env:Sender", subcodes=[QName(ter, "NotAuthorized")])
    assert type(d._fault("X", f)) is AuthFailed
    with pytest.raises(AuthFailed):
        auth_guard.check("fx")


def test_the_faults_real_cameras_give_an_unauthenticated_clock_request_are_read_as_wanting_credentials():
    """Vivotek (agsh/onvif#301) refuses GetSystemDateAndTime without a token with Sender/NotAuthorized and the
    reason 'An error was discovered processing the <wsse:Security> header.'; other cameras (Quedale/
    OnvifDeviceManager#19) say 'Sender not Authorized...'. Both read as NotAuthorized: without credentials sent, the
    driver asks again with a token instead of calling it a wrong password."""
    from lxml.etree import QName
    from zeep.exceptions import Fault

    ter = "http://www.onvif.org/ver10/error"
    vivotek = Fault("An error was discovered processing the <wsse:Security> header.", code="env:Sender",
                    subcodes=[QName(ter, "NotAuthorized")])
    assert drv._is_not_authorized(vivotek)
    other = Fault("Sender not Authorized. Invalid username or password! You still have 24 attempt(s).",
                  code="s:Sender", subcodes=[QName(ter, "NotAuthorized")])
    assert drv._is_not_authorized(other)
    assert not drv._is_not_authorized(Fault("Optional Action Not Implemented", code="env:Receiver",
                                            subcodes=[QName(ter, "ActionNotSupported")]))


# --- shared WSDLs, logging --------------------------------------------------------------------------------------
def test_wsdl_clients_are_built_once_and_shared_across_threads(camera):
    st, faults = camera
    got = []
    threads = [threading.Thread(target=lambda: got.append(drv.shared_client("media"))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(c) for c in got}) == 1
    a, b = driver(st), driver(st)
    a.login()
    b.login()
    assert a._service("device")._client.wsdl is b._service("device")._client.wsdl
    assert a._service("device")._client.wsse is not b._service("device")._client.wsse


def test_import_onvif_quietly_leaves_logging_alone():
    root = logging.getLogger()
    before = (list(root.handlers), root.level)
    drv.import_onvif_quietly()
    assert (list(root.handlers), root.level) == before


# --- helpers ------------------------------------------------------------------------------------------------
def test_posix_tz_offset():
    assert drv.posix_tz_offset("CST-8:00:00") == dt.timedelta(hours=8)
    assert drv.posix_tz_offset("CST+5:00:00") == dt.timedelta(hours=-5)
    assert drv.posix_tz_offset("IST-5:30") == dt.timedelta(hours=5, minutes=30)
    assert drv.posix_tz_offset("CST-2:00:00DST01:00:00,M3.5.5/02:00:00,M10.5.0/02:00:00") == dt.timedelta(hours=2)
    assert drv.posix_tz_offset("<+08>-8") == dt.timedelta(hours=8)
    assert drv.posix_tz_offset("garbage") is None and drv.posix_tz_offset(None) is None


def _sdt(*parts: str, prefix: str = "tt:") -> object:
    """A GetSystemDateAndTimeResponse element; prefix "" puts the schema elements in a default namespace."""
    from lxml import etree

    tt = "http://www.onvif.org/ver10/schema"
    xmlns = f'xmlns:tt="{tt}"' if prefix else f'xmlns="{tt}"'
    body = "".join(parts).replace("tt:", prefix)
    return etree.fromstring(f'<tds:GetSystemDateAndTimeResponse xmlns:tds="http://www.onvif.org/ver10/device/wsdl" '
                            f"{xmlns}><{prefix}SystemDateAndTime>{body}</{prefix}SystemDateAndTime>"
                            "</tds:GetSystemDateAndTimeResponse>")


def _when(tag, y, mo, d, h, mi, s):
    return (f"<tt:{tag}><tt:Date><tt:Year>{y}</tt:Year><tt:Month>{mo}</tt:Month><tt:Day>{d}</tt:Day></tt:Date>"
            f"<tt:Time><tt:Hour>{h}</tt:Hour><tt:Minute>{mi}</tt:Minute><tt:Second>{s}</tt:Second></tt:Time>"
            f"</tt:{tag}>")


@pytest.mark.parametrize("prefix", ["tt:", ""])
def test_system_date_and_time_prefers_utc_and_falls_back_to_local_with_tz(prefix):
    tz = "<tt:TimeZone><tt:TZ>CST-8:00:00</tt:TZ></tt:TimeZone>"
    both = drv.parse_system_date_and_time(_sdt(
        "<tt:DateTimeType>NTP</tt:DateTimeType>", tz, _when("UTCDateTime", 2026, 5, 1, 2, 3, 4),
        _when("LocalDateTime", 2026, 5, 1, 10, 3, 4), prefix=prefix))
    assert (both.kind, both.tz, both.utc) == ("NTP", "CST-8:00:00", dt.datetime(2026, 5, 1, 2, 3, 4, tzinfo=UTC))
    local = drv.parse_system_date_and_time(_sdt(tz, _when("LocalDateTime", 2026, 5, 1, 10, 3, 4), prefix=prefix))
    assert (local.kind, local.utc) == (None, dt.datetime(2026, 5, 1, 2, 3, 4, tzinfo=UTC))
    nonsense = drv.parse_system_date_and_time(_sdt(tz, _when("LocalDateTime", 2026, 13, 40, 0, 0, 0),
                                                   prefix=prefix))  # firmware nonsense
    assert nonsense.utc is None
    assert drv.parse_system_date_and_time(_sdt(prefix=prefix)).utc is None  # nothing at all


def test_device_information_and_ntp_servers_are_read_in_any_namespace_spelling():
    from lxml import etree

    info = etree.fromstring(
        '<GetDeviceInformationResponse xmlns="http://www.onvif.org/ver10/device/wsdl"><Manufacturer> Acme '
        "</Manufacturer><Model>IPC-1</Model><FirmwareVersion>V5.7</FirmwareVersion><SerialNumber>SN1"
        "</SerialNumber><HardwareId></HardwareId></GetDeviceInformationResponse>")
    assert drv.parse_device_information(info) == drv.DeviceInformation(
        manufacturer="Acme", model="IPC-1", firmware="V5.7", serial="SN1", hardware=None)
    ntp = etree.fromstring(
        '<d:GetNTPResponse xmlns:d="http://www.onvif.org/ver10/device/wsdl" xmlns:t="http://www.onvif.org/ver10/'
        'schema"><d:NTPInformation><t:FromDHCP>{dhcp}</t:FromDHCP><t:NTPFromDHCP><t:Type>IPv4</t:Type>'
        "<t:IPv4Address>10.0.0.1</t:IPv4Address></t:NTPFromDHCP><t:NTPManual><t:Type>DNS</t:Type>"
        "<t:DNSname> ntp.example.cn </t:DNSname></t:NTPManual></d:NTPInformation></d:GetNTPResponse>")
    assert drv.parse_ntp_servers(ntp) == ["ntp.example.cn"]
    ntp.find(".//{*}FromDHCP").text = "true"
    assert drv.parse_ntp_servers(ntp) == ["ntp.example.cn", "10.0.0.1"]
    assert drv.parse_ntp_servers(etree.fromstring("<GetNTPResponse/>")) == []


def test_uri_helpers():
    assert drv.strip_credentials("rtsp://admin:pw@10.0.0.5:554/Streaming/Channels/101") == \
        "rtsp://10.0.0.5:554/Streaming/Channels/101"
    assert drv.strip_credentials("rtsp://10.0.0.5/a?b=1") == "rtsp://10.0.0.5/a?b=1"
    assert drv.repoint("http://192.168.1.64/onvif/Media", "127.0.0.9", 8080) == "http://127.0.0.9:8080/onvif/Media"
    assert drv.repoint("rtsp://192.168.1.64:554/x", "127.0.0.9", None) == "rtsp://127.0.0.9:554/x"
    assert drv.channel_number("VideoSource_12", 1) == 12 and drv.channel_number("main", 3) == 3
    assert drv.channel_number("RecordingToken000", 2) == 2
    assert drv.codec_name("H264") == "H.264" and drv.codec_name(None) is None


def test_spans_from_events():
    t = lambda h: dt.datetime(2026, 1, 1, tzinfo=UTC) + dt.timedelta(hours=h)  # noqa: E731
    events = [(t(0), True), (t(5), False), (t(6), True), (t(9), False), (t(10), True)]
    assert drv.spans_from_events(events, t(0), t(24), t(12)) == [(t(0), t(5)), (t(6), t(9)), (t(10), t(12))]
    assert drv.spans_from_events(events, t(7), t(24), t(12)) == [(t(7), t(9)), (t(10), t(12))]
    assert drv.spans_from_events([(t(0), False)], t(0), t(24), t(12)) == []
    assert drv.spans_from_events([(t(1), True), (t(1), True)], t(0), t(2), None) == [(t(1), t(2))]


def test_decode_backup_mtom_and_inline():
    env = ('<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope" xmlns:tds="{d}" xmlns:tt="{s}" '
           'xmlns:xop="http://www.w3.org/2004/08/xop/include"><e:Body><tds:GetSystemBackupResponse>'
           '<tds:BackupFiles><tt:Name>cfg.bin</tt:Name><tt:Data>{data}</tt:Data></tds:BackupFiles>'
           '</tds:GetSystemBackupResponse></e:Body></e:Envelope>')
    inline = env.format(d=drv.NS_DEVICE, s=drv.NS_SCHEMA, data=base64.b64encode(b"\x00\x01blob").decode())
    assert drv.decode_backup(inline.encode(), "application/soap+xml") == [("cfg.bin", "", b"\x00\x01blob")]
    root = env.format(d=drv.NS_DEVICE, s=drv.NS_SCHEMA, data='<xop:Include href="cid:part%401"/>').encode()
    body = (b"--b\r\nContent-Type: application/xop+xml\r\nContent-ID: <root>\r\n\r\n" + root +
            b"\r\n--b\r\nContent-Type: application/octet-stream\r\nContent-ID: <part@1>\r\n\r\n\x00\xffraw"
            b"\r\n--b--\r\n")
    got = drv.decode_backup(body, 'multipart/related; boundary="b"; type="application/xop+xml"')
    assert got == [("cfg.bin", "application/octet-stream", b"\x00\xffraw")]
    with pytest.raises(ProtocolError):
        drv.decode_backup(root, "application/soap+xml")  # an include without its part


# Search answers are read with lxml, not zeep (the fields used, in any namespace prefix or default namespace).
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"


def _answer(body: str, **ns) -> object:
    decl = " ".join(f'xmlns:{k}="{v}"' for k, v in {"tse": drv.NS_SEARCH, "tt": drv.NS_SCHEMA, **ns}.items())
    xml = f'<env:Envelope xmlns:env="{SOAP12}" {decl}><env:Body>{body}</env:Body></env:Envelope>'
    return drv.check_wellformed(xml.encode()).find("{*}Body")[0]


def test_parse_recording_results_reads_the_used_fields_in_any_prefix():
    body = ('<tse:GetRecordingSearchResultsResponse><tse:ResultList><tt:SearchState> Completed </tt:SearchState>'
            '<tt:RecordingInformation><tt:RecordingToken>REC_2</tt:RecordingToken><tt:Source><tt:SourceId>VS_2'
            '</tt:SourceId><tt:Name>后厨 2</tt:Name></tt:Source><tt:EarliestRecording>2026-11-01T00:00:00Z'
            '</tt:EarliestRecording><tt:LatestRecording>2026-11-27T08:00:00+08:00</tt:LatestRecording>'
            '<tt:RecordingStatus>Recording</tt:RecordingStatus></tt:RecordingInformation>'
            # another firmware: default namespace, no Source, an unreadable time
            f'<RecordingInformation xmlns="{drv.NS_SCHEMA}"><RecordingToken>REC_3</RecordingToken>'
            '<EarliestRecording>soon</EarliestRecording></RecordingInformation>'
            '</tse:ResultList></tse:GetRecordingSearchResultsResponse>')
    state, infos = drv.parse_recording_results(_answer(body))
    assert state == "Completed"
    assert infos[0] == drv.RecordingInfo("REC_2", "VS_2", "后厨 2", dt.datetime(2026, 11, 1, tzinfo=UTC),
                                         dt.datetime(2026, 11, 27, tzinfo=UTC), "Recording")
    assert infos[1] == drv.RecordingInfo("REC_3", None, None, None, None, "")
    with pytest.raises(ProtocolError, match="ResultList"):
        drv.parse_recording_results(_answer("<tse:GetRecordingSearchResultsResponse/>"))


def test_parse_event_results_keeps_only_data_presence_flips():
    def result(token, time, items, prefix="tt"):
        data = "".join(f'<{prefix}:SimpleItem Name="{n}" Value="{v}"/>' for n, v in items)
        return (f"<tt:Result><tt:RecordingToken>{token}</tt:RecordingToken><tt:Time>{time}</tt:Time><tt:Event>"
                f"<wsnt:Message><{prefix}:Message><{prefix}:Data>{data}</{prefix}:Data></{prefix}:Message>"
                "</wsnt:Message></tt:Event></tt:Result>")

    body = ("<tse:GetEventSearchResultsResponse><tse:ResultList><tt:SearchState>Searching</tt:SearchState>"
            + result("REC_1", "2026-11-27T00:00:00Z", [("IsDataPresent", "true")])
            + result("REC_1", "2026-11-27T01:00:00Z", [("IsDataPresent", "false")], prefix="x")
            + result("REC_2", "2026-11-27T02:00:00Z", [("IsMotion", "true")])  # another event: left out
            + result("REC_2", "not a time", [("IsDataPresent", "true")])  # unreadable: left out
            + "</tse:ResultList></tse:GetEventSearchResultsResponse>")
    state, events = drv.parse_event_results(_answer(
        body, wsnt="http://docs.oasis-open.org/wsn/b-2", x="urn:vendor:schema"))
    t0 = dt.datetime(2026, 11, 27, tzinfo=UTC)
    assert state == "Searching"
    assert events == [("REC_1", t0, True), ("REC_1", t0 + dt.timedelta(hours=1), False)]


@pytest.mark.parametrize(("status", "content", "error"), [
    (500, f'<e:Envelope xmlns:e="{SOAP12}" xmlns:ter="http://www.onvif.org/ver10/error"><e:Body><e:Fault>'
          "<e:Code><e:Value>e:Sender</e:Value><e:Subcode><e:Value>ter:NotAuthorized</e:Value></e:Subcode></e:Code>"
          '<e:Reason><e:Text xml:lang="en">Sender not authorized</e:Text></e:Reason></e:Fault></e:Body>'
          "</e:Envelope>", AuthFailed),
    (400, f'<e:Envelope xmlns:e="{SOAP12}" xmlns:ter="http://www.onvif.org/ver10/error"><e:Body><e:Fault>'
          "<e:Code><e:Value>e:Receiver</e:Value><e:Subcode><e:Value>ter:ActionNotSupported</e:Value>"
          "</e:Subcode></e:Code><e:Reason><e:Text>no</e:Text></e:Reason></e:Fault></e:Body></e:Envelope>",
     NotSupported),
    (200, f'<e:Envelope xmlns:e="{SOAP12}" xmlns:ter="http://www.onvif.org/ver10/error"><e:Body><e:Fault>'
          "<e:Code><e:Value>e:Receiver</e:Value><e:Subcode><e:Value>ter:ActionNotSupported</e:Value>"
          "</e:Subcode></e:Code><e:Reason><e:Text>no</e:Text></e:Reason></e:Fault></e:Body></e:Envelope>",
     NotSupported),  # some firmware send their faults with HTTP 200
    (200, f'<e:Envelope xmlns:e="{SOAP12}"><e:Body/></e:Envelope>', ProtocolError),
    (200, "<half", ProtocolError),
    (503, "", ProtocolError),
])
def test_raw_search_answers_fail_like_zeep_answers(status, content, error):
    """The lxml-read answers raise what zeep-read ones raise: faults map to the driver errors, a NotAuthorized
    is remembered as a rejected login, an empty or broken answer is a ProtocolError."""
    st = DeviceState(id="raw", kind="nvr", vendor="onvif", host="127.0.0.1", http_port=9, rtsp_port=554,
                     username="u", password="p", model="m", serial="s", firmware="f", mac="m", name="n")
    d = drv.OnvifDriver(device_for(st), "p")
    d._offset_known, d._xaddrs = True, {drv.NS_SEARCH: "http://127.0.0.1:9/onvif/search_service"}

    def post(address, message, headers):
        reply = drv._Reply(status, content.encode(), {"content-type": "application/soap+xml"})
        if reply.content and reply.status_code == 200:
            drv.check_wellformed(reply.content)  # as the transport does
        return reply

    d._transport.post = post
    with pytest.raises(error):
        d._call("search", "GetEventSearchResults", raw=True, SearchToken="s", WaitTime=dt.timedelta(seconds=1))
    if error is AuthFailed:
        with pytest.raises(AuthFailed):
            auth_guard.check("raw")


def test_check_wellformed():
    drv.check_wellformed(b"<a><b/></a>")
    with pytest.raises(ProtocolError, match="malformed"):
        drv.check_wellformed(b"<a><b></a>")
    with pytest.raises(ProtocolError, match="DTD"):
        drv.check_wellformed(b'<!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>')


def test_device_deadline_bounds_every_call(camera):
    st, faults = camera
    faults.set(st.id, "blackhole")
    d = driver(st, timeout=5.0)
    d.set_deadline(0.4)
    t0 = time.monotonic()
    with pytest.raises(Timeout):
        d.clock()
    assert time.monotonic() - t0 < 1.2
    sent = d.requests_sent
    with pytest.raises(Timeout, match="deadline passed"):
        d.facts()
    assert d.requests_sent == sent  # nothing more went out after the deadline


# --- transport ------------------------------------------------------------------------------------------------
SDT_ANSWER = (
    '<?xml version="1.0" encoding="UTF-8"?><env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope" '
    'xmlns:tds="http://www.onvif.org/ver10/device/wsdl" xmlns:tt="http://www.onvif.org/ver10/schema"><env:Body>'
    "<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime><tt:DateTimeType>NTP</tt:DateTimeType>"
    "<tt:DaylightSavings>false</tt:DaylightSavings><tt:UTCDateTime><tt:Time><tt:Hour>1</tt:Hour><tt:Minute>2"
    "</tt:Minute><tt:Second>3</tt:Second></tt:Time><tt:Date><tt:Year>2026</tt:Year><tt:Month>1</tt:Month>"
    "<tt:Day>2</tt:Day></tt:Date></tt:UTCDateTime></tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse>"
    "</env:Body></env:Envelope>").encode()


def OneShotServer(answers: int) -> RawServer:
    """Answers `answers` requests per connection, then closes it while claiming keep-alive (as devices with a
    short idle timeout do); answers=0 closes without answering, answers=-1 closes as soon as it accepts."""
    return RawServer(b"HTTP/1.1 200 OK\r\nContent-Type: application/soap+xml\r\nConnection: keep-alive\r\n"
                     + f"Content-Length: {len(SDT_ANSWER)}\r\n\r\n".encode() + SDT_ANSWER, answers=answers)


def _plain_device(port: int) -> drv.OnvifDriver:
    st = DeviceState(id="raw", kind="camera", vendor="onvif", host="127.0.0.1", http_port=port, rtsp_port=554,
                     username="u", password="p", model="m", serial="s", firmware="f", mac="m", name="n")
    return drv.OnvifDriver(device_for(st), "p")


def test_stale_keepalive_connection_is_reopened_once():
    srv = OneShotServer(answers=1)
    try:
        d = _plain_device(srv.port)
        d._call("device", "GetSystemDateAndTime")
        time.sleep(0.05)  # the server has closed the kept-alive connection by now
        assert d._call("device", "GetSystemDateAndTime").UTCDateTime.Date.Year == 2026
        assert (srv.connections, len(srv.requests), d.requests_sent) == (2, 2, 2)
    finally:
        srv.close()


def test_adopted_connection_carries_the_first_requests():
    """The reachable check's connection is handed to the driver: the device sees one connection, not two."""
    import socket

    srv = OneShotServer(answers=2)
    try:
        d = _plain_device(srv.port)
        assert d.adopt_connection(socket.create_connection(("127.0.0.1", srv.port), timeout=2))
        d._call("device", "GetSystemDateAndTime")
        d._call("device", "GetSystemDateAndTime")
        assert (srv.connections, len(srv.requests), d.requests_sent) == (1, 2, 2)
    finally:
        srv.close()


def test_adopted_connection_closed_by_the_device_is_replaced():
    import socket

    srv = OneShotServer(answers=-1)  # accepts, then closes at once, like a device's short idle timeout
    try:
        d = _plain_device(srv.port)
        assert d.adopt_connection(socket.create_connection(("127.0.0.1", srv.port), timeout=2))
        time.sleep(0.05)
        with pytest.raises(ProtocolError, match="closed without an answer|connection broken"):  # the new one too
            d._call("device", "GetSystemDateAndTime")
        assert srv.connections == 2  # the closed adopted connection was not used; one new one, and not more
    finally:
        srv.close()


def test_https_driver_does_not_adopt_a_plain_connection(camera):
    st, _ = camera
    dev = device_for(st)
    d = drv.OnvifDriver(Device(**{**dev.__dict__, "https": True}), st.password)
    assert d.adopt_connection(object()) is False


def test_a_fresh_connection_closed_without_answer_is_not_retried():
    srv = OneShotServer(answers=0)
    try:
        with pytest.raises(ProtocolError, match="closed without an answer"):
            _plain_device(srv.port)._call("device", "GetSystemDateAndTime")
        assert srv.connections == 1
    finally:
        srv.close()


def test_transport_posts_only_to_the_inventory_host():
    t = drv._Transport("http://127.0.0.1:80", 1.0)
    with pytest.raises(ProtocolError, match="not the inventory host"):
        t.post("http://192.0.2.7/onvif/device_service", b"<x/>", {})
    assert t.requests == 0

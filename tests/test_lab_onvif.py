"""The simulated ONVIF camera/NVR, driven by real onvif-zeep / zeep clients over loopback sockets.

The zeep clients here run with strict=True, so every answer must be schema- and namespace-correct.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
import threading

import pytest

pytest.importorskip("onvif")

from canteen_ops.lab import onvif as lab_onvif  # noqa: E402
from canteen_ops.lab.state import ChannelState, DeviceState, Disk  # noqa: E402
from canteen_ops.lab.wire import Request  # noqa: E402
from canteen_ops.timeutil import parse_xs_datetime  # noqa: E402

_clients: dict[str, object] = {}
_clients_lock = threading.Lock()


def _wsdl(name: str) -> str:
    import onvif

    return os.path.join(os.path.dirname(os.path.dirname(onvif.__file__)), "wsdl", name)


def strict_client(wsdl: str):
    """One strict zeep Client per WSDL for the whole test module (parsing WSDLs is the slow part)."""
    from zeep import Client, Settings

    with _clients_lock:
        if wsdl not in _clients:
            _clients[wsdl] = Client(_wsdl(wsdl), settings=Settings(strict=True, forbid_entities=True,
                                                                     xml_huge_tree=False))
        return _clients[wsdl]


def service(st: DeviceState, kind: str = "device", password: str | None | bool = True,
            created: dt.datetime | None = None, dt_diff: dt.timedelta | None = None):
    """A strict zeep service bound to a lab device; password True = the device's own, None = no WS-Security."""
    from onvif.client import UsernameDigestTokenDtDiff
    from zeep import Client

    wsdl, binding, path = {
        "device": ("devicemgmt.wsdl", "{http://www.onvif.org/ver10/device/wsdl}DeviceBinding", "device_service"),
        "media": ("media.wsdl", "{http://www.onvif.org/ver10/media/wsdl}MediaBinding", "media_service"),
        "search": ("search.wsdl", "{http://www.onvif.org/ver10/search/wsdl}SearchBinding", "search_service"),
    }[kind]
    base = strict_client(wsdl)
    pw = st.password if password is True else password
    wsse = None if pw is None else UsernameDigestTokenDtDiff(st.username, pw, dt_diff=dt_diff, use_digest=True,
                                                              created=created)
    client = Client.__new__(Client)
    client.__dict__.update(base.__dict__)
    client.wsse = wsse
    return client.create_service(binding, f"http://{st.host}:{st.http_port}/onvif/{path}")


def fault_subcodes(exc) -> list[str]:
    return [q.localname for q in (exc.subcodes or [])]


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


# --- device management ---------------------------------------------------------------------------------
def test_device_information_follows_state(camera):
    st, faults = camera
    info = service(st).GetDeviceInformation()
    assert (info.Model, info.SerialNumber, info.FirmwareVersion) == (st.model, st.serial, st.firmware)
    faults.set(st.id, "vulnerable-firmware")
    assert service(st).GetDeviceInformation().FirmwareVersion == st.effective_firmware != st.firmware


def test_system_date_and_time_unauthenticated_with_drift_and_ntp(camera):
    st, faults = camera
    faults.set(st.id, "clock-drift", "+120")
    faults.set(st.id, "ntp-off")
    r = service(st, password=None).GetSystemDateAndTime()
    u = r.UTCDateTime
    device = dt.datetime(u.Date.Year, u.Date.Month, u.Date.Day, u.Time.Hour, u.Time.Minute, u.Time.Second,
                         tzinfo=dt.timezone.utc)
    drift = (device - dt.datetime.now(dt.timezone.utc)).total_seconds()
    assert 117 <= drift <= 121
    assert r.DateTimeType == "Manual" and r.TimeZone.TZ == "CST-8:00:00"
    local = r.LocalDateTime
    assert (local.Time.Hour - u.Time.Hour) % 24 == 8
    faults.set(st.id, "clock-reset")
    assert service(st, password=None).GetSystemDateAndTime().UTCDateTime.Date.Year == 1970


def test_authenticated_calls_need_credentials(camera):
    from zeep.exceptions import Fault

    st, faults = camera
    with pytest.raises(Fault) as exc:
        service(st, password=None).GetDeviceInformation()
    assert exc.value.code.endswith("Sender") and fault_subcodes(exc.value) == ["NotAuthorized"]


def test_wrong_password_is_not_authorized_and_counted(camera):
    from zeep.exceptions import Fault

    st, faults = camera
    with pytest.raises(Fault) as exc:
        service(st, password="guess").GetDeviceInformation()
    assert fault_subcodes(exc.value) == ["NotAuthorized"]
    assert st.failed_logins == 1
    faults.set(st.id, "wrong-password")  # the device was re-keyed: the inventory password is now wrong
    with pytest.raises(Fault):
        service(st).GetUsers()
    assert st.failed_logins == 2
    faults.clear(st.id, "wrong-password")
    service(st).GetUsers()
    assert st.failed_logins == 0


def test_lock_after_failures_refuses_even_the_right_password(camera):
    from zeep.exceptions import Fault

    st, faults = camera
    faults.set(st.id, "lock-after", "2")
    for _ in range(2):
        with pytest.raises(Fault):
            service(st, password="guess").GetDeviceInformation()
    with pytest.raises(Fault) as exc:
        service(st).GetDeviceInformation()
    assert "locked" in exc.value.message and fault_subcodes(exc.value) == ["NotAuthorized"]


def test_stale_created_is_refused_against_the_device_clock(camera):
    from zeep.exceptions import Fault

    st, faults = camera
    stale = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=30)
    with pytest.raises(Fault) as exc:
        service(st, created=stale).GetDeviceInformation()
    assert fault_subcodes(exc.value) == ["NotAuthorized"] and "time check" in exc.value.message
    # a device whose clock is 30 s behind accepts exactly that timestamp
    faults.set(st.id, "clock-drift", "-30")
    assert service(st, created=stale).GetDeviceInformation().Model == st.model


def test_drifted_device_works_with_onvif_zeep_adjust_time(camera):
    from onvif import ONVIFCamera, ONVIFError

    st, faults = camera
    faults.set(st.id, "clock-drift", "-3600")
    with pytest.raises(ONVIFError, match="not authorized"):
        ONVIFCamera(st.host, st.http_port, st.username, st.password).devicemgmt.GetDeviceInformation()
    cam = ONVIFCamera(st.host, st.http_port, st.username, st.password, adjust_time=True)
    assert cam.devicemgmt.GetDeviceInformation().SerialNumber == st.serial


def test_unknown_action_is_action_not_supported(camera):
    from zeep.exceptions import Fault

    st, faults = camera
    with pytest.raises(Fault) as exc:
        service(st).SystemReboot()
    assert exc.value.code.endswith("Receiver") and fault_subcodes(exc.value) == ["ActionNotSupported"]


@pytest.mark.parametrize("kind", ["nvr", "camera"])
def test_system_backup_follows_capability(lab, kind):
    from zeep.exceptions import Fault

    st = lab.first("onvif", kind)
    supported = st.supports_system_backup
    assert supported is (kind == "nvr")  # the lab fleet: ONVIF NVRs offer GetSystemBackup, cameras do not
    if True:
        dev = service(st)
        caps = dev.GetCapabilities(Category="All")
        assert caps.Device.System.SystemBackup is supported
        svc = dev.GetServices(IncludeCapability=True)
        assert svc[0].Capabilities._value_1.System.SystemBackup is supported
        if not supported:
            with pytest.raises(Fault) as exc:
                dev.GetSystemBackup()
            assert fault_subcodes(exc.value) == ["ActionNotSupported"]
            return
        client = strict_client("devicemgmt.wsdl")
        with client.settings(raw_response=True):
            raw = dev.GetSystemBackup()
        assert raw.headers["Content-Type"].startswith("multipart/related")
        assert st.config_blob() in raw.content and b"xop:Include" in raw.content


def test_capabilities_and_services_nvr_vs_camera(camera, nvr):
    cam, _ = camera
    nv, _ = nvr
    cam_caps = service(cam, password=None).GetCapabilities(Category="All")
    assert cam_caps.Media.XAddr.endswith("/onvif/media_service") and cam_caps.Extension is None
    nvr_caps = service(nv, password=None).GetCapabilities(Category="All")
    ext = {e.tag.rsplit("}", 1)[1]: e for e in nvr_caps.Extension._value_1}  # zeep leaves these as elements
    assert ext["Search"].findtext("{http://www.onvif.org/ver10/schema}XAddr").endswith("/onvif/search_service")
    assert "Recording" in ext
    namespaces = [s.Namespace for s in service(nv, password=None).GetServices(IncludeCapability=False)]
    assert "http://www.onvif.org/ver10/search/wsdl" in namespaces
    cam_ns = [s.Namespace for s in service(cam, password=None).GetServices(IncludeCapability=False)]
    assert "http://www.onvif.org/ver10/search/wsdl" not in cam_ns


def test_network_ntp_users(camera):
    st, faults = camera
    dev = service(st)
    nic = dev.GetNetworkInterfaces()[0]
    assert nic.Info.HwAddress == st.mac and nic.IPv4.Config.Manual[0].Address == st.host
    assert [m.IPv4Address for m in dev.GetNTP().NTPManual] == [st.ntp_server]
    st.ntp_server = "ntp.example.edu.cn"
    assert dev.GetNTP().NTPManual[0].DNSname == "ntp.example.edu.cn"
    faults.set(st.id, "ntp-off")
    assert dev.GetNTP().NTPManual == []
    st.users.append(("viewer", "User"))
    assert [(u.Username, u.UserLevel) for u in dev.GetUsers()] == st.users
    assert all(u.Password is None for u in dev.GetUsers())


# --- media ----------------------------------------------------------------------------------------------
def test_profiles_stream_and_snapshot_uris(nvr):
    st, faults = nvr
    media = service(st, "media")
    profiles = media.GetProfiles()
    assert [p.token for p in profiles] == [f"Profile_{c.id}" for c in st.channels]
    enc = profiles[0].VideoEncoderConfiguration
    assert (enc.Encoding, enc.Resolution.Width, enc.Resolution.Height, enc.RateControl.FrameRateLimit,
            enc.RateControl.BitrateLimit) == ("H264", 1920, 1080, 25, 4096)
    uri = media.GetStreamUri(StreamSetup={"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}},
                             ProfileToken="Profile_2")
    assert uri.Uri == f"rtsp://{st.host}:{st.rtsp_port}{st.channels[1].rtsp_path}" and "@" not in uri.Uri
    snap = media.GetSnapshotUri(ProfileToken="Profile_1")
    assert snap.Uri.startswith(f"http://{st.host}:{st.http_port}/onvif/snapshot/")
    faults.set(st.id, "low-res")
    cfgs = media.GetVideoEncoderConfigurations()
    assert len(cfgs) == len(st.channels) and (cfgs[0].Resolution.Width, cfgs[0].Resolution.Height) == (1280, 720)
    assert media.GetVideoEncoderConfiguration(ConfigurationToken="VideoEncoder_3").token == "VideoEncoder_3"


def test_camera_sub_stream_profile(camera, lab):
    """A camera has a second profile on the same source: the 640x360 sub-stream the RTSP server plays."""
    st, faults = camera
    media = service(st, "media")
    main, sub = media.GetProfiles()
    assert (main.token, sub.token) == ("Profile_1", "Profile_1_sub")
    assert sub.VideoSourceConfiguration.SourceToken == main.VideoSourceConfiguration.SourceToken
    assert (sub.VideoEncoderConfiguration.Resolution.Width, sub.VideoEncoderConfiguration.Resolution.Height) == (
        640, 360)
    uri = media.GetStreamUri(StreamSetup={"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}},
                             ProfileToken="Profile_1_sub")
    assert uri.Uri == f"rtsp://{st.host}:{st.rtsp_port}{st.sub_stream_path(st.channels[0])}"
    faults.set(st.id, "low-res")  # only the main stream follows the device's resolution fault
    assert [(c.token, c.Resolution.Width) for c in media.GetVideoEncoderConfigurations()] == [
        ("VideoEncoder_1", 1280), ("VideoEncoder_1_sub", 640)]


@pytest.mark.parametrize("vendor", ["hikvision", "dahua"])
def test_hikvision_and_dahua_speak_onvif_too(lab, lab_faults, vendor):
    st = lab.first(vendor, "camera")
    lab_faults.touch(st.id)
    info = service(st).GetDeviceInformation()
    assert (info.Manufacturer, info.SerialNumber) == ({"hikvision": "HIKVISION", "dahua": "Dahua"}[vendor],
                                                      st.serial)


def test_unknown_profile_is_invalid_arg(camera):
    from zeep.exceptions import Fault

    st, faults = camera
    with pytest.raises(Fault) as exc:
        service(st, "media").GetSnapshotUri(ProfileToken="nope")
    assert fault_subcodes(exc.value) == ["InvalidArgVal", "NoProfile"]


# --- recording search -----------------------------------------------------------------------------------
def test_recording_summary_and_information_follow_retention(nvr):
    st, faults = nvr
    faults.set(st.id, "retention", "5")
    search = service(st, "search")
    summary = search.GetRecordingSummary()
    now = dt.datetime.now(dt.timezone.utc)
    assert abs((now - summary.DataFrom).total_seconds() - 5 * 86400) < 10
    assert summary.NumberRecordings == len(st.channels) == 3
    token = search.FindRecordings(Scope={"IncludedSources": [{"Token": "VideoSource_2"}]}, KeepAliveTime="PT10S")
    result = search.GetRecordingSearchResults(SearchToken=token)
    assert result.SearchState == "Completed"
    info = result.RecordingInformation
    assert [i.RecordingToken for i in info] == ["Recording_2"]
    assert abs((now - info[0].EarliestRecording).total_seconds() - 5 * 86400) < 10
    assert info[0].RecordingStatus == "Recording"
    search.EndSearch(SearchToken=token)


def test_search_pagination_and_channel_offline(nvr):
    st, faults = nvr
    faults.set(st.id, "channel-offline", "3")
    search = service(st, "search")
    token = search.FindRecordings(Scope={}, KeepAliveTime="PT10S")
    first = search.GetRecordingSearchResults(SearchToken=token, MaxResults=2)
    second = search.GetRecordingSearchResults(SearchToken=token, MaxResults=2)
    assert (first.SearchState, len(first.RecordingInformation)) == ("Searching", 2)
    assert (second.SearchState, len(second.RecordingInformation)) == ("Completed", 1)
    info = search.GetRecordingInformation(RecordingToken="Recording_3")
    assert info.RecordingStatus == "Stopped"
    assert (dt.datetime.now(dt.timezone.utc) - info.LatestRecording).total_seconds() > 7000


def test_find_events_reveals_gaps(nvr):
    st, faults = nvr
    faults.set(st.id, "gaps", "2")
    search = service(st, "search")
    start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=24)
    token = search.FindEvents(StartPoint=start, Scope={"IncludedRecordings": ["Recording_1"]}, SearchFilter={},
                              IncludeStartState=True, KeepAliveTime="PT10S")
    results = search.GetEventSearchResults(SearchToken=token).Result
    flips = [(r.Time, r.Event.Message._value_1.Data.SimpleItem[0].Value) for r in results]
    assert [v for _, v in flips] == ["true", "false", "true", "false", "true"]
    spans = st.recorded_spans(1)  # computed a moment later: the lab's "now" may have ticked a second on
    ends = [t.replace(tzinfo=dt.timezone.utc) for t, v in flips[1:] if v == "false"]
    assert len(ends) == len(spans) - 1
    assert all(abs((got - want).total_seconds()) <= 2 for got, (_, want) in zip(ends, spans[:-1]))


def test_camera_has_no_search_service(camera):
    from zeep.exceptions import Fault

    st, faults = camera
    with pytest.raises(Fault) as exc:
        service(st, "search").GetRecordingSummary()
    assert fault_subcodes(exc.value) == ["ActionNotSupported"]


# --- hostile answers --------------------------------------------------------------------------------------
def test_malformed_and_bomb_answers_are_refused_by_a_hardened_client(camera):
    from lxml.etree import XMLSyntaxError
    from zeep.exceptions import EntitiesForbidden, TransportError, XMLSyntaxError as ZeepSyntax

    st, faults = camera
    faults.set(st.id, "malformed-xml")
    with pytest.raises((TransportError, XMLSyntaxError, ZeepSyntax)):
        service(st).GetDeviceInformation()
    faults.clear(st.id)
    faults.set(st.id, "xml-bomb")
    with pytest.raises((EntitiesForbidden, XMLSyntaxError, ZeepSyntax, TransportError)):
        service(st).GetDeviceInformation()


# --- request parsing (no socket) --------------------------------------------------------------------------
PASSWORD = "s3cret-Pass"


def make_state(kind: str = "camera") -> DeviceState:
    return DeviceState(id="unit", kind=kind, vendor="onvif", host="127.0.0.1", http_port=8080, rtsp_port=8554,
                       username="admin", password=PASSWORD, model="M", serial="S", firmware="1.0",
                       mac="00:11:22:33:44:55", name="unit", channels=[ChannelState(1, "c1")],
                       disks=[Disk(1)] if kind == "nvr" else [])


def _call(st, body: bytes, method="POST"):
    return lab_onvif.handle(st, Request(method, "/onvif/device_service", {}, {}, body, "127.0.0.1"))


def test_handler_rejects_non_soap_requests():
    st = make_state()
    assert _call(st, b"", "GET").status == 405
    assert b"WellFormed" in _call(st, b"<not xml").body
    bomb = b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY b "c">]><a>&b;</a>'
    r = _call(st, bomb)
    assert r.status == 400 and b"DTD" in r.body
    r = _call(st, b'<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body/></e:Envelope>')
    assert b"VersionMismatch" in r.body
    assert _call(st, b"x" * (lab_onvif.MAX_REQUEST + 1)).status == 413


def test_password_digest_matches_the_ws_security_formula():
    nonce, created, pw = b"0123456789abcdef", "2026-01-01T00:00:00Z", "pässword"
    expect = base64.b64encode(hashlib.sha1(nonce + created.encode() + pw.encode()).digest()).decode()
    assert lab_onvif.password_digest(nonce, created, pw) == expect


def test_parse_xs_datetime_variants():
    ref = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    for text in ("2026-01-02T03:04:05Z", "2026-01-02T03:04:05+00:00", "2026-01-02T03:04:05",
                 "2026-01-02T11:04:05+08:00"):
        assert parse_xs_datetime(text) == ref
    assert parse_xs_datetime("2026-01-02T03:04:05.250Z").microsecond == 250000
    with pytest.raises(ValueError):
        parse_xs_datetime("yesterday")


def test_handler_is_fast_enough_for_a_thousand_devices():
    """Not a benchmark: a guard that a request stays far below a millisecond of work (bench/ has figures)."""
    import time

    st = make_state()
    nonce = os.urandom(16)
    created = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = (
        '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Header><Security xmlns="'
        f'{lab_onvif.WSSE}"><UsernameToken><Username>admin</Username><Password Type="#PasswordDigest">'
        f"{lab_onvif.password_digest(nonce, created, PASSWORD)}</Password><Nonce>{base64.b64encode(nonce).decode()}"
        f'</Nonce><Created xmlns="{lab_onvif.WSU}">{created}</Created></UsernameToken></Security></s:Header>'
        f'<s:Body><GetProfiles xmlns="{lab_onvif.TRT}"/></s:Body></s:Envelope>'
    ).encode()
    assert _call(st, body).status == 200
    t0 = time.process_time()
    for _ in range(200):
        _call(st, body)
    per_call = (time.process_time() - t0) / 200
    assert per_call < 0.002, per_call

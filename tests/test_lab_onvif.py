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
from canteen_ops.lab.wire import Request  # noqa: E402
from tests.onvif_lab_server import LabServer, make_state  # noqa: E402

PASSWORD = "s3cret-Pass"
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


def service(port: int, kind: str = "device", password: str = PASSWORD, created: dt.datetime | None = None,
            user: str = "admin", dt_diff: dt.timedelta | None = None):
    from onvif.client import UsernameDigestTokenDtDiff
    from zeep import Client

    wsdl, binding, path = {
        "device": ("devicemgmt.wsdl", "{http://www.onvif.org/ver10/device/wsdl}DeviceBinding", "device_service"),
        "media": ("media.wsdl", "{http://www.onvif.org/ver10/media/wsdl}MediaBinding", "media_service"),
        "search": ("search.wsdl", "{http://www.onvif.org/ver10/search/wsdl}SearchBinding", "search_service"),
    }[kind]
    base = strict_client(wsdl)
    wsse = None if password is None else UsernameDigestTokenDtDiff(user, password, dt_diff=dt_diff,
                                                                  use_digest=True, created=created)
    client = Client.__new__(Client)
    client.__dict__.update(base.__dict__)
    client.wsse = wsse
    return client.create_service(binding, f"http://127.0.0.1:{port}/onvif/{path}")


def fault_subcodes(exc) -> list[str]:
    return [q.localname for q in (exc.subcodes or [])]


@pytest.fixture
def camera():
    st = make_state("cam1", "camera")
    with LabServer(st) as srv:
        yield st, srv


@pytest.fixture
def nvr():
    st = make_state("nvr1", "nvr", channels=4)
    with LabServer(st) as srv:
        yield st, srv


# --- device management ---------------------------------------------------------------------------------
def test_device_information_follows_state(camera):
    st, srv = camera
    info = service(srv.port).GetDeviceInformation()
    assert (info.Model, info.SerialNumber, info.FirmwareVersion) == (st.model, st.serial, st.firmware)
    st.set_fault("vulnerable-firmware")
    assert service(srv.port).GetDeviceInformation().FirmwareVersion == st.effective_firmware != st.firmware


def test_system_date_and_time_unauthenticated_with_drift_and_ntp(camera):
    st, srv = camera
    st.set_fault("clock-drift", "+120")
    st.set_fault("ntp-off")
    r = service(srv.port, password=None).GetSystemDateAndTime()
    u = r.UTCDateTime
    device = dt.datetime(u.Date.Year, u.Date.Month, u.Date.Day, u.Time.Hour, u.Time.Minute, u.Time.Second,
                         tzinfo=dt.timezone.utc)
    drift = (device - dt.datetime.now(dt.timezone.utc)).total_seconds()
    assert 117 <= drift <= 121
    assert r.DateTimeType == "Manual" and r.TimeZone.TZ == "CST-8:00:00"
    local = r.LocalDateTime
    assert (local.Time.Hour - u.Time.Hour) % 24 == 8
    st.set_fault("clock-reset")
    assert service(srv.port, password=None).GetSystemDateAndTime().UTCDateTime.Date.Year == 1970


def test_authenticated_calls_need_credentials(camera):
    from zeep.exceptions import Fault

    st, srv = camera
    with pytest.raises(Fault) as exc:
        service(srv.port, password=None).GetDeviceInformation()
    assert exc.value.code.endswith("Sender") and fault_subcodes(exc.value) == ["NotAuthorized"]


def test_wrong_password_is_not_authorized_and_counted(camera):
    from zeep.exceptions import Fault

    st, srv = camera
    with pytest.raises(Fault) as exc:
        service(srv.port, password="guess").GetDeviceInformation()
    assert fault_subcodes(exc.value) == ["NotAuthorized"]
    assert st.failed_logins == 1
    st.set_fault("wrong-password")  # the device was re-keyed: the inventory password is now wrong
    with pytest.raises(Fault):
        service(srv.port).GetUsers()
    assert st.failed_logins == 2
    st.clear_fault("wrong-password")
    service(srv.port).GetUsers()
    assert st.failed_logins == 0


def test_lock_after_failures_refuses_even_the_right_password(camera):
    from zeep.exceptions import Fault

    st, srv = camera
    st.set_fault("lock-after", "2")
    for _ in range(2):
        with pytest.raises(Fault):
            service(srv.port, password="guess").GetDeviceInformation()
    with pytest.raises(Fault) as exc:
        service(srv.port).GetDeviceInformation()
    assert "locked" in exc.value.message and fault_subcodes(exc.value) == ["NotAuthorized"]


def test_stale_created_is_refused_against_the_device_clock(camera):
    from zeep.exceptions import Fault

    st, srv = camera
    stale = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=30)
    with pytest.raises(Fault) as exc:
        service(srv.port, created=stale).GetDeviceInformation()
    assert fault_subcodes(exc.value) == ["NotAuthorized"] and "time check" in exc.value.message
    # a device whose clock is 30 s behind accepts exactly that timestamp
    st.set_fault("clock-drift", "-30")
    assert service(srv.port, created=stale).GetDeviceInformation().Model == st.model


def test_drifted_device_works_with_onvif_zeep_adjust_time(camera):
    from onvif import ONVIFCamera, ONVIFError

    st, srv = camera
    st.set_fault("clock-drift", "-3600")
    with pytest.raises(ONVIFError, match="not authorized"):
        ONVIFCamera("127.0.0.1", srv.port, "admin", PASSWORD).devicemgmt.GetDeviceInformation()
    cam = ONVIFCamera("127.0.0.1", srv.port, "admin", PASSWORD, adjust_time=True)
    assert cam.devicemgmt.GetDeviceInformation().SerialNumber == st.serial


def test_unknown_action_is_action_not_supported(camera):
    from zeep.exceptions import Fault

    st, srv = camera
    with pytest.raises(Fault) as exc:
        service(srv.port).SystemReboot()
    assert exc.value.code.endswith("Receiver") and fault_subcodes(exc.value) == ["ActionNotSupported"]


@pytest.mark.parametrize("supported", [True, False])
def test_system_backup_follows_capability(supported):
    from zeep.exceptions import Fault

    st = make_state("cam-b", "camera", supports_system_backup=supported)
    with LabServer(st) as srv:
        dev = service(srv.port)
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
    _, cam_srv = camera
    _, nvr_srv = nvr
    cam_caps = service(cam_srv.port, password=None).GetCapabilities(Category="All")
    assert cam_caps.Media.XAddr.endswith("/onvif/media_service") and cam_caps.Extension is None
    nvr_caps = service(nvr_srv.port, password=None).GetCapabilities(Category="All")
    ext = {e.tag.rsplit("}", 1)[1]: e for e in nvr_caps.Extension._value_1}  # zeep leaves these as elements
    assert ext["Search"].findtext("{http://www.onvif.org/ver10/schema}XAddr").endswith("/onvif/search_service")
    assert "Recording" in ext
    namespaces = [s.Namespace for s in service(nvr_srv.port, password=None).GetServices(IncludeCapability=False)]
    assert "http://www.onvif.org/ver10/search/wsdl" in namespaces
    cam_ns = [s.Namespace for s in service(cam_srv.port, password=None).GetServices(IncludeCapability=False)]
    assert "http://www.onvif.org/ver10/search/wsdl" not in cam_ns


def test_network_ntp_users(camera):
    st, srv = camera
    dev = service(srv.port)
    nic = dev.GetNetworkInterfaces()[0]
    assert nic.Info.HwAddress == st.mac and nic.IPv4.Config.Manual[0].Address == st.host
    assert [m.IPv4Address for m in dev.GetNTP().NTPManual] == [st.ntp_server]
    st.ntp_server = "ntp.example.edu.cn"
    assert dev.GetNTP().NTPManual[0].DNSname == "ntp.example.edu.cn"
    st.set_fault("ntp-off")
    assert dev.GetNTP().NTPManual == []
    st.users.append(("viewer", "User"))
    assert [(u.Username, u.UserLevel) for u in dev.GetUsers()] == st.users
    assert all(u.Password is None for u in dev.GetUsers())


# --- media ----------------------------------------------------------------------------------------------
def test_profiles_stream_and_snapshot_uris(nvr):
    st, srv = nvr
    media = service(srv.port, "media")
    profiles = media.GetProfiles()
    assert [p.token for p in profiles] == ["Profile_1", "Profile_2", "Profile_3", "Profile_4"]
    enc = profiles[0].VideoEncoderConfiguration
    assert (enc.Encoding, enc.Resolution.Width, enc.Resolution.Height, enc.RateControl.FrameRateLimit,
            enc.RateControl.BitrateLimit) == ("H264", 1920, 1080, 25, 4096)
    uri = media.GetStreamUri(StreamSetup={"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}},
                             ProfileToken="Profile_2")
    assert uri.Uri == f"rtsp://127.0.0.1:{st.rtsp_port}/ch2/main" and "@" not in uri.Uri
    snap = media.GetSnapshotUri(ProfileToken="Profile_1")
    assert snap.Uri.startswith(f"http://127.0.0.1:{srv.port}/onvif/snapshot/")
    st.set_fault("low-res")
    cfgs = media.GetVideoEncoderConfigurations()
    assert len(cfgs) == 4 and (cfgs[0].Resolution.Width, cfgs[0].Resolution.Height) == (1280, 720)
    assert media.GetVideoEncoderConfiguration(ConfigurationToken="VideoEncoder_3").token == "VideoEncoder_3"


def test_unknown_profile_is_invalid_arg(camera):
    from zeep.exceptions import Fault

    _, srv = camera
    with pytest.raises(Fault) as exc:
        service(srv.port, "media").GetSnapshotUri(ProfileToken="nope")
    assert fault_subcodes(exc.value) == ["InvalidArgVal", "NoProfile"]


# --- recording search -----------------------------------------------------------------------------------
def test_recording_summary_and_information_follow_retention(nvr):
    st, srv = nvr
    st.set_fault("retention", "5")
    search = service(srv.port, "search")
    summary = search.GetRecordingSummary()
    now = dt.datetime.now(dt.timezone.utc)
    assert abs((now - summary.DataFrom).total_seconds() - 5 * 86400) < 10
    assert summary.NumberRecordings == 4
    token = search.FindRecordings(Scope={"IncludedSources": [{"Token": "VideoSource_2"}]}, KeepAliveTime="PT10S")
    result = search.GetRecordingSearchResults(SearchToken=token)
    assert result.SearchState == "Completed"
    info = result.RecordingInformation
    assert [i.RecordingToken for i in info] == ["Recording_2"]
    assert abs((now - info[0].EarliestRecording).total_seconds() - 5 * 86400) < 10
    assert info[0].RecordingStatus == "Recording"
    search.EndSearch(SearchToken=token)


def test_search_pagination_and_channel_offline(nvr):
    st, srv = nvr
    st.set_fault("channel-offline", "3")
    search = service(srv.port, "search")
    token = search.FindRecordings(Scope={}, KeepAliveTime="PT10S")
    first = search.GetRecordingSearchResults(SearchToken=token, MaxResults=3)
    second = search.GetRecordingSearchResults(SearchToken=token, MaxResults=3)
    assert (first.SearchState, len(first.RecordingInformation)) == ("Searching", 3)
    assert (second.SearchState, len(second.RecordingInformation)) == ("Completed", 1)
    info = search.GetRecordingInformation(RecordingToken="Recording_3")
    assert info.RecordingStatus == "Stopped"
    assert (dt.datetime.now(dt.timezone.utc) - info.LatestRecording).total_seconds() > 7000


def test_find_events_reveals_gaps(nvr):
    st, srv = nvr
    st.set_fault("gaps", "2")
    search = service(srv.port, "search")
    start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=24)
    token = search.FindEvents(StartPoint=start, Scope={"IncludedRecordings": ["Recording_1"]}, SearchFilter={},
                              IncludeStartState=True, KeepAliveTime="PT10S")
    results = search.GetEventSearchResults(SearchToken=token).Result
    flips = [(r.Time, r.Event.Message._value_1.Data.SimpleItem[0].Value) for r in results]
    assert [v for _, v in flips] == ["true", "false", "true", "false", "true"]
    spans = st.recorded_spans(1)
    assert [t.replace(tzinfo=dt.timezone.utc) for t, v in flips[1:] if v == "false"] == [e for _, e in spans[:-1]]


def test_camera_has_no_search_service(camera):
    from zeep.exceptions import Fault

    _, srv = camera
    with pytest.raises(Fault) as exc:
        service(srv.port, "search").GetRecordingSummary()
    assert fault_subcodes(exc.value) == ["ActionNotSupported"]


# --- hostile answers --------------------------------------------------------------------------------------
def test_malformed_and_bomb_answers_are_refused_by_a_hardened_client(camera):
    from lxml.etree import XMLSyntaxError
    from zeep.exceptions import EntitiesForbidden, TransportError, XMLSyntaxError as ZeepSyntax

    st, srv = camera
    st.set_fault("malformed-xml")
    with pytest.raises((TransportError, XMLSyntaxError, ZeepSyntax)):
        service(srv.port).GetDeviceInformation()
    st.clear_fault()
    st.set_fault("xml-bomb")
    with pytest.raises((EntitiesForbidden, XMLSyntaxError, ZeepSyntax, TransportError)):
        service(srv.port).GetDeviceInformation()


def test_oversized_body_is_64_mib():
    st = make_state()
    st.set_fault("oversized-body")
    resp = lab_onvif.handle(st, Request("POST", "/onvif/device_service", {}, {}, b"<x/>", "127.0.0.1"))
    assert len(resp.body) == lab_onvif.OVERSIZED_BYTES


# --- request parsing (no socket) --------------------------------------------------------------------------
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
        assert lab_onvif.parse_xs_datetime(text) == ref
    assert lab_onvif.parse_xs_datetime("2026-01-02T03:04:05.250Z").microsecond == 250000
    with pytest.raises(ValueError):
        lab_onvif.parse_xs_datetime("yesterday")


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

"""Simulated ONVIF device: SOAP 1.2 device management, media and (for NVRs) recording search services.

`handle(state, req)` answers one HTTP request for a path under /onvif/. Everything it says comes from the
DeviceState, so faults set on the device (clock drift or reset, firmware, NTP off, channel offline, retention
and gaps, wrong password, lock) show up here exactly as on the device's other protocols. Transport faults and
hostile bodies are the lab HTTP core's job (canteen_ops.lab.http), the same for every protocol.

Authentication is WS-Security UsernameToken (PasswordDigest or PasswordText), verified like a camera does:
digest = Base64(SHA1(nonce + created + password)) and `Created` within ±5 s of the *device* clock, so a client
talking to a drifted device must adjust its timestamps (onvif-zeep's adjust_time) or be refused.
GetSystemDateAndTime and the service/capability discovery calls are answered without credentials, as the ONVIF
core spec allows and real cameras do.

Speed matters (the lab serves ~1,000 devices from one process): requests are parsed once with lxml
(entities off, no network, no huge trees) and responses are formatted from string templates, not built as trees.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import itertools
import threading
from collections import OrderedDict
from xml.sax.saxutils import escape as _esc

from lxml import etree

from canteen_ops.lab.state import ChannelState, DeviceState
from canteen_ops.lab.wire import Request, Response
from canteen_ops.timeutil import parse_xs_datetime

ENV = "http://www.w3.org/2003/05/soap-envelope"
TDS = "http://www.onvif.org/ver10/device/wsdl"
TRT = "http://www.onvif.org/ver10/media/wsdl"
TSE = "http://www.onvif.org/ver10/search/wsdl"
TRC = "http://www.onvif.org/ver10/recording/wsdl"
TT = "http://www.onvif.org/ver10/schema"
TER = "http://www.onvif.org/ver10/error"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
WSNT = "http://docs.oasis-open.org/wsn/b-2"
TNS1 = "http://www.onvif.org/ver10/topics"
XOP = "http://www.w3.org/2004/08/xop/include"
XMIME = "http://www.w3.org/2005/05/xmlmime"

TIME_WINDOW_S = 5.0  # Created must be within this of the device clock (Home Assistant reports 5 s cameras)
MAX_REQUEST = 256 * 1024  # a SOAP request to a camera is a few KiB; refuse anything silly
SOAP_CT = "application/soap+xml; charset=utf-8"

# Calls a device answers without credentials (ONVIF core spec "PRE_AUTH" class).
PRE_AUTH = frozenset({"GetSystemDateAndTime", "GetCapabilities", "GetServices", "GetWsdlUrl", "GetHostname",
                      "GetEndpointReference", "GetServiceCapabilities"})

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, load_dtd=False,
                          remove_comments=True, remove_pis=True)

_HEAD = (f'<?xml version="1.0" encoding="UTF-8"?>\n<env:Envelope xmlns:env="{ENV}" xmlns:tt="{TT}" '
         f'xmlns:tds="{TDS}" xmlns:trt="{TRT}" xmlns:tse="{TSE}" xmlns:ter="{TER}" xmlns:wsnt="{WSNT}" '
         f'xmlns:tns1="{TNS1}" xmlns:xop="{XOP}" xmlns:xmime="{XMIME}"><env:Body>')
_TAIL = "</env:Body></env:Envelope>"


# --- small helpers ------------------------------------------------------------------------------------------
def _x(value: object) -> str:
    """Escape text for element content and double-quoted attributes."""
    return _esc(str(value), {'"': "&quot;"})


def _b(flag: bool) -> str:
    return "true" if flag else "false"


def xs_datetime(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _envelope(body: str) -> bytes:
    return (_HEAD + body + _TAIL).encode("utf-8")


def _ok(body: str) -> Response:
    return Response(200, {"Content-Type": SOAP_CT}, _envelope(body))


class SoapFault(Exception):
    """An ONVIF fault: Code (Sender/Receiver), subcodes in the ter: namespace, a reason."""

    def __init__(self, code: str, subcodes: tuple[str, ...], reason: str):
        super().__init__(reason)
        self.code, self.subcodes, self.reason = code, subcodes, reason

    def response(self) -> Response:
        sub = "".join(f"<env:Subcode><env:Value>ter:{s}</env:Value>" for s in self.subcodes)
        sub += "</env:Subcode>" * len(self.subcodes)
        body = (f"<env:Fault><env:Code><env:Value>env:{self.code}</env:Value>{sub}</env:Code>"
                f'<env:Reason><env:Text xml:lang="en">{_x(self.reason)}</env:Text></env:Reason></env:Fault>')
        return Response(400 if self.code == "Sender" else 500, {"Content-Type": SOAP_CT}, _envelope(body))


class HttpRefusal(Exception):
    """Answer a bare HTTP 401 (no SOAP fault), as some cameras answer an unauthenticated request."""


def not_authorized(reason: str = "Sender not authorized") -> SoapFault:
    return SoapFault("Sender", ("NotAuthorized",), reason)


def not_supported(action: str) -> SoapFault:
    return SoapFault("Receiver", ("ActionNotSupported",), f"Optional Action Not Implemented: {action}")


def invalid_arg(sub: str, reason: str) -> SoapFault:
    return SoapFault("Sender", ("InvalidArgVal", sub), reason)


# --- WS-Security ---------------------------------------------------------------------------------------------
def password_digest(nonce: bytes, created: str, password: str) -> str:
    return base64.b64encode(hashlib.sha1(nonce + created.encode() + password.encode()).digest()).decode()


def _authenticate(state: DeviceState, header: etree._Element | None, action: str) -> None:
    """Raise NotAuthorized unless the request carries a valid UsernameToken (or needs none)."""
    token = None
    if header is not None:
        token = header.find(f"{{{WSSE}}}Security/{{{WSSE}}}UsernameToken")
    if action in PRE_AUTH and not (action == "GetSystemDateAndTime" and state.has("time-needs-auth")):
        # Answered to anyone; a token, if sent, is not even checked (this is what lets onvif-zeep's
        # adjust_time read the clock of a drifted device through a client that already carries credentials).
        return
    if token is None and action == "GetSystemDateAndTime" and state.fault_value("time-needs-auth", "") == "401":
        raise HttpRefusal()
    if token is None:
        raise not_authorized("Sender not authorized: WS-Security UsernameToken required")
    if state.is_locked():
        raise not_authorized(f"Sender not authorized: account locked after failed logins, "
                             f"unlock in {state.unlock_in_s()} s")
    user = (token.findtext(f"{{{WSSE}}}Username") or "").strip()
    pw_el = token.find(f"{{{WSSE}}}Password")
    password = pw_el.text.strip() if pw_el is not None and pw_el.text else ""
    kind = pw_el.get("Type", "") if pw_el is not None else ""
    ok = user == state.username
    if ok and kind.endswith("#PasswordText"):
        ok = hmac.compare_digest(password.encode(), state.effective_password.encode())
    elif ok:
        created = (token.findtext(f"{{{WSU}}}Created") or "").strip()
        nonce_text = (token.findtext(f"{{{WSSE}}}Nonce") or "").strip()
        try:
            nonce = base64.b64decode(nonce_text, validate=True)
            when = parse_xs_datetime(created)
        except ValueError:
            state.record_login(False)
            raise not_authorized("Sender not authorized: malformed UsernameToken") from None
        if abs((when - state.now_utc()).total_seconds()) > TIME_WINDOW_S:
            state.record_login(False)
            raise not_authorized("Sender not authorized: Wsse authorized time check failed")
        ok = hmac.compare_digest(password, password_digest(nonce, created, state.effective_password))
    state.record_login(ok)
    if not ok:
        raise not_authorized()


# --- device facts derived from the state ------------------------------------------------------------------
def _base(state: DeviceState) -> str:
    return f"http://{state.host}:{state.http_port}/onvif"


def _is_nvr(state: DeviceState) -> bool:
    return state.kind == "nvr"


def _manufacturer(state: DeviceState) -> str:
    return {"hikvision": "HIKVISION", "dahua": "Dahua"}.get(state.vendor, "ONVIF Lab")


def profile_token(ch: ChannelState, sub: bool = False) -> str:
    return f"Profile_{ch.id}_sub" if sub else f"Profile_{ch.id}"


def encoder_token(ch: ChannelState, sub: bool = False) -> str:
    return f"VideoEncoder_{ch.id}_sub" if sub else f"VideoEncoder_{ch.id}"


def recording_token(ch: ChannelState) -> str:
    return f"Recording_{ch.id}"


def source_token(ch: ChannelState) -> str:
    return f"VideoSource_{ch.id}"


def rtsp_path(ch: ChannelState) -> str:
    path = ch.rtsp_path or f"/ch{ch.id}/main"
    return path if path.startswith("/") else "/" + path


def _channel_by(state: DeviceState, token: str, fmt) -> ChannelState | None:
    return next((c for c in state.channels if fmt(c) == token), None)


def _encoding(codec: str) -> str:
    c = codec.upper().replace(".", "")
    return "H265" if "265" in c or "HEVC" in c else ("JPEG" if "JPEG" in c else "H264")


# --- device management -----------------------------------------------------------------------------------
def _dt_block(t: dt.datetime) -> str:
    return (f"<tt:Time><tt:Hour>{t.hour}</tt:Hour><tt:Minute>{t.minute}</tt:Minute><tt:Second>{t.second}"
            f"</tt:Second></tt:Time><tt:Date><tt:Year>{t.year}</tt:Year><tt:Month>{t.month}</tt:Month>"
            f"<tt:Day>{t.day}</tt:Day></tt:Date>")


def op_get_system_date_and_time(state, el):
    utc = state.now_utc()
    local = utc.astimezone(dt.timezone(dt.timedelta(seconds=state.utc_offset_s)))
    return (f"<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime>"
            f"<tt:DateTimeType>{'NTP' if state.ntp_enabled else 'Manual'}</tt:DateTimeType>"
            f"<tt:DaylightSavings>false</tt:DaylightSavings><tt:TimeZone><tt:TZ>{_x(state.timezone)}</tt:TZ>"
            f"</tt:TimeZone><tt:UTCDateTime>{_dt_block(utc)}</tt:UTCDateTime>"
            f"<tt:LocalDateTime>{_dt_block(local)}</tt:LocalDateTime>"
            f"</tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse>")


def op_get_device_information(state, el):
    return (f"<tds:GetDeviceInformationResponse><tds:Manufacturer>{_x(_manufacturer(state))}</tds:Manufacturer>"
            f"<tds:Model>{_x(state.model)}</tds:Model>"
            f"<tds:FirmwareVersion>{_x(state.effective_firmware)}</tds:FirmwareVersion>"
            f"<tds:SerialNumber>{_x(state.serial)}</tds:SerialNumber>"
            f"<tds:HardwareId>{_x(state.model)}-{'NVR' if _is_nvr(state) else 'IPC'}</tds:HardwareId>"
            f"</tds:GetDeviceInformationResponse>")


def _caps_device(state: DeviceState) -> str:
    return (f"<tt:Device><tt:XAddr>{_base(state)}/device_service</tt:XAddr>"
            f"<tt:Network><tt:IPFilter>false</tt:IPFilter><tt:ZeroConfiguration>false</tt:ZeroConfiguration>"
            f"<tt:IPVersion6>false</tt:IPVersion6><tt:DynDNS>false</tt:DynDNS></tt:Network>"
            f"<tt:System><tt:DiscoveryResolve>false</tt:DiscoveryResolve><tt:DiscoveryBye>false</tt:DiscoveryBye>"
            f"<tt:RemoteDiscovery>false</tt:RemoteDiscovery>"
            f"<tt:SystemBackup>{_b(state.supports_system_backup)}</tt:SystemBackup>"
            f"<tt:SystemLogging>false</tt:SystemLogging><tt:FirmwareUpgrade>false</tt:FirmwareUpgrade>"
            f"<tt:SupportedVersions><tt:Major>2</tt:Major><tt:Minor>40</tt:Minor></tt:SupportedVersions>"
            f"</tt:System></tt:Device>")


def _caps_media(state: DeviceState) -> str:
    return (f"<tt:Media><tt:XAddr>{_base(state)}/media_service</tt:XAddr><tt:StreamingCapabilities>"
            f"<tt:RTPMulticast>false</tt:RTPMulticast><tt:RTP_TCP>true</tt:RTP_TCP>"
            f"<tt:RTP_RTSP_TCP>true</tt:RTP_RTSP_TCP></tt:StreamingCapabilities></tt:Media>")


def _caps_extension(state: DeviceState) -> str:
    if not _is_nvr(state):
        return ""
    return (f"<tt:Extension><tt:Recording><tt:XAddr>{_base(state)}/recording_service</tt:XAddr>"
            f"<tt:ReceiverSource>false</tt:ReceiverSource><tt:MediaProfileSource>true</tt:MediaProfileSource>"
            f"<tt:DynamicRecordings>false</tt:DynamicRecordings><tt:DynamicTracks>false</tt:DynamicTracks>"
            f"<tt:MaxStringLength>64</tt:MaxStringLength></tt:Recording>"
            f"<tt:Search><tt:XAddr>{_base(state)}/search_service</tt:XAddr>"
            f"<tt:MetadataSearch>false</tt:MetadataSearch></tt:Search></tt:Extension>")


def op_get_capabilities(state, el):
    cats = [c.text.strip() for c in el.iter(f"{{{TDS}}}Category") if c.text] or ["All"]
    parts = []
    for cat in cats:
        if cat == "All":
            parts = [_caps_device(state), _caps_media(state), _caps_extension(state)]
            break
        if cat == "Device":
            parts.append(_caps_device(state))
        elif cat == "Media":
            parts.append(_caps_media(state))
        else:
            raise SoapFault("Receiver", ("ActionNotSupported", "NoSuchService"), f"no {cat} service")
    return f"<tds:GetCapabilitiesResponse><tds:Capabilities>{''.join(parts)}</tds:Capabilities>" \
           f"</tds:GetCapabilitiesResponse>"


def _services(state: DeviceState) -> list[tuple[str, str, str]]:
    """(namespace, xaddr, capabilities element) for each service the device offers."""
    base = _base(state)
    dev_caps = (f'<tds:Capabilities><tds:Network IPFilter="false" ZeroConfiguration="false" IPVersion6="false" '
                f'DynDNS="false"/><tds:Security UsernameToken="true" HttpDigest="false"/>'
                f'<tds:System DiscoveryResolve="false" DiscoveryBye="false" RemoteDiscovery="false" '
                f'SystemBackup="{_b(state.supports_system_backup)}" SystemLogging="false" '
                f'FirmwareUpgrade="false"/></tds:Capabilities>')
    media_caps = ('<trt:Capabilities SnapshotUri="true" Rotation="false"><trt:ProfileCapabilities '
                  f'MaximumNumberOfProfiles="{max(1, len(state.channels))}"/><trt:StreamingCapabilities '
                  'RTPMulticast="false" RTP_TCP="true" RTP_RTSP_TCP="true"/></trt:Capabilities>')
    out = [(TDS, f"{base}/device_service", dev_caps), (TRT, f"{base}/media_service", media_caps)]
    if _is_nvr(state):
        out.append((TRC, f"{base}/recording_service", f'<trc:Capabilities xmlns:trc="{TRC}" '
                                                        'DynamicRecordings="false" DynamicTracks="false"/>'))
        out.append((TSE, f"{base}/search_service", '<tse:Capabilities MetadataSearch="false"/>'))
    return out


def op_get_services(state, el):
    include = (el.findtext(f"{{{TDS}}}IncludeCapability") or "false").strip() in ("true", "1")
    items = []
    for ns, xaddr, caps in _services(state):
        cap = f"<tds:Capabilities>{caps}</tds:Capabilities>" if include else ""
        items.append(f"<tds:Service><tds:Namespace>{ns}</tds:Namespace><tds:XAddr>{xaddr}</tds:XAddr>{cap}"
                     f"<tds:Version><tt:Major>2</tt:Major><tt:Minor>40</tt:Minor></tds:Version></tds:Service>")
    return f"<tds:GetServicesResponse>{''.join(items)}</tds:GetServicesResponse>"


def op_get_network_interfaces(state, el):
    return (f'<tds:GetNetworkInterfacesResponse><tds:NetworkInterfaces token="eth0">'
            f"<tt:Enabled>true</tt:Enabled><tt:Info><tt:Name>eth0</tt:Name>"
            f"<tt:HwAddress>{_x(state.mac)}</tt:HwAddress><tt:MTU>1500</tt:MTU></tt:Info>"
            f"<tt:IPv4><tt:Enabled>true</tt:Enabled><tt:Config><tt:Manual><tt:Address>{_x(state.host)}"
            f"</tt:Address><tt:PrefixLength>24</tt:PrefixLength></tt:Manual><tt:DHCP>false</tt:DHCP>"
            f"</tt:Config></tt:IPv4></tds:NetworkInterfaces></tds:GetNetworkInterfacesResponse>")


def _network_host(addr: str) -> str:
    is_ip = addr.replace(".", "").isdigit() and addr.count(".") == 3
    if is_ip:
        return f"<tt:Type>IPv4</tt:Type><tt:IPv4Address>{_x(addr)}</tt:IPv4Address>"
    return f"<tt:Type>DNS</tt:Type><tt:DNSname>{_x(addr)}</tt:DNSname>"


def op_get_ntp(state, el):
    manual = f"<tt:NTPManual>{_network_host(state.ntp_server)}</tt:NTPManual>" if state.ntp_enabled else ""
    return (f"<tds:GetNTPResponse><tds:NTPInformation><tt:FromDHCP>false</tt:FromDHCP>{manual}"
            f"</tds:NTPInformation></tds:GetNTPResponse>")


def op_get_hostname(state, el):
    return (f"<tds:GetHostnameResponse><tds:HostnameInformation><tt:FromDHCP>false</tt:FromDHCP>"
            f"<tt:Name>{_x(state.id)}</tt:Name></tds:HostnameInformation></tds:GetHostnameResponse>")


def op_get_users(state, el):
    users = "".join(f"<tds:User><tt:Username>{_x(n)}</tt:Username><tt:UserLevel>{_x(lvl)}</tt:UserLevel>"
                    f"</tds:User>" for n, lvl in state.users)
    return f"<tds:GetUsersResponse>{users}</tds:GetUsersResponse>"


BACKUP_CID = "backup-config@canteen-lab"


def op_get_system_backup(state, el):
    if not state.supports_system_backup:
        raise not_supported("GetSystemBackup")
    return (f"<tds:GetSystemBackupResponse><tds:BackupFiles><tt:Name>config.json</tt:Name>"
            f'<tt:Data xmime:contentType="application/json"><xop:Include href="cid:{BACKUP_CID}"/></tt:Data>'
            f"</tds:BackupFiles></tds:GetSystemBackupResponse>")


def _mtom(envelope: bytes, part: bytes, cid: str, content_type: str) -> Response:
    """Wrap an XOP envelope and one binary part as multipart/related (MTOM), as devices send backups."""
    boundary = "uuid:canteen-lab-mime-boundary"
    body = (f"--{boundary}\r\nContent-Type: application/xop+xml; charset=UTF-8; type=\"application/soap+xml\"\r\n"
            f"Content-Transfer-Encoding: binary\r\nContent-ID: <root.message@canteen-lab>\r\n\r\n").encode()
    body += envelope + (f"\r\n--{boundary}\r\nContent-Type: {content_type}\r\n"
                        f"Content-Transfer-Encoding: binary\r\nContent-ID: <{cid}>\r\n\r\n").encode()
    body += part + f"\r\n--{boundary}--\r\n".encode()
    ct = (f'multipart/related; type="application/xop+xml"; boundary="{boundary}"; '
          f'start="<root.message@canteen-lab>"; start-info="application/soap+xml"')
    return Response(200, {"Content-Type": ct}, body)


# --- media ----------------------------------------------------------------------------------------------
def _source_config(state: DeviceState, ch: ChannelState) -> str:
    w, h = state.stream_size(ch)
    return (f'<tt:VideoSourceConfiguration token="VideoSourceConfig_{ch.id}"><tt:Name>{_x(ch.name)}</tt:Name>'
            f"<tt:UseCount>1</tt:UseCount><tt:SourceToken>{source_token(ch)}</tt:SourceToken>"
            f'<tt:Bounds x="0" y="0" width="{w}" height="{h}"/></tt:VideoSourceConfiguration>')


def _encoder_config(state: DeviceState, ch: ChannelState, tag: str = "tt:VideoEncoderConfiguration",
                    sub: bool = False) -> str:
    w, h = state.SUB_SIZE if sub else state.stream_size(ch)
    enc = _encoding(ch.codec)
    h264 = (f"<tt:H264><tt:GovLength>{ch.fps * 2}</tt:GovLength><tt:H264Profile>Main</tt:H264Profile></tt:H264>"
            if enc == "H264" else "")
    return (f'<{tag} token="{encoder_token(ch, sub)}"><tt:Name>{_x(ch.name)} {"sub" if sub else "main"}</tt:Name>'
            f"<tt:UseCount>1</tt:UseCount><tt:Encoding>{enc}</tt:Encoding>"
            f"<tt:Resolution><tt:Width>{w}</tt:Width><tt:Height>{h}</tt:Height></tt:Resolution>"
            f"<tt:Quality>4</tt:Quality><tt:RateControl><tt:FrameRateLimit>{ch.fps}</tt:FrameRateLimit>"
            f"<tt:EncodingInterval>1</tt:EncodingInterval><tt:BitrateLimit>{ch.bitrate_kbps}</tt:BitrateLimit>"
            f"</tt:RateControl>{h264}<tt:Multicast><tt:Address><tt:Type>IPv4</tt:Type>"
            f"<tt:IPv4Address>0.0.0.0</tt:IPv4Address></tt:Address><tt:Port>0</tt:Port><tt:TTL>0</tt:TTL>"
            f"<tt:AutoStart>false</tt:AutoStart></tt:Multicast><tt:SessionTimeout>PT60S</tt:SessionTimeout>"
            f"</{tag}>")


def _profiles(state: DeviceState) -> list[tuple[ChannelState, bool]]:
    """(channel, sub) for every media profile: each channel's main profile, then a camera's sub-stream one."""
    out = [(ch, False) for ch in state.channels]
    out += [(ch, True) for ch in state.channels if state.sub_stream_path(ch)]
    return out


def op_get_profiles(state, el):
    profiles = "".join(
        f'<trt:Profiles token="{profile_token(ch, sub)}" fixed="true"><tt:Name>{_x(ch.name)}'
        f'{" sub" if sub else ""}</tt:Name>{_source_config(state, ch)}{_encoder_config(state, ch, sub=sub)}'
        f"</trt:Profiles>" for ch, sub in _profiles(state))
    return f"<trt:GetProfilesResponse>{profiles}</trt:GetProfilesResponse>"


def _profile_channel(state: DeviceState, el) -> tuple[ChannelState, bool]:
    token = (el.findtext(f"{{{TRT}}}ProfileToken") or "").strip()
    found = next(((ch, sub) for ch, sub in _profiles(state) if profile_token(ch, sub) == token), None)
    if found is None:
        raise invalid_arg("NoProfile", f"no profile {token!r}")
    return found


def _media_uri(uri: str) -> str:
    return (f"<trt:MediaUri><tt:Uri>{_x(uri)}</tt:Uri><tt:InvalidAfterConnect>false</tt:InvalidAfterConnect>"
            f"<tt:InvalidAfterReboot>false</tt:InvalidAfterReboot><tt:Timeout>PT0S</tt:Timeout></trt:MediaUri>")


def op_get_stream_uri(state, el):
    ch, sub = _profile_channel(state, el)
    proto = (el.findtext(f"{{{TRT}}}StreamSetup/{{{TT}}}Transport/{{{TT}}}Protocol") or "RTSP").strip()
    if proto not in ("RTSP", "UDP", "TCP"):
        raise invalid_arg("InvalidStreamSetup", f"transport {proto} not supported")
    uri = f"rtsp://{state.host}:{state.rtsp_port}{state.sub_stream_path(ch) if sub else rtsp_path(ch)}"
    return f"<trt:GetStreamUriResponse>{_media_uri(uri)}</trt:GetStreamUriResponse>"


def op_get_snapshot_uri(state, el):
    ch, sub = _profile_channel(state, el)
    return (f"<trt:GetSnapshotUriResponse>{_media_uri(f'{_base(state)}/snapshot/{profile_token(ch, sub)}.jpg')}"
            f"</trt:GetSnapshotUriResponse>")


def op_get_video_encoder_configurations(state, el):
    cfgs = "".join(_encoder_config(state, ch, "trt:Configurations", sub) for ch, sub in _profiles(state))
    return f"<trt:GetVideoEncoderConfigurationsResponse>{cfgs}</trt:GetVideoEncoderConfigurationsResponse>"


def op_get_video_encoder_configuration(state, el):
    token = (el.findtext(f"{{{TRT}}}ConfigurationToken") or "").strip()
    found = next(((ch, sub) for ch, sub in _profiles(state) if encoder_token(ch, sub) == token), None)
    if found is None:
        raise invalid_arg("NoConfig", f"no video encoder configuration {token!r}")
    ch, sub = found
    return (f"<trt:GetVideoEncoderConfigurationResponse>{_encoder_config(state, ch, 'trt:Configuration', sub)}"
            f"</trt:GetVideoEncoderConfigurationResponse>")


def op_get_video_sources(state, el):
    srcs = "".join(f'<trt:VideoSources token="{source_token(ch)}"><tt:Framerate>{ch.fps}</tt:Framerate>'
                   f"<tt:Resolution><tt:Width>{state.stream_size(ch)[0]}</tt:Width><tt:Height>"
                   f"{state.stream_size(ch)[1]}</tt:Height></tt:Resolution></trt:VideoSources>"
                   for ch in state.channels)
    return f"<trt:GetVideoSourcesResponse>{srcs}</trt:GetVideoSourcesResponse>"


# --- recording search (NVR) ------------------------------------------------------------------------------
class _Searches:
    """Open searches: token → pending results. Bounded so forgotten searches cannot grow the lab's memory."""

    def __init__(self, limit: int = 4096):
        self._items: OrderedDict[str, list[str]] = OrderedDict()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._limit = limit

    def open(self, device_id: str, kind: str, results: list[str]) -> str:
        token = f"{kind}-{next(self._ids)}"
        with self._lock:
            self._items[f"{device_id}/{token}"] = results
            while len(self._items) > self._limit:
                self._items.popitem(last=False)
        return token

    def take(self, device_id: str, token: str, n: int | None) -> tuple[list[str], bool] | None:
        with self._lock:
            pending = self._items.get(f"{device_id}/{token}")
            if pending is None:
                return None
            n = len(pending) if n is None or n <= 0 else n
            batch, rest = pending[:n], pending[n:]
            self._items[f"{device_id}/{token}"] = rest
            return batch, not rest

    def end(self, device_id: str, token: str) -> bool:
        with self._lock:
            return self._items.pop(f"{device_id}/{token}", None) is not None


SEARCHES = _Searches()


def _require_nvr(state: DeviceState, action: str) -> None:
    if not _is_nvr(state):
        raise not_supported(action)


def _recording_status(state: DeviceState, ch: ChannelState) -> str:
    if state.record_mode == "off" or not state.effective_disks():
        return "Stopped"
    return "Recording" if state.channel_online(ch) else "Stopped"


def _recording_info(state: DeviceState, ch: ChannelState, tag: str) -> str:
    spans = state.recorded_spans(ch.id)
    times = ""
    track_times = ""
    if spans:
        first, last = xs_datetime(spans[0][0]), xs_datetime(spans[-1][1])
        times = f"<tt:EarliestRecording>{first}</tt:EarliestRecording><tt:LatestRecording>{last}" \
                f"</tt:LatestRecording>"
        track_times = f"<tt:DataFrom>{first}</tt:DataFrom><tt:DataTo>{last}</tt:DataTo>"
    else:
        now = xs_datetime(state.now_utc())
        track_times = f"<tt:DataFrom>{now}</tt:DataFrom><tt:DataTo>{now}</tt:DataTo>"
    return (f"<{tag}><tt:RecordingToken>{recording_token(ch)}</tt:RecordingToken><tt:Source>"
            f"<tt:SourceId>{source_token(ch)}</tt:SourceId><tt:Name>{_x(ch.name)}</tt:Name>"
            f"<tt:Location>{_x(state.name)}</tt:Location><tt:Description>{_x(ch.name)}</tt:Description>"
            f"<tt:Address>{_x(f'rtsp://{ch.ip}/' if ch.ip else _base(state) + '/device_service')}</tt:Address>"
            f"</tt:Source>{times}<tt:Content>{_x(ch.name)}</tt:Content><tt:Track><tt:TrackToken>VIDEO001"
            f"</tt:TrackToken><tt:TrackType>Video</tt:TrackType><tt:Description>video</tt:Description>"
            f"{track_times}</tt:Track><tt:RecordingStatus>{_recording_status(state, ch)}</tt:RecordingStatus>"
            f"</{tag}>")


def op_get_recording_summary(state, el):
    _require_nvr(state, "GetRecordingSummary")
    spans = [s for ch in state.channels for s in state.recorded_spans(ch.id)]
    now = state.now_utc()
    start = min((s for s, _ in spans), default=now)
    end = max((e for _, e in spans), default=now)
    n = sum(1 for ch in state.channels if state.recorded_spans(ch.id))
    return (f"<tse:GetRecordingSummaryResponse><tse:Summary><tt:DataFrom>{xs_datetime(start)}</tt:DataFrom>"
            f"<tt:DataUntil>{xs_datetime(end)}</tt:DataUntil><tt:NumberRecordings>{n}</tt:NumberRecordings>"
            f"</tse:Summary></tse:GetRecordingSummaryResponse>")


def _scope_channels(state: DeviceState, el) -> list[ChannelState]:
    scope = el.find(f"{{{TSE}}}Scope")
    if scope is None:
        return list(state.channels)
    sources = {(s.findtext(f"{{{TT}}}Token") or "").strip() for s in scope.iter(f"{{{TT}}}IncludedSources")}
    recs = {(r.text or "").strip() for r in scope.iter(f"{{{TT}}}IncludedRecordings")}
    chans = list(state.channels)
    if sources:
        chans = [c for c in chans if source_token(c) in sources]
    if recs:
        chans = [c for c in chans if recording_token(c) in recs]
    return chans


def _int_arg(el, name: str) -> int | None:
    text = el.findtext(f"{{{TSE}}}{name}")
    if text is None:
        return None
    try:
        return int(text.strip())
    except ValueError:
        raise invalid_arg("InvalidArgs", f"{name} must be an integer") from None


def op_find_recordings(state, el):
    _require_nvr(state, "FindRecordings")
    chans = _scope_channels(state, el)
    limit = _int_arg(el, "MaxMatches")
    if limit is not None:
        chans = chans[:max(0, limit)]
    token = SEARCHES.open(state.id, "rec", [_recording_info(state, c, "tt:RecordingInformation") for c in chans])
    return f"<tse:FindRecordingsResponse><tse:SearchToken>{token}</tse:SearchToken></tse:FindRecordingsResponse>"


def _take(state: DeviceState, el) -> tuple[list[str], bool]:
    token = (el.findtext(f"{{{TSE}}}SearchToken") or "").strip()
    got = SEARCHES.take(state.id, token, _int_arg(el, "MaxResults"))
    if got is None:
        raise invalid_arg("InvalidToken", f"unknown search token {token!r}")
    return got


def _search_results(state, el, operation: str) -> str:
    """The next page of a recording or event search: GetRecordingSearchResults / GetEventSearchResults."""
    _require_nvr(state, operation)
    batch, done = _take(state, el)
    return (f"<tse:{operation}Response><tse:ResultList><tt:SearchState>"
            f"{'Completed' if done else 'Searching'}</tt:SearchState>{''.join(batch)}</tse:ResultList>"
            f"</tse:{operation}Response>")


def op_get_recording_search_results(state, el):
    return _search_results(state, el, "GetRecordingSearchResults")


def op_get_recording_information(state, el):
    _require_nvr(state, "GetRecordingInformation")
    token = (el.findtext(f"{{{TSE}}}RecordingToken") or "").strip()
    ch = _channel_by(state, token, recording_token)
    if ch is None:
        raise invalid_arg("NoRecording", f"no recording {token!r}")
    return (f"<tse:GetRecordingInformationResponse>{_recording_info(state, ch, 'tse:RecordingInformation')}"
            f"</tse:GetRecordingInformationResponse>")


def _data_present_event(state: DeviceState, ch: ChannelState, when: dt.datetime, present: bool,
                        start_state: bool) -> str:
    t = xs_datetime(when)
    return (f"<tt:Result><tt:RecordingToken>{recording_token(ch)}</tt:RecordingToken>"
            f"<tt:TrackToken>VIDEO001</tt:TrackToken><tt:Time>{t}</tt:Time><tt:Event>"
            f'<wsnt:Topic Dialect="http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet">'
            f"tns1:RecordingHistory/Track/State</wsnt:Topic><wsnt:Message>"
            f'<tt:Message UtcTime="{t}" PropertyOperation="{"Initialized" if start_state else "Changed"}">'
            f'<tt:Source><tt:SimpleItem Name="RecordingToken" Value="{recording_token(ch)}"/>'
            f'<tt:SimpleItem Name="Track" Value="VIDEO001"/></tt:Source>'
            f'<tt:Data><tt:SimpleItem Name="IsDataPresent" Value="{_b(present)}"/></tt:Data></tt:Message>'
            f"</wsnt:Message></tt:Event><tt:StartStateEvent>{_b(start_state)}</tt:StartStateEvent></tt:Result>")


def op_find_events(state, el):
    """Recording history: one IsDataPresent=true event where a recorded span starts, false where it ends.

    This is how an ONVIF client learns the gaps inside a recording (RecordingInformation has one span only).
    """
    _require_nvr(state, "FindEvents")
    try:
        start = parse_xs_datetime(el.findtext(f"{{{TSE}}}StartPoint") or "")
        end_text = el.findtext(f"{{{TSE}}}EndPoint")
        end = parse_xs_datetime(end_text) if end_text else state.now_utc()
    except ValueError:
        raise invalid_arg("InvalidArgs", "StartPoint/EndPoint must be xs:dateTime") from None
    if end < start:
        start, end = end, start
    include_start = (el.findtext(f"{{{TSE}}}IncludeStartState") or "false").strip() in ("true", "1")
    events: list[tuple[dt.datetime, int, str]] = []
    for ch in _scope_channels(state, el):
        spans = state.recorded_spans(ch.id)
        if include_start:
            present = any(s <= start < e for s, e in spans)
            events.append((start, ch.id, _data_present_event(state, ch, start, present, True)))
        for s, e in spans:
            if start < s <= end:
                events.append((s, ch.id, _data_present_event(state, ch, s, True, False)))
            if start < e <= end and e < state.now_utc().replace(microsecond=0) - dt.timedelta(seconds=1):
                events.append((e, ch.id, _data_present_event(state, ch, e, False, False)))
    events.sort(key=lambda x: (x[0], x[1]))
    limit = _int_arg(el, "MaxMatches")
    if limit is not None:
        events = events[:max(0, limit)]
    token = SEARCHES.open(state.id, "evt", [e for _, _, e in events])
    return f"<tse:FindEventsResponse><tse:SearchToken>{token}</tse:SearchToken></tse:FindEventsResponse>"


def op_get_event_search_results(state, el):
    return _search_results(state, el, "GetEventSearchResults")


def op_end_search(state, el):
    _require_nvr(state, "EndSearch")
    token = (el.findtext(f"{{{TSE}}}SearchToken") or "").strip()
    if not SEARCHES.end(state.id, token):
        raise invalid_arg("InvalidToken", f"unknown search token {token!r}")
    return (f"<tse:EndSearchResponse><tse:Endpoint>{xs_datetime(state.now_utc())}</tse:Endpoint>"
            f"</tse:EndSearchResponse>")


OPERATIONS = {
    (TDS, "GetSystemDateAndTime"): op_get_system_date_and_time,
    (TDS, "GetDeviceInformation"): op_get_device_information,
    (TDS, "GetCapabilities"): op_get_capabilities,
    (TDS, "GetServices"): op_get_services,
    (TDS, "GetNetworkInterfaces"): op_get_network_interfaces,
    (TDS, "GetNTP"): op_get_ntp,
    (TDS, "GetHostname"): op_get_hostname,
    (TDS, "GetUsers"): op_get_users,
    (TDS, "GetSystemBackup"): op_get_system_backup,
    (TRT, "GetProfiles"): op_get_profiles,
    (TRT, "GetStreamUri"): op_get_stream_uri,
    (TRT, "GetSnapshotUri"): op_get_snapshot_uri,
    (TRT, "GetVideoEncoderConfigurations"): op_get_video_encoder_configurations,
    (TRT, "GetVideoEncoderConfiguration"): op_get_video_encoder_configuration,
    (TRT, "GetVideoSources"): op_get_video_sources,
    (TSE, "GetRecordingSummary"): op_get_recording_summary,
    (TSE, "FindRecordings"): op_find_recordings,
    (TSE, "GetRecordingSearchResults"): op_get_recording_search_results,
    (TSE, "GetRecordingInformation"): op_get_recording_information,
    (TSE, "FindEvents"): op_find_events,
    (TSE, "GetEventSearchResults"): op_get_event_search_results,
    (TSE, "EndSearch"): op_end_search,
}


# --- entry point ------------------------------------------------------------------------------------------
def dispatch(state: DeviceState, body: bytes) -> Response:
    """Answer one SOAP request body."""
    try:
        root = etree.fromstring(body, _PARSER)
    except etree.XMLSyntaxError:
        return SoapFault("Sender", ("WellFormed",), "request is not well-formed XML").response()
    if root.getroottree().docinfo.doctype:
        return SoapFault("Sender", ("WellFormed",), "DTDs are not allowed").response()
    if root.tag != f"{{{ENV}}}Envelope":
        return SoapFault("Sender", ("VersionMismatch",), "expected a SOAP 1.2 envelope").response()
    body_el = root.find(f"{{{ENV}}}Body")
    if body_el is None or len(body_el) == 0:
        return SoapFault("Sender", ("InvalidArgs",), "empty SOAP body").response()
    op_el = body_el[0]
    qname = etree.QName(op_el)
    action = qname.localname
    try:
        handler = OPERATIONS.get((qname.namespace, action))
        _authenticate(state, root.find(f"{{{ENV}}}Header"), action)
        if handler is None:
            raise not_supported(action)
        if action == "GetSystemBackup" and state.supports_system_backup:
            return _mtom(_envelope(handler(state, op_el)), state.config_blob(), BACKUP_CID, "application/json")
        return _ok(handler(state, op_el))
    except SoapFault as fault:
        return fault.response()
    except HttpRefusal:
        return Response(401, {"Content-Type": "text/plain"}, b"401 Unauthorized\n")


def handle(state: DeviceState, req: Request) -> Response:
    if req.method != "POST":
        return Response(405, {"Allow": "POST", "Content-Type": "text/plain"}, b"ONVIF services take SOAP POSTs\n")
    if len(req.body) > MAX_REQUEST:
        return Response(413, {"Content-Type": "text/plain"}, b"request too large\n")
    # Transport faults (offline, blackhole, slow) and hostile bodies (malformed XML, entity bomb, oversized
    # answers) are applied by the lab HTTP core to every protocol alike; this module answers truthfully.
    return dispatch(state, req.body)

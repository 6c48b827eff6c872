"""Hikvision ISAPI front-end of a simulated camera or NVR (protocols.md §A).

Namespaces follow the samples: cameras answer in `http://www.hikvision.com/ver20/XMLSchema`, NVRs (V4.x)
in `http://www.isapi.org/ver20/XMLSchema`; `userCheck` is always isapi.org and the storage `hddList` carries
its own ver10 namespace. Record-search timestamps end in `Z` but are the recorder's local wall-clock time
(the documented quirk), and only the misspelled `searchResultPostion` moves the result window.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
import struct
import time
import uuid
import zlib
from xml.sax.saxutils import escape

from canteen_ops.lab import digest
from canteen_ops.lab.firmware import parse_firmware_image
from canteen_ops.lab.http import Request, Response
from canteen_ops.lab.state import ChannelState, DeviceState

HIK20 = "http://www.hikvision.com/ver20/XMLSchema"
HIK10 = "http://www.hikvision.com/ver10/XMLSchema"
ISAPI20 = "http://www.isapi.org/ver20/XMLSchema"
XML = {"Content-Type": 'application/xml; charset="UTF-8"'}
SEARCH_PAGE_MAX = 40  # WebSDK guide: at most 40 results per search
STATUS_STRINGS = {1: "OK", 2: "Device Busy", 3: "Device Error", 4: "Invalid Operation", 5: "Invalid XML Format",
                  6: "Invalid XML Content", 7: "Reboot Required"}
CONFIG_MAGIC = b"HIKCFG\x00\x01"  # lab export header: magic, then >II payload length and CRC-32, then zlib data


def ns(state: DeviceState) -> str:
    return ISAPI20 if state.kind == "nvr" else HIK20


def e(value: object) -> str:
    return escape(str(value))


def xml_doc(body: str) -> bytes:
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n").encode()


def ok_xml(body: str, status: int = 200) -> Response:
    return Response(status, dict(XML), xml_doc(body))


def response_status(state: DeviceState, req: Request, code: int, sub: str, http: int = 200,
                    description: str | None = None) -> Response:
    extra = f"<description>{e(description)}</description>" if description else ""
    return ok_xml(f'<ResponseStatus version="1.0" xmlns="{ns(state)}">\n'
                  f"<requestURL>{e(req.path)}</requestURL>\n<statusCode>{code}</statusCode>\n"
                  f"<statusString>{STATUS_STRINGS[code]}</statusString>\n<subStatusCode>{sub}</subStatusCode>\n"
                  f"{extra}</ResponseStatus>", http)


def not_found(state: DeviceState, req: Request) -> Response:
    """What firmware answers for a resource it does not offer: 403 with ResponseStatus notSupport under /ISAPI/
    (DS-7716NI-I4 and DS-9632NI-M8 in Key-Information-Solutions/DVRtool's docs, a HiWatch DS-N308(C) in
    maciej-or/hikvision_next#176; the hikvision_next dumps record 403 for most absent paths), 404 elsewhere."""
    return response_status(state, req, 4, "notSupport", 403 if req.path.startswith("/ISAPI/") else 404)


def user_check(state: DeviceState, status: int) -> str:
    locked = state.is_locked()
    return (f'<userCheck version="2.0" xmlns="{ISAPI20}">\n'
            f"<statusValue>{status}</statusValue>\n"
            f"<statusString>{'OK' if status == 200 else 'Unauthorized'}</statusString>\n"
            f"<isActivated>true</isActivated>\n<lockStatus>{'lock' if locked else 'unlock'}</lockStatus>\n"
            f"<unlockTime>{state.unlock_in_s() if locked else 0}</unlockTime>\n"
            f"<retryLoginTime>{0 if locked else state.retries_left()}</retryLoginTime>\n</userCheck>")


def unauthorized(state: DeviceState, req: Request, outcome: str) -> Response:
    """401s as a Hikvision device sends them: userCheck with the lock state, or invalidOperation when stale."""
    if outcome == digest.STALE:
        resp = response_status(state, req, 4, "invalidOperation", 401)
    else:
        resp = ok_xml(user_check(state, 401), 401)
    resp.headers.update(digest.challenge(state, stale=outcome == digest.STALE))
    return resp


# --- resources ----------------------------------------------------------------------------------------------
def _firmware(state: DeviceState) -> tuple[str, str]:
    version, _, build = state.effective_firmware.partition(" ")
    return version, build or "build 000000"


def device_info(state: DeviceState, req: Request) -> Response:
    version, build = _firmware(state)
    dev_type = ("DVR" if state.has("analog-dvr") else "NVR") if state.kind == "nvr" else "IPCamera"
    dev_id = uuid.uuid5(uuid.NAMESPACE_OID, state.serial)
    return ok_xml(
        f'<DeviceInfo version="2.0" xmlns="{ns(state)}">\n<deviceName>{e(state.name)}</deviceName>\n'
        f"<deviceID>{dev_id}</deviceID>\n<deviceDescription>{dev_type}</deviceDescription>\n"
        f"<deviceLocation>hangzhou</deviceLocation>\n<systemContact>Hikvision.China</systemContact>\n"
        f"<model>{e(state.model)}</model>\n<serialNumber>{e(state.serial)}</serialNumber>\n"
        f"<macAddress>{e(state.mac)}</macAddress>\n<firmwareVersion>{e(version)}</firmwareVersion>\n"
        f"<firmwareReleasedDate>{e(build)}</firmwareReleasedDate>\n<encoderVersion>V7.3</encoderVersion>\n"
        f"<encoderReleasedDate>build 200601</encoderReleasedDate>\n<bootVersion>V1.3.4</bootVersion>\n"
        f"<bootReleasedDate>100316</bootReleasedDate>\n<hardwareVersion>0x0</hardwareVersion>\n"
        f"<deviceType>{dev_type}</deviceType>\n<telecontrolID>88</telecontrolID>\n"
        f"<manufacturer>hikvision</manufacturer>\n<subSerialNumber>{e(state.serial[-9:])}</subSerialNumber>\n"
        "</DeviceInfo>")


def _local_iso(state: DeviceState) -> str:
    return state.now_local().replace(microsecond=0).isoformat()


def system_time(state: DeviceState, req: Request) -> Response:
    if req.method == "PUT":
        return put_time(state, req)
    return ok_xml(f'<Time version="2.0" xmlns="{ns(state)}">\n'
                  f"<timeMode>{'NTP' if state.ntp_enabled else 'manual'}</timeMode>\n"
                  f"<localTime>{_local_iso(state)}</localTime>\n<timeZone>{e(state.timezone)}</timeZone>\n</Time>")


def _parse(req: Request):
    """The request body as an element tree (hardened: no DTDs, no entities), or None."""
    from defusedxml import ElementTree as DET

    try:
        return DET.fromstring(req.body)
    except Exception:  # ParseError, DTDForbidden, EntitiesForbidden...
        return None


def _find(root, name: str):
    """First descendant with this local name (namespaces vary by client)."""
    for el in root.iter():
        if el.tag.rsplit("}", 1)[-1] == name:
            return el
    return None


def _text(root, name: str) -> str | None:
    el = _find(root, name)
    return el.text.strip() if el is not None and el.text else None


def put_time(state: DeviceState, req: Request) -> Response:
    root = _parse(req)
    if root is None:
        return response_status(state, req, 5, "badXmlFormat", 400)
    mode = _text(root, "timeMode")
    if mode not in (None, "NTP", "manual"):
        return response_status(state, req, 6, "badParameters", 400)
    local = _text(root, "localTime")
    if mode == "manual" and local:
        try:
            t = dt.datetime.fromisoformat(local.replace("Z", "+00:00"))
        except ValueError:
            return response_status(state, req, 6, "badParameters", 400)
        if t.tzinfo is None:
            t = t.replace(tzinfo=dt.timezone(dt.timedelta(seconds=state.utc_offset_s)))
        state.set_clock(t.astimezone(dt.timezone.utc))
    if mode == "NTP":
        state.clear_fault("ntp-off")
        if state.ntp_server is None:
            state.ntp_server = "127.0.0.1"
        state.set_clock(dt.datetime.now(dt.timezone.utc))  # NTP brings the clock back in line
    elif mode == "manual":
        state.ntp_server = None
    tz = _text(root, "timeZone")
    if tz:
        state.timezone = tz
    return response_status(state, req, 1, "ok")


def _ntp_server_xml(state: DeviceState) -> str:
    addr = state.ntp_server or "0.0.0.0"
    is_ip = bool(re.fullmatch(r"[\d.]+", addr))
    host = f"<ipAddress>{e(addr)}</ipAddress>" if is_ip else f"<hostName>{e(addr)}</hostName>"
    return (f"<NTPServer>\n<id>1</id>\n<addressingFormatType>{'ipaddress' if is_ip else 'hostname'}"
            f"</addressingFormatType>\n{host}\n<portNo>123</portNo>\n<synchronizeInterval>1440"
            "</synchronizeInterval>\n</NTPServer>")


def ntp_servers(state: DeviceState, req: Request) -> Response:
    return ok_xml(f'<NTPServerList version="2.0" xmlns="{ns(state)}">\n{_ntp_server_xml(state)}\n</NTPServerList>')


def ntp_server_1(state: DeviceState, req: Request) -> Response:
    if req.method == "PUT":
        root = _parse(req)
        if root is None:
            return response_status(state, req, 5, "badXmlFormat", 400)
        addr = _text(root, "ipAddress") or _text(root, "hostName")
        if not addr:
            return response_status(state, req, 6, "badParameters", 400)
        state.ntp_server = addr
        return response_status(state, req, 1, "ok")
    xml = _ntp_server_xml(state).replace("<NTPServer>", f'<NTPServer version="2.0" xmlns="{ns(state)}">', 1)
    return ok_xml(xml)


def system_status(state: DeviceState, req: Request) -> Response:
    uptime = int(time.time() - state.created)
    reboots = "" if state.kind == "nvr" else "<totalRebootCount>3</totalRebootCount>\n"
    return ok_xml(f'<DeviceStatus version="2.0" xmlns="{ns(state)}">\n'
                  f"<currentDeviceTime>{_local_iso(state)}</currentDeviceTime>\n<deviceUpTime>{uptime}</deviceUpTime>\n"
                  "<CPUList>\n<CPU>\n<cpuDescription>ARM</cpuDescription>\n<cpuUtilization>12</cpuUtilization>\n"
                  "</CPU>\n</CPUList>\n<MemoryList>\n<Memory>\n<memoryDescription>DDR Memory</memoryDescription>\n"
                  "<memoryUsage>215.5</memoryUsage>\n<memoryAvailable>296.5</memoryAvailable>\n</Memory>\n"
                  f"</MemoryList>\n{reboots}</DeviceStatus>")


def capabilities(state: DeviceState, req: Request) -> Response:
    nvr = state.kind == "nvr"
    racm = (f"<RacmCap>\n<inputProxyNums>{len(state.channels)}</inputProxyNums>\n<isSupportZeroChan>true"
            f"</isSupportZeroChan>\n</RacmCap>\n") if nvr else ""
    return ok_xml(f'<DeviceCap version="2.0" xmlns="{ns(state)}">\n<SysCap>\n<isSupportDst>true</isSupportDst>\n'
                  f"<VideoCap>\n<videoInputPortNums>{0 if nvr else 1}</videoInputPortNums>\n</VideoCap>\n"
                  "<IOCap>\n<IOInputPortNums>1</IOInputPortNums>\n<IOOutputPortNums>1</IOOutputPortNums>\n</IOCap>\n"
                  "<isSupportPostUpdateFirmware>true</isSupportPostUpdateFirmware>\n</SysCap>\n"
                  f"{racm}<SecurityCap>\n<issupIllegalLoginLock>true</issupIllegalLoginLock>\n</SecurityCap>\n"
                  f"<isSupportRecordSearch>{'true' if state.effective_disks() or nvr else 'false'}"
                  "</isSupportRecordSearch>\n</DeviceCap>")


def storage(state: DeviceState, req: Request) -> Response:
    disks = state.effective_disks()
    hdds = "".join(
        f"<hdd>\n<id>{d.id}</id>\n<hddName>hdd{d.id}</hddName>\n<hddPath></hddPath>\n<hddType>SATA</hddType>\n"
        f"<status>{d.status}</status>\n<capacity>{d.capacity_mb}</capacity>\n<freeSpace>{d.free_mb}</freeSpace>\n"
        f"<property>RW</property>\n<formatType>{'EXT4' if d.status != 'unformatted' else ''}</formatType>\n</hdd>\n"
        for d in disks)
    return ok_xml(f'<storage version="2.0" xmlns="{HIK20}">\n'
                  f'<hddList version="1.0" xmlns="{HIK10}" size="{len(disks)}">\n{hdds}</hddList>\n'
                  f'<nasList version="1.0" xmlns="{HIK10}" size="0">\n</nasList>\n<workMode>group</workMode>\n'
                  "</storage>")


def _proxy_channel(state: DeviceState, c: ChannelState) -> str:
    return (f"<InputProxyChannel>\n<id>{c.id}</id>\n<name>{e(c.name)}</name>\n<sourceInputPortDescriptor>\n"
            f"<proxyProtocol>HIKVISION</proxyProtocol>\n<addressingFormatType>ipaddress</addressingFormatType>\n"
            f"<ipAddress>{e(c.ip or '0.0.0.0')}</ipAddress>\n<managePortNo>8000</managePortNo>\n"
            f"<srcInputPort>1</srcInputPort>\n<userName>admin</userName>\n<streamType>auto</streamType>\n"
            f"</sourceInputPortDescriptor>\n</InputProxyChannel>")


def proxy_channels(state: DeviceState, req: Request) -> Response:
    if state.has("analog-dvr"):  # an analog DVR lists no IP channels (iDS-7204HUHI-M1: an empty list, size="2")
        return ok_xml(f'<InputProxyChannelList version="1.0" xmlns="{HIK20}" size="2">\n</InputProxyChannelList>')
    body = "\n".join(_proxy_channel(state, c) for c in state.channels)
    return ok_xml(f'<InputProxyChannelList version="2.0" xmlns="{ns(state)}" size="{len(state.channels)}">\n'
                  f"{body}\n</InputProxyChannelList>")


def _channel_status(state: DeviceState, c: ChannelState, root_attrs: str = "") -> str:
    online = state.channel_online(c)
    return (f"<InputProxyChannelStatus{root_attrs}>\n<id>{c.id}</id>\n<sourceInputPortDescriptor>\n"
            f"<proxyProtocol>HIKVISION</proxyProtocol>\n<addressingFormatType>ipaddress</addressingFormatType>\n"
            f"<ipAddress>{e(c.ip or '0.0.0.0')}</ipAddress>\n<managePortNo>8000</managePortNo>\n"
            f"</sourceInputPortDescriptor>\n<online>{'true' if online else 'false'}</online>\n"
            f"<chanDetectResult>{'connect' if online else 'networkAbnormal'}</chanDetectResult>\n"
            "</InputProxyChannelStatus>")


def proxy_channels_status(state: DeviceState, req: Request) -> Response:
    channels = [] if state.has("analog-dvr") else state.channels  # no IP channels, no IP channel states
    body = "\n".join(_channel_status(state, c) for c in channels)
    return ok_xml(f'<InputProxyChannelStatusList version="2.0" xmlns="{ISAPI20}">\n{body}\n'
                  "</InputProxyChannelStatusList>")


def proxy_channel_status(state: DeviceState, req: Request, cid: int) -> Response:
    c = next((c for c in state.channels if c.id == cid), None)
    if c is None:
        return not_found(state, req)
    return ok_xml(_channel_status(state, c, f' version="2.0" xmlns="{ISAPI20}"'))


def video_inputs(state: DeviceState, req: Request) -> Response:
    """A camera lists its sensors without resDesc (DS-2TD1228-2-QA, DS-2CD2346G2-ISU); an analog DVR lists its
    inputs with the signal it sees, `NO VIDEO` on video loss (iDS-7204HUHI-M1); an NVR answers 403
    (DS-7608NXI-I2). Recorded answers: tests/fixtures/devices/hikvision/."""
    if state.kind == "nvr" and not state.has("analog-dvr"):
        return response_status(state, req, 4, "notSupport", 403)
    items = []
    for c in state.channels:
        res = ""
        if state.has("analog-dvr"):
            w, h = state.stream_size(c)
            signal = f"{w}*{h}P{c.fps}" if state.channel_online(c) else "NO VIDEO"
            res = f"<resDesc>{signal}</resDesc>\n"
        items.append(f'<VideoInputChannel version="1.0" xmlns="{HIK20}">\n<id>{c.id}</id>\n'
                     f"<inputPort>{c.id}</inputPort>\n<videoInputEnabled>true</videoInputEnabled>\n"
                     f"<name>{e(c.name)}</name>\n<videoFormat>PAL</videoFormat>\n{res}</VideoInputChannel>\n")
    return ok_xml(f'<VideoInputChannelList version="1.0" xmlns="{HIK20}">\n{"".join(items)}'
                  "</VideoInputChannelList>")


def _streams(state: DeviceState) -> list[tuple[int, ChannelState, bool]]:
    """(stream id, channel, is main): cameras have 101 main + 102 sub; NVRs one main stream per channel."""
    out = []
    for c in state.channels:
        out.append((c.id * 100 + 1, c, True))
        if state.kind == "camera":
            out.append((c.id * 100 + 2, c, False))
    return out


def _stream_xml(state: DeviceState, sid: int, c: ChannelState, main: bool, root_attrs: str = "") -> str:
    w, h = state.stream_size(c) if main else state.SUB_SIZE
    fps, kbps = (c.fps, c.bitrate_kbps) if main else (c.fps, 512)
    return (f"<StreamingChannel{root_attrs}>\n<id>{sid}</id>\n<channelName>{e(c.name)}</channelName>\n"
            "<enabled>true</enabled>\n<Transport>\n<maxPacketSize>1000</maxPacketSize>\n<ControlProtocolList>\n"
            "<ControlProtocol>\n<streamingTransport>RTSP</streamingTransport>\n</ControlProtocol>\n"
            "</ControlProtocolList>\n</Transport>\n<Video>\n<enabled>true</enabled>\n"
            f"<videoInputChannelID>{c.id}</videoInputChannelID>\n<videoCodecType>{e(c.codec)}</videoCodecType>\n"
            f"<videoScanType>progressive</videoScanType>\n<videoResolutionWidth>{w}</videoResolutionWidth>\n"
            f"<videoResolutionHeight>{h}</videoResolutionHeight>\n<videoQualityControlType>VBR"
            f"</videoQualityControlType>\n<constantBitRate>{kbps}</constantBitRate>\n<fixedQuality>60</fixedQuality>\n"
            f"<vbrUpperCap>{kbps}</vbrUpperCap>\n<maxFrameRate>{fps * 100}</maxFrameRate>\n"
            "<GovLength>50</GovLength>\n<SmartCodec>\n<enabled>false</enabled>\n</SmartCodec>\n</Video>\n"
            "</StreamingChannel>")


def streaming_channels(state: DeviceState, req: Request) -> Response:
    body = "\n".join(_stream_xml(state, sid, c, main) for sid, c, main in _streams(state))
    return ok_xml(f'<StreamingChannelList version="2.0" xmlns="{ns(state)}">\n{body}\n</StreamingChannelList>')


def streaming_channel(state: DeviceState, req: Request, sid: int) -> Response:
    found = next(((c, main) for s, c, main in _streams(state) if s == sid), None)
    if found is None:
        return not_found(state, req)
    c, main = found
    if req.method == "PUT":
        root = _parse(req)
        if root is None:
            return response_status(state, req, 5, "badXmlFormat", 400)
        if main:
            try:
                for tag, attr in (("videoResolutionWidth", "width"), ("videoResolutionHeight", "height"),
                                  ("constantBitRate", "bitrate_kbps")):
                    if _text(root, tag):
                        setattr(c, attr, int(_text(root, tag)))
                if _text(root, "maxFrameRate"):
                    c.fps = max(1, int(_text(root, "maxFrameRate")) // 100)
            except ValueError:
                return response_status(state, req, 6, "badParameters", 400)
            if _text(root, "videoCodecType"):
                c.codec = _text(root, "videoCodecType")
        return response_status(state, req, 1, "ok")
    return ok_xml(_stream_xml(state, sid, c, main, f' version="2.0" xmlns="{ns(state)}"'))


# --- recording search -----------------------------------------------------------------------------------------
def _hik_time(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")  # local wall-clock time with a 'Z' (the documented quirk)


@functools.lru_cache(maxsize=16384)
def _item_times(t: dt.datetime) -> tuple[str, str, str]:
    """A search item's time in its three spellings (timeSpan, playbackURI, file name). Files start and end on
    the hour, so the same few thousand instants recur across devices and searches: formatting them once each
    halved the lab's search answer."""
    return _hik_time(t), t.strftime("%Y%m%dT%H%M%S"), t.strftime("%Y%m%d%H%M%S")


def _parse_hik_time(state: DeviceState, s: str) -> dt.datetime:
    """Search times are device-local; a 'Z' does not make them UTC. An explicit offset is honoured."""
    s = s.strip()
    if s.endswith("Z"):
        return dt.datetime.fromisoformat(s[:-1])
    t = dt.datetime.fromisoformat(s)
    if t.tzinfo is not None:
        t = t.astimezone(dt.timezone(dt.timedelta(seconds=state.utc_offset_s))).replace(tzinfo=None)
    return t


def search(state: DeviceState, req: Request) -> Response:
    root = _parse(req)
    if root is None or root.tag.rsplit("}", 1)[-1] != "CMSearchDescription":
        return response_status(state, req, 5, "badXmlFormat", 400)
    search_id = _text(root, "searchID") or str(uuid.uuid4())
    try:
        tracks = [int(el.text) for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "trackID" and el.text]
        spans = [(_parse_hik_time(state, _text(ts, "startTime")), _parse_hik_time(state, _text(ts, "endTime")))
                 for ts in root.iter() if ts.tag.rsplit("}", 1)[-1] == "timeSpan"]
        max_results = min(SEARCH_PAGE_MAX, max(1, int(_text(root, "maxResults") or SEARCH_PAGE_MAX)))
        # Only the misspelled element counts: with the "correct" spelling every page repeats page 1.
        position = max(0, int(_text(root, "searchResultPostion") or 0))
    except (TypeError, ValueError):
        return response_status(state, req, 6, "badXmlContent", 400)
    if not tracks or not spans:
        return response_status(state, req, 6, "badXmlContent", 400)
    matches = []
    for track in tracks:
        channel, stream = divmod(track, 100)
        if stream != 1:
            continue  # only main-stream video is recorded
        for start, end in spans:
            for s, t in state.local_segments(channel, start, end):
                matches.append((s, track, t))
    matches.sort()
    page = matches[position:position + max_results]
    if not matches:
        status = "NO MATCHES"
    elif position + len(page) < len(matches):
        status = "MORE"
    else:
        status = "OK"
    items = []
    kbps = {c.id: c.bitrate_kbps for c in state.channels}
    source = uuid.uuid5(uuid.NAMESPACE_OID, state.serial)
    for s, track, t in page:
        size = int((t - s).total_seconds() * kbps.get(track // 100, 4096) * 125)
        (s_iso, s_compact, s_name), (t_iso, t_compact, _) = _item_times(s), _item_times(t)
        uri = (f"rtsp://{state.host}/Streaming/tracks/{track}/?starttime={s_compact}Z&amp;"
               f"endtime={t_compact}Z&amp;name=ch{track // 100:02d}_{s_name}&amp;size={size}")
        items.append(f"<searchMatchItem>\n<sourceID>{{{source}}}</sourceID>\n"
                     f"<trackID>{track}</trackID>\n<timeSpan>\n<startTime>{s_iso}</startTime>\n"
                     f"<endTime>{t_iso}</endTime>\n</timeSpan>\n<mediaSegmentDescriptor>\n"
                     "<contentType>video</contentType>\n<codecType>H.264-BP</codecType>\n"
                     f"<playbackURI>{uri}</playbackURI>\n</mediaSegmentDescriptor>\n<metadataMatches>\n"
                     "<metadataDescriptor>recordType.meta.hikvision.com/timing</metadataDescriptor>\n"
                     "</metadataMatches>\n</searchMatchItem>")
    match_list = f"<matchList>\n{chr(10).join(items)}\n</matchList>\n" if items else ""
    return ok_xml(f'<CMSearchResult version="2.0" xmlns="{ns(state)}">\n<searchID>{e(search_id)}</searchID>\n'
                  f"<responseStatus>true</responseStatus>\n<responseStatusStrg>{status}</responseStatusStrg>\n"
                  f"<numOfMatches>{len(page)}</numOfMatches>\n<totalMatches>{len(matches)}</totalMatches>\n"
                  f"{match_list}</CMSearchResult>")


def record_tracks(state: DeviceState, req: Request) -> Response:
    """Recording schedule per main-stream track: all week CMR (continuous) or MOTION; none when recording is off."""
    days = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
    mode = {"continuous": "CMR", "motion": "MOTION"}.get(state.record_mode)
    tracks = []
    for c in state.channels:
        actions = "".join(
            f"<ScheduleAction>\n<id>{i}</id>\n<ScheduleActionStartTime>\n<DayOfWeek>{day}</DayOfWeek>\n"
            "<TimeOfDay>00:00:00</TimeOfDay>\n</ScheduleActionStartTime>\n<ScheduleActionEndTime>\n"
            f"<DayOfWeek>{day}</DayOfWeek>\n<TimeOfDay>24:00:00</TimeOfDay>\n</ScheduleActionEndTime>\n"
            "<ScheduleDSTEnable>false</ScheduleDSTEnable>\n<Description>nothing</Description>\n<Actions>\n"
            f"<Record>true</Record>\n<ActionRecordingMode>{mode}</ActionRecordingMode>\n</Actions>\n"
            "</ScheduleAction>\n" for i, day in enumerate(days, 1)) if mode else ""
        tracks.append(f"<Track>\n<id>{c.id}01</id>\n<Channel>{c.id}</Channel>\n"
                      f"<Enable>{'true' if mode else 'false'}</Enable>\n<Description>trackType=standard,"
                      f"storageType=,codecType=H.264,resolution=,framerate=</Description>\n"
                      f"<TrackGUID>{uuid.uuid5(uuid.NAMESPACE_OID, f'{state.serial}/{c.id}')}</TrackGUID>\n"
                      f"<DefaultRecordingMode>{mode or 'CMR'}</DefaultRecordingMode>\n<TrackSchedule>\n"
                      f"<ScheduleBlockList>\n<ScheduleBlock>\n<ScheduleBlockGUID>{{00000000-0000-0000-0000-"
                      f"000000000000}}</ScheduleBlockGUID>\n<ScheduleBlockType>www.std-cgi.com/racm/schedule/"
                      f"ver10</ScheduleBlockType>\n{actions}</ScheduleBlock>\n</ScheduleBlockList>\n"
                      "</TrackSchedule>\n</Track>")
    return ok_xml(f'<TrackList version="2.0" xmlns="{ns(state)}">\n' + "\n".join(tracks) + "\n</TrackList>")


# --- configuration export / import, firmware ---------------------------------------------------------------
def config_export(state: DeviceState) -> bytes:
    """An opaque binary file like the real export: header + zlib of the settings (deterministic bytes)."""
    payload = zlib.compress(state.config_blob(), 9)
    return CONFIG_MAGIC + struct.pack(">II", len(payload), zlib.crc32(payload)) + payload


def config_import(data: bytes) -> dict:
    """Inverse of config_export; raises ValueError('fileFormatError' | 'fileContentError')."""
    if not data.startswith(CONFIG_MAGIC) or len(data) < len(CONFIG_MAGIC) + 8:
        raise ValueError("fileFormatError")
    length, crc = struct.unpack(">II", data[len(CONFIG_MAGIC):len(CONFIG_MAGIC) + 8])
    payload = data[len(CONFIG_MAGIC) + 8:]
    if len(payload) != length or zlib.crc32(payload) != crc:
        raise ValueError("fileContentError")
    try:
        return json.loads(zlib.decompress(payload))
    except (zlib.error, ValueError):
        raise ValueError("fileContentError") from None


def configuration_data(state: DeviceState, req: Request) -> Response:
    if state.has("export-refused"):  # a user without the maintenance right
        return response_status(state, req, 4, "Invalid Operation", 403)
    if req.method == "GET":
        blob = config_export(state)
        return Response(200, {"Content-Type": "application/octet-stream",
                              "Content-Disposition": f'attachment; filename="ConfigurationData_{state.serial}"'}, blob)
    try:
        cfg = config_import(req.body)
    except ValueError as exc:
        return response_status(state, req, 6, str(exc), 400)
    if cfg.get("identity", {}).get("model") != state.model:
        return response_status(state, req, 6, "importErrorData", 400)
    state.apply_config(cfg)
    return response_status(state, req, 1, "ok")


def update_firmware(state: DeviceState, req: Request) -> Response:
    if state.upgrade_progress()[0] == "upgrading":
        return response_status(state, req, 2, "upgrading", 503)
    meta = parse_firmware_image(req.body)  # a raw PUT body or the `updateFile` part of a multipart POST
    if meta is None or meta["vendor"] != "hikvision" or meta["model"] != state.model:
        return response_status(state, req, 4, "badDevType", 403)
    state.start_upgrade(str(meta["version"]))
    return response_status(state, req, 1, "ok")


def upgrade_status(state: DeviceState, req: Request) -> Response:
    phase, pct = state.upgrade_progress()
    return ok_xml(f'<upgradeStatus version="2.0" xmlns="{ns(state)}">\n'
                  f"<upgrading>{'true' if phase == 'upgrading' else 'false'}</upgrading>\n<percent>{pct}</percent>\n"
                  "</upgradeStatus>")


# --- security -------------------------------------------------------------------------------------------------
def admin_accesses(state: DeviceState, req: Request) -> Response:
    rows = [("HTTP", state.http_port, True), ("HTTPS", 443, False), ("DEV_MANAGE", 8000, True),
            ("RTSP", state.rtsp_port, True), ("WebSocket", 7681, True)]
    body = "\n".join(f"<AdminAccessProtocol>\n<id>{i}</id>\n<enabled>{'true' if on else 'false'}</enabled>\n"
                     f"<protocol>{p}</protocol>\n<portNo>{port}</portNo>\n</AdminAccessProtocol>"
                     for i, (p, port, on) in enumerate(rows, 1))
    return ok_xml(f'<AdminAccessProtocolList version="2.0" xmlns="{ns(state)}">\n{body}\n</AdminAccessProtocolList>')


def network_interfaces(state: DeviceState, req: Request) -> Response:
    gateway = state.host.rsplit(".", 1)[0] + ".254"
    return ok_xml(f'<NetworkInterfaceList version="2.0" xmlns="{ns(state)}">\n<NetworkInterface>\n<id>1</id>\n'
                  f"<IPAddress>\n<ipVersion>v4</ipVersion>\n<addressingType>static</addressingType>\n"
                  f"<ipAddress>{e(state.host)}</ipAddress>\n<subnetMask>255.255.255.0</subnetMask>\n"
                  f"<DefaultGateway>\n<ipAddress>{gateway}</ipAddress>\n</DefaultGateway>\n</IPAddress>\n"
                  f"<Link>\n<MACAddress>{e(state.mac)}</MACAddress>\n<autoNegotiation>true</autoNegotiation>\n"
                  "<speed>0</speed>\n<duplex>full</duplex>\n<MTU>1500</MTU>\n</Link>\n</NetworkInterface>\n"
                  "</NetworkInterfaceList>")


def users(state: DeviceState, req: Request) -> Response:
    body = "\n".join(f"<User>\n<id>{i}</id>\n<userName>{e(n)}</userName>\n<userLevel>{e(lvl)}</userLevel>\n"
                     "</User>" for i, (n, lvl) in enumerate(state.users, 1))
    return ok_xml(f'<UserList version="2.0" xmlns="{ns(state)}">\n{body}\n</UserList>')


def illegal_login_lock(state: DeviceState, req: Request) -> Response:
    if req.method == "PUT":
        return response_status(state, req, 1, "ok")
    return ok_xml(f'<IllegalLoginLock version="2.0" xmlns="{ns(state)}">\n<enabled>true</enabled>\n'
                  f"<maxIllegalLoginTimes>{int(state.fault_value('lock-after', 5))}</maxIllegalLoginTimes>\n"
                  "</IllegalLoginLock>")


def reboot(state: DeviceState, req: Request) -> Response:
    state.created = time.time()
    return response_status(state, req, 1, "ok")


# --- dispatch ---------------------------------------------------------------------------------------------------
ROUTES = {
    "/isapi/system/deviceinfo": (("GET",), device_info),
    "/isapi/system/time": (("GET", "PUT"), system_time),
    "/isapi/system/time/ntpservers": (("GET",), ntp_servers),
    "/isapi/system/time/ntpservers/1": (("GET", "PUT"), ntp_server_1),
    "/isapi/system/status": (("GET",), system_status),
    "/isapi/system/capabilities": (("GET",), capabilities),
    "/isapi/system/configurationdata": (("GET", "PUT"), configuration_data),
    "/isapi/system/updatefirmware": (("PUT", "POST"), update_firmware),
    "/isapi/system/upgradestatus": (("GET",), upgrade_status),
    "/isapi/system/reboot": (("PUT",), reboot),
    "/isapi/system/video/inputs/channels": (("GET",), video_inputs),
    "/isapi/system/network/interfaces": (("GET",), network_interfaces),
    "/isapi/contentmgmt/storage": (("GET",), storage),
    "/isapi/contentmgmt/search": (("POST",), search),
    "/isapi/contentmgmt/record/tracks": (("GET",), record_tracks),
    "/isapi/streaming/channels": (("GET",), streaming_channels),
    "/isapi/security/usercheck": (("GET",), lambda s, r: ok_xml(user_check(s, 200))),
    "/isapi/security/adminaccesses": (("GET",), admin_accesses),
    "/isapi/security/users": (("GET",), users),
    "/isapi/security/illegalloginlock": (("GET", "PUT"), illegal_login_lock),
}
NVR_ROUTES = {
    "/isapi/contentmgmt/inputproxy/channels": (("GET",), proxy_channels),
    "/isapi/contentmgmt/inputproxy/channels/status": (("GET",), proxy_channels_status),
}
_STREAM = re.compile(r"^/isapi/streaming/channels/(\d+)$")
_PROXY_STATUS = re.compile(r"^/isapi/contentmgmt/inputproxy/channels/(\d+)/status$")


def handle(state: DeviceState, req: Request) -> Response:
    outcome = digest.check(state, req.method, req.path, req.headers.get("authorization"))
    if outcome != digest.OK:
        return unauthorized(state, req, outcome)
    path = req.path.lower().rstrip("/")
    entry = ROUTES.get(path) or (NVR_ROUTES.get(path) if state.kind == "nvr" else None)
    if entry is not None:
        methods, fn = entry
        if req.method not in methods:
            return response_status(state, req, 4, "methodNotAllowed", 405)
        return fn(state, req)
    m = _STREAM.match(path)
    if m and req.method in ("GET", "PUT"):
        return streaming_channel(state, req, int(m.group(1)))
    m = _PROXY_STATUS.match(path)
    if m and state.kind == "nvr" and req.method == "GET":
        return proxy_channel_status(state, req, int(m.group(1)))
    return not_found(state, req)

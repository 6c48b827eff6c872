"""Pure readers of ONVIF answers: no zeep, no connection, no driver state (unit-tested on their own).

They read lxml elements (the answers the driver fetches raw), zeep-or-lxml values, URIs and tokens, and turn the
driver's settings() into the neutral snapshot (normalize_settings). `check_wellformed` is the one parse of a device
answer's bytes, used by the transport before zeep sees them and by decode_backup.

The answers of the check path are the exception to "zeep reads the answers": the recording and event search
answers (the biggest of a fleet check, a third of an NVR check's CPU in zeep for five fields each) and
GetDeviceInformation, GetSystemDateAndTime and GetNTP (asked of every device, a third of a camera's). They are
read from the document the transport already parsed, by local name with the xmlsafe lookups the Hikvision
parsers use; faults and HTTP errors still go through zeep, so they raise the same errors.
"""

from __future__ import annotations

import base64
import datetime as dt
import email.parser
import email.policy
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from canteen_ops.drivers import settings as S
from canteen_ops.drivers import xmlsafe as X
from canteen_ops.drivers.base import ProtocolError
from canteen_ops.timeutil import parse_xs_datetime

NS_DEVICE = "http://www.onvif.org/ver10/device/wsdl"
NS_MEDIA = "http://www.onvif.org/ver10/media/wsdl"
NS_SEARCH = "http://www.onvif.org/ver10/search/wsdl"
NS_SCHEMA = "http://www.onvif.org/ver10/schema"
XOP_NS = "http://www.w3.org/2004/08/xop/include"

MAX_BODY = 8 * 1024 * 1024  # the biggest honest ONVIF answer (a system backup) is far below this


def check_wellformed(content: bytes):
    """The root element of `content`; ProtocolError unless it is one well-formed XML document without a DTD."""
    return X.parse(content, max_bytes=MAX_BODY, what="XML answer")


# --- helpers used by the getters (pure, unit-tested) -----------------------------------------------------------
def posix_tz_offset(tz: str | None) -> dt.timedelta | None:
    """UTC offset of a POSIX TZ string ('CST-8:00:00' → +8 h: the sign is inverted); None if unparseable."""
    if not tz:
        return None
    m = re.match(r"^\s*(?:<[^>]+>|[A-Za-z]{3,})([+-]?)(\d{1,2})(?::(\d{2}))?(?::(\d{2}))?", tz)
    if not m:
        return None
    sign = 1 if m.group(1) == "-" else -1
    return sign * dt.timedelta(hours=int(m.group(2)), minutes=int(m.group(3) or 0), seconds=int(m.group(4) or 0))


def onvif_datetime(value) -> dt.datetime | None:
    """tt:DateTime {Date{Year,Month,Day}, Time{Hour,Minute,Second}} → naive datetime, None when absent/invalid."""
    if value is None or X.find(value, "Date") is None or X.find(value, "Time") is None:
        return None
    try:
        return dt.datetime(*(int(X.text(value, f"Date/{k}", "")) for k in ("Year", "Month", "Day")),
                           *(int(X.text(value, f"Time/{k}") or 0) for k in ("Hour", "Minute", "Second")))
    except (TypeError, ValueError):
        return None


@dataclass
class SystemDateAndTime:
    """GetSystemDateAndTime, read: the time mode, the POSIX TZ and the device's UTC (None when unreadable)."""

    kind: str | None  # DateTimeType: "NTP" or "Manual"
    tz: str | None
    utc: dt.datetime | None


def parse_system_date_and_time(answer) -> SystemDateAndTime:
    """The device's UTC is UTCDateTime, else LocalDateTime minus the TZ offset."""
    sdt = X.find(answer, "SystemDateAndTime")
    tz = X.text(sdt, "TimeZone/TZ")
    utc = onvif_datetime(X.find(sdt, "UTCDateTime"))
    if utc is None:
        local, offset = onvif_datetime(X.find(sdt, "LocalDateTime")), posix_tz_offset(tz)
        utc = None if local is None or offset is None else local - offset
    return SystemDateAndTime(kind=X.text(sdt, "DateTimeType"), tz=tz,
                             utc=None if utc is None else utc.replace(tzinfo=dt.timezone.utc))


@dataclass
class DeviceInformation:
    manufacturer: str | None
    model: str | None
    firmware: str | None
    serial: str | None
    hardware: str | None


def parse_device_information(answer) -> DeviceInformation:
    def field(name: str) -> str | None:
        return _clean(X.text(answer, name))

    return DeviceInformation(manufacturer=field("Manufacturer"), model=field("Model"),
                             firmware=field("FirmwareVersion"), serial=field("SerialNumber"),
                             hardware=field("HardwareId"))


def parse_ntp_servers(answer) -> list[str]:
    """GetNTP → the NTP servers in use: the manual ones, and those from DHCP when FromDHCP is set. An unset server
    is left out: firmware writes it as 0.0.0.0 (a SUNBA and a GX728MF-IR28 in the corpus)."""
    info = X.find(answer, "NTPInformation")
    hosts = X.findall(info, "NTPManual")
    if _truthy(X.text(info, "FromDHCP")):
        hosts += X.findall(info, "NTPFromDHCP")
    servers = []
    for h in hosts:
        addr = X.text(h, "IPv4Address") or X.text(h, "IPv6Address") or X.text(h, "DNSname")
        if addr and addr.strip() and addr.strip() not in ("0.0.0.0", "::"):
            servers.append(addr.strip())
    return servers


MAX_CHANNEL = 512  # no recorder has more; a larger trailing number is an index scheme, not a channel


def channel_numbers(tokens: list[str | None]) -> list[int]:
    """Channel of each source/recording token (several profiles share one source token).

    The tokens' trailing numbers are the channels ('VideoSource_3' → 3) when every distinct token has one in
    1..MAX_CHANNEL and no two share it; otherwise (zero-based 'VideoSource000', a recorder's '00000', '00100', ...,
    '01100' for channels 1-12, tokens without digits) the channel is the token's rank in order of appearance.
    A missing token is a channel of its own."""
    keys = [t if t else f"\0{i}" for i, t in enumerate(tokens)]
    distinct = list(dict.fromkeys(keys))
    numbers = []
    for key in distinct:
        m = re.search(r"(?<!\d)(\d++)\D*+$", key) if not key.startswith("\0") else None  # linear: from a digit run
        numbers.append(int(m.group(1)) if m and len(m.group(1)) <= 6 else 0)
    if not all(1 <= n <= MAX_CHANNEL for n in numbers) or len(set(numbers)) != len(numbers):
        numbers = list(range(1, len(distinct) + 1))
    channel = dict(zip(distinct, numbers))
    return [channel[k] for k in keys]


def strip_credentials(uri: str) -> str:
    """Remove user:password@ from a URI (devices sometimes embed them)."""
    parts = urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def repoint(uri: str, host: str, port: int | None) -> str:
    """Point a device-reported URI at the inventory host (and port if given), keeping scheme and path."""
    parts = urlsplit(uri)
    h = f"[{host}]" if ":" in host else host
    p = port if port is not None else parts.port
    return urlunsplit((parts.scheme, h + (f":{p}" if p else ""), parts.path, parts.query, parts.fragment))


def codec_name(encoding: str | None) -> str | None:
    if not encoding:
        return None
    return {"H264": "H.264", "H265": "H.265", "JPEG": "MJPEG", "MPEG4": "MPEG-4"}.get(str(encoding), str(encoding))


def spans_from_events(events: list[tuple[dt.datetime, bool]], start: dt.datetime, end: dt.datetime,
                      latest: dt.datetime | None) -> list[tuple[dt.datetime, dt.datetime]]:
    """Recorded spans from IsDataPresent flips (time, present), clipped to [start, end] and the latest data."""
    spans: list[tuple[dt.datetime, dt.datetime]] = []
    open_at: dt.datetime | None = None
    for when, present in sorted(events, key=lambda e: e[0]):
        if present and open_at is None:
            open_at = max(when, start)
        elif not present and open_at is not None:
            if when > open_at:
                spans.append((open_at, min(when, end)))
            open_at = None
    if open_at is not None:
        stop = min(end, latest) if latest is not None else end
        if stop > open_at:
            spans.append((open_at, stop))
    return [(s, e) for s, e in spans if e > start and s < end]


def _attr(obj: Any, name: str) -> Any:
    """Attribute of a zeep object or XML attribute/child text of an lxml element (xs:any content)."""
    if obj is None:
        return None
    if hasattr(obj, "tag") and hasattr(obj, "get"):  # lxml element
        if obj.get(name) is not None:
            return obj.get(name)
        for child in obj:
            if isinstance(child.tag, str) and child.tag.rsplit("}", 1)[-1] == name:
                return child if len(child) else child.text
        return None
    try:
        return getattr(obj, name)
    except AttributeError:
        return None


def _truthy(value: Any) -> bool:
    return value is True or str(value).strip().lower() in ("true", "1")


def _clean(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


@dataclass(frozen=True)
class RecordingInfo:
    """The fields of a tt:RecordingInformation the driver uses."""

    token: str
    source_id: str | None
    name: str | None
    earliest: dt.datetime | None
    latest: dt.datetime | None
    status: str


def _xs_time(text: str | None) -> dt.datetime | None:
    try:
        return parse_xs_datetime(text) if text else None
    except ValueError:
        return None


def _result_list(answer):
    result_list = X.find(answer, "ResultList")
    if result_list is None:
        raise ProtocolError(f"{X.local(answer.tag)} without a ResultList")
    return result_list, X.text(result_list, "SearchState", "")


def parse_recording_results(answer) -> tuple[str, list[RecordingInfo]]:
    """GetRecordingSearchResultsResponse → (SearchState, its RecordingInformation)."""
    result_list, state = _result_list(answer)
    infos = []
    for info in X.children(result_list, "RecordingInformation"):
        infos.append(RecordingInfo(
            token=X.text(info, "RecordingToken", ""), source_id=X.text(info, "Source/SourceId"),
            name=X.text(info, "Source/Name"), earliest=_xs_time(X.text(info, "EarliestRecording")),
            latest=_xs_time(X.text(info, "LatestRecording")), status=X.text(info, "RecordingStatus", "")))
    return state, infos


def parse_event_results(answer) -> tuple[str, list[tuple[str, dt.datetime, bool]]]:
    """GetEventSearchResultsResponse → (SearchState, (recording token, time, IsDataPresent) of every
    tns1:RecordingHistory/Track/State result); results of other events are left out."""
    result_list, state = _result_list(answer)
    out = []
    for result in X.children(result_list, "Result"):
        when, token = _xs_time(X.text(result, "Time")), X.text(result, "RecordingToken")
        present = None
        for data in X.iter_local(result, "Data"):  # Event/Message/Message/Data
            for item in X.children(data, "SimpleItem"):
                if item.get("Name") == "IsDataPresent":
                    present = _truthy(item.get("Value"))
        if when is not None and token and present is not None:
            out.append((token, when, present))
    return state, out


def decode_backup(content: bytes, content_type: str) -> list[tuple[str | None, str, bytes]]:
    """(name, content type, bytes) of each file in a GetSystemBackup answer: MTOM/XOP multipart as devices
    send it, or base64 inline in tt:Data as some firmware does."""
    parts: dict[str, tuple[str, bytes]] = {}
    root_xml = content
    if "multipart/" in content_type.lower():
        msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + content)
        payloads = [p for p in msg.iter_parts()]
        if not payloads:
            raise ProtocolError("empty multipart backup answer")
        root_xml = payloads[0].get_payload(decode=True) or b""
        for p in payloads[1:]:
            cid = (p.get("Content-ID") or "").strip().strip("<>")
            parts[cid] = (p.get_content_type(), p.get_payload(decode=True) or b"")
    root = check_wellformed(root_xml)
    out = []
    for bf in root.iter(f"{{{NS_DEVICE}}}BackupFiles"):
        name = bf.findtext(f"{{{NS_SCHEMA}}}Name")
        data_el = bf.find(f"{{{NS_SCHEMA}}}Data")
        if data_el is None:
            continue
        ctype = data_el.get("{http://www.w3.org/2005/05/xmlmime}contentType") or ""
        inc = data_el.find(f"{{{XOP_NS}}}Include")
        if inc is not None:
            href = (inc.get("href") or "")
            cid = href[4:] if href.startswith("cid:") else href
            from urllib.parse import unquote

            part = parts.get(unquote(cid))
            if part is None:
                raise ProtocolError(f"backup part {href!r} missing from the multipart answer")
            out.append((name, ctype or part[0], part[1]))
        elif data_el.text and data_el.text.strip():
            try:
                out.append((name, ctype, base64.b64decode(data_el.text.strip(), validate=True)))
            except ValueError:
                raise ProtocolError("backup data is neither an XOP include nor base64") from None
    return out


# --- settings snapshot (tasks/snapshot.py) ------------------------------------------------------------------------------------------------------
def normalize_settings(raw: dict[str, Any]) -> dict[str, Any]:
    out = S.empty()
    ident = raw.get("identity") or {}
    out["identity"] = {"vendor": "onvif", "manufacturer": S.to_str(ident.get("manufacturer")),
                       "model": S.to_str(ident.get("model")), "serial": S.to_str(ident.get("serial")),
                       "firmware": S.to_str(ident.get("firmware")), "name": None, "mac": None,
                       "device_type": None}
    t = raw.get("time") or {}
    out["time"] = {"timezone": S.to_str(t.get("timezone")), "mode": S.to_str(t.get("mode")),
                   "ntp_enabled": t.get("ntp_enabled"), "ntp_servers": [s for s in (t.get("ntp_servers") or []) if s]}
    streams = []
    if raw.get("stream_info"):  # the driver's own profile → channel mapping (Driver.streams())
        for s in raw["stream_info"]:
            streams.append({"channel": S.to_int(s.get("channel")) or 1, "main": bool(s.get("main")),
                            "codec": S.codec(s.get("codec")), "width": S.to_int(s.get("width")),
                            "height": S.to_int(s.get("height")), "fps": S.num(s.get("fps")),
                            "bitrate_kbps": S.num(s.get("bitrate_kbps"))})
    else:  # encoder configurations only: best effort from names and tokens
        for s in raw.get("streams") or []:
            name = (S.to_str(s.get("name")) or "") + " " + (S.to_str(s.get("token")) or "")
            main = not re.search(r"sub|second|minor|extra", name, re.I)
            streams.append({"channel": 1, "main": main, "codec": S.codec(s.get("codec")),
                            "width": S.to_int(s.get("width")), "height": S.to_int(s.get("height")),
                            "fps": S.num(s.get("fps")), "bitrate_kbps": S.num(s.get("bitrate_kbps")),
                            "token": S.to_str(s.get("token"))})
    out["streams"] = streams
    out["users"] = [{"name": S.to_str(u.get("name")), "level": S.to_str(u.get("level"))}
                    for u in raw.get("users") or [] if S.to_str(u.get("name"))]
    nics = []
    for n in raw.get("network") or []:
        nics.append({"name": S.to_str(n.get("name")) or S.to_str(n.get("token")), "mac": (S.to_str(n.get("mac")) or "").lower()
                     or None, "ipv4": list(n.get("ipv4") or []), "dhcp": n.get("dhcp")})
    out["network"] = {"interfaces": nics, "hostname": None}
    out["ports"] = {k: S.to_int(v) for k, v in (raw.get("ports") or {}).items() if S.to_int(v)}
    if raw.get("recording"):
        out["recording"] = {"mode": S.to_str(S.get(raw, "recording", "mode")), "schedule": None}
    if out["identity"]["mac"] is None and nics:
        out["identity"]["mac"] = nics[0]["mac"]
    return out

"""Hikvision ISAPI driver (cameras and NVRs) over HTTP with Digest or Basic, picked from the challenge.

Everything is parsed by local name (namespaces vary by firmware) with the hardened parser of xmlsafe. The parse_*
functions are pure and tested against the samples in tests/fixtures/hikvision; the driver only adds HTTP.
Facts and their sources are in shared/reference/protocols.md §0 and §A.
"""

from __future__ import annotations

import datetime as dt
import html
import re
import uuid
from typing import Any

from canteen_ops.drivers import settings as S
from canteen_ops.drivers import xmlsafe as X
from canteen_ops.drivers.xmlsafe import Element
from canteen_ops.drivers.base import (
    AuthFailed,
    Channel,
    Clock,
    ConfigExport,
    Disk,
    Facts,
    Forbidden,
    Locked,
    NotSupported,
    ProtocolError,
    RecordingSpan,
    StreamInfo,
    UpgradeStatus,
    named_errors,
)
from canteen_ops.drivers.http import HttpDriver, Reply
from canteen_ops.drivers.httpauth import challenge_is_stale
from canteen_ops.drivers.spans import clipped

UTC = dt.timezone.utc
MIB = 1024 * 1024
EXPORT_MAX_BYTES = 32 * MIB  # real configurationData files are a few MiB
SEARCH_PAGE = 40  # the WebSDK guide: at most 40 results per search
SEARCH_MAX_PAGES = 500  # 20,000 files per channel and window: far beyond any real NVR, stops a runaway loop

# --- pure parsers ---------------------------------------------------------------------------------------


def parse_response_status(root: Element) -> tuple[int | None, str | None, str | None]:
    """ResponseStatus → (statusCode, statusString, subStatusCode)."""
    return X.integer(root, "statusCode"), X.text(root, "statusString"), X.text(root, "subStatusCode")


def describe_status(root: Element) -> str:
    code, string, sub = parse_response_status(root)
    parts = [p for p in (string, sub) if p]
    desc = X.text(root, "description")
    if desc:
        parts.append(desc)
    return f"statusCode {code}: " + " / ".join(parts) if code is not None else " / ".join(parts) or "error"


def parse_device_info(root: Element) -> Facts:
    version, released = X.text(root, "firmwareVersion"), X.text(root, "firmwareReleasedDate")
    firmware = " ".join(p for p in (version, released) if p) or None  # "V5.7.18 build 240826"
    return Facts(
        vendor="hikvision",
        model=X.text(root, "model"),
        serial=X.text(root, "serialNumber"),
        firmware=firmware,
        device_type=X.text(root, "deviceType"),
        mac=(X.text(root, "macAddress") or "").lower() or None,
        name=X.text(root, "deviceName"),
        hardware=X.text(root, "hardwareVersion"),
    )


_POSIX_TZ = re.compile(r"^\s*[A-Za-z]{3,}|^\s*<[^>]*>")
_POSIX_OFFSET = re.compile(r"([+-]?)(\d{1,2})(?::(\d{1,2}))?(?::(\d{1,2}))?")


def posix_utc_offset(tz: str | None) -> dt.timedelta | None:
    """POSIX TZ → offset east of UTC, sign inverted as POSIX writes it: 'CST-8:00:00' → +8 h, 'CST+5' → −5 h.

    A DST rule after the standard offset ('...DST01:00:00,M3.5.5/...') is ignored here (posix_dst_offset reads it):
    China has no DST. Returns None if unreadable.
    """
    if not tz:
        return None
    m = _POSIX_TZ.match(tz)
    if not m:
        return None
    rest = tz[m.end():]
    om = _POSIX_OFFSET.match(rest)
    if not om:
        return None
    sign = -1 if om.group(1) != "-" else 1  # POSIX: '-' means east of Greenwich
    hours, minutes, seconds = int(om.group(2)), int(om.group(3) or 0), int(om.group(4) or 0)
    if hours > 24 or minutes > 59 or seconds > 59:
        return None
    return sign * dt.timedelta(hours=hours, minutes=minutes, seconds=seconds)


# Hikvision's zone with a DST rule: 'CST+5:00:00DST01:00:00,M3.2.0/02:00:00,M11.1.0/02:00:00' — after the DST name
# the *shift* (not a POSIX offset), then start and end as Mmonth.week.weekday/time (week 5 = last, weekday 0 = Sun).
_DST_RULE = re.compile(r"[A-Za-z]{3,}(\d{1,2}):(\d{2})(?::\d{2})?,M(\d{1,2})\.([1-5])\.([0-6])(?:/(\d{1,2})(?::\d{2}){0,2})?"
                       r",M(\d{1,2})\.([1-5])\.([0-6])(?:/(\d{1,2})(?::\d{2}){0,2})?\s*")


def _rule_day(year: int, month: int, week: int, weekday: int, hour: int) -> dt.datetime:
    first = dt.datetime(year, month, 1, hour)
    day = first + dt.timedelta(days=(weekday - (first.weekday() + 1) % 7) % 7 + 7 * (week - 1))
    while day.month != month:  # week 5: the last such weekday of the month
        day -= dt.timedelta(days=7)
    return day


def posix_dst_offset(tz: str | None, wall: dt.datetime) -> dt.timedelta | None:
    """The UTC offset a Hikvision zone with a DST rule gives the naive wall-clock time `wall` (standard offset, or
    standard + shift inside the DST period); None if the zone has no readable DST rule."""
    std = posix_utc_offset(tz)
    if std is None or tz is None:
        return None
    head = _POSIX_TZ.match(tz)
    m = _DST_RULE.fullmatch(tz, _POSIX_OFFSET.match(tz, head.end()).end()) if head else None  # anchored: linear
    if m is None:
        return None
    g = [int(x) if x else 2 for x in m.groups()]  # a rule without /time switches at 02:00
    shift = dt.timedelta(hours=g[0], minutes=g[1])
    if not (1 <= g[2] <= 12 and 1 <= g[6] <= 12 and g[5] <= 24 and g[9] <= 24) or shift > dt.timedelta(hours=2):
        return None
    start = _rule_day(wall.year, g[2], g[3], g[4], min(g[5], 23))
    end = _rule_day(wall.year, g[6], g[7], g[8], min(g[9], 23))
    inside = start <= wall < end if start < end else not end <= wall < start  # southern zones wrap the year
    return std + shift if inside else std


def parse_iso_local(value: str) -> dt.datetime:
    """ISO 8601 as devices write it; returns aware if an offset is present, else naive."""
    v = value.strip()
    if v.endswith("Z") or v.endswith("z"):
        v = v[:-1] + "+00:00"
    try:
        return dt.datetime.fromisoformat(v)
    except ValueError:
        raise ProtocolError(f"unreadable time {value[:40]!r}") from None


def parse_time(root: Element, fallback_offset: dt.timedelta | None = None) -> tuple[dt.datetime | None,
                                                                                  dt.timedelta | None,
                                                                                  str | None, str | None]:
    """Time → (device time in UTC, device UTC offset, POSIX timeZone, timeMode).

    localTime normally carries an offset ('2024-05-01T18:00:00+08:00'); without one the POSIX timeZone gives
    it (sign inverted), and without a readable timeZone the caller's fallback (the inventory time zone).
    """
    tz = X.text(root, "timeZone")
    mode = X.text(root, "timeMode")
    raw = X.text(root, "localTime")
    posix = posix_utc_offset(tz)
    if raw is None:
        return None, posix or fallback_offset, tz, mode
    # localTime is wall-clock time by its name: a 'Z' on it is the same quirk as in record search, not UTC.
    local = _wall(raw)
    if local.tzinfo is not None:
        offset = local.utcoffset()
        summer = posix_dst_offset(tz, local.replace(tzinfo=None))
        if summer is not None and offset == posix and summer != offset:
            # The wall clock is right but the offset written beside it is the standard one although the zone's own
            # DST rule is in effect: seen on 14 NVRs, V4.61.030 (Key-Information-Solutions/DVRtool, corpus
            # hikvision/DS-7716NI-I4-16P-B). The zone's rule decides.
            offset = summer
            return (local.replace(tzinfo=None) - offset).replace(tzinfo=UTC), offset, tz, mode
        return local.astimezone(UTC), offset, tz, mode
    offset = posix if posix is not None else fallback_offset
    if offset is None:
        return None, None, tz, mode
    return (local - offset).replace(tzinfo=UTC), offset, tz, mode


def parse_ntp_servers(root: Element) -> list[str]:
    out = []
    for srv in X.findall(root, "//NTPServer"):
        kind = (X.text(srv, "addressingFormatType") or "").lower()
        host = X.text(srv, "hostName") if kind != "ipaddress" else None
        addr = host or X.text(srv, "ipAddress") or X.text(srv, "ipv6Address") or X.text(srv, "hostName")
        if addr:
            out.append(addr)
    return out


# hdd/status words → normalized Disk.status. Unknown words stay "unknown" (never a fault by guess).
HDD_STATUS = {
    "ok": "ok", "normal": "ok", "idle": "ok", "sleeping": "ok", "sleep": "ok",
    "error": "error", "abnormal": "error", "smartfailed": "error", "exception": "error", "offline": "error",
    "mismatch": "error", "locked": "error", "baddisk": "error",
    "unformatted": "unformatted", "uninitialized": "unformatted", "notformatted": "unformatted",
    "notexist": "absent", "notexists": "absent", "absent": "absent",
}


def normalize_hdd_status(raw: str | None) -> str:
    return HDD_STATUS.get((raw or "").strip().lower(), "unknown")


def parse_storage(root: Element) -> list[Disk]:
    disks = []
    for hdd in X.findall(root, "//hdd"):
        disks.append(_disk(hdd, X.text(hdd, "id") or str(len(disks) + 1), X.text(hdd, "hddName")))
    for nas in X.findall(root, "//nas"):
        name = ":".join(p for p in (X.text(nas, "ipAddress"), X.text(nas, "path")) if p) or None
        disks.append(_disk(nas, f"nas{X.text(nas, 'id') or len(disks) + 1}", name))
    return disks


def _disk(el: Element, disk_id: str, name: str | None) -> Disk:
    raw = X.text(el, "status")
    status = normalize_hdd_status(raw)
    capacity, free = X.number(el, "capacity"), X.number(el, "freeSpace")  # MB (protocols.md A.2)
    if status == "ok" and capacity and free is not None and free <= 0:
        status = "full"
    return Disk(id=disk_id, status=status, raw_status=raw, capacity_mb=capacity, free_mb=free,
                read_only=(X.text(el, "property") or "").upper() == "RO", name=name)


def parse_video_inputs(root: Element | None) -> list[Channel]:
    """System/Video/inputs/channels → the device's own video inputs: a DVR's analog channels, a multi-sensor or
    thermal camera's sensors. An analog DVR writes the signal it sees in resDesc (`2560*1440(4MP)P30`) and
    `NO VIDEO` for video loss (iDS-7204HUHI-M1, maciej-or/hikvision_next fixtures); a camera writes no resDesc,
    so its inputs' state is unknown (None) here. A disabled input is left out."""
    chans = []
    for el in X.findall(root, "//VideoInputChannel"):
        cid = X.integer(el, "id")
        if cid is None or X.boolean(el, "videoInputEnabled") is False:
            continue
        res = (X.text(el, "resDesc") or "").strip()
        online = None if not res else res.upper() != "NO VIDEO"
        chans.append(Channel(id=cid, online=online, name=X.text(el, "name"),
                             detail="video loss (NO VIDEO)" if online is False else (res or None)))
    return sorted(chans, key=lambda c: c.id)


# Hikvision thermal lines (DS-2TD thermal/bi-spectrum, DS-2TP temperature screening, DS-2TB) and the sensor
# sizes their thermal streams have: a stream of that size on such a model is a thermal sensor.
_THERMAL_MODEL = re.compile(r"^DS-2T[DPB]", re.I)
THERMAL_SIZES = {(160, 120), (256, 192), (320, 240), (384, 288), (640, 480), (640, 512), (1280, 1024)}


def is_thermal_model(model: str) -> bool:
    return bool(_THERMAL_MODEL.match(model.strip()))


def parse_channels(config: Element | None, status: Element | None) -> list[Channel]:
    """InputProxy/channels (names, IPs) merged with channels/status (online, chanDetectResult) by id."""
    chans: dict[int, Channel] = {}
    for el in X.findall(config, "//InputProxyChannel"):
        cid = X.integer(el, "id")
        if cid is None:
            continue
        chans[cid] = Channel(id=cid, online=None, name=X.text(el, "name"),
                             ip=X.text(el, "sourceInputPortDescriptor/ipAddress"))
    for el in X.findall(status, "//InputProxyChannelStatus"):
        cid = X.integer(el, "id")
        if cid is None:
            continue
        ch = chans.setdefault(cid, Channel(id=cid, online=None))
        ch.online = X.boolean(el, "online")  # missing <online> stays None: "unknown", not "offline"
        ch.detail = X.text(el, "chanDetectResult")
        ch.ip = ch.ip or X.text(el, "sourceInputPortDescriptor/ipAddress")
    return [chans[k] for k in sorted(chans)]


def build_search(search_id: str, track: int, start_local: dt.datetime, end_local: dt.datetime,
                 position: int, max_results: int = SEARCH_PAGE) -> bytes:
    """CMSearchDescription. Times are device wall-clock with a 'Z' (the quirk, see protocols.md 0.2).

    Uses the misspelled `searchResultPostion` the device expects (the correct spelling is ignored on many
    firmwares, and pages 2+ then repeat page 1).
    """
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        "<CMSearchDescription>"
        f"<searchID>{html.escape(search_id, quote=False)}</searchID>"
        f"<trackIDList><trackID>{int(track)}</trackID></trackIDList>"
        "<timeSpanList><timeSpan>"
        f"<startTime>{start_local.strftime(fmt)}</startTime><endTime>{end_local.strftime(fmt)}</endTime>"
        "</timeSpan></timeSpanList>"
        f"<maxResults>{int(max_results)}</maxResults>"
        f"<searchResultPostion>{int(position)}</searchResultPostion>"
        "<metadataList><metadataDescriptor>//recordType.meta.std-cgi.com</metadataDescriptor></metadataList>"
        "</CMSearchDescription>"
    ).encode()


def parse_search_result(root: Element) -> tuple[str, int | None, list[tuple[int | None, dt.datetime, dt.datetime]]]:
    """CMSearchResult → (responseStatusStrg upper-cased, numOfMatches, [(trackID, start, end)]).

    Times are returned as parsed: naive for the usual 'Z'-suffixed wall-clock times (the caller converts them
    with the device offset), aware if a firmware writes a real offset.
    """
    strg = (X.text(root, "responseStatusStrg") or "").strip().upper()
    num = X.integer(root, "numOfMatches")
    items = []
    for item in X.iter_local(root, "searchMatchItem"):
        # One pass over the item's children and one over its timeSpan's, keeping the first of each name (as
        # X.find picks): an NVR check reads hundreds of items, and a path lookup per field walked them anew.
        fields: dict[str, Element] = {}
        for child in item:
            fields.setdefault(X.local(child.tag), child)
        span = fields.get("timeSpan")
        times: dict[str, Element] = {}
        for child in span if span is not None else ():
            times.setdefault(X.local(child.tag), child)
        s, e = X.text(times.get("startTime")), X.text(times.get("endTime"))
        if not s or not e:
            continue
        items.append((X.integer(fields.get("trackID")), _wall(s), _wall(e)))
    return strg, num, items


def _wall(value: str) -> dt.datetime:
    v = value.strip()
    if v[-1:] in "Zz":
        return parse_iso_local(v[:-1]).replace(tzinfo=None)
    return parse_iso_local(v)


def to_utc(t: dt.datetime, offset: dt.timedelta) -> dt.datetime:
    if t.tzinfo is not None:
        return t.astimezone(UTC)
    return (t - offset).replace(tzinfo=UTC)


def parse_admin_accesses(root: Element) -> dict[str, int]:
    """AdminAccessProtocolList → {'RTSP': 554, 'HTTP': 80, ...} (enabled ones)."""
    ports = {}
    for el in X.findall(root, "//AdminAccessProtocol"):
        proto, port = (X.text(el, "protocol") or "").upper(), X.integer(el, "portNo")
        if proto and port and X.boolean(el, "enabled", True):
            ports.setdefault(proto, port)
    return ports


def parse_streaming_channels(root: Element) -> list[dict[str, Any]]:
    """StreamingChannelList → plain dicts (id, channel, main, name, codec, width, height, fps, bitrate)."""
    out = []
    for el in X.findall(root, "//StreamingChannel"):
        sid = X.integer(el, "id")
        if sid is None:
            continue
        video = X.find(el, "Video")
        fps = X.number(video, "maxFrameRate")
        if fps == 0:
            fps = None  # "full frame rate" (the source's own): recorders say so for sub streams (corpus DS-7732NI-M4)
        elif fps is not None and fps >= 100:
            fps = fps / 100  # ISAPI writes 25 fps as 2500
        control = (X.text(video, "videoQualityControlType") or "").upper()
        cbr, vbr = X.number(video, "constantBitRate"), X.number(video, "vbrUpperCap")
        bitrate = cbr if control == "CBR" else vbr if control == "VBR" else (cbr or vbr)
        out.append({
            "id": sid, "channel": sid // 100 if sid >= 100 else sid, "main": sid % 100 == 1 if sid >= 100 else True,
            "name": X.text(el, "channelName"), "enabled": X.boolean(el, "enabled", True),
            "codec": X.text(video, "videoCodecType"),
            "width": X.integer(video, "videoResolutionWidth"), "height": X.integer(video, "videoResolutionHeight"),
            "fps": fps, "bitrate_kbps": bitrate,
        })
    return out


def parse_lock_info(root: Element) -> tuple[bool, int | None, int | None]:
    """userCheck or ResponseStatus of a 401 → (locked, unlock_in_s, attempts_left)."""
    lock = (X.text(root, "lockStatus") or "").lower()
    unlock = X.integer(root, "unlockTime")
    if unlock is None:
        unlock = X.integer(root, "resLockTime")
    left = X.integer(root, "retryLoginTime")
    if left is None:
        left = X.integer(root, "retryTimes")
    return lock == "lock", unlock, left


def parse_upgrade_status(root: Element) -> UpgradeStatus:
    upgrading = bool(X.boolean(root, "upgrading", False))
    percent = X.integer(root, "percent")
    return UpgradeStatus(upgrading=upgrading, percent=percent, state="upgrading" if upgrading else "idle")


# --- the driver -------------------------------------------------------------------------------------------


class HikvisionDriver(HttpDriver):
    vendor = "hikvision"

    @staticmethod
    def normalize_settings(raw: dict[str, Any]) -> dict[str, Any]:
        return normalize_settings(raw)  # the module's function below: settings() → the neutral snapshot

    def __init__(self, device, password: str, *, timeout: float | None = None, timezone: str | None = None,
                 tls_pin: str | None = None):
        super().__init__(device, password, timeout=timeout, timezone=timezone, is_stale=_is_stale,
                         reuse_challenge=True, tls_pin=tls_pin)
        self._info: Element | None = None
        self._offset: dt.timedelta | None = None
        self._ports: dict[str, int] | None = None

    # --- HTTP helpers -------------------------------------------------------------------------------------
    @staticmethod
    def base_model(model: str) -> str:
        """Hikvision models carry variant suffixes after a slash (PoE ports, audio, region: `DS-7608NXI-I2/8P/S`,
        `DS-2CD2346G2-ISU/SL`, `iDS-7204HUHI-M1/E`) and board revisions in brackets (`iDS-7208HQHI-M1(A)/S(C)`);
        the base model is what comes before them (real deviceInfo answers: tests/fixtures/devices/hikvision)."""
        return re.sub(r"\([^()/]*\)$", "", model.strip().split("/", 1)[0]).strip().upper()

    def _auth_failure(self, reply: Reply, authenticated: bool) -> AuthFailed | None:
        root = _try_parse(reply.body)
        locked, unlock, left = parse_lock_info(root) if root is not None else (False, None, None)
        dev = self.device.id
        if locked:
            mins = f" for about {unlock // 60} min" if unlock else ""
            return Locked(f"{dev}: device has locked this address after failed logins{mins} "
                          f"(illegal-login lock); wait, or unlock it from the device", unlock_in_s=unlock)
        if not authenticated:
            return None
        hint = f"; {left} attempt(s) left before the device locks this address" if left is not None else ""
        return AuthFailed(f"{dev}: wrong user name or password (401){hint}; not retried")

    def _call(self, method: str, path: str, *, body: bytes | None = None, content_type: str = "application/xml",
              max_bytes: int = X.DEFAULT_MAX_BYTES, forbidden: type[NotSupported] = NotSupported) -> Reply:
        """One request; 404/405/501/notSupport raise NotSupported, 403 raises `forbidden` (ISAPI answers 403 both
        for resources a model lacks and for too little privilege: callers that know which pass Forbidden)."""
        headers = {"Content-Type": content_type} if body is not None else None
        reply = self._http.request(method, path, content=body, headers=headers, max_bytes=max_bytes)
        if 200 <= reply.status < 300:
            return reply
        detail = ""
        root = _try_parse(reply.body)
        if root is not None and X.local(root.tag) == "ResponseStatus":
            detail = f": {describe_status(root)}"
        if reply.status in (404, 405, 501) or (root is not None and (X.text(root, "subStatusCode") or "")
                                               in ("notSupport", "methodNotAllowed")):
            raise NotSupported(f"{self.device.id}: {path} is not offered by this device (HTTP {reply.status}){detail}")
        if reply.status == 403:
            raise forbidden(f"{self.device.id}: {path} refused (HTTP 403: no such resource or too little "
                               f"privilege){detail}")
        raise ProtocolError(f"{self.device.id}: {method} {path} answered HTTP {reply.status}{detail}")

    def _get_xml(self, path: str) -> Element:
        reply = self._call("GET", path)
        return self._xml(reply, path)

    def _xml(self, reply: Reply, path: str) -> Element:
        root = X.parse(reply.body, what=f"{self.device.id}: {path}")
        if X.local(root.tag) == "ResponseStatus":
            code = X.integer(root, "statusCode")
            if code not in (None, 1):
                raise ProtocolError(f"{self.device.id}: {path}: {describe_status(root)}")
        return root

    def _optional(self, path: str) -> Element | None:
        try:
            return self._get_xml(path)
        except NotSupported:
            return None

    # --- getters -----------------------------------------------------------------------------------------
    @named_errors
    def login(self) -> None:
        self._info = self._get_xml("/ISAPI/System/deviceInfo")

    def facts(self) -> Facts:
        if self._info is None:
            self.login()
        assert self._info is not None
        return parse_device_info(self._info)

    def _fallback_offset(self) -> dt.timedelta | None:
        from zoneinfo import ZoneInfo

        try:
            return dt.datetime.now(ZoneInfo(self.timezone)).utcoffset()
        except Exception:  # an unknown zone name in the inventory: no fallback
            return None

    @named_errors
    def clock(self) -> Clock:
        reply = self._call("GET", "/ISAPI/System/time")
        root = self._xml(reply, "/ISAPI/System/time")
        device_utc, offset, tz, mode = parse_time(root, self._fallback_offset())
        if offset is not None:
            self._offset = offset
        offered = True
        try:
            servers = parse_ntp_servers(self._get_xml("/ISAPI/System/time/ntpServers"))
        except NotSupported:
            servers, offered = [], False
        norm_mode = {"ntp": "NTP", "manual": "manual"}.get((mode or "").lower(), mode)
        return Clock(device_utc=device_utc, host_utc=reply.mid_utc, timezone=tz, mode=norm_mode,
                     ntp_servers=servers, ntp_enabled=None if mode is None else (mode or "").lower() == "ntp",
                     ntp_servers_offered=offered)

    @named_errors
    def utc_offset(self) -> dt.timedelta:
        """The device's UTC offset (for its local-time-with-Z timestamps), read once per driver."""
        if self._offset is None:
            root = self._get_xml("/ISAPI/System/time")
            _, offset, tz, _ = parse_time(root, self._fallback_offset())
            if offset is None:
                raise ProtocolError(f"{self.device.id}: cannot tell the device's UTC offset (timeZone {tz!r})")
            self._offset = offset
        return self._offset

    @named_errors
    def storage(self) -> list[Disk]:
        return parse_storage(self._get_xml("/ISAPI/ContentMgmt/Storage"))

    def _is_dvr(self) -> bool:
        return self._info is not None and (X.text(self._info, "deviceType") or "").upper() in ("DVR", "HVR")

    def _is_nvr(self) -> bool:
        if self.device.kind == "nvr":
            return True
        if self._info is not None:
            return (X.text(self._info, "deviceType") or "").upper() in ("NVR", "DVR", "HVR", "CVR")
        return False

    @named_errors
    def channels(self) -> list[Channel]:
        if not self._is_nvr():
            # A camera's channels are its video inputs (a multi-sensor or thermal bi-spectrum camera has several,
            # DS-2TD1228-2-QA two); if it answers, its inputs are there.
            inputs = parse_video_inputs(self._optional("/ISAPI/System/Video/inputs/channels"))
            if not inputs:
                name = X.text(self._info, "deviceName") if self._info is not None else None
                return [Channel(id=1, online=True, name=name, ip=self.device.host)]
            return [Channel(id=c.id, online=True, name=c.name, ip=self.device.host) for c in inputs]
        config = self._optional("/ISAPI/ContentMgmt/InputProxy/channels")
        status = self._optional("/ISAPI/ContentMgmt/InputProxy/channels/status")
        ip = parse_channels(config, status) if config is not None or status is not None else []
        analog: list[Channel] = []
        if self._is_dvr() or not ip:
            # Analog/hybrid DVRs (iDS-72xx, DS-72xx HQHI/HUHI): InputProxy is empty, the channels are the video
            # inputs. A hybrid's IP channels keep their own numbers after the analog ones.
            analog = parse_video_inputs(self._optional("/ISAPI/System/Video/inputs/channels"))
        if not ip and not analog:
            if config is None and status is None:
                raise NotSupported(f"{self.device.id}: the recorder lists neither IP channels nor video inputs")
            return []
        taken = {c.id for c in analog}
        return analog + [c for c in ip if c.id not in taken]

    @named_errors
    def video_inputs(self) -> list[Channel]:
        """The camera's sensors (System/Video/inputs/channels). On a thermal model the inputs whose main stream
        has a thermal sensor's size are kind "thermal" (DS-2TD1228-2-QA: input 2 at 640x512)."""
        inputs = parse_video_inputs(self._optional("/ISAPI/System/Video/inputs/channels"))
        if not inputs:
            return [Channel(id=1, online=None)]
        if self._info is None:
            self.login()
        if is_thermal_model(X.text(self._info, "model") or ""):
            sizes = {s["channel"]: (s["width"], s["height"])
                     for s in parse_streaming_channels(self._get_xml("/ISAPI/Streaming/channels")) if s["main"]}
            for ch in inputs:
                if sizes.get(ch.id) in THERMAL_SIZES:
                    ch.kind = "thermal"
        return inputs

    @named_errors
    def recordings(self, channel: int, start: dt.datetime, end: dt.datetime) -> list[RecordingSpan]:
        return self._search(channel, start, end)

    @named_errors
    def recorded_any(self, channel: int, start: dt.datetime, end: dt.datetime) -> bool:
        # One search asking for one file: a day of a healthy channel is ~24 files to parse otherwise. A firmware
        # that ignores the track filter may answer another channel's file: False then, and the retention check
        # searches the channel in full, which is right anyway.
        return bool(self._search(channel, start, end, first_only=True))

    def _search(self, channel: int, start: dt.datetime, end: dt.datetime,
                first_only: bool = False) -> list[RecordingSpan]:
        if start.tzinfo is None or end.tzinfo is None:
            raise ValueError("recordings() takes timezone-aware UTC datetimes")
        offset = self.utc_offset()
        track = channel * 100 + 1
        start_local = (start.astimezone(UTC) + offset).replace(tzinfo=None)
        end_local = (end.astimezone(UTC) + offset).replace(tzinfo=None)
        if end_local.microsecond:  # the device works in whole seconds: widen the window, clip afterwards
            end_local = end_local.replace(microsecond=0) + dt.timedelta(seconds=1)
        search_id = str(uuid.uuid4()).upper()
        spans: list[tuple[dt.datetime, dt.datetime]] = []
        position, previous_first = 0, None
        for _page in range(SEARCH_MAX_PAGES):
            body = build_search(search_id, track, start_local, end_local, position,
                                1 if first_only else SEARCH_PAGE)
            reply = self._call("POST", "/ISAPI/ContentMgmt/search", body=body)
            strg, num, items = parse_search_result(self._xml(reply, "/ISAPI/ContentMgmt/search"))
            for tid, s, e in items:
                if tid is None or tid == track:  # some NVRs ignore the track filter
                    spans.append((to_utc(s, offset), to_utc(e, offset)))
            if strg != "MORE" or first_only:
                break  # OK, NO MATCHES (or an unknown word: take what came)
            first = items[0] if items else None
            if not items or first == previous_first:
                raise ProtocolError(
                    f"{self.device.id}: recording search makes no progress at position {position} "
                    f"(MORE with {'no items' if not items else 'the same page again'}); the firmware ignores "
                    "searchResultPostion")
            previous_first = first
            position += num if num else len(items)
        else:
            raise ProtocolError(f"{self.device.id}: recording search still says MORE after "
                                f"{SEARCH_MAX_PAGES} pages")
        return clipped(channel, spans, start, end)

    def _ports_map(self) -> dict[str, int]:
        if self._ports is None:
            root = self._optional("/ISAPI/Security/adminAccesses")
            self._ports = parse_admin_accesses(root) if root is not None else {}
        return self._ports

    def _rtsp_base(self) -> str:
        port = self._ports_map().get("RTSP") or self.device.rtsp_port
        host = f"[{self.device.host}]" if ":" in self.device.host else self.device.host
        return f"rtsp://{host}:{port}"

    @named_errors
    def streams(self) -> list[StreamInfo]:
        chans = parse_streaming_channels(self._get_xml("/ISAPI/Streaming/channels"))
        base = self._rtsp_base()
        return [StreamInfo(channel=c["channel"], name=c["name"], uri=f"{base}/Streaming/Channels/{c['id']}",
                           codec=c["codec"], width=c["width"], height=c["height"], fps=c["fps"],
                           bitrate_kbps=c["bitrate_kbps"], main=c["main"])
                for c in chans if c["enabled"] is not False]

    def stream_uri(self, channel: int = 1, main: bool = True) -> str:
        return f"{self._rtsp_base()}/Streaming/Channels/{channel * 100 + (1 if main else 2)}"

    @named_errors
    def export_config(self) -> ConfigExport:
        path = "/ISAPI/System/configurationData"
        # Every firmware offers the export: a 403 here is our user's privilege, not a missing feature.
        reply = self._call("GET", path, max_bytes=EXPORT_MAX_BYTES, forbidden=Forbidden)
        body = reply.body
        if not body:
            raise ProtocolError(f"{self.device.id}: configuration export is empty")
        if X.looks_like_xml(body[:64]):
            # Errors arrive as a ResponseStatus with HTTP 200; a real export is a binary file.
            root = X.parse(body, what=f"{self.device.id}: {path}")
            if X.local(root.tag) == "ResponseStatus":
                raise ProtocolError(f"{self.device.id}: configuration export refused: {describe_status(root)}")
        return ConfigExport(content=body, content_type=reply.content_type or "application/octet-stream",
                            method="isapi-configurationData", extension=".bin")

    @named_errors
    def import_config(self, export: ConfigExport) -> None:
        if export.method != "isapi-configurationData":
            raise ProtocolError(f"{self.device.id}: cannot import a {export.method} backup into a Hikvision device")
        path = "/ISAPI/System/configurationData"
        reply = self._call("PUT", path, body=export.content, content_type="application/octet-stream")
        if reply.body.strip():
            root = X.parse(reply.body, what=f"{self.device.id}: {path}")
            code = X.integer(root, "statusCode")
            if code not in (None, 1, 7):  # 7 = reboot required: accepted, applies after the reboot
                raise ProtocolError(f"{self.device.id}: configuration import refused: {describe_status(root)}")

    @named_errors
    def settings(self) -> dict[str, Any]:
        """Identity, time, NTP, streams, users, ports, network, storage layout, recording schedule per track and
        (NVR) channel sources.

        Each part comes from its own GET; a part the device does not offer (404/403) is left out. Element names
        that look like secrets are dropped by xmlsafe.to_dict.
        """
        parts = {
            "deviceInfo": "/ISAPI/System/deviceInfo",
            "time": "/ISAPI/System/time",
            "ntpServers": "/ISAPI/System/time/ntpServers",
            "streamingChannels": "/ISAPI/Streaming/channels",
            "users": "/ISAPI/Security/users",
            "adminAccesses": "/ISAPI/Security/adminAccesses",
            "network": "/ISAPI/System/Network/interfaces",
            "storage": "/ISAPI/ContentMgmt/Storage",
            "recordTracks": "/ISAPI/ContentMgmt/record/tracks",  # recording mode/schedule per track
        }
        if self._is_nvr():
            parts["inputProxyChannels"] = "/ISAPI/ContentMgmt/InputProxy/channels"
        out: dict[str, Any] = {"vendor": "hikvision"}
        for key, path in parts.items():
            root = self._optional(path)
            if root is not None:
                out[key] = X.to_dict(root)
        if "deviceInfo" not in out:
            raise NotSupported(f"{self.device.id}: deviceInfo unavailable")
        return out

    @named_errors
    def upgrade_status(self) -> UpgradeStatus:
        return parse_upgrade_status(self._get_xml("/ISAPI/System/upgradeStatus"))


def _try_parse(body: bytes) -> Element | None:
    if not body or not X.looks_like_xml(body):
        return None
    try:
        return X.parse(body, max_bytes=64 * 1024, what="401 body")
    except ProtocolError:
        return None


def _is_stale(reply: Reply) -> bool:
    """A 401 to a challenge that worked before: stale nonce unless the body is a login failure (userCheck)."""
    if challenge_is_stale(reply.challenges):
        return True
    root = _try_parse(reply.body)
    if root is None:
        return True
    if X.local(root.tag) == "userCheck":
        return False
    locked, _, left = parse_lock_info(root)
    return not locked and left is None


# --- settings snapshot (tasks/snapshot.py) ------------------------------------------------------------------------------------------
def normalize_settings(raw: dict[str, Any]) -> dict[str, Any]:
    out = S.empty()
    di = raw.get("deviceInfo") or {}
    fw = " ".join(x for x in (S.to_str(di.get("firmwareVersion")), S.to_str(di.get("firmwareReleasedDate"))) if x)
    out["identity"] = {"vendor": "hikvision", "model": S.to_str(di.get("model")), "serial": S.to_str(di.get("serialNumber")),
                       "firmware": fw or None, "name": S.to_str(di.get("deviceName")),
                       "mac": (S.to_str(di.get("macAddress")) or "").lower() or None,
                       "device_type": S.to_str(di.get("deviceType"))}
    t = raw.get("time") or {}
    mode = S.to_str(t.get("timeMode"))
    servers = []
    for s in S.seq(S.get(raw, "ntpServers", "NTPServer")):
        addr = S.to_str(s.get("hostName")) if S.to_str(s.get("addressingFormatType")) == "hostname" else None
        addr = addr or S.to_str(s.get("ipAddress")) or S.to_str(s.get("hostName")) or S.to_str(s.get("ipv6Address"))
        if addr:
            servers.append(addr)
    out["time"] = {"timezone": S.to_str(t.get("timeZone")), "mode": "NTP" if (mode or "").upper() == "NTP" else mode,
                   "ntp_enabled": (mode or "").upper() == "NTP" if mode else None, "ntp_servers": servers}
    streams = []
    for sc in S.seq(S.get(raw, "streamingChannels", "StreamingChannel")):
        sid = S.to_int(sc.get("id"))
        if sid is None or S.to_bool(sc.get("enabled")) is False:
            continue
        v = sc.get("Video") or {}
        rate = S.num(v.get("maxFrameRate"))
        bitrate = v.get("constantBitRate") if S.to_str(v.get("videoQualityControlType")) == "CBR" else \
            v.get("vbrUpperCap") or v.get("constantBitRate")
        streams.append({"channel": sid // 100, "main": sid % 100 == 1, "codec": S.codec(v.get("videoCodecType")),
                        "width": S.to_int(v.get("videoResolutionWidth")), "height": S.to_int(v.get("videoResolutionHeight")),
                        "fps": S.num(rate / 100) if rate and rate >= 100 else rate, "bitrate_kbps": S.num(bitrate)})
    out["streams"] = streams
    tracks = S.seq(S.get(raw, "recordTracks", "Track"))
    if tracks:  # /ISAPI/ContentMgmt/record/tracks when a driver provides it
        out["recording"] = _hik_recording(tracks)
    chans = []
    for c in S.seq(S.get(raw, "inputProxyChannels", "InputProxyChannel")):
        src = c.get("sourceInputPortDescriptor") or {}
        ip, port = S.to_str(src.get("ipAddress")), S.to_str(src.get("managePortNo"))
        chans.append({"id": S.to_int(c.get("id")), "name": S.to_str(c.get("name")),
                      "source": f"{ip}:{port}" if ip and port else ip, "protocol": S.to_str(src.get("proxyProtocol"))})
    out["channels"] = chans
    out["users"] = [{"name": S.to_str(u.get("userName")), "level": S.to_str(u.get("userLevel"))}
                    for u in S.seq(S.get(raw, "users", "User")) if S.to_str(u.get("userName"))]
    ports = {}
    for p in S.seq(S.get(raw, "adminAccesses", "AdminAccessProtocol")):
        proto = (S.to_str(p.get("protocol")) or "").lower()
        if proto and S.to_bool(p.get("enabled")) is not False:
            ports[proto] = S.to_int(p.get("portNo"))
    out["ports"] = ports
    nics = []
    for n in S.seq(S.get(raw, "network", "NetworkInterface")):
        ipa = n.get("IPAddress") or {}
        addr, mask = S.to_str(ipa.get("ipAddress")), S.to_str(ipa.get("subnetMask"))
        nics.append({"name": S.to_str(n.get("id")), "mac": (S.to_str(S.get(n, "Link", "MACAddress")) or "").lower() or None,
                     "ipv4": [f"{addr}/{S.prefix_len(mask)}" if mask else addr] if addr else [],
                     "dhcp": (S.to_str(ipa.get("addressingType")) or "").lower() == "dynamic" if ipa else None})
    out["network"] = {"interfaces": nics, "hostname": None}
    return out


def _hik_recording(tracks: list[dict[str, Any]]) -> dict[str, Any]:
    modes = set()
    schedule = {}
    for t in tracks:
        actions = S.seq(S.get(t, "TrackSchedule", "ScheduleBlockList", "ScheduleBlock", "ScheduleAction"))
        kinds = {(S.to_str(S.get(a, "Actions", "ActionRecordingMode")) or "").upper() for a in actions}
        mode = "continuous" if kinds == {"CMR"} else "motion" if kinds and kinds <= {"MOTION", "ALARM"} else \
            "schedule" if kinds else "off"
        modes.add(mode)
        schedule[str(S.to_int(t.get("Channel")) or S.to_int(t.get("id")))] = sorted(k.lower() for k in kinds if k)
    return {"mode": modes.pop() if len(modes) == 1 else "mixed", "schedule": schedule}

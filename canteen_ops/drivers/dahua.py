"""Dahua CGI driver (cameras and NVRs) over HTTP with Digest or Basic, picked from the challenge.

Bodies are key=value lines (kv.py). The parse_* functions are pure and tested against tests/fixtures/dahua.
Facts and their sources are in shared/reference/protocols.md §0 and §B.

Time zone assumption (also in docs/drivers.md): `global.cgi?action=getCurrentTime` answers the device's local
wall-clock time without a zone. The NTP table's `TimeZone` is an index whose mapping to an offset is not
documented anywhere we could verify, so it is not used. If the NTP table carries a description with an explicit
offset (`TimeZoneDesc=GMT+08:00`, `UTC+8`), that offset is used; otherwise the device is assumed to be in the
inventory's `settings.timezone` (default Asia/Shanghai, DST rules included). A canteen fleet is configured by
one integrator in one zone, so this is right in practice; a device set to another zone shows up as a clock
drift of whole hours, which is worth a technician's look anyway.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any
from urllib.parse import quote

from canteen_ops.drivers import kv
from canteen_ops.drivers import settings as S
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
    Offline,
    ProtocolError,
    RecordingSpan,
    StreamInfo,
    Timeout,
    UpgradeStatus,
    auth_guard,
    named_errors,
)
from canteen_ops.drivers.http import HttpDriver, Reply
from canteen_ops.drivers.httpauth import challenge_is_stale
from canteen_ops.drivers.numbers import device_float, device_int
from canteen_ops.drivers.spans import clipped

UTC = dt.timezone.utc
MIB = 1024 * 1024
EXPORT_MAX_BYTES = 32 * MIB
FIND_PAGE = 100
FIND_MAX_PAGES = 500
DAHUA_TIME = "%Y-%m-%d %H:%M:%S"

# --- pure parsers ---------------------------------------------------------------------------------------


def query(action: str, *pairs: tuple[str, Any]) -> str:
    """Query string the way Dahua clients send it: keys literal (brackets and dots unescaped), values quoted."""
    parts = [f"action={quote(action, safe='.')}"]
    parts += [f"{k}={quote(str(v), safe=':,/-.')}" for k, v in pairs]
    return "&".join(parts)


def model_of(system_info: dict[str, str], device_type: dict[str, str] | None = None) -> str | None:
    """The model from getSystemInfo, or from getDeviceType when getSystemInfo does not name it.

    NVRs and XVRs answer `deviceType=31` (a class number, not a model) and put the model in `updateSerial=`
    (rroller/dahua#9: `updateSerial=NVR2X-4KS3`; Lorex: rroller/dahua#79) or leave deviceType out
    (rroller/dahua#59: XVR5108C-X, whose getDeviceType says `type=DH-XVR5108C-X`)."""
    named = (device_type or {}).get("type", "").strip()
    candidates = (system_info.get("deviceType", ""), named, system_info.get("updateSerial", ""))
    for value in candidates:
        if _names_a_model(value):
            return value.strip()
    return next((v.strip() for v in candidates if v.strip()), None)


def _names_a_model(value: str) -> bool:
    """Not empty, not a class number (`31`), not the generic `IP Camera`."""
    value = value.strip()
    return bool(value) and not value.isdigit() and value.lower() != "ip camera"


def needs_device_type(system_info: dict[str, str]) -> bool:
    """Whether getSystemInfo leaves the model unnamed (so facts() asks getDeviceType)."""
    return not _names_a_model(system_info.get("deviceType", ""))


def firmware_of(software: dict[str, str]) -> str | None:
    """getSoftwareVersion → one version string. Newer firmware writes `version=2.420.AC00.17.R,build:2017-03-22`
    on one line; older answers `version=2.420.AC00.15.R` and `BuildDate=2016-09-08` on a second line
    (python-amcrest#71, #168): the build date is joined on the way the newer firmware writes it."""
    version = (software.get("version") or "").strip()
    build = (software.get("BuildDate") or "").strip()
    if version and build and "build" not in version.lower():
        return f"{version},build:{build}"
    return version or None


def parse_facts(system_info: dict[str, str], software: dict[str, str], name: dict[str, str] | None = None,
                network: dict[str, Any] | None = None, kind: str | None = None,
                device_type: dict[str, str] | None = None) -> Facts:
    mac = None
    if network:
        net = network.get("table", {}).get("Network", {})
        default = net.get("DefaultInterface") if isinstance(net, dict) else None
        ifaces = [default] if isinstance(default, str) else []
        ifaces += [k for k in net if isinstance(net.get(k), dict)] if isinstance(net, dict) else []
        for iface in ifaces:
            entry = net.get(iface)
            if isinstance(entry, dict) and entry.get("PhysicalAddress"):
                mac = entry["PhysicalAddress"].lower()
                break
    return Facts(
        vendor="dahua",
        model=model_of(system_info, device_type),
        serial=system_info.get("serialNumber"),
        firmware=firmware_of(software),
        device_type={"nvr": "NVR", "camera": "IPC"}.get(kind or "", kind),
        mac=mac,
        name=(name or {}).get("name"),
        hardware=system_info.get("hardwareVersion"),
    )


_DAHUA_TIME = re.compile(r"(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})")


def parse_dahua_time(value: str) -> dt.datetime:
    """'2020-01-06 06:05:00' (DAHUA_TIME) → naive datetime. A regex instead of strptime: an NVR search reads
    thousands of these, and strptime costs five times as much."""
    m = _DAHUA_TIME.fullmatch(value.strip())
    try:
        if m:
            return dt.datetime(*map(int, m.groups()))
    except ValueError:
        pass
    raise ProtocolError(f"unreadable Dahua time {value[:40]!r}")


_EXPLICIT_OFFSET = re.compile(r"(?:GMT|UTC)\s*([+-])\s*(\d{1,2})(?::?(\d{2}))?", re.I)


def explicit_offset(ntp: dict[str, str]) -> dt.timedelta | None:
    """An offset written out in the NTP table ('GMT+08:00', 'UTC+8'), if the firmware gives one."""
    for key in ("table.NTP.TimeZoneDesc", "table.NTP.TimeZoneName", "table.NTP.TimeZone"):
        m = _EXPLICIT_OFFSET.search(ntp.get(key, ""))
        if m:
            sign = 1 if m.group(1) == "+" else -1
            hours, minutes = int(m.group(2)), int(m.group(3) or 0)
            if hours <= 14 and minutes < 60:
                return sign * dt.timedelta(hours=hours, minutes=minutes)
    return None


def local_to_utc(local: dt.datetime, offset: dt.timedelta | None, zone: str) -> dt.datetime:
    """Naive device wall-clock → UTC, with an explicit offset or else the assumed zone (DST-aware)."""
    if offset is not None:
        return (local - offset).replace(tzinfo=UTC)
    from zoneinfo import ZoneInfo

    return local.replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)


def utc_to_local(t: dt.datetime, offset: dt.timedelta | None, zone: str) -> dt.datetime:
    if offset is not None:
        return (t.astimezone(UTC) + offset).replace(tzinfo=None)
    from zoneinfo import ZoneInfo

    return t.astimezone(ZoneInfo(zone)).replace(tzinfo=None)


def parse_bool(value: Any) -> bool | None:
    if not isinstance(value, str):
        return None
    low = value.strip().lower()
    return True if low in ("true", "1", "yes") else False if low in ("false", "0", "no") else None


# Dahua's login-error codes (the RPC2 login's error.code; CGI firmware puts the same code in `ErrorCode` of a JSON
# 403 body). 268632081 = "HasBeenLocked" in every client library that names them.
LOGIN_LOCKED_CODE = 268632081
DEFAULT_LOCK_S = 1800  # LoginFailLockTime default: 30 min


def parse_lock(status: int, body: bytes) -> Locked | None:
    """A 401/403 body that says the device locked us out, as Locked (with the seconds left when it says so).

    Firmware with the newer web stack answers credentials it no longer accepts with HTTP 403 and
    `{"ErrorCode":268632081,"Result":false,"RmLock":1800,"RmLogin":0}`: RmLock is the lock's remaining seconds,
    RmLogin the logins left. Older firmware answers 401 `Error\r\nAuthorization Failed!` (see _auth_failure)."""
    if status not in (401, 403) or not body.lstrip().startswith(b"{") or len(body) > 4096:
        return None
    lock = _lock_in_json(body)
    if lock is None:
        return None
    left = lock[0]
    return Locked("device has locked logins from this address after failed logins"
                  + (f"; unlocks in {left // 60} min {left % 60} s" if left is not None else
                     "; Dahua locks for LoginFailLockTime, typically 30 min")
                  + "; no credentials are sent to it again in this run", unlock_in_s=left or DEFAULT_LOCK_S)


def _lock_in_json(body: bytes) -> tuple[int | None] | None:
    """(RmLock seconds or None,) when a (small) JSON body says the login is locked; None otherwise."""
    try:
        obj = json.loads(body.decode("utf-8", errors="replace"))
    except (ValueError, RecursionError):
        return None
    if not isinstance(obj, dict):
        return None
    code, rm_lock = obj.get("ErrorCode"), obj.get("RmLock")
    left = rm_lock if isinstance(rm_lock, int) and not isinstance(rm_lock, bool) and 0 < rm_lock <= 86400 else None
    if code != LOGIN_LOCKED_CODE and left is None:
        return None
    return (left,)


# Storage State words → normalized Disk.status. Only Success/Failure are seen on real devices; the others come
# from third-party mocks. Unknown words stay "unknown".
STORAGE_STATE = {
    "success": "ok", "normal": "ok", "running": "ok", "active": "ok",
    "failure": "error", "error": "error", "degraded": "error",
    "unformatted": "unformatted", "notformatted": "unformatted", "noformat": "unformatted",
    "unformat": "unformatted", "needformat": "unformatted",
    "nodisk": "absent", "notexist": "absent", "absent": "absent",
}


def parse_storage(tree: dict[str, Any]) -> list[Disk]:
    infos = tree.get("list", {}).get("info", []) if isinstance(tree.get("list"), dict) else []
    disks = []
    for i, info in enumerate(infos):
        if not isinstance(info, dict):
            continue
        raw = info.get("State")
        status = STORAGE_STATE.get((raw or "").strip().lower(), "unknown")
        details = [d for d in info.get("Detail", []) if isinstance(d, dict)] if isinstance(info.get("Detail"),
                                                                                          list) else []
        total = used = 0.0
        have_total = have_used = False
        read_only = False
        for d in details:
            if parse_bool(d.get("IsError")):
                status = "error"
            t, u = _float(d.get("TotalBytes")), _float(d.get("UsedBytes"))
            if t is not None:
                total, have_total = total + t, True
            if u is not None:
                used, have_used = used + u, True
            typ = (d.get("Type") or "").replace("-", "").lower()
            if typ == "readonly":
                read_only = True
        capacity = total / MIB if have_total else None
        free = (total - used) / MIB if have_total and have_used else None
        if status == "ok" and capacity and free is not None and free <= 0:
            status = "full"
        disks.append(Disk(id=str(i + 1), status=status, raw_status=raw, capacity_mb=capacity, free_mb=free,
                          read_only=read_only, name=info.get("Name")))
    return disks


def _float(value: Any) -> float | None:
    return device_float(value, "number") if isinstance(value, str) else None


def parse_video_loss(tree: dict[str, Any]) -> set[int]:
    """getEventIndexes&code=VideoLoss → 0-based channel indexes with video loss."""
    out = set()
    for v in tree.get("channels", []) if isinstance(tree.get("channels"), list) else []:
        if isinstance(v, str) and v.strip().isascii() and v.strip().isdigit() and len(v.strip()) < 6:
            out.add(int(v))
    return out


def parse_channel_titles(tree: dict[str, Any]) -> list[str | None]:
    titles = tree.get("table", {}).get("ChannelTitle", [])
    if not isinstance(titles, list):
        return []
    return [t.get("Name") if isinstance(t, dict) else None for t in titles]


_FIND_ITEM = re.compile(r"items\[(\d+)\]\.(StartTime|EndTime)")


def parse_find_items(flat: dict[str, str]) -> tuple[int, list[tuple[dt.datetime, dt.datetime]]]:
    """findNextFile (flat key=value) → (found, [(start, end)] as naive device-local times), in item order.

    Works on the flat answer: only StartTime/EndTime of each item are needed, and building the nested tree of
    every item's eight fields was most of the parsing cost of an NVR's recording search."""
    found_raw = flat.get("found", "0")
    found = device_int(found_raw, "found")
    if found is None:
        raise ProtocolError(f"unreadable found={found_raw[:40]!r}")
    rows: dict[int, dict[str, str]] = {}
    for key, value in flat.items():
        if key.endswith("Time"):
            m = _FIND_ITEM.fullmatch(key)
            if m:
                rows.setdefault(int(m.group(1)), {})[m.group(2)] = value
    items = [(parse_dahua_time(r["StartTime"]), parse_dahua_time(r["EndTime"]))
             for _, r in sorted(rows.items()) if r.get("StartTime") and r.get("EndTime")]
    return found, items


def parse_encode(tree: dict[str, Any]) -> list[dict[str, Any]]:
    """Encode table → per channel and stream: codec, resolution, fps, bitrate (main = MainFormat[0])."""
    out = []
    encode = tree.get("table", {}).get("Encode", [])
    for idx, ch in enumerate(encode if isinstance(encode, list) else []):
        if not isinstance(ch, dict):
            continue
        for fmt, main, subtype in (("MainFormat", True, 0), ("ExtraFormat", False, 1)):
            formats = ch.get(fmt)
            first = formats[0] if isinstance(formats, list) and formats else None
            video = first.get("Video") if isinstance(first, dict) else None
            if not isinstance(video, dict):
                continue
            width, height = _int(video.get("Width")), _int(video.get("Height"))
            res = video.get("resolution") or ""
            if (width is None or height is None) and re.fullmatch(r"\d++x\d++", res):
                width, height = (int(x) for x in res.split("x"))
            out.append({"channel": idx + 1, "main": main, "subtype": subtype, "codec": video.get("Compression"),
                        "width": width, "height": height, "fps": _float(video.get("FPS")),
                        "bitrate_kbps": _float(video.get("BitRate")),
                        "enabled": parse_bool(first.get("VideoEnable")) if isinstance(first, dict) else None})
    return out


def _int(value: Any) -> int | None:
    f = _float(value)
    return int(f) if f is not None else None


UPGRADING_WORDS = ("upgrading", "downloading", "preparing", "writing", "flashing", "inprogress")


def parse_upgrade_state(flat: dict[str, str]) -> UpgradeStatus:
    state = next((v for k, v in flat.items() if k.split(".")[-1] == "State"), None)
    progress = next((v for k, v in flat.items() if k.split(".")[-1] == "Progress"), None)
    percent = _int(progress)
    upgrading = (state or "").replace(" ", "").lower() in UPGRADING_WORDS
    return UpgradeStatus(upgrading=upgrading, percent=percent, state=state)


def strip_secrets(tree: Any) -> Any:
    """Settings must never carry passwords: drop keys that look like secrets, whatever their depth."""
    if isinstance(tree, dict):
        return {k: strip_secrets(v) for k, v in tree.items()
                if not any(s in k.lower() for s in ("password", "passwd", "pwd", "secret"))}
    if isinstance(tree, list):
        return [strip_secrets(v) for v in tree]
    return tree


# --- the driver -------------------------------------------------------------------------------------------




def _stale_or_lock(reply: Reply) -> bool:
    """DeviceHTTP's is_stale hook. A lock answer (403 JSON) to a reused nonce is not a refused nonce: DeviceHTTP
    must hand it back as it is (the driver raises Locked) instead of sending the credentials once more."""
    if reply.status == 403 and parse_lock(reply.status, reply.body) is not None:
        return True
    return challenge_is_stale(reply.challenges)


class DahuaDriver(HttpDriver):
    vendor = "dahua"

    @staticmethod
    def normalize_settings(raw: dict[str, Any]) -> dict[str, Any]:
        return normalize_settings(raw)  # the module's function below: settings() → the neutral snapshot

    def __init__(self, device, password: str, *, timeout: float | None = None, timezone: str | None = None,
                 tls_pin: str | None = None):
        # Dahua sends a new nonce with every 401, and most firmware also takes a nonce again (with nc counting
        # up); some refuse it (403 or 401). Reuse it until the device refuses once (drivers/http.py).
        super().__init__(device, password, timeout=timeout, timezone=timezone, reuse_challenge=True,
                         reuse_until_refused=True, tls_pin=tls_pin, is_stale=_stale_or_lock)
        self._offset_known = False
        self._offset: dt.timedelta | None = None
        self._rtsp_port: int | None = None
        self._system_info: dict[str, str] | None = None  # getSystemInfo as read by login(), reused by facts()
        self._finder: str | None = None  # the mediaFileFind object shared by all recording searches
        self._finder_actions: dict[str, str] = {}  # close/destroy spelling this device accepted
        self._unreachable = False  # a request timed out or could not connect: close() sends nothing more

    @staticmethod
    def base_model(model: str) -> str:
        """getDeviceType names Dahua's own models with the brand prefix (`DH-XVR5108C-X`, `DHI-NVR5208-8P-4KSE`)
        that getSystemInfo's updateSerial and most inventories leave out (rroller/dahua#59, #729)."""
        return re.sub(r"^DHI?-", "", model.strip().upper())

    def close(self) -> None:
        """Destroy the recording finder (if a search made one), then drop the connection. Best-effort and bounded
        by the deadline: a device that stopped answering gets nothing more."""
        obj, self._finder = self._finder, None
        try:
            if obj is not None and not self._unreachable:
                self._cleanup_finder(obj, ("destroy",))
        finally:
            super().close()

    # --- HTTP helpers -------------------------------------------------------------------------------------
    def _auth_failure(self, reply: Reply, authenticated: bool) -> AuthFailed | None:
        # A plain challenge has an empty (or HTML) body. An `Error` body naming a lock, or `Authorization Failed!`
        # on a 401, is read as the login lock (assumption, see docs/drivers.md): never send credentials then.
        dev = self.device.id
        locked = self._lock_answer(reply)
        if locked is not None:
            return locked
        text = reply.text()[:2000]
        low = text.lower()
        if re.search(r"\b(locked|lock)\b", low) or (low.lstrip().startswith("error")
                                                    and "authorization failed" in low):
            m = re.search(r"(?<!\d)(\d++)\s*+(?:s|sec|seconds)\b", low)  # linear
            unlock = min(int(m.group(1)[:9]), 86_400) if m else None
            return Locked(f"{dev}: device refuses logins from this address (login lock after failed logins; "
                          "Dahua locks for LoginFailLockTime, typically 30 min); wait before trying again",
                          unlock_in_s=unlock)
        if not authenticated:
            return None
        return AuthFailed(f"{dev}: credentials rejected (401). On Dahua this means a wrong user name or "
                          "password, or that the device's connection/user limit is exhausted; not retried")

    def _request(self, target: str, max_bytes: int | None = None) -> Reply:
        """One GET; a 403 that says the device locked us out raises Locked and is remembered for the run."""
        kwargs = {"max_bytes": max_bytes} if max_bytes else {}
        try:
            reply = self._http.request("GET", target, **kwargs)
        except (Offline, Timeout):
            self._unreachable = True
            raise
        if reply.status == 403:
            self._raise_if_lock(reply)
        return reply

    def _lock_answer(self, reply: Reply) -> Locked | None:
        """parse_lock's Locked, naming this device."""
        locked = parse_lock(reply.status, reply.body)
        return None if locked is None else Locked(f"{self.device.id}: {locked}", unlock_in_s=locked.unlock_in_s)

    def _raise_if_lock(self, reply: Reply) -> None:
        exc = self._lock_answer(reply)
        if exc is not None:
            auth_guard.record(self.device.id, exc)  # nothing with credentials goes to this device again this run
            raise exc

    def _cgi(self, cgi: str, action: str, *pairs: tuple[str, Any], max_bytes: int | None = None) -> Reply:
        path = f"/cgi-bin/{cgi}?{query(action, *pairs)}"
        reply = self._request(path, max_bytes)
        where = f"{self.device.id}: {cgi} {action}"
        if reply.status == 200:
            return reply
        detail = " ".join(kv.lines(reply.text()[:300])) if reply.body else ""
        if reply.status in (404, 501):
            raise NotSupported(f"{where} is not offered by this device (HTTP {reply.status})")
        if reply.status == 400:
            raise NotSupported(f"{where}: the device refuses this request (HTTP 400 {detail})".rstrip())
        if reply.status == 403:
            raise Forbidden(f"{where}: refused (HTTP 403: too little privilege) {detail}".rstrip())
        raise ProtocolError(f"{where}: HTTP {reply.status} {detail}".rstrip())

    def _flat(self, cgi: str, action: str, *pairs: tuple[str, Any]) -> dict[str, str]:
        reply = self._cgi(cgi, action, *pairs)
        return kv.parse_flat(kv.decode(reply.body))

    def _config(self, name: str) -> dict[str, str]:
        return self._flat("configManager.cgi", "getConfig", ("name", name))

    def _optional_config(self, name: str) -> dict[str, str] | None:
        try:
            return self._config(name)
        except NotSupported:
            return None

    # --- getters -----------------------------------------------------------------------------------------
    @named_errors
    def login(self) -> None:
        # getSystemInfo (model, serial) is the login probe, kept for facts(): one request fewer per device.
        try:
            flat = self._get_system_info()
        except NotSupported:
            # The credentials were accepted (a rejected login raises AuthFailed, never NotSupported); only this
            # action is refused, so the old probe still tells whether we are in.
            if not self._flat("magicBox.cgi", "getDeviceType"):
                raise ProtocolError(f"{self.device.id}: getDeviceType answered nothing readable") from None
            return
        if not flat:
            raise ProtocolError(f"{self.device.id}: getSystemInfo answered nothing readable")

    def _get_system_info(self) -> dict[str, str]:
        if self._system_info is None:
            self._system_info = self._flat("magicBox.cgi", "getSystemInfo")
        return self._system_info

    @named_errors
    def facts(self) -> Facts:
        # No getMachineName: the device name is read by no check and no task (the facts result shows model,
        # serial, firmware, type and MAC), and it cost every device one more CGI call. It stays available
        # where it is used, in settings() (General.MachineName, recorded by snapshots).
        info = self._get_system_info()
        try:
            software = self._flat("magicBox.cgi", "getSoftwareVersion")
        except NotSupported:  # model and serial are still worth reporting; the firmware is then unknown
            software = {}
        network = self._optional_config("Network")
        device_type = None
        if needs_device_type(info):
            try:
                device_type = self._flat("magicBox.cgi", "getDeviceType")
            except NotSupported:
                pass
        return parse_facts(info, software, None, kv.nest(network) if network else None, self.device.kind,
                           device_type)

    def _learn_offset(self, ntp: dict[str, str] | None = None) -> dt.timedelta | None:
        if not self._offset_known:
            if ntp is None:
                ntp = self._optional_config("NTP") or {}
            self._offset = explicit_offset(ntp)
            self._offset_known = True
        return self._offset

    @named_errors
    def clock(self) -> Clock:
        ntp = self._optional_config("NTP") or {}
        offset = self._learn_offset(ntp)
        reply = self._cgi("global.cgi", "getCurrentTime")
        flat = kv.parse_flat(kv.decode(reply.body))
        raw = flat.get("result")
        if raw is None:
            raise ProtocolError(f"{self.device.id}: getCurrentTime without result=")
        device_utc = local_to_utc(parse_dahua_time(raw), offset, self.timezone)
        enabled = parse_bool(ntp.get("table.NTP.Enable"))
        address = ntp.get("table.NTP.Address")
        tz_desc = ntp.get("table.NTP.TimeZoneDesc") or (
            f"index {ntp['table.NTP.TimeZone']}" if "table.NTP.TimeZone" in ntp else None)
        zone_note = tz_desc if offset is not None else f"{tz_desc or 'unknown'}; read as {self.timezone}"
        return Clock(device_utc=device_utc, host_utc=reply.mid_utc, timezone=zone_note,
                     mode=None if enabled is None else ("NTP" if enabled else "manual"),
                     ntp_servers=[address] if address else [], ntp_enabled=enabled,
                     ntp_servers_offered=bool(ntp))  # no NTP table (400 `Bad Request!`): nothing to read

    @named_errors
    def storage(self) -> list[Disk]:
        reply = self._cgi("storageDevice.cgi", "getDeviceAllInfo")
        text = kv.decode(reply.body)
        try:
            return parse_storage(kv.parse(text))
        except kv.DahuaError as exc:
            if "no disk" in exc.detail.lower() or "nodisk" in exc.detail.lower():
                return []
            raise

    @named_errors
    def channels(self) -> list[Channel]:
        if self.device.kind != "nvr":
            titles = parse_channel_titles(kv.nest(self._optional_config("ChannelTitle") or {}))
            return [Channel(id=1, online=True, name=titles[0] if titles else None, ip=self.device.host)]
        titles = parse_channel_titles(kv.nest(self._config("ChannelTitle")))
        try:
            reply = self._cgi("eventManager.cgi", "getEventIndexes", ("code", "VideoLoss"))
            text = kv.decode(reply.body)
            try:
                lost: set[int] | None = parse_video_loss(kv.parse(text))
            except kv.DahuaError as exc:
                if "no events" not in exc.detail.lower():
                    raise
                lost = set()  # "Error: No Events": no channel has video loss
        except NotSupported:
            lost = None
        return [Channel(id=i + 1, online=None if lost is None else i not in lost, name=name,
                        detail=("video loss" if lost is not None and i in lost else None))
                for i, name in enumerate(titles)]

    @named_errors
    def recorded_any(self, channel: int, start: dt.datetime, end: dt.datetime) -> bool:
        return bool(self._search(channel, start, end, first_only=True))

    @named_errors
    def recordings(self, channel: int, start: dt.datetime, end: dt.datetime) -> list[RecordingSpan]:
        return self._search(channel, start, end)

    def _search(self, channel: int, start: dt.datetime, end: dt.datetime,
                first_only: bool = False) -> list[RecordingSpan]:
        """mediaFileFind: findFile → findNextFile pages → close, on one finder object per driver.

        The finder is created (factory.create) on the first search and reused by every later one; close()
        destroys it. A search that fails half-way closes and destroys its finder at once (its state on the
        device is unknown), so the next search starts with a fresh one and no device resources leak.
        condition.Channel is sent 1-based (the channel number a technician knows); see docs/drivers.md.
        """
        if start.tzinfo is None or end.tzinfo is None:
            raise ValueError("recordings() takes timezone-aware UTC datetimes")
        offset = self._learn_offset()
        lo_local, hi_local = utc_to_local(start, offset, self.timezone), utc_to_local(end, offset, self.timezone)
        conditions = (("condition.Channel", channel), ("condition.StartTime", lo_local.strftime(DAHUA_TIME)),
                      ("condition.EndTime", hi_local.strftime(DAHUA_TIME)))
        spans: list[tuple[dt.datetime, dt.datetime]] = []
        try:
            obj, matched = self._start_search(conditions)
            if matched:
                spans = self._find_pages(obj, first_only)
        except BaseException:
            failed, self._finder = self._finder, None
            if failed is not None:  # None: factory.create failed, nothing to clean up
                self._cleanup_finder(failed, ("close", "destroy"))
            raise
        self._cleanup_finder(obj, ("close",))
        return clipped(channel, [(local_to_utc(s, offset, self.timezone), local_to_utc(e, offset, self.timezone))
                                 for s, e in spans], start, end)

    def _start_search(self, conditions) -> tuple[str, bool]:
        """findFile on the driver's finder → (object id, whether anything matched)."""
        obj = self._finder
        if obj is not None:
            try:
                if self._find_file(obj, conditions):
                    return obj, True
            except NotSupported:
                pass
            # The reused finder was refused (or says nothing matches): the device may have dropped it (idle
            # timeout, reboot). findFile never involves authentication, so one retry on a fresh finder is safe.
            self._finder = None
            self._cleanup_finder(obj, ("destroy",))
        obj = self._create_finder()
        self._finder = obj
        # On a fresh finder an Error answer to findFile means nothing matches (some firmware answers so).
        return obj, self._find_file(obj, conditions)

    def _create_finder(self) -> str:
        created = self._flat("mediaFileFind.cgi", "factory.create")
        obj = (created.get("result") or "").strip()
        if not obj.isdigit():
            raise ProtocolError(f"{self.device.id}: mediaFileFind factory.create gave no object id")
        return obj

    def _find_file(self, obj: str, conditions) -> bool:
        """False when findFile answers an Error body; HTTP refusals raise (NotSupported, ProtocolError)."""
        reply = self._cgi("mediaFileFind.cgi", "findFile", ("object", obj), *conditions)
        try:
            kv.check_error(kv.decode(reply.body))
        except kv.DahuaError:
            return False
        return True

    def _find_pages(self, obj: str, first_only: bool = False) -> list[tuple[dt.datetime, dt.datetime]]:
        """The files findFile matched, page by page; first_only: one page of one file (recorded_any)."""
        spans: list[tuple[dt.datetime, dt.datetime]] = []
        previous = None
        for _page in range(FIND_MAX_PAGES):
            reply = self._cgi("mediaFileFind.cgi", "findNextFile", ("object", obj),
                              ("count", 1 if first_only else FIND_PAGE))
            found, items = parse_find_items(kv.parse_flat(kv.decode(reply.body)))
            if found == 0 or not items:
                return spans
            if first_only:
                return items
            if items[0] == previous:
                raise ProtocolError(f"{self.device.id}: mediaFileFind returns the same page again")
            previous = items[0]
            spans += items
            if found < FIND_PAGE and len(items) < FIND_PAGE:
                # A short page is the last one ("find the next fileCount files"); asking again would only
                # answer found=0. `found` is checked too, so unreadable items skipped by the parser never end
                # the search early.
                return spans
        raise ProtocolError(f"{self.device.id}: mediaFileFind still finding after {FIND_MAX_PAGES} pages")

    def _cleanup_finder(self, obj: str, steps: tuple[str, ...]) -> None:
        """close and/or destroy a finder, best-effort. Which of close/factory.close is canonical is unknown
        (protocols.md B.3): the one that worked last time goes first. Never raises: cleanup must not hide the
        real outcome, and after a transport failure (offline, timeout, auth) it sends nothing more."""
        for step in steps:
            first = self._finder_actions.get(step, step)
            for action in dict.fromkeys((first, step, f"factory.{step}")):
                try:
                    reply = self._cgi("mediaFileFind.cgi", action, ("object", obj))
                    kv.check_error(kv.decode(reply.body))
                    self._finder_actions[step] = action
                    break
                except (NotSupported, ProtocolError):  # refused, or a garbled answer: try the next spelling
                    continue
                except Exception:
                    return

    def _rtsp(self) -> str:
        if self._rtsp_port is None:
            rtsp = self._optional_config("RTSP") or {}
            port = _int(rtsp.get("table.RTSP.Port"))
            self._rtsp_port = port or self.device.rtsp_port
        host = f"[{self.device.host}]" if ":" in self.device.host else self.device.host
        return f"rtsp://{host}:{self._rtsp_port}"

    def stream_uri(self, channel: int = 1, main: bool = True) -> str:
        return f"{self._rtsp()}/cam/realmonitor?channel={int(channel)}&subtype={0 if main else 1}"

    @named_errors
    def streams(self) -> list[StreamInfo]:
        encode = parse_encode(kv.nest(self._config("Encode")))
        titles: list[str | None] = []
        try:
            titles = parse_channel_titles(kv.nest(self._config("ChannelTitle")))
        except NotSupported:
            pass
        out = []
        for e in encode:
            if e["enabled"] is False:
                continue
            name = titles[e["channel"] - 1] if e["channel"] - 1 < len(titles) else None
            out.append(StreamInfo(channel=e["channel"], name=name, uri=self.stream_uri(e["channel"], e["main"]),
                                  codec=e["codec"], width=e["width"], height=e["height"], fps=e["fps"],
                                  bitrate_kbps=e["bitrate_kbps"], main=e["main"]))
        return out

    @named_errors
    def export_config(self) -> ConfigExport:
        reply = self._request("/cgi-bin/Config.backup?action=All", max_bytes=EXPORT_MAX_BYTES)
        where = f"{self.device.id}: Config.backup"
        if reply.status in (400, 404, 501):  # 400 `Error Bad Request!`: the firmware has no such CGI
            raise NotSupported(f"{where} is not offered by this device (HTTP {reply.status})")
        if reply.status == 403:
            raise Forbidden(f"{where}: refused (HTTP 403: too little privilege)")
        if reply.status != 200:
            raise ProtocolError(f"{where}: HTTP {reply.status}")
        text = kv.decode(reply.body)
        kv.check_error(text)
        try:
            json.loads(text)
        except (ValueError, RecursionError):
            raise ProtocolError(f"{where}: the export is not valid JSON") from None
        return ConfigExport(content=reply.body, content_type="application/json", method="dahua-Config.backup",
                            extension=".json")

    def import_config(self, export: ConfigExport) -> None:
        # No documented CGI imports a backup; configManager's restore/restoreExcept are factory resets.
        raise NotSupported(f"{self.device.id}: Dahua offers no configuration import over CGI "
                           "(configManager 'restore' is a factory reset, never used); restore through the web UI")

    @named_errors
    def settings(self) -> dict[str, Any]:
        """Identity, general (incl. the login-lock policy), time/NTP, encode, recording, channels, network, RTSP,
        users (names and groups; secrets dropped). A table the device does not offer is left out."""
        out: dict[str, Any] = {"vendor": "dahua"}
        out["systemInfo"] = dict(self._get_system_info())
        out["softwareVersion"] = firmware_of(self._flat("magicBox.cgi", "getSoftwareVersion"))
        if needs_device_type(out["systemInfo"]):  # deviceType=31 or none: the model is in getDeviceType
            try:
                out["deviceType"] = self._flat("magicBox.cgi", "getDeviceType").get("type", "").strip() or None
            except NotSupported:
                pass
        for name in ("General", "NTP", "Encode", "RecordMode", "Record", "ChannelTitle", "Network", "RTSP"):
            flat = self._optional_config(name)
            if flat is not None:
                table = kv.nest(flat).get("table", {})
                if name in table:
                    out[name] = table[name]
        try:
            users = kv.parse(kv.decode(self._cgi("userManager.cgi", "getUserInfoAll").body))
            out["users"] = users.get("users", users)
        except NotSupported:
            pass
        return strip_secrets(out)

    @named_errors
    def upgrade_status(self) -> UpgradeStatus:
        return parse_upgrade_state(self._flat("upgrader.cgi", "getState"))


# --- settings snapshot (tasks/snapshot.py) -------------------------------------------------------------------------------------------------
_DAHUA_MODE = {"0": "schedule", "1": "continuous", "2": "off"}  # RecordMode: 0 auto/schedule, 1 manual, 2 stop
_SECTION_MASK = re.compile(r"\s*([0-9]{1,9})(?:\s|$)")  # TimeSection "<mask> hh:mm:ss-hh:mm:ss"
_FULL_DAY = re.compile(r"^\s*([0-9]{1,9})\s+00:00:00-2[34]:59:59|^\s*([0-9]{1,9})\s+00:00:00-24:00:00")


def normalize_settings(raw: dict[str, Any]) -> dict[str, Any]:
    out = S.empty()
    si = raw.get("systemInfo") or {}
    gen = raw.get("General") or {}
    net = raw.get("Network") or {}
    default_if = S.to_str(net.get("DefaultInterface")) or "eth0"
    eth = net.get(default_if) if isinstance(net.get(default_if), dict) else {}
    device_type = {"type": raw["deviceType"]} if S.to_str(raw.get("deviceType")) else None
    out["identity"] = {"vendor": "dahua", "model": model_of(si, device_type),
                       "serial": S.to_str(si.get("serialNumber")), "firmware": S.to_str(raw.get("softwareVersion")),
                       "name": S.to_str(gen.get("MachineName")),
                       "mac": (S.to_str(eth.get("PhysicalAddress")) or "").lower() or None,
                       "device_type": S.to_str(si.get("deviceType"))}
    ntp = raw.get("NTP") or {}
    enabled = S.to_bool(ntp.get("Enable"))
    addr = S.to_str(ntp.get("Address"))
    out["time"] = {"timezone": f"dahua-index:{S.to_str(ntp.get('TimeZone'))}" if S.to_str(ntp.get("TimeZone")) else None,
                   "mode": ("NTP" if enabled else "manual") if enabled is not None else None,
                   "ntp_enabled": enabled, "ntp_servers": [addr] if addr else []}
    streams = []
    for ch, enc in enumerate(S.seq(raw.get("Encode")), start=1):
        if not isinstance(enc, dict):
            continue
        for main, key in ((True, "MainFormat"), (False, "ExtraFormat")):
            fmts = S.seq(enc.get(key))
            if not fmts or not isinstance(fmts[0], dict):
                continue
            v = fmts[0].get("Video") or {}
            if S.to_bool(fmts[0].get("VideoEnable")) is False:
                continue
            w, h = S.to_int(v.get("Width")), S.to_int(v.get("Height"))
            if (w is None or h is None) and S.to_str(v.get("resolution")) and "x" in v["resolution"]:
                w, h = (S.to_int(x) for x in v["resolution"].lower().split("x", 1))
            streams.append({"channel": ch, "main": main, "codec": S.codec(v.get("Compression")), "width": w,
                            "height": h, "fps": S.num(v.get("FPS")), "bitrate_kbps": S.num(v.get("BitRate"))})
    out["streams"] = streams
    modes = {}
    for ch, rm in enumerate(S.seq(raw.get("RecordMode")), start=1):
        if isinstance(rm, dict):
            modes[ch] = _DAHUA_MODE.get(S.to_str(rm.get("Mode")) or "", S.to_str(rm.get("Mode")))
    schedule = {}
    for ch, rec in enumerate(S.seq(raw.get("Record")), start=1):
        if isinstance(rec, dict):
            days = [[S.to_str(x) for x in S.seq(day)] for day in S.seq(rec.get("TimeSection"))]
            schedule[str(ch)] = _dahua_schedule(days)
            # "auto" mode with a regular-recording section covering the whole day every day is 24 h recording.
            if modes.get(ch) == "schedule" and days:
                masks = [int(m.group(1)) for day in days for x in day if (m := _SECTION_MASK.match(x or ""))]
                if all(any((m := _FULL_DAY.match(x or "")) and int(m.group(1) or m.group(2)) & 1 for x in day)
                       for day in days):
                    modes[ch] = "continuous"
                elif masks and not any(m & 1 for m in masks) and any(masks):
                    modes[ch] = "motion"  # only motion/alarm-triggered sections
    if modes:
        distinct = set(modes.values())
        out["recording"] = {"mode": distinct.pop() if len(distinct) == 1 else "mixed",
                            "schedule": schedule or {str(k): v for k, v in modes.items()}}
    out["channels"] = [{"id": i, "name": S.to_str(t.get("Name")), "source": None, "protocol": None}
                       for i, t in enumerate(S.seq(raw.get("ChannelTitle")), start=1) if isinstance(t, dict)]
    out["users"] = [{"name": S.to_str(u.get("Name")), "level": S.to_str(u.get("Group"))}
                    for u in S.seq(raw.get("users")) if isinstance(u, dict) and S.to_str(u.get("Name"))]
    rtsp = raw.get("RTSP") or {}
    ports = {}
    if S.to_int(rtsp.get("Port")):
        ports["rtsp"] = S.to_int(rtsp.get("Port"))
    for k, name in (("HttpPort", "http"), ("HttpsPort", "https"), ("TCPPort", "tcp")):
        if S.to_int(net.get(k)):
            ports[name] = S.to_int(net.get(k))
    out["ports"] = ports
    nics = []
    for name, n in sorted(net.items()):
        if isinstance(n, dict) and ("IPAddress" in n or "PhysicalAddress" in n):
            addr, mask = S.to_str(n.get("IPAddress")), S.to_str(n.get("SubnetMask"))
            nics.append({"name": name, "mac": (S.to_str(n.get("PhysicalAddress")) or "").lower() or None,
                         "ipv4": [f"{addr}/{S.prefix_len(mask)}" if mask else addr] if addr else [],
                         "dhcp": S.to_bool(n.get("DhcpEnable"))})
    out["network"] = {"interfaces": nics, "hostname": S.to_str(net.get("Hostname"))}
    return out


_MASK = ((1, "regular"), (2, "motion"), (4, "alarm"))
_WEEK = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # Dahua TimeSection[0] is Sunday


def _dahua_schedule(days: list[list[str | None]]) -> dict[str, list[str]]:
    """TimeSection[weekday][n] = '<mask> hh:mm:ss-hh:mm:ss' → {'every day' | weekday: ['00:00-24:00 regular']}.
    Empty sections (mask 0) are dropped; identical days are folded into one entry."""
    readable = []
    for day in days:
        out = []
        for sec in day:
            m = re.match(r"^\s*([0-9]{1,9})\s+([0-9]{2}:[0-9]{2}):[0-9]{2}-([0-9]{2}:[0-9]{2}):[0-9]{2}", sec or "")
            if not m or not int(m.group(1)):
                continue
            kinds = "+".join(n for bit, n in _MASK if int(m.group(1)) & bit) or f"mask {m.group(1)}"
            out.append(f"{m.group(2)}-{m.group(3)} {kinds}")
        readable.append(out)
    if readable and all(d == readable[0] for d in readable) and len(readable) == 7:
        return {"every day": readable[0]}
    return {(_WEEK[i] if i < 7 else str(i)): d for i, d in enumerate(readable)}

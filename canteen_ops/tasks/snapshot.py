"""Config snapshots: one normalized, vendor-neutral JSON of a device's settings, diffs and drift.

The drivers return each vendor's settings raw (`Driver.settings()`); one normalizer per vendor maps them onto
the same schema, so a diff or a policy rule never needs to know the vendor:

    identity   vendor, model, firmware, serial, name, mac, device_type
    network    interfaces [{name, mac, ipv4 [addr/prefix], dhcp}], hostname
    time       timezone, mode (NTP | manual), ntp_enabled, ntp_servers
    streams    [{channel, main, codec, width, height, fps, bitrate_kbps}]
    recording  mode (continuous | schedule | motion | off | null = not reported), schedule
    channels   [{id, name, source, protocol}]  (NVR inputs / channel titles)
    users      [{name, level}]  (never passwords: the drivers drop them and so do we)
    ports      {http, https, rtsp, ...}

Volatile values (uptime, current time, free space, nonces) are left out, lists are sorted by identity and
JSON keys are sorted, so the same settings always give the same sha256.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable

from canteen_ops.status import Result, Status, worst

if TYPE_CHECKING:
    from canteen_ops.drivers.base import Driver
    from canteen_ops.inventory.model import Device
    from canteen_ops.store.log import MaintenanceLog

SCHEMA = 1


# --- small coercions ---------------------------------------------------------------------------------------
def _seq(value: Any) -> list[Any]:
    """A list from a list, a single item, a dict keyed by indexes, or nothing; None holes dropped."""
    if value is None:
        return []
    if isinstance(value, dict) and value and all(str(k).isdigit() for k in value):
        return [value[k] for k in sorted(value, key=lambda k: int(k))]
    if not isinstance(value, list):
        return [value]
    return [v for v in value if v is not None]


def _int(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        try:
            return int(float(str(value).strip()))
        except (TypeError, ValueError):
            return None


def _num(value: Any) -> float | int | None:
    try:
        f = float(str(value).strip())
    except (TypeError, ValueError):
        return None
    return int(f) if f.is_integer() else round(f, 3)


def _bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if value is None:
        return None
    s = str(value).strip().lower()
    return True if s in ("true", "1", "yes", "on", "enable", "enabled") else \
        False if s in ("false", "0", "no", "off", "disable", "disabled") else None


def _str(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    s = str(value).strip()
    return s or None


def _get(d: Any, *path: str) -> Any:
    for p in path:
        if not isinstance(d, dict):
            return None
        d = d.get(p)
    return d


def _codec(value: Any) -> str | None:
    s = (_str(value) or "").upper().replace("H264", "H.264").replace("H265", "H.265")
    return {"H.264": "H.264", "H.265": "H.265", "MJPEG": "MJPEG", "JPEG": "MJPEG", "": None}.get(s, s or None)


# Keys whose values are secrets. Not redact.SECRET_KEYS: that one matches "token", which in ONVIF names a
# configuration, not a credential.
_SECRET_KEYS = re.compile(r"pass(word|wd)?|pwd|secret|authorization|cookie|private|credential", re.I)


def _without_secrets(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_secrets(v) for k, v in value.items() if not _SECRET_KEYS.search(str(k))}
    if isinstance(value, list):
        return [_without_secrets(v) for v in value]
    return value


def _empty() -> dict[str, Any]:
    return {"schema": SCHEMA, "identity": {}, "network": {"interfaces": [], "hostname": None},
            "time": {"timezone": None, "mode": None, "ntp_enabled": None, "ntp_servers": []},
            "streams": [], "recording": {"mode": None, "schedule": None}, "channels": [], "users": [],
            "ports": {}}


# --- Hikvision ISAPI ------------------------------------------------------------------------------------------
def normalize_hikvision(raw: dict[str, Any]) -> dict[str, Any]:
    out = _empty()
    di = raw.get("deviceInfo") or {}
    fw = " ".join(x for x in (_str(di.get("firmwareVersion")), _str(di.get("firmwareReleasedDate"))) if x)
    out["identity"] = {"vendor": "hikvision", "model": _str(di.get("model")), "serial": _str(di.get("serialNumber")),
                       "firmware": fw or None, "name": _str(di.get("deviceName")),
                       "mac": (_str(di.get("macAddress")) or "").lower() or None,
                       "device_type": _str(di.get("deviceType"))}
    t = raw.get("time") or {}
    mode = _str(t.get("timeMode"))
    servers = []
    for s in _seq(_get(raw, "ntpServers", "NTPServer")):
        addr = _str(s.get("hostName")) if _str(s.get("addressingFormatType")) == "hostname" else None
        addr = addr or _str(s.get("ipAddress")) or _str(s.get("hostName")) or _str(s.get("ipv6Address"))
        if addr:
            servers.append(addr)
    out["time"] = {"timezone": _str(t.get("timeZone")), "mode": "NTP" if (mode or "").upper() == "NTP" else mode,
                   "ntp_enabled": (mode or "").upper() == "NTP" if mode else None, "ntp_servers": servers}
    streams = []
    for sc in _seq(_get(raw, "streamingChannels", "StreamingChannel")):
        sid = _int(sc.get("id"))
        if sid is None or _bool(sc.get("enabled")) is False:
            continue
        v = sc.get("Video") or {}
        rate = _num(v.get("maxFrameRate"))
        bitrate = v.get("constantBitRate") if _str(v.get("videoQualityControlType")) == "CBR" else \
            v.get("vbrUpperCap") or v.get("constantBitRate")
        streams.append({"channel": sid // 100, "main": sid % 100 == 1, "codec": _codec(v.get("videoCodecType")),
                        "width": _int(v.get("videoResolutionWidth")), "height": _int(v.get("videoResolutionHeight")),
                        "fps": _num(rate / 100) if rate and rate >= 100 else rate, "bitrate_kbps": _num(bitrate)})
    out["streams"] = streams
    tracks = _seq(_get(raw, "recordTracks", "Track"))
    if tracks:  # /ISAPI/ContentMgmt/record/tracks when a driver provides it
        out["recording"] = _hik_recording(tracks)
    chans = []
    for c in _seq(_get(raw, "inputProxyChannels", "InputProxyChannel")):
        src = c.get("sourceInputPortDescriptor") or {}
        ip, port = _str(src.get("ipAddress")), _str(src.get("managePortNo"))
        chans.append({"id": _int(c.get("id")), "name": _str(c.get("name")),
                      "source": f"{ip}:{port}" if ip and port else ip, "protocol": _str(src.get("proxyProtocol"))})
    out["channels"] = chans
    out["users"] = [{"name": _str(u.get("userName")), "level": _str(u.get("userLevel"))}
                    for u in _seq(_get(raw, "users", "User")) if _str(u.get("userName"))]
    ports = {}
    for p in _seq(_get(raw, "adminAccesses", "AdminAccessProtocol")):
        proto = (_str(p.get("protocol")) or "").lower()
        if proto and _bool(p.get("enabled")) is not False:
            ports[proto] = _int(p.get("portNo"))
    out["ports"] = ports
    nics = []
    for n in _seq(_get(raw, "network", "NetworkInterface")):
        ipa = n.get("IPAddress") or {}
        addr, mask = _str(ipa.get("ipAddress")), _str(ipa.get("subnetMask"))
        nics.append({"name": _str(n.get("id")), "mac": (_str(_get(n, "Link", "MACAddress")) or "").lower() or None,
                     "ipv4": [f"{addr}/{_prefix(mask)}" if mask else addr] if addr else [],
                     "dhcp": (_str(ipa.get("addressingType")) or "").lower() == "dynamic" if ipa else None})
    out["network"] = {"interfaces": nics, "hostname": None}
    return out


def _hik_recording(tracks: list[dict[str, Any]]) -> dict[str, Any]:
    modes = set()
    schedule = {}
    for t in tracks:
        actions = _seq(_get(t, "TrackSchedule", "ScheduleBlockList", "ScheduleBlock", "ScheduleAction"))
        kinds = {(_str(_get(a, "Actions", "ActionRecordingMode")) or "").upper() for a in actions}
        mode = "continuous" if kinds == {"CMR"} else "motion" if kinds and kinds <= {"MOTION", "ALARM"} else \
            "schedule" if kinds else "off"
        modes.add(mode)
        schedule[str(_int(t.get("Channel")) or _int(t.get("id")))] = sorted(k.lower() for k in kinds if k)
    return {"mode": modes.pop() if len(modes) == 1 else "mixed", "schedule": schedule}


def _prefix(mask: str) -> int | str:
    try:
        return sum(bin(int(x)).count("1") for x in mask.split("."))
    except ValueError:
        return mask


# --- Dahua CGI -------------------------------------------------------------------------------------------------
_DAHUA_MODE = {"0": "schedule", "1": "continuous", "2": "off"}  # RecordMode: 0 auto/schedule, 1 manual, 2 stop
_FULL_DAY = re.compile(r"^\s*(\d+)\s+00:00:00-2[34]:59:59|^\s*(\d+)\s+00:00:00-24:00:00")


def normalize_dahua(raw: dict[str, Any]) -> dict[str, Any]:
    out = _empty()
    si = raw.get("systemInfo") or {}
    gen = raw.get("General") or {}
    net = raw.get("Network") or {}
    default_if = _str(net.get("DefaultInterface")) or "eth0"
    eth = net.get(default_if) if isinstance(net.get(default_if), dict) else {}
    out["identity"] = {"vendor": "dahua", "model": _str(si.get("deviceType")) or _str(raw.get("deviceType")),
                       "serial": _str(si.get("serialNumber")), "firmware": _str(raw.get("softwareVersion")),
                       "name": _str(gen.get("MachineName")),
                       "mac": (_str(eth.get("PhysicalAddress")) or "").lower() or None,
                       "device_type": _str(si.get("deviceType"))}
    ntp = raw.get("NTP") or {}
    enabled = _bool(ntp.get("Enable"))
    addr = _str(ntp.get("Address"))
    out["time"] = {"timezone": f"dahua-index:{_str(ntp.get('TimeZone'))}" if _str(ntp.get("TimeZone")) else None,
                   "mode": ("NTP" if enabled else "manual") if enabled is not None else None,
                   "ntp_enabled": enabled, "ntp_servers": [addr] if addr else []}
    streams = []
    for ch, enc in enumerate(_seq(raw.get("Encode")), start=1):
        if not isinstance(enc, dict):
            continue
        for main, key in ((True, "MainFormat"), (False, "ExtraFormat")):
            fmts = _seq(enc.get(key))
            if not fmts or not isinstance(fmts[0], dict):
                continue
            v = fmts[0].get("Video") or {}
            if _bool(fmts[0].get("VideoEnable")) is False:
                continue
            w, h = _int(v.get("Width")), _int(v.get("Height"))
            if (w is None or h is None) and _str(v.get("resolution")) and "x" in v["resolution"]:
                w, h = (_int(x) for x in v["resolution"].lower().split("x", 1))
            streams.append({"channel": ch, "main": main, "codec": _codec(v.get("Compression")), "width": w,
                            "height": h, "fps": _num(v.get("FPS")), "bitrate_kbps": _num(v.get("BitRate"))})
    out["streams"] = streams
    modes = {}
    for ch, rm in enumerate(_seq(raw.get("RecordMode")), start=1):
        if isinstance(rm, dict):
            modes[ch] = _DAHUA_MODE.get(_str(rm.get("Mode")) or "", _str(rm.get("Mode")))
    schedule = {}
    for ch, rec in enumerate(_seq(raw.get("Record")), start=1):
        if isinstance(rec, dict):
            days = [[_str(x) for x in _seq(day)] for day in _seq(rec.get("TimeSection"))]
            schedule[str(ch)] = _dahua_schedule(days)
            # "auto" mode with a regular-recording section covering the whole day every day is 24 h recording.
            if modes.get(ch) == "schedule" and days:
                masks = [int(x.split()[0]) for day in days for x in day if x and x.split()[0].isdigit()]
                if all(any((m := _FULL_DAY.match(x or "")) and int(m.group(1) or m.group(2)) & 1 for x in day)
                       for day in days):
                    modes[ch] = "continuous"
                elif masks and not any(m & 1 for m in masks) and any(masks):
                    modes[ch] = "motion"  # only motion/alarm-triggered sections
    if modes:
        distinct = set(modes.values())
        out["recording"] = {"mode": distinct.pop() if len(distinct) == 1 else "mixed",
                            "schedule": schedule or {str(k): v for k, v in modes.items()}}
    out["channels"] = [{"id": i, "name": _str(t.get("Name")), "source": None, "protocol": None}
                       for i, t in enumerate(_seq(raw.get("ChannelTitle")), start=1) if isinstance(t, dict)]
    out["users"] = [{"name": _str(u.get("Name")), "level": _str(u.get("Group"))}
                    for u in _seq(raw.get("users")) if isinstance(u, dict) and _str(u.get("Name"))]
    rtsp = raw.get("RTSP") or {}
    ports = {}
    if _int(rtsp.get("Port")):
        ports["rtsp"] = _int(rtsp.get("Port"))
    for k, name in (("HttpPort", "http"), ("HttpsPort", "https"), ("TCPPort", "tcp")):
        if _int(net.get(k)):
            ports[name] = _int(net.get(k))
    out["ports"] = ports
    nics = []
    for name, n in sorted(net.items()):
        if isinstance(n, dict) and ("IPAddress" in n or "PhysicalAddress" in n):
            addr, mask = _str(n.get("IPAddress")), _str(n.get("SubnetMask"))
            nics.append({"name": name, "mac": (_str(n.get("PhysicalAddress")) or "").lower() or None,
                         "ipv4": [f"{addr}/{_prefix(mask)}" if mask else addr] if addr else [],
                         "dhcp": _bool(n.get("DhcpEnable"))})
    out["network"] = {"interfaces": nics, "hostname": _str(net.get("Hostname"))}
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
            m = re.match(r"^\s*(\d+)\s+(\d\d:\d\d):\d\d-(\d\d:\d\d):\d\d", sec or "")
            if not m or not int(m.group(1)):
                continue
            kinds = "+".join(n for bit, n in _MASK if int(m.group(1)) & bit) or f"mask {m.group(1)}"
            out.append(f"{m.group(2)}-{m.group(3)} {kinds}")
        readable.append(out)
    if readable and all(d == readable[0] for d in readable) and len(readable) == 7:
        return {"every day": readable[0]}
    return {(_WEEK[i] if i < 7 else str(i)): d for i, d in enumerate(readable)}


# --- ONVIF ------------------------------------------------------------------------------------------------------
def normalize_onvif(raw: dict[str, Any]) -> dict[str, Any]:
    out = _empty()
    ident = raw.get("identity") or {}
    out["identity"] = {"vendor": "onvif", "manufacturer": _str(ident.get("manufacturer")),
                       "model": _str(ident.get("model")), "serial": _str(ident.get("serial")),
                       "firmware": _str(ident.get("firmware")), "name": None, "mac": None,
                       "device_type": None}
    t = raw.get("time") or {}
    out["time"] = {"timezone": _str(t.get("timezone")), "mode": _str(t.get("mode")),
                   "ntp_enabled": t.get("ntp_enabled"), "ntp_servers": [s for s in (t.get("ntp_servers") or []) if s]}
    streams = []
    if raw.get("stream_info"):  # the driver's own profile → channel mapping (Driver.streams())
        for s in raw["stream_info"]:
            streams.append({"channel": _int(s.get("channel")) or 1, "main": bool(s.get("main")),
                            "codec": _codec(s.get("codec")), "width": _int(s.get("width")),
                            "height": _int(s.get("height")), "fps": _num(s.get("fps")),
                            "bitrate_kbps": _num(s.get("bitrate_kbps"))})
    else:  # encoder configurations only: best effort from names and tokens
        for s in raw.get("streams") or []:
            name = (_str(s.get("name")) or "") + " " + (_str(s.get("token")) or "")
            main = not re.search(r"sub|second|minor|extra", name, re.I)
            streams.append({"channel": 1, "main": main, "codec": _codec(s.get("codec")),
                            "width": _int(s.get("width")), "height": _int(s.get("height")),
                            "fps": _num(s.get("fps")), "bitrate_kbps": _num(s.get("bitrate_kbps")),
                            "token": _str(s.get("token"))})
    out["streams"] = streams
    out["users"] = [{"name": _str(u.get("name")), "level": _str(u.get("level"))}
                    for u in raw.get("users") or [] if _str(u.get("name"))]
    nics = []
    for n in raw.get("network") or []:
        nics.append({"name": _str(n.get("name")) or _str(n.get("token")), "mac": (_str(n.get("mac")) or "").lower()
                     or None, "ipv4": list(n.get("ipv4") or []), "dhcp": n.get("dhcp")})
    out["network"] = {"interfaces": nics, "hostname": None}
    out["ports"] = {k: _int(v) for k, v in (raw.get("ports") or {}).items() if _int(v)}
    if raw.get("recording"):
        out["recording"] = {"mode": _str(_get(raw, "recording", "mode")), "schedule": None}
    if out["identity"]["mac"] is None and nics:
        out["identity"]["mac"] = nics[0]["mac"]
    return out


NORMALIZERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "hikvision": normalize_hikvision, "dahua": normalize_dahua, "onvif": normalize_onvif}


def _sort_lists(snap: dict[str, Any]) -> dict[str, Any]:
    snap["streams"].sort(key=lambda s: (s.get("channel") or 0, not s.get("main"), s.get("token") or ""))
    snap["users"].sort(key=lambda u: u.get("name") or "")
    snap["channels"].sort(key=lambda c: c.get("id") or 0)
    snap["network"]["interfaces"].sort(key=lambda n: n.get("name") or "")
    # "0.0.0.0" / "::" is how devices write "no server".
    snap["time"]["ntp_servers"] = sorted(x for x in snap["time"]["ntp_servers"] if x not in ("0.0.0.0", "::"))
    return snap


def normalize(vendor: str, raw: dict[str, Any]) -> dict[str, Any]:
    """The vendor-neutral snapshot of raw driver settings (secret-looking keys dropped on the way in)."""
    fn = NORMALIZERS.get(raw.get("vendor") or vendor) or NORMALIZERS[vendor]
    return _sort_lists(fn(_without_secrets(raw)))


def canonical(snap: dict[str, Any]) -> bytes:
    return json.dumps(snap, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def digest(snap: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(snap)).hexdigest()


# --- diff --------------------------------------------------------------------------------------------------------
_LIST_KEYS: dict[str, Callable[[dict[str, Any]], str]] = {
    "streams": lambda s: f"ch{s.get('channel')}-{'main' if s.get('main') else 'sub'}"
                         + (f"-{s['token']}" if s.get("token") else ""),
    "users": lambda u: str(u.get("name")),
    "channels": lambda c: str(c.get("id")),
    "network.interfaces": lambda n: str(n.get("name")),
}
_ABSENT = object()


def _keyed(keyf: Callable[[dict[str, Any]], str], items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for x in items:
        k = keyf(x)
        n = 2
        while k in out:  # two records with the same identity: keep both, numbered in order
            k = f"{keyf(x)}#{n}"
            n += 1
        out[k] = x
    return out


@dataclass(frozen=True)
class Change:
    path: str
    old: Any
    new: Any

    def render(self) -> str:
        return f"{self.path}: {_show(self.old)} → {_show(self.new)}"


def _show(v: Any) -> str:
    if v is _ABSENT:
        return "(absent)"
    return json.dumps(v, ensure_ascii=False, sort_keys=True)


def diff(old: Any, new: Any, path: str = "") -> list[Change]:
    """Per-field changes with dotted paths; lists of records are matched by identity (stream, user, ...)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(old) | set(new), key=str):
            p = f"{path}.{k}" if path else str(k)
            out += diff(old.get(k, _ABSENT), new.get(k, _ABSENT), p)
        return out
    keyf = _LIST_KEYS.get(path)
    if keyf and isinstance(old, list) and isinstance(new, list) and all(isinstance(x, dict) for x in old + new):
        a, b = _keyed(keyf, old), _keyed(keyf, new)
        out = []
        for k in list(a) + [k for k in b if k not in a]:
            p = f"{path}[{k}]"
            if k in a and k in b:
                out += diff(a[k], b[k], p)
            else:
                out.append(Change(p, a.get(k, _ABSENT), b.get(k, _ABSENT)))
        return out
    if old == new:
        return []
    return [Change(path, old, new)]


# --- policy rules and drift -------------------------------------------------------------------------------------
@dataclass
class DriftReport:
    device_id: str
    school_id: str | None
    status: Status
    summary: str
    changes: list[Change] = field(default_factory=list)
    violations: list[tuple[Status, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    snapshot_id: str | None = None
    baseline_id: str | None = None

    def to_result(self) -> Result:
        return Result(self.device_id, "config-drift", self.status, self.summary, school_id=self.school_id,
                      data={"changes": [{"path": c.path, "old": None if c.old is _ABSENT else c.old,
                                         "new": None if c.new is _ABSENT else c.new} for c in self.changes],
                            "violations": [{"status": s.value, "rule": m} for s, m in self.violations],
                            "notes": self.notes, "snapshot_id": self.snapshot_id, "baseline_id": self.baseline_id})


def policy_violations(device: "Device", snap: dict[str, Any]) -> tuple[list[tuple[Status, str]], list[str]]:
    """(violations, notes) of the canteen rules: NTP set, main-stream resolution ≥ policy, NVR records 24 h."""
    violations: list[tuple[Status, str]] = []
    notes: list[str] = []
    t = snap.get("time") or {}
    if t.get("ntp_enabled") is False or (t.get("ntp_enabled") and not t.get("ntp_servers")):
        violations.append((Status.WARN, "NTP is not configured (time mode "
                           f"{t.get('mode') or 'unknown'}): recordings lose their evidential value as the clock drifts"))
    elif t.get("ntp_enabled") is None:
        notes.append("NTP setting not reported by the device (not checked)")
    min_w, min_h = device.policy.min_width_height
    for s in snap.get("streams") or []:
        if s.get("main") and s.get("width") and s.get("height") and (s["width"] < min_w or s["height"] < min_h):
            violations.append((Status.WARN, f"channel {s.get('channel')} main stream is {s['width']}x{s['height']}, "
                               f"below the policy minimum {device.policy.min_resolution}"))
    mode = (snap.get("recording") or {}).get("mode")
    if device.kind == "nvr":
        if mode is None:
            notes.append("recording mode not reported by the device (24 h recording not checked)")
        elif mode != "continuous":
            violations.append((Status.CRIT, f"recording mode is {mode}, not continuous (canteen video must be "
                               "recorded 24 h)"))
    return violations, notes


def assess_drift(device: "Device", snapshot: dict[str, Any] | None, baseline: dict[str, Any] | None
                 ) -> DriftReport:
    """Newest snapshot vs accepted baseline, plus the policy rules. Rows are snapshots-table rows."""
    if snapshot is None:
        return DriftReport(device.id, device.school_id, Status.UNKNOWN,
                           "no snapshot taken yet (canteen-ops snapshot take)")
    violations, notes = policy_violations(device, snapshot["data"])
    changes: list[Change] = []
    parts = []
    if baseline is None:
        notes.append("no accepted baseline (canteen-ops snapshot accept DEVICE)")
    elif baseline["sha256"] != snapshot["sha256"]:
        changes = diff(baseline["data"], snapshot["data"])
    statuses = [s for s, _ in violations]
    if changes:
        statuses.append(Status.WARN)
        shown = ", ".join(c.path for c in changes[:5]) + (f" (+{len(changes) - 5} more)" if len(changes) > 5 else "")
        parts.append(f"{len(changes)} setting(s) differ from the baseline: {shown}")
    if baseline is None and not violations:
        statuses.append(Status.UNKNOWN)
    parts += [m for _, m in violations]
    if not parts:
        parts.append("matches the accepted baseline" if baseline else "no baseline to compare with")
    if notes and baseline is not None and not changes and not violations:
        parts.append("; ".join(notes))
    return DriftReport(device.id, device.school_id, worst(statuses), "; ".join(parts), changes, violations, notes,
                       snapshot["id"], baseline["id"] if baseline else None)


# --- taking and storing -------------------------------------------------------------------------------------------
def _default_factory(device: "Device") -> "Driver":
    from canteen_ops.drivers.base import open_driver

    return open_driver(device)


def _stream_info(driver: "Driver") -> list[dict[str, Any]] | None:
    """ONVIF encoder configurations do not say which channel they feed; the driver's streams() does."""
    from canteen_ops.drivers.base import DriverError

    try:
        return [{"channel": s.channel, "main": s.main, "codec": s.codec, "width": s.width, "height": s.height,
                 "fps": s.fps, "bitrate_kbps": s.bitrate_kbps} for s in driver.streams()]
    except DriverError:
        return None


def take_snapshot(device: "Device", factory: Callable[["Device"], "Driver"] | None = None) -> Result:
    """Read the device's settings and normalize them; never raises for device trouble."""
    from canteen_ops.drivers.base import DriverError, NotSupported

    try:
        with (factory or _default_factory)(device) as driver:
            raw = driver.settings()
            if device.vendor == "onvif":
                raw = {**raw, "stream_info": _stream_info(driver)}
    except NotSupported as exc:
        return Result(device.id, "snapshot", Status.UNKNOWN, f"the device offers no settings read-out: {exc}",
                      school_id=device.school_id)
    except DriverError as exc:
        return Result(device.id, "snapshot", Status.UNKNOWN, f"could not read settings: {type(exc).__name__}: "
                      f"{exc}", school_id=device.school_id)
    snap = normalize(device.vendor, raw)
    return Result(device.id, "snapshot", Status.OK, "", school_id=device.school_id,
                  data={"snapshot": snap, "sha256": digest(snap)})


def newest(log: "MaintenanceLog", device_id: str, n: int = 1) -> list[dict[str, Any]]:
    return log.query("SELECT * FROM snapshots WHERE device_id = ? ORDER BY seq DESC LIMIT ?", [device_id, n])


def changes_since(log: "MaintenanceLog", devices: Iterable["Device"], since: str) -> list[dict[str, Any]]:
    """Devices whose configuration changed since `since` (UTC ISO): the snapshot in effect then (the newest taken
    before) against the newest; a device first snapshotted in the window has old None. Unchanged ones are left out."""
    out = []
    for d in devices:
        rows = log.query("SELECT * FROM snapshots WHERE device_id = ? AND created_at >= ? ORDER BY seq", [d.id, since])
        if not rows:
            continue
        before = log.query("SELECT * FROM snapshots WHERE device_id = ? AND created_at < ? ORDER BY seq DESC "
                           "LIMIT 1", [d.id, since])
        newest_row = rows[-1]
        old = before[0] if before else None
        out.append({"device_id": d.id, "school_id": d.school_id, "old": old["id"] if old else None,
                    "new": newest_row["id"], "new_at": newest_row["created_at"], "snapshots": len(rows),
                    "changes": diff(old["data"], newest_row["data"]) if old else []})
    return out


def baseline(log: "MaintenanceLog", device_id: str) -> dict[str, Any] | None:
    rows = log.query("SELECT * FROM snapshots WHERE device_id = ? AND accepted_at IS NOT NULL "
                     "ORDER BY accepted_at DESC, seq DESC LIMIT 1", [device_id])
    return rows[0] if rows else None


def find_snapshot(log: "MaintenanceLog", device_id: str, ident: str) -> dict[str, Any]:
    from canteen_ops.errors import NotFound, UsageError

    rows = log.query("SELECT * FROM snapshots WHERE device_id = ? AND (id = ? OR (length(?) >= 6 AND id LIKE ?)) "
                     "ORDER BY seq DESC", [device_id, ident, ident, ident.replace("%", "") + "%"])
    exact = [r for r in rows if r["id"] == ident]
    rows = exact or rows
    if not rows:
        raise NotFound(f"{device_id} has no snapshot {ident!r} (see: canteen-ops snapshot show {device_id})")
    if len(rows) > 1:
        raise UsageError(f"snapshot id prefix {ident!r} is ambiguous; give more characters")
    return rows[0]


def store_snapshot(log: "MaintenanceLog", r: Result, run_id: str | None) -> tuple[str, bool]:
    """Record a taken snapshot. Identical to the device's newest one → that row is confirmed (run_id and
    updated_at bumped) instead of duplicated, so `diff` with no arguments shows the last real change.
    Returns (snapshot id, new?)."""
    sha = r.data["sha256"]
    with log.transaction():
        last = newest(log, r.device_id)
        if last and last[0]["sha256"] == sha:
            log.update("snapshots", last[0]["id"], {"run_id": run_id})
            return last[0]["id"], False
        sid = log.insert("snapshots", {"run_id": run_id, "school_id": r.school_id, "device_id": r.device_id,
                                       "sha256": sha, "data": canonical(r.data["snapshot"]).decode()})
        return sid, True


def run_snapshots(log: "MaintenanceLog", devices: list["Device"], *, run_id: str | None = None,
                  driver_factory: Callable[["Device"], "Driver"] | None = None, workers: int | None = None,
                  deadline_s: float | None = 60.0, progress: bool | None = False) -> list[Result]:
    from canteen_ops.runner import run_devices

    results: list[Result] = []

    def emit(r: Result) -> None:
        if r.check == "snapshot" and r.status is Status.OK:
            sid, new = store_snapshot(log, r, run_id)
            r.data = {"snapshot_id": sid, "sha256": r.data["sha256"], "new": new}
            r.summary = (f"snapshot {sid[:8]} sha256 {r.data['sha256'][:12]}" if new
                         else f"unchanged since snapshot {sid[:8]}")
        results.append(r)

    run_devices(devices, lambda d: [take_snapshot(d, driver_factory)], workers=workers, deadline_s=deadline_s,
                on_result=emit, progress=progress, label="snapshot")
    return results


def drift_reports(log: "MaintenanceLog", devices: Iterable["Device"]) -> list[DriftReport]:
    out = []
    for d in devices:
        snaps = newest(log, d.id)
        out.append(assess_drift(d, snaps[0] if snaps else None, baseline(log, d.id)))
    return out

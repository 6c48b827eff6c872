"""State of one simulated device, shared by its protocol front-ends (ISAPI, Dahua CGI, ONVIF, RTSP).

Protocol modules read this state to build responses and never keep their own, so a fault set through the
lab API (`lab fault`) shows up consistently on every protocol of the device.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any

# Every fault the lab knows, with the meaning of its optional value.
FAULTS: dict[str, str] = {
    "offline": "refuse connections (the listening socket is closed)",
    "blackhole": "accept connections, never answer",
    "slow": "add latency to every answer; value = milliseconds (default 2000)",
    "wrong-password": "the device's password differs from the inventory's",
    "lock-after": "lock the source address after N failed logins (default 5); value = N",
    "nonce-once": "Dahua firmware that takes a digest nonce once: a reused one is refused with 401 (value 403: "
                  "with 403) and counted as a failed login",
    "locked": "the source address is locked now (illegal-login lock)",
    "time-needs-auth": "ONVIF: GetSystemDateAndTime without a WS-Security token is refused with a "
                       "'Sender not authorized' fault (value 401: with a bare HTTP 401), as some cameras do",
    "analog-dvr": "Hikvision NVR answers as an analog DVR (iDS-72xx): deviceType DVR, no IP channels, its channels "
                  "are the video inputs (resDesc, NO VIDEO on video loss)",
    "clock-drift": "device clock off by N seconds (+/-); value = seconds",
    "clock-reset": "device clock reset to 1970-01-01 (after power loss without RTC battery)",
    "old-firmware": "runs an outdated firmware version",
    "vulnerable-firmware": "runs a firmware version with a known advisory",
    "export-refused": "the configuration export is refused with HTTP 403 (the user lacks the right)",
    "sd-card": "a camera has an SD card (128 GB, ok); the hdd-* faults then apply to it",
    "hdd-error": "NVR disk 1 reports an error",
    "hdd-unformatted": "NVR disk 1 is unformatted",
    "hdd-full": "NVR disk 1 has no free space",
    "no-hdd": "NVR has no disk installed",
    "retention": "recordings reach back only N days; value = days",
    "gaps": "recordings have gaps in the last 24 h; value = number of 1-hour gaps (default 2)",
    "channel-offline": "NVR channel N has video loss; value = channel number",
    "ntp-off": "NTP is disabled (manual time)",
    "black": "stream shows a black picture",
    "frozen": "stream shows a frozen picture (OSD clock stops too)",
    "blurred": "stream is blurred as by grease or steam on the lens",
    "covered": "lens is covered",
    "colour-cast": "stream has a strong colour cast",
    "no-stream": "RTSP answers but sends no video",
    "low-res": "stream is 1280x720 instead of 1920x1080",
    "malformed-xml": "XML answers are truncated and invalid",
    "oversized-body": "answers carry a huge body (64 MiB)",
    "xml-bomb": "XML answers contain an entity-expansion bomb",
    "cut-head": "answers stop in the middle of their headers and the connection closes; value = only for request "
                "paths containing this text",
}

STREAM_FAULTS = ("black", "frozen", "blurred", "covered", "colour-cast", "no-stream", "low-res")
HOSTILE_FAULTS = ("malformed-xml", "oversized-body", "xml-bomb")
RECORD_MODES = ("continuous", "motion", "off")
UPGRADE_SECONDS = 3.0  # how long a simulated firmware flash takes


class UnknownFault(ValueError):
    pass


def parse_fault(spec: str) -> tuple[str, str | None]:
    """'clock-drift=+120' → ('clock-drift', '+120'); validates the name."""
    name, _, value = spec.partition("=")
    name = name.strip()
    if name not in FAULTS:
        raise UnknownFault(f"unknown fault {name!r}; known: {', '.join(FAULTS)}")
    return name, (value.strip() or None)


@dataclass
class Disk:
    id: int
    capacity_mb: int = 3815447  # a 4 TB disk as NVRs report it
    free_mb: int = 1204
    status: str = "ok"


@dataclass
class ChannelState:
    """An NVR channel (or a camera's own single channel)."""

    id: int
    name: str
    ip: str | None = None  # the camera feeding this NVR channel
    online: bool = True
    width: int = 1920
    height: int = 1080
    fps: int = 25
    codec: str = "H.264"
    bitrate_kbps: int = 4096
    rtsp_path: str = ""


@dataclass
class DeviceState:
    id: str
    kind: str  # camera | nvr
    vendor: str  # hikvision | dahua | onvif
    host: str
    http_port: int
    rtsp_port: int
    username: str
    password: str
    model: str
    serial: str
    firmware: str  # vendor-formatted, e.g. "V5.7.18 build 240826" or "2.800.0000016.0.R,build:2020-06-05"
    mac: str
    name: str
    channels: list[ChannelState] = field(default_factory=list)
    disks: list[Disk] = field(default_factory=list)
    retention_days: float = 45.0
    timezone: str = "CST-8:00:00"  # POSIX, inverted sign: UTC+8
    utc_offset_s: int = 8 * 3600
    ntp_server: str | None = "127.0.0.1"
    users: list[tuple[str, str]] = field(default_factory=lambda: [("admin", "Administrator"),
                                                                   ("operator", "Operator")])
    record_mode: str = "continuous"  # continuous | motion | off
    supports_system_backup: bool = False  # ONVIF GetSystemBackup capability
    auth: str = "digest"  # digest | basic (some old Dahua cameras/NVRs accept Basic only, realm Device_CGI)
    upgrade: dict[str, Any] = field(default_factory=dict)  # firmware upgrade in progress: started, target
    faults: dict[str, str | None] = field(default_factory=dict)
    failed_logins: int = 0
    locked_until: float = 0.0
    created: float = field(default_factory=time.time)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    # protocol session objects (e.g. Dahua mediaFileFind finders); not settings, never shown or exported
    _sessions: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    # --- faults --------------------------------------------------------------------------------------
    def set_fault(self, name: str, value: str | None = None) -> None:
        name, parsed = parse_fault(f"{name}={value}" if value is not None else name)
        with self._lock:
            self.faults[name] = parsed
            if name == "locked":
                self.locked_until = time.time() + 1800

    def clear_fault(self, name: str | None = None) -> None:
        with self._lock:
            if name is None:
                self.faults.clear()
                self.locked_until, self.failed_logins = 0.0, 0
            else:
                self.faults.pop(name, None)
                if name in ("locked", "lock-after"):
                    self.locked_until, self.failed_logins = 0.0, 0

    def has(self, name: str) -> bool:
        return name in self.faults

    def fault_value(self, name: str, default: float) -> float:
        raw = self.faults.get(name)
        try:
            return float(raw) if raw is not None else default
        except ValueError:
            return default

    # --- authentication and the illegal-login lock --------------------------------------------------
    @property
    def effective_password(self) -> str:
        # "wrong-password": the device was re-keyed, so the inventory's password no longer works.
        return self.password + "-changed" if self.has("wrong-password") else self.password

    def is_locked(self) -> bool:
        return self.has("locked") or time.time() < self.locked_until

    def unlock_in_s(self) -> int:
        return max(0, int(self.locked_until - time.time())) if not self.has("locked") else 1800

    def record_login(self, ok: bool) -> None:
        """Count failed logins; lock after N consecutive failures like Hikvision/Dahua do."""
        with self._lock:
            if ok:
                self.failed_logins = 0
                return
            self.failed_logins += 1
            threshold = int(self.fault_value("lock-after", 5))
            if self.failed_logins >= threshold:
                self.locked_until = time.time() + 1800

    def retries_left(self) -> int:
        return max(0, int(self.fault_value("lock-after", 5)) - self.failed_logins)

    # --- clock -------------------------------------------------------------------------------------
    def now_utc(self) -> dt.datetime:
        if self.has("clock-reset"):
            boot = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
            return boot + dt.timedelta(seconds=time.time() - self.created)
        drift = self.fault_value("clock-drift", 0.0)
        return dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=drift)

    def now_local(self) -> dt.datetime:
        return self.now_utc().astimezone(dt.timezone(dt.timedelta(seconds=self.utc_offset_s)))

    def set_clock(self, utc: dt.datetime) -> None:
        """Someone set the device's time (ISAPI PUT time, Dahua setCurrentTime): drift becomes the difference."""
        drift = (utc - dt.datetime.now(dt.timezone.utc)).total_seconds()
        with self._lock:
            self.faults.pop("clock-reset", None)
            if abs(drift) < 1:
                self.faults.pop("clock-drift", None)
            else:
                self.faults["clock-drift"] = f"{drift:+.0f}"

    @property
    def ntp_enabled(self) -> bool:
        return self.ntp_server is not None and not self.has("ntp-off")

    # --- firmware ------------------------------------------------------------------------------------
    @property
    def effective_firmware(self) -> str:
        if self.has("vulnerable-firmware"):
            return "V5.5.0 build 170725" if self.vendor == "hikvision" else "2.400.0000000.16.R,build:2016-11-01"
        if self.has("old-firmware"):
            return "V5.6.3 build 200308" if self.vendor == "hikvision" else "2.800.0000000.8.R,build:2019-03-04"
        return self.firmware

    # --- firmware upgrade -----------------------------------------------------------------------------
    def start_upgrade(self, version: str) -> None:
        with self._lock:
            self.upgrade = {"state": "upgrading", "started": time.time(), "target": version}

    def upgrade_progress(self) -> tuple[str, int]:
        """('idle' | 'upgrading' | 'done', percent). Flashing takes UPGRADE_SECONDS; then the new firmware runs."""
        with self._lock:
            if not self.upgrade:
                return "idle", 0
            if self.upgrade["state"] == "upgrading":
                pct = int(min(100.0, (time.time() - self.upgrade["started"]) / UPGRADE_SECONDS * 100))
                if pct < 100:
                    return "upgrading", pct
                self.firmware = self.upgrade["target"]
                self.faults.pop("old-firmware", None)
                self.faults.pop("vulnerable-firmware", None)
                self.upgrade["state"] = "done"
            return "done", 100

    # --- storage and recordings ----------------------------------------------------------------------
    def effective_disks(self) -> list[Disk]:
        if self.has("no-hdd"):
            return []
        disks = [Disk(d.id, d.capacity_mb, d.free_mb, d.status) for d in self.disks]
        if not disks and self.kind == "camera" and self.has("sd-card"):
            disks = [Disk(1, 121942, 26623, "ok")]  # as the recorded DS-2CD2346G2-ISU's card (hdde)
        if disks:
            if self.has("hdd-error"):
                disks[0].status = "error"
            if self.has("hdd-unformatted"):
                disks[0].status, disks[0].free_mb = "unformatted", 0
            if self.has("hdd-full"):
                disks[0].free_mb = 0
        return disks

    def recorded_spans(self, channel: int) -> list[tuple[dt.datetime, dt.datetime]]:
        """Continuous recording from (now - retention) to now, minus gaps and offline channels. UTC."""
        now = self.now_utc().replace(microsecond=0)
        ch = next((c for c in self.channels if c.id == channel), None)
        if ch is None or self.record_mode == "off" or not self.effective_disks():
            return []
        days = self.fault_value("retention", self.retention_days)
        start = now - dt.timedelta(days=days)
        spans = [(start, now)]
        holes = []
        for i in range(int(self.fault_value("gaps", 2)) if self.has("gaps") else 0):
            hole_end = now - dt.timedelta(hours=3 + 5 * i)
            holes.append((hole_end - dt.timedelta(hours=1), hole_end))
        if self.has("channel-offline") and int(self.fault_value("channel-offline", 1)) == channel:
            holes.append((now - dt.timedelta(hours=2), now))  # video loss since 2 h ago
        return without(spans, holes)

    def local_segments(self, channel: int, start: dt.datetime, end: dt.datetime
                       ) -> list[tuple[dt.datetime, dt.datetime]]:
        """Recorded files of a channel inside [start, end), device-local naive times, one file per local hour."""
        offset = dt.timedelta(seconds=self.utc_offset_s)
        out = []
        for s_utc, e_utc in self.recorded_spans(channel):
            s = max((s_utc + offset).replace(tzinfo=None), start)
            t_end = min((e_utc + offset).replace(tzinfo=None), end)
            while s < t_end:
                nxt = min(t_end, s.replace(minute=0, second=0, microsecond=0) + dt.timedelta(hours=1))
                out.append((s, nxt))
                s = nxt
        return out

    def channel_online(self, channel: ChannelState) -> bool:
        if self.has("channel-offline") and int(self.fault_value("channel-offline", 1)) == channel.id:
            return False
        return channel.online

    def stream_size(self, channel: ChannelState) -> tuple[int, int]:
        return (1280, 720) if self.has("low-res") else (channel.width, channel.height)

    SUB_SIZE = (640, 360)

    def sub_stream_path(self, channel: ChannelState) -> str | None:
        """Cameras also stream a 640x360 sub-stream, as real ones do: Hikvision track x02, Dahua subtype=1,
        the ONVIF cameras a second media profile."""
        if self.kind != "camera":
            return None
        if self.vendor == "hikvision":
            return f"/Streaming/Channels/{channel.id}02"
        if self.vendor == "dahua":
            return channel.rtsp_path.replace("subtype=0", "subtype=1")
        return channel.rtsp_path.replace("/main", "/sub") if channel.rtsp_path.endswith("/main") else None

    # --- configuration --------------------------------------------------------------------------------
    def config_dict(self) -> dict[str, Any]:
        """The device's settings; what a config export contains and what snapshots normalize."""
        return {
            "identity": {"model": self.model, "serial": self.serial, "firmware": self.effective_firmware,
                         "name": self.name, "mac": self.mac},
            "network": {"ip": self.host, "http_port": self.http_port, "rtsp_port": self.rtsp_port},
            "time": {"timezone": self.timezone, "ntp_server": self.ntp_server if self.ntp_enabled else None,
                     "mode": "NTP" if self.ntp_enabled else "manual"},
            "streams": [{"channel": c.id, "codec": c.codec, "width": self.stream_size(c)[0],
                         "height": self.stream_size(c)[1], "fps": c.fps, "bitrate_kbps": c.bitrate_kbps}
                        for c in self.channels],
            "recording": {"mode": self.record_mode},
            "users": [{"name": n, "level": lvl} for n, lvl in self.users],
        }

    def apply_config(self, cfg: dict[str, Any]) -> None:
        """Restore settings from a config_dict() export (identity and network are the device's own, kept)."""
        with self._lock:
            ident = cfg.get("identity", {})
            self.name = str(ident.get("name", self.name))
            t = cfg.get("time", {})
            if "timezone" in t:
                self.timezone = str(t["timezone"])
            if "ntp_server" in t:
                self.ntp_server = t["ntp_server"] or None
            for s in cfg.get("streams", []):
                ch = next((c for c in self.channels if c.id == s.get("channel")), None)
                if ch is not None:
                    ch.codec = str(s.get("codec", ch.codec))
                    ch.width, ch.height = int(s.get("width", ch.width)), int(s.get("height", ch.height))
                    ch.fps, ch.bitrate_kbps = int(s.get("fps", ch.fps)), int(s.get("bitrate_kbps", ch.bitrate_kbps))
            mode = cfg.get("recording", {}).get("mode")
            if mode in RECORD_MODES:
                self.record_mode = mode
            if cfg.get("users"):
                self.users = [(str(u["name"]), str(u["level"])) for u in cfg["users"]]

    def set_setting(self, key: str, value: str) -> None:
        """Change one setting, as a technician would on the device (used by `lab set` to make config drift).

        Keys: name, model, ntp_server (empty = none), timezone, record_mode, retention_days, firmware, auth (digest |
        basic), channel.N.{width,height,fps,bitrate_kbps,codec,name}. Raises ValueError for bad keys or values.
        """
        parts = key.split(".")
        with self._lock:
            if key in ("name", "model", "timezone", "firmware"):
                setattr(self, key, value)
            elif key == "ntp_server":
                self.ntp_server = value or None
            elif key == "record_mode":
                if value not in RECORD_MODES:
                    raise ValueError(f"record_mode must be one of {', '.join(RECORD_MODES)}")
                self.record_mode = value
            elif key == "retention_days":
                self.retention_days = float(value)
            elif key == "auth":  # digest | basic: old Dahua devices that accept Basic only
                if value not in ("digest", "basic"):
                    raise ValueError("auth must be digest or basic")
                self.auth = value
            elif len(parts) == 3 and parts[0] == "channel" and parts[1].isdigit():
                ch = next((c for c in self.channels if c.id == int(parts[1])), None)
                if ch is None:
                    raise ValueError(f"device {self.id} has no channel {parts[1]}")
                attr = parts[2]
                if attr in ("width", "height", "fps", "bitrate_kbps"):
                    setattr(ch, attr, int(value))
                elif attr in ("codec", "name"):
                    setattr(ch, attr, value)
                else:
                    raise ValueError(f"unknown channel setting {attr!r}")
            else:
                raise ValueError(f"unknown setting {key!r}; known: name, model, ntp_server, timezone, record_mode, "
                                 "retention_days, firmware, auth, channel.N.(width|height|fps|bitrate_kbps|codec|name)")

    def config_blob(self) -> bytes:
        """A deterministic export: identical settings give identical bytes (content-addressed backups)."""
        return json.dumps(self.config_dict(), sort_keys=True, ensure_ascii=False).encode()

    def config_digest(self) -> str:
        return hashlib.sha256(self.config_blob()).hexdigest()

    def public(self) -> dict[str, Any]:
        """What `lab status` shows: no password."""
        d = {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")
             and f.name != "password"}
        d["channels"] = [asdict(c) for c in self.channels]
        d["disks"] = [asdict(x) for x in self.effective_disks()]
        d["firmware"] = self.effective_firmware
        return d


def without(spans: list[tuple[dt.datetime, dt.datetime]], holes: list[tuple[dt.datetime, dt.datetime]]
            ) -> list[tuple[dt.datetime, dt.datetime]]:
    """The parts of `spans` not covered by any hole (recording gaps cut out of continuous recording)."""
    for hs, he in sorted(holes):
        out = []
        for s, e in spans:
            if he <= s or hs >= e:
                out.append((s, e))
                continue
            if s < hs:
                out.append((s, hs))
            if he < e:
                out.append((he, e))
        spans = out
    return spans

"""Typed inventory objects. Everything here is already validated and fully inherited."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field, fields, replace

from canteen_ops.errors import CanteenOpsError

KINDS = ("camera", "nvr")
VENDORS = ("hikvision", "dahua", "onvif")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class SecretUnavailable(CanteenOpsError):
    """A credential's password could not be read (env var unset, file missing)."""


@dataclass(frozen=True)
class Credentials:
    name: str
    username: str
    password_env: str | None = None
    password_file: str | None = None
    password: str | None = field(default=None, repr=False)  # plaintext: allowed, warned about

    def resolve(self) -> str:
        """Return the password (and register it for redaction). Never log or print the result.

        Read once per loaded inventory, i.e. once per run: a run opens every device with it, and a file read per
        device was ~80 us each (1,000 devices: 0.08 s of CPU, a password file opened 1,000 times)."""
        from canteen_ops.redact import remember_secret

        value = self.__dict__.get("_resolved")
        if value is None:
            value = self._read()
            object.__setattr__(self, "_resolved", value)  # frozen: a cache, not a field (no repr, eq or hash)
        remember_secret(value)
        return value

    def _read(self) -> str:
        if self.password_env:
            value = os.environ.get(self.password_env)
            if value is None:
                raise SecretUnavailable(
                    "credentials {name!r}: environment variable {password_env} is not set"
                , name=self.name, password_env=self.password_env)
            return value
        if self.password_file:
            from canteen_ops.secretfile import SecretFileError, read_secret_file

            try:
                return read_secret_file(self.password_file).rstrip("\r\n")
            except SecretFileError as exc:
                raise SecretUnavailable(
                    "credentials {name!r}: cannot read password_file {password_file}: {exc}"
                , name=self.name, password_file=self.password_file, exc=exc) from None
        if self.password is not None:
            return self.password
        raise SecretUnavailable("credentials {name!r} has no password source", name=self.name)


@dataclass(frozen=True)
class WorkingHours:
    days: tuple[int, ...] = (0, 1, 2, 3, 4)  # Monday = 0
    start: dt.time = dt.time(8, 0)
    end: dt.time = dt.time(18, 0)
    timezone: str = "Asia/Shanghai"
    closed: tuple[tuple[dt.date, dt.date], ...] = ()  # school closures and vacations, first and last day inclusive
    open_days: tuple[dt.date, ...] = ()  # extra working days on days that are normally off
    closed_reasons: tuple[str | None, ...] = ()  # why, per entry of `closed` (暑假, 停水检修): shown, never counted
    statutory: bool = True  # China's statutory holidays are off and its make-up days (调休) on (cncalendar.py)

    def is_working_day(self, day: dt.date) -> bool:
        return self.day_kind(day)[0]

    def day_kind(self, day: dt.date) -> tuple[bool, str]:
        """(working?, why): a closure declared in the inventory wins, then its open days, then the statutory
        calendar, then the weekdays."""
        for i, (first, last) in enumerate(self.closed):
            if first <= day <= last:
                reason = self.closed_reasons[i] if i < len(self.closed_reasons) else None
                return False, f"school closed ({reason})" if reason else "school closed"
        if day in self.open_days:
            return True, "declared working day"
        if self.statutory:
            from canteen_ops.cncalendar import statutory_day

            known = statutory_day(day)
            if known is not None:
                holiday, name = known
                return (False, f"statutory holiday ({name})") if holiday else (True, f"make-up working day 调休 ({name})")
        return day.weekday() in self.days, "weekday" if day.weekday() in self.days else "day off"


@dataclass(frozen=True)
class Policy:
    """Thresholds. Every field can be overridden at defaults, group, school or device level."""

    clock_warn_s: float = 5.0
    clock_crit_s: float = 60.0
    retention_warn_days: float = 30.0
    retention_crit_days: float = 7.0
    gap_window_hours: float = 24.0
    gap_min_minutes: float = 5.0
    hdd_free_warn_pct: float = 0.0  # NVRs overwrite when full; 0 disables the free-space warning
    min_resolution: str = "1920x1080"
    min_fps: float = 15.0
    # A thermal sensor's own minima: 640x512 is a large one, and export versions run at 9 fps.
    thermal_min_resolution: str = "160x120"
    thermal_min_fps: float = 8.0
    stream_timeout_s: float = 10.0
    latency_warn_ms: float = 400.0
    dark_luma: float = 30.0
    bright_luma: float = 220.0
    low_contrast: float = 25.0
    blur_laplacian: float = 100.0
    blur_drop_pct: float = 50.0
    colour_cast_k: float = 1.5
    frozen_similarity: float = 0.95
    frozen_frames: int = 10
    covered_uniform_pct: float = 98.0
    backup_stale_hours: float = 24.0
    required_areas: tuple[str, ...] = ("加工区", "烹饪区", "专间", "洗消间", "备餐区", "留样区")
    # Device checks not to run at all: what a device class cannot answer (storage over ONVIF) would otherwise
    # be an `unknown` every night and keep a healthy estate's exit status at 3.
    skip_checks: tuple[str, ...] = ()
    # Incident SLAs (O&M plan §1.3.2): hours from opening until a technician must be on site, chosen by whether
    # the incident was opened inside or outside the school's working hours; and the restore limit (GB/T 29315).
    incident_major_inside_h: float = 1.0
    incident_major_outside_h: float = 2.0
    incident_general_inside_h: float = 2.0
    incident_general_outside_h: float = 4.0
    incident_resolve_h: float = 24.0
    # `watch` (docs/watch.md): minutes between the slow checks (recordings, stream, picture, coverage) of a school,
    # and the hold-down after an automatic resolve: a fault that comes back within it re-opens the same incident
    # once, which then stays open until the device has been well for a whole hold-down (a flapping device).
    watch_slow_interval_min: float = 60.0
    watch_hold_down_min: float = 30.0

    def for_channel(self, kind: str | None) -> "Policy":
        """The policy for one camera channel: a thermal sensor is held to the thermal minima."""
        if kind == "thermal":
            return replace(self, min_resolution=self.thermal_min_resolution, min_fps=self.thermal_min_fps)
        return self

    @property
    def min_width_height(self) -> tuple[int, int]:
        w, h = self.min_resolution.lower().split("x")
        return int(w), int(h)


POLICY_FIELDS = {f.name: f for f in fields(Policy)}


@dataclass(frozen=True)
class Contact:
    name: str
    role: str | None = None
    phone: str | None = None
    email: str | None = None


@dataclass(frozen=True)
class Device:
    id: str
    kind: str
    vendor: str
    host: str
    port: int
    rtsp_port: int
    https: bool
    school_id: str
    credentials: Credentials | None
    timeout: float
    policy: Policy
    name: str | None = None
    area: str | None = None
    nvr: str | None = None
    nvr_channel: int | None = None
    model: str | None = None
    serial: str | None = None
    installed: dt.date | None = None
    warranty_until: dt.date | None = None
    tags: tuple[str, ...] = ()
    line: int = 0  # where the device is defined in the inventory file
    auth: str | None = None  # "basic": Basic authentication may go out over plain HTTP (docs/inventory.md)
    tls: str = "insecure"  # https: "verify" (CA bundle), "pin" (trust on first use) or "insecure"
    tls_ca: str | None = None  # tls: verify — a CA bundle instead of the system's
    tls_legacy: bool = False  # older TLS versions and cipher suites, legacy renegotiation

    @property
    def base_url(self) -> str:
        scheme = "https" if self.https else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"

    @property
    def label(self) -> str:
        return f"{self.id} ({self.name})" if self.name else self.id


@dataclass(frozen=True)
class School:
    id: str
    name: str
    district: str | None
    address: str | None
    contacts: tuple[Contact, ...]
    working_hours: WorkingHours
    policy: Policy
    devices: tuple[Device, ...]
    group: str | None = None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Settings:
    """Tool-wide settings from the inventory's `settings` block."""

    backup_dir: str | None = None
    firmware_catalog: str | None = None
    upstream_url: str | None = None
    upstream_token_env: str = "CANTEEN_OPS_UPSTREAM_TOKEN"
    upstream_token_file: str | None = None
    timezone: str = "Asia/Shanghai"
    notify: tuple = ()  # NotifyTarget (canteen_ops/notify/config.py)
    roster_file: str | None = None  # the duty roster in its own file (canteen_ops/roster.py)


@dataclass(frozen=True)
class Inventory:
    path: str
    version: int
    settings: Settings
    policy: Policy  # the defaults-level policy
    credentials: dict[str, Credentials]
    groups: tuple[str, ...]
    schools: tuple[School, ...]
    warnings: tuple[str, ...] = ()
    roster: object = None  # canteen_ops.roster.Roster: who is on duty (定岗值班); None when none is declared

    def notify_target(self, name: str):
        return next((t for t in self.settings.notify if t.name == name), None)

    @property
    def devices(self) -> list[Device]:
        return [d for s in self.schools for d in s.devices]

    def device(self, device_id: str) -> Device:
        for d in self.devices:
            if d.id == device_id:
                return d
        raise KeyError(device_id)

    def school_ids_of(self, device_ids: list[str]) -> set[str]:
        """The schools of these devices; NotFound (exit 66) names the first device not in the inventory."""
        from canteen_ops.errors import NotFound

        schools = set()
        for did in device_ids:
            try:
                schools.add(self.device(did).school_id)
            except KeyError:
                raise NotFound("device {did!r} is not in the inventory {where}", did=did, where=self.path) from None
        return schools

    def school(self, school_id: str) -> School:
        for s in self.schools:
            if s.id == school_id:
                return s
        raise KeyError(school_id)

"""The one driver interface (NAPALM-style getters with typed return models) and its error types.

Every vendor driver implements the same getters. A getter a device cannot answer raises NotSupported, which
checks report as n/a ("not applicable"), never as a failure; Forbidden (a NotSupported: HTTP 403) is a refusal to our
user, reported as unknown. Drivers never retry a rejected login: the first
AuthFailed for a device is remembered for the rest of the process and re-raised without network traffic.
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from canteen_ops.inventory.model import Device


# --- errors -------------------------------------------------------------------------------------------
class DriverError(Exception):
    """Base for everything a driver raises about a device."""


class NotSupported(DriverError):
    """The device (or this driver) does not offer this operation: checks report it as n/a."""


class Forbidden(NotSupported):
    """The device offers the operation but refuses it to our user (HTTP 403: too little privilege). A getter that
    merely reads something optional may treat it like NotSupported (it is one); a check reports it as unknown
    ("we could not find out") and a backup as failed, never as n/a."""


class Offline(DriverError):
    """Connection refused, host unreachable, DNS failure: the device is not there."""


class Timeout(DriverError):
    """The device accepted or was sent a request but did not answer within the deadline."""


class AuthFailed(DriverError):
    """The device rejected our credentials. Never retried."""


class CredentialsUnavailable(AuthFailed):
    """The inventory gives no usable password for the device (none configured, env var unset, file missing):
    nothing was sent, so nothing was refused."""


class Locked(AuthFailed):
    """The device has locked our source address after failed logins."""

    def __init__(self, message: str, unlock_in_s: float | None = None):
        super().__init__(message)
        self.unlock_in_s = unlock_in_s


class Withheld(AuthFailed):
    """No credentials were sent: this device refused a login (or locked us out) recently, in this or an earlier
    command, and its lockout window has not passed (store/logins.py). `--force-login` sends them anyway."""

    def __init__(self, message: str, unlock_in_s: float | None = None):
        super().__init__(message)
        self.unlock_in_s = unlock_in_s


class Refused(DriverError):
    """We refused to go on with the device: it asked for something unsafe (Basic over plain HTTP, a TLS
    certificate other than the pinned one). Nothing secret was sent."""


class ProtocolError(DriverError):
    """The device answered with something we cannot use: malformed or hostile XML, a huge body, bad status."""


def named_errors(getter):
    """Decorator for driver getters: a ProtocolError raised deep in a parser (which knows no device) gets the
    device id and the getter's name in front, so a technician can tell which device sent what."""
    import functools

    @functools.wraps(getter)
    def wrapper(self, *args, **kwargs):
        try:
            return getter(self, *args, **kwargs)
        except ProtocolError as exc:
            if exc.args and not str(exc.args[0]).startswith(f"{self.device.id}:"):
                exc.args = (f"{self.device.id}: {getter.__name__}: {exc.args[0]}",) + exc.args[1:]
            raise

    return wrapper


# --- return models -------------------------------------------------------------------------------------
@dataclass
class Facts:
    vendor: str
    model: str | None = None
    serial: str | None = None
    firmware: str | None = None  # as the vendor writes it, e.g. "V5.7.18 build 240826"
    device_type: str | None = None  # IPCamera / NVR / ...
    mac: str | None = None
    name: str | None = None
    hardware: str | None = None


@dataclass
class Clock:
    device_utc: dt.datetime | None  # the device's idea of "now", converted to UTC
    host_utc: dt.datetime  # our UTC at the moment of the reading (mid-RTT)
    timezone: str | None = None  # as the device writes it, e.g. "CST-8:00:00"
    mode: str | None = None  # "NTP" | "manual" | None if unknown
    ntp_servers: list[str] = field(default_factory=list)
    ntp_enabled: bool | None = None
    ntp_servers_offered: bool = True  # False: the firmware has no server list to read (404/notSupport)

    @property
    def drift_s(self) -> float | None:
        if self.device_utc is None:
            return None
        return (self.device_utc - self.host_utc).total_seconds()


@dataclass
class Disk:
    id: str
    status: str  # normalized: ok | error | unformatted | full | absent | unknown
    raw_status: str | None = None
    capacity_mb: float | None = None
    free_mb: float | None = None
    read_only: bool = False
    name: str | None = None


@dataclass
class Channel:
    id: int  # 1-based channel number as the technician knows it
    online: bool | None  # None when the device does not say
    name: str | None = None
    detail: str | None = None  # e.g. chanDetectResult / VideoLoss reason
    ip: str | None = None
    kind: str | None = None  # "thermal" for a thermal sensor (its own policy minima); None: a visible-light one


@dataclass
class RecordingSpan:
    channel: int
    start: dt.datetime  # UTC
    end: dt.datetime  # UTC


@dataclass
class StreamInfo:
    channel: int
    name: str | None
    uri: str | None  # never with credentials inside
    codec: str | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    bitrate_kbps: float | None = None
    main: bool = True


@dataclass
class ConfigExport:
    content: bytes
    content_type: str
    method: str  # e.g. "isapi-configurationData", "dahua-Config.backup", "onvif-GetSystemBackup"
    extension: str  # file extension for the stored backup, e.g. ".bin", ".json"


@dataclass
class UpgradeStatus:
    upgrading: bool
    percent: int | None = None
    state: str | None = None


def reason(exc: BaseException) -> str:
    """The first line of an exception's message (its type when it has none), at most 160 characters: what error
    messages quote of a library's or the OS's exception."""
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:160]


# --- the login guard ------------------------------------------------------------------------------------
class _AuthGuard:
    """Remembers rejected logins per device for the life of the process (= one run), and the devices that refused
    a digest nonce presented a second time (drivers/http.py: they get a fresh challenge for every request)."""

    def __init__(self) -> None:
        self._failed: dict[str, AuthFailed] = {}
        self._no_reuse: set[str] = set()
        self._lock = threading.Lock()
        self._memory = None  # store.logins.LoginMemory: refusals of earlier commands (installed by the CLI)

    def use_memory(self, memory) -> None:
        """Remember refusals across commands (None: this process only)."""
        self._memory = memory

    @property
    def memory(self):
        """The installed memory (check passes it on to its worker processes)."""
        return self._memory

    def check(self, device_id: str) -> None:
        with self._lock:
            exc = self._failed.get(device_id)
        if exc is not None:
            if isinstance(exc, Withheld):
                raise exc
            raise type(exc)(f"{exc} (not retried: a device locks us out after repeated failures)")
        memory = self._memory
        withheld = memory.withheld(device_id) if memory is not None else None
        if withheld is not None:
            with self._lock:
                self._failed.setdefault(device_id, withheld)
            raise withheld

    def record(self, device_id: str, exc: AuthFailed) -> None:
        with self._lock:
            first = device_id not in self._failed
            self._failed.setdefault(device_id, exc)
        memory = self._memory
        if first and memory is not None:
            memory.record(device_id, exc)

    def refuses_reuse(self, device_id: str) -> bool:
        with self._lock:
            return device_id in self._no_reuse

    def record_refused_reuse(self, device_id: str) -> None:
        with self._lock:
            self._no_reuse.add(device_id)

    def reset(self) -> None:  # for tests and long-lived processes that start a new run
        with self._lock:
            self._failed.clear()
            self._no_reuse.clear()


auth_guard = _AuthGuard()


class _TlsPins:
    """The accepted certificate fingerprints of `tls: pin` devices, for every command that opens drivers (backup,
    snapshot, firmware…, not only check): a command that opened the maintenance log sets `source` (a function
    returning device id → fingerprint, store/tlspins.py), read once when the first pinned device is opened."""

    def __init__(self) -> None:
        self._source: Any = None
        self._pins: dict[str, str] | None = None
        self._lock = threading.Lock()

    def set_source(self, source) -> None:
        with self._lock:
            self._source, self._pins = source, None

    def refresh(self) -> dict[str, str] | None:
        """Every pin, read from the source now (a run starts: pins accepted since an earlier read count, as in
        `watch`'s next round) and kept for get(); None without a source."""
        with self._lock:
            if self._source is None:
                return None
            self._pins = dict(self._source())
            return dict(self._pins)

    def get(self, device_id: str) -> str | None:
        with self._lock:
            if self._pins is None:
                if self._source is None:
                    return None
                self._pins = dict(self._source())
            return self._pins.get(device_id)


tls_pins = _TlsPins()


# --- the interface ---------------------------------------------------------------------------------------
class Driver:
    """Base class. Subclasses implement the getters they can; the rest raise NotSupported."""

    vendor = "generic"
    DEFAULT_TIMEZONE = "Asia/Shanghai"

    def __init__(self, device: "Device", password: str, *, timeout: float | None = None,
                 timezone: str | None = None):
        self.device = device
        self._password = password  # never logged, never returned
        self.timeout = timeout if timeout is not None else device.timeout
        # The inventory's settings.timezone: used only where a device gives local time without a zone
        # and no way to learn its offset (see docs/drivers.md).
        self.timezone = timezone or self.DEFAULT_TIMEZONE
        self.deadline_s: float | None = None

    def set_deadline(self, seconds: float | None) -> None:
        """Bound all further network work of this driver to `seconds` from now (None: only per-request
        timeouts). Drivers with their own transport override this to pass it down."""
        self.deadline_s = seconds

    def __repr__(self) -> str:  # no secrets in reprs
        return f"<{type(self).__name__} {self.device.id} {self.device.host}:{self.device.port}>"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        pass

    def adopt_connection(self, sock) -> bool:
        """Take over a TCP connection already open to the device's management port (the reachable check's), so
        the device accepts one connection per run instead of two. False: this driver cannot use it and the
        caller closes it."""
        return False

    @staticmethod
    def base_model(model: str) -> str:
        """The model without the variant suffixes a device adds to what an inventory (or a catalog) calls it,
        upper-cased; vendors override it (HikvisionDriver: `DS-7608NXI-I2/8P/S` is a `DS-7608NXI-I2`)."""
        return model.strip().upper()

    # Getters -------------------------------------------------------------------------------------------
    def login(self) -> None:
        """Verify credentials with one cheap authenticated request."""
        raise NotSupported("login")

    def facts(self) -> Facts:
        raise NotSupported("facts")

    def clock(self) -> Clock:
        raise NotSupported("clock")

    def storage(self) -> list[Disk]:
        raise NotSupported("storage")

    def channels(self) -> list[Channel]:
        raise NotSupported("channels")

    def video_inputs(self) -> list[Channel]:
        """A camera's own video inputs (sensors): multi-sensor and thermal bi-spectrum cameras have several, and
        each is a channel with its own stream and picture. Default, without a request: one input."""
        return [Channel(id=1, online=None)]

    def recordings(self, channel: int, start: dt.datetime, end: dt.datetime) -> list[RecordingSpan]:
        """Recorded spans of one channel between start and end (UTC), oldest first."""
        raise NotSupported("recordings")

    def recorded_any(self, channel: int, start: dt.datetime, end: dt.datetime) -> bool:
        """Whether anything was recorded on the channel between start and end (UTC). The retention check asks
        this of every channel first; drivers whose search pages through files answer it with one file."""
        return bool(self.recordings(channel, start, end))

    def streams(self) -> list[StreamInfo]:
        raise NotSupported("streams")

    def stream_uri(self, channel: int = 1, main: bool = True) -> str:
        """RTSP URI of a live stream, without credentials."""
        raise NotSupported("stream_uri")

    def export_config(self) -> ConfigExport:
        raise NotSupported("export_config")

    def import_config(self, export: ConfigExport) -> None:
        raise NotSupported("import_config")

    @staticmethod
    def normalize_settings(raw: dict[str, Any]) -> dict[str, Any]:
        """This vendor's settings() answer → the vendor-neutral snapshot (drivers/settings.py)."""
        raise NotSupported("normalize_settings")

    def settings(self) -> dict[str, Any]:
        """Raw settings for a normalized snapshot: identity, network, time, streams, recording, users, ports."""
        raise NotSupported("settings")

    def upgrade_status(self) -> UpgradeStatus:
        raise NotSupported("upgrade_status")

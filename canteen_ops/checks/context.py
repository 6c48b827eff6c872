"""What a check sees: the device, its school and policy, a lazily opened driver, and history from the log.

One CheckContext per device per run. The driver is opened on first use and closed by the device runner at
the end; getter answers are memoized so that two checks reading the same getter (clock and ntp, retention
and gaps, stream and picture) cost one request.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from canteen_ops.drivers.base import AuthFailed, Driver, DriverError, auth_guard

if TYPE_CHECKING:
    from canteen_ops.inventory.model import Device, Inventory, Policy, School
    from canteen_ops.store.log import MaintenanceLog

DriverFactory = Callable[["Device"], Driver]


class NoCredentials(DriverError):
    """The inventory gives no usable password for the device (env var unset, file missing): nothing was sent."""


class History:
    """Earlier results from the maintenance log, read once in the calling thread (the log connection is not
    shared with worker threads)."""

    def __init__(self, blur: dict[str, list[float]] | None = None):
        self._blur = blur or {}

    @classmethod
    def load(cls, log: "MaintenanceLog | None", device_ids: list[str], *, limit: int = 30) -> "History":
        """The newest `limit` blur values of each camera's earlier ok pictures (a known-clean lens)."""
        if log is None or not device_ids:
            return cls()
        blur: dict[str, list[float]] = {}
        rows = log.conn.execute(
            "SELECT device_id, json_extract(data, '$.blur') AS blur FROM results "
            "WHERE check_name = 'picture' AND json_extract(data, '$.blur') IS NOT NULL "
            "AND status = 'ok' ORDER BY seq DESC").fetchall()
        wanted = set(device_ids)
        for row in rows:
            if row["device_id"] in wanted:
                values = blur.setdefault(row["device_id"], [])
                if len(values) < limit:
                    values.append(float(row["blur"]))
        return cls(blur)

    def blur_baseline(self, device_id: str) -> float | None:
        """Median blur (variance of Laplacian) of the camera's earlier pictures, None without history."""
        values = sorted(self._blur.get(device_id, ()))
        if not values:
            return None
        mid = len(values) // 2
        return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


@dataclass
class CheckContext:
    device: "Device"
    school: "School"
    inventory: "Inventory"
    history: History = field(default_factory=History)
    driver_factory: DriverFactory | None = None
    now: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc))
    deadline_s: float | None = None  # the device's budget in this run, from when its context was made
    started: float = field(default_factory=time.monotonic)
    skip_reason: str | None = None  # set when the device cannot be checked further (offline, login refused)
    answered: bool = False  # the device has answered at least one driver request in this run
    media: Any = None  # procpool.WorkerProcesses for the picture analysis; None: in this thread
    tls_pins: dict[str, str] = field(default_factory=dict)  # device id → accepted certificate (tls: pin)
    _driver: Driver | None = field(default=None, repr=False)
    _spare: Any = field(default=None, repr=False)  # the reachable check's open connection, for the driver
    _memo: dict[Any, Any] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def policy(self) -> "Policy":
        return self.device.policy

    @property
    def timezone(self) -> str:
        return self.school.working_hours.timezone or self.inventory.settings.timezone

    @property
    def driver(self) -> Driver:
        if self._driver is None:
            # A login this process already saw rejected is never tried again (auth_guard re-raises it).
            auth_guard.check(self.device.id)
            if self.driver_factory is not None:
                self._driver = self.driver_factory(self.device)
            else:
                from canteen_ops.drivers.registry import open_driver

                try:
                    self._driver = open_driver(self.device, timezone=self.inventory.settings.timezone,
                                               tls_pin=self.tls_pins.get(self.device.id))
                except AuthFailed as exc:  # raised before any traffic: a credentials problem in the inventory
                    raise NoCredentials(str(exc)) from None
            if self.deadline_s is not None:
                self._driver.set_deadline(self.remaining())
            spare, self._spare = self._spare, None
            if spare is not None and not self._driver.adopt_connection(spare):
                spare.close()
        return self._driver

    def remaining(self) -> float | None:
        """Seconds left of the device's deadline (None: no deadline)."""
        if self.deadline_s is None:
            return None
        return max(0.0, self.deadline_s - (time.monotonic() - self.started))

    def get(self, getter: str, *args: Any) -> Any:
        """Call a driver getter once per run; later calls (and failures) come from the memo."""
        key = (getter, *args)
        if key in self._memo:
            value = self._memo[key]
            if isinstance(value, BaseException):
                raise value
            return value
        try:
            value = getattr(self.driver, getter)(*args)
        except DriverError as exc:
            self._memo[key] = exc
            raise
        self.answered = True
        self._memo[key] = value
        return value

    def remember(self, key: Any, compute: Callable[[], Any]) -> Any:
        """Memoize a derived value (e.g. the stream probe shared by the stream and picture checks)."""
        if key not in self._memo:
            try:
                self._memo[key] = compute()
            except DriverError as exc:
                self._memo[key] = exc
        value = self._memo[key]
        if isinstance(value, BaseException):
            raise value
        return value

    def recordings(self, channel: int, hours: float) -> list:
        """Recorded spans of the last `hours` on an NVR channel, reusing a wider search done earlier in this
        run (retention searches weeks back; gaps then needs only the last day)."""
        widest = self._memo.get(("window", channel), 0.0)
        if hours > widest:
            self._memo[("window", channel)] = widest = hours
        spans = self.get("recordings", channel, self.now - dt.timedelta(hours=widest), self.now)
        cut = self.now - dt.timedelta(hours=hours)
        return [s for s in spans if s.end > cut]

    def mapped_channels(self) -> dict[int, list["Device"]]:
        """Inventory cameras recorded by this NVR, by channel number. They are in the NVR's school (the inventory
        refuses anything else), so that is all it reads: scanning the whole fleet for every NVR, several times per
        check, grew with the square of the fleet (65 us a scan at 1,000 devices, ~30 ms a run; at 10,000 devices
        it would have been ~3 s a run)."""
        if "mapped_channels" not in self._memo:
            out: dict[int, list["Device"]] = {}
            for d in self.school.devices:
                if d.nvr == self.device.id and d.nvr_channel is not None:
                    out.setdefault(d.nvr_channel, []).append(d)
            self._memo["mapped_channels"] = dict(sorted(out.items()))
        return self._memo["mapped_channels"]

    def keep_connection(self, sock) -> None:
        """Keep the reachable check's connection for the driver (drivers that cannot use it close it)."""
        if self._spare is not None:
            self._spare.close()
        self._spare = sock

    def close(self) -> None:
        spare, self._spare = self._spare, None
        if spare is not None:
            spare.close()
        driver, self._driver = self._driver, None
        if driver is not None:
            try:
                driver.close()
            except Exception:  # closing must never turn a device's results into an error
                pass

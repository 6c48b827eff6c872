"""A scriptable in-memory Driver for unit tests of tasks that only need the driver interface."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from canteen_ops.drivers.base import ConfigExport, Driver, Facts, NotSupported


@dataclass
class FakeDevice:
    export: ConfigExport | None = None  # None → NotSupported
    error: Exception | None = None  # raised by export_config / facts / settings
    delay: float = 0.0
    gate: threading.Event | None = None  # export waits on it (lock-contention tests)
    facts: Facts | None = None
    settings: dict[str, Any] | None = None
    imported: list[ConfigExport] = field(default_factory=list)
    import_error: Exception | None = None


class FakeFleet:
    """device id → FakeDevice; `factory` builds drivers the tasks accept."""

    def __init__(self) -> None:
        self.devices: dict[str, FakeDevice] = {}
        self.calls: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def __getitem__(self, device_id: str) -> FakeDevice:
        return self.devices.setdefault(device_id, FakeDevice())

    def factory(self, device) -> "FakeDriver":
        return FakeDriver(device, "secret-pw", fleet=self)


class FakeDriver(Driver):
    vendor = "fake"

    def __init__(self, device, password, *, fleet: FakeFleet, timeout=None):
        super().__init__(device, password, timeout=timeout)
        self.fleet = fleet
        self.spec = fleet[device.id]

    def _call(self, name: str) -> None:
        with self.fleet._lock:
            self.fleet.calls.append((self.device.id, name))
        if self.spec.gate is not None:
            self.spec.gate.wait(10)
        if self.spec.delay:
            time.sleep(self.spec.delay)
        if self.spec.error is not None:
            raise self.spec.error

    def export_config(self) -> ConfigExport:
        self._call("export_config")
        if self.spec.export is None:
            raise NotSupported("GetSystemBackup")
        return self.spec.export

    def import_config(self, export: ConfigExport) -> None:
        self._call("import_config")
        if self.spec.import_error is not None:
            raise self.spec.import_error
        self.spec.imported.append(export)

    def facts(self) -> Facts:
        self._call("facts")
        if self.spec.facts is None:
            raise NotSupported("facts")
        return self.spec.facts

    def settings(self) -> dict[str, Any]:
        self._call("settings")
        if self.spec.settings is None:
            raise NotSupported("settings")
        return self.spec.settings


def hik_export(payload: bytes = b"HIKCFG\x00\x01config-v1") -> ConfigExport:
    return ConfigExport(payload, "application/octet-stream", "isapi-configurationData", ".bin")


def dahua_export(text: str = '{"General": {"MachineName": "cam"}}') -> ConfigExport:
    return ConfigExport(text.encode(), "application/json", "dahua-Config.backup", ".json")

"""Device selection shared by every command: --school, --device (glob), --kind, --vendor, --area, --tag."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from canteen_ops.inventory.model import Device, Inventory


@dataclass(frozen=True)
class Selection:
    """Filters are ANDed; the values given for one filter are ORed. Empty selection = every device."""

    schools: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    vendors: tuple[str, ...] = ()
    areas: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()

    def matches(self, inv: Inventory, device: Device) -> bool:
        if self.schools:
            school = inv.school(device.school_id)
            if not any(s in (school.id, school.name) or fnmatch.fnmatchcase(school.id, s) for s in self.schools):
                return False
        if self.devices and not any(fnmatch.fnmatchcase(device.id, g) for g in self.devices):
            return False
        if self.kinds and device.kind not in self.kinds:
            return False
        if self.vendors and device.vendor not in self.vendors:
            return False
        if self.areas and device.area not in self.areas:
            return False
        if self.tags and not set(self.tags) & set(device.tags):
            return False
        return True

    def apply(self, inv: Inventory) -> list[Device]:
        return [d for d in inv.devices if self.matches(inv, d)]

    def as_args(self) -> dict[str, list[str]]:
        return {k: list(v) for k, v in self.__dict__.items() if v}

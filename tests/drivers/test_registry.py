"""Drivers by vendor name (drivers/registry.py), and vendor knowledge with its driver."""

from __future__ import annotations

import subprocess
import sys

import pytest

from canteen_ops.drivers.registry import VENDORS, driver_class


@pytest.mark.parametrize("vendor", sorted(VENDORS))
def test_every_vendor_has_a_driver_with_its_own_settings_normaliser(vendor):
    cls = driver_class(vendor)
    assert cls.vendor == vendor
    snap = cls.normalize_settings({})
    assert set(snap) >= {"identity", "network", "time", "streams", "recording", "channels", "users", "ports"}
    assert snap["identity"]["vendor"] == vendor


def test_base_imports_no_vendor_and_the_registry_loads_one_on_use():
    code = ("import sys; import canteen_ops.drivers.base, canteen_ops.drivers.registry as r; "
            "v = [m for m in ('hikvision', 'dahua', 'onvif') if 'canteen_ops.drivers.' + m in sys.modules]; "
            "r.driver_class('dahua'); "
            "print(v, 'canteen_ops.drivers.dahua' in sys.modules, 'zeep' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[] True False"


def test_snapshot_task_holds_no_vendor_normaliser():
    import canteen_ops.tasks.snapshot as snap

    assert not [n for n in dir(snap) if n.startswith("normalize_")]

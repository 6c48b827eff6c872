"""Fixtures shared by the vendor driver tests against the lab: a module sets VENDOR ("hikvision", "dahua") and
DRIVER (the class open_driver must build) and gets `inv`, `nvr`, `cam` and `connect` (drivers closed after)."""

from __future__ import annotations

import pytest

from canteen_ops.drivers.registry import open_driver


@pytest.fixture(scope="module")
def inv(lab):
    from canteen_ops.inventory.loader import load_inventory

    return load_inventory(lab.inventory)


@pytest.fixture
def nvr(lab, request):
    return lab.first(request.module.VENDOR, "nvr")


@pytest.fixture
def cam(lab, request):
    return lab.first(request.module.VENDOR, "camera")


@pytest.fixture
def connect(inv, request):
    opened = []

    def make(state, timeout=None, **device_changes):
        import dataclasses

        device = dataclasses.replace(inv.device(state.id), **device_changes)
        drv = open_driver(device, timeout=timeout, timezone=inv.settings.timezone)
        assert isinstance(drv, request.module.DRIVER)
        opened.append(drv)
        return drv

    yield make
    for drv in opened:
        drv.close()

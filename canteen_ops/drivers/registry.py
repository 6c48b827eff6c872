"""Drivers by vendor name: the one place that knows which module serves which vendor.

base.py defines the interface and imports no vendor; the vendor modules import base.py; this registry imports a
vendor module on first use (a check of Hikvision devices never loads zeep). A new vendor is one line here.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from canteen_ops.drivers.base import CredentialsUnavailable, Driver, NotSupported, auth_guard, tls_pins

if TYPE_CHECKING:
    from canteen_ops.inventory.model import Device

VENDORS: dict[str, str] = {
    "hikvision": "canteen_ops.drivers.hikvision:HikvisionDriver",
    "dahua": "canteen_ops.drivers.dahua:DahuaDriver",
    "onvif": "canteen_ops.drivers.onvif:OnvifDriver",
}


def driver_class(vendor: str) -> type[Driver]:
    """A vendor's driver class, its module (and protocol stack) imported on first use."""
    target = VENDORS.get(vendor)
    if target is None:  # pragma: no cover - the inventory validates vendors
        raise NotSupported(f"vendor {vendor}")
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def open_driver(device: "Device", *, timeout: float | None = None, timezone: str | None = None,
                tls_pin: str | None = None) -> Driver:
    """Build the right driver for a device, resolving its password from env/file (never printed). tls_pin: the
    accepted certificate fingerprint of a `tls: pin` device (None: the one tls_pins has, else first use)."""
    from canteen_ops.inventory.model import SecretUnavailable

    auth_guard.check(device.id)
    if device.credentials is None:
        raise CredentialsUnavailable(f"{device.id}: no credentials configured in the inventory")
    try:
        password = device.credentials.resolve()
    except SecretUnavailable as exc:
        raise CredentialsUnavailable(str(exc)) from None
    if tls_pin is None and device.https and getattr(device, "tls", None) == "pin":
        tls_pin = tls_pins.get(device.id)
    driver = driver_class(device.vendor)(device, password, timeout=timeout,
                                         **({"tls_pin": tls_pin} if tls_pin else {}))
    if timezone:  # set after construction so every driver's __init__ signature keeps working
        driver.timezone = timezone
    return driver

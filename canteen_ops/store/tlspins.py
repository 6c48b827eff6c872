"""Pinned TLS certificates (`tls: pin`, trust on first use), kept in the maintenance log as results of the `tls`
check: a result whose data says pinned=true names the fingerprint accepted for its device from then on. `check`
records one when it first meets a device's certificate; `device accept-cert` records one for a changed
certificate; a changed certificate is a CRIT `tls` result (pinned=false) until then."""

from __future__ import annotations

from typing import TYPE_CHECKING

from canteen_ops.status import Result, Status

if TYPE_CHECKING:
    from canteen_ops.inventory.model import Device
    from canteen_ops.store.log import MaintenanceLog

TLS_CHECK = "tls"


def accepted_pins(log: "MaintenanceLog") -> dict[str, str]:
    """device id → the fingerprint accepted last."""
    rows = log.query("SELECT device_id, json_extract(data, '$.fingerprint') AS fp FROM results "
                     "WHERE check_name = ? AND json_extract(data, '$.pinned') = 1 ORDER BY seq", [TLS_CHECK])
    return {r["device_id"]: r["fp"] for r in rows if r["device_id"] and r["fp"]}


def pinned(device: "Device", fingerprint: str, how: str, **data) -> Result:
    """The result that pins `fingerprint` for `device` (how: 'on first use', 'accepted by NAME')."""
    return Result(device.id, TLS_CHECK, Status.OK, f"TLS certificate pinned {how}: SHA-256 {fingerprint}",
                  data={"fingerprint": fingerprint, "pinned": True, **data}, school_id=device.school_id)


def changed(device: "Device", fingerprint: str, accepted: str, message: str) -> Result:
    return Result(device.id, TLS_CHECK, Status.CRIT, message,
                  data={"fingerprint": fingerprint, "accepted": accepted, "pinned": False, "error": "CertChanged"},
                  school_id=device.school_id)


__all__ = ["TLS_CHECK", "accepted_pins", "changed", "pinned"]

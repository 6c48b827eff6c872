"""`canteen-ops device accept-cert`: what a technician does to one device's connection settings."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from canteen_ops.cli.common import env

app = typer.Typer(help="One device's connection: accept a changed TLS certificate.", no_args_is_help=True)


@app.command("accept-cert")
def accept_cert(
    ctx: typer.Context,
    device: Annotated[str, typer.Argument(metavar="DEVICE", help="Device id (tls: pin in the inventory)")],
    fingerprint: Annotated[Optional[str], typer.Option(
        "--fingerprint", metavar="SHA256", help="Accept only if the device shows this certificate (the SHA-256 "
        "from the CRIT `tls` result, colons optional); refused (77) otherwise")] = None,
) -> int:
    """Pin the TLS certificate a `tls: pin` device shows now, after it changed (a new certificate after a reset
    or a firmware upgrade): `check` reports the device CRIT until this is done. Connects once (TLS handshake
    only, no credentials sent) and records the fingerprint in the maintenance log."""
    from canteen_ops.drivers.base import DriverError
    from canteen_ops.drivers.transport import device_certificate
    from canteen_ops.errors import PermissionRefused, Unavailable, UsageError
    from canteen_ops.store.tlspins import accepted_pins, pinned

    e = env(ctx)
    inv = e.inventory()
    inv.school_ids_of([device])  # NotFound (66) when it is not in the inventory
    dev = inv.device(device)
    if not dev.https or dev.tls != "pin":
        raise UsageError(f"device {dev.id}: accept-cert is for HTTPS devices with tls: pin (this one: "
                         f"{'https' if dev.https else 'plain HTTP'}, tls: {dev.tls})")
    try:
        seen = device_certificate(dev)
    except DriverError as exc:
        raise Unavailable(f"cannot read the certificate: {exc}") from None
    if fingerprint is not None and _norm(fingerprint) != _norm(seen):
        raise PermissionRefused(f"device {dev.id} shows SHA-256 {seen}, not the one given: nothing accepted")
    log = e.log()
    before = accepted_pins(log).get(dev.id)
    if before == seen:
        e.console.print(f"{dev.id}: SHA-256 {seen} is already the accepted certificate", markup=False,
                        highlight=False, soft_wrap=True)
        return 0
    with log.run("device accept-cert", e.argv, e.operator) as run:
        run.record(pinned(dev, seen, f"accepted by {e.operator}", replaced=before, accepted_by=e.operator))
    e.console.print(f"{dev.id}: accepted SHA-256 {seen}" + (f" (was {before})" if before else ""), markup=False,
                    highlight=False, soft_wrap=True)
    return 0


def _norm(fp: str) -> str:
    return fp.replace(":", "").replace(" ", "").strip().upper()

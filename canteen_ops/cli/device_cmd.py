"""`canteen-ops device`: one device's answers captured for a bug report or the lab; a changed TLS certificate accepted."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from canteen_ops.cli.common import MAX_SECONDS
from canteen_ops.cli.common import (AreaOpt, DeviceOpt, KindOpt, SchoolOpt, TagOpt, VendorOpt, echo, env, select,
                                    write_output)

HELP = ("Work on one device: capture its answers for a bug report or the lab, accept a changed TLS "
        "certificate.")
app = typer.Typer(help=HELP, rich_markup_mode=None, add_completion=False, no_args_is_help=True)


@app.command()
def capture(
    ctx: typer.Context,
    device_id: Annotated[Optional[str], typer.Argument(metavar="DEVICE", help="Device id (or use the selection flags)")
                         ] = None,
    output: Annotated[Path, typer.Option("--output", "-o", metavar="FILE", help="Capture file (one device), or a "
                                         "directory that gets DEVICE.capture.json per selected device")] = ...,
    school: SchoolOpt = None, device: DeviceOpt = None, kind: KindOpt = None, vendor: VendorOpt = None,
    area: AreaOpt = None, tag: TagOpt = None,
    only: Annotated[Optional[list[str]], typer.Option("--only", metavar="CHECKS", help="As `check --only`")] = None,
    skip: Annotated[Optional[list[str]], typer.Option("--skip", metavar="CHECKS", help="As `check --skip`")] = None,
    deadline: Annotated[float, typer.Option("--deadline", min=0.1, max=MAX_SECONDS, metavar="SECONDS",
                                            help="Seconds allowed per device")] = 90.0,
) -> int:
    """Run the check on a device while recording every answer its driver reads (no writes, nothing more than
    `check` sends), mask serial numbers, MACs, addresses, user and channel names and secrets, and write the capture
    file. `canteen-ops lab up --replay FILE` serves it again. A device that answered nothing gets no file (exit 69)."""
    from canteen_ops.capture import capture as run_capture, dumps
    from canteen_ops.checks.run import select_checks
    from canteen_ops.errors import UsageError
    from canteen_ops.i18n import _
    from canteen_ops.summaries import translate

    e = env(ctx)
    names = select_checks(only, skip)
    if device_id is not None:
        if any((school, device, kind, vendor, area, tag)):
            raise UsageError("give DEVICE or selection flags, not both")
        device = [device_id]
    devices = select(ctx, school, device, kind, vendor, area, tag)
    if not devices:
        raise UsageError("no devices match the selection" if device_id is None else f"no device {device_id!r} "
                         "in the inventory")
    many = len(devices) > 1 or output.is_dir()
    if many:
        output.mkdir(parents=True, exist_ok=True)
    inv = e.inventory()
    empty = []
    for d in devices:
        doc, results = run_capture(d, inv, names, deadline_s=deadline)
        if not doc["exchanges"]:
            why = next((r.summary for r in results if r.device_id == d.id and r.status.value != "ok"), "")
            line = _("{device}: nothing recorded, no file written ({why})") if why else \
                _("{device}: nothing recorded, no file written")
            echo(line.format(device=d.id, why=translate(why)), err=True)
            empty.append(d.id)
            continue
        target = output / f"{d.id}.capture.json" if many else output
        write_output(target, dumps(doc))
        if not e.quiet:
            echo(_("{device}: {n} answers recorded, masked {masked} → {file}").format(
                device=d.id, n=len(doc["exchanges"]), file=target,
                masked=", ".join(f"{n} {k}" for k, n in doc["masked"].items()) or _("nothing")))
    if empty:
        from canteen_ops.errors import Unavailable

        raise Unavailable("no answers recorded from {empty}: the device did not answer or refused the login (see the "
                          "message above)", empty=', '.join(empty))
    return 0


@app.command("accept-cert")
def accept_cert(
    ctx: typer.Context,
    device: Annotated[str, typer.Argument(metavar="DEVICE", help="Device id (tls: pin in the inventory)")],
    fingerprint: Annotated[Optional[str], typer.Option(
        "--fingerprint", metavar="FINGERPRINT", help="Accept only if the device shows this certificate (the SHA-256 "
        "from the CRIT `tls` result, colons optional); refused (77) otherwise")] = None,
) -> int:
    """Pin the TLS certificate a `tls: pin` device shows now, after it changed (a new certificate after a reset
    or a firmware upgrade): `check` reports the device CRIT until this is done. Connects once (TLS handshake
    only, no credentials sent) and records the fingerprint in the maintenance log."""
    from canteen_ops.drivers.base import DriverError
    from canteen_ops.drivers.transport import device_certificate
    from canteen_ops.errors import PermissionRefused, Unavailable, UsageError
    from canteen_ops.i18n import _
    from canteen_ops.store.tlspins import accepted_pins, pinned

    e = env(ctx)
    inv = e.inventory()
    inv.school_ids_of([device])  # NotFound (66) when it is not in the inventory
    dev = inv.device(device)
    if not dev.https or dev.tls != "pin":
        raise UsageError("device {id}: accept-cert is for HTTPS devices with tls: pin (this one: {detail}, tls: "
                         "{tls})", id=dev.id, detail='https' if dev.https else 'plain HTTP', tls=dev.tls)
    try:
        seen = device_certificate(dev)
    except DriverError as exc:
        raise Unavailable("cannot read the certificate: {exc}", exc=exc) from None
    if fingerprint is not None and _norm(fingerprint) != _norm(seen):
        raise PermissionRefused("device {id} shows SHA-256 {seen}, not the one given: nothing accepted", id=dev.id,
                                seen=seen)
    log = e.log()
    before = accepted_pins(log).get(dev.id)
    if before == seen:
        e.console.print(_("{device}: SHA-256 {fingerprint} is already the accepted certificate").format(
            device=dev.id, fingerprint=seen), markup=False, highlight=False, soft_wrap=True)
        return 0
    with log.run("device accept-cert", e.argv, e.operator) as run:
        run.record(pinned(dev, seen, f"accepted by {e.operator}", replaced=before, accepted_by=e.operator))
    line = _("{device}: accepted SHA-256 {fingerprint} (was {before})") if before else \
        _("{device}: accepted SHA-256 {fingerprint}")
    e.console.print(line.format(device=dev.id, fingerprint=seen, before=before), markup=False, highlight=False,
                    soft_wrap=True)
    return 0


def _norm(fp: str) -> str:
    return fp.replace(":", "").replace(" ", "").strip().upper()

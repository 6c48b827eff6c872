"""`canteen-ops firmware check`: firmware versions against the catalog."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from canteen_ops.summaries import translate
from canteen_ops.cli.common import MAX_WORKERS
from canteen_ops.cli.common import (AreaOpt, DeviceOpt, JsonOpt, KindOpt, SchoolOpt, TagOpt, VendorOpt, env,
                                    print_json, select)

HELP = "Firmware compliance against a catalog of latest, minimum and vulnerable versions."
app = typer.Typer(help=HELP, rich_markup_mode=None, add_completion=False, no_args_is_help=True)



@app.callback()
def _group() -> None:
    """Firmware compliance against a catalog of latest, minimum and vulnerable versions."""
    # A callback keeps `firmware` a group (`firmware check`) even while it has a single command.


_STYLE = {"current": "green", "outdated": "yellow", "vulnerable": "bold red", "unknown-model": "cyan",
          "unknown": "cyan"}
_ORDER = {"vulnerable": 0, "outdated": 1, "unknown": 2, "unknown-model": 3, "current": 4}


@app.command()
def check(ctx: typer.Context, school: SchoolOpt = None, device: DeviceOpt = None, kind: KindOpt = None,
          vendor: VendorOpt = None, area: AreaOpt = None, tag: TagOpt = None,
          catalog: Annotated[Optional[Path], typer.Option(
              "--catalog", metavar="FILE", help="Firmware catalog YAML [default: the inventory's settings.firmware_catalog]")] = None,
          workers: Annotated[Optional[int], typer.Option(min=1, max=MAX_WORKERS, metavar="N", help="Devices in parallel")] = None,
          json: JsonOpt = False) -> int:
    """Report current / outdated / vulnerable / unknown-model per device and record the findings.

    Exit 0 all current, 1 outdated, 2 vulnerable, 3 unknown model or unreadable version; 65 invalid catalog.
    """
    from canteen_ops.errors import UsageError
    from canteen_ops.status import worst
    from canteen_ops.tasks.firmware import STATUS, catalog_path_for, load_catalog, run_firmware_check

    e = env(ctx)
    inv = e.inventory()
    path = catalog_path_for(inv, catalog)
    if path is None:
        raise UsageError("no firmware catalog: pass --catalog FILE or set settings.firmware_catalog in the "
                         "inventory (start from firmware-catalog.example.yaml)")
    cat = load_catalog(path)  # invalid → exit 65 before touching any device
    devices = select(ctx, school, device, kind, vendor, area, tag)
    if not devices:
        raise UsageError("no device matches the selection")
    log = e.log()
    with log.run("firmware check", e.argv, e.operator) as handle:
        findings = run_firmware_check(log, devices, cat, run_id=handle.id, workers=workers,
                                      progress=None if not (e.quiet or json) else False)
        status = worst(STATUS[f.status] for f in findings)
        handle.set_outcome(status.value, status.exit_code)
    findings.sort(key=lambda f: (_ORDER[f.status], f.school_id or "", f.device_id))
    if json:
        print_json([f.__dict__ for f in findings])
        return status.exit_code
    from canteen_ops.i18n import _

    if e.quiet:
        for f in findings:
            if f.status != "current":
                e.err.print(f"{_(f.status)}: {f.school_id}/{f.device_id}: {translate(f.summary)}", markup=False,
                            highlight=False)
        return status.exit_code
    from canteen_ops.cli.render import CODE, ID, Column, status_cell, table

    cols = [Column("school", ID, optional=True), Column("device", ID), Column("model"), Column("firmware"),
            Column("status", CODE), Column("detail", main=True)]
    cells = [(f.school_id, f.device_id, f.model, f.version, status_cell(f.status, styles=_STYLE), translate(f.summary))
             for f in findings]
    e.console.print(table(_("firmware vs {catalog}").format(catalog=path), cols, cells, console=e.console))
    counts: dict[str, int] = {}
    for f in findings:
        counts[f.status] = counts.get(f.status, 0) + 1
    e.console.print(", ".join(f"{n} {_(s)}" for s, n in sorted(counts.items(), key=lambda x: _ORDER[x[0]])))
    return status.exit_code

"""`canteen-ops inventory validate | list | ledger`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from canteen_ops.cli.common import AreaOpt, DeviceOpt, JsonOpt, KindOpt, SchoolOpt, TagOpt, VendorOpt, env, select

app = typer.Typer(help="Read, check and list the inventory (设备台帐).", no_args_is_help=True)


@app.command()
def validate(ctx: typer.Context) -> int:
    """Validate the inventory: every problem with file:line:column; exit 65 if any."""
    inv = env(ctx).inventory()
    n = len(inv.devices)
    env(ctx).console.print(f"{inv.path}: OK — {len(inv.schools)} schools, {n} devices", highlight=False)
    return 0


@app.command("list")
def list_(ctx: typer.Context, school: SchoolOpt = None, device: DeviceOpt = None, kind: KindOpt = None,
          vendor: VendorOpt = None, area: AreaOpt = None, tag: TagOpt = None, json: JsonOpt = False) -> int:
    """List the selected devices."""
    devices = select(ctx, school, device, kind, vendor, area, tag)
    inv = env(ctx).inventory()
    if json:
        from canteen_ops.cli.common import print_json

        print_json([device_row(inv, d) for d in devices])
        return 0
    from rich.table import Table

    table = Table(title=f"{len(devices)} devices", title_justify="left")
    for col in ("school", "device", "kind", "vendor", "host", "area", "name", "nvr/ch", "model"):
        table.add_column(col)
    for d in devices:
        nvr = f"{d.nvr}/{d.nvr_channel}" if d.nvr else ""
        table.add_row(inv.school(d.school_id).name, d.id, d.kind, d.vendor, f"{d.host}:{d.port}", d.area or "",
                      d.name or "", nvr, d.model or "")
    env(ctx).console.print(table)
    return 0


LEDGER_COLUMNS = [
    "school_id", "school_name", "district", "device_id", "name", "kind", "vendor", "host", "port", "area",
    "nvr", "nvr_channel", "model", "serial", "installed", "warranty_until", "tags",
    "observed_model", "observed_serial", "firmware", "last_check_at", "last_status", "last_backup_at",
]


def device_row(inv, d) -> dict:
    s = inv.school(d.school_id)
    return {
        "school_id": s.id, "school_name": s.name, "district": s.district or "", "device_id": d.id,
        "name": d.name or "", "kind": d.kind, "vendor": d.vendor, "host": d.host, "port": d.port,
        "area": d.area or "", "nvr": d.nvr or "", "nvr_channel": d.nvr_channel or "", "model": d.model or "",
        "serial": d.serial or "", "installed": d.installed or "", "warranty_until": d.warranty_until or "",
        "tags": " ".join(d.tags),
    }


@app.command()
def ledger(ctx: typer.Context, output: Annotated[Optional[Path], typer.Option(
               "--output", "-o", help="Write the CSV here (atomically) instead of stdout")] = None,
           school: SchoolOpt = None, device: DeviceOpt = None, kind: KindOpt = None, vendor: VendorOpt = None,
           area: AreaOpt = None, tag: TagOpt = None) -> int:
    """设备台帐: the device ledger as CSV, with facts merged from the latest results in the log."""
    import csv
    import io

    devices = select(ctx, school, device, kind, vendor, area, tag)
    inv = env(ctx).inventory()
    observed = _observed_facts(env(ctx))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=LEDGER_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for d in devices:
        writer.writerow({**device_row(inv, d), **observed.get(d.id, {})})
    if output:
        from canteen_ops.store.files import atomic_write

        atomic_write(output, buf.getvalue().encode("utf-8-sig"))  # BOM so Excel reads the Chinese names
        env(ctx).err.print(f"ledger: {len(devices)} devices written to {output}")
    else:
        typer.echo(buf.getvalue(), nl=False)
    return 0


def _observed_facts(e) -> dict[str, dict]:
    """Per device: what the newest results and backups in the log say (empty if there is no log yet)."""
    if not e.db_path.exists():
        return {}
    log = e.log()
    out: dict[str, dict] = {}
    for r in log.latest_results():
        row = out.setdefault(r["device_id"], {})
        if r["observed_at"] > row.get("last_check_at", ""):
            row["last_check_at"], row["last_status"] = r["observed_at"], r["status"]
        if r["check_name"] == "facts" and isinstance(r["data"], dict):
            row["observed_model"] = r["data"].get("model", "")
            row["observed_serial"] = r["data"].get("serial", "")
            row["firmware"] = r["data"].get("firmware", "")
    for b in log.query("SELECT device_id, MAX(created_at) AS at FROM backups WHERE status = 'ok' GROUP BY device_id"):
        out.setdefault(b["device_id"], {})["last_backup_at"] = b["at"]
    return out

"""`canteen-ops inventory validate | list | ledger | set | add-device`."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from canteen_ops.cli.common import (AreaOpt, DeviceOpt, ExportLangOpt, JsonOpt, KindOpt, OutputOpt, SchoolOpt,
                                    TagOpt, VendorOpt, env, select)

HELP = "Read, check and list the inventory (设备台帐)."
app = typer.Typer(help=HELP, rich_markup_mode=None, add_completion=False, no_args_is_help=True)


@app.command()
def validate(ctx: typer.Context) -> int:
    """Validate the inventory: every problem with file:line:column; exit 65 if any."""
    from canteen_ops.cli.render import plural
    from canteen_ops.i18n import _

    inv = env(ctx).inventory()
    n = len(inv.devices)
    extra = "".join([", " + plural(len(inv.settings.notify), "notify target") if inv.settings.notify else "",
                     ", " + _("{people} on the duty roster").format(people=plural(len(inv.roster.people), "person",
                                                                                    "people"))
                     if inv.roster and inv.roster.people else ""])
    env(ctx).console.print(_("{file}: OK — {schools}, {devices}").format(
        file=inv.path, schools=plural(len(inv.schools), "school"), devices=plural(n, "device")) + extra, soft_wrap=True)
    return 0


@app.command("list")
def list_(ctx: typer.Context, school: SchoolOpt = None, device: DeviceOpt = None, kind: KindOpt = None,
          vendor: VendorOpt = None, area: AreaOpt = None, tag: TagOpt = None, json: JsonOpt = False) -> int:
    """List the selected devices."""
    devices = select(ctx, school, device, kind, vendor, area, tag)
    inv = env(ctx).inventory()
    if json:
        from canteen_ops.cli.common import print_json

        print_json([device_json(inv, d) for d in devices])
        return 0
    from canteen_ops.cli.render import CODE, ID, Column, plural, table
    from canteen_ops.i18n import _

    # One table per school, titled with its name: the Chinese school name does not need a column, and
    # ids, addresses and channels (what people copy) stay whole; names and models are cut to fit.
    console = env(ctx).console
    by_school: dict[str, list] = {}
    for d in devices:
        by_school.setdefault(d.school_id, []).append(d)
    cols = [Column("device", ID), Column("type", CODE), Column("host", ID), Column("area"), Column("name"),
            Column("nvr/ch", ID), Column("model", optional=True)]
    for school_id, devs in by_school.items():
        s = inv.school(school_id)
        title = f"{s.name} ({s.id}{', ' + s.district if s.district else ''}) — {plural(len(devs), 'device')}"
        rows = [(d.id, f"{d.vendor} {d.kind}", f"{d.host}:{d.port}", d.area, d.name,
                 f"{d.nvr}/{d.nvr_channel}" if d.nvr else "", d.model) for d in devs]
        console.print(table(title, cols, rows, console=console, pad_edge=False))
    console.print(_("{devices} in {schools}").format(devices=plural(len(devices), "device"),
                                                      schools=plural(len(by_school), "school")))
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


def device_json(inv, d) -> dict:
    """`inventory list --json`: the effective (inherited) settings with real types; never a password."""
    s = inv.school(d.school_id)
    return {
        "id": d.id, "school_id": s.id, "school_name": s.name, "district": s.district, "name": d.name,
        "kind": d.kind, "vendor": d.vendor, "host": d.host, "port": d.port, "https": d.https,
        "rtsp_port": d.rtsp_port, "timeout": d.timeout, "credentials": d.credentials.name if d.credentials else None,
        "username": d.credentials.username if d.credentials else None, "area": d.area, "nvr": d.nvr,
        "nvr_channel": d.nvr_channel, "model": d.model, "serial": d.serial,
        "installed": d.installed.isoformat() if d.installed else None,
        "warranty_until": d.warranty_until.isoformat() if d.warranty_until else None,
        "tags": list(d.tags), "line": d.line,
    }


@app.command()
def ledger(ctx: typer.Context, output: OutputOpt = None,
           fmt: Annotated[Optional[str], typer.Option("--format", "-f", metavar="FORMAT", help="csv or xlsx "
                                                      "[default: the output file's suffix, else csv]")] = None,
           lang: ExportLangOpt = "en",
           school: SchoolOpt = None, device: DeviceOpt = None, kind: KindOpt = None, vendor: VendorOpt = None,
           area: AreaOpt = None, tag: TagOpt = None) -> int:
    """设备台帐: the device ledger as CSV or xlsx, with facts merged from the latest results in the log."""
    from canteen_ops.cli import export
    from canteen_ops.cli.common import export_lang
    from canteen_ops.cli.render import plural

    fmt = export_lang(lang, fmt, ("csv", "xlsx"), output)
    devices = select(ctx, school, device, kind, vendor, area, tag)
    inv = env(ctx).inventory()
    observed = _observed_facts(env(ctx))
    rows = [{**device_row(inv, d), **observed.get(d.id, {})} for d in devices]
    # A file gets a BOM so Excel reads the Chinese names (stdout only with --lang zh: it is usually a pipe).
    data = export.encode(LEDGER_COLUMNS, rows, fmt=fmt, lang=lang, tz=inv.settings.timezone,
                         sheet="设备台帐" if lang == "zh" else "ledger", bom=output is not None)
    export.write(ctx, data, output, what=plural(len(devices), "device"))
    return 0


def _observed_facts(e) -> dict[str, dict]:
    """Per device: what the newest results and backups in the log say (empty if there is no log yet)."""
    if not e.db_path.exists():
        return {}
    log = e.log()
    out: dict[str, dict] = {}
    for r in log.latest_results():
        if r["device_id"] is None:  # school-level results (coverage) have no device row
            continue
        row = out.setdefault(r["device_id"], {})
        if r["observed_at"] > row.get("last_check_at", ""):
            row["last_check_at"], row["last_status"] = r["observed_at"], r["status"]
    # Facts from the newest facts result that actually carried them: a later failed login (no data)
    # must not blank out what the device reported last time.
    for r in log.query("""
            SELECT r.device_id, r.data FROM results r JOIN (
              SELECT device_id, MAX(seq) AS seq FROM results
              WHERE check_name = 'facts' AND device_id IS NOT NULL AND json_valid(data)
                AND COALESCE(json_extract(data, '$.model'), json_extract(data, '$.serial'),
                             json_extract(data, '$.firmware')) IS NOT NULL
              GROUP BY device_id) m ON r.seq = m.seq"""):
        row = out.setdefault(r["device_id"], {})
        for col, key in (("observed_model", "model"), ("observed_serial", "serial"), ("firmware", "firmware")):
            value = r["data"].get(key)
            row[col] = "" if value is None else str(value)
    for b in log.query("SELECT device_id, MAX(created_at) AS at FROM backups WHERE status = 'ok' GROUP BY device_id"):
        out.setdefault(b["device_id"], {})["last_backup_at"] = b["at"]
    return out


@app.command("set")
def set_(ctx: typer.Context,
         device: Annotated[str, typer.Argument(metavar="DEVICE", help="Device id")],
         assignments: Annotated[list[str], typer.Argument(
             metavar="KEY=VALUE...", help="e.g. serial=DS2024X model=DS-2CD2386G2-IU host=10.12.1.22; KEY= removes")],
         ) -> int:
    """Change a device in the inventory file (a camera replaced on site): comments and layout kept, validated
    first (exit 65, file untouched), written atomically."""
    from canteen_ops.inventory.edit import parse_assignments, set_device

    e = env(ctx)
    changes = set_device(e.inventory_path, device, parse_assignments(assignments))
    from canteen_ops.i18n import _

    for line in changes:
        e.console.print(f"{device}: {line}", highlight=False, markup=False)
    e.console.print(_("{file} updated").format(file=e.inventory_path), highlight=False, markup=False)
    return 0


@app.command("add-device")
def add_device(ctx: typer.Context,
               school: Annotated[str, typer.Argument(metavar="SCHOOL", help="School id or name")],
               assignments: Annotated[list[str], typer.Argument(
                   metavar="KEY=VALUE...", help="At least id, kind, vendor, host, e.g. id=xc-cam-08 kind=camera "
                   "vendor=hikvision host=10.12.1.28 area=仓库")],
               ) -> int:
    """Add a device to a school in the inventory file: comments and layout kept, validated first (exit 65, file
    untouched), written atomically."""
    from canteen_ops.inventory.edit import add_device as add, parse_assignments

    e = env(ctx)
    new_id = add(e.inventory_path, school, parse_assignments(assignments))
    from canteen_ops.i18n import _

    e.console.print(_("device {device} added to {school} in {file}").format(
        device=new_id, school=school, file=e.inventory_path), highlight=False, markup=False)
    return 0

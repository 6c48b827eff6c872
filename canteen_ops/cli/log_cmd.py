"""`canteen-ops log list | add | show | export`: the maintenance log."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from canteen_ops.summaries import translate
from canteen_ops.cli.common import MAX_COUNT
from canteen_ops.cli.common import (AreaOpt, DeviceOpt, ExportLangOpt, JsonOpt, OutputOpt, SchoolOpt, TagOpt,
                                    VendorOpt, env, print_json)

HELP = "The maintenance log: list, add technician notes, show, export."
app = typer.Typer(help=HELP, rich_markup_mode=None, add_completion=False, no_args_is_help=True)

NOTE_KINDS = ("inspection", "cleaning", "repair", "replacement", "config", "other")


@app.command("list")
def list_(ctx: typer.Context,
          school: SchoolOpt = None, device: DeviceOpt = None, vendor: VendorOpt = None, area: AreaOpt = None,
          tag: TagOpt = None,
          kind: Annotated[Optional[list[str]], typer.Option(
              "--kind", metavar="KIND", help="Record kind: run, check, backup, snapshot, firmware, incident, change, note, step, notify, kb")] = None,
          since: Annotated[Optional[str], typer.Option(metavar="TIME", help="From: e.g. 24h, 7d or 2026-11-01 (local time)")] = None,
          until: Annotated[Optional[str], typer.Option(
              metavar="TIME", help="Before: e.g. 1h or 2026-11-30 (a date includes that day)")] = None,
          grep: Annotated[Optional[str], typer.Option(
              metavar="TEXT", help="Only entries whose text contains TEXT (findings, notes, incidents, changes, ...)")] = None,
          limit: Annotated[int, typer.Option(min=0, max=MAX_COUNT, metavar="N", help="At most this many entries (0 = all)")] = 50,
          json: JsonOpt = False) -> int:
    """Newest log entries first. --vendor/--area/--tag pick devices through the inventory (--kind here is the
    record kind)."""
    from canteen_ops.errors import UsageError
    from canteen_ops.store.entries import KINDS, list_entries
    from canteen_ops.timeutil import iso, local, parse_since, parse_until

    for k in kind or ():
        if k not in KINDS:
            raise UsageError("--kind {k!r}: expected one of {kinds}", k=k, kinds=', '.join(KINDS))
    if grep is not None and not grep.strip():
        raise UsageError("--grep: give the text to look for")
    e = env(ctx)
    inv = e.inventory_or_none()
    tz = e.timezone()
    bounds = {}
    for flag, value, parse in (("--since", since, parse_since), ("--until", until, parse_until)):
        try:
            bounds[flag] = iso(parse(value, tz=tz)) if value else None
        except ValueError as exc:
            raise UsageError("{flag}: {exc}", flag=flag, exc=exc) from None
    devices = tuple(device or ())
    if vendor or area or tag:  # device attributes live in the inventory, not in the log
        from canteen_ops.cli.common import select

        devices = tuple(d.id for d in select(ctx, school, device, None, vendor, area, tag))
        if not devices:
            raise UsageError("no devices match the selection")
    rows = list_entries(e.log(), kinds=tuple(kind or ()), schools=_school_ids(inv, school or ()),
                        devices=devices, since=bounds["--since"], until=bounds["--until"],
                        grep=grep.strip() if grep else None, limit=limit or None)
    if json:
        print_json(rows)
        return 0
    from canteen_ops.cli.render import CODE, ID, TIME, Column, first_of, plural, status_cell, table

    cols = [Column("when (local)", TIME), Column("kind", CODE), Column("id", ID), Column("school", ID, optional=True),
            Column("device", ID), Column("status", CODE), Column("summary", main=True), Column("by")]
    cells = [(local(r["at"], tz), r["kind"], r["id"][:8], r["school_id"], first_of(_devices(r["device_id"])),
              status_cell(r["status"]), translate(r["summary"]), r["operator"]) for r in rows]
    e.console.print(table(plural(len(rows), "entry", "entries"), cols, cells, console=e.console))
    return 0


def _school_ids(inv, values) -> tuple[str, ...]:
    """--school values as id globs: a school's name becomes its id."""
    names = {s.name: s.id for s in inv.schools} if inv else {}
    return tuple(names.get(v, v) for v in values)


def _devices(value):
    """A record's device: one id, or an incident's / change's list of ids (stored as JSON text)."""
    import json as _json

    if isinstance(value, str) and value.startswith("["):
        try:
            return _json.loads(value)
        except ValueError:
            pass
    return value


@app.command()
def add(ctx: typer.Context,
        text: Annotated[str, typer.Argument(metavar="TEXT", help="What was done or seen, e.g. '镜头已清洁' / 'lens cleaned'")],
        kind: Annotated[str, typer.Option("--kind", metavar="KIND", help=f"One of: {', '.join(NOTE_KINDS)}")] = "inspection",
        school: Annotated[Optional[str], typer.Option("--school", "-s", metavar="SCHOOL", help="School id or name")] = None,
        device: Annotated[Optional[str], typer.Option("--device", "-d", metavar="DEVICE", help="Device id")] = None
        ) -> int:
    """Add a technician's note (inspection, lens cleaned, disk replaced, ...)."""
    from canteen_ops.errors import UsageError
    from canteen_ops.i18n import _
    from canteen_ops.timeutil import iso

    if kind not in NOTE_KINDS:
        raise UsageError("--kind {kind!r}: expected one of {note_kinds}", kind=kind, note_kinds=', '.join(NOTE_KINDS))
    if not text.strip():
        raise UsageError("the note text is empty")
    e = env(ctx)
    school_id = None
    if device or school:  # checked against the inventory before anything is written
        inv = e.inventory()
        if school:
            matches = [s.id for s in inv.schools if school in (s.id, s.name)]
            if not matches:
                raise UsageError("--school {school!r} is not in {where}", school=school, where=inv.path)
            school_id = matches[0]
        if device:
            try:
                d = inv.device(device)
            except KeyError:
                raise UsageError("--device {device!r} is not in {where}", device=device, where=inv.path) from None
            if school_id and school_id != d.school_id:
                raise UsageError("device {device} belongs to school {school_id}, not {school}", device=device,
                                 school_id=d.school_id, school=school)
            school_id = d.school_id
    note_id = e.log().insert("notes", {"at": iso(), "operator": e.operator, "school_id": school_id,
                                       "device_id": device, "kind": kind, "text": text.strip()})
    e.console.print(_("note {id} added").format(id=note_id))
    return 0


@app.command()
def show(ctx: typer.Context, record_id: Annotated[str, typer.Argument(metavar="ID", help="Id or unique prefix (at least 6 characters)")],
         json: JsonOpt = False) -> int:
    """Show one log record in full."""
    from canteen_ops.cli.render import show
    from canteen_ops.errors import NotFound
    from canteen_ops.store.entries import find_record

    e = env(ctx)
    found = find_record(e.log(), record_id)
    if not found:
        from canteen_ops.i18n import _

        raise NotFound(_("no unique log record with id {id}").format(id=repr(record_id)))
    table, row = found
    related = []
    if table == "runs":
        related = e.log().query("SELECT check_name, device_id, status, summary FROM results WHERE run_id = ? "
                                "ORDER BY seq", [row["id"]])
    if json:
        print_json({"table": table, "record": row, "results": related})
        return 0
    import json as _json

    from canteen_ops.cli.render import styled
    from canteen_ops.i18n import status_word

    e.console.print(styled((table, "bold"), " ", row["id"]))
    for k, v in row.items():
        if isinstance(v, dict) or (isinstance(v, list) and any(isinstance(x, (dict, list)) for x in v)):
            v = _json.dumps(v, ensure_ascii=False, indent=2)
        e.console.print(f"  {k}: {show(v)}")
    for r in related:
        e.console.print(f"  - [{status_word(r['status'])}] {r['device_id'] or ''} {r['check_name']}: {translate(r['summary'])}")
    return 0


@app.command()
def export(ctx: typer.Context,
           fmt: Annotated[Optional[str], typer.Option("--format", "-f", metavar="FORMAT", help="jsonl, csv or xlsx "
                                                      "[default: the output file's suffix, else jsonl]")] = None,
           table: Annotated[Optional[str], typer.Option(
               metavar="TABLE", help="Export full rows of one table (runs, results, backups, ...) instead of the timeline")] = None,
           since: Annotated[Optional[str], typer.Option(metavar="TIME", help="From: e.g. 24h, 7d or 2026-11-01 (local time)")] = None,
           lang: ExportLangOpt = "en",
           output: OutputOpt = None,
           ) -> int:
    """Export the log as JSON Lines, CSV or xlsx (--lang zh: Chinese headers and local times, for Excel)."""
    from canteen_ops.cli import export as ex
    from canteen_ops.cli.common import display_tz, export_lang
    from canteen_ops.cli.render import plural
    from canteen_ops.errors import UsageError
    from canteen_ops.store.entries import COLUMNS, list_entries
    from canteen_ops.store.schema import SYNCED_TABLES
    from canteen_ops.timeutil import iso, parse_since

    fmt = export_lang(lang, fmt, ex.FORMATS, output, default="jsonl")
    if table and table not in SYNCED_TABLES:
        raise UsageError("--table {table!r}: expected one of {synced_tables}", table=table,
                         synced_tables=', '.join(SYNCED_TABLES))
    tz = display_tz(ctx)  # a date or time without an offset is local, as in `log list --since`
    try:
        since_iso = iso(parse_since(since, tz=tz)) if since else None
    except ValueError as exc:
        raise UsageError("--since: {exc}", exc=exc) from None
    log = env(ctx).log()
    if table:
        rows = log.query(f"SELECT * FROM {table}" + (" WHERE created_at >= ?" if since_iso else "") + " ORDER BY seq",
                         [since_iso] if since_iso else [])
        columns = list(rows[0]) if rows else []
    else:
        rows = [{**r, "device_id": _devices(r["device_id"])} for r in reversed(list_entries(log, since=since_iso))]
        columns = ["at", *(c for c in COLUMNS if c != "at")]
    data = ex.encode(columns, rows, fmt=fmt, lang=lang, tz=tz, sheet=table or "log",
                     bom=output is not None)
    ex.write(ctx, data, output, what=plural(len(rows), "record"))
    return 0

"""`canteen-ops log list | add | show | export`: the maintenance log."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from canteen_ops.cli.common import MAX_COUNT
from canteen_ops.cli.common import JsonOpt, env, print_json

HELP = "The maintenance log: list, add technician notes, show, export."
app = typer.Typer(help=HELP, rich_markup_mode=None, add_completion=False, no_args_is_help=True)

NOTE_KINDS = ("inspection", "cleaning", "repair", "replacement", "config", "other")


@app.command("list")
def list_(ctx: typer.Context,
          school: Annotated[Optional[list[str]], typer.Option("--school", "-s", metavar="SCHOOL", help="School id")] = None,
          device: Annotated[Optional[list[str]], typer.Option("--device", "-d", metavar="GLOB", help="Device id glob")] = None,
          kind: Annotated[Optional[list[str]], typer.Option(
              "--kind", metavar="KIND", help="Record kind: run, check, backup, snapshot, firmware, incident, change, note, step")] = None,
          since: Annotated[Optional[str], typer.Option(metavar="WHEN", help="e.g. 24h, 7d or 2026-11-01")] = None,
          limit: Annotated[int, typer.Option(min=0, max=MAX_COUNT, metavar="N", help="At most this many entries (0 = all)")] = 50,
          json: JsonOpt = False) -> int:
    """Newest log entries first."""
    from canteen_ops.errors import UsageError
    from canteen_ops.store.entries import KINDS, list_entries
    from canteen_ops.timeutil import iso, local, parse_since

    for k in kind or ():
        if k not in KINDS:
            raise UsageError(f"--kind {k!r}: expected one of {', '.join(KINDS)}")
    try:
        since_iso = iso(parse_since(since)) if since else None
    except ValueError as exc:
        raise UsageError(f"--since: {exc}") from None
    e = env(ctx)
    rows = list_entries(e.log(), kinds=tuple(kind or ()), schools=tuple(school or ()),
                        devices=tuple(device or ()), since=since_iso, limit=limit or None)
    if json:
        print_json(rows)
        return 0
    from rich.table import Table

    table = Table(title=f"{len(rows)} entries", title_justify="left")
    for col in ("when (local)", "kind", "id", "school", "device", "status", "summary", "by"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(local(r["at"]), r["kind"], r["id"][:8], r["school_id"] or "", r["device_id"] or "",
                      r["status"] or "", r["summary"] or "", r["operator"] or "")
    e.console.print(table)
    return 0


@app.command()
def add(ctx: typer.Context,
        text: Annotated[str, typer.Argument(metavar="TEXT", help="What was done or seen, e.g. '镜头已清洁' / 'lens cleaned'")],
        kind: Annotated[str, typer.Option("--kind", metavar="KIND", help=f"One of: {', '.join(NOTE_KINDS)}")] = "inspection",
        school: Annotated[Optional[str], typer.Option("--school", "-s", metavar="SCHOOL", help="School id or name")] = None,
        device: Annotated[Optional[str], typer.Option("--device", "-d", metavar="DEVICE", help="Device id")] = None
        ) -> int:
    """Add a technician's note (inspection, lens cleaned, disk replaced, ...)."""
    from canteen_ops.errors import UsageError
    from canteen_ops.timeutil import iso

    if kind not in NOTE_KINDS:
        raise UsageError(f"--kind {kind!r}: expected one of {', '.join(NOTE_KINDS)}")
    if not text.strip():
        raise UsageError("the note text is empty")
    e = env(ctx)
    school_id = None
    if device or school:  # checked against the inventory before anything is written
        inv = e.inventory()
        if school:
            matches = [s.id for s in inv.schools if school in (s.id, s.name)]
            if not matches:
                raise UsageError(f"--school {school!r} is not in {inv.path}")
            school_id = matches[0]
        if device:
            try:
                d = inv.device(device)
            except KeyError:
                raise UsageError(f"--device {device!r} is not in {inv.path}") from None
            if school_id and school_id != d.school_id:
                raise UsageError(f"device {device} belongs to school {d.school_id}, not {school}")
            school_id = d.school_id
    note_id = e.log().insert("notes", {"at": iso(), "operator": e.operator, "school_id": school_id,
                                       "device_id": device, "kind": kind, "text": text.strip()})
    e.console.print(f"note {note_id} added", highlight=False)
    return 0


@app.command()
def show(ctx: typer.Context, record_id: Annotated[str, typer.Argument(metavar="ID", help="Id or unique prefix (at least 6 characters)")],
         json: JsonOpt = False) -> int:
    """Show one log record in full."""
    from canteen_ops.errors import NotFound
    from canteen_ops.store.entries import find_record

    e = env(ctx)
    found = find_record(e.log(), record_id)
    if not found:
        raise NotFound(f"no unique log record with id {record_id!r}")
    table, row = found
    related = []
    if table == "runs":
        related = e.log().query("SELECT check_name, device_id, status, summary FROM results WHERE run_id = ? "
                                "ORDER BY seq", [row["id"]])
    if json:
        print_json({"table": table, "record": row, "results": related})
        return 0
    import json as _json

    e.console.print(f"[bold]{table}[/bold] {row['id']}")
    for k, v in row.items():
        if isinstance(v, (dict, list)):
            v = _json.dumps(v, ensure_ascii=False, indent=2)
        e.console.print(f"  {k}: {v}", highlight=False, markup=False)
    for r in related:
        e.console.print(f"  - [{r['status']}] {r['device_id'] or ''} {r['check_name']}: {r['summary']}",
                        highlight=False, markup=False)
    return 0


@app.command()
def export(ctx: typer.Context,
           fmt: Annotated[str, typer.Option("--format", "-f", metavar="FORMAT", help="csv or jsonl")] = "jsonl",
           table: Annotated[Optional[str], typer.Option(
               metavar="TABLE", help="Export full rows of one table (runs, results, backups, ...) instead of the timeline")] = None,
           since: Annotated[Optional[str], typer.Option(metavar="WHEN", help="e.g. 7d or 2026-11-01")] = None,
           output: Annotated[Optional[Path], typer.Option("--output", "-o", metavar="FILE",
                                                           help="File, written atomically (default stdout)")] = None,
           ) -> int:
    """Export the log as CSV or JSON Lines."""
    import csv
    import io
    import json as _json

    from canteen_ops.errors import UsageError
    from canteen_ops.store.entries import list_entries
    from canteen_ops.store.schema import SYNCED_TABLES
    from canteen_ops.timeutil import iso, parse_since

    if fmt not in ("csv", "jsonl"):
        raise UsageError(f"--format {fmt!r}: expected csv or jsonl")
    if table and table not in SYNCED_TABLES:
        raise UsageError(f"--table {table!r}: expected one of {', '.join(SYNCED_TABLES)}")
    try:
        since_iso = iso(parse_since(since)) if since else None
    except ValueError as exc:
        raise UsageError(f"--since: {exc}") from None
    log = env(ctx).log()
    if table:
        rows = log.query(f"SELECT * FROM {table}" + (" WHERE created_at >= ?" if since_iso else "") + " ORDER BY seq",
                         [since_iso] if since_iso else [])
    else:
        rows = list(reversed(list_entries(log, since=since_iso)))
    buf = io.StringIO()
    if fmt == "jsonl":
        for r in rows:
            buf.write(_json.dumps(r, ensure_ascii=False, default=str) + "\n")
    elif rows:
        w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: _json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list)) else v
                        for k, v in r.items()})
    if output:
        from canteen_ops.cli.common import write_output

        write_output(output, buf.getvalue().encode("utf-8"))
        env(ctx).err.print(f"exported {len(rows)} records to {output}")
    else:
        typer.echo(buf.getvalue(), nl=False)
    return 0

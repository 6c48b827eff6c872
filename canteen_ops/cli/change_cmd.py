"""`canteen-ops change request | approve | notify | start | complete | rollback | list | show`: work permits."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from canteen_ops.cli.common import JsonOpt, env, print_json
from canteen_ops.cli.incident_cmd import _parse_at, _tz

HELP = ("Changes under work permits (工作许可): request → approve → notify → start (after a backup) "
        "→ complete | rollback.")
app = typer.Typer(help=HELP, rich_markup_mode=None, add_completion=False, no_args_is_help=True)

IdArg = Annotated[str, typer.Argument(metavar="ID", help="Change id or unique prefix (≥ 6 characters)")]
NoteOpt = Annotated[Optional[str], typer.Option("--note", "-n", help="Free text for the timeline")]
WinStart = Annotated[Optional[str], typer.Option("--window-start", help="ISO time, local to the inventory zone")]
WinEnd = Annotated[Optional[str], typer.Option("--window-end", help="ISO time, local to the inventory zone")]


def _say(ctx: typer.Context, ch: dict, extra: str = "") -> int:
    env(ctx).console.print(f"change {ch['id'][:8]} {ch['state']}{extra}", highlight=False, markup=False)
    return 0


@app.command()
def request(ctx: typer.Context,
            title: Annotated[str, typer.Option("--title", "-t", help="What will be changed")],
            device: Annotated[Optional[list[str]], typer.Option("--device", "-d", help="Affected device id (repeatable)")] = None,
            description: Annotated[Optional[str], typer.Option("--description", help="Plan, risk, fallback")] = None,
            window_start: WinStart = None, window_end: WinEnd = None, json: JsonOpt = False) -> int:
    """Request a change (申请)."""
    from canteen_ops import changes

    e = env(ctx)
    inv = e.inventory()
    tz = inv.settings.timezone
    ch = changes.request(e.log(), inv, title=title, device_ids=device or [], actor=e.operator,
                         description=description, window_start=_parse_at(window_start, tz, "--window-start"),
                         window_end=_parse_at(window_end, tz, "--window-end"))
    if json:
        print_json(ch)
        return 0
    return _say(ctx, ch, f": {ch['id']} ({', '.join(ch['device_ids'])}); next: approval by another person")


@app.command()
def approve(ctx: typer.Context, ident: IdArg, note: NoteOpt = None) -> int:
    """Approve a requested change (not by its requester)."""
    from canteen_ops import changes

    e = env(ctx)
    return _say(ctx, changes.approve(e.log(), ident, e.operator, note=note))


@app.command()
def notify(ctx: typer.Context, ident: IdArg,
           to: Annotated[list[str], typer.Option("--to", help="Who was told (repeatable), e.g. '李梅 食堂经理'")],
           window_start: WinStart = None, window_end: WinEnd = None, note: NoteOpt = None) -> int:
    """Record the notice (预告): who was told, the window and the affected devices."""
    from canteen_ops import changes
    from canteen_ops.timeutil import local

    e = env(ctx)
    tz = _tz(ctx)
    ch = changes.notify(e.log(), ident, e.operator, notice_to=to,
                        window_start=_parse_at(window_start, tz, "--window-start"),
                        window_end=_parse_at(window_end, tz, "--window-end"), note=note)
    return _say(ctx, ch, f": window {local(ch['window_start'], tz)} – {local(ch['window_end'], tz)}")


@app.command()
def start(ctx: typer.Context, ident: IdArg) -> int:
    """Start the work: backs up every affected device first; refuses outside the window."""
    from canteen_ops import changes

    e = env(ctx)
    ch = changes.start(e.log(), e.inventory(), ident, e.operator)
    return _say(ctx, ch, f": {len(ch['device_ids'])} device(s) backed up")


@app.command()
def complete(ctx: typer.Context, ident: IdArg, note: NoteOpt = None) -> int:
    """Close a started change as done (终结)."""
    from canteen_ops import changes

    e = env(ctx)
    return _say(ctx, changes.complete(e.log(), ident, e.operator, note=note))


@app.command()
def rollback(ctx: typer.Context, ident: IdArg,
             reason: Annotated[str, typer.Option("--reason", "-r", help="Why it was rolled back")]) -> int:
    """Close a started change as rolled back."""
    from canteen_ops import changes

    e = env(ctx)
    return _say(ctx, changes.rollback(e.log(), ident, e.operator, reason=reason))


@app.command("list")
def list_(ctx: typer.Context,
          all_: Annotated[bool, typer.Option("--all", help="Include completed and rolled-back changes")] = False,
          state: Annotated[Optional[list[str]], typer.Option("--state", help="Only these states")] = None,
          json: JsonOpt = False) -> int:
    """Open changes (or all)."""
    from canteen_ops import changes
    from canteen_ops.errors import UsageError
    from canteen_ops.timeutil import local

    for s in state or ():
        if s not in changes.STATES:
            raise UsageError(f"--state {s!r}: expected one of {', '.join(changes.STATES)}")
    e = env(ctx)
    rows = changes.list_changes(e.log(), include_closed=all_, states=state or ())
    if json:
        print_json(rows)
        return 0
    from rich.table import Table

    tz = _tz(ctx)
    table = Table(title=f"{len(rows)} change{'s' if len(rows) != 1 else ''}", title_justify="left")
    for col in ("id", "state", "title", "devices", "window", "requested by", "approved by"):
        table.add_column(col, overflow="fold")
    for r in rows:
        window = f"{local(r['window_start'], tz)} – {local(r['window_end'], tz)}" if r.get("window_start") else ""
        table.add_row(r["id"][:8], r["state"], r["title"], ", ".join(r["device_ids"] or []), window,
                      r.get("requested_by") or "", r.get("approved_by") or "",
                      style="bold yellow" if r["state"] == "started" else None)
    e.console.print(table)
    return 0


@app.command()
def show(ctx: typer.Context, ident: IdArg, json: JsonOpt = False) -> int:
    """One change with its timeline."""
    from canteen_ops import changes
    from canteen_ops.timeutil import local

    e = env(ctx)
    ch = changes.find_change(e.log(), ident)
    evs = changes.events(e.log(), ch["id"])
    if json:
        print_json({"change": ch, "events": evs})
        return 0
    tz = _tz(ctx)
    c = e.console
    c.print(f"[bold]change {ch['id']}[/bold]  {ch['state']}", highlight=False)
    for k, v in (("title", ch["title"]), ("description", ch.get("description") or ""),
                 ("devices", ", ".join(ch.get("device_ids") or [])),
                 ("window", f"{local(ch.get('window_start'), tz)} – {local(ch.get('window_end'), tz)}"),
                 ("notice to", ", ".join(ch.get("notice_to") or [])),
                 ("backups", ", ".join(f"{d}={str(b)[:8] if b else '?'}"
                                       for d, b in ((ch.get("data") or {}).get("backups") or {}).items()))):
        c.print(f"  {k:<12} {v}", highlight=False, markup=False)
    c.print("  timeline:", highlight=False)
    for ev in evs:
        c.print(f"    {local(ev['at'], tz)}  {ev['action']:<14} {ev.get('actor') or '':<12} {ev.get('note') or ''}",
                highlight=False, markup=False)
    return 0

"""`canteen-ops change request | approve | notify | start | complete | rollback | list | show`: work permits."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from canteen_ops.cli.common import JsonOpt, display_tz, env, parse_at, print_json

HELP = ("Changes under work permits (工作许可): request → approve → notify → start (after a backup) "
        "→ complete | rollback.")
app = typer.Typer(help=HELP, rich_markup_mode=None, add_completion=False, no_args_is_help=True)

IdArg = Annotated[str, typer.Argument(metavar="ID", help="Change id or unique prefix (≥ 6 characters)")]
NoteOpt = Annotated[Optional[str], typer.Option("--note", "-n", metavar="TEXT", help="Free text for the timeline")]
WinStart = Annotated[Optional[str], typer.Option("--window-start", metavar="TIME", help="ISO time, local to the inventory zone")]
WinEnd = Annotated[Optional[str], typer.Option("--window-end", metavar="TIME", help="ISO time, local to the inventory zone")]


def _say(ctx: typer.Context, ch: dict, extra: str = "") -> int:
    from canteen_ops.i18n import _

    line = _("change {id} {state}").format(id=ch["id"][:8], state=_(ch["state"]))
    env(ctx).console.print(line + extra, highlight=False, markup=False)
    return 0


@app.command()
def request(ctx: typer.Context,
            title: Annotated[str, typer.Option("--title", "-t", metavar="TEXT", help="What will be changed")],
            device: Annotated[Optional[list[str]], typer.Option("--device", "-d", metavar="DEVICE", help="Affected device id (repeatable)")] = None,
            description: Annotated[Optional[str], typer.Option("--description", metavar="TEXT", help="Plan, risk, fallback")] = None,
            window_start: WinStart = None, window_end: WinEnd = None, json: JsonOpt = False) -> int:
    """Request a change (申请)."""
    from canteen_ops import changes

    e = env(ctx)
    inv = e.inventory()
    tz = inv.settings.timezone
    ch = changes.request(e.log(), inv, title=title, device_ids=device or [], actor=e.operator,
                         description=description, window_start=parse_at(window_start, tz, "--window-start"),
                         window_end=parse_at(window_end, tz, "--window-end"))
    if json:
        print_json(ch)
        return 0
    from canteen_ops.i18n import _

    return _say(ctx, ch, _(": {id} ({devices}); next: approval by another person").format(
        id=ch["id"], devices=", ".join(ch["device_ids"])))


@app.command()
def approve(ctx: typer.Context, ident: IdArg, note: NoteOpt = None) -> int:
    """Approve a requested change (not by its requester)."""
    from canteen_ops import changes

    e = env(ctx)
    return _say(ctx, changes.approve(e.log(), ident, e.operator, note=note))


@app.command()
def notify(ctx: typer.Context, ident: IdArg,
           to: Annotated[list[str], typer.Option("--to", metavar="NAME", help="Who was told (repeatable), e.g. '李梅 食堂经理'")],
           window_start: WinStart = None, window_end: WinEnd = None, note: NoteOpt = None) -> int:
    """Record the notice (预告): who was told, the window and the affected devices."""
    from canteen_ops import changes
    from canteen_ops.timeutil import local

    e = env(ctx)
    tz = display_tz(ctx)
    ch = changes.notify(e.log(), ident, e.operator, notice_to=to,
                        window_start=parse_at(window_start, tz, "--window-start"),
                        window_end=parse_at(window_end, tz, "--window-end"), note=note)
    from canteen_ops.i18n import _

    return _say(ctx, ch, _(": window {start} – {end}").format(start=local(ch["window_start"], tz),
                                                              end=local(ch["window_end"], tz)))


@app.command()
def start(ctx: typer.Context, ident: IdArg) -> int:
    """Start the work: backs up every affected device first; refuses outside the window."""
    from canteen_ops import changes

    e = env(ctx)
    ch = changes.start(e.log(), e.inventory(), ident, e.operator)
    from canteen_ops.i18n import _

    return _say(ctx, ch, _(": {n} device(s) backed up").format(n=len(ch["device_ids"])))


@app.command()
def complete(ctx: typer.Context, ident: IdArg, note: NoteOpt = None) -> int:
    """Close a started change as done (终结)."""
    from canteen_ops import changes

    e = env(ctx)
    return _say(ctx, changes.complete(e.log(), ident, e.operator, note=note))


@app.command()
def rollback(ctx: typer.Context, ident: IdArg,
             reason: Annotated[str, typer.Option("--reason", "-r", metavar="TEXT", help="Why it was rolled back")]) -> int:
    """Close a started change as rolled back."""
    from canteen_ops import changes

    e = env(ctx)
    return _say(ctx, changes.rollback(e.log(), ident, e.operator, reason=reason))


@app.command("list")
def list_(ctx: typer.Context,
          all_: Annotated[bool, typer.Option("--all", help="Include completed and rolled-back changes")] = False,
          state: Annotated[Optional[list[str]], typer.Option("--state", metavar="STATE", help="Only these states")] = None,
          json: JsonOpt = False) -> int:
    """Open changes (or all)."""
    from canteen_ops import changes
    from canteen_ops.errors import UsageError
    from canteen_ops.timeutil import local

    for s in state or ():
        if s not in changes.STATES:
            raise UsageError("--state {s!r}: expected one of {states}", s=s, states=', '.join(changes.STATES))
    e = env(ctx)
    rows = changes.list_changes(e.log(), include_closed=all_, states=state or ())
    if json:
        print_json(rows)
        return 0
    from canteen_ops.cli.render import CODE, ID, Column, first_of, plural, table
    from canteen_ops.i18n import _

    tz = display_tz(ctx)
    cols = [Column("id", ID), Column("state", CODE), Column("title", main=True), Column("devices", ID), Column("window"),
            Column("requested by"), Column("approved by")]
    cells = [(r["id"][:8], _(r["state"]), r["title"], first_of(r["device_ids"]),
              f"{local(r['window_start'], tz)} – {local(r['window_end'], tz)}" if r.get("window_start") else "",
              r.get("requested_by"), r.get("approved_by")) for r in rows]
    styles = ["bold yellow" if r["state"] == "started" else None for r in rows]
    e.console.print(table(plural(len(rows), "change"), cols, cells, console=e.console, row_styles=styles))
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
    from canteen_ops.cli.render import fields, pad, styled
    from canteen_ops.i18n import _

    tz = display_tz(ctx)
    c = e.console
    c.print(styled((f"{_('change')} {ch['id']}", "bold"), f"  {_(ch['state'])}"))
    fields(c, [("title", ch["title"]), ("description", ch.get("description")), ("devices", ch.get("device_ids")),
               ("window", f"{local(ch.get('window_start'), tz)} – {local(ch.get('window_end'), tz)}"),
               ("notice to", ch.get("notice_to")),
               ("backups", ", ".join(f"{d}={str(b)[:8] if b else '?'}"
                                     for d, b in ((ch.get("data") or {}).get("backups") or {}).items()))])
    c.print(f"  {_('timeline')}:")
    for ev in evs:
        c.print(f"    {local(ev['at'], tz)}  {pad(_(ev['action']), 14)} {pad(ev.get('actor') or '', 12)} "
                f"{ev.get('note') or ''}")
    return 0

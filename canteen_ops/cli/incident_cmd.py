"""`canteen-ops incident open | ack | arrive | resolve | cancel | reopen | note | assign | list | show`: faults
against the plan's deadlines."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from canteen_ops.summaries import translate
from canteen_ops.cli.common import JsonOpt, display_tz, env, parse_at, print_json

HELP = "Incidents (故障) with on-site SLA clocks: major 重大 1 h / 2 h, general 一般 2 h / 4 h."
app = typer.Typer(help=HELP, rich_markup_mode=None, add_completion=False, no_args_is_help=True)

IdArg = Annotated[str, typer.Argument(metavar="ID", help="Incident id or unique prefix (≥ 6 characters)")]
AtOpt = Annotated[Optional[str], typer.Option(
    "--at", metavar="TIME", help="When it happened, if not now: ISO time, local to the inventory time zone unless it has an offset")]
NoteOpt = Annotated[Optional[str], typer.Option("--note", "-n", metavar="TEXT", help="Free text for the timeline")]


@app.command("open")
def open_(ctx: typer.Context,
          level: Annotated[str, typer.Option("--level", "-l", metavar="LEVEL", help="major (重大) or general (一般)")],
          title: Annotated[str, typer.Option("--title", "-t", metavar="TEXT", help="Short description of the fault")],
          device: Annotated[Optional[list[str]], typer.Option("--device", "-d", metavar="DEVICE", help="Affected device id (repeatable)")] = None,
          school: Annotated[Optional[str], typer.Option("--school", "-s", metavar="SCHOOL", help="School id (if no device is named)")] = None,
          description: Annotated[Optional[str], typer.Option("--description", metavar="TEXT", help="Details")] = None,
          at: AtOpt = None, json: JsonOpt = False) -> int:
    """Open an incident; prints its on-site deadline."""
    from canteen_ops.incidents import open_incident

    e = env(ctx)
    inv = e.inventory()
    level = {"重大": "major", "一般": "general"}.get(level, level)
    opened_at = parse_at(at, inv.settings.timezone)
    if opened_at is not None:
        from canteen_ops.errors import UsageError
        from canteen_ops.timeutil import utcnow

        if opened_at > utcnow():
            raise UsageError("--at {at} is in the future", at=at)
    from canteen_ops.notify.hooks import announce

    inc = open_incident(e.log(), inv, level=level, title=title, actor=e.operator, device_ids=device or [],
                        school_id=school, description=description, opened_at=opened_at)
    if json:
        print_json(inc)
    else:
        from canteen_ops.i18n import _, language
        from canteen_ops.timeutil import local

        tz = _school_tz(inv, inc["school_id"])
        why = _day_kind(inv, inc)
        template = ("incident {id} opened: {level} at {school}, inside working hours{why}; on site by {deadline} "
                    "({tz})" if inc["opened_in_hours"] else
                    "incident {id} opened: {level} at {school}, outside working hours{why}; on site by {deadline} "
                    "({tz})")
        e.console.print(_(template).format(
            id=inc['id'], level=inc['level'] if language() == "en" else _(inc['level']), school=inc['school_id'],
            why=f" ({why})" if why else "", deadline=local(inc['arrive_deadline'], tz), tz=tz),
            highlight=False, markup=False)
    announce(e, e.log())  # assigned to the technician on duty and sent now, not at the next watch round
    return 0


def _day_kind(inv, inc) -> str | None:
    """Why the opening day counts as it does, when the calendar decided it (a holiday, 调休, a closure)."""
    from canteen_ops.timeutil import parse_iso

    try:
        wh = inv.school(inc["school_id"]).working_hours
    except KeyError:
        return None
    from zoneinfo import ZoneInfo

    _, why = wh.day_kind(parse_iso(inc["opened_at"]).astimezone(ZoneInfo(wh.timezone)).date())
    return None if why in ("weekday", "day off") else why


def _incident_kb(log, inc) -> str | None:
    """The knowledge-base entry for an incident opened from a check result (the result it came from)."""
    from canteen_ops.kb.classify import kb_for_result

    if (inc.get("data") or {}).get("kb"):
        return inc["data"]["kb"]
    source = inc.get("source_result_id")  # an incident opened before the knowledge base kept its entry
    row = log.get("results", source) if source else None
    return kb_for_result(row) if row else None


def _school_tz(inv, school_id: str | None) -> str:
    try:
        return inv.school(school_id).working_hours.timezone if school_id else inv.settings.timezone
    except KeyError:
        return inv.settings.timezone


def _act(ctx: typer.Context, verb: str, ident: str, at: str | None, **kw) -> int:
    from canteen_ops import incidents

    e = env(ctx)
    tz = display_tz(ctx)
    inc = getattr(incidents, verb)(e.log(), ident, e.operator, at=parse_at(at, tz), **kw)
    from canteen_ops.sla import arrive_sla
    from canteen_ops.timeutil import utcnow

    from canteen_ops.i18n import _, language

    sla = arrive_sla(inc, utcnow())
    extra = _("; on-site SLA {sla}").format(sla=_sla(sla)) if verb in ("arrive", "resolve") else ""
    done = {"add_note": _("note added; "),
            "assign": _("assigned to {who}; ").format(who=inc.get('assigned_to'))}.get(verb, "")
    state = inc['state'] if language() == "en" else _(inc['state'])
    e.console.print(_("incident {id} {done}{state}{extra}").format(id=inc['id'][:8], done=done, state=state,
                                                                   extra=extra), highlight=False, markup=False)
    return 0


@app.command()
def ack(ctx: typer.Context, ident: IdArg, note: NoteOpt = None, at: AtOpt = None) -> int:
    """Acknowledge: someone has taken the incident on."""
    return _act(ctx, "ack", ident, at, note=note)


@app.command()
def arrive(ctx: typer.Context, ident: IdArg, note: NoteOpt = None, at: AtOpt = None) -> int:
    """Record arrival on site (stops the on-site SLA clock)."""
    return _act(ctx, "arrive", ident, at, note=note)


@app.command()
def resolve(ctx: typer.Context, ident: IdArg,
            resolution: Annotated[str, typer.Option("--resolution", "-r", metavar="TEXT", help="What fixed it")],
            at: AtOpt = None) -> int:
    """Resolve: the fault is fixed."""
    return _act(ctx, "resolve", ident, at, resolution=resolution)


@app.command()
def cancel(ctx: typer.Context, ident: IdArg,
           reason: Annotated[str, typer.Option("--reason", "-r", metavar="TEXT", help="Why it was a false alarm")],
           at: AtOpt = None) -> int:
    """Cancel a false alarm: closed and kept in the log with the reason, left out of SLA figures."""
    return _act(ctx, "cancel", ident, at, reason=reason)


@app.command()
def reopen(ctx: typer.Context, ident: IdArg, note: NoteOpt = None, at: AtOpt = None) -> int:
    """Reopen a resolved or cancelled incident (the fault came back); its deadlines stand."""
    return _act(ctx, "reopen", ident, at, note=note)


@app.command()
def note(ctx: typer.Context, ident: IdArg,
         text: Annotated[str, typer.Argument(metavar="TEXT", help="What was done or found")],
         at: AtOpt = None) -> int:
    """Add a note to an incident's timeline (any state)."""
    return _act(ctx, "add_note", ident, at, text=text)


@app.command()
def assign(ctx: typer.Context, ident: IdArg,
           who: Annotated[str, typer.Argument(metavar="NAME", help="The technician who takes it on")],
           at: AtOpt = None) -> int:
    """Assign an active incident to a technician."""
    return _act(ctx, "assign", ident, at, who=who)


@app.command("list")
def list_(ctx: typer.Context,
          overdue: Annotated[bool, typer.Option("--overdue", help="Only SLA breaches (exit 2 if any)")] = False,
          all_: Annotated[bool, typer.Option("--all", help="Include resolved incidents")] = False,
          school: Annotated[Optional[list[str]], typer.Option("--school", "-s", metavar="SCHOOL", help="School id")] = None,
          level: Annotated[Optional[list[str]], typer.Option("--level", "-l", metavar="LEVEL", help="major | general")] = None,
          device: Annotated[Optional[list[str]], typer.Option(
              "--device", "-d", metavar="GLOB", help="Only incidents on matching devices, e.g. 'xc-cam-*'")] = None,
          json: JsonOpt = False) -> int:
    """Active incidents (escalated ones in red); `--all` adds resolved and cancelled ones; `--overdue` lists
    on-site deadline breaches."""
    from canteen_ops.errors import UsageError
    from canteen_ops.incidents import escalate_overdue, list_incidents
    from canteen_ops.sla import LEVELS
    from canteen_ops.timeutil import local, utcnow

    for lv in level or ():
        if lv not in LEVELS:
            raise UsageError("--level {lv!r}: expected one of {levels}", lv=lv, levels=', '.join(LEVELS))
    e = env(ctx)
    now = utcnow()
    escalate_overdue(e.log(), now)
    rows = list_incidents(e.log(), include_resolved=all_, overdue=overdue, schools=school or (),
                          levels=level or (), devices=device or (), now=now)
    code = 2 if overdue and rows else 0
    if json:
        print_json(rows)
        return code
    if e.quiet and not code:
        return code  # --quiet (cron): only a missed deadline is a problem worth a line
    out = e.err if e.quiet else e.console  # --quiet silences the console: problems go to stderr
    from rich.text import Text

    from canteen_ops.cli.render import CODE, ID, TIME, Column, first_of, plural, table
    from canteen_ops.i18n import _
    from canteen_ops.incidents import ACTIVE_STATES

    tz = display_tz(ctx)
    title = plural(len(rows), "overdue incident") if overdue else plural(len(rows), "incident")
    cols = [Column("id", ID), Column("level", CODE), Column("state", CODE), Column("school", ID, optional=True),
            Column("devices", ID), Column("title", main=True), Column("assigned"),
            Column("opened", TIME, optional=True), Column("on site by", TIME), Column("SLA"), Column("")]
    cells, styles = [], []
    for r in rows:
        escalated = bool(r.get("escalated_at")) and r["state"] in ACTIVE_STATES and not r.get("arrived_at")
        styles.append("bold red" if escalated else ("red" if r["sla"] == "breached" else None))
        cells.append((r["id"][:8], _(r["level"]), _(r["state"]), r["school_id"], first_of(r["device_ids"]),
                      translate(r["title"]), r.get("assigned_to"), local(r["opened_at"], tz),
                      local(r["arrive_deadline"], tz), _sla(r["sla"]),
                      Text(_("ESCALATED"), style="bold white on red") if escalated else ""))
    out.print(table(title, cols, cells, console=out, row_styles=styles))  # (empty columns go)
    if any(r.get("escalated_at") and not r.get("arrived_at") and r["state"] in ACTIVE_STATES for r in rows):
        out.print(_("escalated: on-site deadline passed without arrival — report to the leading "
                          "group (领导小组)"), style="bold red")
    return code


@app.command()
def show(ctx: typer.Context, ident: IdArg, json: JsonOpt = False) -> int:
    """One incident with its timeline."""
    from canteen_ops.incidents import ACTIVE_STATES, escalate_overdue, events, find_incident
    from canteen_ops.sla import arrive_sla, resolve_sla
    from canteen_ops.timeutil import local, utcnow

    e = env(ctx)
    now = utcnow()
    escalate_overdue(e.log(), now)
    inc = find_incident(e.log(), ident)
    inc["sla"], inc["resolve_sla"] = arrive_sla(inc, now), resolve_sla(inc, now)
    inc["kb"] = _incident_kb(e.log(), inc)
    evs = events(e.log(), inc["id"])
    if json:
        print_json({"incident": inc, "events": evs})
        return 0
    from canteen_ops.cli.render import fields, styled
    from canteen_ops.cli.render import lines as lines_
    from canteen_ops.i18n import _

    tz = display_tz(ctx)
    c = e.console
    c.print(styled((f"{_('incident')} {inc['id']}", "bold"), f"  {_(inc['level'])} / {_(inc['state'])}"))
    if inc.get("escalated_at") and not inc.get("arrived_at") and inc["state"] in ACTIVE_STATES:
        c.print(f" {_('ESCALATED at {time}').format(time=local(inc['escalated_at'], tz))} ", style="bold white on red")
    hours = _("inside working hours") if inc.get("opened_in_hours") else _("outside working hours")
    lines = [
        ("title", translate(inc["title"])), ("description", translate(inc.get("description"))),
        ("school", inc.get("school_id")), ("devices", inc.get("device_ids")),
        ("assigned to", inc.get("assigned_to")),
        ("opened", f"{local(inc['opened_at'], tz)} {_('by')} {inc.get('opened_by') or ''} ({hours})"),
        ("on site by", f"{local(inc.get('arrive_deadline'), tz)}  SLA {_sla(inc['sla'])}"),
        ("restore by", f"{local(inc.get('resolve_deadline'), tz)}  SLA {_sla(inc['resolve_sla'])}"),
        ("resolution", inc.get("resolution")),
        ("kb", f"{inc['kb']}  (canteen-ops kb show {inc['kb']})" if inc["kb"] else None),
    ]
    if inc["state"] == "cancelled":
        lines.append(("cancelled", f"{local(inc.get('cancelled_at'), tz)} {_('by')} {inc.get('cancelled_by') or ''}: "
                                   f"{inc.get('cancel_reason') or ''}"))
    fields(c, lines)
    c.print(f"  {_('timeline')}:")
    lines_(c, [(local(ev["at"], tz), _(ev["action"]), ev.get("actor") or "", translate(ev.get("note") or ""))
               for ev in evs], 4)
    return 0


def _sla(state: str) -> str:
    """met / breached / pending of a deadline (`pending` here is "not due yet", not the sync queue's pending)."""
    from canteen_ops.i18n import word

    return word(f"sla:{state}")

"""`canteen-ops oncall`: who is on duty now and who is next (the roster, canteen_ops/roster.py)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from canteen_ops.cli.common import JsonOpt, SchoolOpt, env, parse_at, print_json


def oncall(
    ctx: typer.Context,
    school: SchoolOpt = None,
    at: Annotated[Optional[str], typer.Option(
        "--at", metavar="TIME", help="Ask for another time: local 2026-10-01T22:00 (settings.timezone) or "
        "with an offset/Z [default: now]")] = None,
    json: JsonOpt = False,
) -> int:
    """Show who is on duty (定岗值班) now and next, per role (technician → supervisor → manager), for the whole
    district or for the given schools."""
    from zoneinfo import ZoneInfo

    from canteen_ops.errors import NotFound
    from canteen_ops.roster import ROLE_LABELS, ROLES
    from canteen_ops.timeutil import utcnow

    e = env(ctx)
    inv = e.inventory()
    roster = inv.roster
    if roster is None or not roster.people:
        raise NotFound("no duty roster in {where}: add `roster:` or settings.roster_file (docs/inventory.md)",
                       where=inv.path)
    tz = ZoneInfo(roster.timezone)
    t = parse_at(at, roster.timezone) if at else utcnow()
    scopes = []
    for s in school or [None]:
        if s is None:
            scopes.append(None)
            continue
        match = next((x for x in inv.schools if s in (x.id, x.name)), None)
        if match is None:
            raise NotFound("school {s!r} is not in the inventory {where}", s=s, where=inv.path)
        scopes.append(match)

    def person(p, *, until=None, start=None):
        if p is None:
            return None
        d = p.to_dict()
        if until is not None:
            d["until"] = until.isoformat(timespec="minutes")
        if start is not None:
            d["from"] = start.isoformat(timespec="minutes")
        return d

    out = []
    for sc in scopes:
        rows = []
        for role in ROLES:
            nxt = roster.next_on_duty(role, t, sc)
            rows.append({"role": role, "role_label": ROLE_LABELS[role],
                         "now": person(roster.on_duty(role, t, sc), until=roster.duty_until(role, t, sc)),
                         "next": person(nxt[0], start=nxt[1]) if nxt else None})
        out.append({"school": sc.id if sc else None, "at": t.astimezone(tz).isoformat(timespec="minutes"),
                    "roles": rows})
    if json:
        print_json(out if school else out[0])
        return 0
    from canteen_ops.cli.render import ID, TEXT, TIME, Column, table
    from canteen_ops.i18n import _, language

    for block in out:
        title = _("值班 on duty at {at}").format(at=block['at']) + (f" — {block['school']}" if block["school"] else "")
        rows = []
        for r in block["roles"]:
            now_p, next_p = r["now"], r["next"]
            role = r["role_label"] if language() == "zh" else f"{r['role_label']} {r['role']}"  # 技术员 technician
            rows.append((role, _who(now_p),
                         (now_p or {}).get("until", "")[5:16].replace("T", " "), _who(next_p),
                         (next_p or {}).get("from", "")[:16].replace("T", " ")))
        e.console.print(table(title, [Column("role", ID), Column("now", TEXT, main=True), Column("until", TIME),
                                      Column("next", TEXT), Column("from", TIME)], rows, console=e.console))
    return 0


def _who(p) -> str:
    if p is None:
        return "—"
    return p["name"] + (f" {p['phone']}" if p.get("phone") else "")

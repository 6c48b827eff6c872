"""Who an incident goes to: the technician on duty when it opens, then one step up the roster's chain
(technician → supervisor → manager) at 50 % and at 100 % of the on-site deadline without arrival, each step once.

The steps are marks in the incident's `data` (`assignee`, `escalation_step`, `escalated_to`) plus an
`assign`/`escalate-step` event each, so the timeline shows who was told when; `escalate_overdue` (incidents.py)
still sets `escalated_at` when the deadline passes. Time is a parameter everywhere: tests drive a simulated clock.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from canteen_ops.incidents import SYSTEM_ACTOR, _event
from canteen_ops.roster import ROLE_LABELS, ROLES
from canteen_ops.timeutil import iso, parse_iso

STEP_FRACTIONS = (0.5, 1.0)  # step 1 at half the allowance, step 2 when the deadline passes


def _school(inventory, school_id):
    try:
        return inventory.school(school_id) if school_id else None
    except KeyError:
        return None


def assign(log, inventory, inc: dict[str, Any], now: dt.datetime):
    """Assign a new (or re-opened) incident to the technician on duty for its school (`assigned_to`, and
    `data.assignee` with role and phone for the messages, `by: roster`); returns the Person, or None when nobody
    is on duty. Someone a person assigned (`incident assign`) stays: the roster does not overrule people. Whom
    the roster itself chose at the first opening does not: a re-opened incident goes to who is on duty now."""
    data = dict(inc.get("data") or {})
    if _assigned_by_person(log, inc):
        data["assignee"] = {"name": inc["assigned_to"], "role": "technician"}
        log.update("incidents", inc["id"], {"data": data})
        inc["data"] = data
        return data["assignee"]
    roster = inventory.roster if inventory is not None else None
    person = roster.on_duty("technician", now, _school(inventory, inc.get("school_id"))) if roster else None
    data["assignee"] = {**person.to_dict(), "by": "roster"} if person else None
    with log.transaction():
        log.update("incidents", inc["id"], {"data": data, **({"assigned_to": person.name} if person else {})})
        _event(log, inc["id"], now, SYSTEM_ACTOR, "assign",
               person.name if person else "nobody on duty in the roster (值班表无人)",
               {"assignee": data["assignee"], "by": "roster"})
    inc["data"] = data
    return person


def _assigned_by_person(log, inc: dict[str, Any]) -> bool:
    """Is `assigned_to` a person's choice? Yes unless the last `assign` event is the roster's own (`by: roster`):
    `incident assign` records its event without it."""
    if not inc.get("assigned_to"):
        return False
    last = log.query("SELECT data FROM incident_events WHERE incident_id = ? AND action = 'assign' "
                     "ORDER BY seq DESC LIMIT 1", [inc["id"]])
    return not last or (last[0].get("data") or {}).get("by") != "roster"


def due_steps(log, inventory, now: dt.datetime) -> list[tuple[dict[str, Any], int, Any]]:
    """Mark and return (incident, step, person told) for every escalation step that fell due by `now`."""
    roster = inventory.roster if inventory is not None else None
    out = []
    with log.transaction():
        rows = log.query("SELECT * FROM incidents WHERE state IN ('open', 'acked') AND arrived_at IS NULL "
                         "AND arrive_deadline IS NOT NULL")
        for inc in rows:
            data = dict(inc.get("data") or {})
            start = parse_iso(data.get("reopened_at") or inc["opened_at"])
            allowed = (parse_iso(inc["arrive_deadline"]) - start).total_seconds()
            if allowed <= 0:
                continue
            fraction = (now - start).total_seconds() / allowed
            reached = sum(1 for f in STEP_FRACTIONS if fraction >= f)
            done = int(data.get("escalation_step", 0))
            for step in range(done + 1, reached + 1):
                role = ROLES[min(step, len(ROLES) - 1)]
                person = roster.on_duty(role, now, _school(inventory, inc.get("school_id"))) if roster else None
                data["escalation_step"] = step
                data.setdefault("escalated_to", []).append(
                    {"step": step, "role": role, "at": iso(now), **(person.to_dict() if person else {})})
                log.update("incidents", inc["id"], {"data": data})
                who = f"{ROLE_LABELS[role]} {person.name}" if person else f"{ROLE_LABELS[role]}（值班表无人）"
                _event(log, inc["id"], now, SYSTEM_ACTOR, "escalate-step",
                       f"step {step}: {int(STEP_FRACTIONS[step - 1] * 100)} % of the on-site time without arrival"
                       f" → {who}", {"step": step, "role": role, "to": person.name if person else None})
                inc = {**inc, "data": dict(data)}
                out.append((inc, step, person))
    return out

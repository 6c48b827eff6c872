"""The incident SLA clock of the O&M plan (运维服务管理方案 §1.3.2).

An incident's on-site deadline is its opening time plus an allowance that depends on its level and on whether it
was opened inside or outside the school's working hours:

    level     inside working hours   outside working hours
    major     1 h                    2 h
    general   2 h                    4 h

The allowance is wall-clock time: a general incident opened on Friday at 17:30 is due on site at 19:30, not on
Monday morning (the plan counts hours from the report, it does not pause the clock). Working hours are per school
(inventory `working_hours`, default Mon–Fri 08:00–18:00 Asia/Shanghai); the start is inclusive, the end exclusive.
China's statutory holidays are outside working hours and their make-up working days (调休) inside, from the
`chinese-calendar` package (cncalendar.py; `working_hours.statutory_holidays: false` turns it off). School
closures and vacations (寒暑假) are declared per school or district as `working_hours.closed` (days, ranges or
{from, to, reason}: the canteen is closed, so outside working hours), extra working days as
`working_hours.open_days`. Every
allowance is configurable per school through the policy fields `incident_<level>_inside_h` /
`incident_<level>_outside_h`; the restore limit (`incident_resolve_h`, default 24 h from GB/T 29315) is wall-clock
as well.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Mapping

from canteen_ops.inventory.model import Policy, WorkingHours

LEVELS = ("major", "general")
LEVEL_LABELS = {"major": "重大 major", "general": "一般 general"}


@dataclass(frozen=True)
class Deadlines:
    opened_at: dt.datetime
    in_working_hours: bool
    allowance: dt.timedelta
    arrive_by: dt.datetime
    resolve_by: dt.datetime


def in_working_hours(t: dt.datetime, wh: WorkingHours) -> bool:
    """Is the instant `t` (timezone-aware) inside the working hours, in the school's own time zone?"""
    from zoneinfo import ZoneInfo

    if t.tzinfo is None:
        raise ValueError("in_working_hours needs a timezone-aware time")
    local = t.astimezone(ZoneInfo(wh.timezone))
    clock = local.time().replace(tzinfo=None)
    day = local.date()
    if wh.start < wh.end:
        return wh.is_working_day(day) and wh.start <= clock < wh.end
    if wh.start > wh.end:  # a shift across midnight belongs to the day it started on
        if clock >= wh.start:
            return wh.is_working_day(day)
        if clock < wh.end:
            return wh.is_working_day(day - dt.timedelta(days=1))
    return False


def allowance(level: str, inside: bool, policy: Policy) -> dt.timedelta:
    if level not in LEVELS:
        raise ValueError(f"unknown incident level {level!r}: expected one of {', '.join(LEVELS)}")
    hours = getattr(policy, f"incident_{level}_{'inside' if inside else 'outside'}_h")
    return dt.timedelta(hours=hours)


def deadlines(level: str, opened_at: dt.datetime, wh: WorkingHours, policy: Policy) -> Deadlines:
    inside = in_working_hours(opened_at, wh)
    allowed = allowance(level, inside, policy)
    return Deadlines(opened_at=opened_at, in_working_hours=inside, allowance=allowed,
                     arrive_by=opened_at + allowed,
                     resolve_by=opened_at + dt.timedelta(hours=policy.incident_resolve_h))


def arrive_sla(incident: Mapping[str, Any], now: dt.datetime) -> str:
    """'met', 'breached' or 'pending' for the on-site deadline of an incident row.

    Arrival on site decides. An incident resolved remotely without anyone going on site meets the deadline if it
    was resolved before it.
    """
    from canteen_ops.timeutil import parse_iso

    deadline = incident.get("arrive_deadline")
    if not deadline:
        return "pending"
    due = parse_iso(deadline)
    done = incident.get("arrived_at") or incident.get("resolved_at")
    if done:
        return "met" if parse_iso(done) <= due else "breached"
    return "breached" if now > due else "pending"


def resolve_sla(incident: Mapping[str, Any], now: dt.datetime) -> str:
    from canteen_ops.timeutil import parse_iso

    deadline = incident.get("resolve_deadline")
    if not deadline:
        return "pending"
    due = parse_iso(deadline)
    if incident.get("resolved_at"):
        return "met" if parse_iso(incident["resolved_at"]) <= due else "breached"
    return "breached" if now > due else "pending"

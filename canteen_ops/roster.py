"""The duty roster (定岗值班): who is on duty when, for which schools, in which role.

A roster is a list of people, in the inventory (`roster:`) or in its own YAML file (`settings.roster_file`, a
mapping with a `roster:` list). Each person has a role (technician → supervisor → manager is the escalation
chain), contacts (phone; `notify`: the name of a `settings.notify` target that reaches this person), an optional
scope (`districts`, `groups`, `schools`: empty means every school) and shifts:

    - days: [mon, tue, wed, thu, fri]   # or dates: "2026-10-01..2026-10-07" (one day or a range)
      start: "08:00"                      # default 00:00
      end: "18:00"                        # default 24:00; end <= start is an overnight shift: it belongs to the
                                          # day it starts on and runs into the next morning

Times are in the inventory's `settings.timezone`. When several people of a role are on duty for a school, the
first one in the file is assigned.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Iterable

ROLES = ("technician", "supervisor", "manager")
ROLE_LABELS = {"technician": "值班技术员", "supervisor": "主管", "manager": "经理"}
PERSON_KEYS = {"name", "role", "phone", "email", "notify", "districts", "groups", "schools", "shifts"}
SHIFT_KEYS = {"days", "dates", "start", "end"}


@dataclass(frozen=True)
class Shift:
    days: tuple[int, ...] = ()  # Monday = 0; empty with no dates: every day
    dates: tuple[tuple[dt.date, dt.date], ...] = ()
    start: dt.time = dt.time(0, 0)
    end: dt.time | None = None  # None: until midnight

    def applies_on(self, day: dt.date) -> bool:
        if self.dates:
            return any(a <= day <= b for a, b in self.dates)
        return not self.days or day.weekday() in self.days

    def span_on(self, day: dt.date, tz) -> tuple[dt.datetime, dt.datetime]:
        """The shift's start and end instants when it starts on `day` (an overnight shift ends the next day)."""
        start = dt.datetime.combine(day, self.start, tz)
        if self.end is None or self.end == dt.time(0, 0):
            end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0, 0), tz)
        elif self.end <= self.start:
            end = dt.datetime.combine(day + dt.timedelta(days=1), self.end, tz)
        else:
            end = dt.datetime.combine(day, self.end, tz)
        return start, end


@dataclass(frozen=True)
class Person:
    name: str
    role: str
    phone: str | None = None
    email: str | None = None
    notify: str | None = None  # a settings.notify target name
    districts: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    schools: tuple[str, ...] = ()
    shifts: tuple[Shift, ...] = ()

    def covers(self, school) -> bool:
        """Is this school in the person's scope? (None: a district-wide question — everyone is in scope.)"""
        if school is None or not (self.districts or self.groups or self.schools):
            return True
        return (school.id in self.schools or (school.group or "") in self.groups
                or (school.district or "") in self.districts)

    def shift_at(self, t: dt.datetime, tz) -> tuple[dt.datetime, dt.datetime] | None:
        local = t.astimezone(tz)
        for day in (local.date() - dt.timedelta(days=1), local.date()):
            for s in self.shifts:
                if s.applies_on(day):
                    start, end = s.span_on(day, tz)
                    if start <= local < end:
                        return start, end
        return None

    def next_start(self, t: dt.datetime, tz, horizon_days: int = 62) -> dt.datetime | None:
        local = t.astimezone(tz)
        best = None
        for offset in range(horizon_days + 1):
            day = local.date() + dt.timedelta(days=offset)
            for s in self.shifts:
                if s.applies_on(day):
                    start, _ = s.span_on(day, tz)
                    if start > local and (best is None or start < best):
                        best = start
            if best is not None:
                return best
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "role": self.role, "role_label": ROLE_LABELS[self.role], "phone": self.phone,
                "email": self.email, "notify": self.notify}


@dataclass(frozen=True)
class Roster:
    people: tuple[Person, ...] = ()
    timezone: str = "Asia/Shanghai"

    @property
    def tz(self):
        from zoneinfo import ZoneInfo

        return ZoneInfo(self.timezone)

    def on_duty(self, role: str, t: dt.datetime, school=None) -> Person | None:
        for p in self.people:
            if p.role == role and p.covers(school) and p.shift_at(t, self.tz):
                return p
        return None

    def next_on_duty(self, role: str, t: dt.datetime, school=None) -> tuple[Person, dt.datetime] | None:
        """The next handover of this role after `t`: who takes over when the person on duty now leaves (shifts
        that run on back to back count as one), or who starts first when nobody is on duty. None: nobody else
        within two weeks."""
        current = self.on_duty(role, t, school)
        if current is None:
            return self._first_start(role, t, school)
        at = t
        for _ in range(16):
            span = current.shift_at(at, self.tz)
            if span is None:
                break
            at = span[1]
            nxt = self.on_duty(role, at, school)
            if nxt is None:
                return self._first_start(role, at, school)
            if nxt != current:
                return nxt, at.astimezone(self.tz)
        return None

    def duty_until(self, role: str, t: dt.datetime, school=None) -> dt.datetime | None:
        """When the person on duty now hands over (back-to-back shifts of the same person count as one)."""
        current = self.on_duty(role, t, school)
        at = t
        for _ in range(16):
            span = current.shift_at(at, self.tz) if current else None
            if span is None:
                return None if at == t else at.astimezone(self.tz)
            at = span[1]
            if self.on_duty(role, at, school) != current:
                return at.astimezone(self.tz)
        return None

    def _first_start(self, role: str, t: dt.datetime, school=None) -> tuple[Person, dt.datetime] | None:
        best = None
        for p in self.people:
            if p.role == role and p.covers(school):
                start = p.next_start(t, self.tz)
                if start is not None and (best is None or start < best[1]):
                    best = (p, start)
        return best


# --- validation (called by the inventory loader with its validator, so problems carry file:line) ---------
def parse_roster(v, raw: Any, path: tuple, timezone: str, notify_names: Iterable[str] | None = None,
                 scope: dict[str, set] | None = None) -> Roster:
    """`scope`: the inventory's school ids, group names and districts, which a person's scope must name."""
    from canteen_ops.inventory.loader import _parse_time, _weekday

    people: list[Person] = []
    if raw is None:
        return Roster(timezone=timezone)
    if v.typed(raw, path, list, "a list of people on duty") is None:
        return Roster(timezone=timezone)
    names = set(notify_names) if notify_names is not None else None
    for i, item in enumerate(raw):
        p = path + (i,)
        m = v.mapping(item, p, PERSON_KEYS, required=("name", "role", "shifts"))
        role = v.string(m, "role", p)
        if role is not None and role not in ROLES:
            v.problem(p + ("role",), "invalid role {role!r}: expected one of {roles}", role=role,
                      roles=', '.join(ROLES))
            role = None
        target = v.string(m, "notify", p)
        if target is not None and names is not None and target not in names:
            v.problem(p + ("notify",), "unknown notify target {target!r} (defined in settings.notify: {defined})"
                      if names else "unknown notify target {target!r} (settings.notify defines none)", target=target,
                      defined=", ".join(sorted(names)))
        limits = {k: v.str_list(m[k], p + (k,)) or () for k in ("districts", "groups", "schools") if m.get(k)}
        for key, values in limits.items():
            unknown = [x for x in values if scope is not None and x not in scope[key]]
            if unknown:
                v.problem(p + (key,), "no {key} {unknown} in the inventory", key=key[:-1],
                          unknown=", ".join(map(repr, unknown)))
        shifts = []
        sraw = m.get("shifts")
        if sraw is not None and v.typed(sraw, p + ("shifts",), list, "a list of shifts") is not None:
            if not sraw:
                v.problem(p + ("shifts",), "give at least one shift")
            for j, s in enumerate(sraw):
                sp = p + ("shifts", j)
                sm = v.mapping(s, sp, SHIFT_KEYS)
                kw: dict[str, Any] = {}
                if sm.get("days") is not None and sm.get("dates") is not None:
                    v.problem(sp, "give days or dates, not both")
                if sm.get("days") is not None:
                    days = v.str_list(sm["days"], sp + ("days",)) or ()
                    bad = [d for d in days if _weekday(d) is None]
                    if bad:
                        v.problem(sp + ("days",), "unknown weekday(s) {bad}: use mon..sun", bad=', '.join(bad))
                    kw["days"] = tuple(sorted({_weekday(d) for d in days if _weekday(d) is not None}))
                if sm.get("dates") is not None:
                    items = sm["dates"] if isinstance(sm["dates"], list) else [sm["dates"]]
                    ranges = [v.date_range(d, sp + ("dates",)) for d in items]
                    kw["dates"] = tuple(r for r in ranges if r is not None)
                for key in ("start", "end"):
                    if sm.get(key) is not None:
                        t = dt.time(0, 0) if sm[key] in ("24:00", 1440) else _parse_time(sm[key])
                        if t is None:
                            v.problem(sp + (key,), "expected a time HH:MM, got {sm!r}", sm=sm[key])
                        else:
                            kw[key] = t
                shifts.append(Shift(**kw))
        if role is None or not isinstance(m.get("name"), str):
            if isinstance(m, dict) and m.get("name") is not None and not isinstance(m.get("name"), str):
                v.string(m, "name", p)
            continue
        people.append(Person(name=m["name"], role=role, phone=v.string(m, "phone", p),
                             email=v.string(m, "email", p), notify=target, shifts=tuple(shifts), **limits))
    return Roster(people=tuple(people), timezone=timezone)


def load_roster_file(path: str, timezone: str, notify_names: Iterable[str] | None,
                     scope: dict[str, set] | None = None) -> Roster:
    """A roster in its own YAML file (`roster:` list at the top); problems raise InvalidFile with file:line."""
    from canteen_ops.errors import InvalidFile
    from canteen_ops.inventory.loader import _Validator
    from canteen_ops.inventory.yamlpos import read_input_file

    data, positions, problems = read_input_file(path, "roster file", "settings.roster_file in the inventory")
    v = _Validator(str(path), positions)
    v.problems.extend(problems)
    root = v.mapping(data if data is not None else {}, (), {"version", "roster"}, required=("roster",))
    roster = parse_roster(v, root.get("roster"), ("roster",), timezone, notify_names, scope)
    if v.problems:
        raise InvalidFile(sorted(dict.fromkeys(v.problems), key=lambda p: (p.line, p.column, p.path)))
    return roster

"""Incidents (故障) tracked against the O&M plan's on-site deadlines.

Life cycle: open → acked → arrived → resolved. `arrive` may follow `open` directly (the technician who turns up
has acknowledged it) and `resolve` may follow any state (a remote fix needs nobody on site). `cancel` closes an
active incident as a false alarm (kept in the log with its reason, left out of SLA figures); `reopen` brings a
resolved or cancelled one back to open (its deadlines stand: they count from the original report). `note` and
`assign` (who is on it) fit any active state; a note fits a closed incident too. Escalation is not a
state but a mark: when the on-site deadline passes without arrival, `escalated_at` is set once and an
`escalate` event is written. It is evaluated by `escalate_overdue`, which every `incident list/show` and every
check run calls, so the mark lands in the log (and upstream) even when nobody is looking.

Every action writes an `incident_events` row (who, when, what), so the timeline is complete.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Callable, Iterable, Mapping

from canteen_ops.errors import NotFound, UsageError, Word, Words
from canteen_ops.inventory.model import Inventory, Policy, WorkingHours
from canteen_ops.redact import redact
from canteen_ops.sla import LEVELS, arrive_sla, deadlines
from canteen_ops.store.log import MaintenanceLog
from canteen_ops.timeutil import iso, parse_iso, utcnow

STATES = ("open", "acked", "arrived", "resolved", "cancelled")
ACTIVE_STATES = ("open", "acked", "arrived")
CLOSED_STATES = ("resolved", "cancelled")
SYSTEM_ACTOR = "canteen-ops"

# Automatic incidents from check results (see `classify`): the checks whose failure means lost evidence for the
# whole school — recordings and required-area coverage — are major; anything on an NVR is major too, since every
# camera of the school records through it. Everything else on a single camera is general.
MAJOR_CHECKS = frozenset({"retention", "recording", "gaps", "hdd", "storage", "coverage"})


class IncidentStateError(UsageError):
    """An action that does not fit the incident's current state (exit 64)."""


# --- opening -------------------------------------------------------------------------------------------------
def open_incident(log: MaintenanceLog, inventory: Inventory, *, level: str, title: str, actor: str,
                  device_ids: Iterable[str] = (), school_id: str | None = None, description: str | None = None,
                  opened_at: dt.datetime | None = None, dedup_key: str | None = None,
                  source_result_id: str | None = None, data: dict | None = None) -> dict[str, Any]:
    """Open an incident and compute its deadlines from the school's working hours and policy."""
    if level not in LEVELS:
        raise UsageError("level {level!r}: expected one of {levels}", level=level, levels=', '.join(LEVELS))
    if not title or not title.strip():
        raise UsageError("an incident needs a title")
    device_ids = list(dict.fromkeys(device_ids))
    school_id = _school_of(inventory, device_ids, school_id)
    opened = opened_at or utcnow()
    wh, policy = _school_clock(inventory, school_id)
    d = deadlines(level, opened, wh, policy)
    with log.transaction():
        incident_id = log.insert("incidents", {
            "dedup_key": dedup_key, "level": level, "state": "open", "school_id": school_id,
            "device_ids": device_ids, "title": title.strip(), "description": description,
            "opened_at": iso(opened), "opened_by": actor, "arrive_deadline": iso(d.arrive_by),
            "resolve_deadline": iso(d.resolve_by), "opened_in_hours": d.in_working_hours,
            "source_result_id": source_result_id, "data": data,
        })
        _event(log, incident_id, opened, actor, "open",
               f"{level}; {'inside' if d.in_working_hours else 'outside'} working hours; on site within "
               f"{_hours(d.allowance)}", {"arrive_deadline": iso(d.arrive_by)})
    return log.get("incidents", incident_id)


def _school_of(inventory: Inventory, device_ids: list[str], school_id: str | None) -> str | None:
    schools = inventory.school_ids_of(device_ids)
    if school_id is not None:
        try:
            school = next(s for s in inventory.schools if school_id in (s.id, s.name))
        except StopIteration:
            raise NotFound("school {school_id!r} is not in the inventory {where}", school_id=school_id,
                           where=inventory.path) from None
        school_id = school.id
        if schools - {school_id}:
            raise UsageError("devices {device_ids} do not all belong to school {school_id}",
                             device_ids=', '.join(device_ids), school_id=school_id)
        return school_id
    if len(schools) > 1:
        raise UsageError("an incident belongs to one school; these devices span {schools} — open one incident per "
                         "school", schools=', '.join(sorted(schools)))
    if not schools:
        raise UsageError("name the affected device(s) or the school")
    return schools.pop()


def _school_clock(inventory: Inventory, school_id: str | None) -> tuple[WorkingHours, Policy]:
    try:
        school = inventory.school(school_id) if school_id else None
    except KeyError:
        school = None
    if school is None:
        return WorkingHours(timezone=inventory.settings.timezone), inventory.policy
    return school.working_hours, school.policy


# --- actions -------------------------------------------------------------------------------------------------
def find_incident(log: MaintenanceLog, ident: str) -> dict[str, Any]:
    """By full id or a unique prefix of at least 6 characters."""
    return log.find("incidents", ident, "incident")


Change = tuple[dict[str, Any], str, "str | None", "dict | None"]  # (column changes, event action, note, data)


def _act(log: MaintenanceLog, ident: str, actor: str, at: dt.datetime | None, allowed: tuple[str, ...],
         verb: str, change: Callable[[dict[str, Any], dt.datetime], Change]) -> dict[str, Any]:
    """One action on an incident: refused (exit 64) unless its state is in `allowed`; the column changes and the
    timeline event land together."""
    inc = find_incident(log, ident)
    _require(inc, allowed, verb)
    t = _when(inc, at)
    changes, action, note, data = change(inc, t)
    with log.transaction():
        if changes:
            log.update("incidents", inc["id"], changes)
        _event(log, inc["id"], t, actor, action, note, data)
    return log.get("incidents", inc["id"])


def ack(log: MaintenanceLog, ident: str, actor: str, *, note: str | None = None,
        at: dt.datetime | None = None) -> dict[str, Any]:
    return _act(log, ident, actor, at, ("open",), "acknowledge", lambda inc, t: (
        {"state": "acked", "acked_at": iso(t), "acked_by": actor}, "ack", note, None))


def arrive(log: MaintenanceLog, ident: str, actor: str, *, note: str | None = None,
           at: dt.datetime | None = None) -> dict[str, Any]:
    def change(inc, t):
        changes: dict[str, Any] = {"state": "arrived", "arrived_at": iso(t), "arrived_by": actor}
        if not inc.get("acked_at"):
            changes.update(acked_at=iso(t), acked_by=actor)
        late = parse_iso(inc["arrive_deadline"]) < t if inc.get("arrive_deadline") else False
        return changes, "arrive", note, {"sla": "breached" if late else "met",
                                         "arrive_deadline": inc.get("arrive_deadline")}

    return _act(log, ident, actor, at, ("open", "acked"), "record arrival for", change)


def resolve(log: MaintenanceLog, ident: str, actor: str, *, resolution: str,
            at: dt.datetime | None = None) -> dict[str, Any]:
    if not resolution or not resolution.strip():
        raise UsageError("say how it was resolved (--resolution), e.g. '更换交换机端口' / 'replaced PoE switch port'")
    text = resolution.strip()
    return _act(log, ident, actor, at, ACTIVE_STATES, "resolve", lambda inc, t: (
        {"state": "resolved", "resolved_at": iso(t), "resolved_by": actor, "resolution": text}, "resolve", text,
        None))


def cancel(log: MaintenanceLog, ident: str, actor: str, *, reason: str,
           at: dt.datetime | None = None) -> dict[str, Any]:
    """A false alarm: closed, kept in the log with the reason, counted in no SLA figure."""
    if not reason or not reason.strip():
        raise UsageError("say why it is cancelled (--reason), e.g. '误报：镜头被临时遮挡' / 'false alarm: lens briefly covered'")
    text = reason.strip()
    return _act(log, ident, actor, at, ACTIVE_STATES, "cancel", lambda inc, t: (
        {"state": "cancelled", "cancelled_at": iso(t), "cancelled_by": actor, "cancel_reason": text}, "cancel", text,
        None))


def reopen(log: MaintenanceLog, ident: str, actor: str, *, note: str | None = None,
           at: dt.datetime | None = None) -> dict[str, Any]:
    """A resolved or cancelled incident is active again (the fault came back, or it was no false alarm), in the
    furthest state it had reached: an arrival on site stays recorded."""
    def change(inc, t):
        if at is not None and at < parse_iso(inc.get("resolved_at") or inc.get("cancelled_at") or inc["opened_at"]):
            raise UsageError("--at {isoformat} is before the incident was closed", isoformat=at.isoformat())
        state = "arrived" if inc.get("arrived_at") else ("acked" if inc.get("acked_at") else "open")
        return ({"state": state, "resolved_at": None, "resolved_by": None, "resolution": None, "cancelled_at": None,
                 "cancelled_by": None, "cancel_reason": None}, "reopen", note, {"was": inc["state"]})

    return _act(log, ident, actor, at, CLOSED_STATES, "reopen", change)


def add_note(log: MaintenanceLog, ident: str, actor: str, *, text: str,
             at: dt.datetime | None = None) -> dict[str, Any]:
    """A line on the timeline, in any state; the incident itself does not change."""
    if not text or not text.strip():
        raise UsageError("the note text is empty")
    return _act(log, ident, actor, at, STATES, "note", lambda inc, t: ({}, "note", text.strip(), None))


def assign(log: MaintenanceLog, ident: str, actor: str, *, who: str,
           at: dt.datetime | None = None) -> dict[str, Any]:
    """Who is on it (a technician's name); an active incident only."""
    who = (who or "").strip()
    if not who or not who.isprintable():
        raise UsageError("name the person to assign, on one line")
    return _act(log, ident, actor, at, ACTIVE_STATES, "assign", lambda inc, t: (
        {"assigned_to": who}, "assign", who, {"was": inc.get("assigned_to")}))


def _require(inc: Mapping[str, Any], states: tuple[str, ...], verb: str) -> None:
    if inc["state"] not in states:
        raise IncidentStateError("cannot {verb} incident {id}: it is {state} (allowed when {states})",
                                 verb=Word(verb, "verb"), id=inc["id"][:8], state=Word(inc["state"]),
                                 states=Words(states))


def _when(inc: Mapping[str, Any], at: dt.datetime | None) -> dt.datetime:
    """The time of an action: now, or a back-dated time a technician gives (never before opening, never future)."""
    now = utcnow()
    if at is None:
        return now
    if at > now + dt.timedelta(minutes=1):
        raise UsageError("--at {isoformat} is in the future", isoformat=at.isoformat())
    if at < parse_iso(inc["opened_at"]):
        raise UsageError("--at {isoformat} is before the incident was opened ({opened_at})", isoformat=at.isoformat(),
                         opened_at=inc['opened_at'])
    for step in ("acked_at", "arrived_at") if inc["state"] in ACTIVE_STATES else ():
        if inc.get(step) and at < parse_iso(inc[step]):
            raise UsageError("--at {isoformat} is before the recorded {step} time ({inc})", isoformat=at.isoformat(),
                             step=step[:-3], inc=inc[step])
    return at


def _event(log: MaintenanceLog, incident_id: str, at: dt.datetime, actor: str | None, action: str,
           note: str | None = None, data: dict | None = None) -> str:
    return log.insert("incident_events", {"incident_id": incident_id, "at": iso(at), "actor": actor,
                                          "action": action, "note": note, "data": data})


def _hours(td: dt.timedelta) -> str:
    h = td.total_seconds() / 3600
    return f"{h:g} h"


# --- escalation and listing ----------------------------------------------------------------------------------
def escalate_overdue(log: MaintenanceLog, now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """Mark every active incident whose on-site deadline passed without arrival. Idempotent."""
    now = now or utcnow()
    with log.transaction():
        due = log.query("SELECT * FROM incidents WHERE state IN ('open', 'acked') AND arrived_at IS NULL "
                        "AND escalated_at IS NULL AND arrive_deadline < ? ORDER BY arrive_deadline", [iso(now)])
        for inc in due:
            log.update("incidents", inc["id"], {"escalated_at": iso(now)})
            _event(log, inc["id"], now, SYSTEM_ACTOR, "escalate",
                   f"on-site deadline {inc['arrive_deadline']} passed without arrival")
    return [log.get("incidents", inc["id"]) for inc in due]


def list_incidents(log: MaintenanceLog, *, include_resolved: bool = False, overdue: bool = False,
                   schools: Iterable[str] = (), levels: Iterable[str] = (), devices: Iterable[str] = (),
                   now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """Incidents, newest first, each with `sla` (met / breached / pending). `overdue` keeps breaches only (a
    cancelled false alarm never is one). `devices`: globs, any of the incident's devices matching."""
    import fnmatch

    now = now or utcnow()
    where, params = [], []
    if not include_resolved and not overdue:
        where.append("state IN ('open', 'acked', 'arrived')")
    if overdue:
        where.append("state != 'cancelled'")
    schools, levels = list(schools), list(levels)
    if schools:
        where.append(f"school_id IN ({', '.join('?' * len(schools))})")
        params += schools
    if levels:
        where.append(f"level IN ({', '.join('?' * len(levels))})")
        params += levels
    sql = "SELECT * FROM incidents" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY opened_at DESC"
    rows = []
    devices = list(devices)
    for inc in log.query(sql, params):
        if devices and not any(fnmatch.fnmatchcase(d, g) for d in inc.get("device_ids") or [] for g in devices):
            continue
        inc["sla"] = arrive_sla(inc, now)
        if overdue and inc["sla"] != "breached":
            continue
        rows.append(inc)
    return rows


def events(log: MaintenanceLog, incident_id: str) -> list[dict[str, Any]]:
    return log.query("SELECT * FROM incident_events WHERE incident_id = ? ORDER BY at, seq", [incident_id])


# --- incidents from check results ----------------------------------------------------------------------------
def classify(inventory: Inventory | None, result_row: Mapping[str, Any]) -> str:
    """major or general for a critical check result (rule documented at MAJOR_CHECKS and in docs/incidents.md)."""
    check = result_row.get("check_name") or result_row.get("check") or ""
    if check in MAJOR_CHECKS:
        return "major"
    device_id = result_row.get("device_id")
    if device_id is None:  # a school-level finding
        return "major"
    if inventory is not None:
        try:
            if inventory.device(device_id).kind == "nvr":
                return "major"
        except KeyError:
            pass
    return "general"


def dedup_key_for(result_row: Mapping[str, Any]) -> str:
    check = result_row.get("check_name") or result_row.get("check")
    device_id = result_row.get("device_id")
    return f"{device_id}:{check}" if device_id else f"school:{result_row.get('school_id')}:{check}"


def open_or_update_for_result(log: MaintenanceLog, inventory: Inventory | None, result_row: Mapping[str, Any],
                              *, actor: str = SYSTEM_ACTOR, now: dt.datetime | None = None
                              ) -> dict[str, Any] | None:
    """For `check --open-incidents`: one active incident per device+check, never two.

    - a crit result opens an incident, or updates the active one with the same dedup key (latest summary, a
      count of occurrences, a `recurrence` event) and raises its level to major if the new result is major;
    - an ok result adds one `check-recovered` event to an active incident (it does not resolve it: a person
      confirms the repair with `incident resolve`);
    - anything else is ignored. Returns the incident touched, or None.
    """
    status = str(getattr(result_row.get("status"), "value", result_row.get("status")))
    if status not in ("crit", "ok"):
        return None
    now = now or utcnow()
    key = dedup_key_for(result_row)
    check = result_row.get("check_name") or result_row.get("check")
    from canteen_ops.kb.classify import kb_for_result

    kb = kb_for_result(result_row)  # kept with the incident: alerts and `incident show` point at the entry
    summary = result_row.get("summary") or ""
    with log.transaction():  # BEGIN IMMEDIATE: two concurrent check runs cannot both open one
        active = log.query("SELECT * FROM incidents WHERE dedup_key = ? AND state IN ('open', 'acked', 'arrived') "
                           "ORDER BY opened_at LIMIT 1", [key])
        if status == "ok":
            if not active:
                return None
            inc = active[0]
            last = log.query("SELECT action FROM incident_events WHERE incident_id = ? ORDER BY seq DESC LIMIT 1",
                             [inc["id"]])
            if not last or last[0]["action"] != "check-recovered":
                _event(log, inc["id"], now, actor, "check-recovered", f"{check} ok again: {summary}",
                       {"result_id": result_row.get("id")})
            return log.get("incidents", inc["id"])
        level = classify(inventory, result_row)
        if active:
            inc = active[0]
            data = dict(inc.get("data") or {})
            data["occurrences"] = int(data.get("occurrences", 1)) + 1
            data["last_seen"] = iso(now)
            if kb:
                data["kb"] = kb
            changes: dict[str, Any] = {"description": summary, "source_result_id": result_row.get("id"),
                                       "data": data}
            if level == "major" and inc["level"] != "major":
                changes["level"] = "major"
                wh, policy = _school_clock(inventory, inc.get("school_id")) if inventory else (WorkingHours(), Policy())
                d = deadlines("major", parse_iso(inc["opened_at"]), wh, policy)
                changes["arrive_deadline"] = iso(d.arrive_by)
                _event(log, inc["id"], now, actor, "level-raised", f"general → major: {summary}",
                       {"arrive_deadline": iso(d.arrive_by)})
            log.update("incidents", inc["id"], changes)
            last = log.query("SELECT action, note FROM incident_events WHERE incident_id = ? ORDER BY seq DESC "
                             "LIMIT 1", [inc["id"]])
            if not last or (last[0]["action"], last[0]["note"]) != ("recurrence", redact(summary)):
                # a fault that persists is one timeline entry (occurrences counts it), not one per watch round
                _event(log, inc["id"], now, actor, "recurrence", summary, {"result_id": result_row.get("id")})
            return log.get("incidents", inc["id"])
        device_id = result_row.get("device_id")
        school_id = result_row.get("school_id")
        known = inventory is not None and _in_inventory(inventory, device_id, school_id)
        if known and device_id:
            school_id = inventory.device(device_id).school_id
        title = f"{device_id or school_id}: {check} critical"
        if not known:
            # The device left the inventory since the check ran: still track it, with the default clock.
            return _open_unchecked(log, inventory, level, title, summary, device_id, school_id, key,
                                   result_row, actor, now)
        return open_incident(log, inventory, level=level, title=title, description=summary, actor=actor,
                             device_ids=[device_id] if device_id else [], school_id=school_id,
                             opened_at=now, dedup_key=key, source_result_id=result_row.get("id"),
                             data={"occurrences": 1, "check": check, "last_seen": iso(now),
                                   **({"kb": kb} if kb else {})})


def _in_inventory(inventory: Inventory, device_id: str | None, school_id: str | None) -> bool:
    try:
        if device_id:
            inventory.device(device_id)
        else:
            inventory.school(school_id or "")
        return True
    except KeyError:
        return False


def _open_unchecked(log, inventory, level, title, summary, device_id, school_id, key, result_row, actor, now):
    wh, policy = _school_clock(inventory, school_id) if inventory else (WorkingHours(), Policy())
    d = deadlines(level, now, wh, policy)
    incident_id = log.insert("incidents", {
        "dedup_key": key, "level": level, "state": "open", "school_id": school_id,
        "device_ids": [device_id] if device_id else [], "title": title, "description": summary,
        "opened_at": iso(now), "opened_by": actor, "arrive_deadline": iso(d.arrive_by),
        "resolve_deadline": iso(d.resolve_by), "opened_in_hours": d.in_working_hours,
        "source_result_id": result_row.get("id"), "data": {"occurrences": 1, "last_seen": iso(now)},
    })
    _event(log, incident_id, now, actor, "open", f"{level}; from check result")
    return log.get("incidents", incident_id)


# --- watch: incidents that open and close themselves ---------------------------------------------------------
AUTO_RESOLUTION = "自动恢复 recovered automatically"


def track_result(log: MaintenanceLog, inventory: Inventory | None, result_row: Mapping[str, Any], *,
                 now: dt.datetime, hold_down: dt.timedelta, actor: str = SYSTEM_ACTOR
                 ) -> tuple[str | None, dict[str, Any] | None]:
    """What `watch` does with a result: (what happened, the incident) — what is opened, reopened, resolved,
    updated or None.

    On top of `open_or_update_for_result`: an ok result resolves the active incident of that device+check by
    itself (resolved_by canteen-ops, `data.auto_resolved`, the recovery time as resolved_at); a critical result
    within the hold-down after such an automatic resolve re-opens that incident instead of opening a new one,
    and a re-opened (flapping) incident is not resolved automatically again until the device has stayed well
    for a whole hold-down since it came back — so a flapping device re-opens at most once per hold-down period.
    Incidents opened by a person (no dedup key) are never touched."""
    status = str(getattr(result_row.get("status"), "value", result_row.get("status")))
    if status not in ("crit", "ok"):
        return None, None
    key = dedup_key_for(result_row)
    if status == "ok" and not log.query("SELECT 1 FROM incidents WHERE dedup_key = ? AND state IN ('open', 'acked', 'arrived') "
                                        "LIMIT 1", [key]):
        return None, None  # the common case, every round for every healthy check: no write transaction
    with log.transaction():
        active = log.query("SELECT * FROM incidents WHERE dedup_key = ? AND state IN ('open', 'acked', 'arrived') "
                           "ORDER BY opened_at LIMIT 1", [key])
        if status == "ok":
            if not active:
                return None, None
            inc = active[0]
            data = dict(inc.get("data") or {})
            reopened = data.get("reopened_at")
            since = data.get("well_since") or iso(now)
            if reopened and now - parse_iso(since) < hold_down:
                data["well_since"] = since  # flapping: stays open until well for a whole hold-down
                log.update("incidents", inc["id"], {"data": data})
                return "updated", open_or_update_for_result(log, inventory, result_row, actor=actor, now=now)
            data.update(auto_resolved=True, recovered_result_id=result_row.get("id"))
            data.pop("well_since", None)
            summary = result_row.get("summary") or ""
            log.update("incidents", inc["id"], {
                "state": "resolved", "resolved_at": iso(now), "resolved_by": actor,
                "resolution": f"{AUTO_RESOLUTION}: {summary}".rstrip(": "), "data": data})
            _event(log, inc["id"], now, actor, "resolve", f"{AUTO_RESOLUTION}: {summary}",
                   {"automatic": True, "result_id": result_row.get("id")})
            return "resolved", log.get("incidents", inc["id"])
        if active:
            data = dict(active[0].get("data") or {})
            if data.pop("well_since", None):
                log.update("incidents", active[0]["id"], {"data": data})
            return "updated", open_or_update_for_result(log, inventory, result_row, actor=actor, now=now)
        recent = log.query("SELECT * FROM incidents WHERE dedup_key = ? AND state = 'resolved' AND resolved_by = ? "
                           "AND resolved_at > ? ORDER BY resolved_at DESC LIMIT 1",
                           [key, actor, iso(now - hold_down)])
        if recent and (recent[0].get("data") or {}).get("auto_resolved"):
            return "reopened", _reopen(log, inventory, recent[0], result_row, now, actor)
        return "opened", open_or_update_for_result(log, inventory, result_row, actor=actor, now=now)


def _reopen(log, inventory, inc, result_row, now, actor) -> dict[str, Any]:
    """The fault is back soon after it cleared: the same incident again, with fresh deadlines from now."""
    wh, policy = _school_clock(inventory, inc.get("school_id")) if inventory else (WorkingHours(), Policy())
    d = deadlines(inc["level"], now, wh, policy)
    data = dict(inc.get("data") or {})
    data.update(reopened_at=iso(now), reopen_count=int(data.get("reopen_count", 0)) + 1, last_seen=iso(now),
                occurrences=int(data.get("occurrences", 1)) + 1)
    data.pop("auto_resolved", None)
    data.pop("escalation_step", None)
    summary = result_row.get("summary") or ""
    log.update("incidents", inc["id"], {
        "state": "open", "resolved_at": None, "resolved_by": None, "resolution": None, "escalated_at": None,
        "arrive_deadline": iso(d.arrive_by), "resolve_deadline": iso(d.resolve_by), "description": summary,
        "source_result_id": result_row.get("id"), "data": data})
    _event(log, inc["id"], now, actor, "reopen", f"fault back within the hold-down period: {summary}",
           {"arrive_deadline": iso(d.arrive_by), "result_id": result_row.get("id")})
    return log.get("incidents", inc["id"])

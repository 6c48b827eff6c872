"""Changes under work permits (工作许可制度), as the O&M plan's 申请和预告制度 describes them.

    requested → approved → notified → started → completed
                                              ↘ rolled_back

- request: what, which devices, the intended window;
- approve: by someone other than the requester (a permit one signs for oneself is no permit);
- notify: the notice (预告) — who was told, when, the affected devices and the window;
- start: only inside the announced window, only if no other started change holds one of the devices, and only
  after a backup of every affected device succeeded (the `backup_devices` hook);
- complete / roll back: close the permit.

Anything else is refused with PermissionRefused (exit 77) and the reason. Commands that alter devices (backup
restore, firmware upgrade) call `require_started_change` first.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Callable, Iterable, Mapping, Sequence

from canteen_ops.errors import PermissionRefused, UsageError, Word, Words
from canteen_ops.inventory.model import Device, Inventory
from canteen_ops.store.log import MaintenanceLog
from canteen_ops.timeutil import iso, parse_iso, utcnow

STATES = ("requested", "approved", "notified", "started", "completed", "rolled_back")
OPEN_STATES = ("requested", "approved", "notified", "started")

# backup_devices(devices, change_id) → one outcome per device: a canteen_ops.status.Result, a mapping or any
# object with `device_id` and `status` ("ok" / Status.OK means a good backup) and optionally `id` / `backup_id`.
BackupHook = Callable[[Sequence[Device], str], Iterable[Any]]


class BackupsUnavailable(PermissionRefused):
    """The backup module is not part of this build, so no change may start."""


def default_backup_hook(log: MaintenanceLog, inventory: Inventory, actor: str) -> BackupHook:
    """The real hook: canteen_ops.tasks.backup.run_backups, imported only when a change starts.

    Contract for the backup module: `run_backups(devices=[Device], change_id=str, log=MaintenanceLog,
    inventory=Inventory, operator=str)` backs every device up, records a `backups` row per attempt (with
    `change_id`), and returns one outcome per device as described at BackupHook.
    """
    def hook(devices: Sequence[Device], change_id: str) -> Iterable[Any]:
        try:
            from canteen_ops.tasks.backup import run_backups
        except ImportError as exc:
            if exc.name in ("canteen_ops.tasks.backup", "canteen_ops.tasks") or "run_backups" in str(exc):
                raise BackupsUnavailable(
                    "backups not available: this canteen-ops has no backup module (canteen_ops.tasks.backup), "
                    "and a change cannot start without a backup of every affected device") from None
            raise
        return run_backups(devices=list(devices), change_id=change_id, log=log, inventory=inventory,
                           operator=actor)

    return hook


# --- lookup --------------------------------------------------------------------------------------------------
def find_change(log: MaintenanceLog, ident: str) -> dict[str, Any]:
    """By full id or a unique prefix of at least 6 characters."""
    return log.find("changes", ident, "change")


def events(log: MaintenanceLog, change_id: str) -> list[dict[str, Any]]:
    return log.query("SELECT * FROM change_events WHERE change_id = ? ORDER BY seq", [change_id])


def list_changes(log: MaintenanceLog, *, include_closed: bool = False, states: Iterable[str] = ()
                 ) -> list[dict[str, Any]]:
    states = list(states) or (list(STATES) if include_closed else list(OPEN_STATES))
    return log.query(f"SELECT * FROM changes WHERE state IN ({', '.join('?' * len(states))}) "
                     "ORDER BY created_at DESC", states)


def _event(log: MaintenanceLog, change_id: str, actor: str | None, action: str, note: str | None = None,
           data: dict | None = None, at: dt.datetime | None = None) -> str:
    return log.insert("change_events", {"change_id": change_id, "at": iso(at), "actor": actor, "action": action,
                                        "note": note, "data": data})


def _require_state(ch: Mapping[str, Any], allowed: tuple[str, ...], verb: str) -> None:
    if ch["state"] not in allowed:
        nxt = {"requested": "approve", "approved": "notify", "notified": "start", "started": "complete or rollback"}
        values = dict(verb=Word(verb, "verb"), id=ch["id"][:8], title=ch["title"], state=Word(ch["state"]),
                      allowed=Words(allowed))  # the next step is a command name: as it is
        if ch["state"] in nxt:
            raise PermissionRefused("cannot {verb} change {id} ({title}): it is {state}, allowed only when {allowed}; "
                                    "next step: {next}", next=nxt[ch["state"]], **values)
        raise PermissionRefused("cannot {verb} change {id} ({title}): it is {state}, allowed only when {allowed}",
                                **values)


def _check_window(start: dt.datetime | None, end: dt.datetime | None) -> None:
    if start and end and end <= start:
        raise UsageError("the window ends ({end}) before it starts ({start})", end=iso(end), start=iso(start))


# --- the permit flow -----------------------------------------------------------------------------------------
def request(log: MaintenanceLog, inventory: Inventory, *, title: str, device_ids: Iterable[str], actor: str,
            description: str | None = None, window_start: dt.datetime | None = None,
            window_end: dt.datetime | None = None) -> dict[str, Any]:
    device_ids = list(dict.fromkeys(device_ids))
    if not title or not title.strip():
        raise UsageError("a change needs a title")
    if not device_ids:
        raise UsageError("name the device(s) the change affects (--device)")
    schools = inventory.school_ids_of(device_ids)
    _check_window(window_start, window_end)
    with log.transaction():
        cid = log.insert("changes", {
            "title": title.strip(), "description": description, "state": "requested",
            "school_id": schools.pop() if len(schools) == 1 else None, "device_ids": device_ids,
            "window_start": iso(window_start) if window_start else None,
            "window_end": iso(window_end) if window_end else None,
            "requested_at": iso(), "requested_by": actor,
        })
        _event(log, cid, actor, "request", description, {"device_ids": device_ids})
    return log.get("changes", cid)


def approve(log: MaintenanceLog, ident: str, actor: str, *, note: str | None = None) -> dict[str, Any]:
    ch = find_change(log, ident)
    _require_state(ch, ("requested",), "approve")
    if actor == ch.get("requested_by"):
        raise PermissionRefused("cannot approve change {id}: {actor} requested it; another person (the responsible "
                                "leader) must approve", id=ch['id'][:8], actor=actor)
    with log.transaction():
        log.update("changes", ch["id"], {"state": "approved", "approved_at": iso(), "approved_by": actor})
        _event(log, ch["id"], actor, "approve", note)
    return log.get("changes", ch["id"])


def notify(log: MaintenanceLog, ident: str, actor: str, *, notice_to: Sequence[str],
           window_start: dt.datetime | None = None, window_end: dt.datetime | None = None,
           note: str | None = None, now: dt.datetime | None = None) -> dict[str, Any]:
    """Record the notice (预告): who was told, when, which devices, which window."""
    ch = find_change(log, ident)
    _require_state(ch, ("approved",), "record the notice for")
    told = [n.strip() for n in notice_to if n and n.strip()]
    if not told:
        raise UsageError("say who was told (--to, repeatable), e.g. --to '王建国 后勤主任'")
    start = window_start or (parse_iso(ch["window_start"]) if ch.get("window_start") else None)
    end = window_end or (parse_iso(ch["window_end"]) if ch.get("window_end") else None)
    if not (start and end):
        raise UsageError("the notice must state the window (--window-start and --window-end)")
    _check_window(start, end)
    now = now or utcnow()
    if end <= now:
        raise UsageError("the announced window already ended ({end})", end=iso(end))
    with log.transaction():
        log.update("changes", ch["id"], {"state": "notified", "notified_at": iso(now), "notified_by": actor,
                                         "notice_to": told, "window_start": iso(start), "window_end": iso(end)})
        _event(log, ch["id"], actor, "notify", note, {"notice_to": told, "device_ids": ch["device_ids"],
                                                      "window_start": iso(start), "window_end": iso(end)}, at=now)
    return log.get("changes", ch["id"])


def start(log: MaintenanceLog, inventory: Inventory, ident: str, actor: str, *,
          backup_devices: BackupHook | None = None, now: dt.datetime | None = None) -> dict[str, Any]:
    """Start the work: inside the window, devices free, and a good backup of every device first."""
    ch = find_change(log, ident)
    _require_state(ch, ("notified",), "start")
    now = now or utcnow()
    ws, we = parse_iso(ch["window_start"]), parse_iso(ch["window_end"])
    if not ws <= now <= we:
        raise PermissionRefused("cannot start change {id}: now is outside the announced window {window_start} – "
                                "{window_end}", id=ch['id'][:8], window_start=ch['window_start'],
                                window_end=ch['window_end'])
    devices = []
    for did in ch["device_ids"]:
        try:
            devices.append(inventory.device(did))
        except KeyError:
            raise PermissionRefused("cannot start change {id}: device {did!r} is no longer in the inventory",
                                    id=ch['id'][:8], did=did) from None
    busy = _devices_in_started_changes(log, set(ch["device_ids"]), exclude=ch["id"])
    if busy:
        if len(busy) == 1:
            (device, other), = busy.items()
            raise PermissionRefused("cannot start change {id}: {device} is under started change {other}",
                                    id=ch["id"][:8], device=device, other=other[:8])
        raise PermissionRefused("cannot start change {id}: devices under other started changes: {devices}",
                                id=ch["id"][:8], devices=", ".join(f"{d} ({c[:8]})" for d, c in sorted(busy.items())))
    hook = backup_devices or default_backup_hook(log, inventory, actor)
    try:
        outcomes = list(hook(devices, ch["id"]))
    except BackupsUnavailable as exc:
        _event(log, ch["id"], actor, "start-refused", str(exc))
        raise
    good, bad = _judge_backups(ch["device_ids"], outcomes)
    if bad:
        msg = "; ".join(f"{d}: {why}" for d, why in bad.items())
        _event(log, ch["id"], actor, "start-refused", f"backup failed: {msg}", {"failed": bad})
        raise PermissionRefused("cannot start change {id}: no good backup of every affected device ({msg})",
                                id=ch['id'][:8], msg=msg)
    with log.transaction():
        log.update("changes", ch["id"], {"state": "started", "started_at": iso(now), "started_by": actor,
                                         "data": {**(ch.get("data") or {}), "backups": good}})
        _event(log, ch["id"], actor, "start", None, {"backups": good}, at=now)
    return log.get("changes", ch["id"])


def _judge_backups(device_ids: Sequence[str], outcomes: Iterable[Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Split hook outcomes into {device: backup id or None} that succeeded and {device: reason} that did not."""
    good: dict[str, Any] = {}
    bad: dict[str, str] = {}
    for o in outcomes:
        get = o.get if isinstance(o, Mapping) else (lambda k, _o=o: getattr(_o, k, None))
        did = get("device_id")
        status = get("status")
        status = getattr(status, "value", status)
        if did not in device_ids:
            continue
        if status == "ok":
            good[did] = get("backup_id") or get("id")
            bad.pop(did, None)
        elif did not in good:
            bad[did] = str(get("summary") or get("reason") or status or "failed")
    for did in device_ids:
        if did not in good and did not in bad:
            bad[did] = "no backup outcome reported"
    return good, bad


def _devices_in_started_changes(log: MaintenanceLog, device_ids: set[str], exclude: str | None = None
                                ) -> dict[str, str]:
    busy = {}
    for c in log.query("SELECT id, device_ids FROM changes WHERE state = 'started'"):
        if c["id"] == exclude:
            continue
        for d in set(c["device_ids"] or ()) & device_ids:
            busy[d] = c["id"]
    return busy


def complete(log: MaintenanceLog, ident: str, actor: str, *, note: str | None = None) -> dict[str, Any]:
    ch = find_change(log, ident)
    _require_state(ch, ("started",), "complete")
    with log.transaction():
        log.update("changes", ch["id"], {"state": "completed", "completed_at": iso(), "completed_by": actor})
        _event(log, ch["id"], actor, "complete", note)
    return log.get("changes", ch["id"])


def rollback(log: MaintenanceLog, ident: str, actor: str, *, reason: str) -> dict[str, Any]:
    if not reason or not reason.strip():
        raise UsageError("say why the change is rolled back (--reason)")
    ch = find_change(log, ident)
    _require_state(ch, ("started",), "roll back")
    with log.transaction():
        log.update("changes", ch["id"], {"state": "rolled_back", "rolled_back_at": iso(),
                                         "rolled_back_by": actor})
        _event(log, ch["id"], actor, "rollback", reason.strip())
    return log.get("changes", ch["id"])


# --- the guard for commands that alter devices ---------------------------------------------------------------
def require_started_change(log: MaintenanceLog, device_ids: Iterable[str], change_id: str | None = None,
                           now: dt.datetime | None = None) -> dict[str, Any]:
    """The started change whose permit covers every one of `device_ids`, or PermissionRefused (exit 77).

    With `change_id`, that change must be the one. A change whose window has ended no longer covers anything:
    complete it (or roll back) and request a new one.
    """
    wanted = list(dict.fromkeys(device_ids))
    if not wanted:
        raise UsageError("require_started_change needs at least one device")
    now = now or utcnow()
    if change_id:
        candidates = [find_change(log, change_id)]
    else:
        candidates = log.query("SELECT * FROM changes WHERE state = 'started' ORDER BY started_at DESC")
    reasons = []
    for ch in candidates:
        missing = [d for d in wanted if d not in (ch.get("device_ids") or [])]
        if ch["state"] != "started":
            reasons.append(f"change {ch['id'][:8]} is {ch['state']}, not started")
        elif missing:
            reasons.append(f"change {ch['id'][:8]} does not cover {', '.join(missing)}")
        elif ch.get("window_end") and parse_iso(ch["window_end"]) < now:
            reasons.append(f"change {ch['id'][:8]}'s window ended at {ch['window_end']}")
        else:
            return ch
    detail = "; ".join(reasons) if reasons else "no change is started"
    if len(wanted) == 1:
        raise PermissionRefused("refused: altering {devices} needs a started change (work permit) covering it "
                                "({detail}). Use: canteen-ops change request → approve → notify → start",
                                devices=wanted[0], detail=detail)
    raise PermissionRefused("refused: altering {devices} needs a started change (work permit) covering them "
                            "({detail}). Use: canteen-ops change request → approve → notify → start",
                            devices=", ".join(wanted), detail=detail)

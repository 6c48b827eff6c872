"""One timeline over every kind of log record, for `log list`, `log show` and `log export`."""

from __future__ import annotations

from typing import Any

from canteen_ops.store.log import MaintenanceLog
from canteen_ops.store.schema import SYNCED_TABLES

# kind → SELECT producing (kind, id, at, school_id, device_id, status, summary, operator)
_PARTS = {
    "run": "SELECT 'run', r.id, r.started_at, NULL, NULL, r.status, r.command, r.operator FROM runs r",
    "check": "SELECT 'check', x.id, x.observed_at, x.school_id, x.device_id, x.status, "
             "x.check_name || ': ' || COALESCE(x.summary, ''), r.operator FROM results x LEFT JOIN runs r ON r.id = x.run_id",
    "backup": "SELECT 'backup', x.id, x.created_at, x.school_id, x.device_id, x.status, "
              "COALESCE(x.reason, x.method || ' sha256:' || substr(x.sha256, 1, 12)), r.operator "
              "FROM backups x LEFT JOIN runs r ON r.id = x.run_id",
    "snapshot": "SELECT 'snapshot', x.id, x.created_at, x.school_id, x.device_id, "
                "CASE WHEN x.accepted_at IS NULL THEN 'taken' ELSE 'baseline' END, 'sha256:' || substr(x.sha256, 1, 12), "
                "r.operator FROM snapshots x LEFT JOIN runs r ON r.id = x.run_id",
    "firmware": "SELECT 'firmware', x.id, x.created_at, x.school_id, x.device_id, x.status, x.summary, r.operator "
                "FROM firmware_findings x LEFT JOIN runs r ON r.id = x.run_id",
    "incident": "SELECT 'incident', x.id, x.opened_at, x.school_id, x.device_ids, x.level || '/' || x.state, x.title, "
                "x.opened_by FROM incidents x",
    "change": "SELECT 'change', x.id, x.created_at, x.school_id, x.device_ids, x.state, x.title, x.requested_by "
              "FROM changes x",
    "note": "SELECT 'note', x.id, x.at, x.school_id, x.device_id, x.kind, x.text, x.operator FROM notes x",
    "step": "SELECT 'step', x.id, x.started_at, NULL, NULL, x.status, x.playbook || ' #' || x.step_index || ' ' || "
            "COALESCE(x.step_name, x.task), x.actor FROM playbook_steps x",
    # the notification outbox (local, not synced): a target's name and the message title, never its URL
    "notify": "SELECT 'notify', x.id, COALESCE(x.sent_at, x.last_attempt_at, x.created_at), NULL, NULL, "
              "x.state || CASE WHEN x.attempts > 1 THEN ' (' || x.attempts || ' attempts)' ELSE '' END, "
              "x.target || ' ' || x.event || ': ' || x.title || COALESCE(' — ' || x.last_error, ''), NULL FROM outbox x",
    "kb": "SELECT 'kb', x.id, x.created_at, x.school_id, x.device_id, x.kb_id, x.title, x.author FROM kb_entries x",
}
KINDS = tuple(_PARTS)
# kind → (table searched by --grep, its alias in the part above); runs and snapshots hold no free text.
_TEXT = {"check": ("results", "x"), "backup": ("backups", "x"), "firmware": ("firmware_findings", "x"),
         "incident": ("incidents", "x"), "change": ("changes", "x"), "note": ("notes", "x"),
         "step": ("playbook_steps", "x")}
COLUMNS = ("kind", "id", "at", "school_id", "device_id", "status", "summary", "operator")


def list_entries(log: MaintenanceLog, *, kinds: tuple[str, ...] = (), schools: tuple[str, ...] = (),
                 devices: tuple[str, ...] = (), since: str | None = None, until: str | None = None,
                 grep: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """Timeline entries, newest first. `schools` and `devices` are ids or globs; `since` inclusive, `until`
    exclusive (UTC ISO); `grep` keeps entries whose text contains it (store/search.py)."""
    from canteen_ops.store import search

    parts, params = [], []
    for k in kinds or KINDS:
        if not grep:
            parts.append(_PARTS[k])
        elif k in _TEXT:
            table, alias = _TEXT[k]
            cond, p = search.match(table, alias, grep)
            if k == "incident":  # an incident is also found by the notes on its timeline
                ev_cond, ev_p = search.match("incident_events", "e", grep)
                cond = f"({cond} OR {alias}.id IN (SELECT e.incident_id FROM incident_events e WHERE {ev_cond}))"
                p += ev_p
            parts.append(f"{_PARTS[k]} WHERE {cond}")
            params += p
    # Name the columns through a first, empty SELECT (SQLite has no `AS alias(cols)`).
    header = "SELECT " + ", ".join(f"NULL AS {c}" for c in COLUMNS) + " WHERE 0"
    union = " UNION ALL ".join([header, *parts])
    where = []
    if schools:
        where.append("(" + " OR ".join("school_id GLOB ?" for _ in schools) + ")")
        params += list(schools)
    if devices:
        # incidents and changes hold a JSON list of device ids; match either form, with globs.
        ors = []
        for d in devices:
            ors.append("(device_id GLOB ? OR device_id GLOB ?)")
            params += [d, f'*"{d}"*']
        where.append("(" + " OR ".join(ors) + ")")
    if since:
        where.append("at >= ?")
        params.append(since)
    if until:
        where.append("at < ?")
        params.append(until)
    sql = f"SELECT * FROM ({union})"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY at DESC"
    if limit:
        sql += f" LIMIT {int(limit)}"
    return [dict(zip(COLUMNS, tuple(r))) for r in log.conn.execute(sql, params).fetchall()]


def find_record(log: MaintenanceLog, ident: str) -> tuple[str, dict[str, Any]] | None:
    """Find a record in any table by full id or unique prefix (≥ 6 chars)."""
    if len(ident) < 6:
        return None
    hits = []
    for table in SYNCED_TABLES:
        # substr, not LIKE: '_' and '%' in what someone typed must not act as wildcards
        for row in log.query(f"SELECT * FROM {table} WHERE substr(id, 1, ?) = ? LIMIT 2", [len(ident), ident]):
            hits.append((table, row))
    exact = [h for h in hits if h[1]["id"] == ident]
    if exact:
        return exact[0]
    return hits[0] if len(hits) == 1 else None

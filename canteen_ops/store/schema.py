"""Log schema and its migrations. PRAGMA user_version holds the schema version.

To change the schema, append a migration; never edit one that has shipped.
"""

from __future__ import annotations

import sqlite3
from typing import Callable

from canteen_ops.store import search

# Columns every synced table starts with.
_COMMON = """
  id TEXT PRIMARY KEY,
  seq INTEGER NOT NULL,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL"""

_V1 = f"""
CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT INTO counters (name, value) VALUES ('seq', 0);

CREATE TABLE runs ({_COMMON},
  operator TEXT, host TEXT, command TEXT NOT NULL, args TEXT,
  started_at TEXT NOT NULL, ended_at TEXT, status TEXT NOT NULL, exit_code INTEGER, pid INTEGER);

CREATE TABLE results ({_COMMON},
  run_id TEXT REFERENCES runs(id), school_id TEXT, device_id TEXT, check_name TEXT NOT NULL,
  status TEXT NOT NULL, summary TEXT, data TEXT, duration_ms REAL, observed_at TEXT NOT NULL);
CREATE INDEX results_device_check ON results (device_id, check_name, seq);

CREATE TABLE backups ({_COMMON},
  run_id TEXT REFERENCES runs(id), school_id TEXT, device_id TEXT NOT NULL, status TEXT NOT NULL,
  reason TEXT, method TEXT, path TEXT, sha256 TEXT, size INTEGER, content_type TEXT, change_id TEXT);
CREATE INDEX backups_device ON backups (device_id, seq);

CREATE TABLE snapshots ({_COMMON},
  run_id TEXT REFERENCES runs(id), school_id TEXT, device_id TEXT NOT NULL, sha256 TEXT NOT NULL,
  data TEXT NOT NULL, accepted_at TEXT, accepted_by TEXT);
CREATE INDEX snapshots_device ON snapshots (device_id, seq);

CREATE TABLE firmware_findings ({_COMMON},
  run_id TEXT REFERENCES runs(id), school_id TEXT, device_id TEXT NOT NULL, vendor TEXT, model TEXT,
  version TEXT, status TEXT NOT NULL, latest TEXT, minimum TEXT, advisories TEXT, summary TEXT);

CREATE TABLE incidents ({_COMMON},
  dedup_key TEXT, level TEXT NOT NULL, state TEXT NOT NULL, school_id TEXT, device_ids TEXT,
  title TEXT NOT NULL, description TEXT, opened_at TEXT NOT NULL, opened_by TEXT,
  acked_at TEXT, acked_by TEXT, arrived_at TEXT, arrived_by TEXT, resolved_at TEXT, resolved_by TEXT,
  resolution TEXT, arrive_deadline TEXT, escalated_at TEXT, source_result_id TEXT, data TEXT);
CREATE INDEX incidents_state ON incidents (state, dedup_key);

CREATE TABLE incident_events ({_COMMON},
  incident_id TEXT NOT NULL REFERENCES incidents(id), at TEXT NOT NULL, actor TEXT, action TEXT NOT NULL,
  note TEXT, data TEXT);

CREATE TABLE changes ({_COMMON},
  title TEXT NOT NULL, description TEXT, state TEXT NOT NULL, school_id TEXT, device_ids TEXT,
  window_start TEXT, window_end TEXT, requested_at TEXT, requested_by TEXT, approved_at TEXT,
  approved_by TEXT, notified_at TEXT, notified_by TEXT, notice_to TEXT, started_at TEXT, started_by TEXT,
  completed_at TEXT, completed_by TEXT, rolled_back_at TEXT, rolled_back_by TEXT, data TEXT);

CREATE TABLE change_events ({_COMMON},
  change_id TEXT NOT NULL REFERENCES changes(id), at TEXT NOT NULL, actor TEXT, action TEXT NOT NULL,
  note TEXT, data TEXT);

CREATE TABLE notes ({_COMMON},
  run_id TEXT REFERENCES runs(id), at TEXT NOT NULL, operator TEXT, school_id TEXT, device_id TEXT,
  kind TEXT NOT NULL, text TEXT NOT NULL);

CREATE TABLE playbook_steps ({_COMMON},
  run_id TEXT REFERENCES runs(id), playbook TEXT NOT NULL, step_index INTEGER NOT NULL, step_name TEXT,
  task TEXT NOT NULL, status TEXT NOT NULL, started_at TEXT, ended_at TEXT, actor TEXT, summary TEXT,
  data TEXT);

CREATE TABLE sync_state (table_name TEXT PRIMARY KEY, last_seq INTEGER NOT NULL, synced_at TEXT,
  upstream TEXT);
"""

# v2 (incidents/SLA): the restore deadline and whether the incident was opened inside working hours, so reports
# and the upstream can tell which allowance applied without recomputing it from a possibly changed inventory.
_V2 = """
ALTER TABLE incidents ADD COLUMN resolve_deadline TEXT;
ALTER TABLE incidents ADD COLUMN opened_in_hours INTEGER;
CREATE INDEX incidents_dedup ON incidents (dedup_key, state);
CREATE INDEX changes_state ON changes (state)
"""

# v3 (sync): upstream sync reads every synced table by `seq > last_seq ORDER BY seq`; without an index on seq
# each batch was a full scan and sort (100k results: ~150 ms per batch).
_V3 = ";\n".join(f"CREATE INDEX IF NOT EXISTS {t}_seq ON {t} (seq)" for t in (
    "runs", "results", "backups", "snapshots", "firmware_findings", "incidents", "incident_events", "changes",
    "change_events", "notes", "playbook_steps"))

# v4 (incidents): who is on it (`incident assign`) and false alarms closed with a reason (`incident cancel`).
_V4 = """
ALTER TABLE incidents ADD COLUMN assigned_to TEXT;
ALTER TABLE incidents ADD COLUMN cancelled_at TEXT;
ALTER TABLE incidents ADD COLUMN cancelled_by TEXT;
ALTER TABLE incidents ADD COLUMN cancel_reason TEXT
"""

# v5 (log list --grep): trigram full-text indexes over the free text, filled from existing records and kept in
# step by triggers (store/search.py). A migration is SQL, or a function of the connection when a library builds it.

# v6 (watch/notify): the notification outbox. One row per (target, dedup key): an event about an incident reaches
# each target once. A send that fails stays `pending` with its error and is retried at the next watch round; the
# row names the target, never its URL (the URL carries the token). Local only: not synced upstream.
# not_before is unused (nothing reads it; kept because existing logs have it).
_V6 = f"""
CREATE TABLE outbox ({_COMMON},
  target TEXT NOT NULL, dedup_key TEXT NOT NULL, event TEXT NOT NULL, incident_id TEXT, level TEXT,
  title TEXT NOT NULL, body TEXT NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
  last_error TEXT, last_attempt_at TEXT, sent_at TEXT, not_before TEXT, data TEXT);
CREATE UNIQUE INDEX outbox_target_dedup ON outbox (target, dedup_key);
CREATE INDEX outbox_state ON outbox (state, target)
"""

# v7 (knowledge base): technicians' own entries (`kb add`), synced upstream so a district's knowledge grows.
# kb_id is what people type (KB-T-…); lists (causes, steps, keywords) are one item per line.
_V7 = f"""
CREATE TABLE kb_entries ({_COMMON},
  kb_id TEXT NOT NULL UNIQUE, title TEXT NOT NULL, symptom TEXT, causes TEXT, steps TEXT, escalate TEXT,
  keywords TEXT, author TEXT, extends TEXT, school_id TEXT, device_id TEXT);
CREATE INDEX kb_entries_seq ON kb_entries (seq)
"""

# v8 (login memory): logins a device refused, remembered across commands (a nightly check, snapshot, backup and
# firmware job add up toward a vendor's lockout). Local only, not synced: it steers this machine's next runs.
_V8 = """
CREATE TABLE login_refusals (device_id TEXT NOT NULL, refused_at TEXT NOT NULL, until TEXT NOT NULL,
  kind TEXT NOT NULL, detail TEXT, command TEXT);
CREATE INDEX login_refusals_device ON login_refusals (device_id, until)
"""

# One entry per schema version, applied in order inside one transaction each.
MIGRATIONS: list[str | Callable[[sqlite3.Connection], None]] = [_V1, _V2, _V3, _V4, search.enable, _V6, _V7, _V8]

SYNCED_TABLES = (
    "runs", "results", "backups", "snapshots", "firmware_findings", "incidents", "incident_events",
    "changes", "change_events", "notes", "playbook_steps", "kb_entries",
)


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the database up to the newest schema. Must be called inside a transaction."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > len(MIGRATIONS):
        from canteen_ops.errors import LogUnusable

        raise LogUnusable("maintenance log schema v{version} is newer than this canteen-ops (knows v{n}); upgrade "
                          "canteen-ops", version=version, n=len(MIGRATIONS))
    for target, script in enumerate(MIGRATIONS[version:], start=version + 1):
        if callable(script):
            script(conn)
        else:
            for statement in _statements(script):
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {target}")
    return len(MIGRATIONS)


def _statements(script: str) -> list[str]:
    # executescript() would COMMIT our transaction; split on ';' instead (no ';' inside our DDL).
    return [s.strip() for s in script.split(";") if s.strip()]

"""The local SQLite maintenance log: versioned schema, atomic writes, runs that survive crashes.

Every syncable table has `id` (UUID), `seq` (a log-wide counter bumped on every insert and update, so upstream
sync can resume from the last pushed seq), `created_at` and `updated_at` (UTC ISO-8601).
"""

from __future__ import annotations

import functools
import json
import os
import socket
import sqlite3
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from canteen_ops.errors import LogUnusable
from canteen_ops.redact import redact
from canteen_ops.status import Result
from canteen_ops.store.schema import SYNCED_TABLES, migrate
from canteen_ops.timeutil import iso

if TYPE_CHECKING:
    import sqlite_utils

JSON_COLUMNS = {"args", "data", "device_ids", "advisories", "notice_to"}


def new_id() -> str:
    return str(uuid.uuid4())


class MaintenanceLog:
    def __init__(self, conn: sqlite3.Connection, path: Path):
        self.conn = conn
        self.path = path

    @functools.cached_property
    def db(self) -> "sqlite_utils.Database":
        """The log as a sqlite-utils Database (ad-hoc queries, table introspection). Built on first use: importing
        sqlite_utils imports numpy and pandas when they are installed (numpy is, for the picture metrics), ~120 ms
        that every command opening the log paid while nothing here used it."""
        import sqlite_utils

        return sqlite_utils.Database(self.conn)

    @staticmethod
    def add_secret(value: str | None) -> None:
        """Mask this value wherever it appears (passwords from Credentials.resolve() are registered already)."""
        from canteen_ops.redact import remember_secret

        remember_secret(value)

    @classmethod
    def open(cls, path: str | Path) -> "MaintenanceLog":
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: we manage transactions explicitly with BEGIN IMMEDIATE (see `transaction`).
            conn = sqlite3.connect(str(path), timeout=30, isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise LogUnusable("cannot open the maintenance log {where}: {exc}", where=path, exc=exc) from None
        try:
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA busy_timeout=30000")
            # Refuse another program's database before touching it (switching to WAL would change its file).
            if (conn.execute("PRAGMA user_version").fetchone()[0] == 0
                    and conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone()):
                raise LogUnusable("{where} is another program's SQLite database, not a canteen-ops maintenance log",
                                  where=path)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across app crashes, atomic always
            conn.execute("PRAGMA foreign_keys=ON")
            log = cls(conn, path)
            with log.transaction():
                migrate(conn)
            log.recover_interrupted_runs()
        except sqlite3.DatabaseError as exc:  # not SQLite, or another program's database
            conn.close()
            raise LogUnusable("{where} is not a usable canteen-ops maintenance log: {exc}", where=path,
                              exc=exc) from None
        except BaseException:
            conn.close()
            raise
        return log

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic unit: either everything inside lands or nothing does (also on Ctrl-C or a crash)."""
        if self.conn.in_transaction:  # nested: join the outer transaction
            yield self.conn
            return
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        else:
            self.conn.execute("COMMIT")

    @property
    def schema_version(self) -> int:
        return self.conn.execute("PRAGMA user_version").fetchone()[0]

    # --- generic writes --------------------------------------------------------------------------------
    def _next_seq(self, n: int = 1) -> int:
        """Take n numbers of the change sequence (inside a transaction); returns the first."""
        last = self.conn.execute("UPDATE counters SET value = value + ? WHERE name = 'seq' RETURNING value",
                                 [n]).fetchone()[0]
        return last - n + 1

    def insert(self, table: str, record: dict[str, Any]) -> str:
        """Insert one record (secrets redacted, JSON columns encoded); returns its id."""
        return self.insert_many(table, [record])[0]

    def insert_many(self, table: str, records: list[dict[str, Any]]) -> list[str]:
        """Insert records in one transaction: all of them land or none does. Returns their ids, in order."""
        if not records:
            return []
        now = iso()
        rows = []
        for record in records:
            rec = {k: _encode(k, redact(v)) for k, v in record.items()}
            rec.setdefault("id", new_id())
            rec.setdefault("created_at", now)
            rec["updated_at"] = now
            rows.append(rec)
        with self.transaction():
            first = self._next_seq(len(rows))
            for seq, rec in enumerate(rows, first):
                rec["seq"] = seq
                cols = ", ".join(rec)
                marks = ", ".join("?" for _ in rec)
                self.conn.execute(f"INSERT INTO {table} ({cols}) VALUES ({marks})", list(rec.values()))
        return [rec["id"] for rec in rows]

    def update(self, table: str, record_id: str, changes: dict[str, Any]) -> None:
        rec = {k: _encode(k, redact(v)) for k, v in changes.items()}
        rec["updated_at"] = iso()
        with self.transaction():
            rec["seq"] = self._next_seq()
            sets = ", ".join(f"{k} = ?" for k in rec)
            cur = self.conn.execute(f"UPDATE {table} SET {sets} WHERE id = ?", [*rec.values(), record_id])
            if cur.rowcount != 1:
                raise KeyError(f"{table} {record_id} not found")

    def get(self, table: str, record_id: str) -> dict[str, Any] | None:
        row = self.conn.execute(f"SELECT * FROM {table} WHERE id = ?", [record_id]).fetchone()
        return decode_row(row) if row else None

    def find(self, table: str, ident: str, what: str) -> dict[str, Any]:
        """A record by full id or a unique prefix of at least 6 characters (typed literally: no wildcards)."""
        from canteen_ops.errors import NotFound, UsageError

        row = self.get(table, ident)
        if row:
            return row
        if len(ident) >= 6:
            rows = self.query(f"SELECT * FROM {table} WHERE substr(id, 1, ?) = ? LIMIT 2", [len(ident), ident])
            if len(rows) == 1:
                return rows[0]
            if len(rows) > 1:
                raise UsageError("{what} id prefix {ident!r} is ambiguous; give more characters", what=what,
                                 ident=ident)
        from canteen_ops.i18n import _

        raise NotFound(_("no {what} with id {id}").format(what=_(what), id=repr(ident)))

    def query(self, sql: str, params: list | tuple = ()) -> list[dict[str, Any]]:
        return [decode_row(r) for r in self.conn.execute(sql, params).fetchall()]

    # --- runs ------------------------------------------------------------------------------------------
    def start_run(self, command: str, args: list[str], operator: str) -> str:
        return self.insert("runs", {
            "operator": operator, "host": socket.gethostname(), "command": command, "args": args,
            "started_at": iso(), "status": "running", "pid": os.getpid(),
        })

    def finish_run(self, run_id: str, status: str, exit_code: int) -> None:
        self.update("runs", run_id, {"ended_at": iso(), "status": status, "exit_code": exit_code})

    @contextmanager
    def run(self, command: str, args: list[str], operator: str) -> Iterator["RunHandle"]:
        """Record a run from start to end. Ctrl-C or an error marks it interrupted/failed, keeping its results."""
        handle = RunHandle(self, self.start_run(command, args, operator))
        try:
            yield handle
        except KeyboardInterrupt:
            self.finish_run(handle.id, "interrupted", 130)
            raise
        except SystemExit as exc:
            if exc.code in (None, 0):  # sys.exit(0) inside a run is a normal end
                self.finish_run(handle.id, handle.status, handle.exit_code)
            else:
                self.finish_run(handle.id, "failed", exc.code if isinstance(exc.code, int) else 1)
            raise
        except BaseException as exc:
            code = getattr(exc, "exit_code", None)
            self.finish_run(handle.id, "failed", code if isinstance(code, int) else 70)
            raise
        else:
            self.finish_run(handle.id, handle.status, handle.exit_code)

    def recover_interrupted_runs(self) -> int:
        """Runs left 'running' by a killed process on this host are marked interrupted."""
        host = socket.gethostname()
        stale = [r["id"] for r in self.conn.execute(
            "SELECT id, pid FROM runs WHERE status = 'running' AND host = ?", [host]).fetchall()
            if not _pid_alive(r["pid"])]
        for run_id in stale:
            self.update("runs", run_id, {"status": "interrupted", "ended_at": iso(), "exit_code": 130})
        return len(stale)

    # --- results ---------------------------------------------------------------------------------------
    def record_result(self, run_id: str | None, result: Result) -> str:
        return self.record_results(run_id, [result])[0]

    def record_results(self, run_id: str | None, results: list[Result]) -> list[str]:
        """Results in one transaction (a device's, as `check` records them: a commit per result was half of the
        parent's CPU on a 1,000-device check)."""
        observed = iso()
        return self.insert_many("results", [{
            "run_id": run_id, "school_id": r.school_id, "device_id": r.device_id, "check_name": r.check,
            "status": r.status.value, "summary": r.summary, "data": r.data, "duration_ms": r.duration_ms,
            "observed_at": observed,
        } for r in results])

    def latest_results(self, device_id: str | None = None) -> list[dict[str, Any]]:
        """The newest result per (device, check)."""
        where, params = ("WHERE device_id = ?", [device_id]) if device_id else ("", [])
        return self.query(f"""
            SELECT r.* FROM results r JOIN (
              SELECT device_id, check_name, MAX(seq) AS seq FROM results {where} GROUP BY device_id, check_name
            ) m ON r.seq = m.seq ORDER BY r.device_id, r.check_name""", params)


class RunHandle:
    """What a command holds while it runs: the run id and the worst status seen so far."""

    def __init__(self, log: MaintenanceLog, run_id: str):
        self.log, self.id = log, run_id
        self.status, self.exit_code = "ok", 0

    def set_outcome(self, status: str, exit_code: int) -> None:
        self.status, self.exit_code = status, exit_code

    def record(self, result: Result) -> str:
        return self.log.record_result(self.id, result)

    def record_all(self, results: list[Result]) -> list[str]:
        return self.log.record_results(self.id, results)


def _encode(key: str, value: Any) -> Any:
    if key in JSON_COLUMNS and value is not None and not isinstance(value, str):
        return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    if isinstance(value, bool):
        return int(value)
    return value


def decode_row(row: sqlite3.Row) -> dict[str, Any]:
    out = dict(row)
    for k in JSON_COLUMNS & out.keys():
        if isinstance(out[k], str):
            try:
                out[k] = json.loads(out[k])
            except ValueError:
                pass
    return out


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


__all__ = ["MaintenanceLog", "RunHandle", "SYNCED_TABLES", "new_id", "decode_row"]

"""Refused logins remembered across commands (table login_refusals).

Hikvision and Dahua lock the source address after ~5 failed logins within their lockout window (30 min by
default). One run sends at most one refused login per device (drivers.base.auth_guard), but a nightly job runs
check, snapshot, backup and firmware one after the other: four refusals. So a refusal is written here, and until
the window has passed no command sends credentials to that device again — it reports when it may be tried —
unless the technician says `--force-login` (after fixing the password, say).

Each write uses its own short connection, so check's worker processes (checks/shards.py) can record too: a
memory pickles as its log's path and settings, and a worker reopens it. The refusals that block are read once,
when the memory is first asked or told (every command that opens the log makes one; most never use it).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from canteen_ops.drivers.base import AuthFailed

DEFAULT_WINDOW_S = 1800.0  # Hikvision's and Dahua's default lockout (LoginFailLockTime / illegal login lock)
UTC = dt.timezone.utc


def _iso(t: dt.datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="seconds")


def _local(t: dt.datetime) -> str:
    return t.astimezone().strftime("%H:%M")


class LoginMemory:
    def __init__(self, path: str | Path, *, command: str | None = None, force: bool = False,
                 now=lambda: dt.datetime.now(UTC)):
        self.path, self.command, self.force, self._now = str(path), command, force, now
        self._lock = threading.Lock()
        self._loaded: dict[str, dict] | None = None  # device id -> its refusal inside the window; read lazily

    def _active(self) -> dict[str, dict]:
        """The refusals still blocking, read from the log on first use (call with self._lock held)."""
        if self._loaded is None:
            loaded: dict[str, dict] = {}
            if not self.force:
                conn = self._connect()
                try:
                    for row in conn.execute("SELECT device_id, refused_at, until, kind, detail, command "
                                            "FROM login_refusals WHERE until > ? ORDER BY until",
                                            [_iso(self._now())]):
                        loaded[row[0]] = dict(zip(("device_id", "refused_at", "until", "kind", "detail",
                                                   "command"), row))
                finally:
                    conn.close()
            self._loaded = loaded
        return self._loaded

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    def __reduce__(self):
        return (_reopen, (self.path, self.command, self.force))

    def withheld(self, device_id: str) -> "AuthFailed | None":
        """The error to raise instead of sending credentials to a device inside its window (None: go ahead)."""
        from canteen_ops.drivers.base import Withheld

        if self.force:
            return None
        with self._lock:
            row = self._active().get(device_id)
        if row is None:
            return None
        until = dt.datetime.fromisoformat(row["until"])
        left = (until - self._now()).total_seconds()
        if left <= 0:
            return None
        refused = dt.datetime.fromisoformat(row["refused_at"])
        by = f" (during `{row['command']}`)" if row.get("command") else ""
        what = "locked us out" if row["kind"] == "locked" else "refused our login"
        return Withheld(f"{device_id}: not tried: the device {what} at {_local(refused)}{by}; no credentials go "
                        f"to it again before {_local(until)} (its lockout window), or now with --force-login",
                        unlock_in_s=left)

    def record(self, device_id: str, exc: "AuthFailed") -> None:
        from canteen_ops.drivers.base import Locked, Withheld
        from canteen_ops.redact import redact_text

        if isinstance(exc, Withheld):
            return
        now = self._now()
        window = getattr(exc, "unlock_in_s", None) or DEFAULT_WINDOW_S
        row = {"device_id": device_id, "refused_at": _iso(now), "until": _iso(now + dt.timedelta(seconds=window)),
               "kind": "locked" if isinstance(exc, Locked) else "refused", "detail": redact_text(str(exc))[:300],
               "command": self.command}
        try:
            conn = self._connect()
            try:
                conn.execute("INSERT INTO login_refusals (device_id, refused_at, until, kind, detail, command) "
                             "VALUES (:device_id, :refused_at, :until, :kind, :detail, :command)", row)
            finally:
                conn.close()  # `with conn` would only commit (autocommit anyway), not close
        except sqlite3.Error:
            pass  # the in-process guard still stops this run; losing the memory only costs a later run a try
        with self._lock:
            self._active()[device_id] = row


def _reopen(path: str, command: str | None, force: bool) -> LoginMemory:
    """A LoginMemory in a worker process: the same log, the refusals read again."""
    return LoginMemory(path, command=command, force=force)

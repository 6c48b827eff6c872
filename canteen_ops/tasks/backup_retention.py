"""What we hold and whether it is still good: backup overview and staleness, verify, prune.

Pruning never deletes log rows (they sync upstream by id); it marks them `pruned` and deletes a file only when
no remaining `ok` row references it.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable

from canteen_ops.status import Result, Status
from canteen_ops.store.backups import BackupStore
from canteen_ops.timeutil import iso, parse_iso, utcnow

if TYPE_CHECKING:
    from canteen_ops.inventory.model import Device
    from canteen_ops.store.log import MaintenanceLog

# A file referenced by a backup that is still being recorded must not be pruned: `put` touches a reused file,
# and prune leaves alone anything touched within this window.
PRUNE_GRACE_S = 3600.0


def _in(column: str, values: Iterable[str]) -> tuple[str, list[str]]:
    values = list(values)
    return f"{column} IN ({', '.join('?' * len(values))})", values


# --- overview and staleness ---------------------------------------------------------------------------
@dataclass
class DeviceBackupState:
    device_id: str
    school_id: str | None
    vendor: str | None
    last_ok: dict[str, Any] | None
    last_attempt: dict[str, Any] | None
    last_snapshot_at: str | None
    window_h: float
    stale: bool
    note: str

    def to_dict(self) -> dict[str, Any]:
        lo, la = self.last_ok or {}, self.last_attempt or {}
        return {"device_id": self.device_id, "school_id": self.school_id, "vendor": self.vendor,
                "stale": self.stale, "window_hours": self.window_h, "note": self.note,
                "last_ok_id": lo.get("id"), "last_ok_at": lo.get("created_at"), "sha256": lo.get("sha256"),
                "size": lo.get("size"), "method": lo.get("method"),
                "last_attempt_at": la.get("created_at"), "last_attempt_status": la.get("status"),
                "last_attempt_reason": la.get("reason")}


def _newest(log: "MaintenanceLog", where: str, params: list) -> dict[str, dict[str, Any]]:
    rows = log.query(f"""SELECT b.* FROM backups b JOIN (
                           SELECT device_id, MAX(seq) AS seq FROM backups WHERE {where} GROUP BY device_id
                         ) m ON b.seq = m.seq""", params)
    return {r["device_id"]: r for r in rows}


def backup_states(log: "MaintenanceLog", devices: list["Device"], *, window: dt.timedelta | None = None,
                  now: dt.datetime | None = None) -> list[DeviceBackupState]:
    """One line per device: newest good backup, newest attempt, stale or not.

    Stale = no successful backup within the window (`window`, else the device's policy.backup_stale_hours).
    A device that offers no export is judged by its newest config snapshot instead.
    """
    now = now or utcnow()
    ids = [d.id for d in devices]
    if not ids:
        return []
    where, params = _in("device_id", ids)
    last_ok = _newest(log, f"status = 'ok' AND {where}", params)
    last_any = _newest(log, f"status != 'pruned' AND {where}", params)
    snaps = {r["device_id"]: r["at"] for r in log.query(
        f"SELECT device_id, MAX(updated_at) AS at FROM snapshots WHERE {where} GROUP BY device_id", params)}
    out = []
    for d in devices:
        hours = window.total_seconds() / 3600 if window else d.policy.backup_stale_hours
        cutoff = now - dt.timedelta(hours=hours)
        ok, attempt = last_ok.get(d.id), last_any.get(d.id)
        if ok and parse_iso(ok["created_at"]) >= cutoff:
            stale, note = False, ""
        elif not ok and attempt and attempt["status"] == "unsupported":
            snap = snaps.get(d.id)
            stale = not (snap and parse_iso(snap) >= cutoff)
            note = "no config export offered; " + ("snapshot is recent" if not stale else
                                                   "and no snapshot in the window" if snap else "and no snapshot")
        elif ok:
            stale, note = True, f"no successful backup in the last {hours:g} h"
        else:
            stale, note = True, "never backed up" if not attempt else "no successful backup yet"
        if attempt and attempt["status"] == "failed":
            note = (note + "; " if note else "") + f"last attempt failed: {attempt['reason']}"
        out.append(DeviceBackupState(d.id, d.school_id, d.vendor, ok, attempt, snaps.get(d.id), hours, stale,
                                     note))
    return out


def backup_history(log: "MaintenanceLog", device_ids: list[str], limit: int | None = None
                   ) -> list[dict[str, Any]]:
    where, params = _in("device_id", device_ids)
    sql = f"SELECT * FROM backups WHERE {where} ORDER BY seq DESC"
    if limit:
        sql += f" LIMIT {int(limit)}"
    return log.query(sql, params)


# --- verify -----------------------------------------------------------------------------------------------
@dataclass
class FileCheck:
    path: str
    sha256: str
    state: str  # ok | missing | corrupt
    device_id: str
    school_id: str | None
    record_ids: list[str]


@dataclass
class VerifyReport:
    files: list[FileCheck] = field(default_factory=list)
    unreferenced: list[str] = field(default_factory=list)  # files no ok row points at (prune removes them)
    temp_files: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[FileCheck]:
        return [f for f in self.files if f.state != "ok"]

    @property
    def exit_code(self) -> int:
        return Status.CRIT.exit_code if self.problems else 0


def verify_backups(log: "MaintenanceLog", store: BackupStore, device_ids: list[str] | None = None
                   ) -> VerifyReport:
    """Re-hash every file that an `ok` backup row references; report missing and corrupt ones."""
    where, params = "status = 'ok' AND path IS NOT NULL", []
    if device_ids is not None:
        w, params = _in("device_id", device_ids)
        where += f" AND {w}"
    groups: dict[tuple[str, str], FileCheck] = {}
    for r in log.query(f"SELECT id, device_id, school_id, path, sha256 FROM backups WHERE {where} ORDER BY seq",
                       params):
        key = (r["path"], r["sha256"])
        if key not in groups:
            groups[key] = FileCheck(r["path"], r["sha256"], "", r["device_id"], r["school_id"], [])
        groups[key].record_ids.append(r["id"])
    report = VerifyReport(files=list(groups.values()))
    for f in report.files:
        f.state = store.check(f.path, f.sha256)
    if device_ids is None:
        referenced = {p for p, _ in groups}
        report.unreferenced = [p for p in store.files() if p not in referenced]
        report.temp_files = [str(p) for p in store.stale_temp_files()]
    return report


def verify_results(report: VerifyReport) -> list[Result]:
    """One result per device: crit when any of its files is missing or corrupt."""
    per_device: dict[str, list[FileCheck]] = {}
    for f in report.files:
        per_device.setdefault(f.device_id, []).append(f)
    out = []
    for device_id, files in sorted(per_device.items()):
        bad = [f for f in files if f.state != "ok"]
        if bad:
            summary = "; ".join(f"{f.state}: {f.path}" for f in bad)
            out.append(Result(device_id, "backup-verify", Status.CRIT, summary, school_id=files[0].school_id,
                              data={"problems": [{"path": f.path, "state": f.state, "records": f.record_ids}
                                                 for f in bad], "files": len(files)}))
        else:
            out.append(Result(device_id, "backup-verify", Status.OK, f"{len(files)} file(s) intact",
                              school_id=files[0].school_id, data={"files": len(files)}))
    return out


# --- prune ------------------------------------------------------------------------------------------------
@dataclass
class DevicePrune:
    device_id: str
    school_id: str | None
    kept: list[str] = field(default_factory=list)  # row ids
    pruned: list[str] = field(default_factory=list)  # row ids
    deleted_files: list[str] = field(default_factory=list)
    newest_good: str | None = None
    skipped: str | None = None  # why nothing was done (lock held)


@dataclass
class PruneReport:
    devices: list[DevicePrune] = field(default_factory=list)
    orphans_deleted: list[str] = field(default_factory=list)
    temp_deleted: list[str] = field(default_factory=list)
    dry_run: bool = False

    @property
    def pruned_count(self) -> int:
        return sum(len(d.pruned) for d in self.devices)

    @property
    def deleted_count(self) -> int:
        return sum(len(d.deleted_files) for d in self.devices) + len(self.orphans_deleted)


def _recently_touched(store: BackupStore, relpath: str, grace_s: float) -> bool:
    try:
        return time.time() - store.abspath(relpath).stat().st_mtime < grace_s
    except (FileNotFoundError, ValueError):
        return False


def prune_backups(log: "MaintenanceLog", store: BackupStore, *, keep_last: int, keep_days: float,
                  dry_run: bool = False, device_ids: list[str] | None = None, run_id: str | None = None,
                  grace_s: float = PRUNE_GRACE_S, now: dt.datetime | None = None) -> PruneReport:
    """Keep, per device, the newest `keep_last` good backups, every backup younger than `keep_days`, and
    always the newest backup whose file still verifies. Older rows are marked pruned; a file is deleted
    only when no remaining ok row (of any device) references it."""
    from canteen_ops.errors import LockHeld

    if keep_last < 1:
        raise ValueError("--keep-last must be at least 1")
    now = now or utcnow()
    cutoff = iso(now - dt.timedelta(days=keep_days))
    report = PruneReport(dry_run=dry_run)
    where, params = "status = 'ok'", []
    if device_ids is not None:
        w, params = _in("device_id", device_ids)
        where += f" AND {w}"
    rows = log.query(f"SELECT * FROM backups WHERE {where} ORDER BY seq DESC", params)
    per_device: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        per_device.setdefault(r["device_id"], []).append(r)

    for device_id, dev_rows in sorted(per_device.items()):
        dp = DevicePrune(device_id, dev_rows[0]["school_id"])
        report.devices.append(dp)
        try:
            # Never race a backup of the same device (it may be about to record a row for a file we'd delete).
            with store.lock(device_id):
                _prune_device(log, store, dp, dev_rows, keep_last=keep_last, cutoff=cutoff, dry_run=dry_run,
                              run_id=run_id, grace_s=grace_s, now=now, keep_days=keep_days)
        except LockHeld as exc:
            dp.skipped = str(exc)

    if device_ids is None:  # whole-store housekeeping only when pruning everything
        referenced = {r["path"] for r in log.query("SELECT DISTINCT path FROM backups WHERE status = 'ok' "
                                                   "AND path IS NOT NULL")}
        for p in store.files():
            if p not in referenced and not _recently_touched(store, p, grace_s):
                report.orphans_deleted.append(p)
                if not dry_run:
                    store.delete(p)
        for t in store.stale_temp_files(older_than_s=grace_s):
            report.temp_deleted.append(str(t))
            if not dry_run:
                try:
                    os.unlink(t)
                except FileNotFoundError:
                    pass
    return report


def _prune_device(log, store, dp: DevicePrune, rows, *, keep_last, cutoff, dry_run, run_id, grace_s, now,
                  keep_days) -> None:
    keep: set[str] = set()
    for i, r in enumerate(rows):  # newest first
        if i < keep_last or r["created_at"] >= cutoff:
            keep.add(r["id"])
    good = next((r for r in rows if r["path"] and store.check(r["path"], r["sha256"]) == "ok"), None)
    dp.newest_good = good["id"] if good else None
    # Never delete the newest good backup; if no file verifies, keep the newest row so nothing is lost blindly.
    keep.add(good["id"] if good else rows[0]["id"])
    dp.kept = [r["id"] for r in rows if r["id"] in keep]
    doomed = [r for r in rows if r["id"] not in keep]
    if not doomed:
        return
    dp.pruned = [r["id"] for r in doomed]
    note = f"pruned {iso(now)} (keep-last {keep_last}, keep-days {keep_days:g}); was ok"
    with log.transaction():
        paths = {r["path"] for r in doomed if r["path"]}
        if not dry_run:
            for r in doomed:
                log.update("backups", r["id"], {"status": "pruned", "reason": note})
        for p in sorted(paths):
            still = log.query("SELECT id FROM backups WHERE status = 'ok' AND path = ? AND id NOT IN ("
                              + ", ".join("?" * len(dp.pruned)) + ") LIMIT 1", [p, *dp.pruned])
            if not still and not _recently_touched(store, p, grace_s):
                dp.deleted_files.append(p)
    # Delete files only after the rows are committed: a crash in between leaves an unreferenced file (which
    # the next prune removes), never a row pointing at a deleted file.
    if not dry_run:
        for p in dp.deleted_files:
            store.delete(p)
        log.insert("results", {
            "run_id": run_id, "school_id": dp.school_id, "device_id": dp.device_id, "check_name": "backup-prune",
            "status": "ok", "observed_at": iso(),
            "summary": f"pruned {len(dp.pruned)} backup record(s), deleted {len(dp.deleted_files)} file(s)",
            "data": {"pruned": dp.pruned, "deleted_files": dp.deleted_files, "kept": dp.kept,
                     "newest_good": dp.newest_good, "keep_last": keep_last, "keep_days": keep_days},
        })

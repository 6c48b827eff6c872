"""Configuration backups: export each device's config the vendor's way and keep it in the file store.

Every attempt leaves one row in the `backups` table: ok (a new file, or 'unchanged' pointing at the file
already stored), failed (with the reason), unsupported (the device offers no export; its snapshot is what we
keep) or skipped (another run holds the device's lock). Rows are written from the calling thread only.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from canteen_ops.errors import LockHeld
from canteen_ops.status import Result, Status, worst
from canteen_ops.store.backups import BackupStore

if TYPE_CHECKING:
    from canteen_ops.drivers.base import ConfigExport, Driver
    from canteen_ops.inventory.model import Device, Inventory
    from canteen_ops.store.log import MaintenanceLog

CHECK = "backup"
UNSUPPORTED_REASON = "no config export offered by this device; rely on its snapshot"
# Backup status → monitoring status. A device without an export is not a failure.
STATUS = {"ok": Status.OK, "unsupported": Status.OK, "skipped": Status.WARN, "failed": Status.CRIT}

DriverFactory = Callable[["Device"], "Driver"]


def backup_dir_for(inventory: "Inventory | None") -> Path:
    """The inventory's settings.backup_dir (relative to the inventory file), else the user data directory."""
    from canteen_ops import paths

    if inventory is not None and inventory.settings.backup_dir:
        p = Path(inventory.settings.backup_dir).expanduser()
        return p if p.is_absolute() else Path(inventory.path).resolve().parent / p
    return paths.default_backup_dir()


def _default_factory(device: "Device") -> "Driver":
    from canteen_ops.drivers.registry import open_driver

    return open_driver(device)


@dataclass
class BackupReport:
    results: list[Result] = field(default_factory=list)
    record_ids: dict[str, str] = field(default_factory=dict)  # device id → backups row id
    interrupted: bool = False

    def by_status(self, status: str) -> list[Result]:
        return [r for r in self.results if r.data.get("backup_status") == status]

    def __iter__(self):
        """One outcome per device, the shape a change's start hook judges (canteen_ops.changes): status "ok"
        for a good backup or a device that offers no export (its snapshot stands in)."""
        for r in self.results:
            bs = r.data.get("backup_status")
            yield {"device_id": r.device_id, "status": "ok" if bs in ("ok", "unsupported") else bs,
                   "backup_status": bs, "backup_id": self.record_ids.get(r.device_id), "summary": r.summary}

    @property
    def all_skipped(self) -> bool:
        return bool(self.results) and all(r.data.get("backup_status") == "skipped" for r in self.results)

    @property
    def ok(self) -> bool:
        """Every device backed up or has nothing to export (what a change's start step needs)."""
        return all(r.data.get("backup_status") in ("ok", "unsupported") for r in self.results)

    @property
    def status(self) -> Status:
        return worst(r.status for r in self.results)

    @property
    def exit_code(self) -> int:
        from canteen_ops.errors import EXIT_TEMPFAIL

        return EXIT_TEMPFAIL if self.all_skipped else self.status.exit_code


def validate_export(export: "ConfigExport") -> str | None:
    """Why an export must not be stored, or None. Catches error pages and truncated bodies that a
    lenient device (or driver) handed over as if they were the configuration."""
    content = export.content
    if not content:
        return "the device returned an empty export"
    head = content[:512].lstrip()
    if head.startswith(b"<") and b"ResponseStatus" in head:
        return "the device answered with an error (ResponseStatus) instead of its configuration"
    if export.extension == ".json" or "json" in (export.content_type or ""):
        try:
            json.loads(content)
        except ValueError as exc:
            return f"export is not valid JSON (truncated?): {exc}"
    return None


def backup_device(device: "Device", store: BackupStore, factory: DriverFactory | None = None,
                  *, deadline_at: float | None = None) -> Result:
    """Back up one device; never raises for device trouble. Holds the device's lock throughout."""
    from canteen_ops.drivers.base import (AuthFailed, CredentialsUnavailable, DriverError, Forbidden, Locked,
                                          NotSupported, Offline, Timeout, Withheld)

    factory = factory or _default_factory

    def result(status: str, summary: str, **data: Any) -> Result:
        return Result(device.id, CHECK, STATUS[status], summary, school_id=device.school_id,
                      data={"backup_status": status, **data})

    try:
        with store.lock(device.id):
            try:
                with factory(device) as driver:
                    export = driver.export_config()
            except Forbidden as exc:  # 403: the user may not export, a failed backup (counts as stale)
                return result("failed", f"export refused (too little privilege): {exc}",
                              reason=f"refused: too little privilege: {exc}")
            except NotSupported:
                return result("unsupported", UNSUPPORTED_REASON, reason=UNSUPPORTED_REASON)
            except CredentialsUnavailable as exc:  # nothing was sent: not a rejected login
                return result("failed", f"no usable credentials: {exc}", reason=f"no credentials: {exc}")
            except Withheld as exc:
                why = str(exc).split(": ", 1)[-1]
                return result("failed", why, reason=f"login withheld: {why}")
            except Locked as exc:
                return result("failed", f"device locked us out: {exc}", reason=f"locked: {exc}")
            except AuthFailed as exc:
                return result("failed", f"login rejected: {exc}", reason=f"auth failed: {exc}")
            except Offline as exc:
                return result("failed", f"offline: {exc}", reason=f"offline: {exc}")
            except Timeout as exc:
                return result("failed", f"timed out: {exc}", reason=f"timeout: {exc}")
            except DriverError as exc:
                return result("failed", f"export failed: {exc}", reason=f"export failed: {exc}")
            problem = validate_export(export)
            if problem:
                return result("failed", problem, reason=problem, method=export.method)
            if deadline_at is not None and time.monotonic() > deadline_at:
                # The runner has already given up on this device; storing now would leave a file no record
                # points at.
                return result("failed", "export arrived after the per-device deadline; not stored",
                              reason="deadline passed", method=export.method)
            try:
                stored = store.put(device.school_id, device.id, export.content, export.extension)
            except (OSError, ValueError) as exc:
                return result("failed", f"could not store the export: {exc}", reason=f"store: {exc}",
                              method=export.method)
    except LockHeld as exc:
        return result("skipped", str(exc), reason=str(exc))
    except OSError as exc:  # the lock file itself: backup directory missing rights, disk full, read-only
        return result("failed", f"cannot use the backup directory {store.root}: {exc}",
                      reason=f"backup directory: {exc}")
    data = {"method": export.method, "path": stored.path, "sha256": stored.sha256, "size": stored.size,
            "content_type": export.content_type, "unchanged": not stored.new}
    if stored.new:
        return result("ok", f"{export.method}: {stored.size} bytes, sha256 {stored.sha256[:12]}", **data)
    return result("ok", f"unchanged (sha256 {stored.sha256[:12]} already stored)", reason="unchanged", **data)


def record_backup(log: "MaintenanceLog", r: Result, *, run_id: str | None, change_id: str | None) -> str:
    """One backups row for one attempt; runner-made results (deadline, internal error) count as failed."""
    d = r.data
    status = d.get("backup_status") or "failed"
    return log.insert("backups", {
        "run_id": run_id, "school_id": r.school_id, "device_id": r.device_id, "status": status,
        "reason": d.get("reason") or (r.summary if status == "failed" else None),
        "method": d.get("method"), "path": d.get("path"), "sha256": d.get("sha256"), "size": d.get("size"),
        "content_type": d.get("content_type"), "change_id": change_id,
    })


def run_backups(log: "MaintenanceLog", devices: list["Device"], *, inventory: "Inventory | None" = None,
                backup_dir: str | Path | None = None, run_id: str | None = None, change_id: str | None = None,
                operator: str | None = None, driver_factory: DriverFactory | None = None, workers: int | None = None,
                deadline_s: float | None = 120.0, progress: bool | None = False,
                on_result: Callable[[Result], None] | None = None) -> BackupReport:
    """Back up `devices` concurrently and record every attempt. Used by `backup run` and by a change's
    `start` step (pass its change_id: each row then names the change it was taken for).

    The backup directory is `backup_dir`, else the inventory's settings.backup_dir, else the default.
    Ctrl-C keeps (and records) what finished, then re-raises KeyboardInterrupt. Without a run_id but with an
    operator (the change hook), the backups get a run of their own so the log says who took them.
    """
    from canteen_ops.runner import run_devices

    if run_id is None and operator:
        with log.run("backup run", ["--change", change_id] if change_id else [], operator) as run:
            report = run_backups(log, devices, inventory=inventory, backup_dir=backup_dir, run_id=run.id,
                                 change_id=change_id, driver_factory=driver_factory, workers=workers,
                                 deadline_s=deadline_s, progress=progress, on_result=on_result)
            run.set_outcome(report.status.value, report.exit_code)
            return report

    store = BackupStore(backup_dir if backup_dir is not None else backup_dir_for(inventory))
    report = BackupReport()

    def task(device: "Device") -> list[Result]:
        deadline_at = time.monotonic() + deadline_s * 0.9 if deadline_s else None
        return [backup_device(device, store, driver_factory, deadline_at=deadline_at)]

    def emit(r: Result) -> None:
        if r.check != CHECK:  # the runner's own deadline / internal-error results
            r.data.setdefault("backup_status", "failed")
            r.data.setdefault("reason", r.summary)
            r.status = STATUS["failed"]
        report.results.append(r)
        report.record_ids[r.device_id] = record_backup(log, r, run_id=run_id, change_id=change_id)
        if on_result:
            on_result(r)

    try:
        run_devices(devices, task, workers=workers, deadline_s=deadline_s, on_result=emit,
                    progress=progress, label="backup")
    except KeyboardInterrupt:
        report.interrupted = True
        raise
    return report

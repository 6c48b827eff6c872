"""Push a stored backup back to its device — only under a started change (work permit) for that device."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from canteen_ops.errors import EXIT_DATAERR, CanteenOpsError, NotFound, PermissionRefused, UsageError
from canteen_ops.status import Result, Status
from canteen_ops.store.backups import BackupStore
from canteen_ops.timeutil import iso

if TYPE_CHECKING:
    from canteen_ops.inventory.model import Device
    from canteen_ops.store.log import MaintenanceLog
    from canteen_ops.tasks.backup import DriverFactory


class BackupDamaged(CanteenOpsError):
    """The backup file is missing or no longer matches its recorded hash: never push it to a device."""

    exit_code = EXIT_DATAERR


def require_change(log: "MaintenanceLog", device_id: str, change_id: str | None = None) -> dict[str, Any]:
    """The started change covering the device, or PermissionRefused (exit 77) with the reason."""
    try:
        from canteen_ops.changes import require_started_change
    except ImportError:
        raise PermissionRefused("refused: restoring {device_id} needs a started change (work permit), and change "
                                "permits are not available in this canteen-ops yet", device_id=device_id) from None
    return require_started_change(log, [device_id], change_id=change_id)


def pick_backup(log: "MaintenanceLog", store: BackupStore, device_id: str, backup_id: str | None
                ) -> dict[str, Any]:
    """The named backup (id or unique prefix ≥ 6 chars) or the device's newest one whose file verifies."""
    if backup_id:
        rows = log.query("SELECT * FROM backups WHERE id = ? OR (length(?) >= 6 AND id LIKE ?) ORDER BY seq DESC",
                         [backup_id, backup_id, backup_id.replace("%", "") + "%"])
        exact = [r for r in rows if r["id"] == backup_id]
        rows = exact or rows
        if not rows:
            raise NotFound("no backup with id {backup_id!r}", backup_id=backup_id)
        if len(rows) > 1:
            raise UsageError("backup id prefix {backup_id!r} is ambiguous; give more characters", backup_id=backup_id)
        row = rows[0]
        if row["device_id"] != device_id:
            raise UsageError("backup {id} belongs to {device_id}, not {device_id2}", id=row['id'][:8],
                             device_id=row['device_id'], device_id2=device_id)
        if row["status"] != "ok" or not row["path"]:
            raise NotFound("backup {id} of {device} is {status}: nothing to restore ({reason})" if row.get("reason")
                           else "backup {id} of {device} is {status}: nothing to restore", id=row["id"][:8],
                           device=device_id, status=row["status"], reason=row.get("reason"))
        state = store.check(row["path"], row["sha256"])
        if state != "ok":
            raise BackupDamaged("backup {id} of {device_id} is {state} ({value}); refusing to push it",
                                id=row['id'][:8], device_id=device_id, state=state, value=store.root / row['path'])
        return row
    for row in log.query("SELECT * FROM backups WHERE device_id = ? AND status = 'ok' AND path IS NOT NULL "
                         "ORDER BY seq DESC", [device_id]):
        if store.check(row["path"], row["sha256"]) == "ok":
            return row
    raise NotFound("{device_id} has no intact backup to restore (see: canteen-ops backup list --device {device_id} "
                   "--history)", device_id=device_id)


def restore_backup(log: "MaintenanceLog", store: BackupStore, device: "Device", backup_id: str | None = None, *,
                   operator: str, run_id: str | None = None, change_id: str | None = None,
                   driver_factory: "DriverFactory | None" = None) -> Result:
    """Check the permit, pick and verify the backup, push it with driver.import_config and record it all.

    Refusals (no started change, damaged or unknown backup) raise before any device traffic.
    """
    from canteen_ops.drivers.base import ConfigExport, DriverError, NotSupported
    from canteen_ops.tasks.backup import _default_factory

    change = require_change(log, device.id, change_id)
    row = pick_backup(log, store, device.id, backup_id)
    content = store.read(row["path"])
    export = ConfigExport(content=content, content_type=row["content_type"] or "application/octet-stream",
                          method=row["method"] or "", extension=PurePosixPath(row["path"]).suffix)
    data = {"backup_id": row["id"], "sha256": row["sha256"], "size": row["size"], "method": row["method"],
            "change_id": change["id"], "backup_taken_at": row["created_at"]}
    try:
        with (driver_factory or _default_factory)(device) as driver:
            driver.import_config(export)
    except NotSupported as exc:
        result = Result(device.id, "backup-restore", Status.UNKNOWN,
                        f"the device offers no config import ({exc}); nothing was changed", data=data,
                        school_id=device.school_id)
    except DriverError as exc:
        result = Result(device.id, "backup-restore", Status.CRIT,
                        f"restore of backup {row['id'][:8]} failed: {type(exc).__name__}: {exc}", data=data,
                        school_id=device.school_id)
    else:
        result = Result(device.id, "backup-restore", Status.OK,
                        f"restored backup {row['id'][:8]} (sha256 {row['sha256'][:12]}, taken {row['created_at']}) "
                        f"under change {change['id'][:8]}", data=data, school_id=device.school_id)
    with log.transaction():
        log.record_result(run_id, result)
        log.insert("change_events", {"change_id": change["id"], "at": iso(), "actor": operator,
                                     "action": "restore", "note": result.summary,
                                     "data": {**data, "device_id": device.id, "status": result.status.value}})
    return result

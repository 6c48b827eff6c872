"""Config snapshots: one normalized, vendor-neutral JSON of a device's settings, diffs and drift.

The drivers return each vendor's settings raw (`Driver.settings()`); each vendor's driver module maps them onto
one schema (`normalize_settings`; the schema and its coercions are in drivers/settings.py), so a diff or a policy
rule never needs to know the vendor.

Volatile values (uptime, current time, free space, nonces) are left out, lists are sorted by identity and
JSON keys are sorted, so the same settings always give the same sha256.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable

from canteen_ops.status import Result, Status, worst

if TYPE_CHECKING:
    from canteen_ops.drivers.base import Driver
    from canteen_ops.inventory.model import Device
    from canteen_ops.store.log import MaintenanceLog

# Keys whose values are secrets. Not redact.SECRET_KEYS: that one matches "token", which in ONVIF names a
# configuration, not a credential.
_SECRET_KEYS = re.compile(r"pass(word|wd)?|pwd|secret|authorization|cookie|private|credential", re.I)


def _without_secrets(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_secrets(v) for k, v in value.items() if not _SECRET_KEYS.search(str(k))}
    if isinstance(value, list):
        return [_without_secrets(v) for v in value]
    return value


def _sort_lists(snap: dict[str, Any]) -> dict[str, Any]:
    snap["streams"].sort(key=lambda s: (s.get("channel") or 0, not s.get("main"), s.get("token") or ""))
    snap["users"].sort(key=lambda u: u.get("name") or "")
    snap["channels"].sort(key=lambda c: c.get("id") or 0)
    snap["network"]["interfaces"].sort(key=lambda n: n.get("name") or "")
    # "0.0.0.0" / "::" is how devices write "no server".
    snap["time"]["ntp_servers"] = sorted(x for x in snap["time"]["ntp_servers"] if x not in ("0.0.0.0", "::"))
    return snap


def normalize(vendor: str, raw: dict[str, Any]) -> dict[str, Any]:
    """The vendor-neutral snapshot of raw driver settings (secret-looking keys dropped on the way in); each vendor's
    driver module knows its own settings (`normalize_settings`)."""
    from canteen_ops.drivers.registry import VENDORS, driver_class

    named = raw.get("vendor")
    cls = driver_class(named if named in VENDORS else vendor)
    return _sort_lists(cls.normalize_settings(_without_secrets(raw)))


def canonical(snap: dict[str, Any]) -> bytes:
    return json.dumps(snap, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def digest(snap: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(snap)).hexdigest()


# --- diff --------------------------------------------------------------------------------------------------------
_LIST_KEYS: dict[str, Callable[[dict[str, Any]], str]] = {
    "streams": lambda s: f"ch{s.get('channel')}-{'main' if s.get('main') else 'sub'}"
                         + (f"-{s['token']}" if s.get("token") else ""),
    "users": lambda u: str(u.get("name")),
    "channels": lambda c: str(c.get("id")),
    "network.interfaces": lambda n: str(n.get("name")),
}
_ABSENT = object()


def _keyed(keyf: Callable[[dict[str, Any]], str], items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for x in items:
        k = keyf(x)
        n = 2
        while k in out:  # two records with the same identity: keep both, numbered in order
            k = f"{keyf(x)}#{n}"
            n += 1
        out[k] = x
    return out


@dataclass(frozen=True)
class Change:
    path: str
    old: Any
    new: Any

    def render(self) -> str:
        return f"{self.path}: {_show(self.old)} → {_show(self.new)}"


def _show(v: Any) -> str:
    if v is _ABSENT:
        from canteen_ops.i18n import _

        return _("(absent)")  # shown only (a diff is rendered for the reader, never stored)
    return json.dumps(v, ensure_ascii=False, sort_keys=True)


def diff(old: Any, new: Any, path: str = "") -> list[Change]:
    """Per-field changes with dotted paths; lists of records are matched by identity (stream, user, ...)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(old) | set(new), key=str):
            p = f"{path}.{k}" if path else str(k)
            out += diff(old.get(k, _ABSENT), new.get(k, _ABSENT), p)
        return out
    keyf = _LIST_KEYS.get(path)
    if keyf and isinstance(old, list) and isinstance(new, list) and all(isinstance(x, dict) for x in old + new):
        a, b = _keyed(keyf, old), _keyed(keyf, new)
        out = []
        for k in list(a) + [k for k in b if k not in a]:
            p = f"{path}[{k}]"
            if k in a and k in b:
                out += diff(a[k], b[k], p)
            else:
                out.append(Change(p, a.get(k, _ABSENT), b.get(k, _ABSENT)))
        return out
    if old == new:
        return []
    return [Change(path, old, new)]


# --- policy rules and drift -------------------------------------------------------------------------------------
@dataclass
class DriftReport:
    device_id: str
    school_id: str | None
    status: Status
    summary: str
    changes: list[Change] = field(default_factory=list)
    violations: list[tuple[Status, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    snapshot_id: str | None = None
    baseline_id: str | None = None

    def to_result(self) -> Result:
        return Result(self.device_id, "config-drift", self.status, self.summary, school_id=self.school_id,
                      data={"changes": [{"path": c.path, "old": None if c.old is _ABSENT else c.old,
                                         "new": None if c.new is _ABSENT else c.new} for c in self.changes],
                            "violations": [{"status": s.value, "rule": m} for s, m in self.violations],
                            "notes": self.notes, "snapshot_id": self.snapshot_id, "baseline_id": self.baseline_id})


def policy_violations(device: "Device", snap: dict[str, Any]) -> tuple[list[tuple[Status, str]], list[str]]:
    """(violations, notes) of the canteen rules: NTP set, main-stream resolution ≥ policy, NVR records 24 h."""
    violations: list[tuple[Status, str]] = []
    notes: list[str] = []
    t = snap.get("time") or {}
    if t.get("ntp_enabled") is False or (t.get("ntp_enabled") and not t.get("ntp_servers")):
        violations.append((Status.WARN, "NTP is not configured (time mode "
                           f"{t.get('mode') or 'unknown'}): recordings lose their evidential value as the clock drifts"))
    elif t.get("ntp_enabled") is None:
        notes.append("NTP setting not reported by the device (not checked)")
    min_w, min_h = device.policy.min_width_height
    for s in snap.get("streams") or []:
        if s.get("main") and s.get("width") and s.get("height") and (s["width"] < min_w or s["height"] < min_h):
            violations.append((Status.WARN, f"channel {s.get('channel')} main stream is {s['width']}x{s['height']}, "
                               f"below the policy minimum {device.policy.min_resolution}"))
    mode = (snap.get("recording") or {}).get("mode")
    if device.kind == "nvr":
        if mode is None:
            notes.append("recording mode not reported by the device (24 h recording not checked)")
        elif mode != "continuous":
            violations.append((Status.CRIT, f"recording mode is {mode}, not continuous (canteen video must be "
                               "recorded 24 h)"))
    return violations, notes


def assess_drift(device: "Device", snapshot: dict[str, Any] | None, baseline: dict[str, Any] | None
                 ) -> DriftReport:
    """Newest snapshot vs accepted baseline, plus the policy rules. Rows are snapshots-table rows."""
    if snapshot is None:
        return DriftReport(device.id, device.school_id, Status.UNKNOWN,
                           "no snapshot taken yet (canteen-ops snapshot take)")
    violations, notes = policy_violations(device, snapshot["data"])
    changes: list[Change] = []
    parts = []
    if baseline is None:
        notes.append("no accepted baseline (canteen-ops snapshot accept DEVICE)")
    elif baseline["sha256"] != snapshot["sha256"]:
        changes = diff(baseline["data"], snapshot["data"])
    statuses = [s for s, _ in violations]
    if changes:
        statuses.append(Status.WARN)
        shown = ", ".join(c.path for c in changes[:5]) + (f" (+{len(changes) - 5} more)" if len(changes) > 5 else "")
        parts.append(f"{len(changes)} setting(s) differ from the baseline: {shown}")
    if baseline is None and not violations:
        statuses.append(Status.UNKNOWN)
    parts += [m for _, m in violations]
    if not parts:
        parts.append("matches the accepted baseline" if baseline else "no baseline to compare with")
    if notes and baseline is not None and not changes and not violations:
        parts.append("; ".join(notes))
    return DriftReport(device.id, device.school_id, worst(statuses), "; ".join(parts), changes, violations, notes,
                       snapshot["id"], baseline["id"] if baseline else None)


# --- taking and storing -------------------------------------------------------------------------------------------
def _default_factory(device: "Device") -> "Driver":
    from canteen_ops.drivers.registry import open_driver

    return open_driver(device)


def _stream_info(driver: "Driver") -> list[dict[str, Any]] | None:
    """ONVIF encoder configurations do not say which channel they feed; the driver's streams() does."""
    from canteen_ops.drivers.base import DriverError

    try:
        return [{"channel": s.channel, "main": s.main, "codec": s.codec, "width": s.width, "height": s.height,
                 "fps": s.fps, "bitrate_kbps": s.bitrate_kbps} for s in driver.streams()]
    except DriverError:
        return None


def take_snapshot(device: "Device", factory: Callable[["Device"], "Driver"] | None = None) -> Result:
    """Read the device's settings and normalize them; never raises for device trouble."""
    from canteen_ops.drivers.base import DriverError, NotSupported

    try:
        with (factory or _default_factory)(device) as driver:
            raw = driver.settings()
            if device.vendor == "onvif":
                raw = {**raw, "stream_info": _stream_info(driver)}
    except NotSupported as exc:
        return Result(device.id, "snapshot", Status.UNKNOWN, f"the device offers no settings read-out: {exc}",
                      school_id=device.school_id)
    except DriverError as exc:
        return Result(device.id, "snapshot", Status.UNKNOWN, f"could not read settings: {type(exc).__name__}: "
                      f"{exc}", school_id=device.school_id)
    snap = normalize(device.vendor, raw)
    return Result(device.id, "snapshot", Status.OK, "", school_id=device.school_id,
                  data={"snapshot": snap, "sha256": digest(snap)})


def newest(log: "MaintenanceLog", device_id: str, n: int = 1) -> list[dict[str, Any]]:
    return log.query("SELECT * FROM snapshots WHERE device_id = ? ORDER BY seq DESC LIMIT ?", [device_id, n])


def changes_since(log: "MaintenanceLog", devices: Iterable["Device"], since: str) -> list[dict[str, Any]]:
    """Devices whose configuration changed since `since` (UTC ISO): the snapshot in effect then (the newest taken
    before) against the newest; a device first snapshotted in the window has old None. Unchanged ones are left out."""
    out = []
    for d in devices:
        rows = log.query("SELECT * FROM snapshots WHERE device_id = ? AND created_at >= ? ORDER BY seq", [d.id, since])
        if not rows:
            continue
        before = log.query("SELECT * FROM snapshots WHERE device_id = ? AND created_at < ? ORDER BY seq DESC "
                           "LIMIT 1", [d.id, since])
        newest_row = rows[-1]
        old = before[0] if before else None
        out.append({"device_id": d.id, "school_id": d.school_id, "old": old["id"] if old else None,
                    "new": newest_row["id"], "new_at": newest_row["created_at"], "snapshots": len(rows),
                    "changes": diff(old["data"], newest_row["data"]) if old else []})
    return out


def baseline(log: "MaintenanceLog", device_id: str) -> dict[str, Any] | None:
    rows = log.query("SELECT * FROM snapshots WHERE device_id = ? AND accepted_at IS NOT NULL "
                     "ORDER BY accepted_at DESC, seq DESC LIMIT 1", [device_id])
    return rows[0] if rows else None


def find_snapshot(log: "MaintenanceLog", device_id: str, ident: str) -> dict[str, Any]:
    from canteen_ops.errors import NotFound, UsageError

    rows = log.query("SELECT * FROM snapshots WHERE device_id = ? AND (id = ? OR (length(?) >= 6 AND id LIKE ?)) "
                     "ORDER BY seq DESC", [device_id, ident, ident, ident.replace("%", "") + "%"])
    exact = [r for r in rows if r["id"] == ident]
    rows = exact or rows
    if not rows:
        raise NotFound("{device_id} has no snapshot {ident!r} (see: canteen-ops snapshot show {device_id})",
                       device_id=device_id, ident=ident)
    if len(rows) > 1:
        raise UsageError("snapshot id prefix {ident!r} is ambiguous; give more characters", ident=ident)
    return rows[0]


def store_snapshot(log: "MaintenanceLog", r: Result, run_id: str | None) -> tuple[str, bool]:
    """Record a taken snapshot. Identical to the device's newest one → that row is confirmed (run_id and
    updated_at bumped) instead of duplicated, so `diff` with no arguments shows the last real change.
    Returns (snapshot id, new?)."""
    sha = r.data["sha256"]
    with log.transaction():
        last = newest(log, r.device_id)
        if last and last[0]["sha256"] == sha:
            log.update("snapshots", last[0]["id"], {"run_id": run_id})
            return last[0]["id"], False
        sid = log.insert("snapshots", {"run_id": run_id, "school_id": r.school_id, "device_id": r.device_id,
                                       "sha256": sha, "data": canonical(r.data["snapshot"]).decode()})
        return sid, True


def run_snapshots(log: "MaintenanceLog", devices: list["Device"], *, run_id: str | None = None,
                  driver_factory: Callable[["Device"], "Driver"] | None = None, workers: int | None = None,
                  deadline_s: float | None = 60.0, progress: bool | None = False) -> list[Result]:
    from canteen_ops.runner import run_devices

    results: list[Result] = []

    def emit(r: Result) -> None:
        if r.check == "snapshot" and r.status is Status.OK:
            sid, new = store_snapshot(log, r, run_id)
            r.data = {"snapshot_id": sid, "sha256": r.data["sha256"], "new": new}
            r.summary = (f"snapshot {sid[:8]} sha256 {r.data['sha256'][:12]}" if new
                         else f"unchanged since snapshot {sid[:8]}")
        results.append(r)

    run_devices(devices, lambda d: [take_snapshot(d, driver_factory)], workers=workers, deadline_s=deadline_s,
                on_result=emit, progress=progress, label="snapshot")
    return results


def drift_reports(log: "MaintenanceLog", devices: Iterable["Device"]) -> list[DriftReport]:
    out = []
    for d in devices:
        snaps = newest(log, d.id)
        out.append(assess_drift(d, snaps[0] if snaps else None, baseline(log, d.id)))
    return out

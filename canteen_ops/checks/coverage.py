"""Coverage (重点点位覆盖率): every required canteen area of a school has at least one working camera."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from canteen_ops.status import Result, Status

if TYPE_CHECKING:
    from canteen_ops.inventory.model import Inventory, School
    from canteen_ops.store.log import MaintenanceLog


@dataclass
class SchoolContext:
    """What the coverage check sees: the school and the statuses each device got in this run."""

    school: "School"
    inventory: "Inventory"
    run_results: dict[str, list[Result]] = field(default_factory=dict)  # device id → results of this run
    log: "MaintenanceLog | None" = None  # for cameras this run did not check: their latest logged results

    @property
    def policy(self):
        return self.school.policy

    def statuses(self, device_id: str) -> tuple[list[tuple[str, str]], dict[str, Any] | None, str]:
        """[(check, status)], channels data of that result set (for NVRs), and where they came from."""
        if device_id in self.run_results:
            rs = self.run_results[device_id]
            chan = next((r.data for r in rs if r.check == "channels"), None)
            return [(r.check, r.status.value) for r in rs], chan, "run"
        if self.log is not None:
            rows = self.log.latest_results(device_id)
            chan = next((r["data"] for r in rows if r["check_name"] == "channels"), None)
            return [(r["check_name"], r["status"]) for r in rows], chan, "log"
        return [], None, "none"


def coverage(sctx: SchoolContext) -> list[Result]:
    school = sctx.school
    required = list(sctx.policy.required_areas)
    cameras = [d for d in school.devices if d.kind == "camera"]
    # Cameras whose NVR channel has video loss record nothing, even if the camera itself answers.
    lost: set[str] = set()
    for nvr in (d for d in school.devices if d.kind == "nvr"):
        _, chan, _ = sctx.statuses(nvr.id)
        if isinstance(chan, dict):
            lost.update(chan.get("offline_cameras") or ())
    areas: dict[str, dict[str, list[str]]] = {}
    for area in required:
        working, failing, unknown = [], [], []
        for cam in (c for c in cameras if c.area == area):
            statuses, _, _ = sctx.statuses(cam.id)
            if any(s == "crit" for _, s in statuses) or cam.id in lost:
                failing.append(cam.id)
            elif not statuses:
                unknown.append(f"{cam.id} (not checked yet)")
            elif all(s in ("unknown", "n/a") for _, s in statuses):
                # Nothing could be found out about it (n/a: a check that does not apply says nothing either):
                # that is not evidence of a working camera.
                unknown.append(f"{cam.id} (unknown)")
            else:
                working.append(cam.id)
        areas[area] = {"working": working, "failing": failing, "unknown": unknown}
    # An area is uncovered only when we know it: it has no camera, or every camera in it failed. An area whose
    # cameras are merely unknown (not checked yet on a fresh log, or every check unknown) is "not checked yet":
    # unknown, never crit, so it never opens an incident.
    uncovered = [a for a in required if not areas[a]["working"] and not areas[a]["unknown"]]
    unchecked = [a for a in required if not areas[a]["working"] and areas[a]["unknown"]]
    covered = len(required) - len(uncovered) - len(unchecked)
    rate = round(100.0 * covered / len(required), 1) if required else 100.0
    data = {"required": required, "uncovered": uncovered, "unchecked": unchecked, "areas": areas,
            "coverage_pct": rate}
    r = Result(None, "coverage", Status.OK, "", data=data, school_id=school.id)
    if not required:
        r.summary = "no required areas in the policy"
        return [r]
    parts = []
    for a in uncovered:
        failing = areas[a]["failing"]
        parts.append(f"{a} ({'no working camera: ' + ', '.join(failing) if failing else 'no camera in the inventory'})")
    for a in unchecked:
        parts.append(f"{a} not checked yet ({', '.join(areas[a]['unknown'] + areas[a]['failing'])})")
    if uncovered:
        r.status = Status.CRIT
        r.summary = f"{len(uncovered)} of {len(required)} required areas not covered: " + "; ".join(parts) \
            + f" — 重点点位覆盖率 {rate:g}%"
        return [r]
    if unchecked:
        r.status = Status.UNKNOWN
        r.summary = f"{len(unchecked)} of {len(required)} required areas not checked yet: " + "; ".join(parts)
        return [r]
    r.summary = f"all {len(required)} required areas covered by a working camera — 重点点位覆盖率 100%"
    return [r]

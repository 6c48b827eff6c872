"""What is wrong right now, from the maintenance log alone (`canteen-ops status`): no device is contacted.

Per school: the newest result of every (device, check) that is not ok, how old it is, devices with no result at
all (unknown), and the school's active incidents with those past their on-site deadline. A missed on-site deadline
counts as crit, as `incident list --overdue` exits 2. Schools come worst first.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any, Iterable

from canteen_ops.inventory.model import Device, Inventory
from canteen_ops.sla import arrive_sla
from canteen_ops.status import Status, worst
from canteen_ops.timeutil import iso, parse_iso

if TYPE_CHECKING:
    from canteen_ops.store.log import MaintenanceLog

PROBLEMS = ("crit", "warn", "unknown")


def current_status(log: "MaintenanceLog | None", inventory: Inventory, devices: Iterable[Device],
                   now: dt.datetime) -> dict[str, Any]:
    devices = list(devices)
    school_ids = list(dict.fromkeys(d.school_id for d in devices))
    ids = {d.id for d in devices}
    # Device results by the (device_id, check_name, seq) index; school-level ones (device_id NULL) by school.
    latest = [] if log is None else log.query("""
        SELECT r.school_id, r.device_id, r.check_name, r.status, r.summary, r.observed_at FROM results r JOIN (
          SELECT MAX(seq) AS seq FROM results WHERE device_id IS NOT NULL GROUP BY device_id, check_name
          UNION ALL
          SELECT MAX(seq) FROM results WHERE device_id IS NULL GROUP BY school_id, check_name
        ) m ON r.seq = m.seq""")
    by_device: dict[str, list[dict]] = {}
    by_school: dict[str, list[dict]] = {}
    for r in latest:
        if r["device_id"] is None:  # a school-level result (coverage)
            by_school.setdefault(r["school_id"], []).append(r)
        elif r["device_id"] in ids:
            by_device.setdefault(r["device_id"], []).append(r)
    incidents = [] if log is None else log.query(
        "SELECT * FROM incidents WHERE state IN ('open', 'acked', 'arrived') ORDER BY opened_at DESC")
    schools = []
    for sid in school_ids:
        school = inventory.school(sid)
        mine = [d for d in devices if d.school_id == sid]
        problems, checked_ok, never = [], 0, []
        for d in mine:
            rows = by_device.get(d.id, [])
            if not rows:
                never.append(d.id)
            for r in rows:
                if r["status"] in PROBLEMS:
                    problems.append(_problem(r, d.area, now))
                elif r["status"] == "ok":
                    checked_ok += 1
        problems += [_problem(r, None, now) for r in by_school.get(sid, []) if r["status"] in PROBLEMS]
        order = {s: i for i, s in enumerate(PROBLEMS)}
        problems.sort(key=lambda p: (order[p["status"]], p["device_id"] or "", p["check"]))
        active = []
        for inc in incidents:
            if inc["school_id"] != sid:
                continue
            sla = arrive_sla(inc, now)
            active.append({"id": inc["id"], "level": inc["level"], "state": inc["state"], "title": inc["title"],
                           "device_ids": inc.get("device_ids") or [], "opened_at": inc["opened_at"],
                           "arrive_deadline": inc.get("arrive_deadline"), "overdue": sla == "breached"})
        statuses = [Status(p["status"]) for p in problems]
        statuses += [Status.UNKNOWN] * bool(never) + [Status.CRIT] * any(i["overdue"] for i in active)
        schools.append({"id": sid, "name": school.name, "status": worst(statuses).value, "devices": len(mine),
                        "ok_results": checked_ok, "problems": problems, "never_checked": never,
                        "incidents": active, "open_incidents": len(active),
                        "overdue_incidents": sum(1 for i in active if i["overdue"])})
    rank = {s.id: i for i, s in enumerate(inventory.schools)}
    schools.sort(key=lambda s: (-Status(s["status"]).severity, rank.get(s["id"], 0)))
    overall = worst(Status(s["status"]) for s in schools)
    return {"generated_at": iso(now), "status": overall.value, "exit_code": overall.exit_code, "schools": schools}


def _problem(r: dict, area: str | None, now: dt.datetime) -> dict[str, Any]:
    return {"device_id": r["device_id"], "area": area, "check": r["check_name"], "status": r["status"],
            "summary": r["summary"] or "", "observed_at": r["observed_at"],
            "age_s": round((now - parse_iso(r["observed_at"])).total_seconds())}

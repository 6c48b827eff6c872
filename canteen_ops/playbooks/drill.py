"""The drill report: what was detected, how fast, and whether the on-site deadline was met."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from canteen_ops.status import Result, Status
from canteen_ops.timeutil import iso, local, parse_iso

if TYPE_CHECKING:
    from canteen_ops.context import Env
    from canteen_ops.playbooks.model import Playbook
    from canteen_ops.playbooks.run import PlaybookOutcome
    from canteen_ops.store.log import MaintenanceLog


def drill_summary(log: "MaintenanceLog", outcome: "PlaybookOutcome") -> dict[str, Any]:
    incidents = log.query("SELECT * FROM incidents WHERE opened_at >= ? ORDER BY seq", [iso(outcome.started)])
    first = outcome.started
    rows = []
    for inc in incidents:
        opened = parse_iso(inc["opened_at"])
        arrived = parse_iso(inc["arrived_at"]) if inc["arrived_at"] else None
        deadline = parse_iso(inc["arrive_deadline"])
        rows.append({
            "id": inc["id"], "level": inc["level"], "devices": inc["device_ids"] or [], "title": inc["title"],
            "state": inc["state"], "detected_after_s": round((opened - first).total_seconds(), 1),
            "arrive_deadline": inc["arrive_deadline"],
            "arrived_after_s": round((arrived - opened).total_seconds(), 1) if arrived else None,
            "within_deadline": bool(arrived and arrived <= deadline),
        })
    return {
        "steps": [{"index": s.step.index, "name": s.step.name, "task": s.step.task,
                   "status": s.status.value if s.raw else "skipped",
                   "started_at": iso(s.started) if s.started else None, "seconds": round(s.seconds, 2)}
                  for s in outcome.steps],
        "incidents": rows,
        "detected": bool(rows),
        "all_within_deadline": bool(rows) and all(r["within_deadline"] for r in rows),
    }


def print_drill_report(env: "Env", log: "MaintenanceLog", book: "Playbook", outcome: "PlaybookOutcome") -> None:
    from canteen_ops.cli.render import CODE, NUM, TIME, Column, status_cell, styled, table
    from canteen_ops.i18n import _, language
    from canteen_ops.summaries import translate

    summary = drill_summary(log, outcome)
    status = outcome.status if summary["detected"] else Status.CRIT
    log.record_result(outcome.run_id, Result(None, "drill", status,
                                             f"drill {book.name}: {len(summary['incidents'])} incident(s), "
                                             f"within deadline: {summary['all_within_deadline']}", summary))
    if env.quiet:
        return
    tz = env.timezone()
    cols = [Column("#", NUM), Column("step", main=True), Column("start (local)", TIME), Column("seconds", NUM), Column("by"),
            Column("status", CODE)]
    cells = [(s.step.index, s.step.name, local(iso(s.started), tz) if s.started else "", f"{s.seconds:.1f}",
              env.operator, status_cell(s.status.value) if s.raw else _("skipped")) for s in outcome.steps]
    env.console.print(table(_("演练报告 drill report: {name}").format(name=book.name), cols, cells, console=env.console))
    if not summary["incidents"]:
        env.console.print(_("no incident was opened: the fault was not detected"), style="red")
    for r in summary["incidents"]:
        verdict = (_("within deadline"), "green") if r["within_deadline"] else (_("deadline missed"), "red")
        arrived = _("on site after {s} s").format(s=f"{r['arrived_after_s']:.0f}") \
            if r["arrived_after_s"] is not None else _("no arrival")
        env.console.print(styled(_("incident {id} [{level}] {devices}: {title} — detected {s} s into the drill, "
                                   "{arrived}, deadline {deadline}: ").format(
            id=r['id'][:8], level=r['level'] if language() == "en" else _(r['level']), devices=', '.join(r['devices']),
            title=translate(r['title']), s=f"{r['detected_after_s']:.0f}", arrived=arrived,
            deadline=local(r['arrive_deadline'], tz)), verdict))

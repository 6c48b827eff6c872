"""Alerts from one-shot commands (`check --open-incidents`, `incident open`, playbooks): incidents they opened,
a drill's verdict and a nightly job that failed.

The watch and these commands share one path: `adopt` assigns incidents nobody announced yet to the technician on
duty and makes their "opened" messages, `outbox.enqueue`/`outbox.deliver` queue and send them. A one-shot
command delivers at its end within `ONE_SHOT_BUDGET_S` (plus one send's deadline); what cannot be sent now stays
pending in the outbox with its error and is retried by the next `watch` round or the next command. A notification
problem never changes a command's outcome or exit status.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from typing import TYPE_CHECKING

from canteen_ops.errors import CanteenOpsError
from canteen_ops.i18n import _
from canteen_ops.status import Status

if TYPE_CHECKING:
    from canteen_ops.context import Env
    from canteen_ops.notify.messages import Message

ONE_SHOT_BUDGET_S = 10.0  # a command's own delivery: a dead chat server delays cron by at most this + one send


def adopt(log, inventory, now: dt.datetime) -> list[tuple["Message", str]]:
    """Assign every open incident nobody announced yet (no `data.assignee`) to the technician on duty; return
    the (message, dedup key) of each one's "opened" notification."""
    from canteen_ops.escalation import assign
    from canteen_ops.notify.messages import incident_message

    out = []
    for inc in log.query("SELECT * FROM incidents WHERE state IN ('open', 'acked', 'arrived') "
                         "AND json_type(data, '$.assignee') IS NULL ORDER BY seq"):
        person = assign(log, inventory, inc, now)
        out.append((incident_message("opened", inc, inventory, assignee=person, now=now), f"opened:{inc['id']}"))
    return out


def announce(env: "Env", log, extra: list[tuple["Message", str]] = ()) -> None:
    """End of a one-shot command: adopt new incidents, queue their messages and `extra`, deliver (bounded)."""
    from canteen_ops.notify.outbox import deliver, enqueue
    from canteen_ops.timeutil import utcnow

    if not env.inventory_path.exists():
        return
    try:
        inv = env.inventory()
        if not inv.settings.notify and inv.roster is None:
            return  # nobody to tell and nobody to assign: the watch, if one runs, does it
        now = utcnow()
        messages = [*adopt(log, inv, now), *extra]
        if not inv.settings.notify or not messages:
            return
        for msg, key in messages:
            enqueue(log, inv, msg, key, now=now)
        d = deliver(log, inv, now=now, budget_s=ONE_SHOT_BUDGET_S)
        if (d.failed or d.errors) and not env.quiet:
            env.err.print(_("warning: notification not delivered now ({report}); the next watch round retries")
                          .format(report=d),
                          style="yellow", markup=False, highlight=False)
    except (CanteenOpsError, sqlite3.Error, OSError) as exc:
        from canteen_ops.redact import redact_text

        why = exc.localized() if isinstance(exc, CanteenOpsError) else str(exc)
        env.err.print(_("warning: notification skipped: {why}").format(why=redact_text(why)), style="yellow",
                      markup=False, highlight=False)


def notify_playbook(env: "Env", log, book, outcome) -> None:
    """A drill's verdict; a job whose machinery failed (a step that could not run: see StepOutcome.broke), never
    a job that ran and found faults (those are the incidents it opened). Plus the incidents the run opened."""
    from canteen_ops.notify.messages import playbook_message

    if not outcome.run_id:
        return
    extra = []
    if book.kind == "drill":
        from canteen_ops.playbooks.drill import drill_summary

        s = drill_summary(log, outcome)
        status = outcome.status if s["detected"] else Status.CRIT
        details = [f"检测到故障：{'是' if s['detected'] else '否'}（{len(s['incidents'])} 个事件）",
                   f"到场时限内：{'是' if s['all_within_deadline'] else '否'}"]
        extra.append(playbook_message("drill", book.name, status.value,
                                      f"演练 {book.name}：{'通过' if status == Status.OK else '未通过'}",
                                      outcome.run_id, details=details))
    else:
        broken = [so for so in outcome.steps if so.broke]
        if broken:
            failed = [f"第 {so.step.index} 步 {so.step.name}：未能执行（{so.summary}）" for so in broken]
            extra.append(playbook_message("job-failed", book.name, Status.CRIT.value,
                                          f"{len(failed)} 个步骤未能执行", outcome.run_id, details=failed[:10]))
    announce(env, log, [(m, f"{m.event}:{outcome.run_id}") for m in extra])

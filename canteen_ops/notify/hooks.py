"""Alerts from one-shot commands: a drill's verdict and a nightly job that failed (playbooks/run.py).

Queued in the outbox and delivered at once with the outbox's bounded time; what cannot be sent now is retried
by the next `watch` round (or the next playbook). A notification problem never changes the playbook's outcome.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

from canteen_ops.errors import CanteenOpsError
from canteen_ops.status import Status

if TYPE_CHECKING:
    from canteen_ops.context import Env


def notify_playbook(env: "Env", log, book, outcome) -> None:
    from canteen_ops.notify.messages import playbook_message
    from canteen_ops.notify.outbox import deliver, enqueue

    if not outcome.run_id or not env.inventory_path.exists():
        return
    try:
        inv = env.inventory()
        if not inv.settings.notify:
            return
        if book.kind == "drill":
            from canteen_ops.playbooks.drill import drill_summary

            s = drill_summary(log, outcome)
            status = outcome.status if s["detected"] else Status.CRIT
            details = [f"检测到故障：{'是' if s['detected'] else '否'}（{len(s['incidents'])} 个事件）",
                       f"到场时限内：{'是' if s['all_within_deadline'] else '否'}"]
            msg = playbook_message("drill", book.name, status.value,
                                   f"演练 {book.name}：{'通过' if status == Status.OK else '未通过'}", outcome.run_id,
                                   details=details)
        elif outcome.status in (Status.CRIT, Status.UNKNOWN):
            failed = [f"第 {so.step.index} 步 {so.step.name}：{so.status.value}（{so.summary}）"
                      for so in outcome.steps if so.raw is not None and so.status in (Status.CRIT, Status.UNKNOWN)]
            msg = playbook_message("job-failed", book.name, outcome.status.value,
                                   f"{len(failed)} 个步骤失败", outcome.run_id, details=failed[:10])
        else:
            return
        enqueue(log, inv, msg, f"{msg.event}:{outcome.run_id}")
        d = deliver(log, inv)
        if d.failed and not env.quiet:
            env.err.print(f"warning: notification not delivered now ({d}); the next watch round retries",
                          style="yellow", markup=False, highlight=False)
    except (CanteenOpsError, sqlite3.Error, OSError) as exc:
        from canteen_ops.redact import redact_text

        env.err.print(f"warning: notification skipped: {redact_text(str(exc))}", style="yellow", markup=False,
                      highlight=False)

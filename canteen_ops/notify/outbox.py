"""The notification outbox: alerts are queued in the maintenance log, then delivered through apprise.

- `enqueue` writes one `outbox` row per target that wants the message; the row's (target, dedup key) is unique,
  so the same event about the same incident reaches a target once, however often it is queued.
- `deliver` sends what is due: a target's quiet hours hold general-level messages until they end (then several
  held ones go as one summary), `max_per_hour` leaves the rest pending for a later round, a failed send stays
  pending with its (redacted) error and is tried again at the next round. Each send runs in a worker thread with
  a deadline and the whole delivery has a budget, so a dead chat server never stalls the watch.

Routing: a target named as a roster person's `notify` is that person's own channel and gets only the messages
addressed to them (the incident's assignee, the person an escalation goes to); every other target is a group
channel and gets every message its `events`/`levels` allow.
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass, field
from typing import Callable

from canteen_ops.notify.config import NotifyTarget
from canteen_ops.notify.messages import Message
from canteen_ops.redact import redact_text
from canteen_ops.timeutil import iso, utcnow

SEND_TIMEOUT_S = 15.0  # one message to one target
DELIVERY_BUDGET_S = 45.0  # one `deliver` call
MAX_ATTEMPTS = 100  # then the row is given up (state failed); at a 5-minute round that is over 8 hours
SUMMARY_MIN = 2  # held messages from quiet hours: this many or more go as one summary

# (url, title, body, event, level) -> None on success, or the error text
Sender = Callable[[str, str, str, str, "str | None"], "str | None"]


@dataclass
class Delivery:
    sent: int = 0
    failed: int = 0
    held: int = 0
    limited: int = 0
    errors: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        from canteen_ops.i18n import _

        return _("{sent} sent, {failed} failed (retried next round), {held} held (quiet hours), {limited} waiting "
                 "(rate limit)").format(sent=self.sent, failed=self.failed, held=self.held, limited=self.limited)


def targets_for(inventory, msg: Message) -> list[NotifyTarget]:
    roster = getattr(inventory, "roster", None)
    personal = {p.name: p.notify for p in (roster.people if roster else ()) if p.notify}
    own = set(personal.values())
    out = []
    for t in inventory.settings.notify:
        if t.name in own:
            if msg.to_person and personal.get(msg.to_person) == t.name:
                out.append(t)
        elif t.wants(msg.event, msg.level):
            out.append(t)
    return out


def enqueue(log, inventory, msg: Message, dedup_key: str, *, now: dt.datetime | None = None) -> int:
    """Queue `msg` for every target that wants it; returns how many rows were new (0: already queued)."""
    now = now or utcnow()
    new = 0
    with log.transaction():
        for t in targets_for(inventory, msg):
            if log.query("SELECT 1 FROM outbox WHERE target = ? AND dedup_key = ?", [t.name, dedup_key]):
                continue
            log.insert("outbox", {
                "target": t.name, "dedup_key": dedup_key, "event": msg.event, "incident_id": msg.incident_id,
                "level": msg.level, "title": msg.title, "body": msg.body, "state": "pending", "attempts": 0,
                "data": {**msg.data, "kb": msg.kb, "to_person": msg.to_person, "queued_at": iso(now)},
            })
            new += 1
    return new


def deliver(log, inventory, *, now: dt.datetime | None = None, sender: Sender | None = None,
            budget_s: float = DELIVERY_BUDGET_S) -> Delivery:
    import time

    now = now or utcnow()
    sender = sender or apprise_send
    out = Delivery()
    started = time.monotonic()
    tz = inventory.settings.timezone
    for target in inventory.settings.notify:
        rows = log.query("SELECT * FROM outbox WHERE target = ? AND state = 'pending' ORDER BY seq", [target.name])
        if not rows:
            continue
        quiet = target.in_quiet_hours(now, tz)
        due, held = [], []
        for r in rows:
            if r["level"] != "major" and quiet:
                held.append(r)
            elif (r.get("data") or {}).get("held") and r["level"] != "major":
                held.append(r)  # held during the quiet hours that just ended: summarised below
            else:
                due.append(r)
        if quiet:
            for r in held:
                if not (r.get("data") or {}).get("held"):
                    log.update("outbox", r["id"], {"data": {**(r.get("data") or {}), "held": True}})
            out.held += len(held)
            held = []
        elif 0 < len(held) < SUMMARY_MIN:
            due += held
            held = []
        batches: list[tuple[list[dict], str, str, str, str | None]] = [
            ([r], r["title"], r["body"], r["event"], r["level"]) for r in due]
        if held:
            batches.insert(0, (held, *_summary(held), "summary", "general"))
        room = target.max_per_hour - _sent_last_hour(log, target.name, now)
        url = None
        for group, title, body, event, level in batches:
            if time.monotonic() - started > budget_s:
                out.errors.append(f"{target.name}: delivery budget of {budget_s:g} s used up; the rest waits")
                return out
            if room <= 0:
                out.limited += len(group)
                continue
            if url is None:
                try:
                    url = target.resolve_url()
                except Exception as exc:  # NotifyUrlUnavailable: recorded on the rows, tried again next round
                    for r in group:
                        _failed(log, r, str(exc), now)
                    out.failed += len(group)
                    out.errors.append(redact_text(str(exc)))
                    continue
            error = _send_bounded(sender, url, title, body, event, level)
            if error is None:
                batch = group[0]["id"] if len(group) > 1 else None
                with log.transaction():
                    for r in group:
                        data = dict(r.get("data") or {})
                        if batch:
                            data["batch"] = batch
                        log.update("outbox", r["id"], {"state": "sent", "sent_at": iso(now), "data": data,
                                                       "attempts": r["attempts"] + 1, "last_attempt_at": iso(now)})
                out.sent += len(group)
                room -= 1
            else:
                error = redact_text(error)
                for r in group:
                    _failed(log, r, error, now)
                out.failed += len(group)
                out.errors.append(f"{target.name}: {error}")
    return out


def _summary(rows: list[dict]) -> tuple[str, str]:
    title = f"【静默时段汇总】{len(rows)} 条一般告警"
    body = "\n".join(f"{i}. {r['title']}" for i, r in enumerate(rows, 1))
    return title, body + "\n（静默时段内的一般级别消息，已合并发送）"


def _sent_last_hour(log, target: str, now: dt.datetime) -> int:
    rows = log.query("SELECT COUNT(DISTINCT COALESCE(json_extract(data, '$.batch'), id)) AS n FROM outbox "
                     "WHERE target = ? AND state = 'sent' AND sent_at > ?",
                     [target, iso(now - dt.timedelta(hours=1))])
    return rows[0]["n"] if rows else 0


def _failed(log, row: dict, error: str, now: dt.datetime) -> None:
    attempts = row["attempts"] + 1
    log.update("outbox", row["id"], {"attempts": attempts, "last_error": error[:500], "last_attempt_at": iso(now),
                                     "state": "failed" if attempts >= MAX_ATTEMPTS else "pending"})


def _send_bounded(sender: Sender, url: str, title: str, body: str, event: str, level: str | None) -> str | None:
    """Run one send in a worker thread; past SEND_TIMEOUT_S it counts as failed (the thread is left to finish:
    a late success may then arrive twice — better than an alert never sent)."""
    box: list = []

    def work() -> None:
        try:
            box.append(sender(url, title, body, event, level))
        except Exception as exc:  # a plugin's bug must not end the watch
            box.append(f"{type(exc).__name__}: {exc}")

    t = threading.Thread(target=work, name="notify-send", daemon=True)
    t.start()
    t.join(SEND_TIMEOUT_S)
    if not box:
        return f"no answer within {SEND_TIMEOUT_S:g} s"
    return box[0]


def apprise_send(url: str, title: str, body: str, event: str, level: str | None) -> str | None:
    """Send through apprise; None on success, else what apprise logged (the caller redacts it)."""
    import logging

    import apprise

    # apprise's messages quote the URL: they go to the capture below, never to Python's last-resort stderr
    # handler (a send that outlived its deadline logs after the capture has ended).
    logger = logging.getLogger("apprise")
    if not logger.handlers:
        logger.addHandler(logging.NullHandler())
    url = _with_timeouts(url)
    kind = (apprise.NotifyType.SUCCESS if event == "resolved" else
            apprise.NotifyType.FAILURE if level == "major" else apprise.NotifyType.WARNING)
    obj = apprise.Apprise()
    with apprise.LogCapture(level=apprise.logging.WARNING) as captured:
        if not obj.add(url):
            return "the notify URL is not a valid apprise URL (check its scheme and parts)"
        ok = obj.notify(title=title, body=body, notify_type=kind)
        detail = " ".join(line.strip() for line in captured.getvalue().splitlines()[-3:])
    return None if ok else (detail or "apprise reported a failed send")


def _with_timeouts(url: str) -> str:
    """Bound apprise's HTTP connect/read times unless the URL sets its own (cto/rto)."""
    if "cto=" in url or "rto=" in url:
        return url
    return url + ("&" if "?" in url else "?") + "cto=4&rto=8"

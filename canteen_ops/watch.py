"""`canteen-ops watch`: round-the-clock monitoring (远程系统监测) for a district host.

Every round runs the cheap checks on every selected device; a school's slow checks (recordings, stream,
picture, coverage) run with it when its `policy.watch_slow_interval_min` has passed since their last run. Each
device's results are recorded as they arrive (one `watch` run per process), then:

- incidents: a critical result opens one (or re-opens it within the hold-down) and assigns it to the technician
  on duty; an ok result resolves it automatically (incidents.track_result);
- escalation: 50 % / 100 % of the on-site time without arrival goes one step up the roster (escalation.py);
- notifications: queued in the outbox, then delivered with bounded time (notify/outbox.py);
- metrics: `--metrics FILE` is rewritten atomically (metrics.py).

Nothing ends the loop but its iterations or a signal: a device or network fault is a result, a log write that
fails (a full disk) is reported and the next round tries again, a failed send waits in the outbox. Ctrl-C or
SIGTERM lets the results being written land, skips the rest of the round, marks the run interrupted and exits
130. One watch per inventory: a second one exits 75 (the lock is a filelock, portable to Windows).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import signal
import sqlite3
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from canteen_ops.errors import CanteenOpsError
from canteen_ops.cli.render import clean
from canteen_ops.i18n import _
from canteen_ops.redact import redact_text
from canteen_ops.status import Status, worst
from canteen_ops.timeutil import iso, utcnow

CHEAP_CHECKS = ("reachable", "login", "clock", "storage", "channels")
SLOW_CHECKS = ("retention", "gaps", "stream", "picture", "coverage")
WRITE_ERRORS = (sqlite3.Error, OSError, CanteenOpsError)
MAX_FAILED_ROUNDS = 10  # consecutive rounds ending in an internal error: then the error ends the watch (exit 70)


@dataclass
class RoundReport:
    number: int
    started: dt.datetime
    seconds: float = 0.0
    devices: int = 0
    slow_schools: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    incidents: dict[str, int] = field(default_factory=dict)
    notified: str = ""
    problems: list[str] = field(default_factory=list)
    interrupted: bool = False

    @property
    def worst(self) -> Status:
        return worst(Status(s) for s, n in self.counts.items() if n)


def lock_path(inventory_path: Path) -> Path:
    from canteen_ops import paths

    digest = hashlib.sha256(str(Path(inventory_path).resolve()).encode()).hexdigest()[:16]
    return paths.data_dir() / "locks" / f"watch-{digest}.lock"


class Watch:
    def __init__(self, env, devices, *, interval_s: float = 300.0, iterations: int | None = None,
                 metrics: Path | None = None, skip: tuple[str, ...] = (), deadline_s: float = 90.0,
                 clock: Callable[[], dt.datetime] = utcnow, out=None, sender=None):
        self.env, self.devices = env, list(devices)
        self.inventory = env.inventory()
        self.interval_s, self.iterations, self.metrics = interval_s, iterations, metrics
        self.skip, self.deadline_s, self.clock, self.sender = set(skip), deadline_s, clock, sender
        self.out = out or (lambda line: print(line, flush=True))
        self.slow_done: dict[str, float] = {}  # school id -> monotonic time of its last slow checks
        self.device_ids = {d.id for d in self.devices}
        inv = self.inventory
        self.hold_downs = {("d", d.id): d.policy.watch_hold_down_min for d in inv.devices}
        self.hold_downs.update({("s", s.id): s.policy.watch_hold_down_min for s in inv.schools})
        # the metrics file's view of the results: the newest row per (device, check), kept up to date from the
        # rows newer than `latest_seq` instead of a GROUP BY over the whole results table every round
        self.latest: dict[tuple, dict] | None = None
        self.latest_seq = 0
        self.stop = threading.Event()
        self._phase = "idle"
        self._writing = False
        self._interrupt_after_write = False
        self.last: RoundReport | None = None

    # --- the loop --------------------------------------------------------------------------------------
    def run(self) -> int:
        from canteen_ops.locks import exclusive

        path = lock_path(self.env.inventory_path)
        with exclusive(path, "another watch is running for the inventory {inventory}{holder} (lock {lock}); one "
                             "watch per inventory", inventory=self.env.inventory_path, lock=path):
            previous = self._install_signals()
            try:
                return self._loop()
            finally:
                self._restore_signals(previous)

    def _loop(self) -> int:
        log = self.env.log()
        outcome = Status.OK
        with log.run("watch", self.env.argv, self.env.operator) as handle:
            n = failures = 0
            while not self.stop.is_set():
                n += 1
                started = time.monotonic()
                try:
                    report = self.round(n, handle)
                    failures = 0
                except Exception as exc:  # a bug in one round must not end a service that runs for months
                    failures += 1
                    if failures >= MAX_FAILED_ROUNDS:
                        raise
                    report = RoundReport(n, self.clock(), problems=[f"round failed: internal error {_why(exc)}"])
                    report.counts["unknown"] = 1
                self.last = report
                self._print(report)
                outcome = report.worst
                if report.interrupted or self.stop.is_set():
                    break
                if self.iterations is not None and n >= self.iterations:
                    break
                self._phase = "sleeping"
                self.stop.wait(max(0.0, self.interval_s - (time.monotonic() - started)))
                self._phase = "idle"
            if self.stop.is_set():
                handle.set_outcome("interrupted", 130)
                return 130
            handle.set_outcome(outcome.value, outcome.exit_code)
        return outcome.exit_code

    def _install_signals(self):
        if threading.current_thread() is not threading.main_thread():
            return None
        previous = {}
        for sig in (signal.SIGINT, getattr(signal, "SIGTERM", None)):
            if sig is not None:
                previous[sig] = signal.signal(sig, self._on_signal)
        return previous

    def _restore_signals(self, previous) -> None:
        for sig, handler in (previous or {}).items():
            signal.signal(sig, handler)

    def _on_signal(self, signum, frame) -> None:
        self.stop.set()
        if self._phase == "checking":
            if self._writing:
                self._interrupt_after_write = True  # let this device's results land first
            else:
                raise KeyboardInterrupt

    # --- one round ---------------------------------------------------------------------------------------
    def round(self, number: int, handle) -> RoundReport:
        from canteen_ops.checks.run import run_checks

        inv, log = self.inventory, self.env.log()
        report = RoundReport(number, self.clock())
        t0 = time.monotonic()
        groups, slow_devices = self._plan(report, t0)
        messages: list[tuple] = []

        def on_results(results) -> None:
            self._writing = True
            try:
                for r in results:
                    report.counts[r.status.value] = report.counts.get(r.status.value, 0) + 1
                try:
                    ids = handle.record_all(results)
                    for r, rid in zip(results, ids):
                        if r.status.value in ("crit", "ok"):
                            row = {"id": rid, "status": r.status.value, "check_name": r.check,
                                   "device_id": r.device_id, "school_id": r.school_id, "summary": r.summary,
                                   "data": r.data}  # the kb entry depends on it (disk error vs absent)
                            self._track(log, row, report, messages)
                except WRITE_ERRORS as exc:
                    report.problems.append(_("cannot write the maintenance log ({why}): {n} result(s) of this round "
                                             "are not recorded").format(why=_why(exc), n=len(results)))
            finally:
                self._writing = False
                if self._interrupt_after_write:
                    self._interrupt_after_write = False
                    raise KeyboardInterrupt

        self._phase = "checking"
        try:
            for names, devices in groups:
                run_checks(devices, inv, names, log=log, deadline_s=self.deadline_s, on_results=on_results,
                           progress=False)
        except KeyboardInterrupt:
            report.interrupted = True
            self.stop.set()
        finally:
            self._phase = "finishing"
        if not report.interrupted:
            for d in slow_devices:
                self.slow_done[d.school_id] = t0
        self._after_checks(log, report, messages)
        report.seconds = time.monotonic() - t0
        self._write_metrics(log, report)
        return report

    def _plan(self, report: RoundReport, t0: float) -> tuple[list[tuple[list[str], list]], list]:
        """The round's (check names, devices) groups, slow group first, and the devices of the slow group."""
        slow_due = set()
        for s in self.inventory.schools:
            last = self.slow_done.get(s.id)
            if last is None or t0 - last >= s.policy.watch_slow_interval_min * 60:
                slow_due.add(s.id)
        cheap = [c for c in CHEAP_CHECKS if c not in self.skip]
        slow = [c for c in (*CHEAP_CHECKS, *SLOW_CHECKS) if c not in self.skip]
        fast_devices = [d for d in self.devices if d.school_id not in slow_due]
        slow_devices = [d for d in self.devices if d.school_id in slow_due]
        report.devices = len(self.devices)
        report.slow_schools = len({d.school_id for d in slow_devices})
        groups = [(names, devs) for names, devs in ((slow, slow_devices), (cheap, fast_devices)) if devs and names]
        return groups, slow_devices

    def _track(self, log, row, report: RoundReport, messages: list) -> None:
        from canteen_ops.escalation import assign
        from canteen_ops.incidents import track_result
        from canteen_ops.notify.messages import incident_message

        now = self.clock()
        action, inc = track_result(log, self.inventory, row, now=now, hold_down=self._hold_down(row))
        if inc is None or action in (None, "updated"):
            return
        report.incidents[action] = report.incidents.get(action, 0) + 1
        person = assign(log, self.inventory, inc, now) if action in ("opened", "reopened") else None
        key = {"opened": f"opened:{inc['id']}", "resolved": f"resolved:{inc['id']}:{_reopens(inc)}",
               "reopened": f"reopened:{inc['id']}:{_reopens(inc)}"}[action]
        messages.append((incident_message(action, inc, self.inventory, assignee=person, now=now), key))

    def _hold_down(self, row) -> dt.timedelta:
        key = ("d", row["device_id"]) if row.get("device_id") else ("s", row.get("school_id"))
        return dt.timedelta(minutes=self.hold_downs.get(key, self.inventory.policy.watch_hold_down_min))

    def _after_checks(self, log, report: RoundReport, messages: list) -> None:
        """Escalation, the outbox and delivery: each step on its own, so a failing one leaves the others."""
        from canteen_ops.escalation import due_steps
        from canteen_ops.incidents import escalate_overdue
        from canteen_ops.notify.messages import incident_message
        from canteen_ops.notify.outbox import deliver, enqueue

        now = self.clock()
        try:
            self._adopt(log, report, messages, now)
            for inc, step, person in due_steps(log, self.inventory, now):
                report.incidents["escalated"] = report.incidents.get("escalated", 0) + 1
                messages.append((incident_message("escalated", inc, self.inventory, step=step, escalated_to=person,
                                                  now=now), f"escalated:{inc['id']}:{_reopens(inc)}:{step}"))
            escalate_overdue(log, now)
        except WRITE_ERRORS as exc:
            report.problems.append(_("escalation not recorded ({why}); tried again next round").format(why=_why(exc)))
        if not self.inventory.settings.notify:
            return
        try:
            for msg, key in messages:
                enqueue(log, self.inventory, msg, key, now=now)
        except WRITE_ERRORS as exc:
            report.problems.append(_("notifications not queued ({why})").format(why=_why(exc)))
        if report.interrupted:
            report.notified = "delivery left for the next start (interrupted)"
            return
        try:
            d = deliver(log, self.inventory, now=now, sender=self.sender)
            report.notified = str(d)
            report.problems += [f"notify {e}" for e in d.errors]
        except WRITE_ERRORS as exc:
            report.problems.append(_("notifications not delivered ({why}); tried again next round").format(
                why=_why(exc)))

    def _adopt(self, log, report: RoundReport, messages: list, now: dt.datetime) -> None:
        """Incidents opened elsewhere and not announced there (no notify target then, or an older version) are
        assigned and announced here, at the next round."""
        from canteen_ops.notify.hooks import adopt

        adopted = adopt(log, self.inventory, now)
        if adopted:
            report.incidents["assigned"] = report.incidents.get("assigned", 0) + len(adopted)
        messages += adopted

    def _write_metrics(self, log, report: RoundReport) -> None:
        if self.metrics is None:
            return
        from canteen_ops.metrics import write_metrics

        try:
            ids = self.device_ids
            latest = [r for r in self._latest_results(log) if r["device_id"] in ids or r["device_id"] is None]
            open_incidents = log.query("SELECT level FROM incidents WHERE state IN ('open', 'acked', 'arrived')")
            pending = log.query("SELECT COUNT(*) AS n FROM outbox WHERE state = 'pending'")[0]["n"]
            write_metrics(str(self.metrics), self.inventory, latest, open_incidents,
                          round_started=report.started.timestamp(), round_seconds=report.seconds,
                          rounds=report.number, pending_notifications=pending)
        except WRITE_ERRORS as exc:
            report.problems.append(_("metrics file {file} not written ({why})").format(file=self.metrics,
                                                                                         why=_why(exc)))

    def _latest_results(self, log) -> list[dict]:
        """log.latest_results() (newest row per device and check, in its order), read in full only once."""
        rows = log.latest_results() if self.latest is None else log.query(
            "SELECT * FROM results WHERE seq > ? ORDER BY seq", [self.latest_seq])
        latest = self.latest if self.latest is not None else {}
        for r in rows:
            latest[(r["device_id"], r["check_name"])] = r
            self.latest_seq = max(self.latest_seq, r["seq"])
        self.latest = latest
        return [latest[k] for k in sorted(latest, key=lambda k: (k[0] is not None, k[0] or "", k[1]))]

    def _print(self, r: RoundReport) -> None:
        from canteen_ops.timeutil import local

        from canteen_ops.i18n import status_word
        from canteen_ops.i18n import word as _word

        counts = ", ".join(f"{r.counts[s]} {status_word(s)}" for s in ("crit", "warn", "unknown", "ok")
                           if r.counts.get(s))
        inc = ", ".join(f"{n} {_word('watch:' + a)}" for a, n in r.incidents.items())
        line = (_("round {n} {at}: {devices} devices").format(
                    n=r.number, at=local(iso(r.started), self.inventory.settings.timezone), devices=r.devices)
                + (_(" ({n} schools with slow checks)").format(n=r.slow_schools) if r.slow_schools else "")
                + _(", {counts} in {s} s").format(counts=counts or _("no results"), s=f"{r.seconds:.1f}")
                + (_("; incidents: {list}").format(list=inc) if inc else "")
                + (_("; notifications: {n}").format(n=r.notified) if r.notified else "")
                + (_("; interrupted") if r.interrupted else ""))
        self.out(clean(redact_text(line)))
        for p in r.problems:
            sys.stderr.write(_("warning: round {n}: {problem}").format(n=r.number, problem=clean(redact_text(p)))
                             + "\n")
            sys.stderr.flush()


def _reopens(inc) -> int:
    return int((inc.get("data") or {}).get("reopen_count", 0))


def _why(exc: BaseException) -> str:
    return redact_text(f"{type(exc).__name__}: {exc}")

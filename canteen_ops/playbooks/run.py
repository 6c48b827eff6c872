"""Execute a playbook: one step after another, each timed, logged and judged; drills get a timeline report.

Command steps run as `python -m canteen_ops ...` child processes: a step's timeout can then really stop it,
and a step behaves exactly like the command typed by hand. The playbook run, every step (start, end, actor,
status) and the drill report's data land in the maintenance log.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from canteen_ops.errors import UsageError
from canteen_ops.playbooks.model import Playbook, Step, substitute
from canteen_ops.playbooks.tasks import INTERNAL, TASKS
from canteen_ops.status import Status, worst
from canteen_ops.timeutil import iso, utcnow

if TYPE_CHECKING:
    from canteen_ops.context import Env
    from canteen_ops.store.log import MaintenanceLog

# Exit statuses of canteen-ops commands → step status. 64+ means the step itself failed to run.
_BY_CODE = {0: Status.OK, 1: Status.WARN, 2: Status.CRIT, 3: Status.UNKNOWN}


@dataclass
class StepOutcome:
    step: Step
    status: Status  # after `expect`
    raw: Status | None  # what the task itself reported (None if skipped)
    summary: str
    started: dt.datetime | None = None
    ended: dt.datetime | None = None
    argv: list[str] = field(default_factory=list)
    # The step itself could not run (its command exited 64+ or timed out, a prompt without an answer, a bad
    # argument): the job's machinery failed. A command exiting 1-3 ran and judged devices: a finding, not this.
    broke: bool = False

    @property
    def seconds(self) -> float:
        return (self.ended - self.started).total_seconds() if self.started and self.ended else 0.0


@dataclass
class PlaybookOutcome:
    steps: list[StepOutcome] = field(default_factory=list)
    run_id: str | None = None
    started: dt.datetime | None = None

    @property
    def status(self) -> Status:
        return worst(s.status for s in self.steps if s.raw is not None)

    @property
    def exit_code(self) -> int:
        return self.status.exit_code


def playbook_lock(lock_dir: Path, name: str):
    """One run per playbook at a time (cron and a technician, or two crons): LockHeld (exit 75) otherwise."""
    from canteen_ops.locks import exclusive

    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    path = lock_dir / f"playbook-{safe}.lock"
    return exclusive(path, "playbook {name!r} is already running{holder} (lock {lock}); try again when it has "
                           "finished", name=name, lock=path)


class PlaybookRunner:
    def __init__(self, book: Playbook, env: "Env", *, check_mode: bool = False, non_interactive: bool = False,
                 variables: dict[str, str] | None = None, ask=input, now: "dt.datetime | None" = None):
        from zoneinfo import ZoneInfo

        self.book, self.env = book, env
        self.check_mode, self.non_interactive = check_mode, non_interactive
        now = now or utcnow()
        # {{ date }} is the day where the work happens: at 01:06 in Shanghai that is already tomorrow in UTC terms
        day = now.astimezone(ZoneInfo(env.timezone())).strftime("%Y-%m-%d")
        self.vars = {"operator": env.operator, "date": day, "now": iso(now),
                     **book.variables, **(variables or {})}
        self.ask = ask
        # --quiet (cron): env.console prints nothing, and the problems are what cron must mail: on stderr
        self.out = env.err if env.quiet else env.console

    # --- entry points --------------------------------------------------------------------------------
    def run(self) -> PlaybookOutcome:
        if self.check_mode:
            return self._plan()
        with playbook_lock(self.env.db_path.parent / "locks", self.book.name):
            log = self.env.log()
            with log.run("playbook", [self.book.path, *self.env.argv], self.env.operator) as handle:
                outcome = PlaybookOutcome(run_id=handle.id, started=utcnow())
                self._execute(log, outcome)
                handle.set_outcome(outcome.status.value, outcome.exit_code)
            if self.book.kind == "drill":
                from canteen_ops.playbooks.drill import print_drill_report

                print_drill_report(self.env, log, self.book, outcome)
            from canteen_ops.notify.hooks import notify_playbook

            notify_playbook(self.env, log, self.book, outcome)
            return outcome

    def _plan(self) -> PlaybookOutcome:
        """--check: say what would run; touch nothing (no log, no lock, no device)."""
        from canteen_ops.cli.render import plural, styled
        from canteen_ops.i18n import _

        self.out.print(styled((self.book.name, "bold"), f" — {plural(len(self.book.steps), 'step')} ",
                              _("(check mode: nothing is run)")))  # (the plan's lines are shown, never stored)
        outcome = PlaybookOutcome()
        for step in self.book.steps:
            args = substitute(step.args, self.vars)
            what = self._describe(step, args)
            self.out.print(f"  {step.index}. {step.name}: {what}", highlight=False, markup=False)
            outcome.steps.append(StepOutcome(step, Status.OK, None, what))
        return outcome

    # --- execution -----------------------------------------------------------------------------------
    def _execute(self, log: "MaintenanceLog", outcome: PlaybookOutcome) -> None:
        """Run the steps; each step's summary is recorded in English and shown translated (summaries.py)."""
        from canteen_ops.cli.render import lines, status_cell, styled
        from canteen_ops.i18n import _
        from canteen_ops.summaries import translate

        stopped = False
        for step in self.book.steps:
            if stopped:
                outcome.steps.append(StepOutcome(step, Status.OK, None, "skipped (an earlier step failed)"))
                self._record(log, outcome, outcome.steps[-1])
                continue
            started = utcnow()
            if not self.env.quiet:
                self.out.print(styled((f"▶ {step.index}. {step.name}", "bold"), f" ({step.task})"))
            raw, summary, argv, broke = self._run_step(log, step, outcome)
            status = Status.OK if step.expect and raw.value in step.expect else raw
            if step.expect and raw.value not in step.expect:
                summary += f" (expected {'/'.join(step.expect)})"
                status = Status.CRIT
            so = StepOutcome(step, status, raw, summary, started, utcnow(), argv, broke)
            outcome.steps.append(so)
            self._record(log, outcome, so)
            if not self.env.quiet or status not in (Status.OK,):
                took = _("({n} s)").format(n=f"{so.seconds:.1f}")
                lines(self.out, [(status_cell(status.value), f"{translate(summary)} {took}")], indent=2)
            if status in (Status.CRIT, Status.UNKNOWN) and step.on_failure == "stop":
                stopped = True

    def _run_step(self, log: "MaintenanceLog", step: Step, outcome: PlaybookOutcome
                  ) -> tuple[Status, str, list[str], bool]:
        """(status, summary, argv, broke): see StepOutcome.broke."""
        args = substitute(step.args, self.vars)
        if step.task in INTERNAL:
            status, summary = getattr(self, "_task_" + step.task)(TASKS[step.task].normalize(args), log, outcome)
            # an assert judges what earlier steps found; any other internal task failing could not do its work
            return status, summary, [], status == Status.CRIT and step.task != "assert"
        try:
            argv = self._argv(log, step, args)
        except UsageError as exc:
            return Status.CRIT, str(exc), [], True
        status, summary, broke = self._subprocess(argv, step.timeout)
        return status, summary, argv, broke

    def _argv(self, log: "MaintenanceLog", step: Step, args) -> list[str]:
        spec = TASKS[step.task]
        args = spec.normalize(args)
        if step.task == "incident" and args.get("action", "open") != "open":
            # Act on the open incident of the named device: drills cannot know incident ids in advance.
            device = args.pop("device", None)
            if not device:
                raise UsageError("step {index}: incident {action} needs device", index=step.index,
                                 action=args.get("action"))
            rows = log.query("SELECT id FROM incidents WHERE state IN ('open', 'acked', 'arrived') AND device_ids LIKE ? "
                             "ORDER BY seq DESC LIMIT 1", [f'%"{device}"%'])
            if not rows:
                raise UsageError("no open incident for device {device}", device=device)
            argv = spec.argv(args, None)
            return argv[:2] + [rows[0]["id"]] + argv[2:]
        return spec.argv(args, self._target(step))

    def _target(self, step: Step) -> dict[str, list[str]]:
        return substitute(step.target if step.target is not None else self.book.targets, self.vars)

    def _subprocess(self, argv: list[str], timeout: float) -> tuple[Status, str, bool]:
        cmd = [sys.executable, "-m", "canteen_ops", "--db", str(self.env.db_path), "--operator", self.env.operator]
        if self.env.inventory_path.exists():
            cmd += ["--inventory", str(self.env.inventory_path)]
        if self.env.quiet:
            cmd.append("--quiet")
        # The child must import this very canteen_ops, even from a source checkout that is not installed.
        pkg_root = str(Path(__file__).resolve().parents[2])
        # The child's output is shown indented by 4 under the step: it gets the width that leaves.
        env = {**os.environ, "COLUMNS": str(max(40, self.out.width - 4)),
               "PYTHONPATH": os.pathsep.join(filter(None, [pkg_root, os.environ.get("PYTHONPATH")]))}
        try:
            proc = subprocess.run(cmd + argv, capture_output=True, text=True, timeout=timeout, env=env,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return Status.CRIT, f"timed out after {timeout:g} s: canteen-ops {' '.join(argv)}", True
        output = (proc.stdout + proc.stderr).rstrip()
        if output and (not self.env.quiet or proc.returncode):
            from rich.padding import Padding

            from canteen_ops.cli.render import text

            # Indented as a block: a line longer than the terminal wraps under itself, not back to the margin.
            self.out.print(Padding(text(output), (0, 0, 0, 4)))
        status = _BY_CODE.get(proc.returncode)
        last = next((ln.strip() for ln in reversed(output.splitlines()) if ln.strip()), "")
        if status is None:
            return Status.CRIT, f"canteen-ops {' '.join(argv)} failed (exit {proc.returncode}): {last}", True
        return status, f"canteen-ops {' '.join(argv)} → exit {proc.returncode}", False

    # --- internal tasks --------------------------------------------------------------------------------
    def _task_wait(self, args: dict, log, outcome) -> tuple[Status, str]:
        seconds = float(args["seconds"])
        time.sleep(seconds)
        return Status.OK, f"waited {seconds:g} s"

    def _task_prompt(self, args: dict, log, outcome) -> tuple[Status, str]:
        message, default = args["message"], args.get("default")
        choices = [str(c) for c in args.get("choices", [])]
        if self.non_interactive or not sys.stdin.isatty():
            if default is None:
                return Status.CRIT, f"prompt {message!r} has no default and the run is non-interactive"
            answer = str(default)
        else:
            suffix = f" [{'/'.join(choices)}]" if choices else ""
            answer = self.ask(f"{message}{suffix} ({default or ''}): ").strip() or str(default or "")
        if choices and answer not in choices:
            return Status.CRIT, f"answer {answer!r} is not one of {', '.join(choices)}"
        if args.get("var"):
            self.vars[args["var"]] = answer
        return Status.OK, f"{message} → {answer}"

    def _task_assert(self, args: dict, log: "MaintenanceLog", outcome: PlaybookOutcome) -> tuple[Status, str]:
        failures, checked = [], []
        if "step" in args:
            wanted = args.get("status", ["ok"])
            wanted = [wanted] if isinstance(wanted, str) else wanted
            target = next((s for s in outcome.steps if s.step.name == args["step"]), None)
            if target is None or target.raw is None:
                failures.append(f"step {args['step']!r} did not run")
            elif target.raw.value not in wanted:
                failures.append(f"step {args['step']!r} was {target.raw.value}, expected {'/'.join(wanted)}")
            checked.append(f"step {args['step']}")
        incidents = log.query("SELECT * FROM incidents WHERE opened_at >= ? ORDER BY seq",
                              [iso(outcome.started)])
        if "incident_device" in args:
            dev = args["incident_device"]
            hits = [i for i in incidents if dev in (i["device_ids"] or [])]
            if args.get("incident_level"):
                hits = [i for i in hits if i["level"] == args["incident_level"]]
            if not hits:
                failures.append(f"no incident opened for {dev} during this run")
            checked.append(f"incident for {dev}")
        if args.get("within_deadline"):
            late = [i for i in incidents if not i["arrived_at"] or i["arrived_at"] > i["arrive_deadline"]]
            if late:
                failures.append(f"{len(late)} incident(s) without arrival before the deadline")
            checked.append("deadlines")
        if failures:
            return Status.CRIT, "; ".join(failures)
        return Status.OK, "holds: " + ", ".join(checked or ["nothing to check"])

    # --- bookkeeping -------------------------------------------------------------------------------------
    def _record(self, log: "MaintenanceLog", outcome: PlaybookOutcome, so: StepOutcome) -> None:
        log.insert("playbook_steps", {
            "run_id": outcome.run_id, "playbook": self.book.name, "step_index": so.step.index,
            "step_name": so.step.name, "task": so.step.task,
            "status": so.status.value if so.raw is not None else "skipped",
            "started_at": iso(so.started) if so.started else None,
            "ended_at": iso(so.ended) if so.ended else None, "actor": self.env.operator, "summary": so.summary,
            "data": {"argv": so.argv, "raw_status": so.raw.value if so.raw else None,
                     "expect": list(so.step.expect), "broke": so.broke},
        })

    def _describe(self, step: Step, args) -> str:
        if step.task in INTERNAL:
            return f"{step.task} {args}"
        if step.task == "incident" and isinstance(args, dict) and args.get("action", "open") != "open":
            from canteen_ops.i18n import _

            return _("canteen-ops incident {action} <open incident of {device}>").format(
                action=args["action"], device=args.get("device"))  # shown by --check, never stored
        return "canteen-ops " + " ".join(TASKS[step.task].argv(args, self._target(step)))

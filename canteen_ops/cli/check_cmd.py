"""`canteen-ops check`: diagnostics across the selected devices, grouped by school, failing items first.

Exit status is the worst result (0 ok, 1 warn, 2 crit, 3 unknown); an n/a result (the check does not apply to that
device) is listed and logged but never counted. Every result is recorded in the maintenance
log as it arrives, inside one `check` run; Ctrl-C keeps what finished and marks the run interrupted (exit 130).
"""

from __future__ import annotations

import sys
import time
from typing import Annotated, Optional

import typer

from canteen_ops.cli.common import MAX_SECONDS, MAX_WORKERS
from canteen_ops.cli.common import AreaOpt, DeviceOpt, KindOpt, SchoolOpt, TagOpt, VendorOpt, env, select

ORDER = {"crit": 0, "warn": 1, "unknown": 2, "n/a": 3, "ok": 4}


def check(
    ctx: typer.Context,
    school: SchoolOpt = None, device: DeviceOpt = None, kind: KindOpt = None, vendor: VendorOpt = None,
    area: AreaOpt = None, tag: TagOpt = None,
    only: Annotated[Optional[list[str]], typer.Option(
        "--only", metavar="CHECKS", help="Run only these checks (comma list or repeated): reachable, login, facts, clock, ntp, "
        "storage, channels, retention, gaps, stream, picture, coverage")] = None,
    skip: Annotated[Optional[list[str]], typer.Option(
        "--skip", metavar="CHECKS", help="Leave these checks out, e.g. --skip stream,picture (the slow ones)")] = None,
    json: Annotated[bool, typer.Option(
        "--json", help="JSON Lines on stdout: one object per result, written as results arrive")] = False,
    all_: Annotated[bool, typer.Option("--all", help="List ok results too (default: a count per school)")] = False,
    workers: Annotated[Optional[int], typer.Option(
        "--workers", min=1, max=MAX_WORKERS, metavar="N", help="Devices checked at once, one connection each "
        "[default: 256, or CANTEEN_OPS_WORKERS]")] = None,
    processes: Annotated[Optional[int], typer.Option(
        "--processes", min=1, max=64, metavar="N", help="Worker processes for the CPU-bound work: a share of the "
        "fleet each, or the picture analysis with stream/picture checks [default: one per core (at most 8) for "
        "200 or more devices without stream/picture checks; else 1, all in this process]")] = None,
    deadline: Annotated[float, typer.Option(
        "--deadline", min=0.1, max=MAX_SECONDS, metavar="SECONDS", help="Seconds allowed per device; a device past it gets an 'unknown'")] = 90.0,
    open_incidents: Annotated[bool, typer.Option(
        "--open-incidents", help="Open (or update, never duplicate) an incident for every critical result")] = False,
    quiet: Annotated[bool, typer.Option(
        "--quiet", "-q", help="Print only problems, one line each, nothing when all is well (for cron)")] = False,
) -> int:
    """Diagnose the selected devices: reachability, login, identity, clock, NVR disks/channels/recordings,
    stream and picture quality, and coverage of the required canteen areas."""
    from canteen_ops.checks.run import default_processes, run_checks, select_checks

    e = env(ctx)
    quiet = quiet or e.quiet
    names = select_checks(only, skip)
    devices = select(ctx, school, device, kind, vendor, area, tag)
    inv = e.inventory()
    if not devices:
        from canteen_ops.errors import UsageError

        raise UsageError("no devices match the selection")
    incidents = _incidents_module() if open_incidents else None
    log = e.log()
    out = _Output(inv, json=json, quiet=quiet, show_ok=all_)
    t0 = time.monotonic()
    with log.run("check", e.argv, e.operator) as run:
        def on_results(results) -> None:
            # A device's results (or several devices' that arrived together) are recorded in one transaction,
            # then shown: Ctrl-C never leaves a shown result unrecorded.
            for r, result_id in zip(results, run.record_all(results)):
                out.add(r, result_id, run.id)
                if incidents is not None and r.status.value in ("crit", "ok"):
                    incidents.open_or_update_for_result(log, inv, log.get("results", result_id), actor=e.operator)

        try:
            outcome = run_checks(devices, inv, names, log=log, workers=workers, deadline_s=deadline,
                                 on_results=on_results, progress=None if not (json or quiet) else False,
                                 processes=processes or default_processes(devices, names))
        except KeyboardInterrupt:
            out.render(interrupted=True, elapsed=time.monotonic() - t0, n_devices=len(devices))
            raise
        status = outcome.status
        run.set_outcome(status.value, status.exit_code)
    from canteen_ops.incidents import escalate_overdue

    escalate_overdue(log)  # every check run also marks incidents whose on-site deadline passed unattended
    out.render(interrupted=False, elapsed=time.monotonic() - t0, n_devices=len(devices))
    if incidents is not None:
        from canteen_ops.notify.hooks import announce

        announce(e, log)  # the incidents just opened reach the people on duty now, not at the next watch round
    return status.exit_code


def _incidents_module():
    try:
        from canteen_ops import incidents
    except ImportError:
        from canteen_ops.errors import UsageError

        raise UsageError("--open-incidents: incident tracking (canteen_ops.incidents) is not part of this "
                         "build yet; run the check without it") from None
    return incidents


class _Output:
    """Collects results; streams JSON Lines, or renders the grouped table at the end."""

    def __init__(self, inv, *, json: bool, quiet: bool, show_ok: bool):
        self.inv, self.json, self.quiet, self.show_ok = inv, json, quiet, show_ok
        self.rows: list = []

    def add(self, r, result_id: str, run_id: str) -> None:
        if self.json:
            from canteen_ops.cli.common import json_text

            from canteen_ops.kb.classify import kb_for_result

            obj = {"id": result_id, "run_id": run_id, **r.to_dict(), "kb": kb_for_result(r)}
            sys.stdout.write(json_text(obj, indent=None) + "\n")
            sys.stdout.flush()
        else:
            self.rows.append(r)

    def render(self, *, interrupted: bool, elapsed: float, n_devices: int) -> None:
        if self.json:
            return
        if self.quiet:
            self._render_quiet(interrupted)
            return
        from rich.text import Text

        from canteen_ops.cli.render import CODE, ID, Column, make_console, plural, status_cell, styled, table
        from canteen_ops.i18n import _

        console = make_console()
        names = {s.id: s.name for s in self.inv.schools}
        order = {s.id: i for i, s in enumerate(self.inv.schools)}
        labels = {d.id: d for d in self.inv.devices}
        by_school: dict[str, list] = {}
        for r in self.rows:
            by_school.setdefault(r.school_id or "", []).append(r)
        for sid in sorted(by_school, key=lambda s: order.get(s, len(order))):
            rows = sorted(by_school[sid], key=lambda r: (ORDER[r.status.value], r.device_id or "", r.check))
            counts = _counts(rows)
            title = styled((f"{names.get(sid, sid)} ", "bold"), (f"{sid}  ", "dim"), _counts_text(counts))
            cells = []
            oks, listed = 0, 0
            for r in rows:
                if r.status.value == "ok" and not self.show_ok:
                    oks += 1
                    continue
                listed += 1
                d = labels.get(r.device_id or "")
                cells.append((status_cell(r.status.value, upper=True), r.device_id or _("(school)"),
                              d.area if d else "", r.check, _with_kb(r)))
            if oks:
                devs = len({r.device_id for r in rows if r.status.value == "ok" and r.device_id})
                more = _("{checks} ok on {devices}").format(
                    checks=plural(oks, "more check") if listed else plural(oks, "check"),
                    devices=plural(devs, "device"))
                cells.append((status_cell("ok", upper=True), "", "", "",
                              Text(f"{more} ({_('--all lists them')})", style="dim")))
            cols = [Column("status", CODE), Column("device", ID), Column("area"), Column("check", CODE),
                    Column("finding", main=True)]
            console.print(table(title, cols, cells, console=console))
            console.print()
        counts = _counts(self.rows)
        worst = next((s for s in ("crit", "warn", "unknown") if counts.get(s)), "ok")
        line = styled(
            (_("interrupted — ") if interrupted else "", "bold red"),
            _("{devices} in {schools}, {results}: ").format(
                devices=plural(n_devices, "device"), schools=plural(len(by_school), "school"),
                results=plural(len(self.rows), "result")),
            _counts_text(counts), _(" in {seconds} s — worst ").format(seconds=f"{elapsed:.1f}"),
            status_cell(worst, upper=True))
        console.print(line)

    def _render_quiet(self, interrupted: bool) -> None:
        from canteen_ops.cli.render import echo, pad
        from canteen_ops.i18n import _, status_word

        names = {s.id: s.name for s in self.inv.schools}
        problems = sorted((r for r in self.rows if r.status.value not in ("ok", "n/a")),
                          key=lambda r: (ORDER[r.status.value], r.school_id or "", r.device_id or "", r.check))
        for r in problems:
            echo(f"{pad(status_word(r.status.value, upper=True), 7)} {names.get(r.school_id, r.school_id or '')} "
                 f"{r.device_id or _('(school)')} {r.check}: {_with_kb(r)}")
        if interrupted:
            echo(_("interrupted: results so far are in the maintenance log"))


def _with_kb(r) -> str:
    """The finding, with the knowledge-base entry to read (`kb show ID`) when there is one."""
    from canteen_ops.kb.classify import kb_for_result

    from canteen_ops.summaries import translate

    kb = kb_for_result(r)
    return f"{translate(r.summary)}  (kb: {kb})" if kb else translate(r.summary)


def _counts(rows) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in rows:
        out[r.status.value] = out.get(r.status.value, 0) + 1
    return out


def _counts_text(counts: dict[str, int]):
    from rich.text import Text

    from canteen_ops.cli.render import STATUS_STYLE
    from canteen_ops.i18n import _, status_word

    parts = [(f"{counts[s]} {status_word(s)}", STATUS_STYLE[s]) for s in ("crit", "warn", "unknown", "n/a", "ok")
             if counts.get(s)]
    t = Text()
    for i, p in enumerate(parts):
        if i:
            t.append(", ")
        t.append(*p)
    return t if parts else Text(_("nothing checked"))

"""`canteen-ops check`: diagnostics across the selected devices, grouped by school, failing items first.

Exit status is the worst result (0 ok, 1 warn, 2 crit, 3 unknown). Every result is recorded in the maintenance
log as it arrives, inside one `check` run; Ctrl-C keeps what finished and marks the run interrupted (exit 130).
"""

from __future__ import annotations

import sys
import time
from typing import Annotated, Optional

import typer

from canteen_ops.cli.common import AreaOpt, DeviceOpt, KindOpt, SchoolOpt, TagOpt, VendorOpt, env, select

ORDER = {"crit": 0, "warn": 1, "unknown": 2, "ok": 3}
STYLE = {"crit": "bold red", "warn": "yellow", "unknown": "magenta", "ok": "green"}


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
        "--workers", min=1, metavar="N", help="Devices checked at once, one connection each [default: 256, or "
        "CANTEEN_OPS_WORKERS]")] = None,
    processes: Annotated[Optional[int], typer.Option(
        "--processes", min=1, metavar="N", help="Worker processes for the CPU-bound work: the picture analysis "
        "with stream/picture checks, else a share of the fleet each; for machines with idle cores [default: 1, "
        "all in this process]")] = None,
    deadline: Annotated[float, typer.Option(
        "--deadline", min=0.1, metavar="SECONDS", help="Seconds allowed per device; a device past it gets an 'unknown'")] = 90.0,
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
            import json

            obj = {"id": result_id, "run_id": run_id, **r.to_dict()}
            sys.stdout.write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")
            sys.stdout.flush()
        else:
            self.rows.append(r)

    def render(self, *, interrupted: bool, elapsed: float, n_devices: int) -> None:
        if self.json:
            return
        if self.quiet:
            self._render_quiet(interrupted)
            return
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        console = Console(highlight=False, soft_wrap=False)
        names = {s.id: s.name for s in self.inv.schools}
        order = {s.id: i for i, s in enumerate(self.inv.schools)}
        labels = {d.id: d for d in self.inv.devices}
        by_school: dict[str, list] = {}
        for r in self.rows:
            by_school.setdefault(r.school_id or "", []).append(r)
        for sid in sorted(by_school, key=lambda s: order.get(s, len(order))):
            rows = sorted(by_school[sid], key=lambda r: (ORDER[r.status.value], r.device_id or "", r.check))
            counts = _counts(rows)
            title = Text.assemble((f"{names.get(sid, sid)} ", "bold"), (f"{sid}  ", "dim"), _counts_text(counts))
            table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False, expand=False)
            for col, kw in (("status", {}), ("device", {"no_wrap": True}), ("area", {}), ("check", {}),
                            ("finding", {"overflow": "fold"})):
                table.add_column(col, **kw)
            oks, listed = 0, 0
            for r in rows:
                if r.status.value == "ok" and not self.show_ok:
                    oks += 1
                    continue
                listed += 1
                d = labels.get(r.device_id or "")
                table.add_row(Text(r.status.value.upper(), style=STYLE[r.status.value]),
                              r.device_id or "(school)", (d.area or "") if d else "", r.check, r.summary)
            if oks:
                devs = len({r.device_id for r in rows if r.status.value == "ok" and r.device_id})
                table.add_row(Text("OK", style="green"), "", "", "",
                              Text(f"{oks} {'more ' if listed else ''}checks ok on {devs} device"
                                   f"{'s' if devs != 1 else ''} (--all lists them)", style="dim"))
            console.print(table)
            console.print()
        counts = _counts(self.rows)
        worst = next((s for s in ("crit", "warn", "unknown") if counts.get(s)), "ok")
        line = Text.assemble(
            ("interrupted — " if interrupted else "", "bold red"),
            f"{n_devices} device{'s' if n_devices != 1 else ''} in {len(by_school)} school"
            f"{'s' if len(by_school) != 1 else ''}, {len(self.rows)} results: ",
            _counts_text(counts), f" in {elapsed:.1f} s — worst ", (worst.upper(), STYLE[worst]))
        console.print(line)

    def _render_quiet(self, interrupted: bool) -> None:
        names = {s.id: s.name for s in self.inv.schools}
        problems = sorted((r for r in self.rows if r.status.value != "ok"),
                          key=lambda r: (ORDER[r.status.value], r.school_id or "", r.device_id or "", r.check))
        for r in problems:
            sys.stdout.write(f"{r.status.value.upper():7} {names.get(r.school_id, r.school_id or '')} "
                             f"{r.device_id or '(school)'} {r.check}: {r.summary}\n")
        if interrupted:
            sys.stdout.write("interrupted: results so far are in the maintenance log\n")


def _counts(rows) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in rows:
        out[r.status.value] = out.get(r.status.value, 0) + 1
    return out


def _counts_text(counts: dict[str, int]):
    from rich.text import Text

    parts = [(f"{counts[s]} {s}", STYLE[s]) for s in ("crit", "warn", "unknown", "ok") if counts.get(s)]
    t = Text()
    for i, p in enumerate(parts):
        if i:
            t.append(", ")
        t.append(*p)
    return t if parts else Text("nothing checked")

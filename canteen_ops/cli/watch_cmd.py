"""`canteen-ops watch`: the round-the-clock loop (canteen_ops/watch.py, docs/watch.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from canteen_ops.cli.common import MAX_COUNT, MAX_SECONDS
from canteen_ops.cli.common import AreaOpt, DeviceOpt, KindOpt, SchoolOpt, TagOpt, VendorOpt, env, select


def watch(
    ctx: typer.Context,
    school: SchoolOpt = None, device: DeviceOpt = None, kind: KindOpt = None, vendor: VendorOpt = None,
    area: AreaOpt = None, tag: TagOpt = None,
    interval: Annotated[str, typer.Option(
        "--interval", metavar="DURATION", help="Time between rounds of the cheap checks (reachable, login, clock, "
        "storage, channels), e.g. 5m, 90s; the slow ones follow policy.watch_slow_interval_min")] = "5m",
    iterations: Annotated[Optional[int], typer.Option(
        "--iterations", min=1, max=MAX_COUNT, metavar="N", help="Stop after N rounds (tests, drills) [default: run until stopped]")] = None,
    metrics: Annotated[Optional[Path], typer.Option(
        "--metrics", metavar="FILE", help="Write the latest state as OpenMetrics text for node_exporter's textfile "
        "collector (rewritten atomically every round)")] = None,
    skip: Annotated[Optional[list[str]], typer.Option(
        "--skip", metavar="CHECKS", help="Leave these checks out of every round (comma list or repeated)")] = None,
    deadline: Annotated[float, typer.Option(
        "--deadline", min=0.1, max=MAX_SECONDS, metavar="SECONDS", help="Seconds allowed per device and round")] = 90.0,
) -> int:
    """Watch the selected devices around the clock: open incidents for critical faults, resolve them when the
    fault clears, escalate up the duty roster, notify (settings.notify) and export metrics. Stop with Ctrl-C or
    SIGTERM (the run is marked interrupted, exit 130); one watch per inventory (a second one exits 75)."""
    from canteen_ops.checks.run import select_checks
    from canteen_ops.errors import UsageError
    from canteen_ops.timeutil import parse_duration
    from canteen_ops.watch import Watch

    try:
        interval_s = parse_duration(interval).total_seconds()
    except ValueError as exc:
        raise UsageError("--interval: {exc}", exc=exc) from None
    skipped = tuple(n for n in select_checks(None, None) if n not in select_checks(None, skip)) if skip else ()
    devices = select(ctx, school, device, kind, vendor, area, tag)
    if not devices:
        raise UsageError("no devices match the selection")
    return Watch(env(ctx), devices, interval_s=interval_s, iterations=iterations, metrics=metrics, skip=skipped,
                 deadline_s=deadline).run()

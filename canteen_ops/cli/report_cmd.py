"""`canteen-ops report --from --to [--school] --format md|html [--output FILE]`: the operations report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


def _bound(value: str, tz: str, *, end: bool):
    """A date (whole day, local to tz; --to includes that day), an ISO time, or a duration back from now."""
    import datetime as dt
    from zoneinfo import ZoneInfo

    from canteen_ops.errors import UsageError
    from canteen_ops.timeutil import in_range, is_duration, parse_since

    v = value.strip()
    flag = "--to" if end else "--from"
    try:
        if is_duration(v):
            return parse_since(v)
        try:
            if len(v) == 10:
                t = dt.datetime.combine(dt.date.fromisoformat(v), dt.time(0), tzinfo=ZoneInfo(tz))
            else:
                t = dt.datetime.fromisoformat(v.replace("Z", "+00:00"))
        except ValueError:
            raise UsageError("{flag} {value!r}: expected a date (2026-11-01), a time (2026-11-01T08:00) or a "
                             "duration back from now (7d)", flag=flag, value=value) from None
        t = in_range(t if t.tzinfo else t.replace(tzinfo=ZoneInfo(tz)), v)
        return t + dt.timedelta(days=1) if end and len(v) == 10 else t
    except ValueError as exc:  # out of range
        raise UsageError("{flag}: {exc}", flag=flag, exc=exc) from None


def report(ctx: typer.Context,
           from_: Annotated[Optional[str], typer.Option("--from", metavar="TIME", help="Start: date, ISO time or e.g. 30d "
                                                        "[default: 30 days before --to]")] = None,
           to: Annotated[Optional[str], typer.Option("--to", metavar="TIME", help="End: a date is included whole [default: now]")] = None,
           school: Annotated[Optional[list[str]], typer.Option("--school", "-s", metavar="SCHOOL", help="School id or name (repeatable)")] = None,
           fmt: Annotated[str, typer.Option("--format", "-f", metavar="FORMAT", help="md or html (html: one self-contained file "
                                            "with charts)")] = "md",
           output: Annotated[Optional[Path], typer.Option("--output", "-o", metavar="FILE", help="File (default stdout)")] = None,
           json: Annotated[bool, typer.Option("--json", help="The figures as JSON instead")] = False) -> int:
    """Operations report (运行分析报告): availability, failing checks, incidents and SLA, backups, firmware,
    retention, picture clarity and coverage, per school and overall."""
    import datetime as dt

    from canteen_ops.cli.common import env
    from canteen_ops.errors import UsageError
    from canteen_ops.report import build_report, render_html, render_markdown
    from canteen_ops.timeutil import utcnow

    if fmt not in ("md", "html"):
        raise UsageError("--format {fmt!r}: expected md or html", fmt=fmt)
    e = env(ctx)
    inv = e.inventory()
    tz = inv.settings.timezone
    end = _bound(to, tz, end=True) if to else utcnow()
    start = _bound(from_, tz, end=False) if from_ else end - dt.timedelta(days=30)
    rep = build_report(e.log(), inv, start, end, schools=school or ())
    if json:
        import json as _json

        text = _json.dumps(rep, ensure_ascii=False, indent=2) + "\n"
    else:
        text = render_html(rep) if fmt == "html" else render_markdown(rep)
    if output:
        from canteen_ops.cli.common import write_output
        from canteen_ops.i18n import _

        write_output(output, text.encode("utf-8"))

        e.err.print(_("report written to {file}").format(file=output), highlight=False, markup=False)
    else:
        from canteen_ops.cli.render import echo_data

        echo_data(text)
    return 0

"""`canteen-ops report --from --to [--school] --format md|html [--output FILE]`: the operations report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


def _bound(value: str, tz: str, *, end: bool):
    """A date (whole day, local to tz; --to includes that day), an ISO time, or a duration back from now."""
    from canteen_ops.errors import UsageError
    from canteen_ops.timeutil import parse_since, parse_until

    try:
        return (parse_until if end else parse_since)(value, tz=tz)
    except ValueError as exc:  # not a time, or out of range
        raise UsageError("{flag}: {exc}", flag="--to" if end else "--from", exc=exc) from None


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

"""`canteen-ops sync [--upstream URL] [--dry-run] [--batch-size N]` and `sync status`: push the log upstream."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from canteen_ops.cli.common import MAX_COUNT
from canteen_ops.cli.common import JsonOpt, env, print_json

HELP = ("Push the maintenance log to the district's Datasette; `sync status` shows what is pending. "
        "Exit 69: upstream unreachable (nothing lost, retry later); 77: token refused.")
app = typer.Typer(help=HELP, rich_markup_mode=None, add_completion=False, invoke_without_command=True)

UpstreamOpt = Annotated[Optional[str], typer.Option(
    "--upstream", metavar="URL", help="Datasette database URL, e.g. http://district:8001/canteen "
                       "[default: $CANTEEN_OPS_UPSTREAM, then settings.upstream_url]")]


def _settings(ctx: typer.Context):
    """Inventory settings if an inventory is present (sync itself needs no devices)."""
    e = env(ctx)
    return e.inventory().settings if e.inventory_path.exists() else None


@app.callback()
def sync(ctx: typer.Context, upstream: UpstreamOpt = None,
         dry_run: Annotated[bool, typer.Option("--dry-run", help="Only count what would be sent")] = False,
         batch_size: Annotated[int, typer.Option("--batch-size", min=1, max=MAX_COUNT, metavar="N", help="Rows per request (the server's "
                                                 "max_insert_rows caps it)")] = 1000,
         json: JsonOpt = False) -> None:
    """Push every record the upstream has not confirmed yet, in batches; resumes after a failure."""
    from canteen_ops.cli.render import plural
    from canteen_ops.i18n import _

    if ctx.invoked_subcommand is not None:
        return
    from canteen_ops import upstream as up

    e = env(ctx)
    settings = _settings(ctx)
    log = e.log()
    if dry_run:
        try:
            url = up.resolve_upstream(upstream, settings)
        except up.UsageError:
            url = None
        pending = up.pending_counts(log, url)
        if json:
            print_json({"upstream": url, "dry_run": True, "pending": pending})
        else:
            _print_counts(e.console, _("would send to {url}").format(url=url or _("(not configured)")), pending)
        return
    url = up.resolve_upstream(upstream, settings)
    token = up.resolve_token(settings)
    if (warning := up.token_file_warning(settings)) and not e.quiet:
        e.err.print(f"{_('warning')}: {warning}")
    try:
        report = up.sync(log, url, token, batch_size=batch_size)
    except up.SyncFailed as exc:
        pending = up.pending_counts(log, url)
        if json:
            print_json({"upstream": url, "error": str(exc), "sent": _sent(exc.report), "pending": pending})
        e.err.print(f"{_('error')}: {exc.localized()}")
        _print_counts(e.err, _("still pending (kept locally, sent on the next sync)"), pending)
        raise typer.Exit(exc.exit_code)
    if json:
        print_json({"upstream": url, "sent": _sent(report), "pending": up.pending_counts(log, url)})
        return
    sent = _sent(report)
    e.console.print(_("synced {records} to {url}").format(records=plural(report.sent, "record"), url=url)
                    + (": " + ", ".join(f"{t} {n}" for t, n in sent.items() if n) if report.sent else ""))


def _sent(report) -> dict[str, int]:
    return {t: s.sent for t, s in report.tables.items()}


def _print_counts(console, title: str, counts: dict[str, int]) -> None:
    from canteen_ops.cli.render import plural

    parts = ", ".join(f"{t} {n}" for t, n in counts.items() if n)
    console.print(f"{title}: {plural(sum(counts.values()), 'record')}" + (f" ({parts})" if parts else ""))


@app.command()
def status(ctx: typer.Context, upstream: UpstreamOpt = None, json: JsonOpt = False) -> int:
    """Per table: records pending, last confirmed seq, when, and to which upstream."""
    from canteen_ops import upstream as up
    from canteen_ops.timeutil import local

    e = env(ctx)
    try:
        url = up.resolve_upstream(upstream, _settings(ctx))
    except up.UsageError:
        url = None
    log = e.log()
    pending = up.pending_counts(log, url)
    state = up.sync_state(log)
    rows = [{"table": t, "pending": n, "last_seq": (state.get(t) or {}).get("last_seq", 0),
             "synced_at": (state.get(t) or {}).get("synced_at"), "upstream": (state.get(t) or {}).get("upstream")}
            for t, n in pending.items()]
    if json:
        print_json({"upstream": url, "tables": rows})
        return 0
    from canteen_ops.cli.render import ID, NUM, TIME, Column, plural, table
    from canteen_ops.i18n import _

    title = _("sync status — upstream {url}; {records} pending").format(
        url=url or _("(not configured)"), records=plural(sum(pending.values()), "record"))
    cols = [Column("table", ID), Column("pending", NUM), Column("last seq", NUM), Column("last synced", TIME),
            Column("to")]
    cells = [(r["table"], r["pending"], r["last_seq"], local(r["synced_at"]), r["upstream"]) for r in rows]
    e.console.print(table(title, cols, cells, console=e.console,
                          row_styles=["yellow" if r["pending"] else None for r in rows]))
    return 0

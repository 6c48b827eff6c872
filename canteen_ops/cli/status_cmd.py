"""`canteen-ops status`: what is wrong right now, read from the maintenance log only (works offline)."""

from __future__ import annotations

from typing import Annotated

import typer

from canteen_ops.cli.common import AreaOpt, DeviceOpt, JsonOpt, KindOpt, SchoolOpt, TagOpt, VendorOpt, env, select
from canteen_ops.summaries import translate


def status(
    ctx: typer.Context,
    school: SchoolOpt = None, device: DeviceOpt = None, kind: KindOpt = None, vendor: VendorOpt = None,
    area: AreaOpt = None, tag: TagOpt = None, json: JsonOpt = False,
    all_: Annotated[bool, typer.Option("--all", help="Also list schools where nothing is wrong")] = False,
) -> int:
    """What is wrong right now, per school, worst first: the newest non-ok result of every check with its age,
    devices never checked, open and overdue incidents. Reads the log only, touches no device. Exit 0/1/2/3 =
    worst status (an overdue incident counts as crit)."""
    from canteen_ops.cli.common import print_json
    from canteen_ops.current import current_status
    from canteen_ops.timeutil import utcnow

    e = env(ctx)
    devices = select(ctx, school, device, kind, vendor, area, tag)
    if not devices:
        from canteen_ops.errors import UsageError

        raise UsageError("no devices match the selection")
    # No log on this laptop yet: every device is "never checked", and reading must not create the file.
    report = current_status(e.log() if e.db_path.exists() else None, e.inventory(), devices, utcnow())
    if json:
        print_json(report)
    elif e.quiet:
        _render_quiet(report)
    else:
        _render(e, report, show_ok=all_)
    return report["exit_code"]


def _render_quiet(report: dict) -> None:
    """--quiet (cron): one line per problem, nothing when all is well."""
    from canteen_ops.cli.common import echo
    from canteen_ops.cli.render import pad
    from canteen_ops.i18n import _, status_word
    from canteen_ops.timeutil import age

    for s in report["schools"]:
        name = s["name"]
        for p in s["problems"]:
            echo(_("{status} {school} {device} {check}: {finding} ({age} ago)").format(
                status=pad(status_word(p["status"], upper=True), 7), school=name,
                device=p["device_id"] or _("(school)"), check=p["check"], finding=translate(p["summary"]),
                age=age(p["age_s"])))
        for dev in s["never_checked"]:
            echo(_("{status} {school} {device}: never checked").format(
                status=pad(status_word("unknown", upper=True), 7), school=name, device=dev))
        for i in s["incidents"]:
            if i["overdue"]:
                echo(_("OVERDUE {school} incident {id} {level}/{state}: {title}").format(
                    school=name, id=i["id"][:8], level=_(i["level"]), state=_(i["state"]),
                    title=translate(i["title"])))


def _render(e, report: dict, *, show_ok: bool) -> None:
    from rich.text import Text

    from canteen_ops.cli.render import CODE, ID, NUM, Column, first_of, plural, status_cell, styled, table
    from canteen_ops.i18n import _
    from canteen_ops.timeutil import age, local

    tz = e.timezone()
    c = e.console
    quiet_ok = 0
    cols = [Column("status", CODE), Column("device", ID), Column("area"), Column("check", CODE),
            Column("finding", main=True), Column("age", NUM)]
    for s in report["schools"]:
        if s["status"] == "ok" and not s["incidents"] and not show_ok:
            quiet_ok += 1
            continue
        inc = plural(s["open_incidents"], "open incident")
        if s["overdue_incidents"]:
            inc += ", " + _("{n} overdue").format(n=s["overdue_incidents"])
        title = styled(status_cell(s["status"], upper=True), "  ", (s["name"] + " ", "bold"), (f"{s['id']}  ", "dim"),
                       inc)
        rows = []
        for p in s["problems"]:
            rows.append((status_cell(p["status"], upper=True), p["device_id"] or _("(school)"), p["area"], p["check"],
                         translate(p["summary"]), age(p["age_s"])))
        for dev in s["never_checked"]:
            rows.append((status_cell("unknown", upper=True), dev, "", "", _("no result in the log: never checked"), ""))
        for i in s["incidents"]:
            late = (_("OVERDUE since {time}") if i["overdue"] else _("on site by {time}")).format(
                time=local(i["arrive_deadline"], tz))
            rows.append((Text(_("INCIDENT"), style="bold red" if i["overdue"] else "yellow"),
                         first_of(i["device_ids"]) or _("(school)"), "", i["id"][:8],
                         f"{_(i['level'])}/{_(i['state'])}: {translate(i['title'])} — {late}", ""))
        c.print(table(title, cols, rows, console=c) if rows else title)
        c.print()
    n = len(report["schools"])
    tail = ("; " + _("{n} with nothing wrong (--all lists them)").format(n=quiet_ok)) if quiet_ok else ""
    c.print(styled(_("{schools}, from the log as of {time}").format(
        schools=plural(n, "school"), time=local(report["generated_at"], tz)) + tail + _(" — worst "),
        status_cell(report["status"], upper=True)))

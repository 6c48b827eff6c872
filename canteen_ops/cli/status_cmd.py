"""`canteen-ops status`: what is wrong right now, read from the maintenance log only (works offline)."""

from __future__ import annotations

from typing import Annotated

import typer

from canteen_ops.cli.common import AreaOpt, DeviceOpt, JsonOpt, KindOpt, SchoolOpt, TagOpt, VendorOpt, env, select


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
    report = current_status(e.log(), e.inventory(), devices, utcnow())
    if json:
        print_json(report)
    elif e.quiet:
        _render_quiet(report)
    else:
        _render(e, report, show_ok=all_)
    return report["exit_code"]


def _render_quiet(report: dict) -> None:
    """--quiet (cron): one line per problem, nothing when all is well."""
    import sys

    from canteen_ops.cli.common import cell
    from canteen_ops.timeutil import age

    for s in report["schools"]:
        name = cell(s["name"]).plain
        for p in s["problems"]:
            sys.stdout.write(cell(f"{p['status'].upper():7} {name} {p['device_id'] or '(school)'} {p['check']}: "
                                  f"{p['summary']} ({age(p['age_s'])} ago)").plain + "\n")
        for dev in s["never_checked"]:
            sys.stdout.write(cell(f"UNKNOWN {name} {dev}: never checked").plain + "\n")
        for i in s["incidents"]:
            if i["overdue"]:
                sys.stdout.write(cell(f"OVERDUE {name} incident {i['id'][:8]} {i['level']}/{i['state']}: "
                                      f"{i['title']}").plain + "\n")


def _render(e, report: dict, *, show_ok: bool) -> None:
    from rich.table import Table
    from rich.text import Text

    from canteen_ops.cli.check_cmd import STYLE
    from canteen_ops.cli.common import cell
    from canteen_ops.timeutil import age, local

    tz = e.inventory().settings.timezone
    c = e.console
    quiet_ok = 0
    for s in report["schools"]:
        if s["status"] == "ok" and not s["incidents"] and not show_ok:
            quiet_ok += 1
            continue
        inc = f"{s['open_incidents']} open incident{'s' if s['open_incidents'] != 1 else ''}"
        if s["overdue_incidents"]:
            inc += f", {s['overdue_incidents']} overdue"
        title = Text.assemble((s["status"].upper(), STYLE[s["status"]]), "  ", (cell(s['name']).plain + " ", "bold"),
                              (f"{s['id']}  ", "dim"), inc)
        table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
        for col, kw in (("status", {}), ("device", {"no_wrap": True}), ("area", {}), ("check", {}),
                        ("finding", {"overflow": "fold"}), ("age", {"no_wrap": True, "justify": "right"})):
            table.add_column(col, **kw)
        for p in s["problems"]:
            table.add_row(Text(p["status"].upper(), style=STYLE[p["status"]]), cell(p["device_id"] or "(school)"),
                          cell(p["area"]), cell(p["check"]), cell(p["summary"]), age(p["age_s"]))
        for dev in s["never_checked"]:
            table.add_row(Text("UNKNOWN", style=STYLE["unknown"]), cell(dev), "", "",
                          "no result in the log: never checked", "")
        for i in s["incidents"]:
            late = f"OVERDUE since {local(i['arrive_deadline'], tz)}" if i["overdue"] else \
                f"on site by {local(i['arrive_deadline'], tz)}"
            table.add_row(Text("INCIDENT", style="bold red" if i["overdue"] else "yellow"),
                          cell(", ".join(i["device_ids"]) or "(school)"), "", i["id"][:8],
                          cell(f"{i['level']}/{i['state']}: {i['title']} — {late}"), "")
        if table.row_count:
            c.print(table)
        else:
            c.print(title)
        c.print()
    n = len(report["schools"])
    tail = f"; {quiet_ok} with nothing wrong (--all lists them)" if quiet_ok else ""
    c.print(Text.assemble(f"{n} school{'s' if n != 1 else ''}, from the log as of {local(report['generated_at'], tz)}"
                          f"{tail} — worst ", (report["status"].upper(), STYLE[report["status"]])))

"""`canteen-ops snapshot take | show | diff | drift | accept`: normalized config snapshots and drift."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from canteen_ops.summaries import translate
from canteen_ops.cli.common import MAX_WORKERS
from canteen_ops.cli.common import (AreaOpt, DeviceOpt, JsonOpt, KindOpt, SchoolOpt, TagOpt, VendorOpt, display_tz,
                                    env, print_json, select)

HELP = ("Config snapshots: take, show, diff, drift against the accepted baseline and policy, "
        "accept a baseline.")
app = typer.Typer(help=HELP, rich_markup_mode=None, add_completion=False, no_args_is_help=True)

DeviceArg = Annotated[str, typer.Argument(metavar="DEVICE", help="Device id")]
_STYLE = {"ok": "green", "warn": "yellow", "crit": "bold red", "unknown": "cyan", "n/a": "dim"}


def _device(ctx: typer.Context, device_id: str):
    from canteen_ops.errors import UsageError

    inv = env(ctx).inventory()
    try:
        return inv.device(device_id)
    except KeyError:
        raise UsageError("device {device_id!r} is not in {where}", device_id=device_id, where=inv.path) from None


@app.command()
def take(ctx: typer.Context, school: SchoolOpt = None, device: DeviceOpt = None, kind: KindOpt = None,
         vendor: VendorOpt = None, area: AreaOpt = None, tag: TagOpt = None,
         workers: Annotated[Optional[int], typer.Option(min=1, max=MAX_WORKERS, metavar="N", help="Devices in parallel")] = None,
         json: JsonOpt = False) -> int:
    """Read every selected device's settings and store a normalized snapshot (identical ones are not repeated).

    Exit 0 all taken, 3 some device could not be read.
    """
    from canteen_ops.errors import UsageError
    from canteen_ops.status import worst
    from canteen_ops.tasks.snapshot import run_snapshots

    e = env(ctx)
    devices = select(ctx, school, device, kind, vendor, area, tag)
    if not devices:
        raise UsageError("no device matches the selection")
    log = e.log()
    with log.run("snapshot take", e.argv, e.operator) as handle:
        results = run_snapshots(log, devices, run_id=handle.id, workers=workers,
                                progress=None if not (e.quiet or json) else False)
        status = worst(r.status for r in results)
        with log.transaction():
            for r in results:
                if r.status.value != "ok":
                    handle.record(r)  # failures into the results timeline; snapshots are their own record
        handle.set_outcome(status.value, status.exit_code)
    results.sort(key=lambda r: (r.school_id or "", r.device_id or ""))
    if json:
        print_json([r.to_dict() for r in results])
        return status.exit_code
    from canteen_ops.i18n import status_word

    for r in results:
        if r.status.value != "ok":
            e.err.print(f"{status_word(r.status.value)}: {r.school_id}/{r.device_id}: {translate(r.summary)}",
                        markup=False, highlight=False)
        else:
            e.console.print(f"{r.school_id}/{r.device_id}: {translate(r.summary)}", markup=False, highlight=False)
    return status.exit_code


@app.command()
def show(ctx: typer.Context, device: DeviceArg,
         snapshot_id: Annotated[Optional[str], typer.Argument(metavar="[ID]", help="Snapshot id or prefix")] = None,
         history: Annotated[bool, typer.Option("--history", help="List the device's snapshots instead")] = False,
         json: JsonOpt = False) -> int:
    """Print a snapshot (default the newest) as JSON, or the device's snapshot history."""
    from canteen_ops.errors import NotFound
    from canteen_ops.i18n import _
    from canteen_ops.tasks.snapshot import find_snapshot, newest
    from canteen_ops.timeutil import local

    e = env(ctx)
    log = e.log()
    tz = display_tz(ctx)
    if history:
        rows = log.query("SELECT id, created_at, updated_at, sha256, accepted_at, accepted_by FROM snapshots "
                         "WHERE device_id = ? ORDER BY seq DESC", [device])
        if json:
            print_json(rows)
            return 0
        for r in rows:
            mark = "  " + _("baseline (accepted {at} by {who})").format(
                at=local(r["accepted_at"], tz), who=r["accepted_by"]) if r["accepted_at"] else ""
            e.console.print(_("{id}  taken {taken}  last seen {seen}  sha256 {sha256}").format(
                id=r["id"][:8], taken=local(r["created_at"], tz), seen=local(r["updated_at"], tz),
                sha256=r["sha256"][:12]) + mark, markup=False, highlight=False)
        return 0
    row = find_snapshot(log, device, snapshot_id) if snapshot_id else (newest(log, device) or [None])[0]
    if row is None:
        raise NotFound("{device} has no snapshot yet (canteen-ops snapshot take --device {device})", device=device)
    if json:
        print_json(row)
    else:
        import json as _json

        head = _("# snapshot {id} of {device}, taken {taken}, sha256 {sha256} (baseline)") if row["accepted_at"] \
            else _("# snapshot {id} of {device}, taken {taken}, sha256 {sha256}")
        e.console.print(head.format(id=row["id"], device=device, taken=local(row["created_at"], tz),
                                    sha256=row["sha256"]), markup=False, highlight=False)
        e.console.print(_json.dumps(row["data"], ensure_ascii=False, indent=2, sort_keys=True), markup=False,
                        highlight=False)
    return 0


@app.command("diff")
def diff_(ctx: typer.Context,
          device: Annotated[Optional[str], typer.Argument(metavar="[DEVICE]", help="Device id")] = None,
          old: Annotated[Optional[str], typer.Argument(metavar="[OLD]", help="Older snapshot id [default: the "
                                                       "second newest]")] = None,
          new: Annotated[Optional[str], typer.Argument(metavar="[NEW]", help="Newer snapshot id [default: the "
                                                       "newest]")] = None,
          since: Annotated[Optional[str], typer.Option(
              metavar="TIME", help="What changed fleet-wide since then (24h, 7d, 2026-11-01), on the selection")] = None,
          school: SchoolOpt = None, device_glob: Annotated[Optional[list[str]], typer.Option(
              "--device", "-d", metavar="GLOB", help="Device id glob (with --since)")] = None,
          kind: KindOpt = None, vendor: VendorOpt = None, area: AreaOpt = None, tag: TagOpt = None,
          json: JsonOpt = False) -> int:
    """Per-field differences between two snapshots of DEVICE (dotted paths, old → new), or with --since what
    changed on every selected device in that window. Exit 0 identical / nothing changed, 1 different."""
    from canteen_ops.errors import NotFound, UsageError
    from canteen_ops.tasks.snapshot import _ABSENT, diff, find_snapshot, newest
    from canteen_ops.timeutil import local

    e = env(ctx)
    if since is not None:
        if old or new:
            raise UsageError("--since compares each device's snapshot at that time with its newest; give no ids")
        return _diff_since(ctx, since, [device] if device else None,
                           (school, device_glob, kind, vendor, area, tag), json)
    if device is None:
        raise UsageError("give a DEVICE, or --since WHEN for the whole selection")
    log = e.log()
    tz = display_tz(ctx)
    if new and not old:
        raise UsageError("give OLD as well as NEW")
    if old:
        a = find_snapshot(log, device, old)
        b = find_snapshot(log, device, new) if new else newest(log, device)[0]
    else:
        two = newest(log, device, 2)
        if len(two) < 2:
            raise NotFound("{device} has {n} distinct snapshot(s); a diff needs two (identical snapshots are stored "
                           "once)", device=device, n=len(two))
        b, a = two
    changes = diff(a["data"], b["data"])
    if json:
        print_json({"old": a["id"], "new": b["id"], "changes": _changes_json(changes, _ABSENT)})
        return 1 if changes else 0
    from canteen_ops.i18n import _

    taken = _("{id} taken {at}")
    e.console.print(f"--- {taken.format(id=a['id'][:8], at=local(a['created_at'], tz))}\n"
                    f"+++ {taken.format(id=b['id'][:8], at=local(b['created_at'], tz))}", markup=False, highlight=False)
    for c in changes:
        e.console.print(c.render(), markup=False, highlight=False)
    if not changes:
        e.console.print(_("no differences"))
    return 1 if changes else 0


def _changes_json(changes, absent) -> list[dict]:
    return [{"path": c.path, "old": None if c.old is absent else c.old, "new": None if c.new is absent else c.new}
            for c in changes]


def _diff_since(ctx: typer.Context, since: str, device_ids: list[str] | None, selection: tuple, json: bool) -> int:
    from canteen_ops.errors import UsageError
    from canteen_ops.cli.render import plural
    from canteen_ops.i18n import _
    from canteen_ops.tasks.snapshot import _ABSENT, changes_since
    from canteen_ops.timeutil import iso, local, parse_since

    e = env(ctx)
    tz = display_tz(ctx)
    try:
        start = parse_since(since, tz=tz)
    except ValueError as exc:
        raise UsageError("--since: {exc}", exc=exc) from None
    if device_ids:
        devices = [_device(ctx, d) for d in device_ids]
    else:
        devices = select(ctx, *selection)
        if not devices:
            raise UsageError("no device matches the selection")
    found = changes_since(e.log(), devices, iso(start))
    if json:
        print_json({"since": iso(start), "devices": [
            {**{k: v for k, v in f.items() if k != "changes"}, "changes": _changes_json(f["changes"], _ABSENT)}
            for f in found]})
        return 1 if found else 0
    c = e.console
    c.print(_("snapshot changes since {since} on {devices}: {n} changed").format(
        since=local(iso(start), tz), devices=plural(len(devices), "device"), n=len(found)), markup=False,
        highlight=False)
    for f in found:
        head = f"{f['school_id']}/{f['device_id']}: "
        if f["old"] is None:
            c.print(head + _("first snapshot {id} taken {at}").format(id=f['new'][:8], at=local(f['new_at'], tz)),
                    markup=False, highlight=False)
            continue
        n = len(f["changes"])
        what = _("{fields} changed").format(fields=plural(n, "field")) if n else \
            _("changed and changed back ({n} snapshots in the window)").format(n=f['snapshots'])
        c.print(head + _("{what}, {old} → {new} (taken {at})").format(
            what=what, old=f['old'][:8], new=f['new'][:8], at=local(f['new_at'], tz)),
                markup=False, highlight=False)
        for ch in f["changes"]:
            c.print("  " + ch.render(), markup=False, highlight=False)
    return 1 if found else 0


@app.command()
def accept(ctx: typer.Context,
           device: Annotated[Optional[str], typer.Argument(metavar="[DEVICE]", help="Device id")] = None,
           snapshot_id: Annotated[Optional[str], typer.Argument(metavar="[ID]", help="Snapshot id [default: the "
                                                                "newest]")] = None,
           all_: Annotated[bool, typer.Option("--all", help="Accept the newest snapshot of every selected device")
                           ] = False,
           school: SchoolOpt = None, kind: KindOpt = None, vendor: VendorOpt = None, area: AreaOpt = None,
           tag: TagOpt = None) -> int:
    """Mark a snapshot as the device's accepted baseline (what `drift` compares against)."""
    from canteen_ops.errors import NotFound, UsageError
    from canteen_ops.i18n import _
    from canteen_ops.tasks.snapshot import find_snapshot, newest
    from canteen_ops.timeutil import iso

    e = env(ctx)
    log = e.log()
    if device:
        if all_:
            raise UsageError("give a DEVICE or --all, not both")
        _device(ctx, device)
        row = find_snapshot(log, device, snapshot_id) if snapshot_id else (newest(log, device) or [None])[0]
        if row is None:
            raise NotFound("{device} has no snapshot to accept (canteen-ops snapshot take --device {device})",
                           device=device)
        rows = [row]
    elif all_:
        if snapshot_id:
            raise UsageError("an ID needs a DEVICE")
        rows, missing = [], []
        for d in select(ctx, school, None, kind, vendor, area, tag):
            last = newest(log, d.id)
            (rows.append(last[0]) if last else missing.append(d.id))
        for m in missing:
            e.err.print(_("{device}: no snapshot to accept").format(device=m), markup=False, highlight=False)
    else:
        raise UsageError("name a DEVICE, or use --all (with the selection flags) to accept every newest snapshot")
    now = iso()
    with log.run("snapshot accept", e.argv, e.operator):
        with log.transaction():
            for r in rows:
                log.update("snapshots", r["id"], {"accepted_at": now, "accepted_by": e.operator})
    for r in rows:
        e.console.print(_("{device}: baseline is now snapshot {id} (sha256 {sha256})").format(
            device=r["device_id"], id=r["id"][:8], sha256=r["sha256"][:12]), markup=False, highlight=False)
    return 0


@app.command()
def drift(ctx: typer.Context, school: SchoolOpt = None, device: DeviceOpt = None, kind: KindOpt = None,
          vendor: VendorOpt = None, area: AreaOpt = None, tag: TagOpt = None,
          take_first: Annotated[bool, typer.Option("--take", help="Take fresh snapshots first")] = False,
          json: JsonOpt = False) -> int:
    """Compare each device's newest snapshot with its accepted baseline and the policy rules (NTP set,
    resolution ≥ policy.min_resolution, NVR recording continuous). Exit 0/1/2/3 by the worst finding."""
    from canteen_ops.errors import UsageError
    from canteen_ops.status import worst
    from canteen_ops.tasks.snapshot import drift_reports, run_snapshots

    e = env(ctx)
    devices = select(ctx, school, device, kind, vendor, area, tag)
    if not devices:
        raise UsageError("no device matches the selection")
    log = e.log()
    with log.run("snapshot drift", e.argv, e.operator) as handle:
        failed = {}
        if take_first:
            for r in run_snapshots(log, devices, run_id=handle.id, progress=False):
                if r.status.value != "ok":
                    failed[r.device_id] = r.summary
        reports = drift_reports(log, devices)
        for rep in reports:
            if rep.device_id in failed:
                rep.notes.append(f"fresh snapshot failed: {failed[rep.device_id]}; judged on the newest stored one")
                rep.status = worst([rep.status, _unknown()])
                rep.summary += f" (fresh snapshot failed: {failed[rep.device_id]})"
        status = worst(r.status for r in reports)
        with log.transaction():
            for rep in reports:
                handle.record(rep.to_result())
        handle.set_outcome(status.value, status.exit_code)
    order = {"crit": 0, "warn": 1, "unknown": 2, "n/a": 3, "ok": 4}
    reports.sort(key=lambda r: (order[r.status.value], r.school_id or "", r.device_id))
    if json:
        print_json([r.to_result().to_dict() for r in reports])
        return status.exit_code
    from canteen_ops.cli.render import pad, styled
    from canteen_ops.i18n import status_word

    for r in reports:
        if e.quiet and r.status.value == "ok":
            continue
        word = status_word(r.status.value)
        (e.err if e.quiet else e.console).print(styled(
            (pad(word, 7), _STYLE[r.status.value]), f" {r.school_id}/{r.device_id}: {translate(r.summary)}"))
        if not e.quiet:
            for c in r.changes:
                e.console.print(f"    {c.render()}", markup=False, highlight=False)
    return status.exit_code


def _unknown():
    from canteen_ops.status import Status

    return Status.UNKNOWN

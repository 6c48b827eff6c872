"""`canteen-ops backup run | list | verify | prune | restore`: configuration backups."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from canteen_ops.summaries import translate
from canteen_ops.cli.common import MAX_COUNT, MAX_DAYS, MAX_SECONDS, MAX_WORKERS
from canteen_ops.cli.common import (AreaOpt, DeviceOpt, JsonOpt, KindOpt, SchoolOpt, TagOpt, VendorOpt, env,
                                    print_json, select)

if TYPE_CHECKING:
    from canteen_ops.store.backups import BackupStore

HELP = "Configuration backups: run, list (stale alarm), verify, prune, restore."
app = typer.Typer(help=HELP, rich_markup_mode=None, add_completion=False, no_args_is_help=True)

BackupDirOpt = Annotated[Optional[Path], typer.Option(
    "--backup-dir", envvar="CANTEEN_OPS_BACKUP_DIR", metavar="DIR",
    help="Backup directory [default: the inventory's settings.backup_dir, else the user data directory]")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print only problems (for cron)")]

_STYLE = {"ok": "green", "unsupported": "cyan", "skipped": "yellow", "failed": "red", "pruned": "dim",
          "missing": "red", "corrupt": "red"}


def _store(ctx: typer.Context, backup_dir: Path | None) -> "BackupStore":
    from canteen_ops.store.backups import BackupStore
    from canteen_ops.tasks.backup import backup_dir_for

    return BackupStore(backup_dir if backup_dir else backup_dir_for(env(ctx).inventory()))


def _filtered(ctx, school, device, kind, vendor, area, tag) -> list[str] | None:
    """Device ids when any selection flag is given, else None (= every device in the log)."""
    if any((school, device, kind, vendor, area, tag)):
        return [d.id for d in select(ctx, school, device, kind, vendor, area, tag)]
    return None


@app.command()
def run(ctx: typer.Context, school: SchoolOpt = None, device: DeviceOpt = None, kind: KindOpt = None,
        vendor: VendorOpt = None, area: AreaOpt = None, tag: TagOpt = None, backup_dir: BackupDirOpt = None,
        workers: Annotated[Optional[int], typer.Option(min=1, max=MAX_WORKERS, metavar="N", help="Devices in parallel [default: sized for a laptop]")
                           ] = None,
        deadline: Annotated[float, typer.Option(min=0.1, max=MAX_SECONDS, metavar="SECONDS", help="Seconds allowed per device")] = 120.0,
        quiet: QuietOpt = False, json: JsonOpt = False) -> int:
    """Export every selected device's configuration into the backup directory.

    Exit 0 ok (incl. devices that offer no export), 1 some skipped (another run holds their lock),
    2 some failed, 75 nothing done because other runs hold every device's lock.
    """
    from canteen_ops.errors import UsageError
    from canteen_ops.tasks.backup import backup_dir_for, run_backups

    e = env(ctx)
    quiet = quiet or e.quiet
    devices = select(ctx, school, device, kind, vendor, area, tag)
    if not devices:
        raise UsageError("no device matches the selection")
    target = backup_dir if backup_dir else backup_dir_for(e.inventory())
    log = e.log()
    with log.run("backup run", e.argv, e.operator) as handle:
        report = run_backups(log, devices, backup_dir=target, run_id=handle.id, workers=workers,
                             deadline_s=deadline, progress=None if not (quiet or json) else False)
        handle.set_outcome(report.status.value, report.exit_code)
    results = sorted(report.results, key=lambda r: (r.school_id or "", r.device_id or ""))
    if json:
        print_json([{**r.to_dict(), "backup_id": report.record_ids.get(r.device_id)} for r in results])
        return report.exit_code
    problems = [r for r in results if r.data.get("backup_status") in ("failed", "skipped")]
    from canteen_ops.i18n import _

    if quiet:
        for r in problems:
            e.err.print(f"{_(r.data['backup_status'])}: {r.school_id}/{r.device_id}: {translate(r.summary)}", markup=False,
                        highlight=False)
        if report.all_skipped:
            e.err.print(_("nothing was backed up: other runs hold the lock of every selected device"), markup=False)
        return report.exit_code
    from canteen_ops.cli.render import CODE, ID, Column, status_cell, table

    counts = {s: len(report.by_status(s)) for s in ("ok", "unsupported", "skipped", "failed")}
    rows = [(r.school_id, r.device_id, status_cell(r.data.get("backup_status", "failed"), styles=_STYLE), translate(r.summary))
            for r in results]
    cols = [Column("school", ID, optional=True), Column("device", ID), Column("status", CODE),
            Column("detail", main=True)]
    e.console.print(table(_("backup into {dir}").format(dir=target), cols, rows, console=e.console))
    e.console.print(", ".join(f"{n} {_(s)}" for s, n in counts.items() if n) or _("nothing to do"))
    if report.all_skipped:
        e.err.print(_("nothing was backed up: other runs hold the lock of every selected device"), markup=False)
    return report.exit_code


@app.command("list")
def list_(ctx: typer.Context, school: SchoolOpt = None, device: DeviceOpt = None, kind: KindOpt = None,
          vendor: VendorOpt = None, area: AreaOpt = None, tag: TagOpt = None,
          stale: Annotated[Optional[str], typer.Option(
              metavar="DURATION", help="Only devices with no successful backup in this window, e.g. 24h (stale-backup alarm)")] = None,
          history: Annotated[bool, typer.Option("--history", help="Every backup record, newest first")] = False,
          limit: Annotated[int, typer.Option(min=0, max=MAX_COUNT, metavar="N", help="With --history: at most this many records (0 = all)")] = 50,
          json: JsonOpt = False) -> int:
    """Newest backup per device and whether it is stale (policy.backup_stale_hours, or --stale).

    With --stale: exit 1 when any device is stale, else 0.
    """
    from canteen_ops.errors import UsageError
    from canteen_ops.tasks.backup_retention import backup_history, backup_states
    from canteen_ops.timeutil import local, parse_duration

    e = env(ctx)
    devices = select(ctx, school, device, kind, vendor, area, tag)
    if history:
        rows = backup_history(e.log(), [d.id for d in devices], limit or None) if devices else []
        if json:
            print_json(rows)
            return 0
        from canteen_ops.cli.render import CODE, ID, NUM, TIME, Column, plural, status_cell, table

        cols = [Column("when (local)", TIME), Column("id", ID), Column("device", ID), Column("status", CODE),
                Column("method"), Column("size", NUM), Column("sha256", ID, optional=True), Column("reason", main=True)]
        cells = [(local(r["created_at"]), r["id"][:8], r["device_id"], status_cell(r["status"], styles=_STYLE),
                  r["method"], r["size"], (r["sha256"] or "")[:12], r["reason"]) for r in rows]
        e.console.print(table(plural(len(rows), "backup record"), cols, cells, console=e.console))
        return 0
    try:
        window = parse_duration(stale) if stale else None
    except ValueError as exc:
        raise UsageError("--stale: {exc}", exc=exc) from None
    states = backup_states(e.log(), devices, window=window)
    if stale:
        states = [s for s in states if s.stale]
    code = 1 if stale and states else 0
    from canteen_ops.kb.classify import kb_for

    stale_kb = kb_for("backup", "warn")
    if json:
        print_json([{**s.to_dict(), "kb": stale_kb if s.stale else None} for s in states])
        return code
    from rich.text import Text

    from canteen_ops.cli.render import CODE, ID, NUM, TIME, Column, plural, status_cell, table
    from canteen_ops.i18n import _

    title = (_("{devices} with no successful backup in {window}").format(devices=plural(len(states), "device"),
                                                                         window=stale) + f" (kb: {stale_kb})" if stale
             else _("backups of {devices}").format(devices=plural(len(states), "device")))
    cols = [Column("school", ID, optional=True), Column("device", ID), Column("last good backup (local)", TIME),
            Column("size", NUM), Column("sha256", ID, optional=True), Column("last attempt", CODE), Column("stale", CODE),
            Column("note", main=True)]
    cells = []
    for s in states:
        lo, la = s.last_ok or {}, s.last_attempt or {}
        cells.append((s.school_id, s.device_id, local(lo.get("created_at")), lo.get("size"),
                      (lo.get("sha256") or "")[:12], status_cell(la.get("status"), styles=_STYLE) if la else "",
                      Text(_("yes"), style="red") if s.stale else _("no"), translate(s.note)))
    if states or not e.quiet:
        e.console.print(table(title, cols, cells, console=e.console))
    if e.quiet and stale:  # cron alarm: one plain line per stale device on stderr
        for s in states:
            e.err.print(_("stale backup: {school}/{device}: {note}  (kb: {kb})").format(
                school=s.school_id, device=s.device_id, note=translate(s.note), kb=stale_kb), markup=False,
                highlight=False)
    return code


@app.command()
def verify(ctx: typer.Context, school: SchoolOpt = None, device: DeviceOpt = None, kind: KindOpt = None,
           vendor: VendorOpt = None, area: AreaOpt = None, tag: TagOpt = None, backup_dir: BackupDirOpt = None,
           json: JsonOpt = False) -> int:
    """Re-hash every backup file the log references; report missing or corrupt files (exit 2 on any)."""
    from canteen_ops.tasks.backup_retention import verify_backups, verify_results

    e = env(ctx)
    ids = _filtered(ctx, school, device, kind, vendor, area, tag)
    store = _store(ctx, backup_dir)
    log = e.log()
    with log.run("backup verify", e.argv, e.operator) as handle:
        report = verify_backups(log, store, ids)
        with log.transaction():
            for r in verify_results(report):
                handle.record(r)
        handle.set_outcome("crit" if report.problems else "ok", report.exit_code)
    if json:
        print_json({"backup_dir": str(store.root), "files": [f.__dict__ for f in report.files],
                    "unreferenced": report.unreferenced, "temp_files": report.temp_files})
        return report.exit_code
    from canteen_ops.i18n import _

    for f in report.problems:
        e.err.print(_("{state}: {path} ({device}; sha256 {sha256}; referenced by {n} record(s): {ids})").format(
            state=_(f.state), path=f.path, device=f.device_id, sha256=f.sha256[:12], n=len(f.record_ids),
            ids=", ".join(i[:8] for i in f.record_ids)), markup=False, highlight=False)
    ok = len(report.files) - len(report.problems)
    e.console.print(_("{n} backup file(s) in {dir}: {ok} intact, {missing} missing, {corrupt} corrupt").format(
        n=len(report.files), dir=store.root, ok=ok, missing=sum(f.state == "missing" for f in report.files),
        corrupt=sum(f.state == "corrupt" for f in report.files)), highlight=False)
    if report.unreferenced:
        e.console.print(_("{n} file(s) no backup record references (left by an interrupted run; `backup prune` "
                          "removes them)").format(n=len(report.unreferenced)), highlight=False)
    if report.temp_files:
        e.console.print(_("{n} stale temp file(s) from killed runs (`backup prune` removes them)").format(
            n=len(report.temp_files)), highlight=False)
    return report.exit_code


@app.command()
def prune(ctx: typer.Context,
          keep_last: Annotated[int, typer.Option("--keep-last", max=MAX_COUNT, metavar="N", help="Keep this many newest good backups per device")
                               ] = 10,
          keep_days: Annotated[float, typer.Option("--keep-days", max=MAX_DAYS, metavar="DAYS", help="Keep every backup younger than this")] = 30,
          dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would go; change nothing")] = False,
          school: SchoolOpt = None, device: DeviceOpt = None, kind: KindOpt = None, vendor: VendorOpt = None,
          area: AreaOpt = None, tag: TagOpt = None, backup_dir: BackupDirOpt = None, json: JsonOpt = False) -> int:
    """Apply retention. Never deletes a device's newest good backup; a file goes only when no remaining
    record references it. Pruned records stay in the log, marked `pruned`."""
    from canteen_ops.errors import UsageError
    from canteen_ops.tasks.backup_retention import prune_backups

    if keep_last < 1:
        raise UsageError("--keep-last must be at least 1 (the newest good backup is always kept)")
    if keep_days < 0:
        raise UsageError("--keep-days must not be negative")
    e = env(ctx)
    ids = _filtered(ctx, school, device, kind, vendor, area, tag)
    store = _store(ctx, backup_dir)
    log = e.log()
    with log.run("backup prune", e.argv, e.operator) as handle:
        report = prune_backups(log, store, keep_last=keep_last, keep_days=keep_days, dry_run=dry_run,
                               device_ids=ids, run_id=handle.id)
        skipped = [d for d in report.devices if d.skipped]
        handle.set_outcome("warn" if skipped else "ok", 1 if skipped else 0)
    if json:
        print_json({"dry_run": dry_run, "devices": [d.__dict__ for d in report.devices],
                    "orphans_deleted": report.orphans_deleted, "temp_deleted": report.temp_deleted})
        return 1 if skipped else 0
    from canteen_ops.i18n import _

    for d in report.devices:
        if d.skipped:
            e.err.print(_("skipped {device}: {why}").format(device=d.device_id, why=translate(d.skipped)),
                        markup=False, highlight=False)
        elif d.pruned:
            line = _("{device}: would prune {n} record(s), would delete {files} file(s); kept {kept}") if dry_run \
                else _("{device}: pruned {n} record(s), deleted {files} file(s); kept {kept}")
            e.console.print(line.format(device=d.device_id, n=len(d.pruned), files=len(d.deleted_files),
                                        kept=len(d.kept)), highlight=False)
    for p in report.orphans_deleted:
        line = _("would delete unreferenced file {file}") if dry_run else _("deleted unreferenced file {file}")
        e.console.print(line.format(file=p), highlight=False)
    line = _("would prune {n} record(s); would delete {files} file(s) (dry run: nothing changed)") if dry_run \
        else _("pruned {n} record(s); deleted {files} file(s)")
    e.console.print(line.format(n=report.pruned_count, files=report.deleted_count), highlight=False)
    return 1 if skipped else 0


@app.command()
def restore(ctx: typer.Context,
            device: Annotated[str, typer.Argument(metavar="DEVICE", help="Device id")],
            backup_id: Annotated[Optional[str], typer.Argument(
                metavar="[ID]", help="Backup record id or prefix [default: the newest intact backup]")] = None,
            change: Annotated[Optional[str], typer.Option(
                "--change", metavar="ID", help="The started change (work permit) this restore belongs to")] = None,
            backup_dir: BackupDirOpt = None, json: JsonOpt = False) -> int:
    """Push a backup back to its device. Only under a started change covering the device (else exit 77)."""
    from canteen_ops.errors import UsageError
    from canteen_ops.i18n import status_word
    from canteen_ops.tasks.restore import restore_backup

    e = env(ctx)
    inv = e.inventory()
    try:
        dev = inv.device(device)
    except KeyError:
        raise UsageError("device {device!r} is not in {where}", device=device, where=inv.path) from None
    store = _store(ctx, backup_dir)
    log = e.log()
    with log.run("backup restore", e.argv, e.operator) as handle:
        result = restore_backup(log, store, dev, backup_id, operator=e.operator, run_id=handle.id,
                                change_id=change)
        handle.set_outcome(result.status.value, result.status.exit_code)
    if json:
        print_json(result.to_dict())
    elif result.status.exit_code == 0:
        e.console.print(translate(result.summary), highlight=False, markup=False)
    else:
        e.err.print(f"{status_word(result.status.value)}: {translate(result.summary)}", highlight=False, markup=False)
    return result.status.exit_code

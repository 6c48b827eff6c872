"""Backups with a scripted driver: the file store, every attempt recorded, locks, verify, prune, restore."""

from __future__ import annotations

import datetime as dt
import os
import threading
from pathlib import Path

import pytest

from canteen_ops.drivers.base import ConfigExport, Offline, ProtocolError, Timeout
from canteen_ops.inventory.loader import load_inventory
from canteen_ops.store.backups import BackupStore
from canteen_ops.store.log import MaintenanceLog
from canteen_ops.tasks import backup as backup_mod
from canteen_ops.tasks.backup import UNSUPPORTED_REASON, run_backups
from canteen_ops.tasks.backup_retention import backup_states, prune_backups, verify_backups
from tests.conftest import EXAMPLE
from tests.fake_driver import FakeFleet, dahua_export, hik_export


@pytest.fixture
def inv():
    return load_inventory(EXAMPLE)


@pytest.fixture
def log(tmp_path):
    log = MaintenanceLog.open(tmp_path / "log.db")
    yield log
    log.close()


@pytest.fixture
def fleet(monkeypatch):
    f = FakeFleet()
    monkeypatch.setattr(backup_mod, "_default_factory", f.factory)  # the CLI path uses it too
    return f


@pytest.fixture
def store(tmp_path):
    return BackupStore(tmp_path / "backups")


def _all_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and ".locks" not in p.parts)


def _rows(log, device_id=None):
    if device_id:
        return log.query("SELECT * FROM backups WHERE device_id = ? ORDER BY seq", [device_id])
    return log.query("SELECT * FROM backups ORDER BY seq")


def test_content_addressed_and_identical_content_stored_once(inv, log, fleet, store):
    cam, nvr = inv.device("xc-cam-01"), inv.device("hd-nvr-01")
    fleet["xc-cam-01"].export = hik_export()
    fleet["hd-nvr-01"].export = dahua_export()
    r1 = run_backups(log, [cam, nvr], backup_dir=store.root, driver_factory=fleet.factory)
    assert r1.exit_code == 0 and r1.ok
    first = {r["device_id"]: r for r in _rows(log)}
    assert first["xc-cam-01"]["path"].startswith("xc-shiyan-xx/xc-cam-01/")
    assert first["xc-cam-01"]["path"].endswith(".bin") and first["hd-nvr-01"]["path"].endswith(".json")
    f = store.root / first["xc-cam-01"]["path"]
    assert f.read_bytes() == hik_export().content
    assert f.name == first["xc-cam-01"]["sha256"] + ".bin"
    assert oct(f.stat().st_mode & 0o777) == "0o600"  # exports carry device credentials
    assert first["xc-cam-01"]["reason"] is None and first["xc-cam-01"]["method"] == "isapi-configurationData"

    r2 = run_backups(log, [cam, nvr], backup_dir=store.root, driver_factory=fleet.factory)
    assert r2.exit_code == 0
    second = [r for r in _rows(log, "xc-cam-01")]
    assert len(second) == 2 and second[1]["status"] == "ok" and second[1]["reason"] == "unchanged"
    assert second[1]["path"] == second[0]["path"]
    assert len(_all_files(store.root)) == 2  # still one file per distinct content

    fleet["xc-cam-01"].export = hik_export(b"HIKCFG\x00\x01config-v2")
    run_backups(log, [cam], backup_dir=store.root, driver_factory=fleet.factory)
    assert len(_all_files(store.root)) == 3
    assert _rows(log, "xc-cam-01")[-1]["reason"] is None


@pytest.mark.parametrize("error", [Offline("connection refused"), Timeout("read timed out after 5 s"),
                                   ProtocolError("connection dropped after 1.2 MB of 4 MB")])
def test_failed_export_leaves_nothing_in_the_store(inv, log, fleet, store, error):
    fleet["xc-cam-01"].error = error
    rep = run_backups(log, [inv.device("xc-cam-01")], backup_dir=store.root, driver_factory=fleet.factory)
    assert rep.exit_code == 2
    (row,) = _rows(log)
    assert row["status"] == "failed" and str(error) in row["reason"] and row["path"] is None
    assert _all_files(store.root) == []


@pytest.mark.parametrize("export,why", [
    (ConfigExport(b'{"General": {"Machine', "application/json", "dahua-Config.backup", ".json"), "not valid JSON"),
    (ConfigExport(b"", "application/octet-stream", "isapi-configurationData", ".bin"), "empty"),
    (ConfigExport(b'<?xml version="1.0"?><ResponseStatus><statusCode>4</statusCode></ResponseStatus>',
                  "application/xml", "isapi-configurationData", ".bin"), "ResponseStatus"),
])
def test_truncated_or_error_exports_are_not_stored(inv, log, fleet, store, export, why):
    fleet["hd-cam-01"].export = export
    rep = run_backups(log, [inv.device("hd-cam-01")], backup_dir=store.root, driver_factory=fleet.factory)
    assert rep.exit_code == 2
    (row,) = _rows(log)
    assert row["status"] == "failed" and why in row["reason"]
    assert _all_files(store.root) == []


def test_oversized_export_is_refused(inv, log, fleet, store, monkeypatch):
    import canteen_ops.store.backups as sb

    monkeypatch.setattr(sb, "MAX_BACKUP_BYTES", 1024)
    fleet["xc-cam-01"].export = hik_export(b"x" * 2048)
    rep = run_backups(log, [inv.device("xc-cam-01")], backup_dir=store.root, driver_factory=fleet.factory)
    assert rep.exit_code == 2 and "exceeds" in _rows(log)[0]["reason"]
    assert _all_files(store.root) == []


def test_crash_while_writing_leaves_no_partial_file(inv, log, fleet, store, monkeypatch):
    """The disk fails between write and rename: neither the final name nor the temp file remains."""
    import canteen_ops.store.files as files

    fleet["xc-cam-01"].export = hik_export(b"A" * 100_000)

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "replace", broken_replace)
    rep = run_backups(log, [inv.device("xc-cam-01")], backup_dir=store.root, driver_factory=fleet.factory)
    assert rep.exit_code == 2 and "No space left" in _rows(log)[0]["reason"]
    assert _all_files(store.root) == []  # includes hidden .tmp files


def test_device_without_export_is_unsupported_not_failed(inv, log, fleet, store):
    cam = inv.device("xc-cam-06")  # ONVIF, no GetSystemBackup
    rep = run_backups(log, [cam], backup_dir=store.root, driver_factory=fleet.factory)
    assert rep.exit_code == 0 and rep.ok
    (row,) = _rows(log)
    assert row["status"] == "unsupported" and row["reason"] == UNSUPPORTED_REASON
    outcome = list(rep)[0]  # the shape canteen_ops.changes judges
    assert outcome["status"] == "ok" and outcome["backup_status"] == "unsupported"


def test_lock_contention_second_run_skips_the_device(inv, log, fleet, store, tmp_path):
    """Two concurrent runs on one device: the second skips it (exit 75: nothing could be done)."""
    cam = inv.device("xc-cam-01")
    gate = threading.Event()
    fleet["xc-cam-01"].export = hik_export()
    fleet["xc-cam-01"].gate = gate
    out = {}
    log2 = MaintenanceLog.open(tmp_path / "log.db")

    def first():
        out["first"] = run_backups(log2, [cam], backup_dir=store.root, driver_factory=fleet.factory)

    t = threading.Thread(target=first)
    t.start()
    try:
        for _ in range(200):  # wait until the first run is inside the export (holding the lock)
            if fleet.calls:
                break
            threading.Event().wait(0.01)
        fleet["xc-cam-01"].gate = None
        second = run_backups(log, [cam], backup_dir=store.root, driver_factory=fleet.factory)
    finally:
        gate.set()
        t.join(10)
        log2.close()
    assert second.all_skipped and second.exit_code == 75
    assert "another backup of this device is running" in second.results[0].summary
    assert out["first"].exit_code == 0
    statuses = sorted(r["status"] for r in _rows(log))
    assert statuses == ["ok", "skipped"]
    assert [c for c in fleet.calls if c[1] == "export_config"] == [("xc-cam-01", "export_config")]


def test_verify_catches_corrupt_and_missing_files(inv, log, fleet, store):
    for d in ("xc-cam-01", "xc-cam-02", "xc-cam-03"):
        fleet[d].export = hik_export(f"cfg-{d}".encode())
    run_backups(log, [inv.device(d) for d in ("xc-cam-01", "xc-cam-02", "xc-cam-03")], backup_dir=store.root,
                driver_factory=fleet.factory)
    assert verify_backups(log, store).problems == []
    rows = {r["device_id"]: r for r in _rows(log)}
    p1 = store.root / rows["xc-cam-01"]["path"]
    data = bytearray(p1.read_bytes())
    data[3] ^= 0xFF  # one flipped byte
    p1.write_bytes(bytes(data))
    (store.root / rows["xc-cam-02"]["path"]).unlink()
    rep = verify_backups(log, store)
    states = {f.device_id: f.state for f in rep.files}
    assert states == {"xc-cam-01": "corrupt", "xc-cam-02": "missing", "xc-cam-03": "ok"}
    assert rep.exit_code == 2


def _age_rows(log, device_id, days_back: list[float]):
    """Backdate a device's ok rows (oldest first) so retention has something to decide."""
    from canteen_ops.timeutil import iso, utcnow

    rows = [r for r in _rows(log, device_id) if r["status"] == "ok"]
    for r, days in zip(rows, days_back):
        log.conn.execute("UPDATE backups SET created_at = ? WHERE id = ?",
                         [iso(utcnow() - dt.timedelta(days=days)), r["id"]])
    return rows


def test_prune_keeps_newest_good_and_deletes_only_unreferenced_files(inv, log, fleet, store):
    cam = inv.device("xc-cam-01")
    for payload in (b"v1", b"v2", b"v2", b"v3"):  # the third backup is 'unchanged' (same file as the second)
        fleet["xc-cam-01"].export = hik_export(payload)
        run_backups(log, [cam], backup_dir=store.root, driver_factory=fleet.factory)
    rows = _age_rows(log, "xc-cam-01", [40, 35, 31, 30.5])
    assert len(_all_files(store.root)) == 3

    dry = prune_backups(log, store, keep_last=1, keep_days=7, dry_run=True, grace_s=0)
    assert dry.pruned_count == 3 and len(_all_files(store.root)) == 3
    assert {r["status"] for r in _rows(log)} == {"ok"}  # dry run changed nothing

    rep = prune_backups(log, store, keep_last=1, keep_days=7, grace_s=0)
    after = {r["id"]: r for r in _rows(log)}
    assert after[rows[-1]["id"]]["status"] == "ok"  # newest kept
    assert all(after[r["id"]]["status"] == "pruned" for r in rows[:-1])
    assert [p.name for p in _all_files(store.root)] == [Path(rows[-1]["path"]).name]
    assert rep.devices[0].deleted_files and len(rep.devices[0].deleted_files) == 2
    logged = log.query("SELECT * FROM results WHERE check_name = 'backup-prune'")
    assert len(logged) == 1 and len(logged[0]["data"]["deleted_files"]) == 2


def test_prune_never_deletes_the_newest_good_backup(inv, log, fleet, store):
    """The newest backup's file is corrupt: the newest *good* one survives even past both limits."""
    cam = inv.device("xc-cam-01")
    for payload in (b"good-old", b"newer-but-corrupted"):
        fleet["xc-cam-01"].export = hik_export(payload)
        run_backups(log, [cam], backup_dir=store.root, driver_factory=fleet.factory)
    rows = _age_rows(log, "xc-cam-01", [400, 300])
    (store.root / rows[1]["path"]).write_bytes(b"bit rot")
    prune_backups(log, store, keep_last=1, keep_days=0, grace_s=0)
    after = {r["id"]: r for r in _rows(log)}
    assert after[rows[0]["id"]]["status"] == "ok"  # the newest good backup
    assert after[rows[1]["id"]]["status"] == "ok"  # within keep-last 1
    assert (store.root / rows[0]["path"]).read_bytes() == b"good-old"


def test_prune_removes_orphans_and_stale_temp_files(inv, log, fleet, store):
    fleet["xc-cam-01"].export = hik_export()
    run_backups(log, [inv.device("xc-cam-01")], backup_dir=store.root, driver_factory=fleet.factory)
    orphan = store.root / "xc-shiyan-xx" / "xc-cam-01" / ("0" * 64 + ".bin")
    orphan.write_bytes(b"left by a killed run")
    tmp = store.root / "xc-shiyan-xx" / "xc-cam-01" / ".x.bin.abc.tmp"
    tmp.write_bytes(b"half")
    os.utime(orphan, (0, 0))
    os.utime(tmp, (0, 0))
    rep = prune_backups(log, store, keep_last=5, keep_days=30)
    assert rep.orphans_deleted == [orphan.relative_to(store.root).as_posix()]
    assert not orphan.exists() and not tmp.exists()
    assert len(_all_files(store.root)) == 1


def test_stale_list(inv, log, fleet, store):
    cams = [inv.device(d) for d in ("xc-cam-01", "xc-cam-02", "xc-cam-06")]
    fleet["xc-cam-01"].export = hik_export()
    fleet["xc-cam-02"].error = Offline("refused")
    run_backups(log, cams, backup_dir=store.root, driver_factory=fleet.factory)
    states = {s.device_id: s for s in backup_states(log, cams, window=dt.timedelta(hours=24))}
    assert not states["xc-cam-01"].stale
    assert states["xc-cam-02"].stale and "refused" in states["xc-cam-02"].note
    assert states["xc-cam-06"].stale and "no config export" in states["xc-cam-06"].note  # and no snapshot
    _age_rows(log, "xc-cam-01", [2])
    states = {s.device_id: s for s in backup_states(log, cams, window=dt.timedelta(hours=24))}
    assert states["xc-cam-01"].stale


# --- CLI ------------------------------------------------------------------------------------------------------
def test_cli_run_list_verify(cli, fleet, tmp_path):
    for d in ("xc-cam-01", "xc-cam-02"):
        fleet[d].export = hik_export(d.encode())
    bdir = tmp_path / "b"
    r = cli("-i", EXAMPLE, "backup", "run", "--device", "xc-cam-0[12]", "--backup-dir", bdir)
    assert r.code == 0, r
    assert "2 ok" in r.out
    r = cli("-i", EXAMPLE, "backup", "run", "--device", "xc-cam-0[126]", "--backup-dir", bdir, "--quiet")
    assert r.code == 0 and r.out == "" and r.err == "", r  # cron: nothing to say when all is well
    fleet["xc-cam-02"].error = Offline("connection refused")
    r = cli("-i", EXAMPLE, "backup", "run", "-d", "xc-cam-0[12]", "--backup-dir", bdir, "--quiet")
    assert r.code == 2 and r.out == ""
    assert "failed: xc-shiyan-xx/xc-cam-02: offline: connection refused" in r.err
    r = cli("-i", EXAMPLE, "backup", "list", "-d", "xc-cam-0[126]", "--stale", "24h", "--json")
    assert r.code == 1
    import json

    assert [s["device_id"] for s in json.loads(r.out)] == ["xc-cam-06"]  # no export and no snapshot
    r = cli("-i", EXAMPLE, "backup", "list", "-d", "xc-cam-02", "--history")
    assert r.code == 0 and "failed" in r.out and "unchanged" in r.out
    r = cli("-i", EXAMPLE, "backup", "verify", "--backup-dir", bdir)
    assert r.code == 0 and "2 backup file(s)" in r.out and "2 intact" in r.out
    victim = next(bdir.rglob("*.bin"))
    victim.write_bytes(b"tampered")
    r = cli("-i", EXAMPLE, "backup", "verify", "--backup-dir", bdir)
    assert r.code == 2 and "corrupt:" in r.err and victim.name in r.err


def test_cli_lock_held_exit_75(cli, fleet, tmp_path):
    fleet["xc-cam-01"].export = hik_export()
    store = BackupStore(tmp_path / "b")
    with store.lock("xc-cam-01"):
        r = cli("-i", EXAMPLE, "backup", "run", "-d", "xc-cam-01", "--backup-dir", store.root)
    assert r.code == 75, r
    assert "another backup of this device is running" in r.out + r.err
    r = cli("-i", EXAMPLE, "backup", "run", "-d", "xc-cam-01", "--backup-dir", store.root)
    assert r.code == 0


def test_cli_prune_usage_errors(cli, tmp_path):
    r = cli("-i", EXAMPLE, "backup", "prune", "--keep-last", "0", "--backup-dir", tmp_path)
    assert r.code == 64 and "keep-last" in r.err


def test_restore_refused_without_started_change(cli, fleet, tmp_path):
    fleet["xc-cam-01"].export = hik_export()
    bdir = tmp_path / "b"
    assert cli("-i", EXAMPLE, "backup", "run", "-d", "xc-cam-01", "--backup-dir", bdir).code == 0
    r = cli("-i", EXAMPLE, "backup", "restore", "xc-cam-01", "--backup-dir", bdir)
    assert r.code == 77, r
    assert "started change" in r.err and "xc-cam-01" in r.err
    assert fleet["xc-cam-01"].imported == []
    assert ("xc-cam-01", "import_config") not in fleet.calls


def _started_change(log, inv, device_ids):
    """A permit taken through the real flow; its start step calls run_backups through the default hook."""
    from canteen_ops import changes
    from canteen_ops.timeutil import utcnow

    ch = changes.request(log, inv, title="换摄像头配置", device_ids=device_ids, actor="tech")
    changes.approve(log, ch["id"], "leader")
    now = utcnow()
    changes.notify(log, ch["id"], "tech", notice_to=["王建国 后勤主任"], window_start=now - dt.timedelta(hours=1),
                   window_end=now + dt.timedelta(hours=2))
    return changes.start(log, inv, ch["id"], "tech")


def test_change_start_backs_up_through_run_backups(inv, fleet):
    import os

    fleet["xc-cam-01"].export = hik_export(b"before-change")
    log = MaintenanceLog.open(os.environ["CANTEEN_OPS_DB"])
    try:
        ch = _started_change(log, inv, ["xc-cam-01", "xc-cam-06"])
        rows = log.query("SELECT * FROM backups WHERE change_id = ? ORDER BY device_id", [ch["id"]])
        assert [(r["device_id"], r["status"]) for r in rows] == [("xc-cam-01", "ok"), ("xc-cam-06", "unsupported")]
        assert ch["state"] == "started" and ch["data"]["backups"]["xc-cam-01"] == rows[0]["id"]
        run = log.get("runs", rows[0]["run_id"])
        assert run["operator"] == "tech" and run["command"] == "backup run"
    finally:
        log.close()


def test_change_start_refused_when_a_backup_fails(inv, fleet):
    import os

    from canteen_ops.errors import PermissionRefused

    fleet["xc-cam-01"].error = Offline("connection refused")
    log = MaintenanceLog.open(os.environ["CANTEEN_OPS_DB"])
    try:
        with pytest.raises(PermissionRefused, match="connection refused"):
            _started_change(log, inv, ["xc-cam-01"])
    finally:
        log.close()


def test_restore_under_started_change(cli, inv, fleet):
    import os

    fleet["xc-cam-01"].export = hik_export(b"known-good")
    log = MaintenanceLog.open(os.environ["CANTEEN_OPS_DB"])
    try:
        ch = _started_change(log, inv, ["xc-cam-01"])
    finally:
        log.close()
    fleet["xc-cam-01"].export = hik_export(b"after-a-bad-edit")
    assert cli("-i", EXAMPLE, "backup", "run", "-d", "xc-cam-01").code == 0
    # Default: the newest intact backup (the one after the bad edit); an explicit id picks the known-good one.
    r = cli("-i", EXAMPLE, "backup", "list", "-d", "xc-cam-01", "--history", "--json")
    import json

    hist = json.loads(r.out)
    good = next(h for h in hist if h["change_id"] == ch["id"])
    r = cli("-i", EXAMPLE, "backup", "restore", "xc-cam-01", good["id"][:8])
    assert r.code == 0, r
    assert "restored backup" in r.out and ch["id"][:8] in r.out
    assert [e.content for e in fleet["xc-cam-01"].imported] == [b"known-good"]
    assert fleet["xc-cam-01"].imported[0].method == "isapi-configurationData"
    log = MaintenanceLog.open(os.environ["CANTEEN_OPS_DB"])
    try:
        ev = log.query("SELECT * FROM change_events WHERE change_id = ? AND action = 'restore'", [ch["id"]])
        assert len(ev) == 1 and ev[0]["data"]["backup_id"] == good["id"] and ev[0]["actor"] == "tester"
        res = log.query("SELECT * FROM results WHERE check_name = 'backup-restore'")
        assert res[0]["status"] == "ok"
    finally:
        log.close()
    # Another device is not covered by this permit.
    fleet["xc-cam-02"].export = hik_export()
    assert cli("-i", EXAMPLE, "backup", "run", "-d", "xc-cam-02").code == 0
    r = cli("-i", EXAMPLE, "backup", "restore", "xc-cam-02")
    assert r.code == 77 and "does not cover xc-cam-02" in r.err
    # A backup of another device is refused, and a damaged file is never pushed.
    r = cli("-i", EXAMPLE, "backup", "restore", "xc-cam-01", hist[-1]["id"] if hist[-1]["device_id"] != "xc-cam-01"
            else "0" * 8)
    assert r.code in (64, 66)
    from canteen_ops.tasks.backup import backup_dir_for

    (backup_dir_for(inv) / good["path"]).write_bytes(b"rot")
    r = cli("-i", EXAMPLE, "backup", "restore", "xc-cam-01", good["id"])
    assert r.code == 65 and "corrupt" in r.err
    assert len(fleet["xc-cam-01"].imported) == 1


def test_unusable_backup_directory_is_a_clear_failure(inv, log, fleet, tmp_path):
    fleet["xc-cam-01"].export = hik_export()
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the backup directory should be")
    rep = run_backups(log, [inv.device("xc-cam-01")], backup_dir=blocker, driver_factory=fleet.factory)
    assert rep.exit_code == 2
    (row,) = _rows(log)
    assert row["status"] == "failed" and row["reason"].startswith("backup directory:")
    assert fleet.calls == []  # no device traffic when the result could not be stored anyway

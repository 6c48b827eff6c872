"""The maintenance log: schema and migrations, WAL, runs that survive kills and Ctrl-C, secret redaction."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from canteen_ops.errors import CanteenOpsError, LogUnusable
from canteen_ops.status import Result, Status
from canteen_ops.store import schema
from canteen_ops.store.log import MaintenanceLog
from tests.conftest import ROOT

ALL_TABLES = {"counters", "runs", "results", "backups", "snapshots", "firmware_findings", "incidents",
              "incident_events", "changes", "change_events", "notes", "playbook_steps", "sync_state"}


def tables(conn) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


@pytest.fixture
def log(tmp_path):
    lg = MaintenanceLog.open(tmp_path / "log.db")
    yield lg
    lg.close()


def test_schema_created_in_a_new_file(tmp_path):
    path = tmp_path / "sub" / "dir" / "log.db"
    lg = MaintenanceLog.open(path)
    try:
        assert path.exists()
        assert lg.schema_version == len(schema.MIGRATIONS) >= 1
        assert tables(lg.conn) >= ALL_TABLES
        assert lg.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert lg.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        for t in schema.SYNCED_TABLES:
            cols = [r[1] for r in lg.conn.execute(f"PRAGMA table_info({t})")]
            assert cols[:4] == ["id", "seq", "created_at", "updated_at"], t
    finally:
        lg.close()


def test_migration_from_an_empty_existing_file(tmp_path):
    path = tmp_path / "log.db"
    path.write_bytes(b"")
    lg = MaintenanceLog.open(path)
    assert lg.schema_version == len(schema.MIGRATIONS)
    assert tables(lg.conn) >= ALL_TABLES
    lg.close()
    # reopening is a no-op: same version, nothing re-created
    lg = MaintenanceLog.open(path)
    assert lg.schema_version == len(schema.MIGRATIONS)
    lg.close()


def test_migration_from_v1_keeps_data(tmp_path):
    path = tmp_path / "log.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    for stmt in schema._statements(schema.MIGRATIONS[0]):
        conn.execute(stmt)
    conn.execute("PRAGMA user_version = 1")
    conn.execute("INSERT INTO notes (id, seq, created_at, updated_at, at, kind, text) "
                 "VALUES ('n1', 1, 'x', 'x', '2026-01-01T00:00:00Z', 'inspection', '巡检正常')")
    conn.execute("UPDATE counters SET value = 1")
    conn.execute("COMMIT")
    conn.close()
    lg = MaintenanceLog.open(path)
    try:
        assert lg.schema_version == len(schema.MIGRATIONS)
        assert lg.get("notes", "n1")["text"] == "巡检正常"
        new = lg.insert("notes", {"at": "2026-01-02T00:00:00Z", "kind": "other", "text": "x"})
        assert lg.get("notes", new)["seq"] == 2  # the counter carried over
    finally:
        lg.close()


def test_a_failing_migration_rolls_back_completely(tmp_path, monkeypatch):
    path = tmp_path / "log.db"
    path.write_bytes(b"")
    monkeypatch.setattr(schema, "MIGRATIONS", [*schema.MIGRATIONS, "CREATE TABLE extra (x); CREATE TABLE extra (y)"])
    with pytest.raises(LogUnusable):
        MaintenanceLog.open(path)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 0
    assert tables(conn) == set()  # not even v1 landed: all migrations run in one transaction
    conn.close()


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "log.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {len(schema.MIGRATIONS) + 5}")
    conn.close()
    with pytest.raises(LogUnusable, match="newer than this canteen-ops"):
        MaintenanceLog.open(path)


def test_not_a_database_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "notes.txt"
    content = b"this is not sqlite, just someone's notes\n" * 200
    path.write_bytes(content)
    with pytest.raises(LogUnusable, match="not a usable canteen-ops maintenance log"):
        MaintenanceLog.open(path)
    assert path.read_bytes() == content


def test_another_programs_database_is_refused(tmp_path):
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE runs (x)")
    conn.commit()
    conn.close()
    with pytest.raises(LogUnusable, match="another program's SQLite database"):
        MaintenanceLog.open(path)
    conn = sqlite3.connect(path)
    assert tables(conn) == {"runs"}
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # not switched to WAL
    conn.close()


def test_insert_update_seq_and_timestamps(log):
    a = log.insert("notes", {"at": "2026-01-01T00:00:00Z", "kind": "inspection", "text": "a"})
    b = log.insert("runs", {"command": "check", "started_at": "2026-01-01T00:00:00Z", "status": "running",
                            "args": ["--school", "s1"]})
    ra, rb = log.get("notes", a), log.get("runs", b)
    assert len(a) == 36 and a != b
    assert rb["seq"] == ra["seq"] + 1  # one counter across every table
    assert rb["args"] == ["--school", "s1"]  # JSON columns round-trip
    assert ra["created_at"].endswith("Z") and ra["created_at"] == ra["updated_at"]
    log.update("notes", a, {"text": "a2"})
    ra2 = log.get("notes", a)
    assert ra2["seq"] > rb["seq"] and ra2["text"] == "a2" and ra2["updated_at"] >= ra["updated_at"]
    assert ra2["created_at"] == ra["created_at"]
    with pytest.raises(KeyError):
        log.update("notes", "no-such-id", {"text": "x"})


def test_transaction_is_atomic(log):
    with pytest.raises(RuntimeError):
        with log.transaction():
            log.insert("notes", {"at": "t", "kind": "other", "text": "inside"})
            raise RuntimeError("boom")
    assert log.query("SELECT COUNT(*) AS n FROM notes")[0]["n"] == 0
    assert log.query("SELECT value FROM counters")[0]["value"] == 0  # the seq bump rolled back too


def test_a_devices_results_land_together_or_not_at_all(log):
    """record_results (one device's results, as `check` records them): one transaction, ids in order, a seq
    each; one bad record (here a value SQLite cannot store) and none of them lands."""
    with log.run("check", [], "tester") as run:
        ids = run.record_all([Result("c1", "reachable", Status.OK, "ok", school_id="s1"),
                              Result("c1", "login", Status.WARN, "slow", {"ms": 900}, school_id="s1")])
        rows = [log.get("results", i) for i in ids]
        assert [(r["check_name"], r["status"]) for r in rows] == [("reachable", "ok"), ("login", "warn")]
        assert rows[1]["seq"] == rows[0]["seq"] + 1 and rows[0]["observed_at"] == rows[1]["observed_at"]
        bad = Result("c2", "login", Status.OK, "ok")
        bad.duration_ms = object()  # type: ignore[assignment]
        with pytest.raises(sqlite3.Error):
            run.record_all([Result("c2", "reachable", Status.OK, "ok"), bad])
    assert [r["device_id"] for r in log.query("SELECT device_id FROM results")] == ["c1", "c1"]


def test_run_records_success_and_results(log):
    with log.run("check", ["--school", "s1"], "王工") as run:
        run.record(Result("c1", "reachable", Status.OK, "12 ms", {"latency_ms": 12}, school_id="s1"))
        run.set_outcome("warn", 1)
    r = log.get("runs", run.id)
    assert (r["status"], r["exit_code"], r["operator"], r["command"], r["args"]) == (
        "warn", 1, "王工", "check", ["--school", "s1"])
    assert r["ended_at"] >= r["started_at"] and r["pid"] == os.getpid() and r["host"]
    latest = log.latest_results("c1")
    assert [(x["check_name"], x["status"], x["data"]) for x in latest] == [("reachable", "ok", {"latency_ms": 12})]


def test_keyboard_interrupt_marks_run_interrupted_and_keeps_results(log):
    with pytest.raises(KeyboardInterrupt):
        with log.run("check", [], "tester") as run:
            run.record(Result("c1", "reachable", Status.OK, "ok"))
            run.record(Result("c2", "reachable", Status.CRIT, "offline"))
            raise KeyboardInterrupt
    r = log.get("runs", run.id)
    assert (r["status"], r["exit_code"]) == ("interrupted", 130) and r["ended_at"]
    kept = log.query("SELECT device_id FROM results WHERE run_id = ? ORDER BY seq", [run.id])
    assert [x["device_id"] for x in kept] == ["c1", "c2"]


def test_keyboard_interrupt_inside_a_transaction_rolls_back_only_that_unit(log):
    with pytest.raises(KeyboardInterrupt):
        with log.run("backup", [], "tester") as run:
            run.record(Result("c1", "backup", Status.OK, "ok"))
            with log.transaction():
                log.insert("backups", {"device_id": "c2", "status": "ok", "run_id": run.id})
                raise KeyboardInterrupt
    assert log.get("runs", run.id)["status"] == "interrupted"
    assert log.query("SELECT COUNT(*) AS n FROM backups")[0]["n"] == 0
    assert log.query("SELECT COUNT(*) AS n FROM results")[0]["n"] == 1


@pytest.mark.parametrize("exc, code", [(RuntimeError("bug"), 70), (CanteenOpsError("x"), 70),
                                       (LogUnusable("x"), 65), (SystemExit(3), 3)])
def test_errors_mark_run_failed(log, exc, code):
    with pytest.raises(type(exc)):
        with log.run("check", [], "tester") as run:
            raise exc
    r = log.get("runs", run.id)
    assert (r["status"], r["exit_code"]) == ("failed", code)


def test_sys_exit_zero_is_a_normal_end(log):
    with pytest.raises(SystemExit):
        with log.run("check", [], "tester") as run:
            raise SystemExit(0)
    assert log.get("runs", run.id)["status"] == "ok"


def _child(tmp_path, body: str) -> subprocess.Popen:
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(f"""\
        import sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from canteen_ops.status import Result, Status
        from canteen_ops.store.log import MaintenanceLog
        log = MaintenanceLog.open({str(tmp_path / "log.db")!r})
        """) + textwrap.dedent(body) + "print('ready', flush=True)\ntime.sleep(60)\n")
    return subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)


def _kill(proc: subprocess.Popen) -> None:
    try:
        assert proc.stdout.readline().strip() == "ready"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)  # reaped: its pid is gone, as after a real crash
        proc.stdout.close()


def test_sigkill_mid_run_is_marked_interrupted_on_next_open(tmp_path):
    proc = _child(tmp_path, """\
        cm = log.run("check", ["--school", "s1"], "tester")
        run = cm.__enter__()
        run.record(Result("c1", "reachable", Status.OK, "12 ms"))
        print(run.id, flush=True)
        """)
    run_id = proc.stdout.readline().strip()
    _kill(proc)
    assert proc.returncode == -signal.SIGKILL
    lg = MaintenanceLog.open(tmp_path / "log.db")
    try:
        r = lg.get("runs", run_id)
        assert (r["status"], r["exit_code"]) == ("interrupted", 130) and r["ended_at"]
        assert [x["device_id"] for x in lg.query("SELECT * FROM results WHERE run_id = ?", [run_id])] == ["c1"]
        assert lg.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        lg.close()


def test_sigkill_inside_a_transaction_leaves_nothing_half_written(tmp_path):
    proc = _child(tmp_path, """\
        log.insert("notes", {"at": "t", "kind": "other", "text": "committed"})
        log.conn.execute("BEGIN IMMEDIATE")
        log.insert("notes", {"at": "t", "kind": "other", "text": "never committed"})
        """)
    _kill(proc)
    lg = MaintenanceLog.open(tmp_path / "log.db")
    try:
        assert [n["text"] for n in lg.query("SELECT text FROM notes")] == ["committed"]
        assert lg.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        lg.insert("notes", {"at": "t", "kind": "other", "text": "writable again"})  # the write lock is gone
    finally:
        lg.close()


def test_a_live_run_of_another_process_is_left_alone(tmp_path):
    proc = _child(tmp_path, """\
        cm = log.run("check", [], "tester")
        run = cm.__enter__()
        print(run.id, flush=True)
        """)
    run_id = proc.stdout.readline().strip()
    try:
        assert proc.stdout.readline().strip() == "ready"
        lg = MaintenanceLog.open(tmp_path / "log.db")
        assert lg.get("runs", run_id)["status"] == "running"
        lg.close()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        proc.stdout.close()


def test_secrets_are_redacted_before_they_reach_the_database(tmp_path):
    path = tmp_path / "log.db"
    lg = MaintenanceLog.open(path)
    lg.add_secret("Hik-Pa55-word")
    run = lg.start_run("check", ["--db", "x"], "tester")
    lg.record_result(run, Result("c1", "stream", Status.OK, "opened rtsp://admin:Rt5p-Secret@127.0.0.1:554/ch1", {
        "uri": "rtsp://admin:Rt5p-Secret@127.0.0.1:554/Streaming/Channels/101",
        "password": "Plain-Secret-1",
        "auth": {"Authorization": "Digest username=admin, response=abcdef0123", "user": "admin"},
        "body": "<userCheck><password>Hik-Pa55-word</password></userCheck> pwd=Inline-Secret",
        "pass_rate": 0.97,
    }))
    lg.insert("notes", {"at": "t", "kind": "config", "text": "changed password=Note-Secret-9 on NVR"})
    lg.update("runs", run, {"args": ["--password", "Hik-Pa55-word"]})
    rows = lg.query("SELECT * FROM results")
    data = rows[0]["data"]
    assert data["uri"] == "rtsp://admin:***@127.0.0.1:554/Streaming/Channels/101"
    assert data["password"] == "***" and data["auth"]["Authorization"] == "***" and data["auth"]["user"] == "admin"
    assert data["pass_rate"] == 0.97
    assert rows[0]["summary"] == "opened rtsp://admin:***@127.0.0.1:554/ch1"
    lg.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("log.db"))
    for secret in (b"Rt5p-Secret", b"Plain-Secret-1", b"abcdef0123", b"Hik-Pa55-word", b"Inline-Secret",
                   b"Note-Secret-9"):
        assert secret not in raw, secret


def test_latest_results_newest_per_device_and_check(log):
    run = log.start_run("check", [], "t")
    log.record_result(run, Result("c1", "clock", Status.OK, "old"))
    log.record_result(run, Result("c1", "clock", Status.WARN, "new"))
    log.record_result(run, Result("c1", "facts", Status.OK, "f"))
    log.record_result(run, Result("c2", "clock", Status.CRIT, "c2"))
    assert [(r["device_id"], r["check_name"], r["summary"]) for r in log.latest_results()] == [
        ("c1", "clock", "new"), ("c1", "facts", "f"), ("c2", "clock", "c2")]
    assert [r["summary"] for r in log.latest_results("c2")] == ["c2"]


def test_resolved_passwords_are_masked_in_free_text(tmp_path, monkeypatch):
    from canteen_ops.inventory.loader import parse_inventory

    inv = parse_inventory("version: 1\ncredentials:\n  c: {username: admin, password_env: CO_TEST_PW}\n"
                          "schools:\n  - {id: s, name: S, devices: [{id: d, kind: camera, vendor: dahua, "
                          "host: 127.0.0.1, credentials: c}]}\n")
    monkeypatch.setenv("CO_TEST_PW", "Env-Resolved-7x")
    assert inv.device("d").credentials.resolve() == "Env-Resolved-7x"
    lg = MaintenanceLog.open(tmp_path / "log.db")
    lg.record_result(None, Result("d", "login", Status.CRIT, "device said: bad login admin/Env-Resolved-7x",
                                  {"echo": ["Env-Resolved-7x"]}))
    row = lg.query("SELECT summary, data FROM results")[0]
    lg.close()
    assert row["summary"] == "device said: bad login admin/***" and row["data"] == {"echo": ["***"]}


def test_opening_the_log_leaves_sqlite_utils_unloaded_until_its_database_is_asked_for(tmp_path):
    """sqlite_utils imports numpy (and pandas) when installed: ~120 ms every command used to pay for an object
    nothing read. MaintenanceLog.db builds it on first use. (Creating a new log uses it once: migration v5 sets up
    full-text search with sqlite-utils.)"""
    from canteen_ops.store.log import MaintenanceLog

    MaintenanceLog.open(tmp_path / "log.db").close()
    code = textwrap.dedent(f"""
        import sys
        from canteen_ops.store.log import MaintenanceLog
        log = MaintenanceLog.open({str(tmp_path / "log.db")!r})
        log.record_result(None, __import__("canteen_ops.status", fromlist=["Result"]).Result("cam", "reachable",
                          __import__("canteen_ops.status", fromlist=["Status"]).Status.OK, "fine"))
        print("sqlite_utils" in sys.modules, "numpy" in sys.modules)
        print(log.db["results"].count, "runs" in log.db.table_names())
    """)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert p.returncode == 0, p.stderr
    assert p.stdout.split("\n")[:2] == ["False False", "1 True"]

"""`canteen-ops log list | add | show | export` through the CLI entry point."""

from __future__ import annotations

import csv
import io
import json
import sqlite3

import pytest

from canteen_ops.status import Result, Status
from canteen_ops.store.log import MaintenanceLog
from tests.conftest import EXAMPLE


def note_count(db) -> int:
    if not db.exists():
        return 0
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT COUNT(*) FROM notes").fetchone()[0]
    finally:
        conn.close()


@pytest.fixture
def db(tmp_path):
    return tmp_path / "log.db"  # the conftest points CANTEEN_OPS_DB here


def test_list_on_a_new_log_creates_the_schema(cli, db):
    r = cli("log", "list")
    assert r.code == 0, r
    assert "0 entries" in r.out
    assert db.exists()
    assert json.loads(cli("log", "list", "--json").out) == []


def test_db_flag_overrides_env(cli, tmp_path, db):
    other = tmp_path / "elsewhere" / "x.db"
    assert cli("--db", other, "log", "add", "巡检正常").code == 0
    assert note_count(other) == 1 and not db.exists()


def test_add_note_with_device_derives_school(cli, db):
    r = cli("-i", EXAMPLE, "log", "add", "镜头已清洁（油污）", "--kind", "cleaning", "--device", "xc-cam-02")
    assert r.code == 0, r
    assert r.out.startswith("note ") and r.out.strip().endswith(" added")
    rows = json.loads(cli("log", "list", "--json").out)
    assert len(rows) == 1
    row = rows[0]
    assert (row["kind"], row["school_id"], row["device_id"], row["status"], row["summary"], row["operator"]) == (
        "note", "xc-shiyan-xx", "xc-cam-02", "cleaning", "镜头已清洁（油污）", "tester")
    assert row["at"].endswith("Z")


def test_add_note_school_by_name_and_operator_flag(cli):
    r = cli("-i", EXAMPLE, "--operator", "李师傅", "log", "add", "硬盘已更换", "--kind", "replacement",
            "--school", "海淀区育才中学")
    assert r.code == 0, r
    row = json.loads(cli("log", "list", "--json").out)[0]
    assert (row["school_id"], row["device_id"], row["operator"]) == ("hd-yucai-zx", None, "李师傅")


def test_add_note_without_device_needs_no_inventory(cli, db):
    assert cli("log", "add", "general inspection").code == 0  # no inventory.yaml in cwd
    assert note_count(db) == 1


@pytest.mark.parametrize("args, message", [
    (["x", "--device", "xc-cam-99"], "--device 'xc-cam-99' is not in"),
    (["x", "--school", "no-such-school"], "--school 'no-such-school' is not in"),
    (["x", "--device", "xc-cam-01", "--school", "hd-yucai-zx"], "device xc-cam-01 belongs to school xc-shiyan-xx"),
    (["x", "--kind", "gossip"], "--kind 'gossip': expected one of inspection, cleaning"),
    (["   "], "the note text is empty"),
])
def test_bad_notes_are_usage_errors_and_write_nothing(cli, db, args, message):
    r = cli("-i", EXAMPLE, "log", "add", *args)
    assert r.code == 64, r
    assert message in r.err
    assert not db.exists()  # not even an empty log was created
    cli("log", "add", "first")  # and with an existing log, nothing is added either
    r = cli("-i", EXAMPLE, "log", "add", *args)
    assert r.code == 64 and note_count(db) == 1


def test_note_for_device_with_invalid_inventory_is_65(cli, tmp_path, db):
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nschools: {}\n")
    r = cli("-i", bad, "log", "add", "x", "--device", "c1")
    assert r.code == 65 and "nothing was run" in r.err
    assert not db.exists()


def _seed(db):
    log = MaintenanceLog.open(db)
    with log.run("check", ["--school", "xc-shiyan-xx"], "王工") as run:
        run.record(Result("xc-cam-01", "clock", Status.WARN, "drift 9 s", school_id="xc-shiyan-xx"))
        run.record(Result("hd-cam-03", "stream", Status.CRIT, "no stream", school_id="hd-yucai-zx"))
        run.set_outcome("crit", 2)
    log.insert("backups", {"run_id": run.id, "school_id": "xc-shiyan-xx", "device_id": "xc-nvr-01", "status": "ok",
                           "method": "isapi", "sha256": "ab" * 32})
    old = log.insert("notes", {"at": "2020-01-01T00:00:00.000000Z", "operator": "old", "school_id": "hd-yucai-zx",
                               "device_id": "hd-cam-01", "kind": "inspection", "text": "very old note"})
    ids = {"run": run.id, "old_note": old}
    log.close()
    return ids


def test_list_filters(cli, db):
    _seed(db)
    cli("log", "add", "newest")

    def kinds(*args):
        r = cli("log", "list", "--json", *args)
        assert r.code == 0, r
        return [(e["kind"], e["device_id"]) for e in json.loads(r.out)]

    everything = kinds()
    assert len(everything) == 6 and everything[0] == ("note", None)  # newest first
    assert kinds("--kind", "check") == [("check", "hd-cam-03"), ("check", "xc-cam-01")]
    assert kinds("--kind", "backup", "--kind", "run") == [("backup", "xc-nvr-01"), ("run", None)]
    assert kinds("--school", "hd-yucai-zx") == [("check", "hd-cam-03"), ("note", "hd-cam-01")]
    assert kinds("--device", "xc-*") == [("backup", "xc-nvr-01"), ("check", "xc-cam-01")]
    assert ("note", "hd-cam-01") not in kinds("--since", "7d")
    assert ("note", "hd-cam-01") in kinds("--since", "2019-12-31")
    assert kinds("--since", "2999-01-01") == []
    assert len(kinds("--limit", "2")) == 2
    assert len(kinds("--limit", "0")) == 6


def test_list_table(cli, db):
    _seed(db)
    r = cli("log", "list")
    assert r.code == 0
    assert "5 entries" in r.out and "drift 9 s" in r.out and "王工" in r.out
    assert "2020-01-01 08:00:00" in r.out  # stored UTC, shown in Asia/Shanghai


@pytest.mark.parametrize("args, message", [
    (["--kind", "gossip"], "--kind 'gossip'"), (["--since", "last tuesday"], "--since: invalid time"),
])
def test_list_usage_errors(cli, args, message):
    r = cli("log", "list", *args)
    assert r.code == 64 and message in r.err


def test_show_by_prefix_and_run_with_results(cli, db):
    ids = _seed(db)
    r = cli("log", "show", ids["run"][:8])
    assert r.code == 0, r
    assert f"runs {ids['run']}" in r.out
    assert "operator: 王工" in r.out and "status: crit" in r.out
    assert "- [warn] xc-cam-01 clock: drift 9 s" in r.out and "- [crit] hd-cam-03 stream: no stream" in r.out
    j = json.loads(cli("log", "show", ids["old_note"], "--json").out)
    assert j["table"] == "notes" and j["record"]["text"] == "very old note" and j["results"] == []


def test_show_unknown_short_or_ambiguous_is_66(cli, db):
    _seed(db)
    assert cli("log", "show", "ffffffff-0000").code == 66
    assert cli("log", "show", "abc").code == 66  # too short to be a prefix
    r = cli("log", "show", "")
    assert r.code == 66 and "no unique log record" in r.err


def test_export_jsonl_timeline_oldest_first(cli, db):
    _seed(db)
    r = cli("log", "export")
    assert r.code == 0, r
    rows = [json.loads(line) for line in r.out.splitlines()]
    assert len(rows) == 5
    assert rows[0]["summary"] == "very old note"
    assert [row["at"] for row in rows] == sorted(row["at"] for row in rows)


def test_export_csv_table_and_since(cli, db):
    ids = _seed(db)
    r = cli("log", "export", "--format", "csv", "--table", "results")
    assert r.code == 0, r
    rows = list(csv.DictReader(io.StringIO(r.out)))
    assert [row["device_id"] for row in rows] == ["xc-cam-01", "hd-cam-03"]
    assert {"id", "seq", "created_at", "updated_at", "run_id", "check_name", "data"} <= set(rows[0])
    assert rows[0]["run_id"] == ids["run"] and json.loads(rows[0]["data"]) == {}
    r = cli("log", "export", "-f", "csv", "--table", "notes", "--since", "2999-01-01")
    assert r.code == 0 and r.out == ""
    r = cli("log", "export", "-f", "jsonl", "--table", "runs", "--since", "1d")
    assert [json.loads(line)["args"] for line in r.out.splitlines()] == [["--school", "xc-shiyan-xx"]]


def test_export_since_is_local_time_as_in_log_list(cli, db):
    """`log export --since` read a time without an offset as UTC while `log list --since` reads it in the
    inventory's zone (Asia/Shanghai): the old note is 2020-01-01 08:00 there (00:00 UTC)."""
    _seed(db)

    def exported(since):
        r = cli("-i", EXAMPLE, "log", "export", "--since", since)
        assert r.code == 0, r
        return [json.loads(line)["summary"] for line in r.out.splitlines()]

    def listed(since):
        r = cli("-i", EXAMPLE, "log", "list", "--json", "--since", since)
        assert r.code == 0, r
        return [e["summary"] for e in json.loads(r.out)]

    assert "very old note" in exported("2020-01-01T07:59") and "very old note" in listed("2020-01-01T07:59")
    assert "very old note" not in exported("2020-01-01T08:01") and "very old note" not in listed("2020-01-01T08:01")


def test_export_to_file(cli, db, tmp_path):
    _seed(db)
    out = tmp_path / "exports" / "log.jsonl"
    r = cli("log", "export", "-o", out)
    assert r.code == 0 and r.out == ""
    assert f"exported 5 records to {out}" in r.err
    assert len(out.read_text(encoding="utf-8").splitlines()) == 5


@pytest.mark.parametrize("args, message", [
    (["--format", "xml"], "--format 'xml': expected one of csv, jsonl, xlsx"),
    (["--table", "sqlite_master"], "--table 'sqlite_master': expected one of runs"),
    (["--since", "soon"], "--since: invalid time"),
])
def test_export_usage_errors(cli, args, message):
    r = cli("log", "export", *args)
    assert r.code == 64 and message in r.err


def test_unusable_log_file_is_65(cli, db):
    db.write_text("not a database\n" * 100)
    r = cli("log", "list")
    assert r.code == 65
    assert "not a usable canteen-ops maintenance log" in r.err
    assert "Traceback" not in r.err


def test_show_prefix_is_literal(cli, db):
    ids = _seed(db)
    run = ids["run"]
    wildcarded = run[:4] + "__" + run[6:10]  # would match as a LIKE pattern
    assert cli("log", "show", wildcarded).code == 66
    assert cli("log", "show", run[:6]).code == 0
    assert cli("log", "show", run.upper()).code == 66  # ids are lower-case; no case folding either


def test_default_log_location_is_the_user_data_dir(cli, tmp_path, monkeypatch):
    monkeypatch.delenv("CANTEEN_OPS_DB")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))  # platformdirs honours it on Linux
    assert cli("log", "add", "x").code == 0
    assert (tmp_path / "xdg" / "canteen-ops" / "maintenance-log.db").exists()


def test_operator_defaults_to_the_os_user(cli, monkeypatch):
    import getpass

    monkeypatch.delenv("CANTEEN_OPS_OPERATOR")
    assert cli("log", "add", "x").code == 0
    assert json.loads(cli("log", "list", "--json").out)[0]["operator"] == getpass.getuser()


def test_list_school_names_globs_and_until(cli, db):
    _seed(db)

    def kinds(*args):
        r = cli("-i", EXAMPLE, "log", "list", "--json", *args)
        assert r.code == 0, r
        return [(e["kind"], e["device_id"]) for e in json.loads(r.out)]

    by_id = kinds("--school", "hd-yucai-zx")
    assert by_id == [("check", "hd-cam-03"), ("note", "hd-cam-01")]
    assert kinds("--school", "海淀区育才中学") == by_id  # the school's name, as every other command takes
    assert kinds("--school", "hd-*") == by_id
    assert kinds("--school", "hd-*", "--school", "xc-*", "--kind", "check") == [
        ("check", "hd-cam-03"), ("check", "xc-cam-01")]
    assert kinds("--until", "2020-01-01") == [("note", "hd-cam-01")]  # a date includes that day (local time)
    assert kinds("--until", "2019-12-31") == []
    assert kinds("--since", "2019-12-31", "--until", "2020-01-02") == [("note", "hd-cam-01")]
    assert ("note", "hd-cam-01") not in kinds("--until", "2020-01-01T07:59")  # 08:00 Shanghai
    r = cli("log", "list", "--until", "soon")
    assert r.code == 64 and "--until" in r.err


def test_grep_finds_chinese_substrings_short_queries_and_is_literal(cli, db):
    _seed(db)
    log = MaintenanceLog.open(db)
    log.record_result(None, Result("xc-nvr-01", "storage", Status.CRIT, "2号硬盘故障，已更换 (100% full_1)",
                                   school_id="xc-shiyan-xx"))
    log.insert("notes", {"at": "2026-11-02T00:00:00Z", "kind": "repair", "text": "更换硬盘后录像恢复"})
    log.close()

    def summaries(text, *args):
        r = cli("log", "list", "--json", "--grep", text, *args)
        assert r.code == 0, r
        return sorted(e["summary"] for e in json.loads(r.out))

    assert summaries("硬盘故障") == ["storage: 2号硬盘故障，已更换 (100% full_1)"]  # trigram FTS
    assert summaries("硬盘") == ["storage: 2号硬盘故障，已更换 (100% full_1)", "更换硬盘后录像恢复"]  # LIKE fallback
    assert summaries("硬盘", "--kind", "note") == ["更换硬盘后录像恢复"]
    assert summaries("DRIFT") == ["clock: drift 9 s"]  # case-insensitive
    assert summaries("%") == ["storage: 2号硬盘故障，已更换 (100% full_1)"]  # typed literally
    assert summaries("l_") == ["storage: 2号硬盘故障，已更换 (100% full_1)"]
    assert summaries('" OR *') == [] and summaries("AND") == []  # no FTS query syntax from the user
    assert summaries("x" * 300) == []
    r = cli("log", "list", "--grep", "  ")
    assert r.code == 64


def test_grep_finds_an_incident_by_a_note_on_its_timeline(cli, db):
    r = cli("-i", EXAMPLE, "incident", "open", "-l", "general", "-d", "xc-cam-01", "-t", "画面模糊", "--json")
    iid = json.loads(r.out)["id"]
    cli("-i", EXAMPLE, "incident", "note", iid, "镜头油污已清洁")
    r = cli("log", "list", "--json", "--grep", "油污已")
    assert [e["id"] for e in json.loads(r.out)] == [iid]


def test_fts_migration_indexes_existing_records_and_triggers_keep_it_in_step(db):
    from canteen_ops.store import schema

    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("BEGIN")
    for script in schema.MIGRATIONS[:4]:  # a log written before full-text search existed
        for stmt in schema._statements(script):
            conn.execute(stmt)
    conn.execute("PRAGMA user_version = 4")
    conn.execute("INSERT INTO notes (id, seq, created_at, updated_at, at, kind, text) "
                 "VALUES ('n1', 1, 'x', 'x', '2026-01-01T00:00:00Z', 'inspection', '留样柜温度偏高')")
    for rid, status in (("r-ok", "ok"), ("r-crit", "crit")):
        conn.execute("INSERT INTO results (id, seq, created_at, updated_at, check_name, status, summary, observed_at) "
                     "VALUES (?, 2, 'x', 'x', 'clock', ?, '时钟偏差 温度偏高', '2026-01-01T00:00:00Z')", [rid, status])
    conn.execute("COMMIT")
    conn.close()
    from canteen_ops.store.entries import list_entries

    log = MaintenanceLog.open(db)
    try:
        assert log.schema_version == len(schema.MIGRATIONS) >= 5
        assert {e["id"] for e in list_entries(log, grep="温度偏高")} == {"n1", "r-crit"}
        assert {e["id"] for e in list_entries(log, grep="时钟偏差")} == {"r-crit"}
        log.conn.execute("DELETE FROM results")
        new = log.insert("notes", {"at": "2026-01-02T00:00:00Z", "kind": "other", "text": "温度偏高已处理"})
        assert {e["id"] for e in list_entries(log, grep="温度偏高")} == {"n1", new}
        log.update("notes", "n1", {"text": "正常"})
        assert [e["id"] for e in list_entries(log, grep="温度偏高")] == [new]
        log.conn.execute("DELETE FROM notes WHERE id = ?", [new])
        assert list_entries(log, grep="温度偏高") == []
        assert log.conn.execute("INSERT INTO notes_fts(notes_fts) VALUES ('integrity-check')") is not None
    finally:
        log.close()


def test_grep_searches_check_findings_that_were_not_ok(db):
    from canteen_ops.store.entries import list_entries

    log = MaintenanceLog.open(db)
    try:
        ok = log.record_result(None, Result("c1", "picture", Status.OK, "画面清晰 sharp", school_id="s"))
        bad = log.record_result(None, Result("c2", "picture", Status.CRIT, "画面模糊 blurred", school_id="s"))
        log.record_result(None, Result("c3", "picture", Status.NA, "画面不适用 not offered", school_id="s"))
        assert list_entries(log, grep="画面不适用") == []  # n/a is boilerplate like ok
        assert [e["id"] for e in list_entries(log, grep="画面模糊")] == [bad]  # the index
        assert [e["id"] for e in list_entries(log, grep="画面")] == [bad]  # the LIKE fallback, same rows
        assert list_entries(log, grep="画面清晰") == []
        log.update("results", ok, {"status": "warn"})  # the triggers follow a row into and out of the index
        assert [e["id"] for e in list_entries(log, grep="画面清晰")] == [ok]
        log.update("results", bad, {"status": "ok"})
        assert list_entries(log, grep="画面模糊") == []
        log.conn.execute("DELETE FROM results WHERE id = ?", [ok])
        assert list_entries(log, grep="画面清晰") == []
        log.conn.execute("INSERT INTO results_fts(results_fts) VALUES ('integrity-check')")
    finally:
        log.close()


def test_list_vendor_area_tag_through_the_inventory(cli, db):
    _seed(db)

    def devices(*args):
        r = cli("-i", EXAMPLE, "log", "list", "--json", *args)
        assert r.code == 0, r
        return sorted({e["device_id"] for e in json.loads(r.out)})

    assert devices("--vendor", "dahua") == ["hd-cam-01", "hd-cam-03"]
    assert devices("--area", "加工区") == ["xc-cam-01"]
    assert devices("--vendor", "hikvision", "--kind", "backup") == ["xc-nvr-01"]
    r = cli("-i", EXAMPLE, "log", "list", "--tag", "no-such-tag")
    assert r.code == 64

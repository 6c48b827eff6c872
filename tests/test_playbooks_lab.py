"""Every shipped playbook against a real background lab (`canteen-ops lab up`), drills unattended."""

from __future__ import annotations

import json
import os
import random
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from canteen_ops.status import Status, worst
from canteen_ops.lab.district import DatasetteServer


ROOT = Path(__file__).resolve().parent.parent


def canteen(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "canteen_ops", *args], capture_output=True, text=True,
                          env=env, timeout=180)
    if check and proc.returncode:
        raise AssertionError(f"canteen-ops {' '.join(args)} → {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def lab_dir(tmp_path_factory):
    """A lab as a technician starts it: a detached process, two schools (Hikvision, Dahua), full area coverage."""
    d = tmp_path_factory.mktemp("playbook-lab")
    for _ in range(5):
        first = f"127.{random.randrange(100, 250)}.{random.randrange(1, 250)}.1"
        proc = canteen("lab", "up", "--dir", str(d), "--schools", "2", "--cameras-per-school", "6",
                       "--vendors", "hikvision,dahua", "--first-address", first, check=False)
        if proc.returncode == 0:
            break
    else:
        raise AssertionError(proc.stderr)
    try:
        yield d
    finally:
        canteen("lab", "down", "--dir", str(d), check=False)


@pytest.fixture
def pb_env(lab_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("CANTEEN_OPS_INVENTORY", str(lab_dir / "inventory.yaml"))
    monkeypatch.setenv("CANTEEN_OPS_LAB_DIR", str(lab_dir))
    monkeypatch.setenv("CANTEEN_OPS_BACKUP_DIR", str(tmp_path / "backups"))
    return lab_dir


def lab_faults(lab_dir: Path) -> dict[str, dict]:
    status = json.loads(canteen("lab", "status", "--dir", str(lab_dir), "--json").stdout)
    return {d["id"]: d["faults"] for d in status["devices"] if d["faults"]}


def rows(db: Path, sql: str, params=()) -> list[sqlite3.Row]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


@pytest.mark.parametrize("drill,device,level", [
    ("drill-nvr-offline", "s001-nvr", "major"),
    ("drill-camera-obscured", "s001-cam02", "general"),
    ("drill-clock-reset", "s001-cam03", "general"),
])
def test_drill_runs_unattended(cli, pb_env, tmp_path, drill, device, level):
    r = cli("playbook", "run", drill, "--non-interactive")
    assert r.code == 0, r
    assert "drill report" in r.out and "within deadline" in r.out
    db = tmp_path / "log.db"
    steps = rows(db, "SELECT * FROM playbook_steps ORDER BY step_index")
    assert len(steps) == 9 and {s["status"] for s in steps} == {"ok"}
    # the detection step really found the fault (crit), which the drill expected
    detect = [s for s in steps if s["step_name"].startswith("发现")][0]
    assert '"raw_status": "crit"' in detect["data"]
    incidents = rows(db, "SELECT * FROM incidents")
    assert len(incidents) == 1
    inc = incidents[0]
    assert inc["level"] == level and inc["state"] == "resolved" and device in inc["device_ids"]
    assert inc["arrived_at"] <= inc["arrive_deadline"]
    drill_result = rows(db, "SELECT * FROM results WHERE check_name = 'drill'")
    assert len(drill_result) == 1 and drill_result[0]["status"] == "ok"
    assert lab_faults(pb_env) == {}  # the drill cleaned up after itself


def test_check_mode_changes_nothing(cli, pb_env, tmp_path):
    r = cli("playbook", "run", "drill-nvr-offline", "--check")
    assert r.code == 0, r
    assert "canteen-ops lab fault s001-nvr offline" in r.out
    assert not (tmp_path / "log.db").exists()
    assert lab_faults(pb_env) == {}


def test_daily_inspection(cli, pb_env, tmp_path, capsys, monkeypatch):
    from rich.cells import cell_len

    from canteen_ops.cli.app import run

    # On an 80-column terminal: the steps' child processes get the width that is left beside the indent.
    monkeypatch.setenv("COLUMNS", "80")
    capsys.readouterr()
    code = run(["playbook", "run", "daily-inspection", "--non-interactive"])
    out = capsys.readouterr().out
    r = type("R", (), {"code": code, "out": out})
    assert "s001-nvr" in out and max(cell_len(line) for line in out.splitlines()) <= 80, out
    db = tmp_path / "log.db"
    steps = rows(db, "SELECT * FROM playbook_steps ORDER BY step_index")
    assert [s["task"] for s in steps] == ["check", "note", "report"]
    assert steps[1]["status"] == "ok" and steps[2]["status"] == "ok"
    checks = {row["check_name"] for row in rows(db, "SELECT DISTINCT check_name FROM results")}
    assert {"reachable", "login", "clock", "stream", "picture", "coverage"} <= checks
    worst = rows(db, "SELECT status FROM results WHERE check_name NOT IN ('drill')")
    assert r.code == {"ok": 0, "warn": 1, "crit": 2, "unknown": 3}[steps[0]["status"]]
    assert len(worst) > 20
    assert rows(db, "SELECT * FROM notes WHERE kind = 'inspection'")


def test_nightly_backup_with_upstream(cli, pb_env, tmp_path, monkeypatch):
    server = DatasetteServer(tmp_path / "upstream").start()
    try:
        monkeypatch.setenv("CANTEEN_OPS_UPSTREAM", server.url)
        monkeypatch.setenv("CANTEEN_OPS_UPSTREAM_TOKEN", server.token())
        r = cli("playbook", "run", "nightly-backup", "--non-interactive")
        db = tmp_path / "log.db"
        steps = {s["step_name"]: s for s in rows(db, "SELECT * FROM playbook_steps")}
        assert steps["配置备份 backup"]["status"] == "ok", steps["配置备份 backup"]["summary"]
        assert steps["备份校验 verify"]["status"] == "ok"
        assert steps["固件合规 firmware"]["status"] == "ok", steps["固件合规 firmware"]["summary"]
        assert steps["配置漂移 drift"]["status"] == "unknown"  # no accepted baseline yet: says so, not "ok"
        assert steps["上传区级平台 sync"]["status"] == "ok", steps["上传区级平台 sync"]["summary"]
        ok_backups = rows(db, "SELECT DISTINCT device_id FROM backups WHERE status = 'ok'")
        assert len(ok_backups) == 14  # every Hikvision and Dahua device exports its configuration
        assert len(rows(db, "SELECT DISTINCT device_id FROM snapshots")) == 14
        assert {r["status"] for r in rows(db, "SELECT status FROM firmware_findings")} == {"current"}
        # everything logged before the sync step is upstream exactly once
        upstream_ids = [row["id"] for row in server.rows("backups")]
        assert len(upstream_ids) == len(set(upstream_ids)) == len(rows(db, "SELECT id FROM backups"))
        assert r.code == worst(Status(s["status"]) for s in steps.values()).exit_code
    finally:
        server.stop()


def test_second_concurrent_run_is_refused(cli, pb_env, tmp_path):
    from canteen_ops.playbooks.run import playbook_lock

    with playbook_lock(tmp_path / "locks", "nightly-backup"):
        r = cli("playbook", "run", "nightly-backup", "--non-interactive")
    assert r.code == 75 and "already running" in r.err
    assert not (tmp_path / "log.db").exists()  # refused before anything was logged

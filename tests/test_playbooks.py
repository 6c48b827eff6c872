"""Playbook engine: validation with line numbers, execution, expectations, locking, dry runs, drills."""

from __future__ import annotations

import sqlite3
import textwrap
from pathlib import Path

import pytest

from tests.conftest import EXAMPLE


def write(tmp_path: Path, text: str, name: str = "pb.yaml") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text), encoding="utf-8")
    return p


def rows(table: str, db: Path) -> list[sqlite3.Row]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(f"SELECT * FROM {table} ORDER BY seq").fetchall()
    finally:
        conn.close()


def test_invalid_playbook_names_file_line_and_step(cli, tmp_path):
    p = write(tmp_path, """\
        name: broken
        steps:
          - name: first
            note: {text: hello}
          - name: second
            check: {only: clock, colour: red}
          - name: third
            wait: 1
            on_failure: maybe
          - name: fourth
            note: {text: "{{ nobody }}"}
          - bogus: {}
        """)
    r = cli("playbook", "validate", p)
    assert r.code == 65, r
    err = r.err
    assert f"{p}:6:" in err and "step 2 (second)" in err and "unknown argument 'colour'" in err
    assert f"{p}:9:" in err and "on_failure must be stop or continue" in err
    assert f"{p}:11:" in err and "unknown variable 'nobody'" in err
    assert f"{p}:12:" in err and "step 5" in err and "exactly one task" in err


def test_check_mode_shows_plan_and_touches_nothing(cli, tmp_path):
    p = write(tmp_path, """\
        name: plan
        targets: {school: [xc-shiyan-xx]}
        steps:
          - check: {only: [clock]}
          - note: "巡检完成"
        """)
    db = tmp_path / "log.db"
    r = cli("-i", EXAMPLE, "playbook", "run", p, "--check")
    assert r.code == 0, r
    assert "canteen-ops check --only clock --school xc-shiyan-xx" in r.out
    assert "canteen-ops log add 巡检完成" in r.out
    assert not db.exists()
    assert not (tmp_path / "locks").exists()


def test_run_records_steps_and_exit_is_worst_status(cli, tmp_path):
    p = write(tmp_path, """\
        name: notes
        variables: {who: 王师傅}
        steps:
          - name: note
            note: {text: "{{ who }} 清洁镜头", kind: cleaning, device: xc-cam-02}
          - name: pause
            wait: 0.1
          - name: ask
            prompt: {message: 继续吗, default: "yes", choices: ["yes", "no"], var: answer}
          - name: fails
            note: {text: x, device: no-such-device}
            on_failure: continue
          - name: after
            assert: {step: note, status: ok}
        """)
    r = cli("-i", EXAMPLE, "playbook", "run", p, "--non-interactive")
    assert r.code == 2, r  # the failing note step (exit 64) counts as crit
    db = tmp_path / "log.db"
    notes = rows("notes", db)
    assert [n["text"] for n in notes] == ["王师傅 清洁镜头"]
    steps = rows("playbook_steps", db)
    assert [s["status"] for s in steps] == ["ok", "ok", "ok", "crit", "ok"]
    assert all(s["actor"] == "tester" and s["started_at"] and s["ended_at"] for s in steps)
    run = [x for x in rows("runs", db) if x["command"] == "playbook"][0]
    assert run["status"] == "crit" and run["exit_code"] == 2


def test_on_failure_stop_skips_the_rest(cli, tmp_path):
    p = write(tmp_path, """\
        steps:
          - note: {text: x, device: no-such-device}
          - note: never
        """)
    r = cli("-i", EXAMPLE, "playbook", "run", p)
    assert r.code == 2
    steps = rows("playbook_steps", tmp_path / "log.db")
    assert [s["status"] for s in steps] == ["crit", "skipped"]
    assert not rows("notes", tmp_path / "log.db")


def test_prompt_without_default_fails_non_interactive(cli, tmp_path):
    p = write(tmp_path, """\
        steps:
          - prompt: {message: 已到现场吗}
        """)
    r = cli("-i", EXAMPLE, "playbook", "run", p, "--non-interactive")
    assert r.code == 2
    assert "non-interactive" in rows("playbook_steps", tmp_path / "log.db")[0]["summary"]


def test_second_concurrent_run_is_refused(cli, tmp_path):
    from canteen_ops.playbooks.run import playbook_lock

    p = write(tmp_path, "name: nightly\nsteps:\n  - wait: 0\n")
    with playbook_lock(tmp_path / "locks", "nightly"):
        r = cli("-i", EXAMPLE, "playbook", "run", p)
    assert r.code == 75, r
    assert "already running" in r.err
    r = cli("-i", EXAMPLE, "playbook", "run", p)
    assert r.code == 0, r


def test_drill_with_incident_flow_and_report(cli, tmp_path):
    p = write(tmp_path, """\
        name: drill-manual
        kind: drill
        steps:
          - name: report fault
            incident: {action: open, level: major, title: 录像机离线演练, device: xc-nvr-01}
          - name: acknowledge
            incident: {action: ack, device: xc-nvr-01}
          - name: on site
            incident: {action: arrive, device: xc-nvr-01}
          - name: fixed
            incident: {action: resolve, device: xc-nvr-01, resolution: 重新上电}
          - name: verify
            assert: {incident_device: xc-nvr-01, incident_level: major, within_deadline: true}
        """)
    r = cli("-i", EXAMPLE, "playbook", "run", p)
    assert r.code == 0, r
    assert "drill report" in r.out and "within deadline" in r.out
    inc = rows("incidents", tmp_path / "log.db")
    assert len(inc) == 1 and inc[0]["state"] == "resolved"
    drill = [x for x in rows("results", tmp_path / "log.db") if x["check_name"] == "drill"]
    assert len(drill) == 1 and drill[0]["status"] == "ok"


@pytest.mark.parametrize("path", sorted((Path(__file__).parent.parent / "playbooks").glob("*.yaml")))
def test_shipped_playbooks_validate(cli, path):
    r = cli("playbook", "validate", path)
    assert r.code == 0, r


@pytest.mark.parametrize("utc, zone, day", [
    ("2026-12-04T17:06:00+00:00", "Asia/Shanghai", "2026-12-05"),  # 01:06 in Shanghai: already the 5th
    ("2026-12-04T15:30:00+00:00", "Asia/Shanghai", "2026-12-04"),  # 23:30 in Shanghai
    ("2026-12-04T17:06:00+00:00", "Asia/Urumqi", "2026-12-04"),  # 23:06 in Urumqi (UTC+6)
])
def test_playbook_dates_its_work_in_the_inventory_time_zone(tmp_path, utc, zone, day):
    import datetime as dt

    from canteen_ops.context import Env
    from canteen_ops.playbooks.model import load_playbook
    from canteen_ops.playbooks.run import PlaybookRunner

    inv = tmp_path / "inv.yaml"
    inv.write_text(EXAMPLE.read_text(encoding="utf-8").replace(
        "settings:\n  timezone: Asia/Shanghai", f"settings:\n  timezone: {zone}", 1), encoding="utf-8")
    book = load_playbook(write(tmp_path, """\
        name: dated
        steps:
          - note: {text: "每日巡检已完成 ({{ date }})", kind: inspection}
        """))
    env = Env(inventory_path=inv, db_path=tmp_path / "log.db", operator="tester", quiet=True)
    try:
        outcome = PlaybookRunner(book, env, non_interactive=True, now=dt.datetime.fromisoformat(utc)).run()
    finally:
        env.close()
    assert outcome.exit_code == 0
    assert [n["text"] for n in rows("notes", tmp_path / "log.db")] == [f"每日巡检已完成 ({day})"]

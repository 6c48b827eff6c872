"""watch's robustness: a full disk, SIGTERM mid-round (a real subprocess), one instance per inventory, the
command line, the roster's validation and `oncall`, and notify secrets kept out of everything."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from canteen_ops.context import Env
from canteen_ops.watch import Watch, lock_path
from tests.watch_fixtures import closed_port, inventory_with

ROOT = Path(__file__).resolve().parent.parent


def _small_inventory(tmp_path, extra: str = "") -> Path:
    p = tmp_path / "inv.yaml"
    p.write_text(f"""\
version: 1
settings:
  timezone: Asia/Shanghai
{extra}
schools:
  - id: s001
    name: 第一实验小学
    devices:
      - {{id: s001-cam01, kind: camera, vendor: hikvision, host: 127.0.0.1, port: {closed_port()}, timeout: 1}}
      - {{id: s001-cam02, kind: camera, vendor: dahua, host: 127.0.0.1, port: {closed_port()}, timeout: 1}}
""", encoding="utf-8")
    return p


def test_a_failing_log_write_is_reported_and_the_loop_goes_on(tmp_path, monkeypatch, capsys):
    from canteen_ops.store.log import RunHandle

    inv = _small_inventory(tmp_path)
    env = Env(inventory_path=inv, db_path=tmp_path / "log.db", operator="tester", argv=["watch"])
    real = RunHandle.record_all
    calls = []

    def disk_full_once(self, results):
        calls.append(len(results))
        if len(calls) == 1:
            raise sqlite3.OperationalError("database or disk is full")
        return real(self, results)

    monkeypatch.setattr(RunHandle, "record_all", disk_full_once)
    lines = []
    code = Watch(env, env.inventory().devices, interval_s=0, iterations=2, out=lines.append,
                 skip=("stream", "picture", "coverage")).run()
    err = capsys.readouterr().err
    assert "round 1: cannot write the maintenance log (OperationalError: database or disk is full)" in err
    assert len(lines) == 2 and code == 2  # both rounds ran; the devices are down
    log = env.log()
    assert log.query("SELECT COUNT(*) AS n FROM incidents WHERE state = 'open'")[0]["n"] == 2
    assert log.query("SELECT status FROM runs")[0]["status"] == "crit"
    env.close()


def test_second_watch_on_the_same_inventory_exits_75(tmp_path, cli):
    from filelock import FileLock

    inv = _small_inventory(tmp_path)
    path = lock_path(inv)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path)):
        r = cli("-i", inv, "watch", "--iterations", "1")
    assert r.code == 75 and "another watch is running" in r.err, r
    r = cli("-i", inv, "watch", "--iterations", "1", "--interval", "1s", "--skip", "stream,picture,coverage")
    assert r.code == 2 and "round 1" in r.out, r  # free again: it runs (devices down → crit)


def test_watch_cli_refuses_bad_options(tmp_path, cli):
    inv = _small_inventory(tmp_path)
    assert cli("-i", inv, "watch", "--interval", "soon").code == 64
    assert cli("-i", inv, "watch", "--skip", "nonsense").code == 64
    assert cli("-i", inv, "watch", "--device", "nope*").code == 64


def test_sigterm_mid_round_finishes_the_writes_and_marks_the_run(lab, lab_faults, tmp_path):
    inv = inventory_with(lab.inventory, tmp_path / "inv.yaml", schools=("s001",), roster=None)
    lab_faults.set("s001-cam02", "slow", "4000")  # the round is still busy with it when the signal comes
    db = tmp_path / "log.db"
    env = {**os.environ, "CANTEEN_OPS_DB": str(db), "CANTEEN_OPS_INVENTORY": str(inv),
           "XDG_DATA_HOME": str(tmp_path / "xdg"), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "canteen_ops", "watch", "--interval", "10m", "--skip",
                             "stream,picture,coverage"], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # wait until the first device's results are in the log
            if db.exists():
                try:
                    with sqlite3.connect(db) as c:
                        if c.execute("SELECT COUNT(*) FROM results").fetchone()[0]:
                            break
                except sqlite3.Error:
                    pass
            time.sleep(0.05)
        else:
            pytest.fail("watch recorded nothing within 60 s")
        r2 = subprocess.run([sys.executable, "-m", "canteen_ops", "watch", "--iterations", "1"], env=env,
                            cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert r2.returncode == 75, r2.stderr
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, (out, err)
    assert "interrupted" in out
    with sqlite3.connect(db) as c:
        assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        status, ended, code = c.execute("SELECT status, ended_at, exit_code FROM runs WHERE command = 'watch'"
                                        ).fetchone()
        devices = {r[0] for r in c.execute("SELECT DISTINCT device_id FROM results")}
    assert status == "interrupted" and ended and code == 130
    assert devices and "s001-cam02" not in devices  # what finished is there; the slow one was cut off


def test_notify_secrets_never_printed_nor_logged(tmp_path, cli, monkeypatch):
    token = "SecretRobotToken123456"
    url = f"jsons://ops:Hunter2-pw@127.0.0.1:{closed_port()}/robot/{token}?cto=1&rto=1"
    monkeypatch.setenv("OPS_HOOK", url)
    inv = _small_inventory(tmp_path, "  notify:\n    - {name: group, url_env: OPS_HOOK}\n"
                                     f"    - {{name: plain, url: \"json://127.0.0.1:{closed_port()}/h/{token}x\"}}")
    r = cli("-i", inv, "watch", "--iterations", "1", "--skip", "stream,picture,coverage",
            "--metrics", tmp_path / "m.prom")
    assert r.code == 2, r
    assert "notify group:" in r.err and "plaintext" in r.err  # the failure and the warning are shown...
    everything = r.out + r.err + (tmp_path / "m.prom").read_text()
    with sqlite3.connect(tmp_path / "log.db") as c:
        for (table,) in c.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
            everything += json.dumps(c.execute(f"SELECT * FROM {table}").fetchall(), ensure_ascii=False, default=repr)
    for secret in (token, "Hunter2-pw", url):
        assert secret not in everything  # ...but never the URL, its token or its password
    # a URL pasted where the name of an environment variable belongs is not echoed in the error
    bad = _small_inventory(tmp_path, f"  notify:\n    - {{name: group, url_env: \"{url}\"}}")
    r = cli("-i", bad, "inventory", "validate")
    assert r.code == 65 and "url_env" in r.err and token not in r.err + r.out, r


def test_roster_and_notify_problems_carry_file_and_line(tmp_path, cli):
    inv = _small_inventory(tmp_path, """\
  notify:
    - {name: group, url_env: X, levels: [urgent]}
    - {name: group, url_file: /nope, quiet_hours: "late"}
roster:
  - name: 张伟
    role: boss
    notify: nobody
    shifts: [{days: [mon, funday], start: "8am"}]
    schools: [s001, s999]
    districts: [海淀区]""")
    r = cli("-i", inv, "inventory", "validate")
    assert r.code == 65, r
    for where, what in ((5, "unknown level(s) urgent"), (6, "duplicate notify target 'group'"),
                        (6, "quiet_hours"), (9, "invalid role 'boss'"), (10, "unknown notify target 'nobody'"),
                        (11, "unknown weekday(s) funday"), (11, "expected a time HH:MM"),
                        (12, "no school 's999' in the inventory"), (13, "no district '海淀区'")):
        assert any(f"inv.yaml:{where}:" in line and what in line for line in r.err.splitlines()), (where, what, r.err)


def test_roster_file_is_validated_with_its_own_file_and_line(tmp_path, cli):
    (tmp_path / "duty.yaml").write_text("roster:\n  - name: 张伟\n    role: technician\n    shifts:\n"
                                        "      - {dates: \"2026-10-07..2026-10-01\"}\n", encoding="utf-8")
    inv = _small_inventory(tmp_path, "  roster_file: duty.yaml")
    r = cli("-i", inv, "inventory", "validate")
    assert r.code == 65 and "duty.yaml:5:" in r.err and "ends" in r.err, r


def test_oncall_now_and_next(tmp_path, cli):
    from tests.watch_fixtures import ROSTER

    inv = _small_inventory(tmp_path, "roster: " + json.dumps(ROSTER, ensure_ascii=False))
    r = cli("-i", inv, "oncall", "--at", "2026-12-04T20:00", "--json")  # a Friday evening
    assert r.code == 0, r
    data = json.loads(r.out)
    tech = data["roles"][0]
    assert tech["now"]["name"] == "王芳" and tech["now"]["until"] == "2026-12-07T08:00+08:00"
    # she carries on through the weekend; the next handover is Monday 08:00 to 张伟
    assert tech["next"]["name"] == "张伟" and tech["next"]["from"] == "2026-12-07T08:00+08:00"
    assert data["roles"][1]["now"]["name"] == "李主管" and data["roles"][2]["now"]["name"] == "赵经理"
    r = cli("-i", inv, "oncall", "--at", "2026-12-07T09:00", "--school", "s001")
    assert r.code == 0 and "张伟" in r.out and "13800000001" in r.out, r
    assert cli("-i", inv, "oncall", "--at", "tomorrow").code == 64
    (tmp_path / "plain").mkdir()
    r = cli("-i", _small_inventory(tmp_path / "plain"), "oncall")
    assert r.code == 66 and "no duty roster" in r.err


def test_oncall_at_out_of_range_is_a_usage_error(tmp_path, cli):
    """--at at the ends of the calendar used to crash (OverflowError, exit 70) in the roster's arithmetic."""
    from tests.watch_fixtures import ROSTER

    inv = _small_inventory(tmp_path, "roster: " + json.dumps(ROSTER, ensure_ascii=False))
    for at in ("0001-01-01T00:00", "9999-12-31T23:59Z"):
        r = cli("-i", inv, "oncall", "--at", at)
        assert r.code == 64 and "--at" in r.err and "out of range" in r.err, r


def test_incidents_opened_elsewhere_are_assigned_and_announced_by_the_next_round(tmp_path, cli, monkeypatch):
    """An incident its command could not announce (no notify target or roster in the inventory then) is adopted
    by the next round (`incident open` with targets announces it itself: test_notify_one_shot_lab.py)."""
    from canteen_ops.lab.webhook import WebhookReceiver
    from tests.watch_fixtures import ROSTER

    with WebhookReceiver() as receiver:
        monkeypatch.setenv("OPS_HOOK", receiver.url)
        inv = _small_inventory(tmp_path)
        assert cli("-i", inv, "incident", "open", "-l", "major", "-t", "留样柜摄像头被遮挡", "-d", "s001-cam02").code == 0
        assert not receiver.received
        inv = _small_inventory(tmp_path, "  notify:\n    - {name: group, url_env: OPS_HOOK, levels: [major]}\n"
                                         "roster: " + json.dumps(ROSTER, ensure_ascii=False))
        r = cli("-i", inv, "watch", "--iterations", "1", "--skip", "stream,picture,coverage")
        assert r.code == 2 and "1 assigned" in r.out, r
        got = [g["body"] for g in receiver.wait_for(1)]
    # the devices' own reachable faults are general (cameras) and this target takes major only
    assert len(got) == 1 and "留样柜摄像头被遮挡" in got[0]["message"] and "级别：重大" in got[0]["message"]
    assert "值班人员：" in got[0]["message"]
    with sqlite3.connect(tmp_path / "log.db") as c:
        actions = [a for (a,) in c.execute("SELECT action FROM incident_events ORDER BY seq")]
    assert actions.count("assign") == 3  # the manual one and the two opened by the round


def test_an_internal_error_in_one_round_does_not_end_the_watch(tmp_path, monkeypatch, capsys):
    inv = _small_inventory(tmp_path)
    env = Env(inventory_path=inv, db_path=tmp_path / "log.db", operator="tester", argv=["watch"])
    real = Watch._plan
    calls = []

    def broken_once(self, report, t0):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a bug \x1b[31m")
        return real(self, report, t0)

    monkeypatch.setattr(Watch, "_plan", broken_once)
    lines = []
    code = Watch(env, env.inventory().devices, interval_s=0, iterations=2, out=lines.append,
                 skip=("stream", "picture", "coverage")).run()
    err = capsys.readouterr().err
    assert "round 1: round failed: internal error RuntimeError: a bug ␛[31m" in err  # no escape reaches the tty
    assert len(lines) == 2 and "2 crit" in lines[1] and code == 2
    env.close()


def test_watch_escalates_up_the_roster_on_an_injected_clock(tmp_path, monkeypatch):
    import datetime as dt
    from zoneinfo import ZoneInfo

    from canteen_ops.lab.webhook import WebhookReceiver
    from tests.watch_fixtures import ROSTER

    clock = [dt.datetime(2026, 11, 30, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))]  # a Monday, working hours
    with WebhookReceiver() as receiver:
        monkeypatch.setenv("OPS_HOOK", receiver.url)
        inv = _small_inventory(tmp_path, "  notify:\n    - {name: group, url_env: OPS_HOOK}\n"
                                         "roster: " + json.dumps(ROSTER, ensure_ascii=False))
        env = Env(inventory_path=inv, db_path=tmp_path / "log.db", operator="tester", argv=["watch"])
        lines = []

        def next_hour(line):
            lines.append(line)
            clock[0] += dt.timedelta(hours=1)

        Watch(env, env.inventory().devices, interval_s=0, iterations=3, out=next_hour, clock=lambda: clock[0],
              skip=("stream", "picture", "coverage")).run()
        env.close()
        got = [g["body"] for g in receiver.wait_for(6)]
    assert "2 opened" in lines[0] and "2 escalated" in lines[1] and "2 escalated" in lines[2], lines
    titles = [g["title"][:6] for g in got]
    assert titles == ["【故障告警·"] * 2 + ["【故障升级·"] * 4
    assert all("值班人员：张伟" in g["message"] for g in got)
    assert all("升级至：李主管" in g["message"] for g in got[2:4])
    assert all("升级至：赵经理" in g["message"] for g in got[4:])


@pytest.mark.parametrize("skip", [("retention", "picture", "coverage"), ("stream", "picture", "coverage")])
def test_the_slow_group_runs_once_per_slow_interval_whatever_is_skipped(tmp_path, monkeypatch, skip):
    import canteen_ops.checks.run as run_mod

    inv = _small_inventory(tmp_path)
    env = Env(inventory_path=inv, db_path=tmp_path / "log.db", operator="tester", argv=["watch"])
    calls = []
    monkeypatch.setattr(run_mod, "run_checks", lambda devices, inv, names, **kw: calls.append(list(names)))
    Watch(env, env.inventory().devices, interval_s=0, iterations=3, out=lambda line: None, skip=skip).run()
    env.close()
    slow = [n for n in calls if "gaps" in n]
    assert len(calls) == 3 and len(slow) == 1 and calls[0] is slow[0], calls  # round 1 only (interval 60 min)
    assert not any(set(skip) & set(n) for n in calls)


def test_the_metrics_file_follows_new_results_without_rescanning_the_table(tmp_path, monkeypatch):
    import canteen_ops.checks.run as run_mod
    from canteen_ops.status import Result, Status
    from canteen_ops.store.log import MaintenanceLog

    inv = _small_inventory(tmp_path)
    env = Env(inventory_path=inv, db_path=tmp_path / "log.db", operator="tester", argv=["watch"])
    plan = [  # per round: (device, check, status); s001-cam02 is not watched (its rows stay out of the file)
        [("s001-cam01", "reachable", Status.OK), ("s001-cam01", "clock", Status.WARN), (None, "coverage", Status.OK),
         ("s001-cam02", "reachable", Status.CRIT)],
        [("s001-cam01", "clock", Status.OK), ("s001-cam01", "storage", Status.UNKNOWN)],
        [("s001-cam01", "reachable", Status.CRIT), (None, "coverage", Status.WARN), ("s001-cam01", "gaps", Status.NA)],
    ]
    rounds = iter(plan)

    def fake_run_checks(devices, inv, names, *, on_results, **kw):
        on_results([Result(d, c, s, f"{c} {s.value}", school_id="s001") for d, c, s in next(rounds)])

    scans = []
    real_latest = MaintenanceLog.latest_results
    monkeypatch.setattr(MaintenanceLog, "latest_results", lambda self, *a: scans.append(1) or real_latest(self, *a))
    monkeypatch.setattr(run_mod, "run_checks", fake_run_checks)
    prom = tmp_path / "m.prom"
    seen = []

    def after_round(line):  # the file of this round against one from a full scan of the table
        from canteen_ops.metrics import write_metrics

        log = MaintenanceLog.open(tmp_path / "log.db")
        full = [r for r in real_latest(log) if r["device_id"] in ("s001-cam01", None)]
        log.close()
        write_metrics(str(tmp_path / "full.prom"), env.inventory(), full, [], round_started=0, round_seconds=0,
                      rounds=0, pending_notifications=0)
        fleet = lambda p: [ln for ln in p.read_text().splitlines() if "_status" in ln or "_up" in ln]  # noqa: E731
        seen.append(fleet(prom))
        assert fleet(prom) == fleet(tmp_path / "full.prom")

    w = Watch(env, env.inventory().devices[:1], interval_s=0, iterations=3, out=after_round, metrics=prom)
    w.run()
    env.close()
    assert len(seen) == 3 and len(scans) == 1  # the whole table once, at the first round
    assert 'canteen_ops_check_status{check="reachable",device="s001-cam01",school="s001"} 2.0' in seen[2]
    assert 'canteen_ops_check_status{check="coverage",device="",school="s001"} 1.0' in seen[2]
    assert not any("s001-cam02" in ln for ln in seen[2])

"""`canteen-ops check` end to end in-process, over fake drivers on real loopback sockets."""

from __future__ import annotations

import json

import pytest

from canteen_ops.drivers import base
from canteen_ops.drivers.base import AuthFailed, Disk
from canteen_ops.store.log import MaintenanceLog
from tests.checks_fakes import FakeFleet


@pytest.fixture
def fleet(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_FLEET_PASSWORD", "pw")
    base.auth_guard.reset()
    f = FakeFleet(tmp_path)
    from canteen_ops.drivers import registry

    monkeypatch.setattr(registry, "open_driver", lambda device, **kw: f.factory(device))
    monkeypatch.setenv("CANTEEN_OPS_INVENTORY", str(f.path))
    yield f
    f.close()
    base.auth_guard.reset()


def db(tmp_path) -> MaintenanceLog:
    return MaintenanceLog.open(tmp_path / "log.db")


def test_all_ok_exit_0_collapses_ok_rows_and_logs_the_run(cli, fleet, tmp_path):
    r = cli("check", "--skip", "stream,picture")
    assert r.code == 0, r
    assert "测试小学" in r.out
    assert "46 checks ok on 7 devices (--all lists them)" in r.out
    assert "7 devices in 1 school" in r.out and "worst OK" in r.out
    assert "logged in as" not in r.out  # ok rows collapsed
    log = db(tmp_path)
    runs = log.query("SELECT * FROM runs")
    assert len(runs) == 1 and runs[0]["command"] == "check" and runs[0]["status"] == "ok"
    assert runs[0]["exit_code"] == 0 and runs[0]["operator"] == "tester"
    results = log.query("SELECT * FROM results")
    assert len(results) == 7 * 6 + 3 + 1  # 6 common checks each (storage too), 3 NVR-only, 1 coverage
    assert all(x["run_id"] == runs[0]["id"] for x in results)
    cov = [x for x in results if x["check_name"] == "coverage"]
    assert cov[0]["device_id"] is None and cov[0]["school_id"] == "sch-1"
    facts = [x for x in results if x["check_name"] == "facts" and x["device_id"] == "nvr-01"][0]
    assert facts["data"]["serial"] == "NVRSN01"


def test_all_lists_ok_rows(cli, fleet):
    r = cli("check", "--all", "--only", "login")
    assert r.code == 0 and r.out.count("logged in as admin") == 7


def test_crit_first_then_warn_exit_2_and_run_status(cli, fleet, tmp_path):
    fleet.states["nvr-01"].disks = [Disk("1", "error", "error", 3815447.0, 0.0)]
    fleet.states["cam-02"].drift_s = 30
    fleet.states["cam-03"].errors["login"] = AuthFailed("401")
    r = cli("check", "--skip", "stream,picture")
    assert r.code == 2, r
    out = r.out
    i_crit, i_warn = out.index("disk 1: error"), out.index("clock 30 s ahead")
    assert out.index("auth failed") < i_warn and i_crit < i_warn
    assert "3 crit" in out and "1 warn" in out and "worst CRIT" in out
    run = db(tmp_path).query("SELECT * FROM runs")[0]
    assert run["status"] == "crit" and run["exit_code"] == 2


def test_exit_codes_warn_and_unknown(cli, fleet):
    fleet.states["cam-01"].ntp_enabled = False
    assert cli("check", "--only", "ntp").code == 1
    from canteen_ops.drivers.base import ProtocolError

    fleet.states["cam-01"].ntp_enabled = True
    fleet.states["cam-01"].errors["clock"] = ProtocolError("unreadable answer")
    r = cli("check", "--only", "ntp", "--device", "cam-01")
    assert r.code == 3 and "UNKNOWN" in r.out


def test_na_is_shown_logged_and_in_json_but_never_counted(cli, fleet, tmp_path):
    from canteen_ops.drivers.base import NotSupported

    fleet.states["cam-01"].errors["clock"] = NotSupported("clock")
    r = cli("check", "--only", "ntp", "--device", "cam-01")
    assert r.code == 0 and "N/A" in r.out and "not applicable" in r.out and "1 n/a" in r.out
    assert "worst OK" in r.out
    r = cli("check", "--only", "ntp", "--device", "cam-01", "--json")
    assert r.code == 0 and [json.loads(line)["status"] for line in r.out.splitlines()] == ["n/a"]
    r = cli("check", "--only", "ntp", "--device", "cam-01", "--quiet")
    assert r.code == 0 and r.out == ""  # not a problem
    log = db(tmp_path)
    assert {x["status"] for x in log.query("SELECT status FROM results WHERE check_name = 'ntp'")} == {"n/a"}
    assert {(x["status"], x["exit_code"]) for x in log.query("SELECT status, exit_code FROM runs")} == {("ok", 0)}


def test_json_lines_one_object_per_result(cli, fleet, tmp_path):
    fleet.offline("cam-06")
    r = cli("check", "--json", "--only", "reachable,coverage")
    assert r.code == 2
    objs = [json.loads(line) for line in r.out.splitlines()]
    assert len(objs) == 8
    keys = {"id", "run_id", "school_id", "device_id", "check", "status", "summary", "data", "duration_ms", "kb"}
    assert all(set(o) == keys for o in objs)
    off = [o for o in objs if o["device_id"] == "cam-06"][0]
    assert off["status"] == "crit" and off["summary"].startswith("offline (connection refused")
    assert off["kb"] == "KB-OFFLINE" and all(o["kb"] is None for o in objs if o["status"] == "ok")
    cov = [o for o in objs if o["check"] == "coverage"][0]
    assert cov["device_id"] is None and cov["data"]["uncovered"] == ["留样区"]
    ids = {x["id"] for x in db(tmp_path).query("SELECT id FROM results")}
    assert {o["id"] for o in objs} == ids


def test_only_selects_checks_and_selection_flags(cli, fleet, tmp_path):
    r = cli("check", "--only", "reachable", "--only", "clock", "--kind", "nvr", "--json")
    assert r.code == 0
    objs = [json.loads(line) for line in r.out.splitlines()]
    assert [(o["device_id"], o["check"]) for o in objs] == [("nvr-01", "reachable"), ("nvr-01", "clock")]


def test_unknown_check_is_usage_error(cli, fleet, tmp_path):
    r = cli("check", "--only", "clok")
    assert r.code == 64 and "unknown check clok" in r.err
    assert not (tmp_path / "log.db").exists() or db(tmp_path).query("SELECT * FROM runs") == []


def test_no_match_is_usage_error(cli, fleet):
    r = cli("check", "--device", "nope-*")
    assert r.code == 64 and "no devices match" in r.err


def test_quiet_prints_only_problems(cli, fleet):
    r = cli("check", "--quiet", "--skip", "stream,picture")
    assert r.code == 0 and r.out == ""
    fleet.states["cam-02"].drift_s = -20
    r = cli("check", "--quiet", "--skip", "stream,picture")
    assert r.code == 1
    assert r.out == "WARN    测试小学 cam-02 clock: clock 20 s behind (> 5 s)  (kb: KB-CLOCK-DRIFT)\n"
    r = cli("--quiet", "check", "--skip", "stream,picture")
    assert r.code == 1 and r.out.startswith("WARN")


def test_open_incidents_flag(cli, fleet, tmp_path):
    fleet.offline("cam-01")
    try:
        import canteen_ops.incidents  # noqa: F401
    except ImportError:
        r = cli("check", "--open-incidents", "--skip", "stream,picture")
        assert r.code == 64 and "--open-incidents" in r.err and "not part of this build" in r.err
        return
    r = cli("check", "--open-incidents", "--skip", "stream,picture")
    assert r.code == 2
    incidents = db(tmp_path).query("SELECT * FROM incidents")
    assert incidents and any("cam-01" in (i["device_ids"] or []) for i in incidents)
    n = len(incidents)
    assert cli("check", "--open-incidents", "--skip", "stream,picture").code == 2
    assert len(db(tmp_path).query("SELECT * FROM incidents")) == n  # updated, never duplicated


def test_ctrl_c_keeps_finished_results_and_marks_run_interrupted(cli, fleet, tmp_path, monkeypatch):
    from canteen_ops.checks import device as device_checks

    real = device_checks.facts

    def facts(ctx):
        if ctx.device.id == "cam-04":
            raise KeyboardInterrupt
        return real(ctx)

    # Interrupt in the calling thread, as Ctrl-C would: after some results were recorded.
    from canteen_ops.cli import check_cmd

    seen = []
    orig_add = check_cmd._Output.add

    def add(self, r, rid, run_id):
        seen.append(r)
        orig_add(self, r, rid, run_id)
        if len(seen) == 5:
            raise KeyboardInterrupt

    monkeypatch.setattr(check_cmd._Output, "add", add)
    r = cli("check", "--workers", "1", "--skip", "stream,picture")
    assert r.code == 130
    log = db(tmp_path)
    run = log.query("SELECT * FROM runs")[0]
    assert run["status"] == "interrupted" and run["exit_code"] == 130
    assert len(log.query("SELECT * FROM results")) >= 5
    assert "interrupted" in r.out


def test_ctrl_c_while_a_device_is_recorded_keeps_log_and_screen_in_step(cli, fleet, tmp_path, monkeypatch):
    """A device's results are recorded in one transaction, then shown: Ctrl-C inside that transaction rolls the
    device back whole, and it is not shown either; every device before it is in the log and on the screen."""
    from canteen_ops.cli import check_cmd

    calls = []
    real = MaintenanceLog.record_results

    def record_results(self, run_id, results):
        calls.append([r.device_id for r in results])
        if len(calls) == 3:
            with self.transaction():
                real(self, run_id, results)  # written, then interrupted before the commit
                raise KeyboardInterrupt
        return real(self, run_id, results)

    shown = []
    orig_add = check_cmd._Output.add
    monkeypatch.setattr(check_cmd._Output, "add", lambda self, r, rid, run_id: (shown.append(r.device_id),
                                                                                orig_add(self, r, rid, run_id)))
    monkeypatch.setattr(MaintenanceLog, "record_results", record_results)
    r = cli("check", "--workers", "1", "--skip", "stream,picture")
    assert r.code == 130
    recorded = [row["device_id"] for row in db(tmp_path).query("SELECT device_id FROM results ORDER BY seq")]
    assert recorded == shown == calls[0] + calls[1]
    assert len(set(calls[0])) == 1 and len(calls[0]) > 1  # a batch is one device's results


def test_fresh_log_areas_not_checked_are_unknown_and_open_no_incident(cli, fleet, tmp_path):
    # A first run that checks three of the six cameras: the other three areas are "not checked yet", not CRIT.
    r = cli("check", "--json", "--only", "reachable,coverage", "--device", "nvr-01", "--device", "cam-0[123]",
            "--open-incidents")
    objs = [json.loads(line) for line in r.out.splitlines()]
    cov = [o for o in objs if o["check"] == "coverage"][0]
    assert cov["status"] == "unknown", cov
    assert cov["data"]["uncovered"] == [] and len(cov["data"]["unchecked"]) == 3
    assert "not checked yet" in cov["summary"] and "cam-06 (not checked yet)" in cov["summary"]
    assert r.code == 3
    assert db(tmp_path).query("SELECT * FROM incidents") == []


def test_fresh_log_a_known_hole_is_still_crit(cli, fleet, tmp_path):
    fleet.offline("cam-01")
    r = cli("check", "--json", "--only", "reachable,coverage", "--device", "nvr-01", "--device", "cam-0[12]")
    cov = [json.loads(line) for line in r.out.splitlines() if '"coverage"' in line][0]
    assert cov["status"] == "crit" and len(cov["data"]["uncovered"]) == 1 and len(cov["data"]["unchecked"]) == 4

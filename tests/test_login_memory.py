"""Refused logins are remembered across commands (store/logins.py): the lab's wrong-password device, several CLI
invocations in a row as a nightly job runs them (each invocation is its own run: conftest resets auth_guard)."""

from __future__ import annotations

import pytest

from canteen_ops.store.log import MaintenanceLog


@pytest.mark.parametrize("vendor", ["hikvision", "dahua"])
def test_a_refused_login_is_not_retried_by_the_next_command(lab, lab_faults, lab_env, cli, tmp_path, vendor):
    cam = lab.first(vendor, "camera")
    lab_faults.set(cam.id, "wrong-password")
    r = cli("check", "--device", cam.id, "--skip", "stream,picture")
    assert r.code == 2 and "auth failed: wrong username or password" in r.out
    assert cam.failed_logins == 1

    before = lab.thread.service.http.requests
    r = cli("backup", "run", "--device", cam.id)
    assert r.code != 0
    assert "not tried: the device refused our login at" in r.out and "--force-login" in r.out
    r = cli("check", "--device", cam.id, "--skip", "stream,picture", "--json")
    import json

    login = [json.loads(x) for x in r.out.splitlines() if json.loads(x)["check"] == "login"][0]
    assert login["status"] == "crit" and login["summary"].startswith("not tried: the device refused our login")
    assert 0 < login["data"]["unlock_in_s"] <= 1800
    assert cam.failed_logins == 1  # nothing with credentials reached the device
    assert lab.thread.service.http.requests - before == 0  # not even an unauthenticated probe

    rows = MaintenanceLog.open(tmp_path / "log.db").query("SELECT * FROM login_refusals")
    assert [(x["device_id"], x["kind"], x["command"]) for x in rows] == [(cam.id, "refused", "check")]
    assert cam.password not in str(rows)

    r = cli("--force-login", "check", "--device", cam.id, "--only", "reachable,login")
    assert r.code == 2 and "auth failed: wrong username or password" in r.out
    assert cam.failed_logins == 2  # the technician asked for it


def test_the_window_passes(lab, lab_faults, lab_env, cli, tmp_path):
    cam = lab.first("hikvision", "camera")
    lab_faults.set(cam.id, "wrong-password")
    assert cli("check", "--device", cam.id, "--only", "reachable,login").code == 2
    log = MaintenanceLog.open(tmp_path / "log.db")
    with log.transaction() as conn:  # 31 minutes later
        conn.execute("UPDATE login_refusals SET until = '2000-01-01T00:00:00+00:00'")
    lab_faults.clear(cam.id, "wrong-password")
    r = cli("check", "--device", cam.id, "--only", "reachable,login")
    assert r.code == 0, r.out


def test_a_dahua_lock_is_remembered_for_the_time_the_device_said(lab, lab_faults, lab_env, cli, tmp_path):
    import datetime as dt

    nvr = lab.first("dahua", "nvr")
    lab_faults.set(nvr.id, "locked")
    r = cli("check", "--device", nvr.id, "--only", "reachable,login")
    assert r.code == 2 and "locked: the device refuses logins from us; unlocks in ~30 min" in r.out
    (row,) = MaintenanceLog.open(tmp_path / "log.db").query("SELECT * FROM login_refusals")
    assert row["kind"] == "locked"
    left = dt.datetime.fromisoformat(row["until"]) - dt.datetime.fromisoformat(row["refused_at"])
    assert 1790 <= left.total_seconds() <= 1800  # RmLock from the 403 body
    before = lab.thread.service.http.requests
    r = cli("snapshot", "take", "--device", nvr.id)
    assert "not tried: the device locked us out at" in r.out + r.err
    assert lab.thread.service.http.requests == before


def test_the_memory_reaches_checks_worker_processes(lab, lab_faults, lab_env, cli, tmp_path):
    """`check --processes 2` (spawned workers, each with its share of the devices): a refusal seen in a worker is
    remembered, and a remembered one withholds the credentials in a worker too."""
    cam = lab.first("hikvision", "camera")
    other = lab.first("dahua", "camera")
    lab_faults.set(cam.id, "wrong-password")
    devices = ["--device", cam.id, "--device", other.id]
    r = cli("check", *devices, "--only", "reachable,login", "--processes", "2")
    assert r.code == 2 and "auth failed: wrong username or password" in r.out
    rows = MaintenanceLog.open(tmp_path / "log.db").query("SELECT device_id FROM login_refusals")
    assert [x["device_id"] for x in rows] == [cam.id]
    r = cli("check", *devices, "--only", "reachable,login", "--processes", "2")
    assert "not tried: the device refused our login" in r.out
    assert cam.failed_logins == 1


def test_the_memory_reads_the_log_only_when_first_used(tmp_path, monkeypatch):
    """Every command that opens the log makes a memory (log list, kb, report too): it opens no connection of its
    own until a driver asks it or tells it something."""
    import sqlite3

    from canteen_ops.drivers.base import AuthFailed
    from canteen_ops.store import logins

    MaintenanceLog.open(tmp_path / "log.db").close()
    opened = []
    real = logins.LoginMemory._connect
    monkeypatch.setattr(logins.LoginMemory, "_connect", lambda self: opened.append(1) or real(self))
    memory = logins.LoginMemory(tmp_path / "log.db", command="check")
    assert opened == []
    assert memory.withheld("cam-1") is None and len(opened) == 1
    memory.record("cam-1", AuthFailed("wrong username or password"))
    assert "refused our login" in str(memory.withheld("cam-1")) and len(opened) == 2  # read once, written once
    fresh = logins.LoginMemory(tmp_path / "log.db", command="backup")
    assert "during `check`" in str(fresh.withheld("cam-1"))
    assert logins.LoginMemory(tmp_path / "log.db", force=True).withheld("cam-1") is None
    conn = sqlite3.connect(tmp_path / "log.db")
    assert conn.execute("SELECT count(*) FROM login_refusals").fetchone() == (1,)
    conn.close()

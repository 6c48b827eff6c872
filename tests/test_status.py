"""`canteen-ops status`: what is wrong now, from the log on disk only — no socket is opened."""

from __future__ import annotations

import datetime as dt
import json
import socket

import pytest

from canteen_ops.status import Result, Status
from canteen_ops.store.log import MaintenanceLog
from canteen_ops.timeutil import iso, utcnow

INVENTORY = """\
version: 1
schools:
  - id: s1
    name: 一小
    devices:
      - {id: s1-nvr, kind: nvr, vendor: hikvision, host: 127.0.0.1, port: 9}
      - {id: s1-cam, kind: camera, vendor: hikvision, host: 127.0.0.1, port: 9, area: 烹饪区}
  - id: s2
    name: 二小
    devices:
      - {id: s2-nvr, kind: nvr, vendor: dahua, host: 127.0.0.1, port: 9}
  - id: s3
    name: 三小
    devices:
      - {id: s3-cam, kind: camera, vendor: onvif, host: 127.0.0.1, port: 9, area: 专间}
"""


@pytest.fixture
def site(tmp_path, monkeypatch):
    inv = tmp_path / "inventory.yaml"
    inv.write_text(INVENTORY, encoding="utf-8")  # every host is a dead address (port 9, nothing listening)
    monkeypatch.setenv("CANTEEN_OPS_INVENTORY", str(inv))
    log = MaintenanceLog.open(tmp_path / "log.db")
    with log.run("check", [], "tester") as run:
        run.record_all([
            Result("s1-nvr", "reachable", Status.OK, "up", school_id="s1"),
            Result("s1-nvr", "storage", Status.CRIT, "disk 1: error", school_id="s1"),
            Result("s1-cam", "clock", Status.WARN, "clock 30 s ahead", school_id="s1"),
            Result("s2-nvr", "reachable", Status.OK, "up", school_id="s2"),
            Result(None, "coverage", Status.OK, "all covered", school_id="s2"),
        ])
    # the disk finding is from five hours ago
    old = log.query("SELECT id FROM results WHERE device_id = 's1-nvr' AND check_name = 'storage'")[0]["id"]
    log.conn.execute("UPDATE results SET observed_at = ? WHERE id = ?",
                     [iso(utcnow() - dt.timedelta(hours=5)), old])
    # an older crit that was fixed since: the newest result of that check is ok
    log.record_result(None, Result("s2-nvr", "clock", Status.CRIT, "clock reset to 1970", school_id="s2"))
    log.record_result(None, Result("s2-nvr", "clock", Status.OK, "clock within 1 s", school_id="s2"))
    yield log
    log.close()


@pytest.fixture
def no_sockets(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("status opened a socket")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_status_from_the_log_worst_first_offline(cli, site, no_sockets):
    r = cli("status")
    assert r.code == 2, r
    out = r.out
    assert out.index("一小") < out.index("三小")  # crit school first, then unknown
    assert "disk 1: error" in out and "clock 30 s ahead" in out
    assert "5 h" in out.split("disk 1: error")[1].splitlines()[0]  # the age of that result
    assert "clock reset" not in out  # superseded by a newer ok
    assert "never checked" in out and "s3-cam" in out
    assert "二小" not in out.split("worst")[0].replace("1 with nothing wrong", "")  # ok school collapsed
    assert "1 with nothing wrong" in out
    assert cli("status", "--all").out.count("二小") == 1


def test_status_json_ages_and_incidents(cli, site, no_sockets):
    from canteen_ops.incidents import open_incident
    from canteen_ops.inventory.loader import load_inventory

    inv = load_inventory(site.path.parent / "inventory.yaml")
    open_incident(site, inv, level="general", title="硬盘故障", actor="tester", device_ids=["s1-nvr"],
                  opened_at=utcnow() - dt.timedelta(hours=10))  # on-site deadline long past
    open_incident(site, inv, level="general", title="时钟", actor="tester", device_ids=["s2-nvr"])
    r = cli("status", "--json")
    assert r.code == 2
    rep = json.loads(r.out)
    assert [s["id"] for s in rep["schools"]] == ["s1", "s3", "s2"]  # crit, unknown, ok
    s1, s3, s2 = rep["schools"]
    assert s1["status"] == "crit" and s1["open_incidents"] == 1 and s1["overdue_incidents"] == 1
    assert [p["check"] for p in s1["problems"]] == ["storage", "clock"]
    assert [abs(p["age_s"] - a) < 60 for p, a in zip(s1["problems"], (5 * 3600, 0))] == [True, True]
    assert s2["status"] == "ok" and s2["open_incidents"] == 1 and s2["overdue_incidents"] == 0
    assert s3["status"] == "unknown" and s3["never_checked"] == ["s3-cam"]


def test_status_selection_and_exit_codes(cli, site, no_sockets):
    assert cli("status", "--school", "二小").code == 0
    assert cli("status", "--school", "s3").code == 3
    assert cli("status", "--device", "s1-cam").code == 1
    assert cli("status", "--device", "nothing-*").code == 64


def test_status_reads_the_log_on_disk(cli, tmp_path, site, no_sockets):
    r = cli("--db", str(tmp_path / "other.db"), "status", "--json")
    rep = json.loads(r.out)  # no log yet: every device is "never checked"
    assert r.code == 3 and all(s["status"] == "unknown" for s in rep["schools"])
    assert not (tmp_path / "other.db").exists()  # reading the state creates no log


def test_status_without_a_log_opens_no_database(tmp_path, site):
    """No log yet: the report is built without opening (or importing) a database at all."""
    import subprocess
    import sys

    code = ("import sys; from canteen_ops.cli.app import main\n"
            "try:\n    main(['--db', sys.argv[1], 'status', '--json'])\nexcept SystemExit as e:\n"
            "    print('sqlite_utils' in sys.modules, e.code, file=sys.stderr)")
    p = subprocess.run([sys.executable, "-c", code, str(tmp_path / "none.db")], capture_output=True, text=True,
                       timeout=60)
    assert p.stderr.split()[-2:] == ["False", "3"], p.stderr
    assert not (tmp_path / "none.db").exists()


def test_status_into_a_closed_pipe_is_not_a_finding(tmp_path, site):
    """`canteen-ops status | head -1`: the reader leaves early; exit 141 (SIGPIPE's), never 1 (warn) or 70."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "COLUMNS": "80"}
    proc = subprocess.Popen([sys.executable, "-m", "canteen_ops", "status", "--all"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    proc.stdout.close()  # like `head` after it has read enough
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141, err
    assert "internal error" not in err and "Traceback" not in err


def test_status_renders_hostile_text_as_text(cli, site, no_sockets):
    site.record_result(None, Result("s3-cam", "facts", Status.WARN, "[bold red]x[/] \x1b[31m", school_id="s3"))
    r = cli("status")
    assert "[bold red]x[/]" in r.out and "\x1b[31m" not in r.out


def test_status_quiet_prints_one_line_per_problem(cli, site, no_sockets):
    r = cli("-q", "status")
    assert r.code == 2
    lines = r.out.splitlines()
    assert lines[0].startswith("CRIT    一小 s1-nvr storage: disk 1: error (5 h ago)")
    assert any(ln.startswith("UNKNOWN 三小 s3-cam: never checked") for ln in lines)
    assert not any("二小" in ln for ln in lines)
    assert cli("-q", "status", "--school", "二小").out == ""


def test_status_takes_n_a_for_nothing_wrong(cli, site, no_sockets):
    """A check that does not apply (storage on an ONVIF NVR, a camera without a card) is n/a: not a problem."""
    site.record_result(None, Result("s2-nvr", "storage", Status.NA, "not applicable: this dahua device does not "
                                    "offer it (storage)", school_id="s2"))
    r = cli("status", "--school", "二小", "--json")
    assert r.code == 0
    (school,) = json.loads(r.out)["schools"]
    assert school["status"] == "ok" and school["problems"] == []

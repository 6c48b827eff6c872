"""Incidents opened outside the watch (`check --open-incidents`, `incident open`, playbooks) reach the people on
duty at the end of that command, through the watch's outbox, against the lab and a webhook receiver on loopback;
a chat server that is down never changes the command's outcome. And a job that found faults is no failed job."""

from __future__ import annotations

import textwrap

import pytest

from canteen_ops.lab.webhook import WebhookReceiver
from canteen_ops.store.log import MaintenanceLog
from tests.watch_fixtures import closed_port, inventory_with


@pytest.fixture
def receiver(monkeypatch):
    with WebhookReceiver() as r:
        monkeypatch.setenv("TEST_HOOK_URL", r.url)
        yield r


@pytest.fixture
def inv(lab, tmp_path):
    return inventory_with(lab.inventory, tmp_path / "inv.yaml", schools=("s001",),
                          notify=[{"name": "district-group", "url_env": "TEST_HOOK_URL"}])


def _outbox(tmp_path):
    log = MaintenanceLog.open(tmp_path / "log.db")
    try:
        return log.query("SELECT * FROM outbox ORDER BY seq")
    finally:
        log.close()


def test_check_open_incidents_sends_at_once_and_the_watch_does_not_repeat(lab, lab_faults, inv, tmp_path, cli,
                                                                         receiver):
    lab_faults.set("s001-nvr", "offline")
    r = cli("-i", inv, "check", "--device", "s001-nvr", "--only", "reachable", "--open-incidents")
    assert r.code == 2, r
    got = receiver.wait_for(1, timeout=5)
    assert len(got) == 1, got  # before any watch round
    assert got[0]["body"]["title"].startswith("【故障告警") and "s001-nvr" in got[0]["body"]["title"]
    assert "值班人员：" in got[0]["body"]["message"]
    assert [o["state"] for o in _outbox(tmp_path)] == ["sent"]

    from canteen_ops.context import Env
    from canteen_ops.watch import Watch

    lab_faults.clear("s001-nvr")
    env = Env(inventory_path=inv, db_path=tmp_path / "log.db", operator="tester", argv=["watch"])
    lines = []
    nvr = [d for d in env.inventory().devices if d.id == "s001-nvr"]
    Watch(env, nvr, interval_s=0, iterations=1, skip=("stream", "picture", "coverage"), out=lines.append).run()
    env.close()
    assert "assigned" not in lines[0], lines  # already announced by the check
    titles = [g["body"]["title"] for g in receiver.wait_for(2, timeout=5)]
    assert len(titles) == 2 and titles[1].startswith("【故障恢复"), titles  # only the recovery is new


def test_a_dead_chat_server_never_fails_the_command_and_the_message_waits(lab, lab_faults, inv, tmp_path, cli,
                                                                         receiver):
    receiver.fail_next(5)
    lab_faults.set("s001-nvr", "offline")
    r = cli("-i", inv, "check", "--device", "s001-nvr", "--only", "reachable", "--open-incidents")
    assert r.code == 2, r  # the check's own verdict, not the notification's
    assert "notification not delivered now" in r.err and "TEST_HOOK_URL" not in r.err
    (row,) = _outbox(tmp_path)
    assert row["state"] == "pending" and row["attempts"] == 1 and row["last_error"]
    # the next command delivers what waited (here: the incident opened by hand)
    receiver.fail_next(0)
    assert cli("-i", inv, "incident", "open", "--level", "general", "--title", "镜头被遮挡", "--device",
               "s001-cam01").code == 0
    titles = [g["body"]["title"] for g in receiver.wait_for(2, timeout=5)]
    assert len(titles) == 2 and any("s001-nvr" in t for t in titles) and any("s001-cam01" in t for t in titles)
    assert {o["state"] for o in _outbox(tmp_path)} == {"sent"}


def test_an_unreachable_chat_server_costs_bounded_time(lab, inv, tmp_path, cli, monkeypatch):
    import time

    from canteen_ops.notify import hooks, outbox

    monkeypatch.setenv("TEST_HOOK_URL", f"json://127.0.0.1:{closed_port()}/hook")
    monkeypatch.setattr(outbox, "SEND_TIMEOUT_S", 2.0)
    monkeypatch.setattr(hooks, "ONE_SHOT_BUDGET_S", 1.0)
    t0 = time.monotonic()
    r = cli("-i", inv, "incident", "open", "--level", "major", "--title", "录像机离线", "--device", "s001-nvr")
    assert r.code == 0 and time.monotonic() - t0 < 8, r
    assert [o["state"] for o in _outbox(tmp_path)] == ["pending"]


def _playbook(tmp_path, name, steps):
    p = tmp_path / f"{name}.yaml"
    p.write_text(f"name: {name}\nkind: job\nsteps:\n" + textwrap.indent(textwrap.dedent(steps), "  "),
                 encoding="utf-8")
    return p


def test_a_job_that_finds_faults_announces_them_but_is_no_failed_job(lab, lab_faults, inv, tmp_path, cli,
                                                                    receiver):
    lab_faults.set("s001-nvr", "offline")
    book = _playbook(tmp_path, "inspection", """\
        - name: 巡检 check
          check: {open_incidents: true, only: reachable}
          target: {device: [s001-nvr]}
          on_failure: continue
        - note: {text: 巡检完成}
        """)
    r = cli("-i", inv, "playbook", "run", book, "--non-interactive")
    assert r.code == 2, r  # the worst finding, as for `check`
    titles = [g["body"]["title"] for g in receiver.wait_for(1, timeout=5)]
    assert len(receiver.received) == 1 and titles[0].startswith("【故障告警"), titles
    assert not [o for o in _outbox(tmp_path) if o["event"] == "job-failed"]


def test_a_job_whose_step_could_not_run_is_a_failed_job(lab, inv, tmp_path, cli, receiver, monkeypatch):
    monkeypatch.setenv("CANTEEN_OPS_UPSTREAM", f"http://127.0.0.1:{closed_port()}/canteen")
    book = _playbook(tmp_path, "nightly", """\
        - name: 上传 sync
          sync: {}
        """)
    r = cli("-i", inv, "playbook", "run", book, "--non-interactive")
    assert r.code == 2, r
    (got,) = [g["body"] for g in receiver.wait_for(1, timeout=5)]
    assert got["title"] == "【任务失败】nightly：失败" and "第 1 步 上传 sync：未能执行" in got["message"], got


def test_incident_open_sends_and_assigns_at_once(lab, inv, tmp_path, cli, receiver):
    r = cli("-i", inv, "incident", "open", "--level", "major", "--title", "录像机离线", "--device", "s001-nvr")
    assert r.code == 0, r
    (got,) = [g["body"] for g in receiver.wait_for(1, timeout=5)]
    assert "s001-nvr" in got["title"] and "值班人员：" in got["message"]
    log = MaintenanceLog.open(tmp_path / "log.db")
    (inc,) = log.query("SELECT * FROM incidents")
    log.close()
    assert inc["assigned_to"]  # the technician on duty (the lab's roster)

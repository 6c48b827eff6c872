"""Alerts and escalation without devices: the roster on a simulated clock, the outbox's dedupe, rate limit,
quiet hours and retries against a webhook receiver on loopback, and secrets in notify URLs."""

from __future__ import annotations

import datetime as dt
import json
import textwrap
from zoneinfo import ZoneInfo

import pytest

from canteen_ops.escalation import assign, due_steps
from canteen_ops.incidents import escalate_overdue, events, track_result
from canteen_ops.inventory.loader import load_inventory
from canteen_ops.lab.webhook import WebhookReceiver
from canteen_ops.notify.messages import Message, incident_message
from canteen_ops.notify.outbox import deliver, enqueue
from canteen_ops.store.log import MaintenanceLog
from canteen_ops.timeutil import iso

SH = ZoneInfo("Asia/Shanghai")
MONDAY_10 = dt.datetime(2026, 11, 30, 10, 0, tzinfo=SH)  # inside working hours: a general incident has 2 h

INVENTORY = """\
version: 1
settings:
  timezone: Asia/Shanghai
  notify:
    - name: group
      url_env: TEST_HOOK_URL
{extra}
roster:
  - name: 张伟
    role: technician
    phone: "13800000001"
    shifts:
      - {{days: [mon, tue, wed, thu, fri], start: "08:00", end: "18:00"}}
  - name: 王芳
    role: technician
    shifts:
      - {{days: [mon, tue, wed, thu, fri], start: "18:00", end: "08:00"}}
      - {{days: [sat, sun]}}
  - name: 李主管
    role: supervisor
    phone: "13900000001"
    shifts: [{{}}]
  - name: 赵经理
    role: manager
    phone: "13700000001"
    shifts: [{{}}]
schools:
  - id: s001
    name: 第一实验小学
    devices:
      - {{id: s001-cam01, kind: camera, vendor: hikvision, host: 127.0.0.1, port: 9, area: 烹饪区, name: 炒锅}}
"""


@pytest.fixture
def receiver(monkeypatch):
    with WebhookReceiver() as r:
        monkeypatch.setenv("TEST_HOOK_URL", r.url)
        yield r


def _inventory(tmp_path, extra: str = ""):
    p = tmp_path / "inv.yaml"
    p.write_text(INVENTORY.format(extra=textwrap.indent(extra, "      ") if extra else ""), encoding="utf-8")
    return load_inventory(p)


@pytest.fixture
def log(tmp_path):
    lg = MaintenanceLog.open(tmp_path / "n.db")
    yield lg
    lg.close()


def _result(status: str, summary: str = "offline (connection refused)") -> dict:
    return {"id": None, "status": status, "check_name": "reachable", "device_id": "s001-cam01",
            "school_id": "s001", "summary": summary}


def _msg(n: int, level: str = "general") -> Message:
    return Message(event="opened", title=f"告警 {n}", body=f"第 {n} 条", level=level, incident_id=f"inc-{n}")


def test_escalation_goes_up_the_roster_once_per_step_on_a_simulated_clock(tmp_path, log, receiver):
    inv = _inventory(tmp_path)
    hold = dt.timedelta(minutes=30)
    action, inc = track_result(log, inv, _result("crit"), now=MONDAY_10, hold_down=hold)
    assert action == "opened" and inc["level"] == "general"
    assert inc["arrive_deadline"] == iso(MONDAY_10 + dt.timedelta(hours=2))
    person = assign(log, inv, inc, MONDAY_10)
    assert person.name == "张伟"  # the day-shift technician
    enqueue(log, inv, incident_message("opened", inc, inv, assignee=person), f"opened:{inc['id']}", now=MONDAY_10)

    steps = []
    for minutes in (0, 30, 59, 60, 61, 90, 119, 120, 121, 180):
        now = MONDAY_10 + dt.timedelta(minutes=minutes)
        for i, step, who in due_steps(log, inv, now):
            steps.append((minutes, step, who.name))
            enqueue(log, inv, incident_message("escalated", i, inv, step=step, escalated_to=who),
                    f"escalated:{i['id']}:0:{step}", now=now)
        escalate_overdue(log, now)
    assert steps == [(60, 1, "李主管"), (120, 2, "赵经理")]  # 50 % and 100 % of the 2 h, each once
    row = log.get("incidents", inc["id"])
    assert row["escalated_at"] == iso(MONDAY_10 + dt.timedelta(minutes=121))
    assert [e["action"] for e in events(log, inc["id"])] == ["open", "assign", "escalate-step", "escalate-step",
                                                             "escalate"]
    assert row["data"]["assignee"]["name"] == "张伟"

    d = deliver(log, inv, now=MONDAY_10 + dt.timedelta(minutes=121))
    assert d.sent == 3 and d.failed == 0
    got = [g["body"] for g in receiver.wait_for(3)]
    assert got[0]["title"].startswith("【故障告警·一般】第一实验小学（s001）")
    assert "值班人员：张伟（值班技术员） 13800000001" in got[0]["message"]
    assert "区域：烹饪区" in got[0]["message"] and "设备：s001-cam01（炒锅）" in got[0]["message"]
    assert "到场时限：2026-11-30 12:00" in got[0]["message"]
    assert "升级至：李主管（主管） 13900000001" in got[1]["message"] and "已过半" in got[1]["message"]
    assert "升级至：赵经理（经理）" in got[2]["message"] and "到场时限已过" in got[2]["message"]


def test_arrival_stops_the_escalation(tmp_path, log):
    from canteen_ops.incidents import arrive

    inv = _inventory(tmp_path)
    _, inc = track_result(log, inv, _result("crit"), now=MONDAY_10, hold_down=dt.timedelta(minutes=30))
    assert [s for _, s, _ in due_steps(log, inv, MONDAY_10 + dt.timedelta(minutes=70))] == [1]
    arrive(log, inc["id"], "张伟", at=MONDAY_10 + dt.timedelta(minutes=80))
    assert due_steps(log, inv, MONDAY_10 + dt.timedelta(hours=3)) == []


def test_night_incident_goes_to_the_night_technician(tmp_path, log):
    inv = _inventory(tmp_path)
    night = dt.datetime(2026, 12, 1, 2, 0, tzinfo=SH)  # Tuesday 02:00: Monday's overnight shift
    _, inc = track_result(log, inv, _result("crit"), now=night, hold_down=dt.timedelta(minutes=30))
    assert assign(log, inv, inc, night).name == "王芳"


@pytest.mark.parametrize("by_hand", [False, True])
def test_a_reopened_incident_goes_to_whoever_is_on_duty_now_unless_a_person_assigned_it(tmp_path, log, by_hand):
    from canteen_ops.incidents import assign as assign_by_hand

    inv = _inventory(tmp_path)
    hold = dt.timedelta(minutes=30)
    day = dt.datetime(2026, 11, 30, 17, 50, tzinfo=SH)  # Monday: 张伟 until 18:00, then 王芳
    action, inc = track_result(log, inv, _result("crit"), now=day, hold_down=hold)
    assert action == "opened" and assign(log, inv, inc, day).name == "张伟"
    assert log.get("incidents", inc["id"])["data"]["assignee"]["by"] == "roster"
    if by_hand:
        assign_by_hand(log, inc["id"], "李工", who="老刘")
    assert track_result(log, inv, _result("ok"), now=day + dt.timedelta(minutes=5), hold_down=hold)[0] == "resolved"
    later = day + dt.timedelta(minutes=15)  # 18:05, within the hold-down: the same incident again
    action, inc = track_result(log, inv, _result("crit"), now=later, hold_down=hold)
    assert action == "reopened"
    person = assign(log, inv, inc, later)
    row = log.get("incidents", inc["id"])
    assigns = [e for e in events(log, inc["id"]) if e["action"] == "assign"]
    if by_hand:  # a person's choice stands
        assert person["name"] == "老刘" and row["assigned_to"] == "老刘"
        assert [e["actor"] for e in assigns] == ["canteen-ops", "李工"]
    else:  # the roster's own choice of 17:50 does not: the night technician gets it
        assert person.name == "王芳" and row["assigned_to"] == "王芳"
        assert row["data"]["assignee"]["name"] == "王芳" and row["data"]["assignee"]["by"] == "roster"
        assert [e["note"] for e in assigns] == ["张伟", "王芳"]


def test_a_persistent_fault_is_one_recurrence_event_not_one_per_round(tmp_path, log):
    inv = _inventory(tmp_path)
    hold = dt.timedelta(minutes=30)
    for n in range(12):  # an hour of a 5-minute watch with the camera still down
        action, inc = track_result(log, inv, _result("crit"), now=MONDAY_10 + dt.timedelta(minutes=5 * n),
                                   hold_down=hold)
    assert [e["action"] for e in events(log, inc["id"])] == ["open", "recurrence"]
    assert inc["data"]["occurrences"] == 12
    later = MONDAY_10 + dt.timedelta(hours=1)
    for summary in ("offline (no route to host)", "offline (no route to host)", "offline (connection refused)"):
        track_result(log, inv, _result("crit", summary), now=later, hold_down=hold)
    assert [e["note"] for e in events(log, inc["id"]) if e["action"] == "recurrence"] == [
        "offline (connection refused)", "offline (no route to host)", "offline (connection refused)"]


def test_flapping_device_reopens_once_per_hold_down(tmp_path, log):
    inv = _inventory(tmp_path)
    hold = dt.timedelta(minutes=30)
    t = MONDAY_10
    seen = []
    for minutes, status in ((0, "crit"), (5, "ok"), (10, "crit"), (15, "ok"), (20, "crit"), (25, "ok"),
                            (50, "ok"), (56, "ok"), (60, "crit")):
        action, _ = track_result(log, inv, _result(status), now=t + dt.timedelta(minutes=minutes), hold_down=hold)
        seen.append((minutes, action))
    # opened; resolved; back within the hold-down → reopened once; then it stays open while flapping and is
    # resolved only after a whole hold-down of good results since the last fault (25 → 56 min); a fault after
    # that is re-opened again (within the hold-down after that automatic resolve).
    assert seen == [(0, "opened"), (5, "resolved"), (10, "reopened"), (15, "updated"), (20, "updated"),
                    (25, "updated"), (50, "updated"), (56, "resolved"), (60, "reopened")]
    assert len(log.query("SELECT id FROM incidents")) == 1


def test_dedupe_and_rate_limit(tmp_path, log, receiver):
    inv = _inventory(tmp_path, "max_per_hour: 2")
    assert enqueue(log, inv, _msg(1), "opened:inc-1") == 1
    assert enqueue(log, inv, _msg(1), "opened:inc-1") == 0  # same event + incident: queued once
    for n in range(2, 6):
        enqueue(log, inv, _msg(n), f"opened:inc-{n}")
    d = deliver(log, inv, now=MONDAY_10)
    assert (d.sent, d.limited) == (2, 3)
    d = deliver(log, inv, now=MONDAY_10 + dt.timedelta(minutes=10))
    assert (d.sent, d.limited) == (0, 3)  # still two within the hour
    d = deliver(log, inv, now=MONDAY_10 + dt.timedelta(minutes=61))
    assert (d.sent, d.limited) == (2, 1)
    assert [g["body"]["title"] for g in receiver.wait_for(4)] == ["告警 1", "告警 2", "告警 3", "告警 4"]


def test_quiet_hours_hold_general_messages_and_summarise_them(tmp_path, log, receiver):
    inv = _inventory(tmp_path, 'quiet_hours: "22:00-07:00"')
    night = dt.datetime(2026, 11, 30, 23, 0, tzinfo=SH)
    for n in (1, 2, 3):
        enqueue(log, inv, _msg(n), f"opened:inc-{n}", now=night)
    enqueue(log, inv, _msg(9, "major"), "opened:inc-9", now=night)
    d = deliver(log, inv, now=night)
    assert (d.sent, d.held) == (1, 3)  # a major incident is never held
    assert deliver(log, inv, now=night + dt.timedelta(hours=2)).sent == 0
    d = deliver(log, inv, now=dt.datetime(2026, 12, 1, 7, 1, tzinfo=SH))
    assert d.sent == 3
    got = [g["body"] for g in receiver.wait_for(2)]
    assert got[0]["title"] == "告警 9"
    assert got[1]["title"] == "【静默时段汇总】3 条一般告警"
    assert all(f"告警 {n}" in got[1]["message"] for n in (1, 2, 3))
    assert len(receiver.received) == 2
    assert {r["state"] for r in log.query("SELECT state FROM outbox")} == {"sent"}


def test_a_failed_send_is_recorded_and_retried_next_round(tmp_path, log, receiver):
    inv = _inventory(tmp_path)
    enqueue(log, inv, _msg(1), "opened:inc-1")
    receiver.fail_next(1)
    d = deliver(log, inv, now=MONDAY_10)
    assert (d.sent, d.failed) == (0, 1)
    row = log.query("SELECT * FROM outbox")[0]
    assert row["state"] == "pending" and row["attempts"] == 1 and row["last_error"]
    d = deliver(log, inv, now=MONDAY_10 + dt.timedelta(minutes=5))
    assert (d.sent, d.failed) == (1, 0)
    row = log.query("SELECT * FROM outbox")[0]
    assert row["state"] == "sent" and row["attempts"] == 2 and row["sent_at"]
    assert [g["body"]["title"] for g in receiver.received] == ["告警 1"]


def test_a_dead_target_never_blocks_and_its_url_is_never_shown(tmp_path, log, monkeypatch):
    from tests.watch_fixtures import closed_port

    port = closed_port()  # nothing listens there
    secret_url = f"jsons://ops:Pa55word-xyz@127.0.0.1:{port}/robot/send/AccessTok3nABCDEF?cto=1&rto=1"
    monkeypatch.setenv("TEST_HOOK_URL", secret_url)
    inv = _inventory(tmp_path)
    enqueue(log, inv, _msg(1), "opened:inc-1")
    d = deliver(log, inv, now=MONDAY_10)
    assert d.failed == 1 and d.errors
    dumped = json.dumps(log.query("SELECT * FROM outbox"), ensure_ascii=False) + " ".join(d.errors)
    for secret in ("Pa55word-xyz", "AccessTok3nABCDEF", secret_url):
        assert secret not in dumped


def test_personal_targets_get_only_their_own_messages(tmp_path, log, receiver, monkeypatch):
    p = tmp_path / "inv.yaml"
    text = INVENTORY.format(extra="").replace(
        "      url_env: TEST_HOOK_URL\n",
        "      url_env: TEST_HOOK_URL\n      events: [resolved]\n    - name: li-phone\n      url_env: TEST_HOOK_URL\n"
    ).replace("    phone: \"13900000001\"\n", "    phone: \"13900000001\"\n    notify: li-phone\n")
    p.write_text(text, encoding="utf-8")
    inv = load_inventory(p)
    _, inc = track_result(log, inv, _result("crit"), now=MONDAY_10, hold_down=dt.timedelta(minutes=30))
    opened = incident_message("opened", inc, inv, assignee=assign(log, inv, inc, MONDAY_10))
    assert enqueue(log, inv, opened, "opened:x") == 0  # the group wants only `resolved`; 张伟 has no own target
    supervisor = inv.roster.on_duty("supervisor", MONDAY_10)
    esc = incident_message("escalated", inc, inv, step=1, escalated_to=supervisor)
    assert enqueue(log, inv, esc, "escalated:x:1") == 1
    assert log.query("SELECT target FROM outbox")[0]["target"] == "li-phone"


def _example_with_notify(tmp_path):
    import yaml

    from tests.conftest import EXAMPLE

    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    data.setdefault("settings", {})["notify"] = [{"name": "group", "url_env": "TEST_HOOK_URL"}]
    p = tmp_path / "inv.yaml"
    p.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return p


def test_a_drills_verdict_and_a_failed_job_are_sent(tmp_path, cli, receiver):
    inv = _example_with_notify(tmp_path)
    drill = tmp_path / "drill.yaml"
    drill.write_text(textwrap.dedent("""\
        name: drill-manual
        kind: drill
        steps:
          - incident: {action: open, level: major, title: 录像机离线演练, device: xc-nvr-01}
          - incident: {action: arrive, device: xc-nvr-01}
          - incident: {action: resolve, device: xc-nvr-01, resolution: 重新上电}
        """), encoding="utf-8")
    job = tmp_path / "job.yaml"
    job.write_text("name: nightly-notes\nsteps:\n  - note: {text: x, device: no-such-device}\n", encoding="utf-8")
    ok_job = tmp_path / "ok.yaml"
    ok_job.write_text("name: fine\nsteps:\n  - wait: 0\n", encoding="utf-8")
    assert cli("-i", inv, "playbook", "run", drill).code == 0
    assert cli("-i", inv, "playbook", "run", job).code == 2
    assert cli("-i", inv, "playbook", "run", ok_job).code == 0  # a job that went well says nothing
    got = [g["body"] for g in receiver.wait_for(3)]
    assert len(receiver.received) == 3
    assert got[0]["title"].startswith("【故障告警·重大】") and "xc-nvr-01" in got[0]["title"]  # the drill's step
    assert got[1]["title"] == "【演练结果】drill-manual：通过"
    assert "检测到故障：是" in got[1]["message"] and "到场时限内：是" in got[1]["message"]
    assert got[2]["title"] == "【任务失败】nightly-notes：失败" and "第 1 步" in got[2]["message"]
    assert "未能执行" in got[2]["message"]  # the note step could not run (exit 66), so the job failed


def test_a_target_that_never_answers_costs_bounded_time(tmp_path, log, monkeypatch):
    import socket
    import time

    from canteen_ops.notify import outbox

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts connections, never answers
    try:
        monkeypatch.setenv("TEST_HOOK_URL", f"json://127.0.0.1:{silent.getsockname()[1]}/hook")
        monkeypatch.setattr(outbox, "SEND_TIMEOUT_S", 1.0)
        inv = _inventory(tmp_path)
        enqueue(log, inv, _msg(1), "opened:inc-1")
        enqueue(log, inv, _msg(2), "opened:inc-2")
        t0 = time.monotonic()
        d = deliver(log, inv, now=MONDAY_10, budget_s=1.5)
        took = time.monotonic() - t0
    finally:
        silent.close()
    assert d.sent == 0 and d.failed >= 1 and took < 4, (d, took)
    assert any("no answer within 1 s" in e for e in d.errors)
    assert {r["state"] for r in log.query("SELECT state FROM outbox")} == {"pending"}  # both wait for next round


def test_the_outbox_shows_in_log_list(tmp_path, log, receiver, cli, monkeypatch):
    inv = _inventory(tmp_path)
    enqueue(log, inv, _msg(1), "opened:inc-1")
    receiver.fail_next(1)
    deliver(log, inv, now=MONDAY_10)
    monkeypatch.setenv("CANTEEN_OPS_DB", str(tmp_path / "n.db"))
    r = cli("log", "list", "--kind", "notify", "--json")
    assert r.code == 0, r
    rows = json.loads(r.out)
    assert len(rows) == 1 and rows[0]["status"] == "pending" and rows[0]["summary"].startswith("group opened: 告警 1 — ")


def _file_target_inventory(tmp_path, url_file) -> object:
    p = tmp_path / "inv.yaml"
    p.write_text(INVENTORY.format(extra="").replace("url_env: TEST_HOOK_URL", f"url_file: {url_file}"),
                 encoding="utf-8")
    return load_inventory(p)


@pytest.mark.parametrize("kind", ["fifo", "directory", "not-utf8"])
def test_an_unusable_url_file_is_a_clear_error_without_a_hang_or_a_secret_byte(tmp_path, log, kind):
    import os
    import threading

    path = tmp_path / "hook.url"
    if kind == "fifo":
        if not hasattr(os, "mkfifo"):
            pytest.skip("no FIFOs here")
        os.mkfifo(path)  # a plain open for reading blocks until a writer comes: nobody ever writes
    elif kind == "directory":
        path.mkdir()
    else:
        path.write_bytes(b"json://127.0.0.1:9/robot/\xe9\xff-Secr3t")
        path.chmod(0o600)
    inv = _file_target_inventory(tmp_path, path)
    enqueue(log, inv, _msg(1), "opened:inc-1", now=MONDAY_10)
    box = []

    def send():  # in a thread of its own (with its own connection): a hang fails the test instead of blocking it
        own = MaintenanceLog.open(tmp_path / "n.db")
        try:
            box.append(deliver(own, inv, now=MONDAY_10))
        finally:
            own.close()

    worker = threading.Thread(target=send, daemon=True)
    worker.start()
    worker.join(10)
    assert not worker.is_alive(), "delivery hangs on the url_file"
    d = box[0]
    assert (d.sent, d.failed) == (0, 1)
    row = log.query("SELECT * FROM outbox")[0]
    assert row["state"] == "pending" and row["attempts"] == 1
    why = {"fifo": "not a regular file (a FIFO)", "directory": "not a regular file (a directory)",
           "not-utf8": "not UTF-8 text"}[kind]
    assert row["last_error"] == f"notify target 'group': cannot read url_file {path}: {why}", row["last_error"]
    assert d.errors == [row["last_error"]]
    for leak in ("0xe9", "0xff", "\\xff", "codec", "Secr3t"):
        assert leak not in row["last_error"]


def test_a_url_file_readable_by_others_is_warned_about(tmp_path):
    import os

    if os.name == "nt":
        pytest.skip("Windows permissions are ACLs")
    path = tmp_path / "hook.url"
    path.write_text("json://127.0.0.1:9/hook\n", encoding="utf-8")
    path.chmod(0o640)
    inv = _file_target_inventory(tmp_path, path)
    assert any("inv.yaml:6:" in w and f"notify URL file {path} is readable by other users; chmod 600 it" in w for w in inv.warnings), \
        inv.warnings
    path.chmod(0o600)
    assert not any("notify URL file" in w for w in _file_target_inventory(tmp_path, path).warnings)

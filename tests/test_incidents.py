"""Incidents: life cycle, refusals, escalation, dedup for check results, and the CLI."""

import datetime as dt
import json
from zoneinfo import ZoneInfo

import pytest

from canteen_ops import incidents as inc_mod
from canteen_ops.errors import NotFound, UsageError
from canteen_ops.incidents import (
    IncidentStateError,
    ack,
    arrive,
    classify,
    escalate_overdue,
    events,
    list_incidents,
    open_incident,
    open_or_update_for_result,
    resolve,
)
from canteen_ops.inventory.loader import load_inventory
from canteen_ops.store.log import MaintenanceLog
from canteen_ops.timeutil import iso, utcnow
from tests.conftest import EXAMPLE

SH = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def inv():
    return load_inventory(EXAMPLE)


@pytest.fixture
def log(tmp_path):
    lg = MaintenanceLog.open(tmp_path / "inc.db")
    yield lg
    lg.close()


def test_open_computes_deadline_from_the_school(log, inv):
    # Monday 2026-11-23 19:00 Shanghai: outside hours at 西城 (08–18), inside at 育才 (06:30–19:30).
    t = dt.datetime(2026, 11, 23, 19, 0, tzinfo=SH)
    a = open_incident(log, inv, level="major", title="NVR offline", actor="wang", device_ids=["xc-nvr-01"],
                      opened_at=t)
    b = open_incident(log, inv, level="major", title="NVR offline", actor="wang", device_ids=["hd-nvr-01"],
                      opened_at=t)
    assert a["school_id"] == "xc-shiyan-xx" and a["state"] == "open" and a["opened_in_hours"] == 0
    assert a["arrive_deadline"] == iso(t + dt.timedelta(hours=2))
    assert b["opened_in_hours"] == 1 and b["arrive_deadline"] == iso(t + dt.timedelta(hours=1))
    assert a["resolve_deadline"] == iso(t + dt.timedelta(hours=24))
    assert [e["action"] for e in events(log, a["id"])] == ["open"]


def test_open_refuses_bad_input(log, inv):
    with pytest.raises(UsageError, match="level"):
        open_incident(log, inv, level="urgent", title="x", actor="a", device_ids=["xc-cam-01"])
    with pytest.raises(NotFound, match="nope"):
        open_incident(log, inv, level="general", title="x", actor="a", device_ids=["nope"])
    with pytest.raises(UsageError, match="one school"):
        open_incident(log, inv, level="general", title="x", actor="a", device_ids=["xc-cam-01", "hd-cam-01"])
    with pytest.raises(UsageError, match="do not all belong"):
        open_incident(log, inv, level="general", title="x", actor="a", device_ids=["xc-cam-01"],
                      school_id="hd-yucai-zx")
    with pytest.raises(UsageError, match="title"):
        open_incident(log, inv, level="general", title="  ", actor="a", device_ids=["xc-cam-01"])
    assert log.query("SELECT COUNT(*) AS n FROM incidents")[0]["n"] == 0


def test_life_cycle_and_refused_transitions(log, inv):
    t0 = utcnow() - dt.timedelta(hours=1)
    i = open_incident(log, inv, level="general", title="镜头被遮挡", actor="li", device_ids=["xc-cam-04"],
                      opened_at=t0)
    with pytest.raises(UsageError, match="how it was resolved"):
        resolve(log, i["id"], "li", resolution="")
    i = ack(log, i["id"][:8], "zhang", note="on my way", at=t0 + dt.timedelta(minutes=10))
    assert (i["state"], i["acked_by"]) == ("acked", "zhang")
    with pytest.raises(IncidentStateError, match="it is acked"):
        ack(log, i["id"], "zhang")
    with pytest.raises(UsageError, match="before the incident was opened"):
        arrive(log, i["id"], "zhang", at=t0 - dt.timedelta(minutes=5))
    with pytest.raises(UsageError, match="future"):
        arrive(log, i["id"], "zhang", at=utcnow() + dt.timedelta(hours=1))
    with pytest.raises(UsageError, match="before the recorded ack"):
        arrive(log, i["id"], "zhang", at=t0 + dt.timedelta(minutes=5))
    i = arrive(log, i["id"], "zhang", at=t0 + dt.timedelta(minutes=40))
    assert i["state"] == "arrived" and i["arrived_at"] == iso(t0 + dt.timedelta(minutes=40))
    with pytest.raises(IncidentStateError):
        arrive(log, i["id"], "zhang")
    i = resolve(log, i["id"], "zhang", resolution="清理油污，调整角度")
    assert i["state"] == "resolved" and i["resolution"] == "清理油污，调整角度"
    for verb in (ack, arrive):
        with pytest.raises(IncidentStateError, match="it is resolved"):
            verb(log, i["id"], "zhang")
    with pytest.raises(IncidentStateError):
        resolve(log, i["id"], "zhang", resolution="again")
    evs = events(log, i["id"])
    assert [e["action"] for e in evs] == ["open", "ack", "arrive", "resolve"]
    assert evs[2]["data"]["sla"] == "met" and evs[1]["actor"] == "zhang"


def test_arrive_without_ack_and_find_errors(log, inv):
    i = open_incident(log, inv, level="general", title="x", actor="a", device_ids=["xc-cam-01"])
    i = arrive(log, i["id"], "b")
    assert i["acked_by"] == "b" and i["acked_at"] == i["arrived_at"]
    with pytest.raises(NotFound):
        ack(log, "ffffffff-0000", "b")
    with pytest.raises(NotFound):
        ack(log, "abc", "b")  # too short to be a prefix


def test_escalation_marks_once_and_only_when_not_arrived(log, inv):
    now = utcnow()
    late = open_incident(log, inv, level="major", title="NVR down", actor="a", device_ids=["xc-nvr-01"],
                         opened_at=now - dt.timedelta(hours=5))
    arrived = open_incident(log, inv, level="major", title="NVR down", actor="a", device_ids=["hd-nvr-01"],
                            opened_at=now - dt.timedelta(hours=5))
    arrive(log, arrived["id"], "b", at=now - dt.timedelta(hours=4, minutes=30))
    fresh = open_incident(log, inv, level="general", title="blur", actor="a", device_ids=["xc-cam-02"])
    done = escalate_overdue(log, now)
    assert [d["id"] for d in done] == [late["id"]]
    assert log.get("incidents", late["id"])["escalated_at"] == iso(now)
    assert escalate_overdue(log, now + dt.timedelta(hours=1)) == []  # idempotent
    assert [e["action"] for e in events(log, late["id"])] == ["open", "escalate"]
    assert log.get("incidents", fresh["id"])["escalated_at"] is None
    overdue = list_incidents(log, overdue=True, now=now)
    assert {r["id"] for r in overdue} == {late["id"]}
    # arriving late stays a breach in --overdue, also once resolved
    arrive(log, late["id"], "b")
    resolve(log, late["id"], "b", resolution="PoE switch replaced")
    assert {r["id"] for r in list_incidents(log, overdue=True)} == {late["id"]}
    assert late["id"] not in {r["id"] for r in list_incidents(log)}  # resolved: not active
    assert late["id"] in {r["id"] for r in list_incidents(log, include_resolved=True)}


def test_classification_rule(inv):
    assert classify(inv, {"device_id": "xc-nvr-01", "check_name": "reachable"}) == "major"   # NVR down
    assert classify(inv, {"device_id": "xc-cam-01", "check_name": "retention"}) == "major"   # recording lost
    assert classify(inv, {"device_id": None, "school_id": "xc-shiyan-xx", "check_name": "coverage"}) == "major"
    assert classify(inv, {"device_id": "xc-cam-01", "check_name": "reachable"}) == "general"
    assert classify(inv, {"device_id": "xc-cam-01", "check_name": "picture"}) == "general"


def _result(log, device, check, status, summary, school="xc-shiyan-xx"):
    rid = log.insert("results", {"school_id": school, "device_id": device, "check_name": check, "status": status,
                                 "summary": summary, "observed_at": iso()})
    return log.get("results", rid)


def test_open_or_update_never_duplicates(log, inv):
    r1 = _result(log, "xc-cam-03", "stream", "crit", "no stream")
    a = open_or_update_for_result(log, inv, r1)
    assert a["level"] == "general" and a["dedup_key"] == "xc-cam-03:stream" and a["source_result_id"] == r1["id"]
    r2 = _result(log, "xc-cam-03", "stream", "crit", "no stream (timeout 10 s)")
    b = open_or_update_for_result(log, inv, r2)
    assert b["id"] == a["id"] and b["description"] == "no stream (timeout 10 s)"
    assert b["data"]["occurrences"] == 2
    # a different check on the same camera is a different incident
    c = open_or_update_for_result(log, inv, _result(log, "xc-cam-03", "picture", "crit", "covered"))
    assert c["id"] != a["id"]
    # warn / unknown never open anything
    assert open_or_update_for_result(log, inv, _result(log, "xc-cam-05", "clock", "warn", "drift 9 s")) is None
    assert open_or_update_for_result(log, inv, _result(log, "xc-cam-05", "clock", "unknown", "offline")) is None
    # ok adds one recovery note, does not resolve
    for _ in range(2):
        ok = open_or_update_for_result(log, inv, _result(log, "xc-cam-03", "stream", "ok", "1920x1080 25 fps"))
    assert ok["state"] == "open"
    assert [e["action"] for e in events(log, a["id"])] == ["open", "recurrence", "check-recovered"]
    n = log.query("SELECT COUNT(*) AS n FROM incidents WHERE dedup_key = 'xc-cam-03:stream'")[0]["n"]
    assert n == 1
    # once resolved, a new failure opens a new incident
    resolve(log, a["id"], "tech", resolution="cable re-crimped")
    d = open_or_update_for_result(log, inv, _result(log, "xc-cam-03", "stream", "crit", "no stream"))
    assert d["id"] != a["id"] and d["state"] == "open"


def test_open_or_update_level_raise_and_unknown_devices(log, inv, monkeypatch):
    monkeypatch.setattr(inc_mod, "MAJOR_CHECKS", frozenset())  # first result: general
    a = open_or_update_for_result(log, inv, _result(log, "xc-cam-01", "retention", "crit", "3 days"))
    assert a["level"] == "general"
    monkeypatch.setattr(inc_mod, "MAJOR_CHECKS", frozenset({"retention"}))
    b = open_or_update_for_result(log, inv, _result(log, "xc-cam-01", "retention", "crit", "0 days"))
    assert b["id"] == a["id"] and b["level"] == "major" and b["arrive_deadline"] < a["arrive_deadline"]
    assert "level-raised" in [e["action"] for e in events(log, a["id"])]
    # a device no longer in the inventory, and a school-level result
    gone = open_or_update_for_result(log, inv, _result(log, "old-cam-9", "reachable", "crit", "refused"))
    assert gone["device_ids"] == ["old-cam-9"] and gone["school_id"] == "xc-shiyan-xx"
    cov = open_or_update_for_result(log, inv, _result(log, None, "coverage", "crit", "专间 uncovered"))
    assert cov["level"] == "major" and cov["dedup_key"] == "school:xc-shiyan-xx:coverage"


# --- CLI -----------------------------------------------------------------------------------------------------
def test_cli_flow(cli):
    r = cli("-i", EXAMPLE, "incident", "open", "--level", "重大", "-d", "xc-nvr-01", "-t", "录像机离线", "--json")
    assert r.code == 0, r
    inc = json.loads(r.out)
    assert inc["level"] == "major" and inc["opened_by"] == "tester"
    iid = inc["id"]
    assert cli("-i", EXAMPLE, "incident", "ack", iid[:8]).code == 0
    r = cli("-i", EXAMPLE, "incident", "ack", iid[:8])
    assert r.code == 64 and "cannot acknowledge" in r.err
    r = cli("-i", EXAMPLE, "incident", "arrive", iid, "--note", "到场")
    assert r.code == 0 and "on-site SLA met" in r.out
    r = cli("-i", EXAMPLE, "incident", "resolve", iid, "-r", "更换电源适配器")
    assert r.code == 0 and "resolved" in r.out
    r = cli("-i", EXAMPLE, "incident", "show", iid)
    assert r.code == 0 and "更换电源适配器" in r.out and "arrive" in r.out and "tester" in r.out
    r = cli("-i", EXAMPLE, "incident", "list", "--json")
    assert json.loads(r.out) == []
    r = cli("-i", EXAMPLE, "incident", "list", "--all", "--json")
    assert [x["id"] for x in json.loads(r.out)] == [iid]


def test_cli_overdue_and_escalation_shown(cli):
    past = (dt.datetime.now(SH) - dt.timedelta(hours=6)).strftime("%Y-%m-%dT%H:%M")
    r = cli("-i", EXAMPLE, "incident", "open", "-l", "general", "-d", "hd-cam-03", "-t", "画面模糊",
            "--at", past, "--json")
    assert r.code == 0, r
    iid = json.loads(r.out)["id"]
    cli("-i", EXAMPLE, "incident", "open", "-l", "general", "-d", "hd-cam-04", "-t", "fresh")
    r = cli("-i", EXAMPLE, "incident", "list", "--overdue")
    assert r.code == 2 and "ESCALATED" in r.out and iid[:8] in r.out and "fresh" not in r.out
    r = cli("-i", EXAMPLE, "incident", "show", iid)
    assert "ESCALATED" in r.out and "escalate" in r.out
    r = cli("-i", EXAMPLE, "incident", "list", "--overdue", "--level", "major")
    assert r.code == 0 and "0 overdue incidents" in r.out


def test_cli_usage_errors(cli):
    r = cli("-i", EXAMPLE, "incident", "open", "-l", "minor", "-d", "xc-cam-01", "-t", "x")
    assert r.code == 64 and "level" in r.err
    r = cli("-i", EXAMPLE, "incident", "open", "-l", "general", "-d", "ghost", "-t", "x")
    assert r.code == 66 and "ghost" in r.err
    r = cli("-i", EXAMPLE, "incident", "ack", "0123456789")
    assert r.code == 66
    r = cli("-i", EXAMPLE, "incident", "open", "-l", "general", "-d", "xc-cam-01", "-t", "x", "--at", "yesterday")
    assert r.code == 64 and "--at" in r.err
    r = cli("-i", EXAMPLE, "incident", "list", "--level", "huge")
    assert r.code == 64


def test_note_assign_cancel_reopen_and_state_rules(log, inv):
    from canteen_ops.incidents import add_note, assign, cancel, reopen

    a = open_incident(log, inv, level="general", title="画面遮挡", actor="wang", device_ids=["xc-cam-01"])
    assert assign(log, a["id"], "wang", who="李工")["assigned_to"] == "李工"
    add_note(log, a["id"], "li", text="已联系食堂")
    c = cancel(log, a["id"], "li", reason="误报：保洁临时遮挡")
    assert c["state"] == "cancelled" and c["cancel_reason"] == "误报：保洁临时遮挡" and c["cancelled_by"] == "li"
    # a false alarm is kept, but is neither active nor ever overdue
    assert list_incidents(log) == []
    assert [i["id"] for i in list_incidents(log, include_resolved=True)] == [a["id"]]
    assert list_incidents(log, overdue=True, now=utcnow() + dt.timedelta(days=1)) == []
    for refused in (lambda: cancel(log, a["id"], "li", reason="again"), lambda: assign(log, a["id"], "li", who="x"),
                    lambda: ack(log, a["id"], "li"), lambda: resolve(log, a["id"], "li", resolution="x")):
        with pytest.raises(IncidentStateError):
            refused()
    add_note(log, a["id"], "li", text="复核：确属误报")  # a note fits a closed incident
    r = reopen(log, a["id"], "li", note="again covered")
    assert r["state"] == "open" and r["cancelled_at"] is None and r["cancel_reason"] is None
    with pytest.raises(IncidentStateError):
        reopen(log, a["id"], "li")
    arrive(log, a["id"], "li")
    resolve(log, a["id"], "li", resolution="调整角度")
    r = reopen(log, a["id"], "li")
    assert r["state"] == "arrived" and r["resolved_at"] is None and r["resolution"] is None  # the visit stands
    assert [e["action"] for e in events(log, a["id"])] == [
        "open", "assign", "note", "cancel", "note", "reopen", "arrive", "resolve", "reopen"]
    with pytest.raises(UsageError):
        cancel(log, a["id"], "li", reason="  ")
    with pytest.raises(UsageError):
        add_note(log, a["id"], "li", text="")


def test_cancelled_incident_does_not_block_a_new_one_for_the_same_fault(log, inv):
    from canteen_ops.incidents import cancel

    row = _result(log, "xc-cam-01", "picture", "crit", "covered")
    first = open_or_update_for_result(log, inv, row)
    cancel(log, first["id"], "li", reason="false alarm")
    second = open_or_update_for_result(log, inv, _result(log, "xc-cam-01", "picture", "crit", "covered"))
    assert second["id"] != first["id"] and second["state"] == "open"


def test_cli_note_assign_cancel_reopen_and_device_filter(cli):
    r = cli("-i", EXAMPLE, "incident", "open", "-l", "general", "-d", "xc-cam-01", "-t", "画面遮挡", "--json")
    iid = json.loads(r.out)["id"]
    cli("-i", EXAMPLE, "incident", "open", "-l", "major", "-d", "hd-nvr-01", "-t", "录像机离线")
    r = cli("-i", EXAMPLE, "incident", "note", iid[:8], "已通知食堂负责人")
    assert r.code == 0 and "note added" in r.out
    r = cli("-i", EXAMPLE, "incident", "assign", iid[:8], "李工")
    assert r.code == 0 and "assigned to 李工" in r.out
    r = cli("-i", EXAMPLE, "incident", "list", "--device", "xc-*", "--json")
    assert [x["id"] for x in json.loads(r.out)] == [iid] and json.loads(r.out)[0]["assigned_to"] == "李工"
    assert "李工" in cli("-i", EXAMPLE, "incident", "list").out
    r = cli("-i", EXAMPLE, "incident", "cancel", iid[:8])
    assert r.code == 64 and "--reason" in r.err
    r = cli("-i", EXAMPLE, "incident", "cancel", iid[:8], "--reason", "误报")
    assert r.code == 0 and "cancelled" in r.out
    r = cli("-i", EXAMPLE, "incident", "cancel", iid[:8], "--reason", "误报")
    assert r.code == 64 and "cannot cancel" in r.err
    r = cli("-i", EXAMPLE, "incident", "assign", iid[:8], "王工")
    assert r.code == 64 and "cannot assign" in r.err
    assert json.loads(cli("-i", EXAMPLE, "incident", "list", "--device", "xc-*", "--json").out) == []
    r = cli("-i", EXAMPLE, "incident", "show", iid)
    assert "误报" in r.out and "已通知食堂负责人" in r.out and "cancelled" in r.out
    r = cli("-i", EXAMPLE, "incident", "reopen", iid[:8])
    assert r.code == 0 and "open" in r.out
    assert cli("-i", EXAMPLE, "incident", "reopen", iid[:8]).code == 64
    assert len(json.loads(cli("-i", EXAMPLE, "incident", "list", "--device", "xc-cam-0?", "--json").out)) == 1

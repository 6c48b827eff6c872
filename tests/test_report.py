"""The operations report over a seeded log: every figure asserted, Markdown and self-contained HTML."""

import datetime as dt
import json
import re
from zoneinfo import ZoneInfo

import pytest

from canteen_ops.incidents import arrive, escalate_overdue, open_incident, resolve
from canteen_ops.inventory.loader import parse_inventory
from canteen_ops.report import build_report, render_html, render_markdown
from canteen_ops.store.log import MaintenanceLog
from canteen_ops.timeutil import iso

SH = ZoneInfo("Asia/Shanghai")
INVENTORY = """\
version: 1
defaults:
  policy: {required_areas: [加工区, 烹饪区], backup_stale_hours: 24}
schools:
  - id: a
    name: 甲小学
    devices:
      - {id: a-nvr, kind: nvr, vendor: hikvision, host: 127.0.0.1}
      - {id: a-cam1, kind: camera, vendor: hikvision, host: 127.0.0.2, area: 加工区, nvr: a-nvr, nvr_channel: 1}
      - {id: a-cam2, kind: camera, vendor: hikvision, host: 127.0.0.3, area: 烹饪区, nvr: a-nvr, nvr_channel: 2}
  - id: b
    name: 乙中学
    devices:
      - {id: b-nvr, kind: nvr, vendor: dahua, host: 127.0.0.4}
      - {id: b-cam1, kind: camera, vendor: dahua, host: 127.0.0.5, area: 加工区, nvr: b-nvr, nvr_channel: 1}
"""
START = dt.datetime(2026, 11, 2, tzinfo=SH)   # Monday
END = dt.datetime(2026, 11, 9, tzinfo=SH)     # the next Monday, exclusive
NOW = END


def t(day, hh, mm=0):
    return dt.datetime(2026, 11, day, hh, mm, tzinfo=SH)


@pytest.fixture
def inv(tmp_path):
    p = tmp_path / "inventory.yaml"
    p.write_text(INVENTORY, encoding="utf-8")
    return parse_inventory(INVENTORY, str(p))


def seed(log, inv):
    def res(device, check, status, when, school=None, data=None):
        school = school or (device or "").split("-")[0]
        log.insert("results", {"school_id": school, "device_id": device, "check_name": check, "status": status,
                               "summary": f"{check} {status}", "data": data, "observed_at": iso(when)})

    # availability
    for i, s in enumerate(["ok", "crit", "ok", "ok"]):
        res("a-cam1", "reachable", s, t(3, 9 + i))
    for i, s in enumerate(["ok", "ok", "unknown"]):
        res("a-cam2", "reachable", s, t(3, 9 + i))
    for i in range(4):
        res("a-nvr", "reachable", "ok", t(4, 9 + i))
    res("b-cam1", "reachable", "crit", t(5, 9))
    res("b-cam1", "reachable", "crit", t(5, 10))
    res("b-nvr", "reachable", "ok", t(5, 9))
    res("b-nvr", "reachable", "crit", t(1, 9))        # before the period: ignored
    res("b-nvr", "reachable", "crit", t(9, 0))        # at the (exclusive) end: ignored
    res("ghost-cam", "reachable", "crit", t(5, 9), school="a")  # not in the inventory: ignored
    # picture clarity
    for s in ("ok", "ok", "warn"):
        res("a-cam1", "picture", s, t(6, 12))
    res("a-cam2", "picture", "crit", t(6, 12))
    res("b-cam1", "picture", "ok", t(6, 12))
    res("b-cam1", "picture", "unknown", t(6, 13))     # could not tell: not counted
    res("b-cam1", "picture", "n/a", t(6, 14))         # does not apply: not counted either
    res("a-cam1", "reachable", "n/a", t(3, 14))       # (never happens, but) not a result to rate
    # retention
    res("a-nvr", "retention", "warn", t(3, 2))
    res("a-nvr", "retention", "ok", t(7, 2))
    res("a-nvr", "retention", "n/a", t(7, 3))         # a later n/a does not hide the newest real verdict
    res("b-nvr", "retention", "crit", t(7, 2))
    # coverage (school-level)
    res(None, "coverage", "crit", t(3, 2), school="a", data={"required": ["加工区", "烹饪区"], "uncovered": ["烹饪区"]})
    res(None, "coverage", "ok", t(7, 2), school="a", data={"required": ["加工区", "烹饪区"], "uncovered": []})
    res(None, "coverage", "crit", t(7, 2), school="b", data={"required": ["加工区", "烹饪区"], "uncovered": ["烹饪区"]})

    # incidents
    m = open_incident(log, inv, level="major", title="NVR down", actor="li", device_ids=["a-nvr"], opened_at=t(2, 10))
    arrive(log, m["id"], "zhang", at=t(2, 10, 40))
    resolve(log, m["id"], "zhang", resolution="power", at=t(2, 14))
    g = open_incident(log, inv, level="general", title="blur", actor="li", device_ids=["a-cam2"], opened_at=t(7, 10))
    escalate_overdue(log, t(7, 14, 30))                                     # Saturday: 4 h allowance → due 14:00
    arrive(log, g["id"], "zhang", at=t(7, 15))
    resolve(log, g["id"], "zhang", resolution="cleaned", at=t(8, 12))      # 26 h: over the 24 h restore limit
    open_incident(log, inv, level="general", title="offline", actor="li", device_ids=["b-cam1"], opened_at=t(4, 20))
    open_incident(log, inv, level="major", title="old", actor="li", device_ids=["b-nvr"], opened_at=t(1, 10))

    # backups
    def bk(device, status, when):
        log.insert("backups", {"school_id": device.split("-")[0], "device_id": device, "status": status,
                               "created_at": iso(when)})

    bk("a-cam1", "ok", t(8, 20))
    bk("a-cam2", "ok", t(3, 12))
    bk("a-nvr", "failed", t(8, 1))
    bk("b-cam1", "unsupported", t(5, 1))
    bk("b-nvr", "ok", dt.datetime(2026, 10, 20, tzinfo=SH))

    # firmware
    def fw(device, status, when):
        log.insert("firmware_findings", {"school_id": device.split("-")[0], "device_id": device, "status": status,
                                         "created_at": iso(when)})

    fw("a-cam1", "outdated", t(1, 9))
    fw("a-cam1", "current", t(5, 9))
    fw("a-cam2", "vulnerable", t(3, 9))
    fw("a-nvr", "current", t(3, 9))
    fw("b-nvr", "unknown", t(3, 9))
    fw("b-cam1", "vulnerable", t(10, 9))   # after the period


@pytest.fixture
def rep(tmp_path, inv):
    log = MaintenanceLog.open(tmp_path / "log.db")
    seed(log, inv)
    r = build_report(log, inv, START, END, now=NOW)
    log.close()
    return r


def test_availability(rep):
    a, b = (s["availability"] for s in rep["schools"])
    assert (a["up"], a["down"], a["unknown"], a["pct"]) == (9, 1, 1, 90.0)
    assert (a["online_at_end"], a["devices_checked"]) == (3, 3)
    assert (b["up"], b["down"], b["pct"], b["online_at_end"], b["devices_checked"]) == (1, 2, 33.3, 1, 2)
    o = rep["overall"]["availability"]
    assert (o["up"], o["down"], o["pct"], o["devices"]) == (10, 3, 76.9, 5)


def test_failing_checks_by_kind(rep):
    fa = rep["schools"][0]["failing_checks"]
    assert fa["reachable"] == {"results": 11, "warn": 0, "crit": 1, "devices": 1, "fail_pct": 9.1}
    assert fa["picture"] == {"results": 4, "warn": 1, "crit": 1, "devices": 2, "fail_pct": 50.0}
    assert fa["coverage"]["crit"] == 1 and fa["retention"]["warn"] == 1
    fo = rep["overall"]["failing_checks"]
    assert fo["reachable"]["crit"] == 3 and fo["reachable"]["devices"] == 2
    assert list(fo)[0] == "reachable"  # most failures first


def test_incidents_and_sla(rep):
    major, general = rep["overall"]["incidents"]["major"], rep["overall"]["incidents"]["general"]
    assert (major["opened"], major["resolved"], major["arrive_met"], major["sla_pct"]) == (1, 1, 1, 100.0)
    assert major["arrive_min"]["median"] == 40.0 and major["resolve_h"]["median"] == 4.0
    assert major["restore_pct"] == 100.0
    assert (general["opened"], general["resolved"], general["open"], general["escalated"]) == (2, 1, 1, 1)
    assert (general["arrive_met"], general["arrive_breached"], general["sla_pct"]) == (0, 2, 0.0)
    assert general["arrive_min"]["median"] == 300.0 and general["resolve_h"]["median"] == 26.0
    assert (general["restore_met"], general["restore_breached"]) == (0, 2)
    b = rep["schools"][1]["incidents"]
    assert b["general"]["opened"] == 1 and b["major"]["opened"] == 0  # the 11-01 incident is outside the period


def test_backups(rep):
    a, b = rep["schools"][0]["backups"], rep["schools"][1]["backups"]
    assert (a["devices"], a["covered"], a["coverage_pct"]) == (3, 2, 66.7)
    assert a["stale"] == ["a-cam2"] and a["never"] == ["a-nvr"] and (a["attempts"], a["failed"]) == (3, 1)
    assert b["no_export"] == ["b-cam1"] and b["stale"] == ["b-nvr"] and b["coverage_pct"] == 0.0
    assert b["attempts"] == 1
    assert rep["overall"]["backups"]["coverage_pct"] == 50.0


def test_firmware_retention_picture_coverage(rep):
    a, b, o = rep["schools"][0], rep["schools"][1], rep["overall"]
    assert (a["firmware"]["current"], a["firmware"]["vulnerable"], a["firmware"]["compliance_pct"]) == (2, 1, 66.7)
    assert a["firmware"]["vulnerable_devices"] == ["a-cam2"]
    assert (b["firmware"]["unknown"], b["firmware"]["unchecked"], b["firmware"]["compliance_pct"]) == (1, 1, None)
    assert o["firmware"]["compliance_pct"] == 66.7
    assert (a["retention"]["pct"], b["retention"]["pct"], o["retention"]["pct"]) == (100.0, 0.0, 50.0)
    assert b["retention"]["failing"] == ["b-nvr"]
    assert (a["picture"]["pct"], b["picture"]["pct"], o["picture"]["pct"]) == (50.0, 100.0, 60.0)
    assert o["picture"]["samples"] == 5
    assert (a["coverage"]["pct"], b["coverage"]["pct"], o["coverage"]["pct"]) == (100.0, 50.0, 75.0)
    assert o["coverage"]["uncovered"] == {"b": ["烹饪区"]}


def test_markdown(rep):
    md = render_markdown(rep)
    assert md.startswith("# 运行分析报告")
    assert "| Availability 在线率 (samples) | 76.9% | 90% | 33.3% |" in md
    assert "| Picture clarity 清晰度达标率 | 60% | 50% | 100% |" in md
    assert "| general | 2 | 1 | 1 | 1 | 0/2/0 | 0% | 300 | 26 | 0% |" in md
    assert "Stale: a-cam2; never backed up: a-nvr." in md
    assert "<" not in md.replace("<br>", "")  # plain Markdown, no HTML


def test_html_is_self_contained(rep):
    page = render_html(rep)
    assert page.startswith("<!DOCTYPE html>") and page.count("<svg") >= 5
    assert "<script" not in page and not re.search(r"(src|href)\s*=", page)
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "甲小学" in page and "76.9%" in page


def test_html_escapes_names(tmp_path):
    text = INVENTORY.replace("name: 甲小学", "name: \"<b>甲</b> & co\"")
    inv = parse_inventory(text)
    log = MaintenanceLog.open(tmp_path / "x.db")
    page = render_html(build_report(log, inv, START, END, now=NOW))
    log.close()
    assert "<b>甲</b>" not in page and "&lt;b&gt;甲&lt;/b&gt; &amp; co" in page


# --- CLI -----------------------------------------------------------------------------------------------------
@pytest.fixture
def cli_inv(tmp_path, inv):
    log = MaintenanceLog.open(tmp_path / "log.db")  # CANTEEN_OPS_DB from conftest
    seed(log, inv)
    log.close()
    return tmp_path / "inventory.yaml"


def test_cli_markdown_html_json(cli, cli_inv, tmp_path):
    r = cli("-i", cli_inv, "report", "--from", "2026-11-02", "--to", "2026-11-08")
    assert r.code == 0, r
    assert "| Availability 在线率 (samples) | 76.9% | 90% | 33.3% |" in r.out
    out = tmp_path / "r.html"
    r = cli("-i", cli_inv, "report", "--from", "2026-11-02", "--to", "2026-11-08", "--format", "html", "-o", out)
    assert r.code == 0 and out.read_text(encoding="utf-8").count("<svg") >= 5
    r = cli("-i", cli_inv, "report", "--from", "2026-11-02", "--to", "2026-11-08", "-s", "b", "--json")
    data = json.loads(r.out)
    assert [s["id"] for s in data["schools"]] == ["b"] and data["overall"]["availability"]["pct"] == 33.3


def test_cli_errors(cli, cli_inv):
    assert cli("-i", cli_inv, "report", "--format", "pdf").code == 64
    assert cli("-i", cli_inv, "report", "--from", "last tuesday").code == 64
    r = cli("-i", cli_inv, "report", "--from", "2026-11-08", "--to", "2026-11-01")
    assert r.code == 64 and "period is empty" in r.err
    r = cli("-i", cli_inv, "report", "-s", "nowhere")
    assert r.code == 66 and "nowhere" in r.err


def test_report_to_a_directory_is_a_clear_error(cli, cli_inv, tmp_path):
    """-o naming a directory used to end in IsADirectoryError (exit 70)."""
    (tmp_path / "dir").mkdir()
    r = cli("-i", cli_inv, "report", "-o", tmp_path / "dir")
    assert r.code == 73 and "cannot write" in r.err and str(tmp_path / "dir") in r.err, r
    assert list((tmp_path / "dir").iterdir()) == []


def test_report_dates_in_the_inventory_time_zone(tmp_path):
    # A daily report made at 01:06 Shanghai time (17:06 UTC the day before) is dated the 5th.
    inv = parse_inventory("version: 1\nsettings: {timezone: Asia/Shanghai}\nschools:\n  - id: s\n    name: 一小\n"
                          "    devices: [{id: c, kind: camera, vendor: onvif, host: 127.0.0.1}]\n")
    log = MaintenanceLog.open(tmp_path / "r.db")
    now = dt.datetime(2026, 12, 4, 17, 6, tzinfo=dt.timezone.utc)
    md = render_markdown(build_report(log, inv, now - dt.timedelta(days=1), now, now=now))
    log.close()
    assert "Period: 2026-12-04 01:06 – 2026-12-05 01:06 (Asia/Shanghai); generated 2026-12-05 01:06." in md

"""The knowledge base: shipped entries, search (FTS5 trigram and the short-term fallback), the check → entry
mapping, technician entries in the log and upstream, and the hints in `check` and `incident show`."""

from __future__ import annotations

import json
import re

import pytest

from canteen_ops import kb
from canteen_ops.kb.classify import KB_IDS, kb_for, kb_for_result
from canteen_ops.status import Result, Status

SHIPPED = list(kb.shipped())


def test_shipped_entries_are_complete_and_consistent():
    ids = [e.id for e in SHIPPED]
    assert len(ids) == len(set(ids))
    for e in SHIPPED:
        assert re.fullmatch(r"KB-[A-Z0-9-]+", e.id), e.id
        assert e.title and e.symptom and e.escalate, e.id
        assert len(e.causes) >= 1 and len(e.steps) >= 2, e.id
        assert any(re.search(r"[\u4e00-\u9fff]", k) for k in e.keywords), f"{e.id}: no Chinese keyword"
        assert any(re.fullmatch(r"[A-Za-z0-9 .-]+", k) for k in e.keywords), f"{e.id}: no English keyword"
        for ref in re.findall(r"KB-[A-Z0-9-]*[A-Z0-9]", " ".join((e.symptom, *e.causes, *e.steps, e.escalate))):
            assert ref in ids, f"{e.id} refers to missing {ref}"
    assert set(KB_IDS.values()) <= set(ids)  # every mapped failure class has its entry


# The failure classes the checks report (issue 18) and the site faults, with words a technician would type.
@pytest.mark.parametrize("query, want", [
    ("offline", "KB-OFFLINE"), ("离线", "KB-OFFLINE"),
    ("locked", "KB-LOGIN-LOCKED"), ("锁定", "KB-LOGIN-LOCKED"),
    ("1970", "KB-CLOCK-RESET"), ("clock reset", "KB-CLOCK-RESET"), ("时间复位", "KB-CLOCK-RESET"),
    ("NTP", "KB-NTP-OFF"),
    ("hdd error", "KB-HDD-ERROR"), ("硬盘异常", "KB-HDD-ERROR"),
    ("unformatted", "KB-HDD-UNFORMATTED"), ("未初始化", "KB-HDD-UNFORMATTED"),
    ("hdd full", "KB-HDD-FULL"), ("硬盘满", "KB-HDD-FULL"),
    ("retention", "KB-RETENTION-SHORT"), ("保存天数", "KB-RETENTION-SHORT"),
    ("gaps", "KB-RECORDING-GAPS"), ("录像断档", "KB-RECORDING-GAPS"),
    ("video loss", "KB-CHANNEL-VIDEO-LOSS"), ("视频丢失", "KB-CHANNEL-VIDEO-LOSS"),
    ("black screen", "KB-PICTURE-BLACK"), ("黑屏", "KB-PICTURE-BLACK"),
    ("frozen", "KB-PICTURE-FROZEN"), ("画面冻结", "KB-PICTURE-FROZEN"),
    ("blurred", "KB-PICTURE-BLURRED"), ("模糊", "KB-PICTURE-BLURRED"),
    ("covered", "KB-PICTURE-COVERED"), ("遮挡", "KB-PICTURE-COVERED"),
    ("colour cast", "KB-PICTURE-COLOUR-CAST"), ("偏色", "KB-PICTURE-COLOUR-CAST"),
    ("low resolution", "KB-LOW-RESOLUTION"), ("分辨率低", "KB-LOW-RESOLUTION"),
    ("outdated", "KB-FIRMWARE-OUTDATED"), ("vulnerable", "KB-FIRMWARE-VULNERABLE"), ("漏洞", "KB-FIRMWARE-VULNERABLE"),
    ("backup stale", "KB-BACKUP-STALE"), ("备份过期", "KB-BACKUP-STALE"),
    ("PoE", "KB-POE-POWER"), ("花屏", "KB-HUAPING"), ("mosaic", "KB-HUAPING"),
    ("IP conflict", "KB-IP-CONFLICT"), ("IP 冲突", "KB-IP-CONFLICT"),
    ("steam", "KB-STEAM-GREASE"), ("蒸汽", "KB-STEAM-GREASE"), ("油烟", "KB-STEAM-GREASE"),
])
def test_search_finds_the_entry_first(query, want):
    hits = kb.search(SHIPPED, query)
    assert hits and hits[0].id == want, (query, [e.id for e in hits])


def test_every_mapped_entry_is_found_by_its_own_keywords():
    for kb_id in set(KB_IDS.values()):
        entry = kb.find(SHIPPED, kb_id)
        for word in entry.keywords[:2]:
            assert kb_id in [e.id for e in kb.search(SHIPPED, word)], (kb_id, word)


def test_short_chinese_terms_use_the_substring_fallback(monkeypatch):
    from canteen_ops import kb as kb_module

    def no_fts(*a, **k):
        raise AssertionError("a 2-character term cannot be a trigram: FTS5 would find nothing")

    monkeypatch.setattr(kb_module, "_fts", no_fts)
    assert kb.search(SHIPPED, "花屏")[0].id == "KB-HUAPING"
    assert kb.search(SHIPPED, "花屏 PoE")[0].id in ("KB-HUAPING", "KB-POE-POWER")  # every term must occur
    assert kb.search(SHIPPED, "花屏 不存在的词") == []


def test_search_terms_are_literal():
    assert kb.search(SHIPPED, '" OR 1 -- *') == []
    assert kb.search(SHIPPED, "NEAR(clock reset)") == []
    assert kb.search(SHIPPED, "   ") == []


def _r(check, status, summary="", **data):
    return Result("cam-1", check, Status(status), summary, data=data)


@pytest.mark.parametrize("result, want", [
    (_r("reachable", "crit", "offline (connection refused on port 80)", reason="refused"), "KB-OFFLINE"),
    (_r("login", "crit", "offline (connection refused)", error="Offline"), "KB-OFFLINE"),
    (_r("clock", "crit", "no answer (timeout after 5 s)", error="Timeout"), "KB-OFFLINE"),
    (_r("login", "crit", "locked: …", error="Locked", unlock_in_s=1800), "KB-LOGIN-LOCKED"),
    (_r("login", "crit", "auth failed", error="AuthFailed"), "KB-LOGIN-REFUSED"),
    (_r("login", "unknown", "no usable credentials", error="NoCredentials"), "KB-CREDENTIALS-MISSING"),
    (_r("clock", "crit", "clock reset: device says 1970-01-01 00:03 UTC"), "KB-CLOCK-RESET"),
    (_r("clock", "warn", "clock 40 s ahead (> 10 s)"), "KB-CLOCK-DRIFT"),
    (_r("ntp", "warn", "NTP disabled"), "KB-NTP-OFF"),
    (_r("storage", "crit", "no disk installed", disks=[]), "KB-HDD-ABSENT"),
    (_r("storage", "crit", "disk 1: error", disks=[{"status": "error"}]), "KB-HDD-ERROR"),
    (_r("storage", "crit", "disk 1: unformatted", disks=[{"status": "unformatted"}]), "KB-HDD-UNFORMATTED"),
    (_r("storage", "warn", "disk 1: 2% free", disks=[{"status": "ok"}]), "KB-HDD-FULL"),
    (_r("channels", "crit", "channel 2 offline"), "KB-CHANNEL-VIDEO-LOSS"),
    (_r("retention", "crit", "3 days < 7"), "KB-RETENTION-SHORT"),
    (_r("gaps", "warn", "2 gaps"), "KB-RECORDING-GAPS"),
    (_r("stream", "crit", "no stream: timeout"), "KB-NO-STREAM"),
    (_r("stream", "warn", "resolution 1280x720", findings=["low_resolution"]), "KB-LOW-RESOLUTION"),
    (_r("picture", "crit", "black picture", findings=["black", "low_contrast"]), "KB-PICTURE-BLACK"),
    (_r("picture", "warn", "colour cast", findings=["colour_cast"]), "KB-PICTURE-COLOUR-CAST"),
    (_r("firmware", "warn", "outdated"), "KB-FIRMWARE-OUTDATED"),
    (_r("firmware", "crit", "vulnerable"), "KB-FIRMWARE-VULNERABLE"),
    (_r("clock", "ok", "clock in sync"), None),
    (_r("storage", "unknown", "not supported", error="NotSupported"), None),
])
def test_results_point_at_their_entry(result, want):
    assert kb_for_result(result) == want
    row = {"check_name": result.check, "status": result.status.value, "summary": result.summary,
           "data": result.data}
    assert kb_for_result(row) == want  # the same from a results row of the log
    assert kb_for("backup", "warn", "stale") == "KB-BACKUP-STALE"


def test_cli_search_show_list_and_exit_codes(cli):
    r = cli("kb", "search", "花屏")
    assert r.code == 0 and "KB-HUAPING" in r.out
    r = cli("kb", "search", "--json", "clock", "reset")
    assert r.code == 0 and json.loads(r.out)[0]["id"] == "KB-CLOCK-RESET"
    r = cli("kb", "search", "没有这个故障")
    assert r.code == 66 and "no entry matches" in r.err
    r = cli("kb", "show", "kb-clock-reset")
    assert r.code == 0 and "处理步骤 steps:" in r.out and "1. " in r.out and "何时升级" in r.out
    assert cli("kb", "show", "KB-NOPE").code == 66
    r = cli("kb", "list", "--json")
    assert r.code == 0 and len(json.loads(r.out)) == len(SHIPPED)


def test_kb_add_is_logged_searchable_and_validated(cli, tmp_path):
    r = cli("kb", "add", "-t", "雨季烹饪区花屏 [/]", "--symptom", "下雨后花屏", "--cause", "室外水晶头进水",
            "--step", "重做水晶头", "--step", "加防水胶布", "-k", "rainy season", "--extends", "kb-huaping", "--json")
    assert r.code == 0, r
    added = json.loads(r.out)
    assert re.fullmatch(r"KB-T-[0-9A-F]{8}", added["id"]) and added["extends"] == "KB-HUAPING"
    assert added["source"] == "technician" and added["steps"] == ["重做水晶头", "加防水胶布"]
    assert [e["id"] for e in json.loads(cli("kb", "search", "--json", "雨季").out)] == [added["id"]]
    assert added["id"] in [e["id"] for e in json.loads(cli("kb", "search", "--json", "rainy season").out)]
    shown = cli("kb", "show", "KB-HUAPING")
    assert added["id"] in shown.out and "雨季烹饪区花屏 [/]" in shown.out  # markup-looking text printed as text
    r = cli("log", "list", "--kind", "kb", "--json")
    assert [x["status"] for x in json.loads(r.out)] == [added["id"]]
    assert cli("kb", "add", "-t", "x").code == 64  # nothing but a title
    assert cli("kb", "add", "-t", "x", "--step", "y", "--extends", "KB-NOPE").code == 64


def test_kb_entries_sync_upstream_to_a_real_datasette(tmp_path):
    from canteen_ops import upstream as up
    from canteen_ops.lab.district import DatasetteServer
    from canteen_ops.store.log import MaintenanceLog

    log = MaintenanceLog.open(tmp_path / "local.db")
    server = DatasetteServer(tmp_path / "up").start()
    try:
        entry = kb.add(log, title="专间紫外灯下偏紫", symptom="消毒时段画面发紫", steps=["确认紫外灯时段", "备注"],
                       keywords=["uv lamp"], author="li")
        up.sync(log, server.url, server.token())
        rows = server.rows("kb_entries")
        assert [(r["kb_id"], r["title"], r["author"]) for r in rows] == [(entry.id, "专间紫外灯下偏紫", "li")]
        assert up.pending_counts(log, server.url)["kb_entries"] == 0
    finally:
        server.stop()
        log.close()


def test_failing_lab_check_shows_the_kb_hint(cli, lab, lab_faults, lab_env):
    nvr = lab.first("hikvision", "nvr").id
    lab_faults.set(nvr, "clock-reset")
    r = cli("check", "--only", "clock", "-d", nvr)
    assert r.code == 2, r
    assert "(kb: KB-CLOCK-RESET)" in r.out
    r = cli("check", "--only", "clock", "-d", nvr, "--json")
    (line,) = [json.loads(x) for x in r.out.splitlines()]
    assert line["status"] == "crit" and line["kb"] == "KB-CLOCK-RESET"
    r = cli("check", "--only", "clock", "-d", nvr, "--quiet")
    assert "(kb: KB-CLOCK-RESET)" in r.out


def test_incident_show_points_at_the_entry(cli, lab, lab_faults, lab_env):
    nvr = lab.first("dahua", "nvr").id
    lab_faults.set(nvr, "hdd-error")
    r = cli("check", "--only", "storage", "-d", nvr, "--open-incidents", "--json")
    assert json.loads(r.out.splitlines()[0])["kb"] == "KB-HDD-ERROR"
    incidents = json.loads(cli("incident", "list", "--json").out)
    (inc,) = [i for i in incidents if nvr in (i.get("device_ids") or [])]
    r = cli("incident", "show", inc["id"])
    assert r.code == 0 and "kb           KB-HDD-ERROR  (canteen-ops kb show KB-HDD-ERROR)" in r.out
    assert json.loads(cli("incident", "show", inc["id"], "--json").out)["incident"]["kb"] == "KB-HDD-ERROR"


def test_stale_backups_point_at_the_entry(cli):
    from tests.conftest import EXAMPLE

    r = cli("-i", EXAMPLE, "backup", "list", "--stale", "24h", "--json", "-d", "xc-*")
    assert r.code == 1
    rows = json.loads(r.out)
    assert rows and all(x["kb"] == "KB-BACKUP-STALE" for x in rows)

"""Chinese messages (LANG=zh_CN.UTF-8 / --lang zh, English by default) and exports for Excel on Chinese Windows."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

import pytest

from canteen_ops.status import Result, Status
from canteen_ops.store.log import MaintenanceLog
from tests.conftest import EXAMPLE


@pytest.fixture
def zh(monkeypatch):
    monkeypatch.delenv("LC_ALL", raising=False)
    monkeypatch.delenv("LC_MESSAGES", raising=False)
    monkeypatch.setenv("LANG", "zh_CN.UTF-8")


@pytest.fixture
def en(monkeypatch):
    monkeypatch.delenv("LC_ALL", raising=False)
    monkeypatch.delenv("LC_MESSAGES", raising=False)
    monkeypatch.setenv("LANG", "C")


def test_compiled_catalog_matches_its_source():
    from canteen_ops.locale import msgfmt

    [po] = msgfmt.catalogs()
    assert po.with_suffix(".mo").read_bytes() == msgfmt.mo_bytes(msgfmt.parse_po(po.read_text(encoding="utf-8"))), \
        "run: python -m canteen_ops.locale.msgfmt"


def test_language_comes_from_the_environment_in_posix_order(monkeypatch):
    from canteen_ops import i18n

    for var in ("LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.delenv(var, raising=False)
    assert i18n.language() == "en"
    monkeypatch.setenv("LANG", "zh_CN.UTF-8")
    assert i18n.language() == "zh"
    monkeypatch.setenv("LC_MESSAGES", "en_US.UTF-8")
    assert i18n.language() == "en"
    monkeypatch.setenv("LC_ALL", "zh_CN.GB18030")
    assert i18n.language() == "zh"
    i18n.set_language("en")
    try:
        assert i18n.language() == "en" and i18n.status_word("crit") == "crit"
    finally:
        i18n.set_language(None)
    assert [i18n.status_word(s) for s in ("ok", "warn", "crit", "unknown", "n/a")] == ["正常", "警告", "严重", "未知",
                                                                                       "不适用"]


def test_inventory_list_in_chinese_keeps_data(cli, zh):
    r = cli("-i", EXAMPLE, "inventory", "list")
    assert r.code == 0, r
    assert "设备" in r.out and "区域" in r.out and "录像机/通道" in r.out
    assert "2 所学校共 16 台设备" in r.out
    assert "西城区实验小学" in r.out and "xc-cam-04" in r.out and "凉菜专间" in r.out  # data as it is


def test_inventory_list_in_english_with_lang_c(cli, en):
    r = cli("-i", EXAMPLE, "inventory", "list")
    assert r.code == 0 and "device" in r.out and "16 devices in 2 schools" in r.out and "设备 " not in r.out


def test_global_lang_flag_overrides_the_environment(cli, en):
    r = cli("--lang", "zh", "-i", EXAMPLE, "inventory", "list")
    assert r.code == 0 and "台设备" in r.out
    r = cli("--lang", "fr", "log", "list")
    assert r.code == 64 and "--lang 'fr'" in r.err


def test_log_list_and_errors_in_chinese(cli, zh):
    assert cli("log", "add", "镜头已清洁").code == 0
    r = cli("log", "list")
    assert r.code == 0 and "1 条记录" in r.out and "时间（本地）" in r.out and "摘要" in r.out
    r = cli("incident", "show", "abcdef")
    assert r.code == 66 and r.err.startswith("错误: 没有编号为 'abcdef' 的事件")
    r = cli("-i", EXAMPLE, "check", "-d", "nope")
    assert r.code == 64 and "没有设备符合所选条件" in r.err


def test_incidents_in_chinese(cli, zh):
    r = cli("-i", EXAMPLE, "incident", "open", "--level", "major", "--title", "录像机离线", "-d", "xc-nvr-01",
            "--json")
    assert r.code == 0, r
    ident = json.loads(r.out)["id"][:8]
    r = cli("-i", EXAMPLE, "incident", "list")
    assert r.code == 0 and "1 个事件" in r.out and "重大" in r.out and "待处理" in r.out and "录像机离线" in r.out
    r = cli("-i", EXAMPLE, "incident", "show", ident)
    assert r.code == 0 and "标题" in r.out and "处置记录" in r.out


def test_report_headings_in_chinese(cli, zh):
    r = cli("-i", EXAMPLE, "report")
    assert r.code == 0, r
    assert "## 关键指标" in r.out and "| 设备数 |" in r.out and "统计期间" in r.out and "## 说明" in r.out


def test_check_table_and_summary_in_chinese(lab, lab_env, cli, zh):
    r = cli("check", "-d", "s001-cam01", "--only", "reachable,login", "--all")
    assert r.code == 0, r
    assert "状态" in r.out and "发现" in r.out and "正常" in r.out
    assert "1 所学校共 1 台设备，2 项结果：2 正常" in r.out and "最差 正常" in r.out


def test_check_in_english_by_default(lab, lab_env, cli, en):
    r = cli("check", "-d", "s001-cam01", "--only", "reachable", "--all")
    assert r.code == 0 and "1 device in 1 school, 1 result: 1 ok" in r.out and "OK" in r.out


# --- exports -------------------------------------------------------------------------------------------------
def _seed(db) -> str:
    log = MaintenanceLog.open(db)
    with log.run("check", [], "tester") as run:
        run.record(Result("xc-cam-01", "facts", Status.OK, "facts", {"model": "DS-2CD2386G2-IU"},
                          school_id="xc-shiyan-xx"))
    at = log.query("SELECT observed_at FROM results")[0]["observed_at"]
    log.close()
    return at


def _shanghai(at: str) -> dt.datetime:
    from canteen_ops.timeutil import parse_iso

    return (parse_iso(at) + dt.timedelta(hours=8)).replace(tzinfo=None, microsecond=0)


def test_ledger_xlsx_in_chinese(cli, tmp_path):
    from openpyxl import load_workbook

    db = tmp_path / "log.db"
    at = _seed(db)
    out = tmp_path / "台帐.xlsx"
    r = cli("-i", EXAMPLE, "--db", db, "inventory", "ledger", "--lang", "zh", "--format", "xlsx", "-o", out)
    assert r.code == 0, r
    ws = load_workbook(out).active
    rows = list(ws.values)
    head = rows[0]
    assert head[:4] == ("学校编号", "学校名称", "区县", "设备编号") and "最近检查时间" in head
    assert len(rows) == 17
    cam = dict(zip(head, next(r for r in rows if r[3] == "xc-cam-01")))
    assert cam["学校名称"] == "西城区实验小学" and cam["实测型号"] == "DS-2CD2386G2-IU"
    assert cam["最近检查时间"] == _shanghai(at)  # a real date-time cell, local to the inventory's zone
    assert cam["最近状态"] == "ok"


def test_ledger_csv_in_chinese_has_bom_and_local_times(cli, tmp_path):
    db = tmp_path / "log.db"
    at = _seed(db)
    r = cli("-i", EXAMPLE, "--db", db, "inventory", "ledger", "--lang", "zh", "-d", "xc-cam-01")
    assert r.code == 0, r
    assert r.out.startswith("\ufeff学校编号,")
    row = list(csv.DictReader(io.StringIO(r.out.lstrip("\ufeff"))))[0]
    assert row["最近检查时间"] == _shanghai(at).strftime("%Y-%m-%d %H:%M:%S")


def test_ledger_english_csv_is_unchanged_for_machines(cli, tmp_path):
    db = tmp_path / "log.db"
    at = _seed(db)
    r = cli("-i", EXAMPLE, "--db", db, "inventory", "ledger", "-d", "xc-cam-01")
    assert r.code == 0 and r.out.startswith("school_id,")
    assert list(csv.DictReader(io.StringIO(r.out)))[0]["last_check_at"] == at


def test_log_export_xlsx_and_csv_in_chinese(cli, tmp_path):
    from openpyxl import load_workbook

    assert cli("log", "add", "镜头已清洁 [/] \x1b[2J").code == 0
    [note] = json.loads(cli("log", "list", "--json").out)
    out = tmp_path / "日志.xlsx"
    r = cli("-i", EXAMPLE, "log", "export", "--lang", "zh", "--format", "xlsx", "-o", out)
    assert r.code == 0, r
    rows = list(load_workbook(out).active.values)
    assert rows[0] == ("时间", "类型", "编号", "学校编号", "设备编号", "状态", "摘要", "操作人")
    assert rows[1][0] == _shanghai(note["at"]) and rows[1][6] == "镜头已清洁 [/] \\x1b[2J"
    out = tmp_path / "日志.csv"
    r = cli("-i", EXAMPLE, "log", "export", "--lang", "zh", "--format", "csv", "-o", out)
    assert r.code == 0, r
    data = out.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    row = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))[1]
    assert row[0] == _shanghai(note["at"]).strftime("%Y-%m-%d %H:%M:%S") and row[6] == "镜头已清洁 [/] \x1b[2J"


def test_xlsx_needs_a_file(cli):
    r = cli("log", "export", "--format", "xlsx")
    assert r.code == 64 and "--output" in r.err
    r = cli("-i", EXAMPLE, "inventory", "ledger", "--lang", "jp")
    assert r.code == 64 and "--lang 'jp'" in r.err


def test_the_output_files_suffix_picks_the_format_and_a_contradiction_is_refused(tmp_path, cli):
    """`-o ledger.xlsx` used to write CSV text into a .xlsx file (Excel refuses it), `-o log.csv` JSON Lines."""
    import zipfile

    assert cli("-i", EXAMPLE, "inventory", "ledger", "-o", tmp_path / "ledger.xlsx").code == 0
    assert zipfile.is_zipfile(tmp_path / "ledger.xlsx")
    assert cli("-i", EXAMPLE, "log", "add", "巡检", "--kind", "inspection").code == 0
    assert cli("-i", EXAMPLE, "log", "export", "-o", tmp_path / "log.csv", "--lang", "zh").code == 0
    text = (tmp_path / "log.csv").read_text(encoding="utf-8-sig")
    assert not text.startswith("{") and "巡检" in text
    assert cli("-i", EXAMPLE, "log", "export", "-o", tmp_path / "log.jsonl").code == 0
    assert (tmp_path / "log.jsonl").read_text(encoding="utf-8").startswith("{")
    r = cli("-i", EXAMPLE, "inventory", "ledger", "-f", "csv", "-o", tmp_path / "other.xlsx")
    assert r.code == 64 and "--format csv" in r.err and not (tmp_path / "other.xlsx").exists(), r
    assert cli("-i", EXAMPLE, "inventory", "ledger", "-o", tmp_path / "ledger.txt").code == 0  # unknown: csv
    assert (tmp_path / "ledger.txt").read_text(encoding="utf-8-sig").startswith("school")


def test_xlsx_without_a_file_is_refused_before_the_log_is_opened(cli, tmp_path):
    """The refusal used to come after the log was created, read and encoded."""
    db = tmp_path / "log.db"
    assert not db.exists()
    r = cli("log", "export", "--format", "xlsx")
    assert r.code == 64 and "--output" in r.err and not db.exists(), r
    r = cli("-i", EXAMPLE, "inventory", "ledger", "--format", "xlsx")
    assert r.code == 64 and "--output" in r.err and not db.exists(), r

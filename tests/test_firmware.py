"""Firmware: vendor version comparison, catalog validation with positions, verdicts, the CLI."""

from __future__ import annotations

import datetime as dt
import json
import textwrap

import pytest

from canteen_ops.drivers.base import Facts, Offline
from canteen_ops.errors import InvalidFile
from canteen_ops.inventory.loader import load_inventory
from canteen_ops.tasks import firmware as fw
from canteen_ops.tasks.firmware import (assess, compare_versions, load_catalog, parse_dahua, parse_freeform,
                                        parse_hikvision)
from tests.conftest import EXAMPLE, ROOT
from tests.fake_driver import FakeFleet

CATALOG = ROOT / "firmware-catalog.example.yaml"


# --- versions --------------------------------------------------------------------------------------------------
def test_parse_hikvision_forms():
    v = parse_hikvision("V5.7.18 build 240826")
    assert v.numbers == (5, 7, 18) and v.build == dt.date(2024, 8, 26)
    assert parse_hikvision("V4.62.210 build 230619").build == dt.date(2023, 6, 19)
    assert parse_hikvision("V5.5.0build 170725").build == dt.date(2017, 7, 25)
    assert parse_hikvision("V5.7.18_240826").build == dt.date(2024, 8, 26)
    assert parse_hikvision("V5.7.18 build 20240826").build == dt.date(2024, 8, 26)
    assert parse_hikvision("V5.7.18").build is None
    assert parse_hikvision("unknown") is None


@pytest.mark.parametrize("a,b,expected", [
    ("V5.7.18 build 240826", "V5.7.18 build 240826", 0),
    ("V5.7.3 build 220112", "V5.7.18 build 240826", -1),  # 3 < 18 numerically, not as text
    ("V5.7.18 build 240826", "V5.7.18 build 230101", 1),  # same version, newer build
    ("V5.6.3 build 200308", "V5.5.800 build 210628", 1),  # numbers decide before dates
    ("V5.5.0 build 170725", "V5.5.800 build 210628", -1),
    ("V5.7 build 240826", "V5.7.0 build 240826", 0),  # missing parts count as 0
    ("V5.7.18", "V5.7.18 build 240826", 0),  # no build on one side: numbers only
])
def test_hikvision_ordering(a, b, expected):
    assert compare_versions("hikvision", a, b) == expected
    assert compare_versions("hikvision", b, a) == -expected


def test_parse_dahua_forms():
    v = parse_dahua("2.800.0000016.0.R,build:2020-06-05")
    assert v.numbers == (2, 800, 16, 0) and v.build == dt.date(2020, 6, 5) and v.tag == "R"
    v = parse_dahua("V2.820.0000000.5.R, Build Date: 2021-11-18")
    assert v.numbers == (2, 820, 0, 5) and v.build == dt.date(2021, 11, 18)
    assert parse_dahua("2.840.0000000.7.T,build:20230511").build == dt.date(2023, 5, 11)
    assert parse_dahua("n/a") is None


@pytest.mark.parametrize("a,b,expected", [
    ("2.800.0000016.0.R,build:2020-06-05", "2.800.0000016.0.R,build:2020-06-05", 0),
    ("2.800.0000000.8.R,build:2019-03-04", "2.800.0000016.0.R,build:2020-06-05", -1),  # 0000000 < 0000016
    ("2.840.0000000.7.R,build:2023-05-11", "2.800.0000016.0.R,build:2020-06-05", 1),
    ("2.800.0000016.0.R,build:2020-07-01", "2.800.0000016.0.R,build:2020-06-05", 1),  # later build
    ("2.800.0000016.0.T,build:2020-06-05", "2.800.0000016.0.R,build:2020-06-05", 0),  # tag is not ordered
    ("2.400.0000000.16.R,build:2016-11-01", "2.420.0000000.0.R,build:2017-01-01", -1),
])
def test_dahua_ordering(a, b, expected):
    assert compare_versions("dahua", a, b) == expected
    assert compare_versions("dahua", b, a) == -expected


def test_freeform_best_effort():
    assert parse_freeform("2.4.1").numbers == (2, 4, 1)
    assert parse_freeform("V5.5.0 build 170725").build == dt.date(2017, 7, 25)
    assert parse_freeform("2.800.0000016.0.R,build:2020-06-05").build == dt.date(2020, 6, 5)
    assert parse_freeform("IPC_FW 3.1.7 (2022-01-05)").build == dt.date(2022, 1, 5)
    assert parse_freeform("firmware-7") is None or parse_freeform("firmware-7").numbers == (7,)
    assert parse_freeform("unknown") is None
    assert compare_versions("onvif", "2.4.1", "2.10.0") == -1


# --- catalog ---------------------------------------------------------------------------------------------------
def test_example_catalog_loads():
    cat = load_catalog(CATALOG)
    assert {e.vendor for e in cat.entries} == {"hikvision", "dahua", "onvif"}
    assert cat.find(["hikvision"], "ds-2cd2386g2-iu").latest.raw == "V5.7.18 build 240826"


def _write(tmp_path, text):
    p = tmp_path / "cat.yaml"
    p.write_text(textwrap.dedent(text), encoding="utf-8")
    return p


def test_catalog_errors_have_line_and_column(tmp_path, cli):
    p = _write(tmp_path, """\
        version: 1
        entries:
          - vendor: hikvision
            models: ["DS-2CD2*"]
            latest: V5.7.18 build 240826
            minimum: banana
            vulnerable:
              - below: V5.5.800 build 210628
          - vendor: huawei
            models: ["X*"]
            latest: "1.0"
          - vendor: dahua
            models: ["DH-IPC-*"]
            latest: 2.800.0000016.0.R,build:2020-06-05
            lastest: 2.840.0000000.7.R,build:2023-05-11
            vulnerable:
              - advisory: CVE-2017-7927
                built_before: someday
        """)
    with pytest.raises(InvalidFile) as exc:
        load_catalog(p)
    got = [(pr.line, pr.column, pr.path) for pr in exc.value.problems]
    assert (6, 14, "entries[0].minimum") in got
    assert (8, 9, "entries[0].vulnerable[0]") in got  # missing advisory id
    assert (9, 13, "entries[1].vendor") in got
    assert (15, 5, "entries[2].lastest") in got  # unknown key, at the key
    assert (18, 23, "entries[2].vulnerable[0].built_before") in got
    r = cli("-i", EXAMPLE, "firmware", "check", "--catalog", p)
    assert r.code == 65
    assert f"{p}:6:14: entries[0].minimum: cannot read 'banana' as a hikvision version" in r.err


def test_catalog_yaml_syntax_error(tmp_path, cli):
    p = _write(tmp_path, "version: 1\nentries:\n  - vendor: [hikvision\n")
    with pytest.raises(InvalidFile) as exc:
        load_catalog(p)
    assert exc.value.problems[0].line >= 3


def test_catalog_minimum_newer_than_latest(tmp_path):
    p = _write(tmp_path, """\
        entries:
          - vendor: hikvision
            models: DS-*
            latest: V5.5.0 build 170725
            minimum: V5.7.18 build 240826
        """)
    with pytest.raises(InvalidFile, match="newer than latest"):
        load_catalog(p)


# --- verdicts --------------------------------------------------------------------------------------------------
@pytest.fixture
def inv():
    return load_inventory(EXAMPLE)


@pytest.mark.parametrize("device,facts,status", [
    ("xc-cam-01", Facts("hikvision", "DS-2CD2386G2-IU", firmware="V5.7.18 build 240826"), "current"),
    ("xc-cam-01", Facts("hikvision", "DS-2CD2386G2-IU", firmware="V5.7.10 build 230301"), "current"),
    ("xc-cam-01", Facts("hikvision", "DS-2CD2386G2-IU", firmware="V5.6.3 build 200308"), "outdated"),
    ("xc-cam-01", Facts("hikvision", "DS-2CD2386G2-IU", firmware="V5.5.0 build 170725"), "vulnerable"),
    ("xc-cam-01", Facts("hikvision", "DS-2CD9999-Z", firmware="V5.7.18 build 240826"), "unknown-model"),
    ("xc-cam-01", Facts("hikvision", "DS-2CD2386G2-IU", firmware="garbled"), "unknown"),
    ("hd-cam-01", Facts("dahua", "DH-IPC-HFW2431S-S-S2", firmware="2.840.0000000.7.R,build:2023-05-11"), "current"),
    ("hd-cam-01", Facts("dahua", "DH-IPC-HFW2431S-S-S2", firmware="2.800.0000000.8.R,build:2019-03-04"),
     "outdated"),
    ("hd-cam-01", Facts("dahua", "DH-IPC-HFW2431S-S-S2", firmware="2.400.0000000.16.R,build:2016-11-01"),
     "vulnerable"),
    ("xc-cam-06", Facts("onvif", "IPC-G2-ONVIF", firmware="2.4.1"), "current"),
    ("xc-cam-06", Facts("onvif", "IPC-G2-ONVIF", firmware="1.9.0"), "outdated"),
    # an ONVIF camera made by Hikvision is judged by Hikvision's entries
    ("xc-cam-06", Facts("HIKVISION", "DS-2CD2346G2-I", firmware="V5.5.0 build 170725"), "vulnerable"),
])
def test_assess(inv, device, facts, status):
    f = assess(inv.device(device), facts, load_catalog(CATALOG))
    assert f.status == status, f.summary
    if status == "vulnerable":
        assert f.advisories and f.advisories[0]["id"].startswith("CVE-")
        assert "affected by CVE-" in f.summary


def test_cli_check_reports_and_records(cli, monkeypatch):
    fleet = FakeFleet()
    monkeypatch.setattr(fw, "_default_factory", fleet.factory)
    fleet["xc-cam-01"].facts = Facts("hikvision", "DS-2CD2386G2-IU", firmware="V5.7.18 build 240826")
    fleet["xc-cam-02"].facts = Facts("hikvision", "DS-2CD2386G2-IU", firmware="V5.6.3 build 200308")
    fleet["xc-cam-03"].facts = Facts("hikvision", "DS-2CD2386G2-IU", firmware="V5.5.0 build 170725")
    fleet["xc-cam-04"].error = Offline("connection refused")
    r = cli("-i", EXAMPLE, "firmware", "check", "-d", "xc-cam-0[1234]", "--catalog", CATALOG)
    assert r.code == 2, r
    assert "vulnerable" in r.out and "CVE-2021-36260" in r.out and "outdated" in r.out
    r = cli("-i", EXAMPLE, "firmware", "check", "-d", "xc-cam-0[12]", "--catalog", CATALOG, "--json")
    assert r.code == 1
    assert {f["device_id"]: f["status"] for f in json.loads(r.out)} == {"xc-cam-01": "current",
                                                                     "xc-cam-02": "outdated"}
    r = cli("-i", EXAMPLE, "firmware", "check", "-d", "xc-cam-04", "--catalog", CATALOG)
    assert r.code == 3 and "connection refused" in r.out
    from canteen_ops.store.log import MaintenanceLog
    import os

    log = MaintenanceLog.open(os.environ["CANTEEN_OPS_DB"])
    rows = log.query("SELECT device_id, status, advisories FROM firmware_findings ORDER BY seq")
    log.close()
    assert len(rows) == 7
    vuln = [x for x in rows if x["status"] == "vulnerable"]
    assert vuln[0]["device_id"] == "xc-cam-03" and vuln[0]["advisories"][0]["id"] == "CVE-2021-36260"


def test_cli_check_needs_a_catalog(cli):
    r = cli("-i", EXAMPLE, "firmware", "check")
    assert r.code == 64 and "--catalog" in r.err
    r = cli("-i", EXAMPLE, "firmware", "check", "--catalog", "nope.yaml")
    assert r.code == 66 and "nope.yaml" in r.err

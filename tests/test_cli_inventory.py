"""`canteen-ops inventory validate | list | ledger` through the real CLI entry point."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys

import pytest

from canteen_ops.status import Result, Status
from canteen_ops.store.log import MaintenanceLog
from tests.conftest import EXAMPLE, ROOT
from tests.inventory_fixtures import pos, write

BAD = """\
version: 1
credentials:
  c: {username: admin, password: [Hik-S3cret-99]}
schools:
  - id: s1
    name: 第一小学
    devices:
      - {id: c1, kind: camera, vendor: onvif, host: 10.0.0.300, port: 99999}
"""


def test_validate_ok(cli):
    r = cli("-i", EXAMPLE, "inventory", "validate")
    assert r.code == 0, r
    assert f"{EXAMPLE}: OK — 2 schools, 16 devices" in r.out
    assert r.err == ""


def test_inventory_from_env(cli, monkeypatch):
    monkeypatch.setenv("CANTEEN_OPS_INVENTORY", str(EXAMPLE))
    assert cli("inventory", "validate").code == 0


def test_default_inventory_is_cwd(cli, tmp_path):
    (tmp_path / "inventory.yaml").write_text(EXAMPLE.read_text(encoding="utf-8"), encoding="utf-8")
    assert cli("inventory", "validate").code == 0


def test_missing_inventory_is_66(cli):
    r = cli("inventory", "list")
    assert r.code == 66
    assert "inventory.yaml: inventory file not found" in r.err


@pytest.mark.parametrize("command", [["inventory", "validate"], ["inventory", "list"], ["inventory", "ledger"],
                                     ["inventory", "list", "--json"]])
def test_invalid_inventory_exits_65_and_runs_nothing(cli, tmp_path, command):
    f = write(tmp_path, BAD)
    db = tmp_path / "log.db"
    r = cli("-i", f, "--db", db, *command)
    assert r.code == 65, r
    assert r.out == ""
    lines = r.err.splitlines()
    assert lines == [
        f"error: {f}:%d:%d: credentials.c.password: expected a string, got list" % pos(BAD, "[Hik"),
        f"error: {f}:%d:%d: schools[0].devices[0].host: invalid host '10.0.0.300': " % pos(BAD, "10.0.0.300")
        + "expected an IPv4/IPv6 address or a DNS name",
        f"error: {f}:%d:%d: schools[0].devices[0].port: port 99999 out of range 1-65535" % pos(BAD, "99999"),
        "3 problems found; nothing was run",
    ]
    assert "Hik-S3cret-99" not in r.err + r.out
    assert not db.exists()


def test_plaintext_password_warning_names_file_and_line(cli, tmp_path):
    text = EXAMPLE.read_text(encoding="utf-8").replace("    password_env: CANTEEN_HIK_PASSWORD",
                                                       "    password: 'Hik12345!'")
    f = write(tmp_path, text)
    line = text.splitlines().index("    password: 'Hik12345!'") + 1
    r = cli("-i", f, "inventory", "validate")
    assert r.code == 0
    assert f"warning: {f}:{line}:15: credentials 'hik-admin' has a plaintext password" in r.err
    assert "Hik12345" not in r.err + r.out
    assert cli("-q", "-i", f, "inventory", "validate").err == ""  # --quiet: cron wants only problems


def test_list_table(cli):
    r = cli("-i", EXAMPLE, "inventory", "list")
    assert r.code == 0, r
    assert r.out.rstrip().endswith("16 devices in 2 schools")
    assert "西城区实验小学 (xc-shiyan-xx, 西城区) — 8 devices" in r.out
    assert "海淀区育才中学 (hd-yucai-zx, 海淀区) — 8 devices" in r.out
    row = next(line for line in r.out.splitlines() if "xc-cam-04" in line)
    for text in ("hikvision camera", "10.12.1.24:80", "专间", "凉菜专间", "xc-nvr-01/4", "DS-2CD2346G2-I"):
        assert text in row


def test_list_table_keeps_ids_whole_on_a_narrow_terminal(monkeypatch):
    import contextlib

    import canteen_ops.cli.app as app_module

    monkeypatch.setenv("COLUMNS", "80")  # (the cli fixture would set 200)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert app_module.run(["-i", str(EXAMPLE), "inventory", "list", "--school", "hd-yucai-zx"]) == 0
    from rich.cells import cell_len

    out = buf.getvalue()
    assert max(cell_len(line) for line in out.splitlines()) <= 80  # terminal cells: 监控室 is 6
    for text in ("hd-cam-07", "10.13.1.27:80", "hd-nvr-01/7"):
        assert text in out  # ids and addresses are never wrapped or cut; free text is cut with "…"
    assert "…" in out


def test_list_json(cli):
    r = cli("-i", EXAMPLE, "inventory", "list", "--json", "--device", "xc-cam-06")
    assert r.code == 0, r
    rows = json.loads(r.out)
    assert rows == [{
        "id": "xc-cam-06", "school_id": "xc-shiyan-xx", "school_name": "西城区实验小学", "district": "西城区",
        "name": "备餐间", "kind": "camera", "vendor": "onvif", "host": "10.12.1.26", "port": 80, "https": False,
        "rtsp_port": 554, "timeout": 5.0, "credentials": "onvif-operator", "username": "operator", "area": "备餐区",
        "nvr": "xc-nvr-01", "nvr_channel": 6, "model": "IPC-G2-ONVIF", "serial": None, "installed": "2024-03-02",
        "warranty_until": None, "tags": ["hikvision-estate"], "line": rows[0]["line"],
    }]
    assert rows[0]["line"] > 40
    assert "password" not in r.out


@pytest.mark.parametrize("args, expected", [
    (["--school", "xc-shiyan-xx"], 8),
    (["--school", "海淀区育才中学"], 8),
    (["-s", "海淀区育才中学", "-s", "xc-shiyan-xx"], 16),
    (["--device", "*-cam-0[1-3]"], 6),
    (["--kind", "nvr"], 2),
    (["--vendor", "onvif"], 2),
    (["--area", "烹饪区"], 3),
    (["--tag", "cold-room"], 1),
    (["--school", "海淀区育才中学", "--kind", "camera", "--area", "专间"], 1),
    (["--vendor", "hikvision", "--kind", "camera"], 6),
    (["--school", "nowhere"], 0),
])
def test_list_selection(cli, args, expected):
    r = cli("-i", EXAMPLE, "inventory", "list", "--json", *args)
    assert r.code == 0, r
    assert len(json.loads(r.out)) == expected


@pytest.mark.parametrize("args, message", [
    (["--kind", "dome"], "--kind 'dome': expected one of camera, nvr"),
    (["--vendor", "uniview"], "--vendor 'uniview': expected one of hikvision, dahua, onvif"),
])
def test_invalid_selection_is_usage_error(cli, args, message):
    r = cli("-i", EXAMPLE, "inventory", "list", *args)
    assert r.code == 64
    assert message in r.err


def test_unknown_option_is_usage_error(cli):
    r = cli("-i", EXAMPLE, "inventory", "list", "--colour")
    assert r.code == 64
    assert "No such option" in r.err


def _ledger_rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def test_ledger_without_log(cli, tmp_path):
    db = tmp_path / "log.db"
    r = cli("-i", EXAMPLE, "--db", db, "inventory", "ledger")
    assert r.code == 0, r
    rows = _ledger_rows(r.out)
    assert list(rows[0]) == [
        "school_id", "school_name", "district", "device_id", "name", "kind", "vendor", "host", "port", "area",
        "nvr", "nvr_channel", "model", "serial", "installed", "warranty_until", "tags",
        "observed_model", "observed_serial", "firmware", "last_check_at", "last_status", "last_backup_at",
    ]
    assert len(rows) == 16
    nvr = rows[0]
    assert (nvr["school_name"], nvr["district"], nvr["device_id"], nvr["area"], nvr["installed"],
            nvr["warranty_until"]) == ("西城区实验小学", "西城区", "xc-nvr-01", "监控室", "2023-08-20", "2026-08-19")
    assert rows[4]["name"] == "凉菜专间" and rows[4]["tags"] == "hikvision-estate cold-room"
    assert rows[4]["nvr_channel"] == "4" and rows[0]["nvr_channel"] == ""
    assert all(r["firmware"] == "" and r["last_backup_at"] == "" for r in rows)
    assert not db.exists()  # reading the ledger never creates a log


def _seed(db) -> dict:
    log = MaintenanceLog.open(db)
    with log.run("check", [], "tester") as run:
        run.record(Result("xc-cam-01", "facts", Status.OK, "facts", {"model": "DS-2CD2386G2-IU",
                          "serial": "DS-2CD2386G2-IU20230101AAWRJ00001", "firmware": "V5.7.18 build 240826"},
                          school_id="xc-shiyan-xx"))
        run.record(Result("xc-cam-01", "clock", Status.WARN, "drift 9 s", school_id="xc-shiyan-xx"))
    with log.run("check", [], "tester") as run:
        # a later facts check that failed carries no facts: the ledger keeps the last known ones
        run.record(Result("xc-cam-01", "facts", Status.UNKNOWN, "offline", {}, school_id="xc-shiyan-xx"))
        run.record(Result("hd-cam-02", "facts", Status.OK, "facts", {"model": "DH-IPC-HFW2431S-S-S2",
                          "serial": "7J0C1234567890", "firmware": "2.800.0000016.0.R,build:2020-06-05"}))
        run.record(Result(None, "coverage", Status.OK, "all areas", school_id="xc-shiyan-xx"))
    log.insert("backups", {"device_id": "xc-cam-01", "status": "ok", "method": "isapi", "sha256": "ab" * 32,
                           "created_at": "2026-11-20T01:00:00.000000Z"})
    log.insert("backups", {"device_id": "xc-cam-01", "status": "ok", "method": "isapi", "sha256": "cd" * 32,
                           "created_at": "2026-11-26T01:00:00.000000Z"})
    log.insert("backups", {"device_id": "xc-cam-01", "status": "failed", "reason": "timeout",
                           "created_at": "2026-11-27T01:00:00.000000Z"})
    latest = log.query("SELECT MAX(observed_at) AS at FROM results WHERE device_id = 'xc-cam-01'")[0]["at"]
    log.close()
    return {"latest": latest}


def test_ledger_merges_facts_and_backups(cli, tmp_path):
    db = tmp_path / "log.db"
    seeded = _seed(db)
    r = cli("-i", EXAMPLE, "--db", db, "inventory", "ledger", "--device", "xc-cam-01", "--device", "hd-cam-02",
            "--device", "hd-cam-03")
    assert r.code == 0, r
    rows = {row["device_id"]: row for row in _ledger_rows(r.out)}
    cam = rows["xc-cam-01"]
    assert (cam["observed_model"], cam["observed_serial"], cam["firmware"]) == (
        "DS-2CD2386G2-IU", "DS-2CD2386G2-IU20230101AAWRJ00001", "V5.7.18 build 240826")
    assert cam["last_check_at"] == seeded["latest"] and cam["last_status"] == "unknown"
    assert cam["last_backup_at"] == "2026-11-26T01:00:00.000000Z"  # newest *ok* backup
    assert rows["hd-cam-02"]["firmware"] == "2.800.0000016.0.R,build:2020-06-05"
    assert rows["hd-cam-03"]["firmware"] == "" and rows["hd-cam-03"]["last_status"] == ""


def test_ledger_output_file_is_written_atomically(cli, tmp_path, monkeypatch):
    out = tmp_path / "reports" / "台帐.csv"
    r = cli("-i", EXAMPLE, "inventory", "ledger", "-o", out, "--kind", "nvr")
    assert r.code == 0, r
    assert r.out == "" and f"exported 2 devices to {out}" in r.err
    data = out.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")  # BOM: Excel opens the Chinese names correctly
    rows = _ledger_rows(data.decode("utf-8-sig"))
    assert [row["device_id"] for row in rows] == ["xc-nvr-01", "hd-nvr-01"]
    assert sorted(os.listdir(out.parent)) == ["台帐.csv"]  # no temp file left behind

    # A failure while writing leaves the previous file untouched and no temp file.
    import canteen_ops.store.files as files

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "replace", broken_replace)
    r = cli("-i", EXAMPLE, "inventory", "ledger", "-o", out)
    assert r.code == 73
    assert "cannot write" in r.err and "No space left on device" in r.err
    assert out.read_bytes() == data
    assert sorted(os.listdir(out.parent)) == ["台帐.csv"]


def test_python_m_entry_point(tmp_path):
    env = {**os.environ, "CANTEEN_OPS_DB": str(tmp_path / "x.db"), "PYTHONPATH": str(ROOT)}
    p = subprocess.run([sys.executable, "-m", "canteen_ops", "-i", str(EXAMPLE), "inventory", "list", "--json",
                        "--kind", "nvr"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert p.returncode == 0, p.stderr
    assert [d["id"] for d in json.loads(p.stdout)] == ["xc-nvr-01", "hd-nvr-01"]
    p = subprocess.run([sys.executable, "-m", "canteen_ops", "--version"], capture_output=True, text=True, env=env,
                       timeout=60)
    assert p.returncode == 0 and p.stdout.startswith("canteen-ops ")

"""The lab writes a firmware catalog for its models, so `firmware check` works against a lab out of the box."""

import sqlite3

import yaml


def test_lab_inventory_points_at_its_catalog(lab):
    settings = yaml.safe_load(lab.inventory.read_text(encoding="utf-8"))["settings"]
    assert settings["firmware_catalog"].endswith("firmware-catalog.yaml")


def test_firmware_faults_are_reported_from_the_lab_catalog(cli, lab_env, lab_faults, tmp_path):
    hik = lab_env.first("hikvision", "camera").id
    dahua = lab_env.first("dahua", "camera").id
    lab_faults.set(hik, "old-firmware")
    lab_faults.set(dahua, "vulnerable-firmware")
    r = cli("firmware", "check", "--vendor", "hikvision", "--vendor", "dahua")
    assert r.code == 2, r
    conn = sqlite3.connect(tmp_path / "log.db")
    found = dict(conn.execute("SELECT device_id, status FROM firmware_findings").fetchall())
    conn.close()
    assert found[hik] == "outdated"
    assert found[dahua] == "vulnerable"
    assert {s for d, s in found.items() if d not in (hik, dahua)} == {"current"}

"""Backups, restore, snapshots and firmware checks against the device lab, through the real drivers."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from canteen_ops.store.log import MaintenanceLog
from tests.conftest import ROOT

CATALOG = ROOT / "firmware-catalog.example.yaml"
HIK, DAHUA, ONVIF_CAM, ONVIF_NVR, DAHUA_NVR = "s001-cam01", "s002-cam01", "s001-cam03", "s003-nvr", "s002-nvr"


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and ".locks" not in p.parts)


def _log() -> MaintenanceLog:
    return MaintenanceLog.open(os.environ["CANTEEN_OPS_DB"])


def test_backup_every_vendor_the_vendor_way(cli, lab_env, tmp_path):
    bdir = tmp_path / "b"
    sel = ["-d", HIK, "-d", DAHUA, "-d", ONVIF_CAM, "-d", ONVIF_NVR]
    r = cli("backup", "run", *sel, "--backup-dir", bdir, "--json")
    assert r.code == 0, r
    by = {x["device_id"]: x for x in json.loads(r.out)}
    assert by[HIK]["data"]["method"] == "isapi-configurationData" and by[HIK]["data"]["path"].endswith(".bin")
    assert by[DAHUA]["data"]["method"] == "dahua-Config.backup" and by[DAHUA]["data"]["path"].endswith(".json")
    assert by[ONVIF_NVR]["data"]["method"] == "onvif-GetSystemBackup"
    assert by[ONVIF_CAM]["data"]["backup_status"] == "unsupported"
    assert "rely on its snapshot" in by[ONVIF_CAM]["summary"]
    json.loads((bdir / by[DAHUA]["data"]["path"]).read_bytes())  # Dahua's export is plain JSON
    assert len(_files(bdir)) == 3
    r = cli("backup", "run", *sel, "--backup-dir", bdir, "--json")
    assert r.code == 0 and all(x["data"].get("unchanged") for x in json.loads(r.out) if x["device_id"] != ONVIF_CAM)
    assert len(_files(bdir)) == 3  # identical exports stored once
    r = cli("backup", "verify", "--backup-dir", bdir)
    assert r.code == 0 and "3 backup file(s)" in r.out
    victim = bdir / by[HIK]["data"]["path"]
    victim.write_bytes(victim.read_bytes()[:-1] + b"\x00")  # one byte of bit rot
    r = cli("backup", "verify", "--backup-dir", bdir)
    assert r.code == 2 and f"corrupt: {by[HIK]['data']['path']}" in r.err
    # The next backup notices the damaged file and writes the (identical) export again.
    assert cli("backup", "run", "-d", HIK, "--backup-dir", bdir).code == 0
    assert cli("backup", "verify", "--backup-dir", bdir).code == 0


@pytest.mark.parametrize("device", [HIK, DAHUA])
def test_a_refused_export_is_a_failed_backup_and_counts_as_stale(cli, lab_env, lab_faults, tmp_path, device):
    """HTTP 403 to the configuration export is our user's privilege, not a device without an export: a failed
    backup with the reason, and `backup list --stale` lists the device (it was 'unsupported', ok, never stale)."""
    bdir = tmp_path / "b"
    lab_faults.set(device, "export-refused")
    r = cli("backup", "run", "-d", device, "--backup-dir", bdir, "--json")
    assert r.code != 0, r
    (row,) = json.loads(r.out)
    assert row["data"]["backup_status"] == "failed" and row["status"] == "crit"
    assert row["data"]["reason"].startswith("refused: too little privilege")
    assert "export refused (too little privilege)" in row["summary"]
    assert _files(bdir) == []
    r = cli("backup", "list", "-d", device, "--stale", "24h")
    assert r.code == 1 and device in r.out
    assert lab_env.device(device).failed_logins == 0  # a refusal of rights is not a refused login


@pytest.mark.parametrize("device,fault,why", [
    (HIK, "oversized-body", "exceeds"),  # the driver stops reading at its cap, mid-body
    (DAHUA, "malformed-xml", "JSON"),  # a body cut off mid-way by flaky firmware
    (HIK, "offline", "offline"),
])
def test_failed_export_midway_leaves_no_partial_file(cli, lab_env, lab_faults, tmp_path, device, fault, why):
    lab_faults.set(device, fault)
    bdir = tmp_path / "b"
    r = cli("backup", "run", "-d", device, "--backup-dir", bdir, "--quiet")
    assert r.code == 2, r
    assert f"failed: " in r.err and why.lower() in r.err.lower()
    assert _files(bdir) == []  # neither a partial file nor a temp file
    log = _log()
    try:
        (row,) = log.query("SELECT * FROM backups")
        assert row["status"] == "failed" and row["path"] is None and row["reason"]
    finally:
        log.close()


def test_two_concurrent_runs_on_one_device(cli, lab, lab_env, lab_faults, tmp_path):
    """cron and a technician at once: the second run skips the device the first one holds (exit 75)."""
    from canteen_ops.inventory.loader import load_inventory
    from canteen_ops.tasks.backup import run_backups

    lab_faults.set(HIK, "slow", "1500")
    bdir = tmp_path / "b"
    dev = load_inventory(lab.inventory).device(HIK)
    out = {}

    def first():
        log = _log()
        try:
            out["rep"] = run_backups(log, [dev], backup_dir=bdir)
        finally:
            log.close()

    t = threading.Thread(target=first)
    t.start()
    owner = bdir / ".locks" / f"{HIK}.lock.owner"  # written once the first run holds the lock
    for _ in range(300):
        if owner.exists() and owner.read_text().startswith("pid"):
            break
        time.sleep(0.01)
    r = cli("backup", "run", "-d", HIK, "--backup-dir", bdir)
    t.join(30)
    assert r.code == 75, r
    assert "another backup of this device is running" in r.out + r.err
    assert out["rep"].exit_code == 0 and len(_files(bdir)) == 1


def _start_change(log, inventory_path, device_ids):
    import datetime as dt

    from canteen_ops import changes
    from canteen_ops.inventory.loader import load_inventory
    from canteen_ops.timeutil import utcnow

    inv = load_inventory(inventory_path)
    ch = changes.request(log, inv, title="恢复配置", device_ids=device_ids, actor="tech")
    changes.approve(log, ch["id"], "leader")
    now = utcnow()
    changes.notify(log, ch["id"], "tech", notice_to=["食堂经理"], window_start=now - dt.timedelta(minutes=5),
                   window_end=now + dt.timedelta(hours=1))
    return changes.start(log, inv, ch["id"], "tech")


def test_restore_pushes_the_backup_back_under_a_started_change(cli, lab, lab_env, lab_faults, tmp_path, monkeypatch):
    monkeypatch.setenv("CANTEEN_OPS_BACKUP_DIR", str(tmp_path / "b"))  # the change hook's backups land here too
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    cam = lab.device(HIK)
    original = cam.name
    r = cli("backup", "run", "-d", HIK, "--json")
    assert r.code == 0, r
    good_id = json.loads(r.out)[0]["backup_id"]
    lab_faults.setting(HIK, "name", "被改坏的名字")
    lab_faults.setting(HIK, "ntp_server", "")

    r = cli("backup", "restore", HIK, good_id)
    assert r.code == 77 and "started change" in r.err
    assert cam.name == "被改坏的名字"  # refused before any device traffic

    log = _log()
    try:
        _start_change(log, lab.inventory, [HIK])
    finally:
        log.close()
    r = cli("backup", "restore", HIK, good_id)
    assert r.code == 0, r
    assert cam.name == original and cam.ntp_server  # the device took the configuration back

    # Dahua offers no config import over CGI: said plainly, nothing pushed, exit 3.
    r = cli("backup", "run", "-d", DAHUA, "--json")
    log = _log()
    try:
        _start_change(log, lab.inventory, [DAHUA])
    finally:
        log.close()
    r = cli("backup", "restore", DAHUA)
    assert r.code == 3 and "offers no config import" in r.err


def test_settings_change_on_a_lab_device_shows_in_diff_and_drift(cli, lab_env, lab_faults):
    sel = ["-d", HIK, "-d", DAHUA_NVR, "-d", ONVIF_NVR]
    assert cli("snapshot", "take", *sel).code == 0
    r = cli("snapshot", "accept", "--all", "--school", "s001-diyi-shiyan-xx", "--school", "s002-yucai-zx",
            "--school", "s003-shiyan-zx")
    assert r.code == 0, r
    r = cli("snapshot", "drift", *sel)
    assert r.code == 0, r  # matches the baselines; NVR recording is continuous

    lab_faults.setting(HIK, "channel.1.width", "1280")
    lab_faults.setting(HIK, "channel.1.height", "720")
    lab_faults.setting(HIK, "ntp_server", "")
    lab_faults.setting(DAHUA_NVR, "record_mode", "motion")
    r = cli("snapshot", "drift", "--take", *sel)
    assert r.code == 2, r
    assert "streams[ch1-main].width: 1920 → 1280" in r.out
    assert 'time.mode: "NTP" → "manual"' in r.out
    assert "below the policy minimum 1920x1080" in r.out
    assert 'recording.mode: "continuous" → "motion"' in r.out and "not continuous" in r.out
    r = cli("snapshot", "diff", HIK)
    assert r.code == 1 and "streams[ch1-main].height: 1080 → 720" in r.out
    r = cli("snapshot", "diff", DAHUA_NVR, "--json")
    assert "recording.mode" in [c["path"] for c in json.loads(r.out)["changes"]]
    log = _log()
    try:
        rows = log.query("SELECT device_id, status FROM results WHERE check_name = 'config-drift' ORDER BY seq")
    finally:
        log.close()
    assert (DAHUA_NVR, "crit") in [(x["device_id"], x["status"]) for x in rows]


def test_outdated_and_vulnerable_lab_firmware(cli, lab_env, lab_faults):
    lab_faults.set("s001-cam01", "old-firmware")
    lab_faults.set("s001-cam02", "vulnerable-firmware")
    lab_faults.set("s002-cam01", "old-firmware")
    lab_faults.set("s002-cam02", "vulnerable-firmware")
    sel = ["-d", "s001-cam0[12]", "-d", "s002-cam0[12]", "-d", "s003-cam01", "-d", "s001-nvr"]
    r = cli("firmware", "check", *sel, "--catalog", CATALOG, "--json")
    assert r.code == 2, r
    got = {f["device_id"]: f for f in json.loads(r.out)}
    assert {k: v["status"] for k, v in got.items()} == {
        "s001-cam01": "outdated", "s001-cam02": "vulnerable", "s002-cam01": "outdated", "s002-cam02": "vulnerable",
        "s003-cam01": "current", "s001-nvr": "current"}
    assert got["s001-cam02"]["version"] == "V5.5.0 build 170725"
    assert [a["id"] for a in got["s001-cam02"]["advisories"]] == ["CVE-2021-36260"]
    assert got["s002-cam02"]["advisories"][0]["id"] == "CVE-2017-7927"
    assert "older than the minimum acceptable" in got["s001-cam01"]["summary"]
    r = cli("firmware", "check", "-d", "s001-cam01", "--catalog", CATALOG)
    assert r.code == 1 and "outdated" in r.out

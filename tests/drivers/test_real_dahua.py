"""Dahua drivers on answers real devices gave (tests/fixtures/devices/dahua/<model>/, sources in SOURCE.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from canteen_ops.drivers import dahua as D
from canteen_ops.drivers import kv
from canteen_ops.drivers.base import AuthFailed, Forbidden, Locked
from canteen_ops.lab.replay import REPLAY_PASSWORD, ReplayServer, load
from canteen_ops.tasks.firmware import compare_versions, parse_version
from tests.replay_support import device_for, run_replayed_checks

REAL = Path(__file__).resolve().parent.parent / "fixtures" / "devices" / "dahua"


def flat(model: str, name: str) -> dict[str, str]:
    return kv.parse_flat(kv.decode((REAL / model / name).read_bytes()))


def test_nvr_device_type_31_is_not_a_model_the_model_is_in_update_serial():
    info = flat("NVR2X-4KS3", "magicBox.getSystemInfo.txt")
    assert info["deviceType"] == "31"
    assert D.needs_device_type(info)
    f = D.parse_facts(info, flat("NVR2X-4KS3", "magicBox.getSoftwareVersion.txt"), kind="nvr")
    assert (f.model, f.serial, f.firmware) == ("NVR2X-4KS3", "4F07335PAZEEA9B", "4.001.0000005.0,build:2020-11-17")


def test_xvr_without_device_type_takes_the_model_from_get_device_type():
    info = flat("XVR5108C-X", "magicBox.getSystemInfo.txt")
    assert "deviceType" not in info and D.needs_device_type(info)
    f = D.parse_facts(info, {}, kind="nvr", device_type=flat("XVR5108C-X", "magicBox.getDeviceType.txt"))
    assert f.model == "DH-XVR5108C-X"
    # without getDeviceType, updateSerial is still better than nothing
    assert D.parse_facts(info, {}, kind="nvr").model == "XVR5108C-X"


def test_software_version_with_build_date_on_a_second_line():
    sw = flat("IPM-721B", "magicBox.getSoftwareVersion.txt")
    assert D.firmware_of(sw) == "2.420.AC00.15.R,build:2016-09-08"
    v = parse_version("dahua", D.firmware_of(sw))
    assert v.numbers == (2, 420, 0, 15) and str(v.build) == "2016-09-08"


@pytest.mark.parametrize("a,b,expected", [
    # Amcrest firmware names quoted in python-amcrest #71, #73 and #168
    ("2.420.AC00.15.R", "2.420.AC00.17.R,build:2017-03-22", -1),
    ("2.420.AC00.15.R,build:2016-09-08", "2.420.AC00.15.R", 0),
    ("V2.400.AC01.15.R.20170328", "2.420.AC00.15.R", -1),
    ("V2.420.AC00.17.R.20170322", "2.420.AC00.17.R,build:2017-03-22", 0),
])
def test_amcrest_versions_compare_by_revision(a, b, expected):
    assert compare_versions("dahua", a, b) == expected
    assert compare_versions("dahua", b, a) == -expected


# DH-NVR608H-128-4KS3/I: the answer its firmware gave credentials once it had locked the account (recorded in the
# folder's `locked:`), and the 403 it gave a config read the account may not make (SOURCE.md).
NVR608H = REAL / "DH-NVR608H-128-4KS3-I"
LOCK_403 = (NVR608H / "lockout.403.json").read_bytes()
FORBIDDEN_403 = (NVR608H / "configManager.getConfig.forbidden.403.json").read_bytes()


def test_403_json_lock_answer_is_locked_with_time_left():
    exc = D.parse_lock(403, LOCK_403)
    assert exc is not None and exc.unlock_in_s == 1800
    assert "30 min" in str(exc)
    assert D.parse_lock(403, FORBIDDEN_403) is None  # "Authority:check failure.": a privilege, not a lock
    assert D.parse_lock(403, b"Error\r\nForbidden!\r\n") is None  # a refused nonce (rroller/dahua#647)
    assert D.parse_lock(403, b'{"ErrorCode":268632085,"Result":false}') is None  # wrong password code
    assert D.parse_lock(200, LOCK_403) is None


def test_a_locked_recorder_gets_one_request_with_credentials_and_is_locked_for_the_time_it_said():
    """The recorded lock answer over a real socket: the first request with credentials is answered 403 + the JSON;
    the driver says locked for 30 min, and no later getter or driver of the run sends credentials again."""
    rec = load(NVR608H)
    with ReplayServer(rec, locked=True) as server:
        device = device_for(rec, server)
        driver = D.DahuaDriver(device, REPLAY_PASSWORD, timeout=5.0)
        try:
            with pytest.raises(Locked) as exc:
                driver.facts()
            assert exc.value.unlock_in_s == 1800 and "unlocks in 30 min 0 s" in str(exc.value)
            with pytest.raises(AuthFailed):  # the same driver: remembered, nothing sent
                driver.clock()
        finally:
            driver.close()
        again = D.DahuaDriver(device, REPLAY_PASSWORD, timeout=5.0)  # another command of the same run
        try:
            with pytest.raises(AuthFailed):
                again.storage()
        finally:
            again.close()
        assert server.replayer.refused == ["GET /cgi-bin/magicBox.cgi"]  # one request with credentials, in all
        assert server.replayer.served == []


def test_a_check_of_the_locked_recorder_says_locked_and_when(tmp_path):
    rec = load(NVR608H)
    with ReplayServer(rec, locked=True) as server:
        results = run_replayed_checks(tmp_path, [(rec, server)], ["reachable", "login", "facts", "clock"])
    login = next(r for r in results if r.check == "login")
    assert login.status == "crit" and login.summary.startswith("locked:"), login.summary
    assert "30 min" in login.summary
    assert server.replayer.refused == ["GET /cgi-bin/magicBox.cgi"]


def test_a_refused_config_read_is_forbidden_not_a_lock():
    rec = load(NVR608H)
    with ReplayServer(rec) as server:
        driver = D.DahuaDriver(device_for(rec, server), REPLAY_PASSWORD, timeout=5.0)
        try:
            with pytest.raises(Forbidden):
                driver._config("StorageMode")
            assert driver.facts().model == "DH-NVR608H-128-4KS3/I"  # the next request still goes out
        finally:
            driver.close()


def test_a_refused_config_export_is_a_failed_backup_with_the_reason_and_stale(tmp_path):
    """No device was recorded refusing Config.backup itself: the export is given the 403 this firmware gave a
    request the account lacked the right for (its real body), which is what a user without the backup right
    meets. A failed backup naming the privilege, never 'unsupported, ok'; `backup list --stale` counts it."""
    import dataclasses
    import datetime as dt

    from canteen_ops.lab.replay import Exchange
    from canteen_ops.store.log import MaintenanceLog
    from canteen_ops.tasks.backup import run_backups
    from canteen_ops.tasks.backup_retention import backup_states
    from tests.replay_support import replay_inventory

    rec = load(NVR608H)
    refused = Exchange("GET", "/cgi-bin/Config.backup?action=All", None, 403,
                       {"Content-Type": "application/json"}, FORBIDDEN_403)
    rec = dataclasses.replace(rec, exchanges=[*rec.exchanges, refused])
    log = MaintenanceLog.open(tmp_path / "log.db")
    with ReplayServer(rec) as server:
        inv = replay_inventory(tmp_path, [(rec, server)])
        report = run_backups(log, inv.devices, inventory=inv, backup_dir=tmp_path / "b")
    (row,) = report.results
    assert row.status.value == "crit" and row.data["backup_status"] == "failed"
    assert row.data["reason"].startswith("refused: too little privilege"), row.data
    assert not any(p.is_file() for p in (tmp_path / "b").rglob("*") if ".locks" not in p.parts)
    (state,) = backup_states(log, inv.devices, window=dt.timedelta(hours=24))
    assert state.stale and "refused" in state.note
    log.close()


def test_the_real_ntp_table_names_no_offset_so_the_clock_is_read_in_the_inventory_zone():
    ntp = flat("DH-NVR608H-128-4KS3-I", "configManager.getConfig.NTP.txt")
    assert (ntp["table.NTP.TimeZone"], ntp["table.NTP.TimeZoneDesc"]) == ("25", "Easterntime")
    assert D.explicit_offset(ntp) is None
    local = D.parse_dahua_time(flat("DH-NVR608H-128-4KS3-I", "global.getCurrentTime.txt")["result"])
    assert D.local_to_utc(local, None, "Asia/Shanghai").isoformat() == "2026-09-08T22:24:26+00:00"


def test_snapshot_identity_of_an_nvr_with_device_type_31():
    from canteen_ops.tasks.snapshot import normalize

    raw = {"vendor": "dahua", "systemInfo": flat("NVR2X-4KS3", "magicBox.getSystemInfo.txt"),
           "softwareVersion": D.firmware_of(flat("NVR2X-4KS3", "magicBox.getSoftwareVersion.txt"))}
    ident = normalize("dahua", raw)["identity"]
    assert (ident["model"], ident["serial"], ident["firmware"]) == (
        "NVR2X-4KS3", "4F07335PAZEEA9B", "4.001.0000005.0,build:2020-11-17")
    raw = {"vendor": "dahua", "systemInfo": flat("XVR5108C-X", "magicBox.getSystemInfo.txt"),
           "deviceType": flat("XVR5108C-X", "magicBox.getDeviceType.txt")["type"].strip()}
    assert normalize("dahua", raw)["identity"]["model"] == "DH-XVR5108C-X"

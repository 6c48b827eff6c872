"""Dahua drivers on answers real devices gave (tests/fixtures/devices/dahua/<model>/, sources in SOURCE.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from canteen_ops.drivers import dahua as D
from canteen_ops.drivers import kv
from canteen_ops.tasks.firmware import compare_versions, parse_version

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


# The lock answer as issue 15 quotes it (no public capture of the raw 403 found; 268632081 is "HasBeenLocked" in
# every Dahua client library that names the codes).
LOCK_403 = b'{"ErrorCode":268632081,"Result":false,"RmLock":1800,"RmLogin":0}'


def test_403_json_lock_answer_is_locked_with_time_left():
    exc = D.parse_lock(403, LOCK_403)
    assert exc is not None and exc.unlock_in_s == 1800
    assert "30 min" in str(exc)
    assert D.parse_lock(403, b"Error\r\nForbidden!\r\n") is None  # a refused nonce / privilege, not a lock
    assert D.parse_lock(403, b'{"ErrorCode":268632085,"Result":false}') is None  # wrong password code
    assert D.parse_lock(200, LOCK_403) is None


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

"""Transport faults seen through `check` against the lab: an answer whose head is cut by a closed connection is an
`unknown` with the reason, never read as an empty `200` (a Dahua NVR then said "no disk installed": a false
CRIT, and a major incident with --open-incidents)."""

from __future__ import annotations

import pytest

from canteen_ops.status import Status

from tests.test_checks_lab import check, inv_path, one  # noqa: F401 (inv_path is a fixture)


@pytest.mark.parametrize("vendor, path", [("dahua", "storageDevice"), ("hikvision", "/ContentMgmt/Storage")])
def test_a_storage_answer_cut_in_its_head_is_unknown_not_no_disk(lab, lab_faults, inv_path, vendor, path):  # noqa: F811
    nvr = lab.first(vendor, "nvr")
    lab_faults.set(nvr.id, f"cut-head={path}")
    out = check(inv_path, [nvr.id], names=["reachable", "login", "storage", "channels"])
    storage = one(out, nvr.id, "storage")
    assert storage.status is Status.UNKNOWN, storage
    assert "closed without an answer" in storage.summary and "no disk" not in storage.summary
    assert one(out, nvr.id, "login").status is Status.OK
    assert one(out, nvr.id, "channels").status is Status.OK  # the next request gets a new connection


def test_every_answer_cut_is_unknown_at_login(lab, lab_faults, inv_path):  # noqa: F811
    cam = lab.first("hikvision", "camera")
    lab_faults.set(cam.id, "cut-head")
    out = check(inv_path, [cam.id], names=["reachable", "login", "facts"])
    login = one(out, cam.id, "login")
    assert login.status is Status.UNKNOWN and "closed without an answer" in login.summary, login
    assert cam.failed_logins == 0


@pytest.mark.parametrize("vendor", ["hikvision", "dahua", "onvif"])
def test_debug_writes_every_device_exchange_with_no_password(lab_env, cli, tmp_path, vendor):
    """`--debug --debug-file FILE`: what each device was asked and answered, for a technician chasing a real device;
    the password appears nowhere, not even as the Basic token or a WS-Security digest."""
    import base64

    cam = lab_env.first(vendor, "camera")
    user, password = lab_env.credentials(cam.id)
    wire = tmp_path / "wire.log"
    r = cli("--debug", "--debug-file", wire, "check", "-d", cam.id, "--only", "reachable,login,facts,clock")
    assert r.code in (0, 1), r
    text = wire.read_text(encoding="utf-8")
    assert ">> POST" in text or ">> GET" in text
    assert "<< 200" in text and cam.host in text
    for secret in (password, base64.b64encode(f"{user}:{password}".encode()).decode()):
        assert secret not in text and secret not in r.out + r.err


def test_debug_file_without_debug_is_a_usage_error(cli, tmp_path):
    r = cli("--debug-file", tmp_path / "wire.log", "inventory", "list")
    assert r.code == 64 and "--debug" in r.err
    assert not (tmp_path / "wire.log").exists()

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

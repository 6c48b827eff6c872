"""A nightly playbook runs several commands, each its own process: a device whose password is wrong must see one
failed login, not one per step (Hikvision and Dahua lock our address after ~5, and cron adds the morning
inspection). Main's login memory (refusals kept in the log) provides this; this test holds it for playbooks."""

from __future__ import annotations

import textwrap

import pytest


@pytest.mark.parametrize("device", ["s001-cam01", "s002-cam01"])
def test_one_failed_login_per_device_per_playbook_run(lab, lab_faults, tmp_path, cli, monkeypatch, device):
    monkeypatch.setenv("CANTEEN_OPS_BACKUP_DIR", str(tmp_path / "backups"))
    lab_faults.set(device, "wrong-password")
    book = tmp_path / "nightly.yaml"
    book.write_text(textwrap.dedent(f"""\
        name: nightly-logins
        kind: job
        targets: {{device: [{device}]}}
        steps:
          - {{name: check, check: {{only: login}}, on_failure: continue}}
          - {{name: backup, backup: {{}}, on_failure: continue}}
          - {{name: snapshot, snapshot: {{}}, on_failure: continue}}
          - {{name: firmware, firmware: {{}}, on_failure: continue}}
        """), encoding="utf-8")
    r = cli("-i", lab.inventory, "playbook", "run", book, "--non-interactive")
    assert r.code in (2, 3), r
    assert lab.device(device).failed_logins == 1, r.out
    assert "not tried" in r.out or "not retried" in r.out  # the later steps say why they did not try
    # the log remembers the refusal (store/logins.py): a later command inside the lockout window does not try
    cli("-i", lab.inventory, "check", "--device", device, "--only", "login")
    assert lab.device(device).failed_logins == 1

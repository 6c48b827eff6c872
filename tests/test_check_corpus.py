"""`check` over every recorded real device (the corpus, replayed): whatever a real device answered, no check may
crash on it or call a real answer unusable; a recording that lacks an answer gives "not supported", never an
error."""

from __future__ import annotations

import contextlib

import yaml

from canteen_ops.checks.run import run_checks
from canteen_ops.inventory.loader import load_inventory
from canteen_ops.lab.replay import REPLAY_PASSWORD, REPLAY_USER, ReplayServer, load
from tests.replay_support import corpus, folder_id

CHECKS = ["reachable", "login", "facts", "clock", "ntp", "storage", "channels", "retention", "gaps"]


def test_check_reads_every_recorded_device_without_an_unusable_answer(tmp_path):
    secret = tmp_path / "replay.password"
    secret.write_text(REPLAY_PASSWORD + "\n")
    secret.chmod(0o600)
    with contextlib.ExitStack() as stack:
        devices, where = [], {}
        for i, folder in enumerate(corpus(), 1):
            rec = load(folder)
            server = stack.enter_context(ReplayServer(rec))
            dev_id = f"r{i:02d}"
            where[dev_id] = folder_id(folder)
            devices.append({"id": dev_id, "kind": "camera" if rec.kind == "camera" else "nvr", "vendor": rec.vendor,
                            "host": server.host, "port": server.port, "credentials": "replay", "model": rec.model})
        inv_path = tmp_path / "inventory.yaml"
        inv_path.write_text(yaml.safe_dump({
            "version": 1, "credentials": {"replay": {"username": REPLAY_USER, "password_file": str(secret)}},
            "schools": [{"id": "corpus", "name": "corpus", "devices": devices}]}, allow_unicode=True))
        inv = load_inventory(inv_path)
        results = run_checks(inv.devices, inv, CHECKS, deadline_s=60, progress=False).results
    per_device = {r.device_id for r in results if r.device_id}
    assert per_device == set(where)
    bad = [f"{where[r.device_id]} {r.check}: {r.summary}" for r in results
           if r.device_id and r.data.get("error") in ("internal", "ProtocolError", "Timeout", "Offline", "AuthFailed")]
    assert not bad, "\n".join(bad)

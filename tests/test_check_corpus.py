"""`check` over every recorded real device (the corpus, replayed): whatever a real device answered, no check may
crash on it or call a real answer unusable; a recording that lacks an answer gives "not supported", never an
error."""

from __future__ import annotations

import contextlib

from canteen_ops.lab.replay import ReplayServer, load
from tests.replay_support import corpus, folder_id, run_replayed_checks

CHECKS = ["reachable", "login", "facts", "clock", "ntp", "storage", "channels", "retention", "gaps"]


def test_check_reads_every_recorded_device_without_an_unusable_answer(tmp_path):
    with contextlib.ExitStack() as stack:
        served = [(rec, stack.enter_context(ReplayServer(rec))) for rec in map(load, corpus())]
        where = {f"r{i:02d}": folder_id(folder) for i, folder in enumerate(corpus(), 1)}
        results = run_replayed_checks(tmp_path, served, CHECKS)
    per_device = {r.device_id for r in results if r.device_id}
    assert per_device == set(where)
    bad = [f"{where[r.device_id]} {r.check}: {r.summary}" for r in results
           if r.device_id and r.data.get("error") in ("internal", "ProtocolError", "Timeout", "Offline", "AuthFailed")]
    assert not bad, "\n".join(bad)

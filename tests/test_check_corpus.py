"""`check` over every recorded real device (the corpus, replayed): whatever a real device answered, no check may
crash on it or call a real answer unusable; a recording that lacks an answer gives "not supported", never an
error."""

from __future__ import annotations

import contextlib

from canteen_ops.lab.replay import ReplayServer, load
from tests.replay_support import CORPUS, corpus, folder_id, run_replayed_checks

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


def _without(folder: str, text: str, unrecorded_from: tuple[str, str] | None = None):
    """A corpus device with the recorded answer to one request left out, so that the replay answers that request
    as the firmware answers what it does not offer (Hikvision 403 `notSupport`; Dahua the real 400 `Error` /
    `Bad Request!` body the AD110 gave for what it lacks, taken from its folder)."""
    rec = load(CORPUS / folder)
    rec.exchanges = [ex for ex in rec.exchanges if text not in ex.target]
    if unrecorded_from:
        lacking = load(CORPUS / unrecorded_from[0])
        rec.unrecorded = next(ex for ex in lacking.exchanges if unrecorded_from[1] in ex.target)
    return rec


def test_a_missing_ntp_endpoint_is_not_a_missing_ntp_server(tmp_path):
    """Issue 15: firmware without ntpServers (Hikvision answers 403 notSupport, DS-7716NI-I4's clock otherwise as
    recorded) is NTP on, servers not listed — not "NTP enabled but no server configured"; Dahua firmware without the
    NTP table (400 `Bad Request!`, DH-NVR608H's clock otherwise as recorded) is n/a, not a warning."""
    hik = _without("hikvision/DS-7716NI-I4-16P-B", "/ntpServers")
    dahua = _without("dahua/DH-NVR608H-128-4KS3-I", "name=NTP",
                     unrecorded_from=("dahua/AD110", "getDeviceAllInfo"))
    with ReplayServer(hik) as s1, ReplayServer(dahua) as s2:
        results = run_replayed_checks(tmp_path, [(hik, s1), (dahua, s2)], ["reachable", "login", "clock", "ntp"])
    ntp = {r.device_id: r for r in results if r.check == "ntp"}
    assert ntp["r01"].status == "ok" and "does not list its NTP servers" in ntp["r01"].summary, ntp["r01"]
    assert ntp["r02"].status == "n/a" and "offers no NTP settings" in ntp["r02"].summary, ntp["r02"]
    assert "GET /ISAPI/System/time/ntpServers" in s1.replayer.unanswered
    assert "GET /cgi-bin/configManager.cgi" in s2.replayer.unanswered

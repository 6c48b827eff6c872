"""Every check against a fake driver (a real Driver subclass) and real loopback sockets, with and without faults."""

from __future__ import annotations

import datetime as dt
import socket

import pytest

from canteen_ops.checks.context import History
from canteen_ops.checks.nvr import find_gaps
from canteen_ops.checks.run import run_checks, select_checks
from canteen_ops.drivers.base import (AuthFailed, Disk, Locked, NotSupported, Offline, ProtocolError, Timeout,
                                      auth_guard)
from canteen_ops.errors import UsageError
from canteen_ops.inventory.loader import load_inventory
from canteen_ops.status import Status
from tests.checks_fakes import UTC, FakeFleet

NO_MEDIA = [n for n in select_checks() if n not in ("stream", "picture")]


@pytest.fixture
def fleet(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_FLEET_PASSWORD", "pw")
    auth_guard.reset()
    f = FakeFleet(tmp_path)
    yield f
    f.close()
    auth_guard.reset()


def run(fleet, names=NO_MEDIA, devices=None, **kw):
    inv = load_inventory(fleet.path)
    devs = [d for d in inv.devices if devices is None or d.id in devices]
    kw.setdefault("workers", 4)
    out = run_checks(devs, inv, list(names), driver_factory=fleet.factory, progress=False, **kw)
    return out


def one(out, device, check):
    found = [r for r in out.results if r.device_id == device and r.check == check]
    assert len(found) == 1, (device, check, [(r.device_id, r.check, r.summary) for r in out.results])
    return found[0]


def test_healthy_fleet_is_all_ok(fleet):
    out = run(fleet)
    bad = [(r.device_id, r.check, r.status, r.summary) for r in out.results if r.status is not Status.OK]
    assert bad == []
    assert out.exit_code == 0
    # NVR gets every non-media check; cameras skip the NVR-only ones but have their SD card checked.
    assert {r.check for r in out.results if r.device_id == "nvr-01"} == {
        "reachable", "login", "facts", "clock", "ntp", "storage", "channels", "retention", "gaps"}
    assert {r.check for r in out.results if r.device_id == "cam-01"} == {"reachable", "login", "facts", "clock",
                                                                         "ntp", "storage"}
    assert one(out, "nvr-01", "channels").summary == "7 of 8 channels online (1 unused channel without video)"
    assert one(out, "nvr-01", "retention").summary == "retention ≥ 31 days on all 6 channels (policy ≥ 30)"
    assert one(out, "nvr-01", "gaps").summary == "no gaps ≥ 5 min in the last 24 h on 6 channels"
    assert "port" in one(out, "cam-01", "reachable").summary
    f = one(out, "cam-02", "facts")
    assert f.data == {"model": "DS-2CD2386G2-IU", "serial": "SN0001", "firmware": "V5.7.18 build 240826",
                      "device_type": "IPCamera", "mac": "00:11:22:33:44:55"}
    cov = [r for r in out.results if r.check == "coverage"]
    assert len(cov) == 1 and cov[0].device_id is None and cov[0].school_id == "sch-1"
    assert cov[0].status is Status.OK and "重点点位覆盖率 100%" in cov[0].summary
    # Each device's driver was opened once and closed.
    assert len(fleet.drivers) == 7 and all(d.closed for d in fleet.drivers)


def test_offline_device_gets_one_line_and_no_login(fleet):
    fleet.offline("cam-03")
    out = run(fleet)
    lines = [r for r in out.results if r.device_id == "cam-03"]
    assert len(lines) == 1
    r = lines[0]
    assert r.check == "reachable" and r.status is Status.CRIT
    assert r.summary.startswith("offline (connection refused")
    assert "5 other checks skipped" in r.summary and r.data["skipped"] == ["login", "facts", "clock", "ntp", "storage"]
    assert fleet.states["cam-03"].calls == []
    cov = one(out, None, "coverage")
    assert cov.status is Status.CRIT and "专间 (no working camera: cam-03)" in cov.summary
    assert cov.data["uncovered"] == ["专间"] and cov.data["coverage_pct"] == pytest.approx(83.3)
    assert out.exit_code == 2


def test_connect_timeout_is_no_answer(fleet, tmp_path):
    # A listener with a full accept queue drops further SYNs: the connect times out.
    s = fleet.sockets["cam-01"]
    s.close()
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", fleet.ports["cam-01"]))
    blocker.listen(0)
    fillers = []
    try:
        for _ in range(4):
            c = socket.socket()
            c.setblocking(False)
            c.connect_ex(("127.0.0.1", fleet.ports["cam-01"]))
            fillers.append(c)
        out = run(fleet, ["reachable"], devices={"cam-01"})
        r = one(out, "cam-01", "reachable")
        assert r.status is Status.CRIT and r.summary.startswith("no answer (timeout after 1 s")
    finally:
        for c in fillers:
            c.close()
        blocker.close()
        fleet.sockets.pop("cam-01", None)


def test_wrong_password_is_tried_once_and_skips_the_rest(fleet):
    fleet.states["cam-02"].errors["login"] = AuthFailed("401 Unauthorized")
    out = run(fleet)
    lines = [r for r in out.results if r.device_id == "cam-02"]
    assert [r.check for r in lines] == ["reachable", "login"]
    r = lines[1]
    assert r.status is Status.CRIT
    assert r.summary == "auth failed: wrong username or password — not retried — 4 other checks skipped"
    assert fleet.states["cam-02"].login_attempts == 1
    # A second run in the same process does not send another login (auth_guard).
    out2 = run(fleet, devices={"cam-02"})
    assert fleet.states["cam-02"].login_attempts == 1
    assert one(out2, "cam-02", "login").status is Status.CRIT


def test_locked_names_the_unlock_time(fleet):
    fleet.states["cam-04"].errors["login"] = Locked("locked", unlock_in_s=1800)
    out = run(fleet, devices={"cam-04"})
    r = one(out, "cam-04", "login")
    assert r.status is Status.CRIT
    assert r.summary.startswith("locked: the device refuses logins from us; unlocks in ~30 min — not retried")
    assert r.data["unlock_in_s"] == 1800 and r.data["error"] == "Locked"
    assert fleet.states["cam-04"].login_attempts == 1


def test_blackhole_login_timeout_stops_the_device(fleet):
    fleet.states["cam-05"].errors["login"] = Timeout("read timed out")
    out = run(fleet, devices={"cam-05"})
    r = one(out, "cam-05", "login")
    assert r.status is Status.CRIT and r.summary.startswith("no answer (timeout after 1 s)")
    assert fleet.states["cam-05"].calls == ["login"]


def test_offline_during_getter_stops(fleet):
    fleet.states["nvr-01"].errors["storage"] = Offline("connection refused")
    out = run(fleet, devices={"nvr-01"})
    r = one(out, "nvr-01", "storage")
    assert r.status is Status.CRIT and r.summary.startswith("offline (connection refused)")
    assert r.data["skipped"] == ["channels", "retention", "gaps"]


def test_missing_password_is_unknown_without_traffic(fleet, monkeypatch):
    monkeypatch.delenv("FAKE_FLEET_PASSWORD")
    inv = load_inventory(fleet.path)
    out = run_checks([inv.device("cam-01")], inv, ["reachable", "login", "facts"], progress=False)
    r = one(out, "cam-01", "login")
    assert r.status is Status.UNKNOWN
    assert "no usable credentials" in r.summary and "FAKE_FLEET_PASSWORD is not set" in r.summary


def test_facts_serial_change_and_model_mismatch(fleet):
    fleet.states["cam-01"].serial = "SN9999"
    fleet.states["cam-02"].model = "DS-2CD2346G2-I"
    fleet.states["cam-03"].firmware = "V5.5.0 build 170725"
    out = run(fleet, ["facts"])
    r = one(out, "cam-01", "facts")
    assert r.status is Status.CRIT and r.summary == "device replaced? serial SN9999, inventory says SN0001"
    r = one(out, "cam-02", "facts")
    assert r.status is Status.WARN and r.summary.startswith("model DS-2CD2346G2-I, inventory says DS-2CD2386G2-IU")
    r = one(out, "cam-03", "facts")  # firmware age is the firmware command's job; facts reports it
    assert r.status is Status.OK and "firmware V5.5.0 build 170725" in r.summary
    assert r.data["firmware"] == "V5.5.0 build 170725"


@pytest.mark.parametrize("drift,status,text", [
    (0.2, Status.OK, "clock in sync"),
    (-3, Status.OK, "clock 3 s behind"),
    (12, Status.WARN, "clock 12 s ahead (> 5 s)"),
    (-90, Status.CRIT, "clock 90 s behind (> 60 s)"),
    (5400, Status.CRIT, "clock 90 min ahead (> 60 s)"),
])
def test_clock_drift(fleet, drift, status, text):
    fleet.states["cam-01"].drift_s = drift
    r = one(run(fleet, ["clock"], devices={"cam-01"}), "cam-01", "clock")
    assert r.status is status and r.summary.startswith(text)
    assert r.data["drift_s"] == pytest.approx(drift, abs=1)


@pytest.mark.parametrize("year", [1970, 2000])
def test_clock_reset(fleet, year):
    fleet.states["cam-01"].device_time = dt.datetime(year, 1, 1, 0, 7, tzinfo=UTC)
    r = one(run(fleet, ["clock"], devices={"cam-01"}), "cam-01", "clock")
    assert r.status is Status.CRIT and r.summary.startswith(f"clock reset: device says {year}-01-01 00:07 UTC")


def test_ntp(fleet):
    fleet.states["cam-01"].ntp_enabled = False
    fleet.states["cam-02"].ntp_servers = []
    out = run(fleet, ["ntp"], devices={"cam-01", "cam-02", "cam-03"})
    assert one(out, "cam-01", "ntp").status is Status.WARN
    assert one(out, "cam-01", "ntp").summary == "NTP disabled (time set manually; it will drift)"
    assert one(out, "cam-02", "ntp").summary == "NTP enabled but no server configured"
    assert one(out, "cam-03", "ntp").summary == "NTP on, server 127.0.0.1"


def test_clock_and_ntp_share_one_request(fleet):
    run(fleet, ["clock", "ntp"], devices={"cam-01"})
    assert fleet.states["cam-01"].calls.count("clock") == 1


@pytest.mark.parametrize("status,expect", [("error", "disk 1: error"), ("unformatted", "disk 1: unformatted"),
                                           ("absent", "disk 1: absent")])
def test_storage_bad_disk_is_crit(fleet, status, expect):
    fleet.states["nvr-01"].disks = [Disk("1", status, status.upper(), 3815447.0, 0.0),
                                    Disk("2", "ok", "ok", 3815447.0, 100.0)]
    r = one(run(fleet, ["storage"], devices={"nvr-01"}), "nvr-01", "storage")
    assert r.status is Status.CRIT and r.summary.startswith(expect)
    assert [d["status"] for d in r.data["disks"]] == [status, "ok"]


def test_storage_no_disk_full_disk_and_healthy(fleet):
    st = fleet.states["nvr-01"]
    st.disks = []
    r = one(run(fleet, ["storage"], devices={"nvr-01"}), "nvr-01", "storage")
    assert r.status is Status.CRIT and r.summary == "no disk installed: nothing is being recorded"
    st.disks = [Disk("1", "ok", "ok", 3815447.0, 0.0)]
    r = one(run(fleet, ["storage"], devices={"nvr-01"}), "nvr-01", "storage")
    assert r.status is Status.OK
    assert r.summary == "1 disk ok, 0 MB free of 3.6 TB (full: the NVR overwrites the oldest recordings)"


def test_channel_offline_names_the_camera(fleet):
    fleet.states["nvr-01"].channels[2].online = False
    fleet.states["nvr-01"].channels[2].detail = "videoloss"
    out = run(fleet, ["reachable", "channels", "coverage"])
    r = one(out, "nvr-01", "channels")
    assert r.status is Status.CRIT and r.summary == "channel 3 offline (videoloss): cam-03 摄像机3"
    assert r.data["offline_cameras"] == ["cam-03"]
    # The camera answers, but records nothing: its area is not covered.
    cov = one(out, None, "coverage")
    assert cov.status is Status.CRIT and cov.data["uncovered"] == ["专间"]


def test_a_channel_state_the_recorder_does_not_report_is_never_offline(fleet):
    """'0 of 9 channels online', ok, was wrong twice: unreported is neither online nor offline."""
    chans = fleet.states["nvr-01"].channels
    chans[7].online = None  # channel 8: no camera mapped to it
    r = one(run(fleet, ["channels"], devices={"nvr-01"}), "nvr-01", "channels")
    assert r.status is Status.OK and r.summary == "7 of 7 channels online; 1 not reported"
    for ch in chans:
        ch.online = None
    r = one(run(fleet, ["channels"], devices={"nvr-01"}), "nvr-01", "channels")
    assert r.status is Status.UNKNOWN and "state not reported" in r.summary  # mapped channels: each named


def test_channel_missing_on_nvr_is_warn(fleet):
    del fleet.states["nvr-01"].channels[5]  # channel 6 (cam-06) is not configured
    r = one(run(fleet, ["channels"], devices={"nvr-01"}), "nvr-01", "channels")
    assert r.status is Status.WARN and r.summary == "channel 6 not configured on the NVR: cam-06 摄像机6"


@pytest.mark.parametrize("days,status,text", [
    (20, Status.WARN, "retention channels 1–6: 20.0 days < 30"),
    (3, Status.CRIT, "retention channels 1–6: 3.0 days < 7"),
])
def test_retention(fleet, days, status, text):
    fleet.states["nvr-01"].retention_days = days
    r = one(run(fleet, ["retention"], devices={"nvr-01"}), "nvr-01", "retention")
    assert r.status is status and r.summary == text
    assert r.data["days"]["6"] == pytest.approx(days, abs=0.01)


def test_gaps_warn_with_local_times_and_one_search_per_channel(fleet):
    now = dt.datetime.now(UTC).replace(second=0, microsecond=0)
    hole = (now - dt.timedelta(hours=4), now - dt.timedelta(hours=3))
    fleet.states["nvr-01"].holes = {2: [hole], 5: [(now - dt.timedelta(minutes=13), now - dt.timedelta(minutes=11))]}
    out = run(fleet, ["retention", "gaps"], devices={"nvr-01"})
    r = one(out, "nvr-01", "gaps")
    assert r.status is Status.WARN
    tz = dt.timezone(dt.timedelta(hours=8))  # Asia/Shanghai
    a, b = hole[0].astimezone(tz), hole[1].astimezone(tz)
    assert r.summary == (f"1 recording gap in the last 24 h — channel 2 (cam-02): "
                         f"{a:%m-%d %H:%M}–{b:%H:%M}" if a.date() == b.date() else r.summary)
    assert list(r.data["gaps"]) == ["2"]  # the 2-minute hole on channel 5 is below gap_min_minutes
    assert r.data["missing_minutes"] == pytest.approx(60, abs=0.1)
    # healthy retention is one short search per channel at the threshold; gaps one 24 h search per channel
    assert fleet.states["nvr-01"].calls.count("recordings") == 12


def test_retention_groups_channels_with_the_same_finding(fleet):
    now = dt.datetime.now(UTC)
    st = fleet.states["nvr-01"]
    st.retention_days = 20
    # channel 2 lost its older recordings: only 3 days left
    st.holes = {2: [(now - dt.timedelta(days=30), now - dt.timedelta(days=3))]}
    r = one(run(fleet, ["retention"], devices={"nvr-01"}), "nvr-01", "retention")
    assert r.status is Status.CRIT
    assert r.summary == "retention channel 2 (cam-02): 3.0 days < 7; channels 1, 3–6: 20.0 days < 30"


def test_failing_retention_search_is_reused_by_gaps(fleet):
    fleet.states["nvr-01"].retention_days = 20
    out = run(fleet, ["retention", "gaps"], devices={"nvr-01"})
    assert one(out, "nvr-01", "retention").status is Status.WARN
    assert one(out, "nvr-01", "gaps").status is Status.OK
    # per channel: the threshold probe, then the full search, which gaps reuses
    assert fleet.states["nvr-01"].calls.count("recordings") == 12


def test_find_gaps_merges_and_includes_edges():
    t = dt.datetime(2026, 11, 27, tzinfo=UTC)
    h = dt.timedelta(hours=1)
    from canteen_ops.drivers.base import RecordingSpan as S
    spans = [S(1, t + h, t + 3 * h), S(1, t + 2 * h, t + 4 * h), S(1, t + 4 * h, t + 5 * h)]
    assert find_gaps(spans, t, t + 6 * h, dt.timedelta(minutes=5)) == [(t, t + h), (t + 5 * h, t + 6 * h)]
    assert find_gaps([], t, t + h, dt.timedelta(minutes=5)) == [(t, t + h)]


def test_not_supported_is_na_never_a_failure_nor_counted(fleet):
    fleet.states["cam-01"].errors["clock"] = NotSupported("clock")
    out = run(fleet, ["clock", "ntp", "facts"], devices={"cam-01"})
    for check in ("clock", "ntp"):
        r = one(out, "cam-01", check)
        assert r.status is Status.NA and r.summary == "not applicable: this hikvision device does not offer it (clock)"
    assert one(out, "cam-01", "facts").status is Status.OK
    assert out.status is Status.OK and out.exit_code == 0


def test_forbidden_is_unknown_not_na(fleet):
    from canteen_ops.drivers.base import Forbidden

    fleet.states["cam-01"].errors["clock"] = Forbidden("clock refused (HTTP 403: too little privilege)")
    out = run(fleet, ["clock"], devices={"cam-01"})
    r = one(out, "cam-01", "clock")
    assert r.status is Status.UNKNOWN and "refused" in r.summary and out.exit_code == 3


def test_hostile_answer_is_contained_to_its_check(fleet):
    fleet.states["nvr-01"].errors["storage"] = ProtocolError("XML entity declarations refused")
    out = run(fleet, ["storage", "channels"], devices={"nvr-01"})
    r = one(out, "nvr-01", "storage")
    assert r.status is Status.UNKNOWN
    assert r.summary == "unusable answer from the device: XML entity declarations refused"
    assert one(out, "nvr-01", "channels").status is Status.OK


def test_getter_timeout_after_answers_is_unknown_and_continues(fleet):
    fleet.states["nvr-01"].errors["storage"] = Timeout("read timed out")
    out = run(fleet, ["login", "storage", "channels"], devices={"nvr-01"})
    assert one(out, "nvr-01", "storage").status is Status.UNKNOWN
    assert one(out, "nvr-01", "channels").status is Status.OK


def test_bug_in_a_check_is_contained(fleet):
    fleet.states["cam-01"].errors["facts"] = ZeroDivisionError("oops")
    out = run(fleet, ["facts", "clock"], devices={"cam-01"})
    assert one(out, "cam-01", "facts").summary == "internal error: ZeroDivisionError: oops"
    assert one(out, "cam-01", "clock").status is Status.OK


def test_select_checks():
    assert select_checks(["reachable,clock"]) == ["reachable", "clock"]
    assert "stream" not in select_checks(skip=["stream,picture"])
    with pytest.raises(UsageError, match="unknown check clok"):
        select_checks(["clok"])
    with pytest.raises(UsageError):
        select_checks(["clock"], ["clock"])


def test_coverage_area_without_camera_and_log_fallback(fleet, tmp_path):
    from canteen_ops.status import Result
    from canteen_ops.store.log import MaintenanceLog

    inv = load_inventory(fleet.path)
    log = MaintenanceLog.open(tmp_path / "log.db")
    # cam-06 was found crit in an earlier run; this run checks only cam-01..05.
    log.record_result(None, Result("cam-06", "reachable", Status.CRIT, "offline", school_id="sch-1"))
    devs = [d for d in inv.devices if d.id != "cam-06"]
    out = run_checks(devs, inv, ["reachable", "coverage"], log=log, driver_factory=fleet.factory, progress=False)
    cov = one(out, None, "coverage")
    assert cov.status is Status.CRIT and cov.data["uncovered"] == ["留样区"]
    assert "留样区 (no working camera: cam-06)" in cov.summary
    log.close()


def test_history_blur_baseline_is_median():
    h = History({"cam-01": [100.0, 300.0, 200.0, 50.0]})
    assert h.blur_baseline("cam-01") == 150.0
    assert h.blur_baseline("cam-02") is None


def test_worker_processes_give_the_same_results(fleet):
    """A fleet shared out between spawned worker processes (checks/shards.py) gives what one process gives."""
    fleet.offline("cam-03")
    fleet.states["cam-02"].drift_s = 30
    single = run(fleet)
    auth_guard.reset()
    inv = load_inventory(fleet.path)
    shared = run_checks(inv.devices, inv, NO_MEDIA, driver_factory=fleet.shareable(), progress=False, workers=4,
                        processes=3)

    def key(out):  # latency figures differ from run to run
        return sorted((r.device_id or "", r.check, r.status.value, r.summary.split(" open in ")[0])
                      for r in out.results)

    assert key(shared) == key(single)
    assert one(shared, "cam-03", "reachable").status is Status.CRIT
    assert one(shared, None, "coverage").data["uncovered"] == ["专间"]
    assert shared.exit_code == 2


def test_worker_processes_run_advances_the_progress_bar_once_per_device(fleet, monkeypatch):
    from canteen_ops import runner

    seen = {}

    class Bar:
        def __init__(self, total, label):
            seen.update(total=total, advanced=0)

        def advance(self):
            seen["advanced"] += 1

        def close(self):
            seen["closed"] = True

    monkeypatch.setattr(runner, "_Progress", Bar)
    inv = load_inventory(fleet.path)
    run_checks(inv.devices, inv, ["reachable", "facts"], driver_factory=fleet.shareable(), progress=True,
               processes=2, workers=2)
    assert seen == {"total": len(inv.devices), "advanced": len(inv.devices), "closed": True}


def test_worker_process_that_dies_reports_its_devices(fleet):
    inv = load_inventory(fleet.path)
    out = run_checks(inv.devices, inv, ["reachable", "facts"], driver_factory=fleet.shareable(exit_on="cam-05"),
                     progress=False, processes=2, workers=1)
    lost = [r for r in out.results if r.check == "task"]
    assert lost and all(r.status is Status.UNKNOWN and r.summary == "worker process died" for r in lost)
    assert "cam-05" in {r.device_id for r in lost}
    # every device has its lines, once
    assert {r.device_id for r in out.results if r.device_id} == {"nvr-01"} | {f"cam-0{i}" for i in range(1, 7)}
    assert len({(r.device_id, r.check) for r in out.results}) == len(out.results)


def test_ctrl_c_during_a_run_in_worker_processes_ends_them_and_keeps_what_arrived(fleet):
    """The workers ignore Ctrl-C (the terminal sends it to them too); the parent ends them at once, keeps the
    results it already delivered, and re-raises."""
    import multiprocessing as mp
    import time

    inv = load_inventory(fleet.path)
    got = []

    def on_results(results):
        got.extend(results)
        raise KeyboardInterrupt

    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        run_checks(inv.devices, inv, ["reachable", "facts"], driver_factory=fleet.shareable(), progress=False,
                   processes=2, workers=1, on_results=on_results)
    assert got and time.monotonic() - t0 < 30
    assert mp.active_children() == []


def test_default_processes_for_big_fleets_only(monkeypatch):
    """As measured (docs/benchmarks.md): a core each for a big fleet's protocol checks; one process for a small
    fleet, and for stream and picture checks (decoding already uses every core from one process)."""
    from types import SimpleNamespace

    from canteen_ops.checks.run import default_processes

    def fleet(n):
        return [SimpleNamespace(kind="camera")] * n

    monkeypatch.setattr("os.cpu_count", lambda: 4)
    assert [default_processes(fleet(n)) for n in (1, 199, 200, 5000)] == [1, 1, 4, 4]
    assert default_processes(fleet(1000), ["reachable", "picture"]) == 1
    monkeypatch.setattr("os.cpu_count", lambda: 64)
    assert default_processes(fleet(1000)) == 8


def test_worker_processes_run_masks_a_password_a_device_echoes(fleet, monkeypatch, tmp_path):
    """The workers log in with the devices' passwords; the parent writes the log and the screen, so it has to
    know them too, or a password a device echoes back in an error would reach the log unmasked."""
    from canteen_ops import redact
    from canteen_ops.store.log import MaintenanceLog

    monkeypatch.setenv("FAKE_FLEET_PASSWORD", "Echoed-Pw-731")
    monkeypatch.setattr(redact, "_KNOWN", set())  # this process has resolved nothing yet
    for state in fleet.states.values():
        state.errors["facts"] = ProtocolError("device says: bad request from admin:Echoed-Pw-731")
    inv = load_inventory(fleet.path)
    log = MaintenanceLog.open(tmp_path / "log.db")
    with log.run("check", [], "test") as handle:
        run_checks(inv.devices, inv, ["reachable", "facts"], log=log, driver_factory=fleet.shareable(),
                   progress=False, processes=2, workers=1, on_results=handle.record_all)
    summaries = [r["summary"] for r in log.query("SELECT summary FROM results WHERE check_name = 'facts'")]
    log.close()
    assert len(summaries) == 7 and all("admin:***" in s for s in summaries), summaries
    assert not any("Echoed-Pw-731" in s for s in summaries)


def test_ntp_servers_the_firmware_does_not_offer_are_not_missing_servers():
    import datetime as dt
    from types import SimpleNamespace

    from canteen_ops.checks.device import ntp
    from canteen_ops.drivers.base import Clock

    now = dt.datetime.now(dt.timezone.utc)

    def verdict(mode="NTP", ntp_enabled=True, **kw):
        clock = Clock(device_utc=now, host_utc=now, mode=mode, ntp_enabled=ntp_enabled, **kw)
        dev = SimpleNamespace(id="cam", school_id="s")
        return ntp(SimpleNamespace(device=dev, get=lambda name: clock))[0]

    r = verdict(ntp_servers=[], ntp_servers_offered=False)  # ntpServers answered 403/404 notSupport
    assert r.status is Status.OK and r.summary == "NTP on (this firmware does not list its NTP servers)"
    r = verdict(ntp_servers=[])  # listed, and empty: a real configuration fault
    assert r.status is Status.WARN and r.summary == "NTP enabled but no server configured"
    r = verdict(None, None, ntp_servers=[], ntp_servers_offered=False)  # Dahua without the NTP table
    assert r.status is Status.NA and r.summary == "not applicable: this firmware offers no NTP settings"
    assert verdict(None, None, ntp_servers=[]).status is Status.UNKNOWN  # offered, but says nothing


def test_coverage_camera_with_only_unknown_results_is_not_working(fleet):
    from canteen_ops.checks.coverage import SchoolContext, coverage
    from canteen_ops.status import Result

    inv = load_inventory(fleet.path)
    school = inv.school("sch-1")
    runs = {d.id: [Result(d.id, "reachable", Status.OK, "up", school_id="sch-1")] for d in school.devices}
    area = inv.device("cam-06").area
    runs["cam-06"] = [Result("cam-06", c, Status.UNKNOWN, "could not tell", school_id="sch-1")
                      for c in ("reachable", "login", "clock")]
    cov = coverage(SchoolContext(school, inv, runs))[0]
    assert cov.status is Status.UNKNOWN
    assert cov.data["areas"][area] == {"working": [], "failing": [], "unknown": ["cam-06 (unknown)"]}
    assert cov.data["unchecked"] == [area] and cov.data["uncovered"] == []
    # an n/a check (no SD card) next to the unknown ones is no evidence either
    runs["cam-06"].append(Result("cam-06", "storage", Status.NA, "no SD card or NAS", school_id="sch-1"))
    assert coverage(SchoolContext(school, inv, runs))[0].status is Status.UNKNOWN
    # one unknown check next to an ok one still counts as working
    runs["cam-06"].append(Result("cam-06", "facts", Status.OK, "model", school_id="sch-1"))
    assert coverage(SchoolContext(school, inv, runs))[0].status is Status.OK

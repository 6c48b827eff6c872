import threading
import time

import pytest

from canteen_ops.inventory.loader import load_inventory
from canteen_ops.runner import run_devices
from canteen_ops.status import Result, Status
from tests.conftest import EXAMPLE


@pytest.fixture
def devices():
    return load_inventory(EXAMPLE).devices


def test_every_device_runs_once_and_worst_status_wins(devices):
    seen = []
    lock = threading.Lock()

    def task(d):
        with lock:
            seen.append(d.id)
        status = Status.CRIT if d.id == "hd-cam-03" else Status.OK
        return [Result(d.id, "probe", status, "x")]

    logged = []
    out = run_devices(devices, task, workers=4, on_result=logged.append, progress=False)
    assert sorted(seen) == sorted(d.id for d in devices)
    assert len(out.results) == len(devices) == len(logged)
    assert out.status is Status.CRIT and out.exit_code == 2
    assert all(r.school_id for r in out.results)


def test_exception_is_contained_to_its_device(devices):
    def task(d):
        if d.id == "xc-cam-01":
            raise RuntimeError("boom")
        return [Result(d.id, "probe", Status.OK, "fine")]

    out = run_devices(devices, task, workers=3, progress=False)
    bad = [r for r in out.results if r.device_id == "xc-cam-01"]
    assert len(bad) == 1 and bad[0].status is Status.UNKNOWN and "boom" in bad[0].summary
    assert sum(r.status is Status.OK for r in out.results) == len(devices) - 1


def test_deadline_reports_unknown_and_does_not_wait(devices):
    release = threading.Event()

    def task(d):
        if d.id == "xc-cam-02":
            release.wait(10)
        return [Result(d.id, "probe", Status.OK, "fine")]

    t0 = time.monotonic()
    finished = []
    out = run_devices(devices[:4], task, workers=4, deadline_s=0.3, progress=False,
                      on_device=lambda d, rs: finished.append((d.id, [r.check for r in rs])))
    release.set()
    assert time.monotonic() - t0 < 3
    assert out.timed_out == ["xc-cam-02"]
    late = [r for r in out.results if r.device_id == "xc-cam-02"]
    assert [r.check for r in late] == ["deadline"] and late[0].status is Status.UNKNOWN
    # on_device: once per device, with all its results — the deadline line for the one that did not finish
    assert sorted(finished) == sorted([(d.id, ["probe"]) for d in devices[:4] if d.id != "xc-cam-02"]
                                      + [("xc-cam-02", ["deadline"])])


def test_ctrl_c_keeps_finished_results(devices):
    logged = []

    def task(d):
        if d.id == devices[3].id:
            raise KeyboardInterrupt  # simulates Ctrl-C arriving while this device runs
        return [Result(d.id, "probe", Status.OK, "fine")]

    # KeyboardInterrupt inside a worker thread surfaces via future.result() in the main thread.
    with pytest.raises(KeyboardInterrupt):
        run_devices(devices, task, workers=1, on_result=logged.append, progress=False)
    assert [r.device_id for r in logged] == [d.id for d in devices[:3]]


def _counted(work):
    """A task that runs work(device) and counts how many run at once (peak[0])."""
    lock, running, peak = threading.Lock(), [0], [0]

    def task(d):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        try:
            work(d)
        finally:
            with lock:
                running[0] -= 1
        return [Result(d.id, "probe", Status.OK, "fine")]

    return task, peak


def _peak_concurrency(devices, work, **kwargs) -> int:
    task, peak = _counted(lambda d: work())
    out = run_devices(devices, task, progress=False, **kwargs)
    assert len(out.results) == len(devices)
    return peak[0]


def test_default_workers_put_a_whole_small_fleet_in_flight(devices, monkeypatch):
    monkeypatch.delenv("CANTEEN_OPS_WORKERS", raising=False)
    many = (devices * 20)[:60]
    assert _peak_concurrency(many, lambda: time.sleep(0.3)) == 60  # bounded by the fleet, not by the CPUs


def test_workers_from_the_environment(devices, monkeypatch):
    monkeypatch.setenv("CANTEEN_OPS_WORKERS", "8")
    assert _peak_concurrency((devices * 20)[:30], lambda: time.sleep(0.05)) == 8


def test_a_device_past_its_deadline_keeps_its_thread_counted(devices):
    """A task the deadline gave up on still runs (its driver call has its own timeout): it holds a thread, so the
    runner starts no more than `workers` at once, and no device waits for a thread while its deadline runs."""
    release = threading.Event()
    task, peak = _counted(lambda d: release.wait(1.0) if d.id == devices[0].id else time.sleep(0.05))
    out = run_devices(devices[:8], task, workers=2, deadline_s=0.3, progress=False)
    release.set()
    assert peak[0] == 2
    assert out.timed_out == [devices[0].id]
    assert sorted(r.device_id for r in out.results if r.check == "probe") == sorted(d.id for d in devices[1:8])


def test_a_devices_results_arrive_together_in_its_order(devices):
    """on_device gets each device once, with all its results in the order its task made them, and on_result has
    seen them just before; devices arrive as they finish (the slow one last)."""
    calls = []

    def task(d):
        if d.id == devices[0].id:
            time.sleep(0.3)
        return [Result(d.id, c, Status.OK, "fine") for c in ("reachable", "login", "facts")]

    seen = []
    run_devices(devices[:5], task, workers=5, progress=False, on_result=lambda r: seen.append((r.device_id, r.check)),
                on_device=lambda d, rs: calls.append((d.id, [r.check for r in rs], list(seen))))
    assert [c[0] for c in calls][-1] == devices[0].id and len(calls) == 5
    for i, (device_id, checks, before) in enumerate(calls):
        assert checks == ["reachable", "login", "facts"]
        assert before[-3:] == [(device_id, c) for c in checks] and len(before) == 3 * (i + 1)


def test_workers_fit_the_open_files_limit(monkeypatch):
    """Where the soft limit cannot be raised enough, fewer devices are in flight instead of failing with
    'too many open files'; where there is no such limit (Windows), the workers asked for."""
    from canteen_ops import fdlimit, runner

    monkeypatch.setattr(fdlimit, "raise_open_files", lambda wanted: 256)
    assert runner.fit_open_files(1000) == (256 - runner.FILES_RESERVED) // runner.FILES_PER_DEVICE
    assert runner.fit_open_files(10) == 10
    monkeypatch.setattr(fdlimit, "raise_open_files", lambda wanted: None)
    assert runner.fit_open_files(1000) == 1000


def test_raise_open_files_raises_the_soft_limit_only(tmp_path):
    """In a child process (the limit is per process): raised to what is wanted, never above the hard limit, never
    lowered."""
    import subprocess
    import sys

    code = ("import resource; from canteen_ops.fdlimit import raise_open_files as r; "
            "s, h = resource.getrlimit(resource.RLIMIT_NOFILE); resource.setrlimit(resource.RLIMIT_NOFILE, (64, h)); "
            "print(r(100), r(50), resource.getrlimit(resource.RLIMIT_NOFILE)[0], r(10**9) <= h or h == resource.RLIM_INFINITY)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["100", "100", "100", "True"]


def test_explicit_workers_run_at_once(devices):
    many = (devices * 5)[:12]
    assert _peak_concurrency(many, lambda: time.sleep(0.2), workers=6) == 6

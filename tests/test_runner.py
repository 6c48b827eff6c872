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


def _peak_concurrency(devices, work, **kwargs) -> int:
    lock, running, peak = threading.Lock(), [0], [0]

    def task(d):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        try:
            work()
        finally:
            with lock:
                running[0] -= 1
        return [Result(d.id, "probe", Status.OK, "fine")]

    out = run_devices(devices, task, progress=False, **kwargs)
    assert len(out.results) == len(devices)
    return peak[0]


def test_default_concurrency_grows_while_devices_keep_us_waiting(devices, monkeypatch):
    monkeypatch.setenv("CANTEEN_OPS_WORKERS", "8")
    many = (devices * 20)[:60]
    assert _peak_concurrency(many, lambda: time.sleep(0.05)) == 8  # slow answers: up to the ceiling


def test_concurrency_doubles_only_while_the_process_waits(monkeypatch):
    """The controller on a fake clock: a tick at 90 % of a core keeps the limit, ticks mostly waiting double it
    up to the ceiling; an explicit start is final."""
    import canteen_ops.runner as runner

    clock = {"wall": 100.0, "demand": 10.0}
    monkeypatch.setattr(runner.time, "monotonic", lambda: clock["wall"])
    monkeypatch.setattr(runner, "demand_s", lambda: clock["demand"])
    c = runner._Concurrency(32, start=runner._Concurrency.START)
    assert (c.limit, c.tick()) == (4, runner._Concurrency.TICK_S)

    def tick(busy: float) -> int:
        clock["wall"] += 0.2
        clock["demand"] += 0.2 * busy
        c.update()
        return c.limit

    assert [tick(0.9), tick(0.95), tick(0.1), tick(0.2), tick(0.6), tick(0.0), tick(0.0)] == [4, 4, 8, 16, 16, 32, 32]
    assert c.tick() is None
    fixed = runner._Concurrency(6, start=6)
    assert (fixed.limit, fixed.tick()) == (6, None)


def test_demand_counts_time_waiting_for_a_core():
    """A process that gets half a core because another one takes the rest still wants a whole core: demand_s
    counts its time in the run queue, so the runner does not mistake CPU contention for slow devices."""
    import os

    from canteen_ops.runner import demand_s

    if not os.path.exists("/proc/self/task"):
        pytest.skip("no per-thread scheduler statistics here")

    def spin(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            pass

    cores = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(cores)})  # this process and its rival share one core
    try:
        rival = os.fork()
        if rival == 0:
            spin(1.5)
            os._exit(0)
        d0, c0, t0 = demand_s(), time.process_time(), time.monotonic()
        spin(0.8)
        wall, cpu, demand = time.monotonic() - t0, time.process_time() - c0, demand_s() - d0
        os.waitpid(rival, 0)
    finally:
        os.sched_setaffinity(0, cores)
    assert cpu < 0.8 * wall  # the rival took part of the core ...
    assert demand > 0.9 * wall  # ... and we were ready to run all along


def test_explicit_workers_run_at_once(devices):
    many = (devices * 5)[:12]
    assert _peak_concurrency(many, lambda: time.sleep(0.2), workers=6) == 6

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

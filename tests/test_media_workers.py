"""The picture analysis in spawned worker processes (procpool.py, media/work.py), against the RTSP lab: spawn is
the start method Windows has, so this is the path every platform takes."""

from __future__ import annotations

import os
from concurrent.futures.process import BrokenProcessPool

import pytest

from canteen_ops.media.work import probe_and_measure
from canteen_ops.procpool import WorkerProcesses
from tests.rtsp_lab_fixtures import LAB_PASSWORD, LAB_USER

ARGS = dict(username=LAB_USER, password=LAB_PASSWORD, timeout=10.0, frames=12, frozen_similarity=0.95)


@pytest.fixture(scope="module")
def workers():
    with WorkerProcesses(2) as w:
        yield w


def test_workers_are_spawned_processes(workers):
    assert workers._ctx.get_start_method() == "spawn"
    assert workers.submit(os.getpid).result(timeout=60) != os.getpid()


def test_a_picture_measured_in_a_worker_is_the_one_measured_here(rtsp_lab, workers):
    here_probe, here = probe_and_measure(rtsp_lab.url(), **ARGS)
    there_probe, there = probe_and_measure(rtsp_lab.url(), workers=workers, wait_s=60, **ARGS)
    assert there is not None and here is not None
    assert (there_probe.ok, there_probe.resolution, there_probe.codec) == (True, "320x180", "h264")
    assert there_probe.frames == here_probe.frames == [] and LAB_PASSWORD not in there_probe.url  # no frames kept
    assert there.frames == here.frames == 12
    assert there.mean_luma == pytest.approx(here.mean_luma, rel=0.1)
    assert there.sharpness == pytest.approx(here.sharpness, rel=0.25)


def test_a_fault_is_found_in_a_worker_too(rtsp_lab, workers):
    from canteen_ops.media.quality import assess
    from canteen_ops.inventory.model import Policy

    _, metrics = probe_and_measure(rtsp_lab.url("black"), workers=workers, wait_s=60, **ARGS)
    codes = {f.code for f in assess(metrics, Policy())}
    assert "dark" in codes or "black" in codes, codes


def test_a_worker_that_crashes_fails_its_camera_only(rtsp_lab):
    """A crash in native code (here: the worker process exits) breaks the executor; what ran in it fails, the
    next camera gets a fresh worker."""
    with WorkerProcesses(1) as w:
        with pytest.raises(BrokenProcessPool):
            w.submit(os._exit, 3).result(timeout=60)
        probe, metrics = probe_and_measure(rtsp_lab.url(), workers=w, wait_s=60, **ARGS)
        assert probe.ok and metrics is not None


def test_stopping_ends_busy_workers_at_once():
    import time

    w = WorkerProcesses(1)
    busy = w.submit(time.sleep, 60)
    t0 = time.monotonic()
    while not busy.running():
        time.sleep(0.05)
    w.close(stop=True)
    assert time.monotonic() - t0 < 30
    with pytest.raises(BrokenProcessPool):
        busy.result(timeout=1)

"""The CPU-bound part of the stream and picture checks as one call, so it can run in a worker process
(procpool.py): probe the stream, decoding `frames` frames, and measure the picture. It returns the stream's facts
and the picture's metrics, not the frames: a dozen decoded frames are megabytes to send back, the metrics a few
numbers."""

from __future__ import annotations

from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from canteen_ops.media.probe import StreamProbe
    from canteen_ops.media.quality import PictureMetrics


def probe_and_measure(url: str, *, username: str | None, password: str | None, timeout: float, frames: int,
                      frozen_similarity: float) -> "tuple[StreamProbe, PictureMetrics | None]":
    """probe_stream, then the picture metrics of the decoded frames (None when no frame was decoded)."""
    from canteen_ops.media.probe import probe_stream

    probe = probe_stream(url, username=username, password=password, timeout=timeout, frames=frames)
    metrics = None
    if probe.frames:
        from canteen_ops.media.quality import measure

        metrics = measure(probe.frames, frozen_similarity=frozen_similarity)
    probe.frames, probe.frame_times = [], []
    return probe, metrics


def probe_and_measure_in(workers: Any, url: str, *, wait_s: float | None, **kwargs: Any
                         ) -> "tuple[StreamProbe, PictureMetrics | None]":
    """probe_and_measure in a worker process (procpool.WorkerProcesses), waiting at most wait_s for it (the
    device's deadline; the probe itself is bounded by its timeout, the wait includes the queue for a worker).
    A worker that crashed (a decoder fault on a hostile stream) or did not answer in time is this camera's
    failed probe; the next camera gets a fresh worker."""
    future = workers.submit(probe_and_measure, url, **kwargs)
    try:
        return future.result(timeout=wait_s)
    except FutureTimeout:
        future.cancel()
        return _failed(url, kwargs.get("password"), "timeout", "no stream facts within the device's deadline "
                       "(every decoding process was busy)"), None
    except BrokenProcessPool:
        return _failed(url, kwargs.get("password"), "protocol", "the decoding process ended abruptly on this "
                       "stream"), None


def _failed(url: str, password: str | None, error: str, message: str) -> "StreamProbe":
    from canteen_ops.media.probe import StreamProbe, _public_url
    from canteen_ops.redact import redact_text

    return StreamProbe(url=redact_text(_public_url(url), tuple(s for s in (password,) if s)), error=error,
                       message=message)

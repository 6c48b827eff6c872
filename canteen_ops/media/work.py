"""The stream and picture checks' probe: the stream's facts and, from the decoded frames, the picture's metrics.
It returns the facts and the metrics, not the frames (a dozen decoded frames are megabytes; the metrics a few
numbers).

Receiving and decoding stay in the calling thread: they mostly wait on the camera, and PyAV decodes without
the GIL, so the threads of one process already decode on every core. With worker processes (procpool.py,
`check --processes N`), the picture metrics (numpy, ~20 ms a camera) are computed in one of them; a worker
handles one call at a time, so handing it the whole probe would queue every camera's seconds of waiting for
video behind one another."""

from __future__ import annotations

from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from canteen_ops.media.probe import StreamProbe
    from canteen_ops.media.quality import PictureMetrics


def probe_and_measure(url: str, *, username: str | None, password: str | None, timeout: float, frames: int,
                      frozen_similarity: float, workers: Any = None, wait_s: float | None = None
                      ) -> "tuple[StreamProbe, PictureMetrics | None]":
    """probe_stream, then the picture metrics of the decoded frames (None when no frame was decoded, or when the
    worker process measuring them failed or did not answer within wait_s: the probe's message says so)."""
    from canteen_ops.media.probe import probe_stream
    from canteen_ops.media.quality import measure

    probe = probe_stream(url, username=username, password=password, timeout=timeout, frames=frames)
    metrics = None
    if probe.frames and workers is None:
        metrics = measure(probe.frames, frozen_similarity=frozen_similarity)
    elif probe.frames:
        future = workers.submit(measure, probe.frames, frozen_similarity=frozen_similarity)
        try:
            metrics = future.result(timeout=wait_s)
        except FutureTimeout:
            future.cancel()
            probe.message = "the picture was not analysed within the device's deadline (every process was busy)"
        except BrokenProcessPool:
            probe.message = "the process analysing the picture ended abruptly"
    probe.frames, probe.frame_times = [], []
    return probe, metrics

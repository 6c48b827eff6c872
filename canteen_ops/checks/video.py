"""Camera checks on the live stream: stream (RTSP facts) and picture (quality of decoded frames).

The stream check reads the main stream's facts without decoding (frames=0); the picture check decodes a short
clip, from the sub-stream when there is one. The camera's blur baseline is the median sharpness of its earlier ok pictures in the log, so a lens
slowly filming over with grease or steam is caught even when the absolute threshold still passes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from canteen_ops.checks.device import result
from canteen_ops.drivers.base import Channel, NotSupported
from canteen_ops.status import Result, Status

if TYPE_CHECKING:
    from canteen_ops.checks.context import CheckContext


def _frames_needed(ctx: "CheckContext") -> int:
    # A freeze is only visible over frozen_frames consecutive frames; two more leave room for the first IDR.
    return max(12, ctx.policy.frozen_frames + 2)


def _run_probe(ctx: "CheckContext", uri: str, frames: int, frozen_similarity: float | None = None):
    """(StreamProbe without its frames, PictureMetrics or None); the metrics in a worker process when the run
    has them (media/work.py)."""
    from canteen_ops.media.work import probe_and_measure

    creds = ctx.device.credentials
    timeout = ctx.policy.stream_timeout_s
    left = ctx.remaining()
    if left is not None:  # stay inside the device's deadline (a little margin for the picture metrics)
        timeout = max(0.5, min(timeout, left - 1.0))
    args = dict(username=creds.username if creds else None, password=creds.resolve() if creds else None,
                timeout=timeout, frames=frames,
                frozen_similarity=ctx.policy.frozen_similarity if frozen_similarity is None else frozen_similarity)
    return probe_and_measure(uri, workers=ctx.media, wait_s=left, **args)


def _inputs(ctx: "CheckContext"):
    """The camera's video inputs (a multi-sensor or thermal bi-spectrum camera has several; each is checked)."""
    try:
        inputs = ctx.get("video_inputs")
    except NotSupported:
        inputs = []
    return inputs or [Channel(id=1, online=None)]


def _main_probe(ctx: "CheckContext", channel: int = 1):
    """Facts of the main stream (what is recorded): size from the SPS, fps and bitrate from packets, no decode."""
    return ctx.remember(f"probe-main-{channel}", lambda: _run_probe(ctx, ctx.get("stream_uri", channel, True), 0))


def _picture_probe(ctx: "CheckContext", channel: int = 1, frozen_similarity: float | None = None):
    """Decoded frames for the picture metrics, from the sub-stream when the camera has one: the metrics work on
    frames reduced to 640 px anyway, and decoding 1080p is most of a stream check's cost (50 cameras at once)."""
    def compute():
        try:
            uri = ctx.get("stream_uri", channel, False)
        except NotSupported:
            uri = ctx.get("stream_uri", channel, True)
        return _run_probe(ctx, uri, _frames_needed(ctx), frozen_similarity)

    return ctx.remember(f"probe-picture-{channel}", compute)


def _label(ch, several: bool) -> str:
    """'' for a single-sensor camera (its results read as before); 'channel 2 (thermal): ' otherwise."""
    if not several:
        return ""
    return f"channel {ch.id}{' (thermal)' if ch.kind == 'thermal' else ''}: "


def _describe(p) -> str:
    parts = [p.codec.upper() if p.codec else None, p.resolution,
             f"{p.fps:.0f} fps" if p.fps else None,
             f"{p.bitrate_bps / 1e6:.1f} Mbit/s" if p.bitrate_bps else None,
             f"first frame in {p.time_to_first_frame_s:.1f} s" if p.time_to_first_frame_s is not None else None]
    return ", ".join(x for x in parts if x)


def stream(ctx: "CheckContext") -> list[Result]:
    """One result per video input; each against the policy of its kind (a thermal sensor's own minima)."""
    inputs = _inputs(ctx)
    return [_stream_one(ctx, ch, _label(ch, len(inputs) > 1)) for ch in inputs]


def _stream_one(ctx: "CheckContext", ch, label: str) -> Result:
    from canteen_ops.media.quality import assess_stream, overall

    p, _ = _main_probe(ctx, ch.id)
    findings = assess_stream(p, ctx.policy.for_channel(ch.kind))
    status = overall(findings)
    data = p.to_dict() | {"findings": [f.code for f in findings], "channel": ch.id, "channel_kind": ch.kind}
    if not p.ok:
        what = "no stream" if status is Status.CRIT else "stream not checked"
        return result(ctx, "stream", status, f"{label}{what}: {p.message}".rstrip(": "), **data)
    desc = _describe(p)
    if status is Status.OK:
        return result(ctx, "stream", status, f"{label}{desc}", **data)
    problems = "; ".join(f.message for f in findings if f.status is not Status.OK)
    return result(ctx, "stream", status, f"{label}{problems} ({desc})", **data)


def picture(ctx: "CheckContext") -> list[Result]:
    inputs = _inputs(ctx)
    return [_picture_one(ctx, ch, _label(ch, len(inputs) > 1)) for ch in inputs]


def _picture_one(ctx: "CheckContext", ch, label: str) -> Result:
    from canteen_ops.media.quality import assess, overall

    pol = ctx.policy.for_channel(ch.kind)
    p, m = _picture_probe(ctx, ch.id, pol.frozen_similarity)
    if m is None:
        why = p.message or "no frames decoded"
        return result(ctx, "picture", Status.UNKNOWN, f"{label}no picture to assess ({why})", frames=0,
                      channel=ch.id)
    # The blur history in the log is the camera's first sensor's: other sensors are judged on the threshold only.
    baseline = ctx.history.blur_baseline(ctx.device.id) if ch.id == 1 else None
    findings = assess(m, pol, baseline)
    status = overall(findings)
    data = {"blur": round(m.sharpness, 1), "baseline_blur": round(baseline, 1) if baseline else None,
            "mean_luma": round(m.mean_luma, 1), "contrast": round(m.contrast, 1),
            "colour_cast_k": round(m.colour_cast_k, 3), "uniform_pct": round(m.uniform_pct, 1),
            "frozen_run": m.frozen_run, "frames": m.frames, "findings": [f.code for f in findings],
            "source": p.url, "source_resolution": p.resolution, "channel": ch.id, "channel_kind": ch.kind}
    order = sorted(findings, key=lambda f: -f.status.severity)
    return result(ctx, "picture", status, label + "; ".join(f.message for f in order), **data)

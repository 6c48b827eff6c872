"""Recorded-span arithmetic shared by the drivers."""

from __future__ import annotations

import datetime as dt

from canteen_ops.drivers.base import RecordingSpan

UTC = dt.timezone.utc


def merge_spans(spans: list[tuple[dt.datetime, dt.datetime]],
                tolerance: dt.timedelta = dt.timedelta(seconds=1)) -> list[tuple[dt.datetime, dt.datetime]]:
    """Sort and join overlapping or touching spans (recorders cut continuous recording into files)."""
    out: list[tuple[dt.datetime, dt.datetime]] = []
    for s, e in sorted(spans):
        if e < s:
            s, e = e, s
        if out and s <= out[-1][1] + tolerance:
            if e > out[-1][1]:
                out[-1] = (out[-1][0], e)
        else:
            out.append((s, e))
    return out


def clipped(channel: int, spans: list[tuple[dt.datetime, dt.datetime]], start: dt.datetime,
            end: dt.datetime) -> list[RecordingSpan]:
    """Merged spans cut to the [start, end] window that was asked for, oldest first."""
    lo, hi = start.astimezone(UTC), end.astimezone(UTC)
    out = []
    for s, e in merge_spans(spans):
        s, e = max(s, lo), min(e, hi)
        if e > s:
            out.append(RecordingSpan(channel=channel, start=s, end=e))
    return out

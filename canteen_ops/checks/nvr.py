"""NVR checks: storage, channels, retention, gaps."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from canteen_ops.checks.device import result
from canteen_ops.status import Result, Status, worst

if TYPE_CHECKING:
    from canteen_ops.checks.context import CheckContext
    from canteen_ops.drivers.base import RecordingSpan

_BAD_DISK = {"error": "error", "unformatted": "unformatted", "absent": "absent"}


def storage(ctx: "CheckContext") -> list[Result]:
    """An NVR's disks; a camera's SD card or NAS (a camera without either records only to its NVR: n/a). Both
    are read the same way (ContentMgmt/Storage, getDeviceAllInfo) and judged alike: a full card or disk is ok
    (both overwrite their oldest footage) unless policy.hdd_free_warn_pct asks for a warning."""
    disks = ctx.get("storage")
    camera = ctx.device.kind == "camera"
    if not disks and camera:
        return [result(ctx, "storage", Status.NA, "no SD card or NAS on this camera (it records to its NVR)",
                       disks=[])]
    if not disks:
        return [result(ctx, "storage", Status.CRIT, "no disk installed: nothing is being recorded", disks=[])]
    problems: list[tuple[Status, str]] = []
    rows = []
    for disk in disks:
        label = f"{_storage_kind(disk) if camera else 'disk'} {disk.id}"
        rows.append({"id": disk.id, "status": disk.status, "raw_status": disk.raw_status,
                     "capacity_mb": disk.capacity_mb, "free_mb": disk.free_mb, "read_only": disk.read_only})
        if disk.status in _BAD_DISK:
            problems.append((Status.CRIT, f"{label}: {_BAD_DISK[disk.status]}"
                             + (f" ({disk.raw_status})" if disk.raw_status and disk.raw_status != disk.status
                                else "")))
        elif disk.read_only:
            problems.append((Status.CRIT, f"{label}: read-only"))
        elif disk.status == "unknown":
            problems.append((Status.UNKNOWN, f"{label}: state not reported ({disk.raw_status or 'unknown'})"))
        elif camera and not disk.capacity_mb:  # a card or share that reports no capacity is not usable
            problems.append((Status.CRIT, f"{label}: capacity 0 ({disk.raw_status or disk.status})"))
        elif ctx.policy.hdd_free_warn_pct and disk.capacity_mb:
            pct = 100.0 * (disk.free_mb or 0) / disk.capacity_mb
            if pct < ctx.policy.hdd_free_warn_pct:
                problems.append((Status.WARN, f"{label}: {pct:.1f}% free (< {ctx.policy.hdd_free_warn_pct:g}%)"))
    total = sum(d.capacity_mb or 0 for d in disks)
    free = sum(d.free_mb or 0 for d in disks)
    if problems:
        status = worst(s for s, _ in problems)
        ordered = sorted(problems, key=lambda p: -p[0].severity)
        return [result(ctx, "storage", status, "; ".join(m for _, m in ordered), disks=rows)]
    n = len(disks)
    space = f"{_size(free)} free of {_size(total)}" if total else "capacity not reported"
    who = "the camera" if camera else "the NVR"
    note = f" (full: {who} overwrites the oldest recordings)" if total and free <= 0 else ""
    what = ", ".join(sorted({_storage_kind(d) for d in disks})) if camera else "disk"
    plural = "s" if n != 1 and not camera else ""
    return [result(ctx, "storage", Status.OK, f"{n} {what}{plural} ok, {space}{note}", disks=rows)]


def _storage_kind(disk) -> str:
    return "NAS" if str(disk.id).startswith("nas") else "SD card"


def _size(mb: float) -> str:
    if mb >= 1024 * 1024:
        return f"{mb / 1024 / 1024:.1f} TB"
    if mb >= 1024:
        return f"{mb / 1024:.1f} GB"
    return f"{mb:.0f} MB"


def _camera_names(cams) -> str:
    return ", ".join(f"{c.id} {c.name}" if c.name else c.id for c in cams)


def channels(ctx: "CheckContext") -> list[Result]:
    chans = ctx.get("channels")
    mapped = ctx.mapped_channels()
    by_id = {c.id: c for c in chans}
    crit, unknown, unmapped_off = [], [], []
    offline_cameras: list[str] = []
    rows = []
    for ch in chans:
        cams = mapped.get(ch.id, [])
        rows.append({"id": ch.id, "online": ch.online, "name": ch.name, "detail": ch.detail,
                     "cameras": [c.id for c in cams]})
        if ch.online is False:
            if cams:
                why = f" ({ch.detail})" if ch.detail else ""
                crit.append(f"channel {ch.id} offline{why}: {_camera_names(cams)}")
                offline_cameras.extend(c.id for c in cams)
            else:
                unmapped_off.append(ch.id)
        elif ch.online is None and cams:
            unknown.append(f"channel {ch.id}: state not reported ({_camera_names(cams)})")
    missing = [(n, cams) for n, cams in mapped.items() if n not in by_id]
    warn = [f"channel {n} not configured on the NVR: {_camera_names(cams)}" for n, cams in missing]
    data = {"channels": rows, "offline_cameras": offline_cameras, "unused_offline": unmapped_off,
            "missing": [n for n, _ in missing]}
    if crit:
        return [result(ctx, "channels", Status.CRIT, "; ".join(crit + warn), **data)]
    if warn:
        return [result(ctx, "channels", Status.WARN, "; ".join(warn), **data)]
    if unknown:
        return [result(ctx, "channels", Status.UNKNOWN, "; ".join(unknown), **data)]
    online = sum(1 for c in chans if c.online)
    # A channel whose state the recorder did not report is neither online nor offline: never "0 of 9 online".
    unreported = sum(1 for c in chans if c.online is None)
    if chans and unreported == len(chans):
        return [result(ctx, "channels", Status.UNKNOWN,
                       f"the recorder does not report its channels' state ({len(chans)} channels)", **data)]
    extra = f" ({len(unmapped_off)} unused channel{'s' if len(unmapped_off) != 1 else ''} without video)" \
        if unmapped_off else ""
    if unreported:
        extra += f"; {unreported} not reported"
    return [result(ctx, "channels", Status.OK, f"{online} of {len(chans) - unreported} channels online{extra}",
                   **data)]


def _channels_to_search(ctx: "CheckContext") -> list[int]:
    """The channels that record an inventory camera; without a mapping, every channel the NVR lists."""
    mapped = list(ctx.mapped_channels())
    if mapped:
        return mapped
    return [c.id for c in ctx.get("channels")]


def _label(ctx: "CheckContext", channel: int) -> str:
    cams = ctx.mapped_channels().get(channel, [])
    return f"channel {channel} ({', '.join(c.id for c in cams)})" if cams else f"channel {channel}"


def retention(ctx: "CheckContext") -> list[Result]:
    p = ctx.policy
    # Search a little past the warning threshold: enough to tell "≥ warn days" from less.
    horizon_days = max(p.retention_warn_days, p.retention_crit_days) + 1
    per_channel = {}
    problems: list[tuple[Status, int, str]] = []
    for ch in _channels_to_search(ctx):
        # ISAPI and Dahua CGI page through recording files, so weeks cost dozens of requests: ask first whether
        # anything was recorded in the day just past the warning threshold (one short search; a healthy channel
        # stops there) and search the whole horizon only for a channel that fails it. An ONVIF event search
        # costs the same for any window, so ONVIF gets the whole horizon at once and gaps reuses it.
        horizon = ctx.now - dt.timedelta(days=horizon_days)
        if ctx.device.vendor != "onvif" and ctx.get(
                "recorded_any", ch, horizon, ctx.now - dt.timedelta(days=horizon_days - 1)):
            per_channel[ch] = float(horizon_days)
            continue
        spans = ctx.recordings(ch, horizon_days * 24)
        if not spans:
            per_channel[ch] = 0.0
            problems.append((Status.CRIT, ch, "no recordings"))
            continue
        oldest = min(s.start for s in spans)
        days = min(horizon_days, (ctx.now - oldest).total_seconds() / 86400)
        per_channel[ch] = round(days, 2)
        if days < p.retention_crit_days:
            problems.append((Status.CRIT, ch, f"{days:.1f} days < {p.retention_crit_days:g}"))
        elif days < p.retention_warn_days:
            problems.append((Status.WARN, ch, f"{days:.1f} days < {p.retention_warn_days:g}"))
    data = {"days": {str(k): v for k, v in per_channel.items()}, "warn_days": p.retention_warn_days,
            "crit_days": p.retention_crit_days}
    if not per_channel:
        return [result(ctx, "retention", Status.UNKNOWN, "no channels to search", **data)]
    if problems:
        ordered = sorted(problems, key=lambda x: -x[0].severity)
        return [result(ctx, "retention", worst(s for s, _, _ in problems),
                       "retention " + _grouped(ctx, [(ch, text) for _, ch, text in ordered]), **data)]
    least = min(per_channel.values())
    at_least = "≥ " if least >= horizon_days - 0.01 else ""
    return [result(ctx, "retention", Status.OK,
                   f"retention {at_least}{min(least, horizon_days):.0f} days on {_n_channels(len(per_channel), 'all ')} "
                   f"(policy ≥ {p.retention_warn_days:g})", **data)]


def find_gaps(spans: list["RecordingSpan"], start: dt.datetime, end: dt.datetime,
              min_gap: dt.timedelta) -> list[tuple[dt.datetime, dt.datetime]]:
    """Uncovered ranges of [start, end] at least `min_gap` long; overlapping spans are merged."""
    gaps = []
    cursor = start
    for s in sorted(spans, key=lambda s: s.start):
        if s.start - cursor >= min_gap:
            gaps.append((cursor, s.start))
        cursor = max(cursor, s.end)
    if end - cursor >= min_gap:
        gaps.append((cursor, end))
    return gaps


def gaps(ctx: "CheckContext") -> list[Result]:
    from zoneinfo import ZoneInfo

    p = ctx.policy
    tz = ZoneInfo(ctx.timezone)
    window_start = ctx.now - dt.timedelta(hours=p.gap_window_hours)
    min_gap = dt.timedelta(minutes=p.gap_min_minutes)
    found: dict[str, list[list[str]]] = {}
    lines = []
    total_min = 0.0
    searched = _channels_to_search(ctx)
    for ch in searched:
        spans = ctx.recordings(ch, p.gap_window_hours)
        holes = find_gaps(spans, window_start, ctx.now, min_gap)
        if not holes:
            continue
        found[str(ch)] = [[a.isoformat(), b.isoformat()] for a, b in holes]
        total_min += sum((b - a).total_seconds() for a, b in holes) / 60
        lines.append((ch, ", ".join(_local_range(a, b, tz) for a, b in holes)))
    data = {"gaps": found, "window_hours": p.gap_window_hours, "min_minutes": p.gap_min_minutes,
            "missing_minutes": round(total_min, 1)}
    if not searched:
        return [result(ctx, "gaps", Status.UNKNOWN, "no channels to search", **data)]
    if lines:
        n = sum(len(v) for v in found.values())
        return [result(ctx, "gaps", Status.WARN,
                       f"{n} recording gap{'s' if n != 1 else ''} in the last {p.gap_window_hours:g} h — "
                       + _grouped(ctx, lines), **data)]
    return [result(ctx, "gaps", Status.OK,
                   f"no gaps ≥ {p.gap_min_minutes:g} min in the last {p.gap_window_hours:g} h on "
                   f"{_n_channels(len(searched))}", **data)]


def _grouped(ctx: "CheckContext", items: list[tuple[int, str]]) -> str:
    """'channel 2 (cam-02): X; channels 1, 3–7: Y' — channels with the same finding share one clause, so an NVR
    whose every channel keeps 10 days says it once."""
    groups: dict[str, list[int]] = {}
    for ch, text in items:
        groups.setdefault(text, []).append(ch)
    return "; ".join(f"{_label(ctx, chs[0]) if len(chs) == 1 else 'channels ' + _ranges(chs)}: {text}"
                     for text, chs in groups.items())


def _ranges(chs: list[int]) -> str:
    out, run = [], [chs[0]]
    for c in chs[1:]:
        if c == run[-1] + 1:
            run.append(c)
        else:
            out.append(run)
            run = [c]
    out.append(run)
    return ", ".join(f"{r[0]}–{r[-1]}" if len(r) > 2 else ", ".join(map(str, r)) for r in out)


def _n_channels(n: int, all_: str = "") -> str:
    return f"{all_}{n} channels" if n != 1 else "1 channel"


def _local_range(a: dt.datetime, b: dt.datetime, tz) -> str:
    la, lb = a.astimezone(tz), b.astimezone(tz)
    end = f"{lb:%H:%M}" if la.date() == lb.date() else f"{lb:%m-%d %H:%M}"
    return f"{la:%m-%d %H:%M}–{end}"

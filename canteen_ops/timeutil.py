"""Time helpers: the log stores UTC ISO-8601 with a trailing Z; people see local time."""

from __future__ import annotations

import datetime as dt
import re

UTC = dt.timezone.utc


def utcnow() -> dt.datetime:
    return dt.datetime.now(UTC)


def iso(t: dt.datetime | None = None) -> str:
    t = (t or utcnow()).astimezone(UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(s: str) -> dt.datetime:
    t = dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def parse_xs_datetime(text: str) -> dt.datetime:
    """xs:dateTime as ONVIF peers send it ('2026-01-02T03:04:05Z', '+00:00', fractions, or no zone = UTC), in UTC.
    Raises ValueError."""
    return parse_iso(text.strip().replace("z", "Z")).astimezone(UTC)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# What a person may type: durations up to a century, times between 1970 and 9000. Anything beyond is a typo, and
# datetime arithmetic on it overflows (`--since 99999999d`, `--at 0001-01-01T00:00` in a zone east of UTC).
MAX_DURATION = dt.timedelta(days=36_525)
EARLIEST = dt.datetime(1970, 1, 1, tzinfo=UTC)
LATEST = dt.datetime(9000, 1, 1, tzinfo=UTC)


def is_duration(s: str) -> bool:
    return _DURATION.match(s) is not None


def parse_duration(s: str) -> dt.timedelta:
    """'90s', '15m', '24h', '7d', '2w' → timedelta (at most MAX_DURATION). Raises ValueError with a readable
    message in the reader's language (these messages are shown with the option they belong to, never stored)."""
    from canteen_ops.i18n import _

    m = _DURATION.match(s)
    if not m:
        raise ValueError(_("invalid duration {value!r}: use a number and s/m/h/d/w, e.g. 24h or 7d").format(value=s))
    seconds = float(m.group(1)) * _UNITS[m.group(2)]
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError(_("duration {value!r} is out of range (at most {days} days)").format(
            value=s.strip(), days=MAX_DURATION.days))
    return dt.timedelta(seconds=seconds)


def in_range(t: dt.datetime, text: str) -> dt.datetime:
    """t if it lies between EARLIEST and LATEST, else ValueError naming what was typed."""
    try:
        ok = EARLIEST <= t.astimezone(UTC) < LATEST if t.tzinfo else EARLIEST <= t.replace(tzinfo=UTC) < LATEST
    except OverflowError:  # the offset takes it past year 1 or 9999
        ok = False
    if not ok:
        from canteen_ops.i18n import _

        raise ValueError(_("time {value!r} is out of range (between {first} and {last})").format(
            value=text.strip(), first=EARLIEST.year, last=LATEST.year))
    return t


def parse_since(s: str, now: dt.datetime | None = None, tz: str | None = None) -> dt.datetime:
    """A duration back from now ('24h', '7d') or an ISO date/time ('2026-11-01', '2026-11-01T08:00'); a time
    without an offset is in `tz` (the inventory's zone), or UTC when none is given. Raises ValueError, also for
    a time out of range (in_range)."""
    if is_duration(s):
        return in_range((now or utcnow()) - parse_duration(s), s)
    try:
        t = dt.datetime.fromisoformat(s.strip().replace("Z", "+00:00"))
    except ValueError:
        from canteen_ops.i18n import _

        raise ValueError(_("invalid time {value!r}: use a duration such as 24h / 7d or a date such as 2026-11-01")
                         .format(value=s)) from None
    if t.tzinfo is None:
        from zoneinfo import ZoneInfo

        t = t.replace(tzinfo=ZoneInfo(tz) if tz else UTC)
    return in_range(t, s)


def parse_until(s: str, now: dt.datetime | None = None, tz: str | None = None) -> dt.datetime:
    """Like parse_since, for the end of a period (exclusive): a bare date means the end of that day."""
    t = parse_since(s, now, tz)
    if _DATE_ONLY.match(s.strip()):
        t += dt.timedelta(days=1)
    return t


_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def local(s: str | None, tz: str = "Asia/Shanghai") -> str:
    """Render a stored UTC timestamp in a person's time zone, to the second."""
    if not s:
        return ""
    from zoneinfo import ZoneInfo

    return parse_iso(s).astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M:%S")


def age(seconds: float) -> str:
    """How old something is, for people: '40 s', '12 min', '5 h', '3 d' (40 秒 … in Chinese)."""
    from canteen_ops.i18n import _

    s = max(0.0, seconds)
    if s < 90:
        return _("{n} s").format(n=f"{s:.0f}")
    if s < 90 * 60:
        return _("{n} min").format(n=f"{s / 60:.0f}")
    if s < 48 * 3600:
        return _("{n} h").format(n=f"{s / 3600:.0f}")
    return _("{n} d").format(n=f"{s / 86400:.0f}")

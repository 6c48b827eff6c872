"""China's statutory holidays and make-up working days (调休), from the `chinese-calendar` package.

The State Council publishes each year's schedule in the November before; chinese-calendar ships it as data
(1.11 covers 2004–2026). For a year it does not know yet, `statutory_day` answers None and the working hours fall
back to their weekdays plus the inventory's `closed` / `open_days`; `knows_year` lets the inventory warn.
"""

from __future__ import annotations

import datetime as dt
import functools


@functools.lru_cache(maxsize=4096)
def statutory_day(day: dt.date) -> tuple[bool, str] | None:
    """(True, name) for a statutory holiday, (False, name) for a make-up working day on a weekend, None for an
    ordinary day or a year the calendar does not know."""
    try:
        import chinese_calendar
    except ImportError:  # pragma: no cover - a dependency; absent only in a broken install
        return None
    try:
        is_holiday, name = chinese_calendar.get_holiday_detail(day)
    except NotImplementedError:  # a year beyond the package's data
        return None
    if name is None:
        return None  # an ordinary weekday or weekend
    label = getattr(name, "value", name)
    if is_holiday:
        return True, str(label)
    return (False, str(label)) if day.weekday() >= 5 else None


@functools.lru_cache(maxsize=64)
def knows_year(year: int) -> bool:
    try:
        import chinese_calendar
        chinese_calendar.is_workday(dt.date(year, 6, 1))
    except (ImportError, NotImplementedError):
        return False
    return True

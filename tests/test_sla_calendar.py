"""Working hours that know China's statutory calendar (chinese-calendar) and the inventory's school closures."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from canteen_ops.cncalendar import knows_year, statutory_day
from canteen_ops.errors import InvalidFile
from canteen_ops.inventory.loader import parse_inventory
from canteen_ops.inventory.model import Policy, WorkingHours
from canteen_ops.sla import deadlines

SH = ZoneInfo("Asia/Shanghai")
WH = WorkingHours()  # Mon–Fri 08:00–18:00 Asia/Shanghai, statutory calendar on


def test_the_installed_calendar_knows_2026():
    assert knows_year(2026)
    assert statutory_day(dt.date(2026, 10, 1)) == (True, "National Day")
    assert statutory_day(dt.date(2026, 10, 10)) == (False, "National Day")  # Saturday worked (调休)
    assert statutory_day(dt.date(2026, 10, 9)) is None  # an ordinary Friday
    assert statutory_day(dt.date(2026, 10, 17)) is None  # an ordinary Saturday


def test_general_incident_on_national_day_gets_the_outside_allowance():
    opened = dt.datetime(2026, 10, 1, 10, 0, tzinfo=SH)  # Thursday, 国庆节
    d = deadlines("general", opened, WH, Policy())
    assert not d.in_working_hours
    assert d.arrive_by == dt.datetime(2026, 10, 1, 14, 0, tzinfo=SH)


def test_general_incident_on_a_make_up_saturday_gets_the_inside_allowance():
    opened = dt.datetime(2026, 10, 10, 10, 0, tzinfo=SH)  # Saturday, a make-up working day
    d = deadlines("general", opened, WH, Policy())
    assert d.in_working_hours
    assert d.arrive_by == dt.datetime(2026, 10, 10, 12, 0, tzinfo=SH)


def test_day_kind_explains_the_decision():
    wh = WorkingHours(closed=((dt.date(2026, 7, 6), dt.date(2026, 8, 30)),), closed_reasons=("暑假",))
    assert wh.day_kind(dt.date(2026, 10, 1)) == (False, "statutory holiday (National Day)")
    assert wh.day_kind(dt.date(2026, 10, 10)) == (True, "make-up working day 调休 (National Day)")
    assert wh.day_kind(dt.date(2026, 7, 7)) == (False, "school closed (暑假)")
    assert wh.day_kind(dt.date(2026, 10, 12)) == (True, "weekday")
    assert wh.day_kind(dt.date(2026, 10, 17)) == (False, "day off")
    assert WorkingHours(statutory=False).day_kind(dt.date(2026, 10, 1)) == (True, "weekday")


def test_a_year_the_calendar_does_not_know_falls_back_to_weekdays(monkeypatch):
    import chinese_calendar

    def unknown(day):
        raise NotImplementedError(f"no available data for year {day.year}")

    statutory_day.cache_clear()
    monkeypatch.setattr(chinese_calendar, "get_holiday_detail", unknown)
    try:
        assert statutory_day(dt.date(2026, 10, 1)) is None
        assert WH.is_working_day(dt.date(2026, 10, 1))  # Thursday: the weekday rule
    finally:
        statutory_day.cache_clear()


def test_uncovered_year_is_warned_about_at_load(monkeypatch):
    from canteen_ops import cncalendar

    monkeypatch.setattr(cncalendar, "knows_year", lambda year: False)
    inv = parse_inventory("version: 1\nschools: [{id: s, name: 一小, devices: []}]\n")
    assert any("has no statutory holidays for" in w for w in inv.warnings), inv.warnings


def test_closures_with_reasons_per_school_and_at_defaults():
    inv = parse_inventory("""
version: 1
defaults:
  working_hours:
    closed:
      - {from: 2026-07-06, to: 2026-08-30, reason: 暑假}
      - 2026-11-20
schools:
  - id: s1
    name: 一小
    devices: []
  - id: s2
    name: 二小
    working_hours:
      closed: [{from: 2026-11-23, reason: 停水检修}]
    devices: []
""")
    wh1, wh2 = inv.school("s1").working_hours, inv.school("s2").working_hours
    assert wh1.day_kind(dt.date(2026, 8, 3)) == (False, "school closed (暑假)")
    assert wh1.day_kind(dt.date(2026, 11, 20)) == (False, "school closed")
    assert wh2.day_kind(dt.date(2026, 11, 23)) == (False, "school closed (停水检修)")
    assert wh2.day_kind(dt.date(2026, 8, 3)) == (True, "weekday")  # a school's list replaces the inherited one


@pytest.mark.parametrize("entry, message", [
    ("{from: 2026-08-30, to: 2026-07-06, reason: x}", "<inventory>:3:51: defaults.working_hours.closed[0].to: range ends"),
    ("{to: 2026-07-06}", "missing"),
    ("{from: someday}", "expected a date (YYYY-MM-DD)"),
    ("{from: 2026-07-06, until: 2026-07-07}", "until"),
])
def test_bad_closures_name_file_line_and_field(entry, message):
    text = f"version: 1\ndefaults:\n  working_hours: {{closed: [{entry}]}}\nschools: []\n"
    with pytest.raises(InvalidFile) as exc:
        parse_inventory(text)
    assert any(message in str(p) for p in exc.value.problems), [str(p) for p in exc.value.problems]


def test_incident_open_on_national_day_through_the_cli(cli, tmp_path):
    inv = tmp_path / "inventory.yaml"
    inv.write_text("version: 1\nschools:\n  - id: s1\n    name: 一小\n    devices: []\n", encoding="utf-8")
    r = cli("-i", inv, "incident", "open", "-l", "general", "-t", "花屏", "-s", "s1", "--at", "2026-10-01T10:00")
    assert r.code == 0, r
    assert "outside working hours (statutory holiday (National Day)); on site by 2026-10-01 14:00:00" in r.out
    r = cli("-i", inv, "incident", "open", "-l", "general", "-t", "黑屏", "-s", "s1", "--at", "2026-10-10T10:00")
    assert "inside working hours (make-up working day 调休 (National Day)); on site by 2026-10-10 12:00:00" in r.out

"""The SLA clock: working-hour boundaries, weekends, time zones, configurable allowances."""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from canteen_ops.errors import InvalidFile
from canteen_ops.inventory.loader import parse_inventory
from canteen_ops.inventory.model import Policy, WorkingHours
from canteen_ops.sla import arrive_sla, deadlines, in_working_hours, resolve_sla
from canteen_ops.timeutil import iso

SH = ZoneInfo("Asia/Shanghai")
WH = WorkingHours()  # Mon–Fri 08:00–18:00 Asia/Shanghai
P = Policy()


def at(day: int, hh: int, mm: int = 0, ss: int = 0) -> dt.datetime:
    """A Shanghai time in the week of Monday 2026-11-23 (day 0 = Monday)."""
    return dt.datetime(2026, 11, 23 + day, hh, mm, ss, tzinfo=SH)


@pytest.mark.parametrize("t, inside", [
    (at(0, 7, 59, 59), False),   # a second before opening
    (at(0, 8, 0, 0), True),      # start is inclusive
    (at(2, 12, 0), True),
    (at(4, 17, 59, 59), True),   # Friday, last second
    (at(4, 18, 0, 0), False),    # end is exclusive
    (at(5, 10, 0), False),       # Saturday
    (at(6, 10, 0), False),       # Sunday
    (at(0, 3, 0), False),        # Monday night
])
def test_working_hours_boundaries(t, inside):
    assert in_working_hours(t, WH) is inside
    assert in_working_hours(t.astimezone(dt.timezone.utc), WH) is inside  # the zone of the input does not matter


@pytest.mark.parametrize("level, t, hours", [
    ("major", at(0, 9, 0), 1), ("major", at(0, 20, 0), 2),
    ("general", at(0, 9, 0), 2), ("general", at(0, 20, 0), 4),
    ("major", at(5, 9, 0), 2), ("general", at(6, 9, 0), 4),       # weekend mornings count as outside
    ("general", at(4, 17, 59), 2), ("general", at(4, 18, 0), 4),  # Friday evening boundary
    ("major", at(0, 7, 59), 2), ("major", at(0, 8, 0), 1),         # Monday morning boundary
])
def test_deadline_is_opening_plus_allowance(level, t, hours):
    d = deadlines(level, t, WH, P)
    assert d.arrive_by == t + dt.timedelta(hours=hours)
    assert d.resolve_by == t + dt.timedelta(hours=24)


def test_deadline_runs_past_closing_time_and_into_the_weekend():
    # Opened inside hours (Friday 17:30): the 2 h allowance applies and the clock does not stop at 18:00.
    d = deadlines("general", at(4, 17, 30), WH, P)
    assert d.in_working_hours and d.arrive_by == at(4, 19, 30)
    # Opened Sunday 23:00, outside: due Monday 03:00, not at Monday opening.
    d = deadlines("general", at(6, 23, 0), WH, P)
    assert not d.in_working_hours and d.arrive_by == at(7, 3, 0)


def test_school_time_zone_and_custom_days():
    # A school in Urumqi time with Saturday duty: 09:00 UTC on Saturday is 15:00 there (inside, 08–18).
    wh = WorkingHours(days=(0, 1, 2, 3, 4, 5), timezone="Asia/Urumqi")
    sat_0900_utc = dt.datetime(2026, 11, 28, 9, 0, tzinfo=dt.timezone.utc)
    assert in_working_hours(sat_0900_utc, wh)
    assert not in_working_hours(sat_0900_utc, WH)  # in Shanghai it is Saturday 17:00: weekend


def test_overnight_shift_belongs_to_its_start_day():
    wh = WorkingHours(days=(4,), start=dt.time(22, 0), end=dt.time(6, 0))  # Friday night shift only
    assert in_working_hours(at(4, 23, 0), wh)
    assert in_working_hours(at(5, 5, 59), wh)        # Saturday early morning, still Friday's shift
    assert not in_working_hours(at(5, 23, 0), wh)    # Saturday night: no shift
    assert not in_working_hours(at(4, 5, 0), wh)     # Friday early morning belongs to Thursday's (absent) shift


def test_allowances_are_configurable_in_the_inventory():
    inv = parse_inventory("""
version: 1
defaults:
  policy: {incident_major_inside_h: 0.5, incident_general_outside_h: 8}
schools:
  - id: s1
    name: 一小
    policy: {incident_major_outside_h: 3}
    devices: [{id: c1, kind: camera, vendor: onvif, host: 127.0.0.1}]
""")
    pol = inv.school("s1").policy
    assert deadlines("major", at(0, 9), WH, pol).arrive_by == at(0, 9, 30)
    assert deadlines("major", at(0, 20), WH, pol).arrive_by == at(0, 23)
    assert deadlines("general", at(0, 20), WH, pol).arrive_by == at(1, 4)
    assert deadlines("general", at(0, 9), WH, pol).arrive_by == at(0, 11)  # untouched default


@pytest.mark.parametrize("value, message", [
    ("0", "an incident deadline must be greater than 0 hours"),
    ("-1", "must not be negative"),
    ("soon", "expected a number"),
])
def test_invalid_allowance_is_a_located_error(value, message):
    text = f"""version: 1
defaults:
  policy:
    incident_general_inside_h: {value}
schools: []
"""
    with pytest.raises(InvalidFile) as exc:
        parse_inventory(text, "inv.yaml")
    [p] = exc.value.problems
    assert (p.line, p.path) == (4, "defaults.policy.incident_general_inside_h")
    assert message in p.message


def test_sla_states():
    opened = at(0, 9)
    row = {"opened_at": iso(opened), "arrive_deadline": iso(opened + dt.timedelta(hours=1)),
           "resolve_deadline": iso(opened + dt.timedelta(hours=24))}
    assert arrive_sla(row, at(0, 9, 59)) == "pending"
    assert arrive_sla(row, at(0, 10, 0, 1)) == "breached"
    assert arrive_sla({**row, "arrived_at": iso(at(0, 10))}, at(1, 0)) == "met"       # exactly on time
    assert arrive_sla({**row, "arrived_at": iso(at(0, 10, 0, 1))}, at(1, 0)) == "breached"
    assert arrive_sla({**row, "resolved_at": iso(at(0, 9, 30))}, at(3, 0)) == "met"   # fixed remotely in time
    assert resolve_sla(row, at(1, 8)) == "pending"
    assert resolve_sla(row, at(1, 9, 1)) == "breached"
    assert resolve_sla({**row, "resolved_at": iso(at(0, 15))}, at(3, 0)) == "met"


def test_holidays_vacations_and_make_up_days_from_the_inventory():
    """国庆 on weekdays and the winter vacation are outside working hours (the canteen is closed: the longer
    allowance); a make-up working Sunday (调休) is inside. District dates at defaults, a school replaces them."""
    inv = parse_inventory("""
version: 1
defaults:
  working_hours:
    closed: ["2026-10-01..2026-10-07", "2027-01-16..2027-02-21"]
    open_days: [2026-09-27]
schools:
  - id: s1
    name: 一小
    devices: [{id: c1, kind: camera, vendor: onvif, host: 127.0.0.1}]
  - id: s2
    name: 二小
    working_hours: {closed: [2026-10-01], statutory_holidays: false}  # its own calendar only
    devices: [{id: c2, kind: camera, vendor: onvif, host: 127.0.0.1}]
""")
    wh1, wh2 = inv.school("s1").working_hours, inv.school("s2").working_hours
    thu_national_day = dt.datetime(2026, 10, 1, 10, 0, tzinfo=SH)
    fri_in_the_week = dt.datetime(2026, 10, 2, 10, 0, tzinfo=SH)
    make_up_sunday = dt.datetime(2026, 9, 27, 10, 0, tzinfo=SH)
    vacation_weekday = dt.datetime(2027, 2, 1, 10, 0, tzinfo=SH)
    assert [in_working_hours(t, wh1) for t in (thu_national_day, fri_in_the_week, make_up_sunday,
                                               vacation_weekday)] == [False, False, True, False]
    assert [in_working_hours(t, wh2) for t in (thu_national_day, fri_in_the_week)] == [False, True]
    d = deadlines("major", thu_national_day, wh1, P)
    assert not d.in_working_hours and d.arrive_by == thu_national_day + dt.timedelta(hours=2)


def test_night_shift_after_a_holiday_belongs_to_the_holiday():
    wh = WorkingHours(days=(0, 1, 2, 3, 4), start=dt.time(22, 0), end=dt.time(6, 0),
                      closed=((dt.date(2026, 11, 25), dt.date(2026, 11, 25)),))  # Wednesday closed
    assert not in_working_hours(at(2, 23, 0), wh)
    assert not in_working_hours(at(3, 5, 0), wh)     # Thursday early morning: Wednesday's (absent) shift
    assert in_working_hours(at(3, 23, 0), wh)

"""Schedule arithmetic: intervals, cron and rrule, with every daylight-saving corner.

The daylight-saving dates used throughout (2026):

- America/New_York springs forward on Sun 8 March (02:00 EST -> 03:00 EDT, 07:00Z) and falls
  back on Sun 1 November (02:00 EDT -> 01:00 EST, 06:00Z).
- Europe/London springs forward on Sun 29 March (01:00 GMT -> 02:00 BST, 01:00Z) and falls back
  on Sun 25 October (02:00 BST -> 01:00 GMT, 01:00Z).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from google.protobuf import duration_pb2, timestamp_pb2
from headwater.v1 import schedules_pb2
from headwater_server.scheduling.schedules import (
    ScheduleError,
    check_schedule,
    compile_schedule,
    due_times,
)

NEW_YORK = ZoneInfo("America/New_York")
LONDON = ZoneInfo("Europe/London")


def utc(*fields: int) -> datetime:
    return datetime(*fields, tzinfo=UTC)  # type: ignore[misc]


def local(zone: ZoneInfo, *fields: int, fold: int = 0) -> datetime:
    return datetime(*fields, tzinfo=zone, fold=fold).astimezone(UTC)  # type: ignore[misc]


def stamp(moment: datetime) -> timestamp_pb2.Timestamp:
    value = timestamp_pb2.Timestamp()
    value.FromDatetime(moment)
    return value


def interval(
    seconds: float, anchor: datetime | None = None, timezone: str = ""
) -> schedules_pb2.Schedule:
    duration = duration_pb2.Duration()
    duration.FromTimedelta(timedelta(seconds=seconds))
    message = schedules_pb2.IntervalSchedule(interval=duration, timezone=timezone)
    if anchor is not None:
        message.anchor_time.CopyFrom(stamp(anchor))
    return schedules_pb2.Schedule(interval=message)


def cron(expression: str, timezone: str = "", day_or: bool | None = None) -> schedules_pb2.Schedule:
    message = schedules_pb2.CronSchedule(cron=expression, timezone=timezone)
    if day_or is not None:
        message.day_or = day_or
    return schedules_pb2.Schedule(cron=message)


def rrule(text: str, timezone: str = "") -> schedules_pb2.Schedule:
    return schedules_pb2.Schedule(rrule=schedules_pb2.RRuleSchedule(rrule=text, timezone=timezone))


def local_day(zone: ZoneInfo, year: int, month: int, day: int) -> tuple[datetime, datetime]:
    """The instants a local calendar day starts and ends (23 or 25 hours on change days)."""
    start = datetime(year, month, day, tzinfo=zone).astimezone(UTC)
    end = (datetime(year, month, day) + timedelta(days=1)).replace(tzinfo=zone).astimezone(UTC)
    return start, end


def walls(times: list[datetime], zone: ZoneInfo) -> list[str]:
    """Times as local wall-clock text with their UTC offset, for readable assertions."""
    return [t.astimezone(zone).strftime("%m-%d %H:%M%z") for t in times]


def assert_ascending_and_distinct(times: list[datetime]) -> None:
    assert all(a < b for a, b in pairwise(times)), times


# --- the window ---------------------------------------------------------------------------------


def test_start_is_included_end_excluded_and_limit_bounds_the_answer() -> None:
    schedule = interval(3600)  # anchored at 2020-01-01T00:00Z
    times = due_times(schedule, utc(2026, 5, 1, 10), utc(2026, 5, 1, 13), limit=10)
    assert times == [utc(2026, 5, 1, 10), utc(2026, 5, 1, 11), utc(2026, 5, 1, 12)]
    assert due_times(schedule, utc(2026, 5, 1, 10), limit=2) == times[:2]
    assert due_times(schedule, utc(2026, 5, 1, 10), limit=0) == []
    assert due_times(schedule, utc(2026, 5, 1, 10), utc(2026, 5, 1, 10)) == []


def test_every_answer_is_aware_utc() -> None:
    for schedule in (interval(60), cron("* * * * *", "Asia/Tokyo"), rrule("FREQ=MINUTELY")):
        for moment in due_times(schedule, utc(2026, 5, 1), limit=3):
            assert moment.tzinfo is UTC


def test_naive_start_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        due_times(interval(60), datetime(2026, 1, 1))


@pytest.mark.parametrize(
    "schedule",
    [
        interval(86_400, timezone="America/New_York"),
        interval(3_600 * 7 + 11),
        cron("*/20 * * * *", "America/New_York"),
        cron("30 1 * * *", "Europe/London"),
        cron("30 2 * * *", "America/New_York"),
        rrule("FREQ=HOURLY;INTERVAL=3", "America/New_York"),
    ],
)
@pytest.mark.parametrize("month_day", [(3, 7), (11, 1), (3, 29), (10, 25)])
def test_windows_split_anywhere_give_the_same_times(
    schedule: schedules_pb2.Schedule, month_day: tuple[int, int]
) -> None:
    """The scheduler asks for successive windows; their answers must join without gap or repeat."""
    recurrence = compile_schedule(schedule)
    start = utc(2026, month_day[0], month_day[1]) - timedelta(hours=12)
    end = start + timedelta(days=2)
    whole = recurrence.times(start, end, limit=10_000)
    assert_ascending_and_distinct(whole)
    for split_minutes in (1, 97, 360, 371, 600, 1_439):
        middle = start + timedelta(minutes=split_minutes * 2)
        parts = recurrence.times(start, middle, 10_000) + recurrence.times(middle, end, 10_000)
        assert parts == whole


# --- interval ------------------------------------------------------------------------------------


def test_interval_counts_from_an_anchor_in_the_past() -> None:
    schedule = interval(600, anchor=utc(2026, 1, 1, 0, 7))
    assert due_times(schedule, utc(2026, 5, 5, 12, 0, 30), limit=3) == [
        utc(2026, 5, 5, 12, 7),
        utc(2026, 5, 5, 12, 17),
        utc(2026, 5, 5, 12, 27),
    ]


def test_interval_with_an_anchor_in_the_future_is_due_before_it_too() -> None:
    """Due at anchor + k * interval for every whole k, negative k included (the proto's rule)."""
    schedule = interval(3600, anchor=utc(2027, 6, 1, 0, 45))
    assert due_times(schedule, utc(2026, 5, 5, 12), limit=2) == [
        utc(2026, 5, 5, 12, 45),
        utc(2026, 5, 5, 13, 45),
    ]
    daily = interval(86_400, anchor=local(NEW_YORK, 2027, 1, 1, 9), timezone="America/New_York")
    assert walls(due_times(daily, utc(2026, 7, 1), limit=2), NEW_YORK) == [
        "07-01 09:00-0400",
        "07-02 09:00-0400",
    ]


def test_interval_without_anchor_counts_from_2020_01_01_in_its_time_zone() -> None:
    schedule = interval(
        7 * 3600, timezone="Asia/Tokyo"
    )  # 2020-01-01 00:00 JST = 15:00Z the day before
    first = due_times(schedule, utc(2019, 12, 31, 14), limit=2)
    assert first == [utc(2019, 12, 31, 15), utc(2019, 12, 31, 22)]


def test_sub_second_intervals_are_exact() -> None:
    schedule = interval(1.5, anchor=utc(2026, 1, 1))
    assert due_times(schedule, utc(2026, 1, 1, 0, 0, 1), limit=3) == [
        utc(2026, 1, 1, 0, 0, 1) + timedelta(microseconds=500_000),
        utc(2026, 1, 1, 0, 0, 3),
        utc(2026, 1, 1, 0, 0, 4) + timedelta(microseconds=500_000),
    ]


@pytest.mark.parametrize(
    ("zone", "change_days"),
    [(NEW_YORK, ((3, 8), (11, 1))), (LONDON, ((3, 29), (10, 25)))],
)
def test_a_one_day_interval_keeps_its_wall_clock_time_across_both_changes(
    zone: ZoneInfo, change_days: tuple[tuple[int, int], ...]
) -> None:
    schedule = interval(86_400, anchor=local(zone, 2026, 1, 1, 9), timezone=zone.key)
    for month, day in change_days:
        change_day = datetime(2026, month, day)
        start = (change_day - timedelta(days=2, hours=-12)).replace(tzinfo=zone)
        times = due_times(schedule, start, limit=4)
        expected = [change_day + timedelta(days=offset, hours=9) for offset in (-1, 0, 1, 2)]
        assert [t.astimezone(zone).replace(tzinfo=None) for t in times] == expected
        offsets = {t.astimezone(zone).utcoffset() for t in times}
        assert len(offsets) == 2  # the same wall-clock time is a different UTC time after


def test_a_weekly_interval_keeps_its_wall_clock_time() -> None:
    anchor = local(LONDON, 2026, 3, 2, 7, 30)  # a Monday, GMT
    schedule = interval(7 * 86_400, anchor=anchor, timezone="Europe/London")
    times = due_times(schedule, utc(2026, 3, 20), limit=3)
    assert walls(times, LONDON) == ["03-23 07:30+0000", "03-30 07:30+0100", "04-06 07:30+0100"]


def test_a_daily_interval_at_a_time_that_does_not_exist_runs_after_the_jump_that_day() -> None:
    schedule = interval(86_400, anchor=local(NEW_YORK, 2026, 1, 1, 2, 30), timezone=NEW_YORK.key)
    times = due_times(schedule, utc(2026, 3, 7), limit=3)
    assert walls(times, NEW_YORK) == ["03-07 02:30-0500", "03-08 03:30-0400", "03-09 02:30-0400"]


def test_a_daily_interval_at_a_repeated_time_runs_once_at_its_first_pass() -> None:
    schedule = interval(86_400, anchor=local(NEW_YORK, 2026, 1, 1, 1, 30), timezone=NEW_YORK.key)
    times = due_times(schedule, utc(2026, 10, 31), limit=3)
    assert walls(times, NEW_YORK) == ["10-31 01:30-0400", "11-01 01:30-0400", "11-02 01:30-0500"]


def test_an_anchor_in_the_second_pass_of_a_repeated_hour_is_itself_due() -> None:
    anchor = local(NEW_YORK, 2026, 11, 1, 1, 30, fold=1)  # 01:30 EST, the second 01:30
    schedule = interval(86_400, anchor=anchor, timezone=NEW_YORK.key)
    assert due_times(schedule, anchor - timedelta(hours=2), limit=2) == [
        anchor,
        local(NEW_YORK, 2026, 11, 2, 1, 30),
    ]


@pytest.mark.parametrize(
    ("zone", "month", "day", "runs"),
    [
        (NEW_YORK, 3, 8, 23),
        (NEW_YORK, 11, 1, 25),
        (LONDON, 3, 29, 23),
        (LONDON, 10, 25, 25),
    ],
)
def test_an_hourly_interval_counts_elapsed_time_through_changes(
    zone: ZoneInfo, month: int, day: int, runs: int
) -> None:
    start, end = local_day(zone, 2026, month, day)
    times = due_times(interval(3600, timezone=zone.key), start, end, limit=100)
    assert len(times) == runs
    assert all(b - a == timedelta(hours=1) for a, b in pairwise(times))


def test_an_interval_of_days_and_hours_adds_the_days_on_the_wall_clock() -> None:
    anchor = local(NEW_YORK, 2026, 3, 6, 9)
    schedule = interval(86_400 + 3600, anchor=anchor, timezone=NEW_YORK.key)
    times = due_times(schedule, anchor, limit=3)
    # +1 day on the wall clock then +1 hour of elapsed time, each step from the anchor.
    assert walls(times, NEW_YORK) == ["03-06 09:00-0500", "03-07 10:00-0500", "03-08 11:00-0400"]


@pytest.mark.parametrize(
    ("message", "field", "words"),
    [
        (schedules_pb2.IntervalSchedule(), "interval.interval", "required"),
        (
            schedules_pb2.IntervalSchedule(interval=duration_pb2.Duration()),
            "interval.interval",
            "positive",
        ),
        (
            schedules_pb2.IntervalSchedule(interval=duration_pb2.Duration(seconds=-5)),
            "interval.interval",
            "positive",
        ),
        (
            schedules_pb2.IntervalSchedule(interval=duration_pb2.Duration(seconds=5, nanos=-1)),
            "interval.interval",
            "same sign",
        ),
        (
            schedules_pb2.IntervalSchedule(interval=duration_pb2.Duration(nanos=999)),
            "interval.interval",
            "at least 1 microsecond",
        ),
        (
            schedules_pb2.IntervalSchedule(interval=duration_pb2.Duration(seconds=40_000 * 86_400)),
            "interval.interval",
            "at most 36600 days",
        ),
        (
            schedules_pb2.IntervalSchedule(
                interval=duration_pb2.Duration(seconds=60), timezone="Mars/Olympus"
            ),
            "interval.timezone",
            "'Mars/Olympus' is not a known time zone; use an IANA name",
        ),
        (
            schedules_pb2.IntervalSchedule(
                interval=duration_pb2.Duration(seconds=60),
                anchor_time=timestamp_pb2.Timestamp(seconds=-(10**12)),
            ),
            "interval.anchor_time",
            "between 0001-01-01 and 9999-12-31",
        ),
    ],
)
def test_bad_intervals_name_the_field_and_the_fix(
    message: schedules_pb2.IntervalSchedule, field: str, words: str
) -> None:
    with pytest.raises(ScheduleError) as caught:
        check_schedule(schedules_pb2.Schedule(interval=message))
    assert caught.value.field == field
    assert words in caught.value.description


def test_an_interval_near_the_end_of_time_stops_instead_of_failing() -> None:
    schedule = interval(365 * 86_400, anchor=utc(9990, 1, 1))
    times = due_times(schedule, utc(9995, 6, 1), limit=100)
    assert times[0] == utc(9995, 12, 31)
    assert times[-1] == utc(9999, 12, 30)  # then the next step leaves the datetime range
    daily = interval(86_400, anchor=utc(9999, 12, 29), timezone="America/New_York")
    assert len(due_times(daily, utc(9999, 12, 29), limit=100)) == 3


def test_an_empty_schedule_is_refused() -> None:
    with pytest.raises(ScheduleError, match="set one of interval, cron or rrule") as caught:
        check_schedule(schedules_pb2.Schedule())
    assert caught.value.field == "kind"


# --- cron ---------------------------------------------------------------------------------------


def test_cron_weekdays_at_nine_in_london_follow_the_local_clock() -> None:
    times = due_times(cron("0 9 * * 1-5", "Europe/London"), utc(2026, 3, 27), limit=3)
    assert times == [utc(2026, 3, 27, 9), utc(2026, 3, 30, 8), utc(2026, 3, 31, 8)]


def test_cron_with_empty_time_zone_is_utc() -> None:
    assert due_times(cron("15 10 * * *"), utc(2026, 7, 1), limit=1) == [utc(2026, 7, 1, 10, 15)]


def test_cron_day_or_true_matches_either_day_field() -> None:
    """'0 9 1 * MON': the 1st of the month OR a Monday, as cron reads it (and when unset)."""
    for schedule in (cron("0 9 1 * MON"), cron("0 9 1 * MON", day_or=True)):
        times = due_times(schedule, utc(2026, 1, 1), limit=3)
        assert times == [utc(2026, 1, 1, 9), utc(2026, 1, 5, 9), utc(2026, 1, 12, 9)]


def test_cron_day_or_false_matches_both_day_fields() -> None:
    """Only a 1st that is a Monday: June 2026, then February and March 2027."""
    times = due_times(cron("0 9 1 * MON", day_or=False), utc(2026, 1, 1), limit=3)
    assert times == [utc(2026, 6, 1, 9), utc(2027, 2, 1, 9), utc(2027, 3, 1, 9)]


@pytest.mark.parametrize(
    ("nickname", "first"),
    [
        ("@hourly", utc(2026, 5, 1, 11)),
        ("@daily", utc(2026, 5, 2)),
        ("@midnight", utc(2026, 5, 2)),
        ("@weekly", utc(2026, 5, 3)),  # Sunday
        ("@monthly", utc(2026, 6, 1)),
        ("@yearly", utc(2027, 1, 1)),
        ("@ANNUALLY", utc(2027, 1, 1)),
    ],
)
def test_cron_nicknames(nickname: str, first: datetime) -> None:
    assert due_times(cron(nickname), utc(2026, 5, 1, 10, 30), limit=1) == [first]


def test_a_daily_cron_at_a_time_that_does_not_exist_runs_after_the_jump_that_day() -> None:
    times = due_times(cron("30 2 * * *", "America/New_York"), utc(2026, 3, 7), limit=3)
    assert walls(times, NEW_YORK) == ["03-07 02:30-0500", "03-08 03:30-0400", "03-09 02:30-0400"]


def test_a_daily_cron_at_a_repeated_time_runs_once_at_its_first_pass() -> None:
    times = due_times(cron("30 1 * * *", "America/New_York"), utc(2026, 10, 31), limit=3)
    assert walls(times, NEW_YORK) == ["10-31 01:30-0400", "11-01 01:30-0400", "11-02 01:30-0500"]


def test_a_cron_at_two_fixed_hours_runs_once_in_a_repeated_hour() -> None:
    start, end = local_day(LONDON, 2026, 10, 25)
    times = due_times(cron("0 1,2 * * *", "Europe/London"), start, end, limit=10)
    assert walls(times, LONDON) == ["10-25 01:00+0100", "10-25 02:00+0000"]


@pytest.mark.parametrize(
    ("zone", "month", "day", "hours"),
    [
        (NEW_YORK, 3, 8, 23),
        (NEW_YORK, 11, 1, 25),
        (LONDON, 3, 29, 23),
        (LONDON, 10, 25, 25),
    ],
)
@pytest.mark.parametrize("expression", ["*/15 * * * *", "0 * * * *", "@hourly", "7,37 * * * *"])
def test_a_cron_that_fires_every_hour_keeps_its_pace_through_changes(
    zone: ZoneInfo, month: int, day: int, hours: int, expression: str
) -> None:
    """No hour without runs when clocks fall back, no extra runs when they spring forward."""
    start, end = local_day(zone, 2026, month, day)
    times = due_times(cron(expression, zone.key), start, end, limit=1000)
    per_hour = {"*/15 * * * *": 4, "7,37 * * * *": 2}.get(expression, 1)
    assert len(times) == hours * per_hour
    assert_ascending_and_distinct(times)
    # Every run is a minute the expression names on the clock it happened under.
    minutes = {t.astimezone(zone).minute for t in times}
    assert minutes == {"*/15 * * * *": {0, 15, 30, 45}, "7,37 * * * *": {7, 37}}.get(
        expression, {0}
    )


def test_a_cron_every_15_minutes_skips_the_hour_that_does_not_exist() -> None:
    times = due_times(
        cron("*/15 * * * *", "America/New_York"), local(NEW_YORK, 2026, 3, 8, 1), limit=6
    )
    assert walls(times, NEW_YORK) == [
        "03-08 01:00-0500",
        "03-08 01:15-0500",
        "03-08 01:30-0500",
        "03-08 01:45-0500",
        "03-08 03:00-0400",
        "03-08 03:15-0400",
    ]


def test_a_cron_every_30_minutes_runs_in_both_passes_of_the_repeated_hour() -> None:
    times = due_times(
        cron("*/30 * * * *", "America/New_York"), local(NEW_YORK, 2026, 11, 1, 1), limit=5
    )
    assert walls(times, NEW_YORK) == [
        "11-01 01:00-0400",
        "11-01 01:30-0400",
        "11-01 01:00-0500",
        "11-01 01:30-0500",
        "11-01 02:00-0500",
    ]


def test_a_window_starting_inside_a_repeated_hour_sees_its_second_pass() -> None:
    start = local(NEW_YORK, 2026, 11, 1, 1, 40, fold=1)  # 01:40 EST
    times = due_times(cron("*/30 * * * *", "America/New_York"), start, limit=2)
    assert walls(times, NEW_YORK) == ["11-01 02:00-0500", "11-01 02:30-0500"]
    start = local(NEW_YORK, 2026, 11, 1, 1, 40)  # 01:40 EDT
    times = due_times(cron("*/30 * * * *", "America/New_York"), start, limit=2)
    assert walls(times, NEW_YORK) == ["11-01 01:00-0500", "11-01 01:30-0500"]


@pytest.mark.parametrize(
    ("expression", "words"),
    [
        ("", "is required"),
        ("   ", "is required"),
        ("* * * *", "has 4 fields; a cron expression has five"),
        ("0 0 * * * *", "has 6 fields"),
        ("61 * * * *", "is not a valid cron expression"),
        ("0 25 * * *", "is not a valid cron expression"),
        ("0 9 * * FUNDAY", "is not a valid cron expression"),
        ("@reboot", "is not a cron nickname; use one of @yearly"),
        ("H * * * *", "'H' or 'R'"),
        ("0 H(0-5) * * *", "'H' or 'R'"),
        ("R * * * *", "'H' or 'R'"),
        ("0 0 30 2 *", "never matches"),
        ("x" * 2000, "too long"),
    ],
)
def test_bad_cron_expressions_say_what_a_good_one_looks_like(expression: str, words: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        check_schedule(cron(expression))
    assert caught.value.field == "cron.cron"
    assert words in caught.value.description
    assert len(caught.value.description) < 400


def test_cron_month_and_day_names_are_accepted() -> None:
    times = due_times(cron("0 12 * MAR,APR FRI"), utc(2026, 3, 1), limit=2)
    assert times == [utc(2026, 3, 6, 12), utc(2026, 3, 13, 12)]


def test_cron_with_an_unknown_time_zone() -> None:
    with pytest.raises(ScheduleError) as caught:
        check_schedule(cron("0 9 * * *", "Europe/Londn"))
    assert caught.value.field == "cron.timezone"
    assert "'Europe/Londn' is not a known time zone" in caught.value.description
    for name in ("../../etc/passwd", "America", "a\x00b", "x" * 300):
        with pytest.raises(ScheduleError, match="time zone"):
            check_schedule(cron("0 9 * * *", name))


# --- rrule --------------------------------------------------------------------------------------


def test_rrule_without_dtstart_counts_from_2020_01_01_in_its_time_zone() -> None:
    schedule = rrule("FREQ=HOURLY;INTERVAL=5", "UTC")
    # 2020-01-01T00:00 + 5h steps: 2026-05-01 is 46_008 hours later, a multiple of 5 is 46_010.
    first = due_times(schedule, utc(2026, 5, 1), limit=1)[0]
    assert (first - utc(2020, 1, 1)) % timedelta(hours=5) == timedelta(0)
    assert timedelta(0) <= first - utc(2026, 5, 1) < timedelta(hours=5)


def test_rrule_with_a_local_dtstart_is_read_in_its_time_zone_across_changes() -> None:
    schedule = rrule("DTSTART:20260105T090000\nRRULE:FREQ=WEEKLY;BYDAY=MO,WE", "America/New_York")
    times = due_times(schedule, utc(2026, 3, 1), limit=4)
    assert walls(times, NEW_YORK) == [
        "03-02 09:00-0500",
        "03-04 09:00-0500",
        "03-09 09:00-0400",
        "03-11 09:00-0400",
    ]


def test_rrule_bare_rule_with_by_hour_and_count() -> None:
    schedule = rrule("DTSTART:20260601T000000\nFREQ=DAILY;BYHOUR=9,17;BYMINUTE=0;COUNT=5", "UTC")
    assert due_times(schedule, utc(2026, 1, 1), limit=10) == [
        utc(2026, 6, 1, 9),
        utc(2026, 6, 1, 17),
        utc(2026, 6, 2, 9),
        utc(2026, 6, 2, 17),
        utc(2026, 6, 3, 9),
    ]
    assert due_times(schedule, utc(2026, 6, 3, 10), limit=10) == []  # COUNT is used up


def test_rrule_until_is_a_local_time_for_a_local_dtstart() -> None:
    schedule = rrule(
        "DTSTART:20260601T090000\nRRULE:FREQ=DAILY;UNTIL=20260603T090000", "Europe/London"
    )
    assert walls(due_times(schedule, utc(2026, 1, 1), limit=10), LONDON) == [
        "06-01 09:00+0100",
        "06-02 09:00+0100",
        "06-03 09:00+0100",
    ]


def test_rrule_dtstart_with_tzid_sets_the_time_zone() -> None:
    text = "DTSTART;TZID=Europe/London:20260320T083000\nRRULE:FREQ=DAILY;UNTIL=20260401T000000Z"
    times = due_times(rrule(text), utc(2026, 3, 27), limit=10)
    assert walls(times, LONDON) == [
        "03-27 08:30+0000",
        "03-28 08:30+0000",
        "03-29 08:30+0100",
        "03-30 08:30+0100",
        "03-31 08:30+0100",
    ]
    assert due_times(rrule(text, "Europe/London"), utc(2026, 3, 27), limit=10) == times


def test_rrule_dtstart_in_utc() -> None:
    schedule = rrule("DTSTART:20260320T083000Z\nRRULE:FREQ=DAILY")
    assert due_times(schedule, utc(2026, 3, 29), limit=2) == [
        utc(2026, 3, 29, 8, 30),
        utc(2026, 3, 30, 8, 30),
    ]


def test_rrule_dtstart_zone_and_timezone_must_agree() -> None:
    text = "DTSTART;TZID=Europe/London:20260320T083000\nRRULE:FREQ=DAILY"
    with pytest.raises(ScheduleError) as caught:
        check_schedule(rrule(text, "America/New_York"))
    assert caught.value.field == "rrule.timezone"
    assert "disagrees with the rule's DTSTART, which is in Europe/London" in (
        caught.value.description
    )


def test_an_rrule_set_joins_rules_and_dates_and_removes_exdates() -> None:
    text = "\n".join(
        [
            "DTSTART:20260601T090000",
            "RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=3",
            "RRULE:FREQ=WEEKLY;BYDAY=FR;COUNT=2",
            "RDATE:20260610T120000,20260601T090000",
            "EXDATE:20260608T090000",
        ]
    )
    times = due_times(rrule(text, "America/New_York"), utc(2026, 1, 1), limit=10)
    assert walls(times, NEW_YORK) == [
        "06-01 09:00-0400",  # an RRULE time and an RDATE: due once
        "06-05 09:00-0400",
        "06-10 12:00-0400",
        "06-12 09:00-0400",
        "06-15 09:00-0400",
    ]


def test_an_rrule_set_with_an_exrule() -> None:
    text = "DTSTART:20260601T000000\nRRULE:FREQ=DAILY;COUNT=7\nEXRULE:FREQ=DAILY;BYDAY=SA,SU"
    times = due_times(rrule(text), utc(2026, 1, 1), limit=10)
    assert [t.day for t in times] == [1, 2, 3, 4, 5]


def test_a_daily_rrule_at_a_time_that_does_not_exist_runs_after_the_jump() -> None:
    schedule = rrule("FREQ=DAILY;BYHOUR=2;BYMINUTE=30", "America/New_York")
    assert walls(due_times(schedule, utc(2026, 3, 7), limit=3), NEW_YORK) == [
        "03-07 02:30-0500",
        "03-08 03:30-0400",
        "03-09 02:30-0400",
    ]


def test_an_rrule_at_a_repeated_time_runs_once_at_its_first_pass() -> None:
    """RFC 5545 reads a local time that exists twice as its first occurrence, hourly rules too."""
    daily = rrule("FREQ=DAILY;BYHOUR=1;BYMINUTE=30", "America/New_York")
    assert walls(due_times(daily, utc(2026, 10, 31), limit=3), NEW_YORK) == [
        "10-31 01:30-0400",
        "11-01 01:30-0400",
        "11-02 01:30-0500",
    ]
    start, end = local_day(NEW_YORK, 2026, 11, 1)
    hourly = due_times(rrule("FREQ=HOURLY", "America/New_York"), start, end, limit=100)
    assert len(hourly) == 24  # 24 wall-clock hours; the second 01:00 is not one of them


def test_an_rrule_in_a_tzid_zone_at_a_time_that_does_not_exist() -> None:
    text = "DTSTART;TZID=Europe/London:20260301T013000\nRRULE:FREQ=DAILY"
    times = due_times(rrule(text), utc(2026, 3, 28), limit=3)
    assert walls(times, LONDON) == ["03-28 01:30+0000", "03-29 02:30+0100", "03-30 01:30+0100"]


@pytest.mark.parametrize(
    ("text", "timezone", "field", "words"),
    [
        ("", "", "rrule.rrule", "is required"),
        ("FREQ=SOMETIMES", "", "rrule.rrule", "is not a valid RFC 5545 recurrence rule"),
        ("hello", "", "rrule.rrule", "is not a valid RFC 5545 recurrence rule"),
        ("FREQ=DAILY;COUNT=0", "", "rrule.rrule", "produces no times"),
        (
            "DTSTART:20260601T000000\nRRULE:FREQ=DAILY;UNTIL=20250101T000000",
            "",
            "rrule.rrule",
            "produces no times",
        ),
        (
            "DTSTART:20260601T000000\nRRULE:FREQ=DAILY;UNTIL=20270101T000000Z",
            "",
            "rrule.rrule",
            "is not a valid RFC 5545 recurrence rule",
        ),
        (
            "DTSTART;TZID=Nowhere/Else:20260601T000000\nRRULE:FREQ=DAILY",
            "",
            "rrule.rrule",
            "'Nowhere/Else' is not a known time zone",
        ),
        ("FREQ=DAILY", "Mars/Olympus", "rrule.timezone", "is not a known time zone"),
        ("FREQ=DAILY;" + "BYHOUR=1;" * 2000, "", "rrule.rrule", "too long"),
    ],
)
def test_bad_rrules_name_the_field_and_the_fix(
    text: str, timezone: str, field: str, words: str
) -> None:
    with pytest.raises(ScheduleError) as caught:
        check_schedule(rrule(text, timezone))
    assert caught.value.field == field
    assert words in caught.value.description
    assert str(caught.value).startswith(f"{field}: ")


@pytest.mark.parametrize(
    "rule",
    [
        "FREQ=HOURLY;INTERVAL=7;BYMINUTE=15,45",
        "FREQ=WEEKLY;INTERVAL=3;BYDAY=TU,SA;BYHOUR=6",
        "FREQ=MINUTELY;INTERVAL=13",
        "FREQ=SECONDLY;INTERVAL=86399",
        "FREQ=DAILY;INTERVAL=5;BYSETPOS=1;BYHOUR=3,4",
        "FREQ=DAILY;INTERVAL=3\nEXRULE:FREQ=DAILY;INTERVAL=2",
        "FREQ=HOURLY;COUNT=4000",
    ],
)
def test_rrule_times_far_from_dtstart_are_the_ones_dateutil_generates(rule: str) -> None:
    """A window far from DTSTART is found quickly (skipping whole periods) and exactly."""
    from dateutil.rrule import rrulestr

    text = f"DTSTART:20251230T011500\nRRULE:{rule}"
    start, end = utc(2026, 3, 1, 5, 7), utc(2026, 3, 20)
    expected = [
        moment.replace(tzinfo=UTC)
        for moment in rrulestr(text, forceset=True).between(
            start.replace(tzinfo=None), end.replace(tzinfo=None), inc=True
        )
    ]
    assert expected
    assert due_times(rrule(text, "UTC"), start, end, limit=10_000) == expected

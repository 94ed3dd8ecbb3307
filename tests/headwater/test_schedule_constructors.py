"""headwater.schedules: Prefect's schedule constructors, their checks, and the wire round trip.

(Named for the constructors: tests/headwater_server/scheduling/test_schedules.py is the
service's schedule arithmetic.)
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from headwater.client import HeadwaterClient
from headwater.exceptions import InvalidRequest
from headwater.schedules import Cron, Interval, RRule, Schedule

UTC = dt.UTC


def test_the_module_exports_prefects_names() -> None:
    import headwater.schedules

    assert sorted(headwater.schedules.__all__) == ["Cron", "Interval", "RRule", "Schedule"]


def test_cron_with_prefects_defaults() -> None:
    schedule = Cron("0 8 * * 1", timezone="America/New_York")
    assert schedule.cron == "0 8 * * 1"
    assert schedule.timezone == "America/New_York"
    assert (schedule.interval, schedule.rrule) == (None, None)
    assert schedule.day_or is True
    assert schedule.active is True
    assert schedule.parameters == {}
    assert schedule.slug is None
    assert Cron("0 9 8-14 * FRI", day_or=False, active=False, slug="second-friday").day_or is False


def test_interval_takes_seconds_or_a_timedelta_and_anchors_at_now_by_default() -> None:
    before = dt.datetime.now(UTC)
    schedule = Interval(90)
    after = dt.datetime.now(UTC)
    assert schedule.interval == dt.timedelta(seconds=90)
    assert before <= schedule.anchor_date <= after
    assert Interval(0.5).interval == dt.timedelta(milliseconds=500)
    anchor = dt.datetime(2026, 1, 1, 6)
    daily = Interval(dt.timedelta(days=1), anchor_date=anchor, timezone="America/New_York")
    assert (daily.interval, daily.anchor_date, daily.timezone) == (
        dt.timedelta(days=1),
        anchor,
        "America/New_York",
    )


def test_rrule_and_parameters() -> None:
    schedule = RRule(
        "FREQ=MONTHLY;BYDAY=2FR;BYHOUR=9;BYMINUTE=0",
        timezone="America/Chicago",
        parameters={"day": "friday"},
    )
    assert schedule.rrule.startswith("FREQ=MONTHLY")  # type: ignore[union-attr]
    assert schedule.parameters == {"day": "friday"}
    RRule("DTSTART;TZID=Europe/London:20260105T090000\nRRULE:FREQ=WEEKLY;BYDAY=MO")


def test_schedules_are_frozen_dataclasses() -> None:
    schedule = Cron("@daily")
    with pytest.raises(dataclasses.FrozenInstanceError):
        schedule.cron = "@hourly"  # type: ignore[misc]
    assert dataclasses.replace(schedule, timezone="UTC").timezone == "UTC"


def test_one_kind_at_most() -> None:
    with pytest.raises(ValueError, match="sets interval and cron"):
        Schedule(interval=dt.timedelta(hours=1), cron="@daily")


@pytest.mark.parametrize("interval", [0, -5, dt.timedelta(0), dt.timedelta(seconds=-1)])
def test_an_interval_must_be_positive(interval: Any) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        Interval(interval)


@pytest.mark.parametrize("interval", ["60", True, None])
def test_an_interval_must_be_a_number_or_timedelta(interval: Any) -> None:
    with pytest.raises(TypeError, match="timedelta or a number of seconds"):
        Interval(interval)


@pytest.mark.parametrize(
    ("expression", "words"),
    [
        ("0 0 * * * *", "expected five fields"),
        ("every day", "expected five fields"),
        ("61 * * * *", "out of range"),
        ("H * * * *", "hashed ('H') and random ('R')"),
        ("0 R * * *", "hashed ('H') and random ('R')"),
    ],
)
def test_bad_cron_strings_are_refused_when_built(expression: str, words: str) -> None:
    with pytest.raises(ValueError, match="Invalid cron string") as caught:
        Cron(expression)
    assert words in str(caught.value)


@pytest.mark.parametrize(
    ("rule", "words"),
    [
        ("FREQ=SOMETIMES", "Invalid RRule string"),
        ("DTSTART;TZID=Nowhere/Else:20260101T000000\nRRULE:FREQ=DAILY", "unknown time zone"),
        ("FREQ=DAILY;" + "BYHOUR=1;" * 1000, "at most 6500 characters"),
    ],
)
def test_bad_rrules_are_refused_when_built(rule: str, words: str) -> None:
    with pytest.raises(ValueError, match="Invalid RRule string") as caught:
        RRule(rule)
    assert words in str(caught.value)


@pytest.mark.integration
def test_schedules_reach_the_service_and_come_back(sqlite_server: Any) -> None:
    with HeadwaterClient(sqlite_server.address) as client:
        deployment = client.create_deployment(
            flow_name=f"etl-{uuid.uuid4().hex[:8]}",
            name="scheduled",
            schedules=[
                Cron("0 9 * * 1-5", timezone="Europe/London", day_or=False),
                Interval(
                    dt.timedelta(days=1),
                    anchor_date=dt.datetime(2026, 1, 1, 6),  # 06:00 in New York
                    timezone="America/New_York",
                    parameters={"limit": 5},
                ),
                RRule("FREQ=WEEKLY;BYDAY=MO;BYHOUR=9", active=False),
            ],
        )
    cron, interval, rrule = deployment.schedules
    assert (cron.cron, cron.timezone, cron.day_or) == ("0 9 * * 1-5", "Europe/London", False)
    assert interval.interval == dt.timedelta(days=1)
    assert interval.anchor_date == dt.datetime(2026, 1, 1, 6, tzinfo=ZoneInfo("America/New_York"))
    assert interval.parameters == {"limit": 5}
    assert (rrule.rrule, rrule.active) == ("FREQ=WEEKLY;BYDAY=MO;BYHOUR=9", False)


@pytest.mark.integration
def test_the_service_refuses_what_only_it_can_judge(sqlite_server: Any) -> None:
    with HeadwaterClient(sqlite_server.address) as client, pytest.raises(InvalidRequest) as caught:
        client.create_deployment(
            flow_name=f"etl-{uuid.uuid4().hex[:8]}",
            name="bad-zone",
            schedules=[Cron("0 9 * * *", timezone="Europe/Londn")],
        )
    assert "'Europe/Londn' is not a known time zone" in str(caught.value)

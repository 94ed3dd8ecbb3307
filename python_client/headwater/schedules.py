"""Schedules for deployments, as Prefect 3's ``prefect.schedules`` writes them.

``Interval``, ``Cron`` and ``RRule`` build a :class:`Schedule`; pass schedules to a deployment
(``schedules=[...]``) and the service's scheduler creates its runs ahead of time::

    from datetime import datetime, timedelta
    from headwater.schedules import Cron, Interval, RRule

    Cron("0 9 * * 1-5", timezone="Europe/London")  # 09:00 London time on weekdays
    Interval(timedelta(hours=1))  # every hour from now
    Interval(86400, anchor_date=datetime(2026, 1, 1, 6), timezone="America/New_York")  # 06:00 daily
    RRule("FREQ=WEEKLY;BYDAY=MO,WE;BYHOUR=9;BYMINUTE=0", timezone="America/Chicago")

How the service reads them, daylight-saving changes included: an interval of whole days keeps
its wall-clock time in ``timezone`` (a naive ``anchor_date`` is read in that zone); a time that
does not exist on the night clocks spring forward runs as long after the jump as it lay after
the hour that was skipped (02:30 becomes 03:30); a time that exists twice when clocks fall back
runs once, at its first occurrence, except that a cron expression firing every hour (hour field
``*``) keeps firing through both passes of the repeated hour.

Cron and RRULE text is checked here, when the schedule is built (a ``ValueError`` saying what is
wrong); the service checks everything again (time zones too) and refuses a bad schedule with
INVALID_ARGUMENT naming the field.
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

__all__ = ["Cron", "Interval", "RRule", "Schedule"]

# The service refuses longer rules; the same limit here fails sooner.
MAX_RRULE_CHARACTERS = 6_500


def _utc_now() -> datetime.datetime:
    return datetime.datetime.now(tz=datetime.UTC)


@dataclasses.dataclass(frozen=True)
class Schedule:
    """When a deployment's runs are due: one of ``interval``, ``cron`` or ``rrule``.

    Attributes:
        interval: The time between runs, counted from ``anchor_date``.
        cron: A cron expression ("0 0 * * *", five fields, or a nickname such as "@daily").
        rrule: An RFC 5545 recurrence rule ("FREQ=DAILY;INTERVAL=1", optionally with DTSTART).
        timezone: The IANA time zone ("America/New_York") the schedule is read in; None is UTC.
        anchor_date: For an interval, the moment intervals are counted from (default: now).
        day_or: For a cron expression restricting both day of month and day of week: True (the
            default, as in cron) matches days satisfying either, False only days satisfying
            both (the second Friday of a month: "0 9 8-14 * FRI" with ``day_or=False``).
        active: Whether the scheduler creates runs from it.
        parameters: Parameters for this schedule's runs, over the deployment's defaults.
        slug: A name for the schedule, unique within its deployment.

    Raises:
        ValueError: More than one of ``interval``, ``cron`` and ``rrule`` is set, the interval is
            not positive, or the cron expression or rule cannot be read.
    """

    interval: datetime.timedelta | None = None
    cron: str | None = None
    rrule: str | None = None
    timezone: str | None = None
    anchor_date: datetime.datetime = dataclasses.field(default_factory=_utc_now)
    day_or: bool = True
    active: bool = True
    parameters: dict[str, Any] = dataclasses.field(default_factory=dict)
    slug: str | None = None

    def __post_init__(self) -> None:
        kinds = [name for name in ("interval", "cron", "rrule") if getattr(self, name) is not None]
        if len(kinds) > 1:
            raise ValueError(
                f"A schedule has one kind, but this one sets {' and '.join(kinds)}: build each "
                "with its own Interval(...), Cron(...) or RRule(...)."
            )
        if self.interval is not None and self.interval <= datetime.timedelta(0):
            raise ValueError(f"The interval must be positive, not {self.interval}.")
        if self.cron is not None:
            _check_cron(self.cron)
        if self.rrule is not None:
            _check_rrule(self.rrule)


def Cron(
    cron: str,
    /,
    timezone: str | None = None,
    day_or: bool = True,
    active: bool = True,
    parameters: dict[str, Any] | None = None,
    slug: str | None = None,
) -> Schedule:
    """A schedule due whenever a cron expression matches, read in ``timezone``.

    Example::

        Cron("0 8 * * 1", timezone="America/New_York")  # Mondays at 08:00 New York time
    """
    return Schedule(
        cron=cron,
        timezone=timezone,
        day_or=day_or,
        active=active,
        parameters={} if parameters is None else parameters,
        slug=slug,
    )


def Interval(
    interval: datetime.timedelta | float | int,
    /,
    anchor_date: datetime.datetime | None = None,
    timezone: str | None = None,
    active: bool = True,
    parameters: dict[str, Any] | None = None,
    slug: str | None = None,
) -> Schedule:
    """A schedule due every ``interval`` (a number is seconds), counted from ``anchor_date``.

    Without ``anchor_date`` the intervals are counted from now.

    Example::

        Interval(60, anchor_date=datetime(2026, 1, 1))  # every minute, on the minute
    """
    if isinstance(interval, bool) or not isinstance(interval, datetime.timedelta | int | float):
        raise TypeError(
            f"The interval must be a timedelta or a number of seconds, not {interval!r}."
        )
    if not isinstance(interval, datetime.timedelta):
        interval = datetime.timedelta(seconds=interval)
    return Schedule(
        interval=interval,
        anchor_date=_utc_now() if anchor_date is None else anchor_date,
        timezone=timezone,
        active=active,
        parameters={} if parameters is None else parameters,
        slug=slug,
    )


def RRule(
    rrule: str,
    /,
    timezone: str | None = None,
    active: bool = True,
    parameters: dict[str, Any] | None = None,
    slug: str | None = None,
) -> Schedule:
    """A schedule due at the times an RFC 5545 recurrence rule produces, read in ``timezone``.

    Example::

        RRule("FREQ=MONTHLY;BYDAY=2FR;BYHOUR=9;BYMINUTE=0", timezone="America/Chicago")
    """
    return Schedule(
        rrule=rrule,
        timezone=timezone,
        active=active,
        parameters={} if parameters is None else parameters,
        slug=slug,
    )


def _check_cron(expression: str) -> None:
    from croniter import croniter

    fields = expression.split()
    if not (len(fields) == 5 or (len(fields) == 1 and fields[0].startswith("@"))):
        raise ValueError(
            f"Invalid cron string {expression!r}: expected five fields (minute, hour, day of "
            "month, month, day of week) such as '0 9 * * 1-5', or a nickname such as '@daily'."
        )
    if any(field.casefold().startswith(("h", "r")) for field in fields):
        raise ValueError(
            f"Invalid cron string {expression!r}: hashed ('H') and random ('R') fields are not "
            "supported; write the minute and hour out."
        )
    if not croniter.is_valid(expression):
        raise ValueError(
            f"Invalid cron string {expression!r}: a field is out of range or unreadable; e.g. "
            "'30 9 * * MON-FRI' is 09:30 on weekdays."
        )


def _check_rrule(rule: str) -> None:
    from dateutil import rrule as dateutil_rrule

    if len(rule) > MAX_RRULE_CHARACTERS:
        raise ValueError(
            f"Invalid RRule string {rule[:40]!r}...: at most {MAX_RRULE_CHARACTERS} characters, "
            f"not {len(rule)}."
        )
    try:
        dateutil_rrule.rrulestr(rule, cache=True, tzids=_zone)
    except (ValueError, TypeError) as exc:
        raise ValueError(
            f"Invalid RRule string {rule!r}: {exc}. Example: 'FREQ=WEEKLY;BYDAY=MO;BYHOUR=9'."
        ) from None


def _zone(name: str) -> datetime.tzinfo:
    import zoneinfo

    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"unknown time zone {name!r} in a TZID") from None

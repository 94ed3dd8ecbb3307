"""Schedule arithmetic: from a ``headwater.v1.Schedule`` to the instants runs are due.

Pure functions with no database and no clock, so every daylight-saving corner is tested
exhaustively on its own. :func:`check_schedule` judges a schedule (the application layer turns
its :class:`ScheduleError` into INVALID_ARGUMENT naming the field); :func:`due_times` lists the
due instants in a window; :func:`compile_schedule` does the parsing once for callers that ask
many windows of one schedule.

Times are wall-clock times in the schedule's IANA time zone (``""`` means UTC), turned into
instants (aware UTC datetimes) one by one. Daylight-saving changes make two kinds of wall-clock
time special, and every kind of schedule treats them the same way:

- A time that does not exist (02:30 on the night clocks spring forward from 02:00 to 03:00) is
  due as many minutes after the jump as it lies after its start: 02:30 becomes 03:30 (RFC 5545's
  rule, and what ``zoneinfo`` gives for ``fold=0``). It is not skipped, so a daily 02:30 job runs
  every day; if that instant is already a due time of the schedule (an hourly schedule's 03:00,
  a ``*/15`` cron's 03:15), it is due once.
- A time that exists twice (01:30 on the night clocks fall back from 02:00 to 01:00) is due
  once, at its first occurrence (daylight time), so a daily 01:30 job does not run twice. One
  exception, for cron only: an expression whose hour field is ``*`` (it fires every hour, such as
  ``*/15 * * * *`` or ``@hourly``) is also due at the second occurrence, because it means
  "every so many minutes" and an hour without runs would be a gap, as Vixie cron runs such jobs
  by the new clock. An RRULE follows RFC 5545 strictly (first occurrence only).

Intervals: a whole number of days (``interval.days``) is counted on the wall clock, so a 1-day
interval anchored at 09:00 stays at 09:00 local time across daylight-saving changes, as
Prefect's does; the rest of the interval (hours, minutes, seconds) is elapsed time. An hourly
interval therefore runs every 60 minutes of real time, through both passes of a repeated hour.

Assumption, written down because the ordering relies on it: no time-zone transition shifts the
clock by more than ``MAX_TRANSITION`` (3 hours). Every future transition in the IANA database
is 2 hours or less (most are 1 hour); Samoa's 24-hour skip of 2011 is the only larger one.
"""

from __future__ import annotations

import heapq
import itertools
import re
import zoneinfo
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from headwater.v1 import schedules_pb2

__all__ = [
    "DEFAULT_ANCHOR",
    "MAX_INTERVAL",
    "MAX_RRULE_CHARACTERS",
    "MAX_TRANSITION",
    "Recurrence",
    "ScheduleError",
    "check_schedule",
    "compile_schedule",
    "due_times",
]

# Prefect's default anchor: 2020-01-01 00:00 on the wall clock of the schedule's time zone.
DEFAULT_ANCHOR = datetime(2020, 1, 1)
MAX_TRANSITION = timedelta(hours=3)
# Longer intervals leave the datetime range after a handful of steps and mean nothing.
MAX_INTERVAL = timedelta(days=36_600)
# Prefect's limit too: the rule text is stored and parsed on every scheduler pass.
MAX_RRULE_CHARACTERS = 6_500
MAX_CRON_CHARACTERS = 1_000
MAX_TIMEZONE_CHARACTERS = 255

_CRON_NICKNAMES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
# croniter's extensions that are not cron: "H" (hashed) and "R" (random) would give a different
# time on every pass, so the same schedule would create different runs on each replica.
_HASHED_OR_RANDOM = re.compile(r"(^|[,/-])[HhRr](\(|/|,|$)")
_EXAMPLE_ZONE = "use an IANA name such as 'America/New_York', 'Europe/London' or 'UTC'"


class ScheduleError(ValueError):
    """A schedule that cannot be used, with the field at fault and what to do about it.

    Attributes:
        field: The path of the bad field inside the ``Schedule`` message ("cron.timezone",
            "interval.interval"); callers prefix it with where the schedule sits in the request.
        description: A sentence for a person: what is wrong and what is accepted.
    """

    def __init__(self, field: str, description: str) -> None:
        self.field = field
        self.description = description
        super().__init__(f"{field}: {description}")


@dataclass(frozen=True)
class Recurrence:
    """A parsed schedule: ask it for due instants as often as needed.

    Attributes:
        zone: The time zone its wall-clock times are read in.
    """

    zone: zoneinfo.ZoneInfo
    _instants_from: Callable[[datetime], Iterator[datetime]]

    def times(
        self, start: datetime, end: datetime | None = None, limit: int = 100
    ) -> list[datetime]:
        """The due instants ``t`` with ``start <= t < end``, earliest first, at most ``limit``.

        Args:
            start: An aware datetime; the first instant that may be returned.
            end: An aware datetime, excluded; None means no end (``limit`` bounds the answer).
            limit: The most instants returned.

        Returns:
            Aware UTC datetimes, ascending, each once.
        """
        if start.tzinfo is None or (end is not None and end.tzinfo is None):
            raise ValueError("start and end must be aware datetimes (with a time zone)")
        found: list[datetime] = []
        if limit <= 0:
            return found
        for instant in self._instants_from(start):
            if instant < start:
                continue
            if end is not None and instant >= end:
                break
            found.append(instant)
            if len(found) >= limit:
                break
        return found


def due_times(
    schedule: schedules_pb2.Schedule,
    start: datetime,
    end: datetime | None = None,
    limit: int = 100,
) -> list[datetime]:
    """The instants ``schedule`` is due in ``[start, end)``, earliest first, at most ``limit``.

    Example::

        schedule = Schedule(cron=CronSchedule(cron="0 9 * * 1-5", timezone="Europe/London"))
        due_times(schedule, datetime(2026, 3, 27, tzinfo=UTC), limit=3)
        # Fri 09:00 GMT (09:00Z), then Mon and Tue 09:00 BST (08:00Z)

    Raises:
        ScheduleError: The schedule is not valid (see :func:`check_schedule`).
    """
    return compile_schedule(schedule).times(start, end, limit)


def check_schedule(schedule: schedules_pb2.Schedule) -> None:
    """Raise :class:`ScheduleError` when ``schedule`` cannot be used.

    Checks the kind is set, the time zone exists, an interval is positive and at most
    ``MAX_INTERVAL``, a cron expression has five fields (or is a nickname such as ``@daily``) and
    matches some day, and an RRULE parses, has a usable DTSTART and produces at least one time.
    """
    compile_schedule(schedule)


def compile_schedule(schedule: schedules_pb2.Schedule) -> Recurrence:
    """Parse and check ``schedule`` once, for repeated :meth:`Recurrence.times` calls.

    Raises:
        ScheduleError: The schedule is not valid; its field and description say why.
    """
    kind = schedule.WhichOneof("kind")
    if kind == "interval":
        return _interval(schedule.interval)
    if kind == "cron":
        return _cron(schedule.cron)
    if kind == "rrule":
        return _rrule(schedule.rrule)
    raise ScheduleError("kind", "is required: set one of interval, cron or rrule.")


# --- time zones and wall-clock times ------------------------------------------------------------


def _zone(field: str, name: str) -> zoneinfo.ZoneInfo:
    if not name:
        return zoneinfo.ZoneInfo("UTC")
    if len(name) > MAX_TIMEZONE_CHARACTERS or "\x00" in name:
        raise ScheduleError(field, f"is not a time zone name; {_EXAMPLE_ZONE}.")
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        shown = name if len(name) <= 64 else name[:64] + "..."
        raise ScheduleError(
            field, f"'{shown}' is not a known time zone; {_EXAMPLE_ZONE}."
        ) from None


def _resolve(wall: datetime, zone: tzinfo) -> tuple[datetime, ...]:
    """The instants a naive wall-clock time stands for in ``zone``: one, or two in a repeated hour.

    For a time in a spring-forward gap, the instant is the one shifted forward by the gap (its
    ``fold=0`` reading, with the offset from before the change).
    """
    early = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    late = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    if early < late:
        return (early, late)  # exists twice: first and second pass of the repeated hour
    return (early,)  # exists once, or does not exist (early is then the shifted one)


def _steady(zone: tzinfo, instant: datetime) -> bool:
    """True when the zone's clock does not change within MAX_TRANSITION of ``instant``.

    Then wall-clock order is instant order around it, so the lookback and the wait that
    transitions need can be skipped (the common case, and always in UTC).
    """
    if zone is UTC or getattr(zone, "key", None) == "UTC":
        return True
    try:
        offsets = {
            (instant + shift).astimezone(zone).utcoffset()
            for shift in (-MAX_TRANSITION, timedelta(0), MAX_TRANSITION)
        }
    except OverflowError:
        return False
    return len(offsets) == 1


def _lookback(zone: tzinfo, start: datetime) -> timedelta:
    """How far before ``start``'s wall-clock time a walk must begin to see every time >= start."""
    return timedelta(0) if _steady(zone, start) else MAX_TRANSITION


def _wall(instant: datetime, zone: tzinfo) -> datetime:
    return instant.astimezone(zone).replace(tzinfo=None, fold=0)


def _in_order(walls: Iterable[datetime], zone: tzinfo, both_passes: bool) -> Iterator[datetime]:
    """Turn ascending wall-clock times into ascending, distinct instants.

    Instants can come out of wall-clock order around a transition (a gap time shifted forward
    lands after the real times that follow it; a repeated hour's second pass lands after its
    first), by at most MAX_TRANSITION. So each instant waits in a heap until a later wall-clock
    time proves nothing earlier can still come.
    """
    waiting: list[datetime] = []
    last: datetime | None = None
    for wall in walls:
        instants = _resolve(wall, zone)
        for instant in instants if both_passes else instants[:1]:
            heapq.heappush(waiting, instant)
        # Away from any transition nothing later can come earlier: emit at once. Near one,
        # wait until a wall-clock time MAX_TRANSITION later has been seen.
        settled = instants[0] if _steady(zone, instants[0]) else instants[0] - MAX_TRANSITION
        while waiting and waiting[0] <= settled:
            instant = heapq.heappop(waiting)
            if instant != last:
                last = instant
                yield instant
    while waiting:
        instant = heapq.heappop(waiting)
        if instant != last:
            last = instant
            yield instant


# --- interval ----------------------------------------------------------------------------------


def _interval(message: schedules_pb2.IntervalSchedule) -> Recurrence:
    zone = _zone("interval.timezone", message.timezone)
    duration = message.interval
    if not message.HasField("interval"):
        raise ScheduleError("interval.interval", "is required: the time between two runs.")
    if (duration.seconds < 0 or duration.nanos < 0) and (
        duration.seconds > 0 or duration.nanos > 0
    ):
        raise ScheduleError(
            "interval.interval", "seconds and nanos must have the same sign (a Duration)."
        )
    micros = duration.seconds * 1_000_000 + duration.nanos // 1_000
    if micros <= 0:
        raise ScheduleError(
            "interval.interval",
            f"must be positive (at least 1 microsecond), not {duration.seconds}s "
            f"{duration.nanos}ns.",
        )
    step = timedelta(microseconds=micros)
    if step > MAX_INTERVAL:
        raise ScheduleError(
            "interval.interval", f"must be at most {MAX_INTERVAL.days} days, not {step.days} days."
        )
    if message.HasField("anchor_time"):
        anchor_time = message.anchor_time
        if not (-62_135_596_800 <= anchor_time.seconds <= 253_402_300_799):
            raise ScheduleError(
                "interval.anchor_time", "must lie between 0001-01-01 and 9999-12-31 UTC."
            )
        anchor = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(
            seconds=anchor_time.seconds, microseconds=anchor_time.nanos // 1_000
        )
    else:
        anchor = DEFAULT_ANCHOR.replace(tzinfo=zone).astimezone(UTC)
    if step.days == 0:
        return Recurrence(zone, lambda start: _elapsed_steps(anchor, step, start))
    return Recurrence(zone, lambda start: _day_steps(anchor, step, zone, start))


def _elapsed_steps(anchor: datetime, step: timedelta, start: datetime) -> Iterator[datetime]:
    """anchor + k * step for the first k landing at or after ``start``, then onwards."""
    micros = step // timedelta(microseconds=1)
    behind = (start - anchor) // timedelta(microseconds=1)
    k = -(-behind // micros)  # ceiling division: the first k with anchor + k*step >= start
    for index in itertools.count(k):
        try:
            yield anchor + step * index
        except OverflowError:
            return


def _day_steps(
    anchor: datetime, step: timedelta, zone: tzinfo, start: datetime
) -> Iterator[datetime]:
    """Whole days on the wall clock plus the rest in elapsed time, k steps from the anchor.

    Each time is computed from the anchor (not from the previous time), so a time shifted by a
    daylight-saving gap does not drag the following ones with it.
    """
    local_anchor = anchor.astimezone(zone)
    anchor_wall = local_anchor.replace(tzinfo=None, fold=0)
    days = timedelta(days=step.days)
    rest = step - days

    def at(k: int) -> datetime:
        instants = _resolve(anchor_wall + days * k, zone)
        # In a repeated hour keep the anchor's own pass (so k = 0 is the anchor itself).
        chosen = instants[-1] if local_anchor.fold and len(instants) > 1 else instants[0]
        return chosen + rest * k

    # An estimate from elapsed time, then corrected: wall-clock days differ from elapsed ones
    # by at most a transition, far less than one step of a day or more.
    k = (start - anchor) // step - 1
    try:
        while at(k) >= start:
            k -= 1
        while at(k) < start:
            k += 1
        for index in itertools.count(k):
            yield at(index)
    except OverflowError:
        return


# --- cron --------------------------------------------------------------------------------------


def _cron(message: schedules_pb2.CronSchedule) -> Recurrence:
    from croniter import CroniterError, croniter

    zone = _zone("cron.timezone", message.timezone)
    text = " ".join(message.cron.split())
    day_or = message.day_or if message.HasField("day_or") else True
    if not text:
        raise ScheduleError(
            "cron.cron", "is required: five fields such as '0 9 * * 1-5', or '@daily'."
        )
    if len(text) > MAX_CRON_CHARACTERS or "\x00" in text:
        raise ScheduleError("cron.cron", f"is too long: at most {MAX_CRON_CHARACTERS} characters.")
    expression = _CRON_NICKNAMES.get(text.lower(), text)
    if text.startswith("@") and expression == text:
        raise ScheduleError(
            "cron.cron",
            f"'{text[:64]}' is not a cron nickname; use one of {', '.join(_CRON_NICKNAMES)}.",
        )
    fields = expression.split(" ")
    if len(fields) != 5:
        raise ScheduleError(
            "cron.cron",
            f"'{text[:64]}' has {len(fields)} fields; a cron expression has five: minute, hour, "
            "day of month, month, day of week (e.g. '0 9 * * 1-5').",
        )
    if any(_HASHED_OR_RANDOM.search(field) for field in fields):
        raise ScheduleError(
            "cron.cron",
            f"'{text[:64]}' uses 'H' or 'R' (hashed or random times), which would differ on "
            "every scheduler pass; write the minute and hour out.",
        )
    try:
        probe = croniter(expression, datetime(2000, 1, 1), day_or=day_or)
        probe.get_next(datetime)
    except CroniterError as exc:
        if type(exc).__name__ == "CroniterBadDateError":
            problem = "never matches (no day satisfies it, like February 30)"
        else:
            problem = f"is not a valid cron expression ({exc})"
        raise ScheduleError(
            "cron.cron", f"'{text[:64]}' {problem}; e.g. '0 9 * * 1-5' is 09:00 on weekdays."
        ) from None
    every_hour = probe.expanded[1] == ["*"]

    def instants_from(start: datetime) -> Iterator[datetime]:
        # croniter walks the naive wall clock and answers strictly after its start.
        begin = _wall(start, zone) - _lookback(zone, start) - timedelta(seconds=1)
        walker = croniter(expression, begin.replace(microsecond=0), day_or=day_or)

        def walls() -> Iterator[datetime]:
            while True:
                try:
                    wall: datetime = walker.get_next(datetime)
                except (CroniterError, OverflowError):
                    return
                yield wall

        return _in_order(walls(), zone, both_passes=every_hour)

    return Recurrence(zone, instants_from)


# --- rrule -------------------------------------------------------------------------------------


def _rrule(message: schedules_pb2.RRuleSchedule) -> Recurrence:
    from dateutil import rrule as dateutil_rrule

    text = message.rrule.strip()
    if not text:
        raise ScheduleError(
            "rrule.rrule", "is required: a rule such as 'FREQ=WEEKLY;BYDAY=MO,WE;BYHOUR=9'."
        )
    if len(text) > MAX_RRULE_CHARACTERS or "\x00" in text:
        raise ScheduleError(
            "rrule.rrule", f"is too long: at most {MAX_RRULE_CHARACTERS} characters."
        )
    named_zone = _zone("rrule.timezone", message.timezone)
    try:
        rules: Any = dateutil_rrule.rrulestr(
            text,
            dtstart=DEFAULT_ANCHOR,
            forceset=True,
            unfold=True,
            tzids=_tzid,
        )
        first = next(iter(rules), None)
    except (ValueError, TypeError, KeyError, OverflowError) as exc:
        raise ScheduleError(
            "rrule.rrule",
            f"is not a valid RFC 5545 recurrence rule ({str(exc)[:200]}); e.g. "
            "'FREQ=WEEKLY;BYDAY=MO,WE;BYHOUR=9;BYMINUTE=0', optionally after a "
            "'DTSTART:20260105T090000' line.",
        ) from None
    if first is None:
        raise ScheduleError(
            "rrule.rrule",
            "produces no times at all (check COUNT, UNTIL and EXDATE against DTSTART).",
        )
    zone = named_zone
    if first.tzinfo is not None:
        zone = _dtstart_zone(first, message.timezone, named_zone)
    aware = first.tzinfo is not None

    def instants_from(start: datetime) -> Iterator[datetime]:
        begin = _wall(start, zone) - _lookback(zone, start)
        after = begin.replace(tzinfo=zone) if aware else begin

        def walls() -> Iterator[datetime]:
            try:
                for occurrence in _skipped_ahead(rules, after).xafter(after, inc=True):
                    if aware:
                        # Same zone: kept as written (even a time inside a gap); others convert.
                        occurrence = occurrence.astimezone(zone)
                    yield occurrence.replace(tzinfo=None)
            except OverflowError:
                return

        return _in_order(walls(), zone, both_passes=False)

    return Recurrence(zone, instants_from)


def _skipped_ahead(rules: Any, after: datetime) -> Any:
    """``rules`` with each rule's DTSTART moved forward by whole periods to just before ``after``.

    dateutil finds the first time after a moment by generating every time from DTSTART on: a
    minutely rule from the default 2020 DTSTART is three million steps on every scheduler pass.
    Moving DTSTART by a whole number of periods (INTERVAL x FREQ, counted on the wall clock as
    dateutil counts them) changes none of the times from there on, for the frequencies whose
    periods have a fixed length. Rules with COUNT (which counts from the real DTSTART) and
    monthly or yearly rules (a few hundred steps at most) are left as they are. The rule set's
    parts are read from dateutil's attributes; without them the rules are used unchanged.
    """
    from dateutil import rrule as dateutil_rrule

    parts: list[Any] = [
        getattr(rules, name, None) for name in ("_rrule", "_rdate", "_exrule", "_exdate")
    ]
    if any(part is None for part in parts):
        return rules
    included, dates, excluded, exdates = parts
    skipped = dateutil_rrule.rruleset()
    for rule in included:
        skipped.rrule(_rule_skipped_ahead(rule, after))
    for moment in dates:
        skipped.rdate(moment)
    for rule in excluded:
        skipped.exrule(_rule_skipped_ahead(rule, after))
    for moment in exdates:
        skipped.exdate(moment)
    return skipped


def _rule_skipped_ahead(rule: Any, after: datetime) -> Any:
    from dateutil import rrule as dateutil_rrule

    units = {
        dateutil_rrule.WEEKLY: timedelta(weeks=1),
        dateutil_rrule.DAILY: timedelta(days=1),
        dateutil_rrule.HOURLY: timedelta(hours=1),
        dateutil_rrule.MINUTELY: timedelta(minutes=1),
        dateutil_rrule.SECONDLY: timedelta(seconds=1),
    }
    unit = units.get(getattr(rule, "_freq", None))
    dtstart = getattr(rule, "_dtstart", None)
    if unit is None or dtstart is None or getattr(rule, "_count", 0) is not None:
        return rule
    period = unit * int(getattr(rule, "_interval", 1))
    # Both naive, or both in the rule's zone: the difference is on the wall clock, like dateutil's.
    periods = (after.replace(tzinfo=dtstart.tzinfo) - dtstart) // period - 1
    if periods <= 0:
        return rule
    return rule.replace(dtstart=dtstart + period * periods)


def _tzid(name: str) -> zoneinfo.ZoneInfo:
    return _zone("rrule.rrule", name)


def _dtstart_zone(
    first: datetime, timezone_name: str, named_zone: zoneinfo.ZoneInfo
) -> zoneinfo.ZoneInfo:
    """The zone of a DTSTART with TZID (or in UTC); ``timezone``, if set, must agree."""
    if isinstance(first.tzinfo, zoneinfo.ZoneInfo):
        own = first.tzinfo
    elif first.utcoffset() == timedelta(0):
        own = zoneinfo.ZoneInfo("UTC")
    else:
        raise ScheduleError(
            "rrule.rrule",
            "DTSTART must be a local time ('DTSTART:20260105T090000', read in timezone), UTC "
            "('...T090000Z') or carry a TZID ('DTSTART;TZID=Europe/London:20260105T090000').",
        )
    if timezone_name and own.key != named_zone.key:
        raise ScheduleError(
            "rrule.timezone",
            f"'{timezone_name}' disagrees with the rule's DTSTART, which is in {own.key}; give "
            "the time zone once (a local DTSTART with timezone set, or a DTSTART with TZID).",
        )
    return own

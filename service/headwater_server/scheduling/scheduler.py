"""The scheduler: keeps the upcoming runs of every active deployment schedule created ahead.

Every ``HEADWATER_SCHEDULER_LOOP_SECONDS`` a pass pages through the active schedules of
deployments that are not paused and, for each, works out the runs it should have ahead (as
Prefect's scheduler does: the due times from now, at most ``max_runs`` of them and none beyond
``max_ahead``, but always the first ``min_runs`` and every one within ``min_ahead``). Runs that
exist already are not created again, and that holds across service replicas too: each run's
idempotency key is ``"scheduled <schedule id> <time>"``, unique per deployment in the database,
and the insert skips keys that exist (``create_scheduled_runs``, deployment storage). So two
replicas racing over one PostgreSQL create every (schedule, time) exactly once, without a lock.

Cheap passes, for thousands of schedules every few seconds:

- Due times are computed once per schedule version and extended as time moves on (a schedule
  whose definition changed gets its times anew); the computing runs off the event loop.
- Each schedule row remembers how far ahead its runs exist (``scheduled_until``, moved on in
  the transaction that creates them), so a pass reads the schedules only, not their runs, and
  inserts just the runs after that mark: as time moves on, the few new ones. Changing, turning
  off or removing a schedule, and pausing or deleting its deployment, delete the runs it
  created ahead and clear its mark (deployment storage); the next pass then offers every run
  it wants, and the insert skips those that exist. A run deleted one by one
  (``DeleteFlowRun``) is not created again, as in Prefect once its time was scheduled.

Runs due while no scheduler ran (the service was down) are not created afterwards, as in
Prefect: a schedule's next run is its next due time from now.
"""

from __future__ import annotations

import asyncio
import logging
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from headwater_server.application.backend import Backend
from headwater_server.housekeeping import repeat_forever
from headwater_server.scheduling.schedules import Recurrence, ScheduleError, compile_schedule
from headwater_server.storage import convert
from headwater_server.storage._deployment_runs import ScheduledRun, ScheduleToFill

__all__ = ["FillPolicy", "Scheduler"]

logger = logging.getLogger("headwater_server.scheduling")

# Schedules read per page, and runs inserted per transaction (short writes, so on SQLite no
# other writer waits long behind the scheduler).
PAGE_SIZE = 500
INSERT_CHUNK = 1_000


@dataclass(frozen=True)
class FillPolicy:
    """How many runs each schedule keeps created ahead (from the server settings)."""

    min_runs: int = 3
    max_runs: int = 100
    min_ahead: timedelta = timedelta(hours=1)
    max_ahead: timedelta = timedelta(days=100)


@dataclass
class _Known:
    """The due times computed for one version of one schedule, extended as time passes."""

    version: tuple[int, bytes]
    recurrence: Recurrence | None
    times: list[datetime] = field(default_factory=list)
    frontier: datetime | None = None


@dataclass
class Scheduler:
    """One service's scheduler; :meth:`run_once` is a pass, :meth:`run_forever` the loop."""

    backend: Backend
    policy: FillPolicy = field(default_factory=FillPolicy)
    _known: dict[str, _Known] = field(default_factory=dict)

    async def run_forever(self, interval_seconds: float) -> None:
        """Make a pass now and then every ``interval_seconds``, until cancelled."""

        async def one_pass() -> None:
            created = await self.run_once()
            if created:
                logger.info("Scheduled %d upcoming flow runs", created)

        await repeat_forever("Scheduling runs of deployments", interval_seconds, one_pass)

    async def run_once(self, now: datetime | None = None) -> int:
        """Create the missing upcoming runs of every active schedule; returns how many."""
        db = self.backend.db
        now = now or datetime.now(UTC)
        created = 0
        seen: set[str] = set()
        after = ""
        while True:
            page = await db.run(
                db.repository.list_schedules_to_fill, after_schedule_id=after, limit=PAGE_SIZE
            )
            seen.update(schedule.schedule_id for schedule in page)
            created += await self._fill(page, now)
            if len(page) < PAGE_SIZE:
                break
            after = page[-1].schedule_id
        for gone in self._known.keys() - seen:  # removed, turned off or paused
            del self._known[gone]
        return created

    async def _fill(self, page: Sequence[ScheduleToFill], now: datetime) -> int:
        if not page:
            return 0
        db = self.backend.db
        missing = await asyncio.to_thread(self._missing_runs, page, now)
        created = 0
        for start in range(0, len(missing), INSERT_CHUNK):
            runs = await db.run(
                db.repository.create_scheduled_runs, missing[start : start + INSERT_CHUNK]
            )
            for run in runs:
                self.backend.hub.notify(run.id, run.last_sequence)
            created += len(runs)
        return created

    def _missing_runs(self, page: Sequence[ScheduleToFill], now: datetime) -> list[ScheduledRun]:
        """The wanted runs after each schedule's ``scheduled_until`` (on a worker thread), each
        schedule's in time order, as ``create_scheduled_runs`` needs them."""
        missing: list[ScheduledRun] = []
        for schedule in page:
            wanted = self._wanted(schedule, now)
            if schedule.scheduled_until_us is not None:
                until = convert.us_to_datetime(schedule.scheduled_until_us)
                wanted = wanted[bisect_right(wanted, until) :]
            missing.extend(ScheduledRun(schedule, moment) for moment in wanted)
        return missing

    def _wanted(self, schedule: ScheduleToFill, now: datetime) -> list[datetime]:
        policy = self.policy
        max_runs = schedule.max_scheduled_runs or policy.max_runs
        known = self._times(schedule, now, _later(now, policy.max_ahead), max_runs)
        # Every time within ``min_ahead``, but at least ``min_runs`` and at most ``max_runs``.
        within = bisect_right(known, _later(now, policy.min_ahead))
        return known[: min(max(within, policy.min_runs), max_runs)]

    def _times(
        self, schedule: ScheduleToFill, now: datetime, end: datetime, max_runs: int
    ) -> list[datetime]:
        """Due times in [now, end), at least ``max_runs`` of them when there are that many."""
        version = (schedule.update_time_us, schedule.schedule.SerializeToString())
        known = self._known.get(schedule.schedule_id)
        if known is None or known.version != version:
            try:
                recurrence: Recurrence | None = compile_schedule(schedule.schedule)
            except ScheduleError as exc:
                logger.error(
                    "Schedule %s of deployment %s/%s cannot be used (%s); it creates no runs "
                    "until it is fixed.",
                    schedule.schedule_id,
                    schedule.flow_name,
                    schedule.deployment_name,
                    exc,
                )
                recurrence = None
            known = _Known(version, recurrence)
            self._known[schedule.schedule_id] = known
        if known.recurrence is None:
            return []
        # Invariant: ``times`` holds every due time in [now, frontier), and only those.
        del known.times[: bisect_left(known.times, now)]
        frontier = max(known.frontier or now, now)
        need = max_runs - len(known.times)
        if need > 0 and frontier < end:
            more = known.recurrence.times(frontier, end, need)
            known.times.extend(more)
            frontier = more[-1] + timedelta(microseconds=1) if len(more) == need else end
        known.frontier = frontier
        return known.times


def _later(moment: datetime, delta: timedelta) -> datetime:
    """``moment + delta``, or the last representable time when that is beyond year 9999."""
    try:
        return moment + delta
    except OverflowError:
        return datetime.max.replace(tzinfo=UTC)

"""The scheduler's view of the runs its schedules already have ahead."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from sqlalchemy import func, select

from headwater_server.storage._base import RepositoryBase
from headwater_server.storage.schema import flow_runs
from headwater_server.storage.values import SCHEDULED_KEY_PREFIX

__all__ = ["FutureRuns", "ScheduleRunsMixin"]

_UUID_CHARACTERS = 36


class FutureRuns(NamedTuple):
    """How many runs a schedule has due at or after a moment, and the last one's time."""

    runs: int
    last_time_us: int


class ScheduleRunsMixin(RepositoryBase):
    """One read per page of schedules, so the scheduler inserts only where runs are missing."""

    def future_schedule_runs(
        self, deployment_ids: Sequence[str], from_us: int
    ) -> dict[str, FutureRuns]:
        """Per schedule id: its runs (any state) due at or after ``from_us``.

        Runs a schedule created carry the idempotency key ``"scheduled <schedule id> <time>"``
        (:func:`~headwater_server.storage.values.scheduled_key`); the (deployment id,
        idempotency key) index finds them.
        """
        if not deployment_ids:
            return {}
        key = flow_runs.c.idempotency_key
        schedule_id = func.substr(key, len(SCHEDULED_KEY_PREFIX) + 1, _UUID_CHARACTERS)
        with self._read() as conn:
            rows = conn.execute(
                select(
                    schedule_id.label("schedule_id"),
                    func.count().label("runs"),
                    func.max(flow_runs.c.expected_start_time).label("last_time"),
                )
                .where(
                    flow_runs.c.deployment_id.in_(sorted(set(deployment_ids))),
                    key.is_not(None),
                    func.substr(key, 1, len(SCHEDULED_KEY_PREFIX)) == SCHEDULED_KEY_PREFIX,
                    flow_runs.c.expected_start_time >= from_us,
                )
                .group_by(schedule_id)
            ).all()
        return {row.schedule_id: FutureRuns(row.runs, row.last_time) for row in rows}

"""The read behind late-run marking: SCHEDULED flow runs whose time has long passed."""

from __future__ import annotations

from typing import NamedTuple

from sqlalchemy import select

from headwater_server.orchestration import rules
from headwater_server.storage._base import RepositoryBase
from headwater_server.storage.schema import flow_runs

__all__ = ["LateRun", "LateRunsMixin"]


class LateRun(NamedTuple):
    """A run to mark Late: its state id (for an optimistic proposal) and its scheduled time."""

    flow_run_id: str
    state_id: str
    scheduled_time_us: int


class LateRunsMixin(RepositoryBase):
    """Finding runs that should have started by now."""

    def find_late_flow_runs(self, scheduled_before_us: int, limit: int) -> list[LateRun]:
        """Up to ``limit`` flow runs in the plain Scheduled state, due before the given time.

        Only the state named "Scheduled" counts: a run already Late stays as it is, and an
        AwaitingRetry run belongs to the engine that waits on it (its lateness, if that engine
        died, is crash detection's business).
        """
        with self._read() as conn:
            rows = conn.execute(
                select(flow_runs.c.id, flow_runs.c.state_id, flow_runs.c.scheduled_time)
                .where(
                    flow_runs.c.state_type == rules.SCHEDULED,
                    flow_runs.c.state_name == rules.default_state_name(rules.SCHEDULED),
                    flow_runs.c.scheduled_time < scheduled_before_us,
                )
                .order_by(flow_runs.c.scheduled_time)
                .limit(limit)
            ).all()
        return [LateRun(row.id, row.state_id or "", row.scheduled_time) for row in rows]

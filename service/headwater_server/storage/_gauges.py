"""What the service's gauges read (`headwater_server.metrics`): runs by state, the oldest due run.

Two small aggregate reads, made when a metrics reader collects (a Prometheus scrape, an OTLP
export), never on a request's path.
"""

from __future__ import annotations

from headwater.v1 import states_pb2
from sqlalchemy import func, select

from headwater_server.storage import convert
from headwater_server.storage._base import RepositoryBase
from headwater_server.storage.schema import flow_runs

__all__ = ["GaugesMixin"]

_COUNTS = select(flow_runs.c.state_type, func.count()).group_by(flow_runs.c.state_type)


class GaugesMixin(RepositoryBase):
    """Aggregate reads for the metrics gauges."""

    def flow_run_counts(self) -> dict[int, int]:
        """How many flow runs are in each state type (``StateType`` numbers)."""
        with self._read() as conn:
            return {int(state): int(count) for state, count in conn.execute(_COUNTS).all()}

    def oldest_due_scheduled_time(self) -> int | None:
        """The scheduled time (µs) of the longest-waiting due SCHEDULED run of a deployment.

        Such a run is one a worker or served flow should have picked up: how long it has
        waited is how far behind the service's runners are (the "scheduler lag" gauge).
        """
        statement = select(func.min(flow_runs.c.scheduled_time)).where(
            flow_runs.c.state_type == states_pb2.STATE_TYPE_SCHEDULED,
            flow_runs.c.deployment_id.is_not(None),
            flow_runs.c.scheduled_time <= convert.now_us(),
        )
        with self._read() as conn:
            value = conn.execute(statement).scalar()
        return int(value) if value is not None else None

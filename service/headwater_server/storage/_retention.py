"""Expiring old data: finished runs with everything they own, and old log lines.

Each method removes one bounded batch and returns how many rows of its kind it removed, so the
housekeeping loop (:func:`headwater_server.housekeeping.expire_old_data_forever`) calls it
again until a batch comes back short. The work is cut into short transactions (log lines and
task runs of a batch of flow runs go first, a chunk at a time, then the flow runs with their
state history) so that on SQLite, whose writers take turns, no writer waits behind one long
delete, and on PostgreSQL no transaction holds thousands of row locks.

Only runs in a final state are expired (the final-state condition is repeated in every delete,
so a run forced out of its final state meanwhile is left whole). What a flow run owns goes with
it: its task runs and their states, its own states, its log lines. Its subflow runs are runs of
their own, expired by their own age (their parent link becomes empty).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Table, delete, select

from headwater_server.orchestration.rules import TERMINAL_TYPES
from headwater_server.storage._base import RepositoryBase
from headwater_server.storage.schema import flow_runs, logs, task_runs

__all__ = ["LOG_CHUNK", "TASK_RUN_CHUNK", "RetentionMixin"]

# Rows deleted per transaction for the bulky children: a few milliseconds of writing each.
LOG_CHUNK = 5_000
TASK_RUN_CHUNK = 1_000

_FINAL = sorted(TERMINAL_TYPES)


class RetentionMixin(RepositoryBase):
    """Batched deletes of finished runs and old log lines."""

    def expire_flow_runs(self, finished_before_us: int, limit: int) -> int:
        """Delete up to ``limit`` flow runs that reached a final state before the given time.

        With each go its task runs (and their states), its state history and its log lines.
        Oldest first. Returns the number of flow runs deleted.
        """
        with self._read() as conn:
            ids = list(
                conn.execute(
                    select(flow_runs.c.id)
                    .where(*_finished(flow_runs, finished_before_us))
                    .order_by(flow_runs.c.state_time)
                    .limit(limit)
                ).scalars()
            )
        if not ids:
            return 0
        still_finished = select(flow_runs.c.id).where(
            flow_runs.c.id.in_(ids), *_finished(flow_runs, finished_before_us)
        )
        self._delete_in_chunks(logs, logs.c.flow_run_id.in_(still_finished), LOG_CHUNK)
        self._delete_in_chunks(
            task_runs, task_runs.c.flow_run_id.in_(still_finished), TASK_RUN_CHUNK
        )
        with self._write() as conn:
            deleted: int = conn.execute(
                delete(flow_runs).where(
                    flow_runs.c.id.in_(ids), *_finished(flow_runs, finished_before_us)
                )
            ).rowcount
        return deleted

    def expire_task_runs_outside_flows(self, finished_before_us: int, limit: int) -> int:
        """Delete up to ``limit`` task runs called outside any flow that finished before then.

        Their states and log lines go with them; task runs of flow runs go with their flow run.
        """
        with self._read() as conn:
            ids = list(
                conn.execute(
                    select(task_runs.c.id)
                    .where(
                        task_runs.c.flow_run_id.is_(None),
                        *_finished(task_runs, finished_before_us),
                    )
                    .order_by(task_runs.c.state_time)
                    .limit(limit)
                ).scalars()
            )
        if not ids:
            return 0
        with self._write() as conn:
            deleted: int = conn.execute(
                delete(task_runs).where(
                    task_runs.c.id.in_(ids), *_finished(task_runs, finished_before_us)
                )
            ).rowcount
        # Log lines of a task run outside any flow have no flow run to cascade from.
        self._delete_in_chunks(
            logs,
            logs.c.flow_run_id.is_(None)
            & logs.c.task_run_id.in_(ids)
            & ~logs.c.task_run_id.in_(select(task_runs.c.id).where(task_runs.c.id.in_(ids))),
            LOG_CHUNK,
        )
        return deleted

    def expire_logs(self, logged_before_us: int, limit: int) -> int:
        """Delete up to ``limit`` log lines logged before the given time, oldest first."""
        return self._delete_chunk(logs, logs.c.log_time < logged_before_us, limit, logs.c.log_time)

    def _delete_in_chunks(self, table: Table, condition: ColumnElement[bool], chunk: int) -> int:
        """Delete every row matching ``condition``, ``chunk`` rows per transaction."""
        total = 0
        while True:
            deleted = self._delete_chunk(table, condition, chunk)
            total += deleted
            if deleted < chunk:
                return total

    def _delete_chunk(
        self,
        table: Table,
        condition: ColumnElement[bool],
        chunk: int,
        order: ColumnElement[Any] | None = None,
    ) -> int:
        chosen = select(table.c.id).where(condition).limit(chunk)
        if order is not None:
            chosen = chosen.order_by(order)
        with self._write() as conn:
            deleted: int = conn.execute(
                delete(table).where(table.c.id.in_(chosen.scalar_subquery()))
            ).rowcount
        return deleted


def _finished(table: Table, before_us: int) -> tuple[ColumnElement[bool], ...]:
    """In a final state entered before ``before_us`` (state_time is when that state began)."""
    return (table.c.state_type.in_(_FINAL), table.c.state_time < before_us)

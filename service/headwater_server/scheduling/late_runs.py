"""Marking late runs: a SCHEDULED run long past its time becomes Late, as in Prefect.

Late is still a SCHEDULED state (it keeps the scheduled time, and a worker or engine may still
start the run), but its name tells people and tools that nothing picked the run up in time:
no worker is polling its queue, or all are busy. The mark is an ordinary state proposal through
the application layer, so watchers see it as an event, and it names the state it replaces
(``expected_state_id``): a run that started meanwhile, or that another service replica marked
first, is left alone.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import grpc
from headwater.v1 import flow_runs_pb2, states_pb2

from headwater_server import errors
from headwater_server.application import flow_runs
from headwater_server.application.backend import Backend
from headwater_server.housekeeping import repeat_forever
from headwater_server.storage import convert

__all__ = ["LATE", "mark_late_runs", "mark_late_runs_forever"]

LATE = "Late"
# Runs marked per pass; a longer backlog is worked off over the following passes.
BATCH = 500

logger = logging.getLogger("headwater_server.scheduling")


async def mark_late_runs(backend: Backend, after_seconds: float, batch: int = BATCH) -> int:
    """Mark flow runs still Scheduled ``after_seconds`` past their time; returns how many."""
    db = backend.db
    cutoff = convert.now_us() - round(after_seconds * 1_000_000)
    late = await db.run(db.repository.find_late_flow_runs, cutoff, batch)
    marked = 0
    for run in late:
        state = states_pb2.State(
            type=states_pb2.STATE_TYPE_SCHEDULED,
            name=LATE,
            message=f"Not started {_duration(after_seconds)} after its scheduled time.",
        )
        convert.set_timestamp(state.scheduled_time, run.scheduled_time_us)
        try:
            response = await flow_runs.set_flow_run_state(
                backend,
                flow_runs_pb2.SetFlowRunStateRequest(
                    flow_run_id=run.flow_run_id, state=state, expected_state_id=run.state_id
                ),
            )
        except errors.ServiceError as exc:
            if exc.code != grpc.StatusCode.NOT_FOUND:  # deleted meanwhile: nothing to mark
                raise
            continue
        if response.result.decision == states_pb2.DECISION_ACCEPT:
            marked += 1
    return marked


async def mark_late_runs_forever(
    backend: Backend, after_seconds: float, interval_seconds: float
) -> None:
    """Run :func:`mark_late_runs` now and then every ``interval_seconds``, until cancelled."""

    async def mark() -> None:
        marked = await mark_late_runs(backend, after_seconds)
        if marked:
            logger.info("Marked %d flow runs Late", marked)

    await repeat_forever("Marking late runs", interval_seconds, mark)


def _duration(seconds: float) -> str:
    return str(timedelta(seconds=round(seconds))) if seconds >= 60 else f"{seconds:g} s"

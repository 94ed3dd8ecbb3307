"""Holding a proposal that waits for a concurrency slot until a slot frees.

A run whose limit is full is answered WAIT (AwaitingConcurrencySlot). Rather than have every
engine poll with a sleep, the service keeps that answer back until a slot of one of the run's
limits is freed (the hub hears of it the moment the freeing commit lands, on this server or,
on PostgreSQL, on another one), or for at most :data:`HOLD_SECONDS` (or the server's wake
re-check period, if longer); the answer says to propose again at once. So a freed slot
starts a waiter within one round trip, and a waiting engine costs one proposal per hold, not
one per poll. The proposal itself is an ordinary transaction, committed before the hold: a
client that disconnects meanwhile loses nothing, and its retry (same transition_id) gets the
same WAIT back.

Why not re-propose on the engine's behalf inside the hold: the proposal carries the engine's
transition_id, whose first answer is stored; a second application under the same id would
break the rule that a retried proposal gets the first answer.
"""

from __future__ import annotations

from collections.abc import Sequence

from headwater.v1 import flow_runs_pb2, states_pb2, task_runs_pb2

from headwater_server.application.backend import Backend, time_remaining
from headwater_server.orchestration import rules
from headwater_server.storage._concurrency import deployment_key, tag_key

__all__ = ["HOLD_SECONDS", "hold_if_waiting_for_slot", "slot_mark"]

#: How long a WAIT for a slot is held at most (or the server's wake re-check period, if longer).
#: A slot freed by another process that cannot notify this server (SQLite) is noticed when the
#: hold ends and the engine proposes again, so this bounds that delay; one proposal per waiting
#: run per hold is the price.
HOLD_SECONDS = 5.0
#: Answer this long before the caller's deadline, so a long hold never ends in DEADLINE_EXCEEDED.
_DEADLINE_MARGIN_SECONDS = 0.2

Response = (
    flow_runs_pb2.SetFlowRunStateResponse
    | task_runs_pb2.SetTaskRunStateResponse
    | task_runs_pb2.CreateTaskRunResponse
)


def slot_mark(backend: Backend) -> int:
    """Taken before a proposal, so a slot freed while it runs is not missed by the hold."""
    return backend.hub.slots.mark()


async def hold_if_waiting_for_slot(backend: Backend, response: Response, mark: int) -> None:
    """Keep a WAIT for a slot until one of the run's limits frees a slot (or the hold ends)."""
    result = response.result
    if (
        result.decision != states_pb2.DECISION_WAIT
        or result.state.type != states_pb2.STATE_TYPE_SCHEDULED
        or result.state.name != rules.AWAITING_CONCURRENCY_SLOT
    ):
        return
    timeout = max(HOLD_SECONDS, backend.hub.poll_interval)
    remaining = time_remaining.get()
    if remaining is not None:
        timeout = min(timeout, remaining - _DEADLINE_MARGIN_SECONDS)
    await backend.hub.slots.wait(_keys(response), mark, timeout)


def _keys(response: Response) -> Sequence[str]:
    if isinstance(response, flow_runs_pb2.SetFlowRunStateResponse):
        return [deployment_key(response.flow_run.deployment_id)]
    return [tag_key(tag) for tag in response.task_run.tags]

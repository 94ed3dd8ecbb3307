"""Reading a flow run's event log: the ListFlowRunEvents long poll and the WatchFlowRun stream.

Both read stored events by sequence and, when there is nothing newer, wait on the event hub,
which wakes them on a write through this server or (PostgreSQL, LISTEN/NOTIFY) another one, and
re-checks storage every ``wake_recheck_seconds`` as a last resort. Storage is the only source
of events, so a watcher never sees an event that is not stored, and resuming from a sequence
never skips one.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from headwater.v1 import flow_runs_pb2

from headwater_server import errors
from headwater_server.application import checks
from headwater_server.application.backend import Backend, time_remaining

MAX_WAIT_SECONDS = 60.0
# A long poll answers this long before the caller's deadline, so the (empty) answer arrives.
_DEADLINE_MARGIN_SECONDS = 0.2
# A watch wakes at least this often to notice a shutdown or a cancelled client.
_WATCH_WAKE_SECONDS = 15.0
_PAGE = checks.MAX_PAGE_SIZE


async def _read_events(
    backend: Backend, flow_run_id: str, after_sequence: int, own_states_only: bool
) -> flow_runs_pb2.ListFlowRunEventsResponse:
    request = flow_runs_pb2.ListFlowRunEventsRequest(
        flow_run_id=flow_run_id,
        after_sequence=after_sequence,
        page_size=_PAGE,
        flow_run_states_only=own_states_only,
    )
    return await backend.db.run(backend.db.repository.list_flow_run_events, request)


async def list_flow_run_events(
    backend: Backend, request: flow_runs_pb2.ListFlowRunEventsRequest
) -> flow_runs_pb2.ListFlowRunEventsResponse:
    """Return events after a sequence; with ``wait``, hold the call until there is one."""
    flow_run_id = checks.uuid("flow_run_id", request.flow_run_id)
    checks.non_negative("after_sequence", request.after_sequence)
    checks.page_size("page_size", request.page_size)
    wait = 0.0
    if request.HasField("wait"):
        wait = min(checks.non_negative_duration("wait", request.wait), MAX_WAIT_SECONDS)
        remaining = time_remaining.get()
        if remaining is not None:
            wait = min(wait, max(remaining - _DEADLINE_MARGIN_SECONDS, 0.0))
    repository = backend.db.repository
    response = await backend.db.run(repository.list_flow_run_events, request)
    deadline = time.monotonic() + wait
    # Numbers up to last_sequence without an event were a deleted task run's: wait past them.
    after = max(request.after_sequence, response.last_sequence)
    while not response.events and not response.finished and not backend.stopping.is_set():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        if not await backend.hub.wait_for_change(
            flow_run_id, after, remaining, request.flow_run_states_only
        ):
            break
        response = await backend.db.run(repository.list_flow_run_events, request)
    return response


def _shutting_down(flow_run_id: str, cursor: int) -> errors.ServiceError:
    return errors.unavailable(
        f"The server is shutting down while watching flow run '{flow_run_id}'. Reconnect and "
        f"watch again with after_sequence={cursor} to continue without a gap."
    )


async def watch_flow_run(
    backend: Backend,
    request: flow_runs_pb2.WatchFlowRunRequest,
) -> AsyncIterator[flow_runs_pb2.WatchFlowRunResponse]:
    """Stream a snapshot, the stored events, a caught-up marker, then live events.

    The stream ends OK once the run is in a terminal state and every event up to it was sent.
    """
    response_type = flow_runs_pb2.WatchFlowRunResponse
    flow_run_id = checks.uuid("flow_run_id", request.flow_run_id)
    cursor = checks.non_negative("after_sequence", request.after_sequence)
    snapshot = await backend.db.run(
        backend.db.repository.get_flow_run,
        flow_runs_pb2.GetFlowRunRequest(flow_run_id=flow_run_id),
    )
    yield response_type(snapshot=snapshot.flow_run)

    caught_up = False
    while True:
        page = await _read_events(backend, flow_run_id, cursor, request.flow_run_states_only)
        for event in page.events:
            yield response_type(event=event)
            cursor = event.sequence
        if len(page.events) == _PAGE:
            continue  # more stored events to replay or deliver before waiting
        # Every stored event was read; numbers without one were a deleted task run's.
        cursor = max(cursor, page.last_sequence)
        if not caught_up:
            caught_up = True
            yield response_type(caught_up=flow_runs_pb2.CaughtUp(last_sequence=cursor))
        if page.finished:
            return
        while not await backend.hub.wait_for_change(
            flow_run_id, cursor, _WATCH_WAKE_SECONDS, request.flow_run_states_only
        ):
            if backend.stopping.is_set():
                break
        if backend.stopping.is_set():
            raise _shutting_down(flow_run_id, cursor)

"""Application operations check the request, write to storage, then publish, in that order.

Real SQLite and PostgreSQL databases and a real event hub, called the way the servicers, the
engine stream and future in-process callers (a scheduler, workers) call them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from headwater.v1 import flow_runs_pb2, flows_pb2, logs_pb2, states_pb2, task_runs_pb2
from headwater_server.application import engine, flow_runs, flows, logs, task_runs
from headwater_server.application.backend import Backend
from headwater_server.errors import ServiceError
from headwater_server.events import EventHub
from headwater_server.storage.database import Database

RUNNING = states_pb2.STATE_TYPE_RUNNING


@pytest.fixture
async def backend(database_url: str) -> AsyncIterator[Backend]:
    db = await asyncio.to_thread(Database.open, database_url)

    async def last_sequence(flow_run_id: str) -> int:
        progress = await db.run(db.repository.get_flow_run_progress, flow_run_id)
        return progress[0]

    try:
        yield Backend(db=db, hub=EventHub(last_sequence))
    finally:
        await asyncio.to_thread(db.close)


async def _history(backend: Backend, run_id: str) -> list[int]:
    """The state types stored for the run, read straight from storage."""
    request = flow_runs_pb2.ListFlowRunEventsRequest(flow_run_id=run_id)
    page = await backend.db.run(backend.db.repository.list_flow_run_events, request)
    return [event.state_changed.type for event in page.events]


async def _announced(backend: Backend, run_id: str, after: int) -> bool:
    """Whether the hub has heard of an event after ``after`` (without waiting or polling)."""
    return await backend.hub.wait_for_change(run_id, after, timeout=0)


async def test_a_watcher_woken_by_a_proposal_finds_it_stored(backend: Backend) -> None:
    created = await flow_runs.create_flow_run(
        backend, flow_runs_pb2.CreateFlowRunRequest(flow_name="etl")
    )
    run_id = created.flow_run.id
    assert await _announced(backend, run_id, 0)

    async def watch() -> list[int]:
        assert await backend.hub.wait_for_change(run_id, 1, timeout=30)
        return await _history(backend, run_id)

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(0)  # the watcher is waiting on the hub now
    request = flow_runs_pb2.SetFlowRunStateRequest(
        flow_run_id=run_id, state=states_pb2.State(type=RUNNING)
    )
    answer = await flow_runs.set_flow_run_state(backend, request)
    assert answer.result.decision == states_pb2.DECISION_ACCEPT
    assert await watcher == [states_pb2.STATE_TYPE_PENDING, RUNNING]


async def test_a_refused_request_writes_and_announces_nothing(backend: Backend) -> None:
    created = await flow_runs.create_flow_run(
        backend, flow_runs_pb2.CreateFlowRunRequest(flow_name="etl")
    )
    run_id = created.flow_run.id
    bad = flow_runs_pb2.SetFlowRunStateRequest(
        flow_run_id=run_id, state=states_pb2.State(type=RUNNING), transition_id="nope"
    )
    with pytest.raises(ServiceError) as caught:
        await flow_runs.set_flow_run_state(backend, bad)
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.violations[0].field == "transition_id"
    assert not await _announced(backend, run_id, 1)
    assert await _history(backend, run_id) == [states_pb2.STATE_TYPE_PENDING]


async def test_cancel_and_delete_reach_the_watchers(backend: Backend) -> None:
    created = await flow_runs.create_flow_run(
        backend, flow_runs_pb2.CreateFlowRunRequest(flow_name="etl")
    )
    run_id = created.flow_run.id
    cancelled = await flow_runs.cancel_flow_run(
        backend, flow_runs_pb2.CancelFlowRunRequest(flow_run_id=run_id)
    )
    assert cancelled.flow_run.state.type == states_pb2.STATE_TYPE_CANCELLED
    assert await _announced(backend, run_id, 1)

    waiter = asyncio.create_task(backend.hub.wait_for_change(run_id, 99, timeout=30))
    await asyncio.sleep(0)
    await flow_runs.delete_flow_run(backend, flow_runs_pb2.DeleteFlowRunRequest(flow_run_id=run_id))
    assert await waiter  # woken to re-read storage and learn the run is gone


async def test_every_resource_checks_before_storage(backend: Backend) -> None:
    refused = [
        (flows.create_flow, flows_pb2.CreateFlowRequest(name="no/slash"), "name"),
        (flows.list_flows, flows_pb2.ListFlowsRequest(page_size=-1), "page_size"),
        (
            task_runs.create_task_run,
            task_runs_pb2.CreateTaskRunRequest(flow_run_id="x", task_key="t", dynamic_key="0"),
            "flow_run_id",
        ),
        (
            logs.create_logs,
            logs_pb2.CreateLogsRequest(logs=[logs_pb2.Log(flow_run_id="x")]),
            "logs[0].flow_run_id",
        ),
    ]
    for operation, request, field in refused:
        with pytest.raises(ServiceError) as caught:
            await operation(backend, request)  # type: ignore[operator]
        assert caught.value.violations[0].field == field


def test_the_engine_stream_runs_the_same_operations_as_the_rpcs() -> None:
    modules = (flow_runs, task_runs, logs)
    for name, operation in engine.OPERATIONS.items():
        same = [getattr(m, name) for m in modules if hasattr(m, name)]
        assert same == [operation.run], name

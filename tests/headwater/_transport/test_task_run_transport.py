"""The transport's task run methods over a real server subprocess, on SQLite and PostgreSQL.

The engine's view: a task's start is one call returning a `Decision` (RUNNING, or Cached from a
second connection), retries come from the service, and a task's end sent without waiting is
stored before the flow's final state is accepted; its answer surfaces at the next flush.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace

import pytest
from headwater._states import Completed, Failed, Running, StateType
from headwater._transport.interface import DecisionKind, FlowRunSpec, Proposal, TaskRunSpec
from headwater._transport.runtime import open_transport
from headwater._transport.stream.transport import StreamTransport
from headwater.exceptions import InvalidRequest, ObjectAlreadyExists, ObjectNotFound
from server_harness import ServerProcess

pytestmark = pytest.mark.integration


@pytest.fixture
def transport(server: ServerProcess) -> Iterator[StreamTransport]:
    opened = open_transport(server.address, retry_timeout=5)
    yield opened
    opened.close()


def _key() -> str:
    return f"tests.task-{uuid.uuid4().hex[:8]}"


def _running_flow(transport: StreamTransport) -> str:
    run = transport.create_flow_run(FlowRunSpec(flow_name="task-transport"))
    decision = transport.propose_flow_run_state(run.id, Proposal(Running()))
    assert decision.kind is DecisionKind.ACCEPT
    return run.id


def test_start_is_one_call_and_reports_the_run(transport: StreamTransport) -> None:
    flow_run_id = _running_flow(transport)
    spec = TaskRunSpec(
        task_key=_key(), dynamic_key="0", flow_run_id=flow_run_id, tags=("a",), timeout_seconds=5
    )
    decision = transport.start_task_run(spec)
    assert decision.kind is DecisionKind.ACCEPT
    assert decision.state is not None and decision.state.type is StateType.RUNNING
    assert decision.task_run is not None
    assert (decision.task_run.run_count, decision.task_run.created) == (1, True)
    view = decision.task_run.task_run()
    assert (view.flow_run_id, view.tags) == (flow_run_id, ("a",))
    assert view.raw.policy.timeout.ToSeconds() == 5

    done = transport.propose_task_run_state(
        decision.task_run.id, Proposal(Completed(data=3), result_json="3")
    )
    assert done.kind is DecisionKind.ACCEPT
    assert done.state is not None and done.state.data == 3  # the in-memory result is kept


def test_a_chosen_task_run_id_is_sent_and_a_reused_one_refused(
    transport: StreamTransport,
) -> None:
    flow_run_id = _running_flow(transport)
    chosen = str(uuid.uuid4())
    spec = TaskRunSpec(task_key=_key(), dynamic_key="0", flow_run_id=flow_run_id)
    pending = transport.create_task_run(replace(spec, task_run_id=chosen))
    assert (pending.id, pending.created) == (chosen, True)
    with pytest.raises(ObjectAlreadyExists, match=chosen):
        transport.start_task_run(replace(spec, dynamic_key="1", task_run_id=chosen))


def test_a_task_outside_a_flow_and_a_pending_create(transport: StreamTransport) -> None:
    loose = transport.start_task_run(TaskRunSpec(task_key=_key(), dynamic_key="0"))
    assert loose.task_run is not None and loose.task_run.task_run().flow_run_id == ""
    pending = transport.create_task_run(TaskRunSpec(task_key=_key(), dynamic_key="0"))
    assert pending.task_run().state is not None
    assert pending.task_run().state.type is StateType.PENDING  # type: ignore[union-attr]


def test_the_service_decides_retries_from_a_delay_list(transport: StreamTransport) -> None:
    spec = TaskRunSpec(task_key=_key(), dynamic_key="0", retries=1, retry_delay_seconds=(3600.0,))
    started = transport.start_task_run(spec)
    assert started.task_run is not None
    failed = transport.propose_task_run_state(
        started.task_run.id, Proposal(Failed(message="boom"), failure=ValueError("boom"))
    )
    assert failed.kind is DecisionKind.REJECT
    assert failed.state is not None and failed.state.name == "AwaitingRetry"
    early = transport.propose_task_run_state(
        started.task_run.id, Proposal(Running(name="Retrying"))
    )
    assert early.kind is DecisionKind.WAIT
    assert early.wait_seconds > 3500


def test_a_cached_result_is_found_from_another_connection(server: ServerProcess) -> None:
    key = f"cache-{uuid.uuid4().hex}"
    first = open_transport(server.address, retry_timeout=5)
    second = open_transport(server.address, retry_timeout=5)
    try:
        producer = first.start_task_run(
            TaskRunSpec(task_key=_key(), dynamic_key="0", cache_key=key)
        )
        assert producer.task_run is not None
        first.propose_task_run_state(
            producer.task_run.id, Proposal(Completed(data=[1]), result_json="[1]")
        )
        hit = second.start_task_run(TaskRunSpec(task_key=_key(), dynamic_key="0", cache_key=key))
        assert hit.kind is DecisionKind.REJECT
        assert hit.state is not None
        assert (hit.state.type, hit.state.name) == (StateType.COMPLETED, "Cached")
        past = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
        refreshed = second.start_task_run(
            TaskRunSpec(
                task_key=_key(),
                dynamic_key="0",
                cache_key=key,
                refresh_cache=True,
                cache_expiration=past,
            )
        )
        assert refreshed.kind is DecisionKind.ACCEPT
        # A key given with the RUNNING proposal hits too.
        late = second.create_task_run(TaskRunSpec(task_key=_key(), dynamic_key="0"))
        cached = second.propose_task_run_state(late.id, Proposal(Running()), cache_key=key)
        assert cached.state is not None and cached.state.name == "Cached"
    finally:
        first.close()
        second.close()


def test_ends_sent_without_waiting_are_stored_before_the_flows_end(
    transport: StreamTransport, caplog: pytest.LogCaptureFixture
) -> None:
    flow_run_id = _running_flow(transport)
    ids = []
    for index in range(100):
        started = transport.start_task_run(
            TaskRunSpec(task_key="tests.step", dynamic_key=str(index), flow_run_id=flow_run_id)
        )
        assert started.task_run is not None
        ids.append(started.task_run.id)
    for task_run_id in ids:
        transport.propose_task_run_state_nowait(
            task_run_id, Proposal(Completed(data=None), result_json="null")
        )
    # A second end for the first task: the service refuses it (the run is final).
    transport.propose_task_run_state_nowait(ids[0], Proposal(Completed(data=None)))
    final = transport.propose_flow_run_state(flow_run_id, Proposal(Completed(data=None)))
    assert final.kind is DecisionKind.ACCEPT

    from headwater.client import get_client

    with get_client(sync_client=True, address=transport.address) as client:
        task_runs = client.list_task_runs(flow_run_id=flow_run_id, limit=1000)
    assert sorted(t.id for t in task_runs) == sorted(ids)
    assert {t.state.type for t in task_runs if t.state is not None} == {StateType.COMPLETED}

    with caplog.at_level(logging.WARNING, logger="headwater.tasks"):
        problems = transport.flush_task_run_states(timeout=10)
    assert [(p.task_run_id, p.decision.kind if p.decision else None) for p in problems] == [
        (ids[0], DecisionKind.REJECT)
    ]
    # Nobody waited for that answer: the refusal was also logged, naming the task run.
    assert [r.getMessage() for r in caplog.records if ids[0] in r.getMessage()] != []
    assert transport.flush_task_run_states(timeout=10) == []  # each problem is reported once


def test_bad_task_input_raises_the_sdk_errors(transport: StreamTransport) -> None:
    with pytest.raises(ObjectNotFound):
        transport.start_task_run(
            TaskRunSpec(task_key=_key(), dynamic_key="0", flow_run_id=str(uuid.uuid4()))
        )
    with pytest.raises(InvalidRequest, match="retry_jitter_factor"):
        transport.start_task_run(
            TaskRunSpec(task_key=_key(), dynamic_key="0", retry_jitter_factor=-1)
        )
    transport.propose_task_run_state_nowait(str(uuid.uuid4()), Proposal(Completed(data=None)))
    [problem] = transport.flush_task_run_states(timeout=10)
    assert isinstance(problem.error, ObjectNotFound)


def test_an_end_sent_without_waiting_leaves_even_when_nothing_follows(
    transport: StreamTransport,
) -> None:
    """Held back to ride with the next message, it still goes out alone soon after."""
    flow_run_id = _running_flow(transport)
    started = transport.start_task_run(
        TaskRunSpec(task_key=_key(), dynamic_key="0", flow_run_id=flow_run_id)
    )
    assert started.task_run is not None
    transport.propose_task_run_state_nowait(
        started.task_run.id, Proposal(Completed(data=1), result_json="1")
    )
    from headwater.client import get_client

    with get_client(sync_client=True, address=transport.address) as client:
        deadline = time.monotonic() + 10
        state = None
        while time.monotonic() < deadline:  # no flush, no further operation on the transport
            (task_run,) = client.list_task_runs(flow_run_id=flow_run_id)
            state = task_run.state
            if state is not None and state.type is StateType.COMPLETED:
                break
            time.sleep(0.01)
    assert state is not None and state.type is StateType.COMPLETED

"""`TaskCall` and `run_task_call`: a task call described on one side and run on another.

Runs go through the embedded service (a real in-process gRPC server).
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from typing import Any

import cloudpickle
import pytest
from engine_support import Reader, current_run_id, unique
from headwater import Completed, Failed, StateType, flow, tags, task
from headwater._engine.calls import TaskCall, new_call, resolve_upstream, run_task_call
from headwater._transport.interface import Transport
from headwater._transport.runtime import transport_for_call
from headwater.exceptions import UpstreamTaskError


def here() -> Transport:
    """The process's transport (the embedded service), as a runner in this process opens it."""
    return transport_for_call(None)


@task(tags=["own"])
def add(x: int, y: int = 1) -> int:
    return x + y


def test_a_call_made_in_a_flow_belongs_to_it_and_counts_dynamic_keys(reader: Reader) -> None:
    calls: list[TaskCall] = []

    @flow(name=unique())
    def pipeline(day: str) -> str:
        with tags("nightly"):
            calls.extend(new_call(add, {"x": index}) for index in range(3))
        return current_run_id()

    flow_run_id = pipeline("monday")
    assert [call.dynamic_key for call in calls] == ["0", "1", "2"]
    assert {call.flow_run_id for call in calls} == {flow_run_id}
    assert calls[0].flow_parameters == {"day": "monday"}
    assert calls[0].tags == ("nightly", "own")
    assert len({call.task_run_id for call in calls}) == 3


def test_a_call_made_outside_any_flow_stands_alone() -> None:
    first, second = new_call(add, {"x": 1}), new_call(add, {"x": 1})
    assert first.flow_run_id is None and first.flow_parameters == {}
    assert first.dynamic_key != second.dynamic_key
    assert first.task_run_id != second.task_run_id


def test_a_call_survives_cloudpickle_and_runs_on_the_other_side(reader: Reader) -> None:
    @task
    def local(x: int) -> int:  # defined in a function: plain pickle cannot carry it
        return x * 3

    @flow(name=unique())
    def pipeline() -> tuple[bytes, str]:
        return cloudpickle.dumps(new_call(local, {"x": 5})), current_run_id()

    payload, flow_run_id = pipeline()
    call = pickle.loads(payload)
    assert isinstance(call, TaskCall) and call.parameters == {"x": 5}
    state = run_task_call(call, transport=here())
    assert state.type is StateType.COMPLETED and state.result() == 15
    (stored,) = reader.client.list_task_runs(flow_run_id)
    assert stored.id == call.task_run_id
    assert stored.dynamic_key == call.dynamic_key
    assert stored.state is not None and stored.state.type is StateType.COMPLETED


def test_run_task_call_returns_a_failed_state_rather_than_raising(reader: Reader) -> None:
    @task
    def broken() -> None:
        raise KeyError("missing")

    state = run_task_call(new_call(broken, {}), transport=here())
    assert state.type is StateType.FAILED
    with pytest.raises(KeyError, match="missing"):
        state.result()


def test_run_task_call_runs_an_async_task_on_a_loop_of_its_own(reader: Reader) -> None:
    @task
    async def double(x: int) -> int:
        return 2 * x

    assert run_task_call(new_call(double, {"x": 4}), transport=here()).result() == 8


def test_run_task_call_refuses_generator_tasks() -> None:
    @task
    def numbers() -> Iterator[int]:
        yield 1

    with pytest.raises(TypeError, match="generator"):
        run_task_call(new_call(numbers, {}))
    with pytest.raises(TypeError, match="generator"):
        numbers.submit()


def test_resolve_upstream_replaces_states_and_records_failures(reader: Reader) -> None:
    plain = new_call(add, {"x": 1})
    assert resolve_upstream(plain) is plain

    failed = Failed(message="it broke", data=ValueError("it broke"))
    call = new_call(add, {"x": Completed(data=2), "y": [failed]}, wait_for=[Completed()])
    resolved = resolve_upstream(call)
    assert resolved.parameters == {"x": 2, "y": [None]}
    assert resolved.wait_for == ()
    (failure,) = resolved.upstream_failures
    assert failure.state_name == "Failed" and failure.message == "it broke"

    state = run_task_call(call, transport=here())
    assert state.type is StateType.FAILED and state.name == "NotReady"
    with pytest.raises(UpstreamTaskError, match="it broke"):
        state.result()


def test_a_call_with_resolved_upstream_failures_never_runs(reader: Reader) -> None:
    ran: list[Any] = []

    @task
    def record(x: Any) -> None:
        ran.append(x)

    call = resolve_upstream(new_call(record, {"x": Failed(message="no")}))
    # As a process runner ships it: resolved on the submitting side, run on the other.
    state = run_task_call(pickle.loads(cloudpickle.dumps(call)), transport=here())
    assert state.name == "NotReady" and ran == []


def test_outside_a_flow_run_a_transport_must_be_given() -> None:
    with pytest.raises(ValueError, match="transport"):
        run_task_call(new_call(add, {"x": 1}))


def test_inside_a_flow_run_its_transport_is_used(reader: Reader) -> None:
    @flow(name=unique())
    def pipeline() -> int:
        state = run_task_call(new_call(add, {"x": 1}))
        return state.result() + len(reader.client.list_task_runs(current_run_id()))

    assert pipeline() == 3

"""`State.state_details`: which run a state belongs to, as Prefect's
``state.state_details.flow_run_id`` says, on the states the engine hands out and on those read
back through the client, on the embedded service."""

from __future__ import annotations

import copy
import pickle
from typing import Any

from engine_support import Reader
from headwater import Completed, flow, task
from headwater.runtime import flow_run, task_run

seen: dict[str, Any] = {}


def remember_completion(tk: Any, run: Any, state: Any) -> None:
    seen["hook"] = state.state_details


@task(on_completion=[remember_completion])
def square(x: int) -> int:
    seen.setdefault("task_run_ids", []).append(task_run.id)
    return x * x


@flow
def numbers() -> str:
    seen["flow_run_id"] = flow_run.id
    seen["called"] = square(2, return_state=True)
    seen["submitted"] = square.submit(3)
    seen["submitted"].wait()
    return str(flow_run.id)


def test_states_the_engine_hands_out_name_their_run(reader: Reader) -> None:
    seen.clear()
    final = numbers(return_state=True)
    flow_run_id = seen["flow_run_id"]
    called_id, submitted_id = seen["task_run_ids"]

    assert final.state_details.flow_run_id == flow_run_id
    assert final.state_details.task_run_id is None
    details = seen["called"].state_details
    assert (details.flow_run_id, details.task_run_id) == (flow_run_id, called_id)
    future = seen["submitted"]
    assert future.state.state_details.task_run_id == submitted_id == future.task_run_id
    assert future.state.state_details.flow_run_id == flow_run_id
    assert seen["hook"].task_run_id == submitted_id  # the hook's state: the last task's


def test_states_read_through_the_client_name_their_run(reader: Reader) -> None:
    seen.clear()
    flow_run_id = numbers()
    called_id = seen["task_run_ids"][0]
    client = reader.client

    assert client.get_flow_run(flow_run_id).state.state_details.flow_run_id == flow_run_id
    history = client.list_flow_run_states(flow_run_id)
    assert [state.name for state in history] == ["Pending", "Running", "Completed"]
    assert {state.state_details.flow_run_id for state in history} == {flow_run_id}
    task_events = [e for e in client.list_flow_run_events(flow_run_id) if e.task_run_state]
    assert {
        (e.task_run_state.state_details.flow_run_id, e.task_run_state.state_details.task_run_id)
        for e in task_events
    } == {(flow_run_id, task_run_id) for task_run_id in seen["task_run_ids"]}

    task_state = client.get_task_run(called_id).state
    assert task_state is not None
    assert (task_state.state_details.flow_run_id, task_state.state_details.task_run_id) == (
        flow_run_id,
        called_id,
    )
    task_history = client.list_task_run_states(called_id)
    assert [state.name for state in task_history] == ["Pending", "Running", "Completed"]
    assert {(s.state_details.flow_run_id, s.state_details.task_run_id) for s in task_history} == {
        (flow_run_id, called_id)
    }


def test_a_state_made_in_code_names_no_run_and_details_do_not_change_equality() -> None:
    made = Completed(data=1)
    assert (made.state_details.flow_run_id, made.state_details.task_run_id) == (None, None)
    owned = copy.copy(made)._belongs_to("flow-id", "task-id")
    assert owned == made  # what a state says, not which run holds it
    restored = pickle.loads(pickle.dumps(owned))
    assert (restored.state_details.flow_run_id, restored.state_details.task_run_id) == (
        "flow-id",
        "task-id",
    )

"""The parent's CRASHED proposal for a task run whose process died, over the embedded service.

The whole path (a real child dying mid-task) is in test_process_runner.py and
test_dask_runner.py; here are the three answers the service can give the parent.
"""

from __future__ import annotations

import uuid

import pytest
from engine_support import Reader, unique
from headwater import StateType
from headwater._runners.crash import crash_task_run, process_died
from headwater._states import Completed
from headwater._transport.interface import FlowRunSpec, Proposal, TaskRunSpec
from headwater._transport.runtime import default_transport
from headwater.exceptions import CrashedRun


def started_task_run(flow_run_id: str) -> str:
    task_run_id = str(uuid.uuid4())
    decision = default_transport().start_task_run(
        TaskRunSpec(
            task_key="crashy", dynamic_key="0", flow_run_id=flow_run_id, task_run_id=task_run_id
        )
    )
    assert decision.state is not None and decision.state.is_running()
    return task_run_id


def test_a_running_task_run_ends_crashed_with_the_message(reader: Reader) -> None:
    flow_run = default_transport().create_flow_run(FlowRunSpec(flow_name=unique()))
    task_run_id = started_task_run(flow_run.id)
    message = process_died("pid 4242")

    state = crash_task_run(default_transport(), task_run_id, message)

    assert state is not None and state.is_crashed()
    with pytest.raises(CrashedRun, match="pid 4242"):
        state.result()
    (stored,) = reader.client.list_task_runs(flow_run.id)
    assert stored.id == task_run_id
    assert stored.state is not None and stored.state.type is StateType.CRASHED
    assert stored.state.message == message


def test_a_run_that_finished_before_its_process_died_keeps_its_state(reader: Reader) -> None:
    flow_run = default_transport().create_flow_run(FlowRunSpec(flow_name=unique()))
    task_run_id = started_task_run(flow_run.id)
    default_transport().propose_task_run_state(task_run_id, Proposal(Completed(data=None)))

    state = crash_task_run(default_transport(), task_run_id, process_died("pid 1"))

    assert state is not None and state.is_completed()
    (stored,) = reader.client.list_task_runs(flow_run.id)
    assert stored.state is not None and stored.state.type is StateType.COMPLETED


def test_a_run_the_service_never_saw_can_be_shipped_again(reader: Reader) -> None:
    assert crash_task_run(default_transport(), str(uuid.uuid4()), "never started") is None

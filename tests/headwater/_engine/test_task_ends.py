"""A task's COMPLETED end is sent without waiting, over a real server (SQLite and PostgreSQL).

The end rides with the engine's next message, so a task costs one round trip; the flow run's
final state is still applied only after every task's end, and an end the service refuses is
not lost silently: the transport logs a warning naming the task run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from engine_support import Reader, current_run_id, sdk_target, unique
from headwater import StateType, flow, task
from headwater._context import FlowRunContext
from headwater._transport.stream import holding
from headwater.runtime import task_run
from headwater.v1 import states_pb2, task_runs_pb2, task_runs_pb2_grpc

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def reader(server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reader]:
    with sdk_target(tmp_path_factory.mktemp("task-ends-home"), api_url=server.address):
        reader = Reader()
        yield reader
        reader.close()


def test_every_end_is_stored_before_the_flows_final_state(reader: Reader) -> None:
    @task
    def double(x: int) -> int:
        return 2 * x

    seen: dict[str, str] = {}

    @flow(name=unique())
    def many() -> int:
        seen["flow_run_id"] = current_run_id()
        return sum(double(i) for i in range(50))

    assert many() == 2 * sum(range(50))
    flow_run = reader.run(seen["flow_run_id"])
    task_runs = reader.client.list_task_runs(seen["flow_run_id"])
    assert len(task_runs) == 50
    assert {t.state.type for t in task_runs if t.state is not None} == {StateType.COMPLETED}
    assert [t.state.data for t in task_runs if t.state is not None] == [2 * i for i in range(50)]
    flow_end = flow_run.state.create_time.ToMicroseconds()
    assert all(t.raw.state.create_time.ToMicroseconds() <= flow_end for t in task_runs)


def test_a_sequential_task_costs_one_message_its_end_riding_with_the_next_start(
    reader: Reader, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Held ends wait for company as long as it takes here, so the count does not depend on
    # how fast this machine calls the next task.
    monkeypatch.setattr(holding, "HOLD_SECONDS", 60.0)

    @task
    def double(x: int) -> int:
        return 2 * x

    counted: dict[str, int] = {}
    count = 40

    @flow(name=unique())
    def many() -> int:
        connection = FlowRunContext.get().transport.connection  # type: ignore[union-attr]
        sent, received = connection.messages_sent, connection.messages_received
        total = sum(double(i) for i in range(count))
        counted["sent"] = connection.messages_sent - sent
        counted["received"] = connection.messages_received - received
        seen["flow_run_id"] = current_run_id()
        return total

    seen: dict[str, str] = {}
    assert many() == 2 * sum(range(count))
    # Each task's start left in one message, carrying the previous task's end with it; the
    # last end leaves with the flow run's final state.
    assert counted["sent"] == count
    assert 0 < counted["received"] <= 2 * count
    task_runs = reader.client.list_task_runs(seen["flow_run_id"])
    assert [t.state.type for t in task_runs if t.state is not None] == [StateType.COMPLETED] * count


def test_an_end_the_service_refuses_is_logged_with_the_task_run(
    reader: Reader, server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    finished: list[str] = []

    @task
    def finished_elsewhere() -> int:
        # An operator forces the run CANCELLED while its code runs: the COMPLETED end that
        # follows is refused (final states never change), after the engine moved on.
        with grpc.insecure_channel(server.address) as channel:
            task_runs_pb2_grpc.TaskRunServiceStub(channel).SetTaskRunState(
                task_runs_pb2.SetTaskRunStateRequest(
                    task_run_id=task_run.id,
                    state=states_pb2.State(type=states_pb2.STATE_TYPE_CANCELLED),
                    force=True,
                )
            )
        finished.append(task_run.id)
        return 1

    @flow(name=unique())
    def operator_wins() -> int:
        return finished_elsewhere()

    with caplog.at_level(logging.WARNING, logger="headwater.tasks"):
        assert operator_wins() == 1
        deadline = time.monotonic() + 10  # the answer arrives on the background loop
        while finished[0] not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.01)
    [record] = [r for r in caplog.records if finished[0] in r.getMessage()]
    assert record.levelno == logging.WARNING
    assert "REJECT" in record.getMessage() and "Cancelled" in record.getMessage()

"""`WorkerConnection` against a real server: a runner's heartbeat that does not wait for its
answer (a runner sends the next one on time while the service is slow to answer), whose answer
or error still comes back through its callback; and a stopping runner's cancellations, sent
all at once."""

from __future__ import annotations

import queue
import uuid

import pytest
from headwater._transport.client_workers import WorkerConnection
from headwater.exceptions import ServiceError
from headwater.v1 import flow_runs_pb2, flow_runs_pb2_grpc, flows_pb2, flows_pb2_grpc, states_pb2
from server_harness import ServerProcess, free_port

pytestmark = pytest.mark.integration

# Generous: the machine running the tests may be busy. Nothing here measures speed.
ANSWER_SECONDS = 60.0

Answer = tuple[list[str] | None, Exception | None]


def _answer_of(connection: WorkerConnection, flow_run_ids: list[str]) -> Answer:
    answers: queue.SimpleQueue[Answer] = queue.SimpleQueue()
    connection.send_heartbeat(flow_run_ids, lambda stop, error: answers.put((stop, error)))
    return answers.get(timeout=ANSWER_SECONDS)


def test_a_sent_heartbeat_answers_the_runs_to_stop(sqlite_server: ServerProcess) -> None:
    connection = WorkerConnection("w", sqlite_server.address, str(uuid.uuid4()))
    gone = str(uuid.uuid4())
    try:
        assert _answer_of(connection, [gone]) == ([gone], None)
    finally:
        connection.close()


def test_a_sent_heartbeat_that_reaches_no_server_answers_its_error() -> None:
    connection = WorkerConnection("w", f"127.0.0.1:{free_port()}", str(uuid.uuid4()))
    try:
        stop, error = _answer_of(connection, [])
    finally:
        connection.close()
    assert stop is None and isinstance(error, ServiceError)


def test_runs_are_cancelled_together_and_those_that_cannot_be_say_why(
    sqlite_server: ServerProcess,
) -> None:
    with sqlite_server.channel() as channel:
        flows = flows_pb2_grpc.FlowServiceStub(channel)
        runs = flow_runs_pb2_grpc.FlowRunServiceStub(channel)
        flow = flows.CreateFlow(flows_pb2.CreateFlowRequest(name=f"f-{uuid.uuid4().hex}")).flow
        first, second, ended = (
            runs.CreateFlowRun(flow_runs_pb2.CreateFlowRunRequest(flow_id=flow.id)).flow_run.id
            for _ in range(3)
        )
        runs.CancelFlowRun(flow_runs_pb2.CancelFlowRunRequest(flow_run_id=ended))
        missing = str(uuid.uuid4())
        connection = WorkerConnection("w", sqlite_server.address)
        try:
            failed = connection.cancel_runs([first, missing, second, ended], "Stopping.")
        finally:
            connection.close()
        for run_id in (first, second):
            state = runs.GetFlowRun(flow_runs_pb2.GetFlowRunRequest(flow_run_id=run_id)).flow_run
            assert (state.state.type, state.state.message) == (
                states_pb2.STATE_TYPE_CANCELLED,
                "Stopping.",
            )
    assert {run_id: error.code for run_id, error in failed.items()} == {
        missing: "NOT_FOUND",
        ended: "FAILED_PRECONDITION",
    }

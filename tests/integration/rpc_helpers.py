"""Small helpers for talking to a real server in integration tests: stubs, the engine stream,
and reading the rich error details of a failed call."""

from __future__ import annotations

import queue
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from headwater.v1 import (
    deployments_pb2_grpc,
    engine_pb2,
    engine_pb2_grpc,
    flow_runs_pb2,
    flow_runs_pb2_grpc,
    flows_pb2,
    flows_pb2_grpc,
    logs_pb2_grpc,
    states_pb2,
    task_runs_pb2_grpc,
    work_pools_pb2_grpc,
    workers_pb2_grpc,
)

S = states_pb2


class Api:
    """Every headwater.v1 stub on one channel."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.channel = channel
        self.flows = flows_pb2_grpc.FlowServiceStub(channel)
        self.flow_runs = flow_runs_pb2_grpc.FlowRunServiceStub(channel)
        self.task_runs = task_runs_pb2_grpc.TaskRunServiceStub(channel)
        self.logs = logs_pb2_grpc.LogServiceStub(channel)
        self.engine = engine_pb2_grpc.EngineServiceStub(channel)
        self.deployments = deployments_pb2_grpc.DeploymentServiceStub(channel)
        self.work_pools = work_pools_pb2_grpc.WorkPoolServiceStub(channel)
        self.workers = workers_pb2_grpc.WorkerServiceStub(channel)

    def new_flow(self, prefix: str = "flow") -> flows_pb2.Flow:
        """Register a flow with a name no other test uses."""
        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        return self.flows.CreateFlow(flows_pb2.CreateFlowRequest(name=name)).flow

    def new_run(self, flow_id: str, **fields: object) -> flow_runs_pb2.FlowRun:
        """Create a flow run of ``flow_id``."""
        request = flow_runs_pb2.CreateFlowRunRequest(flow_id=flow_id, **fields)
        return self.flow_runs.CreateFlowRun(request).flow_run

    def propose(
        self, flow_run_id: str, state_type: int, **fields: object
    ) -> flow_runs_pb2.SetFlowRunStateResponse:
        """Propose a flow run state through the unary call."""
        return self.flow_runs.SetFlowRunState(
            flow_runs_pb2.SetFlowRunStateRequest(
                flow_run_id=flow_run_id,
                state=S.State(type=state_type),
                transition_id=str(uuid.uuid4()),
                **fields,
            )
        )

    def events(self, flow_run_id: str, after: int = 0) -> list[flow_runs_pb2.FlowRunEvent]:
        """Every stored event of a run after ``after``."""
        response = self.flow_runs.ListFlowRunEvents(
            flow_runs_pb2.ListFlowRunEventsRequest(flow_run_id=flow_run_id, after_sequence=after)
        )
        return list(response.events)


class EngineStream:
    """A synchronous EngineService.Connect stream: send operations, read answers."""

    def __init__(self, api: Api) -> None:
        self._requests: queue.Queue[engine_pb2.ConnectRequest | None] = queue.Queue()
        self._responses = api.engine.Connect(iter(self._requests.get, None))
        self._sequence = 0
        self._lock = threading.Lock()

    def send(self, **operation: object) -> int:
        """Send one operation (e.g. ``set_flow_run_state=request``); return its sequence."""
        with self._lock:
            self._sequence += 1
            sequence = self._sequence
        self._requests.put(engine_pb2.ConnectRequest(sequence=sequence, **operation))
        return sequence

    def send_raw(self, request: engine_pb2.ConnectRequest) -> None:
        """Send a request exactly as given."""
        self._requests.put(request)

    def receive(self) -> engine_pb2.ConnectResponse:
        """The next answer, in the order the server sends them."""
        return next(self._responses)

    def call(self, **operation: object) -> engine_pb2.ConnectResponse:
        """Send one operation and wait for its answer (nothing else may be in flight)."""
        sequence = self.send(**operation)
        response = self.receive()
        assert response.sequence == sequence
        return response

    def close(self) -> list[engine_pb2.ConnectResponse]:
        """Half-close and return the answers still on the way; the stream must end OK."""
        self._requests.put(None)
        return list(self._responses)

    def __iter__(self) -> Iterator[engine_pb2.ConnectResponse]:
        return self._responses


@dataclass
class ErrorDetails:
    """What a failed call carried: code, message, ErrorInfo reason, BadRequest fields."""

    code: grpc.StatusCode
    message: str
    reason: str
    domain: str
    fields: list[str]
    resource_type: str


def error_details(error: grpc.RpcError) -> ErrorDetails:
    """Decode the google.rpc.Status details of a failed call."""
    assert isinstance(error, grpc.Call)
    status = rpc_status.from_call(error)
    reason = domain = resource_type = ""
    fields: list[str] = []
    if status is not None:
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                reason, domain = info.reason, info.domain
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                fields.extend(v.field for v in bad.field_violations)
            elif detail.Is(error_details_pb2.ResourceInfo.DESCRIPTOR):
                resource = error_details_pb2.ResourceInfo()
                detail.Unpack(resource)
                resource_type = resource.resource_type
    return ErrorDetails(
        code=error.code(),
        message=error.details() or "",
        reason=reason,
        domain=domain,
        fields=fields,
        resource_type=resource_type,
    )

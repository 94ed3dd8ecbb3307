"""The worker side of the wire: long polls for due runs and heartbeats (``WorkerService``).

A serving process (`headwater.serve`) and a worker (`headwater worker start`) hold one
`WorkerConnection` each; above it they see SDK records only (`ClaimedRun`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import grpc

from headwater._deployment_records import Deployment
from headwater._runs import FlowRun
from headwater._states import State
from headwater._transport import client_ops as ops
from headwater._transport.channel import channel_options
from headwater._transport.client_convert import flow_run_from_proto
from headwater._transport.client_deployments import deployment_from_proto
from headwater._transport.convert import state_from_proto
from headwater.exceptions import ServiceError
from headwater.v1 import (
    flow_runs_pb2,
    flow_runs_pb2_grpc,
    states_pb2,
    workers_pb2,
    workers_pb2_grpc,
)

__all__ = [
    "ClaimedRun",
    "EndAnswer",
    "WorkerConnection",
    "claimed_run_from_wire",
    "claimed_run_of",
]

# A poll's call may take this much longer than its wait before the client gives up on it.
_CALL_MARGIN_SECONDS = 10.0


@dataclass(frozen=True)
class ClaimedRun:
    """A run the service handed to this process (PENDING), with the deployment it runs from.

    ``wire`` is the claim as it came (a ``ClaimedRun`` message): a runner hands it on to the
    process that runs it (`claimed_run_from_wire`), which then reads neither record again.
    """

    flow_run: FlowRun
    deployment: Deployment
    wire: bytes = field(default=b"", repr=False, compare=False)


@dataclass(frozen=True)
class EndAnswer:
    """The service's answer to a final state a worker proposed for a run.

    Attributes:
        accepted: Whether the run now is in the proposed state.
        state: The state the run is in after the answer (the one it kept when refused).
        reason: Why, in the service's words.
    """

    accepted: bool
    state: State[Any] | None
    reason: str


@dataclass(frozen=True)
class PollAnswer:
    """What one poll brought.

    Attributes:
        runs: The runs claimed for this worker (PENDING).
        claims: How many claims the service has made for this worker's id so far (0 without
            an id): a heartbeat echoes the highest one heard of (`WorkerConnection.send_heartbeat`).
    """

    runs: list[ClaimedRun]
    claims: int


def claimed_run_of(message: workers_pb2.ClaimedRun) -> ClaimedRun:
    """The SDK records of one claim, keeping its wire form."""
    return ClaimedRun(
        flow_run_from_proto(message.flow_run),
        deployment_from_proto(message.deployment),
        message.SerializeToString(),
    )


def claimed_run_from_wire(wire: bytes) -> tuple[ClaimedRun, flow_runs_pb2.FlowRun]:
    """A claim handed on by a runner (`ClaimedRun.wire`), with its run's message.

    Raises:
        google.protobuf.message.DecodeError: ``wire`` is not a claim.
    """
    message = workers_pb2.ClaimedRun.FromString(wire)
    return claimed_run_of(message), message.flow_run


class WorkerConnection:
    """One channel to the service for a worker's polls and heartbeats (blocking calls).

    Args:
        worker_name: How the service names this process in states ("Claimed by ...").
        address: The server; None means ``HEADWATER_API_URL`` or the embedded service.
        worker_id: This process's UUID: the runs it claims are leased to it while its
            heartbeats come, and go back to SCHEDULED if they stop ("" leases nothing).
    """

    def __init__(self, worker_name: str, address: str | None = None, worker_id: str = "") -> None:
        from headwater._settings import get_settings

        self.worker_name = worker_name
        self.worker_id = worker_id
        self.address = ops.resolve_address(address)
        self._channel = grpc.insecure_channel(
            self.address, options=channel_options(get_settings().keepalive_time_ms)
        )
        self._stub = workers_pb2_grpc.WorkerServiceStub(self._channel)
        self._runs = flow_runs_pb2_grpc.FlowRunServiceStub(self._channel)

    def poll(
        self,
        *,
        max_runs: int,
        wait: float,
        deployment_ids: Iterable[str] = (),
        work_pool_name: str = "",
        work_queue_names: Iterable[str] = (),
    ) -> PollAnswer:
        """Claim up to ``max_runs`` due runs, waiting up to ``wait`` seconds for one.

        Raises:
            ServiceError: The service refused the poll (unknown pool, ...) or is unreachable.
        """
        request = workers_pb2.PollRunsRequest(
            worker_name=self.worker_name,
            work_pool_name=work_pool_name,
            work_queue_names=list(work_queue_names),
            deployment_ids=list(deployment_ids),
            max_runs=max_runs,
            worker_id=self.worker_id,
        )
        request.wait.FromNanoseconds(int(wait * 1e9))
        try:
            response = self._stub.PollRuns(request, timeout=wait + _CALL_MARGIN_SECONDS)
        except grpc.RpcError as error:
            raise ops.map_error(error, self.address) from None
        return PollAnswer([claimed_run_of(run) for run in response.runs], response.claims)

    def send_heartbeat(
        self,
        flow_run_ids: Iterable[str],
        answered: Callable[[list[str] | None, Exception | None], object],
        claims_seen: int = 0,
    ) -> None:
        """Report the runs this process holds (renewing its lease), without waiting for the
        answer: ``answered(to_stop, None)`` (the runs it should stop) or
        ``answered(None, error)`` is called on a gRPC thread once it comes (not at all if the
        channel closes first). ``claims_seen``: the highest `PollAnswer.claims` whose runs
        ``flow_run_ids`` holds (with it, a run claimed for this worker and left out goes back
        to SCHEDULED: its claim's answer never arrived).

        A runner sends its heartbeats on time this way even while the service is slow to
        answer: the service counts a heartbeat from when it hears it, so a heartbeat waiting
        for its answer must not hold back the next one (waiting, the heartbeats of a worker
        on a busy machine came further apart than the lease, and its runs were taken away).
        """
        request = workers_pb2.HeartbeatRequest(
            worker_name=self.worker_name,
            flow_run_ids=list(flow_run_ids),
            worker_id=self.worker_id,
            claims_seen=claims_seen,
        )
        call = self._stub.Heartbeat.future(request, timeout=_CALL_MARGIN_SECONDS)

        def done(future: grpc.Future) -> None:
            if future.cancelled():
                return
            try:
                response = future.result()
            except grpc.RpcError as error:
                answered(None, ops.map_error(error, self.address))
                return
            answered(list(response.cancel_flow_run_ids), None)

        call.add_done_callback(done)

    def end_run(
        self,
        flow_run_id: str,
        state_type: str,
        message: str,
        *,
        transition_id: str = "",
        expected_state_id: str = "",
    ) -> EndAnswer:
        """Propose a final state ("CANCELLED", "CRASHED") for a run whose process this worker
        stopped or lost; the service's answer (a run already final keeps its state).

        ``transition_id`` makes a retry after a lost answer safe: it gets the first answer and
        is applied once. With ``expected_state_id`` the proposal is refused if the run moved on
        from that state meanwhile (another claim of it, say).

        Raises:
            ServiceError: The call failed (unreachable service, unknown run, ...).
        """
        state = states_pb2.State(
            type=states_pb2.StateType.Value(f"STATE_TYPE_{state_type}"), message=message
        )
        request = flow_runs_pb2.SetFlowRunStateRequest(
            flow_run_id=flow_run_id,
            state=state,
            transition_id=transition_id,
            expected_state_id=expected_state_id,
        )
        try:
            response = self._runs.SetFlowRunState(request, timeout=_CALL_MARGIN_SECONDS)
        except grpc.RpcError as error:
            raise ops.map_error(error, self.address) from None
        result = response.result
        return EndAnswer(
            accepted=result.decision == states_pb2.DECISION_ACCEPT,
            state=state_from_proto(result.state, None) if result.HasField("state") else None,
            reason=result.reason,
        )

    def states_since(self, flow_run_id: str, after_sequence: int) -> list[State[Any]]:
        """The states a run entered after its event ``after_sequence``, oldest first.

        Raises:
            ServiceError: The call failed (unreachable service, unknown run, ...).
        """
        states: list[State[Any]] = []
        while True:
            request = flow_runs_pb2.ListFlowRunEventsRequest(
                flow_run_id=flow_run_id,
                after_sequence=after_sequence,
                page_size=ops.MAX_PAGE,
                flow_run_states_only=True,
            )
            try:
                response = self._runs.ListFlowRunEvents(request, timeout=_CALL_MARGIN_SECONDS)
            except grpc.RpcError as error:
                raise ops.map_error(error, self.address) from None
            states.extend(
                state_from_proto(event.state_changed, None)
                for event in response.events
                if event.HasField("state_changed")
            )
            if not response.events or response.events[-1].sequence >= response.last_sequence:
                return states
            after_sequence = response.events[-1].sequence

    def cancel_runs(self, flow_run_ids: Iterable[str], reason: str = "") -> dict[str, ServiceError]:
        """Ask the service to cancel runs (their engines then interrupt and end them), all at
        once: a slow service costs a stopping runner one call's time, not one per run.

        Returns:
            The runs it could not cancel, each with why (FAILED_PRECONDITION: the run already
            ended; UNAVAILABLE: the service could not be reached, ...).
        """
        calls = {
            flow_run_id: self._runs.CancelFlowRun.future(
                flow_runs_pb2.CancelFlowRunRequest(flow_run_id=flow_run_id, reason=reason),
                timeout=_CALL_MARGIN_SECONDS,
            )
            for flow_run_id in flow_run_ids
        }
        failed: dict[str, ServiceError] = {}
        for flow_run_id, call in calls.items():
            try:
                call.result()
            except grpc.RpcError as error:
                failed[flow_run_id] = ops.map_error(error, self.address)
        return failed

    def close(self) -> None:
        """Close the channel (an in-flight poll ends with CANCELLED)."""
        self._channel.close()

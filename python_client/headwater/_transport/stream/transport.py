"""`StreamTransport`: the `Transport` interface over one engine stream (`EngineConnection`).

It translates between the SDK's types (`FlowRunSpec`, `Proposal`, `Decision`, `LogLine`) and
the wire, and keeps the log lines waiting for their batch. The translation does no more work
than the engine did when it held the messages itself: a state the engine already has in memory
is attached to the answer instead of being decoded again, and the parameters the engine sent
are reused instead of parsed back.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import TYPE_CHECKING, Any

import grpc

from headwater._ids import uuid7_str
from headwater._telemetry import current_carrier
from headwater._transport.client_convert import flow_run_from_proto, task_run_from_proto
from headwater._transport.convert import (
    failure_from_exception,
    fill_state_proto,
    reference_result,
    state_from_proto,
)
from headwater._transport.interface import (
    Decision,
    DecisionKind,
    FlowRunSpec,
    LogLine,
    Proposal,
    RunSnapshot,
    TaskRunSnapshot,
    TaskRunSpec,
    TaskStateProblem,
)
from headwater._transport.stream.logs import LogBuffer
from headwater.exceptions import ServiceError
from headwater.v1 import engine_pb2, flow_runs_pb2, states_pb2, task_runs_pb2

if TYPE_CHECKING:
    import datetime as _dt
    from collections.abc import Callable

    from headwater._runs import FlowRun
    from headwater._states import State
    from headwater._transport.stream.connection import EngineConnection

__all__ = ["StreamTransport", "snapshot_of_run"]

logger = logging.getLogger("headwater.tasks")

_KINDS = {
    states_pb2.DECISION_ACCEPT: DecisionKind.ACCEPT,
    states_pb2.DECISION_REJECT: DecisionKind.REJECT,
    states_pb2.DECISION_WAIT: DecisionKind.WAIT,
    states_pb2.DECISION_ABORT: DecisionKind.ABORT,
}
_Request = engine_pb2.ConnectRequest
_ACCEPT = states_pb2.DECISION_ACCEPT
_RUNNING = states_pb2.STATE_TYPE_RUNNING
_CANCELLING = states_pb2.STATE_TYPE_CANCELLING

#: Pause before watching again after the watch stream broke (a server restart).
_REWATCH_DELAY = 1.0
#: Watch errors that no retry can fix: the run is gone, or the request can never succeed.
_FINAL_WATCH_CODES = frozenset(
    {
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.UNIMPLEMENTED,
    }
)


class StreamTransport:
    """The engine's transport over one ``EngineService.Connect`` stream.

    Built by `headwater._transport.runtime` (`default_transport`, `open_transport`), which
    also closes it at exit.
    """

    def __init__(self, connection: EngineConnection) -> None:
        self.connection = connection
        self._logs = LogBuffer(connection.create_logs_nowait)
        # Answers to no-wait task proposals that were not ACCEPT, until the next flush. Written
        # on the background loop, read by the flushing thread.
        self._task_problems: list[TaskStateProblem] = []
        self._task_problems_lock = threading.Lock()

    @property
    def address(self) -> str:
        return self.connection.address

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self.connection.loop

    @property
    def logs_added(self) -> int:
        return self._logs.added

    # -- runs ------------------------------------------------------------------------------

    def create_flow_run(self, spec: FlowRunSpec) -> RunSnapshot:
        response = self.connection.create_flow_run(_create_request(spec))
        return _snapshot(response.flow_run, spec.parameters)

    async def acreate_flow_run(self, spec: FlowRunSpec) -> RunSnapshot:
        response = await self.connection.acreate_flow_run(_create_request(spec))
        return _snapshot(response.flow_run, spec.parameters)

    def read_flow_run(self, flow_run_id: str) -> RunSnapshot:
        request = flow_runs_pb2.GetFlowRunRequest(flow_run_id=flow_run_id)
        return _snapshot(self.connection.get_flow_run(request).flow_run, None)

    async def aread_flow_run(self, flow_run_id: str) -> RunSnapshot:
        request = flow_runs_pb2.GetFlowRunRequest(flow_run_id=flow_run_id)
        return _snapshot((await self.connection.aget_flow_run(request)).flow_run, None)

    def propose_flow_run_state(self, flow_run_id: str, proposal: Proposal) -> Decision:
        request = _propose_request(flow_run_id, proposal)
        return _decision(self.connection.set_flow_run_state(request), proposal)

    async def apropose_flow_run_state(self, flow_run_id: str, proposal: Proposal) -> Decision:
        request = _propose_request(flow_run_id, proposal)
        return _decision(await self.connection.aset_flow_run_state(request), proposal)

    # -- task runs -------------------------------------------------------------------------

    def start_task_run(self, spec: TaskRunSpec) -> Decision:
        return _started(self.connection.call(_task_create_op(spec, start=True)))

    async def astart_task_run(self, spec: TaskRunSpec) -> Decision:
        return _started(await self.connection.acall(_task_create_op(spec, start=True)))

    def start_task_run_then(
        self,
        spec: TaskRunSpec,
        then: Callable[[Decision | None, BaseException | None], object],
    ) -> None:
        def answered(response: Any, error: BaseException | None) -> None:
            if error is not None:
                then(None, error)
                return
            try:
                decision = _started(response)
            except Exception as exc:  # a malformed answer: the waiting call fails with it
                then(None, exc)
                return
            then(decision, None)

        self.connection.send_then(_task_create_op(spec, start=True), answered)

    def create_task_run(self, spec: TaskRunSpec) -> TaskRunSnapshot:
        response = self.connection.call(_task_create_op(spec, start=False))
        return _task_snapshot(response.task_run, response.created)

    async def acreate_task_run(self, spec: TaskRunSpec) -> TaskRunSnapshot:
        response = await self.connection.acall(_task_create_op(spec, start=False))
        return _task_snapshot(response.task_run, response.created)

    def propose_task_run_state(
        self,
        task_run_id: str,
        proposal: Proposal,
        *,
        cache_key: str | None = None,
        cache_expiration: _dt.datetime | None = None,
        refresh_cache: bool = False,
    ) -> Decision:
        request = _task_propose_op(
            task_run_id, proposal, cache_key, cache_expiration, refresh_cache
        )
        return _task_decision(self.connection.call(request), proposal)

    async def apropose_task_run_state(
        self,
        task_run_id: str,
        proposal: Proposal,
        *,
        cache_key: str | None = None,
        cache_expiration: _dt.datetime | None = None,
        refresh_cache: bool = False,
    ) -> Decision:
        request = _task_propose_op(
            task_run_id, proposal, cache_key, cache_expiration, refresh_cache
        )
        return _task_decision(await self.connection.acall(request), proposal)

    def propose_task_run_state_nowait(self, task_run_id: str, proposal: Proposal) -> None:
        request = _task_propose_op(task_run_id, proposal, None, None, False)

        def record(response: Any, error: BaseException | None) -> None:
            if error is not None:
                problem = TaskStateProblem(task_run_id, proposal, error=error)
            elif response.result.decision != _ACCEPT:
                problem = TaskStateProblem(
                    task_run_id, proposal, _task_decision(response, proposal)
                )
            else:
                return
            _warn_refused(problem)
            with self._task_problems_lock:
                self._task_problems.append(problem)

        self.connection.send_held(request, record, any_thread=True)  # record takes a lock

    def flush_task_run_states(self, timeout: float | None = None) -> list[TaskStateProblem]:
        self.connection.flush(timeout)
        return self._take_task_problems()

    async def aflush_task_run_states(self) -> list[TaskStateProblem]:
        await self.connection.aflush()
        return self._take_task_problems()

    def _take_task_problems(self) -> list[TaskStateProblem]:
        with self._task_problems_lock:
            problems, self._task_problems = self._task_problems, []
        return problems

    # -- logs ------------------------------------------------------------------------------

    def ship_log(self, line: LogLine) -> None:
        self._logs.add(line)

    def flush_logs(self, wait: bool = False) -> None:
        try:
            self._logs.send()
            if wait:
                self.connection.flush()
        except Exception as exc:
            self._logs.report_error(exc)

    # -- cancellation ----------------------------------------------------------------------

    async def wait_for_cancelling(self, flow_run_id: str, after_sequence: int) -> str | None:
        after = after_sequence
        while True:
            request = flow_runs_pb2.WatchFlowRunRequest(
                flow_run_id=flow_run_id, after_sequence=after, flow_run_states_only=True
            )
            try:
                async for message in self.connection.awatch_flow_run(request):
                    kind = message.WhichOneof("kind")
                    if kind == "snapshot":
                        state = message.snapshot.state
                    elif kind == "event" and message.event.HasField("state_changed"):
                        after = message.event.sequence
                        state = message.event.state_changed
                    else:
                        continue
                    if state.type == _CANCELLING:
                        return state.message
                    if state.type != _RUNNING:
                        return None  # the run left RUNNING: nothing more to watch for
                return None  # the service ends the watch after a terminal state
            except grpc.aio.AioRpcError as error:
                if error.code() in _FINAL_WATCH_CODES:
                    return None
                await asyncio.sleep(_REWATCH_DELAY)  # the server restarts: watch again
            except ServiceError:
                return None  # the connection was closed: the process is leaving

    # -- lifecycle -------------------------------------------------------------------------

    def close(self, timeout: float | None = 5.0) -> None:
        self.flush_logs()
        self.connection.close(timeout)

    def __repr__(self) -> str:
        return f"StreamTransport(address={self.address!r})"


def _create_request(spec: FlowRunSpec) -> flow_runs_pb2.CreateFlowRunRequest:
    request = flow_runs_pb2.CreateFlowRunRequest(
        flow_name=spec.flow_name,
        flow_version=spec.flow_version,
        parameters_json=spec.parameters_json,
        name=spec.name,
    )
    if spec.tags:
        request.tags.extend(spec.tags)
    if spec.parent_flow_run_id is not None:
        request.parent_flow_run_id = spec.parent_flow_run_id
    if spec.retries or spec.retry_delay_seconds:
        request.policy.retries = spec.retries
        request.policy.retry_delay.FromNanoseconds(int(spec.retry_delay_seconds * 1e9))
    # The stream is one long call, so its metadata cannot carry each creation's trace context.
    carrier = current_carrier()
    if carrier is not None:
        request.trace_context.update(carrier)
    return request


def snapshot_of_run(run: flow_runs_pb2.FlowRun) -> RunSnapshot:
    """A run read elsewhere (a runner's claim), as `StreamTransport.read_flow_run` reads it."""
    return _snapshot(run, None)


def _snapshot(run: flow_runs_pb2.FlowRun, parameters: dict[str, Any] | None) -> RunSnapshot:
    """The run's snapshot; its view is converted only if someone asks for it."""

    def load(state: State[Any] | None) -> FlowRun:
        return flow_run_from_proto(run, parameters=parameters, state=state)

    if run.trace_context:
        return RunSnapshot(run.id, run.name, run.run_count, load, dict(run.trace_context))
    return RunSnapshot(run.id, run.name, run.run_count, load)


def _propose_request(flow_run_id: str, proposal: Proposal) -> flow_runs_pb2.SetFlowRunStateRequest:
    """The proposal's request, without a ``transition_id``.

    The connection gives each send its own id (on its copy of the request), so each attempt of
    a WAIT loop counts as a new proposal.
    """
    return flow_runs_pb2.SetFlowRunStateRequest(
        flow_run_id=flow_run_id, state=_proposed_state(proposal)
    )


def _proposed_state(proposal: Proposal) -> states_pb2.State:
    """The wire state of a proposal: its result as JSON or a reference, its failure."""
    message = states_pb2.State()
    _fill_proposed_state(message, proposal)
    return message


def _fill_proposed_state(message: states_pb2.State, proposal: Proposal) -> None:
    """Write ``proposal``'s wire state into ``message`` (a field of the request, no copy)."""
    fill_state_proto(message, proposal.state)
    if proposal.result_reference is not None:
        message.result.CopyFrom(reference_result(proposal.result_reference))
    elif proposal.result_json is not None:
        message.result.json = proposal.result_json
    failure = proposal.failure
    if failure is not None:
        if isinstance(failure, BaseException):
            message.failure.CopyFrom(failure_from_exception(failure))
        else:
            message.failure.message = failure


def _decision(response: flow_runs_pb2.SetFlowRunStateResponse, proposal: Proposal) -> Decision:
    run = _snapshot(response.flow_run, None) if response.HasField("flow_run") else None
    return _decision_of(response.result, proposal, run=run)


def _decision_of(
    result: states_pb2.OrchestrationResult,
    proposal: Proposal | None,
    *,
    run: RunSnapshot | None = None,
    task_run: TaskRunSnapshot | None = None,
) -> Decision:
    """A `Decision` from the service's answer to ``proposal`` (None: a create-and-start)."""
    code = result.decision
    state = None
    if result.HasField("state"):
        if code == _ACCEPT and proposal is not None:
            # The stored state is the proposal: keep its in-memory data rather than decoding.
            state = state_from_proto(result.state, data=proposal.state.data)
        else:
            state = state_from_proto(result.state)
    wait = 0.0
    if result.HasField("wait"):
        wait = result.wait.seconds + result.wait.nanos / 1e9
    return Decision(
        # An unknown answer (a newer service) is followed like a REJECT: the state it holds.
        kind=_KINDS.get(code, DecisionKind.REJECT),
        state=state,
        wait_seconds=wait,
        reason=result.reason,
        run=run,
        task_run=task_run,
    )


# -- task runs ----------------------------------------------------------------------------


def _task_create_op(spec: TaskRunSpec, *, start: bool) -> engine_pb2.ConnectRequest:
    """The create (and with ``start``, start) operation, with its ``request_id``.

    Built in place inside the stream's request, setting only what differs from the defaults:
    a task run's start is the engine's most frequent message.
    """
    operation = _Request()
    request = operation.create_task_run
    request.request_id = uuid7_str()
    request.task_key = spec.task_key
    request.dynamic_key = spec.dynamic_key
    request.parameters_json = spec.parameters_json
    if spec.flow_run_id:
        request.flow_run_id = spec.flow_run_id
    if spec.task_run_id:
        request.task_run_id = spec.task_run_id
    if spec.name:
        request.name = spec.name
    if spec.cache_key:
        request.cache_key = spec.cache_key
    if start:
        request.start = True
    if spec.refresh_cache:
        request.refresh_cache = True
    if spec.tags:
        request.tags.extend(spec.tags)
    if spec.cache_expiration is not None:
        request.cache_expiration_time.FromDatetime(spec.cache_expiration)
    policy = request.policy
    policy.retries = spec.retries  # sets the (present, possibly empty) policy message
    delays = spec.retry_delay_seconds
    if isinstance(delays, tuple):
        for seconds in delays:
            policy.retry_delays.add().FromNanoseconds(int(seconds * 1e9))
    elif delays:
        policy.retry_delay.FromNanoseconds(int(delays * 1e9))
    if spec.retry_jitter_factor:
        policy.retry_jitter_factor = spec.retry_jitter_factor
    if spec.timeout_seconds:
        policy.timeout.FromNanoseconds(int(spec.timeout_seconds * 1e9))
    return operation


def _task_snapshot(run: task_runs_pb2.TaskRun, created: bool = True) -> TaskRunSnapshot:
    """The task run's snapshot; its full view is converted only if someone asks for it."""
    return TaskRunSnapshot(
        run.id, run.name, run.run_count, lambda: task_run_from_proto(run), created
    )


def _started(response: task_runs_pb2.CreateTaskRunResponse) -> Decision:
    return _decision_of(
        response.result, None, task_run=_task_snapshot(response.task_run, response.created)
    )


def _task_propose_op(
    task_run_id: str,
    proposal: Proposal,
    cache_key: str | None,
    cache_expiration: _dt.datetime | None,
    refresh_cache: bool,
) -> engine_pb2.ConnectRequest:
    """A task proposal as a stream operation, with a fresh ``transition_id``.

    Each call is a new proposal (proposing again after a WAIT answer is not a repeat); a
    resend of the same operation after a reconnect carries the same id.
    """
    operation = _Request()
    request = operation.set_task_run_state
    request.transition_id = uuid7_str()
    request.task_run_id = task_run_id
    _fill_proposed_state(request.state, proposal)
    if cache_key:
        request.cache_key = cache_key
    if refresh_cache:
        request.refresh_cache = True
    if cache_expiration is not None:
        request.cache_expiration_time.FromDatetime(cache_expiration)
    return operation


def _warn_refused(problem: TaskStateProblem) -> None:
    """Say at once that a task state sent without waiting was not stored as sent.

    Nobody waited for the answer, so without this line the engine's belief (the task ended
    as proposed) and the service's record would differ silently.
    """
    decision = problem.decision
    if decision is None:
        outcome = f"failed: {problem.error}"
    else:
        kept = decision.state.name if decision.state is not None else "its state"
        outcome = f"was answered {decision.kind.value} ({decision.reason or 'no reason'}); "
        outcome += f"the service kept {kept}"
    logger.warning(
        "Task run %s: the %s state sent without waiting %s",
        problem.task_run_id,
        problem.proposal.state.name,
        outcome,
    )


def _task_decision(response: task_runs_pb2.SetTaskRunStateResponse, proposal: Proposal) -> Decision:
    return _decision_of(response.result, proposal, task_run=_task_snapshot(response.task_run))

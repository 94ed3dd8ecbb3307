"""One flow call's run as the service sees it: create or load it, propose states, ship logs.

`headwater._engine_state.FlowRunEngine` builds the state machine on top of this class; keeping
the service I/O here (every step has a sync and an async twin) leaves the decisions there in
one place. A WAIT answer never reaches the state machine: `EngineRun.propose` sleeps as told
and asks again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any, Literal

from headwater._context import FlowRunContext, _current_flow_run
from headwater._engine_interrupts import RunningContext
from headwater._engine_setup import (
    call_arguments,
    create_request,
    stored_parameters,
    validate_parameters,
)
from headwater._logging import flush_logs, lines_added, run_logger, setup_logging
from headwater._runs import FlowRun
from headwater._states import State
from headwater._transport.convert import state_from_proto
from headwater.exceptions import ParameterTypeError
from headwater.v1 import flow_runs_pb2, states_pb2

if TYPE_CHECKING:
    from headwater._client import EngineConnection
    from headwater._flows import Flow

__all__ = ["EngineRun", "ReturnType"]

WAIT = states_pb2.DECISION_WAIT

#: The longest single sleep for a WAIT answer; the engine then asks again, so a run whose
#: schedule moved earlier does not oversleep.
_MAX_WAIT_SECONDS = 30.0

#: Marks engine progress lines that go to the console only: the service already stores every
#: state change as an event, and shipping them would add a write to every trivial run.
_LOCAL_ONLY = {"headwater_local": True}

ReturnType = Literal["result", "state"]


class EngineRun:
    """What one flow call knows of its run, and the calls that keep the service informed."""

    def __init__(
        self,
        flow: Flow[..., Any],
        parameters: dict[str, Any] | None,
        return_type: ReturnType,
        flow_run_id: str | None,
    ) -> None:
        self.flow = flow
        self.raw_parameters = parameters
        self.return_type = return_type
        self.existing_run_id = flow_run_id
        self.parent = _current_flow_run.get()
        self.timeout_seconds = flow.timeout_seconds
        if flow.log_prints is not None:
            self.log_prints = bool(flow.log_prints)
        elif self.parent is not None:
            self.log_prints = self.parent.log_prints
        else:
            from headwater._settings import get_settings

            self.log_prints = get_settings().log_prints

        self.connection: EngineConnection | None = None
        self.run: flow_runs_pb2.FlowRun | None = None
        self.parameters: dict[str, Any] = {}
        self.serialized_parameters: dict[str, Any] = {}
        self.validation_error: ParameterTypeError | None = None
        self.context: FlowRunContext | None = None
        self.run_logger: logging.LoggerAdapter[logging.Logger] | None = None

        self.state: State[Any] | None = None  # the latest state the service confirmed
        self.final: State[Any] | None = None
        self.raised: BaseException | None = None
        self.value: Any = None
        self.has_value = False
        self.aborted: str | None = None
        self.attempts = 0
        self.hooks_done = False
        self.terminated_by: int | None = None
        self.log_mark = lines_added()

    # -- creating the run ------------------------------------------------------------------

    def create_or_load(self) -> None:
        """Create the run on the service (or read the existing one)."""
        connection = self._connect()
        if self.existing_run_id is not None:
            response = connection.get_flow_run(self._get_request())
            self._created(self._use_existing(response.flow_run))
        else:
            self._created(connection.create_flow_run(self._prepare()).flow_run)

    async def acreate_or_load(self) -> None:
        connection = self._connect()
        if self.existing_run_id is not None:
            response = await connection.aget_flow_run(self._get_request())
            self._created(self._use_existing(response.flow_run))
        else:
            self._created((await connection.acreate_flow_run(self._prepare())).flow_run)

    def _connect(self) -> EngineConnection:
        from headwater._client import get_connection

        connection = get_connection()
        self.connection = connection
        return connection

    def _get_request(self) -> flow_runs_pb2.GetFlowRunRequest:
        return flow_runs_pb2.GetFlowRunRequest(flow_run_id=self.existing_run_id)

    def _validate(self) -> None:
        """Validate and coerce the parameters; a failure is kept to mark the run FAILED."""
        setup_logging()
        raw = self.raw_parameters if self.raw_parameters is not None else {}
        self.parameters, self.validation_error = validate_parameters(self.flow, raw)

    def _prepare(self) -> flow_runs_pb2.CreateFlowRunRequest:
        """Validate parameters and build the create request (no I/O)."""
        self._validate()
        self.serialized_parameters = self.flow.serialize_parameters(self.parameters)
        return create_request(self.flow, self.parameters, self.serialized_parameters, self.parent)

    def _use_existing(self, run: flow_runs_pb2.FlowRun) -> flow_runs_pb2.FlowRun:
        if self.raw_parameters is None:
            self.raw_parameters = stored_parameters(run)
        self._validate()
        self.serialized_parameters = stored_parameters(run)
        return run

    def _created(self, run: flow_runs_pb2.FlowRun) -> None:
        self.run = run
        self.run_logger = run_logger(run.id, run.name, self.flow.name)
        self.state = None  # converted on demand: most runs never look at the initial state
        self.context = FlowRunContext(
            flow=self.flow,
            flow_run_id=run.id,
            make_flow_run=self._current_view,
            parameters=self.parameters,
            parent=self.parent,
            log_prints=self.log_prints,
            logger=self.run_logger,
        )

    def _current_view(self) -> FlowRun:
        if self.state is None and self.run is not None and self.run.HasField("state"):
            self.state = state_from_proto(self.run.state, data=None)
        return self._view(self.state)

    def _view(self, state: State[Any] | None) -> FlowRun:
        assert self.run is not None
        return FlowRun.from_proto(self.run, parameters=self.serialized_parameters, state=state)

    def call_arguments(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The function's arguments for the next attempt."""
        return call_arguments(self.flow.fn, self.parameters)

    def running_context(
        self, *, signals: bool = True, async_task: asyncio.Task[Any] | None = None
    ) -> RunningContext:
        """Make this run the current one (and, for a top-level run, handle SIGTERM)."""
        return RunningContext(self, signals=signals, async_task=async_task)

    # -- proposing states ------------------------------------------------------------------

    def _request(self, proposal: states_pb2.State) -> flow_runs_pb2.SetFlowRunStateRequest:
        """The proposal's request, without a ``transition_id``.

        The connection gives each send its own id (on its copy of the request), so one request
        serves every attempt of a WAIT loop and each attempt counts as a new proposal.
        """
        assert self.run is not None
        return flow_runs_pb2.SetFlowRunStateRequest(flow_run_id=self.run.id, state=proposal)

    def _answered(
        self, response: flow_runs_pb2.SetFlowRunStateResponse
    ) -> states_pb2.OrchestrationResult:
        if response.HasField("flow_run"):
            self.run = response.flow_run
            if self.context is not None:
                self.context.run_changed()
        result = response.result
        if result.decision == WAIT:
            self._log_wait(result)
        return result

    def propose(self, proposal: states_pb2.State) -> states_pb2.OrchestrationResult:
        """Propose a state until the answer is not WAIT (sleeping as told in between)."""
        assert self.connection is not None
        request = self._request(proposal)
        while True:
            result = self._answered(self.connection.set_flow_run_state(request))
            if result.decision != WAIT:
                return result
            time.sleep(_wait_seconds(result))

    async def apropose(self, proposal: states_pb2.State) -> states_pb2.OrchestrationResult:
        assert self.connection is not None
        request = self._request(proposal)
        while True:
            result = self._answered(await self.connection.aset_flow_run_state(request))
            if result.decision != WAIT:
                return result
            await asyncio.sleep(_wait_seconds(result))

    def _log_wait(self, result: states_pb2.OrchestrationResult) -> None:
        if self.run_logger is not None and self.run_logger.isEnabledFor(logging.DEBUG):
            self.run_logger.debug(
                "Waiting %.3g s before proposing again: %s",
                _wait_seconds(result),
                result.reason or "the service asked to wait",
            )

    # -- log lines -------------------------------------------------------------------------

    def _flush_logs(self) -> None:
        """Store this run's log lines before its state changes, so none is lost or late.

        Free for a run that logged nothing: the count of buffered lines has not moved.
        """
        mark = lines_added()
        if mark != self.log_mark:
            self.log_mark = mark
            flush_logs(wait=True)

    def _ship_late_logs(self) -> None:
        """Send what hooks logged after the final state now, rather than a second later."""
        if lines_added() != self.log_mark:
            self.log_mark = lines_added()
            flush_logs()

    def _info(self, message: str, *args: Any) -> None:
        """An engine progress line: printed, not stored (the service records state changes)."""
        self._progress(logging.INFO, message, args)

    def _progress(self, level: int, message: str, args: tuple[Any, ...]) -> None:
        """Log an engine progress line without the caller lookup `Logger.log` does.

        Two such lines per run are a measurable share of a trivial run's client time, and
        their call site is always this engine, so the lookup tells nobody anything.
        """
        adapter = self.run_logger
        if adapter is None:
            return
        target = adapter.logger
        if target.isEnabledFor(level):
            extra = {**adapter.extra, **_LOCAL_ONLY}  # type: ignore[dict-item]
            target.handle(
                target.makeRecord(target.name, level, "", 0, message, args, None, extra=extra)
            )


def _wait_seconds(result: states_pb2.OrchestrationResult) -> float:
    wait = result.wait
    seconds: float = wait.seconds + wait.nanos / 1e9
    return min(max(seconds, 0.0), _MAX_WAIT_SECONDS)

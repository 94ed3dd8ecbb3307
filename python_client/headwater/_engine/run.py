"""One call's run as the service sees it: create or load it, propose states, ship logs.

`headwater._engine.machine.RunEngine` builds the state machine on top of this class; keeping
the service I/O here (every step has a sync and an async twin) leaves the decisions there in
one place. The I/O goes through the `Transport` the call was given, in SDK types only. A WAIT
answer never reaches the state machine: `EngineRun.propose` sleeps as told and asks again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any, Literal

from headwater._context import FlowRunContext, _current_flow_run
from headwater._engine.cancel import forget_cancelled
from headwater._engine.interrupts import RunningContext
from headwater._engine.setup import call_arguments, run_spec, validate_parameters
from headwater._engine.submissions import Submissions
from headwater._logging import local_record, run_logger, setup_logging
from headwater._telemetry import RunSpan, start_flow_run_span
from headwater._transport.interface import DecisionKind
from headwater.exceptions import ParameterTypeError

if TYPE_CHECKING:
    from headwater._engine.runnable import Runnable
    from headwater._runs import FlowRun
    from headwater._states import State
    from headwater._transport.interface import (
        Decision,
        FlowRunSpec,
        Proposal,
        RunSnapshot,
        Transport,
    )

__all__ = ["EngineRun", "ReturnType"]

WAIT = DecisionKind.WAIT

#: The longest single sleep for a WAIT answer; the engine then asks again, so a run whose
#: schedule moved earlier does not oversleep.
_MAX_WAIT_SECONDS = 30.0

ReturnType = Literal["result", "state"]


class EngineRun:
    """What one call knows of its run, and the calls that keep the service informed."""

    #: What runs, in progress lines and messages ("flow"; a task engine says "task").
    kind = "flow"

    def __init__(
        self,
        flow: Runnable,
        parameters: dict[str, Any] | None,
        return_type: ReturnType,
        flow_run_id: str | None,
        transport: Transport,
        known_run: RunSnapshot | None = None,
    ) -> None:
        self.flow = flow
        self.transport = transport
        self.raw_parameters = parameters
        self.return_type = return_type
        self.existing_run_id = flow_run_id
        # The existing run as its caller already read it (a runner's claim): not read again.
        self.known_run = known_run
        self.parent = _current_flow_run.get()
        self.timeout_seconds = flow.timeout_seconds
        if flow.log_prints is not None:
            self.log_prints = bool(flow.log_prints)
        elif self.parent is not None:
            self.log_prints = self.parent.log_prints
        else:
            from headwater._settings import get_settings

            self.log_prints = get_settings().log_prints

        self.run: RunSnapshot | None = None  # the run as the service last reported it
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
        #: The run's span (headwater._telemetry), None when this process does not trace.
        self.span: RunSpan | None = None
        self.log_mark = transport.logs_added
        # What the code submits goes to a copy of the flow's runner (a task has none: a
        # thread pool), opened on the first submit.
        self.submissions = Submissions(getattr(flow, "task_runner", None))

    # -- creating the run ------------------------------------------------------------------

    def create_or_load(self) -> None:
        """Create the run on the service (or read the existing one)."""
        if self.known_run is not None:
            self._created(self._use_existing(self.known_run))
        elif self.existing_run_id is not None:
            self._created(self._use_existing(self.transport.read_flow_run(self.existing_run_id)))
        else:
            self._created(self.transport.create_flow_run(self._prepare()))

    async def acreate_or_load(self) -> None:
        if self.known_run is not None:
            self._created(self._use_existing(self.known_run))
        elif self.existing_run_id is not None:
            snapshot = await self.transport.aread_flow_run(self.existing_run_id)
            self._created(self._use_existing(snapshot))
        else:
            self._created(await self.transport.acreate_flow_run(self._prepare()))

    def _validate(self) -> None:
        """Validate and coerce the parameters; a failure is kept to mark the run FAILED."""
        setup_logging()
        raw = self.raw_parameters if self.raw_parameters is not None else {}
        self.parameters, self.validation_error = validate_parameters(self.flow, raw)

    def _prepare(self) -> FlowRunSpec:
        """Validate parameters and describe the run to create (no I/O)."""
        self._validate()
        self.serialized_parameters = self.flow.serialize_parameters(self.parameters)
        return run_spec(self.flow, self.parameters, self.serialized_parameters, self.parent)

    def _use_existing(self, snapshot: RunSnapshot) -> RunSnapshot:
        stored = snapshot.flow_run().parameters
        if self.raw_parameters is None:
            self.raw_parameters = dict(stored)
        self._validate()
        self.serialized_parameters = stored
        return snapshot

    def _created(self, run: RunSnapshot) -> None:
        self.run = run
        self.run_logger = run_logger(run.id, run.name, self.flow.name)
        self.state = None  # the view converts it on demand: most runs never look
        self.context = FlowRunContext(
            flow=self.flow,
            flow_run_id=run.id,
            make_flow_run=self._current_view,
            parameters=self.parameters,
            parent=self.parent,
            log_prints=self.log_prints,
            logger=self.run_logger,
            transport=self.transport,
        )
        # Tracing hook: one cheap check when not tracing. A run created elsewhere continues
        # the trace stored with it; one created here continues the caller's current span.
        stored = run.trace_context if self.existing_run_id is not None else None
        self.span = start_flow_run_span(self.flow.name, run.id, run.name, stored)

    def _current_view(self) -> FlowRun:
        return self._view(self.state)

    def _view(self, state: State[Any] | None) -> FlowRun:
        assert self.run is not None
        return self.run.flow_run(state)

    def run_count(self) -> int:
        """How many times the service has let the run enter RUNNING."""
        return self.run.run_count if self.run is not None else 0

    def call_arguments(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The function's arguments for the next attempt."""
        return call_arguments(self.flow.fn, self.parameters)

    def running_context(
        self, *, signals: bool = True, async_task: asyncio.Task[Any] | None = None
    ) -> RunningContext:
        """Make this run the current one (and, for a top-level run, handle SIGTERM)."""
        return RunningContext(self, signals=signals, async_task=async_task)

    # -- proposing states ------------------------------------------------------------------

    def _answered(self, decision: Decision) -> Decision:
        if decision.run is not None:
            self.run = decision.run
            if self.context is not None:
                self.context.run_changed()
        if decision.kind is WAIT:
            self._log_wait(decision)
        return decision

    def propose(self, proposal: Proposal) -> Decision:
        """Propose a state until the answer is not WAIT (sleeping as told in between)."""
        assert self.run is not None
        run_id = self.run.id
        while True:
            decision = self._answered(self.transport.propose_flow_run_state(run_id, proposal))
            if decision.kind is not WAIT:
                return decision
            time.sleep(_wait_seconds(decision))

    async def apropose(self, proposal: Proposal) -> Decision:
        assert self.run is not None
        run_id = self.run.id
        while True:
            decision = await self.transport.apropose_flow_run_state(run_id, proposal)
            decision = self._answered(decision)
            if decision.kind is not WAIT:
                return decision
            await asyncio.sleep(_wait_seconds(decision))

    def _log_wait(self, decision: Decision) -> None:
        if self.run_logger is not None and self.run_logger.isEnabledFor(logging.DEBUG):
            self.run_logger.debug(
                "Waiting %.3g s before proposing again: %s",
                _wait_seconds(decision),
                decision.reason or "the service asked to wait",
            )

    # -- submitted task runs ---------------------------------------------------------------

    def _end_submissions(self, interrupt: BaseException | None = None) -> None:
        """Wait until every task run the attempt submitted has ended (before its outcome)."""
        if self.submissions.opened:
            self.submissions.close(interrupt)
            if interrupt is not None and self.run is not None:
                forget_cancelled(self.run.id)

    async def _aend_submissions(self, interrupt: BaseException | None = None) -> None:
        """Async twin of `_end_submissions`: the wait happens off the event loop."""
        if self.submissions.opened:
            await asyncio.to_thread(self.submissions.close, interrupt)
            if interrupt is not None and self.run is not None:
                forget_cancelled(self.run.id)

    # -- log lines -------------------------------------------------------------------------

    def _flush_logs(self) -> None:
        """Store this run's log lines before its state changes, so none is lost or late.

        Free for a run that logged nothing: the count of buffered lines has not moved.
        """
        mark = self.transport.logs_added
        if mark != self.log_mark:
            self.log_mark = mark
            self.transport.flush_logs(wait=True)

    def _ship_late_logs(self) -> None:
        """Send what hooks logged after the final state now, rather than a second later."""
        mark = self.transport.logs_added
        if mark != self.log_mark:
            self.log_mark = mark
            self.transport.flush_logs()

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
            target.handle(local_record(target, level, message, args, adapter.extra))


def _wait_seconds(decision: Decision) -> float:
    return min(max(decision.wait_seconds, 0.0), _MAX_WAIT_SECONDS)

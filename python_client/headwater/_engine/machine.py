"""The state machine of one call: propose each state and obey the service's decision.

The drivers (`headwater._engine.drivers`, `headwater._engine.generators`) decide *when* a step
happens; `RunEngine` decides what each `Decision` means. Its base class,
`headwater._engine.run.EngineRun`, holds what the call has learned and does the talking. Every
step that talks to the service has a sync and an async twin (``fail``/``afail``); the decisions
live in shared methods (`RunEngine._started`, `RunEngine._settle`), so the two can't drift
apart. Nothing here knows whether the runnable is a flow: it needs only what
`headwater._engine.runnable.Runnable` describes.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from headwater._engine import outcomes
from headwater._engine.cancel import (
    CancelScope,
    RunCancelled,
    cancelled_ancestor,
    forget_cancelled,
    stop_task_attempts,
)
from headwater._engine.hooks import arun_hooks, final_hooks_of, run_hooks
from headwater._engine.run import EngineRun, ReturnType
from headwater._engine.timeouts import RunTimeout
from headwater._states import Retrying, Running, State, StateType
from headwater._transport.interface import Decision, DecisionKind, Proposal
from headwater.exceptions import Abort, FlowRunTimeoutError, ServiceUnavailable

if TYPE_CHECKING:
    from headwater._engine.runnable import Hook

__all__ = ["ReturnType", "RunEngine"]

logger = logging.getLogger("headwater.flow_runs")

ACCEPT = DecisionKind.ACCEPT
REJECT = DecisionKind.REJECT
ABORT = DecisionKind.ABORT


class RunEngine(EngineRun):
    """The state of one call, and the steps the drivers take."""

    #: The level of the "Started" line of a run's first attempt. A flow run's is INFO; a task
    #: run's is DEBUG (`TaskEngine`), as Prefect 3 logs only a task run's final line at INFO.
    start_log_level = logging.INFO

    # -- starting an attempt ---------------------------------------------------------------

    def _start_proposal(self) -> Proposal:
        return Proposal(Retrying() if self.attempts else Running())

    def _started(self, decision: Decision) -> bool:
        """Interpret the answer to RUNNING: True when this engine may run the code."""
        kind = decision.kind
        current = decision.state
        if kind is ACCEPT:
            self.attempts += 1
            self.state = self._own(current if current is not None else Running())
            if self.attempts == 1:
                self._progress(self.start_log_level, "Started (%s %r)", (self.kind, self.flow.name))
            else:
                self._info("Retrying: attempt %d", self.run_count())
            return True
        if kind is REJECT and current is not None and current.is_final():
            # Someone else finished it (or it was cancelled): report what the service holds.
            self._finished(current)
            return False
        self.aborted = decision.reason or "the service refused to start it"
        if current is not None:
            self.state = self._own(current)
        self._info("Not started by this process: %s", self.aborted)
        return False

    def start(self) -> bool:
        started = self._started(self.propose(self._start_proposal()))
        if started:
            self._run_hooks(self.flow.on_running_hooks, self.state)
        return started

    async def astart(self) -> bool:
        started = self._started(await self.apropose(self._start_proposal()))
        if started:
            await self._arun_hooks(self.flow.on_running_hooks, self.state)
        return started

    def _parameter_failure(self) -> Proposal:
        exc = self.validation_error
        assert exc is not None
        failure = outcomes.parameters_failed(exc)
        self.raised = exc
        self._flush_logs()
        return failure

    def start_or_reject_parameters(self) -> bool:
        """Start the first attempt, or mark the run FAILED when its parameters were invalid."""
        if self.validation_error is None:
            return self.start()
        proposal = self._parameter_failure()
        self._settle(self.propose(proposal), proposal.state, retryable=False)
        return False

    async def astart_or_reject_parameters(self) -> bool:
        if self.validation_error is None:
            return await self.astart()
        proposal = self._parameter_failure()
        self._settle(await self.apropose(proposal), proposal.state, retryable=False)
        return False

    # -- finishing an attempt --------------------------------------------------------------

    def _completion(self, value: Any) -> tuple[Proposal, bool]:
        """The state to propose for a returned value: (proposal, may_retry).

        Returned futures become their runs' final states (all have ended by now): one future
        ends the run in its state, a list of them in their aggregate, as Prefect does.
        """
        value = outcomes.resolve_returned_futures(value)
        states = outcomes.state_group(value)
        if states is not None:
            proposal = outcomes.aggregate(states)
            if proposal.state.type is StateType.COMPLETED:
                self.value = value
                self.has_value = True
            return proposal, proposal.state.type is StateType.FAILED
        if isinstance(value, State):
            proposal, retryable = outcomes.returned_state(self.flow, value, self.kind)
            if proposal.state.type is StateType.COMPLETED:
                self.value = value.data
                self.has_value = True
            return proposal, retryable
        self.value = value
        self.has_value = True
        return outcomes.completed(self.flow, value, self.parameters), False

    def complete(self, value: Any) -> bool:
        """Propose the end state for a returned value; True when the service wants a retry."""
        self._end_submissions()
        try:
            proposal, retryable = self._completion(value)
        except Exception as exc:  # persisting the result failed: the run fails with that
            return self.fail(exc)
        self._flush_logs()
        return self._settle(self.propose(proposal), proposal.state, retryable=retryable)

    async def acomplete(self, value: Any) -> bool:
        await self._aend_submissions()
        try:
            proposal, retryable = self._completion(value)
        except Exception as exc:
            return await self.afail(exc)
        self._flush_logs()
        return self._settle(await self.apropose(proposal), proposal.state, retryable=retryable)

    def _failure(self, exc: BaseException, timed_out: bool) -> Proposal:
        assert self.run_logger is not None
        proposal = outcomes.failed(exc, timed_out, self.attempts, self.run_logger, self.kind)
        self.raised = exc
        self._flush_logs()
        return proposal

    def fail(self, exc: BaseException, timed_out: bool = False) -> bool:
        """Propose FAILED for an exception; True when the service schedules a retry."""
        self._end_submissions(self._stop_submitted(exc) if timed_out else None)
        proposal = self._failure(exc, timed_out)
        return self._settle(self.propose(proposal), proposal.state, retryable=True)

    async def afail(self, exc: BaseException, timed_out: bool = False) -> bool:
        await self._aend_submissions(self._stop_submitted(exc) if timed_out else None)
        proposal = self._failure(exc, timed_out)
        return self._settle(await self.apropose(proposal), proposal.state, retryable=True)

    def timeout_error(self) -> FlowRunTimeoutError:
        assert self.run is not None
        return outcomes.timeout_error(self.run.name, self.timeout_seconds, self.flow.name)

    def _settle(self, decision: Decision, proposed: State[Any], retryable: bool) -> bool:
        """Interpret the answer to a final-state proposal: True means "run again"."""
        kind = decision.kind
        if kind is ACCEPT:
            self._finished(decision.state if decision.state is not None else proposed)
            return False
        if kind is ABORT:
            self.aborted = decision.reason or "the service aborted the run"
            self._info("Aborted by the service: %s", self.aborted)
            return False
        current = decision.state
        if current is None:  # a refusal that names no state: nothing to follow
            self.aborted = decision.reason or "the service refused the state"
            self._info("The service refused state %s: %s", proposed.name, self.aborted)
            return False
        if retryable and current.type is StateType.SCHEDULED:
            self.state = self._own(current)
            if self.span is not None:  # tracing hook: a retry is an event of the run's span
                self.span.retrying(self.run_count(), proposed.message)
            self._info(
                "%s%s",
                current.message or "Retrying",
                _delay_text(current.scheduled_time),
            )
            self.raised = None
            self.value = None
            self.has_value = False
            return True
        if current.is_final():
            # The service kept another final state (e.g. the run was cancelled meanwhile).
            self.raised = None
            self.has_value = False
            self._finished(current)
            return False
        self.aborted = decision.reason or f"the service kept the run in {current.name}"
        self.state = self._own(current)
        self._info("The service refused state %s: %s", proposed.name, self.aborted)
        return False

    def _own(self, state: State[Any]) -> State[Any]:
        """``state``, marked as this run's (what its ``state_details`` say)."""
        run = self.run
        return state._belongs_to(run.id if run is not None else None)

    def _finished(self, state: State[Any]) -> None:
        state = self._own(state)
        self.state = state
        self.final = state
        if self.context is not None:
            self.context.run_changed()
        level = logging.INFO if state.type is StateType.COMPLETED else logging.ERROR
        self._progress(level, "Ended in state %s", (_state_text(state),))

    # -- cancellation ----------------------------------------------------------------------

    def cancel_scope(self, async_task: asyncio.Task[Any] | None = None) -> CancelScope:
        """Watch this run for CANCELLING while one attempt of its code runs.

        Free for a short attempt: the watch only starts once the code has run for a while.
        """
        assert self.run is not None
        return CancelScope(self.transport, self.run, async_task)

    def _cancellation(self, reason: str) -> Proposal:
        self._info("Cancelling: %s", reason)
        self.raised = None
        self.value = None
        self.has_value = False
        self._flush_logs()
        return outcomes.cancelled(reason)

    def cancel(self, reason: str) -> None:
        """Propose CANCELLED after the run's code was interrupted by its cancellation."""
        self._end_submissions(RunCancelled(reason))
        self._forget_cancelled()
        proposal = self._cancellation(reason)
        self._settle(self.propose(proposal), proposal.state, retryable=False)

    async def acancel(self, reason: str) -> None:
        await self._aend_submissions(RunCancelled(reason))
        self._forget_cancelled()
        proposal = self._cancellation(reason)
        self._settle(await self.apropose(proposal), proposal.state, retryable=False)

    def _stop_submitted(self, exc: BaseException) -> RunTimeout:
        """After this run timed out: stop its task attempts in worker threads (CANCELLED).

        Returns the interrupt to end the task runner with (calls not started are dropped).
        """
        if self.run is not None and self.submissions.opened:
            stop_task_attempts(self.run.id, f"The flow run timed out: {exc}")
        return RunTimeout()

    def _forget_cancelled(self) -> None:
        """Every task run of this run has ended: task attempts are no longer refused."""
        if self.run is not None:
            forget_cancelled(self.run.id)

    def _ancestor_cancellation(self, exc: BaseException) -> str | None:
        """The reason, when ``exc`` is the interrupt of an enclosing run's cancellation."""
        if isinstance(exc, RunCancelled | asyncio.CancelledError):
            reason = cancelled_ancestor(self.parent)
            if reason is not None:
                return f"The parent flow run was cancelled: {reason}"
        return None

    # -- crashes ---------------------------------------------------------------------------

    def _crash_proposal(self, exc: BaseException) -> Proposal | None:
        if self.final is not None or self.run is None or self.aborted is not None:
            return None
        if isinstance(exc, Abort | ServiceUnavailable):
            return None  # not ours to report, or the service cannot hear the report anyway
        reason = self._ancestor_cancellation(exc)
        if reason is not None:
            # A subflow interrupted by its parent's cancellation is cancelled, not crashed.
            return self._cancellation(reason)
        return outcomes.crashed(exc)

    def crash(self, exc: BaseException) -> None:
        """Mark the run CRASHED after an interrupt and run the crash hooks (never raises)."""
        self._end_submissions(exc)
        crash = self._crash_proposal(exc)
        if crash is None:
            return
        try:
            self._flush_logs()
            self._settle(self.propose(crash), crash.state, retryable=False)
        except BaseException as error:  # the report failed too: keep the original exception
            self._report_crash_failure(error)
            return
        self.final_hooks()

    async def acrash(self, exc: BaseException) -> None:
        await self._aend_submissions(exc)
        crash = self._crash_proposal(exc)
        if crash is None:
            return
        try:
            self._flush_logs()
            self._settle(await self.apropose(crash), crash.state, retryable=False)
        except BaseException as error:
            self._report_crash_failure(error)
            return
        await self.afinal_hooks()

    def _report_crash_failure(self, error: BaseException) -> None:
        logger.warning(
            "Could not report flow run %r as crashed (%s: %s); the service will keep its last "
            "known state until it notices the run is gone.",
            self.run.name if self.run else "?",
            type(error).__name__,
            error,
        )

    # -- hooks -----------------------------------------------------------------------------

    def _final_hook_list(self) -> list[Hook]:
        if self.hooks_done or self.final is None:
            return []
        self.hooks_done = True
        return final_hooks_of(self.flow, self.final.type)

    def final_hooks(self) -> None:
        """Run the hooks for the run's final state, once."""
        hooks = self._final_hook_list()
        if hooks:
            self._run_hooks(hooks, self.final)
            self._ship_late_logs()

    async def afinal_hooks(self) -> None:
        hooks = self._final_hook_list()
        if hooks:
            await self._arun_hooks(hooks, self.final)
            self._ship_late_logs()

    def _run_hooks(self, hooks: Sequence[Hook], state: State[Any] | None) -> None:
        if hooks:
            run_hooks(self.flow, hooks, self._view(state), state, self.run_logger)

    async def _arun_hooks(self, hooks: Sequence[Hook], state: State[Any] | None) -> None:
        if hooks:
            await arun_hooks(self.flow, hooks, self._view(state), state, self.run_logger)

    # -- the outcome -----------------------------------------------------------------------

    def outcome(self) -> Any:
        """What the call returns (or raises) once the run has ended."""
        if self.aborted is not None:
            if self.return_type == "state" and self.state is not None:
                return self.state
            name = self.run.name if self.run is not None else "?"
            raise Abort(f"Flow run {name!r} was not run by this process: {self.aborted}")
        state = self.final
        assert state is not None
        if self.return_type == "state":
            return state
        if self.raised is not None:
            raise self.raised
        if self.has_value and state.type is StateType.COMPLETED:
            return self.value
        return state.result()


def _delay_text(scheduled_time: _dt.datetime | None) -> str:
    if scheduled_time is None:
        return ""
    delay = (scheduled_time - _dt.datetime.now(_dt.UTC)).total_seconds()
    return f" (next attempt in {delay:.3g} s)" if delay > 0.001 else ""


def _state_text(state: State[Any]) -> str:
    """``Completed()`` or ``Failed('Flow run raised ValueError: boom')`` for log lines."""
    if state.message:
        return f"{state.name}({state.message!r})"
    return f"{state.name}()"

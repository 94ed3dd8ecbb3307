"""Task runs on the flows' state machine: what differs is only how the run talks to the service.

`TaskEngine` is `RunEngine` with the task's I/O: the run is created and started in one round
trip (`Transport.start_task_run`, which answers RUNNING, or a COMPLETED "Cached" state when
the service holds a valid cache entry for the key), states are proposed as task run states,
and the run context is a `TaskRunContext` (the enclosing flow run's context stays current,
so the task's logs and subflows belong to it). Everything else (what each decision means,
retries decided by the service, timeouts, hooks, the outcome) is `RunEngine`'s, unchanged.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import logging
import time
from typing import TYPE_CHECKING, Any

from headwater._context import TaskRunContext, _current_task_run
from headwater._engine import outcomes
from headwater._engine.cancel import TaskCancelScope
from headwater._engine.machine import RunEngine
from headwater._engine.run import _wait_seconds
from headwater._engine.setup import dump_parameters, run_name
from headwater._engine.submissions import _current_submissions
from headwater._engine.task_call import TaskCall, has_upstream, resolve_upstream
from headwater._logging import TASK_RUN_LOGGER, RunLoggerAdapter, capture_prints, release_prints
from headwater._settings import get_settings
from headwater._telemetry import start_task_run_span
from headwater._transport.interface import Decision, DecisionKind, TaskRunSpec
from headwater.exceptions import Abort, ServiceUnavailable, TaskRunTimeoutError, UpstreamTaskError

if TYPE_CHECKING:
    from headwater._engine.machine import ReturnType
    from headwater._runs import TaskRun
    from headwater._states import State
    from headwater._transport.interface import Proposal, TaskRunSnapshot, Transport

__all__ = ["TaskEngine"]

WAIT = DecisionKind.WAIT

logger = logging.getLogger("headwater.tasks")


class TaskEngine(RunEngine):
    """One task call: `RunEngine`'s state machine over a task run."""

    kind = "task"
    start_log_level = logging.DEBUG

    def __init__(self, call: TaskCall, return_type: ReturnType, transport: Transport) -> None:
        super().__init__(call.task, call.parameters, return_type, None, transport)
        self.call = call
        self.task = call.task
        if call.log_prints is not None:
            self.log_prints = call.log_prints
        self.task_run: TaskRunSnapshot | None = None
        self.task_context: TaskRunContext | None = None
        self.start_decision: Decision | None = None
        self.last_failure: Proposal | None = None
        self.upstream_error: UpstreamTaskError | None = None
        #: The service's answer to a start sent before this engine ran (`early.start_early`):
        #: the spec was built then, so `create_or_load` only takes the answer.
        self.prestarted: Decision | None = None

    # -- creating and starting the run -----------------------------------------------------

    def _spec(self) -> TaskRunSpec:
        """The task run to create (no I/O): name, keys, policy and cache key."""
        self._validate()
        task = self.task
        call = self.call
        self.serialized_parameters = task.serialize_parameters(self.parameters)
        delays = task.retry_delay_seconds
        return TaskRunSpec(
            task_key=task.task_key,
            dynamic_key=call.dynamic_key,
            task_run_id=call.task_run_id,
            flow_run_id=call.flow_run_id,
            name=run_name(
                task, self.parameters, "task_run_name", "task", context=self._unborn_context
            ),
            tags=call.tags,
            parameters_json=dump_parameters(self.serialized_parameters),
            retries=int(task.retries),
            retry_delay_seconds=(
                float(delays) if isinstance(delays, int | float) else tuple(map(float, delays))
            ),
            retry_jitter_factor=float(task.retry_jitter_factor or 0.0),
            timeout_seconds=task.timeout_seconds,
            cache_key=self._cache_key(),
            cache_expiration=(
                _dt.datetime.now(_dt.UTC) + task.cache_expiration
                if task.cache_expiration is not None
                else None
            ),
            refresh_cache=bool(task.refresh_cache),
        )

    def _unborn_context(self) -> TaskRunContext:
        """The task run's context before the run exists: what its name callable and its cache
        policy may read (the task, its parameters, the run's id; no `TaskRun` view yet)."""
        call = self.call
        return TaskRunContext(
            task=self.task,
            task_run_id=call.task_run_id,
            parameters=self.parameters,
            flow_run_id=call.flow_run_id,
        )

    def _cache_key(self) -> str | None:
        """The key from the task's cache policy, when its result is persisted (else None).

        A cached result is read back from result storage, so without persistence there is
        nothing to cache. A key that cannot be computed turns caching off for this call, with
        a warning naming the reason, as Prefect does.
        """
        task = self.task
        policy = task.cache_policy
        if policy is None:
            return None
        persist = task.persist_result
        if persist is None:
            persist = get_settings().results_persist_by_default
        if not persist:
            return None
        try:
            key: str | None = policy.compute_key(
                self._unborn_context(), self.parameters, self.call.flow_parameters
            )
        except Exception as exc:
            logger.warning(
                "Task %r runs without caching: its cache key could not be computed (%s)",
                task.name,
                exc,
            )
            return None
        return key

    def create_or_load(self) -> None:
        if self.prestarted is not None:
            self._started_by(self.prestarted)
            return
        if has_upstream(self.call):
            self._upstream_resolved(resolve_upstream(self.call))
        elif self.call.upstream_failures:  # resolved where it was submitted
            self._upstream_resolved(self.call)
        if self.upstream_error is not None:
            self._created(self.transport.create_task_run(self._spec()), None)
        else:
            self._started_by(self.transport.start_task_run(self._spec()))

    async def acreate_or_load(self) -> None:
        if self.prestarted is not None:
            self._started_by(self.prestarted)
            return
        if has_upstream(self.call):
            # Waiting for upstream runs blocks: not on the event loop.
            self._upstream_resolved(await asyncio.to_thread(resolve_upstream, self.call))
        elif self.call.upstream_failures:
            self._upstream_resolved(self.call)
        if self.upstream_error is not None:
            self._created(await self.transport.acreate_task_run(self._spec()), None)
        else:
            self._started_by(await self.transport.astart_task_run(self._spec()))

    def _upstream_resolved(self, call: TaskCall) -> None:
        """Run with the upstream results; remember the error when an upstream did not complete."""
        self.call = call
        self.raw_parameters = call.parameters
        if call.upstream_failures:
            self.upstream_error = UpstreamTaskError(
                "Upstream "
                + "; ".join(failure.describe() for failure in call.upstream_failures)
                + f", so task {self.task.name!r} did not run."
            )

    def _started_by(self, decision: Decision) -> None:
        snapshot = decision.task_run
        assert snapshot is not None, "the service answered a task start without its run"
        self._created(snapshot, decision)

    def _created(  # type: ignore[override]
        self, snapshot: TaskRunSnapshot, decision: Decision | None
    ) -> None:
        self.task_run = snapshot
        self.start_decision = decision
        call = self.call
        self.run_logger = _task_run_logger(self.parent, snapshot, self.task.name, call)
        self.task_context = TaskRunContext(
            task=self.task,
            task_run_id=snapshot.id,
            parameters=self.parameters,
            flow_run_id=call.flow_run_id,
            log_prints=self.log_prints,
            logger=self.run_logger,
            # The snapshot's own method, not the engine's: a context that pointed back at its
            # engine would make every task run a reference cycle, left for the garbage
            # collector (whose full passes over the whole process cost more than the run).
            make_task_run=snapshot.task_run,
        )
        # Tracing hook: one cheap check when not tracing; the span is the flow run's child.
        self.span = start_task_run_span(
            self.task.name, self.task.task_key, snapshot.id, snapshot.name, call.flow_run_id
        )

    def start_or_reject_parameters(self) -> bool:
        if self.upstream_error is None:
            return super().start_or_reject_parameters()
        proposal = self._not_ready()
        self._settle(self.propose(proposal), proposal.state, retryable=False)
        return False

    async def astart_or_reject_parameters(self) -> bool:
        if self.upstream_error is None:
            return await super().astart_or_reject_parameters()
        proposal = self._not_ready()
        self._settle(await self.apropose(proposal), proposal.state, retryable=False)
        return False

    def _not_ready(self) -> Proposal:
        """FAILED ("NotReady") for a run whose upstream did not complete: it never runs.

        Proposed from PENDING, which the service never turns into a retry: retrying cannot
        bring the upstream result. No hooks run, as the task's code never started.
        """
        exc = self.upstream_error
        assert exc is not None
        self.raised = exc
        self.hooks_done = True
        self._flush_logs()
        return outcomes.not_ready(exc)

    # -- starting an attempt ---------------------------------------------------------------

    def _first_decision(self) -> Decision | None:
        """The start's answer, used once; a WAIT is slept off and RUNNING proposed again."""
        decision = self.start_decision
        self.start_decision = None
        if decision is not None and decision.kind is WAIT:
            time.sleep(_wait_seconds(decision))
            return None
        return decision

    def start(self) -> bool:
        decision = self._first_decision()
        if decision is None:
            return super().start()
        self._answered(decision)
        started = self._started(decision)
        if started:
            self._run_hooks(self.task.on_running_hooks, self.state)
        return started

    async def astart(self) -> bool:
        decision = self.start_decision
        self.start_decision = None
        if decision is not None and decision.kind is WAIT:
            await asyncio.sleep(_wait_seconds(decision))
            decision = None
        if decision is None:
            return await super().astart()
        self._answered(decision)
        started = self._started(decision)
        if started:
            await self._arun_hooks(self.task.on_running_hooks, self.state)
        return started

    # -- proposing states ------------------------------------------------------------------

    def _answered(self, decision: Decision) -> Decision:
        snapshot = decision.task_run
        if snapshot is not None:
            self.task_run = snapshot
            if self.task_context is not None:
                self.task_context.run_changed(snapshot.task_run)
        if decision.kind is WAIT:
            self._log_wait(decision)
        return decision

    def _ends_without_waiting(self, proposal: Proposal) -> Decision | None:
        """Send a COMPLETED end without waiting for its answer, when that is safe.

        Inside a flow run the end rides with the engine's next message: the service applies
        it before the flow run's own final state (the stream orders them), so the flow still
        never finishes ahead of its tasks, and a refusal is logged as a warning by the
        transport. The service's answer to COMPLETED is ACCEPT unless someone else already
        finished the run, so the engine goes on as if accepted. Any other state waits for its
        decision (a failure may be answered AwaitingRetry), and so does a task outside any
        flow or reporting through another transport than its flow run's (another process):
        no later flow state on its stream orders its end.
        """
        parent = self.parent
        if (
            not proposal.state.is_completed()
            or parent is None
            or parent.transport is not self.transport
        ):
            return None
        assert self.task_run is not None
        self.transport.propose_task_run_state_nowait(self.task_run.id, proposal)
        return Decision(DecisionKind.ACCEPT, state=proposal.state)

    def propose(self, proposal: Proposal) -> Decision:
        assert self.task_run is not None
        run_id = self.task_run.id
        if (sent := self._ends_without_waiting(proposal)) is not None:
            return sent
        while True:
            decision = self._answered(self.transport.propose_task_run_state(run_id, proposal))
            if decision.kind is not WAIT:
                return decision
            time.sleep(_wait_seconds(decision))

    async def apropose(self, proposal: Proposal) -> Decision:
        assert self.task_run is not None
        run_id = self.task_run.id
        if (sent := self._ends_without_waiting(proposal)) is not None:
            return sent
        while True:
            decision = await self.transport.apropose_task_run_state(run_id, proposal)
            decision = self._answered(decision)
            if decision.kind is not WAIT:
                return decision
            await asyncio.sleep(_wait_seconds(decision))

    # -- retry conditions ------------------------------------------------------------------

    def _failure(self, exc: BaseException, timed_out: bool) -> Proposal:
        proposal = super()._failure(exc, timed_out)
        self.last_failure = proposal
        return proposal

    def _retry_refused(self) -> Proposal | None:
        """The failure to make final when ``retry_condition_fn`` says no to this retry.

        The service schedules a retry for any failure while retries remain; the task's
        condition is the client's to evaluate, so a refused retry is proposed FAILED again
        from AwaitingRetry, which the service accepts as final. A condition that raises
        refuses the retry (its error is logged).
        """
        condition = self.task.retry_condition_fn
        failure = self.last_failure
        if condition is None or failure is None:
            return None
        try:
            retry = bool(condition(self.task, self._view(failure.state), failure.state))
        except Exception as exc:
            assert self.run_logger is not None
            self.run_logger.error(
                "retry_condition_fn of task %r raised %s: %s; not retrying.",
                self.task.name,
                type(exc).__name__,
                exc,
                exc_info=exc,
            )
            retry = False
        if retry:
            return None
        self._info("Not retrying: retry_condition_fn returned False")
        return failure

    def fail(self, exc: BaseException, timed_out: bool = False) -> bool:
        retry = super().fail(exc, timed_out)
        refused = self._retry_refused() if retry else None
        if refused is None:
            return retry
        self.raised = exc
        return self._settle(self.propose(refused), refused.state, retryable=False)

    async def afail(self, exc: BaseException, timed_out: bool = False) -> bool:
        retry = await super().afail(exc, timed_out)
        refused = self._retry_refused() if retry else None
        if refused is None:
            return retry
        self.raised = exc
        return self._settle(await self.apropose(refused), refused.state, retryable=False)

    # -- what differs for a task run -------------------------------------------------------

    def run_count(self) -> int:
        return self.task_run.run_count if self.task_run is not None else 0

    def _own(self, state: State[Any]) -> State[Any]:
        run = self.task_run
        task_run_id = run.id if run is not None else self.call.task_run_id
        return state._belongs_to(self.call.flow_run_id, task_run_id)

    def _view(self, state: State[Any] | None) -> TaskRun:  # type: ignore[override]
        assert self.task_run is not None
        return self.task_run.task_run()

    def running_context(  # type: ignore[override]
        self, *, signals: bool = True, async_task: asyncio.Task[Any] | None = None
    ) -> _TaskRunning:
        """Make this task run current; the flow run stays current too (SIGTERM is the flow's)."""
        return _TaskRunning(self)

    def cancel_scope(  # type: ignore[override]
        self, async_task: asyncio.Task[Any] | None = None
    ) -> TaskCancelScope | _NoCancelScope:
        """No watch of its own: a task is interrupted by its flow run's cancellation.

        Inline in the flow's thread, the flow's interrupt reaches it; a sync attempt in a
        worker thread is interrupted through a `TaskCancelScope`. An async task in a worker
        runs on a loop of its own, which is not interrupted: it runs to its end.
        """
        if async_task is not None:
            return _NO_CANCEL
        return TaskCancelScope(self.call.flow_run_id)

    def timeout_error(self) -> TaskRunTimeoutError:  # type: ignore[override]
        assert self.task_run is not None
        seconds = f"{self.timeout_seconds or 0:g}"
        return TaskRunTimeoutError(
            f"Task run {self.task_run.name!r} exceeded timeout of {seconds} second"
            f"{'' if seconds == '1' else 's'} and was stopped. Make the task faster or raise "
            f"timeout_seconds on task {self.task.name!r}."
        )

    def _crash_proposal(self, exc: BaseException) -> Proposal | None:
        if self.final is not None or self.task_run is None or self.aborted is not None:
            return None
        if isinstance(exc, Abort | ServiceUnavailable):
            return None
        return outcomes.crashed(exc)

    def outcome(self) -> Any:
        if self.aborted is not None and self.return_type != "state":
            name = self.task_run.name if self.task_run is not None else "?"
            raise Abort(f"Task run {name!r} was not run by this process: {self.aborted}")
        return super().outcome()


class _TaskRunning:
    """The block during which a task run is current (and its prints are captured)."""

    __slots__ = ("_engine", "_submissions_token", "_token")

    def __init__(self, engine: TaskEngine) -> None:
        self._engine = engine
        self._token: Any = None
        self._submissions_token: Any = None

    def __enter__(self) -> None:
        engine = self._engine
        self._token = _current_task_run.set(engine.task_context)
        self._submissions_token = _current_submissions.set(engine.submissions)
        if engine.log_prints:
            capture_prints()
        if engine.span is not None:  # tracing hook (headwater._telemetry)
            engine.span.attach()

    def __exit__(self, *exc_info: Any) -> None:
        engine = self._engine
        if engine.span is not None:  # tracing hook: the span ends with the run
            engine.span.leave(engine.final, engine.aborted, exc_info[1])
        if engine.log_prints:
            release_prints()
        _current_submissions.reset(self._submissions_token)
        _current_task_run.reset(self._token)


class _NoCancelScope:
    """A cancel scope that never fires: `headwater._engine.cancel.CancelScope`'s shape."""

    fired = False
    reason = ""

    def __enter__(self) -> _NoCancelScope:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        return None


_NO_CANCEL = _NoCancelScope()


def _task_run_logger(
    parent: Any, snapshot: TaskRunSnapshot, task_name: str, call: TaskCall
) -> logging.LoggerAdapter[logging.Logger]:
    """The task run's logger: its lines belong to the flow run and name the task run."""
    extra: dict[str, Any] = {
        "task_run_id": snapshot.id,
        "task_run_name": snapshot.name,
        "task_name": task_name,
        "flow_run_id": call.flow_run_id or "",
    }
    if parent is not None and parent.logger is not None:
        extra = {**(parent.logger.extra or {}), **extra}
    return RunLoggerAdapter(_TASK_RUN_LOGGER, extra)


#: Looked up once: `logging.getLogger` takes the logging module's lock on every call.
_TASK_RUN_LOGGER = logging.getLogger(TASK_RUN_LOGGER)

"""The flow engine: runs a flow function and reports every state of the run to the service.

Calling a flow creates a run (PENDING), proposes RUNNING, calls the function in the caller's
thread (or awaits it), and proposes the final state: three round trips on the engine stream for
a trivial run. The service decides; the engine obeys:

- ACCEPT: carry on.
- REJECT: follow the state the service kept. After a failure that state is AwaitingRetry while
  retries remain (retries are the service's decision), so the engine proposes RUNNING named
  "Retrying" and runs the function again; a final state ends the run as the service says.
- WAIT: sleep the given delay and propose again (a retry delay, a scheduled start).
- ABORT: stop without running the code; another engine owns the run.

Hooks run on the client after the state they react to is stored; a failing hook is logged and
never changes the run's state. Interrupts (Ctrl-C, SIGTERM, an enclosing run's timeout) mark the
run CRASHED and propagate.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import inspect
import json
import logging
import signal
import threading
import time
import uuid
from collections.abc import AsyncGenerator, Callable, Generator, Iterable
from typing import TYPE_CHECKING, Any, Literal

from headwater import _parameters
from headwater._context import FlowRunContext, _current_flow_run, current_tags
from headwater._logging import (
    capture_prints,
    flush_logs,
    lines_added,
    release_prints,
    run_logger,
    setup_logging,
)
from headwater._runs import FlowRun
from headwater._state_conversion import (
    failure_from_exception,
    json_result,
    reference_result,
    state_from_proto,
    state_to_proto,
)
from headwater._states import (
    Completed,
    Crashed,
    Failed,
    Retrying,
    Running,
    State,
    StateType,
)
from headwater._timeouts import RunTimeout, TimeoutScope
from headwater.exceptions import (
    Abort,
    FlowRunTimeoutError,
    ParameterTypeError,
    ServiceUnavailable,
    TerminationSignal,
)
from headwater.v1 import flow_runs_pb2, states_pb2

if TYPE_CHECKING:
    from headwater._client import EngineConnection
    from headwater._flows import Flow

__all__ = ["run_flow"]

logger = logging.getLogger("headwater.flow_runs")

ACCEPT = states_pb2.DECISION_ACCEPT
REJECT = states_pb2.DECISION_REJECT
WAIT = states_pb2.DECISION_WAIT
ABORT = states_pb2.DECISION_ABORT

#: The longest single sleep for a WAIT answer; the engine then asks again, so a run whose
#: schedule moved earlier does not oversleep.
_MAX_WAIT_SECONDS = 30.0

_HOOK_ATTRIBUTES = {
    StateType.COMPLETED: "on_completion_hooks",
    StateType.FAILED: "on_failure_hooks",
    StateType.CRASHED: "on_crashed_hooks",
    StateType.CANCELLED: "on_cancellation_hooks",
    StateType.CANCELLING: "on_cancellation_hooks",
}

ReturnType = Literal["result", "state"]

#: Marks engine progress lines that go to the console only: the service already stores every
#: state change as an event, and shipping them would add a write to every trivial run.
_LOCAL_ONLY = {"headwater_local": True}


def run_flow(
    flow: Flow[..., Any],
    parameters: dict[str, Any] | None = None,
    wait_for: Iterable[Any] | None = None,
    return_type: ReturnType = "result",
    *,
    flow_run_id: str | None = None,
) -> Any:
    """Run ``flow`` with ``parameters`` and return its result (or final state).

    Args:
        flow: The flow to run.
        parameters: The call's parameters by name (as `Flow.__call__` binds them). With
            ``flow_run_id`` and no parameters, the run's stored parameters are used.
        wait_for: Futures or states to wait for before the run starts.
        return_type: ``"result"`` returns the value or raises the flow's exception;
            ``"state"`` returns the final `State` and never raises for a failed run.
        flow_run_id: Run this existing run (created elsewhere, e.g. PENDING through the API)
            instead of creating one. If another engine runs it already, the service answers
            ABORT and this raises `Abort`.

    Returns:
        For a sync flow, the result or state. For an async flow, a coroutine of it. For a
        generator flow, a generator (sync or async) yielding what the flow yields.

    Raises:
        Abort: The service told this engine not to run the flow.
        ParameterTypeError: The parameters failed validation (the run is marked FAILED).
        FlowRunTimeoutError: The run exceeded ``timeout_seconds``.
        TerminationSignal: The process got SIGTERM during the run (the run is CRASHED).
        BaseException: Whatever the flow raised, re-raised as the same object.
    """
    engine = _FlowRunEngine(flow, parameters, return_type, flow_run_id)
    if flow.isasync:
        if flow.isgenerator:
            return _run_async_generator(engine, wait_for)
        return _run_async(engine, wait_for)
    if flow.isgenerator:
        return _run_generator(engine, wait_for)
    return _run_sync(engine, wait_for)


# -- drivers ---------------------------------------------------------------------------------


def _run_sync(engine: _FlowRunEngine, wait_for: Iterable[Any] | None) -> Any:
    _wait_for_upstream(wait_for)
    engine.create_or_load()
    with engine.running_context():
        try:
            if engine.start_or_reject_parameters():
                fn = engine.flow.fn
                while True:
                    args, kwargs = engine.call_arguments()
                    try:
                        if engine.timeout_seconds:
                            scope = TimeoutScope(engine.timeout_seconds)
                            with scope:
                                value = fn(*args, **kwargs)
                        else:
                            scope = None
                            value = fn(*args, **kwargs)
                    except RunTimeout:
                        if scope is None or not scope.expired:
                            raise  # an enclosing run's time is up: this run is interrupted
                        retry = engine.fail(engine.timeout_error(), timed_out=True)
                    except Exception as exc:
                        retry = engine.fail(exc)
                    else:
                        retry = engine.complete(value)
                    if not (retry and engine.start()):
                        break
        except BaseException as exc:
            engine.crash(exc)
            raise
        engine.final_hooks()
    return engine.outcome()


async def _run_async(engine: _FlowRunEngine, wait_for: Iterable[Any] | None) -> Any:
    await _await_upstream(wait_for)
    await engine.acreate_or_load()
    with engine.running_context(async_task=asyncio.current_task()):
        try:
            if await engine.astart_or_reject_parameters():
                fn = engine.flow.fn
                while True:
                    args, kwargs = engine.call_arguments()
                    timeout = None
                    try:
                        if engine.timeout_seconds:
                            async with asyncio.timeout(engine.timeout_seconds) as timeout:
                                value = await fn(*args, **kwargs)
                        else:
                            value = await fn(*args, **kwargs)
                    except TimeoutError as exc:
                        if timeout is not None and timeout.expired():
                            retry = await engine.afail(engine.timeout_error(), timed_out=True)
                        else:
                            retry = await engine.afail(exc)
                    except Exception as exc:
                        retry = await engine.afail(exc)
                    else:
                        retry = await engine.acomplete(value)
                    if not (retry and await engine.astart()):
                        break
        except BaseException as exc:
            translated = engine.translate_interrupt(exc)
            await engine.acrash(translated)
            if translated is exc:
                raise
            raise translated from None
        await engine.afinal_hooks()
    return engine.outcome()


def _run_generator(
    engine: _FlowRunEngine, wait_for: Iterable[Any] | None
) -> Generator[Any, Any, None]:
    """A generator flow: the run completes when the flow's generator is exhausted."""
    _wait_for_upstream(wait_for)
    engine.create_or_load()
    deadline = None
    # SIGTERM is handled for the generator's whole life, also while the consumer holds a value:
    # a signal then interrupts the consumer, and closing this generator reports the crash.
    guard = _SigtermGuard(engine).__enter__()
    try:
        with engine.running_context(signals=False):
            started = engine.start_or_reject_parameters()
        while started:
            with engine.running_context(signals=False):
                args, kwargs = engine.call_arguments()
                gen = engine.flow.fn(*args, **kwargs)
                if engine.timeout_seconds:
                    deadline = time.monotonic() + engine.timeout_seconds
            retry = False
            sent: Any = None
            while True:
                with engine.running_context(signals=False):
                    try:
                        value = _step(gen, sent, deadline)
                    except StopIteration as stop:
                        retry = engine.complete(stop.value)
                        break
                    except RunTimeout:
                        if deadline is None or time.monotonic() < deadline:
                            raise
                        retry = engine.fail(engine.timeout_error(), timed_out=True)
                        break
                    except Exception as exc:
                        retry = engine.fail(exc)
                        break
                try:
                    sent = yield value
                except GeneratorExit:
                    gen.close()
                    with engine.running_context(signals=False):
                        if engine.terminated_by is not None:
                            # The consumer was interrupted by SIGTERM while holding a value.
                            engine.crash(TerminationSignal(engine.terminated_by))
                        else:  # the consumer stopped early: the run completes cleanly
                            engine.complete(None)
                    raise
            with engine.running_context(signals=False):
                started = retry and engine.start()
    except GeneratorExit:
        with engine.running_context(signals=False):
            engine.final_hooks()
        raise
    except BaseException as exc:
        with engine.running_context(signals=False):
            engine.crash(exc)
        raise
    finally:
        guard.__exit__()
    with engine.running_context(signals=False):
        engine.final_hooks()
    if engine.return_type == "result":
        engine.outcome()  # raises the flow's exception (or Abort), as a plain call would


async def _run_async_generator(
    engine: _FlowRunEngine, wait_for: Iterable[Any] | None
) -> AsyncGenerator[Any, Any]:
    """An async generator flow: the run completes when the flow's generator is exhausted."""
    await _await_upstream(wait_for)
    await engine.acreate_or_load()
    deadline = None
    try:
        with engine.running_context(signals=False):
            started = await engine.astart_or_reject_parameters()
        while started:
            with engine.running_context(signals=False):
                args, kwargs = engine.call_arguments()
                agen = engine.flow.fn(*args, **kwargs)
                if engine.timeout_seconds:
                    deadline = time.monotonic() + engine.timeout_seconds
            retry = False
            sent: Any = None
            while True:
                with engine.running_context(async_task=asyncio.current_task()):
                    try:
                        value = await _astep(agen, sent, deadline)
                    except StopAsyncIteration:
                        retry = await engine.acomplete(None)
                        break
                    except TimeoutError as exc:
                        if deadline is not None and time.monotonic() >= deadline:
                            timeout_exc = engine.timeout_error()
                            retry = await engine.afail(timeout_exc, timed_out=True)
                        else:
                            retry = await engine.afail(exc)
                        break
                    except Exception as exc:
                        retry = await engine.afail(exc)
                        break
                try:
                    sent = yield value
                except GeneratorExit:
                    await agen.aclose()
                    with engine.running_context(signals=False):
                        await engine.acomplete(None)
                    raise
            with engine.running_context(signals=False):
                started = retry and await engine.astart()
    except GeneratorExit:
        with engine.running_context(signals=False):
            await engine.afinal_hooks()
        raise
    except BaseException as exc:
        translated = engine.translate_interrupt(exc)
        with engine.running_context(signals=False):
            await engine.acrash(translated)
        if translated is exc:
            raise
        raise translated from None
    with engine.running_context(signals=False):
        await engine.afinal_hooks()
    if engine.return_type == "result":
        engine.outcome()


def _step(gen: Generator[Any, Any, Any], sent: Any, deadline: float | None) -> Any:
    if deadline is None:
        return gen.send(sent)
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise RunTimeout()
    with TimeoutScope(remaining):
        return gen.send(sent)


async def _astep(agen: AsyncGenerator[Any, Any], sent: Any, deadline: float | None) -> Any:
    if deadline is None:
        return await agen.asend(sent)
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError()
    async with asyncio.timeout(remaining):
        return await agen.asend(sent)


# -- upstream --------------------------------------------------------------------------------


def _wait_for_upstream(wait_for: Iterable[Any] | None) -> None:
    """Block until every future in ``wait_for`` is done (states are done already)."""
    if not wait_for:
        return
    for item in wait_for:
        if isinstance(item, State):
            continue
        wait = getattr(item, "wait", None)
        if callable(wait):
            wait()


async def _await_upstream(wait_for: Iterable[Any] | None) -> None:
    if not wait_for:
        return
    for item in wait_for:
        if isinstance(item, State):
            continue
        wait = getattr(item, "wait", None)
        if callable(wait):
            waited = wait()
            if inspect.isawaitable(waited):
                await waited


# -- the engine ------------------------------------------------------------------------------


class _FlowRunEngine:
    """The state of one flow call, and the steps the drivers above take.

    Every step that talks to the service has a sync and an async twin (``fail``/``afail``); the
    decisions themselves live in shared methods, so the two can't drift apart.
    """

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
            self.log_prints = _settings().log_prints

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

    def _validate(self) -> None:
        """Validate and coerce the parameters; a failure is kept to mark the run FAILED."""
        setup_logging()
        flow = self.flow
        raw = self.raw_parameters if self.raw_parameters is not None else {}
        parameters = raw
        if flow.should_validate_parameters:
            try:
                parameters = flow.validate_parameters(raw)
            except ParameterTypeError as exc:
                self.validation_error = exc
                parameters = raw
        self.parameters = parameters

    def _prepare(self) -> flow_runs_pb2.CreateFlowRunRequest:
        """Validate parameters and build the create request (no I/O)."""
        self._validate()
        flow = self.flow
        parameters = self.parameters
        self.serialized_parameters = flow.serialize_parameters(parameters)
        request = flow_runs_pb2.CreateFlowRunRequest(
            flow_name=flow.name,
            flow_version=flow.version or "",
            parameters_json=_dump_parameters(self.serialized_parameters),
            name=_flow_run_name(flow, parameters),
        )
        tags = current_tags()
        if tags:
            request.tags.extend(sorted(tags))
        if self.parent is not None:
            request.parent_flow_run_id = self.parent.flow_run_id
        if flow.retries or flow.retry_delay_seconds:
            request.policy.retries = int(flow.retries)
            request.policy.retry_delay.FromNanoseconds(int(flow.retry_delay_seconds * 1e9))
        return request

    def _connect(self) -> EngineConnection:
        from headwater._client import get_connection

        connection = get_connection()
        self.connection = connection
        return connection

    def create_or_load(self) -> None:
        """Create the run on the service (or read the existing one)."""
        connection = self._connect()
        if self.existing_run_id is not None:
            response = connection.get_flow_run(
                flow_runs_pb2.GetFlowRunRequest(flow_run_id=self.existing_run_id)
            )
            self._use_existing(response.flow_run)
            self._created(response.flow_run)
            return
        request = self._prepare()
        self._created(connection.create_flow_run(request).flow_run)

    async def acreate_or_load(self) -> None:
        connection = self._connect()
        if self.existing_run_id is not None:
            response = await connection.aget_flow_run(
                flow_runs_pb2.GetFlowRunRequest(flow_run_id=self.existing_run_id)
            )
            self._use_existing(response.flow_run)
            self._created(response.flow_run)
            return
        request = self._prepare()
        self._created((await connection.acreate_flow_run(request)).flow_run)

    def _use_existing(self, run: flow_runs_pb2.FlowRun) -> None:
        if self.raw_parameters is None:
            self.raw_parameters = json.loads(run.parameters_json) if run.parameters_json else {}
        self._validate()
        self.serialized_parameters = json.loads(run.parameters_json) if run.parameters_json else {}

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
        """The function's arguments; all by keyword when its signature allows (the usual case)."""
        fn = self.flow.fn
        if _keywords_only_call(fn):
            return (), self.parameters
        return _parameters.parameters_to_args_kwargs(fn, self.parameters)

    # -- the run context -------------------------------------------------------------------

    def running_context(
        self, *, signals: bool = True, async_task: asyncio.Task[Any] | None = None
    ) -> _RunningContext:
        """Make this run the current one (and, for a top-level run, handle SIGTERM)."""
        return _RunningContext(self, signals=signals, async_task=async_task)

    # -- proposing states ------------------------------------------------------------------

    def _request(self, proposal: states_pb2.State) -> flow_runs_pb2.SetFlowRunStateRequest:
        assert self.run is not None
        return flow_runs_pb2.SetFlowRunStateRequest(
            flow_run_id=self.run.id, state=proposal, transition_id=str(uuid.uuid4())
        )

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
        while True:
            result = self._answered(self.connection.set_flow_run_state(self._request(proposal)))
            if result.decision != WAIT:
                return result
            time.sleep(_wait_seconds(result))

    async def apropose(self, proposal: states_pb2.State) -> states_pb2.OrchestrationResult:
        assert self.connection is not None
        while True:
            response = await self.connection.aset_flow_run_state(self._request(proposal))
            result = self._answered(response)
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

    # -- starting an attempt ---------------------------------------------------------------

    def _start_proposal(self) -> states_pb2.State:
        return state_to_proto(Retrying() if self.attempts else Running())

    def _started(self, result: states_pb2.OrchestrationResult) -> bool:
        """Interpret the answer to RUNNING: True when this engine may run the code."""
        decision = result.decision
        if decision == ACCEPT:
            self.attempts += 1
            self.state = state_from_proto(result.state, data=None)
            assert self.context is not None
            self.context.run_changed()
            if self.attempts == 1:
                self._info("Started (flow %r)", self.flow.name)
            else:
                self._info("Retrying: attempt %d", self.run.run_count if self.run else 0)
            return True
        current = state_from_proto(result.state) if result.HasField("state") else None
        if decision == REJECT and current is not None and current.is_final():
            # Someone else finished it (or it was cancelled): report what the service holds.
            self._finished(current)
            return False
        self.aborted = result.reason or "the service refused to start it"
        if current is not None:
            self.state = current
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

    def _parameter_failure(self) -> tuple[State[Any], states_pb2.State]:
        exc = self.validation_error
        assert exc is not None
        state = Failed(data=exc, message=f"Parameter validation failed: {exc}")
        self.raised = exc
        return state, state_to_proto(state, failure=failure_from_exception(exc))

    def start_or_reject_parameters(self) -> bool:
        """Start the first attempt, or mark the run FAILED when its parameters were invalid."""
        if self.validation_error is None:
            return self.start()
        state, proposal = self._parameter_failure()
        self._flush_logs()
        self._settle(self.propose(proposal), state, retryable=False)
        return False

    async def astart_or_reject_parameters(self) -> bool:
        if self.validation_error is None:
            return await self.astart()
        state, proposal = self._parameter_failure()
        self._flush_logs()
        self._settle(await self.apropose(proposal), state, retryable=False)
        return False

    # -- finishing an attempt --------------------------------------------------------------

    def _completion(self, value: Any) -> tuple[State[Any], states_pb2.State, bool]:
        """The state to propose for a returned value: (state, proposal, may_retry)."""
        if isinstance(value, State):
            return self._returned_state(value)
        self.value = value
        self.has_value = True
        flow = self.flow
        persist = flow.persist_result
        if persist is None:
            persist = _settings().results_persist_by_default
        if persist:
            from headwater._results import persist_result

            reference = persist_result(value, flow.result_storage, flow.result_serializer)
            data = value if flow.cache_result_in_memory else reference
            state = Completed(data=data)
            return state, state_to_proto(state, result=reference_result(reference)), False
        state = Completed(data=value)
        return state, state_to_proto(state, result=json_result(value)), False

    def _returned_state(self, value: State[Any]) -> tuple[State[Any], states_pb2.State, bool]:
        """A flow that returns a State ends in that state (a returned Failed may retry)."""
        state: State[Any] = State(
            value.type, name=value.name, message=value.message, data=value.data
        )
        failure = None
        result = None
        if state.type in (StateType.FAILED, StateType.CRASHED):
            data = value.data
            if isinstance(data, BaseException):
                failure = failure_from_exception(data)
            else:
                failure = states_pb2.Failure(message=value.message or "")
        elif state.type is StateType.COMPLETED:
            result = json_result(value.data)
            self.value = value.data
            self.has_value = True
        elif not state.is_final():
            raise TypeError(
                f"Flow {self.flow.name!r} returned a {value.name!r} state, which is not a final "
                "state. A flow may return Completed, Failed, Crashed or Cancelled states, or "
                "any other value as its result."
            )
        proposal = state_to_proto(state, result=result, failure=failure)
        return state, proposal, state.type is StateType.FAILED

    def complete(self, value: Any) -> bool:
        """Propose the end state for a returned value; True when the service wants a retry."""
        try:
            state, proposal, retryable = self._completion(value)
        except Exception as exc:  # persisting the result failed: the run fails with that
            return self.fail(exc)
        self._flush_logs()
        return self._settle(self.propose(proposal), state, retryable=retryable)

    async def acomplete(self, value: Any) -> bool:
        try:
            state, proposal, retryable = self._completion(value)
        except Exception as exc:
            return await self.afail(exc)
        self._flush_logs()
        return self._settle(await self.apropose(proposal), state, retryable=retryable)

    def _failure(self, exc: BaseException, timed_out: bool) -> tuple[State[Any], states_pb2.State]:
        assert self.run_logger is not None
        if timed_out:
            message = str(exc)
            self.run_logger.error("%s", message)
            state = Failed(data=exc, message=message, name="TimedOut")
        else:
            message = f"Flow run raised {type(exc).__name__}: {exc}"
            self.run_logger.error("Attempt %d raised:", self.attempts, exc_info=exc)
            state = Failed(data=exc, message=message)
        self.raised = exc
        return state, state_to_proto(state, failure=failure_from_exception(exc))

    def fail(self, exc: BaseException, timed_out: bool = False) -> bool:
        """Propose FAILED for an exception; True when the service schedules a retry."""
        state, proposal = self._failure(exc, timed_out)
        self._flush_logs()
        return self._settle(self.propose(proposal), state, retryable=True)

    async def afail(self, exc: BaseException, timed_out: bool = False) -> bool:
        state, proposal = self._failure(exc, timed_out)
        self._flush_logs()
        return self._settle(await self.apropose(proposal), state, retryable=True)

    def timeout_error(self) -> FlowRunTimeoutError:
        assert self.run is not None
        seconds = self.timeout_seconds or 0
        shown = f"{seconds:g}"
        return FlowRunTimeoutError(
            f"Flow run {self.run.name!r} exceeded timeout of {shown} second"
            f"{'' if shown == '1' else 's'} and was stopped. Make the flow faster or raise "
            f"timeout_seconds on flow {self.flow.name!r}."
        )

    def _settle(
        self, result: states_pb2.OrchestrationResult, proposed: State[Any], retryable: bool
    ) -> bool:
        """Interpret the answer to a final-state proposal: True means "run again"."""
        decision = result.decision
        if decision == ACCEPT:
            self._finished(state_from_proto(result.state, data=proposed.data))
            return False
        if decision == ABORT:
            self.aborted = result.reason or "the service aborted the run"
            self._info("Aborted by the service: %s", self.aborted)
            return False
        current = state_from_proto(result.state)
        if retryable and current.type is StateType.SCHEDULED:
            self.state = current
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
        self.aborted = result.reason or f"the service kept the run in {current.name}"
        self.state = current
        self._info("The service refused state %s: %s", proposed.name, self.aborted)
        return False

    def _finished(self, state: State[Any]) -> None:
        self.state = state
        self.final = state
        if self.context is not None:
            self.context.run_changed()
        level = logging.INFO if state.type is StateType.COMPLETED else logging.ERROR
        self._progress(level, "Ended in state %s", (_state_text(state),))

    # -- crashes ---------------------------------------------------------------------------

    def translate_interrupt(self, exc: BaseException) -> BaseException:
        """An async run cancelled by our SIGTERM handler raises `TerminationSignal`."""
        if self.terminated_by is not None and isinstance(exc, asyncio.CancelledError):
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            return TerminationSignal(self.terminated_by)
        return exc

    def _crash_proposal(self, exc: BaseException) -> tuple[State[Any], states_pb2.State] | None:
        if self.final is not None or self.run is None or self.aborted is not None:
            return None
        if isinstance(exc, Abort | ServiceUnavailable):
            return None  # not ours to report, or the service cannot hear the report anyway
        state = Crashed(data=exc, message=_crash_message(exc))
        return state, state_to_proto(state, failure=failure_from_exception(exc))

    def crash(self, exc: BaseException) -> None:
        """Mark the run CRASHED after an interrupt and run the crash hooks (never raises)."""
        crash = self._crash_proposal(exc)
        if crash is None:
            return
        state, proposal = crash
        try:
            self._flush_logs()
            self._settle(self.propose(proposal), state, retryable=False)
        except BaseException as error:  # the report failed too: keep the original exception
            self._report_crash_failure(error)
            return
        self.final_hooks()

    async def acrash(self, exc: BaseException) -> None:
        crash = self._crash_proposal(exc)
        if crash is None:
            return
        state, proposal = crash
        try:
            self._flush_logs()
            self._settle(await self.apropose(proposal), state, retryable=False)
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

    def _final_hook_list(self) -> list[Callable[..., Any]]:
        if self.hooks_done or self.final is None:
            return []
        self.hooks_done = True
        attribute = _HOOK_ATTRIBUTES.get(self.final.type)
        return list(getattr(self.flow, attribute, ())) if attribute else []

    def final_hooks(self) -> None:
        hooks = self._final_hook_list()
        if hooks:
            self._run_hooks(hooks, self.final)
            self._ship_late_logs()

    async def afinal_hooks(self) -> None:
        hooks = self._final_hook_list()
        if hooks:
            await self._arun_hooks(hooks, self.final)
            self._ship_late_logs()

    def _ship_late_logs(self) -> None:
        """Send what hooks logged after the final state now, rather than a second later."""
        if lines_added() != self.log_mark:
            self.log_mark = lines_added()
            flush_logs()

    def _run_hooks(self, hooks: list[Callable[..., Any]], state: State[Any] | None) -> None:
        if not hooks:
            return
        view = self._view(state)
        for hook in hooks:
            try:
                outcome = hook(self.flow, view, state)
                if inspect.isawaitable(outcome):
                    _run_coroutine_blocking(outcome)
            except Exception as exc:
                self._hook_failed(hook, state, exc)

    async def _arun_hooks(self, hooks: list[Callable[..., Any]], state: State[Any] | None) -> None:
        if not hooks:
            return
        view = self._view(state)
        for hook in hooks:
            try:
                outcome = hook(self.flow, view, state)
                if inspect.isawaitable(outcome):
                    await outcome
            except Exception as exc:
                self._hook_failed(hook, state, exc)

    def _hook_failed(
        self, hook: Callable[..., Any], state: State[Any] | None, exc: Exception
    ) -> None:
        name = getattr(hook, "__qualname__", None) or repr(hook)
        assert self.run_logger is not None
        self.run_logger.error(
            "Hook %r of flow %r raised %s: %s. The run stays %s; fix the hook to stop this error.",
            name,
            self.flow.name,
            type(exc).__name__,
            exc,
            state.name if state is not None else "unchanged",
            exc_info=exc,
        )

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

    def _flush_logs(self) -> None:
        """Store this run's log lines before its state changes, so none is lost or late.

        Free for a run that logged nothing: the count of buffered lines has not moved.
        """
        mark = lines_added()
        if mark != self.log_mark:
            self.log_mark = mark
            flush_logs(wait=True)

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


class _RunningContext:
    """Sets the run context (and print capture, and the SIGTERM handler) for a block."""

    __slots__ = ("_engine", "_guard", "_token")

    def __init__(
        self, engine: _FlowRunEngine, signals: bool, async_task: asyncio.Task[Any] | None
    ) -> None:
        self._engine = engine
        self._guard = _SigtermGuard(engine, async_task) if signals else None
        self._token: Any = None

    def __enter__(self) -> None:
        engine = self._engine
        self._token = _current_flow_run.set(engine.context)
        if engine.log_prints:
            capture_prints()
        if self._guard is not None:
            self._guard.__enter__()

    def __exit__(self, *exc_info: Any) -> None:
        if self._guard is not None:
            self._guard.__exit__()
        if self._engine.log_prints:
            release_prints()
        _current_flow_run.reset(self._token)


class _SigtermGuard:
    """Turns SIGTERM into `TerminationSignal` while a top-level run is in progress.

    Installed only in the main thread (the only one Python delivers signals to) and only for
    top-level runs; the previous handler is restored afterwards. For an async run the handler
    cancels the run's task instead of raising, because an exception raised inside the event
    loop's own code would never reach the flow's coroutine.
    """

    __slots__ = ("_async_task", "_engine", "_installed", "_previous")

    def __init__(self, engine: _FlowRunEngine, async_task: asyncio.Task[Any] | None = None) -> None:
        self._engine = engine
        self._async_task = async_task
        self._previous: Any = None
        self._installed = False

    def __enter__(self) -> _SigtermGuard:
        if self._engine.parent is None and threading.current_thread() is threading.main_thread():
            handler = self._async_handler() if self._async_task is not None else self._raise
            self._previous = signal.signal(signal.SIGTERM, handler)
            self._installed = True
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if self._installed and threading.current_thread() is threading.main_thread():
            previous = self._previous
            # None means the previous handler was not installed from Python: use the default.
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
        self._installed = False
        self._previous = None

    def _raise(self, signum: int, frame: Any) -> None:
        self._engine.terminated_by = signum
        raise TerminationSignal(signum)

    def _async_handler(self) -> Callable[[int, Any], None]:
        engine = self._engine
        task = self._async_task
        assert task is not None
        loop = task.get_loop()

        def handler(signum: int, frame: Any) -> None:
            engine.terminated_by = signum
            loop.call_soon_threadsafe(task.cancel)

        return handler


# -- helpers ---------------------------------------------------------------------------------


_KEYWORD_KINDS = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def _keywords_only_call(fn: Callable[..., Any]) -> bool:
    """True when every parameter of ``fn`` can be passed by keyword (no ``*args``, no ``/``)."""
    try:
        parameters = _parameters.signature_of(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return all(parameter.kind in _KEYWORD_KINDS for parameter in parameters)


def _settings() -> Any:
    from headwater._settings import get_settings

    return get_settings()


def _dump_parameters(parameters: dict[str, Any]) -> str:
    if not parameters:
        return "{}"
    try:
        return json.dumps(parameters, allow_nan=False)
    except (TypeError, ValueError):
        # serialize_parameters promises JSON values; keep the run going if one slipped through.
        return json.dumps({key: _json_or_type(value) for key, value in parameters.items()})


def _json_or_type(value: Any) -> Any:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return f"<{type(value).__name__}>"
    return value


def _flow_run_name(flow: Flow[..., Any], parameters: dict[str, Any]) -> str:
    """The run's name from ``flow_run_name`` ("" lets the service generate one).

    Raises:
        ValueError: The template names something that is not a parameter, or is malformed.
        TypeError: The callable returned something other than a string.
    """
    template = flow.flow_run_name
    if template is None:
        return ""
    if callable(template):
        namer: Any = template
        try:
            wants_parameters = "parameters" in _parameters.signature_of(template).parameters
        except (TypeError, ValueError):
            wants_parameters = False
        try:
            name = namer(parameters=dict(parameters)) if wants_parameters else namer()
        except Exception as exc:
            exc.add_note(
                f"Raised by the flow_run_name callable of flow {flow.name!r}; fix the callable "
                "or pass a template string such as 'run-{x}'."
            )
            raise
        if not isinstance(name, str):
            raise TypeError(
                f"The flow_run_name callable of flow {flow.name!r} returned "
                f"{type(name).__name__}, but a run name must be a str. Return a string."
            )
        return name
    try:
        return template.format(**parameters)
    except KeyError as exc:
        raise ValueError(
            f"flow_run_name {template!r} of flow {flow.name!r} refers to {exc.args[0]!r}, "
            f"which is not a parameter of the flow (its parameters are {sorted(parameters)}). "
            "Use parameter names in braces, e.g. 'run-{x}', and write '{{' and '}}' for "
            "literal braces."
        ) from None
    except (IndexError, ValueError) as exc:
        raise ValueError(
            f"flow_run_name {template!r} of flow {flow.name!r} is not a valid template ({exc}). "
            "Use parameter names in braces, e.g. 'run-{x}', and write '{{' and '}}' for "
            "literal braces."
        ) from None


def _wait_seconds(result: states_pb2.OrchestrationResult) -> float:
    wait = result.wait
    seconds = wait.seconds + wait.nanos / 1e9
    return min(max(seconds, 0.0), _MAX_WAIT_SECONDS)


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


def _crash_message(exc: BaseException) -> str:
    if isinstance(exc, TerminationSignal):
        return f"The process received signal {exc.signal} (SIGTERM) while the run was running."
    if isinstance(exc, KeyboardInterrupt):
        return "The run was interrupted (KeyboardInterrupt)."
    if isinstance(exc, RunTimeout):
        return "The run was interrupted because an enclosing flow run exceeded its timeout."
    if isinstance(exc, asyncio.CancelledError):
        return "The run's asyncio task was cancelled."
    return f"The run crashed: {type(exc).__name__}: {exc}"


def _run_coroutine_blocking(awaitable: Any) -> Any:
    """Run an async hook from sync code, even when this thread already runs an event loop."""

    async def wrapper() -> Any:
        return await awaitable

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(wrapper())
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = asyncio.run(wrapper())
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="headwater-hook")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")

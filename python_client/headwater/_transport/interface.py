"""What the engine and the run logger ask of a transport, in the SDK's own types.

The engine (`headwater._engine`) and the run logs (`headwater._logging`) never see gRPC or a
generated message: they call a `Transport` they were given, with the frozen values defined
here, and get `State`, `FlowRun` and `Decision` back. The process-wide stream
(`headwater._transport.stream.transport.StreamTransport`, opened by
`headwater._transport.runtime`) is the default implementation; a worker talking to a second
service, or a test, passes another one.

This module imports neither grpc nor ``headwater.v1``, so the engine can import it cheaply.

Example::

    from headwater._flows import run_flow
    from headwater._transport.runtime import open_transport

    other = open_transport("10.0.0.7:4200")   # a second service, beside the default one
    run_flow(etl, {"day": "2026-11-27"}, transport=other)
"""

from __future__ import annotations

import datetime as _dt
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable

    from headwater._results import ResultReference
    from headwater._runs import FlowRun, TaskRun
    from headwater._states import State

__all__ = [
    "Decision",
    "DecisionKind",
    "FlowRunSpec",
    "LogLine",
    "Proposal",
    "RunSnapshot",
    "TaskRunSnapshot",
    "TaskRunSpec",
    "TaskStateProblem",
    "Transport",
]


class DecisionKind(enum.Enum):
    """The service's answer to a proposed state (its rules decide; the engine obeys)."""

    #: The state was stored as proposed.
    ACCEPT = "ACCEPT"
    #: The state was refused; `Decision.state` is the state the service kept or set instead
    #: (AwaitingRetry after a failure while retries remain, a final state someone else set).
    REJECT = "REJECT"
    #: Propose again after `Decision.wait_seconds` (a retry delay, a scheduled start).
    WAIT = "WAIT"
    #: Stop without running the code: another engine owns the run.
    ABORT = "ABORT"


@dataclass(frozen=True, slots=True)
class Decision:
    """The service's answer to one proposal.

    Attributes:
        kind: ACCEPT, REJECT, WAIT or ABORT.
        state: ACCEPT: the state as stored (carrying the proposal's in-memory data). REJECT:
            the state the service kept or set. None when the answer carried no state.
        wait_seconds: For WAIT, how long to wait before proposing again (0 otherwise).
        reason: The service's explanation ("" when it gave none).
        run: The flow run after this answer (None when the answer did not report it).
        task_run: The task run after this answer, for task run operations (else None).
    """

    kind: DecisionKind
    state: State[Any] | None = None
    wait_seconds: float = 0.0
    reason: str = ""
    run: RunSnapshot | None = None
    task_run: TaskRunSnapshot | None = None


@dataclass(frozen=True, slots=True)
class Proposal:
    """A state the engine proposes, and what travels with it.

    ``state.data`` (the value or exception the caller gets back) never travels as it is: the
    result travels as JSON text or as a reference to result storage, a failure as the
    exception's type, message and traceback.

    Attributes:
        state: The state for the caller (type, name, message, scheduled time, data).
        result_json: The result as inline JSON text, when it has one.
        result_reference: Where the persisted result lives, when it was persisted.
        failure: The exception the run failed with, or only a message (a returned Failed
            state without one).
    """

    state: State[Any]
    result_json: str | None = None
    result_reference: ResultReference | None = None
    failure: BaseException | str | None = None


@dataclass(frozen=True, slots=True)
class FlowRunSpec:
    """What the engine asks the service to create for one flow call.

    Attributes:
        flow_name: The flow's name (the service creates the flow on first use).
        flow_version: The version of the flow's code ("" when unknown).
        parameters: The parameters as JSON values (what `FlowRun.parameters` shows).
        parameters_json: The same parameters as JSON text, as they travel and are stored.
        name: The run's name; "" lets the service generate one.
        tags: The run's labels.
        parent_flow_run_id: The enclosing run for a subflow.
        retries: How many times the service lets a failed run retry.
        retry_delay_seconds: How long the service schedules a retry after a failure.
    """

    flow_name: str
    parameters_json: str = "{}"
    parameters: dict[str, Any] = field(default_factory=dict)
    flow_version: str = ""
    name: str = ""
    tags: tuple[str, ...] = ()
    parent_flow_run_id: str | None = None
    retries: int = 0
    retry_delay_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class RunSnapshot:
    """A run as the service reported it: what the engine needs at once, the rest on demand.

    Most runs never look at their `FlowRun` view (only hooks, ``get_run_context()`` and a
    cancellation watch do), so the view, with its times, state and ``last_sequence``, is
    converted only when asked for.

    Attributes:
        id: The run's id.
        name: The run's name.
        run_count: How many times the run has entered RUNNING.
        load: Builds the view; given a state, shows that one instead of the one the service
            sent (the engine's own state keeps the in-memory result).
        trace_context: The W3C trace context stored with the run when it was created
            (``traceparent``, ``tracestate``): where its span continues a caller's trace;
            None when the creator did not trace.
    """

    id: str
    name: str
    run_count: int
    load: Callable[[State[Any] | None], FlowRun] = field(repr=False, compare=False)
    trace_context: Mapping[str, str] | None = field(default=None, repr=False, compare=False)

    def flow_run(self, state: State[Any] | None = None) -> FlowRun:
        """The SDK view of the run, showing ``state`` when given."""
        return self.load(state)


@dataclass(frozen=True, slots=True)
class TaskRunSpec:
    """What the engine asks the service to create for one task call.

    Attributes:
        task_key: Identifies the task definition (e.g. ``"mymodule.extract-1a2b3c"``).
        dynamic_key: Tells apart calls of one task within a flow run ("0", "1", ...).
        flow_run_id: The flow run the call belongs to; None for a task called outside any
            flow (tracked as its own task run).
        name: The task run's name; "" lets the service derive one from the key.
        tags: The run's labels.
        parameters_json: The task's inputs as JSON text.
        retries: How many times the service lets a failed run retry.
        retry_delay_seconds: The delay before each retry, or one delay per retry (the last
            repeats), as Prefect's ``retry_delay_seconds`` takes a number or a list.
        retry_jitter_factor: The service spreads each delay ``d`` over
            [d * (1 - f), d * (1 + f)] when it schedules the retry.
        timeout_seconds: The engine's limit for one attempt (stored by the service); None: none.
        cache_key: The key the result is cached under; a valid entry answers the start with a
            COMPLETED "Cached" state instead of RUNNING. None: no caching.
        cache_expiration: When this run's own cache entry stops being valid; None: never.
        refresh_cache: Run even when a valid entry exists (the result becomes the newest entry).
        task_run_id: The id the new run gets, chosen by the caller (a future knows its run's
            id at submit time); None lets the service choose. A create resent with the same id
            returns that run; an id already naming another call's run is refused
            (ObjectAlreadyExists).
    """

    task_key: str
    dynamic_key: str
    flow_run_id: str | None = None
    name: str = ""
    tags: tuple[str, ...] = ()
    parameters_json: str = "{}"
    retries: int = 0
    retry_delay_seconds: float | tuple[float, ...] = 0.0
    retry_jitter_factor: float = 0.0
    timeout_seconds: float | None = None
    cache_key: str | None = None
    cache_expiration: _dt.datetime | None = None
    refresh_cache: bool = False
    task_run_id: str | None = None


@dataclass(frozen=True, slots=True)
class TaskRunSnapshot:
    """A task run as the service reported it.

    Attributes:
        id: The task run's id (what later proposals name).
        name: Its name.
        run_count: How many times it has entered RUNNING.
        load: Builds the full view (`TaskRun`) only when someone asks for it.
        created: False when the create named an existing (flow run, task key, dynamic key):
            the service returned that run, as Prefect's API does.
    """

    id: str
    name: str
    run_count: int
    load: Callable[[], TaskRun] = field(repr=False, compare=False)
    created: bool = True

    def task_run(self) -> TaskRun:
        """The SDK view of the task run."""
        return self.load()


@dataclass(frozen=True, slots=True)
class TaskStateProblem:
    """A task state proposed without waiting whose answer was not a plain ACCEPT.

    Attributes:
        task_run_id: The task run the proposal was for.
        proposal: The proposal as sent.
        decision: The service's answer (None when the operation failed outright).
        error: The exception when the operation failed (a ServiceError), else None.
    """

    task_run_id: str
    proposal: Proposal
    decision: Decision | None = None
    error: BaseException | None = None


@dataclass(frozen=True, slots=True)
class LogLine:
    """One run log line for the service to store.

    Attributes:
        flow_run_id: The run the line belongs to.
        logger_name: The logger that emitted it (``headwater.flow_runs``, a user's logger).
        level: The `logging` level number.
        message: The formatted message, with a traceback appended when there was one.
        created: When the line was logged, in seconds since the epoch (``LogRecord.created``).
        task_run_id: The task run, for lines logged inside a task ("" otherwise).
    """

    flow_run_id: str
    logger_name: str
    level: int
    message: str
    created: float
    task_run_id: str = ""


class Transport(Protocol):
    """How the engine and the run logger reach a Headwater service.

    Every method is thread-safe. The sync methods block the calling thread until the service
    answers; the ``a``-prefixed twins are awaitable from any event loop. Task runs have their
    own create, start and propose methods beside the flow run ones, and a proposal that does
    not wait (`propose_task_run_state_nowait`) for a task's final state: the service applies
    it before any later flow run proposal on the same transport, and its answer is checked by
    `flush_task_run_states`.

    Raises (from every call that reaches the service):
        InvalidRequest, ObjectNotFound, ObjectAlreadyExists, FailedPrecondition, ServiceError:
            the service refused the call (its message says why).
        ServiceUnavailable: the service could not be reached in time.
    """

    @property
    def address(self) -> str:
        """The service's address, for messages."""
        ...

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop on which `wait_for_cancelling` must be awaited."""
        ...

    @property
    def logs_added(self) -> int:
        """How many log lines `ship_log` has taken so far (a run compares it before and after)."""
        ...

    def create_flow_run(self, spec: FlowRunSpec) -> RunSnapshot:
        """Create a run (PENDING); a resend after a reconnect creates nothing twice."""
        ...

    async def acreate_flow_run(self, spec: FlowRunSpec) -> RunSnapshot:
        """Async twin of `create_flow_run`."""
        ...

    def read_flow_run(self, flow_run_id: str) -> RunSnapshot:
        """Read an existing run (created elsewhere, e.g. through the API)."""
        ...

    async def aread_flow_run(self, flow_run_id: str) -> RunSnapshot:
        """Async twin of `read_flow_run`."""
        ...

    def propose_flow_run_state(self, flow_run_id: str, proposal: Proposal) -> Decision:
        """Propose a state; the answer is a `Decision` (a REJECT is no error)."""
        ...

    async def apropose_flow_run_state(self, flow_run_id: str, proposal: Proposal) -> Decision:
        """Async twin of `propose_flow_run_state`."""
        ...

    def start_task_run(self, spec: TaskRunSpec) -> Decision:
        """Create a task run and propose RUNNING in one round trip.

        The decision says what to do: ACCEPT (run the code), REJECT with a COMPLETED "Cached"
        state (a valid cache entry: use its result), or ABORT/REJECT for an existing run that
        already runs or finished. ``Decision.task_run`` carries the run's id. A resend after a
        reconnect creates nothing twice.
        """
        ...

    async def astart_task_run(self, spec: TaskRunSpec) -> Decision:
        """Async twin of `start_task_run`."""
        ...

    def start_task_run_then(
        self,
        spec: TaskRunSpec,
        then: Callable[[Decision | None, BaseException | None], object],
    ) -> None:
        """`start_task_run` without blocking: ``then`` gets the decision (or the error) later.

        ``then`` is called once, on the transport's loop, so it must not block. Starts sent
        this way from one thread leave together (a thousand submitted tasks take a few
        messages, not a thousand round trips).
        """
        ...

    def create_task_run(self, spec: TaskRunSpec) -> TaskRunSnapshot:
        """Create a task run in PENDING without starting it (e.g. a submitted task that waits)."""
        ...

    async def acreate_task_run(self, spec: TaskRunSpec) -> TaskRunSnapshot:
        """Async twin of `create_task_run`."""
        ...

    def propose_task_run_state(
        self,
        task_run_id: str,
        proposal: Proposal,
        *,
        cache_key: str | None = None,
        cache_expiration: _dt.datetime | None = None,
        refresh_cache: bool = False,
    ) -> Decision:
        """Propose a task run state and wait for the decision.

        ``cache_key`` (with its expiration) gives the run its key with this proposal, for a
        task that computes it just before running; ``refresh_cache`` makes a RUNNING proposal
        ignore existing entries.
        """
        ...

    async def apropose_task_run_state(
        self,
        task_run_id: str,
        proposal: Proposal,
        *,
        cache_key: str | None = None,
        cache_expiration: _dt.datetime | None = None,
        refresh_cache: bool = False,
    ) -> Decision:
        """Async twin of `propose_task_run_state`."""
        ...

    def propose_task_run_state_nowait(self, task_run_id: str, proposal: Proposal) -> None:
        """Send a task's (final) state without waiting for the answer.

        It rides with the next message on the stream; the service applies it before any flow
        run proposal sent after it. `flush_task_run_states` reports answers that were not ACCEPT.
        """
        ...

    def flush_task_run_states(self, timeout: float | None = None) -> list[TaskStateProblem]:
        """Wait until every no-wait task proposal so far is answered; return those not accepted.

        Each problem is returned once. Raises TimeoutError after ``timeout`` seconds.
        """
        ...

    async def aflush_task_run_states(self) -> list[TaskStateProblem]:
        """Async twin of `flush_task_run_states`."""
        ...

    def ship_log(self, line: LogLine) -> None:
        """Buffer a log line; lines go in batches, without waiting, about a second later."""
        ...

    def flush_logs(self, wait: bool = False) -> None:
        """Send the buffered lines now; with ``wait``, return once the service stored them."""
        ...

    async def wait_for_cancelling(self, flow_run_id: str, after_sequence: int) -> str | None:
        """Follow a RUNNING run; return the CANCELLING state's message when it is cancelled.

        Returns None when the run leaves RUNNING otherwise, is gone, or the transport closes.
        Awaited on `loop` only; the caller cancels it when the run's code ends first.
        """
        ...

    def close(self, timeout: float | None = 5.0) -> None:
        """Send what is buffered, wait up to ``timeout`` seconds for answers, then close."""
        ...

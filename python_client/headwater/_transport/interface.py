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

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable

    from headwater._results import ResultReference
    from headwater._runs import FlowRun
    from headwater._states import State

__all__ = [
    "Decision",
    "DecisionKind",
    "FlowRunSpec",
    "LogLine",
    "Proposal",
    "RunSnapshot",
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
        run: The run after this answer (None when the answer did not report it).
    """

    kind: DecisionKind
    state: State[Any] | None = None
    wait_seconds: float = 0.0
    reason: str = ""
    run: RunSnapshot | None = None


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
    """

    id: str
    name: str
    run_count: int
    load: Callable[[State[Any] | None], FlowRun] = field(repr=False, compare=False)

    def flow_run(self, state: State[Any] | None = None) -> FlowRun:
        """The SDK view of the run, showing ``state`` when given."""
        return self.load(state)


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
    answers; the ``a``-prefixed twins are awaitable from any event loop. Task runs will add
    their own create and propose methods beside the flow run ones.

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

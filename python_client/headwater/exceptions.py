"""Every exception the Headwater SDK raises, in one place so callers know what to catch.

Our exception hierarchy::

    BaseException
    ├── HeadwaterSignal                 control flow, deliberately not an `Exception`
    │   ├── Abort                       the service told the engine to stop this run now
    │   └── TerminationSignal           the process received SIGTERM (carries the signal number)
    └── Exception
        └── HeadwaterException
            ├── ParameterTypeError      parameters fail validation against the annotations
            ├── ParameterBindError      (+ TypeError) arguments do not fit the signature
            ├── ReservedArgumentError   (+ TypeError) a flow function uses a reserved argument name
            ├── InvalidNameError        (+ ValueError) a name contains a banned character
            ├── MissingFlowError        an entrypoint or script holds no such flow
            ├── UnspecifiedFlowError    several flows found and none was named
            ├── ScriptError             running a flow script raised (see `.user_exc`)
            ├── MissingResult           a persisted result cannot be read back
            ├── FlowVisualizationError  `Flow.visualize()` could not run the flow's code
            ├── MissingContextError     (+ RuntimeError) run-only code called outside a run
            ├── UnfinishedRun           asked for the result of a run that has not finished
            ├── FailedRun               the run failed and stored no exception of its own
            ├── CrashedRun              the run crashed (infrastructure, signal, lost process)
            ├── CancelledRun            the run was cancelled
            ├── FlowRunTimeoutError     (+ TimeoutError) the run exceeded `timeout_seconds`
            ├── TaskRunTimeoutError     (+ TimeoutError) a task run exceeded `timeout_seconds`
            ├── UpstreamTaskError       a task's upstream run did not complete, so it never ran
            ├── MappingLengthMismatch   (+ ValueError) `Task.map` got iterables of unequal length
            ├── MappingMissingIterable  (+ ValueError) `Task.map` got nothing to map over
            ├── SettingsError           (+ ValueError) a HEADWATER_* variable is unusable
            └── ServiceError            the service answered an RPC with an error status
                ├── InvalidRequest      INVALID_ARGUMENT
                ├── ObjectNotFound      NOT_FOUND
                ├── ObjectAlreadyExists ALREADY_EXISTS
                ├── FailedPrecondition  FAILED_PRECONDITION
                └── ServiceUnavailable  UNAVAILABLE

The signals derive from `BaseException` so that user code written as ``except Exception:`` inside
a flow cannot swallow a cancellation or a shutdown. Every exception here survives a pickle round
trip, because runs report failures across process boundaries.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from collections.abc import Callable
    from inspect import Signature

    from pydantic import ValidationError

__all__ = [
    "Abort",
    "CancelledRun",
    "CrashedRun",
    "FailedPrecondition",
    "FailedRun",
    "FlowRunTimeoutError",
    "FlowVisualizationError",
    "HeadwaterException",
    "HeadwaterSignal",
    "InvalidNameError",
    "InvalidRequest",
    "MappingLengthMismatch",
    "MappingMissingIterable",
    "MissingContextError",
    "MissingFlowError",
    "MissingResult",
    "ObjectAlreadyExists",
    "ObjectNotFound",
    "ParameterBindError",
    "ParameterTypeError",
    "ReservedArgumentError",
    "ScriptError",
    "ServiceError",
    "ServiceUnavailable",
    "SettingsError",
    "TaskRunTimeoutError",
    "TerminationSignal",
    "UnfinishedRun",
    "UnspecifiedFlowError",
    "UpstreamTaskError",
]


class HeadwaterException(Exception):
    """Base class for every error the Headwater SDK raises on purpose."""


class HeadwaterSignal(BaseException):
    """Base class for control-flow signals that user code must not catch by accident."""


class Abort(HeadwaterSignal):
    """The service answered a state proposal with ABORT: the engine stops this run at once.

    This happens when the run was deleted, or another process already moved it on, so carrying
    on would report states for a run the service no longer expects.
    """


class TerminationSignal(HeadwaterSignal):
    """The process received a termination signal (SIGTERM) while a run was in progress.

    The engine raises it from its signal handler so the run is reported as crashed and hooks run
    before the process exits.

    Attributes:
        signal: The signal number, e.g. ``signal.SIGTERM``.
    """

    def __init__(self, signal: int) -> None:
        self.signal = int(signal)
        super().__init__(f"Received signal {self.signal}; the run was interrupted.")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.signal,))


class ParameterTypeError(HeadwaterException):
    """Flow parameters do not match the types annotated on the flow function.

    The message lists every bad field, so one attempt shows everything to fix.
    """

    @classmethod
    def from_validation_error(
        cls, exc: ValidationError, flow_name: str | None = None
    ) -> ParameterTypeError:
        """Build a readable, picklable error from a pydantic `ValidationError`.

        Pydantic's own error is not always picklable, and its text is written for model authors,
        not for someone who passed ``x="abc"`` to a flow.
        """
        lines = []
        for error in exc.errors(include_url=False):
            location = ".".join(str(part) for part in error.get("loc", ())) or "(parameters)"
            detail = error.get("msg", "invalid value")
            if "input" in error and error.get("type") != "missing":
                detail += f" (got {_short_repr(error['input'])})"
            lines.append(f"{location}: {detail}")
        return cls.from_messages(lines, flow_name=flow_name)

    @classmethod
    def from_messages(cls, problems: list[str], flow_name: str | None = None) -> ParameterTypeError:
        """Build the error from one line per bad field."""
        who = f"Flow {flow_name!r}" if flow_name else "Flow run"
        body = "\n - ".join(problems)
        return cls(
            f"{who} received invalid parameters:\n - {body}\n"
            "Pass values that match the type annotations, or turn validation off with "
            "@flow(validate_parameters=False)."
        )


class ParameterBindError(HeadwaterException, TypeError):
    """The call's arguments do not fit the function's signature, as a TypeError would say."""

    @classmethod
    def from_bind_failure(
        cls,
        fn: Callable[..., Any],
        exc: TypeError,
        call_args: tuple[Any, ...],
        call_kwargs: dict[str, Any],
        signature: Signature | None = None,
    ) -> ParameterBindError:
        """Explain a failed ``Signature.bind``: which function, its signature, what it got."""
        import inspect

        name = getattr(fn, "__name__", type(fn).__name__)
        if signature is None:
            try:
                signature = inspect.signature(fn)
            except (TypeError, ValueError):
                signature = None
        shown = f"{name}{signature}" if signature is not None else name
        return cls(
            f"Cannot bind the arguments to {name!r}: {clause(exc)}. "
            f"The function is `{shown}`; it received {len(call_args)} positional "
            f"argument(s) and keyword argument(s) {sorted(call_kwargs)}. "
            "Call it with arguments that match its signature."
        )


class ReservedArgumentError(HeadwaterException, TypeError):
    """A flow function declares a parameter the flow call itself uses (``return_state``)."""


class InvalidNameError(HeadwaterException, ValueError):
    """A name contains a character the service refuses (``/ % & > <``)."""


class MissingFlowError(HeadwaterException):
    """The entrypoint or script holds no flow with the requested name."""


class UnspecifiedFlowError(HeadwaterException):
    """Several flows were found and none was named, so the choice is ambiguous."""


class ScriptError(HeadwaterException):
    """Running a flow script (or importing a flow module) raised an exception.

    Attributes:
        user_exc: The exception the script raised; also set as ``__cause__`` where raised.
        path: The file (or module) that was being run.
    """

    def __init__(self, user_exc: BaseException, path: str) -> None:
        self.user_exc = user_exc
        self.path = path
        super().__init__(
            f"Running the script {path!r} raised {type(user_exc).__name__}: {clause(user_exc)}. "
            "Fix the error in that file (or install what it imports) and try again."
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.user_exc, self.path))


class MissingResult(HeadwaterException):
    """A persisted result cannot be read back (its file is gone, or it was never written)."""


class FlowVisualizationError(HeadwaterException):
    """`Flow.visualize()` could not draw the flow: its code failed while task calls were
    replaced by placeholders (see ``__cause__``), or Graphviz refused the graph."""


class MissingContextError(HeadwaterException, RuntimeError):
    """Code that needs a run (``get_run_logger()``) was called outside any flow run."""


class UnfinishedRun(HeadwaterException):
    """The run has not reached a final state, so it has no result yet."""


class FailedRun(HeadwaterException):
    """The run failed without storing an exception of its own to re-raise."""


class CrashedRun(HeadwaterException):
    """The run crashed: its process died, was signalled, or lost contact with the service."""


class CancelledRun(HeadwaterException):
    """The run was cancelled before it finished."""


class FlowRunTimeoutError(HeadwaterException, TimeoutError):
    """The run took longer than the flow's ``timeout_seconds`` and was stopped."""


class TaskRunTimeoutError(HeadwaterException, TimeoutError):
    """A task run's attempt took longer than the task's ``timeout_seconds`` and was stopped."""


class UpstreamTaskError(HeadwaterException):
    """A task run did not run because a run it depends on did not complete.

    The message names the upstream task run; the downstream run ends FAILED ("NotReady")
    without its function being called.
    """


class MappingLengthMismatch(HeadwaterException, ValueError):
    """`Task.map` was given iterables of different lengths, so calls cannot be paired up."""


class MappingMissingIterable(HeadwaterException, ValueError):
    """`Task.map` was given no iterable argument to map over."""


class SettingsError(HeadwaterException, ValueError):
    """One or more ``HEADWATER_*`` variables hold values Headwater cannot use.

    Raised when the settings are first read (the first flow call, client or CLI command), so a
    bad address or home fails at once instead of after a timeout.

    Attributes:
        problems: One sentence per bad variable, each naming it and saying what it accepts.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("Invalid Headwater settings: " + "; ".join(self.problems))

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.problems,))


class ServiceError(HeadwaterException):
    """The service answered an RPC with an error status.

    The gRPC client maps the status code onto a subclass and copies the service's stable
    ``google.rpc.ErrorInfo`` reason, so callers can catch `ObjectNotFound` and branch on
    ``reason`` (``"FLOW_RUN_NOT_FOUND"``) without parsing messages.

    Attributes:
        code: The gRPC status code name, e.g. ``"NOT_FOUND"``.
        reason: The service's stable machine-readable reason, e.g. ``"FLOW_RUN_NOT_FOUND"``.
        message: The service's explanation for a person.
    """

    #: The status code name a subclass stands for; ``None`` on the catch-all base class.
    CODE: ClassVar[str | None] = None

    def __init__(self, code: str, reason: str = "", message: str = "") -> None:
        self.code = code
        self.reason = reason
        self.message = message
        super().__init__(message or f"The service returned {code} ({reason or 'no reason'}).")

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_service_error, (type(self), self.code, self.reason, self.message))

    @classmethod
    def from_status(cls, code: str, reason: str = "", message: str = "") -> ServiceError:
        """Return the typed error for a status code name (the base class for unmapped codes)."""
        error_cls = _SERVICE_ERRORS_BY_CODE.get(code)
        if error_cls is None:
            return ServiceError(code, reason, message)
        return error_cls(reason, message)


class _CodedServiceError(ServiceError):
    """A `ServiceError` whose code is fixed by its class, so callers pass only reason+message."""

    def __init__(self, reason: str = "", message: str = "") -> None:
        assert self.CODE is not None
        super().__init__(self.CODE, reason, message)


class InvalidRequest(_CodedServiceError):
    """INVALID_ARGUMENT: a request field is missing or malformed; the message names it."""

    CODE = "INVALID_ARGUMENT"


class ObjectNotFound(_CodedServiceError):
    """NOT_FOUND: the flow, run or other object does not exist."""

    CODE = "NOT_FOUND"


class ObjectAlreadyExists(_CodedServiceError):
    """ALREADY_EXISTS: creating the object would duplicate a unique name or key."""

    CODE = "ALREADY_EXISTS"


class FailedPrecondition(_CodedServiceError):
    """FAILED_PRECONDITION: the object is in a state that does not allow the request."""

    CODE = "FAILED_PRECONDITION"


class ServiceUnavailable(_CodedServiceError):
    """UNAVAILABLE: the service cannot answer right now; retrying later may succeed."""

    CODE = "UNAVAILABLE"


_SERVICE_ERRORS_BY_CODE: dict[str, type[_CodedServiceError]] = {
    cls.CODE: cls
    for cls in (
        InvalidRequest,
        ObjectNotFound,
        ObjectAlreadyExists,
        FailedPrecondition,
        ServiceUnavailable,
    )
    if cls.CODE is not None
}


def _rebuild_service_error(
    cls: type[ServiceError], code: str, reason: str, message: str
) -> ServiceError:
    """Unpickle any `ServiceError` subclass whatever its constructor signature."""
    error = cls.__new__(cls)
    ServiceError.__init__(error, code, reason, message)
    return error


def clause(error: BaseException | str) -> str:
    """An error's text for the middle of a sentence: without its own closing full stop.

    Messages quote exceptions before saying what to do ("...: boom. Fix ..."); an exception
    whose text already ends in "." would otherwise give "boom.. Fix".
    """
    return str(error).rstrip(" .")


def _short_repr(value: Any, limit: int = 60) -> str:
    """A repr short enough for an error line: parameters can be huge."""
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."

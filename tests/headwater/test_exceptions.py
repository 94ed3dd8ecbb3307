"""The exception hierarchy: what each error is catchable as, and that all survive pickling."""

from __future__ import annotations

import pickle
import signal

import pytest
from headwater import exceptions
from headwater.exceptions import (
    Abort,
    CancelledRun,
    CrashedRun,
    FailedPrecondition,
    FailedRun,
    FlowRunTimeoutError,
    HeadwaterException,
    HeadwaterSignal,
    InvalidNameError,
    InvalidRequest,
    MissingFlowError,
    MissingResult,
    ObjectAlreadyExists,
    ObjectNotFound,
    ParameterBindError,
    ParameterTypeError,
    ReservedArgumentError,
    ScriptError,
    ServiceError,
    ServiceUnavailable,
    SettingsError,
    TerminationSignal,
    UnfinishedRun,
    UnspecifiedFlowError,
)

ERRORS = [
    ParameterTypeError,
    ParameterBindError,
    ReservedArgumentError,
    InvalidNameError,
    MissingFlowError,
    UnspecifiedFlowError,
    MissingResult,
    UnfinishedRun,
    FailedRun,
    CrashedRun,
    CancelledRun,
    FlowRunTimeoutError,
]

SERVICE_ERRORS = {
    "INVALID_ARGUMENT": InvalidRequest,
    "NOT_FOUND": ObjectNotFound,
    "ALREADY_EXISTS": ObjectAlreadyExists,
    "FAILED_PRECONDITION": FailedPrecondition,
    "UNAVAILABLE": ServiceUnavailable,
}


def test_module_docstring_draws_every_exception() -> None:
    doc = exceptions.__doc__ or ""
    for name in exceptions.__all__:
        assert f"── {name}" in doc, name


@pytest.mark.parametrize("error_cls", [*ERRORS, ScriptError, ServiceError])
def test_errors_are_headwater_exceptions(error_cls: type[Exception]) -> None:
    assert issubclass(error_cls, HeadwaterException)
    assert issubclass(error_cls, Exception)


@pytest.mark.parametrize(
    ("error_cls", "builtin"),
    [
        (ParameterBindError, TypeError),
        (ReservedArgumentError, TypeError),
        (InvalidNameError, ValueError),
        (FlowRunTimeoutError, TimeoutError),
        (SettingsError, ValueError),
    ],
)
def test_errors_that_are_also_builtins(error_cls: type[Exception], builtin: type) -> None:
    assert issubclass(error_cls, builtin)


@pytest.mark.parametrize("signal_cls", [Abort, TerminationSignal])
def test_signals_escape_except_exception(signal_cls: type[BaseException]) -> None:
    assert issubclass(signal_cls, HeadwaterSignal)
    assert not issubclass(signal_cls, Exception)
    args = (signal.SIGTERM,) if signal_cls is TerminationSignal else ("stop",)
    with pytest.raises(signal_cls):
        try:
            raise signal_cls(*args)
        except Exception:  # user code like this must not swallow the signal
            pytest.fail("a signal was caught by `except Exception`")


def test_termination_signal_carries_the_signal_number() -> None:
    error = TerminationSignal(signal.SIGTERM)
    assert error.signal == signal.SIGTERM == 15
    restored = pickle.loads(pickle.dumps(error))
    assert type(restored) is TerminationSignal and restored.signal == 15


@pytest.mark.parametrize("error_cls", [*ERRORS, Abort])
def test_message_errors_pickle(error_cls: type[BaseException]) -> None:
    restored = pickle.loads(pickle.dumps(error_cls("message")))
    assert type(restored) is error_cls
    assert str(restored) == "message"


def test_script_error_keeps_the_user_exception_and_names_the_file() -> None:
    cause = ImportError("No module named 'pandas'")
    error = ScriptError(user_exc=cause, path="flows/etl.py")
    assert error.user_exc is cause
    assert error.path == "flows/etl.py"
    assert "'flows/etl.py'" in str(error) and "ImportError" in str(error)
    restored = pickle.loads(pickle.dumps(error))
    assert (type(restored.user_exc), restored.path, str(restored)) == (
        ImportError,
        "flows/etl.py",
        str(error),
    )


@pytest.mark.parametrize(("code", "error_cls"), list(SERVICE_ERRORS.items()))
def test_service_errors_map_status_codes(code: str, error_cls: type[ServiceError]) -> None:
    error = ServiceError.from_status(code, "FLOW_RUN_NOT_FOUND", "No flow run with id 'x'.")
    assert type(error) is error_cls
    assert (error.code, error.reason, error.message) == (
        code,
        "FLOW_RUN_NOT_FOUND",
        "No flow run with id 'x'.",
    )
    assert str(error) == "No flow run with id 'x'."
    assert code == error_cls.CODE
    direct = error_cls("REASON", "message")
    assert direct.code == code


def test_unmapped_codes_give_the_base_service_error() -> None:
    error = ServiceError.from_status("INTERNAL", "INTERNAL", "boom")
    assert type(error) is ServiceError
    assert error.code == "INTERNAL"


def test_service_error_without_message_still_says_something() -> None:
    assert "NOT_FOUND" in str(ObjectNotFound())


@pytest.mark.parametrize(
    "error",
    [ServiceError("INTERNAL", "R", "m"), *(cls("R", "m") for cls in SERVICE_ERRORS.values())],
)
def test_service_errors_pickle(error: ServiceError) -> None:
    restored = pickle.loads(pickle.dumps(error))
    assert type(restored) is type(error)
    assert (restored.code, restored.reason, restored.message) == (error.code, "R", "m")


def test_parameter_bind_error_from_bind_failure() -> None:
    def fn(a, b):  # type: ignore[no-untyped-def]
        ...

    error = ParameterBindError.from_bind_failure(fn, TypeError("missing b"), (1,), {"c": 2})
    message = str(error)
    assert "'fn'" in message and "missing b" in message
    assert "`fn(a, b)`" in message
    assert "1 positional argument(s)" in message and "['c']" in message
    assert str(pickle.loads(pickle.dumps(error))) == message


def test_settings_error_lists_each_problem_and_pickles() -> None:
    from headwater._settings import SettingsError as FromSettings

    assert FromSettings is SettingsError  # one class, importable from both places
    assert issubclass(SettingsError, HeadwaterException)
    error = SettingsError(["HEADWATER_API_URL has no port", "HEADWATER_HOME is a file"])
    assert str(error) == (
        "Invalid Headwater settings: HEADWATER_API_URL has no port; HEADWATER_HOME is a file"
    )
    restored = pickle.loads(pickle.dumps(error))
    assert type(restored) is SettingsError
    assert restored.problems == error.problems and str(restored) == str(error)

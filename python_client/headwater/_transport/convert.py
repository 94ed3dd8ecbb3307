"""The one place where SDK states (`headwater._states.State`) and wire states meet.

The engine builds proto states for proposals and turns the service's answers back into SDK
states several times per run, so these functions avoid work they do not need: timestamps are
converted only when present, and results are encoded as JSON only when they are small.
"""

from __future__ import annotations

import datetime as _dt
import json
import json.scanner
import traceback
from typing import Any

from headwater._results import MAX_INLINE_RESULT_BYTES, inline_json
from headwater._states import UNSTORED_RESULT, State, StateType
from headwater.v1 import states_pb2

__all__ = [
    "MAX_INLINE_RESULT_BYTES",
    "failure_from_exception",
    "json_result",
    "loads_json",
    "reference_from_proto",
    "reference_result",
    "state_from_proto",
    "state_to_proto",
    "state_type_from_proto",
    "state_type_to_proto",
    "to_datetime",
]

_UTC = _dt.UTC

_TYPE_TO_PROTO: dict[StateType, states_pb2.StateType] = {
    StateType.SCHEDULED: states_pb2.STATE_TYPE_SCHEDULED,
    StateType.PENDING: states_pb2.STATE_TYPE_PENDING,
    StateType.RUNNING: states_pb2.STATE_TYPE_RUNNING,
    StateType.COMPLETED: states_pb2.STATE_TYPE_COMPLETED,
    StateType.FAILED: states_pb2.STATE_TYPE_FAILED,
    StateType.CANCELLED: states_pb2.STATE_TYPE_CANCELLED,
    StateType.CANCELLING: states_pb2.STATE_TYPE_CANCELLING,
    StateType.CRASHED: states_pb2.STATE_TYPE_CRASHED,
    StateType.PAUSED: states_pb2.STATE_TYPE_PAUSED,
}
_TYPE_FROM_PROTO: dict[int, StateType] = {value: key for key, value in _TYPE_TO_PROTO.items()}

_UNSET: Any = object()


def state_type_to_proto(state_type: StateType) -> int:
    """The ``headwater.v1.StateType`` number of an SDK state type."""
    return _TYPE_TO_PROTO[StateType(state_type)]


def state_type_from_proto(value: int) -> StateType:
    """The SDK state type of a ``headwater.v1.StateType`` number.

    Raises:
        ValueError: The service sent a type this SDK does not know (a newer service).
    """
    try:
        return _TYPE_FROM_PROTO[value]
    except KeyError:
        raise ValueError(
            f"The service sent state type {value}, which this version of the SDK does not "
            "know. Upgrade the headwater package to match the service."
        ) from None


def state_to_proto(
    state: State[Any],
    *,
    result: states_pb2.StateResult | None = None,
    failure: states_pb2.Failure | None = None,
) -> states_pb2.State:
    """Build the proposal for ``state``.

    The service assigns ids and creation times, so only the type, name, message, scheduled time
    and the optional result or failure travel. ``state.data`` is never sent as is: the caller
    decides how a result travels (`json_result`, `reference_result`).
    """
    message = states_pb2.State()
    fill_state_proto(message, state)
    if result is not None:
        message.result.CopyFrom(result)
    if failure is not None:
        message.failure.CopyFrom(failure)
    return message


def fill_state_proto(message: states_pb2.State, state: State[Any]) -> None:
    """Write ``state``'s type, name, message and scheduled time into ``message``.

    For a message that is already a field of the request being built, so nothing is copied.
    """
    message.type = _TYPE_TO_PROTO[state.type]
    if state.name:
        message.name = state.name
    if state.message:
        message.message = state.message
    if state.scheduled_time is not None:
        message.scheduled_time.FromDatetime(state.scheduled_time)


_new_state = State.__new__
_now = _dt.datetime.now


def state_from_proto(message: states_pb2.State, data: Any = _UNSET) -> State[Any]:
    """Turn a state the service sent into an SDK `State`.

    Args:
        message: The wire state.
        data: The in-memory data to attach (the engine's own result or exception). When not
            given, the data is decoded from the message: a JSON result, a persisted-result
            reference, or nothing.
    """
    if data is _UNSET:
        data = _data_from_proto(message)
    state_type = _TYPE_FROM_PROTO.get(message.type) or state_type_from_proto(message.type)
    # Filled directly: what `State.__init__` would do with these (already valid) values, at
    # a fraction of its cost, for the one or two answers every run reads.
    state: State[Any] = _new_state(State)
    state.type = state_type
    state.name = message.name or _TITLES[state_type]
    state.message = message.message or None
    state.timestamp = (
        to_datetime(message.create_time) if message.HasField("create_time") else _now(_UTC)
    )
    state.id = message.id or None
    state.data = data
    state.scheduled_time = (
        to_datetime(message.scheduled_time) if message.HasField("scheduled_time") else None
    )
    return state


#: The default name of each state type ("Running"), as `State` gives it.
_TITLES: dict[StateType, str] = {state_type: state_type.value.title() for state_type in StateType}


_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)
_timedelta = _dt.timedelta


def to_datetime(timestamp: Any) -> _dt.datetime:
    """A Timestamp as an aware UTC datetime: what ``ToDatetime(tzinfo=UTC)`` gives (to the
    microsecond, truncated), for the valid Timestamps the service sends.

    Several times cheaper than ``Timestamp.ToDatetime``, which checks the range and converts
    the time zone again; every answer the engine reads carries one or two of these, and a
    listed task run five.
    """
    us = timestamp.seconds * 1_000_000 + timestamp.nanos // 1000
    moment = _MOMENTS.get(us)
    if moment is None:
        if len(_MOMENTS) >= _MOMENTS_KEPT:
            _MOMENTS.clear()
        # Positional arguments: timedelta's keyword parsing costs a third of the call.
        moment = _MOMENTS[us] = _EPOCH + _timedelta(0, 0, us)
    return moment


#: Times converted lately, by microseconds since the epoch: a task run's five (created,
#: started, ended, updated, and its state's) are two or three distinct values. A datetime is
#: immutable, so handing out one object twice changes nothing for its holders.
_MOMENTS: dict[int, _dt.datetime] = {}
_MOMENTS_KEPT = 4096


#: The scanner of a decoder with the standard library's defaults, as ``json.loads`` has it
#: (typeshed types the argument as a scanner, not as the decoder its settings are read from).
_scan_json = json.scanner.make_scanner(json.JSONDecoder())  # type: ignore[arg-type]


def loads_json(text: str) -> Any:
    """``json.loads(text)`` for text that is one JSON value and nothing else, as the service
    stores parameters and results: a third of the cost, same value, same errors.

    The scanner is what ``json.loads`` runs after its checks of the argument and around it:
    when it reads the whole text the value is the one ``json.loads`` returns; anything else
    (whitespace around the value, trailing data, invalid JSON) is left to ``json.loads``,
    which answers it as it always does.
    """
    try:
        value, end = _scan_json(text, 0)
    except StopIteration:
        return json.loads(text)
    if end != len(text):
        return json.loads(text)
    return value


def _data_from_proto(message: states_pb2.State) -> Any:
    if not message.HasField("result"):
        # A COMPLETED state without one: the value was never stored (see `UnstoredResult`).
        return UNSTORED_RESULT if message.type == states_pb2.STATE_TYPE_COMPLETED else None
    result = message.result
    kind = result.WhichOneof("kind")
    if kind == "json":
        return loads_json(result.json)
    if kind == "reference":
        return reference_from_proto(result.reference)
    if kind == "payload" and result.payload.encoding in ("python/pickle", "python/cloudpickle"):
        import pickle

        return pickle.loads(result.payload.data)
    return None


def json_result(value: Any) -> states_pb2.StateResult | None:
    """The result as inline JSON, or None when it is not JSON-able or too large to send.

    Only values that the standard library encodes as they are qualify (no NaN, no custom
    types), so any language reads back exactly what the flow returned.
    """
    text = inline_json(value)
    return None if text is None else states_pb2.StateResult(json=text)


def reference_result(reference: Any) -> states_pb2.StateResult:
    """The wire form of a `headwater._results.ResultReference`.

    Local files travel as ``file://`` URIs so other processes and languages can find them.
    """
    key = reference.storage_key
    uri = _path_to_uri(key)
    return states_pb2.StateResult(
        reference=states_pb2.ResultReference(storage_uri=uri, serializer=reference.serializer)
    )


def reference_from_proto(reference: states_pb2.ResultReference) -> Any:
    """A `headwater._results.ResultReference` for a wire reference (``file://`` or a key)."""
    from headwater._results import ResultReference

    uri = reference.storage_uri
    if uri.startswith("file://"):
        from urllib.parse import urlparse
        from urllib.request import url2pathname

        key = url2pathname(urlparse(uri).path)
    else:
        key = uri
    return ResultReference(storage_key=key, serializer=reference.serializer)


def _path_to_uri(key: str) -> str:
    import os.path

    if os.path.isabs(key):
        from pathlib import Path

        return Path(key).as_uri()
    return key


def failure_from_exception(exc: BaseException) -> states_pb2.Failure:
    """Describe an exception for the service: its qualified type, message and traceback."""
    cls = type(exc)
    module = cls.__module__
    qualname = cls.__qualname__
    return states_pb2.Failure(
        exception_type=qualname if module in (None, "") else f"{module}.{qualname}",
        message=str(exc),
        traceback="".join(traceback.format_exception(exc)),
    )

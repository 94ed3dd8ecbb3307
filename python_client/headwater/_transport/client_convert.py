"""Wire records to SDK records: ``headwater.v1`` flows, runs, events and logs to `headwater._runs`.

The public clients and the engine hand user code these SDK records only; this module is where the
generated messages are read. States go through `headwater._transport.convert.state_from_proto`,
so a state means the same thing whichever path brought it. Each record keeps its message in
``raw``.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from headwater._runs import Flow, FlowRun, FlowRunEvent, Log, RunFailure, TaskRun
from headwater._transport.convert import (
    loads_json,
    state_from_proto,
    state_type_to_proto,
    to_datetime,
)
from headwater.v1 import states_pb2

if TYPE_CHECKING:
    from google.protobuf import duration_pb2

    from headwater._states import State
    from headwater.v1 import flow_runs_pb2, flows_pb2, logs_pb2, task_runs_pb2

__all__ = [
    "event_from_proto",
    "flow_from_proto",
    "flow_run_from_proto",
    "json_object",
    "log_from_proto",
    "parse_state_type",
    "task_run_from_proto",
    "time_of",
]

R = TypeVar("R")


def flow_run_from_proto(
    message: flow_runs_pb2.FlowRun,
    *,
    parameters: dict[str, Any] | None = None,
    state: State[Any] | None = None,
) -> FlowRun:
    """The SDK view of a run message (see `FlowRun.from_proto` for the arguments)."""
    if parameters is None:
        parameters = json_object(message.parameters_json)
    if state is None and message.HasField("state"):
        state = state_from_proto(message.state)._belongs_to(message.id)
    return FlowRun(
        id=message.id,
        name=message.name,
        flow_name=message.flow_name,
        parameters=parameters,
        run_count=message.run_count,
        state=state,
        tags=tuple(message.tags),
        parent_flow_run_id=message.parent_flow_run_id or None,
        flow_id=message.flow_id,
        flow_version=message.flow_version or None,
        deployment_id=message.deployment_id or None,
        parent_task_run_id=message.parent_task_run_id or None,
        idempotency_key=message.idempotency_key or None,
        retries=message.policy.retries,
        retry_delay_seconds=_seconds(message.policy.retry_delay),
        expected_start_time=time_of(message, "expected_start_time"),
        start_time=time_of(message, "start_time"),
        end_time=time_of(message, "end_time"),
        total_run_time=_dt.timedelta(seconds=_seconds(message.total_run_time)),
        created=time_of(message, "create_time"),
        updated=time_of(message, "update_time"),
        last_sequence=message.last_sequence,
        failure=_failure(message.state),
        auto_scheduled=message.auto_scheduled,
        job_variables=json_object(message.job_variables_json) if message.job_variables_json else {},
        raw=message,
    )


def event_from_proto(message: flow_runs_pb2.FlowRunEvent) -> FlowRunEvent:
    """The SDK form of one history entry."""
    state = (
        state_from_proto(message.state_changed)._belongs_to(message.flow_run_id)
        if message.HasField("state_changed")
        else None
    )
    task = message.task_run_state_changed if message.HasField("task_run_state_changed") else None
    return FlowRunEvent(
        sequence=message.sequence,
        flow_run_id=message.flow_run_id,
        time=time_of(message, "event_time"),
        state=state,
        task_run_id=task.task_run_id if task is not None else "",
        task_run_name=task.task_run_name if task is not None else "",
        task_run_state=(
            state_from_proto(task.state)._belongs_to(message.flow_run_id, task.task_run_id)
            if task is not None and task.HasField("state")
            else None
        ),
        log=log_from_proto(message.log) if message.HasField("log") else None,
        raw=message,
    )


def task_run_from_proto(message: task_runs_pb2.TaskRun) -> TaskRun:
    """The SDK view of a task run message.

    A listing converts up to a thousand of these per page: fields are read once, times
    converted without `time_of`'s look-ups by name, and the record is made by `_new_task_run`.
    """
    has = message.HasField
    state = message.state
    policy = message.policy
    return _new_task_run(
        message.id,
        message.flow_run_id,
        message.name,
        message.task_key,
        message.dynamic_key,
        state_from_proto(state)._belongs_to(message.flow_run_id, message.id)
        if has("state")
        else None,
        message.run_count,
        tuple(message.tags),
        json_object(message.parameters_json),
        message.cache_key or None,
        policy.retries,
        _seconds(policy.retry_delay),
        to_datetime(message.start_time) if has("start_time") else None,
        to_datetime(message.end_time) if has("end_time") else None,
        _dt.timedelta(seconds=_seconds(message.total_run_time)),
        to_datetime(message.create_time) if has("create_time") else None,
        to_datetime(message.update_time) if has("update_time") else None,
        _failure(state),
        message,
    )


def _frozen_maker(cls: type[R]) -> Callable[..., R]:
    """Make instances of a frozen, slotted dataclass from every field's value, in order.

    What its ``__init__`` does when given them all, in two thirds of the time: a frozen
    dataclass's ``__init__`` sets each field through ``object.__setattr__`` (frozen refuses
    the plain way), while this calls each slot's own setter. For records made a thousand per
    page; the class must have no ``__post_init__`` and take each field as it is stored.
    """
    setters = tuple(getattr(cls, item.name).__set__ for item in dataclasses.fields(cls))  # type: ignore[arg-type]
    new = object.__new__

    def make(*values: Any) -> R:
        record = new(cls)
        for set_slot, value in zip(setters, values, strict=True):
            set_slot(record, value)
        return record

    return make


#: `TaskRun(...)` with every field given, in its declaration order.
_new_task_run = _frozen_maker(TaskRun)


def log_from_proto(message: logs_pb2.Log) -> Log:
    """The SDK view of a stored log line."""
    return Log(
        time=time_of(message, "log_time"),
        level=message.level,
        logger_name=message.logger_name,
        message=message.message,
        flow_run_id=message.flow_run_id,
        task_run_id=message.task_run_id or None,
        id=message.id,
        raw=message,
    )


def flow_from_proto(message: flows_pb2.Flow) -> Flow:
    """The SDK view of a flow message."""
    return Flow(
        id=message.id,
        name=message.name,
        tags=tuple(message.tags),
        created=time_of(message, "create_time"),
        raw=message,
    )


def parse_state_type(value: Any) -> states_pb2.StateType:
    """A wire `StateType` from a number, "COMPLETED", "completed", "STATE_TYPE_COMPLETED" or the
    SDK's own `headwater.StateType`.

    Raises:
        ValueError: The value names no state type; the message lists the valid ones.
    """
    from headwater._states import StateType

    if isinstance(value, StateType):
        return cast("states_pb2.StateType", state_type_to_proto(value))
    names = [key for key, number in states_pb2.StateType.items() if number]
    if isinstance(value, int) and not isinstance(value, bool):
        if value in states_pb2.StateType.values() and value != 0:
            return cast("states_pb2.StateType", value)
    else:
        name = str(value).strip().upper()
        if not name.startswith("STATE_TYPE_"):
            name = "STATE_TYPE_" + name
        if name in names:
            return cast("states_pb2.StateType", states_pb2.StateType.Value(name))
    valid = ", ".join(key.removeprefix("STATE_TYPE_") for key in names)
    raise ValueError(f"Unknown state type {value!r}; use one of {valid}.")


def _failure(state: states_pb2.State) -> RunFailure | None:
    if not state.HasField("failure") or not state.failure.exception_type:
        return None
    failure = state.failure
    return RunFailure(failure.exception_type, failure.message, failure.traceback)


def json_object(text: str) -> dict[str, Any]:
    """The JSON object in ``text`` ({} for "" or for JSON that is no object)."""
    value = loads_json(text) if text else {}
    return value if isinstance(value, dict) else {}


def time_of(message: Any, field: str) -> _dt.datetime | None:
    """A timezone-aware UTC datetime, or None when the message leaves the field unset."""
    if not message.HasField(field):
        return None
    return to_datetime(getattr(message, field))


def _seconds(value: duration_pb2.Duration) -> float:
    seconds: int = value.seconds
    nanos: int = value.nanos
    return seconds + nanos / 1e9

"""Wire task runs to SDK records (`headwater._transport.client_convert.task_run_from_proto`).

The record is made field by field in declaration order (`_new_task_run`), not through
``TaskRun(...)``: each field here holds a value no other field holds, so a value given to
the wrong field, or a field left out, makes the record differ from the one ``TaskRun(...)``
builds from the same message.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from google.protobuf import duration_pb2, timestamp_pb2
from headwater import StateType
from headwater._runs import RunFailure, TaskRun
from headwater._transport.client_convert import _new_task_run, task_run_from_proto
from headwater.v1 import states_pb2, task_runs_pb2


def _stamp(value: dt.datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp


def _moment(day: int) -> dt.datetime:
    return dt.datetime(2031, 1, day, 1, 2, 3, 456789 + day, tzinfo=dt.UTC)


def _full_message() -> task_runs_pb2.TaskRun:
    return task_runs_pb2.TaskRun(
        id="run-id",
        flow_run_id="flow-run-id",
        task_key="task-key",
        dynamic_key="7",
        name="task-7",
        tags=["one", "two"],
        state=states_pb2.State(
            id="state-id",
            type=states_pb2.STATE_TYPE_FAILED,
            name="Failed",
            message="it broke",
            create_time=_stamp(_moment(5)),
            failure=states_pb2.Failure(
                exception_type="builtins.ValueError", message="no", traceback="tb"
            ),
        ),
        policy=states_pb2.RunPolicy(
            retries=3, retry_delay=duration_pb2.Duration(seconds=2, nanos=250_000_000)
        ),
        run_count=4,
        cache_key="cache-key",
        parameters_json='{"x": [1, 2.5], "big": 123456789012345678901234567890}',
        start_time=_stamp(_moment(1)),
        end_time=_stamp(_moment(2)),
        total_run_time=duration_pb2.Duration(seconds=9, nanos=125_000_000),
        create_time=_stamp(_moment(3)),
        update_time=_stamp(_moment(4)),
    )


def test_every_field_of_a_task_run_comes_from_its_own_message_field() -> None:
    message = _full_message()
    record = task_run_from_proto(message)
    expected = TaskRun(
        id="run-id",
        flow_run_id="flow-run-id",
        name="task-7",
        task_key="task-key",
        dynamic_key="7",
        state=record.state,  # states have their own tests (test_convert.py)
        run_count=4,
        tags=("one", "two"),
        parameters={"x": [1, 2.5], "big": 123456789012345678901234567890},
        cache_key="cache-key",
        retries=3,
        retry_delay_seconds=2.25,
        start_time=_moment(1),
        end_time=_moment(2),
        total_run_time=dt.timedelta(seconds=9.125),
        created=_moment(3),
        updated=_moment(4),
        failure=RunFailure("builtins.ValueError", "no", "tb"),
        raw=message,
    )
    assert record == expected
    for item in dataclasses.fields(TaskRun):
        assert getattr(record, item.name) == getattr(expected, item.name), item.name
    assert record.raw is message
    assert record.state is not None and record.state.type is StateType.FAILED
    assert record.state.timestamp == _moment(5)


def test_an_empty_message_gives_the_defaults() -> None:
    record = task_run_from_proto(task_runs_pb2.TaskRun(id="x"))
    assert record == TaskRun(id="x", flow_run_id="", name="")
    assert (record.state, record.start_time, record.created, record.failure) == (None,) * 4
    assert record.parameters == {} and record.total_run_time == dt.timedelta()


def test_records_made_field_by_field_behave_as_made_by_init() -> None:
    values = [f"value-{item.name}" for item in dataclasses.fields(TaskRun)]
    made = _new_task_run(*values)
    assert type(made) is TaskRun
    assert made == TaskRun(*values)
    assert repr(made) == repr(TaskRun(*values))
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.name = "other"  # type: ignore[misc]
    with pytest.raises(ValueError):
        _new_task_run(*values[:-1])  # every field, or none

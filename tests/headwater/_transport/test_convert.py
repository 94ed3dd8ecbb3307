"""Conversions between SDK states and wire states (`headwater._transport.convert`)."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from google.protobuf import timestamp_pb2
from headwater import AwaitingRetry, Completed, State, StateType
from headwater._results import ResultReference
from headwater._transport.convert import (
    MAX_INLINE_RESULT_BYTES,
    failure_from_exception,
    json_result,
    loads_json,
    reference_from_proto,
    reference_result,
    state_from_proto,
    state_to_proto,
    state_type_from_proto,
    state_type_to_proto,
    to_datetime,
)
from headwater.v1 import states_pb2


@pytest.mark.parametrize("state_type", list(StateType))
def test_every_state_type_round_trips(state_type: StateType) -> None:
    number = state_type_to_proto(state_type)
    assert states_pb2.StateType.Name(number) == f"STATE_TYPE_{state_type.value}"
    assert state_type_from_proto(number) is state_type


def test_unknown_wire_type_says_to_upgrade() -> None:
    with pytest.raises(ValueError, match="Upgrade"):
        state_type_from_proto(999)


def test_proposal_carries_name_message_and_scheduled_time() -> None:
    when = dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    message = state_to_proto(AwaitingRetry(scheduled_time=when, message="later"))
    assert message.type == states_pb2.STATE_TYPE_SCHEDULED
    assert message.name == "AwaitingRetry"
    assert message.message == "later"
    assert message.scheduled_time.ToDatetime(tzinfo=dt.UTC) == when
    assert not message.id  # the service assigns ids


def test_state_from_proto_decodes_json_results_and_times() -> None:
    wire = states_pb2.State(
        id="abc", type=states_pb2.STATE_TYPE_COMPLETED, name="Completed", message=""
    )
    wire.result.json = json.dumps({"big": 2**70})
    wire.create_time.FromDatetime(dt.datetime(2030, 1, 1, tzinfo=dt.UTC))
    state = state_from_proto(wire)
    assert state.is_completed() and state.id == "abc" and state.message is None
    assert state.result() == {"big": 2**70}  # integers stay exact
    assert state.timestamp == dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


def test_state_from_proto_keeps_in_memory_data_when_given() -> None:
    wire = state_to_proto(Completed())
    marker = object()
    assert state_from_proto(wire, data=marker).data is marker


def test_json_result_only_for_plain_small_json() -> None:
    assert json_result([1, "a", None]).json == '[1, "a", null]'  # type: ignore[union-attr]
    assert json_result(float("nan")) is None
    assert json_result(object()) is None
    assert json_result("x" * MAX_INLINE_RESULT_BYTES) is None


@pytest.mark.parametrize("value", [0, -7, 2**70, True, False])
def test_json_result_of_an_integer_is_its_json_text(value: int) -> None:
    assert json_result(value).json == json.dumps(value)  # type: ignore[union-attr]


def test_json_result_of_an_integer_too_long_to_print_is_not_inline() -> None:
    assert json_result(10**5000) is None  # past Python's limit on digits turned into text


def test_references_travel_as_file_uris(tmp_path: object) -> None:
    reference = ResultReference(storage_key="/tmp/results/a b", serializer="json")
    wire = reference_result(reference)
    assert wire.reference.storage_uri == "file:///tmp/results/a%20b"
    assert reference_from_proto(wire.reference) == reference
    relative = reference_from_proto(states_pb2.ResultReference(storage_uri="k", serializer="x"))
    assert relative.storage_key == "k"


def test_failure_describes_the_exception() -> None:
    try:
        raise ValueError("bad value")
    except ValueError as exc:
        failure = failure_from_exception(exc)
    assert failure.exception_type == "builtins.ValueError"
    assert failure.message == "bad value"
    assert "Traceback" in failure.traceback and "bad value" in failure.traceback


def test_state_repr_is_not_affected() -> None:
    assert isinstance(state_from_proto(state_to_proto(State(StateType.PENDING))), State)


@pytest.mark.parametrize(
    ("seconds", "nanos"),
    [
        (0, 0),
        (1_796_109_632, 679_452_000),
        (1_796_109_632, 679_452_999),  # below the microsecond: truncated, as ToDatetime does
        (-1, 999_999_999),  # just before the epoch
        (-62_135_596_800, 0),  # 0001-01-01, the first time a Timestamp holds
        (253_402_300_799, 999_999_999),  # 9999-12-31T23:59:59.999999999, the last
    ],
)
def test_to_datetime_is_what_protobufs_to_datetime_gives(seconds: int, nanos: int) -> None:
    stamp = timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)
    expected = stamp.ToDatetime(tzinfo=dt.UTC)
    for _ in range(2):  # the second time from the memo of recent values
        moment = to_datetime(stamp)
        assert moment == expected and moment.tzinfo is expected.tzinfo
        assert moment.isoformat() == expected.isoformat()


def test_to_datetime_stays_right_past_its_memos_size() -> None:
    start = 1_800_000_000_000_000
    for offset in range(10_000):  # more distinct values than the memo keeps
        us = start + offset * 997
        stamp = timestamp_pb2.Timestamp(seconds=us // 1_000_000, nanos=us % 1_000_000 * 1000)
        assert to_datetime(stamp) == stamp.ToDatetime(tzinfo=dt.UTC)


@pytest.mark.parametrize(
    "text",
    [
        '{"x": 0}',
        "0",
        '"text"',
        "null",
        "[1, 2.5e3, -0, true]",
        '{"big": 123456789012345678901234567890, "nested": {"a": [{}]}}',
        "NaN",
        "-Infinity",
        ' {"space": "before"}',
        '{"space": "after"}\n',
        '{"a": 1}{"b": 2}',
        "",
        '{"a": ',
        "nul",
        "\ufeff{}",
        '"\\ud800"',
        '{"dup": 1, "dup": 2}',
    ],
)
def test_loads_json_answers_as_json_loads_does(text: str) -> None:
    try:
        expected = json.loads(text)
    except json.JSONDecodeError as error:
        with pytest.raises(json.JSONDecodeError) as raised:
            loads_json(text)
        assert str(raised.value) == str(error)
    else:
        value = loads_json(text)
        assert type(value) is type(expected)
        assert repr(value) == repr(expected)  # NaN is not equal to itself; its repr is

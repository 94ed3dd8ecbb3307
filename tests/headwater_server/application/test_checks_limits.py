"""The checks that keep out what a database or the wire cannot hold: NUL characters, times
beyond year 9999, non-standard or deeply nested JSON, over-long echoes of bad values.

tests/integration/test_bad_input_bounds.py sends the same input over real gRPC to both
databases; these pin the boundaries themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2, timestamp_pb2
from headwater.v1 import states_pb2
from headwater_server import errors
from headwater_server.application import checks
from headwater_server.storage.values import free_text


def _fails(call: Callable[..., Any], *args: Any) -> errors.ServiceError:
    with pytest.raises(errors.ServiceError) as caught:
        call(*args)
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    return caught.value


def _nested(levels: int) -> str:
    return "[" * levels + "]" * levels


def test_json_depth_limit_is_exact() -> None:
    assert checks.json_text("f", _nested(checks.MAX_JSON_DEPTH)) is not None
    error = _fails(checks.json_text, "f", _nested(checks.MAX_JSON_DEPTH + 1))
    assert "nested too deep" in error.message and str(checks.MAX_JSON_DEPTH) in error.message


def test_json_far_deeper_than_the_recursion_limit_is_invalid_not_a_crash() -> None:
    _fails(checks.json_text, "f", _nested(200_000))
    _fails(checks.json_text, "f", "[" * 200_000)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_standard_json_numbers_are_refused(constant: str) -> None:
    error = _fails(checks.json_object, "parameters_json", f'{{"a": {constant}}}')
    assert constant in error.message


def test_big_integers_and_escaped_nul_are_standard_json() -> None:
    checks.json_object("p", '{"n": 123456789012345678901234567890, "s": "\\u0000"}')


def test_names_refuse_nul_but_short_text_allows_it() -> None:
    error = _fails(checks.name, "tags[0]", "a\x00b")
    assert "NUL" in error.message and "position 1" in error.message
    assert checks.short_text("logger_name", "a\x00b") == "a\x00b"
    assert free_text("bad \x00 value") == "bad \ufffd value"


@pytest.mark.parametrize(
    ("seconds", "nanos", "valid"),
    [
        (checks.MIN_TIMESTAMP_SECONDS, 0, True),
        (checks.MAX_TIMESTAMP_SECONDS, 999_999_999, True),
        (checks.MIN_TIMESTAMP_SECONDS - 1, 0, False),
        (checks.MAX_TIMESTAMP_SECONDS + 1, 0, False),
        (0, -1, False),
        (0, 1_000_000_000, False),
    ],
)
def test_timestamp_range(seconds: int, nanos: int, valid: bool) -> None:
    value = timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)
    if valid:
        checks.timestamp("t", value)
    else:
        assert "0001-01-01 and 9999-12-31" in _fails(checks.timestamp, "t", value).message


def test_a_state_is_checked_whole() -> None:
    state = states_pb2.State(type=states_pb2.STATE_TYPE_COMPLETED)
    state.result.json = ""
    assert _fails(checks.proposed_state, "state", state, True).violations[0].field == (
        "state.result.json"
    )
    state.result.json = "NaN"
    _fails(checks.proposed_state, "state", state, True)
    state.result.json = "[1]"
    checks.proposed_state("state", state, True)


def test_retry_delay_limit() -> None:
    policy = states_pb2.RunPolicy(
        retry_delay=duration_pb2.Duration(seconds=checks.MAX_RETRY_DELAY_SECONDS)
    )
    checks.run_policy("policy", policy)
    policy.retry_delay.seconds += 1
    assert _fails(checks.run_policy, "policy", policy).violations[0].field == "policy.retry_delay"


def test_echoed_values_are_shortened() -> None:
    error = _fails(checks.uuid, "flow_run_id", "x" * 100_000)
    assert len(error.message) < 200 and "100000 characters" in error.message
    assert errors.shown("short") == "'short'"


def test_statuses_stay_small_whatever_the_message() -> None:
    error = errors.invalid_argument("f", "y" * 100_000)
    status = errors.to_rpc_status(error)
    assert len(status.message) <= errors.MAX_MESSAGE_CHARACTERS
    assert status.ByteSize() < 4 * errors.MAX_MESSAGE_CHARACTERS

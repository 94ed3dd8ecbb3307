"""Request checks: each failure is INVALID_ARGUMENT naming the field and what would be valid."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import duration_pb2, field_mask_pb2
from headwater.v1 import states_pb2
from headwater_server import errors
from headwater_server.application import checks as check


def _fails(call: object, *args: object) -> errors.ServiceError:
    with pytest.raises(errors.ServiceError) as caught:
        call(*args)  # type: ignore[operator]
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    return caught.value


@pytest.mark.parametrize("value", [0, 99, -1])
def test_a_missing_or_unknown_state_type_lists_the_valid_ones(value: int) -> None:
    error = _fails(check.state_type, "state.type", value)
    assert error.violations[0].field == "state.type"
    assert "STATE_TYPE_RUNNING" in error.message and "STATE_TYPE_PAUSED" in error.message
    assert "UNSPECIFIED" not in error.message


def test_a_disallowed_state_type_names_the_allowed_ones() -> None:
    allowed = (states_pb2.STATE_TYPE_PENDING, states_pb2.STATE_TYPE_SCHEDULED)
    error = _fails(check.state_type, "state.type", states_pb2.STATE_TYPE_RUNNING, allowed)
    assert "STATE_TYPE_RUNNING is not allowed" in error.message
    assert "STATE_TYPE_PENDING" in error.message
    assert check.state_type("state.type", states_pb2.STATE_TYPE_PENDING, allowed) == 2


def test_uuids_are_canonicalised_or_rejected_by_field_name() -> None:
    upper = "0B1C2D3E-0000-4000-8000-00000000000A"
    assert check.uuid("flow_run_id", upper) == upper.lower()
    assert check.optional_uuid("request_id", "") == ""
    assert "flow_run_id" in _fails(check.uuid, "flow_run_id", "nope").message
    assert "required" in _fails(check.uuid, "flow_run_id", "").message


@pytest.mark.parametrize("text", ["[1]", "1", '"x"', "null", "{bad"])
def test_parameters_must_be_a_json_object(text: str) -> None:
    assert "parameters_json" in _fails(check.json_object, "parameters_json", text).message


def test_an_empty_or_object_json_passes() -> None:
    assert check.json_object("parameters_json", "") == ""
    assert check.json_object("parameters_json", '{"n": 12345678901234567890}')


@pytest.mark.parametrize("size", [-1, 1001])
def test_page_size_out_of_range(size: int) -> None:
    assert "page_size" in _fails(check.page_size, "page_size", size).message


def test_page_size_in_range() -> None:
    assert [check.page_size("page_size", n) for n in (0, 1, 1000)] == [0, 1, 1000]


def test_update_mask_must_name_known_paths() -> None:
    allowed = ("name", "tags")
    assert (
        "required"
        in _fails(check.update_mask, "update_mask", field_mask_pb2.FieldMask(), allowed).message
    )
    error = _fails(check.update_mask, "update_mask", field_mask_pb2.FieldMask(paths=["x"]), allowed)
    assert "'x'" in error.message and "'name'" in error.message
    assert check.update_mask("m", field_mask_pb2.FieldMask(paths=["tags"]), allowed) == ["tags"]


def test_durations_and_counts_must_not_be_negative() -> None:
    assert (
        "wait"
        in _fails(check.non_negative_duration, "wait", duration_pb2.Duration(seconds=-1)).message
    )
    assert check.non_negative_duration("wait", duration_pb2.Duration(nanos=500_000_000)) == 0.5
    policy = states_pb2.RunPolicy(retries=-1)
    assert "policy.retries" in _fails(check.run_policy, "policy", policy).message


def test_a_proposal_needs_a_state() -> None:
    assert "state" in _fails(check.proposed_state, "state", states_pb2.State(), False).message


def test_a_oneof_must_be_set_and_names_the_alternatives() -> None:
    error = _fails(check.one_of, "flow_id", None, "'flow_id' or 'flow_name'")
    assert error.violations[0].field == "flow_id"
    assert "'flow_id' or 'flow_name'" in error.message
    assert check.one_of("flow_id", "flow_name", "either") == "flow_name"


def test_a_batch_has_a_limit() -> None:
    error = _fails(check.at_most, "logs", [1, 2, 3], 2, "lines")
    assert "has 3 lines; send at most 2 per call" in error.message
    check.at_most("logs", [1, 2], 2, "lines")


@pytest.mark.parametrize(
    ("check_name", "value"),
    [("name", "x" * 256), ("flow_name", "a/b"), ("flow_name", " "), ("required_text", "")],
)
def test_names_are_bounded_and_flow_names_restricted(check_name: str, value: str) -> None:
    assert "name" in _fails(getattr(check, check_name), "name", value).message


def test_tags_must_not_be_empty_or_too_long() -> None:
    assert "empty tag" in _fails(check.tags, "tags", ["ok", ""]).message
    assert "256 characters" in _fails(check.tags, "tags", ["t" * 256]).message
    check.tags("tags", ["ok", "t" * 255])

"""Checks of request fields the repository needs, each failing with INVALID_ARGUMENT.

Every message names the field and says what a valid value looks like.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from headwater.v1 import states_pb2

from headwater_server.errors import invalid_argument, parse_uuid
from headwater_server.orchestration import rules
from headwater_server.storage import convert

NAME_MAX = 255
FLOW_NAME_RE = re.compile(r"^[\w .:\-]+$")
_VALID_STATE_TYPES = frozenset(rules.ALL_STATE_TYPES)
_STATE_TYPE_CHOICES = ", ".join(states_pb2.StateType.Name(t) for t in sorted(rules.ALL_STATE_TYPES))


def new_id() -> str:
    return str(uuid.uuid4())


def require_uuid(field_name: str, value: str) -> str:
    """A required UUID field in canonical form (INVALID_ARGUMENT naming the field otherwise)."""
    canonical = parse_uuid(field_name, value)
    assert canonical is not None  # parse_uuid raises for an empty required value
    return canonical


def check_name(field_name: str, value: str) -> None:
    if len(value) > NAME_MAX:
        raise invalid_argument(field_name, f"is {len(value)} characters long; at most 255.")


def check_json_object(field_name: str, text: str) -> str:
    """Return the JSON object text to store ("{}" for empty), refusing anything else."""
    if not text:
        return "{}"
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise invalid_argument(
            field_name, f"is not valid JSON ({exc}); send a JSON object such as '{{\"x\": 1}}'."
        ) from None
    if not isinstance(value, dict):
        raise invalid_argument(
            field_name, f"must be a JSON object (name -> value), got a {type(value).__name__}."
        )
    return text


def check_tags(field_name: str, tags: Any) -> str:
    for tag in tags:
        if not tag:
            raise invalid_argument(field_name, "contains an empty tag; remove it.")
        check_name(field_name, tag)
    return convert.dump_tags(tags)


def policy_values(field_name: str, policy: states_pb2.RunPolicy) -> tuple[int, float]:
    if policy.retries < 0:
        raise invalid_argument(
            f"{field_name}.retries", f"must be zero or more, got {policy.retries}."
        )
    delay = convert.duration_seconds(policy.retry_delay)
    if delay < 0:
        raise invalid_argument(f"{field_name}.retry_delay", f"must not be negative, got {delay} s.")
    return policy.retries, delay


def check_state_type(field_name: str, state_type: int) -> None:
    if state_type not in _VALID_STATE_TYPES:
        if state_type == states_pb2.STATE_TYPE_UNSPECIFIED:
            problem = "is required"
        else:
            problem = f"has unknown value {state_type}"
        raise invalid_argument(field_name, f"{problem}; use one of {_STATE_TYPE_CHOICES}.")


def payloads(state: states_pb2.State) -> tuple[bytes | None, bytes | None]:
    result = state.result.SerializeToString() if state.HasField("result") else None
    failure = state.failure.SerializeToString() if state.HasField("failure") else None
    return result, failure


def proposal_message(state: states_pb2.State) -> str:
    if state.message:
        return state.message
    if state.HasField("failure"):
        return state.failure.message
    return ""


def check_flow_name(field_name: str, name: str) -> str:
    """A flow name: required, at most 255 characters, letters, digits, spaces and "-_.:"."""
    if not name:
        raise invalid_argument(field_name, "is required, e.g. 'etl-daily'.")
    check_name(field_name, name)
    if not FLOW_NAME_RE.match(name):
        raise invalid_argument(
            field_name,
            f"'{name}' contains characters other than letters, digits, spaces and '-_.:'.",
        )
    return name


def task_run_name(task_key: str, dynamic_key: str) -> str:
    """``mymodule.extract-1a2b3c`` call ``0`` -> ``extract-0``."""
    base = task_key.rsplit(".", 1)[-1]
    stem, sep, suffix = base.rpartition("-")
    if sep and stem and re.fullmatch(r"[0-9a-f]{6,}", suffix):
        base = stem
    return f"{base}-{dynamic_key}"[:NAME_MAX]

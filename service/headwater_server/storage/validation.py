"""Checks of request fields the repository needs, each failing with INVALID_ARGUMENT.

Every message names the field and says what a valid value looks like. Besides the meaning of
each field, these checks keep out what one of the two databases cannot hold, so SQLite and
PostgreSQL store (or refuse) exactly the same things:

- NUL characters: PostgreSQL text cannot contain them. Names and identifiers (run and state
  names, tags, keys) are refused with INVALID_ARGUMENT, because silently changing a value that
  is looked up or compared would be worse. Free text meant for people (state messages, log
  lines and logger names) is stored with each NUL replaced by U+FFFD, so a flow failing with
  ``ValueError("bad \\x00")`` still ends FAILED with its message. Opaque payloads (results and
  failures, stored as protobuf bytes) are kept exactly.
- Lengths: names are at most 255 characters (PostgreSQL's column width; SQLite would accept
  more).
- Times: a Timestamp must lie in 0001-01-01..9999-12-31 UTC, the range protobuf defines and
  datetimes can hold; a retry delay is at most MAX_RETRY_DELAY_SECONDS so that "now + delay"
  stays in that range.
- JSON: standard JSON only (no NaN or Infinity, which other languages cannot read) and at most
  MAX_JSON_DEPTH levels deep.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sized
from typing import Any

from google.protobuf import timestamp_pb2
from headwater.v1 import states_pb2

from headwater_server.errors import invalid_argument, parse_uuid, shown
from headwater_server.orchestration import rules
from headwater_server.storage import convert

NAME_MAX = 255
MAX_JSON_DEPTH = 100
# 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z, the range of google.protobuf.Timestamp.
MIN_TIMESTAMP_SECONDS = -62_135_596_800
MAX_TIMESTAMP_SECONDS = 253_402_300_799
MAX_RETRY_DELAY_SECONDS = 10 * 365 * 24 * 3600
# Entries a repeated List filter may hold: each becomes a condition of the query, and a
# thousand of them held the database for seconds (SQLite refuses such a tree outright).
MAX_FILTER_VALUES = 100
NUL = "\x00"
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
    """A name or identifier: at most NAME_MAX characters and no NUL character."""
    if len(value) > NAME_MAX:
        raise invalid_argument(field_name, f"is {len(value)} characters long; at most 255.")
    check_no_nul(field_name, value)


def check_no_nul(field_name: str, value: str) -> None:
    """Refuse a NUL character in a value that is stored and compared as it is."""
    if NUL in value:
        raise invalid_argument(
            field_name,
            f"contains a NUL character (\\x00) at position {value.index(NUL)}; remove it.",
        )


def free_text(value: str) -> str:
    """Text meant for people, storable in every database: NUL becomes U+FFFD."""
    return value.replace(NUL, "\ufffd") if NUL in value else value


def check_filter_values(field_name: str, values: Sized) -> None:
    """Bound a repeated List filter (see MAX_FILTER_VALUES)."""
    if len(values) > MAX_FILTER_VALUES:
        raise invalid_argument(
            field_name,
            f"has {len(values)} entries; at most {MAX_FILTER_VALUES}. Split the query, or "
            "filter on fewer values and narrow the results yourself.",
        )


class _NonStandardNumber(ValueError):
    pass


def _refuse_constant(name: str) -> Any:
    raise _NonStandardNumber(name)


def parse_json(field_name: str, text: str, example: str = "'{\"x\": 1}'") -> Any:
    """Parse standard JSON text at most MAX_JSON_DEPTH levels deep.

    Python's json module accepts NaN and Infinity, which JSON itself (and so every other
    language's reader) does not, and fails with RecursionError on deep nesting; both become
    INVALID_ARGUMENT here.
    """
    too_deep = f"is nested too deep; at most {MAX_JSON_DEPTH} levels of arrays and objects."
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except _NonStandardNumber as exc:
        raise invalid_argument(
            field_name, f"contains {exc}, which is not standard JSON; send null or a string."
        ) from None
    except RecursionError:
        raise invalid_argument(field_name, too_deep) from None
    except ValueError as exc:
        raise invalid_argument(
            field_name, f"is not valid JSON ({exc}); send JSON such as {example}."
        ) from None
    if _depth(value) > MAX_JSON_DEPTH:
        raise invalid_argument(field_name, too_deep)
    return value


def _depth(value: Any) -> int:
    """Nesting depth of parsed JSON (a scalar is 0), without recursion."""
    deepest = 0
    stack = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, level + 1)
            stack.extend((child, level + 1) for child in item)
    return deepest


def check_json_object(field_name: str, text: str) -> str:
    """Return the JSON object text to store ("{}" for empty), refusing anything else."""
    if not text:
        return "{}"
    value = parse_json(field_name, text)
    if not isinstance(value, dict):
        raise invalid_argument(
            field_name, f"must be a JSON object (name -> value), got a {type(value).__name__}."
        )
    return text


def timestamp_us(field_name: str, value: timestamp_pb2.Timestamp) -> int:
    """Microseconds since the epoch of a Timestamp inside protobuf's range (years 1 to 9999)."""
    if not (
        MIN_TIMESTAMP_SECONDS <= value.seconds <= MAX_TIMESTAMP_SECONDS
        and 0 <= value.nanos <= 999_999_999
    ):
        raise invalid_argument(
            field_name,
            f"(seconds={value.seconds}, nanos={value.nanos}) is out of range: a time must lie "
            "between 0001-01-01 and 9999-12-31 UTC, with nanos from 0 to 999,999,999.",
        )
    return convert.timestamp_to_us(value)


def check_state(field_name: str, state: states_pb2.State) -> int | None:
    """Check what a proposed or initial state carries; return its scheduled_time in µs."""
    check_name(f"{field_name}.name", state.name)
    if state.HasField("result") and state.result.WhichOneof("kind") == "json":
        if not state.result.json:
            raise invalid_argument(
                f"{field_name}.result.json", "is empty; send JSON text such as 'null' or '42'."
            )
        parse_json(f"{field_name}.result.json", state.result.json, "'42' or '[1, 2]'")
    if state.HasField("scheduled_time"):
        return timestamp_us(f"{field_name}.scheduled_time", state.scheduled_time)
    return None


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
    if delay > MAX_RETRY_DELAY_SECONDS:
        raise invalid_argument(
            f"{field_name}.retry_delay",
            f"is {delay:.0f} s; at most {MAX_RETRY_DELAY_SECONDS} s (ten years).",
        )
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
    """The message to store with a proposed state (its own, else its failure's)."""
    if state.message:
        return free_text(state.message)
    if state.HasField("failure"):
        return free_text(state.failure.message)
    return ""


def check_flow_name(field_name: str, name: str) -> str:
    """A flow name: required, at most 255 characters, letters, digits, spaces and "-_.:"."""
    if not name:
        raise invalid_argument(field_name, "is required, e.g. 'etl-daily'.")
    check_name(field_name, name)
    if not FLOW_NAME_RE.match(name):
        raise invalid_argument(
            field_name,
            f"{shown(name)} contains characters other than letters, digits, spaces and '-_.:'.",
        )
    return name


def task_run_name(task_key: str, dynamic_key: str) -> str:
    """``mymodule.extract-1a2b3c`` call ``0`` -> ``extract-0``."""
    base = task_key.rsplit(".", 1)[-1]
    stem, sep, suffix = base.rpartition("-")
    if sep and stem and re.fullmatch(r"[0-9a-f]{6,}", suffix):
        base = stem
    return f"{base}-{dynamic_key}"[:NAME_MAX]

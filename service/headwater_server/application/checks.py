"""Every request check of the service, each raising INVALID_ARGUMENT that names the field.

This is the one place request fields are judged: the application layer runs these before any
database work, so a caller gets the same precise message (which field, what is wrong, what is
allowed) from a unary RPC, the engine stream or an in-process caller, and storage can trust
what it is given. Checks that need the database (does the run exist, is the name taken, may the
run move to that state) are not here: storage and the orchestration rules answer those.

Besides what each field means, these checks keep out what either database cannot hold, so that
SQLite and PostgreSQL store (or refuse) exactly the same requests:

- NUL characters, which PostgreSQL text cannot contain. Names, keys and tags (stored, looked
  up and compared as they are) with a NUL are refused. Free text meant for people (state
  messages, log lines, logger names) is accepted and stored with each NUL replaced by U+FFFD
  (:func:`headwater_server.storage.values.free_text`), so a flow failing with
  ``ValueError("bad \\x00")`` still ends FAILED with its message. Result and failure payloads
  are stored as protobuf bytes and kept exactly.
- Names over NAME_MAX characters (PostgreSQL's column width; SQLite stores more).
- Times outside google.protobuf.Timestamp's range (years 1 to 9999), which datetimes cannot
  hold, and retry delays so long that "now + delay" leaves that range.
- JSON that other languages cannot read (NaN, Infinity) or nested deeper than MAX_JSON_DEPTH.
- Repeated List filters longer than MAX_FILTER_VALUES entries, each a condition of the query.
"""

from __future__ import annotations

import json
import re
import uuid as _uuid
from collections.abc import Collection, Iterable, Mapping, Sized
from typing import Any

from google.protobuf import duration_pb2, field_mask_pb2, timestamp_pb2
from headwater.v1 import (
    deployments_pb2,
    flow_runs_pb2,
    schedules_pb2,
    states_pb2,
    task_runs_pb2,
    work_pools_pb2,
)

from headwater_server import errors
from headwater_server.application.parameter_schema import check_schema, violations
from headwater_server.orchestration import rules
from headwater_server.storage.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from headwater_server.storage.values import NAME_MAX, SCHEDULED_KEY_PREFIX

__all__ = [
    "MAX_BATCH_RUNS",
    "MAX_DESCRIPTION_CHARACTERS",
    "MAX_FILTER_VALUES",
    "MAX_JSON_DEPTH",
    "MAX_LOCATION_CHARACTERS",
    "MAX_PAGE_SIZE",
    "MAX_RETRY_DELAY_SECONDS",
    "MAX_RETRY_JITTER_FACTOR",
    "MAX_SCHEDULES",
    "NAME_MAX",
    "WORK_POOL_TYPES",
    "at_most",
    "code_location",
    "default_parameters",
    "deployment_fields",
    "deployment_name",
    "deployment_run",
    "flow_name",
    "idempotency_key",
    "initial_state",
    "json_object",
    "json_text",
    "name",
    "new_deployment",
    "new_run",
    "non_negative",
    "non_negative_duration",
    "one_of",
    "optional_uuid",
    "page_size",
    "proposal",
    "proposed_state",
    "required_text",
    "run_policy",
    "schedule",
    "short_text",
    "state_type",
    "state_types",
    "tags",
    "text",
    "timestamp",
    "update_mask",
    "uuid",
    "work_pool_fields",
    "work_queue_fields",
]

MAX_JSON_DEPTH = 100
# 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z: the range of google.protobuf.Timestamp.
MIN_TIMESTAMP_SECONDS = -62_135_596_800
MAX_TIMESTAMP_SECONDS = 253_402_300_799
MAX_RETRY_DELAY_SECONDS = 10 * 365 * 24 * 3600
# Jitter spreads a delay d over [d * (1 - f), d * (1 + f)]; beyond 10 it means nothing more.
MAX_RETRY_JITTER_FACTOR = 10.0
# Entries a repeated List filter may hold: each becomes a condition of the query, and a thousand
# tags held the database thread for seconds (SQLite refused the expression tree outright).
MAX_FILTER_VALUES = 100
_NUL = "\x00"

_FLOW_NAME_RE = re.compile(r"^[\w .:\-]+$")

# The states a run may be created in, in the order error messages list them.
_INITIAL_STATE_TYPES = (states_pb2.STATE_TYPE_PENDING, states_pb2.STATE_TYPE_SCHEDULED)

# The valid StateType names, for error messages (every one but UNSPECIFIED).
_STATE_TYPE_NAMES = tuple(states_pb2.StateType.Name(value) for value in rules.ALL_STATE_TYPES)


#: A UUID in its canonical form (lower case, with hyphens).
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def uuid(field: str, value: str) -> str:
    """Return the canonical form of a required UUID field.

    Checking ids before storage turns a typo into a clear message instead of a NOT_FOUND that
    hides the real mistake.
    """
    if not value:
        raise errors.invalid_argument(field, "is required (a UUID such as '0b1c...-...').")
    if _CANONICAL_UUID.fullmatch(value):  # as clients normally send it: nothing to convert
        return value
    try:
        return str(_uuid.UUID(value))
    except (ValueError, AttributeError, TypeError):
        raise errors.invalid_argument(
            field, f"{errors.shown(value)} is not a valid UUID."
        ) from None


def optional_uuid(field: str, value: str) -> str:
    """Return the canonical form of an optional UUID field, or "" when it is empty."""
    return uuid(field, value) if value else ""


def one_of(field: str, chosen: str | None, alternatives: str) -> str:
    """Require one field of a oneof to be set; ``alternatives`` says which ones, for people."""
    if chosen is None:
        raise errors.invalid_argument(field, f"is required: set {alternatives}.")
    return chosen


def at_most(field: str, items: Sized, limit: int, noun: str) -> None:
    """Reject a repeated field with more than ``limit`` entries."""
    if len(items) > limit:
        raise errors.invalid_argument(
            field, f"has {len(items)} {noun}; send at most {limit} per call."
        )


def required_text(field: str, value: str) -> str:
    """Reject an empty or blank string field."""
    if not value or not value.strip():
        raise errors.invalid_argument(field, "is required and must not be blank.")
    return value


def short_text(field: str, value: str) -> str:
    """Reject text longer than a name column stores (NUL is allowed: storage replaces it)."""
    if len(value) > NAME_MAX:
        raise errors.invalid_argument(
            field, f"is {len(value)} characters long; at most {NAME_MAX}."
        )
    return value


def name(field: str, value: str) -> str:
    """Reject a name, key or tag longer than the schema stores or holding a NUL character."""
    short_text(field, value)
    if _NUL in value:
        raise errors.invalid_argument(
            field, f"contains a NUL character (\\x00) at position {value.index(_NUL)}; remove it."
        )
    return value


def flow_name(field: str, value: str) -> str:
    """A flow name: required, at most 255 characters, letters, digits, spaces and "-_.:"."""
    required_text(field, value)
    name(field, value)
    if not _FLOW_NAME_RE.match(value):
        raise errors.invalid_argument(
            field,
            f"{errors.shown(value)} contains characters other than letters, digits, spaces and "
            "'-_.:'.",
        )
    return value


def tags(field: str, values: Iterable[str]) -> None:
    """Reject an empty tag or one longer than a name."""
    for tag in values:
        if not tag:
            raise errors.invalid_argument(field, "contains an empty tag; remove it.")
        name(field, tag)


def state_type(field: str, value: int, allowed: Collection[int] | None = None) -> int:
    """Reject a missing, unknown or (when ``allowed`` is given) disallowed StateType value."""
    names = _STATE_TYPE_NAMES
    if allowed is not None:
        names = tuple(states_pb2.StateType.Name(v) for v in allowed)
    valid = ", ".join(names)
    if value == states_pb2.STATE_TYPE_UNSPECIFIED:
        raise errors.invalid_argument(field, f"is required. Use one of {valid}.")
    if value not in rules.ALL_STATE_TYPES:
        raise errors.invalid_argument(
            field, f"{value} is not a known StateType. Use one of {valid}."
        )
    if allowed is not None and value not in allowed:
        state_name = states_pb2.StateType.Name(value)
        raise errors.invalid_argument(
            field, f"{state_name} is not allowed here. Use one of {valid}."
        )
    return value


def state_types(field: str, values: Iterable[int]) -> None:
    """Check every entry of a repeated StateType filter."""
    for index, value in enumerate(values):
        state_type(f"{field}[{index}]", value)


def page_size(field: str, value: int) -> int:
    """Accept 0 (the default) up to MAX_PAGE_SIZE."""
    if value < 0 or value > MAX_PAGE_SIZE:
        raise errors.invalid_argument(
            field,
            f"{value} is out of range. Use 1 to {MAX_PAGE_SIZE}, or 0 for the default "
            f"{DEFAULT_PAGE_SIZE}.",
        )
    return value


class _NonStandardNumber(ValueError):
    pass


def _refuse_constant(constant: str) -> Any:
    raise _NonStandardNumber(constant)


#: One decoder for every check: ``json.loads`` with an argument builds a new one per call.
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)
#: JSON texts so common (a task's result is often one) that they skip the parser; immutable
#: values only, as every caller gets the same one.
_COMMON_JSON: dict[str, Any] = {"null": None, "true": True, "false": False}


def json_text(field: str, text: str, example: str = "'42' or '[1, 2]'") -> Any:
    """Parse standard JSON at most MAX_JSON_DEPTH levels deep and return its value.

    Python's json module accepts NaN and Infinity, which JSON (and so every other language's
    reader) does not, and raises RecursionError on deep nesting: both are the caller's mistake.
    """
    if text in _COMMON_JSON:
        return _COMMON_JSON[text]
    too_deep = f"is nested too deep; at most {MAX_JSON_DEPTH} levels of arrays and objects."
    try:
        value = _DECODER.decode(text)
    except _NonStandardNumber as exc:
        raise errors.invalid_argument(
            field, f"contains {exc}, which is not standard JSON; send null or a string instead."
        ) from None
    except RecursionError:
        raise errors.invalid_argument(field, too_deep) from None
    except ValueError as exc:
        raise errors.invalid_argument(
            field, f"is not valid JSON ({exc}). Send JSON such as {example}."
        ) from None
    if _depth(value) > MAX_JSON_DEPTH:
        raise errors.invalid_argument(field, too_deep)
    return value


def _depth(value: Any) -> int:
    """The nesting depth of parsed JSON (0 for a scalar), without recursion."""
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


def json_object(field: str, text: str) -> str:
    """Accept "" (meaning {}) or standard JSON text whose top level is an object."""
    if not text:
        return text
    value = json_text(field, text, "a JSON object such as '{\"x\": 1}'")
    if not isinstance(value, dict):
        raise errors.invalid_argument(
            field, f"must be a JSON object, not {type(value).__name__}. Wrap values by name."
        )
    return text


def update_mask(field: str, mask: field_mask_pb2.FieldMask, allowed: Collection[str]) -> list[str]:
    """Require a non-empty mask whose paths are all in ``allowed``."""
    listing = ", ".join(f"'{p}'" for p in sorted(allowed))
    if not mask.paths:
        raise errors.invalid_argument(field, f"is required: list the fields to change ({listing}).")
    for path in mask.paths:
        if path not in allowed:
            raise errors.invalid_argument(
                field, f"unknown path {errors.shown(path)}. Only {listing} can be changed."
            )
    return list(mask.paths)


def non_negative_duration(field: str, value: duration_pb2.Duration) -> float:
    """Return a Duration in seconds, rejecting negative values."""
    seconds: float = value.seconds + value.nanos / 1e9
    if seconds < 0:
        raise errors.invalid_argument(field, "must not be negative.")
    return seconds


def non_negative(field: str, value: int) -> int:
    """Reject a negative count."""
    if value < 0:
        raise errors.invalid_argument(field, f"{value} is negative; use 0 or more.")
    return value


def timestamp(field: str, value: timestamp_pb2.Timestamp) -> None:
    """Reject a time outside google.protobuf.Timestamp's range (years 1 to 9999 UTC)."""
    if not (
        MIN_TIMESTAMP_SECONDS <= value.seconds <= MAX_TIMESTAMP_SECONDS
        and 0 <= value.nanos <= 999_999_999
    ):
        raise errors.invalid_argument(
            field,
            f"(seconds={value.seconds}, nanos={value.nanos}) is out of range: a time must lie "
            "between 0001-01-01 and 9999-12-31 UTC, with nanos from 0 to 999,999,999.",
        )


def _state_contents(field: str, state: states_pb2.State) -> None:
    """What any State in a request carries: its name, scheduled time and JSON result."""
    name(f"{field}.name", state.name)
    if state.HasField("scheduled_time"):
        timestamp(f"{field}.scheduled_time", state.scheduled_time)
    if state.HasField("result") and state.result.WhichOneof("kind") == "json":
        if not state.result.json:
            raise errors.invalid_argument(
                f"{field}.result.json", "is empty; send JSON text such as 'null' or '42'."
            )
        json_text(f"{field}.result.json", state.result.json)


def proposed_state(field: str, state: states_pb2.State, present: bool) -> None:
    """Check a proposed State: it must be given, carry a known type and storable contents."""
    if not present:
        raise errors.invalid_argument(field, "is required: give at least its 'type'.")
    state_type(f"{field}.type", state.type)
    _state_contents(field, state)


def initial_state(field: str, state: states_pb2.State, present: bool) -> None:
    """Check the state a run is created in: none (PENDING), PENDING or SCHEDULED."""
    if present:
        state_type(f"{field}.type", state.type, _INITIAL_STATE_TYPES)
        _state_contents(field, state)


def run_policy(field: str, policy: states_pb2.RunPolicy) -> None:
    """Check the retry policy a run is created with.

    The delay is bounded so that "now + delay", computed when the run fails, stays a valid time.
    """
    non_negative(f"{field}.retries", policy.retries)
    _retry_delay(f"{field}.retry_delay", policy.retry_delay)
    at_most(f"{field}.retry_delays", policy.retry_delays, MAX_FILTER_VALUES, "delays")
    for index, delay in enumerate(policy.retry_delays):
        _retry_delay(f"{field}.retry_delays[{index}]", delay)
    jitter = policy.retry_jitter_factor
    if not 0.0 <= jitter <= MAX_RETRY_JITTER_FACTOR:  # also refuses NaN
        raise errors.invalid_argument(
            f"{field}.retry_jitter_factor",
            f"is {jitter}; use a number from 0 (no jitter) to {MAX_RETRY_JITTER_FACTOR:g}.",
        )
    non_negative_duration(f"{field}.timeout", policy.timeout)


def _retry_delay(field: str, value: duration_pb2.Duration) -> None:
    delay = non_negative_duration(field, value)
    if delay > MAX_RETRY_DELAY_SECONDS:
        raise errors.invalid_argument(
            field, f"is {delay:.0f} s; at most {MAX_RETRY_DELAY_SECONDS} s (ten years)."
        )


# ---------------------------------------------------------------------- what requests share


def new_run(
    request: flow_runs_pb2.CreateFlowRunRequest | task_runs_pb2.CreateTaskRunRequest,
) -> None:
    """The checks creating a flow run and creating a task run share (parameters to first state)."""
    json_object("parameters_json", request.parameters_json)
    tags("tags", request.tags)
    optional_uuid("request_id", request.request_id)
    run_policy("policy", request.policy)
    initial_state("state", request.state, request.HasField("state"))


def proposal(
    run_id_field: str,
    request: flow_runs_pb2.SetFlowRunStateRequest | task_runs_pb2.SetTaskRunStateRequest,
) -> None:
    """A state proposal for the run named in ``run_id_field`` (flow run or task run)."""
    uuid(run_id_field, getattr(request, run_id_field))
    proposed_state("state", request.state, request.HasField("state"))
    optional_uuid("transition_id", request.transition_id)
    optional_uuid("expected_state_id", request.expected_state_id)


# ------------------------------------------------------------- deployments and work pools

#: The longest entrypoint, directory or URL a deployment stores.
MAX_LOCATION_CHARACTERS = 4096
#: The longest description of a deployment, pool or queue.
MAX_DESCRIPTION_CHARACTERS = 10_000
#: The most schedules one deployment has.
MAX_SCHEDULES = 100
#: The most runs one BatchCreateFlowRunsFromDeployment call creates.
MAX_BATCH_RUNS = 1000
#: The work pool types this service's workers serve.
WORK_POOL_TYPES = ("process",)

_COLLISION_STRATEGIES = tuple(deployments_pb2.CollisionStrategy.values())


def text(field: str, value: str, limit: int) -> str:
    """Text stored as it is (a description, a path): no NUL, at most ``limit`` characters."""
    if len(value) > limit:
        raise errors.invalid_argument(field, f"is {len(value)} characters long; at most {limit}.")
    if _NUL in value:
        raise errors.invalid_argument(
            field, f"contains a NUL character (\\x00) at position {value.index(_NUL)}; remove it."
        )
    return value


def idempotency_key(field: str, value: str) -> str:
    """A caller's idempotency key: a name that does not pose as one of the scheduler's."""
    name(field, value)
    if value.startswith(SCHEDULED_KEY_PREFIX):
        raise errors.invalid_argument(
            field,
            f"starts with {SCHEDULED_KEY_PREFIX!r}, which is kept for the runs a deployment's "
            "schedules create; choose another key.",
        )
    return value


def schedule(field: str, entry: schedules_pb2.DeploymentSchedule, *, creating: bool) -> None:
    """One DeploymentSchedule: a schedule the scheduler can compute times from (time zone, cron
    syntax, rrule text: judged by the scheduling package), and storable values."""
    if creating and entry.id:
        raise errors.invalid_argument(
            f"{field}.id", "must be empty when creating a deployment; the service assigns it."
        )
    optional_uuid(f"{field}.id", entry.id)
    one_of(f"{field}.schedule", entry.schedule.WhichOneof("kind"), "'interval', 'cron' or 'rrule'")
    # Imported on first use: croniter and dateutil would slow every server's start-up.
    from headwater_server.scheduling.schedules import ScheduleError, check_schedule

    try:
        check_schedule(entry.schedule)
    except ScheduleError as error:
        raise errors.invalid_argument(
            f"{field}.schedule.{error.field}", error.description
        ) from None
    non_negative(f"{field}.max_scheduled_runs", entry.max_scheduled_runs)
    json_object(f"{field}.parameters_json", entry.parameters_json)


def deployment_fields(
    prefix: str, d: deployments_pb2.Deployment, paths: Collection[str] | None
) -> None:
    """The settable fields of a Deployment: all of them (``paths`` None: a create), or those
    an update names."""

    def given(path: str) -> bool:
        return paths is None or path in paths

    if given("description"):
        text(f"{prefix}.description", d.description, MAX_DESCRIPTION_CHARACTERS)
    if given("version"):
        name(f"{prefix}.version", d.version)
    if given("tags"):
        tags(f"{prefix}.tags", d.tags)
    if given("entrypoint"):
        text(f"{prefix}.entrypoint", d.entrypoint, MAX_LOCATION_CHARACTERS)
    if given("code"):
        code_location(f"{prefix}.code", d.code)
    for field in ("parameters_json", "job_variables_json", "parameter_schema_json"):
        if given(field):
            json_object(f"{prefix}.{field}", getattr(d, field))
    if given("parameter_schema_json"):
        check_schema(f"{prefix}.parameter_schema_json", d.parameter_schema_json)
    if given("schedules"):
        at_most(f"{prefix}.schedules", d.schedules, MAX_SCHEDULES, "schedules")
        for index, entry in enumerate(d.schedules):
            schedule(f"{prefix}.schedules[{index}]", entry, creating=paths is None)
    if given("concurrency_limit"):
        non_negative(f"{prefix}.concurrency_limit", d.concurrency_limit)
    if given("collision_strategy") and d.collision_strategy not in _COLLISION_STRATEGIES:
        valid = ", ".join(deployments_pb2.CollisionStrategy.keys()[1:])
        raise errors.invalid_argument(
            f"{prefix}.collision_strategy",
            f"{d.collision_strategy} is not a known CollisionStrategy. Use one of {valid}.",
        )
    if given("work_pool_name") and d.work_pool_name:
        flow_name(f"{prefix}.work_pool_name", d.work_pool_name)
    if given("work_queue_name") and d.work_queue_name:
        flow_name(f"{prefix}.work_queue_name", d.work_queue_name)


def code_location(field: str, code: deployments_pb2.CodeLocation) -> None:
    """Where a deployment's code is: a directory, or a git repository with its URL."""
    kind = code.WhichOneof("kind")
    if kind == "directory":
        required_text(f"{field}.directory", code.directory)
        text(f"{field}.directory", code.directory, MAX_LOCATION_CHARACTERS)
    elif kind == "git":
        required_text(f"{field}.git.url", code.git.url)
        text(f"{field}.git.url", code.git.url, MAX_LOCATION_CHARACTERS)
        name(f"{field}.git.branch", code.git.branch)
        name(f"{field}.git.commit", code.git.commit)


def new_deployment(d: deployments_pb2.Deployment) -> None:
    """A CreateDeployment's deployment: its name, its flow, and every settable field."""
    flow_name("deployment.name", d.name)
    if d.flow_id and d.flow_name:
        raise errors.invalid_argument(
            "deployment.flow_id", "and 'deployment.flow_name' are both set; set only one."
        )
    if d.flow_id:
        uuid("deployment.flow_id", d.flow_id)
    elif d.flow_name:
        flow_name("deployment.flow_name", d.flow_name)
    else:
        raise errors.invalid_argument(
            "deployment.flow_name",
            "is required: name the deployment's flow ('flow_name', registered if new) or give "
            "its 'flow_id'.",
        )
    deployment_fields("deployment", d, None)
    if d.work_queue_name and not d.work_pool_name:
        raise errors.invalid_argument(
            "deployment.work_queue_name",
            "needs a work pool: name it in 'deployment.work_pool_name' too.",
        )
    enforce = d.enforce_parameter_schema if d.HasField("enforce_parameter_schema") else True
    default_parameters("deployment", d.parameters_json, d.parameter_schema_json, enforce)


def default_parameters(prefix: str, defaults_json: str, schema_json: str, enforce: bool) -> None:
    """A deployment's defaults against its parameter schema (when enforced); a required
    parameter may be missing, since runs can supply it."""
    schema = check_schema(f"{prefix}.parameter_schema_json", schema_json)
    if not enforce or schema is None or not defaults_json:
        return
    problems = [
        (
            f"{prefix}.parameters_json.{path}" if path else f"{prefix}.parameters_json",
            f"{description} (the default does not satisfy the parameter schema).",
        )
        for path, description in violations(schema, json.loads(defaults_json), partial=True)
    ]
    if problems:
        raise errors.invalid_arguments(problems)


def deployment_name(field: str, value: str) -> str:
    """A "flow-name/deployment-name" reference."""
    required_text(field, value)
    name(field, value)
    flow, slash, deployment = value.partition("/")
    if not slash or not flow or not deployment:
        raise errors.invalid_argument(
            field,
            f"{errors.shown(value)} is not 'flow-name/deployment-name'; give both names "
            "separated by '/', or use the deployment's id.",
        )
    return value


def deployment_run(prefix: str, run: deployments_pb2.DeploymentRun) -> None:
    """What one requested run of a deployment sets (its parameters are merged later)."""
    json_object(f"{prefix}parameters_json", run.parameters_json)
    json_object(f"{prefix}job_variables_json", run.job_variables_json)
    name(f"{prefix}name", run.name)
    tags(f"{prefix}tags", run.tags)
    idempotency_key(f"{prefix}idempotency_key", run.idempotency_key)
    if run.HasField("scheduled_time"):
        timestamp(f"{prefix}scheduled_time", run.scheduled_time)


def work_pool_fields(
    prefix: str, pool: work_pools_pb2.WorkPool, paths: Collection[str] | None
) -> None:
    """The settable fields of a WorkPool: all (``paths`` None: a create) or those named."""
    if paths is None and pool.type and pool.type not in WORK_POOL_TYPES:
        raise errors.invalid_argument(
            f"{prefix}.type",
            f"{errors.shown(pool.type)} is not a work pool type this service runs; use "
            f"{', '.join(repr(t) for t in WORK_POOL_TYPES)} (or leave it empty).",
        )
    if paths is None or "description" in paths:
        text(f"{prefix}.description", pool.description, MAX_DESCRIPTION_CHARACTERS)
    if paths is None or "concurrency_limit" in paths:
        non_negative(f"{prefix}.concurrency_limit", pool.concurrency_limit)
    if paths is None or "base_job_template_json" in paths:
        json_object(f"{prefix}.base_job_template_json", pool.base_job_template_json)


def work_queue_fields(
    prefix: str, queue: work_pools_pb2.WorkQueue, paths: Collection[str] | None
) -> None:
    """The settable fields of a WorkQueue: all (``paths`` None: a create) or those named."""
    if paths is None or "description" in paths:
        text(f"{prefix}.description", queue.description, MAX_DESCRIPTION_CHARACTERS)
    if paths is None or "concurrency_limit" in paths:
        non_negative(f"{prefix}.concurrency_limit", queue.concurrency_limit)
    if paths is None or "priority" in paths:
        non_negative(f"{prefix}.priority", queue.priority)


#: The keys a stored W3C trace context may have, and the longest value kept (W3C allows a
#: ``tracestate`` of 32 entries of up to 256 characters each; 512 is plenty for either in
#: practice and keeps a run row small).
_TRACE_CONTEXT_KEYS = ("traceparent", "tracestate")
_TRACE_VALUE_MAX = 512


def trace_context(field: str, value: Mapping[str, str]) -> None:
    """Reject a trace context with other keys than W3C's two, or an oversized value."""
    for key, text in value.items():
        if key not in _TRACE_CONTEXT_KEYS:
            raise errors.invalid_argument(
                f"{field}[{errors.shown(key)}]",
                "is not a W3C trace context key; use 'traceparent' and 'tracestate' only.",
            )
        if len(text) > _TRACE_VALUE_MAX:
            raise errors.invalid_argument(
                f"{field}[{key}]", f"is {len(text)} characters; at most {_TRACE_VALUE_MAX}."
            )

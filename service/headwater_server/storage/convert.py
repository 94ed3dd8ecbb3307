"""Conversions between stored rows and generated protobuf messages.

Times are stored as integer microseconds since the Unix epoch (UTC); these helpers turn them
into ``Timestamp``/``Duration`` fields and timezone-aware datetimes without any string parsing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, overload

from google.protobuf import duration_pb2, json_format, timestamp_pb2
from headwater.v1 import (
    deployments_pb2,
    flow_runs_pb2,
    flows_pb2,
    logs_pb2,
    schedules_pb2,
    states_pb2,
    task_runs_pb2,
    work_pools_pb2,
)

from headwater_server.orchestration.rules import Policy
from headwater_server.storage.values import is_scheduled_key

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)


def now_us() -> int:
    """The current time in microseconds since the epoch."""
    return time.time_ns() // 1000


@overload
def us_to_datetime(us: int) -> datetime: ...
@overload
def us_to_datetime(us: None) -> None: ...
@overload
def us_to_datetime(us: int | None) -> datetime | None: ...
def us_to_datetime(us: int | None) -> datetime | None:
    """Exact conversion (no float rounding) to a timezone-aware UTC datetime."""
    if us is None:
        return None
    return EPOCH + timedelta(microseconds=us)


def datetime_to_us(value: datetime | None) -> int | None:
    """Exact conversion of an aware datetime to microseconds since the epoch."""
    if value is None:
        return None
    return (value - EPOCH) // _ONE_US


def timestamp_to_us(ts: timestamp_pb2.Timestamp) -> int:
    """Microseconds of a Timestamp (sub-microsecond precision is dropped)."""
    us: int = ts.seconds * 1_000_000 + ts.nanos // 1000
    return us


def set_timestamp(field: timestamp_pb2.Timestamp, us: int) -> None:
    """Fill a Timestamp field in place from microseconds."""
    field.seconds, rest = divmod(us, 1_000_000)
    field.nanos = rest * 1000


def set_duration_us(field: duration_pb2.Duration, us: int) -> None:
    """Fill a Duration field in place from microseconds."""
    field.seconds, rest = divmod(us, 1_000_000)
    field.nanos = rest * 1000


def set_duration_seconds(field: duration_pb2.Duration, seconds: float) -> None:
    """Fill a Duration field in place from (possibly fractional) seconds."""
    set_duration_us(field, round(seconds * 1_000_000))


def duration_seconds(value: duration_pb2.Duration) -> float:
    """Seconds of a Duration as a float."""
    seconds: float = value.seconds + value.nanos / 1e9
    return seconds


def dump_tags(tags: Any) -> str:
    """Tags as compact JSON text (the storage form; the tag filter relies on the separators)."""
    if not tags:
        return "[]"
    return json.dumps(list(tags), separators=(",", ":"), ensure_ascii=False)


def policy_columns(policy: states_pb2.RunPolicy) -> dict[str, Any]:
    """The ``policy_*`` column values of a run created with ``policy`` (NULL when not set)."""
    delays = [duration_seconds(d) for d in policy.retry_delays]
    timeout = duration_seconds(policy.timeout)
    return {
        "policy_retries": policy.retries,
        "policy_retry_delay_seconds": duration_seconds(policy.retry_delay),
        "policy_retry_delays": json.dumps(delays) if delays else None,
        "policy_retry_jitter_factor": policy.retry_jitter_factor or None,
        "policy_timeout_seconds": timeout or None,
    }


def policy_from_row(m: Mapping[Any, Any]) -> Policy:
    """The policy the rules enforce, from a run row's ``policy_*`` columns."""
    delays = m["policy_retry_delays"]
    return Policy(
        retries=m["policy_retries"],
        retry_delay_seconds=m["policy_retry_delay_seconds"],
        retry_delays=tuple(json.loads(delays)) if delays else (),
        retry_jitter_factor=m["policy_retry_jitter_factor"] or 0.0,
    )


def _fill_policy(policy: states_pb2.RunPolicy, m: Mapping[Any, Any]) -> None:
    policy.retries = m["policy_retries"]
    if m["policy_retry_delay_seconds"]:
        set_duration_seconds(policy.retry_delay, m["policy_retry_delay_seconds"])
    if m["policy_retry_delays"]:
        for seconds in json.loads(m["policy_retry_delays"]):
            set_duration_seconds(policy.retry_delays.add(), seconds)
    policy.retry_jitter_factor = m["policy_retry_jitter_factor"] or 0.0
    if m["policy_timeout_seconds"]:
        set_duration_seconds(policy.timeout, m["policy_timeout_seconds"])


def fill_state(
    state: states_pb2.State,
    *,
    state_id: str | None,
    state_type: int,
    name: str,
    message: str,
    create_time: int,
    scheduled_time: int | None,
    result: bytes | None = None,
    failure: bytes | None = None,
) -> None:
    """Fill a State message in place from stored values."""
    state.id = state_id or ""
    state.type = state_type  # type: ignore[assignment]
    state.name = name
    state.message = message
    set_timestamp(state.create_time, create_time)
    if scheduled_time is not None:
        set_timestamp(state.scheduled_time, scheduled_time)
    if result:
        state.result.ParseFromString(result)
    if failure:
        state.failure.ParseFromString(failure)


def _fill_run_common(
    msg: Any, m: Mapping[Any, Any], result: bytes | None, failure: bytes | None
) -> None:
    fill_state(
        msg.state,
        state_id=m["state_id"],
        state_type=m["state_type"],
        name=m["state_name"],
        message=m["state_message"],
        create_time=m["state_time"],
        scheduled_time=m["scheduled_time"],
        result=result,
        failure=failure,
    )
    _fill_policy(msg.policy, m)
    msg.run_count = m["run_count"]
    if m["start_time"] is not None:
        set_timestamp(msg.start_time, m["start_time"])
    if m["end_time"] is not None:
        set_timestamp(msg.end_time, m["end_time"])
    total = m["total_run_time_us"]
    if m["running_since"] is not None:
        # A run that is RUNNING right now has been running since then; show it live.
        total += max(now_us() - m["running_since"], 0)
    set_duration_us(msg.total_run_time, total)
    set_timestamp(msg.create_time, m["create_time"])
    set_timestamp(msg.update_time, m["update_time"])
    tags = m["tags"]
    if tags and tags != "[]":
        msg.tags.extend(json.loads(tags))
    msg.parameters_json = m["parameters_json"]


def dump_trace_context(carrier: Mapping[str, str] | None) -> str | None:
    """The ``trace_context`` column for a W3C carrier: JSON text, or NULL for none."""
    return json.dumps(dict(carrier), separators=(",", ":")) if carrier else None


def flow_run_message(
    m: Mapping[Any, Any], result: bytes | None = None, failure: bytes | None = None
) -> flow_runs_pb2.FlowRun:
    """A FlowRun from a ``flow_runs`` row mapping (plus the current state's payloads)."""
    run = flow_runs_pb2.FlowRun(
        id=m["id"],
        name=m["name"],
        flow_id=m["flow_id"],
        flow_name=m["flow_name"],
        flow_version=m["flow_version"],
        deployment_id=m["deployment_id"] or "",
        parent_flow_run_id=m["parent_flow_run_id"] or "",
        parent_task_run_id=m["parent_task_run_id"] or "",
        idempotency_key=m["idempotency_key"] or "",
        last_sequence=m["last_sequence"],
    )
    if m["deployment_id"] is not None:
        run.auto_scheduled = is_scheduled_key(m["idempotency_key"])
    trace_context = m.get("trace_context")
    if trace_context:
        run.trace_context.update(json.loads(trace_context))
    job_variables_json = m.get("job_variables_json")
    if job_variables_json:
        run.job_variables_json = job_variables_json
    _fill_run_common(run, m, result, failure)
    if m["expected_start_time"] is not None:
        set_timestamp(run.expected_start_time, m["expected_start_time"])
    return run


def task_run_message(
    m: Mapping[Any, Any], result: bytes | None = None, failure: bytes | None = None
) -> task_runs_pb2.TaskRun:
    """A TaskRun from a ``task_runs`` row mapping (plus the current state's payloads)."""
    run = task_runs_pb2.TaskRun()
    fill_task_run(run, m, result, failure)
    return run


def fill_task_run(
    run: task_runs_pb2.TaskRun,
    m: Mapping[Any, Any],
    result: bytes | None = None,
    failure: bytes | None = None,
) -> None:
    """Fill an empty TaskRun in place, as `task_run_message` builds one.

    For a list's page, whose runs are filled where they stay (``response.task_runs.add()``):
    a message built apart is copied whole into its response.
    """
    run.id = m["id"]
    run.flow_run_id = m["flow_run_id"] or ""
    run.task_key = m["task_key"]
    run.dynamic_key = m["dynamic_key"]
    run.name = m["name"]
    run.cache_key = m["cache_key"]
    _fill_run_common(run, m, result, failure)
    if m["cache_expiration_time"] is not None:
        set_timestamp(run.cache_expiration_time, m["cache_expiration_time"])


def flow_message(m: Mapping[Any, Any]) -> flows_pb2.Flow:
    """A Flow from a ``flows`` row mapping."""
    flow = flows_pb2.Flow(id=m["id"], name=m["name"])
    if m["tags"] and m["tags"] != "[]":
        flow.tags.extend(json.loads(m["tags"]))
    set_timestamp(flow.create_time, m["create_time"])
    return flow


def log_message(m: Mapping[Any, Any]) -> logs_pb2.Log:
    """A Log from a ``logs`` row mapping."""
    log = logs_pb2.Log(
        id=m["id"],
        flow_run_id=m["flow_run_id"] or "",
        task_run_id=m["task_run_id"] or "",
        logger_name=m["logger_name"],
        level=m["level"],
        message=m["message"],
    )
    set_timestamp(log.log_time, m["log_time"])
    return log


def state_message_from_row(m: Mapping[Any, Any]) -> states_pb2.State:
    """A State from a ``*_states`` history row mapping."""
    state = states_pb2.State()
    fill_state(
        state,
        state_id=m["id"],
        state_type=m["type"],
        name=m["name"],
        message=m["message"],
        create_time=m["create_time"],
        scheduled_time=m["scheduled_time"],
        result=m["result"],
        failure=m["failure"],
    )
    return state


def message_json(message: Any) -> str:
    """A message in its compact proto3 JSON form with sorted keys, as deployments store
    schedules and code locations: readable in the database, and equal text means equal value."""
    return json.dumps(
        json_format.MessageToDict(message, preserving_proto_field_name=True),
        separators=(",", ":"),
        sort_keys=True,
    )


def deployment_schedule_message(m: Mapping[Any, Any]) -> schedules_pb2.DeploymentSchedule:
    """A DeploymentSchedule from a ``deployment_schedules`` row mapping."""
    entry = schedules_pb2.DeploymentSchedule(
        id=m["id"],
        active=m["active"],
        max_scheduled_runs=m["max_scheduled_runs"],
        parameters_json=m["parameters_json"],
    )
    json_format.Parse(m["schedule_json"], entry.schedule)
    return entry


def deployment_message(
    m: Mapping[Any, Any], schedules: list[schedules_pb2.DeploymentSchedule]
) -> deployments_pb2.Deployment:
    """A Deployment from a ``deployments`` row mapping and its schedules, in order."""
    deployment = deployments_pb2.Deployment(
        id=m["id"],
        name=m["name"],
        flow_id=m["flow_id"],
        flow_name=m["flow_name"],
        description=m["description"],
        version=m["version"],
        entrypoint=m["entrypoint"],
        parameters_json=m["parameters_json"],
        parameter_schema_json=m["parameter_schema_json"],
        enforce_parameter_schema=m["enforce_parameter_schema"],
        schedules=schedules,
        paused=m["paused"],
        concurrency_limit=m["concurrency_limit"],
        collision_strategy=m["collision_strategy"],
        work_pool_name=m["work_pool_name"],
        work_queue_name=m["work_queue_name"],
        job_variables_json=m["job_variables_json"],
    )
    if m["tags"] and m["tags"] != "[]":
        deployment.tags.extend(json.loads(m["tags"]))
    json_format.Parse(m["code_json"], deployment.code)
    set_timestamp(deployment.create_time, m["create_time"])
    set_timestamp(deployment.update_time, m["update_time"])
    return deployment


def work_pool_message(m: Mapping[Any, Any]) -> work_pools_pb2.WorkPool:
    """A WorkPool from a ``work_pools`` row mapping."""
    pool = work_pools_pb2.WorkPool(
        id=m["id"],
        name=m["name"],
        type=m["type"],
        description=m["description"],
        paused=m["paused"],
        concurrency_limit=m["concurrency_limit"],
        base_job_template_json=m["base_job_template_json"],
    )
    set_timestamp(pool.create_time, m["create_time"])
    set_timestamp(pool.update_time, m["update_time"])
    return pool


def work_queue_message(m: Mapping[Any, Any], work_pool_name: str) -> work_pools_pb2.WorkQueue:
    """A WorkQueue from a ``work_queues`` row mapping and its pool's name."""
    queue = work_pools_pb2.WorkQueue(
        id=m["id"],
        name=m["name"],
        work_pool_name=work_pool_name,
        description=m["description"],
        paused=m["paused"],
        concurrency_limit=m["concurrency_limit"],
        priority=m["priority"],
    )
    set_timestamp(queue.create_time, m["create_time"])
    set_timestamp(queue.update_time, m["update_time"])
    return queue

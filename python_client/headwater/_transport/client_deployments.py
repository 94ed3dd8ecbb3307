"""The public clients' deployment and work pool calls: requests built here, answers converted.

The twin of `client_ops` for DeploymentService and WorkPoolService: each function returns the
`client_ops.Unary` or `client_ops.Listing` the sync and async runners send, so each call is
written once for both clients. Schedules are accepted in the shape of Prefect's
``prefect.schedules.Schedule`` (attributes ``interval``, ``anchor_date``, ``cron``, ``day_or``,
``rrule``, ``timezone``, ``active``, ``parameters``), which `DeploymentSchedule` records share,
so a deployment's schedules read back can be sent again.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Iterable, Mapping
from typing import Any

from google.protobuf import field_mask_pb2

from headwater._deployment_records import Deployment, DeploymentSchedule, WorkPool, WorkQueue
from headwater._runs import FlowRun
from headwater._transport import client_convert as convert
from headwater._transport.client_ops import Listing, Unary, by_token, page_size
from headwater.v1 import deployments_pb2, schedules_pb2, work_pools_pb2

__all__ = [
    "UPDATABLE",
    "create_deployment",
    "create_flow_run_from_deployment",
    "create_flow_runs_from_deployment",
    "create_work_pool",
    "create_work_queue",
    "delete_deployment",
    "delete_work_pool",
    "get_deployment",
    "get_work_pool",
    "list_deployments",
    "list_work_pools",
    "list_work_queues",
    "pause_deployment",
    "resume_deployment",
    "update_deployment",
]

D = deployments_pb2
W = work_pools_pb2

_STRATEGIES = {
    "ENQUEUE": D.COLLISION_STRATEGY_ENQUEUE,
    "CANCEL_NEW": D.COLLISION_STRATEGY_CANCEL_NEW,
}

#: The keyword arguments `update_deployment` takes, and the Deployment field each sets.
UPDATABLE = {
    "description": "description",
    "version": "version",
    "tags": "tags",
    "entrypoint": "entrypoint",
    "path": "code",
    "git_url": "code",
    "git_branch": "code",
    "git_commit": "code",
    "parameters": "parameters_json",
    "parameter_openapi_schema": "parameter_schema_json",
    "enforce_parameter_schema": "enforce_parameter_schema",
    "schedules": "schedules",
    "concurrency_limit": "concurrency_limit",
    "collision_strategy": "collision_strategy",
    "work_pool_name": "work_pool_name",
    "work_queue_name": "work_queue_name",
    "job_variables": "job_variables_json",
}


# ------------------------------------------------------------------------- to the wire


def _json(value: Mapping[str, Any] | None) -> str:
    return json.dumps(dict(value)) if value else ""


def _strategy(value: str | None) -> int:
    if value is None:
        return D.COLLISION_STRATEGY_UNSPECIFIED
    key = value.upper()
    if key not in _STRATEGIES:
        raise ValueError(f"Unknown collision strategy {value!r}; use 'ENQUEUE' or 'CANCEL_NEW'.")
    return _STRATEGIES[key]


def schedule_to_proto(schedule: Any) -> schedules_pb2.DeploymentSchedule:
    """A Prefect-shaped schedule (or a `DeploymentSchedule` read back) as the wire message."""
    entry = schedules_pb2.DeploymentSchedule(id=getattr(schedule, "id", "") or "")
    active = getattr(schedule, "active", None)
    if active is not None:
        entry.active = bool(active)
    entry.max_scheduled_runs = getattr(schedule, "max_scheduled_runs", None) or 0
    entry.parameters_json = _json(getattr(schedule, "parameters", None))
    timezone = getattr(schedule, "timezone", None) or ""
    interval = getattr(schedule, "interval", None)
    cron = getattr(schedule, "cron", None)
    rrule = getattr(schedule, "rrule", None)
    if interval is not None:
        seconds = interval.total_seconds() if isinstance(interval, _dt.timedelta) else interval
        message = entry.schedule.interval
        message.interval.FromTimedelta(_dt.timedelta(seconds=float(seconds)))
        message.timezone = timezone
        anchor = getattr(schedule, "anchor_date", None)
        if anchor is not None:
            message.anchor_time.FromDatetime(_aware_anchor(anchor, timezone))
    elif cron is not None:
        entry.schedule.cron.cron = cron
        entry.schedule.cron.timezone = timezone
        day_or = getattr(schedule, "day_or", None)
        if day_or is not None:
            entry.schedule.cron.day_or = bool(day_or)
    elif rrule is not None:
        entry.schedule.rrule.rrule = str(rrule)
        entry.schedule.rrule.timezone = timezone
    else:
        raise ValueError(
            f"{schedule!r} is not a schedule: give an object with an 'interval', 'cron' or "
            "'rrule' (such as a DeploymentSchedule, or Prefect's schedules)."
        )
    return entry


def _aware_anchor(anchor: _dt.datetime, timezone: str) -> _dt.datetime:
    """A naive anchor is a wall-clock time in the schedule's zone (UTC without one), as in
    Prefect; an unknown zone is left for the service to refuse, naming the field."""
    if anchor.tzinfo is not None or not timezone:
        return anchor
    import zoneinfo

    try:
        return anchor.replace(tzinfo=zoneinfo.ZoneInfo(timezone))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return anchor


def _deployment_fields(fields: Mapping[str, Any]) -> D.Deployment:
    """A Deployment message from SDK keyword arguments (only those given are set)."""
    message = D.Deployment()
    for name, value in fields.items():
        if name in ("parameters", "job_variables"):
            setattr(message, UPDATABLE[name], _json(value))
        elif name == "parameter_openapi_schema":
            message.parameter_schema_json = json.dumps(value) if value else ""
        elif name == "path":
            if value:
                message.code.directory = str(value)
        elif name in ("git_url", "git_branch", "git_commit"):
            if value:  # a repository's fields: the URL makes the location a git one
                setattr(message.code.git, name.removeprefix("git_"), str(value))
        elif name == "schedules":
            message.schedules.extend(schedule_to_proto(s) for s in value or ())
        elif name == "tags":
            message.tags.extend(value or ())
        elif name == "collision_strategy":
            message.collision_strategy = _strategy(value)  # type: ignore[assignment]
        elif name == "concurrency_limit":
            message.concurrency_limit = value or 0
        elif name == "enforce_parameter_schema":
            if value is not None:
                message.enforce_parameter_schema = bool(value)
        elif value is not None:
            setattr(message, name, value)
    return message


# ------------------------------------------------------------------------ from the wire


def schedule_from_proto(entry: schedules_pb2.DeploymentSchedule) -> DeploymentSchedule:
    """The SDK record of one of a deployment's schedules."""
    kind = entry.schedule.WhichOneof("kind")
    fields: dict[str, Any] = {}
    if kind == "interval":
        message = entry.schedule.interval
        fields["interval"] = message.interval.ToTimedelta()
        if message.HasField("anchor_time"):
            fields["anchor_date"] = message.anchor_time.ToDatetime(tzinfo=_dt.UTC)
        fields["timezone"] = message.timezone or None
    elif kind == "cron":
        fields["cron"] = entry.schedule.cron.cron
        fields["timezone"] = entry.schedule.cron.timezone or None
        if entry.schedule.cron.HasField("day_or"):
            fields["day_or"] = entry.schedule.cron.day_or
    elif kind == "rrule":
        fields["rrule"] = entry.schedule.rrule.rrule
        fields["timezone"] = entry.schedule.rrule.timezone or None
    return DeploymentSchedule(
        id=entry.id,
        active=entry.active if entry.HasField("active") else True,
        parameters=convert.json_object(entry.parameters_json),
        max_scheduled_runs=entry.max_scheduled_runs or None,
        raw=entry,
        **fields,
    )


def deployment_from_proto(message: D.Deployment) -> Deployment:
    """The SDK record of a deployment message."""
    code = message.code
    strategy = D.CollisionStrategy.Name(message.collision_strategy or D.COLLISION_STRATEGY_ENQUEUE)
    return Deployment(
        id=message.id,
        name=message.name,
        flow_id=message.flow_id,
        flow_name=message.flow_name,
        description=message.description,
        version=message.version or None,
        tags=tuple(message.tags),
        entrypoint=message.entrypoint or None,
        path=code.directory or None,
        git_url=code.git.url or None,
        git_branch=code.git.branch or None,
        git_commit=code.git.commit or None,
        parameters=convert.json_object(message.parameters_json),
        parameter_openapi_schema=(
            json.loads(message.parameter_schema_json) if message.parameter_schema_json else None
        ),
        enforce_parameter_schema=message.enforce_parameter_schema,
        schedules=tuple(schedule_from_proto(entry) for entry in message.schedules),
        paused=message.paused,
        concurrency_limit=message.concurrency_limit or None,
        collision_strategy=strategy.removeprefix("COLLISION_STRATEGY_"),
        work_pool_name=message.work_pool_name or None,
        work_queue_name=message.work_queue_name or None,
        job_variables=convert.json_object(message.job_variables_json),
        created=convert.time_of(message, "create_time"),
        updated=convert.time_of(message, "update_time"),
        raw=message,
    )


def work_pool_from_proto(message: W.WorkPool) -> WorkPool:
    """The SDK record of a work pool message."""
    return WorkPool(
        id=message.id,
        name=message.name,
        type=message.type,
        description=message.description,
        paused=message.paused,
        concurrency_limit=message.concurrency_limit or None,
        base_job_template=convert.json_object(message.base_job_template_json),
        created=convert.time_of(message, "create_time"),
        updated=convert.time_of(message, "update_time"),
        raw=message,
    )


def work_queue_from_proto(message: W.WorkQueue) -> WorkQueue:
    """The SDK record of a work queue message."""
    return WorkQueue(
        id=message.id,
        name=message.name,
        work_pool_name=message.work_pool_name,
        description=message.description,
        paused=message.paused,
        concurrency_limit=message.concurrency_limit or None,
        priority=message.priority,
        created=convert.time_of(message, "create_time"),
        updated=convert.time_of(message, "update_time"),
        raw=message,
    )


def _deployment(response: Any) -> Deployment:
    return deployment_from_proto(response.deployment)


# ------------------------------------------------------------------------- deployments


def create_deployment(
    *, flow_id: str | None, flow_name: str | None, name: str, request_id: str, **fields: Any
) -> Unary[Deployment]:
    message = _deployment_fields(fields)
    message.name = name
    message.flow_id = flow_id or ""
    message.flow_name = flow_name or ""
    request = D.CreateDeploymentRequest(deployment=message, request_id=request_id)
    return Unary("deployments", "CreateDeployment", request, _deployment)


def get_deployment(reference: str) -> Unary[Deployment]:
    """By id, or by "flow-name/deployment-name" (anything holding a '/')."""
    if "/" in reference:
        request = D.GetDeploymentRequest(name=reference)
    else:
        request = D.GetDeploymentRequest(deployment_id=reference)
    return Unary("deployments", "GetDeployment", request, _deployment)


def list_deployments(
    *,
    flow_name: str,
    name: str,
    tags: Iterable[str],
    work_pool_name: str,
    paused: bool | None,
    limit: int,
) -> Listing[Deployment]:
    where = D.DeploymentFilter(
        flow_name=flow_name, name=name, tags=list(tags), work_pool_name=work_pool_name
    )
    if paused is not None:
        where.paused = paused
    return Listing(
        "deployments",
        "ListDeployments",
        D.ListDeploymentsRequest(page_size=page_size(limit), filter=where),
        lambda response: response.deployments,
        deployment_from_proto,
        by_token,
        limit,
    )


def update_deployment(deployment_id: str, changes: Mapping[str, Any]) -> Unary[Deployment]:
    """Change the fields named by ``changes`` (keys of `UPDATABLE`)."""
    unknown = sorted(set(changes) - set(UPDATABLE))
    if unknown:
        raise TypeError(
            f"update_deployment() got unknown fields {unknown}; it changes "
            f"{', '.join(sorted(UPDATABLE))}."
        )
    if not changes:
        raise TypeError("update_deployment() needs at least one field to change.")
    request = D.UpdateDeploymentRequest(
        deployment_id=deployment_id,
        deployment=_deployment_fields(changes),
        update_mask=field_mask_pb2.FieldMask(paths=sorted({UPDATABLE[k] for k in changes})),
    )
    return Unary("deployments", "UpdateDeployment", request, _deployment)


def delete_deployment(deployment_id: str) -> Unary[None]:
    request = D.DeleteDeploymentRequest(deployment_id=deployment_id)
    return Unary("deployments", "DeleteDeployment", request, lambda response: None)


def pause_deployment(deployment_id: str) -> Unary[Deployment]:
    request = D.PauseDeploymentRequest(deployment_id=deployment_id)
    return Unary("deployments", "PauseDeployment", request, _deployment)


def resume_deployment(deployment_id: str) -> Unary[Deployment]:
    request = D.ResumeDeploymentRequest(deployment_id=deployment_id)
    return Unary("deployments", "ResumeDeployment", request, _deployment)


def _run(
    parameters: Mapping[str, Any] | None,
    name: str | None,
    tags: Iterable[str],
    idempotency_key: str | None,
    scheduled_time: _dt.datetime | None,
    job_variables: Mapping[str, Any] | None = None,
) -> D.DeploymentRun:
    run = D.DeploymentRun(
        parameters_json=_json(parameters),
        name=name or "",
        tags=list(tags),
        idempotency_key=idempotency_key or "",
        # As given, not made a dict: the service names the field when it is not an object.
        job_variables_json="" if job_variables is None else json.dumps(job_variables),
    )
    if scheduled_time is not None:
        if scheduled_time.tzinfo is None:
            raise ValueError("scheduled_time must be timezone-aware (e.g. datetime.now(UTC)).")
        run.scheduled_time.FromDatetime(scheduled_time)
    return run


def create_flow_run_from_deployment(
    deployment_id: str,
    *,
    parameters: Mapping[str, Any] | None,
    name: str | None,
    tags: Iterable[str],
    idempotency_key: str | None,
    scheduled_time: _dt.datetime | None,
    request_id: str,
    job_variables: Mapping[str, Any] | None = None,
) -> Unary[FlowRun]:
    run = _run(parameters, name, tags, idempotency_key, scheduled_time, job_variables)
    request = D.CreateFlowRunFromDeploymentRequest(
        deployment_id=deployment_id,
        parameters_json=run.parameters_json,
        name=run.name,
        tags=run.tags,
        idempotency_key=run.idempotency_key,
        request_id=request_id,
        job_variables_json=run.job_variables_json,
    )
    if run.HasField("scheduled_time"):
        request.scheduled_time.CopyFrom(run.scheduled_time)
    return Unary(
        "deployments",
        "CreateFlowRunFromDeployment",
        request,
        lambda response: convert.flow_run_from_proto(response.flow_run),
    )


def create_flow_runs_from_deployment(
    deployment_id: str, runs: Iterable[Mapping[str, Any]], request_id: str
) -> Unary[list[FlowRun]]:
    """Each run a mapping of the keyword arguments of `create_flow_run_from_deployment`."""
    allowed = {"parameters", "name", "tags", "idempotency_key", "scheduled_time", "job_variables"}
    messages = []
    for index, run in enumerate(runs):
        unknown = sorted(set(run) - allowed)
        if unknown:
            raise TypeError(f"runs[{index}] has unknown keys {unknown}; use {sorted(allowed)}.")
        messages.append(
            _run(
                run.get("parameters"),
                run.get("name"),
                run.get("tags", ()),
                run.get("idempotency_key"),
                run.get("scheduled_time"),
                run.get("job_variables"),
            )
        )
    request = D.BatchCreateFlowRunsFromDeploymentRequest(
        deployment_id=deployment_id, runs=messages, request_id=request_id
    )
    return Unary(
        "deployments",
        "BatchCreateFlowRunsFromDeployment",
        request,
        lambda response: [convert.flow_run_from_proto(m) for m in response.flow_runs],
    )


# -------------------------------------------------------------------------- work pools


def create_work_pool(
    name: str,
    *,
    type: str,
    description: str,
    paused: bool,
    concurrency_limit: int | None,
    base_job_template: Mapping[str, Any] | None,
    request_id: str,
) -> Unary[WorkPool]:
    pool = W.WorkPool(
        name=name,
        type=type,
        description=description,
        paused=paused,
        concurrency_limit=concurrency_limit or 0,
        base_job_template_json=_json(base_job_template),
    )
    return Unary(
        "work_pools",
        "CreateWorkPool",
        W.CreateWorkPoolRequest(work_pool=pool, request_id=request_id),
        lambda response: work_pool_from_proto(response.work_pool),
    )


def get_work_pool(name: str) -> Unary[WorkPool]:
    return Unary(
        "work_pools",
        "GetWorkPool",
        W.GetWorkPoolRequest(name=name),
        lambda response: work_pool_from_proto(response.work_pool),
    )


def list_work_pools(limit: int) -> Listing[WorkPool]:
    return Listing(
        "work_pools",
        "ListWorkPools",
        W.ListWorkPoolsRequest(page_size=page_size(limit)),
        lambda response: response.work_pools,
        work_pool_from_proto,
        by_token,
        limit,
    )


def delete_work_pool(name: str) -> Unary[None]:
    request = W.DeleteWorkPoolRequest(name=name)
    return Unary("work_pools", "DeleteWorkPool", request, lambda response: None)


def create_work_queue(
    work_pool_name: str,
    name: str,
    *,
    description: str,
    priority: int | None,
    concurrency_limit: int | None = None,
    request_id: str,
) -> Unary[WorkQueue]:
    queue = W.WorkQueue(
        name=name,
        description=description,
        priority=priority or 0,
        concurrency_limit=concurrency_limit or 0,
    )
    request = W.CreateWorkQueueRequest(
        work_pool_name=work_pool_name, work_queue=queue, request_id=request_id
    )
    return Unary(
        "work_pools",
        "CreateWorkQueue",
        request,
        lambda response: work_queue_from_proto(response.work_queue),
    )


def list_work_queues(work_pool_name: str, limit: int) -> Listing[WorkQueue]:
    return Listing(
        "work_pools",
        "ListWorkQueues",
        W.ListWorkQueuesRequest(work_pool_name=work_pool_name, page_size=page_size(limit)),
        lambda response: response.work_queues,
        work_queue_from_proto,
        by_token,
        limit,
    )

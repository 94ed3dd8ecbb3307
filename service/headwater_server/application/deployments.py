"""Deployments: register, read, list, change, pause and resume them, and create their runs.

Runs of a deployment are created SCHEDULED (due now unless a time is given) with the request's
parameters merged over the deployment's defaults and, when the deployment enforces its parameter
schema, checked against it: a refused value is INVALID_ARGUMENT naming the parameter
(``parameters_json.limit``, or ``runs[3].parameters_json.limit`` in a batch).
"""

from __future__ import annotations

from headwater.v1 import deployments_pb2

from headwater_server import errors
from headwater_server.application import checks
from headwater_server.application.backend import Backend
from headwater_server.application.parameter_schema import merged_parameters
from headwater_server.telemetry import creation_context

# The fields UpdateDeployment may change.
UPDATABLE = (
    "description",
    "version",
    "tags",
    "entrypoint",
    "code",
    "parameters_json",
    "parameter_schema_json",
    "enforce_parameter_schema",
    "schedules",
    "concurrency_limit",
    "collision_strategy",
    "work_pool_name",
    "work_queue_name",
    "job_variables_json",
)


async def create_deployment(
    backend: Backend, request: deployments_pb2.CreateDeploymentRequest
) -> deployments_pb2.CreateDeploymentResponse:
    """Register a deployment; a flow named for the first time is registered with it."""
    checks.new_deployment(request.deployment)
    checks.optional_uuid("request_id", request.request_id)
    return await backend.db.run(backend.db.repository.create_deployment, request)


async def get_deployment(
    backend: Backend, request: deployments_pb2.GetDeploymentRequest
) -> deployments_pb2.GetDeploymentResponse:
    """Return one deployment, by id or by "flow-name/deployment-name"."""
    which = checks.one_of(
        "deployment_id",
        request.WhichOneof("deployment"),
        "'deployment_id' (a UUID) or 'name' ('flow-name/deployment-name')",
    )
    if which == "deployment_id":
        checks.uuid("deployment_id", request.deployment_id)
    else:
        checks.deployment_name("name", request.name)
    return await backend.db.run(backend.db.repository.get_deployment, request)


async def list_deployments(
    backend: Backend, request: deployments_pb2.ListDeploymentsRequest
) -> deployments_pb2.ListDeploymentsResponse:
    """Page through deployments, newest first, with typed filters."""
    checks.page_size("page_size", request.page_size)
    where = request.filter
    checks.name("filter.flow_name", where.flow_name)
    checks.name("filter.name", where.name)
    checks.name("filter.work_pool_name", where.work_pool_name)
    checks.at_most("filter.tags", where.tags, checks.MAX_FILTER_VALUES, "entries")
    for index, tag in enumerate(where.tags):
        checks.name(f"filter.tags[{index}]", tag)
    return await backend.db.run(backend.db.repository.list_deployments, request)


async def update_deployment(
    backend: Backend, request: deployments_pb2.UpdateDeploymentRequest
) -> deployments_pb2.UpdateDeploymentResponse:
    """Change the fields listed in the update mask."""
    checks.uuid("deployment_id", request.deployment_id)
    paths = checks.update_mask("update_mask", request.update_mask, UPDATABLE)
    checks.deployment_fields("deployment", request.deployment, paths)

    def defaults_fit(deployment: deployments_pb2.Deployment) -> None:
        if {"parameters_json", "parameter_schema_json", "enforce_parameter_schema"} & set(paths):
            checks.default_parameters(
                "deployment",
                deployment.parameters_json,
                deployment.parameter_schema_json,
                deployment.enforce_parameter_schema,
            )

    response = await backend.db.run(backend.db.repository.update_deployment, request, defaults_fit)
    if "schedules" in paths:
        backend.hub.wake_all()  # runs created ahead may be gone: their watchers learn it
    return response


async def delete_deployment(
    backend: Backend, request: deployments_pb2.DeleteDeploymentRequest
) -> deployments_pb2.DeleteDeploymentResponse:
    """Delete a deployment and the runs its schedules created that have not started."""
    checks.uuid("deployment_id", request.deployment_id)
    response = await backend.db.run(backend.db.repository.delete_deployment, request)
    backend.hub.wake_all()
    return response


async def pause_deployment(
    backend: Backend, request: deployments_pb2.PauseDeploymentRequest
) -> deployments_pb2.PauseDeploymentResponse:
    """Pause a deployment: no scheduled runs, no new runs on request."""
    checks.uuid("deployment_id", request.deployment_id)
    checks.optional_uuid("request_id", request.request_id)
    response = await backend.db.run(backend.db.repository.pause_deployment, request)
    backend.hub.wake_all()
    return response


async def resume_deployment(
    backend: Backend, request: deployments_pb2.ResumeDeploymentRequest
) -> deployments_pb2.ResumeDeploymentResponse:
    """Resume a paused deployment."""
    checks.uuid("deployment_id", request.deployment_id)
    checks.optional_uuid("request_id", request.request_id)
    return await backend.db.run(backend.db.repository.resume_deployment, request)


async def create_flow_run_from_deployment(
    backend: Backend, request: deployments_pb2.CreateFlowRunFromDeploymentRequest
) -> deployments_pb2.CreateFlowRunFromDeploymentResponse:
    """Create one SCHEDULED run of a deployment (due now unless ``scheduled_time`` is set)."""
    run = deployments_pb2.DeploymentRun(
        parameters_json=request.parameters_json,
        name=request.name,
        tags=request.tags,
        idempotency_key=request.idempotency_key,
        job_variables_json=request.job_variables_json,
    )
    if request.HasField("scheduled_time"):
        run.scheduled_time.CopyFrom(request.scheduled_time)
    batch = deployments_pb2.BatchCreateFlowRunsFromDeploymentRequest(
        deployment_id=request.deployment_id, runs=[run], request_id=request.request_id
    )
    created = await _create_runs(backend, batch, "", "CreateFlowRunFromDeployment")
    return deployments_pb2.CreateFlowRunFromDeploymentResponse(flow_run=created.flow_runs[0])


async def batch_create_flow_runs_from_deployment(
    backend: Backend, request: deployments_pb2.BatchCreateFlowRunsFromDeploymentRequest
) -> deployments_pb2.BatchCreateFlowRunsFromDeploymentResponse:
    """Create many runs of one deployment in one transaction: all of them or none."""
    if not request.runs:
        raise errors.invalid_argument("runs", "is empty; give at least one run.")
    checks.at_most("runs", request.runs, checks.MAX_BATCH_RUNS, "runs")
    return await _create_runs(
        backend, request, "runs[{index}].", "BatchCreateFlowRunsFromDeployment"
    )


async def _create_runs(
    backend: Backend,
    request: deployments_pb2.BatchCreateFlowRunsFromDeploymentRequest,
    prefix: str,
    method: str,
) -> deployments_pb2.BatchCreateFlowRunsFromDeploymentResponse:
    """Check the runs, create them (parameters merged and checked in the transaction)."""
    checks.uuid("deployment_id", request.deployment_id)
    checks.optional_uuid("request_id", request.request_id)
    keys: dict[str, int] = {}
    for index, run in enumerate(request.runs):
        where = prefix.format(index=index)
        checks.deployment_run(where, run)
        if run.idempotency_key:
            if run.idempotency_key in keys:
                raise errors.invalid_argument(
                    f"{where}idempotency_key",
                    f"repeats the key of runs[{keys[run.idempotency_key]}]; each run needs its "
                    "own.",
                )
            keys[run.idempotency_key] = index

    def check(deployment: deployments_pb2.Deployment, index: int, parameters_json: str) -> str:
        return merged_parameters(
            f"{prefix.format(index=index)}parameters_json",
            deployment.parameters_json,
            parameters_json,
            deployment.parameter_schema_json,
            deployment.enforce_parameter_schema,
        )

    response = await backend.db.run(
        backend.db.repository.create_flow_runs_from_deployment,
        request,
        check,
        method,
        creation_context({}),
    )
    for run in response.flow_runs:
        backend.hub.notify(run.id, run.last_sequence)
    return response

"""The deployment and work pool API end to end over a real server, on SQLite and PostgreSQL.

Deployments are created, read by id and by "flow/deployment", listed, changed, paused and
deleted; runs are created from them one at a time and in bulk, with parameters merged over the
defaults and checked against the parameter schema; bad input gets the status code and the field
a person needs to fix it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2, field_mask_pb2, timestamp_pb2
from headwater.v1 import (
    deployments_pb2,
    flow_runs_pb2,
    flows_pb2,
    schedules_pb2,
    states_pb2,
    work_pools_pb2,
)
from rpc_helpers import Api, error_details
from server_harness import ServerProcess

pytestmark = pytest.mark.integration

D = deployments_pb2
W = work_pools_pb2
SCHEMA = json.dumps(
    {
        "title": "Parameters",
        "type": "object",
        "properties": {
            "day": {"title": "day", "type": "string"},
            "limit": {"title": "limit", "type": "integer", "default": 10},
            "config": {"$ref": "#/definitions/Config"},
        },
        "required": ["day"],
        "definitions": {
            "Config": {
                "type": "object",
                "properties": {"retries": {"type": "integer", "minimum": 0}},
            }
        },
    }
)


@pytest.fixture
def api(server: ServerProcess) -> Iterator[Api]:
    with server.channel() as channel:
        yield Api(channel)


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _create(api: Api, **fields: Any) -> D.Deployment:
    fields.setdefault("flow_name", _unique("etl"))
    fields.setdefault("name", "nightly")
    request = D.CreateDeploymentRequest(deployment=D.Deployment(**fields))
    return api.deployments.CreateDeployment(request).deployment


def _error(call: Any, request: Any) -> Any:
    with pytest.raises(grpc.RpcError) as caught:
        call(request)
    return error_details(caught.value)


def _pool(api: Api) -> W.WorkPool:
    name = _unique("pool")
    request = W.CreateWorkPoolRequest(work_pool=W.WorkPool(name=name))
    return api.work_pools.CreateWorkPool(request).work_pool


def test_a_deployment_is_created_and_read_back_by_id_and_by_name(api: Api) -> None:
    pool = _pool(api)
    interval = schedules_pb2.DeploymentSchedule(
        schedule=schedules_pb2.Schedule(
            interval=schedules_pb2.IntervalSchedule(interval=duration_pb2.Duration(seconds=3600))
        )
    )
    cron = schedules_pb2.DeploymentSchedule(
        schedule=schedules_pb2.Schedule(
            cron=schedules_pb2.CronSchedule(cron="0 9 * * 1-5", timezone="Europe/Paris")
        ),
        active=False,
        parameters_json='{"limit": 3}',
    )
    created = _create(
        api,
        description="Loads the day",
        version="abc123",
        tags=["etl", "daily"],
        entrypoint="flows/etl.py:etl",
        code=D.CodeLocation(git=D.GitRepository(url="https://example.com/repo.git", branch="main")),
        parameters_json='{"day": "mon"}',
        parameter_schema_json=SCHEMA,
        schedules=[interval, cron],
        concurrency_limit=5,
        collision_strategy=D.COLLISION_STRATEGY_CANCEL_NEW,
        work_pool_name=pool.name,
        job_variables_json='{"env": {"A": "1"}}',
    )
    assert uuid.UUID(created.id)
    assert created.enforce_parameter_schema  # unset means on
    assert not created.paused
    assert created.work_queue_name == "default"
    assert [s.active for s in created.schedules] == [True, False]
    assert all(uuid.UUID(s.id) for s in created.schedules)
    assert created.schedules[1].schedule.cron.timezone == "Europe/Paris"
    assert created.code.git.branch == "main"

    by_id = api.deployments.GetDeployment(D.GetDeploymentRequest(deployment_id=created.id))
    by_name = api.deployments.GetDeployment(
        D.GetDeploymentRequest(name=f"{created.flow_name}/nightly")
    )
    assert by_id.deployment == created == by_name.deployment
    flows = api.flows.ListFlows(flows_pb2.ListFlowsRequest(name=created.flow_name)).flows
    assert [f.id for f in flows] == [created.flow_id]


def test_names_are_unique_per_flow(api: Api) -> None:
    first = _create(api)
    again = _error(
        api.deployments.CreateDeployment,
        D.CreateDeploymentRequest(deployment=D.Deployment(flow_id=first.flow_id, name="nightly")),
    )
    assert again.code == grpc.StatusCode.ALREADY_EXISTS
    assert first.id in again.message
    other_flow = _create(api, name="nightly")
    assert other_flow.id != first.id


def test_a_retried_create_with_the_same_request_id_returns_the_first_answer(api: Api) -> None:
    request = D.CreateDeploymentRequest(
        deployment=D.Deployment(flow_name=_unique("etl"), name="once"),
        request_id=str(uuid.uuid4()),
    )
    first = api.deployments.CreateDeployment(request)
    assert api.deployments.CreateDeployment(request) == first


def test_runs_take_the_defaults_merged_with_their_parameters(api: Api) -> None:
    deployment = _create(
        api, parameters_json='{"day": "mon", "limit": 5}', parameter_schema_json=SCHEMA, tags=["a"]
    )
    run = api.deployments.CreateFlowRunFromDeployment(
        D.CreateFlowRunFromDeploymentRequest(
            deployment_id=deployment.id,
            parameters_json='{"limit": 7, "config": {"retries": 2}}',
            tags=["b", "a"],
        )
    ).flow_run
    assert json.loads(run.parameters_json) == {"day": "mon", "limit": 7, "config": {"retries": 2}}
    assert run.deployment_id == deployment.id
    assert run.flow_id == deployment.flow_id
    assert run.state.type == states_pb2.STATE_TYPE_SCHEDULED
    assert list(run.tags) == ["a", "b"]
    assert not run.auto_scheduled
    stored = api.flow_runs.GetFlowRun(flow_runs_pb2.GetFlowRunRequest(flow_run_id=run.id))
    assert stored.flow_run == run


@pytest.mark.parametrize(
    ("parameters", "fields", "words"),
    [
        ('{"day": "d", "limit": "many"}', ["parameters_json.limit"], "not of type 'integer'"),
        (
            '{"day": "d", "config": {"retries": -1}}',
            ["parameters_json.config.retries"],
            "minimum",
        ),
        ("{}", ["parameters_json.day"], "'day' is a required property"),
        (
            '{"day": 1, "limit": 1.5}',
            ["parameters_json.day", "parameters_json.limit"],
            "(and 1 more problems)",
        ),
    ],
)
def test_parameters_the_schema_refuses_are_invalid_argument_naming_the_field(
    api: Api, parameters: str, fields: list[str], words: str
) -> None:
    deployment = _create(api, parameter_schema_json=SCHEMA)
    error = _error(
        api.deployments.CreateFlowRunFromDeployment,
        D.CreateFlowRunFromDeploymentRequest(
            deployment_id=deployment.id, parameters_json=parameters
        ),
    )
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.fields == fields
    assert words in error.message


def test_the_schema_is_not_enforced_when_turned_off(api: Api) -> None:
    deployment = _create(api, parameter_schema_json=SCHEMA, enforce_parameter_schema=False)
    run = api.deployments.CreateFlowRunFromDeployment(
        D.CreateFlowRunFromDeploymentRequest(
            deployment_id=deployment.id, parameters_json='{"limit": "many"}'
        )
    ).flow_run
    assert json.loads(run.parameters_json) == {"limit": "many"}


def test_a_default_the_schema_refuses_is_refused_at_create(api: Api) -> None:
    error = _error(
        api.deployments.CreateDeployment,
        D.CreateDeploymentRequest(
            deployment=D.Deployment(
                flow_name=_unique("etl"),
                name="bad",
                parameter_schema_json=SCHEMA,
                parameters_json='{"limit": "x"}',
            )
        ),
    )
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.fields == ["deployment.parameters_json.limit"]


def test_a_paused_deployment_refuses_runs_until_resumed(api: Api) -> None:
    deployment = _create(api)
    paused = api.deployments.PauseDeployment(D.PauseDeploymentRequest(deployment_id=deployment.id))
    assert paused.deployment.paused
    error = _error(
        api.deployments.CreateFlowRunFromDeployment,
        D.CreateFlowRunFromDeploymentRequest(deployment_id=deployment.id),
    )
    assert error.code == grpc.StatusCode.FAILED_PRECONDITION
    assert error.reason == "DEPLOYMENT_PAUSED"
    assert "resume" in error.message.lower()
    resumed = api.deployments.ResumeDeployment(
        D.ResumeDeploymentRequest(deployment_id=deployment.id)
    )
    assert not resumed.deployment.paused
    api.deployments.CreateFlowRunFromDeployment(
        D.CreateFlowRunFromDeploymentRequest(deployment_id=deployment.id)
    )


def test_an_idempotency_key_makes_one_run(api: Api) -> None:
    deployment = _create(api)
    request = D.CreateFlowRunFromDeploymentRequest(
        deployment_id=deployment.id, idempotency_key="2030-01-01"
    )
    first = api.deployments.CreateFlowRunFromDeployment(request).flow_run
    again = _error(api.deployments.CreateFlowRunFromDeployment, request)
    assert again.code == grpc.StatusCode.ALREADY_EXISTS
    assert first.id in again.message
    reserved = _error(
        api.deployments.CreateFlowRunFromDeployment,
        D.CreateFlowRunFromDeploymentRequest(
            deployment_id=deployment.id, idempotency_key="scheduled x"
        ),
    )
    assert reserved.code == grpc.StatusCode.INVALID_ARGUMENT
    assert reserved.fields == ["idempotency_key"]


def test_many_runs_are_created_in_one_call_all_or_none(api: Api) -> None:
    deployment = _create(api, parameter_schema_json=SCHEMA, parameters_json='{"day": "mon"}')
    when = timestamp_pb2.Timestamp(seconds=1_900_000_000)
    runs = [D.DeploymentRun(parameters_json=json.dumps({"limit": i})) for i in range(50)]
    runs.append(D.DeploymentRun(name="later", scheduled_time=when, idempotency_key="k1"))
    created = api.deployments.BatchCreateFlowRunsFromDeployment(
        D.BatchCreateFlowRunsFromDeploymentRequest(deployment_id=deployment.id, runs=runs)
    ).flow_runs
    assert len(created) == 51
    assert [json.loads(r.parameters_json).get("limit") for r in created[:50]] == list(range(50))
    assert created[50].name == "later"
    assert created[50].state.scheduled_time == when

    bad = [D.DeploymentRun(), D.DeploymentRun(parameters_json='{"limit": "x"}')]
    error = _error(
        api.deployments.BatchCreateFlowRunsFromDeployment,
        D.BatchCreateFlowRunsFromDeploymentRequest(deployment_id=deployment.id, runs=bad),
    )
    assert error.fields == ["runs[1].parameters_json.limit"]
    listed = api.flow_runs.ListFlowRuns(
        flow_runs_pb2.ListFlowRunsRequest(
            page_size=1000, filter=flow_runs_pb2.FlowRunFilter(deployment_id=deployment.id)
        )
    ).flow_runs
    assert len(listed) == 51  # the refused batch created none


def test_updates_change_only_the_masked_fields(api: Api) -> None:
    deployment = _create(api, description="old", tags=["x"])
    updated = api.deployments.UpdateDeployment(
        D.UpdateDeploymentRequest(
            deployment_id=deployment.id,
            deployment=D.Deployment(description="new", tags=["y"], version="v2"),
            update_mask=field_mask_pb2.FieldMask(paths=["description", "version"]),
        )
    ).deployment
    assert (updated.description, updated.version, list(updated.tags)) == ("new", "v2", ["x"])
    error = _error(
        api.deployments.UpdateDeployment,
        D.UpdateDeploymentRequest(
            deployment_id=deployment.id, update_mask=field_mask_pb2.FieldMask(paths=["name"])
        ),
    )
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.fields == ["update_mask"]


def test_an_update_whose_defaults_break_the_schema_is_refused_and_changes_nothing(
    api: Api,
) -> None:
    deployment = _create(api, parameters_json='{"limit": 1}', parameter_schema_json=SCHEMA)
    error = _error(
        api.deployments.UpdateDeployment,
        D.UpdateDeploymentRequest(
            deployment_id=deployment.id,
            deployment=D.Deployment(parameters_json='{"limit": "x"}', description="lost"),
            update_mask=field_mask_pb2.FieldMask(paths=["parameters_json", "description"]),
        ),
    )
    assert error.fields == ["deployment.parameters_json.limit"]
    stored = api.deployments.GetDeployment(D.GetDeploymentRequest(deployment_id=deployment.id))
    assert stored.deployment == deployment
    relaxed = api.deployments.UpdateDeployment(
        D.UpdateDeploymentRequest(
            deployment_id=deployment.id,
            deployment=D.Deployment(parameters_json='{"limit": "x"}'),
            update_mask=field_mask_pb2.FieldMask(
                paths=["parameters_json", "enforce_parameter_schema"]
            ),
        )
    ).deployment
    assert not relaxed.enforce_parameter_schema and relaxed.parameters_json == '{"limit": "x"}'


def test_list_filters_and_pages(api: Api) -> None:
    pool = _pool(api)
    flow = _unique("listed")
    for i in range(5):
        _create(api, flow_name=flow, name=f"d{i}", tags=["even"] if i % 2 == 0 else [])
    _create(api, flow_name=flow, name="pooled", work_pool_name=pool.name, paused=True)
    seen: list[str] = []
    token = ""
    while True:
        page = api.deployments.ListDeployments(
            D.ListDeploymentsRequest(
                page_size=2, page_token=token, filter=D.DeploymentFilter(flow_name=flow)
            )
        )
        seen += [d.name for d in page.deployments]
        token = page.next_page_token
        if not token:
            break
    assert seen == ["pooled", "d4", "d3", "d2", "d1", "d0"]

    def names(**where: Any) -> list[str]:
        request = D.ListDeploymentsRequest(filter=D.DeploymentFilter(flow_name=flow, **where))
        return [d.name for d in api.deployments.ListDeployments(request).deployments]

    assert names(tags=["even"]) == ["d4", "d2", "d0"]
    assert names(work_pool_name=pool.name) == ["pooled"]
    assert names(paused=True) == ["pooled"]
    assert len(names(paused=False)) == 5


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"flow_name": "etl", "name": ""}, "deployment.name"),
        ({"flow_name": "etl", "name": "a/b"}, "deployment.name"),
        ({"name": "x"}, "deployment.flow_name"),
        ({"flow_name": "etl", "name": "x", "parameters_json": "[1]"}, "deployment.parameters_json"),
        (
            {"flow_name": "etl", "name": "x", "parameter_schema_json": '{"type": 12}'},
            "deployment.parameter_schema_json",
        ),
        (
            {"flow_name": "etl", "name": "x", "concurrency_limit": -1},
            "deployment.concurrency_limit",
        ),
        (
            {"flow_name": "etl", "name": "x", "collision_strategy": 7},
            "deployment.collision_strategy",
        ),
        ({"flow_name": "etl", "name": "x", "work_queue_name": "q"}, "deployment.work_queue_name"),
        (
            {
                "flow_name": "etl",
                "name": "x",
                "schedules": [schedules_pb2.DeploymentSchedule()],
            },
            "deployment.schedules[0].schedule",
        ),
        (
            {
                "flow_name": "etl",
                "name": "x",
                "schedules": [
                    schedules_pb2.DeploymentSchedule(
                        schedule=schedules_pb2.Schedule(
                            cron=schedules_pb2.CronSchedule(cron="* * * * *", timezone="Mars/Base")
                        )
                    )
                ],
            },
            "deployment.schedules[0].schedule.cron.timezone",
        ),
        (
            {
                "flow_name": "etl",
                "name": "x",
                "schedules": [
                    schedules_pb2.DeploymentSchedule(
                        schedule=schedules_pb2.Schedule(
                            interval=schedules_pb2.IntervalSchedule(
                                interval=duration_pb2.Duration(seconds=0)
                            )
                        )
                    )
                ],
            },
            "deployment.schedules[0].schedule.interval.interval",
        ),
    ],
)
def test_bad_deployments_are_invalid_argument_naming_the_field(
    api: Api, fields: dict[str, Any], field: str
) -> None:
    error = _error(
        api.deployments.CreateDeployment,
        D.CreateDeploymentRequest(deployment=D.Deployment(**fields)),
    )
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT, error.message
    assert error.fields == [field], error.message


def test_unknown_deployments_flows_and_pools_are_not_found(api: Api) -> None:
    missing = str(uuid.uuid4())
    for call, request in [
        (api.deployments.GetDeployment, D.GetDeploymentRequest(deployment_id=missing)),
        (api.deployments.GetDeployment, D.GetDeploymentRequest(name="no-such/flow")),
        (api.deployments.PauseDeployment, D.PauseDeploymentRequest(deployment_id=missing)),
        (api.deployments.DeleteDeployment, D.DeleteDeploymentRequest(deployment_id=missing)),
        (
            api.deployments.CreateFlowRunFromDeployment,
            D.CreateFlowRunFromDeploymentRequest(deployment_id=missing),
        ),
        (
            api.deployments.CreateDeployment,
            D.CreateDeploymentRequest(deployment=D.Deployment(flow_id=missing, name="x")),
        ),
        (
            api.deployments.CreateDeployment,
            D.CreateDeploymentRequest(
                deployment=D.Deployment(flow_name="etl", name="x", work_pool_name="nowhere")
            ),
        ),
    ]:
        error = _error(call, request)
        assert error.code == grpc.StatusCode.NOT_FOUND, (request, error.message)
    bad_name = _error(api.deployments.GetDeployment, D.GetDeploymentRequest(name="no-slash"))
    assert bad_name.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "flow-name/deployment-name" in bad_name.message


def test_work_pools_and_queues(api: Api) -> None:
    pool = _pool(api)
    assert pool.type == "process"
    taken = _error(
        api.work_pools.CreateWorkPool,
        W.CreateWorkPoolRequest(work_pool=W.WorkPool(name=pool.name)),
    )
    assert taken.code == grpc.StatusCode.ALREADY_EXISTS
    docker = _error(
        api.work_pools.CreateWorkPool,
        W.CreateWorkPoolRequest(work_pool=W.WorkPool(name=_unique("d"), type="docker")),
    )
    assert docker.fields == ["work_pool.type"]

    queue = api.work_pools.CreateWorkQueue(
        W.CreateWorkQueueRequest(work_pool_name=pool.name, work_queue=W.WorkQueue(name="gpu"))
    ).work_queue
    assert (queue.work_pool_name, queue.priority) == (pool.name, 2)
    listed = api.work_pools.ListWorkQueues(W.ListWorkQueuesRequest(work_pool_name=pool.name))
    assert [q.name for q in listed.work_queues] == ["default", "gpu"]
    updated = api.work_pools.UpdateWorkPool(
        W.UpdateWorkPoolRequest(
            name=pool.name,
            work_pool=W.WorkPool(paused=True, concurrency_limit=4),
            update_mask=field_mask_pb2.FieldMask(paths=["paused", "concurrency_limit"]),
        )
    ).work_pool
    assert (updated.paused, updated.concurrency_limit) == (True, 4)

    deployment = _create(api, work_pool_name=pool.name, work_queue_name="gpu")
    assert deployment.work_queue_name == "gpu"
    in_use = _error(api.work_pools.DeleteWorkPool, W.DeleteWorkPoolRequest(name=pool.name))
    assert in_use.code == grpc.StatusCode.FAILED_PRECONDITION
    assert f"{deployment.flow_name}/nightly" in in_use.message
    default = _error(
        api.work_pools.DeleteWorkQueue,
        W.DeleteWorkQueueRequest(work_pool_name=pool.name, name="default"),
    )
    assert default.code == grpc.StatusCode.FAILED_PRECONDITION

    api.deployments.DeleteDeployment(D.DeleteDeploymentRequest(deployment_id=deployment.id))
    api.work_pools.DeleteWorkQueue(W.DeleteWorkQueueRequest(work_pool_name=pool.name, name="gpu"))
    api.work_pools.DeleteWorkPool(W.DeleteWorkPoolRequest(name=pool.name))
    gone = _error(api.work_pools.GetWorkPool, W.GetWorkPoolRequest(name=pool.name))
    assert gone.code == grpc.StatusCode.NOT_FOUND
    assert gone.reason == "WORK_POOL_NOT_FOUND"


def test_retried_requests_with_a_request_id_get_the_first_answer(api: Api) -> None:
    deployment = _create(api)
    single = D.CreateFlowRunFromDeploymentRequest(
        deployment_id=deployment.id, request_id=str(uuid.uuid4())
    )
    first = api.deployments.CreateFlowRunFromDeployment(single)
    assert api.deployments.CreateFlowRunFromDeployment(single) == first
    batch = D.BatchCreateFlowRunsFromDeploymentRequest(
        deployment_id=deployment.id,
        runs=[D.DeploymentRun(), D.DeploymentRun()],
        request_id=str(uuid.uuid4()),
    )
    created = api.deployments.BatchCreateFlowRunsFromDeployment(batch)
    assert api.deployments.BatchCreateFlowRunsFromDeployment(batch) == created
    pause = D.PauseDeploymentRequest(deployment_id=deployment.id, request_id=str(uuid.uuid4()))
    paused = api.deployments.PauseDeployment(pause)
    api.deployments.ResumeDeployment(D.ResumeDeploymentRequest(deployment_id=deployment.id))
    assert api.deployments.PauseDeployment(pause) == paused  # the answer of the first call
    listed = api.flow_runs.ListFlowRuns(
        flow_runs_pb2.ListFlowRunsRequest(
            filter=flow_runs_pb2.FlowRunFilter(deployment_id=deployment.id)
        )
    ).flow_runs
    assert len(listed) == 3
    reused = _error(
        api.deployments.PauseDeployment,
        D.PauseDeploymentRequest(deployment_id=_create(api).id, request_id=pause.request_id),
    )
    assert reused.code == grpc.StatusCode.INVALID_ARGUMENT
    assert reused.fields == ["request_id"]


def test_grpcurl_creates_a_deployment_and_a_run_from_json(api: Api, server: ServerProcess) -> None:
    from test_grpcurl import grpcurl

    flow = _unique("curl")
    created = grpcurl(
        "-plaintext",
        "-d",
        json.dumps(
            {
                "deployment": {
                    "flow_name": flow,
                    "name": "from-json",
                    "parameters_json": '{"day": "mon"}',
                    "schedules": [{"schedule": {"cron": {"cron": "0 9 * * *"}}}],
                    "collision_strategy": "COLLISION_STRATEGY_CANCEL_NEW",
                }
            }
        ),
        server.address,
        "headwater.v1.DeploymentService/CreateDeployment",
    )
    deployment = json.loads(created.stdout)["deployment"]
    assert deployment["collisionStrategy"] == "COLLISION_STRATEGY_CANCEL_NEW"
    run = grpcurl(
        "-plaintext",
        "-d",
        json.dumps({"deployment_id": deployment["id"], "parameters_json": '{"limit": 2}'}),
        server.address,
        "headwater.v1.DeploymentService/CreateFlowRunFromDeployment",
    )
    flow_run = json.loads(run.stdout)["flowRun"]
    assert json.loads(flow_run["parametersJson"]) == {"day": "mon", "limit": 2}
    refused = grpcurl(
        "-plaintext",
        "-d",
        json.dumps({"name": "no-slash"}),
        server.address,
        "headwater.v1.DeploymentService/GetDeployment",
        check=False,
    )
    assert refused.returncode != 0
    assert "InvalidArgument" in refused.stderr and "flow-name/deployment-name" in refused.stderr


def test_queues_page_in_priority_order(api: Api) -> None:
    pool = _pool(api)
    for name, priority in (("low", 9), ("high", 2), ("later", 0), ("mid", 5)):
        api.work_pools.CreateWorkQueue(
            W.CreateWorkQueueRequest(
                work_pool_name=pool.name, work_queue=W.WorkQueue(name=name, priority=priority)
            )
        )
    seen: list[tuple[str, int]] = []
    token = ""
    while True:
        page = api.work_pools.ListWorkQueues(
            W.ListWorkQueuesRequest(work_pool_name=pool.name, page_size=2, page_token=token)
        )
        seen += [(q.name, q.priority) for q in page.work_queues]
        token = page.next_page_token
        if not token:
            break
    # "later" asked for no priority: after the queues that existed (default 1, high 2, low 9).
    assert seen == [("default", 1), ("high", 2), ("mid", 5), ("low", 9), ("later", 10)]


def test_moving_a_deployment_between_pools_and_deleting_its_flow(api: Api) -> None:
    first, second = _pool(api), _pool(api)
    deployment = _create(api, work_pool_name=first.name, work_queue_name="gpu")
    moved = api.deployments.UpdateDeployment(
        D.UpdateDeploymentRequest(
            deployment_id=deployment.id,
            deployment=D.Deployment(work_pool_name=second.name),
            update_mask=field_mask_pb2.FieldMask(paths=["work_pool_name"]),
        )
    ).deployment
    assert (moved.work_pool_name, moved.work_queue_name) == (second.name, "default")
    # The first pool is free now, its "gpu" queue too.
    api.work_pools.DeleteWorkPool(W.DeleteWorkPoolRequest(name=first.name))
    served = api.deployments.UpdateDeployment(
        D.UpdateDeploymentRequest(
            deployment_id=deployment.id,
            update_mask=field_mask_pb2.FieldMask(paths=["work_pool_name"]),
        )
    ).deployment
    assert (served.work_pool_name, served.work_queue_name) == ("", "")

    run = api.deployments.CreateFlowRunFromDeployment(
        D.CreateFlowRunFromDeploymentRequest(deployment_id=deployment.id)
    ).flow_run
    api.flows.DeleteFlow(flows_pb2.DeleteFlowRequest(flow_id=deployment.flow_id))
    gone = _error(
        api.deployments.GetDeployment, D.GetDeploymentRequest(deployment_id=deployment.id)
    )
    assert gone.code == grpc.StatusCode.NOT_FOUND
    assert (
        _error(api.flow_runs.GetFlowRun, flow_runs_pb2.GetFlowRunRequest(flow_run_id=run.id)).code
        == grpc.StatusCode.NOT_FOUND
    )

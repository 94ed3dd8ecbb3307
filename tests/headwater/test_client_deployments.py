"""Deployments and work pools through `headwater.client`, both clients, over a real server on
SQLite and PostgreSQL: SDK records back, the SDK's typed errors on bad input."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from headwater.client import (
    AsyncHeadwaterClient,
    Deployment,
    DeploymentSchedule,
    HeadwaterClient,
    WorkPool,
)
from headwater.exceptions import (
    FailedPrecondition,
    InvalidRequest,
    ObjectAlreadyExists,
    ObjectNotFound,
)

pytestmark = pytest.mark.integration

SCHEMA = {
    "type": "object",
    "properties": {"day": {"type": "string"}, "limit": {"type": "integer"}},
    "required": ["day"],
}


@dataclass
class PrefectShaped:
    """A schedule as Prefect's ``prefect.schedules.Schedule`` has it (one kind set)."""

    interval: dt.timedelta | None = None
    anchor_date: dt.datetime | None = None
    cron: str | None = None
    day_or: bool = True
    rrule: str | None = None
    timezone: str | None = None
    active: bool = True
    parameters: dict[str, Any] | None = None


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def client(server: Any) -> Any:
    with HeadwaterClient(server.address) as sync_client:
        yield sync_client


def test_a_deployment_round_trips_as_an_sdk_record(client: HeadwaterClient) -> None:
    pool = client.create_work_pool(_unique("pool"), concurrency_limit=2)
    assert isinstance(pool, WorkPool) and pool.concurrency_limit == 2
    anchor = dt.datetime(2030, 1, 1, 9, tzinfo=dt.UTC)
    flow = _unique("etl")
    created = client.create_deployment(
        name="nightly",
        flow_name=flow,
        description="loads a day",
        tags=["etl"],
        entrypoint="flows/etl.py:etl",
        path="/srv/code",
        parameters={"day": "mon"},
        parameter_openapi_schema=SCHEMA,
        schedules=[
            PrefectShaped(interval=dt.timedelta(hours=1), anchor_date=anchor, parameters={"x": 1}),
            PrefectShaped(cron="0 9 * * 1-5", timezone="Europe/Paris", day_or=False, active=False),
            PrefectShaped(rrule="FREQ=DAILY;BYHOUR=6", timezone="UTC"),
        ],
        concurrency_limit=3,
        collision_strategy="CANCEL_NEW",
        work_pool_name=pool.name,
        job_variables={"env": {"A": "1"}},
    )
    assert isinstance(created, Deployment)
    assert created.full_name == f"{flow}/nightly"
    assert created.path == "/srv/code" and created.entrypoint == "flows/etl.py:etl"
    assert created.parameter_openapi_schema == SCHEMA and created.enforce_parameter_schema
    assert (created.concurrency_limit, created.collision_strategy) == (3, "CANCEL_NEW")
    assert (created.work_pool_name, created.work_queue_name) == (pool.name, "default")
    assert created.job_variables == {"env": {"A": "1"}}
    interval, cron, rrule = created.schedules
    assert isinstance(interval, DeploymentSchedule)
    assert (interval.interval, interval.anchor_date, interval.parameters) == (
        dt.timedelta(hours=1),
        anchor,
        {"x": 1},
    )
    assert (cron.cron, cron.timezone, cron.day_or, cron.active) == (
        "0 9 * * 1-5",
        "Europe/Paris",
        False,
        False,
    )
    assert rrule.rrule == "FREQ=DAILY;BYHOUR=6" and rrule.describe().startswith("rrule")
    assert client.get_deployment(created.id) == created
    assert client.get_deployment(created.full_name) == created
    assert [d.id for d in client.list_deployments(flow_name=flow)] == [created.id]

    # Schedules read back go out again with their ids: unchanged ones keep them.
    updated = client.update_deployment(
        created.id, description="changed", schedules=created.schedules[:2]
    )
    assert updated.description == "changed"
    assert [s.id for s in updated.schedules] == [s.id for s in created.schedules[:2]]


def test_runs_from_a_deployment(client: HeadwaterClient) -> None:
    deployment = client.create_deployment(
        name="runs",
        flow_name=_unique("etl"),
        parameters={"day": "mon"},
        parameter_openapi_schema=SCHEMA,
    )
    later = dt.datetime(2031, 5, 1, tzinfo=dt.UTC)
    run = client.create_flow_run_from_deployment(
        deployment.id,
        parameters={"limit": 3},
        name="by-hand",
        tags=["manual"],
        scheduled_time=later,
    )
    assert run.parameters == {"day": "mon", "limit": 3}
    assert (run.name, run.tags, run.deployment_id) == ("by-hand", ("manual",), deployment.id)
    assert run.state is not None and run.state.is_scheduled()
    assert run.expected_start_time == later
    many = client.create_flow_runs_from_deployment(
        deployment.id, [{"parameters": {"limit": i}} for i in range(5)]
    )
    assert [r.parameters["limit"] for r in many] == list(range(5))
    listed = client.list_flow_runs(deployment_id=deployment.id, limit=100)
    assert {r.id for r in listed} == {run.id, *(r.id for r in many)}

    with pytest.raises(InvalidRequest) as refused:
        client.create_flow_run_from_deployment(deployment.id, parameters={"limit": "x"})
    assert "parameters_json.limit" in refused.value.message
    client.create_flow_run_from_deployment(deployment.id, idempotency_key="once")
    with pytest.raises(ObjectAlreadyExists):
        client.create_flow_run_from_deployment(deployment.id, idempotency_key="once")
    client.pause_deployment(deployment.id)
    with pytest.raises(FailedPrecondition) as paused:
        client.create_flow_run_from_deployment(deployment.id)
    assert paused.value.reason == "DEPLOYMENT_PAUSED"
    assert not client.resume_deployment(deployment.id).paused


def test_a_run_keeps_the_job_variables_it_was_created_with(client: HeadwaterClient) -> None:
    deployment = client.create_deployment(
        name="jobs", flow_name=_unique("etl"), job_variables={"env": {"A": "deployment"}}
    )
    variables = {"env": {"A": "run", "B": None}, "working_dir": "/srv/etl"}
    run = client.create_flow_run_from_deployment(deployment.id, job_variables=variables)
    assert run.job_variables == variables
    assert client.get_flow_run(run.id).job_variables == variables
    plain, batched = client.create_flow_runs_from_deployment(
        deployment.id, [{}, {"job_variables": {"working_dir": "/tmp"}}]
    )
    assert plain.job_variables == {}
    assert client.get_flow_run(batched.id).job_variables == {"working_dir": "/tmp"}
    assert client.get_deployment(deployment.id).job_variables == {"env": {"A": "deployment"}}

    with pytest.raises(InvalidRequest) as refused:
        client.create_flow_run_from_deployment(deployment.id, job_variables=["env"])  # type: ignore[arg-type]
    assert "job_variables_json" in refused.value.message
    assert "JSON object" in refused.value.message
    with pytest.raises(InvalidRequest) as refused:
        client.create_flow_runs_from_deployment(deployment.id, [{}, {"job_variables": 3}])
    assert "runs[1].job_variables_json" in refused.value.message


def test_typed_errors_and_argument_checks(client: HeadwaterClient) -> None:
    with pytest.raises(ObjectNotFound):
        client.get_deployment(str(uuid.uuid4()))
    with pytest.raises(ObjectNotFound):
        client.get_deployment("no/such")
    with pytest.raises(ObjectNotFound):
        client.create_deployment(name="x", flow_name=_unique("etl"), work_pool_name="nowhere")
    first = client.create_deployment(name="dup", flow_name=_unique("etl"))
    with pytest.raises(ObjectAlreadyExists):
        client.create_deployment(first.flow_id, "dup")
    with pytest.raises(TypeError, match="unknown arguments"):
        client.create_deployment(name="x", flow_name="etl", colour="red")
    with pytest.raises(TypeError, match="unknown fields"):
        client.update_deployment(first.id, name="renamed")
    with pytest.raises(ValueError, match="collision strategy"):
        client.create_deployment(name="x", flow_name="etl", collision_strategy="SOMETIMES")
    with pytest.raises(ValueError, match="timezone-aware"):
        client.create_flow_run_from_deployment(first.id, scheduled_time=dt.datetime(2030, 1, 1))
    client.delete_deployment(first.id)
    with pytest.raises(ObjectNotFound):
        client.get_deployment(first.id)


def test_work_pools_and_queues(client: HeadwaterClient) -> None:
    name = _unique("pool")
    pool = client.create_work_pool(name, description="gpus", base_job_template={"image": "x"})
    assert client.get_work_pool(name) == pool
    assert pool.base_job_template == {"image": "x"}
    assert name in [p.name for p in client.list_work_pools()]
    queue = client.create_work_queue(name, "urgent", priority=1)
    assert (queue.work_pool_name, queue.priority) == (name, 1)
    assert {q.name for q in client.list_work_queues(name)} == {"default", "urgent"}
    with pytest.raises(ObjectAlreadyExists):
        client.create_work_pool(name)
    with pytest.raises(InvalidRequest):
        client.create_work_pool(_unique("pool"), type="kubernetes")
    client.delete_work_pool(name)
    with pytest.raises(ObjectNotFound):
        client.get_work_pool(name)


async def test_the_async_client_has_the_same_methods(server: Any) -> None:
    async with AsyncHeadwaterClient(server.address) as client:
        pool = await client.create_work_pool(_unique("pool"))
        deployment = await client.create_deployment(
            name="async", flow_name=_unique("etl"), work_pool_name=pool.name
        )
        assert await client.get_deployment(deployment.full_name) == deployment
        run = await client.create_flow_run_from_deployment(deployment.id, parameters={"a": 1})
        assert run.parameters == {"a": 1}
        runs = await client.create_flow_runs_from_deployment(deployment.id, [{}, {}])
        assert len(runs) == 2
        assert (await client.pause_deployment(deployment.id)).paused
        assert not (await client.resume_deployment(deployment.id)).paused
        changed = await client.update_deployment(deployment.id, version="2")
        assert changed.version == "2"
        assert [d.id for d in await client.list_deployments(work_pool_name=pool.name)] == [
            deployment.id
        ]
        assert [q.name for q in await client.list_work_queues(pool.name)] == ["default"]
        await client.delete_deployment(deployment.id)
        await client.delete_work_pool(pool.name)
        assert pool.name not in [p.name for p in await client.list_work_pools()]

"""`Flow.to_deployment` and the argument checks of `Flow.serve` and `headwater.serve`: what a
deployment is made of, and the errors a person gets before anything is registered."""

from __future__ import annotations

import datetime
import os
from pathlib import Path

import pytest
from headwater import flow, serve
from headwater._serve.runner import Runner
from headwater.client import HeadwaterClient
from headwater.deployments import RunnerDeployment
from headwater.exceptions import InvalidNameError


@flow(version="7")
def nightly(day: str, limit: int = 10) -> int:
    """Load one day."""
    return limit


def test_a_deployment_names_the_flows_file_from_the_working_directory() -> None:
    deployment = nightly.to_deployment("etl", tags=["dev"], parameters={"day": "mon"})

    assert isinstance(deployment, RunnerDeployment)
    assert deployment.full_name == "nightly/etl"
    here = Path(__file__).resolve().relative_to(Path.cwd())
    assert deployment.entrypoint == f"{here.as_posix()}:nightly"
    assert deployment.path == os.getcwd()
    assert deployment.description == "Load one day."
    assert deployment.version == "7"
    assert deployment.tags == ["dev"]
    assert deployment.parameters == {"day": "mon"}
    assert deployment.enforce_parameter_schema is True
    schema = deployment.parameter_openapi_schema or {}
    assert schema["required"] == ["day"]
    assert deployment.schedules == []


def test_interval_cron_and_rrule_make_schedules() -> None:
    every = nightly.to_deployment("a", interval=[60, datetime.timedelta(hours=2)])
    assert [s.interval for s in every.schedules] == [
        datetime.timedelta(seconds=60),
        datetime.timedelta(hours=2),
    ]
    assert [s.cron for s in nightly.to_deployment("b", cron="0 4 * * sun").schedules] == [
        "0 4 * * sun"
    ]
    rule = "FREQ=DAILY;BYHOUR=6"
    assert [s.rrule for s in nightly.to_deployment("c", rrule=[rule]).schedules] == [rule]


def test_only_one_kind_of_schedule_argument_is_accepted() -> None:
    with pytest.raises(ValueError, match="Only one of interval, cron, rrule, or schedules"):
        nightly.to_deployment("x", interval=60, cron="* * * * *")


def test_a_non_positive_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="interval must be positive"):
        nightly.to_deployment("x", interval=0)


def test_a_deployment_name_with_a_slash_is_refused() -> None:
    with pytest.raises(InvalidNameError):
        nightly.to_deployment("a/b")


def test_triggers_and_the_webserver_are_not_supported() -> None:
    with pytest.raises(ValueError, match="triggers are not supported"):
        nightly.to_deployment("x", triggers=[object()])
    with pytest.raises(ValueError, match="webserver=True is not supported"):
        nightly.serve("x", webserver=True)


def test_a_flow_without_a_source_file_cannot_be_deployed() -> None:
    namespace: dict[str, object] = {}
    exec("def typed_in():\n    return 1\n", namespace)
    typed = flow(namespace["typed_in"])  # type: ignore[arg-type]

    with pytest.raises(ValueError, match="not defined in a file"):
        typed.to_deployment("x")


def test_serve_takes_deployments_only() -> None:
    with pytest.raises(TypeError, match=r"Flow.to_deployment\(\)"):
        serve("nightly/etl")  # type: ignore[arg-type]


def test_a_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="limit must be a positive integer"):
        Runner(limit=0)


def test_serving_a_deployment_again_updates_it_instead_of_failing(
    client: HeadwaterClient,
) -> None:
    # Restarting `python flows.py` registers the same served deployment (no work pool) again.
    deployment = nightly.to_deployment("again", interval=3600, parameters={"day": "mon"})
    first = deployment.apply(client)
    changed = nightly.to_deployment("again", interval=60, parameters={"day": "tue"})
    assert changed.apply(client) == first
    stored = client.get_deployment(first)
    assert stored.parameters == {"day": "tue"}
    assert stored.work_pool_name is None

"""`headwater.runtime.flow_run` and `.task_run`: the current run's attributes, read on access.

Flow-run attributes are checked inside real flows on the embedded service (the values come
from the run as the service stored it). Task runs are not executed by the engine yet, so the
task-run attributes are checked with a task run context set as the engine will set it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from engine_support import Reader, unique
from headwater import flow, tags, task
from headwater._context import TaskRunContext, _current_task_run
from headwater._runs import TaskRun
from headwater.context import get_run_context
from headwater.exceptions import MissingContextError
from headwater.runtime import flow_run, task_run


class TestOutsideAnyRun:
    def test_flow_run_defaults(self) -> None:
        assert flow_run.id is None
        assert flow_run.name is None
        assert flow_run.flow_name is None
        assert flow_run.tags == []
        assert flow_run.parameters == {}
        assert flow_run.run_count == 0
        assert flow_run.parent_flow_run_id is None
        assert flow_run.root_flow_run_id is None
        assert flow_run.ui_url is None
        before = dt.datetime.now(dt.UTC)
        assert flow_run.scheduled_start_time >= before

    def test_task_run_defaults(self) -> None:
        assert task_run.id is None
        assert task_run.name is None
        assert task_run.task_name is None
        assert task_run.tags == []
        assert task_run.parameters == {}
        assert task_run.run_count == 0

    def test_unknown_attribute(self) -> None:
        with pytest.raises(AttributeError, match="has no attribute 'nope'"):
            flow_run.nope  # noqa: B018
        with pytest.raises(AttributeError, match="has no attribute 'nope'"):
            task_run.nope  # noqa: B018


class TestEnvironmentOverrides:
    def test_values_are_cast_like_the_attribute(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("HEADWATER__RUNTIME__FLOW_RUN__ID", "abc")
        monkeypatch.setenv("HEADWATER__RUNTIME__FLOW_RUN__RUN_COUNT", "3")
        monkeypatch.setenv("HEADWATER__RUNTIME__FLOW_RUN__TAGS", "a, b")
        monkeypatch.setenv("HEADWATER__RUNTIME__TASK_RUN__PARAMETERS", '{"x": 1}')
        assert flow_run.id == "abc"
        assert flow_run.run_count == 3
        assert flow_run.tags == ["a", "b"]
        assert task_run.parameters == {"x": 1}

    def test_bad_values_say_which_variable(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("HEADWATER__RUNTIME__FLOW_RUN__RUN_COUNT", "three")
        with pytest.raises(ValueError, match="HEADWATER__RUNTIME__FLOW_RUN__RUN_COUNT"):
            flow_run.run_count  # noqa: B018
        monkeypatch.setenv("HEADWATER__RUNTIME__TASK_RUN__PARAMETERS", "[1]")
        with pytest.raises(ValueError, match="must be a JSON object"):
            task_run.parameters  # noqa: B018


def test_flow_run_inside_flows(reader: Reader) -> None:
    seen: dict[str, Any] = {}

    @flow(name=unique("child"), flow_run_name="child-{n}")
    def child(n: int) -> None:
        seen["child"] = {
            "id": flow_run.id,
            "parent": flow_run.parent_flow_run_id,
            "root": flow_run.root_flow_run_id,
        }

    @flow(name=unique("parent"), version="v7", retries=1)
    def parent(day: str) -> None:
        seen["parent"] = {
            "id": flow_run.id,
            "name": flow_run.name,
            "flow_name": flow_run.flow_name,
            "flow_version": flow_run.flow_version,
            "tags": flow_run.tags,
            "parameters": flow_run.parameters,
            "run_count": flow_run.run_count,
            "scheduled": flow_run.scheduled_start_time,
            "parent": flow_run.parent_flow_run_id,
            "root": flow_run.root_flow_run_id,
            "task_run_id": task_run.id,
        }
        child(2)
        if flow_run.run_count == 1:
            raise RuntimeError("fail the first attempt")

    with tags("nightly"):
        parent("mon")
    stored = reader.only_run_of(parent.name)
    outer = seen["parent"]
    assert outer["id"] == stored.id
    assert outer["name"] == stored.name
    assert outer["flow_name"] == parent.name
    assert outer["flow_version"] == "v7"
    assert outer["tags"] == ["nightly"]
    assert outer["parameters"] == {"day": "mon"}
    assert outer["run_count"] == 2  # read during the retry
    assert isinstance(outer["scheduled"], dt.datetime)
    assert outer["parent"] is None
    assert outer["root"] == stored.id
    assert outer["task_run_id"] is None
    inner = seen["child"]
    assert inner["parent"] == stored.id
    assert inner["root"] == stored.id
    assert inner["id"] != stored.id


def test_task_run_from_the_task_run_context() -> None:
    @task(name="fetch", tags=["io"])
    def fetch(url: str) -> None:
        pass

    context = TaskRunContext(
        task=fetch, task_run_id="tr-1", parameters={"url": "u"}, flow_run_id="fr-1"
    )
    token = _current_task_run.set(context)
    try:
        assert get_run_context() is context
        assert task_run.id == "tr-1"
        assert task_run.task_name == "fetch"
        assert task_run.parameters == {"url": "u"}
        with tags("nightly"):
            assert task_run.tags == ["io", "nightly"]
        assert task_run.name is None  # not known until the service has the run
        context.task_run = TaskRun(
            id="tr-1", flow_run_id="fr-1", name="fetch-0", run_count=2, tags=("io", "x")
        )
        assert task_run.name == "fetch-0"
        assert task_run.run_count == 2
        assert task_run.tags == ["io", "x"]
    finally:
        _current_task_run.reset(token)
    with pytest.raises(MissingContextError):
        get_run_context()


def test_run_name_callables_read_the_runs_parameters_through_runtime(reader: Reader) -> None:
    """Prefect's documented name callables take no arguments and read the run from
    ``prefect.runtime``: the parameters, flow and task names, tags and parent are there while
    the name is made, though the run (and so its id and name) does not exist yet."""
    seen: dict[str, Any] = {}

    def flow_run_name() -> str:
        seen["flow"] = {
            "id": flow_run.id,
            "name": flow_run.name,
            "tags": flow_run.tags,
            "parent": flow_run.parent_flow_run_id,
        }
        return f"{flow_run.flow_name}-with-{flow_run.parameters['name']}"

    def task_run_name() -> str:
        seen["task"] = {"id": task_run.id, "name": task_run.name, "flow_run": flow_run.name}
        parameters = task_run.parameters
        return f"{task_run.task_name}-with-{parameters['name']}-and-{parameters['limit']}"

    @task(name=unique("greet"), task_run_name=task_run_name)
    def greet(name: str, limit: int = 100) -> str | None:
        return task_run.name

    @flow(name=unique("hello"), flow_run_name=flow_run_name)
    def hello(name: str) -> tuple[str | None, str | None]:
        return flow_run.name, greet(name)

    with tags("nightly"):
        run_name, task_name = hello("marvin")
    assert run_name == f"{hello.name}-with-marvin"
    assert task_name == f"{greet.name}-with-marvin-and-100"
    stored = reader.only_run_of(hello.name)
    assert stored.name == run_name
    assert seen["flow"] == {"id": None, "name": None, "tags": ["nightly"], "parent": None}
    assert seen["task"]["name"] is None  # not created yet
    assert seen["task"]["id"]  # the engine chooses the task run's id before creating it
    assert seen["task"]["flow_run"] == run_name  # the flow run it runs in is there
    # Outside the callables nothing of the unborn runs is left current.
    assert flow_run.id is None and task_run.id is None

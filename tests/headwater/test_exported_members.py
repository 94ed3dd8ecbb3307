"""The public surface: pinned, so adding or removing a public name is a deliberate change."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import headwater
import headwater.flows

ROOT = Path(__file__).resolve().parents[2]


def test_headwater_all_is_pinned() -> None:
    assert sorted(headwater.__all__) == sorted(
        [
            "AwaitingConcurrencySlot",
            "AwaitingRetry",
            "Cached",
            "Cancelled",
            "Cancelling",
            "Completed",
            "Crashed",
            "FINAL_STATE_TYPES",
            "Failed",
            "Flow",
            "FlowRun",
            "FlowRunContext",
            "Late",
            "Paused",
            "Pending",
            "Retrying",
            "Running",
            "Scheduled",
            "State",
            "StateType",
            "Suspended",
            "Task",
            "__version__",
            "allow_failure",
            "deploy",
            "flow",
            "get_client",
            "get_run_context",
            "get_run_logger",
            "serve",
            "tags",
            "task",
            "unmapped",
        ]
    )


def test_flows_module_all_is_pinned() -> None:
    assert sorted(headwater.flows.__all__) == sorted(
        [
            "Flow",
            "NotSet",
            "flow",
            "is_entrypoint_async",
            "load_flow_arguments_from_entrypoint",
            "load_flow_from_entrypoint",
            "load_flow_from_flow_run",
            "load_flows_from_script",
            "load_placeholder_flow",
            "safe_load_flow_from_entrypoint",
            "select_flow",
            "serve",
        ]
    )


def test_every_exported_name_resolves() -> None:
    for module in (headwater, headwater.flows):
        for name in module.__all__:
            assert getattr(module, name) is not None, f"{module.__name__}.{name}"


def test_exported_objects_come_from_private_modules() -> None:
    from headwater import _states

    # Constants carry no __module__: say where each comes from.
    assert headwater.FINAL_STATE_TYPES is _states.FINAL_STATE_TYPES
    for name in headwater.__all__:
        if name in ("__version__", "FINAL_STATE_TYPES"):
            continue
        owner = getattr(headwater, name).__module__
        if name == "get_client":  # Prefect's top-level name for the public client module's
            assert owner == "headwater.client"
            continue
        assert owner.startswith("headwater._"), f"{name} is defined in {owner}"


def test_top_level_and_flows_module_agree() -> None:
    assert headwater.flow is headwater.flows.flow
    assert headwater.Flow is headwater.flows.Flow
    assert headwater.serve is headwater.flows.serve
    assert headwater.deploy is headwater.deployments.deploy


def test_top_level_get_client_is_the_clients() -> None:
    import headwater.client

    assert headwater.get_client is headwater.client.get_client


def test_top_level_and_tasks_module_agree() -> None:
    import headwater.tasks

    assert headwater.task is headwater.tasks.task
    assert headwater.Task is headwater.tasks.Task


# The public modules named as Prefect's are, so imports port by changing "prefect" to
# "headwater"; each one's names are pinned.
PUBLIC_MODULES = {
    "headwater.tasks": ["Task", "exponential_backoff", "task", "task_input_hash"],
    "headwater.cache_policies": [
        "DEFAULT",
        "FLOW_PARAMETERS",
        "INPUTS",
        "NONE",
        "NO_CACHE",
        "RUN_ID",
        "TASK_SOURCE",
        "CacheKeyFnPolicy",
        "CachePolicy",
        "CompoundCachePolicy",
        "FlowParameters",
        "Inputs",
        "RunId",
        "TaskSource",
    ],
    "headwater.states": [
        "AwaitingConcurrencySlot",
        "AwaitingRetry",
        "Cached",
        "Cancelled",
        "Cancelling",
        "Completed",
        "Crashed",
        "Failed",
        "Late",
        "Paused",
        "Pending",
        "Retrying",
        "Running",
        "Scheduled",
        "State",
        "StateType",
        "Suspended",
    ],
    "headwater.logging": ["disable_run_logger", "get_logger", "get_run_logger"],
    "headwater.testing.utilities": ["headwater_test_harness", "prefect_test_harness"],
    "headwater.client.orchestration": [
        "AsyncHeadwaterClient",
        "HeadwaterClient",
        "PrefectClient",
        "SyncPrefectClient",
        "get_client",
    ],
    "headwater.filesystems": ["LocalFileSystem"],
    "headwater.serializers": [
        "CloudPickleSerializer",
        "CompressedJSONSerializer",
        "CompressedPickleSerializer",
        "CompressedSerializer",
        "JSONSerializer",
        "PickleSerializer",
        "Serializer",
    ],
    "headwater.deployments": ["RunnerDeployment", "deploy", "run_deployment"],
    "headwater.runner.storage": ["GitRepository", "LocalStorage"],
    "headwater.context": ["FlowRunContext", "TaskRunContext", "get_run_context", "tags"],
    "headwater.task_runners": [
        "DaskTaskRunner",
        "ProcessPoolTaskRunner",
        "TaskRunner",
        "ThreadPoolTaskRunner",
        "get_async_dask_client",
        "get_dask_client",
    ],
    "headwater.futures": [
        "ConcurrentTaskRunFuture",
        "DoneAndNotDoneFutures",
        "PrefectConcurrentFuture",
        "PrefectFuture",
        "PrefectFutureList",
        "TaskRunFuture",
        "as_completed",
        "resolve_futures_to_results",
        "resolve_futures_to_states",
        "wait",
    ],
    "headwater.utilities.annotations": ["BaseAnnotation", "allow_failure", "quote", "unmapped"],
    "headwater.runtime": ["flow_run", "task_run"],
    "headwater.runtime.flow_run": [
        "api_url",
        "flow_name",
        "flow_version",
        "id",
        "job_variables",
        "name",
        "parameters",
        "parent_deployment_id",
        "parent_flow_run_id",
        "root_flow_run_id",
        "run_count",
        "scheduled_start_time",
        "tags",
        "ui_url",
    ],
    "headwater.runtime.task_run": [
        "api_url",
        "id",
        "name",
        "parameters",
        "run_count",
        "tags",
        "task_name",
        "ui_url",
    ],
}


def test_public_modules_all_is_pinned() -> None:
    import importlib

    for module_name, names in PUBLIC_MODULES.items():
        module = importlib.import_module(module_name)
        assert sorted(module.__all__) == sorted(names), module_name
        for name in names:
            assert hasattr(module, name), f"{module_name}.{name}"


def test_public_modules_reexport_the_sdk_objects() -> None:
    import headwater.context
    import headwater.logging
    import headwater.states

    for name in headwater.states.__all__:
        assert getattr(headwater.states, name) is getattr(headwater, name)
    assert headwater.logging.get_run_logger is headwater.get_run_logger
    assert headwater.context.get_run_context is headwater.get_run_context
    assert headwater.context.FlowRunContext is headwater.FlowRunContext
    assert headwater.context.tags is headwater.tags


def test_result_modules_are_the_ones_results_are_persisted_with() -> None:
    import headwater._results
    import headwater.filesystems
    import headwater.serializers

    assert headwater.filesystems.LocalFileSystem is headwater._results.LocalFileSystem
    for name in headwater.serializers.__all__:
        assert getattr(headwater.serializers, name) is getattr(headwater._results, name)


def test_public_modules_are_attributes_of_the_package() -> None:
    for module_name in PUBLIC_MODULES:
        if module_name.count(".") == 1:
            short = module_name.split(".")[1]
            assert getattr(headwater, short).__name__ == module_name
            assert short in dir(headwater)


def test_version() -> None:
    assert headwater.__version__ == "0.1.0"


def test_exceptions_are_a_submodule() -> None:
    assert headwater.exceptions.ScriptError.__module__ == "headwater.exceptions"
    assert "exceptions" in dir(headwater)


def test_unknown_attribute_raises_attribute_error() -> None:
    import pytest

    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        headwater.nope  # type: ignore[attr-defined]  # noqa: B018


def test_import_headwater_stays_light() -> None:
    """`import headwater` must not load pydantic, grpc, cloudpickle or SQLAlchemy.

    Run in a fresh interpreter, since this test process has already imported them.
    """
    heavy = ("pydantic", "pydantic_core", "grpc", "cloudpickle", "sqlalchemy", "headwater_server")
    code = (
        "import sys, headwater\n"
        "from headwater import flow, Flow, State, Completed, task, Task\n"
        "import headwater.tasks, headwater.cache_policies, headwater.states\n"
        f"loaded = [m for m in {heavy!r} if m in sys.modules]\n"
        "print(','.join(loaded))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(ROOT / "python_client"), "PATH": ""},
    )
    assert result.stdout.strip() == ""

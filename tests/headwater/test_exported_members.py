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
            "__version__",
            "flow",
            "get_run_context",
            "get_run_logger",
            "tags",
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
        assert owner.startswith("headwater._"), f"{name} is defined in {owner}"


def test_top_level_and_flows_module_agree() -> None:
    assert headwater.flow is headwater.flows.flow
    assert headwater.Flow is headwater.flows.Flow


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
        "from headwater import flow, Flow, State, Completed\n"
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

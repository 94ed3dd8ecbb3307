"""Headwater: workflow orchestration over a language-neutral gRPC API.

Decorate a function with `flow` and call it; the engine reports each state to the Headwater
service (an embedded one when ``HEADWATER_API_URL`` is unset)::

    from headwater import flow

    @flow(retries=2)
    def etl(day: str) -> int:
        ...

    etl("2026-01-01")

Names are loaded on first use, so ``import headwater`` stays fast: it imports neither pydantic
nor grpc. Exceptions live in `headwater.exceptions`.

Inside, two layers: `headwater._engine` runs a flow through its states (in SDK types only:
`State`, `FlowRun`, decisions), and `headwater._transport`, the only code that speaks gRPC,
carries what the engine proposes to the service behind the interface in
`headwater._transport.interface`. ``tests/test_architecture.py`` keeps it so.
"""

from __future__ import annotations

import importlib

# Not `from typing import TYPE_CHECKING`: importing typing alone costs ~9 ms, and this module
# must stay cheap. Type checkers treat any name TYPE_CHECKING as true.
TYPE_CHECKING = False

__version__ = "0.1.0"

if TYPE_CHECKING:
    from typing import Any

    from headwater._annotations import allow_failure, unmapped
    from headwater._context import FlowRunContext, get_run_context, tags
    from headwater._flows import Flow, flow, serve
    from headwater._logging import get_run_logger
    from headwater._runs import FlowRun
    from headwater._serve.deploy import deploy
    from headwater._states import (
        FINAL_STATE_TYPES,
        AwaitingConcurrencySlot,
        AwaitingRetry,
        Cached,
        Cancelled,
        Cancelling,
        Completed,
        Crashed,
        Failed,
        Late,
        Paused,
        Pending,
        Retrying,
        Running,
        Scheduled,
        State,
        StateType,
        Suspended,
    )
    from headwater._tasks import Task, task
    from headwater.client import get_client

__all__ = [
    "FINAL_STATE_TYPES",
    "AwaitingConcurrencySlot",
    "AwaitingRetry",
    "Cached",
    "Cancelled",
    "Cancelling",
    "Completed",
    "Crashed",
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

# Public name -> the private module that defines it.
_LAZY_ATTRIBUTES = {
    "flow": "headwater._flows",
    "Flow": "headwater._flows",
    "serve": "headwater._flows",
    "deploy": "headwater._serve.deploy",
    "FlowRun": "headwater._runs",
    "task": "headwater._tasks",
    "Task": "headwater._tasks",
    "FlowRunContext": "headwater._context",
    "get_run_context": "headwater._context",
    "tags": "headwater._context",
    "get_run_logger": "headwater._logging",
    # Prefect's top-level ``get_client`` too (``from prefect import get_client``).
    "get_client": "headwater.client",
    "allow_failure": "headwater._annotations",
    "unmapped": "headwater._annotations",
    **{
        name: "headwater._states"
        for name in (
            "AwaitingConcurrencySlot",
            "AwaitingRetry",
            "Cached",
            "Cancelled",
            "Cancelling",
            "Completed",
            "Crashed",
            "FINAL_STATE_TYPES",
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
        )
    },
}

# Public submodules reachable as attributes (``headwater.exceptions.ScriptError``).
_SUBMODULES = frozenset(
    {
        "cache_policies",
        "client",
        "context",
        "deployments",
        "exceptions",
        "filesystems",
        "flows",
        "futures",
        "logging",
        "runtime",
        "serializers",
        "states",
        "task_runners",
        "tasks",
        "testing",
        "utilities",
    }
)


def __getattr__(name: str) -> Any:
    module_name = _LAZY_ATTRIBUTES.get(name)
    if module_name is not None:
        value = getattr(importlib.import_module(module_name), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"{__name__}.{name}")
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__, *_SUBMODULES})

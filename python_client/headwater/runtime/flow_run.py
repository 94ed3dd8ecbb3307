"""The current flow run, mirroring ``prefect.runtime.flow_run``: ``flow_run.id``, ``.name``, ...

Each attribute is read when accessed, from the run context; outside a flow run it has an
empty default (None, ``[]``, ``{}``, 0). Inside a task, it is the task's flow run.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable
from typing import Any

from headwater._context import FlowRunContext
from headwater.runtime import from_environment

# The names are served by the module `__getattr__`, read at access time.
__all__ = [  # noqa: F822
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
]


def _context() -> FlowRunContext | None:
    return FlowRunContext.get()


def _id() -> str | None:
    context = _context()
    # "" while a flow_run_name callable names a run not created yet (`run_name`).
    return (context.flow_run_id or None) if context is not None else None


def _name() -> str | None:
    context = _context()
    return (context.flow_run.name or None) if context is not None else None


def _flow_name() -> str | None:
    context = _context()
    return context.flow.name if context is not None else None


def _flow_version() -> str | None:
    context = _context()
    return context.flow.version if context is not None else None


def _tags() -> list[str]:
    context = _context()
    return list(context.flow_run.tags) if context is not None else []


def _parameters() -> dict[str, Any]:
    context = _context()
    return dict(context.parameters) if context is not None else {}


def _run_count() -> int:
    context = _context()
    return context.flow_run.run_count if context is not None else 0


def _scheduled_start_time() -> _dt.datetime:
    """When the run was expected to start; now, outside a run (as Prefect)."""
    context = _context()
    if context is not None:
        run = context.flow_run
        expected = run.expected_start_time or run.start_time or run.created
        if expected is not None:
            return expected
    return _dt.datetime.now(_dt.UTC)


def _parent_flow_run_id() -> str | None:
    context = _context()
    if context is None or context.parent is None:
        return None
    return context.parent.flow_run_id


def _root_flow_run_id() -> str | None:
    context = _context()
    if context is None:
        return None
    while context.parent is not None:
        context = context.parent
    return context.flow_run_id


def _api_url() -> str | None:
    """The service address runs report to; None for the embedded service."""
    from headwater._settings import get_settings

    return get_settings().api_url


def _none() -> None:
    """Headwater has no web UI and no deployments yet."""
    return None


_GETTERS: dict[str, tuple[Callable[[], Any], Any]] = {
    "id": (_id, None),
    "name": (_name, None),
    "flow_name": (_flow_name, None),
    "flow_version": (_flow_version, None),
    "tags": (_tags, []),
    "parameters": (_parameters, {}),
    "run_count": (_run_count, 0),
    "scheduled_start_time": (_scheduled_start_time, None),
    "parent_flow_run_id": (_parent_flow_run_id, None),
    "root_flow_run_id": (_root_flow_run_id, None),
    "parent_deployment_id": (_none, None),
    "job_variables": (_none, None),
    "api_url": (_api_url, None),
    "ui_url": (_none, None),
}


def __getattr__(name: str) -> Any:
    entry = _GETTERS.get(name)
    if entry is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    getter, default = entry
    value = getter()
    return from_environment("flow_run", name, value if value is not None else default)


def __dir__() -> list[str]:
    return sorted(__all__)

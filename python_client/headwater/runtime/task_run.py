"""The current task run, mirroring ``prefect.runtime.task_run``: ``task_run.id``, ``.name``, ...

Each attribute is read when accessed, from the task run context; outside a task run it has an
empty default (None, ``[]``, ``{}``, 0).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from headwater._context import TaskRunContext, current_tags
from headwater.runtime import from_environment
from headwater.runtime.flow_run import _api_url, _none

# The names are served by the module `__getattr__`, read at access time.
__all__ = [  # noqa: F822
    "api_url",
    "id",
    "name",
    "parameters",
    "run_count",
    "tags",
    "task_name",
    "ui_url",
]


def _context() -> TaskRunContext | None:
    return TaskRunContext.get()


def _id() -> str | None:
    context = _context()
    return context.task_run_id if context is not None else None


def _name() -> str | None:
    context = _context()
    if context is None or context.task_run is None:
        return None
    return context.task_run.name


def _task_name() -> str | None:
    context = _context()
    return context.task.name if context is not None else None


def _tags() -> list[str]:
    context = _context()
    if context is None:
        return []
    if context.task_run is not None:
        return list(context.task_run.tags)
    return sorted(set(getattr(context.task, "tags", ())) | current_tags())


def _parameters() -> dict[str, Any]:
    context = _context()
    return dict(context.parameters) if context is not None else {}


def _run_count() -> int:
    context = _context()
    if context is None or context.task_run is None:
        return 0
    return context.task_run.run_count


_GETTERS: dict[str, tuple[Callable[[], Any], Any]] = {
    "id": (_id, None),
    "name": (_name, None),
    "task_name": (_task_name, None),
    "tags": (_tags, []),
    "parameters": (_parameters, {}),
    "run_count": (_run_count, 0),
    "api_url": (_api_url, None),
    "ui_url": (_none, None),
}


def __getattr__(name: str) -> Any:
    entry = _GETTERS.get(name)
    if entry is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    getter, default = entry
    value = getter()
    return from_environment("task_run", name, value if value is not None else default)


def __dir__() -> list[str]:
    return sorted(__all__)

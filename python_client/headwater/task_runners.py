"""Task runners: how a flow runs the tasks it submits.

Only the interface exists in this release: flows accept a task runner (a class or an instance),
as Prefect's do, so code written for Prefect keeps working. Running tasks concurrently arrives
with tasks in a later release.
"""

from __future__ import annotations

from typing import Self

__all__ = ["TaskRunner", "ThreadPoolTaskRunner"]


class TaskRunner:
    """Base class for task runners; a flow holds one instance per definition."""

    @property
    def name(self) -> str:
        """A short name for logs: the class name without ``TaskRunner``, lower-cased."""
        return type(self).__name__.removesuffix("TaskRunner").lower() or "taskrunner"

    def duplicate(self) -> Self:
        """Return an unused runner with the same settings; each flow run gets its own."""
        return type(self)()

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and vars(self) == vars(other)

    def __hash__(self) -> int:
        return hash(type(self))

    def __repr__(self) -> str:
        settings = ", ".join(f"{key}={value!r}" for key, value in vars(self).items())
        return f"{type(self).__name__}({settings})"


class ThreadPoolTaskRunner(TaskRunner):
    """Runs submitted tasks on a pool of threads (the default for every flow).

    Args:
        max_workers: The most tasks to run at once; ``None`` lets the pool choose.
    """

    def __init__(self, max_workers: int | None = None) -> None:
        self.max_workers = max_workers

    def duplicate(self) -> Self:
        """Return an unused runner with the same ``max_workers``."""
        return type(self)(max_workers=self.max_workers)

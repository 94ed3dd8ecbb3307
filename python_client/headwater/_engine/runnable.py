"""What the engine needs of the thing it runs: a name, a policy, hooks and a function.

`headwater.Flow` and `headwater.Task` satisfy `Runnable`, so flows and tasks share one state
machine (mypy checks both: see the end of `headwater._tasks`). The engine reads
these attributes and nothing else, which is also why it never imports `headwater._flows` or
`headwater._tasks`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

__all__ = ["Hook", "Runnable", "TaskRunnable"]

#: A state-change hook: called as ``hook(runnable, run, state)``; may return an awaitable.
Hook = Callable[..., Any]


class Runnable(Protocol):
    """The engine's view of a flow or a task.

    Read-only properties, so that anything with these attributes fits, whatever their exact
    (narrower) types.
    """

    # -- identity --------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The name runs are created under."""
        ...

    @property
    def version(self) -> str | None:
        """The version of the code, stored with each run."""
        ...

    @property
    def run_name(self) -> Callable[..., str] | str | None:
        """A template or callable naming each run; None lets the service pick a name.

        A flow's ``flow_run_name``, a task's ``task_run_name``.
        """
        ...

    # -- the function ----------------------------------------------------------------------

    @property
    def fn(self) -> Callable[..., Any]:
        """The code to run, called once per attempt."""
        ...

    @property
    def isasync(self) -> bool:
        """Whether ``fn`` is a coroutine (or async generator) function."""
        ...

    @property
    def isgenerator(self) -> bool:
        """Whether ``fn`` is a (sync or async) generator function."""
        ...

    @property
    def should_validate_parameters(self) -> bool:
        """Whether parameters are validated against the function's annotations."""
        ...

    def validate_parameters(self, parameters: dict[str, Any]) -> dict[str, Any]:
        """Validate and coerce parameters; raises `ParameterTypeError` when they do not fit."""
        ...

    def serialize_parameters(self, parameters: dict[str, Any]) -> dict[str, Any]:
        """The parameters as JSON values, as the service stores them."""
        ...

    # -- the policy ------------------------------------------------------------------------

    @property
    def retries(self) -> int:
        """How many times the service lets a failed run run again."""
        ...

    @property
    def retry_delay_seconds(self) -> float | Sequence[float]:
        """How long the service waits before a retry: one delay, or one per retry (tasks)."""
        ...

    @property
    def timeout_seconds(self) -> float | None:
        """How long one attempt may run before it fails with a timeout."""
        ...

    @property
    def log_prints(self) -> bool | None:
        """Whether ``print`` becomes run logs; None inherits from the parent or the settings."""
        ...

    @property
    def persist_result(self) -> bool | None:
        """Whether results are persisted; None follows the settings."""
        ...

    @property
    def result_storage(self) -> Any:
        """Where persisted results go (None: the default storage)."""
        ...

    @property
    def result_serializer(self) -> Any:
        """How persisted results are serialized (None: the default serializer)."""
        ...

    @property
    def cache_result_in_memory(self) -> bool:
        """Whether a persisted result is also kept in memory for the caller."""
        ...

    # -- hooks -----------------------------------------------------------------------------

    @property
    def on_running_hooks(self) -> Sequence[Hook]: ...

    @property
    def on_completion_hooks(self) -> Sequence[Hook]: ...

    @property
    def on_failure_hooks(self) -> Sequence[Hook]: ...

    @property
    def on_crashed_hooks(self) -> Sequence[Hook]: ...

    @property
    def on_cancellation_hooks(self) -> Sequence[Hook]: ...


class TaskRunnable(Runnable, Protocol):
    """What the engine needs of a task beyond `Runnable`: its key, labels and cache policy."""

    @property
    def task_key(self) -> str:
        """Which task definition this is (stable across processes)."""
        ...

    @property
    def tags(self) -> set[str]:
        """The labels every run of the task carries."""
        ...

    @property
    def retry_jitter_factor(self) -> float | None:
        """How much the service spreads each retry delay (None: not at all)."""
        ...

    @property
    def cache_policy(self) -> Any:
        """The `headwater.cache_policies.CachePolicy` computing the cache key (None: none)."""
        ...

    @property
    def cache_expiration(self) -> Any:
        """How long a cached result stays valid (a `datetime.timedelta`; None: forever)."""
        ...

    @property
    def refresh_cache(self) -> bool | None:
        """Run even when a valid cache entry exists."""
        ...

    @property
    def retry_condition_fn(self) -> Callable[..., bool] | None:
        """``fn(task, task_run, state)``: whether a failed run may be retried (None: always)."""
        ...

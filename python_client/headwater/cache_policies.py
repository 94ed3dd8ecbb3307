"""Cache policies: how a task run's cache key is computed, mirroring ``prefect.cache_policies``.

A policy turns what a task run knows (its task, its inputs, its flow run's parameters, its run
ids) into a key; two runs with the same key share one cached result. Policies compose: ``+``
combines keys (``INPUTS + TASK_SOURCE``), and ``- "name"`` leaves an input out
(``INPUTS - "client"``). A policy that computes no key (``NONE``) turns caching off.

Keys are stable across processes: every value is hashed from its JSON form when it has one
(sorted keys), else from its cloudpickle bytes; `hash` and ``id`` are never used.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from headwater._context import TaskRunContext

__all__ = [
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
]

#: A ``cache_key_fn``: called as ``fn(context, inputs)``, returns the key (None: no caching).
CacheKeyFn = Callable[["TaskRunContext", dict[str, Any]], str | None]


class UnhashableInputError(ValueError):
    """A value a cache key depends on can be neither JSON-encoded nor pickled."""


def hash_objects(*objects: Any) -> str:
    """A stable hex digest of ``objects``: the same values give the same key in any process.

    Raises:
        UnhashableInputError: A value has neither a JSON form nor a pickled one.
    """
    return hashlib.sha256(_stable_bytes(objects)).hexdigest()


def _sets_in_order(value: Any) -> Any:
    """JSON for a set: its items in a fixed order (a set's own order varies per process)."""
    if isinstance(value, set | frozenset):
        return {"__set__": sorted(value, key=repr)}
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _stable_bytes(value: Any) -> bytes:
    try:
        encoded = json.dumps(
            value, sort_keys=True, separators=(",", ":"), allow_nan=True, default=_sets_in_order
        )
        return encoded.encode()
    except (TypeError, ValueError) as json_error:
        import cloudpickle

        try:
            return bytes(cloudpickle.dumps(value))
        except Exception as pickle_error:
            raise UnhashableInputError(
                f"JSON: {json_error}; pickle: {type(pickle_error).__name__}: {pickle_error}"
            ) from pickle_error


@dataclass(frozen=True)
class CachePolicy:
    """Base class: a way to compute a task run's cache key.

    Subclasses implement `compute_key`. ``+`` combines two policies into a
    `CompoundCachePolicy`; ``- "name"`` leaves an input out (a no-op for policies that do not
    read inputs).
    """

    @classmethod
    def from_cache_key_fn(cls, cache_key_fn: CacheKeyFn) -> CacheKeyFnPolicy:
        """A policy that delegates to ``cache_key_fn(context, inputs)``."""
        return CacheKeyFnPolicy(cache_key_fn=cache_key_fn)

    def compute_key(
        self,
        task_ctx: TaskRunContext | None,
        inputs: dict[str, Any],
        flow_parameters: dict[str, Any],
        **kwargs: Any,
    ) -> str | None:
        """The cache key for one task run, or None when this policy does not cache it."""
        raise NotImplementedError(f"{type(self).__name__} does not implement compute_key")

    def __add__(self, other: CachePolicy) -> CachePolicy:
        if not isinstance(other, CachePolicy):
            return NotImplemented
        if isinstance(other, _None):
            return self
        return CompoundCachePolicy(policies=[self, other])

    def __sub__(self, other: str) -> CachePolicy:
        _check_input_name(other)
        return self


def _check_input_name(other: object) -> None:
    if not isinstance(other, str):
        raise TypeError(
            f"Only input names (strings) can be subtracted from a cache policy, as in "
            f"INPUTS - 'client'; got {type(other).__name__}."
        )


@dataclass(frozen=True)
class CacheKeyFnPolicy(CachePolicy):
    """The key a task's ``cache_key_fn(context, inputs)`` returns."""

    cache_key_fn: CacheKeyFn | None = None

    def compute_key(
        self,
        task_ctx: TaskRunContext | None,
        inputs: dict[str, Any],
        flow_parameters: dict[str, Any],
        **kwargs: Any,
    ) -> str | None:
        if self.cache_key_fn is None:
            return None
        return self.cache_key_fn(task_ctx, inputs)  # type: ignore[arg-type]


@dataclass(frozen=True)
class CompoundCachePolicy(CachePolicy):
    """Several policies at once: the key changes when any of their keys does.

    Nested compounds are flattened and repeated policies kept once, so ``DEFAULT + INPUTS`` is
    the same policy as ``DEFAULT``. With no key from any part, there is no key.
    """

    policies: list[CachePolicy] = field(default_factory=list)

    def __post_init__(self) -> None:
        flat: list[CachePolicy] = []
        for policy in self.policies:
            parts = policy.policies if isinstance(policy, CompoundCachePolicy) else [policy]
            for part in parts:
                if not isinstance(part, _None) and part not in flat:
                    flat.append(part)
        object.__setattr__(self, "policies", flat)

    def compute_key(
        self,
        task_ctx: TaskRunContext | None,
        inputs: dict[str, Any],
        flow_parameters: dict[str, Any],
        **kwargs: Any,
    ) -> str | None:
        keys = [
            policy.compute_key(task_ctx, inputs, flow_parameters, **kwargs)
            for policy in self.policies
        ]
        present = [key for key in keys if key is not None]
        if not present:
            return None
        return hash_objects(*present)

    def __sub__(self, other: str) -> CachePolicy:
        _check_input_name(other)
        return CompoundCachePolicy(policies=[policy - other for policy in self.policies])


@dataclass(frozen=True)
class _None(CachePolicy):
    """No key at all: the task's results are never cached (``NONE``, ``NO_CACHE``)."""

    def compute_key(
        self,
        task_ctx: TaskRunContext | None,
        inputs: dict[str, Any],
        flow_parameters: dict[str, Any],
        **kwargs: Any,
    ) -> str | None:
        return None

    def __add__(self, other: CachePolicy) -> CachePolicy:
        if not isinstance(other, CachePolicy):
            return NotImplemented
        return other

    def __repr__(self) -> str:
        return "NONE"


@dataclass(frozen=True)
class TaskSource(CachePolicy):
    """The task's source code: editing the function invalidates its cache."""

    def compute_key(
        self,
        task_ctx: TaskRunContext | None,
        inputs: dict[str, Any],
        flow_parameters: dict[str, Any],
        **kwargs: Any,
    ) -> str | None:
        if task_ctx is None:
            return None
        fn = task_ctx.task.fn
        try:
            source: str = inspect.getsource(fn)
        except (OSError, TypeError):
            # No source file (a REPL, a builtin): the compiled code stands in for it.
            code = getattr(fn, "__code__", None)
            if code is None:
                return None
            source = code.co_code.hex()
        return hash_objects(source)


@dataclass(frozen=True)
class FlowParameters(CachePolicy):
    """The parameters of the flow run the task runs in (no key outside a flow run)."""

    def compute_key(
        self,
        task_ctx: TaskRunContext | None,
        inputs: dict[str, Any],
        flow_parameters: dict[str, Any],
        **kwargs: Any,
    ) -> str | None:
        if not flow_parameters:
            return None
        return _hash_named(flow_parameters, "flow parameter")


@dataclass(frozen=True)
class RunId(CachePolicy):
    """The flow run's id (the task run's own outside a flow): caches within one run only."""

    def compute_key(
        self,
        task_ctx: TaskRunContext | None,
        inputs: dict[str, Any],
        flow_parameters: dict[str, Any],
        **kwargs: Any,
    ) -> str | None:
        if task_ctx is None:
            return None
        run_id = task_ctx.flow_run_id or task_ctx.task_run_id
        return run_id or None


@dataclass(frozen=True)
class Inputs(CachePolicy):
    """The task run's inputs, minus the names in ``exclude``.

    Raises (from `compute_key`):
        ValueError: An input has neither a JSON form nor a pickled one (a lock, an open
            file, a client); the message names it and says how to leave it out.
    """

    exclude: list[str] = field(default_factory=list)

    def compute_key(
        self,
        task_ctx: TaskRunContext | None,
        inputs: dict[str, Any],
        flow_parameters: dict[str, Any],
        **kwargs: Any,
    ) -> str | None:
        kept = {name: value for name, value in inputs.items() if name not in self.exclude}
        return _hash_named(kept, "input", task_ctx)

    def __sub__(self, other: str) -> CachePolicy:
        _check_input_name(other)
        return Inputs(exclude=[*self.exclude, other])


def _hash_named(values: dict[str, Any], what: str, task_ctx: TaskRunContext | None = None) -> str:
    """Hash each value on its own, so an unhashable one is named in the error."""
    digests: dict[str, str] = {}
    for name, value in values.items():
        try:
            digests[name] = hash_objects(value)
        except UnhashableInputError as exc:
            task_name = f" of task {task_ctx.task.name!r}" if task_ctx is not None else ""
            raise ValueError(
                f"Cannot compute a cache key: {what} {name!r}{task_name} "
                f"({type(value).__name__}) can be neither JSON-encoded nor pickled ({exc}). "
                "Objects such as locks, open files and clients cannot be part of a cache key. "
                f"Leave it out with cache_policy=INPUTS - {name!r} (or DEFAULT - {name!r}), "
                "pass a cache_key_fn, or turn caching off with cache_policy=NO_CACHE."
            ) from exc
    return hash_objects(digests)


#: No caching.
NONE: CachePolicy = _None()
#: No caching (Prefect's other name for `NONE`).
NO_CACHE: CachePolicy = NONE
#: The task's inputs.
INPUTS: CachePolicy = Inputs()
#: The task's source code.
TASK_SOURCE: CachePolicy = TaskSource()
#: The enclosing flow run's parameters.
FLOW_PARAMETERS: CachePolicy = FlowParameters()
#: The enclosing flow run's id.
RUN_ID: CachePolicy = RunId()
#: What a task caches by when it names no policy: inputs, source code and run id together.
DEFAULT: CachePolicy = CompoundCachePolicy(policies=[INPUTS, TASK_SOURCE, RUN_ID])

"""`Task` and the `@task` decorator: a function plus how each of its runs is retried and cached.

The arguments, defaults and definition-time errors mirror Prefect 3's ``prefect.tasks``, so a
Prefect task ports by changing its import. A task satisfies the engine's `Runnable` protocol,
so tasks and flows share one state machine. Declaring a task is as cheap as declaring a flow:
nothing heavy is imported.
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import inspect
import logging
from collections.abc import Callable, Coroutine, Iterable
from copy import copy
from functools import partial, update_wrapper
from typing import TYPE_CHECKING, Any, Generic, Literal, ParamSpec, TypeVar, overload

from headwater import _parameters
from headwater._flows import (
    NotSet,
    _bind_to_instance,
    _check_name_type,
    _check_run_name,
    _raise_for_reserved_arguments,
    _validate_hooks,
    serialize_parameters,
)
from headwater._results import validate_serializer, validate_storage
from headwater._visualize import active_graph
from headwater.cache_policies import (
    DEFAULT,
    NO_CACHE,
    CacheKeyFn,
    CacheKeyFnPolicy,
    CachePolicy,
    UnhashableInputError,
    hash_objects,
)

__all__ = ["Task", "exponential_backoff", "task", "task_input_hash"]

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

Hook = Callable[..., Any]

#: The most retry delays a task may list (Prefect's limit too).
MAX_RETRY_DELAYS = 50

#: Prefect's defaults when nothing else is configured; Headwater keeps them.
DEFAULT_RETRIES = 0
DEFAULT_RETRY_DELAY_SECONDS: int | float = 0

logger = logging.getLogger("headwater.tasks")

RetryDelays = int | float | list[float] | Callable[[int], list[float]]


def exponential_backoff(backoff_factor: float) -> Callable[[int], list[float]]:
    """Retry delays that double each time: ``backoff_factor * 2**n`` before retry ``n + 1``.

    Example:
        >>> @task(retries=3, retry_delay_seconds=exponential_backoff(backoff_factor=10))
        ... def fetch(): ...
        >>> fetch.retry_delay_seconds
        [10, 20, 40]
    """

    def retry_delays(retries: int) -> list[float]:
        return [backoff_factor * 2**attempt for attempt in range(retries)]

    return retry_delays


def task_input_hash(context: TaskRunContext, arguments: dict[str, Any]) -> str | None:
    """A ``cache_key_fn`` keyed by the task, its code and its inputs, as Prefect's.

    The key changes when the task's function body changes or any argument does; None (no
    caching for this call) when an argument can be neither JSON-encoded nor pickled.

    Example:
        >>> @task(cache_key_fn=task_input_hash, cache_expiration=timedelta(days=1))
        ... def fetch(url: str) -> bytes: ...
    """
    fn = context.task.fn
    code = getattr(_parameters._origin(fn), "__code__", None)
    try:
        return hash_objects(_task_key(fn), code.co_code.hex() if code else "", arguments)
    except UnhashableInputError:
        return None


def _task_key(fn: Callable[..., Any]) -> str:
    """Which task of a flow this is: its name plus a digest of where it is defined.

    Two tasks with the same name in different places get different keys; the same task in
    another process gets the same one.
    """
    qualname = getattr(fn, "__qualname__", type(fn).__name__).split(".")[-1]
    code = getattr(_parameters._origin(fn), "__code__", None)
    where = f"{code.co_filename}:{code.co_firstlineno}" if code is not None else qualname
    digest = hashlib.sha256(where.encode(), usedforsecurity=False).hexdigest()[:8]
    return f"{qualname}-{digest}"


def _resolve_retry_delays(retries: int, delays: Any) -> int | float | list[float]:
    """A task's retry delays as one number or a list; a callable is called with ``retries``.

    Raises:
        TypeError: Not a number, list or callable.
        ValueError: More than `MAX_RETRY_DELAYS` delays.
    """
    if callable(delays):
        delays = delays(retries)
    if isinstance(delays, bool) or not isinstance(delays, int | float | list):
        raise TypeError(
            "Invalid `retry_delay_seconds` provided; must be an int, float, list or callable "
            f"(such as exponential_backoff(backoff_factor=2)). Received type "
            f"{type(delays).__name__}."
        )
    if isinstance(delays, list):
        if len(delays) > MAX_RETRY_DELAYS:
            raise ValueError(
                f"Can not configure more than {MAX_RETRY_DELAYS} retry delays per task; got "
                f"{len(delays)}. The last delay is reused for any further retries."
            )
        for delay in delays:
            if isinstance(delay, bool) or not isinstance(delay, int | float):
                raise TypeError(
                    "Each of `retry_delay_seconds` must be a number of seconds; got "
                    f"{type(delay).__name__}."
                )
    return delays


def _resolve_cache_policy(
    task_name: str,
    cache_policy: Any,
    cache_key_fn: CacheKeyFn | None,
    persist_result: bool | None,
    result_storage_key: str | None,
) -> CachePolicy | None:
    """The policy a task caches by, from its caching and persistence arguments (as Prefect).

    - ``cache_key_fn`` wins over ``cache_policy`` (a warning says so when both are given);
    - ``persist_result=False`` turns caching off (a warning says a given policy is ignored);
    - no policy and no ``result_storage_key``: `DEFAULT`; a ``result_storage_key`` alone
      names where the result goes, so it caches by nothing else (None).
    """
    if (
        cache_policy is not NotSet
        and cache_policy is not None
        and not isinstance(cache_policy, CachePolicy)
    ):
        raise TypeError(
            f"cache_policy must be a cache policy from headwater.cache_policies (such as "
            f"INPUTS, TASK_SOURCE + INPUTS or NO_CACHE); got {type(cache_policy).__name__}."
        )
    if cache_key_fn is not None and not callable(cache_key_fn):
        raise TypeError(
            "Expected `cache_key_fn` to be callable as cache_key_fn(context, inputs); got "
            f"{type(cache_key_fn).__name__} instead."
        )
    if cache_key_fn is not None:
        if cache_policy is not NotSet:
            logger.warning(
                "Both `cache_policy` and `cache_key_fn` are set on task %r; `cache_key_fn` "
                "will be used.",
                task_name,
            )
        cache_policy = CacheKeyFnPolicy(cache_key_fn=cache_key_fn)
    if persist_result is False:
        if cache_policy is not NotSet and cache_policy is not None and cache_policy != NO_CACHE:
            logger.warning(
                "Ignoring `cache_policy` of task %r because `persist_result` is False.",
                task_name,
            )
        return None if cache_policy is None else NO_CACHE
    if cache_policy is NotSet:
        return DEFAULT if result_storage_key is None else None
    if cache_policy != NO_CACHE and result_storage_key:
        return None
    return cache_policy  # type: ignore[no-any-return]


class Task(Generic[P, R]):
    """A unit of work inside a flow: a function and how its runs are retried and cached.

    Use the `task` decorator rather than building this directly.

    Args:
        fn: The function the task runs.
        name: Defaults to the function's name.
        description: Defaults to the function's docstring.
        tags: Labels for every run of the task (more come from `headwater.tags` blocks).
        version: A version string for the task's code (default None).
        cache_policy: How a run's cache key is computed (`headwater.cache_policies`); by
            default `DEFAULT` (inputs, source code and flow run id).
        cache_key_fn: ``fn(context, inputs)`` returning the cache key; overrides
            ``cache_policy``.
        cache_expiration: How long a cached result stays valid (a `datetime.timedelta`);
            None means forever.
        task_run_name: A name for each run: a template formatted with the run's parameters
            (``"fetch-{url}"``) or a callable returning the name.
        retries: How many times to retry a failed run (default 0).
        retry_delay_seconds: Seconds before each retry: one number, a list with one delay per
            retry, or a callable taking ``retries`` and returning such a list (see
            `exponential_backoff`).
        retry_jitter_factor: Randomizes each delay by up to this factor of itself (>= 0).
        persist_result: Write the result to result storage. None lets the engine decide; it
            becomes True when caching or result storage options are given.
        result_storage: A directory path, ``file://`` URI, or storage object for results.
        result_serializer: ``"pickle"``, ``"cloudpickle"``, ``"json"``, ``"compressed/pickle"``,
            ``"compressed/json"`` or a serializer object (see `headwater.serializers`).
        result_storage_key: A template (formatted with the run's parameters) for where the
            result is stored.
        cache_result_in_memory: Keep the result in memory after persisting it.
        timeout_seconds: The longest one attempt may take before it fails.
        log_prints: Send ``print`` output to the run's logs; None inherits the flow's.
        refresh_cache: Compute and store a fresh result even when a cached one is valid.
        on_completion: Callables ``hook(task, task_run, state)`` run when a run completes.
        on_failure: Hooks run when a run fails.
        on_running: Hooks run when a run starts running.
        retry_condition_fn: ``fn(task, task_run, state)`` deciding whether a failed run is
            retried (True) or fails at once (False).
        viz_return_value: What a call of the task returns while `Flow.visualize()` draws the
            flow (instead of a placeholder), for flows that use a task's result directly.

    Raises:
        TypeError: ``fn`` is not callable, ``name`` is not a string, a hook list is not a list
            of callables, ``task_run_name``, ``retry_delay_seconds``, ``retry_condition_fn``,
            ``cache_policy``, ``cache_key_fn``, ``cache_expiration``, ``result_storage_key``,
            ``result_storage`` or ``result_serializer`` is of an unusable type.
        ValueError: More than 50 retry delays, a negative ``retry_jitter_factor``, or an
            unknown serializer name.
        ReservedArgumentError: ``fn`` has a parameter named ``return_state`` or ``wait_for``.
    """

    def __init__(
        self,
        fn: Callable[P, R],
        name: str | None = None,
        description: str | None = None,
        tags: Iterable[str] | None = None,
        version: str | None = None,
        cache_policy: CachePolicy | None = NotSet,
        cache_key_fn: CacheKeyFn | None = None,
        cache_expiration: _dt.timedelta | None = None,
        task_run_name: Callable[..., str] | str | None = None,
        retries: int | None = None,
        retry_delay_seconds: RetryDelays | None = None,
        retry_jitter_factor: float | None = None,
        persist_result: bool | None = None,
        result_storage: Any = None,
        result_serializer: Any = None,
        result_storage_key: str | None = None,
        cache_result_in_memory: bool = True,
        timeout_seconds: int | float | None = None,
        log_prints: bool | None = None,
        refresh_cache: bool | None = None,
        on_completion: list[Hook] | None = None,
        on_failure: list[Hook] | None = None,
        on_running: list[Hook] | None = None,
        retry_condition_fn: Callable[..., bool] | None = None,
        viz_return_value: Any = None,
    ) -> None:
        _check_name_type(name, "task")
        hooks = {
            hook_name: _validate_hooks(hook_name, value, "task")
            for hook_name, value in (
                ("on_completion", on_completion),
                ("on_failure", on_failure),
                ("on_running", on_running),
            )
        }
        if not callable(fn):
            raise TypeError("'fn' must be callable")

        update_wrapper(self, fn)
        self.fn: Callable[P, R] = fn
        fn_name = getattr(fn, "__name__", type(fn).__name__)
        # The service refuses "<" and ">" in names.
        self.name: str = name or fn_name.replace("<lambda>", "unknown-lambda")
        self.description: str | None = description or inspect.getdoc(fn)
        if isinstance(tags, str):
            raise TypeError(
                f"Expected an iterable of tag strings for 'tags'; got the string {tags!r}. "
                f"Write tags=[{tags!r}]."
            )
        self.tags: set[str] = set(tags or ())
        self.version = version
        self.isasync: bool = inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn)
        self.isgenerator: bool = inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn)
        _raise_for_reserved_arguments(fn, fn_name, "task")
        self.task_key: str = _task_key(fn)

        _check_run_name(task_run_name, "task_run_name")
        self.task_run_name = task_run_name

        self.retries: int = retries if retries is not None else DEFAULT_RETRIES
        self.retry_delay_seconds: int | float | list[float] = _resolve_retry_delays(
            self.retries,
            retry_delay_seconds if retry_delay_seconds is not None else DEFAULT_RETRY_DELAY_SECONDS,
        )
        if retry_jitter_factor is not None and retry_jitter_factor < 0:
            raise ValueError(
                f"`retry_jitter_factor` must be >= 0; got {retry_jitter_factor!r}. A factor f "
                "randomizes each retry delay d within about d * (1 + f)."
            )
        self.retry_jitter_factor = retry_jitter_factor
        if retry_condition_fn is not None and not callable(retry_condition_fn):
            raise TypeError(
                "Expected `retry_condition_fn` to be callable, got "
                f"{type(retry_condition_fn).__name__} instead."
            )
        self.retry_condition_fn = retry_condition_fn
        self.timeout_seconds: float | None = float(timeout_seconds) if timeout_seconds else None
        self.log_prints = log_prints

        if result_storage_key is not None and not isinstance(result_storage_key, str):
            raise TypeError(
                "Expected a template string for 'result_storage_key' (e.g. 'fetch-{url}.pkl'); "
                f"got {type(result_storage_key).__name__} instead."
            )
        if cache_expiration is not None and not isinstance(cache_expiration, _dt.timedelta):
            raise TypeError(
                "Expected a datetime.timedelta for 'cache_expiration' (e.g. "
                f"timedelta(hours=1)); got {type(cache_expiration).__name__} instead."
            )
        validate_storage(result_storage)
        validate_serializer(result_serializer)
        if persist_result is None and (
            (cache_policy is not NotSet and cache_policy is not None and cache_policy != NO_CACHE)
            or cache_key_fn is not None
            or result_storage_key is not None
            or result_storage is not None
            or result_serializer is not None
        ):
            persist_result = True
        self.cache_policy: CachePolicy | None = _resolve_cache_policy(
            self.name, cache_policy, cache_key_fn, persist_result, result_storage_key
        )
        self._given_cache_policy: Any = cache_policy
        self.cache_key_fn = cache_key_fn
        self.cache_expiration = cache_expiration
        self.refresh_cache = refresh_cache
        self.persist_result = persist_result
        self.result_storage = result_storage
        self.result_serializer = result_serializer
        self.result_storage_key = result_storage_key
        self.cache_result_in_memory = cache_result_in_memory

        self.on_completion_hooks: list[Hook] = hooks["on_completion"] or []
        self.on_failure_hooks: list[Hook] = hooks["on_failure"] or []
        self.on_running_hooks: list[Hook] = hooks["on_running"] or []
        #: What a call returns while `Flow.visualize()` records the flow (not run).
        self.viz_return_value = viz_return_value

    # -- what the engine reads (`Runnable`) ------------------------------------------------

    @property
    def run_name(self) -> Callable[..., str] | str | None:
        """``task_run_name``, under the name the engine reads."""
        return self.task_run_name

    @property
    def should_validate_parameters(self) -> bool:
        """Tasks take their arguments as given (as Prefect's do): no validation."""
        return False

    def validate_parameters(self, parameters: dict[str, Any]) -> dict[str, Any]:
        """Return ``parameters`` unchanged: task inputs are not validated."""
        return parameters

    def serialize_parameters(self, parameters: dict[str, Any]) -> dict[str, Any]:
        """The inputs as JSON values for the service (``"<TypeName>"`` when there is none)."""
        return serialize_parameters(self.fn, parameters)

    @property
    def on_crashed_hooks(self) -> tuple[Hook, ...]:
        """Tasks take no crash hooks (Prefect's don't either)."""
        return ()

    @property
    def on_cancellation_hooks(self) -> tuple[Hook, ...]:
        """Tasks take no cancellation hooks (Prefect's don't either)."""
        return ()

    # -- introspection ---------------------------------------------------------------------

    @property
    def ismethod(self) -> bool:
        """True when the task was accessed through an instance and passes it as ``self``."""
        return hasattr(self.fn, _parameters.BOUND_SELF_ATTRIBUTE)

    def __get__(self, instance: Any, owner: type | None = None) -> Task[P, R]:
        """Make a task defined in a class body work as a method (as `Flow.__get__`)."""
        if instance is None:
            return self
        bound_task = copy(self)
        bound_task.fn = _bind_to_instance(self.fn, instance)
        return bound_task

    def __repr__(self) -> str:
        return f"Task(name={self.name!r})"

    # -- options ---------------------------------------------------------------------------

    def with_options(
        self,
        *,
        name: str | None = None,
        description: str | None = None,
        tags: Iterable[str] | None = None,
        cache_policy: CachePolicy | None = NotSet,
        cache_key_fn: CacheKeyFn | None = None,
        task_run_name: Callable[..., str] | str | None = NotSet,
        cache_expiration: _dt.timedelta | None = None,
        retries: int | None = NotSet,
        retry_delay_seconds: RetryDelays | None = NotSet,
        retry_jitter_factor: float | None = NotSet,
        persist_result: bool | None = NotSet,
        result_storage: Any = NotSet,
        result_serializer: Any = NotSet,
        result_storage_key: str | None = NotSet,
        cache_result_in_memory: bool | None = None,
        timeout_seconds: int | float | None = None,
        log_prints: bool | None = NotSet,
        refresh_cache: bool | None = NotSet,
        on_completion: list[Hook] | None = None,
        on_failure: list[Hook] | None = None,
        on_running: list[Hook] | None = None,
        retry_condition_fn: Callable[..., bool] | None = None,
        viz_return_value: Any = None,
    ) -> Task[P, R]:
        """Return a new task like this one with some options changed.

        Arguments left out keep this task's values. Those defaulting to `NotSet` accept an
        explicit ``None`` to reset them; for the others ``None`` means "unchanged".

        Example:
            >>> @task(name="fetch")
            ... def fetch(url: str) -> bytes: ...
            >>> fetch.with_options(name="fetch-slowly", retries=3).retries
            3
        """

        def pick(value: Any, current: Any) -> Any:
            return current if value is NotSet else value

        if cache_policy is NotSet:
            # What this task was given, not what it resolved to: a resolved DEFAULT passed
            # back would count as an explicit policy and turn result persistence on.
            cache_policy = self._given_cache_policy
        new_task: Task[P, R] = Task(
            fn=self.fn,
            name=name or self.name,
            description=description or self.description,
            tags=tags or copy(self.tags),
            version=self.version,
            cache_policy=cache_policy,
            cache_key_fn=cache_key_fn or self.cache_key_fn,
            cache_expiration=cache_expiration or self.cache_expiration,
            task_run_name=pick(task_run_name, self.task_run_name),
            retries=pick(retries, self.retries),
            retry_delay_seconds=pick(retry_delay_seconds, self.retry_delay_seconds),
            retry_jitter_factor=pick(retry_jitter_factor, self.retry_jitter_factor),
            persist_result=pick(persist_result, self.persist_result),
            result_storage=pick(result_storage, self.result_storage),
            result_serializer=pick(result_serializer, self.result_serializer),
            result_storage_key=pick(result_storage_key, self.result_storage_key),
            cache_result_in_memory=(
                cache_result_in_memory
                if cache_result_in_memory is not None
                else self.cache_result_in_memory
            ),
            timeout_seconds=(
                timeout_seconds if timeout_seconds is not None else self.timeout_seconds
            ),
            log_prints=pick(log_prints, self.log_prints),
            refresh_cache=pick(refresh_cache, self.refresh_cache),
            # Copies, so registering a hook on one task never adds it to the other.
            on_completion=list(on_completion or self.on_completion_hooks),
            on_failure=list(on_failure or self.on_failure_hooks),
            on_running=list(on_running or self.on_running_hooks),
            retry_condition_fn=retry_condition_fn or self.retry_condition_fn,
            viz_return_value=(
                viz_return_value if viz_return_value is not None else self.viz_return_value
            ),
        )
        return new_task

    # -- hooks as decorators ---------------------------------------------------------------

    def on_completion(self, fn: Hook) -> Hook:
        """Register ``fn(task, task_run, state)`` to run when a run completes."""
        self.on_completion_hooks.append(fn)
        return fn

    def on_failure(self, fn: Hook) -> Hook:
        """Register ``fn(task, task_run, state)`` to run when a run fails."""
        self.on_failure_hooks.append(fn)
        return fn

    def on_running(self, fn: Hook) -> Hook:
        """Register ``fn(task, task_run, state)`` to run when a run starts running."""
        self.on_running_hooks.append(fn)
        return fn

    # -- running ---------------------------------------------------------------------------

    @overload
    def __call__(
        self: Task[P, Coroutine[Any, Any, T]], *args: P.args, **kwargs: P.kwargs
    ) -> Coroutine[Any, Any, T]: ...

    @overload
    def __call__(self: Task[P, T], *args: P.args, **kwargs: P.kwargs) -> T: ...

    def __call__(  # type: ignore[misc]  # `return_state`/`wait_for` are the task call's own
        self,
        *args: Any,
        return_state: bool = False,
        wait_for: Iterable[Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Run the task as a task run and return its result (or its final `State`).

        Inside a flow the run belongs to the flow run; outside any flow it is tracked as a
        task run of its own. The service decides every state, as for flows: retries (with
        their delays and jitter), cache hits (a COMPLETED "Cached" state whose result is
        returned without running the function).

        Args:
            *args: Positional arguments for the task function.
            return_state: Return the final `State` instead of the result; a failed run then
                returns its Failed state rather than raising.
            wait_for: Futures or states to wait for before the run starts.
            **kwargs: Keyword arguments for the task function.

        Raises:
            ParameterBindError: The arguments do not fit the function's signature.
            TaskRunTimeoutError: An attempt exceeded ``timeout_seconds`` (and no retry was left).
            BaseException: Whatever the function raised, once no retry is left.
        """
        parameters = _parameters.get_call_parameters(self.fn, args, kwargs)
        if (graph := active_graph()) is not None:  # Flow.visualize(): record, do not run
            return graph.record_call(self, parameters, wait_for)
        run_task, transport_for_call = _engine_entry()
        return run_task(
            self,
            parameters,
            transport=transport_for_call(None),
            wait_for=wait_for,
            return_type="state" if return_state else "result",
        )

    def _check_submittable(self, method: str) -> None:
        """Generator tasks yield to their caller as they go, which a submitted run cannot."""
        if self.isgenerator:
            raise TypeError(
                f"Task {self.name!r} is a generator function, which cannot be run with "
                f".{method}(): its values are yielded to the caller as they come. Call it "
                "directly inside the flow instead."
            )

    @overload
    def submit(
        self: Task[P, Coroutine[Any, Any, T]],
        *args: Any,
        return_state: Literal[False] = False,
        wait_for: Iterable[Any] | None = None,
        **kwargs: Any,
    ) -> TaskRunFuture[T]: ...

    @overload
    def submit(
        self: Task[P, T],
        *args: Any,
        return_state: Literal[False] = False,
        wait_for: Iterable[Any] | None = None,
        **kwargs: Any,
    ) -> TaskRunFuture[T]: ...

    @overload
    def submit(
        self: Task[P, T],
        *args: Any,
        return_state: Literal[True],
        wait_for: Iterable[Any] | None = None,
        **kwargs: Any,
    ) -> State[T]: ...

    def submit(
        self,
        *args: Any,
        return_state: bool = False,
        wait_for: Iterable[Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Start a run of the task on the flow's task runner and return its future at once.

        The run's id is known at once (``future.task_run_id``); ``future.result()`` waits for
        it. Futures among the arguments (also inside lists, tuples and dicts) resolve to their
        results before the run starts; if one of them did not complete, this run never runs
        its function: it ends FAILED ("NotReady") and its result raises `UpstreamTaskError`
        naming that upstream run. The flow run does not end before every run it submitted.

        Inside a flow the flow's runner runs it (a `ThreadPoolTaskRunner` by default); inside
        a task, a thread pool of that task run (it ends with the task); outside any run, a
        process-wide thread pool, and the run is tracked on its own.

        Args:
            *args: Positional arguments for the task function.
            return_state: Wait for the run and return its final `State` instead of a future.
            wait_for: Futures that must end before this run starts (ordering without data).
            **kwargs: Keyword arguments for the task function.

        Returns:
            A `headwater.futures.TaskRunFuture` (or the final `State` with ``return_state``).

        Raises:
            ParameterBindError: The arguments do not fit the function's signature.
            TypeError: The task is a generator function (call it directly instead).
        """
        self._check_submittable("submit")
        parameters = _parameters.get_call_parameters(self.fn, args, kwargs)
        if (graph := active_graph()) is not None:  # Flow.visualize(): record, do not run
            return graph.record_submit(self, parameters, wait_for)
        future = _runner().submit(self, parameters, wait_for=wait_for)
        if return_state:
            future.wait()
            return future.state
        return future

    @overload
    def map(
        self: Task[P, Coroutine[Any, Any, T]],
        *args: Any,
        return_state: Literal[False] = False,
        wait_for: Iterable[Any] | None = None,
        deferred: bool = False,
        **kwargs: Any,
    ) -> PrefectFutureList[T]: ...

    @overload
    def map(
        self: Task[P, T],
        *args: Any,
        return_state: Literal[False] = False,
        wait_for: Iterable[Any] | None = None,
        deferred: bool = False,
        **kwargs: Any,
    ) -> PrefectFutureList[T]: ...

    @overload
    def map(
        self: Task[P, T],
        *args: Any,
        return_state: Literal[True],
        wait_for: Iterable[Any] | None = None,
        deferred: bool = False,
        **kwargs: Any,
    ) -> list[State[T]]: ...

    def map(
        self,
        *args: Any,
        return_state: bool = False,
        wait_for: Iterable[Any] | None = None,
        deferred: bool = False,
        **kwargs: Any,
    ) -> Any:
        """Submit one run per item of the iterable arguments; return their futures in order.

        Lists, tuples, ranges, sets, dicts (their keys) and other iterables are iterated in
        step and must have the same length; strings, bytes and non-iterables go whole to every
        run, as does an argument wrapped in `headwater.unmapped`. A future passed as an
        argument is waited for and its result mapped over. Defaults of the function are not
        mapped over.

        Args:
            *args: Positional arguments for the task function.
            return_state: Wait for every run and return their final states as a list.
            wait_for: Futures every run waits for before starting.
            deferred: Not supported (Prefect's background task workers); must be False.
            **kwargs: Keyword arguments for the task function.

        Returns:
            A `headwater.futures.PrefectFutureList` (a list of final states with
            ``return_state``).

        Raises:
            MappingMissingIterable: No argument is iterable.
            MappingLengthMismatch: The iterable arguments differ in length.
            ParameterBindError: The arguments do not fit the function's signature.
            NotImplementedError: ``deferred=True``.
        """
        if deferred:
            raise NotImplementedError(
                f"{self.name}.map(deferred=True) is not available in Headwater: there are no "
                "background task workers. Call .map() without deferred to run the calls on the "
                "flow's task runner."
            )
        self._check_submittable("map")
        parameters = _parameters.get_call_parameters(self.fn, args, kwargs, apply_defaults=False)
        if (graph := active_graph()) is not None:  # Flow.visualize(): record, do not run
            return graph.record_map(self, parameters, wait_for)
        futures = _runner().map(self, parameters, wait_for=wait_for)
        if return_state:
            futures.wait()
            return [future.state for future in futures]
        return futures


@overload
def task(__fn: Callable[P, R], /) -> Task[P, R]: ...


@overload
def task(
    *,
    name: str | None = None,
    description: str | None = None,
    tags: Iterable[str] | None = None,
    version: str | None = None,
    cache_policy: CachePolicy | None = NotSet,
    cache_key_fn: CacheKeyFn | None = None,
    cache_expiration: _dt.timedelta | None = None,
    task_run_name: Callable[..., str] | str | None = None,
    retries: int = 0,
    retry_delay_seconds: RetryDelays | None = None,
    retry_jitter_factor: float | None = None,
    persist_result: bool | None = None,
    result_storage: Any = None,
    result_storage_key: str | None = None,
    result_serializer: Any = None,
    cache_result_in_memory: bool = True,
    timeout_seconds: int | float | None = None,
    log_prints: bool | None = None,
    refresh_cache: bool | None = None,
    on_completion: list[Hook] | None = None,
    on_failure: list[Hook] | None = None,
    on_running: list[Hook] | None = None,
    retry_condition_fn: Callable[..., bool] | None = None,
    viz_return_value: Any = None,
) -> Callable[[Callable[P, R]], Task[P, R]]: ...


def task(
    __fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    tags: Iterable[str] | None = None,
    version: str | None = None,
    cache_policy: CachePolicy | None = NotSet,
    cache_key_fn: CacheKeyFn | None = None,
    cache_expiration: _dt.timedelta | None = None,
    task_run_name: Callable[..., str] | str | None = None,
    retries: int = 0,
    retry_delay_seconds: RetryDelays | None = None,
    retry_jitter_factor: float | None = None,
    persist_result: bool | None = None,
    result_storage: Any = None,
    result_storage_key: str | None = None,
    result_serializer: Any = None,
    cache_result_in_memory: bool = True,
    timeout_seconds: int | float | None = None,
    log_prints: bool | None = None,
    refresh_cache: bool | None = None,
    on_completion: list[Hook] | None = None,
    on_failure: list[Hook] | None = None,
    on_running: list[Hook] | None = None,
    retry_condition_fn: Callable[..., bool] | None = None,
    viz_return_value: Any = None,
) -> Any:
    """Turn a function (sync or async) into a `Task`; usable bare or with arguments.

    The arguments are those of `Task`, with the same defaults.

    Examples:
        >>> from headwater import task
        >>> @task
        ... def add(x: int, y: int) -> int:
        ...     return x + y
        >>> add.name
        'add'

        >>> @task(retries=3, retry_delay_seconds=[1, 10, 60], tags=["io"])
        ... def fetch(url: str) -> bytes: ...

    Raises:
        TypeError: ``@classmethod`` or ``@staticmethod`` was applied below ``@task`` (it must
            go on top), or any error `Task` raises for its arguments.
    """
    options = dict(
        name=name,
        description=description,
        tags=tags,
        version=version,
        cache_policy=cache_policy,
        cache_key_fn=cache_key_fn,
        cache_expiration=cache_expiration,
        task_run_name=task_run_name,
        retries=retries,
        retry_delay_seconds=retry_delay_seconds,
        retry_jitter_factor=retry_jitter_factor,
        persist_result=persist_result,
        result_storage=result_storage,
        result_storage_key=result_storage_key,
        result_serializer=result_serializer,
        cache_result_in_memory=cache_result_in_memory,
        timeout_seconds=timeout_seconds,
        log_prints=log_prints,
        refresh_cache=refresh_cache,
        on_completion=on_completion,
        on_failure=on_failure,
        on_running=on_running,
        retry_condition_fn=retry_condition_fn,
        viz_return_value=viz_return_value,
    )
    if __fn is None:
        return partial(task, **options)
    if isinstance(__fn, classmethod | staticmethod):
        raise TypeError(f"@{type(__fn).__name__} should be applied on top of @task")
    return Task(fn=__fn, **options)


@functools.cache
def _engine_entry() -> tuple[Callable[..., Any], Callable[[Any], Any]]:
    """The engine's ``run_task`` and ``transport_for_call``, imported on the first task call.

    Imported here rather than at the top so ``import headwater`` does not load the engine, and
    looked up once: an import statement costs more than a trivial task's own function.
    """
    from headwater._engine.calls import run_task
    from headwater._transport.runtime import transport_for_call

    return run_task, transport_for_call


@functools.cache
def _submission_entry() -> tuple[Callable[[], Any], type[TaskRunner]]:
    """`current_submissions` and the default runner, imported on the first submit (once)."""
    from headwater._engine.submissions import current_submissions
    from headwater.task_runners import ThreadPoolTaskRunner

    return current_submissions, ThreadPoolTaskRunner


def _runner() -> TaskRunner:
    """The entered task runner a submit made here goes to (the engine loads on first use)."""
    current_submissions, default_runner = _submission_entry()
    runner: TaskRunner = current_submissions().runner(default_runner)
    return runner


if TYPE_CHECKING:
    from headwater._context import TaskRunContext
    from headwater._engine.runnable import Runnable
    from headwater._states import State
    from headwater.futures import PrefectFutureList, TaskRunFuture
    from headwater.task_runners import TaskRunner

    def _runs_on_the_engine(task: Task[..., Any]) -> Runnable:
        """mypy checks here that a task is a `Runnable`, so it runs on the flows' engine."""
        return task

"""`Flow` and the `@flow` decorator: a function plus everything the engine needs to run it.

The arguments, defaults and errors mirror Prefect 3's ``prefect.flows``, so a Prefect flow ports
by changing its import. Declaring a flow is cheap and does not import pydantic: validators and
the parameter schema are built the first time they are needed.
"""

from __future__ import annotations

import datetime
import hashlib
import inspect
import types
import uuid
from collections.abc import Callable, Coroutine, Iterable
from copy import copy
from functools import partial, update_wrapper
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Literal, ParamSpec, TypeVar, overload

from headwater import _parameters
from headwater._results import validate_serializer, validate_storage
from headwater._scripts import LOADER_MODULE_PREFIX
from headwater._serve.deployments import serve
from headwater._visualize import DotText, active_graph
from headwater.exceptions import InvalidNameError, ReservedArgumentError
from headwater.task_runners import TaskRunner, ThreadPoolTaskRunner

if TYPE_CHECKING:
    from headwater._serve.deployments import RunnerDeployment
    from headwater._transport.interface import Transport

#: What ``interval=`` takes: seconds or a timedelta, or several of them (several schedules).
IntervalArgument = (
    Iterable[int | float | datetime.timedelta] | int | float | datetime.timedelta | None
)

__all__ = ["BANNED_CHARACTERS", "Flow", "NotSet", "flow", "run_flow", "serve"]

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

#: Characters the service refuses in flow and deployment names (they break URLs and paths).
BANNED_CHARACTERS = ("/", "%", "&", ">", "<")

#: Used by Prefect when nothing else is configured; Headwater keeps the same defaults.
DEFAULT_RETRIES = 0
DEFAULT_RETRY_DELAY_SECONDS: int | float = 0

#: Names a flow function cannot use for a parameter: ``Flow.__call__`` takes them itself.
RESERVED_ARGUMENTS = ("return_state", "wait_for")


_HOOK_NAMES = ("on_completion", "on_failure", "on_cancellation", "on_crashed", "on_running")

Hook = Callable[..., Any]


class _NotSetType:
    """The type of `NotSet`: "argument not given", where None is a meaningful value."""

    _instance: _NotSetType | None = None

    def __new__(cls) -> _NotSetType:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NotSet"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        return "NotSet"


#: Marks an argument of `Flow.with_options` as not given, so ``None`` can mean "turn off".
NotSet: Any = _NotSetType()


def _raise_on_name_with_banned_characters(name: str | None) -> str | None:
    """Refuse names the service cannot store (see `BANNED_CHARACTERS`)."""
    if name is None:
        return name
    found = [char for char in BANNED_CHARACTERS if char in name]
    if found:
        raise InvalidNameError(
            f"Name {name!r} contains an invalid character ({', '.join(map(repr, found))}). "
            f"Must not contain any of: {list(BANNED_CHARACTERS)}. Choose a name without them."
        )
    return name


def _file_hash(path: str | None) -> str | None:
    """The MD5 hex digest of a file's bytes, or None when it cannot be read.

    A flow's default version, so it changes whenever its source file does. MD5 is used only as
    a change detector, not for security.
    """
    if not path:
        return None
    try:
        with open(path, "rb") as handle:
            return hashlib.md5(handle.read(), usedforsecurity=False).hexdigest()
    except (OSError, TypeError, ValueError):
        return None


def _source_file(fn: Callable[..., Any]) -> str | None:
    try:
        return inspect.getsourcefile(fn)
    except TypeError:  # builtins and C functions have no source file
        return None


def _check_name_type(name: Any, kind: str) -> None:
    """Refuse a name that is not a string (often a function passed instead of its result)."""
    if name is not None and not isinstance(name, str):
        hint = (
            f"Perhaps you meant to call it? e.g. '@{kind}(name=get_{kind}_run_name())'"
            if callable(name)
            else ""
        )
        raise TypeError(
            f"Expected string for {kind} parameter 'name'; got {type(name).__name__} "
            f"instead. {hint}"
        )


def _check_run_name(run_name: Any, option: str) -> None:
    """Refuse a ``flow_run_name``/``task_run_name`` that is neither a template nor callable."""
    if run_name is not None and not (isinstance(run_name, str) or callable(run_name)):
        raise TypeError(
            f"Expected string or callable for '{option}'; got {type(run_name).__name__} instead."
        )


def _raise_for_reserved_arguments(fn: Callable[..., Any], fn_name: str, kind: str) -> None:
    """Refuse a function with a parameter the call takes itself (`RESERVED_ARGUMENTS`)."""
    parameters = _parameters.signature_of(fn).parameters
    for argument in RESERVED_ARGUMENTS:
        if argument in parameters:
            raise ReservedArgumentError(
                f"{argument!r} is a reserved argument name and cannot be used. "
                f"Rename that parameter of {fn_name!r}: {kind} calls take {argument!r} "
                "themselves."
            )


def _validate_hooks(hook_name: str, hooks: Any, kind: str = "flow") -> list[Hook] | None:
    """Check that ``hooks`` is an iterable of callables and return it as a new list.

    ``kind`` ("flow" or "task") is the decorator the error message's example uses.
    """
    if hooks is None:
        return None
    example = f"@{kind}({hook_name}=[hook1, hook2])\ndef my_{kind}():\n\tpass"
    try:
        hook_list = list(hooks)
    except TypeError:
        raise TypeError(
            f"Expected iterable for '{hook_name}'; got {type(hooks).__name__} instead. "
            f"Please provide a list of hooks to '{hook_name}':\n\n{example}"
        ) from None
    for hook in hook_list:
        if not callable(hook):
            raise TypeError(
                f"Expected callables in '{hook_name}'; got {type(hook).__name__} instead. "
                f"Please provide a list of hooks to '{hook_name}':\n\n{example}"
            )
    return hook_list


def _bind_to_instance(fn: Callable[..., Any], instance: Any) -> Callable[..., Any]:
    """A per-instance stand-in for ``fn`` that carries the instance to pass as ``self``.

    The shared function object is never modified, so two instances of one class cannot see
    each other's ``self``. A plain function is copied (same code, so ``async``-ness, signature
    and source file stay true); anything else is wrapped.
    """
    origin = _parameters._origin(fn)
    if isinstance(origin, types.FunctionType):
        bound: Any = types.FunctionType(
            origin.__code__,
            origin.__globals__,
            origin.__name__,
            origin.__defaults__,
            origin.__closure__,
        )
        bound.__kwdefaults__ = origin.__kwdefaults__
        update_wrapper(bound, origin)
        del bound.__wrapped__  # the copy *is* the function: inspect must not unwrap past it
    else:

        def bound(*args: Any, **kwargs: Any) -> Any:
            return origin(*args, **kwargs)

        update_wrapper(bound, origin)
    setattr(bound, _parameters.ORIGIN_ATTRIBUTE, origin)
    setattr(bound, _parameters.BOUND_SELF_ATTRIBUTE, instance)
    return bound  # type: ignore[no-any-return]


class Flow(Generic[P, R]):
    """A workflow definition: a function and how to run it.

    Use the `flow` decorator rather than building this directly. Calling a flow runs it through
    the engine, which reports every state to the service.

    Args:
        fn: The function that defines the workflow.
        name: The flow's name; defaults to the function's name with ``_`` replaced by ``-``.
        version: A version string; defaults to a hash of the function's source file (None when
            the file cannot be read), so it changes whenever the file does.
        flow_run_name: A name for each run: a template string formatted with the run's
            parameters (``"run-{x}"``) or a callable returning the name.
        retries: How many times to retry a failed run (default 0).
        retry_delay_seconds: Seconds to wait between retries (default 0).
        task_runner: The task runner class or instance for tasks inside the flow; defaults to a
            `ThreadPoolTaskRunner`.
        description: Defaults to the function's docstring.
        timeout_seconds: The longest a run may take before it fails.
        validate_parameters: Validate and coerce parameters against the function's
            annotations with pydantic (``"5"`` becomes ``5`` for ``x: int``).
        persist_result: Write the result to result storage. ``None`` lets the engine decide; it
            becomes True when ``result_storage`` or ``result_serializer`` is given.
        result_storage: A directory path, ``file://`` URI, or storage object for results.
        result_serializer: ``"pickle"``, ``"cloudpickle"``, ``"json"``, ``"compressed/pickle"``,
            ``"compressed/json"`` or a serializer object (see `headwater.serializers`).
        cache_result_in_memory: Keep the result in memory after persisting it.
        log_prints: Send ``print`` output to the run's logs; ``None`` inherits the parent's.
        on_completion: Callables ``hook(flow, flow_run, state)`` run when a run completes.
        on_failure: Hooks run when a run fails.
        on_cancellation: Hooks run when a run is cancelled.
        on_crashed: Hooks run when a run crashes.
        on_running: Hooks run when a run starts running.

    Raises:
        TypeError: ``fn`` is not callable, ``name`` is not a string, a hook list is not a list
            of callables, ``flow_run_name`` is neither a string nor callable, or
            ``result_storage``/``result_serializer`` is of an unusable type.
        InvalidNameError: The name contains one of ``/ % & > <``.
        ReservedArgumentError: ``fn`` has a parameter named ``return_state`` or ``wait_for``.
        ValueError: ``fn``'s parameter names cannot be validated (``validate_parameters``), or
            the result serializer name is unknown.
    """

    def __init__(
        self,
        fn: Callable[P, R],
        name: str | None = None,
        version: str | None = None,
        flow_run_name: Callable[[], str] | str | None = None,
        retries: int | None = None,
        retry_delay_seconds: int | float | None = None,
        task_runner: type[TaskRunner] | TaskRunner | None = None,
        description: str | None = None,
        timeout_seconds: int | float | None = None,
        validate_parameters: bool = True,
        persist_result: bool | None = None,
        result_storage: Any = None,
        result_serializer: Any = None,
        cache_result_in_memory: bool = True,
        log_prints: bool | None = None,
        on_completion: list[Hook] | None = None,
        on_failure: list[Hook] | None = None,
        on_cancellation: list[Hook] | None = None,
        on_crashed: list[Hook] | None = None,
        on_running: list[Hook] | None = None,
    ) -> None:
        _check_name_type(name, "flow")

        hooks = {
            hook_name: _validate_hooks(hook_name, value)
            for hook_name, value in zip(
                _HOOK_NAMES,
                (on_completion, on_failure, on_cancellation, on_crashed, on_running),
                strict=True,
            )
        }

        if not callable(fn):
            raise TypeError("'fn' must be callable")

        # Copy the function's metadata first, so attributes set below always win over
        # anything the function's __dict__ happens to hold.
        update_wrapper(self, fn)
        self.fn: Callable[P, R] = fn

        fn_name = getattr(fn, "__name__", type(fn).__name__)
        self.name: str = name or fn_name.replace("_", "-").replace(
            "<lambda>",
            "unknown-lambda",  # the service refuses "<" and ">" in names
        )
        _raise_on_name_with_banned_characters(self.name)

        _check_run_name(flow_run_name, "flow_run_name")
        self.flow_run_name = flow_run_name

        runner: Any = task_runner or ThreadPoolTaskRunner()
        self.task_runner: TaskRunner = runner() if isinstance(runner, type) else runner

        self.log_prints = log_prints
        self.description: str | None = description or inspect.getdoc(fn)

        # A flow is async if its function is a coroutine function or an async generator, and
        # a generator if it is either kind of generator.
        self.isasync: bool = inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn)
        self.isgenerator: bool = inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn)

        _raise_for_reserved_arguments(fn, fn_name, "flow")

        if not version:
            version = _file_hash(_source_file(fn))
        self.version: str | None = version

        self.timeout_seconds: float | None = float(timeout_seconds) if timeout_seconds else None
        self.retries: int = retries if retries is not None else DEFAULT_RETRIES
        self.retry_delay_seconds: int | float = (
            retry_delay_seconds if retry_delay_seconds is not None else DEFAULT_RETRY_DELAY_SECONDS
        )

        self.should_validate_parameters = validate_parameters
        if validate_parameters:
            # Fail at declaration, not at the first run.
            _parameters.check_validation_compatible(fn)

        if persist_result is None and (result_storage is not None or result_serializer is not None):
            persist_result = True
        validate_storage(result_storage)
        validate_serializer(result_serializer)
        self.persist_result = persist_result
        self.result_storage = result_storage
        self.result_serializer = result_serializer
        self.cache_result_in_memory = cache_result_in_memory

        self.on_completion_hooks: list[Hook] = hooks["on_completion"] or []
        self.on_failure_hooks: list[Hook] = hooks["on_failure"] or []
        self.on_cancellation_hooks: list[Hook] = hooks["on_cancellation"] or []
        self.on_crashed_hooks: list[Hook] = hooks["on_crashed"] or []
        self.on_running_hooks: list[Hook] = hooks["on_running"] or []

        # Flows loaded from storage remember where they came from.
        self._storage: Any = None
        module = getattr(fn, "__module__", None) or "__main__"
        if module == "__main__" or module.startswith(LOADER_MODULE_PREFIX):
            try:
                module_file = inspect.getfile(fn)
            except TypeError:
                module_file = "__main__"
            if module_file != "__main__":
                module = module_file
        self._entrypoint: str | None = f"{module}:{fn_name}"

    # -- introspection -------------------------------------------------------------------

    @property
    def ismethod(self) -> bool:
        """True when the flow was accessed through an instance and passes it as ``self``."""
        return hasattr(self.fn, _parameters.BOUND_SELF_ATTRIBUTE)

    @property
    def run_name(self) -> Callable[..., str] | str | None:
        """``flow_run_name``, under the name the engine reads (`Runnable.run_name`)."""
        return self.flow_run_name

    @property
    def parameters(self) -> dict[str, Any]:
        """The JSON schema of the flow's parameters (built on first access, then cached)."""
        return _parameters.parameter_schema(self.fn)

    def __get__(self, instance: Any, owner: type | None = None) -> Flow[P, R]:
        """Make a flow defined in a class body work as a method.

        Accessed through an instance, the flow returns a copy whose function carries that
        instance, which the call passes as ``self``. Accessed on the class, it is unchanged.
        """
        if instance is None:
            return self
        bound_flow = copy(self)
        bound_flow.fn = _bind_to_instance(self.fn, instance)
        return bound_flow

    def __repr__(self) -> str:
        return f"Flow(name={self.name!r})"

    # -- options -------------------------------------------------------------------------

    def with_options(
        self,
        *,
        name: str | None = None,
        version: str | None = None,
        retries: int | None = None,
        retry_delay_seconds: int | float | None = None,
        description: str | None = None,
        flow_run_name: Callable[[], str] | str | None = None,
        task_runner: type[TaskRunner] | TaskRunner | None = None,
        timeout_seconds: int | float | None = None,
        validate_parameters: bool | None = None,
        persist_result: bool | None = NotSet,
        result_storage: Any = NotSet,
        result_serializer: Any = NotSet,
        cache_result_in_memory: bool | None = None,
        log_prints: bool | None = NotSet,
        on_completion: list[Hook] | None = None,
        on_failure: list[Hook] | None = None,
        on_cancellation: list[Hook] | None = None,
        on_crashed: list[Hook] | None = None,
        on_running: list[Hook] | None = None,
    ) -> Flow[P, R]:
        """Return a new flow like this one with some options changed.

        Arguments left out keep this flow's values. ``persist_result``, ``result_storage``,
        ``result_serializer`` and ``log_prints`` accept an explicit ``None`` to reset them
        (they default to `NotSet`); for the other options ``None`` means "unchanged".

        Example:
            >>> @flow(name="My flow")
            ... def my_flow():
            ...     return 1
            >>> my_flow.with_options(name="My new flow", retries=2).retries
            2
        """
        new_flow: Flow[P, R] = Flow(
            fn=self.fn,
            name=name or self.name,
            description=description or self.description,
            flow_run_name=flow_run_name or self.flow_run_name,
            version=version or self.version,
            task_runner=task_runner or self.task_runner,
            retries=retries if retries is not None else self.retries,
            retry_delay_seconds=(
                retry_delay_seconds if retry_delay_seconds is not None else self.retry_delay_seconds
            ),
            timeout_seconds=(
                timeout_seconds if timeout_seconds is not None else self.timeout_seconds
            ),
            validate_parameters=(
                validate_parameters
                if validate_parameters is not None
                else self.should_validate_parameters
            ),
            persist_result=(
                persist_result if persist_result is not NotSet else self.persist_result
            ),
            result_storage=(
                result_storage if result_storage is not NotSet else self.result_storage
            ),
            result_serializer=(
                result_serializer if result_serializer is not NotSet else self.result_serializer
            ),
            cache_result_in_memory=(
                cache_result_in_memory
                if cache_result_in_memory is not None
                else self.cache_result_in_memory
            ),
            log_prints=log_prints if log_prints is not NotSet else self.log_prints,
            # Copies, so registering a hook on one flow never adds it to the other.
            on_completion=list(on_completion or self.on_completion_hooks),
            on_failure=list(on_failure or self.on_failure_hooks),
            on_cancellation=list(on_cancellation or self.on_cancellation_hooks),
            on_crashed=list(on_crashed or self.on_crashed_hooks),
            on_running=list(on_running or self.on_running_hooks),
        )
        new_flow._storage = self._storage
        new_flow._entrypoint = self._entrypoint
        return new_flow

    # -- parameters ----------------------------------------------------------------------

    def validate_parameters(self, parameters: dict[str, Any]) -> dict[str, Any]:
        """Validate ``parameters`` against the function's annotations, coercing where possible.

        Returns:
            A new dict with the coerced values (``{"x": "5"}`` becomes ``{"x": 5}`` for
            ``x: int``).

        Raises:
            ParameterTypeError: Some parameters are invalid; the message lists each one.
        """
        return _parameters.validate_parameters(self.fn, parameters, flow_name=self.name)

    def serialize_parameters(self, parameters: dict[str, Any]) -> dict[str, Any]:
        """Convert parameters to JSON-compatible values for the service.

        Values keep their JSON types (ints stay exact ints, at any size); a value with no JSON
        form is recorded as ``"<TypeName>"`` instead of failing the run. The instance of a
        method flow is left out.
        """
        return serialize_parameters(self.fn, parameters)

    # -- hooks as decorators -------------------------------------------------------------

    def on_completion(self, fn: Hook) -> Hook:
        """Register ``fn(flow, flow_run, state)`` to run when a run completes."""
        self.on_completion_hooks.append(fn)
        return fn

    def on_failure(self, fn: Hook) -> Hook:
        """Register ``fn(flow, flow_run, state)`` to run when a run fails."""
        self.on_failure_hooks.append(fn)
        return fn

    def on_cancellation(self, fn: Hook) -> Hook:
        """Register ``fn(flow, flow_run, state)`` to run when a run is cancelled."""
        self.on_cancellation_hooks.append(fn)
        return fn

    def on_crashed(self, fn: Hook) -> Hook:
        """Register ``fn(flow, flow_run, state)`` to run when a run crashes."""
        self.on_crashed_hooks.append(fn)
        return fn

    def on_running(self, fn: Hook) -> Hook:
        """Register ``fn(flow, flow_run, state)`` to run when a run starts running."""
        self.on_running_hooks.append(fn)
        return fn

    # -- running -------------------------------------------------------------------------

    @overload
    def __call__(
        self: Flow[P, Coroutine[Any, Any, T]], *args: P.args, **kwargs: P.kwargs
    ) -> Coroutine[Any, Any, T]: ...

    @overload
    def __call__(self: Flow[P, T], *args: P.args, **kwargs: P.kwargs) -> T: ...

    def __call__(  # type: ignore[misc]  # `return_state`/`wait_for` are the flow call's own
        self,
        *args: Any,
        return_state: bool = False,
        wait_for: Iterable[Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Run the flow and return its result (or its final `State`).

        Args:
            *args: Positional arguments for the flow function.
            return_state: Return the final `State` instead of the result; a failed run then
                returns its Failed state rather than raising.
            wait_for: Futures to wait for before starting, when called as a subflow.
            **kwargs: Keyword arguments for the flow function.

        Returns:
            The flow's return value, or its final state with ``return_state=True``. For an
            async flow, an awaitable of either.

        Raises:
            ParameterBindError: The arguments do not fit the function's signature.
        """
        parameters = _parameters.get_call_parameters(self.fn, args, kwargs)
        if (graph := active_graph()) is not None:  # a subflow while visualizing: a node
            return graph.record_call(self, parameters, wait_for, kind="flow")
        return run_flow(
            self,
            parameters,
            wait_for=wait_for,
            return_type="state" if return_state else "result",
        )

    # -- deployments -------------------------------------------------------------------

    def to_deployment(
        self,
        name: str,
        interval: IntervalArgument = None,
        cron: Iterable[str] | str | None = None,
        rrule: Iterable[str] | str | None = None,
        paused: bool | None = None,
        schedules: list[Any] | None = None,
        concurrency_limit: int | None = None,
        parameters: dict[str, Any] | None = None,
        triggers: list[Any] | None = None,
        description: str | None = None,
        tags: list[str] | None = None,
        version: str | None = None,
        enforce_parameter_schema: bool = True,
        work_pool_name: str | None = None,
        work_queue_name: str | None = None,
        job_variables: dict[str, Any] | None = None,
        entrypoint_type: Any = None,
    ) -> RunnerDeployment:
        """A deployment of this flow, to pass to `headwater.serve` (as Prefect's).

        Args:
            name: The deployment's name.
            interval: Seconds (or a timedelta) between runs; several make several schedules.
            cron: A cron expression (or several) for when runs are due.
            rrule: An RRULE (or several) for when runs are due.
            paused: Create the deployment paused.
            schedules: Schedule objects (``interval``/``cron``/``rrule`` attributes, as
                Prefect's ``prefect.schedules.Schedule``), for time zones and more.
            concurrency_limit: The most runs of the deployment at once.
            parameters: Default parameters of its runs.
            triggers: Not supported (Headwater has no event triggers).
            description: Defaults to the flow's description.
            tags: Labels of the deployment and its runs.
            version: Defaults to the flow's version.
            enforce_parameter_schema: Refuse runs whose parameters the flow's signature refuses.
            work_pool_name: The work pool whose workers run it (None: served by a process).
            work_queue_name: The pool's queue (None: its default queue).
            job_variables: Settings for the worker's job.
            entrypoint_type: Accepted for Prefect compatibility; the entrypoint is the flow's
                file path.

        Raises:
            InvalidNameError: ``name`` holds a character deployment names cannot.
            ValueError: More than one of interval, cron, rrule and schedules; or the flow was
                not defined in a file.
        """
        from headwater._serve.deployments import RunnerDeployment

        if not name.endswith(".py"):
            _raise_on_name_with_banned_characters(name)
        if triggers:
            raise ValueError(
                "triggers are not supported by Headwater (it has no events to trigger on); "
                "use schedules, or create runs with headwater.deployments.run_deployment()."
            )
        return RunnerDeployment.from_flow(
            self,
            name,
            interval=interval,
            cron=cron,
            rrule=rrule,
            schedules=schedules,
            paused=paused,
            concurrency_limit=concurrency_limit,
            parameters=parameters or {},
            description=description,
            tags=tags or [],
            version=version,
            enforce_parameter_schema=enforce_parameter_schema,
            work_pool_name=work_pool_name,
            work_queue_name=work_queue_name,
            job_variables=job_variables or {},
        )

    def serve(
        self,
        name: str | None = None,
        interval: IntervalArgument = None,
        cron: Iterable[str] | str | None = None,
        rrule: Iterable[str] | str | None = None,
        paused: bool | None = None,
        schedules: list[Any] | None = None,
        global_limit: int | None = None,
        triggers: list[Any] | None = None,
        parameters: dict[str, Any] | None = None,
        description: str | None = None,
        tags: list[str] | None = None,
        version: str | None = None,
        enforce_parameter_schema: bool = True,
        pause_on_shutdown: bool = True,
        print_starting_message: bool = True,
        limit: int | None = None,
        webserver: bool = False,
        entrypoint_type: Any = None,
    ) -> None:
        """Create a deployment of this flow and run its due runs here until SIGTERM or SIGINT.

        Each run starts in a subprocess that loads the flow from this file; the service hands
        runs over the moment they are due (a long poll), ``limit`` caps how many run at once,
        and ``headwater flow-run cancel`` stops a run's subprocess.

        Args:
            name: The deployment's name; defaults to the flow's. A file path
                (``my_flow.serve(__file__)``) means the file's name without ``.py``.
            interval: Seconds (or a timedelta) between runs; several make several schedules.
            cron: A cron expression (or several).
            rrule: An RRULE (or several).
            paused: Create the deployment paused.
            schedules: Schedule objects, for time zones and more.
            global_limit: The most runs of the deployment at once, across every process.
            triggers: Not supported.
            parameters: Default parameters of its runs.
            description: Defaults to the flow's description.
            tags: Labels of the deployment and its runs.
            version: Defaults to the flow's version.
            enforce_parameter_schema: Refuse runs whose parameters the signature refuses.
            pause_on_shutdown: Turn the schedules off when serving stops.
            print_starting_message: Print how to trigger a run.
            limit: The most runs at once in this process.
            webserver: Not supported (Headwater has no runner webserver).
            entrypoint_type: Accepted for Prefect compatibility.

        Examples:
            >>> @flow
            ... def my_flow(name: str) -> None:
            ...     print(f"hello {name}")
            >>> if __name__ == "__main__":  # doctest: +SKIP
            ...     my_flow.serve("example-deployment", interval=3600)
        """
        from headwater._serve.deployments import serve_flow

        name = Path(name).stem if name else self.name
        if webserver:
            raise ValueError(
                "webserver=True is not supported by Headwater: watch served runs with "
                "`headwater flow-run ls` or the gRPC API instead."
            )
        deployment = self.to_deployment(
            name,
            interval=interval,
            cron=cron,
            rrule=rrule,
            paused=paused,
            schedules=schedules,
            concurrency_limit=global_limit,
            parameters=parameters,
            triggers=triggers,
            description=description,
            tags=tags,
            version=version,
            enforce_parameter_schema=enforce_parameter_schema,
        )
        serve_flow(
            deployment,
            pause_on_shutdown=pause_on_shutdown,
            print_starting_message=print_starting_message,
            limit=limit,
        )

    def deploy(
        self,
        name: str,
        work_pool_name: str | None = None,
        image: Any = None,
        build: bool = True,
        push: bool = True,
        work_queue_name: str | None = None,
        job_variables: dict[str, Any] | None = None,
        interval: IntervalArgument = None,
        cron: Iterable[str] | str | None = None,
        rrule: Iterable[str] | str | None = None,
        paused: bool | None = None,
        schedules: list[Any] | None = None,
        concurrency_limit: int | None = None,
        triggers: list[Any] | None = None,
        parameters: dict[str, Any] | None = None,
        description: str | None = None,
        tags: list[str] | None = None,
        version: str | None = None,
        enforce_parameter_schema: bool = True,
        entrypoint_type: Any = None,
        print_next_steps: bool = True,
        ignore_warnings: bool = False,
    ) -> uuid.UUID:
        """Create (or update) a deployment of this flow run by a work pool's workers.

        The pool's workers (``headwater worker start --pool NAME``) run each run in a
        subprocess loaded from the code location: this flow's file, its directory being the
        working directory here, or the source given to `from_source`. Headwater's pools are
        process pools, so no image is built: ``image=`` is refused with a clear message, and
        ``build``/``push`` do nothing.

        Args:
            name: The deployment's name.
            work_pool_name: The pool (it must exist); defaults to the
                ``HEADWATER_DEFAULT_WORK_POOL_NAME`` setting.
            image: Refused (no image build here).
            build: Accepted for Prefect compatibility.
            push: Accepted for Prefect compatibility.
            work_queue_name: The pool's queue (None: its "default" queue; a new name creates
                the queue).
            job_variables: Settings for the worker's job, over the pool's base job template:
                ``env`` (variables for the run's process) and ``working_dir``.
            interval: Seconds (or a timedelta) between runs; several make several schedules.
            cron: A cron expression (or several).
            rrule: An RRULE (or several).
            paused: Create the deployment paused.
            schedules: Schedule objects, for time zones and more.
            concurrency_limit: The most runs of the deployment at once.
            triggers: Not supported.
            parameters: Default parameters of its runs.
            description: Defaults to the flow's description.
            tags: Labels of the deployment and its runs.
            version: Defaults to the flow's version.
            enforce_parameter_schema: Refuse runs whose parameters the signature refuses.
            entrypoint_type: Accepted for Prefect compatibility.
            print_next_steps: Print how to start a worker and trigger a run.
            ignore_warnings: Accepted for Prefect compatibility.

        Returns:
            The deployment's id.

        Raises:
            ValueError: ``image`` was given, no work pool was named, the pool does not exist,
                or the arguments make no deployment (see `to_deployment`).
        """
        from headwater._serve.deploy import deploy, refuse_images

        refuse_images(image)
        deployment = self.to_deployment(
            name,
            interval=interval,
            cron=cron,
            rrule=rrule,
            paused=paused,
            schedules=schedules,
            concurrency_limit=concurrency_limit,
            parameters=parameters,
            triggers=triggers,
            description=description,
            tags=tags,
            version=version,
            enforce_parameter_schema=enforce_parameter_schema,
            work_pool_name=work_pool_name,
            work_queue_name=work_queue_name,
            job_variables=job_variables,
            entrypoint_type=entrypoint_type,
        )
        (deployment_id,) = deploy(
            deployment,
            work_pool_name=work_pool_name,
            print_next_steps_message=print_next_steps,
            ignore_warnings=ignore_warnings,
        )
        return deployment_id

    async def adeploy(self, name: str, *args: Any, **kwargs: Any) -> uuid.UUID:
        """`deploy` for async code: the same arguments, awaited (the calls run in a thread)."""
        import asyncio

        return await asyncio.to_thread(self.deploy, name, *args, **kwargs)

    @classmethod
    def from_source(cls, source: Any, entrypoint: str) -> Flow[..., Any]:
        """Load a flow from a directory or a git repository, to deploy or serve it from there.

        The flow remembers its source: `deploy`, `to_deployment` and `serve` record it as the
        deployment's code location, so a worker finds the code there (a repository is cloned
        with ``git`` before each run).

        Args:
            source: A directory, a git URL (``https://``, ``ssh://``, ``git@``, ``file://``,
                or ending in ``.git``), or a `headwater.runner.storage.GitRepository`
                (for a branch or commit).
            entrypoint: ``"path/to/file.py:flow_function"``, relative to the source's root.

        Returns:
            The flow.

        Raises:
            TypeError: ``source`` is of an unsupported type.
            ValueError: A directory that does not exist, or a malformed entrypoint.
            RuntimeError: The repository could not be cloned (git's message is included).
            ScriptError: The entrypoint's file failed to run.
        """
        from headwater._scripts import import_flow
        from headwater._serve.source import GitRepository, clone, storage_from_source

        storage = storage_from_source(source)
        if ":" not in entrypoint:
            raise ValueError(
                f"Entrypoint {entrypoint!r} must be 'path/to/file.py:flow_function', relative "
                "to the source."
            )
        if isinstance(storage, GitRepository):
            root = clone(storage.url, storage.branch, storage.commit_sha)
        else:
            root = storage.path
        loaded: Flow[..., Any] = import_flow(str(Path(root) / entrypoint), Flow)
        loaded._storage = storage
        loaded._entrypoint = entrypoint
        return loaded

    def visualize(self, *args: Any, **kwargs: Any) -> DotText:
        """Draw the flow's task graph without running its tasks, as Prefect's ``visualize()``.

        The flow function runs with every task call, ``.submit()``, ``.map()`` and subflow
        call recorded instead of run (they return placeholders); a placeholder passed to a
        later call, or in its ``wait_for``, draws an edge. Code in the flow that is not a task
        still runs. Nothing is sent to the service.

        Args:
            *args: Positional arguments for the flow function.
            **kwargs: Keyword arguments for the flow function.

        Returns:
            The graph as Graphviz DOT text (a `str`, which async code may also ``await``, as
            with Prefect). When Graphviz's ``dot`` program is installed, the graph is also
            rendered to ``<flow name>.png`` in the working directory.

        Raises:
            FlowVisualizationError: The flow's code failed while visualizing, typically by
                using a task's result directly (move that code into a task).
        """
        from headwater._visualize import visualize_flow

        return visualize_flow(self, args, kwargs)


def serialize_parameters(fn: Callable[..., Any], parameters: dict[str, Any]) -> dict[str, Any]:
    """A call's parameters as JSON values for the service (a flow's or a task's).

    Values keep their JSON types (ints stay exact ints, at any size); a value with no JSON
    form is recorded as ``"<TypeName>"`` instead of failing the run, and a `State` is never
    converted (its data could be huge, or an exception). The instance of a method is left out.
    """
    bound_self = getattr(fn, _parameters.BOUND_SELF_ATTRIBUTE, _NO_INSTANCE)
    serialized: dict[str, Any] = {}
    for key, value in parameters.items():
        if value is bound_self:
            continue
        if type(value) in _JSON_SCALARS:  # most parameters: already JSON, nothing to check
            serialized[key] = value
            continue
        from headwater._states import State

        if isinstance(value, State):
            serialized[key] = f"<{type(value).__name__}>"
            continue
        try:
            serialized[key] = _parameters.jsonable(value)
        except (TypeError, ValueError):
            serialized[key] = f"<{type(value).__name__}>"
    return serialized


_NO_INSTANCE = object()
#: Values that are their own JSON form (``bool`` is an ``int``, but the check is by exact type).
_JSON_SCALARS = frozenset({str, int, float, bool, type(None)})


def run_flow(
    flow: Flow[..., Any],
    parameters: dict[str, Any] | None = None,
    wait_for: Iterable[Any] | None = None,
    return_type: Literal["result", "state"] = "result",
    *,
    flow_run_id: str | None = None,
    transport: Transport | None = None,
) -> Any:
    """Run ``flow`` once on the engine, reporting to ``transport``.

    Args:
        flow: The flow to run.
        parameters: The call's parameters by name. With ``flow_run_id`` and no parameters,
            the run's stored parameters are used.
        wait_for: Futures or states to wait for before the run starts.
        return_type: ``"result"`` returns the value or raises the flow's exception;
            ``"state"`` returns the final `State`.
        flow_run_id: Run this existing run (created elsewhere) instead of creating one.
        transport: The service to report to. None means the enclosing run's transport for a
            subflow, else the process's default (``HEADWATER_API_URL``, or the embedded
            service).

    Returns:
        What `Flow.__call__` returns: the result, the final state, or for async and generator
        flows a coroutine or generator of them.
    """
    # The engine and the transport pull in grpc: load them on the first call, not at import.
    from headwater._engine.entry import run
    from headwater._transport.runtime import transport_for_call

    return run(
        flow,
        parameters,
        transport=transport_for_call(transport),
        wait_for=wait_for,
        return_type=return_type,
        flow_run_id=flow_run_id,
    )


@overload
def flow(__fn: Callable[P, R], /) -> Flow[P, R]: ...


@overload
def flow(
    *,
    name: str | None = None,
    version: str | None = None,
    flow_run_name: Callable[[], str] | str | None = None,
    retries: int | None = None,
    retry_delay_seconds: int | float | None = None,
    task_runner: type[TaskRunner] | TaskRunner | None = None,
    description: str | None = None,
    timeout_seconds: int | float | None = None,
    validate_parameters: bool = True,
    persist_result: bool | None = None,
    result_storage: Any = None,
    result_serializer: Any = None,
    cache_result_in_memory: bool = True,
    log_prints: bool | None = None,
    on_completion: list[Hook] | None = None,
    on_failure: list[Hook] | None = None,
    on_cancellation: list[Hook] | None = None,
    on_crashed: list[Hook] | None = None,
    on_running: list[Hook] | None = None,
) -> Callable[[Callable[P, R]], Flow[P, R]]: ...


def flow(
    __fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    version: str | None = None,
    flow_run_name: Callable[[], str] | str | None = None,
    retries: int | None = None,
    retry_delay_seconds: int | float | None = None,
    task_runner: type[TaskRunner] | TaskRunner | None = None,
    description: str | None = None,
    timeout_seconds: int | float | None = None,
    validate_parameters: bool = True,
    persist_result: bool | None = None,
    result_storage: Any = None,
    result_serializer: Any = None,
    cache_result_in_memory: bool = True,
    log_prints: bool | None = None,
    on_completion: list[Hook] | None = None,
    on_failure: list[Hook] | None = None,
    on_cancellation: list[Hook] | None = None,
    on_crashed: list[Hook] | None = None,
    on_running: list[Hook] | None = None,
) -> Any:
    """Turn a function (sync or async) into a `Flow`; usable bare or with arguments.

    The arguments are those of `Flow`, with the same defaults.

    Examples:
        >>> from headwater import flow
        >>> @flow
        ... def add(x: int, y: int) -> int:
        ...     return x + y
        >>> add.name
        'add'

        >>> @flow(name="nightly-etl", retries=2, retry_delay_seconds=10)
        ... def etl() -> None:
        ...     ...

    Raises:
        TypeError: ``@classmethod`` or ``@staticmethod`` was applied below ``@flow`` (it must
            go on top), or any error `Flow` raises for its arguments.
    """
    options = dict(
        name=name,
        version=version,
        flow_run_name=flow_run_name,
        task_runner=task_runner,
        description=description,
        timeout_seconds=timeout_seconds,
        validate_parameters=validate_parameters,
        retries=retries,
        retry_delay_seconds=retry_delay_seconds,
        persist_result=persist_result,
        result_storage=result_storage,
        result_serializer=result_serializer,
        cache_result_in_memory=cache_result_in_memory,
        log_prints=log_prints,
        on_completion=on_completion,
        on_failure=on_failure,
        on_cancellation=on_cancellation,
        on_crashed=on_crashed,
        on_running=on_running,
    )
    if __fn is None:
        return partial(flow, **options)
    if isinstance(__fn, classmethod | staticmethod):
        raise TypeError(f"@{type(__fn).__name__} should be applied on top of @flow")
    return Flow(fn=__fn, **options)


# As with Prefect, ``flow.from_source(...)`` loads a flow without a ``Flow`` import.
flow.from_source = Flow.from_source  # type: ignore[attr-defined]

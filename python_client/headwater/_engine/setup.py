"""What a call asks the service to create, and how the engine calls the runnable's function.

Everything here is free of I/O, so the engine (`headwater._engine.machine`) can describe the
run before it talks to the service, and a bad ``flow_run_name`` template fails the call before
any run exists.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from headwater import _parameters
from headwater._context import FlowRunContext, TaskRunContext, current, current_tags
from headwater._transport.interface import FlowRunSpec
from headwater.exceptions import ParameterTypeError

if TYPE_CHECKING:
    from headwater._engine.runnable import Runnable

__all__ = [
    "call_arguments",
    "dump_parameters",
    "first_retry_delay",
    "run_name",
    "run_spec",
    "validate_parameters",
]


def validate_parameters(
    flow: Runnable, raw: dict[str, Any]
) -> tuple[dict[str, Any], ParameterTypeError | None]:
    """Validate and coerce ``raw`` when the flow asks for it.

    A validation failure is returned, not raised, because the run must still be created so it
    can be marked FAILED with the reason; the raw parameters are kept for that run.
    """
    if not flow.should_validate_parameters:
        return raw, None
    try:
        return flow.validate_parameters(raw), None
    except ParameterTypeError as exc:
        return raw, exc


def run_spec(
    flow: Runnable,
    parameters: dict[str, Any],
    serialized_parameters: dict[str, Any],
    parent: FlowRunContext | None,
) -> FlowRunSpec:
    """The run to create for ``flow`` (its name, tags, parent and retry policy).

    Raises:
        ValueError, TypeError: The flow's ``flow_run_name`` cannot name this run.
    """
    retries = int(flow.retries)
    delay = first_retry_delay(flow.retry_delay_seconds)
    tags = tuple(sorted(current_tags()))
    parent_id = parent.flow_run_id if parent is not None else None

    def unborn_run() -> FlowRunContext:
        """The run about to be created, for a ``flow_run_name`` callable: the name travels in
        the create, so it has no id or name yet (``runtime.flow_run`` gives None for both)."""
        from headwater._runs import FlowRun

        run = FlowRun(
            id="",
            name="",
            flow_name=flow.name,
            parameters=serialized_parameters,
            tags=tags,
            parent_flow_run_id=parent_id,
            flow_version=flow.version,
        )
        return FlowRunContext(
            flow=flow,
            flow_run_id="",
            make_flow_run=lambda: run,
            parameters=parameters,
            parent=parent,
        )

    return FlowRunSpec(
        flow_name=flow.name,
        flow_version=flow.version or "",
        parameters_json=dump_parameters(serialized_parameters),
        parameters=serialized_parameters,
        name=run_name(flow, parameters, context=unborn_run),
        tags=tags,
        parent_flow_run_id=parent_id,
        retries=retries,
        retry_delay_seconds=delay,
    )


def first_retry_delay(delays: float | Sequence[float]) -> float:
    """The delay before the first retry: a flow's only delay, or the first of a task's list."""
    if isinstance(delays, int | float):
        return float(delays)
    return float(delays[0]) if delays else 0.0


def call_arguments(
    fn: Callable[..., Any], parameters: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The function's arguments; all by keyword when its signature allows (the usual case).

    Passing the parameters dict as keywords skips rebuilding positional arguments, which is
    measurable on a trivial run.
    """
    if _keywords_only_call(fn):
        return (), parameters
    return _parameters.parameters_to_args_kwargs(fn, parameters)


_KEYWORD_KINDS = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


#: `_keywords_only_call`'s answer per function (a task's function is asked on every call).
_keywords_only: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()


def _keywords_only_call(fn: Callable[..., Any]) -> bool:
    """True when every parameter of ``fn`` can be passed by keyword (no ``*args``, no ``/``)."""
    try:
        return _keywords_only[fn]
    except (KeyError, TypeError):
        pass
    try:
        parameters = _parameters.signature_of(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    answer = all(parameter.kind in _KEYWORD_KINDS for parameter in parameters)
    with contextlib.suppress(TypeError):  # not weak-referenceable: ask again next time
        _keywords_only[fn] = answer
    return answer


#: ``json.dumps(value, allow_nan=False)`` without building an encoder per call.
_STRICT_JSON = json.JSONEncoder(allow_nan=False)


def dump_parameters(parameters: dict[str, Any]) -> str:
    """The parameters as JSON text, as they travel (a value with no JSON form as its type)."""
    if not parameters:
        return "{}"
    try:
        return _STRICT_JSON.encode(parameters)
    except (TypeError, ValueError):
        # serialize_parameters promises JSON values; keep the run going if one slipped through.
        return json.dumps({key: _json_or_type(value) for key, value in parameters.items()})


def _json_or_type(value: Any) -> Any:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return f"<{type(value).__name__}>"
    return value


_TEMPLATE_HINT = (
    "Use parameter names in braces, e.g. 'run-{x}', and write '{{' and '}}' for literal braces."
)


def run_name(
    runnable: Runnable,
    parameters: dict[str, Any],
    option: str = "flow_run_name",
    kind: str = "flow",
    context: Callable[[], FlowRunContext | TaskRunContext] | None = None,
) -> str:
    """The run's name from its template or callable ("" lets the service generate one).

    ``option`` and ``kind`` name the argument and the runnable in errors
    (``flow_run_name`` of a flow, ``task_run_name`` of a task). ``context`` makes the run's
    context (before the run exists) current while a callable runs, so that it can read
    ``headwater.runtime.flow_run.parameters`` or ``task_run.parameters``, as Prefect's
    documented name callables do; it is made only for a callable.

    Raises:
        ValueError: The template names something that is not a parameter, or is malformed.
        TypeError: The callable returned something other than a string.
    """
    template = runnable.run_name
    if template is None:
        return ""
    if callable(template):
        with current(context()) if context is not None else contextlib.nullcontext():
            return _call_namer(runnable, template, parameters, option, kind)
    try:
        return template.format(**parameters)
    except KeyError as exc:
        raise ValueError(
            f"{option} {template!r} of {kind} {runnable.name!r} refers to {exc.args[0]!r}, "
            f"which is not a parameter of the {kind} (its parameters are {sorted(parameters)}). "
            f"{_TEMPLATE_HINT}"
        ) from None
    except (IndexError, ValueError) as exc:
        raise ValueError(
            f"{option} {template!r} of {kind} {runnable.name!r} is not a valid template "
            f"({exc}). {_TEMPLATE_HINT}"
        ) from None


def _call_namer(
    runnable: Runnable, namer: Any, parameters: dict[str, Any], option: str, kind: str
) -> str:
    """Call a run-name callable, with the parameters when it takes them."""
    try:
        wants_parameters = "parameters" in _parameters.signature_of(namer).parameters
    except (TypeError, ValueError):
        wants_parameters = False
    try:
        name = namer(parameters=dict(parameters)) if wants_parameters else namer()
    except Exception as exc:
        exc.add_note(
            f"Raised by the {option} callable of {kind} {runnable.name!r}; fix the callable "
            "or pass a template string such as 'run-{x}'."
        )
        raise
    if not isinstance(name, str):
        raise TypeError(
            f"The {option} callable of {kind} {runnable.name!r} returned "
            f"{type(name).__name__}, but a run name must be a str. Return a string."
        )
    return name

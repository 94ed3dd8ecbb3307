"""One task call as data, decided where the task was called or submitted (see `calls`).

A `TaskCall` is decided on the submitting side, where the flow run is current: the task run's
id (so a future knows it at once), its ``dynamic_key`` (from the flow run's counter, in
submission order, so keys are deterministic), the flow run it belongs to, the flow's
parameters (for ``FLOW_PARAMETERS`` cache policies), the tags of the enclosing `tags` blocks
and whether prints are logged. `run_task_call` runs it in the current process and reports
every state to the service itself; a process or Dask runner ships the call (it pickles with
cloudpickle: it holds the task) and calls `run_task_call` on the other side.

Upstream futures in the parameters or ``wait_for`` are resolved by `resolve_upstream` before
the run starts: each is waited for and replaced by its result. When one did not complete (and
is not wrapped in `allow_failure`), the run is created and ended FAILED ("NotReady") without
calling the function, and its result raises `UpstreamTaskError` naming that upstream run.
Futures cannot travel to another process, so a runner that ships calls resolves them first
(`resolve_upstream` on the submitting side); the result is a call with plain values.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from headwater._context import _current_flow_run, current_tags
from headwater._ids import uuid7_str

if TYPE_CHECKING:
    from collections.abc import Iterable

    from headwater._engine.runnable import TaskRunnable

__all__ = [
    "NOT_READY",
    "TaskCall",
    "UpstreamFailure",
    "has_upstream",
    "new_call",
    "resolve_upstream",
]

#: The name of the FAILED state of a run that never ran because an upstream did not complete.
NOT_READY = "NotReady"


@dataclass(frozen=True)
class UpstreamFailure:
    """An upstream run that did not complete, so the call it feeds must not run.

    Attributes:
        task_run_id: The upstream task run's id.
        state_name: Its final state's name ("Failed", "Crashed", "NotReady", ...).
        message: Its final state's message.
        task_name: The upstream task's name, when the future knew it ("" otherwise).
    """

    task_run_id: str
    state_name: str
    message: str = ""
    task_name: str = ""

    def describe(self) -> str:
        """The upstream run in words, for the downstream run's state and error."""
        who = f"{self.task_name!r} " if self.task_name else ""
        if self.state_name == NOT_READY:
            why = " (a run it depends on did not complete)"
        else:
            why = f" ({self.message.rstrip('.')})" if self.message else ""
        return f"task run {who}'{self.task_run_id}' ended {self.state_name}{why}"


@dataclass(frozen=True)
class TaskCall:
    """Everything needed to run one task run, decided where the task was called or submitted.

    Attributes:
        task: The task to run.
        parameters: Its inputs by name. Futures inside are resolved before the run starts.
        task_run_id: The run's id, chosen by the client (the service creates it under this id).
        dynamic_key: Tells this call apart from other calls of the task in the flow run.
        flow_run_id: The flow run the call belongs to; None outside any flow.
        flow_parameters: That flow run's parameters (for ``FLOW_PARAMETERS`` cache policies).
        tags: The run's tags: the task's own plus those of the enclosing `tags` blocks.
        log_prints: Whether ``print`` goes to the run's logs; None lets the engine decide.
        wait_for: Futures (or states) that must end before the run starts.
        upstream_failures: Upstream runs found not completed by `resolve_upstream`; when
            any, the run is ended FAILED ("NotReady") without running.
    """

    task: TaskRunnable
    parameters: dict[str, Any]
    task_run_id: str
    dynamic_key: str
    flow_run_id: str | None = None
    flow_parameters: dict[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    log_prints: bool | None = None
    wait_for: tuple[Any, ...] = ()
    upstream_failures: tuple[UpstreamFailure, ...] = ()


def new_call(
    task: TaskRunnable, parameters: dict[str, Any], wait_for: Iterable[Any] | None = None
) -> TaskCall:
    """Describe a call of ``task`` made here and now (in the caller's flow run, if any).

    Takes the flow run's next ``dynamic_key`` for the task, so call it once per call, in the
    order the calls are made.
    """
    parent = _current_flow_run.get()
    if parent is not None:
        dynamic_key = parent.next_dynamic_key(task.task_key)
        flow_run_id: str | None = parent.flow_run_id
        flow_parameters = parent.parameters
        log_prints: bool | None = (
            task.log_prints if task.log_prints is not None else parent.log_prints
        )
    else:
        dynamic_key = uuid.uuid4().hex  # nothing to count calls in: each call is new
        flow_run_id = None
        flow_parameters = {}
        log_prints = task.log_prints
    return TaskCall(
        task=task,
        parameters=parameters,
        task_run_id=uuid7_str(),
        dynamic_key=dynamic_key,
        flow_run_id=flow_run_id,
        flow_parameters=flow_parameters,
        tags=_tags_of(task.tags, current_tags()),
        log_prints=log_prints,
        wait_for=tuple(wait_for) if wait_for else (),
    )


def _tags_of(own: Iterable[str], enclosing: frozenset[str]) -> tuple[str, ...]:
    """The run's tags, sorted: the task's own and those of the enclosing `tags` blocks."""
    if not own and not enclosing:
        return ()  # most calls: nothing to merge or sort
    return tuple(sorted(set(own) | enclosing))


def has_upstream(call: TaskCall) -> bool:
    """Whether ``call`` holds futures or states to resolve before it runs (cheap to ask)."""
    return bool(call.wait_for) or _holds_upstream(call.parameters)


def resolve_upstream(call: TaskCall) -> TaskCall:
    """``call`` with its upstream futures waited for and replaced by their results.

    States passed as arguments are replaced by their results too (as Prefect does). Upstream
    runs that did not complete are listed in ``upstream_failures`` (their arguments become
    None), unless wrapped in `allow_failure`, which passes their exception as the value.
    Returns ``call`` itself when there is nothing to resolve.
    """
    if not has_upstream(call):
        return call
    failures: list[UpstreamFailure] = []
    parameters = {
        key: _resolve(value, allow_failure=False, failures=failures)
        for key, value in call.parameters.items()
    }
    for item in call.wait_for:
        _resolve(item, allow_failure=False, failures=failures)
    return replace(
        call,
        parameters=parameters,
        wait_for=(),
        upstream_failures=call.upstream_failures + tuple(failures),
    )


#: Values that never hold a future or a state: most task arguments, checked without a walk.
_PLAIN = frozenset({int, float, str, bool, bytes, type(None)})


def _holds_upstream(expr: Any) -> bool:
    if type(expr) is dict and all(type(value) in _PLAIN for value in expr.values()):
        return False
    from headwater._annotations import BaseAnnotation
    from headwater._states import State
    from headwater.futures import TaskRunFuture

    stack = [expr]
    while stack:
        item = stack.pop()
        if type(item) in _PLAIN:
            continue
        if isinstance(item, TaskRunFuture | State | BaseAnnotation):
            return True
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            stack.extend(item)
    return False


def _resolve(expr: Any, *, allow_failure: bool, failures: list[UpstreamFailure]) -> Any:
    """``expr`` with futures and states replaced by their results (see `resolve_upstream`)."""
    from headwater._annotations import BaseAnnotation, quote
    from headwater._annotations import allow_failure as allow_failure_type
    from headwater._states import State, StateType
    from headwater.futures import TaskRunFuture

    if isinstance(expr, quote):
        return expr.unwrap()
    if isinstance(expr, BaseAnnotation):  # unmapped, allow_failure: unwrapped for the function
        allowed = allow_failure or isinstance(expr, allow_failure_type)
        return _resolve(expr.unwrap(), allow_failure=allowed, failures=failures)
    if isinstance(expr, TaskRunFuture | State):
        if isinstance(expr, TaskRunFuture):
            expr.wait()
            state = expr.state
            run_id, name = expr.task_run_id, getattr(expr, "task_name", "")
        else:
            state, run_id, name = expr, "", ""
        if state.type is StateType.COMPLETED:
            return state.result()
        if allow_failure and state.is_final():
            return state.result(raise_on_failure=False)
        failures.append(UpstreamFailure(run_id or "?", state.name, state.message or "", name))
        return None
    if isinstance(expr, dict) and _holds_upstream(expr):
        return {
            _resolve(key, allow_failure=allow_failure, failures=failures): _resolve(
                value, allow_failure=allow_failure, failures=failures
            )
            for key, value in expr.items()
        }
    if isinstance(expr, list | tuple | set | frozenset) and _holds_upstream(expr):
        items = [_resolve(item, allow_failure=allow_failure, failures=failures) for item in expr]
        if isinstance(expr, tuple) and hasattr(expr, "_fields"):
            return type(expr)(*items)
        try:
            return type(expr)(items)
        except TypeError:
            return items
    return expr

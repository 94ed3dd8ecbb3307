"""One span per flow run and per task run, made by the engine's hooks.

A run's span is the current span while its code runs (so task runs, subflows and the user's
own spans nest under it, and the transport sends its context with every run it creates). Its
parent is the caller's current span; a run created elsewhere and executed here (by a worker or
a served flow) continues the trace stored with the run instead, so an API caller's trace goes
on into the flow even though the flow starts later in another process. Retries are span events,
the final state is the span's attributes, and a run that did not complete has an error status.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from headwater._telemetry.tracing import tracer

if TYPE_CHECKING:
    from headwater._states import State

__all__ = ["RunSpan", "start_flow_run_span", "start_run_span", "start_task_run_span"]

#: Final states that are not a failure of the run (CANCELLED is the operator's choice).
_OK_STATES = frozenset({"COMPLETED", "CANCELLED"})


class _OpenTelemetry:
    """OpenTelemetry's functions, imported on the first span (not per call: each import
    statement in a function costs a lookup on every run)."""

    context: Any = None
    extract: Any = None
    set_span_in_context: Any = None
    Status: Any = None
    StatusCode: Any = None

    def load(self) -> None:
        from opentelemetry import context, trace
        from opentelemetry.propagate import extract

        self.extract = extract
        self.set_span_in_context = trace.set_span_in_context
        self.Status, self.StatusCode = trace.Status, trace.StatusCode
        self.context = context


_otel = _OpenTelemetry()


class RunSpan:
    """A run's span, made current for the blocks in which the run is current."""

    __slots__ = ("_context", "_span", "_tokens")

    def __init__(self, span: Any, context: Any) -> None:
        self._span = span
        self._context = context
        self._tokens: list[Any] = []

    def attach(self) -> None:
        """Make the span current (the engine calls this where the run becomes current)."""
        self._tokens.append(_otel.context.attach(self._context))

    def detach(self) -> None:
        """Restore the context that was current before the matching `attach`."""
        if self._tokens:
            _otel.context.detach(self._tokens.pop())

    def leave(
        self, final: State[Any] | None, aborted: str | None, error: BaseException | None
    ) -> None:
        """`detach`, and `end` once the run is over (a generator's run is entered per step)."""
        self.detach()
        if final is not None or aborted is not None or error is not None:
            self.end(final, aborted, error)

    def retrying(self, attempt: int, reason: str | None) -> None:
        """Record that the service scheduled another attempt after ``attempt`` failed."""
        self._span.add_event(
            "retry",
            {"headwater.run.attempt": attempt, "headwater.retry.reason": reason or ""},
        )

    def end(
        self, final: State[Any] | None, aborted: str | None, error: BaseException | None
    ) -> None:
        """End the span with the run's final state (idempotent)."""
        span = self._span
        if span is None:
            return
        self._span = None
        Status, StatusCode = _otel.Status, _otel.StatusCode
        if final is not None:
            state_type = final.type.name
            # One call, not one per attribute: each takes the span's lock and checks its limits.
            span.set_attributes(
                {"headwater.state.type": state_type, "headwater.state.name": final.name}
            )
            if state_type not in _OK_STATES:
                span.set_status(Status(StatusCode.ERROR, (final.message or final.name)[:500]))
        elif aborted is not None:
            span.set_attribute("headwater.aborted", aborted[:500])
        elif error is not None:
            span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"[:500]))
        if error is not None:
            span.record_exception(error)
        span.end()


def start_run_span(
    name: str, attributes: Mapping[str, str], stored: Mapping[str, str] | None
) -> RunSpan | None:
    """Start a run's span, or return None when this process does not trace.

    Args:
        name: The span's name ("flow etl", "task extract").
        attributes: The run's ids and names.
        stored: The trace context stored with a run created elsewhere; None (or empty)
            parents the span to the current context.
    """
    active = tracer()
    if active is None:
        return None
    if _otel.context is None:
        _otel.load()
    parent = _otel.extract(stored) if stored else None
    span = active.start_span(name, context=parent, attributes=attributes)
    return RunSpan(span, _otel.set_span_in_context(span))


def start_flow_run_span(
    flow_name: str, run_id: str, run_name: str, stored: Mapping[str, str] | None
) -> RunSpan | None:
    """`start_run_span` for a flow run; free (no dictionary built) when not tracing."""
    if tracer() is None:
        return None
    attributes = {
        "headwater.flow.name": flow_name,
        "headwater.flow_run.id": run_id,
        "headwater.flow_run.name": run_name,
    }
    return start_run_span(f"flow {flow_name}", attributes, stored)


def start_task_run_span(
    task_name: str, task_key: str, run_id: str, run_name: str, flow_run_id: str | None
) -> RunSpan | None:
    """`start_run_span` for a task run, under the current span (its flow run's)."""
    if tracer() is None:
        return None
    attributes = {
        "headwater.task.name": task_name,
        "headwater.task.key": task_key,
        "headwater.task_run.id": run_id,
        "headwater.task_run.name": run_name,
    }
    if flow_run_id:
        attributes["headwater.flow_run.id"] = flow_run_id
    return start_run_span(f"task {task_name}", attributes, None)

"""SQL statements as child spans of the RPC that ran them, when the server traces.

Two paths reach the database, and both are covered:

- statements through SQLAlchemy get their spans from ``opentelemetry-instrumentation-sqlalchemy``
  (its ``EngineTracer`` attached to this server's engine only: the package's instrumentor is a
  process-wide singleton that would also wrap every engine anyone creates later);
- the raw fast path (`headwater_server.storage.fastpath`: run creation and state proposals on
  the bare DBAPI cursor, which SQLAlchemy's events never see) gets one span per statement from
  `TracedRawTransaction`, with the same ``db.*`` attributes.

Only statements run on behalf of a traced call become spans (the tracer here makes none without
a current span): the background loops' queries every second would otherwise each be a trace of
their own. Database calls run on other threads (`headwater_server.storage.hops`), so the
database carries the caller's context over (`Database.trace`). The engine stream is one RPC for
the life of an SDK process and is not made current, so its operations' statements stay out.
Nothing here is imported, nor any hook set, unless a tracer provider is configured.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from headwater_server.storage.fastpath import Prepared, RawTransaction

if TYPE_CHECKING:
    from sqlalchemy.engine.interfaces import DBAPICursor

    from headwater_server.storage.database import Database

__all__ = ["TracedRawTransaction", "trace_database"]

_TRACER_NAME = "headwater_server.sql"


def trace_database(db: Database, tracer_provider: Any) -> None:
    """Make ``db``'s statements child spans of the traced calls that run them."""
    from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
    from opentelemetry.metrics import NoOpMeterProvider

    tracer = ChildSpansOnly(tracer_provider.get_tracer(_TRACER_NAME))
    unused = NoOpMeterProvider().get_meter(_TRACER_NAME).create_up_down_counter("connections")
    # Attaches its listeners to this engine; the object itself needs no keeping.
    EngineTracer(tracer, db.engine, unused)  # type: ignore[no-untyped-call]
    system = db.dialect

    def traced(cursor: DBAPICursor) -> RawTransaction:
        return TracedRawTransaction(cursor, tracer, system)

    db.trace(traced)


class ChildSpansOnly:
    """A tracer that starts spans only under a current (valid) span; otherwise a no-op span."""

    def __init__(self, tracer: Any) -> None:
        self._tracer = tracer

    def start_span(self, name: str, context: Any = None, *args: Any, **kwargs: Any) -> Any:
        from opentelemetry import trace

        if not trace.get_current_span(context).get_span_context().is_valid:
            return trace.INVALID_SPAN
        return self._tracer.start_span(name, context, *args, **kwargs)


class TracedRawTransaction(RawTransaction):
    """`RawTransaction` with one CLIENT span per statement (fast-path statements only)."""

    __slots__ = ("_system", "_tracer")

    def __init__(self, cursor: DBAPICursor, tracer: ChildSpansOnly, system: str) -> None:
        super().__init__(cursor)
        self._tracer = tracer
        self._system = system

    def _span(self, statement: Prepared) -> Any:
        from opentelemetry import trace

        sql = statement.sql
        return self._tracer.start_span(
            sql.split(None, 1)[0].upper() if sql else "SQL",
            kind=trace.SpanKind.CLIENT,
            attributes={"db.system": self._system, "db.statement": sql},
        )

    def execute(self, statement: Prepared, values: Mapping[str, Any]) -> int:
        span = self._span(statement)
        try:
            return super().execute(statement, values)
        finally:
            span.end()

    def execute_many(self, statement: Prepared, rows: Sequence[Mapping[str, Any]]) -> None:
        span = self._span(statement)
        try:
            super().execute_many(statement, rows)
        finally:
            span.end()

    def first(self, statement: Prepared, values: Mapping[str, Any]) -> dict[str, Any] | None:
        span = self._span(statement)
        try:
            return super().first(statement, values)
        finally:
            span.end()

    def all(self, statement: Prepared, values: Mapping[str, Any]) -> list[dict[str, Any]]:
        span = self._span(statement)
        try:
            return super().all(statement, values)
        finally:
            span.end()

"""SQL statements as child spans of the RPC that ran them, when the server traces.

Two paths reach the database, and both are covered:

- statements through SQLAlchemy get their spans from ``opentelemetry-instrumentation-sqlalchemy``
  (its ``EngineTracer`` attached to this server's engine only: the package's instrumentor is a
  process-wide singleton that would also wrap every engine anyone creates later);
- the raw fast path (`headwater_server.storage.fastpath`: run creation and state proposals on
  the bare DBAPI cursor, which SQLAlchemy's events never see) gets one span per statement from
  `TracedRawTransaction`, with the same ``db.*`` attributes.

Only statements run on behalf of a traced call (a recording span is current) become spans, and
that check comes first (once per raw transaction, once per SQLAlchemy statement): the
background loops' queries would otherwise each be a trace of their own, and pay for spans
nobody sees, and a call whose span is sampled out (or not made: no span processor) builds no
statement attributes either. Database calls run on other threads
(`headwater_server.storage.hops`), so the database carries the caller's context over
(`Database.trace`). The engine stream's own span is never current; each of its operations'
spans is (`headwater_server.stream_spans`), so their statements hang under them. This module is
imported, and its hooks set, only when a tracer provider is configured.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer

from headwater_server.storage.fastpath import Prepared, RawTransaction

if TYPE_CHECKING:
    from sqlalchemy.engine.interfaces import DBAPICursor

    from headwater_server.storage.database import Database

__all__ = ["TracedRawTransaction", "trace_database"]

_TRACER_NAME = "headwater_server.sql"


def trace_database(db: Database, tracer_provider: Any) -> None:
    """Make ``db``'s statements child spans of the traced calls that run them."""
    tracer = tracer_provider.get_tracer(_TRACER_NAME)
    _CallStatements(tracer, db.engine, _NO_COUNTER)  # type: ignore[no-untyped-call]
    system = db.dialect

    def transaction(cursor: DBAPICursor) -> RawTransaction:
        # Decided once per transaction: outside a traced call, the plain (untraced) runner.
        if not trace.get_current_span().is_recording():
            return RawTransaction(cursor)
        return TracedRawTransaction(cursor, tracer, system)

    db.trace(transaction)


class _NoCounter:
    """Stands in for the connection-usage counter the package keeps (not a metric of ours)."""

    def add(self, amount: int, attributes: Any = None) -> None:
        """Count nothing."""


_NO_COUNTER = _NoCounter()


class _CallStatements(EngineTracer):
    """The package's statement spans, skipped at once outside a traced call.

    Its listener works out the span's name and attributes (URL, database name, operation)
    before it starts a span, which costs ~0.25 ms per statement even when no span results;
    the background loops' statements must not pay that. Its pool listeners only feed a
    connection-usage metric, which is not one of the service's: they do nothing here.
    """

    def _before_cur_exec(
        self, conn: Any, cursor: Any, statement: Any, params: Any, context: Any, executemany: Any
    ) -> Any:
        if not trace.get_current_span().is_recording():
            return statement, params
        return super()._before_cur_exec(  # type: ignore[no-untyped-call]
            conn, cursor, statement, params, context, executemany
        )

    def _pool_connect(self, *args: Any) -> None:
        pass

    def _pool_close(self, *args: Any) -> None:
        pass

    def _pool_checkin(self, *args: Any) -> None:
        pass

    def _pool_checkout(self, *args: Any) -> None:
        pass


class TracedRawTransaction(RawTransaction):
    """`RawTransaction` with one CLIENT span per statement (fast-path statements only)."""

    __slots__ = ("_system", "_tracer")

    def __init__(self, cursor: DBAPICursor, tracer: Any, system: str) -> None:
        super().__init__(cursor)
        self._tracer = tracer
        self._system = system

    def _span(self, statement: Prepared) -> Any:
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

"""Raw-DBAPI execution of pre-compiled Core statements, for the orchestration hot path.

Every state proposal runs five statements in one transaction. Through SQLAlchemy's Connection
that costs about 0.75 ms on SQLite, while the same statements on the sqlite3 cursor cost about
0.07 ms: the difference is per-statement execution-context and event machinery, plus ~0.1 ms to
check out a connection and begin. So the hot path keeps SQLAlchemy for what it is good at here
(the statements are Core constructs, compiled once per dialect at start-up, so the SQL and
parameter order always match the schema) and runs them on the pooled DBAPI connection directly.

Transactions: SQLite gets an explicit ``BEGIN IMMEDIATE`` (the write lock before the first
read, as everywhere else); psycopg opens its transaction implicitly and the run row is locked by
the statement's ``FOR UPDATE``.

The SQLite writer holds one connection and one cursor for good (`FastPath.seat`): checking a
connection out of the pool and giving it back (with the pool's reset) cost about 80 us per
transaction, more than a small transaction's statements. The writer is its thread's, or, while
that thread idles, a caller's that runs a call in its place (`WorkerHop.submit_here`): the
connection and the open group belong to the writer's seat, not to a thread.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from sqlalchemy import Boolean, Engine, Float, LargeBinary
from sqlalchemy.sql import ClauseElement

if TYPE_CHECKING:
    from sqlalchemy.engine.interfaces import DBAPICursor


#: Stores the last event number a group gave out in its flow run's row (qmark: sqlite3).
_SET_LAST_SEQUENCE = "UPDATE flow_runs SET last_sequence = ? WHERE id = ?"
#: The same for psycopg (format style).
_SET_LAST_SEQUENCE_PG = "UPDATE flow_runs SET last_sequence = %s WHERE id = %s"

#: Column types whose bind processors change nothing sqlite3 stores (see `Prepared`).
_SQLITE_NATIVE = (Boolean, Float, LargeBinary)


class Prepared:
    """One Core statement compiled for one dialect, with its parameter order and processors."""

    __slots__ = ("_names", "_pick", "_processors", "keys", "sql")

    def __init__(
        self,
        statement: ClauseElement,
        engine: Engine,
        column_keys: Sequence[str] | None = None,
    ) -> None:
        compiled: Any = statement.compile(
            dialect=engine.dialect, column_keys=list(column_keys) if column_keys else None
        )
        self.sql: str = compiled.string
        # qmark dialects (sqlite3) bind by position; pyformat ones (psycopg) by name.
        names = tuple(compiled.positiontup) if compiled.positiontup else None
        self._names: tuple[str, ...] | None = names
        # itemgetter builds the positional tuple in C; one name gives a scalar, so wrap it.
        if names is None:
            self._pick: Callable[[Mapping[str, Any]], Any] | None = None
        elif len(names) == 1:
            only = names[0]
            self._pick = lambda values: (values[only],)
        else:
            self._pick = itemgetter(*names)
        processors = dict(compiled._bind_processors)
        if engine.dialect.name == "sqlite":
            # sqlite3 binds bool, bytes and int as these processors would make them (1/0, a
            # BLOB, a REAL once stored in a FLOAT column): skipping them spares every hot
            # statement a copy of its values.
            processors = {
                name: process
                for name, process in processors.items()
                if not isinstance(compiled.binds[name].type, _SQLITE_NATIVE)
            }
        self._processors: dict[str, Any] = processors
        selected = getattr(statement, "selected_columns", None)
        if selected is not None:
            self.keys: tuple[str, ...] = tuple(c.key for c in selected)
        else:  # a write, with the columns of its RETURNING clause if it has one
            returned = getattr(statement, "returning_column_descriptions", None) or ()
            self.keys = tuple(column["name"] for column in returned)

    def parameters(self, values: Mapping[str, Any]) -> Any:
        """The DBAPI parameters for ``values`` (a tuple or a dict, as the driver wants)."""
        if self._processors:
            values = dict(values)
            for name, process in self._processors.items():
                if name in values:
                    values[name] = process(values[name])
        if self._pick is None:
            return values
        return self._pick(values)


class RawTransaction:
    """Statements on one DBAPI cursor inside one transaction.

    ``events`` collects the (flow run id, sequence) of event-log entries the transaction wrote,
    for the repository to announce once they are committed.
    """

    __slots__ = ("_cursor", "events", "sequences")

    def __init__(self, cursor: DBAPICursor) -> None:
        self._cursor = cursor
        self.events: list[tuple[str, int]] = []
        #: Inside a group, for a write that numbers task run states: the group's flow run
        #: event numbers (see `FastPath.write`); None elsewhere.
        self.sequences: dict[str, list[int]] | None = None

    def execute(self, statement: Prepared, values: Mapping[str, Any]) -> int:
        """Run a write statement; returns the affected row count."""
        self._cursor.execute(statement.sql, statement.parameters(values))
        return self._cursor.rowcount

    def execute_many(self, statement: Prepared, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run one write statement for each of ``rows`` in a single driver call."""
        self._cursor.executemany(statement.sql, [statement.parameters(row) for row in rows])

    def first(self, statement: Prepared, values: Mapping[str, Any]) -> dict[str, Any] | None:
        """Run a SELECT and return its first row as a dict keyed by column, or None."""
        self._cursor.execute(statement.sql, statement.parameters(values))
        row = self._cursor.fetchone()
        if row is None:
            return None
        return dict(zip(statement.keys, row, strict=True))

    def all(self, statement: Prepared, values: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Run a SELECT and return every row as a dict keyed by column."""
        self._cursor.execute(statement.sql, statement.parameters(values))
        return [dict(zip(statement.keys, row, strict=True)) for row in self._cursor.fetchall()]


class GroupBroken(BaseException):
    """A write failed inside an optimistic group, which has no savepoint to undo it alone.

    A BaseException, so that no handler of the write's own errors (a conflict answered from the
    existing row, say) goes on in a transaction that still holds the failed write's first
    statements: it reaches the group's runner, which rolls the whole group back and runs it
    again with a savepoint per write (see `FastPath.group`). The write's error is its cause.
    """


class _Group:
    """One transaction shared by the write transactions of a group (see `FastPath.group`)."""

    __slots__ = (
        "begin",
        "connection",
        "cursor",
        "events",
        "open",
        "optimistic",
        "sequences",
        "set_sequence",
    )

    def __init__(self, connection: Any, cursor: Any, sqlite: bool, optimistic: bool) -> None:
        self.optimistic = optimistic
        self.connection = connection
        self.cursor = cursor
        self.open = False  # BEGIN IMMEDIATE is sent by the first write, not by a group of reads
        #: What opens the transaction: SQLite's write lock first; psycopg begins by itself.
        self.begin: str | None = "BEGIN IMMEDIATE" if sqlite else None
        self.set_sequence = _SET_LAST_SEQUENCE if sqlite else _SET_LAST_SEQUENCE_PG
        self.events: list[tuple[str, int]] = []
        #: Flow run id -> [last event number given out, last one written to its row].
        self.sequences: dict[str, list[int]] = {}


class _Held:
    """The connection (and its cursor) one thread keeps for all its transactions."""

    __slots__ = ("connection", "cursor")

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.cursor = connection.cursor()


class _Seat:
    """What a writer works with: its held connection and its open group, if any.

    A thread has a seat of its own; a seat made by `FastPath.seat` is a writer's (the SQLite
    writer thread's), which another thread takes while it runs a call in the writer's place
    (`headwater_server.storage.hops.WorkerHop.submit_here`). The hop lets one thread at a
    time do either, so one seat is never used by two threads at once.
    """

    __slots__ = ("group", "groups", "held", "hold")

    def __init__(self, hold: bool = False, groups: bool = False) -> None:
        #: Keep one connection for every transaction (see `FastPath.hold`).
        self.hold = hold
        #: Share transactions in `group` blocks on PostgreSQL too (see `FastPath.allow_groups`).
        self.groups = groups
        self.held: _Held | None = None
        self.group: _Group | None = None


class _Seats(threading.local):
    """The seat each thread works with: its own, until it takes a writer's."""

    def __init__(self) -> None:
        self.seat = _Seat()


class FastPath:
    """Opens raw write transactions on the engine's pooled connections."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._sqlite = engine.dialect.name == "sqlite"
        dbapi = engine.dialect.loaded_dbapi
        self.OperationalError: type[Exception] = dbapi.OperationalError
        self.IntegrityError: type[Exception] = dbapi.IntegrityError
        # Each thread's seat: the group open on it, its held connection (see `_Seat`).
        self._local = _Seats()
        #: Makes each transaction's statement runner; `headwater_server.sql_spans` swaps in
        #: one that traces each statement when the server traces.
        self.transaction: Callable[[DBAPICursor], RawTransaction] = RawTransaction
        self._held: list[_Held] = []
        self._held_lock = threading.Lock()

    def hold(self) -> None:
        """Keep one pooled connection for every transaction this thread runs (SQLite only).

        As the SQLite writer does (`seat`), for a thread that writes on its own (benchmarks,
        tests): the connection stays checked out until :meth:`close`, or until a failed
        rollback shows it is broken (then the next transaction takes a fresh one). Elsewhere
        (PostgreSQL's pool of threads) each transaction checks a connection out and gives it
        back; PostgreSQL's lean thread holds one too (`seat` with ``groups``).
        """
        if self._sqlite:
            self._local.seat.hold = True

    def allow_groups(self) -> None:
        """Let this thread's `group` blocks share one transaction on PostgreSQL too.

        As the one thread that runs the engine stream's lean writes there does through `seat`
        with ``groups`` (`Database.submit`), for a thread that writes on its own (tests); it
        also keeps one connection, as the SQLite writer does. The pool's threads keep a
        transaction and a checkout per call.
        """
        seat = self._local.seat
        seat.groups = True
        seat.hold = True

    def seat(self, groups: bool = False) -> Callable[[], AbstractContextManager[None]]:
        """A writer's seat: inside each block the function returned opens, the thread works
        as that writer (its held connection, its groups), as after `hold` (SQLite) or
        `allow_groups` (``groups``, for PostgreSQL's lean thread).

        For a hop whose calls run on its own thread or, in its place, on a caller's
        (`headwater_server.storage.hops.WorkerHop`): the writer keeps one connection
        whichever thread runs its calls. The blocks must not overlap (the hop runs one
        call at a time); a thread's own seat comes back when the block ends.
        """
        seat = _Seat(hold=self._sqlite or groups, groups=groups)
        return functools.partial(self._seated, seat)

    @contextmanager
    def _seated(self, seat: _Seat) -> Iterator[None]:
        local = self._local
        own, local.seat = local.seat, seat
        try:
            yield
        finally:
            local.seat = own

    def close(self) -> None:
        """Give back the connections threads hold (the database is closing). Idempotent."""
        with self._held_lock:
            held, self._held = self._held, []
        for item in held:
            try:
                item.cursor.close()
            finally:
                item.connection.close()

    def _take_held(self, seat: _Seat) -> _Held | None:
        """The seat's held connection (checked out on first use), or None if it holds none."""
        if not seat.hold:
            return None
        held = seat.held
        if held is None:
            held = _Held(self._engine.raw_connection())
            with self._held_lock:
                self._held.append(held)
            seat.held = held
        return held

    def _drop_held(self, seat: _Seat, held: _Held) -> None:
        """Invalidate a held connection that failed (the next transaction takes a new one)."""
        seat.held = None
        with self._held_lock:
            if held in self._held:
                self._held.remove(held)
        # It is being thrown away; a broken cursor changes nothing.
        with contextlib.suppress(Exception):
            held.cursor.close()
        held.connection.invalidate()

    @contextmanager
    def group(self, optimistic: bool = False) -> Iterator[list[tuple[str, int]]]:
        """Share one transaction among the write transactions of this block (group commit).

        Each `write` inside becomes a savepoint of one SQLite transaction, committed once when
        the block ends: many small operations that arrived together cost one commit instead
        of one each, and one failing operation still rolls back only its own writes.

        ``optimistic`` drops the savepoints (two of the five statements of a task run's start
        or end): a write that fails then raises `GroupBroken`, and so does a `flush_group`
        (what it would commit could not be run again), and the caller runs the whole group
        again without ``optimistic``. For groups of calls that rarely fail and do nothing
        but their writes (the engine stream's lean operations). Yields
        the list the committed writes' events are collected in (complete once the block has
        ended), for the caller to announce after the commit. On PostgreSQL, whose operations
        run on several threads at once, a no-op except in a seat with ``groups`` (`seat`,
        `allow_groups`).

        Raises:
            Exception: the commit failed; nothing of the group is stored.
        """
        seat = self._local.seat
        if seat.group is not None or not (self._sqlite or seat.groups):
            yield []
            return
        held = self._take_held(seat)
        if held is not None:
            group = _Group(held.connection, held.cursor, self._sqlite, optimistic)
        else:
            connection = self._engine.raw_connection()
            group = _Group(connection, connection.cursor(), self._sqlite, optimistic)
        seat.group = group
        try:
            yield group.events
            self._commit_group(group)
        except BaseException as exc:
            lost = isinstance(exc, self.OperationalError) and not self._sqlite
            if group.open or lost:
                try:
                    group.connection.rollback()
                except Exception:
                    lost = True
                if lost:  # a PostgreSQL operational error usually means a lost connection
                    if held is not None:
                        self._drop_held(seat, held)
                        held = None
                    else:
                        group.connection.invalidate()
            raise
        finally:
            seat.group = None
            if held is None:
                group.cursor.close()
                group.connection.close()

    def flush_group(self) -> list[tuple[str, int]]:
        """Commit the open group's transaction now (before a statement outside it).

        A read or write through SQLAlchemy uses another connection (or, in memory, the same
        one), which must see, and not wait behind, what the group has written so far. Returns
        the events of what was committed; the group goes on with a new transaction.
        """
        group = self._local.seat.group
        if group is None or not group.open:
            return []
        if group.optimistic:
            raise GroupBroken("a statement outside the group needs its writes committed")
        self._commit_group(group)
        events, group.events[:] = list(group.events), []
        return events

    @classmethod
    def _commit_group(cls, group: _Group) -> None:
        if group.open:
            cls._write_sequences(group)
            group.connection.commit()
            group.open = False
            group.sequences.clear()  # the next transaction reads the rows again

    @staticmethod
    def _write_sequences(group: _Group) -> None:
        """Store the event numbers the group's writes took from their flow runs' rows."""
        for flow_run_id, numbers in group.sequences.items():
            given, written = numbers
            if given != written:
                group.cursor.execute(group.set_sequence, (given, flow_run_id))
                numbers[1] = given

    @contextmanager
    def write(self, sequences: bool = False) -> Iterator[RawTransaction]:
        """One write transaction: committed when the block ends, rolled back on any error.

        Inside a `group` it is a savepoint of the group's transaction instead, and its events
        go to the group (announced after the group's commit). With ``sequences`` (a write
        that numbers task run states in their flow run's event log, and touches the flow
        run's row for nothing else) the numbers come from the group (``tx.sequences``): the
        flow run's row is read and updated once per group instead of once per write; any
        other write first stores the numbers given so far, so it sees the row as it is.
        """
        seat = self._local.seat
        group = seat.group
        if group is not None:
            with self._savepoint(group, sequences) as tx:
                yield tx
            return
        held = self._take_held(seat)
        if held is not None:
            with self._held_write(seat, held) as tx:
                yield tx
            return
        connection = self._engine.raw_connection()
        cursor = None
        try:
            cursor = connection.cursor()
            if self._sqlite:
                cursor.execute("BEGIN IMMEDIATE")
            yield self.transaction(cursor)
            connection.commit()
        except BaseException as exc:
            if not self._rolled_back(connection, exc):
                connection.invalidate()  # don't give a lost connection back to the pool
            raise
        finally:
            if cursor is not None:
                cursor.close()
            connection.close()

    @contextmanager
    def _held_write(self, seat: _Seat, held: _Held) -> Iterator[RawTransaction]:
        """`write` on the thread's held connection: the same transaction, no pool round trip."""
        cursor = held.cursor
        connection = held.connection
        if self._sqlite:
            cursor.execute("BEGIN IMMEDIATE")
        try:
            yield self.transaction(cursor)
            connection.commit()
        except BaseException as exc:
            if not self._rolled_back(connection, exc):
                self._drop_held(seat, held)
            raise

    def _rolled_back(self, connection: Any, exc: BaseException) -> bool:
        """Roll back after ``exc``; whether the connection can be used again.

        A failed rollback, or a PostgreSQL operational error (usually a lost connection),
        means it cannot.
        """
        try:
            connection.rollback()
        except Exception:
            return False
        return not (isinstance(exc, self.OperationalError) and not self._sqlite)

    @contextmanager
    def _savepoint(self, group: _Group, sequences: bool) -> Iterator[RawTransaction]:
        cursor = group.cursor
        if not group.open:
            if group.begin is not None:
                cursor.execute(group.begin)
            group.open = True
        # An optimistic group has no savepoint: a failure breaks the whole group (see `group`).
        optimistic = group.optimistic
        before: dict[str, list[int]] | None = None
        if not sequences:
            # It may change the flow run's row (a flow run's own state takes the next number):
            # the next numbering write reads the row again.
            self._write_sequences(group)
            group.sequences.clear()
        elif not optimistic:
            before = {key: list(numbers) for key, numbers in group.sequences.items()}
        if not optimistic:
            cursor.execute("SAVEPOINT headwater_op")
        tx = self.transaction(cursor)
        if sequences:
            tx.sequences = group.sequences
        try:
            yield tx
        except BaseException as exc:
            if optimistic:
                if isinstance(exc, Exception):
                    raise GroupBroken(f"a write of an optimistic group failed: {exc!r}") from exc
                raise
            cursor.execute("ROLLBACK TO headwater_op")
            cursor.execute("RELEASE headwater_op")
            if before is not None:  # the numbers this write took are given back with it
                group.sequences.clear()
                group.sequences.update(before)
            raise
        if not optimistic:
            cursor.execute("RELEASE headwater_op")
        group.events.extend(tx.events)
        tx.events = []  # announced after the group's commit, not by this write's caller

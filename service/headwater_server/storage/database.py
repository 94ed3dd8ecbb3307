"""The service's handle on its database: engine, repository and the thread that talks to it.

The gRPC server runs on an asyncio loop, and database calls block. ``Database.run`` hands each
repository call to database threads (see hops.py): one dedicated thread fed by a queue for
SQLite (a single writer anyway; one thread keeps one warm connection and no lock contention
inside the process, and this lighter hop saves ~45 µs per call on the hot path) and a small
pool for PostgreSQL, where several transactions can make progress at once.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, ParamSpec, TypeVar

if TYPE_CHECKING:
    from sqlalchemy.engine.interfaces import DBAPICursor

from sqlalchemy import Engine

from headwater_server.storage.checkpoint import WalCheckpointer
from headwater_server.storage.engine import create_database_engine, dialect_of, normalize_url
from headwater_server.storage.fastpath import RawTransaction
from headwater_server.storage.hops import Hop, HopClosedError, PoolHop, RunHere, WorkerHop
from headwater_server.storage.migrate import ensure_schema
from headwater_server.storage.repository import Repository

P = ParamSpec("P")
T = TypeVar("T")

POSTGRES_THREADS = 8


class Database:
    """An open database: use :meth:`open`, then ``await db.run(db.repository.method, request)``.

    Attributes:
        url: the database URL (psycopg 3 driver filled in for bare ``postgresql://``).
        dialect: ``"sqlite"`` or ``"postgresql"``.
        engine: the SQLAlchemy engine.
        repository: the one :class:`Repository` over ``engine``.
        migrated: True when opening applied migrations, False when the schema was current.
    """

    def __init__(self, url: str, engine: Engine, migrated: bool) -> None:
        self.url = url
        self.dialect = dialect_of(url)
        self.engine = engine
        self.repository = Repository(engine)
        self.migrated = migrated
        self._hop: Hop
        #: Where `submit` queues the engine stream's lean calls: the SQLite writer itself, or
        #: on PostgreSQL a thread of their own beside the pool (see `lean_after_run`).
        self._lean_hop: WorkerHop
        if self.dialect == "sqlite":
            # Calls that queued up while the writer was busy share one transaction.
            # It also keeps one connection for all its writes (`FastPath.seat`), on whichever
            # thread runs them (`submit_here` may run one on its caller's).
            self._lean_hop = WorkerHop(
                name="headwater-db-writer",
                group=self.repository.group,
                seat=self.repository.fast_path.seat(),
            )
            self._hop = self._lean_hop
        else:
            self._hop = PoolHop(
                ThreadPoolExecutor(max_workers=POSTGRES_THREADS, thread_name_prefix="headwater-db")
            )
            # The hot task run writes, one thread in arrival order, those that queued up
            # together in one transaction (`FastPath.seat` with ``groups``): each on its own, they
            # queued for the flow run's row (every task run state takes a number of its
            # event log) across the pool's threads, a round trip to the server at a time.
            self._lean_hop = WorkerHop(
                name="headwater-db-lean",
                group=self.repository.group,
                seat=self.repository.fast_path.seat(groups=True),
            )
        self._checkpointer: WalCheckpointer | None = None
        database_path = engine.url.database
        if self.dialect == "sqlite" and database_path and database_path != ":memory:":
            self._checkpointer = WalCheckpointer(database_path)
            self._checkpointer.start()
        self._closed = False
        self._carry_context = False

    def trace(self, transaction: Callable[[DBAPICursor], RawTransaction]) -> None:
        """Trace statements (`headwater_server.sql_spans`): calls carry their caller's context
        to the database threads, and fast-path transactions run through ``transaction``."""
        self._carry_context = True
        self.repository.fast_path.transaction = transaction

    @classmethod
    def open(cls, url: str) -> Database:
        """Connect to ``url`` and bring its schema to the current revision.

        Blocking (it may run migrations on a fresh database); from async code call it through
        ``asyncio.to_thread``. Safe when several processes open one new database at once.
        """
        url = normalize_url(url)
        engine = create_database_engine(url, pool_size=POSTGRES_THREADS)
        try:
            migrated = ensure_schema(engine)
        except BaseException:
            engine.dispose()
            raise
        return cls(url, engine, migrated)

    async def run(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run the blocking ``fn(*args, **kwargs)`` on a database thread and await it.

        Exceptions (``ServiceError`` included) propagate unchanged to the awaiting caller.
        """
        if not self._closed:
            call = functools.partial(fn, *args, **kwargs)
            if self._carry_context:  # tracing: the statements' spans join the caller's span
                call = functools.partial(contextvars.copy_context().run, call)
            try:
                future = self._hop.submit(asyncio.get_running_loop(), call)
            except HopClosedError:
                pass  # closed by another thread just now
            else:
                return await future
        from headwater_server.errors import unavailable

        raise unavailable("The database is closed: the server is shutting down; retry.")

    @property
    def ordered(self) -> bool:
        """Whether `submit` takes calls: they run one at a time in the order submitted, so
        that submitting is ordering among them. False while statements are traced (the lean
        calls would carry no caller span)."""
        return not self._carry_context

    @property
    def lean_after_run(self) -> bool:
        """Whether a call given to `submit` also runs after every call given to `run` before
        it (SQLite: one thread runs both). False on PostgreSQL, where `run` uses a pool: the
        caller then orders a `run` call behind the lean calls it must follow itself."""
        return self._lean_hop is self._hop

    def submit(
        self,
        fn: Callable[[], T],
        callback: Callable[[T | None, BaseException | None], object],
    ) -> None:
        """Queue the blocking ``fn()`` behind every call submitted before it (see `ordered`);
        ``callback(result, error)`` runs on the running loop once it is stored.

        Raises:
            ServiceError: UNAVAILABLE, the database is closed.
        """
        hop = self._lean_hop
        if not self._closed:
            try:
                hop.submit_callback(asyncio.get_running_loop(), fn, callback)
            except HopClosedError:
                pass  # closed by another thread just now
            else:
                return
        from headwater_server.errors import unavailable

        raise unavailable("The database is closed: the server is shutting down; retry.")

    def submit_here(
        self,
        fn: Callable[[], T],
        callback: Callable[[T | None, BaseException | None], object],
        inline: bool = False,
    ) -> bool | RunHere:
        """Queue ``fn()`` like `submit`, with ``callback(result, error)`` run on the database
        thread once it is stored (see `WorkerHop.submit_here`). Only where one thread runs
        every call in the order queued (SQLite: `lean_after_run`); False, and nothing queued,
        elsewhere or once the database is closing.

        With ``inline``, when the database thread is idle, returns instead the function that
        runs ``fn()`` (and then ``callback``) on the caller's thread in its place, which the
        caller must call at once (see `WorkerHop.submit_here`); True when queued.
        """
        if self._closed or not self.lean_after_run:
            return False
        try:
            run_here = self._lean_hop.submit_here(fn, callback, inline)
        except HopClosedError:
            return False  # closed by another thread just now
        return True if run_here is None else run_here

    def close(self) -> None:
        """Finish queued calls, stop the database threads, close all connections. Idempotent.

        Every call submitted before ``close`` runs (no accepted write is lost); later calls
        fail with UNAVAILABLE.
        """
        if self._closed:
            return
        self._closed = True
        self._lean_hop.close()  # no-op the second time on SQLite, where it is the same hop
        self._hop.close()
        self.repository.fast_path.close()
        self.engine.dispose()
        if self._checkpointer is not None:
            self._checkpointer.stop()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

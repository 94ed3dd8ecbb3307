"""The repository's foundation: transactions, idempotency and creating runs in their first state."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import Any, NamedTuple, TypeVar

from google.protobuf.message import Message
from headwater.v1 import states_pb2
from sqlalchemy import Connection, Engine, select
from sqlalchemy.exc import OperationalError

from headwater_server import errors
from headwater_server.errors import ServiceError, invalid_argument, not_found
from headwater_server.orchestration import rules
from headwater_server.storage import convert
from headwater_server.storage.engine import WRITE_OPTION
from headwater_server.storage.fastpath import FastPath, Prepared, RawTransaction
from headwater_server.storage.schema import request_log
from headwater_server.storage.statements import (
    FLOW_RUN,
    INSERT_REQUEST,
    SELECT_REQUEST,
    TASK_RUN,
    RawCacheStatements,
    RawCreateStatements,
    RawSlotStatements,
    RawStatements,
    RunKind,
    StoredRequest,
)
from headwater_server.storage.values import new_id, optional_id, payloads, proposal_message

M = TypeVar("M", bound=Message)

#: The methods whose idempotency id is a ``transition_id`` (every other one's: ``request_id``).
_PROPOSALS = frozenset((FLOW_RUN.method, TASK_RUN.method))


class InitialState(NamedTuple):
    """The state a new run is created in (scheduled_time in microseconds)."""

    type: int
    name: str
    message: str
    scheduled_time: int | None


#: What `RepositoryBase._initial_state` decides for a run created with no state given (the
#: rules accept a new run's PENDING whatever its kind, with the default name).
PENDING = InitialState(
    states_pb2.STATE_TYPE_PENDING, rules.default_state_name(states_pb2.STATE_TYPE_PENDING), "", None
)


class RepositoryBase:
    """Transactions and the request_log idempotency store, shared by every operation."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._writer = engine.execution_options(**{WRITE_OPTION: True})
        self._dialect = engine.dialect.name
        # A read transaction sees one snapshot. PostgreSQL's default (READ COMMITTED) gives each
        # statement its own, so a page of a run's events could pair the run row read before a
        # commit (not finished) with events read after it (the final state): a watch then
        # waited for more events forever. SQLite's transactions are snapshots already.
        self._reader = (
            engine.execution_options(isolation_level="REPEATABLE READ")
            if self._dialect == "postgresql"
            else engine
        )
        self._fast = FastPath(engine)
        self._raw = {kind: RawStatements(kind, engine) for kind in (FLOW_RUN, TASK_RUN)}
        self._raw_create = RawCreateStatements(engine)
        self._raw_cache = RawCacheStatements(engine)
        self._raw_slots = RawSlotStatements(engine)
        #: Called with the (flow run id, sequence) of the flow run events a commit added
        #: through task runs, once per commit; the application layer points it at the hub.
        self.announce: Callable[[list[tuple[str, int]]], object] = lambda events: None
        self._raw_select_request = Prepared(SELECT_REQUEST, engine)
        self._raw_insert_request = Prepared(INSERT_REQUEST, engine, [c.key for c in request_log.c])

    # ------------------------------------------------------------------ transactions

    @property
    def fast_path(self) -> FastPath:
        """The raw-DBAPI path of the hot operations (tracing swaps its transaction type)."""
        return self._fast

    def _write(self) -> AbstractContextManager[Connection]:
        """One write transaction (SQLite: BEGIN IMMEDIATE), committed on success."""
        return self._transaction(self._writer)

    def _read(self) -> AbstractContextManager[Connection]:
        """One read transaction: a consistent snapshot for multi-statement reads."""
        return self._transaction(self._reader)

    @contextmanager
    def group(self, optimistic: bool = False) -> Iterator[None]:
        """Run the calls made in this block in one database transaction (see `FastPath.group`).

        The database thread uses it for operations that arrived together; their events are
        announced once the transaction is committed. ``optimistic``: without a savepoint per
        write (`FastPath.group`; a failure raises `GroupBroken`).
        """
        with self._fast.group(optimistic) as events:
            yield
        if events:
            self.announce(events)

    @contextmanager
    def _transaction(self, engine: Engine) -> Iterator[Connection]:
        if committed := self._fast.flush_group():
            self.announce(committed)
        try:
            with engine.connect() as conn, conn.begin():
                yield conn
        except OperationalError as exc:
            raise self._operational(exc) from exc

    @contextmanager
    def _write_raw(self, sequences: bool = False) -> Iterator[RawTransaction]:
        """A hot-path write transaction on the raw DBAPI connection (see ``fastpath``).

        ``sequences``: the transaction numbers task run states through `_flow_sequences`
        and does nothing else with flow run rows (see `FastPath.write`).
        """
        try:
            with self._fast.write(sequences) as tx:
                yield tx
        except self._fast.OperationalError as exc:
            raise self._operational(exc) from exc
        if tx.events:  # committed: watchers may read them now
            self.announce(tx.events)

    def _task_state_event(
        self, conn: RawTransaction, flow_run_id: str | None, row: dict[str, Any]
    ) -> None:
        """Number a task run state in its flow run's event log (``row`` is the history row)."""
        sequence = None
        if flow_run_id is not None:
            sequence = self._flow_sequences(conn, flow_run_id, 1)
            conn.events.append((flow_run_id, sequence))
        row["flow_run_id"] = flow_run_id
        row["flow_sequence"] = sequence

    def _flow_sequences(self, conn: RawTransaction, flow_run_id: str, count: int) -> int:
        """Take the next ``count`` numbers of a flow run's event log; returns the last one.

        The flow run's row is updated at once (its row lock, on PostgreSQL, orders the flow
        run's own states after these), except inside a group, where the numbers after the
        first write's come from memory and the row is written once before the commit.

        Raises:
            ServiceError: NOT_FOUND, there is no such flow run.
        """
        pending = conn.sequences
        if pending is not None and (numbers := pending.get(flow_run_id)) is not None:
            numbers[0] += count
            return numbers[0]
        found = conn.first(
            self._raw[TASK_RUN].advance_flow_sequence, {"b_id": flow_run_id, "b_count": count}
        )
        if found is None:
            raise not_found("flow_run", flow_run_id)
        last: int = found["last_sequence"]
        if pending is not None:
            pending[flow_run_id] = [last, last]
        return last

    @staticmethod
    def _operational(exc: Exception) -> ServiceError:
        if "locked" in str(exc) or "busy" in str(exc):
            return errors.unavailable(
                "The database is busy (another process held its write lock for more than "
                "5 s); retry the request."
            )
        return errors.unavailable(
            f"The database could not be reached or failed ({getattr(exc, 'orig', exc)}); retry "
            f"the request, "
            f"and check the database server if this persists."
        )

    # ------------------------------------------------------------------ idempotency

    @staticmethod
    def _request_key(request_id: str) -> str | None:
        """The request_log key of a ``request_id`` or a proposal's ``transition_id``: the UUID.

        Both kinds of id share one key space (a UUID names one request, whichever field
        carries it). The bare UUID keeps the SDK's time-ordered ids in time order in the key
        index, so each commit appends to its last page instead of to one page per prefix
        (revision 0023).
        """
        return optional_id(request_id)

    def _replay(
        self,
        conn: Connection | RawTransaction,
        key: str,
        method: str,
        subject: str,
        response_type: type[M],
    ) -> M | None:
        """The stored answer for ``key``, or None when this request is new."""
        if isinstance(conn, RawTransaction):
            found = conn.first(self._raw_select_request, {"key": key})
            row = None if found is None else StoredRequest(**found)
        else:
            row = conn.execute(SELECT_REQUEST, {"key": key}).first()  # type: ignore[assignment]
        return self._check_replay(row, key, method, subject, response_type)

    @staticmethod
    def _locked_replay(current: Mapping[str, Any]) -> StoredRequest | None:
        """The request_log row that the hot path's lock query joined in, if there was one."""
        if current["replay_method"] is None:
            return None
        return StoredRequest(
            current["replay_method"], current["replay_subject"], current["replay_response"]
        )

    @staticmethod
    def _check_replay(
        row: Any, key: str, method: str, subject: str, response_type: type[M]
    ) -> M | None:
        """The stored answer in ``row`` (None for a new request); a reused key is refused."""
        if row is None:
            return None
        if row.method != method or (subject and row.subject != subject):
            field_name = "transition_id" if method in _PROPOSALS else "request_id"
            raise invalid_argument(
                field_name,
                f"'{key}' was already used for another request ({row.method} on "
                f"'{row.subject}'); use a new UUID for every distinct request.",
            )
        stored: M = response_type.FromString(row.response)
        return stored

    def _remember(
        self,
        conn: Connection | RawTransaction,
        key: str,
        method: str,
        subject: str,
        response: Message,
    ) -> None:
        values = self._request_row(key, method, subject, response)
        if isinstance(conn, RawTransaction):
            conn.execute(self._raw_insert_request, values)
        else:
            conn.execute(INSERT_REQUEST, values)

    @staticmethod
    def _request_row(key: str, method: str, subject: str, response: Message) -> dict[str, Any]:
        """The request_log row that answers a replay of ``key`` with ``response``."""
        return {
            "key": key,
            "method": method,
            "subject": subject,
            "response": response.SerializeToString(),
            "create_time": convert.now_us(),
        }

    def _replay_after_conflict(
        self, key: str | None, method: str, response_type: type[M]
    ) -> M | None:
        """After a unique violation: did a concurrent twin of this request already commit?"""
        if key is None:
            return None
        with self._read() as conn:
            return self._replay(conn, key, method, "", response_type)

    @staticmethod
    def _require(conn: Connection, table: Any, row_id: str, resource: str) -> None:
        if conn.execute(select(table.c.id).where(table.c.id == row_id)).first() is None:
            raise not_found(resource, row_id)

    @staticmethod
    def _initial_state(noun: str, state: states_pb2.State) -> InitialState:
        """The state a new run starts in: PENDING unless SCHEDULED is asked for."""
        if not state.ByteSize():  # the common case (nothing asked): plain PENDING
            return PENDING
        state_type = state.type or states_pb2.STATE_TYPE_PENDING
        scheduled = (
            convert.timestamp_to_us(state.scheduled_time)
            if state.HasField("scheduled_time")
            else None
        )
        decision = rules.decide(
            rules.RunSnapshot(),
            rules.Proposal(type=state_type, name=state.name, message=proposal_message(state)),
            now=convert.EPOCH,
            noun=noun,
        )
        if decision.store is None:
            raise invalid_argument("state.type", decision.reason)
        if state_type == states_pb2.STATE_TYPE_SCHEDULED and scheduled is None:
            scheduled = convert.now_us()
        return InitialState(
            decision.store.type, decision.store.name, decision.store.message, scheduled
        )

    @staticmethod
    def _initial_run_values(initial: InitialState, now: int) -> dict[str, Any]:
        return {
            "state_id": new_id(),
            "state_type": initial.type,
            "state_name": initial.name,
            "state_message": initial.message,
            "state_time": now,
            "scheduled_time": initial.scheduled_time,
            "run_count": 0,
            "start_time": None,
            "end_time": None,
            "total_run_time_us": 0,
            "running_since": None,
            "last_sequence": 1,
            "create_time": now,
            "update_time": now,
        }

    def _insert_initial_state(
        self,
        conn: RawTransaction,
        kind: RunKind,
        values: Mapping[str, Any],
        initial: InitialState,
        proposed: states_pb2.State,
    ) -> tuple[bytes | None, bytes | None]:
        """Write the run's first history row; returns its (result, failure) payload bytes."""
        row = self._initial_state_row(kind, values, initial, proposed)
        if kind is TASK_RUN:
            self._task_state_event(conn, values["flow_run_id"], row)
        conn.execute(self._raw[kind].insert_state, row)
        return row["result"], row["failure"]

    @staticmethod
    def _initial_state_row(
        kind: RunKind,
        values: Mapping[str, Any],
        initial: InitialState,
        proposed: states_pb2.State,
    ) -> dict[str, Any]:
        """The run's first history row (not written; a task run's has no event number yet)."""
        result, failure = payloads(proposed)
        return {
            "id": values["state_id"],
            kind.owner_column: values["id"],
            "sequence": 1,
            "type": initial.type,
            "name": initial.name,
            "message": initial.message,
            "create_time": values["state_time"],
            "scheduled_time": initial.scheduled_time,
            "result": result,
            "failure": failure,
            "forced": False,
        }

"""Statements built once at import, and what differs between flow runs and task runs."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import (
    Engine,
    Insert,
    Select,
    Update,
    and_,
    bindparam,
    delete,
    func,
    insert,
    literal_column,
    or_,
    select,
    update,
)

from headwater_server.orchestration import rules
from headwater_server.storage import convert
from headwater_server.storage.fastpath import Prepared
from headwater_server.storage.schema import (
    concurrency_limits,
    concurrency_slots,
    deployments,
    flow_run_states,
    flow_runs,
    flows,
    request_log,
    task_run_states,
    task_runs,
)


class StoredRequest(NamedTuple):
    """A request_log row: what was asked, on what, and the answer given."""

    method: str
    subject: str
    response: bytes


@dataclass(frozen=True)
class RunKind:
    """What differs between flow runs and task runs for the shared state machinery."""

    noun: str  # "flow run", for reasons and messages
    resource: str  # "flow_run", for errors.not_found
    id_field: str  # "flow_run_id", the request field naming the run
    method: str  # "SetFlowRunState", stored in request_log
    # The run row (locked on PostgreSQL) + the stored answer for :key.
    lock_run: Select[*tuple[Any, ...]]
    update_run: Update
    insert_state: Insert
    state_payload: Select[*tuple[Any, ...]]  # result and failure of one history row
    # The run row joined with its current state's payloads (filter with ``table.c``).
    with_payload: Select[*tuple[Any, ...]]
    table: Any  # the runs table, for the columns a read filters and orders by
    build: Callable[..., Any]  # row mapping (+ payloads) -> FlowRun / TaskRun
    owner_column: str  # "flow_run_id": the history table's column naming the run
    response_field: str  # "flow_run": the run's field in the Set*StateResponse


def _run_update(table: Any) -> Update:
    return (
        update(table)
        .where(table.c.id == bindparam("b_id"))
        .values(
            state_id=bindparam("b_state_id"),
            state_type=bindparam("b_state_type"),
            state_name=bindparam("b_state_name"),
            state_message=bindparam("b_state_message"),
            state_time=bindparam("b_state_time"),
            scheduled_time=bindparam("b_scheduled_time"),
            run_count=bindparam("b_run_count"),
            start_time=bindparam("b_start_time"),
            end_time=bindparam("b_end_time"),
            total_run_time_us=bindparam("b_total_run_time_us"),
            running_since=bindparam("b_running_since"),
            last_sequence=bindparam("b_last_sequence"),
            update_time=bindparam("b_update_time"),
        )
    )


def _with_payload(table: Any, states: Any) -> Select[*tuple[Any, ...]]:
    """The run row plus its current state's result and failure (labelled ``payload_*``)."""
    return select(
        table,
        states.c.result.label("payload_result"),
        states.c.failure.label("payload_failure"),
    ).select_from(table.outerjoin(states, states.c.id == table.c.state_id))


def _lock_with_replay(table: Any) -> Select[*tuple[Any, ...]]:
    """The run row, locked (PostgreSQL), joined with the request_log row of ``:key`` if any."""
    return (
        select(
            table,
            request_log.c.method.label("replay_method"),
            request_log.c.subject.label("replay_subject"),
            request_log.c.response.label("replay_response"),
        )
        .select_from(table.outerjoin(request_log, request_log.c.key == bindparam("key")))
        .where(table.c.id == bindparam("id"))
        .with_for_update(of=table)
    )


def _run_kind(
    resource: str, method: str, table: Any, states: Any, build: Callable[..., Any]
) -> RunKind:
    """A kind's statements and names, derived from its resource name and its two tables."""
    return RunKind(
        noun=resource.replace("_", " "),
        resource=resource,
        id_field=f"{resource}_id",
        method=method,
        lock_run=_lock_with_replay(table),
        update_run=_run_update(table),
        insert_state=insert(states),
        state_payload=select(states.c.result, states.c.failure).where(
            states.c.id == bindparam("id")
        ),
        with_payload=_with_payload(table, states),
        table=table,
        build=build,
        owner_column=f"{resource}_id",
        response_field=resource,
    )


FLOW_RUN = _run_kind(
    "flow_run", "SetFlowRunState", flow_runs, flow_run_states, convert.flow_run_message
)
TASK_RUN = _run_kind(
    "task_run", "SetTaskRunState", task_runs, task_run_states, convert.task_run_message
)


class RawStatements:
    """A run kind's hot-path statements, compiled for one engine's dialect."""

    def __init__(self, kind: RunKind, engine: Engine) -> None:
        state_columns = [c.key for c in kind.insert_state.table.c]
        self.lock_run = Prepared(kind.lock_run, engine)
        self.update_run = Prepared(kind.update_run, engine)
        self.insert_state = Prepared(kind.insert_state, engine, state_columns)
        self.state_payload = Prepared(kind.state_payload, engine)
        # A task run state is also an event of its flow run: this takes the flow run's next
        # b_count sequence numbers (and its row lock, so the flow's own states number after).
        self.advance_flow_sequence = Prepared(
            update(flow_runs)
            .where(flow_runs.c.id == bindparam("b_id"))
            .values(last_sequence=flow_runs.c.last_sequence + bindparam("b_count"))
            .returning(flow_runs.c.last_sequence),
            engine,
        )
        self.advance_flow_sequence.keys = ("last_sequence",)


SELECT_REQUEST = select(request_log.c.method, request_log.c.subject, request_log.c.response).where(
    request_log.c.key == bindparam("key")
)
INSERT_REQUEST = insert(request_log)
INSERT_FLOW_RUN = insert(flow_runs)
INSERT_TASK_RUN = insert(task_runs)
SELECT_FLOW_BY_NAME = select(flows.c.id, flows.c.name).where(flows.c.name == bindparam("name"))
SELECT_FLOW_BY_ID = select(flows.c.id, flows.c.name).where(flows.c.id == bindparam("id"))


def insert_flow_if_new(dialect: str) -> Insert:
    """INSERT a flow that does nothing when a concurrent twin registered the name first."""
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    else:
        from sqlalchemy.dialects.postgresql import insert as dialect_insert  # type: ignore[assignment]
    return dialect_insert(flows).on_conflict_do_nothing(index_elements=["name"])


def _insert_keys(table: Any) -> list[str]:
    """The columns a task run create writes: all but ``engine_id``, which the owning stream
    sets when the run starts (only task runs outside any flow have an owner)."""
    return [c.key for c in table.c if c.key != "engine_id"]


class RawCreateStatements:
    """The statements that create runs, compiled for one engine's dialect (see ``fastpath``).

    Creating the flow run is one of the three calls every flow run makes (with its two
    proposals), and task runs are created as often as tasks are called, so both creates take
    the raw path the proposals take.
    """

    def __init__(self, engine: Engine) -> None:
        self.select_flow_by_id = Prepared(SELECT_FLOW_BY_ID, engine)
        self.select_flow_by_name = Prepared(SELECT_FLOW_BY_NAME, engine)
        self.insert_flow_if_new = Prepared(
            insert_flow_if_new(engine.dialect.name), engine, [c.key for c in flows.c]
        )
        self.flow_run_exists = Prepared(
            select(flow_runs.c.id).where(flow_runs.c.id == bindparam("id")), engine
        )
        self.task_run_exists = Prepared(
            select(task_runs.c.id).where(task_runs.c.id == bindparam("id")), engine
        )
        # A flow run's owner is written with it; a task run's apart (`EnginesMixin`).
        self.insert_flow_run = Prepared(INSERT_FLOW_RUN, engine, [c.key for c in flow_runs.c])
        self.insert_task_run = Prepared(INSERT_TASK_RUN, engine, _insert_keys(task_runs))


class RawCacheStatements:
    """The task cache's statements: find a valid entry for a key, and set a run's key.

    The cache is the task_runs table itself: a COMPLETED task run with a cache key is an entry
    until its ``cache_expiration_time``, and its current state's result is what a hit reuses.
    So an entry exists exactly when its run is stored, for every process that asks. The lookup
    has no LIMIT (SQLite compiles one with an extra parameter): the caller fetches the first,
    newest row only, and a key has few runs.
    """

    def __init__(self, engine: Engine) -> None:
        lookup = (
            select(task_runs.c.id, task_run_states.c.result)
            .select_from(
                task_runs.outerjoin(task_run_states, task_run_states.c.id == task_runs.c.state_id)
            )
            .where(
                task_runs.c.cache_key == bindparam("cache_key"),
                # Names the partial index's condition, so the planner may use it.
                task_runs.c.cache_key != literal_column("''"),
                task_runs.c.state_type == bindparam("completed"),
                task_runs.c.id != bindparam("id"),
                or_(
                    task_runs.c.cache_expiration_time.is_(None),
                    task_runs.c.cache_expiration_time > bindparam("now"),
                ),
            )
            .order_by(task_runs.c.end_time.desc())
        )
        self.lookup = Prepared(lookup, engine)
        self.set_key = Prepared(
            update(task_runs)
            .where(task_runs.c.id == bindparam("b_id"))
            .values(
                cache_key=bindparam("b_cache_key"),
                cache_expiration_time=bindparam("b_cache_expiration_time"),
            ),
            engine,
        )


class RawSlotStatements:
    """The statements of concurrency slots (see ``_concurrency``), compiled for one dialect."""

    def __init__(self, engine: Engine) -> None:
        self.lock_tag = Prepared(
            select(
                concurrency_limits.c.id,
                concurrency_limits.c.concurrency_limit,
            )
            .where(concurrency_limits.c.tag == bindparam("tag"))
            .with_for_update(),
            engine,
        )
        # A deployment's takers serialise on a transaction-scoped advisory lock named after it,
        # not on its row: pausing a deployment locks its row and then deletes its SCHEDULED
        # runs, while a proposal holds its run's row first, so locking the row here could
        # deadlock with a pause. SQLite's one writer serialises takers by itself.
        self.lock_deployment_slots: Prepared | None = (
            Prepared(
                select(func.pg_advisory_xact_lock(func.hashtext(bindparam("id"))).label("locked")),
                engine,
            )
            if engine.dialect.name == "postgresql"
            else None
        )
        self.read_deployment = Prepared(
            select(
                deployments.c.id,
                deployments.c.flow_name,
                deployments.c.name,
                deployments.c.concurrency_limit,
                deployments.c.collision_strategy,
            ).where(deployments.c.id == bindparam("id")),
            engine,
        )
        # Only slots of runs that still hold them count: belt and braces, so that even a slot
        # row left behind by a bug or a manual edit can never keep a limit full.
        self.count_task_slots, self.count_flow_slots = (
            Prepared(
                select(func.count().label("taken"))
                .select_from(concurrency_slots.join(runs, runs.c.id == concurrency_slots.c.run_id))
                .where(
                    concurrency_slots.c.limit_id == bindparam("limit_id"),
                    # Inlined: prepared statements carry only the named parameters.
                    runs.c.state_type.in_(
                        [literal_column(str(t)) for t in sorted(rules.SLOT_HOLDING_TYPES)]
                    ),
                ),
                engine,
            )
            for runs in (task_runs, flow_runs)
        )
        self.insert_slot = Prepared(
            insert(concurrency_slots), engine, [c.key for c in concurrency_slots.c]
        )
        self.delete_slots = Prepared(
            delete(concurrency_slots).where(concurrency_slots.c.run_id == bindparam("run_id")),
            engine,
        )


def tags_condition(column: Any, tag: str, dialect: str) -> Any:
    """True when the JSON array in ``column`` contains ``tag`` as a whole element.

    Tags are stored as compact JSON, so an element is exactly ``"<escaped tag>"`` preceded by
    ``[`` or ``,`` and followed by ``,`` or ``]``; a quote inside a string is always escaped, so
    these four substrings cannot match inside another tag. ``instr``/``strpos`` keep the match
    case-sensitive on both databases (LIKE is not, on SQLite).
    """
    encoded = json.dumps(tag, ensure_ascii=False)
    find = func.instr if dialect == "sqlite" else func.strpos
    return or_(
        *(find(column, f"{before}{encoded}{after}") > 0 for before in "[," for after in ",]")
    )


def keyset_before(time_col: Any, id_col: Any, key: tuple[int, str]) -> Any:
    """Rows after ``key`` in descending (time, id) order."""
    t, i = key
    return or_(time_col < t, and_(time_col == t, id_col < i))


def keyset_after(time_col: Any, id_col: Any, key: tuple[int, str]) -> Any:
    """Rows after ``key`` in ascending (time, id) order."""
    t, i = key
    return or_(time_col > t, and_(time_col == t, id_col > i))

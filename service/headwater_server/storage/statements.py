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
    func,
    insert,
    or_,
    select,
    update,
)

from headwater_server.storage import convert
from headwater_server.storage.fastpath import Prepared
from headwater_server.storage.schema import (
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


FLOW_RUN = RunKind(
    noun="flow run",
    resource="flow_run",
    id_field="flow_run_id",
    method="SetFlowRunState",
    lock_run=_lock_with_replay(flow_runs),
    update_run=_run_update(flow_runs),
    insert_state=insert(flow_run_states),
    state_payload=select(flow_run_states.c.result, flow_run_states.c.failure).where(
        flow_run_states.c.id == bindparam("id")
    ),
    build=convert.flow_run_message,
    owner_column="flow_run_id",
    response_field="flow_run",
)
TASK_RUN = RunKind(
    noun="task run",
    resource="task_run",
    id_field="task_run_id",
    method="SetTaskRunState",
    lock_run=_lock_with_replay(task_runs),
    update_run=_run_update(task_runs),
    insert_state=insert(task_run_states),
    state_payload=select(task_run_states.c.result, task_run_states.c.failure).where(
        task_run_states.c.id == bindparam("id")
    ),
    build=convert.task_run_message,
    owner_column="task_run_id",
    response_field="task_run",
)


class RawStatements:
    """A run kind's hot-path statements, compiled for one engine's dialect."""

    def __init__(self, kind: RunKind, engine: Engine) -> None:
        state_columns = [c.key for c in kind.insert_state.table.c]
        self.lock_run = Prepared(kind.lock_run, engine)
        self.update_run = Prepared(kind.update_run, engine)
        self.insert_state = Prepared(kind.insert_state, engine, state_columns)
        self.state_payload = Prepared(kind.state_payload, engine)


SELECT_REQUEST = select(request_log.c.method, request_log.c.subject, request_log.c.response).where(
    request_log.c.key == bindparam("key")
)
INSERT_REQUEST = insert(request_log)
INSERT_FLOW_RUN = insert(flow_runs)
INSERT_TASK_RUN = insert(task_runs)
SELECT_FLOW_BY_NAME = select(flows.c.id, flows.c.name).where(flows.c.name == bindparam("name"))
SELECT_FLOW_BY_ID = select(flows.c.id, flows.c.name).where(flows.c.id == bindparam("id"))
FLOW_RUN_WITH_PAYLOAD = select(
    flow_runs,
    flow_run_states.c.result.label("payload_result"),
    flow_run_states.c.failure.label("payload_failure"),
).select_from(flow_runs.outerjoin(flow_run_states, flow_run_states.c.id == flow_runs.c.state_id))
TASK_RUN_WITH_PAYLOAD = select(
    task_runs,
    task_run_states.c.result.label("payload_result"),
    task_run_states.c.failure.label("payload_failure"),
).select_from(task_runs.outerjoin(task_run_states, task_run_states.c.id == task_runs.c.state_id))


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

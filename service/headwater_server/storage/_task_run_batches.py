"""Many task runs stored together: the engine stream's batches of plain starts and ends.

A flow that submits or maps a thousand tasks sends their create-and-starts, then their
COMPLETED ends, in batches. One by one, each end locks and reads its run, writes a history row,
updates the run row and stores its answer for replays (four statements and a savepoint, and as
much Python around them), and each start writes its run, its history and its answer. Together,
the ends' runs are read in one statement and each kind of write goes in one driver call; every
decision is still the rules' own (`rules.plain_completion`, `ProposalsMixin._decide_and_apply`),
every state still takes its number in its flow run's event log in arrival order, and every
answer is the one the call on its own (`set_task_run_state`, `create_task_run`) would give.

Only the plain cases are taken together: a COMPLETED proposal, without conditions, for a
RUNNING run under no concurrency limit, with no cache fields, named once in the batch and not
a replay; a start of a new run in a flow run, without tags, cache fields or a given state.
Anything else in the batch goes the usual way, one call at a time, after the plain ones (each
run appears once, so no run's own order changes); if the shared write fails (a conflict: a
resent create, a twin that committed first), every call of the batch goes the usual way, which
sorts out which one it was and answers each as it should.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from headwater.v1 import task_runs_pb2
from sqlalchemy import Engine, bindparam, select

from headwater_server.orchestration import rules
from headwater_server.storage import convert
from headwater_server.storage._base import PENDING
from headwater_server.storage._concurrency import is_limited
from headwater_server.storage._task_runs import TaskRunsMixin
from headwater_server.storage.fastpath import Prepared
from headwater_server.storage.schema import request_log, task_runs
from headwater_server.storage.statements import TASK_RUN
from headwater_server.storage.values import canonical_id, optional_id, proposal_message

__all__ = ["TaskRunBatchesMixin"]

#: The sizes the shared reads are compiled for; a batch's ids are padded up to the next one, so
#: a handful of statements serve every batch size.
_SIZES = (4, 16, 64, 256)

_Answer = task_runs_pb2.SetTaskRunStateResponse | Exception
_Created = task_runs_pb2.CreateTaskRunResponse | Exception


class TaskRunBatchesMixin(TaskRunsMixin):
    """`set_task_run_states` and `create_task_runs`: the plain ones of a batch together."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        #: The shared reads, compiled on first use, by size (see `_SIZES`).
        self._task_run_reads: dict[int, Prepared] = {}
        self._request_key_reads: dict[int, Prepared] = {}

    def set_task_run_states(
        self, requests: Sequence[task_runs_pb2.SetTaskRunStateRequest]
    ) -> list[_Answer]:
        """Propose each of ``requests``; each answer is what `set_task_run_state` gives for
        it, or the error it raises (one request's error does not fail the others)."""
        together = self._end_together if len(requests) <= _SIZES[-1] else None
        return _each(requests, together, self.set_task_run_state)

    def create_task_runs(
        self, requests: Sequence[task_runs_pb2.CreateTaskRunRequest]
    ) -> list[_Created]:
        """Create (and start) each of ``requests``; each answer is what `create_task_run`
        gives for it, or the error it raises."""
        return _each(requests, self._create_together, self.create_task_run)

    def _create_together(
        self,
        requests: Sequence[task_runs_pb2.CreateTaskRunRequest],
        answers: list[_Created | None],
    ) -> list[int]:
        """Store the plain starts among ``requests`` in one savepoint, filling their
        ``answers``; returns the positions of the others, left for the usual way."""
        alone: list[int] = []
        runs: list[Mapping[str, Any]] = []
        history: list[dict[str, Any]] = []
        stored: list[dict[str, Any]] = []
        with self._write_raw(sequences=True) as conn:
            for index, request in enumerate(requests):
                if not _plain_start(request):
                    alone.append(index)
                    continue
                values, rows, response = self._new_task_run(
                    conn,
                    request,
                    canonical_id(request.flow_run_id),
                    optional_id(request.task_run_id),
                    PENDING,
                )
                self._number_new_task_run(conn, values, rows)
                runs.append(values)
                history.extend(rows)
                key = self._request_key(request.request_id)
                if key is not None:
                    stored.append(self._request_row(key, "CreateTaskRun", values["id"], response))
                answers[index] = response
            if runs:
                conn.execute_many(self._raw_create.insert_task_run, runs)
                conn.execute_many(self._raw[TASK_RUN].insert_state, history)
            if stored:
                conn.execute_many(self._raw_insert_request, stored)
        return alone

    def _end_together(
        self,
        requests: Sequence[task_runs_pb2.SetTaskRunStateRequest],
        answers: list[_Answer | None],
    ) -> list[int]:
        """Store the plain ends among ``requests`` in one savepoint, filling their ``answers``;
        returns the positions of the others, left for the usual way."""
        ids = [canonical_id(request.task_run_id) for request in requests]
        keys = [self._request_key(request.transition_id) for request in requests]
        named = [key for key in keys if key is not None]
        if len(set(ids)) != len(ids) or len(set(named)) != len(named):
            return list(range(len(requests)))  # a run twice: one at a time, in order
        raw = self._raw[TASK_RUN]
        alone: list[int] = []
        with self._write_raw(sequences=True) as conn:
            read, size = self._runs_read(len(ids))
            values = {f"i{n}": ids[n] if n < len(ids) else ids[0] for n in range(size)}
            found = {row["id"]: row for row in conn.all(read, values)}
            replays: set[str] = set()
            if named:
                read, size = self._keys_read(len(named))
                values = {f"k{n}": named[n] if n < len(named) else named[0] for n in range(size)}
                replays = {row["key"] for row in conn.all(read, values)}
            history: list[dict[str, Any]] = []
            updates: list[dict[str, Any]] = []
            stored: list[dict[str, Any]] = []
            for index, request in enumerate(requests):
                current = found.get(ids[index])
                key = keys[index]
                if not _plain(request, current) or (key is not None and key in replays):
                    alone.append(index)
                    continue
                assert current is not None  # _plain checked it
                state = request.state
                proposal = rules.Proposal(
                    type=state.type, name=state.name, message=proposal_message(state)
                )
                # A plain end of a RUNNING run: the rules' shortcut decides it
                # (`rules.plain_completion`), and its writes join the others'.
                result, run, _ = self._decide_and_apply(
                    conn,
                    TASK_RUN,
                    current,
                    state,
                    proposal,
                    convert.now_us(),
                    collect=(history, updates),
                )
                response = task_runs_pb2.SetTaskRunStateResponse(result=result, task_run=run)
                if key is not None:
                    stored.append(self._request_row(key, TASK_RUN.method, ids[index], response))
                answers[index] = response
            if history:
                conn.execute_many(raw.insert_state, history)
                conn.execute_many(raw.update_run, updates)
            if stored:
                conn.execute_many(self._raw_insert_request, stored)
        return alone

    def _runs_read(self, count: int) -> tuple[Prepared, int]:
        """The read of up to ``count`` task runs by id (locked on PostgreSQL), and its size."""
        size = next(size for size in _SIZES if size >= count)
        reads = self._task_run_reads
        read = reads.get(size)
        if read is None:
            statement = select(task_runs).where(
                task_runs.c.id.in_([bindparam(f"i{n}") for n in range(size)])
            )
            if self._dialect != "sqlite":
                statement = statement.with_for_update(of=task_runs)
            read = reads[size] = Prepared(statement, self._engine)
        return read, size

    def _keys_read(self, count: int) -> tuple[Prepared, int]:
        """The read of which of up to ``count`` request_log keys exist, and its size."""
        size = next(size for size in _SIZES if size >= count)
        reads = self._request_key_reads
        read = reads.get(size)
        if read is None:
            statement = select(request_log.c.key).where(
                request_log.c.key.in_([bindparam(f"k{n}") for n in range(size)])
            )
            read = reads[size] = Prepared(statement, self._engine)
        return read, size


def _plain(request: task_runs_pb2.SetTaskRunStateRequest, current: dict[str, Any] | None) -> bool:
    """Whether ``request`` is a plain end of the run ``current`` (see the module docstring)."""
    return (
        current is not None
        and current["state_type"] == rules.RUNNING
        and request.state.type == rules.COMPLETED
        and not request.force
        and not optional_id(request.expected_state_id)
        and not request.cache_key
        and not request.refresh_cache
        and not request.HasField("cache_expiration_time")
        and not request.state.HasField("scheduled_time")
        and not is_limited(TASK_RUN, current)
    )


def _each(
    requests: Sequence[Any],
    together: Callable[[Sequence[Any], list[Any]], list[int]] | None,
    alone: Callable[[Any], Any],
) -> list[Any]:
    """Each request's answer (or error): the plain ones by ``together`` (which fills their
    answers and returns the positions of the rest), the rest, or all of them if ``together``
    fails or there is only one, one at a time by ``alone``."""
    answers: list[Any] = [None] * len(requests)
    rest = list(range(len(requests)))
    if together is not None and len(requests) > 1:
        try:
            rest = together(requests, answers)
        except Exception:
            # A conflict (a resent create, a twin that committed first) or the like: the
            # usual way sorts out which request it was and answers each as it should.
            answers = [None] * len(requests)
            rest = list(range(len(requests)))
    for index in rest:
        try:
            answers[index] = alone(requests[index])
        except Exception as exc:
            answers[index] = exc
    return answers


def _plain_start(request: task_runs_pb2.CreateTaskRunRequest) -> bool:
    """Whether ``request`` is a plain start (see the module docstring)."""
    return (
        request.start
        and bool(request.flow_run_id)
        and not request.tags
        and not request.cache_key
        and not request.refresh_cache
        and not request.HasField("cache_expiration_time")
        and not request.state.ByteSize()
    )

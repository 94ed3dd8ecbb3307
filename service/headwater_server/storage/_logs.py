"""Log lines, and housekeeping of the request log."""

from __future__ import annotations

from typing import Any

from headwater.v1 import logs_pb2
from sqlalchemy import Connection, delete, insert, select, text, update

from headwater_server.errors import not_found
from headwater_server.storage import convert, pagination
from headwater_server.storage._base import RepositoryBase
from headwater_server.storage.schema import flow_runs, logs, request_log, task_runs
from headwater_server.storage.statements import keyset_after
from headwater_server.storage.values import canonical_id, free_text, new_id, optional_id


class LogsMixin(RepositoryBase):
    """Log lines, and pruning of the idempotency store."""

    # ------------------------------------------------------------------ housekeeping

    def prune_request_log(self, older_than_seconds: float) -> int:
        """Forget stored answers older than ``older_than_seconds``; returns how many.

        Retries come within seconds or minutes of the original request, so a background loop
        can call this every few minutes with, say, 24 hours, to keep the table small.
        """
        cutoff = convert.now_us() - round(older_than_seconds * 1_000_000)
        with self._write() as conn:
            if conn.dialect.name == "sqlite":
                first_kept = _first_rowid_from(conn, cutoff)
                return conn.execute(_DELETE_BEFORE_ROWID, {"rowid": first_kept}).rowcount
            return conn.execute(
                delete(request_log).where(request_log.c.create_time < cutoff)
            ).rowcount

    # ------------------------------------------------------------------ logs

    def create_logs(self, req: logs_pb2.CreateLogsRequest) -> logs_pb2.CreateLogsResponse:
        """Store a batch of log lines, all or none."""
        key = self._request_key(req.request_id)
        now = convert.now_us()
        rows = []
        for log in req.logs:
            rows.append(
                {
                    "id": new_id(),
                    "flow_run_id": optional_id(log.flow_run_id),
                    "task_run_id": optional_id(log.task_run_id),
                    "logger_name": free_text(log.logger_name),
                    "level": log.level,
                    "message": free_text(log.message),
                    "log_time": (
                        convert.timestamp_to_us(log.log_time) if log.HasField("log_time") else now
                    ),
                }
            )
        response = logs_pb2.CreateLogsResponse(created_count=len(rows))
        if not rows and key is None:
            return response
        events: list[tuple[str, int]] = []
        with self._write() as conn:
            if key and (
                replay := self._replay(conn, key, "CreateLogs", "", logs_pb2.CreateLogsResponse)
            ):
                return replay
            if rows:
                self._check_log_owners(conn, rows)
                events = self._number_log_events(conn, rows)
                conn.execute(insert(logs), rows)
            if key:
                self._remember(conn, key, "CreateLogs", "", response)
        if events:  # committed: watchers may read them now
            self.announce(events)
        return response

    @staticmethod
    def _number_log_events(conn: Connection, rows: list[dict[str, Any]]) -> list[tuple[str, int]]:
        """Give each line of a flow run the run's next event numbers, in batch order.

        One UPDATE per flow run in the batch takes as many numbers as it has lines (and the
        run's row lock, so states stored concurrently number after them). Returns each run's
        last number, to announce once committed.
        """
        counts: dict[str, int] = {}
        for row in rows:
            if row["flow_run_id"]:
                counts[row["flow_run_id"]] = counts.get(row["flow_run_id"], 0) + 1
        next_number: dict[str, int] = {}
        for flow_run_id, count in counts.items():
            last = conn.execute(
                update(flow_runs)
                .where(flow_runs.c.id == flow_run_id)
                .values(last_sequence=flow_runs.c.last_sequence + count)
                .returning(flow_runs.c.last_sequence)
            ).scalar_one()
            next_number[flow_run_id] = last - count + 1
        for row in rows:
            flow_run_id = row["flow_run_id"]
            if flow_run_id:
                row["flow_sequence"] = next_number[flow_run_id]
                next_number[flow_run_id] += 1
            else:
                row["flow_sequence"] = None
        return [(flow_run_id, number - 1) for flow_run_id, number in next_number.items()]

    @staticmethod
    def _check_log_owners(conn: Connection, rows: list[dict[str, Any]]) -> None:
        """NOT_FOUND for a line's unknown flow run, or unknown task run when it has no flow run.

        A line of a flow run may name a task run already deleted (a log outlives its task run,
        as in a log file); a line of a task run outside any flow has nothing else to belong to.
        """
        for table, ids, resource in (
            (flow_runs, {r["flow_run_id"] for r in rows if r["flow_run_id"]}, "flow_run"),
            (task_runs, {r["task_run_id"] for r in rows if not r["flow_run_id"]}, "task_run"),
        ):
            if not ids:
                continue
            found = set(conn.execute(select(table.c.id).where(table.c.id.in_(ids))).scalars())
            missing = sorted(ids - found)
            if missing:
                raise not_found(resource, missing[0])

    def list_logs(self, req: logs_pb2.ListLogsRequest) -> logs_pb2.ListLogsResponse:
        """Log lines in time order, narrowed by the filter."""
        size = pagination.page_size(req.page_size)
        after = pagination.decode_token("logs", req.page_token)
        f = req.filter
        conditions: list[Any] = []
        if f.flow_run_id:
            conditions.append(logs.c.flow_run_id == canonical_id(f.flow_run_id))
        if f.task_run_id:
            conditions.append(logs.c.task_run_id == canonical_id(f.task_run_id))
        if f.min_level:
            conditions.append(logs.c.level >= f.min_level)
        if after is not None:
            conditions.append(keyset_after(logs.c.log_time, logs.c.id, after))
        stmt = select(logs).where(*conditions).order_by(logs.c.log_time, logs.c.id).limit(size + 1)
        with self._read() as conn:
            rows = conn.execute(stmt).all()
        return logs_pb2.ListLogsResponse(
            logs=[convert.log_message(r._mapping) for r in rows[:size]],
            next_page_token=pagination.next_page_token("logs", rows, size, time_key="log_time"),
        )


_ROWID_RANGE = text("SELECT min(rowid), max(rowid) FROM request_log")
_FIRST_AT_OR_AFTER = text(
    "SELECT rowid, create_time FROM request_log WHERE rowid >= :rowid ORDER BY rowid LIMIT 1"
)
_DELETE_BEFORE_ROWID = text("DELETE FROM request_log WHERE rowid < :rowid")


def _first_rowid_from(conn: Connection, cutoff: int) -> int:
    """SQLite: the first rowid of the request_log rows stored at or after ``cutoff``.

    Rows are appended in time order (a new rowid is one more than the largest, and pruning
    removes the smallest), so the rows before ``cutoff`` are a prefix of the rowids, found by
    bisection in about 20 reads without an index on create_time (revision 0023). A row stored
    while the clock was set back may outlive its time by as much, or go early: an answer kept
    for a day, give or take that, is still kept for far longer than any retry waits.
    """
    low, high = conn.execute(_ROWID_RANGE).one()
    if low is None:
        return 0
    high += 1  # past the last row: every row is older
    while low < high:
        middle = (low + high) // 2
        rowid, create_time = conn.execute(_FIRST_AT_OR_AFTER, {"rowid": middle}).one()
        if create_time < cutoff:
            low = rowid + 1
        else:
            high = middle
    return int(low)

"""Reading runs: what getting and listing flow runs and task runs share.

Both kinds are read as their row joined with the current state's payloads (``RunKind``'s
``with_payload``) and paged by ``(create_time, id)``; only the filters and the sort direction
differ, and those stay with each resource.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Row

from headwater_server.errors import not_found
from headwater_server.storage import pagination
from headwater_server.storage.statements import RunKind, keyset_after, keyset_before


def run_message(kind: RunKind, row: Row[Any]) -> Any:
    """The FlowRun or TaskRun of one ``kind.with_payload`` row."""
    m = row._mapping
    return kind.build(m, m["payload_result"], m["payload_failure"])


def read_run(conn: Connection, kind: RunKind, run_id: str) -> Any:
    """One run as a message (NOT_FOUND naming the run when it does not exist)."""
    row = conn.execute(kind.with_payload.where(kind.table.c.id == run_id)).first()
    if row is None:
        raise not_found(kind.resource, run_id)
    return run_message(kind, row)


def read_run_page(
    conn: Connection,
    kind: RunKind,
    conditions: Sequence[Any],
    after: tuple[int, str] | None,
    size: int,
    *,
    newest_first: bool,
    collection: str | None = None,
) -> tuple[list[Any], str]:
    """One page of runs matching ``conditions`` after the page token's key, and the next token.

    ``collection`` tags the token (default: the table's name), so a List method with two orders
    can refuse a token made for the other one.
    """
    rows, token = read_run_rows(
        conn, kind, conditions, after, size, newest_first=newest_first, collection=collection
    )
    build = kind.build
    return [build(m, m["payload_result"], m["payload_failure"]) for m in rows], token


def read_run_rows(
    conn: Connection,
    kind: RunKind,
    conditions: Sequence[Any],
    after: tuple[int, str] | None,
    size: int,
    *,
    newest_first: bool,
    collection: str | None = None,
) -> tuple[list[dict[str, Any]], str]:
    """`read_run_page`'s rows, as dicts (``kind.with_payload``'s columns), and the next token.

    For a caller that builds the messages itself, in its response (`fill_task_run`): a page
    holds up to a thousand runs, so copying each built message into the response costs.
    Plain dicts because a builder reads some thirty columns by name, which a dict answers
    several times faster than a Row's mapping.
    """
    table = kind.table
    time_col, id_col = table.c.create_time, table.c.id
    where = list(conditions)
    if newest_first:
        order = (time_col.desc(), id_col.desc())
        if after is not None:
            where.append(keyset_before(time_col, id_col, after))
    else:
        order = (time_col, id_col)
        if after is not None:
            where.append(keyset_after(time_col, id_col, after))
    stmt = kind.with_payload.where(*where).order_by(*order).limit(size + 1)
    result = conn.execute(stmt)
    keys = tuple(result.keys())
    rows = result.all()
    token = pagination.next_page_token(collection or table.name, rows, size)
    return [dict(zip(keys, row, strict=True)) for row in rows[:size]], token

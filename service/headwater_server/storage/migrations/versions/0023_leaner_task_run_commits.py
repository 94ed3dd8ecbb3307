"""Fewer pages per task run commit: no state_type index, bare request_log keys, rowid pruning.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-01 08:00:00.000000

On SQLite a commit costs about 15 us per page it writes to the WAL, and a sequential task's
commit (its end and the next task's create-and-start) wrote about twenty pages, one or more per
B-tree it touched. Three of those B-trees are changed here:

- ``ix_task_runs_state_type`` is dropped: each start and each end moved an entry in it (two
  pages), for a filter that pages through runs in creation order anyway.
- ``request_log`` keys lose their ``req:`` / ``transition:`` prefix: the key is the request's
  UUID. The SDK's ids are time-ordered, so new keys now go to one page at the end of the key
  index instead of one per prefix. Request ids and transition ids share one key space (a UUID
  names one request); a key stored under both prefixes (a client that reused a UUID) keeps its
  ``req:`` answer.
- ``ix_request_log_create_time`` goes on SQLite, which prunes by rowid (rows are appended in
  time order); PostgreSQL keeps it for pruning.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_task_runs_state_type", table_name="task_runs")
    op.execute(
        "DELETE FROM request_log WHERE key LIKE 'transition:%' AND substr(key, 12) IN "
        "(SELECT substr(key, 5) FROM request_log WHERE key LIKE 'req:%')"
    )
    op.execute("UPDATE request_log SET key = substr(key, 12) WHERE key LIKE 'transition:%'")
    op.execute("UPDATE request_log SET key = substr(key, 5) WHERE key LIKE 'req:%'")
    if op.get_bind().dialect.name == "sqlite":
        op.drop_index("ix_request_log_create_time", table_name="request_log")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.create_index("ix_request_log_create_time", "request_log", ["create_time"])
    # Which method a key answered says which prefix it had.
    op.execute(
        "UPDATE request_log SET key = 'transition:' || key "
        "WHERE method IN ('SetFlowRunState', 'SetTaskRunState')"
    )
    op.execute(
        "UPDATE request_log SET key = 'req:' || key "
        "WHERE method NOT IN ('SetFlowRunState', 'SetTaskRunState')"
    )
    op.create_index("ix_task_runs_state_type", "task_runs", ["state_type"], unique=False)

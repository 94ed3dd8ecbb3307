"""Index task runs by cache key and by owning engine only where those are set.

Revision ID: 0022
Revises: 0021
Create Date: 2026-11-30 20:00:00.000000

Nearly every task run has no cache key ('') and no owning engine (NULL: a task run in a flow
run lives and dies with its flow run), yet every create wrote an entry into both indexes and
every end moved one in the cache key's (its end time changes). Both lookups name a value (the
service's cache lookup a non-empty key, a dead engine's clean-up its id), so partial indexes
over the set rows serve them, and the hot path of a task run writes two index entries fewer
(measured on SQLite: about 12 us less database work per task run).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_HAS_CACHE_KEY = "cache_key != ''"
_HAS_ENGINE = "engine_id IS NOT NULL"


def upgrade() -> None:
    op.drop_index("ix_task_runs_cache_key_end_time", table_name="task_runs")
    op.create_index(
        "ix_task_runs_cache_key_end_time",
        "task_runs",
        ["cache_key", "end_time"],
        unique=False,
        sqlite_where=sa.text(_HAS_CACHE_KEY),
        postgresql_where=sa.text(_HAS_CACHE_KEY),
    )
    op.drop_index("ix_task_runs_engine_id", table_name="task_runs")
    op.create_index(
        "ix_task_runs_engine_id",
        "task_runs",
        ["engine_id"],
        unique=False,
        sqlite_where=sa.text(_HAS_ENGINE),
        postgresql_where=sa.text(_HAS_ENGINE),
    )


def downgrade() -> None:
    op.drop_index("ix_task_runs_engine_id", table_name="task_runs")
    op.create_index("ix_task_runs_engine_id", "task_runs", ["engine_id"], unique=False)
    op.drop_index("ix_task_runs_cache_key_end_time", table_name="task_runs")
    op.create_index(
        "ix_task_runs_cache_key_end_time", "task_runs", ["cache_key", "end_time"], unique=False
    )

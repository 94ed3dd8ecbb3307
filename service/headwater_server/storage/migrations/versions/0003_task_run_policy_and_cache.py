"""Task runs: retry delay lists, jitter and timeout in the policy, the cache, runs outside flows.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 06:50:00.000000

The new columns are nullable (NULL means "not set"), so existing rows need no values and the
columns are added in place on both databases. ``task_runs.flow_run_id`` becomes nullable for
tasks called outside any flow (SQLite rebuilds the table for that).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_POLICY_COLUMNS = (
    ("policy_retry_delays", sa.Text()),
    ("policy_retry_jitter_factor", sa.Float()),
    ("policy_timeout_seconds", sa.Float()),
)


def upgrade() -> None:
    # SQLite rebuilds the tables, so their CREATE text reads as create_all writes it (one column
    # a line); PostgreSQL alters them in place.
    sqlite = op.get_bind().dialect.name == "sqlite"
    recreate: Literal["always", "auto"] = "always" if sqlite else "auto"
    for table in ("flow_runs", "task_runs"):
        with op.batch_alter_table(table, schema=None, recreate=recreate) as batch_op:
            for name, column_type in _POLICY_COLUMNS:
                batch_op.add_column(sa.Column(name, column_type, nullable=True))
    with op.batch_alter_table("task_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cache_expiration_time", sa.BigInteger(), nullable=True))
        batch_op.alter_column("flow_run_id", existing_type=sa.String(length=36), nullable=True)
        batch_op.create_index(
            "ix_task_runs_cache_key_end_time", ["cache_key", "end_time"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("task_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_task_runs_cache_key_end_time")
        batch_op.alter_column("flow_run_id", existing_type=sa.String(length=36), nullable=False)
        batch_op.drop_column("cache_expiration_time")
    for table in ("task_runs", "flow_runs"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            for name, _ in reversed(_POLICY_COLUMNS):
                batch_op.drop_column(name)

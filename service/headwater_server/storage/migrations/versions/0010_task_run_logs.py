"""Log lines of task runs outside any flow: logs.flow_run_id nullable, and a task run index.

Revision ID: 0010
Revises: 0004
Create Date: 2026-11-30 08:30:00.000000

A task called outside any flow has no flow run, so its lines are stored with their task run
alone; `headwater task-run logs` reads one task run's lines through the new index.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # SQLite rebuilds the table, so its CREATE text reads as create_all writes it.
    sqlite = op.get_bind().dialect.name == "sqlite"
    recreate: Literal["always", "auto"] = "always" if sqlite else "auto"
    with op.batch_alter_table("logs", schema=None, recreate=recreate) as batch_op:
        batch_op.alter_column("flow_run_id", existing_type=sa.String(length=36), nullable=True)
    with op.batch_alter_table("logs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_logs_task_run_id_log_time", ["task_run_id", "log_time"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("logs", schema=None) as batch_op:
        batch_op.drop_index("ix_logs_task_run_id_log_time")
    # Lines of loose task runs have no flow run to keep them under the old schema.
    op.execute("DELETE FROM logs WHERE flow_run_id IS NULL")
    with op.batch_alter_table("logs", schema=None) as batch_op:
        batch_op.alter_column("flow_run_id", existing_type=sa.String(length=36), nullable=False)

"""Task run states in their flow run's event log: flow_run_id and flow_sequence.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 07:10:00.000000

Both columns are nullable (states stored before this revision, and task runs outside any flow,
have none), so they are added in place.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # SQLite rebuilds the table, so its CREATE text reads as create_all writes it.
    sqlite = op.get_bind().dialect.name == "sqlite"
    recreate: Literal["always", "auto"] = "always" if sqlite else "auto"
    with op.batch_alter_table("task_run_states", schema=None, recreate=recreate) as batch_op:
        batch_op.add_column(sa.Column("flow_run_id", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("flow_sequence", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("task_run_states", schema=None) as batch_op:
        batch_op.create_index(
            "ix_task_run_states_flow_run_id_flow_sequence",
            ["flow_run_id", "flow_sequence"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("task_run_states", schema=None) as batch_op:
        batch_op.drop_index("ix_task_run_states_flow_run_id_flow_sequence")
        batch_op.drop_column("flow_sequence")
        batch_op.drop_column("flow_run_id")

"""Log lines as flow run events: logs.flow_sequence, numbered in the flow run's event log.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 08:25:00.000000

A line stored with a flow run takes the run's next sequence number, so ListFlowRunEvents and
WatchFlowRun stream it between the states it was logged among. Lines stored before this
revision (and lines of task runs outside any flow) have none and are not events.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # SQLite rebuilds the table, so its CREATE text reads as create_all writes it.
    sqlite = op.get_bind().dialect.name == "sqlite"
    recreate: Literal["always", "auto"] = "always" if sqlite else "auto"
    with op.batch_alter_table("logs", schema=None, recreate=recreate) as batch_op:
        batch_op.add_column(sa.Column("flow_sequence", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("logs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_logs_flow_run_id_flow_sequence", ["flow_run_id", "flow_sequence"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("logs", schema=None) as batch_op:
        batch_op.drop_index("ix_logs_flow_run_id_flow_sequence")
        batch_op.drop_column("flow_sequence")

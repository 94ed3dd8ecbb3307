"""Index flow runs by state and scheduled time, for claiming due runs and finding the next.

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-30 13:45:00.000000

A worker's claim (``PollRuns``) looks for SCHEDULED runs due by now, earliest first, and for the
earliest not yet due; the late-run marker for SCHEDULED runs due before a time. With only the
state index each read every SCHEDULED run: with the scheduler keeping an hour of runs ahead for
1,000 every-minute schedules (60,000 runs) a claim took 50-250 ms on SQLite, holding the one
database thread. The composite index serves those as range reads (under 1 ms) and every lookup
by state alone, so it replaces ``ix_flow_runs_state_type``.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("flow_runs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_flow_runs_state_type_scheduled_time",
            ["state_type", "scheduled_time"],
            unique=False,
        )
        batch_op.drop_index("ix_flow_runs_state_type")


def downgrade() -> None:
    with op.batch_alter_table("flow_runs", schema=None) as batch_op:
        batch_op.create_index("ix_flow_runs_state_type", ["state_type"], unique=False)
        batch_op.drop_index("ix_flow_runs_state_type_scheduled_time")

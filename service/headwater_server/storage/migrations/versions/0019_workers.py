"""Workers: runner processes whose claims are leases.

Revision ID: 0019
Revises: 0018
Create Date: 2026-11-30 13:40:00.000000

Adds ``workers``: one row per runner process (a serving process or ``headwater worker start``)
that names itself when it polls, with when it was last heard from. The runs it claims carry its
id in ``flow_runs.engine_id`` until an engine starts them.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "workers",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("last_heartbeat_time", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workers")),
    )
    with op.batch_alter_table("workers", schema=None) as batch_op:
        batch_op.create_index(
            "ix_workers_last_heartbeat_time", ["last_heartbeat_time"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("workers", schema=None) as batch_op:
        batch_op.drop_index("ix_workers_last_heartbeat_time")
    op.drop_table("workers")

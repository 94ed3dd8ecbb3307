"""Tag concurrency limits and the leases (slots) runs hold while they run.

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-30 11:40:00.000000

Adds ``concurrency_limits`` (one row per limited tag) and ``concurrency_slots`` (one row per
slot a RUNNING run holds, of a tag limit or of its deployment's limit).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "concurrency_limits",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tag", sa.String(length=255), nullable=False),
        sa.Column("concurrency_limit", sa.Integer(), nullable=False),
        sa.Column("create_time", sa.BigInteger(), nullable=False),
        sa.Column("update_time", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_concurrency_limits")),
        sa.UniqueConstraint("tag", name=op.f("uq_concurrency_limits_tag")),
    )
    with op.batch_alter_table("concurrency_limits", schema=None) as batch_op:
        batch_op.create_index(
            "ix_concurrency_limits_create_time_id", ["create_time", "id"], unique=False
        )
    op.create_table(
        "concurrency_slots",
        sa.Column("limit_id", sa.String(length=36), nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("create_time", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("limit_id", "run_id", name=op.f("pk_concurrency_slots")),
    )
    with op.batch_alter_table("concurrency_slots", schema=None) as batch_op:
        batch_op.create_index("ix_concurrency_slots_run_id", ["run_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("concurrency_slots", schema=None) as batch_op:
        batch_op.drop_index("ix_concurrency_slots_run_id")
    op.drop_table("concurrency_slots")
    with op.batch_alter_table("concurrency_limits", schema=None) as batch_op:
        batch_op.drop_index("ix_concurrency_limits_create_time_id")
    op.drop_table("concurrency_limits")

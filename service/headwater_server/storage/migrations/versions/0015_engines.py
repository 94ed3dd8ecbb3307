"""Engines and run ownership: which SDK process runs what, so its death ends its runs CRASHED.

Revision ID: 0015
Revises: 0012
Create Date: 2026-11-30 11:20:00.000000

Adds the ``engines`` table (one row per connected SDK process, refreshed by the server holding
its stream) and ``engine_id`` on flow runs and on task runs outside any flow.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "engines",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("session", sa.String(length=36), nullable=False),
        sa.Column("connect_time", sa.BigInteger(), nullable=False),
        sa.Column("last_seen_time", sa.BigInteger(), nullable=False),
        sa.Column("disconnected_time", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_engines")),
    )
    with op.batch_alter_table("engines", schema=None) as batch_op:
        batch_op.create_index("ix_engines_last_seen_time", ["last_seen_time"], unique=False)
    # SQLite rebuilds the tables, so their CREATE text reads as create_all writes it.
    sqlite = op.get_bind().dialect.name == "sqlite"
    recreate: Literal["always", "auto"] = "always" if sqlite else "auto"
    for table in ("flow_runs", "task_runs"):
        with op.batch_alter_table(table, schema=None, recreate=recreate) as batch_op:
            batch_op.add_column(sa.Column("engine_id", sa.String(length=36), nullable=True))
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(f"ix_{table}_engine_id", ["engine_id"], unique=False)


def downgrade() -> None:
    for table in ("task_runs", "flow_runs"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(f"ix_{table}_engine_id")
            batch_op.drop_column("engine_id")
    with op.batch_alter_table("engines", schema=None) as batch_op:
        batch_op.drop_index("ix_engines_last_seen_time")
    op.drop_table("engines")

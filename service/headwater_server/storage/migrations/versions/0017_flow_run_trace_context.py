"""The W3C trace context a flow run was created in.

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-30 13:40:00.000000

Adds ``flow_runs.trace_context`` (JSON text, NULL when the creator did not trace), so whoever
executes a run later continues its creator's trace.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # SQLite keeps ADD COLUMN as an amendment to the table's DDL; recreating the table makes an
    # upgraded database identical to a new one (test_migrate compares them).
    sqlite = op.get_bind().dialect.name == "sqlite"
    recreate: Literal["always", "auto"] = "always" if sqlite else "auto"
    with op.batch_alter_table("flow_runs", schema=None, recreate=recreate) as batch_op:
        batch_op.add_column(sa.Column("trace_context", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("flow_runs", schema=None) as batch_op:
        batch_op.drop_column("trace_context")

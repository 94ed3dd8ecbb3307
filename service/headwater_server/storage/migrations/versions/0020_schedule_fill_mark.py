"""Each schedule remembers how far ahead the scheduler has created its runs.

Revision ID: 0020
Revises: 0019
Create Date: 2026-11-30 16:40:00.000000

Adds ``deployment_schedules.scheduled_until``: the due time (microseconds since the epoch) up to
which every run of the schedule exists, or NULL when that is not known (a new, changed or
resumed schedule, or one whose runs ahead were deleted). The scheduler then creates only the
runs after it, instead of reading every future run of every schedule on each pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # SQLite keeps ADD COLUMN as an amendment to the table's DDL; recreating the table makes an
    # upgraded database identical to a new one (test_migrate compares them).
    sqlite = op.get_bind().dialect.name == "sqlite"
    recreate: Literal["always", "auto"] = "always" if sqlite else "auto"
    with op.batch_alter_table("deployment_schedules", schema=None, recreate=recreate) as batch_op:
        batch_op.add_column(sa.Column("scheduled_until", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("deployment_schedules", schema=None) as batch_op:
        batch_op.drop_column("scheduled_until")

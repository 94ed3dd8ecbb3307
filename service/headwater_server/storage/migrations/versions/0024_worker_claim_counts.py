"""Workers count the claims made for them.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-01 11:00:00.000000

Adds ``workers.claims``: how many claims (polls that took runs) the service made for the
worker. A poll's answer carries the count and a heartbeat echoes the count the worker has seen
(``PollRunsResponse.claims``, ``HeartbeatRequest.claims_seen``), so the service can tell a run
a worker holds but has not started from one claimed by an answer lost on its way (a dropped
connection): when the counts agree, a PENDING run leased to the worker and missing from its
heartbeat is the latter, and goes back to SCHEDULED instead of staying PENDING for as long as
the worker lives.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import sqlalchemy as sa
from alembic import op

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # SQLite keeps ADD COLUMN as an amendment to the table's DDL; recreating the table makes an
    # upgraded database identical to a new one (test_migrate compares them).
    sqlite = op.get_bind().dialect.name == "sqlite"
    recreate: Literal["always", "auto"] = "always" if sqlite else "auto"
    with op.batch_alter_table("workers", schema=None, recreate=recreate) as batch_op:
        batch_op.add_column(
            sa.Column("claims", sa.BigInteger(), nullable=False, server_default=sa.text("0"))
        )


def downgrade() -> None:
    with op.batch_alter_table("workers", schema=None) as batch_op:
        batch_op.drop_column("claims")

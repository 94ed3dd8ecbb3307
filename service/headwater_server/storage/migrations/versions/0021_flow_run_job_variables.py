"""The job variables a flow run was created with.

Revision ID: 0021
Revises: 0020
Create Date: 2026-11-30 17:00:00.000000

Adds ``flow_runs.job_variables_json`` (a JSON object, NULL for none): a run of a deployment
created with job variables of its own (``run_deployment(job_variables=...)``) keeps them, and
the worker that runs it merges them over the deployment's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # SQLite keeps ADD COLUMN as an amendment to the table's DDL; recreating the table makes an
    # upgraded database identical to a new one (test_migrate compares them).
    sqlite = op.get_bind().dialect.name == "sqlite"
    recreate: Literal["always", "auto"] = "always" if sqlite else "auto"
    with op.batch_alter_table("flow_runs", schema=None, recreate=recreate) as batch_op:
        batch_op.add_column(sa.Column("job_variables_json", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("flow_runs", schema=None) as batch_op:
        batch_op.drop_column("job_variables_json")

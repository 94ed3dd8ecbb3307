"""Deployments, their schedules, work pools and work queues; the scheduler's run key.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30 10:40:00.000000

Four new tables, and a unique index on flow_runs (deployment_id, idempotency_key): a schedule's
runs are keyed "scheduled <schedule id> <time>", so replicas filling one schedule create each run
once. flow_runs gains no column: rebuilding that table on SQLite (the only way to add one so its
CREATE text matches create_all) drops it first, and with foreign keys on the drop would delete
every run's history through ON DELETE CASCADE.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _times() -> list[sa.Column[int]]:
    return [
        sa.Column("create_time", sa.BigInteger(), nullable=False),
        sa.Column("update_time", sa.BigInteger(), nullable=False),
    ]


def upgrade() -> None:
    with op.batch_alter_table("flow_runs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_flow_runs_deployment_id_idempotency_key",
            ["deployment_id", "idempotency_key"],
            unique=True,
        )

    op.create_table(
        "work_pools",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("concurrency_limit", sa.Integer(), nullable=False),
        sa.Column("base_job_template_json", sa.Text(), nullable=False),
        *_times(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_work_pools")),
        sa.UniqueConstraint("name", name=op.f("uq_work_pools_name")),
    )
    with op.batch_alter_table("work_pools", schema=None) as batch_op:
        batch_op.create_index("ix_work_pools_create_time_id", ["create_time", "id"], unique=False)

    op.create_table(
        "work_queues",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("work_pool_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("concurrency_limit", sa.Integer(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        *_times(),
        sa.ForeignKeyConstraint(
            ["work_pool_id"],
            ["work_pools.id"],
            name=op.f("fk_work_queues_work_pool_id_work_pools"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_work_queues")),
        sa.UniqueConstraint("work_pool_id", "name", name=op.f("uq_work_queues_work_pool_id_name")),
    )

    op.create_table(
        "deployments",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("flow_id", sa.String(length=36), nullable=False),
        sa.Column("flow_name", sa.String(length=255), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("version", sa.String(length=255), nullable=False),
        sa.Column("tags", sa.Text(), nullable=False),
        sa.Column("entrypoint", sa.Text(), nullable=False),
        sa.Column("code_json", sa.Text(), nullable=False),
        sa.Column("parameters_json", sa.Text(), nullable=False),
        sa.Column("parameter_schema_json", sa.Text(), nullable=False),
        sa.Column("enforce_parameter_schema", sa.Boolean(), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("concurrency_limit", sa.Integer(), nullable=False),
        sa.Column("collision_strategy", sa.Integer(), nullable=False),
        sa.Column("work_queue_id", sa.String(length=36), nullable=True),
        sa.Column("work_pool_name", sa.String(length=255), nullable=False),
        sa.Column("work_queue_name", sa.String(length=255), nullable=False),
        sa.Column("job_variables_json", sa.Text(), nullable=False),
        *_times(),
        sa.ForeignKeyConstraint(
            ["flow_id"], ["flows.id"], name=op.f("fk_deployments_flow_id_flows"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["work_queue_id"],
            ["work_queues.id"],
            name=op.f("fk_deployments_work_queue_id_work_queues"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deployments")),
        sa.UniqueConstraint("flow_id", "name", name=op.f("uq_deployments_flow_id_name")),
    )
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.create_index("ix_deployments_create_time_id", ["create_time", "id"], unique=False)
        batch_op.create_index("ix_deployments_work_queue_id", ["work_queue_id"], unique=False)

    op.create_table(
        "deployment_schedules",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("deployment_id", sa.String(length=36), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("schedule_json", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("max_scheduled_runs", sa.Integer(), nullable=False),
        sa.Column("parameters_json", sa.Text(), nullable=False),
        *_times(),
        sa.ForeignKeyConstraint(
            ["deployment_id"],
            ["deployments.id"],
            name=op.f("fk_deployment_schedules_deployment_id_deployments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deployment_schedules")),
    )
    with op.batch_alter_table("deployment_schedules", schema=None) as batch_op:
        batch_op.create_index(
            "ix_deployment_schedules_deployment_id_position",
            ["deployment_id", "position"],
            unique=False,
        )


def downgrade() -> None:
    op.drop_table("deployment_schedules")
    op.drop_table("deployments")
    op.drop_table("work_queues")
    op.drop_table("work_pools")
    with op.batch_alter_table("flow_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_flow_runs_deployment_id_idempotency_key")

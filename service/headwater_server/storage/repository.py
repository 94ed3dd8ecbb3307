"""The repository: every read and write the service makes, one transaction per method.

Methods are synchronous (the server runs them on the database executor through
``Database.run``), take the generated request message and return the generated response
message, and raise :class:`headwater_server.errors.ServiceError` for what only the database can
tell (NOT_FOUND, ALREADY_EXISTS, a reused request id). Requests arrive checked: the application
layer (:mod:`headwater_server.application`) is the one caller and runs every request check first.

The state proposal (:meth:`Repository.set_flow_run_state`, :meth:`Repository.set_task_run_state`)
is the hot path and is written for it: SQLAlchemy Core statements built once, one write
transaction that takes the lock first (SQLite ``BEGIN IMMEDIATE``, PostgreSQL
``SELECT ... FOR UPDATE``), the idempotency lookup by ``transition_id``, the pure
:func:`~headwater_server.orchestration.rules.decide`, then one INSERT of the history row, one
UPDATE of the run row and the stored answer, all committed together.
"""

from __future__ import annotations

from headwater_server.storage._deployment_runs import DeploymentRunsMixin
from headwater_server.storage._engines import EnginesMixin
from headwater_server.storage._flow_runs import FlowRunsMixin
from headwater_server.storage._flows import FlowsMixin
from headwater_server.storage._gauges import GaugesMixin
from headwater_server.storage._late_runs import LateRunsMixin
from headwater_server.storage._logs import LogsMixin
from headwater_server.storage._proposals import ProposalsMixin
from headwater_server.storage._retention import RetentionMixin
from headwater_server.storage._task_run_batches import TaskRunBatchesMixin
from headwater_server.storage._task_runs import TaskRunsMixin
from headwater_server.storage._workers import WorkersMixin

__all__ = ["Repository"]


class Repository(
    WorkersMixin,
    DeploymentRunsMixin,
    FlowsMixin,
    FlowRunsMixin,
    TaskRunBatchesMixin,
    TaskRunsMixin,
    ProposalsMixin,
    LogsMixin,
    RetentionMixin,
    LateRunsMixin,
    EnginesMixin,
    GaugesMixin,
):
    """All storage operations of the service over one SQLAlchemy engine.

    Thread-safe: each method checks out its own connection and runs one transaction. The
    operations live in one module per resource (``_flows``, ``_flow_runs``, ``_task_runs``,
    ``_proposals``, ``_logs``, ``_work_pools``, ``_deployments``, ``_deployment_runs``,
    ``_retention``, ``_late_runs``, ``_engines``, ``_concurrency``,
    ``_workers``, ``_gauges``) over the shared transactions and idempotency of ``_base``.
    """

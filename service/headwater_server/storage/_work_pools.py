"""Work pools and their queues: where deployments' runs wait for workers."""

from __future__ import annotations

from typing import Any

from headwater.v1 import work_pools_pb2
from sqlalchemy import Connection, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from headwater_server import errors
from headwater_server.storage import convert, pagination
from headwater_server.storage._base import RepositoryBase
from headwater_server.storage.schema import deployments, work_pools, work_queues
from headwater_server.storage.statements import keyset_after
from headwater_server.storage.values import new_id

#: The queue every pool is created with, and where a deployment naming no queue sends runs.
DEFAULT_QUEUE = "default"
#: The pool type used when a create names none.
DEFAULT_POOL_TYPE = "process"
#: How many deployment names an error that lists them shows.
_NAMES_SHOWN = 5


class WorkPoolsMixin(RepositoryBase):
    """Work pools and queues: create, read, list, update, delete."""

    # ------------------------------------------------------------------ pools

    def create_work_pool(
        self, req: work_pools_pb2.CreateWorkPoolRequest
    ) -> work_pools_pb2.CreateWorkPoolResponse:
        """Create a pool with its "default" queue (ALREADY_EXISTS when the name is taken)."""
        pool = req.work_pool
        key = self._request_key(req.request_id)
        method = "CreateWorkPool"
        try:
            with self._write() as conn:
                if key and (
                    replay := self._replay(
                        conn, key, method, "", work_pools_pb2.CreateWorkPoolResponse
                    )
                ):
                    return replay
                self._refuse_taken_pool_name(conn, pool.name)
                now = convert.now_us()
                values: dict[str, Any] = {
                    "id": new_id(),
                    "name": pool.name,
                    "type": pool.type or DEFAULT_POOL_TYPE,
                    "description": pool.description,
                    "paused": pool.paused,
                    "concurrency_limit": pool.concurrency_limit,
                    "base_job_template_json": pool.base_job_template_json,
                    "create_time": now,
                    "update_time": now,
                }
                conn.execute(insert(work_pools), values)
                self._insert_queue(conn, values["id"], DEFAULT_QUEUE, priority=1)
                response = work_pools_pb2.CreateWorkPoolResponse(
                    work_pool=convert.work_pool_message(values)
                )
                if key:
                    self._remember(conn, key, method, values["id"], response)
                return response
        except IntegrityError:
            replay = self._replay_after_conflict(key, method, work_pools_pb2.CreateWorkPoolResponse)
            if replay is not None:
                return replay
            with self._read() as conn:
                self._refuse_taken_pool_name(conn, pool.name)
            raise

    @staticmethod
    def _refuse_taken_pool_name(conn: Connection, name: str) -> None:
        existing = conn.execute(select(work_pools.c.id).where(work_pools.c.name == name)).scalar()
        if existing is not None:
            raise errors.already_exists(
                "work_pool",
                existing,
                f"A work pool named '{name}' already exists (id '{existing}'). Use it, or "
                "choose another name.",
            )

    def get_work_pool(
        self, req: work_pools_pb2.GetWorkPoolRequest
    ) -> work_pools_pb2.GetWorkPoolResponse:
        """One pool by name."""
        with self._read() as conn:
            row = self._pool_row(conn, req.name)
        return work_pools_pb2.GetWorkPoolResponse(work_pool=convert.work_pool_message(row))

    @staticmethod
    def _pool_row(conn: Connection, name: str) -> Any:
        """The pool named ``name`` as a row mapping (NOT_FOUND when there is none)."""
        row = conn.execute(select(work_pools).where(work_pools.c.name == name)).first()
        if row is None:
            raise errors.not_found_by_name("work_pool", name)
        return row._mapping

    def list_work_pools(
        self, req: work_pools_pb2.ListWorkPoolsRequest
    ) -> work_pools_pb2.ListWorkPoolsResponse:
        """Pools, oldest first."""
        size = pagination.page_size(req.page_size)
        after = pagination.decode_token("work_pools", req.page_token)
        stmt = select(work_pools)
        if after is not None:
            stmt = stmt.where(keyset_after(work_pools.c.create_time, work_pools.c.id, after))
        stmt = stmt.order_by(work_pools.c.create_time, work_pools.c.id).limit(size + 1)
        with self._read() as conn:
            rows = conn.execute(stmt).all()
        return work_pools_pb2.ListWorkPoolsResponse(
            work_pools=[convert.work_pool_message(r._mapping) for r in rows[:size]],
            next_page_token=pagination.next_page_token("work_pools", rows, size),
        )

    def update_work_pool(
        self, req: work_pools_pb2.UpdateWorkPoolRequest
    ) -> work_pools_pb2.UpdateWorkPoolResponse:
        """Change the fields in ``update_mask`` (checked by the application layer)."""
        values: dict[str, Any] = {
            path: getattr(req.work_pool, path) for path in req.update_mask.paths
        }
        values["update_time"] = convert.now_us()
        with self._write() as conn:
            row = self._pool_row(conn, req.name)
            conn.execute(update(work_pools).where(work_pools.c.id == row["id"]).values(**values))
            row = self._pool_row(conn, req.name)
        return work_pools_pb2.UpdateWorkPoolResponse(work_pool=convert.work_pool_message(row))

    def delete_work_pool(
        self, req: work_pools_pb2.DeleteWorkPoolRequest
    ) -> work_pools_pb2.DeleteWorkPoolResponse:
        """Delete a pool and its queues, unless deployments send runs to it."""
        with self._write() as conn:
            row = self._pool_row(conn, req.name)
            self._refuse_if_used(
                conn, deployments.c.work_pool_name == req.name, f"work pool '{req.name}'"
            )
            conn.execute(delete(work_pools).where(work_pools.c.id == row["id"]))
        return work_pools_pb2.DeleteWorkPoolResponse()

    @staticmethod
    def _refuse_if_used(conn: Connection, condition: Any, what: str) -> None:
        """FAILED_PRECONDITION naming the deployments that match ``condition``, if any."""
        used = conn.execute(
            select(deployments.c.flow_name, deployments.c.name)
            .where(condition)
            .order_by(deployments.c.flow_name, deployments.c.name)
            .limit(_NAMES_SHOWN + 1)
        ).all()
        if not used:
            return
        names = ", ".join(f"'{r.flow_name}/{r.name}'" for r in used[:_NAMES_SHOWN])
        if len(used) > _NAMES_SHOWN:
            names += ", ..."
        raise errors.failed_precondition(
            "WORK_POOL_IN_USE",
            f"Deployments send runs to {what}: {names}. Move them to another pool or queue "
            "(UpdateDeployment) or delete them first.",
        )

    # ------------------------------------------------------------------ queues

    def create_work_queue(
        self, req: work_pools_pb2.CreateWorkQueueRequest
    ) -> work_pools_pb2.CreateWorkQueueResponse:
        """Add a queue to a pool (ALREADY_EXISTS when the pool has one of that name)."""
        key = self._request_key(req.request_id)
        method = "CreateWorkQueue"
        queue = req.work_queue
        try:
            with self._write() as conn:
                if key and (
                    replay := self._replay(
                        conn, key, method, "", work_pools_pb2.CreateWorkQueueResponse
                    )
                ):
                    return replay
                pool = self._pool_row(conn, req.work_pool_name)
                self._refuse_taken_queue_name(conn, pool, queue.name)
                values = self._insert_queue(
                    conn,
                    pool["id"],
                    queue.name,
                    priority=queue.priority,
                    description=queue.description,
                    paused=queue.paused,
                    concurrency_limit=queue.concurrency_limit,
                )
                response = work_pools_pb2.CreateWorkQueueResponse(
                    work_queue=convert.work_queue_message(values, pool["name"])
                )
                if key:
                    self._remember(conn, key, method, values["id"], response)
                return response
        except IntegrityError:
            replay = self._replay_after_conflict(
                key, method, work_pools_pb2.CreateWorkQueueResponse
            )
            if replay is not None:
                return replay
            with self._read() as conn:
                pool = self._pool_row(conn, req.work_pool_name)
                self._refuse_taken_queue_name(conn, pool, queue.name)
            raise

    @staticmethod
    def _refuse_taken_queue_name(conn: Connection, pool: Any, name: str) -> None:
        existing = conn.execute(
            select(work_queues.c.id).where(
                work_queues.c.work_pool_id == pool["id"], work_queues.c.name == name
            )
        ).scalar()
        if existing is not None:
            raise errors.already_exists(
                "work_queue",
                existing,
                f"Work pool '{pool['name']}' already has a queue named '{name}' (id "
                f"'{existing}'). Use it, or choose another name.",
            )

    @staticmethod
    def _insert_queue(
        conn: Connection,
        pool_id: str,
        name: str,
        *,
        priority: int = 0,
        description: str = "",
        paused: bool = False,
        concurrency_limit: int = 0,
    ) -> dict[str, Any]:
        """Insert a queue; priority 0 places it after the pool's other queues."""
        if priority == 0:
            lowest = conn.execute(
                select(func.max(work_queues.c.priority)).where(
                    work_queues.c.work_pool_id == pool_id
                )
            ).scalar()
            priority = (lowest or 0) + 1
        now = convert.now_us()
        values: dict[str, Any] = {
            "id": new_id(),
            "work_pool_id": pool_id,
            "name": name,
            "description": description,
            "paused": paused,
            "concurrency_limit": concurrency_limit,
            "priority": priority,
            "create_time": now,
            "update_time": now,
        }
        conn.execute(insert(work_queues), values)
        return values

    def _queue_for(self, conn: Connection, pool_name: str, queue_name: str) -> tuple[str, str]:
        """The (id, name) of the queue a deployment sends runs to, created when new.

        Raises:
            ServiceError: NOT_FOUND when the pool does not exist.
        """
        pool = self._pool_row(conn, pool_name)
        name = queue_name or DEFAULT_QUEUE
        found = conn.execute(
            select(work_queues.c.id).where(
                work_queues.c.work_pool_id == pool["id"], work_queues.c.name == name
            )
        ).scalar()
        if found is None:
            found = self._insert_queue(conn, pool["id"], name)["id"]
        return str(found), name

    def list_work_queues(
        self, req: work_pools_pb2.ListWorkQueuesRequest
    ) -> work_pools_pb2.ListWorkQueuesResponse:
        """A pool's queues, highest priority (lowest number) first, paged by (priority, id)."""
        size = pagination.page_size(req.page_size)
        after = pagination.decode_token("work_queues", req.page_token)
        with self._read() as conn:
            pool = self._pool_row(conn, req.work_pool_name)
            stmt = select(work_queues).where(work_queues.c.work_pool_id == pool["id"])
            if after is not None:
                stmt = stmt.where(keyset_after(work_queues.c.priority, work_queues.c.id, after))
            rows = conn.execute(
                stmt.order_by(work_queues.c.priority, work_queues.c.id).limit(size + 1)
            ).all()
        return work_pools_pb2.ListWorkQueuesResponse(
            work_queues=[convert.work_queue_message(r._mapping, pool["name"]) for r in rows[:size]],
            next_page_token=pagination.next_page_token("work_queues", rows, size, "priority"),
        )

    def _queue_row(self, conn: Connection, pool_name: str, name: str) -> tuple[Any, Any]:
        """The (pool, queue) row mappings of a queue (NOT_FOUND naming what is missing)."""
        pool = self._pool_row(conn, pool_name)
        row = conn.execute(
            select(work_queues).where(
                work_queues.c.work_pool_id == pool["id"], work_queues.c.name == name
            )
        ).first()
        if row is None:
            raise errors.not_found_by_name("work_queue", f"{pool_name}/{name}")
        return pool, row._mapping

    def update_work_queue(
        self, req: work_pools_pb2.UpdateWorkQueueRequest
    ) -> work_pools_pb2.UpdateWorkQueueResponse:
        """Change the fields in ``update_mask`` (checked by the application layer)."""
        values: dict[str, Any] = {
            path: getattr(req.work_queue, path) for path in req.update_mask.paths
        }
        values["update_time"] = convert.now_us()
        with self._write() as conn:
            _, row = self._queue_row(conn, req.work_pool_name, req.name)
            conn.execute(update(work_queues).where(work_queues.c.id == row["id"]).values(**values))
            pool, row = self._queue_row(conn, req.work_pool_name, req.name)
        return work_pools_pb2.UpdateWorkQueueResponse(
            work_queue=convert.work_queue_message(row, pool["name"])
        )

    def delete_work_queue(
        self, req: work_pools_pb2.DeleteWorkQueueRequest
    ) -> work_pools_pb2.DeleteWorkQueueResponse:
        """Delete a queue, unless it is its pool's default or deployments send runs to it."""
        with self._write() as conn:
            _, row = self._queue_row(conn, req.work_pool_name, req.name)
            if req.name == DEFAULT_QUEUE:
                raise errors.failed_precondition(
                    "DEFAULT_WORK_QUEUE",
                    f"The '{DEFAULT_QUEUE}' queue of work pool '{req.work_pool_name}' cannot be "
                    "deleted: deployments that name no queue send their runs there. Delete the "
                    "pool instead.",
                )
            self._refuse_if_used(
                conn,
                deployments.c.work_queue_id == row["id"],
                f"queue '{req.name}' of work pool '{req.work_pool_name}'",
            )
            conn.execute(delete(work_queues).where(work_queues.c.id == row["id"]))
        return work_pools_pb2.DeleteWorkQueueResponse()

"""Flows: named workflow definitions."""

from __future__ import annotations

from typing import Any

from headwater.v1 import flows_pb2
from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError

from headwater_server import errors
from headwater_server.errors import ServiceError, not_found
from headwater_server.storage import convert, pagination
from headwater_server.storage._base import RepositoryBase
from headwater_server.storage._concurrency import ANY_KEY, SLOTS_FREED, free_slots_of_deleted
from headwater_server.storage.schema import flow_runs, flows, task_runs
from headwater_server.storage.statements import SELECT_FLOW_BY_NAME, keyset_before
from headwater_server.storage.values import canonical_id, new_id


class FlowsMixin(RepositoryBase):
    """Flows: register by name, read, list, delete (with all their runs)."""

    def create_flow(self, req: flows_pb2.CreateFlowRequest) -> flows_pb2.CreateFlowResponse:
        """Register a flow under a unique name (ALREADY_EXISTS when the name is taken)."""
        name = req.name
        tags = convert.dump_tags(req.tags)
        key = self._request_key(req.request_id)
        try:
            with self._write() as conn:
                if key and (
                    replay := self._replay(
                        conn, key, "CreateFlow", "", flows_pb2.CreateFlowResponse
                    )
                ):
                    return replay
                existing = conn.execute(SELECT_FLOW_BY_NAME, {"name": name}).first()
                if existing is not None:
                    raise self._flow_exists(name, existing.id)
                values: dict[str, Any] = {
                    "id": new_id(),
                    "name": name,
                    "tags": tags,
                    "create_time": convert.now_us(),
                }
                conn.execute(insert(flows), values)
                response = flows_pb2.CreateFlowResponse(flow=convert.flow_message(values))
                if key:
                    self._remember(conn, key, "CreateFlow", values["id"], response)
                return response
        except IntegrityError:
            replay = self._replay_after_conflict(key, "CreateFlow", flows_pb2.CreateFlowResponse)
            if replay is not None:
                return replay
            with self._read() as conn:
                existing = conn.execute(SELECT_FLOW_BY_NAME, {"name": name}).first()
            if existing is None:
                raise
            raise self._flow_exists(name, existing.id) from None

    @staticmethod
    def _flow_exists(name: str, flow_id: str) -> ServiceError:
        return errors.already_exists(
            "flow",
            flow_id,
            f"A flow named '{name}' already exists (id '{flow_id}'). Use that flow, or choose "
            f"another name.",
        )

    def get_flow(self, req: flows_pb2.GetFlowRequest) -> flows_pb2.GetFlowResponse:
        """One flow by id."""
        flow_id = canonical_id(req.flow_id)
        with self._read() as conn:
            row = conn.execute(select(flows).where(flows.c.id == flow_id)).first()
        if row is None:
            raise not_found("flow", flow_id)
        return flows_pb2.GetFlowResponse(flow=convert.flow_message(row._mapping))

    def list_flows(self, req: flows_pb2.ListFlowsRequest) -> flows_pb2.ListFlowsResponse:
        """Flows, newest first, optionally only the one with an exact name."""
        size = pagination.page_size(req.page_size)
        after = pagination.decode_token("flows", req.page_token)
        stmt = select(flows)
        if req.name:
            stmt = stmt.where(flows.c.name == req.name)
        if after is not None:
            stmt = stmt.where(keyset_before(flows.c.create_time, flows.c.id, after))
        stmt = stmt.order_by(flows.c.create_time.desc(), flows.c.id.desc()).limit(size + 1)
        with self._read() as conn:
            rows = conn.execute(stmt).all()
        return flows_pb2.ListFlowsResponse(
            flows=[convert.flow_message(r._mapping) for r in rows[:size]],
            next_page_token=pagination.next_page_token("flows", rows, size),
        )

    def delete_flow(self, req: flows_pb2.DeleteFlowRequest) -> flows_pb2.DeleteFlowResponse:
        """Delete a flow with all its runs, their history, task runs and logs."""
        flow_id = canonical_id(req.flow_id)
        with self._write() as conn:
            runs = select(flow_runs.c.id).where(flow_runs.c.flow_id == flow_id)
            freed = free_slots_of_deleted(
                conn,
                select(task_runs.c.id).where(task_runs.c.flow_run_id.in_(runs)).union_all(runs),
            )
            if conn.execute(delete(flows).where(flows.c.id == flow_id)).rowcount == 0:
                raise not_found("flow", flow_id)
        if freed:
            self.announce([(SLOTS_FREED + ANY_KEY, 0)])
        return flows_pb2.DeleteFlowResponse()

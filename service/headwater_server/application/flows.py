"""Flows: register, read, list and delete named workflow definitions."""

from __future__ import annotations

from headwater.v1 import flows_pb2

from headwater_server.application import checks
from headwater_server.application.backend import Backend


async def create_flow(
    backend: Backend, request: flows_pb2.CreateFlowRequest
) -> flows_pb2.CreateFlowResponse:
    """Register a flow under a unique name (ALREADY_EXISTS when the name is taken)."""
    checks.flow_name("name", request.name)
    checks.tags("tags", request.tags)
    checks.optional_uuid("request_id", request.request_id)
    return await backend.db.run(backend.db.repository.create_flow, request)


async def get_flow(
    backend: Backend, request: flows_pb2.GetFlowRequest
) -> flows_pb2.GetFlowResponse:
    """Return one flow."""
    checks.uuid("flow_id", request.flow_id)
    return await backend.db.run(backend.db.repository.get_flow, request)


async def list_flows(
    backend: Backend, request: flows_pb2.ListFlowsRequest
) -> flows_pb2.ListFlowsResponse:
    """Page through flows, newest first."""
    checks.page_size("page_size", request.page_size)
    checks.name("name", request.name)
    return await backend.db.run(backend.db.repository.list_flows, request)


async def delete_flow(
    backend: Backend, request: flows_pb2.DeleteFlowRequest
) -> flows_pb2.DeleteFlowResponse:
    """Delete a flow with all its runs; watchers of those runs learn it at once."""
    checks.uuid("flow_id", request.flow_id)
    response = await backend.db.run(backend.db.repository.delete_flow, request)
    backend.hub.wake_all()
    return response

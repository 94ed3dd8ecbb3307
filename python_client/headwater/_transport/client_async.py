"""The asyncio runner behind `headwater.client.AsyncHeadwaterClient`: one grpc.aio channel.

The twin of `client_sync`: the same calls from `headwater._transport.client_ops`, awaited on the
caller's event loop, so an async program never blocks a thread per request.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, TypeVar

import grpc

from headwater._runs import FlowRun, FlowRunEvent
from headwater._telemetry import current_metadata
from headwater._transport import client_ops as ops
from headwater._transport.channel import channel_options

__all__ = ["AsyncRunner"]

T = TypeVar("T")


class AsyncRunner:
    """Unary calls, paged lists and watches over one ``grpc.aio`` channel.

    Create it with `open` inside the event loop that will use it: an aio channel belongs to
    the loop it was made on.
    """

    def __init__(self, address: str, timeout: float | None) -> None:
        from headwater._settings import get_settings

        self.address = address
        self.timeout = timeout
        self._channel = grpc.aio.insecure_channel(
            address, options=channel_options(get_settings().keepalive_time_ms)
        )
        self._stubs = ops.stubs(self._channel)

    @classmethod
    async def open(cls, address: str | None, timeout: float | None) -> AsyncRunner:
        """A runner on the running loop; starting the embedded server happens off the loop."""
        if address is not None:
            resolved = ops.resolve_address(address)
        else:
            resolved = await asyncio.to_thread(ops.resolve_address, None)
        return cls(resolved, timeout)

    async def call(self, unary: ops.Unary[T]) -> T:
        response = await self._send(unary.service, unary.method, unary.request)
        return unary.convert(response)

    async def collect(self, listing: ops.Listing[T]) -> list[T]:
        """Follow the pages until ``listing.limit`` items are kept or the last page."""
        items: list[T] = []
        request: Any = listing.first
        while request is not None and len(items) < listing.limit:
            response = await self._send(listing.service, listing.method, request)
            request = listing.absorb(request, response, items)
        return items[: listing.limit]

    async def watch(
        self, flow_run_id: str, after_sequence: int
    ) -> AsyncIterator[FlowRun | FlowRunEvent]:
        call = self._stubs["flow_runs"].WatchFlowRun(
            ops.watch_request(flow_run_id, after_sequence), metadata=current_metadata()
        )
        try:
            async for response in call:
                item = ops.watch_item(response)
                if item is not None:
                    yield item
        except grpc.RpcError as error:
            raise ops.map_error(error, self.address) from None
        finally:
            call.cancel()

    async def close(self) -> None:
        await self._channel.close()

    async def _send(self, service: str, method: str, request: Any) -> Any:
        try:
            return await getattr(self._stubs[service], method)(
                request, timeout=self.timeout, metadata=current_metadata()
            )
        except grpc.RpcError as error:
            raise ops.map_error(error, self.address) from None

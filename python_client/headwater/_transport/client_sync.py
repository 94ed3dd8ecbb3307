"""The blocking runner behind `headwater.client.HeadwaterClient`: one sync gRPC channel.

It sends the calls `headwater._transport.client_ops` describes and hands back SDK records, with
failures raised as the SDK's typed exceptions.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, TypeVar

import grpc

from headwater._runs import FlowRun, FlowRunEvent
from headwater._telemetry import current_metadata
from headwater._transport import client_ops as ops
from headwater._transport.channel import channel_options

__all__ = ["SyncRunner"]

T = TypeVar("T")


class SyncRunner:
    """Unary calls, paged lists and watches over one synchronous channel.

    Args:
        address: The server; see `client_ops.resolve_address` for None.
        timeout: Seconds each call may take (watches are not limited).
    """

    def __init__(self, address: str | None, timeout: float | None) -> None:
        from headwater._settings import get_settings

        self.address = ops.resolve_address(address)
        self.timeout = timeout
        self._channel = grpc.insecure_channel(
            self.address, options=channel_options(get_settings().keepalive_time_ms)
        )
        self._stubs = ops.stubs(self._channel)

    def call(self, unary: ops.Unary[T]) -> T:
        response = self._send(unary.service, unary.method, unary.request)
        return unary.convert(response)

    def collect(self, listing: ops.Listing[T]) -> list[T]:
        """Follow the pages until ``listing.limit`` items are kept or the last page."""
        items: list[T] = []
        request: Any = listing.first
        while request is not None and len(items) < listing.limit:
            response = self._send(listing.service, listing.method, request)
            request = listing.absorb(request, response, items)
        return items[: listing.limit]

    def watch(self, flow_run_id: str, after_sequence: int) -> Iterator[FlowRun | FlowRunEvent]:
        call = self._stubs["flow_runs"].WatchFlowRun(
            ops.watch_request(flow_run_id, after_sequence), metadata=current_metadata()
        )
        try:
            for response in call:
                item = ops.watch_item(response)
                if item is not None:
                    yield item
        except grpc.RpcError as error:
            raise ops.map_error(error, self.address) from None
        finally:
            call.cancel()

    def close(self) -> None:
        self._channel.close()

    def _send(self, service: str, method: str, request: Any) -> Any:
        try:
            return getattr(self._stubs[service], method)(
                request, timeout=self.timeout, metadata=current_metadata()
            )
        except grpc.RpcError as error:
            # `from None`: the gRPC internals add nothing a caller can act on.
            raise ops.map_error(error, self.address) from None

"""A real TCP forwarder between clients and a server, that a test can cut off and restore.

Put it between a process and a real server to make the service unreachable on cue, the way a
network blip or an overloaded machine does: `PausableProxy.pause` resets every connection it
carries and resets each new one at once (the client's calls fail UNAVAILABLE), and `resume`
forwards again on the same address. `stall` keeps every connection open but forwards no byte
until `resume`, the way a hung server or a dropped route does: calls then run into their
deadlines (DEADLINE_EXCEEDED) instead of failing at once. With ``hold_seconds`` it also holds
each new connection that long before forwarding it (no byte reaches the client meanwhile), the
way a loaded server is slow to answer a handshake. It runs on an asyncio loop of its own, in a
thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from typing import Any

__all__ = ["PausableProxy"]


class PausableProxy:
    """Forward ``127.0.0.1:<port>`` to ``upstream`` ("host:port") until paused.

    Args:
        upstream: The server's address.
        hold_seconds: How long each new connection waits before it is forwarded.

    Attributes:
        address: What clients dial instead of the server ("127.0.0.1:<port>").
        refused: How many connections it reset while paused (a client did try to reach the
            server then).
    """

    def __init__(self, upstream: str, hold_seconds: float = 0.0) -> None:
        host, _, port = upstream.rpartition(":")
        self._upstream = (host, int(port))
        self._hold_seconds = hold_seconds
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._paused = False
        self._flowing = asyncio.Event()  # cleared while stalled; used on the loop only
        self._flowing.set()
        self._links: set[asyncio.StreamWriter] = set()
        self.address = ""
        self.refused = 0

    def start(self) -> PausableProxy:
        """Listen and forward; returns self."""
        self._thread.start()
        self._call(self._listen())
        return self

    def pause(self) -> None:
        """Reset every connection now, and each new one until `resume`."""
        self._call(self._pause())

    def stall(self) -> None:
        """Keep every connection, old and new, open, but forward nothing until `resume`."""
        self._call(self._stall())

    def resume(self) -> None:
        """Forward again: new connections after `pause`, held bytes after `stall`."""
        self._call(self._resume())

    def close(self) -> None:
        """Stop listening, reset every connection and end the loop's thread."""
        self._call(self._close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    # ------------------------------------------------------------------ on the proxy's loop

    def _call(self, coroutine: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.address = f"127.0.0.1:{port}"

    async def _pause(self) -> None:
        self._paused = True
        for writer in list(self._links):
            writer.transport.abort()
        self._links.clear()

    async def _stall(self) -> None:
        self._flowing.clear()

    async def _resume(self) -> None:
        self._paused = False
        self._flowing.set()

    async def _close(self) -> None:
        await self._pause()
        if self._server is not None:
            self._server.close()
        others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._paused:
            self.refused += 1
            writer.transport.abort()
            return
        if self._hold_seconds:
            self._links.add(writer)  # a pause or close resets it while it waits
            await asyncio.sleep(self._hold_seconds)
            self._links.discard(writer)
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self._upstream)
        except OSError:
            writer.transport.abort()
            return
        pair = (writer, upstream_writer)
        self._links.update(pair)
        try:
            with contextlib.suppress(asyncio.CancelledError):  # the proxy closes
                await asyncio.gather(
                    _pipe(reader, upstream_writer, self._flowing),
                    _pipe(upstream_reader, writer, self._flowing),
                )
        finally:
            for end in pair:
                self._links.discard(end)
                end.transport.abort()


async def _pipe(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, flowing: asyncio.Event
) -> None:
    """Copy ``reader`` to ``writer`` until either end closes, holding bytes while stalled."""
    with contextlib.suppress(OSError, asyncio.CancelledError):
        while data := await reader.read(65536):
            await flowing.wait()
            writer.write(data)
            await writer.drain()
    writer.transport.abort()

"""A TCP proxy for fault tests, written with anyio: it forwards bytes between clients and a
broker, and on demand stalls its current connections (holds their bytes, keeps them open) or
drops them (closes them)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.abc
from anyio.abc import SocketAttribute

__all__ = ("Proxy", "running_proxy")


class _Pair:
    def __init__(self, client: anyio.abc.SocketStream) -> None:
        self.client = client
        self.scope = anyio.CancelScope()
        self.stalled = False


class Proxy:
    """Forwards 127.0.0.1:``port`` to 127.0.0.1:``target``."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = 0
        self.accepted = 0
        #: Close new connections at once (the broker looks down).
        self.refuse = False
        #: Close this many of the next new connections at once, then forward again.
        self.refuse_next = 0
        self._pairs: list[_Pair] = []

    def stall(self) -> None:
        """Stop forwarding on every current connection without closing it (new connections
        are forwarded normally)."""
        for pair in self._pairs:
            pair.stalled = True

    def drop(self) -> None:
        """Close every current connection."""
        for pair in self._pairs:
            pair.scope.cancel()

    async def _pump(
        self, pair: _Pair, src: anyio.abc.SocketStream, dst: anyio.abc.SocketStream
    ) -> None:
        try:
            async for chunk in src:
                if pair.stalled:
                    await anyio.sleep_forever()
                await dst.send(chunk)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass
        pair.scope.cancel()

    async def _handle(self, client: anyio.abc.SocketStream) -> None:
        self.accepted += 1
        if self.refuse or self.refuse_next > 0:
            self.refuse_next = max(0, self.refuse_next - 1)
            await client.aclose()
            return
        pair = _Pair(client)
        self._pairs.append(pair)
        try:
            with pair.scope:
                upstream = await anyio.connect_tcp("127.0.0.1", self.target)
                async with upstream, anyio.create_task_group() as tg:
                    tg.start_soon(self._pump, pair, client, upstream)
                    tg.start_soon(self._pump, pair, upstream, client)
        finally:
            self._pairs.remove(pair)
            with anyio.CancelScope(shield=True):
                await client.aclose()


@asynccontextmanager
async def running_proxy(target: int) -> AsyncIterator[Proxy]:
    """Run a proxy to ``target`` for the block."""
    proxy = Proxy(target)
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    proxy.port = listener.extra(SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, proxy._handle)
        try:
            yield proxy
        finally:
            tg.cancel_scope.cancel()
            proxy.drop()

"""A bare asyncio byte relay: the ceiling the broker benchmarks compare against.

Every chunk a connection sends is written unchanged to every other connection: no framing, no
parsing, no routing. Run as ``python -m benchmarks.relay``; it prints its port and serves until
stdin closes.
"""

from __future__ import annotations

import asyncio
import sys
from typing import ClassVar

__all__ = ("Relay", "main")


class Relay(asyncio.Protocol):
    """One relayed connection."""

    peers: ClassVar[set[asyncio.Transport]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.peers.add(transport)

    def data_received(self, data: bytes) -> None:
        for peer in self.peers:
            if peer is not self.transport:
                peer.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.peers.discard(self.transport)


async def main() -> None:
    """Serve on an ephemeral loopback port until stdin reaches EOF."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Relay, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await loop.run_in_executor(None, sys.stdin.read)
    server.close()


if __name__ == "__main__":
    asyncio.run(main())

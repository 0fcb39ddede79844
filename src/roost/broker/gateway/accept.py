"""The gateway's listening socket: at most ``max_http_connections`` HTTP connections at once.

Rules of this module:

- The listener hands each accepted connection to aiohttp's protocol, unless
  ``max_http_connections`` are open already: then the connection is answered ``503`` (with
  ``Retry-After: 1`` and the limit in the text) and closed, before aiohttp sees a byte of it.
  Websockets upgraded from HTTP connections stay counted here while they are open.
- A refusal is logged at most once a minute (with the number held back).
- Idle HTTP connections are aiohttp's: its ``keepalive_timeout`` (``http_idle``) closes a
  connection that has had no request in progress for that long, counted from its accept too,
  so one that never sends a request, or sends half a request head, does not stay.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final

from aiohttp import web

from roost.broker.guard import LogEvery

__all__ = ("CappedListener",)

log = logging.getLogger("roost.broker.gateway")

#: Seconds between two log lines about refused HTTP connections.
_LOG_INTERVAL: Final = 60.0


class _Refused(asyncio.Protocol):
    """Answers one connection ``503`` and closes it."""

    def __init__(self, response: bytes) -> None:
        self.response = response

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(self.response)
        transport.close()

    def data_received(self, data: bytes) -> None:
        pass  # the request is not read: the answer is already on its way


def refusal(limit: int) -> bytes:
    """The whole HTTP response a connection over ``max_http_connections`` gets."""
    text = f"too many HTTP connections open (max_http_connections {limit})\n".encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\n"
        "Retry-After: 1\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(text)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + text


class CappedListener:
    """A listening socket in front of an aiohttp ``web.Server``.

    Args:
        server: the runner's server (``AppRunner.server`` after ``setup()``).
        limit: ``max_http_connections`` (0: no limit).
    """

    def __init__(self, server: web.Server, limit: int) -> None:
        self.server = server
        self.limit = limit
        #: Connections refused because ``limit`` were open.
        self.refused = 0
        self._response = refusal(limit)
        self._log = LogEvery(_LOG_INTERVAL, log)
        self._listener: asyncio.Server | None = None

    def _protocol(self) -> asyncio.BaseProtocol:
        limit = self.limit
        if limit and len(self.server.connections) >= limit:
            self.refused += 1
            self._log(
                "refusing HTTP connection: max_http_connections (%d) open",
                limit,
                limit="max_http_connections",
            )
            return _Refused(self._response)
        return self.server()

    async def start(self, address: str, port: int) -> int:
        """Listen on ``address:port``; return the bound port.

        Raises:
            OSError: the address cannot be bound.
        """
        loop = asyncio.get_running_loop()
        listener = await loop.create_server(self._protocol, address, port, reuse_address=True)
        self._listener = listener
        return int(listener.sockets[0].getsockname()[1])

    def close(self) -> None:
        """Stop listening (open connections are the server's to shut down)."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()

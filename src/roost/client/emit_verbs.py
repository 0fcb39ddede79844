"""Emits that do not wait for the broker: sending them, flushing them, and closing after them.

Rules of this module:

- An emit (and an owned state's change) is written in order and returns; the broker's reply is
  taken by the client's :class:`~roost.client.window.EmitWindow`. Only a full window makes an
  emit wait, for room.
- Every emit, waiting or not, first raises the oldest fault not yet raised (a refusal, or
  emits a lost connection never confirmed); the emit raising it is not sent.
- ``flush`` waits for every emit sent so far and raises what went wrong with them.
- Leaving the client flushes first (bounded by the ping timeout) unless the block is being
  cancelled; what that flush finds was logged when it happened and is not raised.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from types import TracebackType

import anyio

from roost.client.core import ClientCore
from roost.errors import RoostError
from roost.protocol import messages as m

__all__ = ("EmitVerbs",)


class EmitVerbs(ClientCore):
    """Pipelined emits (see the module rules); mixed into :class:`roost.client.Client`."""

    async def flush(self, timeout: float | None = None) -> None:
        """Wait until the broker confirmed every emit and state change sent so far.

        Raises:
            RemoteError: the broker refused one of them (``path`` names it; a note counts any
                later refusals, which were logged).
            Disconnected: the connection was lost with some of them unconfirmed (the text says
                how many, and on which paths).
            TimeoutError: not all confirmed within ``timeout`` seconds (they stay pending).
        """
        with anyio.fail_after(timeout):
            await self._emits.flush()

    async def _emit_ready(self, timeout: float | None, room: bool) -> None:
        """Raise the oldest unreported fault; with ``room``, wait (at most ``timeout`` seconds)
        while the window is full and the client connected, then look at the faults again."""
        window = self._emits
        window.raise_fault()
        if room and self._connected and len(window.unacked) >= window.size:
            with anyio.fail_after(timeout):
                await window.wait_room()
            window.raise_fault()

    def _send_emit(self, make: Callable[[int], m.Message], path: str, kept: bool) -> None:
        """Send ``make(id)`` on the live connection without waiting for its reply.

        Raises:
            Disconnected: not connected. ConnectionClosed: the client is closed.
        """
        self._live_link().emit(make, path, kept)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Flush (unless cancelled or interrupted), then close as :meth:`ClientCore.__aexit__`."""
        try:
            if self._emits.unacked and (exc is None or isinstance(exc, Exception)):
                # What it finds was logged when it happened; never raised over the block's end.
                with anyio.move_on_after(self.timeout.ping_timeout), suppress(RoostError):
                    await self._emits.flush()
        finally:
            await super().__aexit__(exc_type, exc, tb)

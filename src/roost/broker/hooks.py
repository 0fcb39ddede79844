"""The contract between the synchronous router and the I/O layer that drives it.

Rules of this module:

- The router calls these hooks and never touches sockets, loops or clocks itself; the server
  implements them with asyncio, unit tests with a fake.
- Every hook returns at once: none may block or re-enter the router.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from roost.broker.session import Session

__all__ = ("ServerHooks",)


class ServerHooks(Protocol):
    """What the router needs from the I/O layer (server.py; a fake in unit tests)."""

    def wake(self) -> None:
        """Schedule one flush of every dirty session in this loop iteration."""

    def close_io(self, session: Session, reason: str) -> None:
        """Close the session's transport (cleanup has already happened)."""

    def timeout_changed(self, session: Session) -> None:
        """The session's idle timeout (``session.conn.timeout``) was set by a hello."""

    def call_later(self, delay: float, callback: Callable[[float], None]) -> None:
        """Call ``callback(now)`` after ``delay`` seconds."""

    def peer_gone(self, session: Session) -> bool:
        """True if the peer has closed and every byte it sent was read (a close the event loop
        has not reported yet)."""

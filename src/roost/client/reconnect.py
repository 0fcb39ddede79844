"""Reconnect policy: backoff delays with full jitter, and which failures are worth a retry.

Rules of this module:

- Pure: no sockets, no clock, no sleeping. Randomness is injectable so tests are deterministic.
- A failure is retryable when it says the broker is (maybe only for now) unreachable or gone;
  it is fatal when it says this process is wrong (a bug, or a misuse no retry can fix).
"""

from __future__ import annotations

import os
import random
import ssl
from collections.abc import Callable
from dataclasses import dataclass

import anyio

from roost.errors import ConnectionClosed, LocalProtocolError, ProtocolError

__all__ = ("Backoff", "describe_failure", "is_retryable")


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with full jitter (delay drawn uniformly from ``[0, cap]``).

    Args:
        initial: cap of the first delay, in seconds.
        maximum: the cap never grows beyond this, in seconds.
        factor: growth of the cap per failed attempt.

    Raises:
        ValueError: a non-positive ``initial``, a ``maximum`` below ``initial`` or a ``factor``
            below 1.
    """

    initial: float = 0.1
    maximum: float = 10.0
    factor: float = 2.0

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.maximum < self.initial or self.factor < 1:
            raise ValueError("need 0 < initial <= maximum and factor >= 1")

    def cap(self, attempt: int) -> float:
        """The largest delay before retry number ``attempt`` (0 for the first retry)."""
        if attempt < 0:
            return self.initial
        # Stop growing once past the maximum so huge attempt numbers cannot overflow.
        cap = self.initial
        for _ in range(attempt):
            cap *= self.factor
            if cap >= self.maximum:
                return self.maximum
        return min(cap, self.maximum)

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """The delay before retry number ``attempt``: uniform in ``[0, cap(attempt)]``.

        ``rand`` returns a float in ``[0, 1)``; pass a fixed function for repeatable delays.
        """
        return rand() * self.cap(attempt)


def is_retryable(exc: BaseException) -> bool:
    """Whether losing a connection with ``exc`` should lead to another attempt.

    Network errors (``OSError`` including refused connections and DNS failures), timeouts, a
    closed connection and a peer that broke the protocol are retryable: a restarted or different
    broker may behave. A local protocol error (this process tried to send something it may not)
    and every other exception (a bug) are fatal.
    """
    if isinstance(exc, LocalProtocolError):
        return False
    return isinstance(
        exc,
        (
            OSError,
            TimeoutError,
            ConnectionClosed,
            ProtocolError,
            anyio.EndOfStream,
            anyio.BrokenResourceError,
            anyio.ClosedResourceError,
        ),
    )


def describe_failure(exc: BaseException) -> str:
    """A short reason for a failed connection attempt, for one-line messages.

    An ``OSError`` with an errno reads as the system's text for it (``connection refused``,
    ``name or service not known``);
    anyio's "All connection attempts failed" is replaced by the reason of the first attempt
    it wraps (its cause, or the first of a group of causes).
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return f"TLS certificate verify failed: {current.verify_message}"
        if isinstance(current, ssl.SSLError):
            return f"TLS: {(current.reason or str(current)).lower().replace('_', ' ')}"
        if isinstance(current, OSError) and current.errno:
            # asyncio's own text names the address again; the errno's text is the reason. A
            # resolver error has a negative errno and its own text.
            text = os.strerror(current.errno) if current.errno > 0 else current.strerror
            return str(text or current).lower()
        cause = current.__cause__
        if isinstance(cause, BaseExceptionGroup) and cause.exceptions:
            cause = cause.exceptions[0]
        current = cause
    return str(exc) or type(exc).__name__

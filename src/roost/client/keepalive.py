"""When a lease holder must prove it is alive, and when it must give a lease up: pure arithmetic.

Rules of this module:

- The broker ends a lease for silence no sooner than the send time of the latest answered
  request plus the server timeout, and for its ttl no sooner than the latest accepted retain
  plus the ttl (protocol.md §E8). The client gives a lease up a :func:`margin` earlier, so it
  never acts on a lease the broker may already have ended.
- Keep-alives come often enough that two of them can be late before that local deadline.
- Times are ``time.monotonic()`` seconds passed in; nothing here reads a clock.
"""

from __future__ import annotations

import math

__all__ = ("keepalive_interval", "local_deadline", "margin")


def margin(seconds: float) -> float:
    """How much earlier than the broker the client gives up a lease: max(0.5 s, 10 %)."""
    return max(0.5, 0.1 * seconds)


def keepalive_interval(seconds: float) -> float:
    """How often to prove liveness against a limit of ``seconds`` (server timeout or ttl): a
    third of it, and soon enough that two answers can be late before the local deadline."""
    lead = seconds - margin(seconds)
    return min(seconds / 3, lead / 2) if lead > 0 else seconds / 4


def local_deadline(
    *,
    server_timeout: float,
    last_answered_send: float | None,
    ttl: float | None,
    retained_at: float,
) -> tuple[float, str]:
    """When a lease must count as lost, and the reason it would then have.

    Args:
        server_timeout: the timeout declared in hello (0: the broker never times us out).
        last_answered_send: send time of the latest request the broker answered on the current
            connection, or ``None`` without a connection.
        ttl: the lease's ttl, or ``None``/0 for none.
        retained_at: when the latest retain (or the grant) was sent.

    Returns:
        ``(deadline, reason)`` with reason ``"timeout"`` or ``"expired"``; ``(inf, "")`` when
        nothing limits the lease.
    """
    deadline, reason = math.inf, ""
    if server_timeout and last_answered_send is not None:
        deadline = last_answered_send + server_timeout - margin(server_timeout)
        reason = "timeout"
    if ttl:
        expiry = retained_at + ttl - margin(ttl)
        if expiry < deadline:
            deadline, reason = expiry, "expired"
    return deadline, reason

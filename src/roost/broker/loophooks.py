"""The server's side of the router's hooks (:class:`~roost.broker.hooks.ServerHooks`): one
flush of every connection's output per event-loop iteration, closes, timers, worker threads.

Rules of this module:

- Output is flushed once per event-loop iteration: the first frame queued in an iteration
  schedules a single ``call_soon``; the flush writes each dirty session's outbox in one write
  and closes (``slow_consumer``) those over their bound.
- Every ``now`` handed to the router is the event loop's ``loop.time()``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from roost.broker.guard import Deadlines, peer_gone
from roost.broker.limits import Limits
from roost.broker.router import Router
from roost.broker.session import Session
from roost.protocol.values import unpack

__all__ = ("LoopHooks", "client_repr")

conn_log = logging.getLogger("roost.broker.connection")


class LoopHooks:
    """The router's view of the server (flush scheduling, closing, timers).

    Args:
        loop: the broker's event loop.
        limits: the broker's limits (the idle and hello deadlines).
        key_worker: the executor that hashes lock keys (made on first use).
    """

    __slots__ = ("_flush_scheduled", "idle", "key_worker", "loop", "router")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        limits: Limits,
        key_worker: Callable[[], ThreadPoolExecutor],
    ) -> None:
        self.loop = loop
        self.key_worker = key_worker
        #: The router these hooks serve (set once it exists: it is made with the hooks).
        self.router: Router
        self._flush_scheduled = False
        self.idle = Deadlines(loop, self._expire, limits)

    def _expire(self, session: Session, reason: str, now: float) -> None:
        self.router.disconnect(session, reason, now)

    def wake(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self.flush)

    def flush(self) -> None:
        """Write every dirty session's outbox in one write; close those over their bound."""
        self._flush_scheduled = False
        router = self.router
        stats = router.stats
        dirty = router.dirty
        while dirty:
            batch = dirty[:]
            dirty.clear()
            for session in batch:
                if not session.outbox:
                    continue
                if not session.accepting:
                    session.outbox.clear()
                    session.out_size = 0
                    continue
                writer = session.writer
                stats.frames_out += len(session.outbox)
                data = session.take_output()
                stats.bytes_out += len(data)
                writer.write(data)
                backlog = writer.get_write_buffer_size()
                session.backlog = backlog
                if backlog > session.max_outbound:
                    session.accepting = False
                    router.doomed.append(session)
            if router.doomed:
                router.reap(self.loop.time())

    def close_io(self, session: Session, reason: str) -> None:
        self.idle.disarm(session)
        transport = session.writer
        if transport is not None and not transport.is_closing():
            if reason == "shutdown" or (
                reason == "disconnected" and not transport.get_write_buffer_size()
            ):
                transport.close()  # a stopping broker still delivers what it queued last
            else:
                # Output still buffered for a peer that stopped reading must not pin memory.
                transport.abort()
        conn_log.info(
            "connection closed: peer=%s client=%s reason=%s",
            session.peer,
            client_repr(session),
            reason,
            extra={"peer": session.peer, "client": client_repr(session), "reason": reason},
        )

    def timeout_changed(self, session: Session) -> None:
        self.idle.arm(session)

    def peer_gone(self, session: Session) -> bool:
        return peer_gone(session)

    def call_later(self, delay: float, callback: Callable[[float], None]) -> None:
        loop = self.loop
        if delay <= 0:
            # Next loop iteration, without a timer (uvloop's timers tick in milliseconds).
            loop.call_soon(lambda: callback(loop.time()))
        else:
            loop.call_later(delay, lambda: callback(loop.time()))

    def offload(
        self, work: Callable[[], None], done: Callable[[BaseException | None, float], None]
    ) -> None:
        """Run ``work`` in a worker thread, then ``done(error, now)`` on the loop."""
        loop = self.loop

        def finished(future: asyncio.Future[None]) -> None:
            if not future.cancelled():
                done(future.exception(), loop.time())

        loop.run_in_executor(None, work).add_done_callback(finished)

    def run_blocking(self, work: Callable[[], Any], then: Callable[[Any, float], None]) -> None:
        """Run slow ``work`` (a lock key's scrypt) in a worker thread, then ``then(result,
        now)`` back on the loop; nothing is waited for on the loop."""
        loop = self.loop
        future = loop.run_in_executor(self.key_worker(), work)
        future.add_done_callback(lambda f: None if f.cancelled() else then(f.result(), loop.time()))


def client_repr(session: Session) -> str:
    if session.client_id is None:
        return "-"
    try:
        return repr(unpack(session.client_id))
    except Exception:
        return session.client_id.hex()

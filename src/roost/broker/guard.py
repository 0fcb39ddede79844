"""Connection guards: deadlines, the accept loop with its fd back-off and connection cap, and
owner liveness.

Rules of this module:

- Deadlines cost nothing per message: a chunk of bytes only records its time (and, when it
  leaves a frame unfinished, when that frame began); one heap of deadlines on one event-loop
  timer re-checks a connection when its earliest deadline comes due (§12).
- A connection's deadlines: its hello (``hello_timeout`` from the accept), its idle timeout
  (``timeout_s`` of its hello; ``max_idle`` when that was 0), and the frame it started
  (``frame_timeout``). Each closes the connection with its own logged reason. The hello
  deadline and ``max_idle`` apply to connections with a socket: the listener's and the
  gateway's websockets (whose links report their TCP socket). The gateway's own in-process
  session has none and is left alone (it says hello with timeout 0 and must outlive quiet
  hours).
- Accepting never raises and never spins: out of descriptors (EMFILE/ENFILE), accepting pauses
  for ``accept_backoff`` seconds and one line per minute says so, with the limit and the
  ``ulimit -n`` hint; at ``max_connections`` a new connection is closed at once. Both work the
  same on asyncio and uvloop: the listening socket is ours, the loop only watches it.
- Whether an owner is gone is read from its own socket's receive queue without allocating a
  descriptor; any error other than a reset means "still there".
"""

from __future__ import annotations

import asyncio
import errno
import heapq
import logging
import resource
import socket
import time
from collections.abc import Callable
from ssl import SSLContext
from typing import Any, Final

from roost.broker.limits import Limits
from roost.broker.session import Session

__all__ = ("Acceptor", "Deadlines", "LogEvery", "bind_sockets", "peer_gone")

log = logging.getLogger("roost.broker")

#: Errors of ``accept`` that mean the process or system is out of something: back off.
_EXHAUSTED: Final = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
#: Errors of ``accept`` about that one connection only: go on accepting.
_TRANSIENT: Final = frozenset(
    {errno.ECONNABORTED, errno.EPROTO, errno.EPERM, errno.EINTR, errno.ENETDOWN}
)
# A hair of slack: the loop may wake a clock tick before a deadline.
_SLACK: Final = 0.0005


class LogEvery:
    """Log a repeated problem at most once per ``interval`` seconds, counting the ones held
    back (the first one of a burst is logged at once); to ``logger`` at ``level``."""

    __slots__ = ("_held", "_interval", "_last", "_level", "_logger")

    def __init__(
        self,
        interval: float = 60.0,
        logger: logging.Logger = log,
        level: int = logging.WARNING,
    ) -> None:
        self._interval = interval
        self._last = float("-inf")
        self._held = 0
        self._logger = logger
        self._level = level

    def __call__(self, msg: str, *args: Any, **extra: Any) -> None:
        now = time.monotonic()
        if now - self._last < self._interval:
            self._held += 1
            return
        held, self._held = self._held, 0
        self._last = now
        suffix = f" ({held} more since the last report)" if held else ""
        self._logger.log(self._level, msg + suffix, *args, extra=extra)


class Deadlines:
    """Every connection's deadlines, on one event-loop timer.

    Each connection with a deadline has one live entry ``(deadline, seq, session)`` in a heap;
    ``session.timer`` holds the deadline of that entry, which is never later than the
    connection's earliest deadline. When it comes due the real deadlines are recomputed: the
    connection is closed if one has passed, and otherwise re-entered. Entries of closed or
    re-armed connections are stale and skipped; the heap is compacted when most of it is stale.
    """

    __slots__ = (
        "_expire",
        "_frame",
        "_handle",
        "_heap",
        "_hello",
        "_idle",
        "_seq",
        "_stale",
        "_when",
        "loop",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        expire: Callable[[Session, str, float], None],
        limits: Limits,
    ) -> None:
        self.loop = loop
        self._expire = expire
        self._hello = limits.hello_timeout
        self._frame = limits.frame_timeout
        self._idle = limits.max_idle
        self._heap: list[tuple[float, int, Session]] = []
        self._seq = 0
        self._stale = 0
        self._handle: asyncio.TimerHandle | None = None
        self._when = float("inf")

    def due(self, session: Session) -> tuple[float, str] | None:
        """The connection's earliest deadline and its close reason, or ``None``."""
        best: tuple[float, str] | None = None
        conn = session.conn
        if not conn.hello_done:
            if self._hello > 0 and _on_socket(session):
                best = (session.opened + self._hello, "hello_timeout")
        elif conn.timeout > 0:
            best = (session.last_received + conn.timeout, "timeout")
        elif self._idle > 0 and _on_socket(session):
            best = (session.last_received + self._idle, "idle_timeout")
        if session.frame_since is not None and self._frame > 0:
            frame = session.frame_since + self._frame
            if best is None or frame < best[0]:
                best = (frame, "frame_timeout")
        return best

    def arm(self, session: Session) -> None:
        """Make sure an entry comes due no later than the connection's earliest deadline (call
        after any change that may bring a deadline forward)."""
        if session.closed:
            return
        due = self.due(session)
        if due is None:
            self.disarm(session)
        elif session.timer is None or due[0] < session.timer:
            self.disarm(session)
            self._push(session, due[0])

    def received(self, session: Session, now: float, completed: bool) -> None:
        """A chunk arrived at ``now``; ``completed``: it finished at least one frame. Records
        when the unfinished frame it leaves (if any) began."""
        if session.conn.partial:
            if completed or session.frame_since is None:
                session.frame_since = now
                if self._frame > 0 and (session.timer is None or session.timer > now + self._frame):
                    self.arm(session)
        else:
            session.frame_since = None

    def disarm(self, session: Session) -> None:
        """Stop the connection's timer (its heap entry becomes stale)."""
        if session.timer is not None:
            session.timer = None
            self._stale += 1
            heap = self._heap
            if self._stale > 64 and self._stale * 2 > len(heap):
                heap[:] = [entry for entry in heap if entry[2].timer == entry[0]]
                heapq.heapify(heap)
                self._stale = 0

    def _push(self, session: Session, deadline: float) -> None:
        session.timer = deadline
        self._seq += 1
        heapq.heappush(self._heap, (deadline, self._seq, session))
        if deadline < self._when:
            if self._handle is not None:
                self._handle.cancel()
            self._when = deadline
            self._handle = self.loop.call_at(deadline, self._run)

    def _run(self) -> None:
        self._handle = None
        self._when = float("inf")
        heap = self._heap
        now = self.loop.time()
        while heap and heap[0][0] <= now + _SLACK:
            deadline, _, session = heapq.heappop(heap)
            if session.timer != deadline:
                self._stale = max(0, self._stale - 1)
                continue
            session.timer = None
            if session.closed:
                continue
            due = self.due(session)
            if due is None:
                continue
            if due[0] <= now + _SLACK:
                self._expire(session, due[1], now)
            else:
                self._push(session, due[0])
        if heap and heap[0][0] < self._when:
            self._when = heap[0][0]
            self._handle = self.loop.call_at(self._when, self._run)


def _on_socket(session: Session) -> bool:
    """True for a connection with a socket (the listener's, or a websocket's); the gateway's
    own in-process session gets no hello deadline or ``max_idle`` from here."""
    writer = session.writer
    return writer is None or writer.get_extra_info("socket") is not None


def peer_gone(session: Session) -> bool:
    """True if the peer has closed and every byte it sent was read (a close the event loop has
    not reported yet). Reads the connection's own receive queue (``MSG_PEEK``) on its own
    descriptor, so it needs no new descriptor and works at the fd limit; any doubt is
    "not gone"."""
    transport = session.writer
    if transport is None or transport.is_closing():
        return True
    sock = transport.get_extra_info("socket")
    if sock is None:
        return False
    try:
        fd = sock.fileno()
    except (OSError, ValueError):
        return False
    if fd < 0:
        return True
    try:
        probe = socket.socket(fileno=fd)  # wraps the same descriptor: no new one is opened
    except OSError:
        return False
    try:
        return probe.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True
    except OSError:
        return False  # would block, or something unrelated to this peer: it is there
    finally:
        probe.detach()


def _fd_limit() -> str:
    try:
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (OSError, ValueError):
        return "unknown"
    return "unlimited" if soft == resource.RLIM_INFINITY else str(soft)


async def bind_sockets(host: str, port: int, backlog: int = 128) -> list[socket.socket]:
    """Bind and listen on every address ``host`` resolves to (non-blocking sockets).

    Raises:
        OSError: an address cannot be resolved or bound.
    """
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )
    sockets: list[socket.socket] = []
    seen: set[Any] = set()
    try:
        for family, kind, proto, _, address in infos:
            if (family, address) in seen:
                continue
            seen.add((family, address))
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6 and hasattr(socket, "IPPROTO_IPV6"):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(backlog)
            sock.setblocking(False)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


class Acceptor:
    """Accepts connections on one listening socket for ``factory``'s protocols.

    Args:
        loop: the event loop (asyncio or uvloop).
        sock: a bound, listening, non-blocking socket (closed by :meth:`close`).
        factory: makes the protocol of an accepted connection.
        count: how many connections are open now.
        limits: ``max_connections`` and ``accept_backoff``.
        ssl: the TLS context of a TLS listener (a failed handshake is logged like any failed
            connection set-up).
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        factory: Callable[[], asyncio.BaseProtocol],
        count: Callable[[], int],
        limits: Limits,
        *,
        ssl: SSLContext | None = None,
    ) -> None:
        self.loop = loop
        self._ssl = ssl
        self.sock = sock
        self._factory = factory
        self._count = count
        self._max = limits.max_connections
        self._backoff = limits.accept_backoff
        self._starting: set[asyncio.Task[Any]] = set()
        self._paused: asyncio.TimerHandle | None = None
        self._closed = False
        self._warn_fd = LogEvery()
        self._warn_full = LogEvery()
        #: Connections closed at accept because ``max_connections`` were open.
        self.refused = 0
        #: Times accepting paused because descriptors ran out.
        self.backoffs = 0

    def start(self) -> None:
        """Start watching the socket."""
        self.loop.add_reader(self.sock.fileno(), self._ready)

    def close(self) -> None:
        """Stop accepting and close the listening socket."""
        if self._closed:
            return
        self._closed = True
        for task in self._starting:
            task.cancel()
        if self._paused is not None:
            self._paused.cancel()
        else:
            self.loop.remove_reader(self.sock.fileno())
        self.sock.close()

    def _resume(self) -> None:
        self._paused = None
        if not self._closed:
            self.start()

    def _ready(self) -> None:
        for _ in range(64):  # a bounded batch, then other callbacks get their turn
            try:
                conn, address = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in _TRANSIENT:
                    continue
                self._pause(exc)
                return
            if self._max and self._count() + len(self._starting) >= self._max:
                self.refused += 1
                self._warn_full(
                    "refusing connection from %s: max_connections (%d) open",
                    address,
                    self._max,
                    limit="max_connections",
                )
                conn.close()  # the client reads end-of-stream at once instead of hanging
                continue
            conn.setblocking(False)
            task = self.loop.create_task(self._connect(conn))
            self._starting.add(task)
            task.add_done_callback(self._starting.discard)

    async def _connect(self, conn: socket.socket) -> None:
        try:
            await self.loop.connect_accepted_socket(self._factory, conn, ssl=self._ssl)
        except asyncio.CancelledError:
            conn.close()
            raise
        except OSError as exc:
            conn.close()
            self._warn_fd("cannot set up an accepted connection: %s", exc)

    def _pause(self, exc: OSError) -> None:
        """Out of descriptors (or another resource): stop watching for ``accept_backoff``."""
        self.backoffs += 1
        if exc.errno in _EXHAUSTED:
            self._warn_fd(
                "cannot accept connections: %s (open file limit %s); pausing accepts for %g s; "
                "raise the limit with `ulimit -n` or lower max_connections",
                exc.strerror or exc,
                _fd_limit(),
                self._backoff,
                limit="ulimit -n",
            )
        else:
            self._warn_fd("cannot accept connections: %s; pausing for %g s", exc, self._backoff)
        self.loop.remove_reader(self.sock.fileno())
        self._paused = self.loop.call_later(self._backoff, self._resume)

"""Pipelined emits: what a client sent without waiting, until the broker confirms it.

Rules of this module:

- An emit (or an owned state's change) sent without waiting for its reply is kept here by its
  request id until the reply comes: an ``ok`` just removes it; an error reply becomes a fault,
  logged once when it arrives.
- At most ``size`` are unconfirmed at a time; a further emit waits for room.
- Faults are raised once, by the next emit or flush: the first one, with a note counting any
  others (which were logged). A lost connection turns the emits it never confirmed into one
  ``Disconnected`` fault saying how many (an owned state's change is not counted: its latest
  value is published again after the reconnect).
- Nothing per emit but one dict entry: no task, no future. Waiters (a full window, a flush)
  share one event, set by the replies that arrive while one exists.
"""

from __future__ import annotations

import logging

import anyio

from roost.errors import Disconnected, InvalidValue, RemoteError, RoostError
from roost.protocol import messages as m

__all__ = ("DEFAULT_WINDOW", "MAX_WINDOW", "EmitWindow", "Unacked")

log = logging.getLogger("roost.client")

#: Emits a client may have unconfirmed before the next one waits (``Client(emit_window=...)``).
DEFAULT_WINDOW = 1024
#: The largest window: half the request ids, leaving the rest to requests that wait.
MAX_WINDOW = 32768

#: One unconfirmed emit: its sequence number, send time, path, and whether a reconnect
#: publishes it again (an owned state's value), so that losing it loses nothing.
Unacked = tuple[int, float, str, bool]


class EmitWindow:
    """The emits one client sent without waiting, and what went wrong with them."""

    __slots__ = ("_wakeup", "faults", "seq", "size", "unacked")

    def __init__(self, size: int = DEFAULT_WINDOW) -> None:
        if not 1 <= size <= MAX_WINDOW:
            raise ValueError(f"emit_window must be in 1..{MAX_WINDOW}, not {size}")
        self.size = size
        #: The unconfirmed emits of the current connection, by request id, oldest first.
        self.unacked: dict[int, Unacked] = {}
        #: Emits sent so far (the sequence number of the latest).
        self.seq = 0
        #: Refusals and losses not yet raised, oldest first.
        self.faults: list[RoostError] = []
        #: Set by the next reply while someone waits (``None``: nobody waits).
        self._wakeup: anyio.Event | None = None

    @property
    def waiting(self) -> bool:
        """Whether a full window or a flush waits for replies."""
        return self._wakeup is not None

    def sent(self, rid: int, sent_at: float, path: str, kept: bool) -> None:
        """Record an emit just sent with request id ``rid``."""
        self.seq += 1
        self.unacked[rid] = (self.seq, sent_at, path, kept)

    def settle(self, entry: Unacked, reply: m.Message | m.BadValue) -> None:
        """Take the reply to the emit ``entry`` (already removed from :attr:`unacked`): keep an
        error as a fault, wake the waiters. Only needed for an error or while someone waits;
        an ``ok`` otherwise costs nothing but the removal."""
        path = entry[2]
        error: RoostError | None = None
        if isinstance(reply, m.ReplyError):
            error = RemoteError(reply.value.obj, path)
        elif isinstance(reply, m.BadValue):
            error = InvalidValue(f"{path}: the broker's reply had an invalid value: {reply.reason}")
        if error is not None:
            log.warning("the broker refused an emit on %s: %s", path, error)
            self.faults.append(error)
        self.wake()

    def wake(self) -> None:
        """Wake every waiter (each looks again at what it waits for)."""
        wakeup = self._wakeup
        if wakeup is not None:
            self._wakeup = None
            wakeup.set()

    def failed(self, path: str, error: BaseException) -> None:
        """An emit handed over for sending could not be sent: keep that as a fault."""
        fault = error if isinstance(error, RoostError) else RoostError(f"{path}: {error!r}")
        if isinstance(error, Disconnected):
            fault = Disconnected(f"an emit on {path} was not sent: {error}")
        log.warning("an emit on %s was not sent: %s", path, error)
        self.faults.append(fault)
        self.wake()

    def link_lost(self, why: str) -> None:
        """The connection died: its unconfirmed emits become one ``Disconnected`` fault."""
        unacked = self.unacked
        if unacked:
            lost = [entry[2] for entry in unacked.values() if not entry[3]]
            unacked.clear()
            if lost:
                paths = sorted(set(lost))
                shown = ", ".join(paths[:3]) + (f" and {len(paths) - 3} more" if paths[3:] else "")
                count = f"{len(lost)} emits" if lost[1:] else "1 emit"
                error = Disconnected(f"{count} on {shown} not confirmed: {why}")
                log.warning("%s", error)
                self.faults.append(error)
        self.wake()

    def raise_fault(self) -> None:
        """Raise the oldest fault not yet raised (noting how many more there were), if any.

        Raises:
            RemoteError: the broker refused an emit (``path`` names it).
            Disconnected: a lost connection left emits unconfirmed (how many is in the text).
        """
        faults = self.faults
        if faults:
            first = faults[0]
            if len(faults) > 1:
                first.add_note(f"{len(faults) - 1} more emits failed after it (each was logged)")
            faults.clear()
            raise first

    async def _wait(self) -> None:
        wakeup = self._wakeup
        if wakeup is None:
            wakeup = self._wakeup = anyio.Event()
        await wakeup.wait()

    async def wait_room(self) -> None:
        """Wait until fewer than ``size`` emits are unconfirmed (a lost connection makes room)."""
        while len(self.unacked) >= self.size:
            await self._wait()

    async def flush(self) -> None:
        """Wait until every emit sent so far is confirmed or lost, then raise the oldest fault.

        Raises:
            RemoteError, Disconnected: as :meth:`raise_fault`.
        """
        target = self.seq
        unacked = self.unacked
        while unacked and next(iter(unacked.values()))[0] <= target:
            await self._wait()
        self.raise_fault()

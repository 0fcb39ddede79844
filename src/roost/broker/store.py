"""Stored values: broker-owned states that keep their value across restarts.

Rules of this module:

- A stored value is an ordinary internal state node: any ESHET client may ``get``, observe
  and ``set`` it, and subtree observers see it like any state. It exists from start-up when
  configured in ``paths`` or kept in the store file, or is created by the first ``set`` of a
  free path matching a ``create`` pattern (an ownerless state that is merely observed there is
  adopted, its observers kept).
- A ``set`` is acknowledged only once its value is on disk: sets are gathered into a batch
  while the event loop runs, the batch is written by one atomic file replace (with fsync) in a
  worker thread, and only then are the values applied, the observers notified and the ``ok``
  replies sent, in the order the sets arrived. The loop never waits for the disk; one write
  is in flight at a time, and sets that arrive meanwhile form the next batch. A value is
  visible (``get``, observers) only once it is durable. With ``fsync = false`` the batch is
  written on the loop itself (a copy into the page cache, atomic by rename, but not durable
  against power loss).
- A write that fails answers every set of its batch with ``store_failed`` and changes nothing.
- Limits are checked when the set arrives: ``value_too_large`` above ``max_value``,
  ``store_full`` when the stored values would pass ``max_total``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from functools import partial
from pathlib import Path

from roost.broker import frames, states
from roost.broker.router import Router
from roost.broker.session import Session
from roost.broker.storefile import StoreSettings, read_store, write_store
from roost.broker.subscriptions import reserved
from roost.broker.subtree import parse_pattern
from roost.broker.tree import STATE, Node
from roost.broker.view import RouterView
from roost.errors import StoreError
from roost.protocol import messages as m

__all__ = ("Offload", "Store", "install_store")

log = logging.getLogger("roost.broker.store")

#: Run ``work()`` off the event loop, then ``done(error_or_None, now)`` back on it.
Offload = Callable[[Callable[[], None], Callable[[BaseException | None, float], None]], None]

#: (requester, request id, path, value bytes) of a set waiting for the disk.
_Waiting = tuple[Session, int, str, bytes]


class Store:
    """The stored values of one broker, in ``directory``.

    Raises:
        StoreError: the store file is damaged or unreadable, or a stored path cannot be made
            a node (another node is in the way).
    """

    def __init__(
        self,
        router: RouterView,
        settings: StoreSettings,
        directory: str | os.PathLike[str],
        offload: Offload,
        now: float,
    ) -> None:
        self.router = router
        self.settings = settings
        self.directory = Path(directory)
        self._offload = offload
        self._create = [parse_pattern(pattern) for pattern in settings.create]
        #: Durable values by path (what the file holds).
        self.values: dict[str, bytes] = read_store(self.directory)
        #: The latest value of each path, sets not yet durable included (for the limits).
        self._latest: dict[str, bytes] = dict(self.values)
        self._latest_total = sum(len(raw) for raw in self.values.values())
        self.nodes: dict[str, Node[Session]] = {}
        self._waiting: list[_Waiting] = []
        self._in_flight = False
        self._scheduled = False
        for path in (*self.values, *settings.paths):
            if reserved(path):
                raise StoreError(f"stored value {path} cannot be served: the path is reserved")
            if path not in self.nodes:
                try:
                    node = states.internal_node(router.tree, path, STATE, now)
                except ValueError as exc:
                    raise StoreError(f"stored value {path} cannot be served: {exc}") from exc
                node.value = self.values.get(path)
                self.nodes[path] = node

    @property
    def pending(self) -> int:
        """Sets waiting for the disk (in flight or not yet written)."""
        return len(self._waiting) + (1 if self._in_flight else 0)

    def _creatable(self, path: str) -> bool:
        segments = path[1:].split("/")
        return any(_matches(pattern, segments) for pattern in self._create)

    def set(self, session: Session, msg: m.Set, node: Node[Session] | None, now: float) -> bool:
        """A ``set`` of ``node`` (``None``: no node at that path). Returns ``False`` when the
        path is none of the store's business (the router goes on as usual); otherwise the
        set is answered here, now or once its batch is on disk."""
        path = msg.path
        if node is None or self.nodes.get(path) is not node:
            if not self._creatable(path) or reserved(path):
                return False
            if node is not None and (
                node.kind is not STATE or node.owner is not None or node.internal
            ):
                return False
            if node is None and self.router.tree.check_free(path) is not None:
                return False
        raw = msg.value.raw
        error = self._check(path, raw)
        if error is not None:
            session.push(frames.err(msg.id, error))
            return True
        if node is None or self.nodes.get(path) is not node:
            node = states.internal_node(self.router.tree, path, STATE, now)
            self.nodes[path] = node
        self._latest_total += len(raw) - len(self._latest.get(path, b""))
        self._latest[path] = raw
        self._waiting.append((session, msg.id, path, raw))
        self._schedule()
        return True

    def _check(self, path: str, raw: bytes) -> str | None:
        settings = self.settings
        if len(raw) > settings.max_value or len(raw) + len(path) + 2 > frames.MAX_PAYLOAD:
            return "value_too_large"
        if self._latest_total + len(raw) - len(self._latest.get(path, b"")) > settings.max_total:
            return "store_full"
        return None

    def _schedule(self) -> None:
        if not self._scheduled and not self._in_flight:
            self._scheduled = True
            # Runs after every message already read in this loop iteration: one batch.
            self.router.hooks.call_later(0, self._commit)

    def _commit(self, now: float) -> None:
        self._scheduled = False
        if self._in_flight or not self._waiting:
            return
        batch, self._waiting = self._waiting, []
        values = dict(self.values)
        for _, _, path, raw in batch:
            values[path] = raw
        if not self.settings.fsync:
            # Without fsync a write is a copy into the page cache: done here, no thread hop.
            error: OSError | None = None
            try:
                write_store(self.directory, values, fsync=False)
            except OSError as exc:
                error = exc
            self._written(batch, values, error, now)
            return
        self._in_flight = True
        work = partial(write_store, self.directory, values, True)
        self._offload(work, partial(self._written, batch, values))

    def _written(
        self,
        batch: list[_Waiting],
        values: dict[str, bytes],
        error: BaseException | None,
        now: float,
    ) -> None:
        self._in_flight = False
        if error is not None:
            log.error("cannot write the store file in %s: %s", self.directory, error)
            for session, rid, _, _ in batch:
                if not session.closed:
                    session.push(frames.err(rid, "store_failed"))
            # What is not durable is forgotten: the limits count the file and the later sets.
            self._latest = dict(self.values)
            for _, _, path, raw in self._waiting:
                self._latest[path] = raw
            self._latest_total = sum(len(raw) for raw in self._latest.values())
        else:
            self.values = values
            for session, rid, path, raw in batch:
                # The setter's ok first, as for an owner's update: a setter that also observes
                # sees its ok before its own notification.
                if not session.closed:
                    session.push(frames.ok_nil(rid))
                node = self.nodes.get(path)
                if node is not None:
                    states.set_state(node, raw, now)
        if self._waiting:
            self._schedule()


def _matches(pattern: tuple[str, ...], segments: list[str]) -> bool:
    if pattern[-1] == "**":
        head = pattern[:-1]
        if len(segments) <= len(head):
            return False
    elif len(segments) != len(pattern):
        return False
    else:
        head = pattern
    return all(p in ("+", s) for p, s in zip(head, segments, strict=False))


def install_store(
    router: Router,
    settings: StoreSettings,
    directory: str | os.PathLike[str] | None,
    offload: Offload,
    now: float,
) -> Store:
    """Load the stored values and route sets of stored paths to them.

    Raises:
        StoreError: no state dir was given, or see :class:`Store`.
    """
    if directory is None:
        raise StoreError("stored values need a state dir (--state-dir)")
    store = Store(router, settings, directory, offload, now)
    router.store_set = store.set
    return store

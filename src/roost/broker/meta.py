"""The broker's own nodes under /meta: ``ls``, ``broker`` and ``clients`` (protocol.md §15).

Rules of this module:

- These nodes are ``internal``: never removed, owned by the broker (protocol.md §15).
- ``/meta/clients`` is rebuilt at most once per 100 ms while observed, and lazily on ``get`` or
  observe otherwise; its value is cut to fit one frame, with ``clients_total`` (§15.3). It appears
  in ``/meta/ls`` once it has been read or observed.
- Synchronous, like the router that calls it.
"""

from __future__ import annotations

from typing import Any, Final

from roost._version import __version__
from roost.broker import frames
from roost.broker.session import Session
from roost.broker.tree import ACTION, STATE, Dir, Node, entry_size, valid_ls_path
from roost.broker.view import RouterView
from roost.protocol import messages as m
from roost.protocol.values import Value, pack

__all__ = ("CLIENTS_INTERVAL", "EXTENSIONS", "Meta", "broker_info", "ls_size")

#: What ``/meta/broker`` announces (protocol.md E1): leases, subtree subscriptions, durable
#: locks and resource pools, each in version 1.
EXTENSIONS: Final = {"lease": 1, "subtree": 1, "locks": 1, "pools": 1, "auth": 1}
#: Minimum spacing of /meta/clients notifications under churn, in seconds.
CLIENTS_INTERVAL: Final = 0.1
#: The largest encoded /meta/clients value (an observe_t reply adds 7 bytes of header).
_CLIENTS_BUDGET: Final = frames.MAX_PAYLOAD - 7 - 64


def ls_size(found: Dir[Any], hidden: int = 0) -> int:
    """The size ``/meta/ls`` of ``found`` is held to: 3 plus its encoded ``["dir", entries]``
    (the reply payload's type byte and id), the same bound the listing would be checked against.

    ``hidden`` children (at most /meta/clients, a state) are left out.
    """
    count = found.count - hidden
    listed = found.listed - hidden * entry_size("clients", STATE)
    head = 1 if count < 16 else 3 if count < 0x10000 else 5
    return 3 + 1 + 4 + head + listed


def broker_info() -> dict[str, Any]:
    """The value of ``/meta/broker`` (protocol.md §15.2): name, version and extensions."""
    return {"name": "roost", "version": __version__, "extensions": dict(EXTENSIONS)}


class Meta:
    """The /meta nodes of one router."""

    def __init__(self, router: RouterView, now: float) -> None:
        self.router = router
        tree = router.tree
        self.ls_node = tree.create("/meta/ls", ACTION, now)
        self.ls_node.internal = True
        self.broker_node = tree.create("/meta/broker", STATE, now)
        self.broker_node.internal = True
        self.broker_node.value = pack(broker_info())
        self.clients_node = tree.create("/meta/clients", STATE, now)
        self.clients_node.internal = True
        self.clients_node.value = None
        # /meta/clients joins the /meta listing once somebody read or observed it, so an empty
        # broker lists exactly eshetsrv's nodes plus /meta/broker (protocol.md §15.1).
        self._clients_listed = False
        self._stale = True
        self._scheduled = False
        self._published = float("-inf")
        self._degraded: dict[str, str] = {}

    # -- /meta/ls ------------------------------------------------------------------------------

    def call(self, session: Session, msg: m.ActionCall, node: Node[Session], now: float) -> None:
        """Answer a call to a broker-owned action (``/meta/ls``); a user under access rules sees
        only what it has some permission on (or below)."""
        args = msg.args.obj
        if not (isinstance(args, list) and len(args) == 1 and isinstance(args[0], str)):
            session.push(frames.err(msg.id, "bad_args"))
            return
        path: str = args[0]
        if not valid_ls_path(path):
            session.push(frames.err(msg.id, "invalid_path"))
            return
        if len(path) > 1 and path.endswith("/"):
            path = path[:-1]
        found = self.router.tree.lookup_dir(path)
        if isinstance(found, str):
            session.push(frames.err(msg.id, found))
            return
        grants = session.grants
        if grants is not None and not grants.sees(path):
            session.push(frames.err(msg.id, "path_not_found"))
            return
        if isinstance(found, Node):
            session.push(frames.reply(0x05, msg.id, pack(found.kind)))
            return
        if ls_size(found, self._hidden(found)) > frames.MAX_PAYLOAD:
            # Known from the directory's running size: no listing is built to find it out.
            session.push(frames.err(msg.id, "value_too_large"))
            return
        base = "" if path == "/" else path
        entries = [
            [name, "dir" if isinstance(child, Dir) else child.kind]
            for name, child in sorted(found.children.items())
            if (child is not self.clients_node or self._clients_listed)
            and (grants is None or grants.sees(f"{base}/{name}"))
        ]
        session.push(frames.reply(0x05, msg.id, pack(["dir", entries])))

    def _hidden(self, found: Dir[Session]) -> int:
        """How many children of ``found`` the listing leaves out (/meta/clients until read)."""
        clients = self.clients_node
        return int(clients.parent is found and not self._clients_listed)

    # -- /meta/broker and /meta/clients --------------------------------------------------------

    def set_degraded(self, part: str, problem: str | None, now: float) -> None:
        """Report (or clear, with ``None``) a problem of one part of the broker in
        ``/meta/broker``: its value gains ``degraded: {part: problem}`` while any remains."""
        if problem is None:
            self._degraded.pop(part, None)
        else:
            self._degraded[part] = problem
        value = broker_info()
        if self._degraded:
            value["degraded"] = dict(self._degraded)
        self.router.publish_state(self.broker_node.path, Value.of(value), now)

    def set_error(self, node: Node[Session]) -> str:
        """The error a client's ``set`` of a broker-owned state gets."""
        return "not_implemented" if node is self.broker_node else "not_owner"

    def refresh(self, node: Node[Session], now: float) -> None:
        """Bring a lazily maintained broker state up to date before it is read."""
        if node is self.clients_node:
            self._clients_listed = True
            if self._stale:
                node.value = self._clients_value()
                self._stale = False

    def clients_changed(self, now: float) -> None:
        """A client connected, registered or left: republish within 100 ms (rate limited)."""
        self._stale = True
        if self._scheduled:
            return
        self._scheduled = True
        delay = max(0.0, self._published + CLIENTS_INTERVAL - now)
        self.router.hooks.call_later(delay, self._publish)

    def _publish(self, now: float) -> None:
        self._scheduled = False
        if not self._stale:
            return
        self._published = now
        node = self.clients_node
        if node.listeners or node.watchers:
            self._stale = False
            self.router.publish_state(node.path, Value(self._clients_value()), now)

    def _clients_value(self) -> bytes:
        """``{"clients": [entry...], "clients_total": n}``, cut to fit a frame (§15.3)."""
        router = self.router
        entries: list[bytes] = []
        size = 0
        total = 0
        full = False
        for session in router.sessions:
            if session.client_id is None:
                continue
            total += 1
            entry = (
                b"\x85\xa6client"
                + session.client_id
                + b"\xa4peer"
                + pack(session.peer)
                + b"\xa5since"
                + pack(session.since)
                + b"\xadregistrations"
                + pack(len(session.owned))
                + b"\xa6leases"
                + pack(router.leases_held(session))
            )
            if full or size + len(entry) > _CLIENTS_BUDGET:
                full = True
                continue
            size += len(entry)
            entries.append(entry)
        count = len(entries)
        if count < 16:
            head = bytes((0x90 | count,))
        elif count < 0x10000:
            head = b"\xdc" + count.to_bytes(2, "big")
        else:
            head = b"\xdd" + count.to_bytes(4, "big")
        return b"\x82\xa7clients" + head + b"".join(entries) + b"\xadclients_total" + pack(total)

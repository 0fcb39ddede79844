"""Helpers for lease tests over the raw protocol: requests with map bodies, replies and pushes.

Lease replies are maps with a ``status``; pushes may arrive before a reply, so ``lease`` reads
until the reply to its id and keeps the pushes it passed in ``wire.pushes``-like lists.
"""

from __future__ import annotations

from typing import Any

from roost.protocol import messages as m
from roost.protocol.values import Value
from tests.wire import DEFAULT_TIMEOUT, Wire

__all__ = ("PUSHES", "Reply", "lease", "next_push", "observe_holder", "pushes_of", "send_lease")

#: Push classes of the lease extension.
PUSHES = (m.LeaseGranted, m.LeaseRevoked, m.LeaseWaitEnded)


class Reply:
    """A lease reply: ``ok`` (0x05 or 0x06), the decoded map, and the pushes that came first."""

    def __init__(self, ok: bool, value: Any, before: list[Any]) -> None:
        self.ok = ok
        self.value = value
        self.before = before

    @property
    def status(self) -> Any:
        """The reply's ``status`` (or the whole value if it is not a map)."""
        return self.value.get("status") if isinstance(self.value, dict) else self.value

    def __getitem__(self, key: str) -> Any:
        return self.value[key]

    def __repr__(self) -> str:
        return f"Reply(ok={self.ok}, {self.value!r}, before={self.before!r})"


async def send_lease(wire: Wire, cls: Any, body: Any) -> int:
    """Send a lease request with ``body`` (a Python object packed as the map); return its id."""
    rid = wire.next_id()
    await wire.send(cls(rid, Value.of(body)))
    return rid


async def reply_to(wire: Wire, rid: int, timeout: float = DEFAULT_TIMEOUT) -> Reply:
    """Read until the reply to ``rid``; messages before it are returned in ``before``."""
    before: list[Any] = []
    while True:
        msg = await wire.recv(timeout)
        if isinstance(msg, (m.ReplyOk, m.ReplyError)) and msg.id == rid:
            return Reply(isinstance(msg, m.ReplyOk), msg.value.obj, before)
        before.append(msg)


async def lease(wire: Wire, cls: Any, **body: Any) -> Reply:
    """Send a lease request with ``body`` and return its reply (``Reply.before`` holds the
    messages that came first)."""
    rid = await send_lease(wire, cls, body)
    return await reply_to(wire, rid)


async def next_push(wire: Wire, timeout: float = DEFAULT_TIMEOUT) -> Any:
    """The next message, asserted to be a lease push; returns ``(class, body dict)``."""
    msg = await wire.recv(timeout)
    assert isinstance(msg, PUSHES), f"expected a lease push, got {msg!r}"
    return type(msg), msg.body.obj


def pushes_of(messages: list[Any]) -> list[tuple[Any, Any]]:
    """The lease pushes among ``messages`` as ``(class, body)``."""
    return [(type(x), x.body.obj) for x in messages if isinstance(x, PUSHES)]


async def observe_holder(wire: Wire, resource: str) -> Any:
    """Observe ``/meta/leases/<resource>/holder``; return the observe reply message."""
    rid = wire.next_id()
    return await wire.request(m.StateObserve(rid, f"/meta/leases/{resource}/holder"))


async def next_holder(wire: Wire, timeout: float = DEFAULT_TIMEOUT) -> Any:
    """The next holder-state notification's value (asserting it is a 0x44)."""
    msg = await wire.recv_as(m.StateNotify, timeout)
    return msg.value.obj

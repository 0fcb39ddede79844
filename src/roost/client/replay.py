"""Bringing a new connection up to date, and keeping observed values in step with the broker.

Rules of this module:

- :func:`replay` sends what :meth:`Registrations.pending` lists, in its order, on a connection
  that is not yet "connected", so no user request overtakes it. A refused entry is logged and
  forgotten: the broker's answer on this connection is the truth.
- Observed values change only here: from an observe reply (:func:`record_observe`, called in the
  reader task so no notification overtakes it), and to ``Unknown`` when the connection is lost
  (:func:`forget_values`). Subscribers hear of a value only when it changes something.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

from roost.client.link import Link
from roost.client.registrations import Kind, Registrations, Subscriber
from roost.client.subtrees import SubtreeBook
from roost.protocol import messages as m
from roost.protocol.messages import Unknown
from roost.protocol.values import Value

__all__ = ("forget_values", "record_observe", "replay", "replay_subtrees")

log = logging.getLogger("roost.client")


async def replay(link: Link, regs: Registrations, gen: int, *, leases: bool) -> None:
    """Send every pending registration, state value, listen, observe and guard on ``link``.

    Loops until nothing is pending, so entries added meanwhile are not missed.

    Args:
        gen: the generation of ``link``; each entry sent is marked with it.
        leases: whether the broker has the lease extension; without it guards are only marked
            (a plain ESHET broker has nothing to guard with).

    Raises:
        Disconnected: the link died; the entries not yet sent stay pending.
    """
    while pending := regs.pending(gen):
        for kind, path in pending:
            try:
                if kind == "guard" and not leases:
                    regs.guards[path].gen = gen
                    continue
                reply = await _replay_one(link, regs, gen, kind, path)
            except KeyError:
                continue  # removed meanwhile
            if isinstance(reply, m.ReplyError):
                log.warning("replay of %s %s refused: %r", kind, path, reply.value.obj)
                regs.forget(kind, path)


async def _replay_one(
    link: Link, regs: Registrations, gen: int, kind: Kind, path: str
) -> m.Message:
    if kind == "action":
        regs.actions[path].gen = gen
        return await link.request(lambda rid: m.ActionRegister(rid, path))
    if kind == "prop":
        regs.props[path].gen = gen
        return await link.request(lambda rid: m.PropRegister(rid, path))
    if kind == "event":
        regs.events[path].gen = gen
        return await link.request(lambda rid: m.EventRegister(rid, path))
    if kind == "state":
        regs.states[path].gen = gen
        return await link.request(lambda rid: m.StateRegister(rid, path))
    if kind == "state_value":
        state = regs.states[path]
        state.value_gen = gen
        value = state.value
        assert value is not None  # pending lists a state value only when there is one
        return await link.request(lambda rid: m.StateChanged(rid, path, value))
    if kind == "listen":
        regs.listens[path].gen = gen
        return await link.request(lambda rid: m.EventListen(rid, path))
    if kind == "observe":
        regs.observes[path].gen = gen
        return await link.request(
            lambda rid: m.StateObserve(rid, path), partial(record_observe, regs, path, None)
        )
    guard = regs.guards[path]
    guard.gen = gen
    body = Value.of({"path": path, "resource": guard.resource})
    return await link.request(lambda rid: m.LeaseGuard(rid, body))


async def replay_subtrees(link: Link, book: SubtreeBook, gen: int, *, capable: bool) -> None:
    """Send every subtree subscription not yet sent on ``link`` (generation ``gen``). Without
    the extension (``capable`` false) they are logged and forgotten; so are refused ones."""
    while pending := book.pending(gen):
        for entry in pending:
            if not capable:
                log.warning("subtree %s %s dropped: not offered", entry.kind, entry.pattern)
                book.remove(entry)
                continue
            entry.gen = gen
            reply = await link.request(entry.request, entry.started)
            if isinstance(reply, m.ReplyError):
                log.warning("subtree %s %s refused: %r", entry.kind, entry.pattern, reply.value.obj)
                book.remove(entry)


def record_observe(
    regs: Registrations, path: str, only: Subscriber | None, reply: m.Message
) -> None:
    """Record the value an observe reply carries (an error reply changes nothing).

    Args:
        only: deliver the value to that new subscriber alone (a first observe); ``None``:
            deliver it to every subscriber if it changes anything (a replay).
    """
    entry = regs.observes.get(path)
    if entry is None:
        return
    if isinstance(reply, m.ReplyStateKnown):
        value: Any = reply.value.obj
    elif isinstance(reply, m.ReplyStateUnknown):
        value = Unknown
    else:
        return
    if only is not None:
        entry.value = value
        only.deliver(value)
        return
    if value is Unknown and entry.value is Unknown:
        return
    entry.value = value
    for sub in list(entry.subscribers):
        sub.deliver(value)


def forget_values(regs: Registrations) -> None:
    """Make every observed value ``Unknown`` (the connection is lost) and tell subscribers."""
    for entry in regs.observes.values():
        if entry.value is not Unknown:
            entry.value = Unknown
            for sub in list(entry.subscribers):
                sub.deliver(Unknown)

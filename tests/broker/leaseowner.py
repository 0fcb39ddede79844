"""A fenced owner model for the stateful lease test (leases.md §6.1, invariant 16).

The owner of guarded nodes receives the commands the broker forwarded, in whatever order the
test picks, and fences itself as docs/howto/protect-a-device.md tells owners to: it refuses
tokens of another broker run and roots below the published ``floor`` of the guard's resource,
and per guarded node it keeps a :class:`~roost.client.LeaseValidator` that checks every token as
it came (the validator orders tokens of overlapping resources by their roots, so a lease on
``a`` and a later one on ``a/b`` are ordered). :func:`order` is the independent oracle the
applied tokens are checked with.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from roost.client import LeaseValidator
from roost.errors import LeaseError

__all__ = ("Command", "FencedOwner", "order")


def order(a: dict[str, Any], b: dict[str, Any]) -> str:
    """How token ``a`` stands to token ``b`` for fencing one device: ``OLDER``, ``NEWER``,
    ``SAME``, ``SUB_LEASE`` or ``SUPER_LEASE`` (protocol.md E5 without the resource rule, with
    a larger epoch counting as newer)."""
    if a["epoch"] != b["epoch"]:
        return "NEWER" if a["epoch"] > b["epoch"] else "OLDER"
    for x, y in zip(a["seq"], b["seq"], strict=False):
        if x != y:
            return "NEWER" if x > y else "OLDER"
    if len(a["seq"]) == len(b["seq"]):
        return "SAME"
    return "SUB_LEASE" if len(a["seq"]) > len(b["seq"]) else "SUPER_LEASE"


@dataclass
class Command:
    """A guarded call the broker forwarded: who sent it, to which guard, with which token, and
    the model's lease that backed it at that moment."""

    sender: str
    guard: str
    token: dict[str, Any]
    backing: Any


@dataclass
class FencedOwner:
    """The owner of one guarded node per resource; ``epoch`` is the broker run it knows;
    ``use_floor`` False makes it rely on its validators alone."""

    epoch: int
    use_floor: bool = True
    fences: dict[str, LeaseValidator] = field(default_factory=dict)
    applied: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def newest(self, guard: str) -> dict[str, Any] | None:
        """The newest token applied at the node guarded by ``guard``."""
        fence = self.fences.get(guard)
        return fence.newest(guard) if fence is not None else None

    def deliver(self, cmd: Command, floor: int | None) -> str:
        """Apply or refuse ``cmd``; ``floor`` is the guard's published floor (``None`` when
        not published). Returns ``applied`` or why it was refused: ``WRONG_EPOCH``,
        ``FLOOR`` or the validator's status (``OLDER`` for an older token or a super-lease of
        the newest applied)."""
        tok = cmd.token
        if tok["epoch"] != self.epoch:
            return "WRONG_EPOCH"
        if self.use_floor and floor is not None and tok["seq"][0] < floor:
            return "FLOOR"
        fence = self.fences.setdefault(cmd.guard, LeaseValidator())
        try:
            fence.check(tok)
        except LeaseError as exc:
            return exc.status
        self.applied.setdefault(cmd.guard, []).append(tok)
        return "applied"

    def check(self) -> None:
        """Invariant 16: per guarded node, the applied tokens never go backwards (so neither do
        their roots), whatever the delivery order was."""
        for guard, toks in self.applied.items():
            for before, after in itertools.pairwise(toks):
                assert order(after, before) in ("NEWER", "SUB_LEASE", "SAME"), (guard, toks)
                assert (after["epoch"], after["seq"][0]) >= (before["epoch"], before["seq"][0])

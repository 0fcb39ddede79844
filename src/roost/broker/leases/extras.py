"""Durable locks and resource pools, installed next to the lease service.

The one thing ``server.py`` calls: :func:`install_extras` after ``install_leases``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from roost.broker.leases.lockroutes import install_locks
from roost.broker.leases.locks import LockBook, LockSettings
from roost.broker.leases.poolroutes import PoolService, install_pools
from roost.broker.leases.pools import PoolSettings
from roost.broker.leases.routes import LeaseLayer

__all__ = ("Extras", "LockSettings", "PoolSettings", "install_extras")


@dataclass(slots=True)
class Extras:
    """The durable locks of a broker, and its pool when an inventory is configured."""

    locks: LockBook
    pools: PoolService | None

    def reload_pools(self, now: float) -> str | None:
        """Read the pool inventory again (SIGHUP); the problem in words, if any."""
        return None if self.pools is None else self.pools.reload(now)


def install_extras(
    layer: LeaseLayer,
    state_dir: str | os.PathLike[str] | None,
    locks: LockSettings | None,
    pools: PoolSettings | None,
    now: float,
) -> Extras:
    """Restore the durable locks (from ``state_dir``) and load the pool inventory, if any.

    Raises:
        RoostError: the kept locks cannot be restored. ValueError: the inventory cannot be
            loaded.
    """
    book = install_locks(layer, state_dir=state_dir, settings=locks, now=now)
    service = install_pools(layer, pools, now) if pools is not None else None
    return Extras(book, service)

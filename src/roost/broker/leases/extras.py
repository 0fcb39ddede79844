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
    """The durable locks and the pool of a broker (an empty pool without an inventory)."""

    locks: LockBook
    pools: PoolService

    def reload_pools(self, now: float) -> str | None:
        """Read the pool inventory again (SIGHUP); the problem in words, if any."""
        return self.pools.reload(now)


def install_extras(
    layer: LeaseLayer,
    state_dir: str | os.PathLike[str] | None,
    locks: LockSettings | None,
    pools: PoolSettings | None,
    now: float,
) -> Extras:
    """Restore the durable locks (from ``state_dir``) and load the pool inventory (none: an
    empty pool, whose requests are ``NO_MATCH``).

    Raises:
        RoostError: the kept locks cannot be restored. ValueError: the inventory cannot be
            loaded.
    """
    book = install_locks(layer, state_dir=state_dir, settings=locks, now=now)
    service = install_pools(layer, pools if pools is not None else PoolSettings(), now)
    return Extras(book, service)

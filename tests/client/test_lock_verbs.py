"""Lock and pool verbs refuse, before sending anything, a broker that does not announce them."""

from __future__ import annotations

import pytest

from roost.client import Client
from roost.errors import LeasesUnsupported

pytestmark = pytest.mark.anyio


async def test_older_broker_without_locks_or_pools() -> None:
    """A broker announcing leases only: lock and pool verbs raise LeasesUnsupported."""
    client = Client(server="127.0.0.1:1")
    client._lease_capable = True
    client._broker_info = {"name": "roost", "extensions": {"lease": 1}}
    with pytest.raises(LeasesUnsupported, match="durable locks"):
        await client.lock_set("lamp", "k")
    with pytest.raises(LeasesUnsupported, match="durable locks"):
        await client.locked_call("/lamp/on", "k")
    with pytest.raises(LeasesUnsupported, match="resource pools"):
        await client.pool_acquire({"os": "linux"})
    with pytest.raises(LeasesUnsupported, match="resource pools"):
        await client.pool_resources()

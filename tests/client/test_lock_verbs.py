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


def test_sync_twins() -> None:
    """SyncClient: lock_set/info/list/clear, locked_call/set, pool_acquire/resources/reload."""
    from roost.broker.leases.pools import PoolSettings
    from roost.client import SyncClient
    from roost.errors import InvalidKey, NoneFree
    from tests.conftest import start_broker_thread

    devices = ({"id": "dev-1", "hostname": "rig", "online": True},)
    handle, stop, thread = start_broker_thread(pools=PoolSettings(None, devices))
    try:
        with (
            SyncClient(server=handle.address) as owner,
            SyncClient(server=handle.address) as user,
        ):
            seen: list[object] = []
            owner.action_register("/re/queue/start", lambda: "go", lease="re/queue")
            owner.state_register("/re/queue/mode", seen.append, lease="re/queue")
            info = user.lock_set("re", "k1", scopes=["queue"], note="inside")
            assert info["locked"] and user.lock_info("re")["uid"] == info["uid"]
            assert [x["resource"] for x in user.lock_list()] == ["re"]
            assert user.locked_call("/re/queue/start", "k1") == "go"
            user.locked_set("/re/queue/mode", "k1", "manual")
            assert seen == ["manual"]
            with pytest.raises(InvalidKey, match="inside"):
                user.locked_call("/re/queue/start", "k2")
            assert not user.lock_clear("re", "k1")["locked"]
            held = user.pool_acquire({"hostname": "rig"})
            assert (held.resource, held.attributes["online"]) == ("dev-1", True)
            assert [r["status"] for r in owner.pool_resources()] == ["held"]
            with pytest.raises(NoneFree):
                owner.pool_acquire({"hostname": "rig"})
            lease = held.lease
            before = lease.duration
            assert before is None and lease.queued == 0.0
            held.return_lease()
            duration = lease.duration
            assert duration is not None and duration >= 0 and lease.ended_at is not None
            assert owner.pool_reload() == 1
    finally:
        stop.set()
        thread.join(timeout=10)

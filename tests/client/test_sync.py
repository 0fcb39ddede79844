"""The blocking SyncClient against a real broker, with its portal on asyncio and on trio."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from roost.client import SyncClient
from roost.errors import ConnectionClosed, LeaseLost, RemoteError
from roost.protocol.messages import Unknown
from tests.client.helpers import WAIT
from tests.conftest import BrokerThread


@pytest.fixture(params=["asyncio", "trio"])
def backend(request: pytest.FixtureRequest) -> str:
    """The portal's event loop backend."""
    name: str = request.param
    return name


def test_sync_verbs(broker_thread: BrokerThread, backend: str) -> None:
    """Actions, props, states and gets work as blocking calls; errors raise RemoteError."""
    with (
        SyncClient("/dev/", server=broker_thread.address, backend=backend) as a,
        SyncClient(server=broker_thread.address, backend=backend) as b,
    ):
        assert a.connected and a.client_id is not None
        a.action_register("add", lambda x, y: x + y)
        assert b.action_call("/dev/add", 4, 5) == 9
        level = {"v": 1}
        a.prop_register("level", lambda: level["v"], lambda v: level.update(v=v))
        b.set("/dev/level", 9)
        assert b.get("/dev/level") == 9
        a.state_register("temp")
        a.state_changed("temp", 17.5, wait=True)
        assert b.get("/dev/temp") == 17.5
        a.state_unknown("temp")
        a.flush()  # confirmed: another client's get sees it
        with pytest.raises(RemoteError) as info:
            b.get("/dev/temp")
        assert info.value.value == "state_unknown"
        with pytest.raises(RemoteError) as info:
            b.set("/dev/temp", 1)
        assert info.value.value == "not_implemented"


def test_sync_callbacks_run_in_threads_and_may_call_back(
    broker_thread: BrokerThread, backend: str
) -> None:
    """A plain callback runs in a worker thread, so it can block and use the client itself."""
    with SyncClient(server=broker_thread.address, backend=backend) as client:
        loop_threads: set[int] = set()
        client.state_register("/s/base")
        client.state_changed("/s/base", 10)

        def plus_base(x: int) -> int:
            loop_threads.add(threading.get_ident())
            return x + int(client.get("/s/base"))

        client.action_register("/s/plus", plus_base)
        assert client.action_call("/s/plus", 5, timeout=WAIT) == 15
        assert threading.get_ident() not in loop_threads


def test_sync_events_and_observe_iterators(broker_thread: BrokerThread, backend: str) -> None:
    """Blocking iterators yield emits and state values in order."""
    seen: list[Any] = []
    done = threading.Event()

    def on_change(value: Any) -> None:
        seen.append(value)
        if len(seen) == 2:
            done.set()

    with (
        SyncClient(server=broker_thread.address, backend=backend) as a,
        SyncClient(server=broker_thread.address, backend=backend) as b,
    ):
        emit = a.event_register("/e/bell")
        a.state_register("/e/state")
        assert b.state_observe("/e/state", on_change) is Unknown
        with b.event_listen("/e/bell") as events, b.state_observe_iter("/e/state") as values:
            emit(1)
            a.event_emit("/e/bell", "two")
            a.state_changed("/e/state", "x")
            a.state_unknown("/e/state")
            assert [events.get(WAIT), events.get(WAIT)] == [1, "two"]
            assert [values.get(WAIT), values.get(WAIT), values.get(WAIT)] == [Unknown, "x", Unknown]
            with pytest.raises(TimeoutError):
                events.get(0.05)
        assert done.wait(WAIT)
        assert seen == ["x", Unknown]


def test_sync_client_outside_block_raises(broker_thread: BrokerThread) -> None:
    """Methods called after the block raise ConnectionClosed."""
    client = SyncClient(server=broker_thread.address)
    with client:
        assert client.get("/meta/broker")["name"] == "roost"
    with pytest.raises(ConnectionClosed):
        client.get("/meta/broker")


def test_sync_lease_context(broker_thread: BrokerThread, backend: str) -> None:
    """The blocking lease context holds and returns; a take is seen through wait_lost and
    check()."""
    with (
        SyncClient(server=broker_thread.address, backend=backend) as a,
        SyncClient(server=broker_thread.address, backend=backend) as b,
    ):
        assert a.leases_available
        with a.lease("lab/sync", note="n") as lease:
            assert lease.token["resource"] == "lab/sync"
            assert b.lease_info("lab/sync")["holders"][0]["lease_id"] == lease.lease_id
            assert a.lease_validate(lease)["status"] == "OK"
            assert not lease.is_lost
            taken = b.lease_take("lab/sync", "maintenance")
            assert lease.wait_lost(WAIT) == "taken"
            with pytest.raises(LeaseLost):
                lease.check()
        assert a.wallet.status("lab/sync") == "other_owner"
        b.lease_return(taken)
        assert b.lease_list() == []
        with a.lease("lab/sync") as again:
            assert again.wait_lost(0.05) is None
        assert b.lease_info("lab/sync")["holders"] == []

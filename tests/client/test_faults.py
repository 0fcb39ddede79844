"""Connection faults: broker restart, a stalled link, a dropped link, a broker that is down."""

from __future__ import annotations

import anyio
import pytest

from roost.client import Backoff, Client, TimeoutConfig
from roost.errors import Disconnected
from roost.protocol.messages import Unknown
from tests.brokerproc import BrokerProcess
from tests.client.helpers import WAIT, Collector, Counter
from tests.client.proxy import running_proxy
from tests.conftest import BrokerThread

pytestmark = pytest.mark.anyio

FAST = Backoff(initial=0.05, maximum=0.5)


async def test_broker_restart_reconnects_and_replays_everything() -> None:
    """A restarted broker: both clients are back within 2 s and every registration, state
    value, listen and observe works again; the observer saw Unknown in between."""
    with BrokerProcess() as proc:
        server = f"127.0.0.1:{proc.port}"
        lost_a, lost_b, back_b = Counter(), Counter(), Counter()
        async with (
            Client(server=server, backoff=FAST, on_disconnect=lost_a) as a,
            Client(server=server, backoff=FAST, on_disconnect=lost_b, on_connect=back_b) as b,
        ):
            await back_b.wait_for(1)
            await a.action_register("/dev/ping", lambda: "pong")
            state = await a.state_register("/dev/level")
            await state.changed(5)
            emitter = await a.event_register("/dev/bell")
            seen, heard = Collector(), Collector()
            assert await b.state_observe("/dev/level", seen) == 5
            await b.event_listen_cb("/dev/bell", heard)
            first_id = a.client_id

            await anyio.to_thread.run_sync(proc.restart)
            restarted = anyio.current_time()
            await lost_a.wait_for(1)
            await lost_b.wait_for(1)
            with anyio.fail_after(2.0):
                await a.wait_for_connection()
                await b.wait_for_connection()
            assert anyio.current_time() - restarted < 2.0
            assert a.client_id == first_id

            assert await seen.wait_for(2) == [Unknown, 5]
            assert await b.action_call("/dev/ping", timeout=WAIT) == "pong"
            assert await b.get("/dev/level") == 5
            await emitter.emit("ding")
            assert await heard.wait_for(1) == ["ding"]
            await state.changed(6)
            assert (await seen.wait_for(3))[-1] == 6


async def test_stalled_link_is_detected_by_ping(broker_thread: BrokerThread) -> None:
    """A link that stops answering is dropped within idle_ping + ping_timeout + 1 s, and the
    client reconnects on a fresh connection."""
    config = TimeoutConfig(idle_ping=0.3, server_timeout=5, ping_timeout=0.3)
    lost = Counter()
    async with running_proxy(broker_thread.port) as proxy:
        server = f"127.0.0.1:{proxy.port}"
        async with Client(server=server, timeout=config, backoff=FAST, on_disconnect=lost) as c:
            proxy.stall()
            stalled = anyio.current_time()
            detected = await lost.wait_for(1, timeout=0.3 + 0.3 + 1.0)
            assert detected - stalled <= 0.3 + 0.3 + 1.0
            with anyio.fail_after(WAIT):
                await c.wait_for_connection()
            assert proxy.accepted >= 2  # a fresh connection, not the stalled one
            info = await c.get("/meta/broker", timeout=WAIT)
            assert info["name"] == "roost"


async def test_call_in_flight_fails_promptly_on_drop(broker_thread: BrokerThread) -> None:
    """A call waiting for its reply raises Disconnected as soon as the connection drops."""
    started = anyio.Event()

    async def never() -> None:
        started.set()
        await anyio.sleep_forever()

    async with (
        running_proxy(broker_thread.port) as proxy,
        Client(server=broker_thread.address) as owner,
        Client(server=f"127.0.0.1:{proxy.port}", backoff=FAST) as caller,
    ):
        await owner.action_register("/slow/never", never)
        async with anyio.create_task_group() as tg:

            async def drop_when_started() -> None:
                await started.wait()
                proxy.drop()

            tg.start_soon(drop_when_started)
            with anyio.fail_after(WAIT), pytest.raises(Disconnected):
                await caller.action_call("/slow/never")
            dropped = anyio.current_time()
        assert anyio.current_time() - dropped < 1.0
        assert caller.statistics()["waiting"] == 0


async def test_while_down_requests_fail_fast_and_registrations_wait(
    broker_thread: BrokerThread,
) -> None:
    """While the broker is unreachable, calls raise Disconnected at once, registrations are
    kept, and they reach the broker as soon as it is back."""
    back, lost = Counter(), Counter()
    async with (
        running_proxy(broker_thread.port) as proxy,
        Client(server=broker_thread.address) as other,
        Client(
            server=f"127.0.0.1:{proxy.port}", backoff=FAST, on_connect=back, on_disconnect=lost
        ) as c,
    ):
        await back.wait_for(1)
        proxy.refuse = True
        proxy.drop()
        await lost.wait_for(1)
        assert not c.connected
        with anyio.fail_after(0.5), pytest.raises(Disconnected):
            await c.action_call("/meta/ls", "/")
        await c.action_register("/late/act", lambda: "here")
        state = await c.state_register("/late/state")
        await state.changed("kept")
        assert await other.state_observe("/late/state") is Unknown
        proxy.refuse = False
        await back.wait_for(2)
        assert await other.action_call("/late/act", timeout=WAIT) == "here"
        assert await other.get("/late/state") == "kept"


async def test_hello_id_reuses_the_allocated_id(broker_thread: BrokerThread) -> None:
    """After a reconnect the client says hello_id with the id the broker allocated first."""
    back = Counter()
    async with (
        running_proxy(broker_thread.port) as proxy,
        Client(server=f"127.0.0.1:{proxy.port}", backoff=FAST, on_connect=back) as c,
    ):
        await back.wait_for(1)
        first = c.client_id
        assert first is not None
        proxy.drop()
        await back.wait_for(2)
        assert c.client_id == first
        clients = await c.get("/meta/clients")
        assert first in str(clients)

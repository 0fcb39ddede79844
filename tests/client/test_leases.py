"""The client side of leases against a real broker: the context manager, waits, take, loss on
disconnect and on the local deadline, keep-alive, guarded nodes and the low-level verbs."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from roost.client import Backoff, Client, Lease, TimeoutConfig
from roost.errors import (
    AlreadyClaimed,
    LeaseLost,
    LeaseWaitTimeout,
    NoLease,
    Older,
    Revoked,
    TimeoutRequired,
)
from roost.protocol.tokens import Comparison, compare
from tests.client.helpers import WAIT, Counter
from tests.client.proxy import running_proxy
from tests.conftest import BrokerThread

pytestmark = pytest.mark.anyio

FAST = Backoff(initial=0.05, maximum=0.5)


async def until_holder_state(client: Client, resource: str, predicate: Any) -> None:
    """Wait until the published holder state of ``resource`` satisfies ``predicate``."""
    with anyio.fail_after(WAIT):
        async with client.state_observe_iter(f"/meta/leases/{resource}/holder") as values:
            async for value in values:
                if isinstance(value, dict) and predicate(value):
                    return


async def holders(client: Client, resource: str) -> list[Any]:
    info = await client.lease_info(resource)
    return [h["lease_id"] for h in info["holders"]]


async def test_lease_context_acquires_and_returns(broker_thread: BrokerThread) -> None:
    """Entering holds the resource with a token; leaving returns it."""
    async with Client(server=broker_thread.address) as a, Client(server=broker_thread.address) as b:
        async with a.lease("lab/scope", note="calibration") as lease:
            assert not lease.lost.is_set()
            assert lease.resource == "lab/scope" and lease.mode == "exclusive"
            assert lease.token["resource"] == "lab/scope" and lease.token["seq"]
            info = await b.lease_info("lab/scope")
            assert info["holders"][0]["note"] == "calibration"
            assert info["holders"][0]["client"] == a.client_id
            assert a.wallet.status("lab/scope") == "self_owner"
            lease.check()
        assert lease.ended_reason == "returned" and not lease.lost.is_set()
        assert await holders(b, "lab/scope") == []
        assert a.wallet.status("lab/scope") == "unowned"
        with pytest.raises(LeaseLost):
            lease.check()


async def test_fail_fast_wait_and_timeout(broker_thread: BrokerThread) -> None:
    """wait=0 refuses with the holders; a waiting acquire gets the lease when it is returned;
    a short wait times out."""
    async with Client(server=broker_thread.address) as a, Client(server=broker_thread.address) as b:
        held = await a.lease_acquire("lab/arm")
        with pytest.raises(AlreadyClaimed) as info:
            await b.lease_acquire("lab/arm", wait=0)
        assert info.value.holders[0]["lease_id"] == held.lease_id
        with pytest.raises(LeaseWaitTimeout):
            await b.lease_acquire("lab/arm", wait=0.2)
        async with anyio.create_task_group() as tg:
            got: list[Lease] = []

            async def wait_for_it() -> None:
                got.append(await b.lease_acquire("lab/arm", wait=WAIT))

            tg.start_soon(wait_for_it)
            await until_holder_state(a, "lab/arm", lambda v: v["waiters"] == 1)
            await held.return_lease()
        assert got[0].active
        assert compare(got[0].token, held.token) is Comparison.NEWER


async def test_cancelled_wait_is_withdrawn(broker_thread: BrokerThread) -> None:
    """Cancelling a queued acquire removes it from the queue on the broker."""
    async with Client(server=broker_thread.address) as a, Client(server=broker_thread.address) as b:
        held = await a.lease_acquire("lab/pump")
        with anyio.move_on_after(0.3):
            await b.lease_acquire("lab/pump", wait=WAIT)
        assert (await a.lease_info("lab/pump"))["waiters"] == []
        await held.return_lease()
        assert await holders(a, "lab/pump") == []
        assert b.leases == ()


async def test_take_cancels_the_displaced_body(broker_thread: BrokerThread) -> None:
    """A take ends the holder's lease at once: lost is set with reason 'taken', on_lost runs,
    the body is cancelled and LeaseLost comes out of the block."""
    lost_calls: list[str | None] = []
    entered = anyio.Event()
    async with Client(server=broker_thread.address) as a, Client(server=broker_thread.address) as b:

        async def holder() -> None:
            with pytest.raises(LeaseLost) as info:
                async with a.lease(
                    "lab/robot", on_lost=lambda lease: lost_calls.append(lease.lost_reason)
                ):
                    entered.set()
                    await anyio.sleep_forever()
            assert info.value.reason == "taken"

        async with anyio.create_task_group() as tg:
            tg.start_soon(holder)
            with anyio.fail_after(WAIT):
                await entered.wait()
            [lease] = a.leases
            taken = await b.lease_take("lab/robot", "emergency stop")
            taken_at = anyio.current_time()
            with anyio.fail_after(WAIT):
                await lease.wait_lost()
            assert anyio.current_time() - taken_at < 0.5
        assert lease.lost_reason == "taken"
        assert lost_calls == ["taken"]
        assert a.wallet.status("lab/robot") == "other_owner"
        assert compare(taken.token, lease.token) is Comparison.NEWER
        with pytest.raises(Older):
            await a.lease_retain(lease)


async def test_disconnect_loses_leases_and_never_reacquires(broker_thread: BrokerThread) -> None:
    """A dropped connection loses every lease ('disconnected'); the reconnect does not take
    them back, and the broker has freed them."""
    back = Counter()
    async with (
        running_proxy(broker_thread.port) as proxy,
        Client(server=f"127.0.0.1:{proxy.port}", backoff=FAST, on_connect=back) as a,
        Client(server=broker_thread.address) as b,
    ):
        await back.wait_for(1)
        lease = await a.lease_acquire("lab/door")
        proxy.drop()
        with anyio.fail_after(WAIT):
            assert await lease.wait_lost() == "disconnected"
        await back.wait_for(2)
        assert a.leases == ()
        other = await b.lease_acquire("lab/door")
        assert other.active


async def test_local_deadline_fires_before_the_broker_could(broker_thread: BrokerThread) -> None:
    """On a stalled link the lease counts as lost ('timeout') before the server timeout, so
    the holder stops before anyone else can be granted; a manual lease is watched too."""
    config = TimeoutConfig(idle_ping=30, server_timeout=2, ping_timeout=10)
    async with (
        running_proxy(broker_thread.port) as proxy,
        Client(server=f"127.0.0.1:{proxy.port}", timeout=config, backoff=FAST) as a,
    ):
        manual = await a.lease_acquire("lab/heater")
        with pytest.raises(LeaseLost) as info:
            async with a.lease("lab/other"):
                proxy.stall()
                stalled = anyio.current_time()
                with anyio.fail_after(WAIT):  # the loss must cancel this body
                    await anyio.sleep_forever()
        assert info.value.reason == "timeout"
        assert anyio.current_time() - stalled < 2.0
        assert manual.lost_reason == "timeout"


async def test_keep_alive_holds_past_the_server_timeout(broker_thread: BrokerThread) -> None:
    """While holding, pings keep a 2 s server timeout alive though idle_ping is long, and
    retains keep a ttl alive."""
    config = TimeoutConfig(idle_ping=60, server_timeout=2, ping_timeout=5)
    lost = Counter()
    async with (
        Client(server=broker_thread.address, timeout=config, on_disconnect=lost) as a,
        a.lease("lab/oven", ttl=2) as lease,
    ):
        with anyio.move_on_after(2.5):  # beyond the server timeout and the ttl
            await lease.lost.wait()
        assert not lease.lost.is_set()
        assert lost.count == 0
        assert (await a.lease_validate(lease))["status"] == "OK"


async def test_keep_running_false_lets_the_lease_expire(broker_thread: BrokerThread) -> None:
    """When keep_running says stop, retains stop and the lease is lost as 'expired'."""
    async with Client(server=broker_thread.address) as a, Client(server=broker_thread.address) as b:
        with pytest.raises(LeaseLost) as info:
            async with a.lease("lab/mixer", ttl=1, keep_running=lambda: False):
                with anyio.fail_after(WAIT):  # the loss must cancel this body
                    await anyio.sleep_forever()
        assert info.value.reason == "expired"
        await until_holder_state(b, "lab/mixer", lambda v: v["holders"] == [])


async def test_guarded_action_and_state(broker_thread: BrokerThread) -> None:
    """A guarded action refuses callers without the lease, accepts holders (plain call or
    lease_call, sub-leases too) and hands the token to a callback that asks for it."""
    tokens: list[Any] = []

    def move(x: int, *, token: Any = None) -> int:
        tokens.append(token)
        return x * 10

    async with (
        Client(server=broker_thread.address) as owner,
        Client(server=broker_thread.address) as user,
    ):
        await owner.action_register("/arm/move", move, lease="lab/arm2")
        set_values: list[Any] = []

        def set_speed(value: Any, token: Any = None) -> None:
            set_values.append((value, token))

        await owner.state_register("/arm/speed", set_speed, lease="lab/arm2")
        with pytest.raises(NoLease):
            await user.action_call("/arm/move", 1)
        async with user.lease("lab/arm2") as lease:
            assert await user.action_call("/arm/move", 1) == 10
            assert await user.action_call("/arm/move", 2, lease=lease) == 20
            sub = lease.sublease("helper")
            assert await owner.action_call("/arm/move", 3, lease=sub) == 30
            await user.set("/arm/speed", 5, lease=lease)
        assert [t["seq"] for t in tokens] == [lease.token["seq"]] * 2 + [sub["seq"]]
        assert set_values == [(5, lease.token)]
        with pytest.raises((Revoked, Older)):
            await user.action_call("/arm/move", 4, lease=lease)
        status = await user.lease_validate(lease)
        assert status["status"] == "REVOKED" and status["reason"] == "returned"


async def test_reentrant_acquire_list_and_timeout_required(broker_thread: BrokerThread) -> None:
    """A second acquire returns the same lease; lease_list shows it; a client without a server
    timeout is refused."""
    async with Client(server=broker_thread.address) as a:
        first = await a.lease_acquire("lab/rack/slot1", shared=True)
        again = await a.lease_acquire("lab/rack/slot1", shared=True)
        assert again is first
        listed = await a.lease_list("lab")
        assert [r["resource"] for r in listed] == ["lab/rack/slot1"]
        await first.return_lease()
        assert await a.lease_list("lab") == []
    no_timeout = TimeoutConfig(server_timeout=0)
    async with Client(server=broker_thread.address, timeout=no_timeout) as c:
        with pytest.raises(TimeoutRequired):
            await c.lease_acquire("lab/rack")


async def test_reconnect_takeover_ends_the_old_leases(broker_thread: BrokerThread) -> None:
    """A half-open connection holding a lease is taken over by the client's own reconnect
    (hello_id, same id): the lease is reported lost and the broker frees it at once, long
    before the server timeout."""
    config = TimeoutConfig(idle_ping=0.3, server_timeout=30, ping_timeout=0.3)
    back = Counter()
    async with (
        running_proxy(broker_thread.port) as proxy,
        Client(
            server=f"127.0.0.1:{proxy.port}", timeout=config, backoff=FAST, on_connect=back
        ) as a,
        Client(server=broker_thread.address) as b,
    ):
        await back.wait_for(1)
        lease = await a.lease_acquire("lab/bench")
        proxy.stall()
        with anyio.fail_after(WAIT):
            reason = await lease.wait_lost()
        assert reason in ("disconnected", "timeout")
        await back.wait_for(2)
        assert a.leases == ()
        granted = await b.lease_acquire("lab/bench", wait=0)
        assert compare(granted.token, lease.token) is Comparison.NEWER


async def test_acquire_cancelled_before_its_reply_leaves_nothing(
    broker_thread: BrokerThread,
) -> None:
    """An acquire cancelled right after sending is undone through its key: a grant is
    returned and a queued wait withdrawn, so the broker keeps nothing for it."""
    async with Client(server=broker_thread.address) as a, Client(server=broker_thread.address) as b:
        with anyio.move_on_after(0):
            await b.lease_acquire("lab/free")
        info = await a.lease_info("lab/free")
        assert (info["holders"], info["waiters"]) == ([], [])
        held = await a.lease_acquire("lab/busy")
        with anyio.move_on_after(0):
            await b.lease_acquire("lab/busy", wait=WAIT)
        assert (await a.lease_info("lab/busy"))["waiters"] == []
        await held.return_lease()
        assert await holders(a, "lab/busy") == []
        assert b.leases == ()

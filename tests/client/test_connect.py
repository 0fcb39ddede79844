"""Entering a client: failing fast on the first attempt, bounding the entry, describing why a
connection failed, and leaving no unclosed stream behind."""

from __future__ import annotations

import errno
import gc
import socket
import warnings
from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel
import pytest

from roost.client import Backoff, Client
from roost.client.reconnect import describe_failure
from roost.errors import ConnectFailed, ConnectionClosed, Disconnected
from tests.client.helpers import WAIT, Counter
from tests.client.proxy import running_proxy
from tests.conftest import BrokerThread

FAST = Backoff(initial=0.05, maximum=0.5)


async def _closed_port() -> int:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port: int = listener.extra(anyio.abc.SocketAttribute.local_port)
    await listener.aclose()  # the port is now (almost certainly) closed
    return port


# -- retry_first_connect ------------------------------------------------------------------------


@pytest.mark.anyio
async def test_refused_first_connect_fails_at_once() -> None:
    """retry_first_connect=False: a refused first attempt raises ConnectFailed long before
    connect_timeout, saying the connection was refused."""
    port = await _closed_port()
    client = Client(server=f"127.0.0.1:{port}", connect_timeout=60, retry_first_connect=False)
    with anyio.fail_after(WAIT), pytest.raises(ConnectFailed) as info:
        async with client:
            pass
    assert str(info.value) == f"could not connect to 127.0.0.1:{port}: connection refused"
    assert isinstance(info.value.__cause__, OSError)
    assert not client.connected


@pytest.mark.anyio
async def test_first_connect_is_retried_by_default(broker_thread: BrokerThread) -> None:
    """By default a failed first attempt is retried: a broker that drops the first connection
    is reached on the next one."""
    async with running_proxy(broker_thread.port) as proxy:
        proxy.refuse_next = 1
        with anyio.fail_after(WAIT):
            async with Client(
                server=f"127.0.0.1:{proxy.port}", backoff=FAST, connect_timeout=WAIT
            ) as client:
                assert client.connected
                assert await client.ping(timeout=WAIT) > 0
        assert proxy.accepted == 2


@pytest.mark.anyio
async def test_first_connect_without_hello_fails_at_once(broker_thread: BrokerThread) -> None:
    """retry_first_connect=False: a connection closed before the hello answer is not retried."""
    async with running_proxy(broker_thread.port) as proxy:
        proxy.refuse_next = 1
        client = Client(
            server=f"127.0.0.1:{proxy.port}", connect_timeout=60, retry_first_connect=False
        )
        with anyio.fail_after(WAIT), pytest.raises(ConnectFailed) as info:
            async with client:
                pass
        assert proxy.accepted == 1
        assert isinstance(info.value.__cause__, Disconnected)


@pytest.mark.anyio
async def test_later_losses_are_retried_without_first_connect_retry(
    broker_thread: BrokerThread,
) -> None:
    """retry_first_connect=False only concerns the first connection: a later loss reconnects."""
    back = Counter()
    async with (
        running_proxy(broker_thread.port) as proxy,
        Client(
            server=f"127.0.0.1:{proxy.port}",
            backoff=FAST,
            retry_first_connect=False,
            on_connect=back,
        ) as client,
    ):
        await back.wait_for(1)
        proxy.drop()
        await back.wait_for(2)
        assert client.connected
        assert await client.ping(timeout=WAIT) > 0


# -- bounding the entry -------------------------------------------------------------------------


@pytest.mark.anyio
async def test_connect_timeout_bounds_a_silent_broker() -> None:
    """A peer that accepts and never answers hello: ConnectFailed after connect_timeout."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    accepted = anyio.Event()

    async def mute(stream: anyio.abc.SocketStream) -> None:
        accepted.set()
        async with stream:
            await anyio.sleep_forever()

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, mute)
        with anyio.fail_after(WAIT), pytest.raises(ConnectFailed) as info:
            async with Client(server=f"127.0.0.1:{port}", connect_timeout=0.3):
                pass
        assert accepted.is_set()
        assert str(info.value).startswith(f"could not connect to 127.0.0.1:{port}: ")
        tg.cancel_scope.cancel()


@pytest.mark.anyio
async def test_outer_timeout_during_entry_closes_the_client() -> None:
    """A cancel scope that fires while entering (nothing listens, retries go on) ends the
    entry with its own TimeoutError and leaves the client closed."""
    port = await _closed_port()
    client = Client(server=f"127.0.0.1:{port}", connect_timeout=None, backoff=FAST)
    with pytest.raises(TimeoutError), anyio.fail_after(0.3):
        async with client:
            pytest.fail("entered without a broker")
    assert not client.connected
    with pytest.raises(ConnectionClosed):
        await client.get("/x")


@pytest.mark.anyio
async def test_lease_timeout_bounds_the_acquire(broker_thread: BrokerThread) -> None:
    """lease(timeout=...) gives up a queued acquire with TimeoutError and withdraws the wait."""
    async with Client(server=broker_thread.address) as a, Client(server=broker_thread.address) as b:
        held = await a.lease_acquire("lab/slow")
        with anyio.fail_after(WAIT), pytest.raises(TimeoutError):
            async with b.lease("lab/slow", wait=60, timeout=0.3):
                pytest.fail("acquired a lease that is held")
        assert (await a.lease_info("lab/slow"))["waiters"] == []
        assert b.leases == ()
        await held.return_lease()
        async with b.lease("lab/slow", wait=0, timeout=WAIT) as mine:
            assert mine.active


# -- describing failures ------------------------------------------------------------------------


def _group_failure(inner: OSError) -> OSError:
    # The shape of anyio.connect_tcp's failure: a generic OSError caused by the attempts.
    outer = OSError("All connection attempts failed")
    outer.__cause__ = ExceptionGroup("multiple connection attempts failed", [inner])
    return outer


@pytest.mark.parametrize(
    ("exc", "text"),
    [
        (ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed"), "connection refused"),
        (
            _group_failure(OSError(errno.ECONNREFUSED, "Connect call failed ('::1', 1)")),
            "connection refused",
        ),
        (
            socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
            "name or service not known",
        ),
        (Disconnected("the broker closed the connection"), "the broker closed the connection"),
        (TimeoutError(), "TimeoutError"),
    ],
)
def test_describe_failure(exc: BaseException, text: str) -> None:
    """A failed attempt reads as a few words: the errno's text, or the exception's own."""
    assert describe_failure(exc) == text


# -- resources ----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_no_unclosed_streams_after_a_session(broker_thread: BrokerThread) -> None:
    """Subscriptions, a reconnect, a failed entry and closes under cancellation leave no memory
    stream unclosed (anyio warns with ResourceWarning when one is collected)."""
    back = Counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        async with (
            running_proxy(broker_thread.port) as proxy,
            Client(server=f"127.0.0.1:{proxy.port}", backoff=FAST, on_connect=back) as client,
        ):
            await back.wait_for(1)
            async with client.event_listen("/res/e") as events:
                await client.event_register("/res/e")
                await client.event_emit("/res/e", 1)
                with anyio.fail_after(WAIT):
                    assert await events.receive() == 1
            async with client.state_observe_iter("/res/s") as values:
                with anyio.fail_after(WAIT):
                    await values.receive()
            proxy.drop()
            await back.wait_for(2)
        failed = Client(server=f"127.0.0.1:{await _closed_port()}", retry_first_connect=False)
        with pytest.raises(ConnectFailed):
            async with failed:
                pass
        # Closing while the caller is cancelled, during the entry and inside the block.
        entering = Client(server=f"127.0.0.1:{await _closed_port()}", connect_timeout=None)
        with anyio.move_on_after(0.2):
            async with entering:
                pytest.fail("entered without a broker")
        with anyio.CancelScope() as scope:
            async with (
                Client(server=broker_thread.address) as inside,
                inside.state_observe_iter("/res/s") as values,
            ):
                scope.cancel()
                await anyio.lowlevel.checkpoint()
        assert scope.cancelled_caught
        del client, failed, entering, inside, events, values
        gc.collect()
    leaks: list[Any] = [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert leaks == []

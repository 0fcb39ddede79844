"""The event loop choice: ``loop_factory``, a broker on uvloop, ``roost serve --loop``."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future

import anyio
import pytest
import uvloop

from roost.broker import Broker
from roost.broker.run import LOOPS, loop_factory
from roost.protocol import messages as m
from tests.brokerproc import BrokerProcess
from tests.conftest import BrokerThread, start_broker_thread
from tests.wire import connect, ok, v

pytestmark = pytest.mark.anyio


@pytest.fixture
def uvloop_broker(monkeypatch: pytest.MonkeyPatch) -> Iterator[BrokerThread]:
    """A broker served from a daemon thread on a uvloop event loop."""
    monkeypatch.setenv("ROOST_TEST_LOOP", "uvloop")
    handle, stop, thread = start_broker_thread()
    try:
        yield handle
    finally:
        stop.set()
        thread.join(timeout=10)


def test_loop_names() -> None:
    """auto, asyncio and uvloop are the choices; auto and uvloop pick uvloop when installed."""
    assert LOOPS == ("auto", "asyncio", "uvloop")
    assert loop_factory("asyncio") is asyncio.new_event_loop
    assert loop_factory("uvloop") is uvloop.new_event_loop
    assert loop_factory() is uvloop.new_event_loop


def test_unknown_loop_refused() -> None:
    """An unknown loop name is a ValueError naming the choices."""
    with pytest.raises(ValueError, match="auto, asyncio, uvloop"):
        loop_factory("tokio")


def test_without_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    """uvloop not importable: auto falls back to asyncio, an explicit uvloop is a ValueError."""
    monkeypatch.setitem(sys.modules, "uvloop", None)  # makes ``import uvloop`` fail
    assert loop_factory("auto") is asyncio.new_event_loop
    with pytest.raises(ValueError, match="not installed"):
        loop_factory("uvloop")


async def test_uvloop_broker_routes(uvloop_broker: BrokerThread) -> None:
    """On uvloop, calls, sets and gets are forwarded under broker ids and events fan out."""
    port = uvloop_broker.port
    async with (
        await connect(port) as owner,
        await connect(port) as caller,
        await connect(port) as listener,
    ):
        await owner.register("action", "/u/act")
        await owner.register("prop", "/u/prop")
        await listener.call_ok(m.EventListen(listener.next_id(), "/u/ev"))
        requests: list[tuple[m.ActionCall | m.Set | m.Get, type]] = [
            (m.ActionCall(caller.next_id(), "/u/act", v([1, "x"])), m.ActionCall),
            (m.Set(caller.next_id(), "/u/prop", v(2.5)), m.PropSet),
            (m.Get(caller.next_id(), "/u/prop"), m.PropGet),
        ]
        for request, forwarded_as in requests:
            await caller.send(request)
            forwarded = await owner.recv()
            assert type(forwarded) is forwarded_as
            assert forwarded.path == request.path  # type: ignore[union-attr]
            await owner.send(m.ReplyOk(forwarded.id, v("done")))  # type: ignore[union-attr]
            assert await caller.recv() == ok(request.id, "done")
        emit = m.EventEmit(caller.next_id(), "/u/ev", v({"k": 1}))
        assert await caller.request(emit) == ok(emit.id)
        assert await listener.recv() == m.EventNotify("/u/ev", v({"k": 1}))


async def test_serve_loop_option() -> None:
    """``roost serve --loop asyncio`` serves as the default (uvloop) does."""
    with BrokerProcess(["--loop", "asyncio"]) as proc:
        async with await connect(proc.port) as wire:
            await wire.register("state", "/s")
            await wire.call_ok(m.StateChanged(wire.next_id(), "/s", v(1)))
            rid = wire.next_id()
            assert await wire.request(m.Get(rid, "/s")) == ok(rid, 1)


class _SkewedLoop(asyncio.SelectorEventLoop):
    """An asyncio loop whose clock runs 10^4 s ahead of ``time.monotonic()``."""

    def time(self) -> float:
        return super().time() + 1e4


@contextlib.contextmanager
def _broker_on(factory: Callable[[], asyncio.AbstractEventLoop]) -> Iterator[int]:
    """Serve ``Broker(port=0)`` from a daemon thread on a loop made by ``factory``; yield its
    port."""
    ready: Future[tuple[asyncio.AbstractEventLoop, asyncio.Event, int]] = Future()

    async def main() -> None:
        stopped = asyncio.Event()
        async with Broker(port=0) as broker:
            ready.set_result((asyncio.get_running_loop(), stopped, broker.port))
            await stopped.wait()

    def run() -> None:
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(main())

    thread = threading.Thread(target=run, name="broker", daemon=True)
    thread.start()
    loop, stopped, port = ready.result(timeout=10)
    try:
        yield port
    finally:
        loop.call_soon_threadsafe(stopped.set)
        thread.join(timeout=10)


async def test_one_clock_for_timers_and_traffic() -> None:
    """On a loop whose clock is not ``time.monotonic()``, idle timeouts and observe_t ages use
    the loop's clock: timeout 1 survives traffic and closes ~1 s after the last byte."""
    with _broker_on(_SkewedLoop) as port:
        async with await connect(port, timeout=1) as a:
            rid = a.next_id()
            reply = await a.request(m.StateObserveT(rid, "/meta/broker"))
            assert isinstance(reply, m.ReplyStateTKnown)
            assert reply.ms < 60_000, reply  # counted from broker start, seconds ago
            await anyio.sleep(0.6)
            await a.assert_open()
            last_byte = time.monotonic()
            await a.expect_closed(timeout=3)
            assert 0.9 <= time.monotonic() - last_byte <= 1.6

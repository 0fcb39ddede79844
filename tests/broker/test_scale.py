"""Many connections: 1,000 observers of one state see every change in order."""

from __future__ import annotations

import resource
from collections.abc import Iterator

import anyio
import pytest

from roost.protocol import codec
from roost.protocol import messages as m
from roost.protocol.framing import FrameDecoder
from tests.conftest import BrokerThread
from tests.wire import Wire, connect, v

pytestmark = pytest.mark.anyio

OBSERVERS = 1000
CHANGES = 100


@pytest.fixture
def many_files() -> Iterator[None]:
    """Raise the open-file soft limit to the hard limit (both ends live in this process)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def _observer(wire: Wire, results: list[list[int]]) -> None:
    decoder = FrameDecoder()
    seen: list[int] = []
    with anyio.fail_after(60):
        while len(seen) < CHANGES:
            for payload in decoder.feed(await wire.stream.receive(65536)):
                msg = codec.decode(payload)
                assert isinstance(msg, m.StateNotify)
                seen.append(msg.value.obj)
    results.append(seen)


@pytest.mark.slow
async def test_thousand_observers(broker_thread: BrokerThread, many_files: None) -> None:
    """1,000 clients hello and observe one state; the owner changes it 100 times; every
    observer sees all 100 values in order."""
    port = broker_thread.port
    owner = await connect(port)
    await owner.register("state", "/shared")
    observers: list[Wire] = []
    try:
        for _ in range(OBSERVERS):
            wire = await connect(port)
            observers.append(wire)
            await wire.send(m.StateObserve(1, "/shared"))
        for wire in observers:
            assert await wire.recv() == m.ReplyStateUnknown(1)
        results: list[list[int]] = []
        async with anyio.create_task_group() as tg:
            for wire in observers:
                tg.start_soon(_observer, wire, results)
            for i in range(CHANGES):
                await owner.send(m.StateChanged(i, "/shared", v(i)))
        assert len(results) == OBSERVERS
        assert all(seen == list(range(CHANGES)) for seen in results)
        for i in range(CHANGES):
            assert await owner.recv() == m.ReplyOk(i, v(None))
    finally:
        for wire in observers:
            await wire.aclose()
        await owner.aclose()

"""Subtree listens and observes through the async and blocking clients, against a real broker."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from roost.client import Client, SyncClient
from roost.errors import RemoteError, SubtreeUnsupported
from roost.protocol import messages as m
from roost.protocol.messages import Unknown
from roost.protocol.values import pack
from tests.client.helpers import WAIT
from tests.client.test_plain_eshet import plain_server
from tests.conftest import BrokerThread

pytestmark = pytest.mark.anyio


async def test_subtree_listen(broker_thread: BrokerThread) -> None:
    async with (
        Client(server=broker_thread.address) as owner,
        Client(server=broker_thread.address) as watcher,
    ):
        assert watcher.subtree_available
        door = await owner.event_register("/house/door")
        async with watcher.subtree_listen("/house/**") as events:
            bell = await owner.event_register("/house/porch/bell")
            await owner.event_register("/garden/gate")
            await door.emit("open")
            await owner.event_emit("/garden/gate", "ignored")
            await bell.emit(1)
            with anyio.fail_after(WAIT):
                assert await events.receive() == ("/house/door", "open")
                assert await events.receive() == ("/house/porch/bell", 1)
            assert events.pending == 0


async def test_subtree_observe_snapshot_then_changes(broker_thread: BrokerThread) -> None:
    async with (
        Client(server=broker_thread.address) as owner,
        Client(server=broker_thread.address) as watcher,
    ):
        temp = await owner.state_register("/house/kitchen/temp")
        await temp.changed(21)
        await owner.state_register("/house/hall/temp")  # unknown: not in the snapshot
        async with watcher.subtree_observe("/house/+/temp") as states:
            assert states.pending == 1  # the snapshot arrived with the reply
            await temp.changed(22)
            await owner.state_changed("/house/hall/temp", 18)
            await temp.unknown()
            with anyio.fail_after(WAIT):
                got = [await states.receive() for _ in range(4)]
        assert got == [
            ("/house/kitchen/temp", 21),
            ("/house/kitchen/temp", 22),
            ("/house/hall/temp", 18),
            ("/house/kitchen/temp", Unknown),
        ]


async def test_two_patterns_of_one_client(broker_thread: BrokerThread) -> None:
    """Each subscription gets each matching change once; leaving one keeps the other."""
    async with (
        Client(server=broker_thread.address) as owner,
        Client(server=broker_thread.address) as watcher,
    ):
        state = await owner.state_register("/a/b")
        await state.changed(1)
        async with watcher.subtree_observe("/a/**") as wide:
            async with watcher.subtree_observe("/a/b") as narrow:
                await state.changed(2)
                with anyio.fail_after(WAIT):
                    assert [await narrow.receive() for _ in range(2)] == [("/a/b", 1), ("/a/b", 2)]
                    assert [await wide.receive() for _ in range(2)] == [("/a/b", 1), ("/a/b", 2)]
            await state.changed(3)
            with anyio.fail_after(WAIT):
                assert await wide.receive() == ("/a/b", 3)
        assert watcher._subtrees.entries == {}


async def test_callbacks_and_refusal(broker_thread: BrokerThread) -> None:
    seen: list[tuple[str, Any]] = []
    got = anyio.Event()

    def record(path: str, value: Any) -> None:
        seen.append((path, value))
        got.set()

    async with Client(server=broker_thread.address) as client:
        await client.subtree_listen_cb("/x/**", record)
        await client.event_register("/x/y/z")
        await client.event_emit("/x/y/z", [1, 2])
        with anyio.fail_after(WAIT):
            await got.wait()
        assert seen == [("/x/y/z", [1, 2])]
        with pytest.raises(RemoteError) as info:
            await client.subtree_observe_cb("/x/#", record)
        assert info.value.value["status"] == "invalid_pattern"
        assert "/**" in info.value.value["reason"]
        assert list(client._subtrees.entries) == [0]


async def test_unsupported_on_plain_eshet() -> None:
    async with plain_server() as server, Client(server=f"127.0.0.1:{server.port}") as client:
        assert not client.subtree_available
        with pytest.raises(SubtreeUnsupported):
            async with client.subtree_listen("/a/**"):
                pass
        with pytest.raises(SubtreeUnsupported):
            await client.subtree_observe_cb("/a/**", lambda path, value: None)
    assert server.received == [m.Hello.code, m.Get.code]


async def test_reconnect_gives_unknown_then_a_fresh_snapshot(broker_thread: BrokerThread) -> None:
    """Losing the connection makes each known path Unknown; the reconnect's snapshot brings
    the values back."""
    async with (
        Client(server=broker_thread.address) as owner,
        Client(server=broker_thread.address) as watcher,
    ):
        state = await owner.state_register("/r/s")
        await state.changed("on")
        async with watcher.subtree_observe("/r/**") as states:
            with anyio.fail_after(WAIT):
                assert await states.receive() == ("/r/s", "on")
            watcher_session = next(
                s
                for s in broker_thread.broker.router.sessions
                if s.client_id == pack(watcher.client_id)
            )
            broker_thread.call(
                broker_thread.broker.router.disconnect, watcher_session, "timeout", 0.0
            )
            with anyio.fail_after(WAIT):
                assert await states.receive() == ("/r/s", Unknown)
                assert await states.receive() == ("/r/s", "on")


def test_sync_subtree(broker_thread: BrokerThread) -> None:
    with (
        SyncClient(server=broker_thread.address) as owner,
        SyncClient(server=broker_thread.address) as watcher,
    ):
        owner.state_register("/s/a")
        owner.state_changed("/s/a", 1)
        with watcher.subtree_observe("/s/**") as states:
            assert watcher.subtree_available
            assert states.get(WAIT) == ("/s/a", 1)
            owner.state_changed("/s/a", 2)
            assert states.get(WAIT) == ("/s/a", 2)
        with watcher.subtree_listen("/s/**") as events:
            owner.event_register("/s/e")
            owner.event_emit("/s/e", "x")
            assert events.get(WAIT) == ("/s/e", "x")

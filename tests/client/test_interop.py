"""Interop: roost's client and a hand-written raw-protocol peer talk through the broker.

The peer uses a plain blocking socket and hand-written frames for what it sends, and
``roost.protocol.Connection`` only to parse what it receives.
"""

from __future__ import annotations

import socket
from typing import Any

import anyio
import anyio.from_thread
import anyio.to_thread
import pytest

from roost.client import Client
from roost.protocol import messages as m
from roost.protocol.connection import Connection, Role
from roost.protocol.values import Value, pack
from tests.client.helpers import WAIT, Collector
from tests.conftest import BrokerThread

pytestmark = pytest.mark.anyio


class RawPeer:
    """A blocking ESHET peer on a plain socket."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        self.conn = Connection(Role.CLIENT)
        self.pending: list[m.Message | m.BadValue] = []

    def close(self) -> None:
        self.sock.close()

    def send(self, frame: bytes) -> None:
        self.sock.sendall(frame)

    def recv(self) -> m.Message | m.BadValue:
        while not self.pending:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("broker closed the connection")
            self.pending += self.conn.receive_data(data)
        return self.pending.pop(0)

    def frame(self, payload: bytes) -> bytes:
        return b"\x47" + len(payload).to_bytes(2, "big") + payload

    def hello(self) -> Any:
        # hello, version 1, timeout 30 s: 47 00 04 01 01 00 1e (protocol.md §5)
        self.conn.send(m.Hello(1, 30))  # only to let the parser expect the reply
        self.send(bytes.fromhex("47 00 04 01 01 00 1e"))
        reply = self.recv()
        assert isinstance(reply, m.ServerHelloId)
        return reply.client_id.obj

    def request(self, frame: bytes, tracked: m.Message) -> None:
        """Send a hand-written frame; ``tracked`` is the same request as a message, given to
        the parser so it accepts the reply (and checked to encode to the same bytes)."""
        assert self.conn.send(tracked) == frame
        self.send(frame)


def _peer_owns_an_action(port: int, ready: anyio.Event) -> list[Any]:
    peer = RawPeer(port)
    try:
        peer.hello()
        # action_register, id 1, "/raw/echo"
        frame = bytes.fromhex("47 00 0d 10 00 01") + b"/raw/echo\0"
        peer.request(frame, m.ActionRegister(1, "/raw/echo"))
        reply = peer.recv()
        assert isinstance(reply, m.ReplyOk) and reply.id == 1
        anyio.from_thread.run_sync(ready.set)
        calls: list[Any] = []
        for _ in range(2):
            call = peer.recv()
            assert isinstance(call, m.ActionCall) and call.path == "/raw/echo"
            calls.append(call.args.obj)
            answer = pack({"echo": call.args.obj})
            payload = b"\x05" + call.id.to_bytes(2, "big") + answer
            peer.send(peer.frame(payload))
        return calls
    finally:
        peer.close()


async def test_client_calls_an_action_of_a_raw_peer(broker_thread: BrokerThread) -> None:
    """The client's action_call reaches a raw peer's action and gets its hand-made reply."""
    ready = anyio.Event()
    result: list[list[Any]] = []
    async with Client(server=broker_thread.address) as client, anyio.create_task_group() as tg:

        async def run_peer() -> None:
            calls = await anyio.to_thread.run_sync(_peer_owns_an_action, broker_thread.port, ready)
            result.append(calls)

        tg.start_soon(run_peer)
        with anyio.fail_after(WAIT):
            await ready.wait()
        assert await client.action_call("/raw/echo", 1, "two") == {"echo": [1, "two"]}
        assert await client.action_call("/raw/echo", b"\x01") == {"echo": [b"\x01"]}
    assert result == [[[1, "two"], [b"\x01"]]]


def _peer_observes(port: int) -> list[Any]:
    peer = RawPeer(port)
    try:
        peer.hello()
        values: list[Any] = []
        # state_observe, id 2, "/dev/temp"
        frame = bytes.fromhex("47 00 0d 43 00 02") + b"/dev/temp\0"
        peer.request(frame, m.StateObserve(2, "/dev/temp"))
        reply = peer.recv()
        assert isinstance(reply, (m.ReplyStateKnown, m.ReplyStateUnknown))
        values.append(reply.value.obj if isinstance(reply, m.ReplyStateKnown) else "unknown")
        # event_emit, id 3, "/dev/ask", "please" (fixstr a6)
        frame = bytes.fromhex("47 00 13 31 00 03") + b"/dev/ask\0" + b"\xa6please"
        peer.request(frame, m.EventEmit(3, "/dev/ask", Value.of("please")))
        while len(values) < 3:
            msg = peer.recv()
            if isinstance(msg, m.StateNotify):
                values.append(msg.value.obj)
            elif isinstance(msg, m.StateNotifyUnknown):
                values.append("unknown")
            elif isinstance(msg, m.ReplyOk):
                assert msg.id == 3
        return values
    finally:
        peer.close()


async def test_raw_peer_observes_a_client_state(broker_thread: BrokerThread) -> None:
    """A raw peer observes a state the client owns and sees its updates; its emit reaches the
    client's listener."""
    heard = Collector()
    async with Client("/dev/", server=broker_thread.address) as client:
        state = await client.state_register("temp")
        await state.changed(19)
        await client.event_listen_cb("ask", heard)

        async def on_ask() -> None:
            await heard.wait_for(1)
            await state.changed(20)
            await state.unknown()

        async with anyio.create_task_group() as tg:
            tg.start_soon(on_ask)
            values = await anyio.to_thread.run_sync(_peer_observes, broker_thread.port)
        assert heard.values == ["please"]
    assert values == [19, 20, "unknown"]

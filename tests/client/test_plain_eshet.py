"""Against a plain ESHET server (no /meta/broker): leases are refused before anything is sent."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.abc
import pytest
from anyio.abc import SocketAttribute

from roost.client import Client
from roost.errors import LeasesUnsupported
from roost.protocol import messages as m
from roost.protocol.connection import Connection, Role
from roost.protocol.values import Value

pytestmark = pytest.mark.anyio


class PlainServer:
    """Answers hello, ping and get (``path_not_found``) as eshetsrv would; records every
    message type it receives."""

    def __init__(self) -> None:
        self.port = 0
        self.received: list[int] = []

    async def handle(self, stream: anyio.abc.SocketStream) -> None:
        conn = Connection(Role.SERVER)
        async with stream:
            while True:
                try:
                    data = await stream.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    return
                for msg in conn.receive_data(data):
                    self.received.append(msg.code)
                    if isinstance(msg, m.Hello):
                        reply: m.Message = m.ServerHelloId(Value.of(-576460752303422590))
                    elif isinstance(msg, m.Ping):
                        reply = m.ReplyOk(msg.id, Value.of(None))
                    elif isinstance(msg, m.Get):
                        reply = m.ReplyError(msg.id, Value.of("path_not_found"))
                    else:
                        return  # eshetsrv closes on codes it does not know
                    await stream.send(conn.send(reply))


@asynccontextmanager
async def plain_server() -> AsyncIterator[PlainServer]:
    server = PlainServer()
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    server.port = listener.extra(SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, server.handle)
        yield server
        tg.cancel_scope.cancel()


async def test_leases_unsupported_on_plain_eshet() -> None:
    """The probe fails, so every lease verb raises LeasesUnsupported and no extension message
    is ever sent."""
    async with plain_server() as server, Client(server=f"127.0.0.1:{server.port}") as client:
        assert client.client_id == -576460752303422590
        assert not client.leases_available
        assert client.broker_info is None
        with pytest.raises(LeasesUnsupported):
            await client.lease_acquire("lab/scope")
        with pytest.raises(LeasesUnsupported):
            async with client.lease("lab/scope"):
                pass
        with pytest.raises(LeasesUnsupported):
            await client.action_register("/a", lambda: None, lease="lab/scope")
        with pytest.raises(LeasesUnsupported):
            await client.action_call("/a", lease={"epoch": 1, "seq": [1], "resource": "x"})
        with pytest.raises(LeasesUnsupported):
            await client.lease_info("lab")
        assert client.connected
    assert server.received == [m.Hello.code, m.Get.code]

"""A broker with its HTTP and websocket gateway on ephemeral loopback ports, and clients for it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from tests.conftest import BrokerThread, start_broker_thread

#: Seconds to wait for an expected websocket message.
TIMEOUT = 5.0


@dataclass
class WebBroker:
    """A broker serving from a thread, with its gateway."""

    thread: BrokerThread
    http_port: int

    @property
    def port(self) -> int:
        """The native port."""
        return self.thread.port

    def url(self, path: str) -> str:
        """``http://127.0.0.1:PORT`` + ``path``."""
        return f"http://127.0.0.1:{self.http_port}{path}"


@pytest.fixture
def web_broker() -> Iterator[WebBroker]:
    """A fresh broker whose gateway listens on its own ephemeral port."""
    handle, stop, thread = start_broker_thread(http_port=0)
    gateway = handle.broker.gateway
    assert gateway is not None
    try:
        yield WebBroker(handle, gateway.port)
    finally:
        stop.set()
        thread.join(timeout=10)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """An aiohttp client session."""
    async with aiohttp.ClientSession() as session:
        yield session


class Ws:
    """A websocket client speaking the JSON forms."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def send(self, *form: Any) -> None:
        """Send one form."""
        await self.ws.send_str(json.dumps(list(form)))

    async def recv(self, timeout: float = TIMEOUT) -> Any:
        """The next form.

        Raises:
            AssertionError: the next message is not a text message.
        """
        msg = await self.ws.receive(timeout=timeout)
        assert msg.type is aiohttp.WSMsgType.TEXT, (msg.type, msg.data, msg.extra)
        return json.loads(msg.data)

    async def request(self, *form: Any) -> Any:
        """Send a form and return the next one."""
        await self.send(*form)
        return await self.recv()

    async def hello(self, timeout: int = 30) -> Any:
        """Say hello; return the allocated client id."""
        reply = await self.request("hello", 1, timeout)
        assert reply[0] == "hello_id"
        return reply[1]

    async def closed(self, timeout: float = TIMEOUT) -> tuple[int, str]:
        """Wait for the close; return its code and text.

        Raises:
            AssertionError: a text message came first.
        """
        msg = await self.ws.receive(timeout=timeout)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), (msg.type, msg.data)
        code = msg.data if msg.type is aiohttp.WSMsgType.CLOSE else self.ws.close_code
        return int(code or 0), str(msg.extra or "")


@pytest.fixture
def ws_connect(web_broker: WebBroker, http: aiohttp.ClientSession) -> Any:
    """``await ws_connect()``: a new websocket client of the gateway (closed at teardown)."""

    async def connect() -> Ws:
        return Ws(await http.ws_connect(web_broker.url("/ws")))

    return connect

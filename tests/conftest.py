"""Shared fixtures: the anyio backend and a real broker on an ephemeral loopback port.

``broker_thread`` runs ``Broker(port=0)`` on its own asyncio loop in a daemon thread, so tests
on any anyio backend (trio included) can connect to it; teardown closes every connection.
Set ``ROOST_TEST_LOOP=uvloop`` to run those brokers on uvloop instead.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import pytest

# Every `roost serve` a test starts runs without its HTTP port unless the test asks for one, so
# test runs never take 11237 from a real broker or from each other.
os.environ.setdefault("ROOST_HTTP_PORT", "0")

from roost.broker import Broker
from roost.broker.run import loop_factory


@pytest.fixture
def anyio_backend() -> str:
    """Run ``@pytest.mark.anyio`` tests on asyncio (client tests override this per module)."""
    return "asyncio"


@dataclass
class BrokerThread:
    """A broker serving from a background thread: where it listens and the object itself."""

    broker: Broker
    loop: asyncio.AbstractEventLoop
    host: str
    port: int

    @property
    def address(self) -> str:
        """``"127.0.0.1:PORT"``."""
        return f"{self.host}:{self.port}"

    def call(self, fn: Any, *args: Any) -> Any:
        """Run ``fn(*args)`` on the broker's loop (where the router lives) and return its result."""

        async def run() -> Any:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout=10)

    def wait_until(self, predicate: Any, timeout: float = 5.0) -> None:
        """Poll ``predicate()`` on the broker's loop until it is true (for broker-internal
        conditions no message announces, such as a close having been processed).

        Raises:
            TimeoutError: still false after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while not self.call(predicate):
            if time.monotonic() > deadline:
                raise TimeoutError(f"condition not met within {timeout} s")
            time.sleep(0.002)


def start_broker_thread(**options: Any) -> tuple[BrokerThread, threading.Event, threading.Thread]:
    """Start ``Broker(port=0, **options)`` in a daemon thread; return it, its stop event and the
    thread. Setting the event stops the broker (closing every connection)."""
    ready: Future[BrokerThread] = Future()
    stop = threading.Event()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stopped = asyncio.Event()
        try:
            broker = Broker("127.0.0.1", 0, **options)
            await broker.start()
        except BaseException as exc:
            ready.set_exception(exc)
            raise
        threading.Thread(
            target=lambda: (stop.wait(), loop.call_soon_threadsafe(stopped.set)), daemon=True
        ).start()
        ready.set_result(BrokerThread(broker, loop, "127.0.0.1", broker.port))
        try:
            await stopped.wait()
        finally:
            await broker.close()

    # ROOST_TEST_LOOP=uvloop runs these brokers on uvloop (the default of ``roost serve``).
    factory = loop_factory(os.environ.get("ROOST_TEST_LOOP", "asyncio"))

    def run() -> None:
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(main())

    thread = threading.Thread(target=run, name="broker", daemon=True)
    thread.start()
    return ready.result(timeout=10), stop, thread


@pytest.fixture
def broker_thread() -> Iterator[BrokerThread]:
    """A fresh broker on 127.0.0.1 and an ephemeral port, served from a daemon thread."""
    handle, stop, thread = start_broker_thread()
    try:
        yield handle
    finally:
        stop.set()
        thread.join(timeout=10)

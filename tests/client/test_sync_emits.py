"""SyncClient's emits: handed to the loop thread without a round trip, with the async client's
order, window and error rules, on both portal backends."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from roost.client import SyncClient
from roost.errors import RemoteError
from roost.protocol.messages import Unknown
from tests.conftest import BrokerThread

WAIT = 5.0


@pytest.fixture(params=["asyncio", "trio"])
def backend(request: pytest.FixtureRequest) -> str:
    """The portal's event loop backend."""
    name: str = request.param
    return name


class _Seen:
    """Values from a listener's worker threads; ``wait_for(n)`` blocks until n arrived."""

    def __init__(self) -> None:
        self.values: list[Any] = []
        self._cond = threading.Condition()

    def __call__(self, value: Any) -> None:
        with self._cond:
            self.values.append(value)
            self._cond.notify_all()

    def wait_for(self, count: int) -> list[Any]:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.values) >= count, WAIT)
            return list(self.values)


def test_a_burst_arrives_in_order(broker_thread: BrokerThread, backend: str) -> None:
    """Emits and state changes from the calling thread keep their order through the hand-off,
    also past a small window, and a blocking call made after them does not overtake them."""
    seen, states = _Seen(), _Seen()
    count = 500
    with (
        SyncClient(server=broker_thread.address, backend=backend, emit_window=8) as a,
        SyncClient(server=broker_thread.address, backend=backend) as b,
    ):
        emit = a.event_register("/sb/ev")
        a.state_register("/sb/st")
        b.event_listen_cb("/sb/ev", seen)
        b.state_observe("/sb/st", states)
        for n in range(count):
            emit(n)
        a.event_emit("/sb/ev", "last")
        a.state_changed("/sb/st", 1)
        a.state_unknown("/sb/st")
        a.state_changed("/sb/st", 2)
        assert a.get("/sb/st") == 2  # the same connection: the change went first
        a.flush(timeout=WAIT)
        assert a.client.statistics()["unconfirmed"] == 0
        assert seen.wait_for(count + 1) == [*range(count), "last"]
        assert states.wait_for(3) == [1, Unknown, 2]


def test_refusal_is_raised_by_the_next_emit_or_flush(
    broker_thread: BrokerThread, backend: str
) -> None:
    """A refused emit is raised by flush, or by the next emit (not sent then); ``wait=True``
    raises the emit's own error."""
    seen = _Seen()
    with (
        SyncClient(server=broker_thread.address, backend=backend) as a,
        SyncClient(server=broker_thread.address, backend=backend) as b,
    ):
        emit = a.event_register("/sr/ev")
        b.event_listen_cb("/sr/ev", seen)
        a.event_emit("/sr/none", 1)
        with pytest.raises(RemoteError) as info:
            a.flush(timeout=WAIT)
        assert (info.value.value, info.value.path) == ("path_not_found", "/sr/none")
        a.event_emit("/sr/gone", 2)
        a.ping()  # its reply comes after the refusal
        with pytest.raises(RemoteError) as info:
            emit(3)
        assert info.value.path == "/sr/gone"
        emit(4)
        with pytest.raises(RemoteError) as info:
            a.event_emit("/sr/none", 5, wait=True)
        assert (info.value.value, info.value.path) == ("path_not_found", None)
        emit(6, wait=True)
        assert seen.wait_for(2) == [4, 6]


def test_leaving_the_block_delivers_the_last_emits(
    broker_thread: BrokerThread, backend: str
) -> None:
    """Emits handed over just before the block ends are sent and confirmed before closing."""
    seen = _Seen()
    count = 1000
    with SyncClient(server=broker_thread.address, backend=backend) as listener:
        listener.event_listen_cb("/sx/ev", seen)
        with SyncClient(server=broker_thread.address, backend=backend) as client:
            emit = client.event_register("/sx/ev")
            for n in range(count):
                emit(n)
        assert seen.wait_for(count) == list(range(count))

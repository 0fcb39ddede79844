"""eshet.py's SyncClient programs on roost, with only the import changed: every method returns
a ``concurrent.futures.Future``; observes come as a queue or as a wrapper."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future
from queue import Queue
from typing import Any

import pytest

from roost.eshet import ErrorValue, Unknown
from roost.eshet.sync_client import SyncClient
from tests.conftest import BrokerThread

WAIT = 5.0


@pytest.fixture
def client(broker_thread: BrokerThread) -> Iterator[SyncClient]:
    c = SyncClient(base="/test_client", server=broker_thread.address)
    c.wait_for_connection().result(WAIT)
    yield c
    c.close()


def test_action(client: SyncClient) -> None:
    """Register and call an action; the wrappers return Futures; errors come from result()."""
    registered = client.action_register("action", lambda x: x + 1)
    assert isinstance(registered, Future)
    registered.result(WAIT)
    assert client.action_call("action", 5).result(WAIT) == 6
    with pytest.raises(ErrorValue) as caught:
        client.action_call("missing").result(WAIT)
    assert caught.value.args == ("path_not_found",)


def test_state_queue(client: SyncClient) -> None:
    """The queue holds the current value first, then each change."""
    state = client.state_register("state").result(WAIT)
    q = client.state_observe_queue("state").result(WAIT)
    assert q.get_nowait() is Unknown
    state.changed(5).result(WAIT)
    assert q.get(timeout=WAIT) == 5
    state.unknown().result(WAIT)
    assert q.get(timeout=WAIT) is Unknown
    assert q.empty()
    with pytest.raises(ErrorValue) as caught:
        client.get("state").result(WAIT)
    assert caught.value.args == ("state_unknown",)


def _changed(wrapper: Any) -> bool:
    flag: bool = wrapper.changed
    return flag


def test_state_wrapper(client: SyncClient) -> None:
    """The wrapper holds the latest value; ``changed`` says whether it moved since the last
    ``get_value``. Values reach observers of one path in registration order, so once a queue
    registered after the wrapper has a value, the wrapper has it too."""
    state = client.state_register("state").result(WAIT)
    w = client.state_observe_wrapper("state").result(WAIT)
    after: Queue[Any] = client.state_observe_queue("state").result(WAIT)
    assert after.get_nowait() is Unknown
    assert w.get_value() is Unknown
    assert not _changed(w)

    state.changed(5).result(WAIT)
    assert after.get(timeout=WAIT) == 5
    assert _changed(w)
    assert w.get_value() == 5
    assert not _changed(w)

    state.unknown().result(WAIT)
    assert after.get(timeout=WAIT) is Unknown
    assert _changed(w)
    assert w.get_value() is Unknown
    assert not _changed(w)


def test_event_listen_queue(client: SyncClient) -> None:
    """An emit function returning Futures, and a queue of emitted values."""
    ev = client.event_register("event").result(WAIT)
    q = client.event_listen_queue("event").result(WAIT)
    assert q.empty()
    ev(5).result(WAIT)
    ev().result(WAIT)
    assert q.get(timeout=WAIT) == 5
    assert q.get(timeout=WAIT) is None


def test_set_and_callbacks(client: SyncClient) -> None:
    """A settable state whose set callback publishes the value; an observe callback."""
    seen: Queue[Any] = Queue()
    holder: list[Any] = []

    def on_set(value: Any) -> str:
        holder[0].changed(value)  # a Future; the callback runs on the client's loop thread
        return "ok"

    holder.append(client.state_register("dimmer", set_callback=on_set).result(WAIT))
    assert client.state_observe("dimmer", seen.put).result(WAIT) is Unknown
    assert client.set("dimmer", 40).result(WAIT) == "ok"
    assert seen.get(timeout=WAIT) == 40
    assert client.get("dimmer").result(WAIT) == 40
    client.state_changed("dimmer", 41).result(WAIT)
    assert seen.get(timeout=WAIT) == 41


def test_close_is_idempotent_and_returns_a_future(broker_thread: BrokerThread) -> None:
    """``close()`` joins the loop thread; it works called plainly, with ``.result()``, twice."""
    c = SyncClient(server=broker_thread.address)
    c.wait_for_connection().result(WAIT)
    assert c.connected
    assert c.close().result(WAIT) is None
    assert not c.thread.is_alive()
    c.close()

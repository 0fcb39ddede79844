"""Durable locks at the wire level: a key's scrypt runs off the event loop."""

from __future__ import annotations

import pytest

from roost.protocol import codec
from roost.protocol import messages as m
from roost.protocol.values import Value
from tests.broker.leasekit import reply_to
from tests.conftest import BrokerThread
from tests.wire import connect

pytestmark = pytest.mark.anyio


async def test_scrypt_does_not_hold_up_the_broker(broker_thread: BrokerThread) -> None:
    """A ping sent in the same write right after a lock_set is answered first: the lock's key
    is hashed in the key worker, not on the event loop; the lock is then set."""
    async with await connect(broker_thread.port, timeout=5) as w:
        lock_id, ping_id = w.next_id(), w.next_id()
        body = Value.of({"resource": "lamp", "key": "k1", "note": "n"})
        data = codec.encode(m.LockSet(lock_id, body)) + codec.encode(m.Ping(ping_id))
        await w.send_raw(data)
        first = await w.recv()
        assert isinstance(first, m.ReplyOk) and first.id == ping_id
        locked = await reply_to(w, lock_id)
        assert locked.ok and locked["lock"]["locked"] and locked["lock"]["note"] == "n"
        assert "k1" not in repr(locked.value)


async def test_lock_info_state_is_the_brokers(broker_thread: BrokerThread) -> None:
    """Clients cannot register under /meta/locks; an observer sees the lock info change."""
    async with (
        await connect(broker_thread.port, timeout=5) as owner,
        await connect(broker_thread.port, timeout=5) as watcher,
    ):
        rid = owner.next_id()
        refused = await owner.request(m.StateRegister(rid, "/meta/locks/lamp"))
        assert isinstance(refused, m.ReplyError) and refused.value.obj == "path_already_exists"
        rid = watcher.next_id()
        await watcher.send(m.StateObserve(rid, "/meta/locks/lamp"))
        assert isinstance(await watcher.recv(), m.ReplyStateUnknown)
        lock_id = owner.next_id()
        await owner.send(m.LockSet(lock_id, Value.of({"resource": "lamp", "key": "k1"})))
        assert (await reply_to(owner, lock_id)).ok
        note = await watcher.recv()
        assert isinstance(note, m.StateNotify) and note.path == "/meta/locks/lamp"
        assert note.value.obj["locked"] is True and note.value.obj["uid"]

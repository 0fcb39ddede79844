"""Connection.take_reply: replies taken apart without message objects (protocol.md §7)."""

from __future__ import annotations

import pytest

from roost.errors import FramingError
from roost.protocol import codec
from roost.protocol import messages as m
from roost.protocol.connection import Connection, Role
from roost.protocol.values import NIL, Value


def _server() -> Connection:
    conn = Connection(Role.SERVER)
    conn.receive_data(codec.encode(m.Hello(1, 30)))
    return conn


def _payload(msg: m.Message) -> bytes:
    return codec.encode(msg)[3:]


@pytest.mark.parametrize("cls", [m.ReplyOk, m.ReplyError])
def test_take_reply_consumes_outstanding_id(cls: type[m.ReplyOk] | type[m.ReplyError]) -> None:
    """A valid reply to an outstanding id gives (id, value bytes) and frees the id once."""
    conn = _server()
    rid = conn.claim_id()
    assert rid is not None
    value = Value.of({"a": [1, 2]})
    payload = _payload(cls(rid, value))
    assert conn.take_reply(payload) == (rid, value.raw)
    assert conn.outstanding == frozenset()
    assert conn.take_reply(payload) is None
    with pytest.raises(FramingError, match="nobody waits"):
        conn.receive_payload(payload)


def test_take_reply_declines_without_changing_anything() -> None:
    """Unknown ids, forgotten ids, bad values, short payloads and other types are left alone."""
    conn = _server()
    kept = conn.claim_id()
    forgotten = conn.claim_id()
    assert kept is not None and forgotten is not None
    conn.forget_id(forgotten)
    declined = [
        _payload(m.ReplyOk(999, NIL)),  # nobody waits for it
        _payload(m.ReplyOk(forgotten, NIL)),  # consumed silently by the full path
        bytes((0x05, kept >> 8, kept & 0xFF)),  # no value at all
        bytes((0x05, kept >> 8, kept & 0xFF, 0xC1)),  # 0xc1 is never valid msgpack
        bytes((0x05, kept >> 8, kept & 0xFF, 0xC0, 0xC0)),  # two values
        _payload(m.ReplyStateKnown(kept, NIL)),  # not an ok/error reply
        _payload(m.Ping(kept)),
    ]
    for payload in declined:
        assert conn.take_reply(payload) is None
        assert conn.outstanding == {kept, forgotten}
    assert conn.receive_payload(_payload(m.ReplyOk(forgotten, NIL))) is None
    bad = conn.receive_payload(bytes((0x06, kept >> 8, kept & 0xFF, 0xC1)))
    assert isinstance(bad, m.BadValue) and bad.id == kept
    assert conn.outstanding == frozenset()

"""Connection.claim_id: request ids for frames a peer builds itself (protocol.md §7)."""

from __future__ import annotations

import pytest

from roost.errors import FramingError, LocalProtocolError
from roost.protocol import codec
from roost.protocol import messages as m
from roost.protocol.connection import ID_SPACE, Connection, Role
from roost.protocol.values import NIL


def _server() -> Connection:
    conn = Connection(Role.SERVER)
    conn.receive_data(codec.encode(m.Hello(1, 30)))
    return conn


def test_fresh_connection_has_nothing_outstanding() -> None:
    """A new connection waits for no reply; a reply to any id is a framing error."""
    conn = _server()
    assert conn.outstanding == frozenset()
    conn.forget_id(3)  # not outstanding: ignored
    assert conn.outstanding == frozenset()
    with pytest.raises(FramingError, match="nobody waits"):
        conn.receive_data(codec.encode(m.ReplyOk(3, NIL)))


def test_claimed_id_is_outstanding_until_its_reply() -> None:
    """A claimed id is outstanding: its reply is accepted once, send refuses to reuse it."""
    conn = _server()
    assert conn.claim_id() == 0
    assert conn.claim_id() == 1
    assert conn.outstanding == {0, 1}
    with pytest.raises(LocalProtocolError, match="outstanding"):
        conn.send(m.ActionCall(1, "/a", NIL))
    assert conn.receive_data(codec.encode(m.ReplyOk(1, NIL))) == [m.ReplyOk(1, NIL)]
    assert conn.outstanding == {0}
    with pytest.raises(FramingError):
        conn.receive_data(codec.encode(m.ReplyOk(1, NIL)))


def test_claim_skips_sent_ids_and_exhausts() -> None:
    """Claims skip ids taken by send; with all 65536 outstanding, claim_id returns None."""
    conn = _server()
    conn.send(m.PropGet(0, "/p"))
    assert conn.claim_id() == 1
    for _ in range(ID_SPACE - 2):
        assert conn.claim_id() is not None
    assert conn.claim_id() is None
    assert conn.allocate_id() is None
    conn.receive_data(codec.encode(m.ReplyError(500, NIL)))
    assert conn.claim_id() == 500

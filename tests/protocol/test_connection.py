"""Connection: roles, the hello phase and request ids (protocol.md §5-§7, E1)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from roost.errors import FramingError, LocalProtocolError
from roost.protocol import codec
from roost.protocol import messages as m
from roost.protocol.connection import ID_SPACE, Connection, Role
from roost.protocol.values import NIL, Value
from tests.vectors import BODY, VALUE


def _server() -> Connection:
    conn = Connection(Role.SERVER)
    conn.receive_data(codec.encode(m.Hello(1, 30)))
    return conn


def _client() -> Connection:
    conn = Connection(Role.CLIENT)
    conn.send(m.Hello(1, 30))
    conn.receive_data(codec.encode(m.ServerHelloId(Value.of("c1"))))
    return conn


# -- role checks ------------------------------------------------------------------------------


@pytest.mark.parametrize("code", sorted(m.SERVER_ONLY), ids=lambda code: f"0x{code:02x}")
def test_server_refuses_server_only_codes(code: int) -> None:
    """Case 8: a server-only message from a client is a framing error."""
    msg = next(v for v in _sample_messages() if v.code == code)
    with pytest.raises(FramingError):
        _server().receive_data(codec.encode(msg))


@pytest.mark.parametrize("code", sorted(m.CLIENT_ONLY), ids=lambda code: f"0x{code:02x}")
def test_client_refuses_client_only_codes(code: int) -> None:
    """A client-only message from the broker is a framing error."""
    msg = next(v for v in _sample_messages() if v.code == code)
    with pytest.raises(FramingError):
        _client().receive_data(codec.encode(msg))


def test_unknown_codes_raise() -> None:
    """Case 5: an unknown type code is a framing error on either side."""
    for conn in (_server(), _client()):
        with pytest.raises(FramingError, match="unknown"):
            conn.receive_data(bytes.fromhex("47 00 03 99 00 01"))


def test_send_refuses_peer_messages() -> None:
    """Each role refuses to send what only the peer may send."""
    with pytest.raises(LocalProtocolError):
        _server().send(m.Ping(1))
    with pytest.raises(LocalProtocolError):
        _client().send(m.EventNotify("/a", NIL))


def test_both_roles_send_calls_and_replies() -> None:
    """action_call and the replies go both ways."""
    server, client = _server(), _client()
    call = server.send(m.ActionCall(0, "/a", VALUE))
    assert client.receive_data(call) == [m.ActionCall(0, "/a", VALUE)]
    reply = client.send(m.ReplyOk(0, NIL))
    assert server.receive_data(reply) == [m.ReplyOk(0, NIL)]
    rid = client.allocate_id()
    assert rid is not None
    assert server.receive_data(client.send(m.ActionCall(rid, "/b", VALUE)))
    assert client.receive_data(server.send(m.ReplyError(rid, VALUE))) == [m.ReplyError(rid, VALUE)]


# -- hello phase ------------------------------------------------------------------------------


def test_hello_sets_timeout_and_done() -> None:
    """A server notes the hello's timeout; a later hello replaces it."""
    conn = Connection(Role.SERVER)
    assert not conn.hello_done
    assert conn.receive_data(codec.encode(m.Hello(1, 30))) == [m.Hello(1, 30)]
    assert (conn.hello_done, conn.timeout) == (True, 30)
    conn.receive_data(codec.encode(m.HelloId(1, 0, Value.of("dev1"))))
    assert conn.timeout == 0


@pytest.mark.parametrize("version", [0, 2, 255])
def test_hello_version_must_be_1(version: int) -> None:
    """Case 16: a hello or hello_id with a version other than 1 is a framing error."""
    with pytest.raises(FramingError, match="version"):
        Connection(Role.SERVER).receive_data(codec.encode(m.Hello(version, 30)))
    with pytest.raises(FramingError, match="version"):
        Connection(Role.SERVER).receive_data(codec.encode(m.HelloId(version, 30, NIL)))


@pytest.mark.parametrize("client_id", ["d4 01 00", "c1", "", "a2 c3 28", "d6 ff 00 00 00 01"])
def test_hello_id_with_invalid_client_id(client_id: str) -> None:
    """Case 32: hello_id whose client id is not a valid value is a framing error, not BadValue."""
    frame = bytes.fromhex("47 00") + bytes((4 + len(bytes.fromhex(client_id)),))
    frame += bytes.fromhex("02 01 00 1e") + bytes.fromhex(client_id)
    with pytest.raises(FramingError, match="client id"):
        Connection(Role.SERVER).receive_data(frame)


def test_requests_before_hello_pass_through_server() -> None:
    """Before hello a server still returns requests (the broker answers unregistered)."""
    conn = Connection(Role.SERVER)
    assert conn.receive_data(codec.encode(m.ActionRegister(1, "/a"))) == [m.ActionRegister(1, "/a")]
    assert not conn.hello_done


def test_client_refuses_frames_before_hello_reply() -> None:
    """Case 17: a client treats a notification or forward before the hello reply as fatal."""
    for msg in (m.EventNotify("/a", NIL), m.ActionCall(0, "/a", NIL), m.LeaseRevoked(BODY)):
        conn = Connection(Role.CLIENT)
        conn.send(m.Hello(1, 30))
        with pytest.raises(FramingError, match="before the hello reply"):
            conn.receive_data(codec.encode(msg))


def test_client_accepts_either_hello_reply() -> None:
    """A client accepts 0x03 or 0x04 whichever hello it sent, and only after sending one."""
    for reply in (m.ServerHello(), m.ServerHelloId(Value.of(7))):
        conn = Connection(Role.CLIENT)
        assert conn.send(m.HelloId(1, 5, Value.of("x")))[3] == 0x02
        assert conn.timeout == 5
        assert conn.receive_data(codec.encode(reply)) == [reply]
        assert conn.hello_done
    with pytest.raises(FramingError, match="without a hello"):
        Connection(Role.CLIENT).receive_data(codec.encode(m.ServerHello()))


def test_client_refuses_invalid_allocated_id() -> None:
    """A hello reply carrying an invalid client id is fatal for the client."""
    conn = Connection(Role.CLIENT)
    conn.send(m.Hello(1, 30))
    with pytest.raises(FramingError):
        conn.receive_data(bytes.fromhex("47 00 02 04 c1"))


def test_client_reply_to_early_ping() -> None:
    """A ping sent before the hello may be answered before the hello reply."""
    conn = Connection(Role.CLIENT)
    conn.send(m.Ping(3))
    conn.send(m.Hello(1, 30))
    data = codec.encode(m.ReplyOk(3, NIL)) + codec.encode(m.ServerHelloId(Value.of(1)))
    assert [type(msg) for msg in conn.receive_data(data)] == [m.ReplyOk, m.ServerHelloId]


# -- request ids ------------------------------------------------------------------------------


def test_server_reply_to_unknown_id_raises() -> None:
    """Case 9: a reply to an id the broker never issued is a framing error."""
    with pytest.raises(FramingError, match="nobody waits"):
        _server().receive_data(codec.encode(m.ReplyOk(5, NIL)))


def test_server_second_reply_raises() -> None:
    """Case 9: a second reply to an id already answered is a framing error."""
    conn = _server()
    rid = conn.allocate_id()
    assert rid == 0
    conn.send(m.ActionCall(rid, "/a", NIL))
    assert conn.outstanding == {0}
    assert conn.receive_data(codec.encode(m.ReplyOk(0, NIL))) == [m.ReplyOk(0, NIL)]
    assert conn.outstanding == frozenset()
    with pytest.raises(FramingError):
        conn.receive_data(codec.encode(m.ReplyError(0, NIL)))


def test_reply_before_hello_raises_on_server() -> None:
    """A 0x05 before hello answers no pending id and is a framing error."""
    with pytest.raises(FramingError):
        Connection(Role.SERVER).receive_data(bytes.fromhex("47 00 04 05 00 07 c0"))


def test_client_reply_to_unknown_id_raises() -> None:
    """The broker must never answer an id the client is not waiting for."""
    with pytest.raises(FramingError):
        _client().receive_data(codec.encode(m.ReplyStateUnknown(9)))


def test_bad_value_reply_consumes_id() -> None:
    """Case 12: an owner's reply with an invalid value comes back as BadValue; the id is freed."""
    conn = _server()
    conn.send(m.ActionCall(0, "/a", NIL))
    out = conn.receive_data(bytes.fromhex("47 00 06 05 00 00 d4 01 00"))
    assert len(out) == 1
    assert isinstance(out[0], m.BadValue)
    assert (out[0].code, out[0].id) == (0x05, 0)
    assert conn.outstanding == frozenset()


def test_value_error_keeps_connection_usable() -> None:
    """Case 7: a request with a bad value is reported in place; later messages still decode."""
    conn = _server()
    data = bytes.fromhex("47 00 07 11 00 05 2f 61 00 c1") + codec.encode(m.Ping(6))
    out = conn.receive_data(data)
    assert isinstance(out[0], m.BadValue)
    assert (out[0].code, out[0].id) == (0x11, 5)
    assert out[1] == m.Ping(6)


def test_allocation_sequence() -> None:
    """Ids start at 0 and go +1 per request, whatever its kind (protocol.md §7)."""
    conn = _server()
    makers: list[Callable[[int], m.Message]] = [
        lambda i: m.ActionCall(i, "/a", NIL),
        lambda i: m.ActionCall(i, "/a", NIL),
        lambda i: m.ActionCall(i, "/a", NIL),
        lambda i: m.PropGet(i, "/p"),
        lambda i: m.PropSet(i, "/p", NIL),
    ]
    seen = []
    for make in makers:
        rid = conn.allocate_id()
        assert rid is not None
        conn.send(make(rid))
        seen.append(rid)
    assert seen == [0, 1, 2, 3, 4]


def test_allocation_skips_outstanding_and_wraps() -> None:
    """Allocation wraps at 65536 and skips ids still outstanding."""
    conn = _server()
    for _ in range(3):
        rid = conn.allocate_id()
        assert rid is not None
        conn.send(m.ActionCall(rid, "/a", NIL))
    for rid in (1, 2):
        conn.receive_data(codec.encode(m.ReplyOk(rid, NIL)))
    for expected in range(3, ID_SPACE):
        assert conn.allocate_id() == expected
    assert conn.allocate_id() == 1  # 0 is still outstanding


def test_allocation_exhausted() -> None:
    """With all 65536 ids outstanding, allocate_id returns None; one reply frees one id."""
    conn = _server()
    for _ in range(ID_SPACE):
        rid = conn.allocate_id()
        assert rid is not None
        conn.send(m.PropGet(rid, "/p"))
    assert conn.allocate_id() is None
    conn.receive_data(codec.encode(m.ReplyOk(777, NIL)))
    assert conn.allocate_id() == 777
    assert conn.allocate_id() == 777  # not sent yet, so still free


def test_duplicate_outstanding_id_refused() -> None:
    """Two outstanding requests never share an id."""
    conn = _client()
    conn.send(m.Get(4, "/a"))
    with pytest.raises(LocalProtocolError, match="outstanding"):
        conn.send(m.Get(4, "/b"))
    server = _server()
    server.send(m.StateSet(9, "/s", NIL))
    with pytest.raises(LocalProtocolError):
        server.send(m.PropGet(9, "/p"))


def test_forget_id_drops_late_reply_and_keeps_id_reserved() -> None:
    """A forgotten id stays reserved until its late reply, which is consumed silently."""
    conn = _client()
    rid = conn.allocate_id()
    assert rid == 0
    conn.send(m.ActionCall(rid, "/slow", NIL))
    conn.forget_id(rid)
    assert conn.allocate_id() == 1
    late = codec.encode(m.ReplyOk(rid, NIL)) + codec.encode(m.EventNotify("/e", NIL))
    assert conn.receive_data(late) == [m.EventNotify("/e", NIL)]
    assert conn.outstanding == frozenset()
    conn.forget_id(12345)  # not outstanding: ignored
    with pytest.raises(FramingError):
        conn.receive_data(codec.encode(m.ReplyOk(rid, NIL)))


def test_state_replies_consume_client_ids() -> None:
    """Observe replies (0x07, 0x08, 0x0a, 0x0b) answer the client's outstanding ids."""
    conn = _client()
    replies: list[m.Message] = [
        m.ReplyStateKnown(0, VALUE),
        m.ReplyStateUnknown(1),
        m.ReplyStateTKnown(2, 5, VALUE),
        m.ReplyStateTUnknown(3, 0),
    ]
    for rid in range(4):
        conn.send(m.StateObserve(rid, "/s"))
    assert conn.receive_data(b"".join(codec.encode(r) for r in replies)) == replies
    assert conn.outstanding == frozenset()


# -- extensions ---------------------------------------------------------------------------------


def test_extension_messages_need_opt_in() -> None:
    """E1: the broker sends no extension message to a peer that has not sent one."""
    assert not _server().opted_in
    conn = _server()
    with pytest.raises(LocalProtocolError, match="extension"):
        conn.send(m.LeaseRevoked(BODY))
    assert conn.receive_data(codec.encode(m.LeaseInfo(3, BODY))) == [m.LeaseInfo(3, BODY)]
    assert conn.opted_in
    assert conn.send(m.LeaseRevoked(BODY))[3] == 0x61
    guarded = conn.send(m.GuardedCall(0, BODY))
    assert conn.outstanding == {0}
    client = _client()
    assert client.receive_data(guarded) == [m.GuardedCall(0, BODY)]


def _sample_messages() -> list[m.Message]:
    from tests.vectors import ESHET_VECTORS, EXTENSION_VECTORS

    return [vector.message for vector in ESHET_VECTORS + EXTENSION_VECTORS]


def test_frames_then_payloads_match_receive_data() -> None:
    """receive_frames then receive_payload give what receive_data gives, a forgotten reply
    as None."""
    conn = _client()
    rid = conn.allocate_id()
    assert rid is not None
    conn.send(m.ActionCall(rid, "/slow", NIL))
    conn.forget_id(rid)
    stream = codec.encode(m.ReplyOk(rid, NIL)) + codec.encode(m.EventNotify("/e", NIL))
    payloads = conn.receive_frames(stream[:-1])
    assert len(payloads) == 1
    payloads += conn.receive_frames(stream[-1:])
    assert [conn.receive_payload(p) for p in payloads] == [None, m.EventNotify("/e", NIL)]
    with pytest.raises(FramingError):
        conn.receive_payload(payloads[0])  # the same reply again: nobody waits for it

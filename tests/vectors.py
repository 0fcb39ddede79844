"""Golden frames, typed by hand from the byte layouts and examples of docs/protocol.md.

Nothing here is produced by roost's encoder: every frame is a hex string written from the spec,
and every value inside an expected message is built from hand-written msgpack bytes. The tests
decode each frame to its message and encode each message back to its frame.

Conventions (conformance case 1): request id 42 (``00 2a``), path "/path" (``2f 70 61 74 68``),
value ``["foo", 5]`` (``92 a3 66 6f 6f 05``), time 1000 ms (``00 00 03 e8``); extension bodies
are the map ``{"resource": "lab/arm"}``.
"""

from __future__ import annotations

from dataclasses import dataclass

from roost.protocol import messages as m
from roost.protocol.values import Value

__all__ = (
    "BODY",
    "ESHET_VECTORS",
    "EXTENSION_VECTORS",
    "SPEC_EXAMPLES",
    "VALUE",
    "VECTORS",
    "Vector",
)


def _hex(text: str) -> bytes:
    return bytes.fromhex(text)


#: ``["foo", 5]``: fixarray of 2, fixstr "foo", positive fixint 5.
VALUE = Value(_hex("92 a3 66 6f 6f 05"))
#: ``{"resource": "lab/arm"}``: fixmap of 1, fixstr "resource", fixstr "lab/arm".
BODY = Value(_hex("81 a8 72 65 73 6f 75 72 63 65 a7 6c 61 62 2f 61 72 6d"))

_P = "2f 70 61 74 68 00"  # "/path" and its NUL
_V = "92 a3 66 6f 6f 05"
_B = "81 a8 72 65 73 6f 75 72 63 65 a7 6c 61 62 2f 61 72 6d"


@dataclass(frozen=True)
class Vector:
    """One golden frame and the message it carries."""

    name: str
    frame: bytes
    message: m.Message

    @property
    def payload(self) -> bytes:
        """The frame without its 3-byte header."""
        return self.frame[3:]


def _v(name: str, frame: str, message: m.Message) -> Vector:
    return Vector(name, _hex(frame), message)


#: The 30 ESHET forms of protocol.md §5, one vector each.
ESHET_VECTORS: tuple[Vector, ...] = (
    _v("hello", "47 00 04 01 01 00 1e", m.Hello(1, 30)),
    _v("hello_id", f"47 00 0a 02 01 00 1e {_V}", m.HelloId(1, 30, VALUE)),
    _v("server_hello", "47 00 01 03", m.ServerHello()),
    _v("server_hello_id", f"47 00 07 04 {_V}", m.ServerHelloId(VALUE)),
    _v("reply_ok", f"47 00 09 05 00 2a {_V}", m.ReplyOk(42, VALUE)),
    _v("reply_error", f"47 00 09 06 00 2a {_V}", m.ReplyError(42, VALUE)),
    _v("reply_state_known", f"47 00 09 07 00 2a {_V}", m.ReplyStateKnown(42, VALUE)),
    _v("reply_state_unknown", "47 00 03 08 00 2a", m.ReplyStateUnknown(42)),
    _v("ping", "47 00 03 09 00 2a", m.Ping(42)),
    _v(
        "reply_state_t_known",
        f"47 00 0d 0a 00 2a 00 00 03 e8 {_V}",
        m.ReplyStateTKnown(42, 1000, VALUE),
    ),
    _v("reply_state_t_unknown", "47 00 07 0b 00 2a 00 00 03 e8", m.ReplyStateTUnknown(42, 1000)),
    _v("action_register", f"47 00 09 10 00 2a {_P}", m.ActionRegister(42, "/path")),
    _v("action_call", f"47 00 0f 11 00 2a {_P} {_V}", m.ActionCall(42, "/path", VALUE)),
    _v("prop_register", f"47 00 09 20 00 2a {_P}", m.PropRegister(42, "/path")),
    _v("prop_get", f"47 00 09 21 00 2a {_P}", m.PropGet(42, "/path")),
    _v("prop_set", f"47 00 0f 22 00 2a {_P} {_V}", m.PropSet(42, "/path", VALUE)),
    _v("get", f"47 00 09 23 00 2a {_P}", m.Get(42, "/path")),
    _v("set", f"47 00 0f 24 00 2a {_P} {_V}", m.Set(42, "/path", VALUE)),
    _v("event_register", f"47 00 09 30 00 2a {_P}", m.EventRegister(42, "/path")),
    _v("event_emit", f"47 00 0f 31 00 2a {_P} {_V}", m.EventEmit(42, "/path", VALUE)),
    _v("event_listen", f"47 00 09 32 00 2a {_P}", m.EventListen(42, "/path")),
    _v("event_notify", f"47 00 0d 33 {_P} {_V}", m.EventNotify("/path", VALUE)),
    _v("state_register", f"47 00 09 40 00 2a {_P}", m.StateRegister(42, "/path")),
    _v("state_changed", f"47 00 0f 41 00 2a {_P} {_V}", m.StateChanged(42, "/path", VALUE)),
    _v("state_unknown", f"47 00 09 42 00 2a {_P}", m.StateUnknown(42, "/path")),
    _v("state_observe", f"47 00 09 43 00 2a {_P}", m.StateObserve(42, "/path")),
    _v("state_notify", f"47 00 0d 44 {_P} {_V}", m.StateNotify("/path", VALUE)),
    _v("state_notify_unknown", f"47 00 07 45 {_P}", m.StateNotifyUnknown("/path")),
    _v("state_observe_t", f"47 00 09 46 00 2a {_P}", m.StateObserveT(42, "/path")),
    _v("state_set", f"47 00 0f 47 00 2a {_P} {_V}", m.StateSet(42, "/path", VALUE)),
)

#: Every extension form of E7: requests and guarded forwards ``type, u16 id, mp map``, pushes
#: ``type, mp map`` (E3).
EXTENSION_VECTORS: tuple[Vector, ...] = (
    _v("lease_acquire", f"47 00 15 50 00 2a {_B}", m.LeaseAcquire(42, BODY)),
    _v("lease_take", f"47 00 15 51 00 2a {_B}", m.LeaseTake(42, BODY)),
    _v("lease_return", f"47 00 15 52 00 2a {_B}", m.LeaseReturn(42, BODY)),
    _v("lease_retain", f"47 00 15 53 00 2a {_B}", m.LeaseRetain(42, BODY)),
    _v("lease_validate", f"47 00 15 54 00 2a {_B}", m.LeaseValidate(42, BODY)),
    _v("lease_cancel", f"47 00 15 55 00 2a {_B}", m.LeaseCancel(42, BODY)),
    _v("lease_info", f"47 00 15 56 00 2a {_B}", m.LeaseInfo(42, BODY)),
    _v("lease_list", f"47 00 15 57 00 2a {_B}", m.LeaseList(42, BODY)),
    _v("lease_guard", f"47 00 15 58 00 2a {_B}", m.LeaseGuard(42, BODY)),
    _v("lease_call", f"47 00 15 59 00 2a {_B}", m.LeaseCall(42, BODY)),
    _v("lease_set", f"47 00 15 5a 00 2a {_B}", m.LeaseSet(42, BODY)),
    _v("lock_set", f"47 00 15 5b 00 2a {_B}", m.LockSet(42, BODY)),
    _v("lock_clear", f"47 00 15 5c 00 2a {_B}", m.LockClear(42, BODY)),
    _v("lock_info", f"47 00 15 5d 00 2a {_B}", m.LockInfo(42, BODY)),
    _v("pool_list", f"47 00 15 5e 00 2a {_B}", m.PoolList(42, BODY)),
    _v("pool_reload", f"47 00 15 5f 00 2a {_B}", m.PoolReload(42, BODY)),
    _v("lease_granted", f"47 00 13 60 {_B}", m.LeaseGranted(BODY)),
    _v("lease_revoked", f"47 00 13 61 {_B}", m.LeaseRevoked(BODY)),
    _v("lease_wait_ended", f"47 00 13 62 {_B}", m.LeaseWaitEnded(BODY)),
    _v("guarded_call", f"47 00 15 68 00 2a {_B}", m.GuardedCall(42, BODY)),
    _v("guarded_set", f"47 00 15 69 00 2a {_B}", m.GuardedSet(42, BODY)),
    _v("subtree_listen", f"47 00 15 78 00 2a {_B}", m.SubtreeListen(42, BODY)),
    _v("subtree_observe", f"47 00 15 79 00 2a {_B}", m.SubtreeObserve(42, BODY)),
    _v("subtree_cancel", f"47 00 15 7a 00 2a {_B}", m.SubtreeCancel(42, BODY)),
    _v("subtree_event", f"47 00 0d 7c {_P} {_V}", m.SubtreeEvent("/path", VALUE)),
    _v("subtree_changed", f"47 00 0d 7d {_P} {_V}", m.SubtreeChanged("/path", VALUE)),
    _v("subtree_unknown", f"47 00 07 7e {_P}", m.SubtreeUnknown("/path")),
    _v("subtree_snapshot", f"47 00 0f 7f 00 2a {_P} {_V}", m.SubtreeSnapshot(42, "/path", VALUE)),
    _v("auth_login", f"47 00 15 70 00 2a {_B}", m.AuthLogin(42, BODY)),
    _v("auth_reload", f"47 00 15 71 00 2a {_B}", m.AuthReload(42, BODY)),
    _v("auth_delegate", f"47 00 15 72 00 2a {_B}", m.AuthDelegate(42, BODY)),
    _v("access_changed", f"47 00 13 74 {_B}", m.AccessChanged(BODY)),
)

#: The literal byte examples of protocol.md §4.5, §5, E3 and E12, as printed there.
SPEC_EXAMPLES: tuple[Vector, ...] = (
    _v(
        "auth_login id 1",
        "47 00 16 70 00 01 82 a4 75 73 65 72 a1 61 a8 70 61 73 73 77 6f 72 64 a1 62",
        m.AuthLogin(1, Value.of({"user": "a", "password": "b"})),
    ),
    _v("ping id 7", "47 00 03 09 00 07", m.Ping(7)),
    _v("ping answer", "47 00 04 05 00 07 c0", m.ReplyOk(7, Value(_hex("c0")))),
    _v(
        "error path_already_exists",
        "47 00 17 06 00 01 b3 70 61 74 68 5f 61 6c 72 65 61 64 79 5f 65 78 69 73 74 73",
        m.ReplyError(1, Value(_hex("b3 70 61 74 68 5f 61 6c 72 65 61 64 79 5f 65 78 69 73 74 73"))),
    ),
    _v(
        "eshetsrv allocated id",
        "47 00 0a 04 d3 f8 00 00 00 00 00 03 82",
        m.ServerHelloId(Value(_hex("d3 f8 00 00 00 00 00 03 82"))),
    ),
    _v("action_register /a", "47 00 06 10 00 01 2f 61 00", m.ActionRegister(1, "/a")),
    _v(
        "action_call /p1/act",
        "47 00 1a 11 00 0e 2f 70 31 2f 61 63 74 00 93 01 a3 74 77 6f cb 40 0c 00 00 00 00 00 00",
        m.ActionCall(14, "/p1/act", Value(_hex("93 01 a3 74 77 6f cb 40 0c 00 00 00 00 00 00"))),
    ),
    _v(
        "get /meta/broker",
        "47 00 10 23 00 02 2f 6d 65 74 61 2f 62 72 6f 6b 65 72 00",
        m.Get(2, "/meta/broker"),
    ),
    _v(
        "lease_acquire lab/arm",
        "47 00 1b 50 00 01 82 a8 72 65 73 6f 75 72 63 65 a7 6c 61 62 2f 61 72 6d a4 77 61 69 74 00",
        m.LeaseAcquire(
            1,
            Value(_hex("82 a8 72 65 73 6f 75 72 63 65 a7 6c 61 62 2f 61 72 6d a4 77 61 69 74 00")),
        ),
    ),
    _v(
        "bare OK reply",
        "47 00 0e 05 00 01 81 a6 73 74 61 74 75 73 a2 4f 4b",
        m.ReplyOk(1, Value(_hex("81 a6 73 74 61 74 75 73 a2 4f 4b"))),
    ),
    _v(
        "subtree_observe /h/**",
        "47 00 17 79 00 01 82 a3 73 75 62 00 a7 70 61 74 74 65 72 6e a5 2f 68 2f 2a 2a",
        m.SubtreeObserve(
            1, Value(_hex("82 a3 73 75 62 00 a7 70 61 74 74 65 72 6e a5 2f 68 2f 2a 2a"))
        ),
    ),
    _v(
        "subtree_snapshot /h/t",
        "47 00 09 7f 00 00 2f 68 2f 74 00 15",
        m.SubtreeSnapshot(0, "/h/t", Value(_hex("15"))),
    ),
    _v(
        "subtree_observe reply",
        "47 00 16 05 00 01 82 a6 73 74 61 74 75 73 a2 4f 4b a6 73 74 61 74 65 73 01",
        m.ReplyOk(1, Value(_hex("82 a6 73 74 61 74 75 73 a2 4f 4b a6 73 74 61 74 65 73 01"))),
    ),
)

VECTORS: tuple[Vector, ...] = ESHET_VECTORS + EXTENSION_VECTORS + SPEC_EXAMPLES

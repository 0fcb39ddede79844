"""What an unmodified eshet.py client relies on, replayed as its exact frames.

eshet.py picks request ids as "the lowest free id from its last one", so sequential requests all
use id 0; it packs floats as float32 and call arguments as an array; it answers forwarded calls
from separate tasks (so replies may come back in any order); and after a lost link it says
``hello_id`` with the id the broker allocated, decoded and re-encoded by Python's msgpack.

Every frame here is written by hand from the protocol description, and every answer is compared
byte for byte, so these tests pin down the wire as eshet.py sees it.
"""

from __future__ import annotations

import anyio
import msgpack
import pytest

from tests.conftest import BrokerThread
from tests.wire import DEFAULT_TIMEOUT, Wire

pytestmark = pytest.mark.anyio

HELLO_30 = bytes.fromhex("4700040101001e")  # hello, version 1, timeout 30 s
OK_NIL_0 = bytes.fromhex("470004050000c0")  # reply ok nil, id 0


class Frames:
    """Whole raw frames read from a :class:`Wire` whose decoder is never used."""

    def __init__(self, wire: Wire) -> None:
        self.wire = wire
        self.buffer = bytearray()

    async def next(self, timeout: float = DEFAULT_TIMEOUT) -> bytes:
        """The next frame, header included.

        Raises:
            TimeoutError: no whole frame within ``timeout``.
            anyio.EndOfStream: the broker closed the connection first.
        """
        with anyio.fail_after(timeout):
            while True:
                if len(self.buffer) >= 3:
                    end = 3 + int.from_bytes(self.buffer[1:3], "big")
                    if len(self.buffer) >= end:
                        frame = bytes(self.buffer[:end])
                        del self.buffer[:end]
                        return frame
                self.buffer += await self.wire.stream.receive(65536)

    async def exchange(self, request: bytes, timeout: float = DEFAULT_TIMEOUT) -> bytes:
        """Send ``request`` and return the next frame."""
        await self.wire.send_raw(request)
        return await self.next(timeout)

    async def silent(self, duration: float = 0.2) -> None:
        """Assert nothing is buffered and nothing arrives for ``duration`` seconds."""
        assert not self.buffer, f"unread bytes: {self.buffer.hex(' ')}"
        await self.wire.expect_silence(duration)

    async def closed(self) -> None:
        """Assert nothing is buffered and the broker closes the link without another frame."""
        assert not self.buffer, f"unread bytes: {self.buffer.hex(' ')}"
        await self.wire.expect_closed()


async def eshet_connect(port: int) -> tuple[Wire, Frames, bytes]:
    """Connect and say eshet.py's hello; return the wire, its frames and the allocated id."""
    wire = await Wire.connect(port)
    frames = Frames(wire)
    try:
        reply = await frames.exchange(HELLO_30)
        assert reply[3] == 0x04, f"expected hello_id reply, got {reply.hex(' ')}"
    except BaseException:
        await wire.aclose()
        raise
    return wire, frames, reply[4:]


async def test_self_call_with_colliding_ids(broker_thread: BrokerThread) -> None:
    """A client calling its own action: its id 0 and the broker's id 0 meet on one link."""
    wire, frames, _ = await eshet_connect(broker_thread.port)
    async with wire:
        register = b"G\x00\x1c\x10\x00\x00/test_client/test_action\x00"
        assert await frames.exchange(register) == OK_NIL_0
        call = b"G\x00\x1e\x11\x00\x00/test_client/test_action\x00\x91\x05"
        # The forwarded call carries the broker's first id (0) and the same path and args.
        assert await frames.exchange(call) == call
        six = bytes.fromhex("47000405000006")  # reply ok 6, id 0: the owner's and the caller's
        assert await frames.exchange(six) == six
        await frames.silent()


async def test_owner_answers_calls_out_of_order(broker_thread: BrokerThread) -> None:
    """Replies sent from tasks in reverse order reach the caller under its own ids."""
    owner, owner_frames, _ = await eshet_connect(broker_thread.port)
    caller, caller_frames, _ = await eshet_connect(broker_thread.port)
    async with owner, caller:
        path = b"/test_client/slow\x00"
        assert await owner_frames.exchange(b"G\x00\x15\x10\x00\x00" + path) == OK_NIL_0
        # id 0 is still unanswered when the second call goes out, so eshet.py picks id 1.
        await caller.send_raw(
            b"G\x00\x17\x11\x00\x00"
            + path
            + b"\x91\x01"
            + b"G\x00\x17\x11\x00\x01"
            + path
            + b"\x91\x02"
        )
        assert await owner_frames.next() == b"G\x00\x17\x11\x00\x00" + path + b"\x91\x01"
        assert await owner_frames.next() == b"G\x00\x17\x11\x00\x01" + path + b"\x91\x02"
        await owner.send_raw(bytes.fromhex("4700040500010347000405000002"))
        assert await caller_frames.next() == bytes.fromhex("47000405000103")
        assert await caller_frames.next() == bytes.fromhex("47000405000002")
        await caller_frames.silent()


async def test_float32_values_pass_unchanged(broker_thread: BrokerThread) -> None:
    """float32 state values, call args and results come back as the same 5 bytes everywhere."""
    owner, owner_frames, _ = await eshet_connect(broker_thread.port)
    other, other_frames, _ = await eshet_connect(broker_thread.port)
    async with owner, other:
        state = b"/test_client/f\x00"
        tenth, one_and_half = bytes.fromhex("ca3dcccccd"), bytes.fromhex("ca3fc00000")
        assert await owner_frames.exchange(b"G\x00\x12\x40\x00\x00" + state) == OK_NIL_0
        changed = b"G\x00\x17\x41\x00\x00" + state + tenth
        assert await owner_frames.exchange(changed) == OK_NIL_0
        observe = b"G\x00\x12\x43\x00\x00" + state
        assert await other_frames.exchange(observe) == b"G\x00\x08\x07\x00\x00" + tenth
        get = b"G\x00\x12\x23\x00\x00" + state
        assert await other_frames.exchange(get) == b"G\x00\x08\x05\x00\x00" + tenth
        changed = b"G\x00\x17\x41\x00\x00" + state + one_and_half
        assert await owner_frames.exchange(changed) == OK_NIL_0
        assert await other_frames.next() == b"G\x00\x15\x44" + state + one_and_half

        action = b"/test_client/g\x00"
        assert await owner_frames.exchange(b"G\x00\x12\x10\x00\x00" + action) == OK_NIL_0
        call = b"G\x00\x18\x11\x00\x00" + action + b"\x91" + tenth
        # The owner's first forwarded request on this link: broker id 0, args untouched.
        await other.send_raw(call)
        assert await owner_frames.next() == call
        await owner.send_raw(b"G\x00\x08\x05\x00\x00" + one_and_half)
        assert await other_frames.next() == b"G\x00\x08\x05\x00\x00" + one_and_half


async def test_nil_emit_to_a_listener(broker_thread: BrokerThread) -> None:
    """emit() with no payload sends nil: ok nil to the emitter, 0x33 with c0 to the listener."""
    owner, owner_frames, _ = await eshet_connect(broker_thread.port)
    listener, listener_frames, _ = await eshet_connect(broker_thread.port)
    async with owner, listener:
        path = b"/test_client/test_event\x00"
        assert await owner_frames.exchange(b"G\x00\x1b\x30\x00\x00" + path) == OK_NIL_0
        assert await listener_frames.exchange(b"G\x00\x1b\x32\x00\x00" + path) == OK_NIL_0
        emit = b"G\x00\x1c\x31\x00\x00" + path + b"\xc0"
        assert await owner_frames.exchange(emit) == OK_NIL_0
        assert await listener_frames.next() == b"G\x00\x1a\x33" + path + b"\xc0"
        await listener_frames.silent()


async def test_owner_returns_with_reencoded_allocated_id(broker_thread: BrokerThread) -> None:
    """Case 18 as eshet.py does it: allocated id re-encoded by Python, takeover, 0x45, 0x44."""
    old, old_frames, allocated = await eshet_connect(broker_thread.port)
    observer, observer_frames, _ = await eshet_connect(broker_thread.port)
    async with old, observer:
        path = b"/test_client/test_state\x00"
        assert await old_frames.exchange(b"G\x00\x1b\x40\x00\x00" + path) == OK_NIL_0
        assert await old_frames.exchange(b"G\x00\x1c\x41\x00\x00" + path + b"\x05") == OK_NIL_0
        observe = b"G\x00\x1b\x43\x00\x00" + path
        assert await observer_frames.exchange(observe) == bytes.fromhex("47000407000005")

        # eshet.py keeps the id as a Python object (default decoder) and packs it again.
        client_id = msgpack.packb(msgpack.unpackb(allocated), use_single_float=True)
        hello_id = b"G" + (4 + len(client_id)).to_bytes(2, "big") + b"\x02\x01\x00\x1e"
        async with await Wire.connect(broker_thread.port) as new:
            new_frames = Frames(new)
            assert await new_frames.exchange(hello_id + client_id) == b"G\x00\x01\x03"
            await old_frames.closed()
            assert await observer_frames.next() == b"G\x00\x19\x45" + path
            # The replay: registrations, then the last known value, each awaited with id 0.
            assert await new_frames.exchange(b"G\x00\x1b\x40\x00\x00" + path) == OK_NIL_0
            changed = b"G\x00\x1c\x41\x00\x00" + path + b"\x05"
            assert await new_frames.exchange(changed) == OK_NIL_0
            assert await observer_frames.next() == b"G\x00\x1a\x44" + path + b"\x05"
            await observer_frames.silent()


def _str_keys_only(obj: object) -> bool:
    """True when every map inside ``obj`` has only str keys."""
    if isinstance(obj, dict):
        return all(isinstance(k, str) and _str_keys_only(x) for k, x in obj.items())
    if isinstance(obj, list):
        return all(_str_keys_only(x) for x in obj)
    return True


async def test_broker_values_decode_with_python_defaults(broker_thread: BrokerThread) -> None:
    """/meta/broker, /meta/clients and /meta/ls values decode with eshet.py's strict decoder."""
    wire, frames, _ = await eshet_connect(broker_thread.port)
    async with wire:
        requests = [
            (b"G\x00\x10\x23\x00\x00/meta/broker\x00", 0x05),
            (b"G\x00\x11\x43\x00\x00/meta/clients\x00", 0x07),
            (b"G\x00\x0f\x11\x00\x00/meta/ls\x00\x91\xa1/", 0x05),
        ]
        for request, code in requests:
            reply = await frames.exchange(request)
            assert reply[3:6] == bytes([code, 0, 0]), reply.hex(" ")
            value = msgpack.unpackb(reply[6:])
            assert isinstance(value, (dict, list)) and _str_keys_only(value), value

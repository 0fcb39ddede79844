"""The broker fuzzer: several raw clients send random valid and invalid frames and message
sequences to a live broker; after each example a witness client must still be served and no
unexpected error may have been logged.

Used by ``tests/broker/test_fuzz.py`` (a bounded run in ``make test``) and by
``python -m benchmarks fuzz`` / ``make fuzz MINUTES=10`` (a long run reporting examples per
second). Loopback only; every socket is closed after each example.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from roost.broker.limits import Limits
from roost.protocol import codec
from roost.protocol import messages as m
from roost.protocol.framing import FrameDecoder
from roost.protocol.values import Value, pack
from tests.conftest import BrokerThread, start_broker_thread
from tests.strategies import messages, values

__all__ = ("FUZZ_LIMITS", "Fuzzer", "Step", "fuzz_broker", "steps")

#: Small limits, so that examples reach them.
FUZZ_LIMITS = Limits(
    max_path_length=64,
    max_path_depth=6,
    max_per_connection=40,
    max_tree_entries=5000,
    max_connections=64,
    hello_timeout=5.0,
    frame_timeout=5.0,
    max_idle=30.0,
)

_CLIENTS = 4
_SEGMENTS = st.sampled_from(["a", "b", "c", "meta", "leases", "ls", "x_1"])
_PATHS = st.lists(_SEGMENTS, min_size=1, max_size=7).map(lambda s: "/" + "/".join(s))
_IDS = st.integers(0, 6)

#: Requests with paths from a small pool, so that clients meet on the same nodes.
_ON_PATHS = st.one_of(
    st.builds(m.ActionRegister, _IDS, _PATHS),
    st.builds(m.PropRegister, _IDS, _PATHS),
    st.builds(m.EventRegister, _IDS, _PATHS),
    st.builds(m.StateRegister, _IDS, _PATHS),
    st.builds(m.EventListen, _IDS, _PATHS),
    st.builds(m.StateObserve, _IDS, _PATHS),
    st.builds(m.EventEmit, _IDS, _PATHS, values),
    st.builds(m.ActionCall, _IDS, _PATHS, values),
    st.builds(m.ActionCall, _IDS, st.just("/meta/ls"), _PATHS.map(lambda p: Value.of([p]))),
    st.builds(m.Get, _IDS, _PATHS),
    st.builds(m.Set, _IDS, _PATHS, values),
    st.builds(m.StateChanged, _IDS, _PATHS, values),
    st.builds(m.StateUnknown, _IDS, _PATHS),
    st.builds(m.ReplyOk, _IDS, values),
    st.builds(m.ReplyError, _IDS, values),
    st.builds(m.Ping, _IDS),
)

_LEASE_BODIES = st.fixed_dictionaries(
    {"resource": st.sampled_from(["r", "r/a", "lab", "", "x" * 3])},
    optional={
        "wait": st.sampled_from([0, 0.05, -1, "x"]),
        "mode": st.sampled_from(["exclusive", "shared", "odd"]),
        "token": st.none(),
    },
)
_LEASES = st.builds(
    lambda code, rid, body: bytes((code,)) + rid.to_bytes(2, "big") + pack(body),
    st.integers(0x50, 0x5A),
    _IDS,
    _LEASE_BODIES,
)


def _frame(payload: bytes) -> bytes:
    return b"G" + min(len(payload), 0xFFFF).to_bytes(2, "big") + payload[:0xFFFF]


#: One chunk a client sends: encoded messages, hand-made lease payloads, or junk.
_CHUNKS = st.one_of(
    _ON_PATHS.map(codec.encode),
    _ON_PATHS.map(codec.encode),
    _LEASES.map(_frame),
    messages.map(codec.encode),
    st.binary(min_size=1, max_size=40).map(_frame),
    st.binary(min_size=1, max_size=12),
    _ON_PATHS.map(lambda msg: codec.encode(msg)[:-1]),  # a frame cut short
)


@dataclass(frozen=True)
class Step:
    """Client ``client`` sends ``data`` (``None``: closes its connection)."""

    client: int
    data: bytes | None


_STEP = st.builds(
    Step,
    st.integers(0, _CLIENTS - 1),
    st.one_of(_CHUNKS, _CHUNKS, _CHUNKS, st.none()),
)

#: An example: each client's hello (or none), then a sequence of steps.
steps = st.tuples(
    st.lists(
        st.sampled_from([m.Hello(1, 30), m.Hello(1, 0), m.HelloId(1, 5, Value.of("fz")), None]),
        min_size=_CLIENTS,
        max_size=_CLIENTS,
    ),
    st.lists(_STEP, max_size=30),
)


class _Errors(logging.Handler):
    """Keeps every record at ERROR or above."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@dataclass
class Fuzzer:
    """Runs examples against one broker; ``examples`` counts them."""

    broker: BrokerThread
    witness: socket.socket
    errors: _Errors
    examples: int = 0
    _decoder: FrameDecoder = field(default_factory=FrameDecoder)
    _ping: int = 0

    def run(self, example: tuple[list[Any], list[Step]]) -> None:
        """Play one example, then check the witness and the log.

        Raises:
            AssertionError: the witness was not answered in time, or an error was logged.
        """
        hellos, plan = example
        port = self.broker.port
        socks: list[socket.socket | None] = []
        try:
            for hello in hellos:
                sock = socket.create_connection(("127.0.0.1", port), timeout=5)
                sock.setblocking(False)
                if hello is not None:
                    sock.send(codec.encode(hello))
                socks.append(sock)
            for step in plan:
                current = socks[step.client]
                if current is None:
                    continue
                if step.data is None:
                    current.close()
                    socks[step.client] = None
                    continue
                try:
                    _drain(current)
                    current.send(step.data)
                except OSError:  # the broker closed it, or its buffer is full: both fine
                    current.close()
                    socks[step.client] = None
        finally:
            for left in socks:
                if left is not None:
                    left.close()
        self.examples += 1
        self._check_witness()
        assert not self.errors.records, [r.getMessage() for r in self.errors.records]

    def _check_witness(self) -> None:
        self._ping = (self._ping + 1) & 0xFFFF
        rid = self._ping
        self.witness.sendall(codec.encode(m.Ping(rid)))
        deadline = time.monotonic() + 5
        want = codec.encode(m.ReplyOk(rid, Value(b"\xc0")))[3:]
        while time.monotonic() < deadline:
            data = self.witness.recv(65536)
            assert data, "the witness was disconnected"
            if want in self._decoder.feed(data):
                return
        raise AssertionError("the witness was not answered within 5 s")


def _drain(sock: socket.socket) -> None:
    """Read what the broker sent so far (so nobody becomes a slow consumer)."""
    while True:
        try:
            if not sock.recv(65536, socket.MSG_DONTWAIT):
                raise OSError("closed")
        except BlockingIOError:
            return


@contextmanager
def fuzz_broker(limits: Limits = FUZZ_LIMITS) -> Iterator[Fuzzer]:
    """A broker with ``limits`` in a thread, a connected witness, and an error catcher."""
    handle, stop, thread = start_broker_thread(limits=limits)
    errors = _Errors()
    logger = logging.getLogger("roost")
    logger.addHandler(errors)
    witness = socket.create_connection(("127.0.0.1", handle.port), timeout=5)
    try:
        witness.sendall(codec.encode(m.Hello(1, 0)))
        FrameDecoder().feed(witness.recv(256))
        yield Fuzzer(handle, witness, errors)
    finally:
        witness.close()
        logger.removeHandler(errors)
        stop.set()
        thread.join(timeout=10)

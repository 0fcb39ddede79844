"""The same workloads through every ESHET client, against one broker, with raw sockets as ceiling.

One broker process serves the whole run. For each client kind, this process runs both ends of
each workload with that kind of client (the cost measured is the client's, on both sides):

- **calls/s**: one caller awaiting each ``action_call`` in turn; the action's owner is another
  client of the same kind, in this process;
- **events/s**: one emitter awaiting each emit; one listener counts them; the rate is events
  over the time until the listener got the last one;
- **state changes/s**: one owner awaiting each ``state_changed``; 10 observers (10 connections)
  count them; the rate is changes over the time until every observer got the last one.

An awaited emit or state change of roost's own clients returns once written, before the
broker's reply (up to a window of unconfirmed ones); the "emit(wait=True)" row makes each wait
for its reply, as eshet.py's API (and ``roost.eshet``) always does.

Client kinds: roost's ``Client`` (on asyncio's own loop, and on uvloop when it is installed, as
a program run with ``uvloop.run`` would), ``SyncClient`` (blocking calls from this thread),
``roost.eshet.Client`` and ``roost.eshet.sync_client.SyncClient`` (eshet.py's API), and
eshet.py's own ``eshet.Client`` when the ``eshet`` package happens to be installed. The raw
row is the ceiling: blocking sockets in this one thread, frames encoded up front, each round
trip or emit waited for before the next, exactly as the clients do. The floor row
(``benchmarks/asyncfloor.py``) is the least any client on asyncio's own loop can cost: a bare
``asyncio.Protocol``, frames encoded up front, one future per request; no library at all.

Each figure is the best of five one-second rounds (one half-second round with ``--quick``), as a
rate per second of wall-clock time and per second of this process's CPU time; the second
depends far less on what else runs on the machine.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import math
import socket
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

from benchmarks.common import Table, format_rate
from benchmarks.processes import Server
from roost.protocol import codec
from roost.protocol import messages as m
from roost.protocol.framing import FrameDecoder
from roost.protocol.values import Value

__all__ = ("run",)

CALL_PATH = "/bench/echo"
EVENT_PATH = "/bench/ev"
STATE_PATH = "/bench/st"
OBSERVERS = 10

#: Operations per second of wall-clock time, and per second of this process's CPU time.
Rate = tuple[float, float]
Workload = Callable[[str, float], Rate]


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _rate(ops: int, started: tuple[float, float]) -> Rate:
    wall, cpu = _clock()
    return ops / (wall - started[0]), ops / max(cpu - started[1], 1e-6)


class _Counter:
    """Counts deliveries; ``wait_for(n)`` blocks (any thread) until ``n`` arrived."""

    def __init__(self) -> None:
        self.count = 0
        self.done = threading.Event()
        self.target = -1

    def hit(self, _value: Any = None) -> None:
        self.count += 1
        if self.count == self.target:
            self.done.set()

    def expect(self, target: int) -> None:
        self.target = target
        if self.count >= target:
            self.done.set()


# -- raw sockets (the ceiling) ------------------------------------------------------------------


def _raw_client(port: int, *requests: m.Message) -> tuple[socket.socket, FrameDecoder]:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(codec.encode(m.Hello(1, 30)) + b"".join(codec.encode(r) for r in requests))
    decoder = FrameDecoder()
    _raw_frames(sock, decoder, 1 + len(requests))
    return sock, decoder


def _raw_frames(sock: socket.socket, decoder: FrameDecoder, count: int) -> list[bytes]:
    frames: list[bytes] = []
    while len(frames) < count:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("the broker closed the connection")
        frames += decoder.feed(data)
    return frames


def _raw_calls(server: str, duration: float) -> Rate:
    port = int(server.rsplit(":", 1)[1])
    owner, owner_dec = _raw_client(port, m.ActionRegister(1, CALL_PATH))
    caller, caller_dec = _raw_client(port)
    call = codec.encode(m.ActionCall(7, CALL_PATH, Value.of([1])))
    calls = 0
    try:
        started = _clock()
        deadline = started[0] + duration
        while time.perf_counter() < deadline:
            caller.sendall(call)
            (forwarded,) = _raw_frames(owner, owner_dec, 1)
            rid = int.from_bytes(forwarded[1:3], "big")
            owner.sendall(codec.encode(m.ReplyOk(rid, Value.of(1))))
            _raw_frames(caller, caller_dec, 1)
            calls += 1
        return _rate(calls, started)
    finally:
        owner.close()
        caller.close()


def _raw_pump(
    port: int,
    register: m.Message,
    subscribe: m.Message,
    frame: bytes,
    *,
    duration: float,
    subscribers: int,
) -> Rate:
    owner, owner_dec = _raw_client(port, register)
    subs = [_raw_client(port, subscribe) for _ in range(subscribers)]
    sent = 0
    try:
        started = _clock()
        deadline = started[0] + duration
        got = [0] * subscribers
        while time.perf_counter() < deadline:
            owner.sendall(frame)
            _raw_frames(owner, owner_dec, 1)
            sent += 1
            for index, (sock, decoder) in enumerate(subs):  # drain what is there
                try:
                    data = sock.recv(65536, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    continue
                got[index] += len(decoder.feed(data))
        for index, (sock, decoder) in enumerate(subs):
            got[index] += len(_raw_frames(sock, decoder, sent - got[index]))
        return _rate(sent, started)
    finally:
        for sock, _ in (*subs, (owner, owner_dec)):
            sock.close()


def _raw_events(server: str, duration: float) -> Rate:
    port = int(server.rsplit(":", 1)[1])
    frame = codec.encode(m.EventEmit(1, EVENT_PATH, Value.of(1)))
    return _raw_pump(
        port,
        m.EventRegister(1, EVENT_PATH),
        m.EventListen(1, EVENT_PATH),
        frame,
        duration=duration,
        subscribers=1,
    )


def _raw_states(server: str, duration: float) -> Rate:
    port = int(server.rsplit(":", 1)[1])
    frame = codec.encode(m.StateChanged(1, STATE_PATH, Value.of(1)))
    register = m.StateRegister(1, STATE_PATH)
    return _raw_pump(
        port,
        register,
        m.StateObserve(1, STATE_PATH),
        frame,
        duration=duration,
        subscribers=OBSERVERS,
    )


# -- a bare asyncio protocol (the floor of any asyncio client) ---------------------------------


def _floor_calls(server: str, duration: float) -> Rate:
    from benchmarks.asyncfloor import floor_calls

    sent, started = floor_calls(int(server.rsplit(":", 1)[1]), CALL_PATH, duration, _clock)
    return _rate(sent, started)


def _floor_events(server: str, duration: float) -> Rate:
    from benchmarks.asyncfloor import floor_events

    sent, started = floor_events(int(server.rsplit(":", 1)[1]), EVENT_PATH, duration, _clock)
    return _rate(sent, started)


def _no_floor(server: str, duration: float) -> Rate:
    return float("nan"), float("nan")


# -- roost's async Client ----------------------------------------------------------------------


def _run(main: Coroutine[Any, Any, Rate], uv: bool) -> Rate:
    """Run ``main`` on asyncio's own loop, or on uvloop (``uv``)."""
    if not uv:
        return asyncio.run(main)
    from roost.client.loops import new_loop

    with asyncio.Runner(loop_factory=new_loop) as runner:
        return runner.run(main)


def _on_uvloop(work: Callable[[str, float, bool], Rate]) -> Workload:
    return lambda server, duration: work(server, duration, True)


def _roost_calls(server: str, duration: float, uv: bool = False) -> Rate:
    from roost.client import Client

    async def main() -> Rate:
        async with Client(server=server) as owner, Client(server=server) as caller:
            await owner.action_register(CALL_PATH, lambda x: x)
            return await _async_calls(caller.action_call, duration)

    return _run(main(), uv)


async def _async_calls(call: Callable[..., Any], duration: float) -> Rate:
    for _ in range(200):
        await call(CALL_PATH, 0)
    calls = 0
    started = _clock()
    deadline = started[0] + duration
    while time.perf_counter() < deadline:
        await call(CALL_PATH, 1)
        calls += 1
    return _rate(calls, started)


async def _async_pump(
    emit: Callable[[int], Any], counters: list[_Counter], duration: float
) -> Rate:
    for _ in range(100):
        await emit(0)
    for counter in counters:
        counter.expect(100)
    await asyncio.gather(*(asyncio.to_thread(c.done.wait, 10) for c in counters))
    for counter in counters:
        counter.count, counter.target = 0, -1
        counter.done.clear()
    sent = 0
    started = _clock()
    deadline = started[0] + duration
    while time.perf_counter() < deadline:
        await emit(1)
        sent += 1
    for counter in counters:
        counter.expect(sent)
    while not all(c.done.is_set() for c in counters):
        await asyncio.sleep(0)
    return _rate(sent, started)


def _roost_events(server: str, duration: float, uv: bool = False, wait: bool = False) -> Rate:
    from functools import partial

    from roost.client import Client

    async def main() -> Rate:
        counter = _Counter()
        async with Client(server=server) as emitter, Client(server=server) as listener:
            emit = await emitter.event_register(EVENT_PATH)
            await listener.event_listen_cb(EVENT_PATH, counter.hit)
            return await _async_pump(partial(emit.emit, wait=wait), [counter], duration)

    return _run(main(), uv)


def _roost_states(server: str, duration: float, uv: bool = False, wait: bool = False) -> Rate:
    from contextlib import AsyncExitStack
    from functools import partial

    from roost.client import Client

    async def main() -> Rate:
        counters = [_Counter() for _ in range(OBSERVERS)]
        async with AsyncExitStack() as stack:
            owner = await stack.enter_async_context(Client(server=server))
            state = await owner.state_register(STATE_PATH)
            for counter in counters:
                observer = await stack.enter_async_context(Client(server=server))
                await observer.state_observe(STATE_PATH, counter.hit)
            return await _async_pump(partial(state.changed, wait=wait), counters, duration)

    return _run(main(), uv)


def _waiting(work: Callable[[str, float, bool, bool], Rate]) -> Workload:
    return lambda server, duration: work(server, duration, False, True)


# -- roost's SyncClient -------------------------------------------------------------------------


def _sync_calls(server: str, duration: float) -> Rate:
    from roost.client import SyncClient

    with SyncClient(server=server) as owner, SyncClient(server=server) as caller:
        owner.action_register(CALL_PATH, lambda x: x)
        return _blocking_calls(caller.action_call, duration)


def _blocking_calls(call: Callable[..., Any], duration: float) -> Rate:
    for _ in range(200):
        call(CALL_PATH, 0)
    calls = 0
    started = _clock()
    deadline = started[0] + duration
    while time.perf_counter() < deadline:
        call(CALL_PATH, 1)
        calls += 1
    return _rate(calls, started)


def _blocking_pump(emit: Callable[[int], Any], counters: list[_Counter], duration: float) -> Rate:
    for _ in range(100):
        emit(0)
    for counter in counters:
        counter.expect(100)
        counter.done.wait(10)
        counter.count, counter.target = 0, -1
        counter.done.clear()
    sent = 0
    started = _clock()
    deadline = started[0] + duration
    while time.perf_counter() < deadline:
        emit(1)
        sent += 1
    for counter in counters:
        counter.expect(sent)
        # Slow listeners may trail far behind a pipelining emitter: wait while they progress.
        seen = -1
        while not counter.done.wait(10):
            if counter.count == seen:
                raise RuntimeError(f"deliveries were lost: {counter.count} of {sent} arrived")
            seen = counter.count
    return _rate(sent, started)


def _sync_events(server: str, duration: float) -> Rate:
    from roost.client import SyncClient

    counter = _Counter()
    with SyncClient(server=server) as emitter, SyncClient(server=server) as listener:
        emit = emitter.event_register(EVENT_PATH)
        listener.event_listen_cb(EVENT_PATH, counter.hit)
        return _blocking_pump(emit, [counter], duration)


def _sync_states(server: str, duration: float) -> Rate:
    from contextlib import ExitStack

    from roost.client import SyncClient

    counters = [_Counter() for _ in range(OBSERVERS)]
    with ExitStack() as stack:
        owner = stack.enter_context(SyncClient(server=server))
        owner.state_register(STATE_PATH)
        for counter in counters:
            observer = stack.enter_context(SyncClient(server=server))
            observer.state_observe(STATE_PATH, counter.hit)
        return _blocking_pump(
            lambda value: owner.state_changed(STATE_PATH, value), counters, duration
        )


# -- eshet.py's API: roost.eshet, and eshet.py itself when installed ----------------------------


def _eshet_module(name: str) -> Any:
    return importlib.import_module(name)


def _eshet_calls(package: str) -> Workload:
    def workload(server: str, duration: float) -> Rate:
        eshet = _eshet_module(package)

        async def main() -> Rate:
            owner, caller = eshet.Client(server=server), eshet.Client(server=server)
            try:
                await owner.wait_for_connection()
                await caller.wait_for_connection()
                await owner.action_register(CALL_PATH, lambda x: x)
                return await _async_calls(caller.action_call, duration)
            finally:
                await owner.close()
                await caller.close()

        return asyncio.run(main())

    return workload


def _eshet_events(package: str) -> Workload:
    def workload(server: str, duration: float) -> Rate:
        eshet = _eshet_module(package)

        async def main() -> Rate:
            counter = _Counter()
            emitter, listener = eshet.Client(server=server), eshet.Client(server=server)
            try:
                await emitter.wait_for_connection()
                await listener.wait_for_connection()
                emit = await emitter.event_register(EVENT_PATH)
                await listener.event_listen_cb(EVENT_PATH, counter.hit)
                return await _async_pump(emit, [counter], duration)
            finally:
                await emitter.close()
                await listener.close()

        return asyncio.run(main())

    return workload


def _eshet_states(package: str) -> Workload:
    def workload(server: str, duration: float) -> Rate:
        eshet = _eshet_module(package)

        async def main() -> Rate:
            counters = [_Counter() for _ in range(OBSERVERS)]
            clients = [eshet.Client(server=server) for _ in range(OBSERVERS + 1)]
            try:
                for client in clients:
                    await client.wait_for_connection()
                state = await clients[0].state_register(STATE_PATH)
                for client, counter in zip(clients[1:], counters, strict=True):
                    await client.state_observe(STATE_PATH, counter.hit)
                return await _async_pump(state.changed, counters, duration)
            finally:
                for client in clients:
                    await client.close()

        return asyncio.run(main())

    return workload


def _eshet_sync_calls(server: str, duration: float) -> Rate:
    from roost.eshet.sync_client import SyncClient

    owner, caller = SyncClient(server=server), SyncClient(server=server)
    try:
        owner.wait_for_connection().result()
        caller.wait_for_connection().result()
        owner.action_register(CALL_PATH, lambda x: x).result()
        return _blocking_calls(lambda *a: caller.action_call(*a).result(), duration)
    finally:
        owner.close().result()
        caller.close().result()


def _eshet_sync_events(server: str, duration: float) -> Rate:
    from roost.eshet.sync_client import SyncClient

    counter = _Counter()
    emitter, listener = SyncClient(server=server), SyncClient(server=server)
    try:
        emitter.wait_for_connection().result()
        listener.wait_for_connection().result()
        emit = emitter.event_register(EVENT_PATH).result()
        listener.event_listen_cb(EVENT_PATH, counter.hit).result()
        return _blocking_pump(lambda v: emit(v).result(), [counter], duration)
    finally:
        emitter.close().result()
        listener.close().result()


def _eshet_sync_states(server: str, duration: float) -> Rate:
    from roost.eshet.sync_client import SyncClient

    counters = [_Counter() for _ in range(OBSERVERS)]
    clients = [SyncClient(server=server) for _ in range(OBSERVERS + 1)]
    try:
        for client in clients:
            client.wait_for_connection().result()
        state = clients[0].state_register(STATE_PATH).result()
        for client, counter in zip(clients[1:], counters, strict=True):
            client.state_observe(STATE_PATH, counter.hit).result()
        return _blocking_pump(lambda v: state.changed(v).result(), counters, duration)
    finally:
        for client in clients:
            client.close().result()


def _kinds() -> list[tuple[str, Workload, Workload, Workload]]:
    kinds: list[tuple[str, Workload, Workload, Workload]] = [
        ("raw sockets (ceiling)", _raw_calls, _raw_events, _raw_states),
        ("bare asyncio protocol (floor)", _floor_calls, _floor_events, _no_floor),
        ("roost Client", _roost_calls, _roost_events, _roost_states),
        (
            "roost Client, emit(wait=True)",
            _no_floor,
            _waiting(_roost_events),
            _waiting(_roost_states),
        ),
        ("roost SyncClient", _sync_calls, _sync_events, _sync_states),
    ]
    if importlib.util.find_spec("uvloop") is not None:
        kinds.insert(
            3,
            (
                "roost Client on uvloop",
                _on_uvloop(_roost_calls),
                _on_uvloop(_roost_events),
                _on_uvloop(_roost_states),
            ),
        )
    if importlib.util.find_spec("roost.eshet") is not None:
        kinds += [
            (
                "roost.eshet Client",
                _eshet_calls("roost.eshet"),
                _eshet_events("roost.eshet"),
                _eshet_states("roost.eshet"),
            ),
            ("roost.eshet SyncClient", _eshet_sync_calls, _eshet_sync_events, _eshet_sync_states),
        ]
    if importlib.util.find_spec("eshet") is not None:
        kinds.append(
            (
                "eshet.py Client",
                _eshet_calls("eshet"),
                _eshet_events("eshet"),
                _eshet_states("eshet"),
            )
        )
    return kinds


def _broker_loop() -> str:
    return "uvloop" if importlib.util.find_spec("uvloop") is not None else "asyncio"


def _best(work: Workload, server: str, duration: float, rounds: int) -> Rate:
    """The best wall-clock rate and the best CPU rate of ``rounds`` runs of ``work``."""
    results = [work(server, duration) for _ in range(rounds)]
    return max(r[0] for r in results), max(r[1] for r in results)


def run(quick: bool = False) -> None:
    """Run every workload through every client kind against one broker; print the tables."""
    logging.disable(logging.CRITICAL)
    duration, rounds = (0.5, 1) if quick else (1.0, 5)
    loop = _broker_loop()
    broker = Server("benchmarks.broker", "--serve", loop)
    server = f"127.0.0.1:{broker.port}"
    columns = ["client", "calls", "vs raw", "events", "vs raw", "state changes", "vs raw"]
    try:
        wall = Table(
            f"ESHET clients on one roost broker ({loop}), per second (best of {rounds})", columns
        )
        cpu = Table("the same, per second of this process's CPU time", columns)
        ceiling: list[Rate] = []
        for name, calls, events, states in _kinds():
            rates = [_best(work, server, duration, rounds) for work in (calls, events, states)]
            if not ceiling:
                ceiling = rates
            for table, index in ((wall, 0), (cpu, 1)):
                cells: list[str] = []
                for value, top in zip(rates, ceiling, strict=True):
                    if math.isnan(value[index]):  # a workload the row does not run
                        cells += ["-", "-"]
                        continue
                    cells += [format_rate(value[index]), f"{value[index] / top[index]:.2f}x"]
                table.add(name, *cells)
        wall.print()
        cpu.print()
        print(
            f"clients run on asyncio's own loop; state changes go to {OBSERVERS} observers; "
            "roost's own emits and state changes return before the broker's reply, "
            "except in the emit(wait=True) row"
        )
    finally:
        broker.close()

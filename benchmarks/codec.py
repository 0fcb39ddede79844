"""Codec throughput: messages/s decoded (validation included) and encoded.

Typical traffic: an ``event_emit`` arriving at the broker and the ``event_notify`` it fans out,
each with a 32-byte and a 1 KiB value (a small map of readings, padded by a text field).
Targets for the 32-byte message: >= 300,000 decodes/s and >= 500,000 encodes/s.
"""

from __future__ import annotations

from collections.abc import Callable

from benchmarks.common import Table, format_rate, rate
from roost.protocol import codec
from roost.protocol import messages as m
from roost.protocol.connection import Connection, Role
from roost.protocol.values import Value, pack

__all__ = ("run", "sample_value")

DECODE_TARGET = 300_000
ENCODE_TARGET = 500_000
PATH = "/kitchen/sensors/temperature"
BATCH = 64


def sample_value(size: int) -> Value:
    """A reading map whose msgpack encoding is exactly ``size`` bytes (at least 32)."""
    reading: dict[str, float | int | str] = {"t": 21.5, "unit": "C", "seq": 4711, "note": ""}
    note = "x" * (size - len(pack(reading)))
    while len(pack({**reading, "note": note})) > size:  # a longer str may need a longer header
        note = note[:-1]
    reading["note"] = note
    value = Value.of(reading)
    if len(value.raw) != size:
        raise ValueError(f"cannot build a {size}-byte value")
    return value


def _server() -> Connection:
    conn = Connection(Role.SERVER)
    conn.receive_data(codec.encode(m.Hello(1, 30)))
    return conn


def _client() -> Connection:
    conn = Connection(Role.CLIENT)
    conn.send(m.Hello(1, 30))
    conn.receive_data(codec.encode(m.ServerHello()))
    return conn


def _cases(value: Value) -> list[tuple[str, str, Callable[[], object], int, int | None]]:
    """(operation, message, fn, messages per call, target) for one value size."""
    emit = m.EventEmit(7, PATH, value)
    notify = m.EventNotify(PATH, value)
    emit_frame = codec.encode(emit)
    notify_frame = codec.encode(notify)
    emit_payload = emit_frame[3:]
    notify_payload = notify_frame[3:]
    emit_batch = emit_frame * BATCH
    server = _server()
    client = _client()
    path_bytes = PATH.encode("latin-1")
    raw = value.raw
    return [
        (
            "decode  codec.decode",
            "event_emit",
            lambda: codec.decode(emit_payload),
            1,
            DECODE_TARGET,
        ),
        ("decode  codec.decode", "event_notify", lambda: codec.decode(notify_payload), 1, None),
        (
            "decode  Connection.receive_data",
            "event_emit",
            lambda: server.receive_data(emit_frame),
            1,
            DECODE_TARGET,
        ),
        (
            f"decode  Connection.receive_data x{BATCH}",
            "event_emit",
            lambda: server.receive_data(emit_batch),
            BATCH,
            None,
        ),
        (
            "decode  Connection.receive_data",
            "event_notify",
            lambda: client.receive_data(notify_frame),
            1,
            None,
        ),
        ("encode  codec.encode", "event_emit", lambda: codec.encode(emit), 1, ENCODE_TARGET),
        ("encode  codec.encode", "event_notify", lambda: codec.encode(notify), 1, ENCODE_TARGET),
        ("encode  Connection.send", "event_notify", lambda: server.send(notify), 1, None),
        (
            "encode  codec.notify_frame",
            "event_notify",
            lambda: codec.notify_frame(0x33, path_bytes, raw),
            1,
            None,
        ),
    ]


def run(quick: bool = False) -> None:
    """Measure and print the codec table."""
    min_time = 0.05 if quick else 0.15
    table = Table(
        "codec: messages/s, one core (validation included in every decode)",
        ["operation", "message", "value", "msgs/s", "us/msg", "target", "x target"],
    )
    for size in (32, 1024):
        value = sample_value(size)
        label = "32 B" if size == 32 else "1 KiB"
        for operation, message, fn, per_call, target in _cases(value):
            per_second = rate(fn, per_call=per_call, min_time=min_time)
            wanted = target if size == 32 else None
            table.add(
                operation,
                message,
                label,
                format_rate(per_second),
                f"{1e6 / per_second:.2f}",
                format_rate(wanted) if wanted else "-",
                f"{per_second / wanted:.2f}x" if wanted else "-",
            )
    table.print()

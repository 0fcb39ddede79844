"""Stored values survive SIGKILL of a real broker process: an acknowledged set is never lost."""

from __future__ import annotations

from pathlib import Path

import pytest

from roost.protocol import messages as m
from tests.brokerproc import BrokerProcess
from tests.wire import connect, err, ok, v

pytestmark = pytest.mark.anyio

SETS = 300
KILL_AFTER = 100


async def test_acknowledged_sets_survive_sigkill(tmp_path: Path) -> None:
    args = ["--state-dir", str(tmp_path), "--store", "/store/**"]
    with BrokerProcess(args) as proc:
        async with await connect(proc.port) as a:
            # Pipelined: the broker batches what it has read, one write per batch.
            await a.send(*(m.Set(i + 1, f"/store/k{i}", v(i)) for i in range(SETS)))
            for i in range(KILL_AFTER):
                assert await a.recv() == ok(i + 1)
            proc.kill()  # SIGKILL, with later sets read, batched or being written
    with BrokerProcess(args) as proc:
        async with await connect(proc.port) as a:
            present: list[bool] = []
            for i in range(SETS):
                reply = await a.request(m.Get(1, f"/store/k{i}"))
                if i < KILL_AFTER:
                    assert reply == ok(1, i)  # acknowledged before the kill
                assert reply in (ok(1, i), err(1, "path_not_found"))
                present.append(reply == ok(1, i))
            # What survived is a prefix: batches are written in order, whole or not at all.
            assert present == sorted(present, reverse=True)


async def test_corrupt_store_file_stops_the_broker_naming_it(tmp_path: Path) -> None:
    args = ["--state-dir", str(tmp_path), "--store", "/store/**"]
    with BrokerProcess(args) as proc:
        async with await connect(proc.port) as a:
            assert await a.request(m.Set(1, "/store/a", v(1))) == ok(1)
            assert await a.request(m.Set(2, "/store/b", v(2))) == ok(2)
    store = tmp_path / "store.msgpack"
    store.write_bytes(store.read_bytes()[:-3])
    proc = BrokerProcess(args, start_timeout=10.0)
    with pytest.raises(RuntimeError):
        proc.start()
    assert proc.proc is not None
    assert proc.proc.wait(timeout=10) == 1
    line = next(text for text in proc.raw_lines if str(store) in text)
    assert "damaged" in line

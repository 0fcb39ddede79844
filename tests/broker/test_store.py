"""Stored values: broker-owned states kept in the state dir, served to plain ESHET clients."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from roost.broker import Broker
from roost.broker.config import parse_config
from roost.broker.storefile import STORE_FILE, StoreSettings, read_store, write_store
from roost.errors import ConfigError, StoreError
from roost.protocol import messages as m
from tests.conftest import BrokerThread, start_broker_thread
from tests.wire import connect, err, ok, v

pytestmark = pytest.mark.anyio

SETTINGS = StoreSettings(
    create=("/store/**",), paths=("/house/scene",), max_value=64, max_total=200
)


@contextlib.contextmanager
def store_broker(state_dir: Path, settings: StoreSettings = SETTINGS) -> Iterator[BrokerThread]:
    handle, stop, thread = start_broker_thread(state_dir=str(state_dir), store=settings)
    try:
        yield handle
    finally:
        stop.set()
        thread.join(timeout=10)


async def test_set_get_observe_and_restart(tmp_path: Path) -> None:
    with store_broker(tmp_path) as broker:
        async with await connect(broker.port) as a, await connect(broker.port) as b:
            assert await a.request(m.Get(1, "/house/scene")) == err(1, "state_unknown")
            assert await b.request(m.StateObserve(2, "/store/thermostat/setpoint")) == (
                m.ReplyStateUnknown(2)
            )
            assert await a.request(m.Set(3, "/store/thermostat/setpoint", v(21.5))) == ok(3)
            assert await b.recv() == m.StateNotify("/store/thermostat/setpoint", v(21.5))
            assert await a.request(m.Get(4, "/store/thermostat/setpoint")) == ok(4, 21.5)
            assert await a.request(m.Set(5, "/house/scene", v("evening"))) == ok(5)
            # Stored values belong to the broker.
            reply = await a.request(m.StateRegister(6, "/store/thermostat/setpoint"))
            assert reply == err(6, "path_already_exists")
            reply = await a.request(m.StateChanged(7, "/house/scene", v(1)))
            assert reply == err(7, "not_owner")
            # Outside the store: as before.
            assert await a.request(m.Set(8, "/elsewhere/x", v(1))) == err(8, "path_not_found")
    assert read_store(tmp_path) == {
        "/store/thermostat/setpoint": v(21.5).raw,
        "/house/scene": v("evening").raw,
    }
    with store_broker(tmp_path) as broker:
        async with await connect(broker.port) as a:
            assert await a.request(m.Get(1, "/store/thermostat/setpoint")) == ok(1, 21.5)
            assert await a.request(m.Get(2, "/house/scene")) == ok(2, "evening")


async def test_limits(tmp_path: Path) -> None:
    with store_broker(tmp_path) as broker:
        async with await connect(broker.port) as a:
            big = "x" * 100
            assert await a.request(m.Set(1, "/store/big", v(big))) == err(1, "value_too_large")
            assert await a.request(m.Get(2, "/store/big")) == err(2, "path_not_found")
            for i in range(3):
                assert await a.request(m.Set(10 + i, f"/store/k{i}", v("y" * 50))) == ok(10 + i)
            # 3 x 52 bytes stored; one more passes max_total = 200.
            assert await a.request(m.Set(20, "/store/k3", v("y" * 50))) == err(20, "store_full")
            # Replacing a value counts its new size only.
            assert await a.request(m.Set(21, "/store/k0", v("z" * 50))) == ok(21)
            assert await a.request(m.Get(22, "/store/k0")) == ok(22, "z" * 50)


async def test_adopts_an_observed_path_and_leaves_owned_states_alone(tmp_path: Path) -> None:
    with store_broker(tmp_path) as broker:
        async with await connect(broker.port) as owner, await connect(broker.port) as b:
            await owner.register("state", "/store/owned")
            await b.send(m.Set(1, "/store/owned", v(1)))
            msg = await owner.recv()
            assert isinstance(msg, m.StateSet)  # forwarded to its owner, as for any state
            await owner.send(m.ReplyOk(msg.id, v(None)))
            assert await b.recv() == ok(1)
            assert await b.request(m.StateObserve(2, "/store/watched")) == m.ReplyStateUnknown(2)
            assert await b.request(m.Set(3, "/store/watched", v([1, 2]))) == ok(3)
            assert await b.recv() == m.StateNotify("/store/watched", v([1, 2]))
    assert read_store(tmp_path) == {"/store/watched": v([1, 2]).raw}


async def test_sets_in_one_batch_keep_their_order(tmp_path: Path) -> None:
    with store_broker(tmp_path) as broker:
        async with await connect(broker.port) as a, await connect(broker.port) as b:
            assert await b.request(m.StateObserve(1, "/store/n")) == m.ReplyStateUnknown(1)
            await a.send(*(m.Set(10 + i, "/store/n", v(i)) for i in range(20)))
            for i in range(20):
                assert await a.recv() == ok(10 + i)
                assert await b.recv() == m.StateNotify("/store/n", v(i))
    assert read_store(tmp_path) == {"/store/n": v(19).raw}


async def test_corrupt_file_stops_start_up_naming_it(tmp_path: Path) -> None:
    write_store(tmp_path, {"/store/a": v(1).raw, "/store/b": v(2).raw}, fsync=False)
    path = tmp_path / STORE_FILE
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError, match=str(path)) as info:
        read_store(tmp_path)
    assert "checksum" in str(info.value)
    with pytest.raises(StoreError, match=str(path)):
        async with Broker(port=0, state_dir=str(tmp_path), store=SETTINGS):
            pass
    path.write_bytes(bytes(data[:-5]))
    with pytest.raises(StoreError, match="damaged"):
        read_store(tmp_path)
    path.write_bytes(b"something else")
    with pytest.raises(StoreError, match="not a roost store file"):
        read_store(tmp_path)
    # The damaged file is left for the operator, untouched.
    assert path.read_bytes() == b"something else"


async def test_store_needs_a_state_dir() -> None:
    with pytest.raises(StoreError, match="state dir"):
        async with Broker(port=0, store=SETTINGS):
            pass


def test_config_section() -> None:
    text = """
[store]
create = ["/store/**", "/house/+/setpoint"]
paths = ["/house/scene"]
max_value = 1024
max_total = 65536
fsync = false
"""
    settings = parse_config(text, "roost.toml").get("store")
    assert settings == StoreSettings(
        create=("/store/**", "/house/+/setpoint"),
        paths=("/house/scene",),
        max_value=1024,
        max_total=65536,
        fsync=False,
    )
    bad: list[tuple[str, Any]] = [
        ('create = ["/store/#"]', "store.create"),
        ('paths = ["/a/**"]', "store.paths"),
        ("max_value = 0", "store.max_value"),
        ("max_value = 70000", "store.max_value"),
        ("colour = 1", "store.colour"),
    ]
    for line, key in bad:
        with pytest.raises(ConfigError) as info:
            parse_config(f"[store]\n{line}\n", "roost.toml")
        assert info.value.key == key
        assert info.value.line == 2


async def test_failed_write_answers_store_failed(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with store_broker(state) as broker:
        async with await connect(broker.port) as a:
            assert await a.request(m.Set(1, "/store/a", v(1))) == ok(1)
            shutil.rmtree(state)
            assert await a.request(m.Set(2, "/store/a", v(2))) == err(2, "store_failed")
            assert await a.request(m.Get(3, "/store/a")) == ok(3, 1)
            state.mkdir()
            assert await a.request(m.Set(4, "/store/a", v(4))) == ok(4)
    assert read_store(state) == {"/store/a": v(4).raw}

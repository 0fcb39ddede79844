"""The Broker API, ``roost serve`` as a real process, and its logging."""

from __future__ import annotations

import json
import logging
import signal

import anyio
import pytest

from roost.broker import Broker
from roost.broker.run import JsonFormatter
from roost.protocol import messages as m
from tests.brokerproc import BrokerProcess
from tests.wire import Wire, connect, ok, v

pytestmark = pytest.mark.anyio


async def test_broker_context_manager() -> None:
    """Broker(port=0) binds an ephemeral port; leaving the block closes every connection."""
    async with Broker(port=0) as broker:
        assert broker.port != 0
        assert broker.address == f"127.0.0.1:{broker.port}"
        wire = await connect(broker.port)
        await wire.register("action", "/a")
    async with wire:
        await wire.expect_closed()


async def test_broker_rejects_unknown_options() -> None:
    """Unknown options raise TypeError; the lease options are accepted."""
    with pytest.raises(TypeError, match="bogus"):
        Broker(port=0, bogus=1)
    Broker(port=0, state_dir=None, audit_file=None, resources=None)
    with pytest.raises(ValueError, match="max_outbound"):
        Broker(port=0, max_outbound=0)


async def test_serve_forever_until_cancelled() -> None:
    """serve_forever starts the broker, reports its port, and closes it when cancelled."""
    broker = Broker(port=0)
    async with anyio.create_task_group() as tg:
        with anyio.fail_after(5):
            port = await tg.start(broker.serve_forever)
        assert port == broker.port != 0
        async with await connect(port) as wire:
            await wire.assert_open()
            tg.cancel_scope.cancel()
            await wire.expect_closed()


async def test_max_outbound_option() -> None:
    """A small max_outbound closes a non-reading listener early; the emitter is unaffected."""
    async with (
        Broker(port=0, max_outbound=10_000) as broker,
        await connect(broker.port) as slow,
        await connect(broker.port) as a,
    ):
        await slow.call_ok(m.EventListen(1, "/ev"))
        big = v(b"z" * 60_000)
        with anyio.fail_after(10):
            while len(broker.router.sessions) > 1:
                assert await a.request(m.EventEmit(2, "/ev", big)) == ok(2)
        await a.assert_open()


def test_serve_process_lifecycle() -> None:
    """roost serve logs JSON lines (listening, opened, closed with reason) and exits 0 on
    SIGTERM, closing its connections."""

    async def client(port: int) -> Wire:
        wire = await connect(port, client_id="cli-1")
        await wire.register("action", "/p")
        return wire

    with BrokerProcess() as proc:
        listening = proc.wait_for_log(lambda r: str(r.get("msg", "")).startswith("listening on"))
        assert listening["port"] == proc.port
        assert listening["logger"] == "roost.broker"

        async def scenario() -> None:
            wire = await client(proc.port)
            await wire.aclose()
            wire = await client(proc.port)
            proc.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
            async with wire:
                await wire.expect_closed()

        anyio.run(scenario)
        assert proc.proc is not None
        assert proc.proc.wait(timeout=10) == 0
        opened = proc.wait_for_log(lambda r: str(r.get("msg", "")).startswith("connection opened"))
        assert opened["peer"].startswith("127.0.0.1:")
        closed = proc.wait_for_log(lambda r: r.get("reason") == "disconnected")
        assert closed["client"] == "'cli-1'"
        assert proc.wait_for_log(lambda r: r.get("reason") == "shutdown")["client"] == "'cli-1'"


def test_json_formatter() -> None:
    """The JSON formatter writes one object with ts, level, logger, msg and extra fields."""
    record = logging.LogRecord("roost.broker", logging.INFO, "f", 1, "hello %s", ("x",), None)
    record.peer = "1.2.3.4:5"
    data = json.loads(JsonFormatter().format(record))
    assert data["msg"] == "hello x"
    assert data["level"] == "info"
    assert data["logger"] == "roost.broker"
    assert data["peer"] == "1.2.3.4:5"
    assert isinstance(data["ts"], float)


def test_broker_process_restart_pause_resume() -> None:
    """Case 23 with a real process: after a restart on the same port, allocated ids are new;
    a paused broker answers nothing until resumed."""

    async def hello_id(port: int) -> bytes:
        async with await connect(port) as wire:
            assert wire.client_id is not None
            return wire.client_id.raw

    async def paused_ping(proc: BrokerProcess) -> None:
        async with await connect(proc.port) as wire:
            proc.pause()
            try:
                await wire.send(m.Ping(1))
                with pytest.raises(TimeoutError):
                    await wire.recv(timeout=0.3)
            finally:
                proc.resume()
            assert await wire.recv() == ok(1)

    with BrokerProcess() as proc:
        port = proc.port
        before = {anyio.run(hello_id, port) for _ in range(3)}
        proc.restart()
        assert proc.port == port
        after = {anyio.run(hello_id, port) for _ in range(3)}
        assert len(before | after) == 6
        anyio.run(paused_ping, proc)

"""The HTTP and websocket gateway: what it costs the native path, and websocket fan-out.

Suites:

- native event fan-out (1 emitter to 10 listeners, 32 B) and action round trips (16 callers)
  against two brokers in the same run: one without the gateway, one with the gateway on and a
  dashboard connected (a separate process doing what the page does: hello, observe
  /meta/clients and every state in the tree, listen to /meta/lease_events, walk the tree with
  /meta/ls every 5 s, fetch /api/stats every 2 s). The rounds alternate between the two
  brokers and the best of each counts; the ratio is the gateway's cost. Target: at most 5%.
  Beside the rates, the same ratio per CPU-second of each broker, which other processes
  competing for the machine disturb less.
- websocket fan-out: one native emitter to 100 websocket listeners (JSON forms): deliveries/s,
  and deliveries per CPU-second of the broker (the load generator parses 100 websockets in
  Python and may be the limit on a small machine; the per CPU-s figure is the broker's).

Both brokers run on the event loop ``roost serve`` uses (uvloop when installed).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time

from benchmarks.broker import _calls, _fanout
from benchmarks.common import Table, format_rate
from benchmarks.processes import ROOT, Server, _raise_nofile

__all__ = ("run",)

TARGET = 1.05


def _loop() -> str:
    import importlib.util

    return "asyncio" if importlib.util.find_spec("uvloop") is None else "uvloop"


class _GatewayServer(Server):
    """A broker process with its gateway; ``http_port`` is its second stdout line."""

    def __init__(self, *args: str) -> None:
        super().__init__("benchmarks.gateway", "--serve", *args)
        assert self.proc.stdout is not None
        self.http_port = int(self.proc.stdout.readline())


class _Dashboard:
    """The dashboard's traffic, from a process of its own."""

    def __init__(self, http_port: int) -> None:
        import subprocess

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.gateway", "--dashboard", str(http_port)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith(b"ready"):
            raise RuntimeError(f"dashboard did not start: {line!r}")

    def close(self) -> None:
        self.proc.communicate(timeout=10)


# -- processes ---------------------------------------------------------------------------------


def _serve(loop: str, gateway: bool) -> None:
    """A broker on port 0 (and its gateway on another port 0 when asked); prints both ports
    (0 for no gateway) and serves until stdin closes."""
    import logging

    from roost.broker import Broker
    from roost.broker.run import loop_factory, settle_gc

    _raise_nofile()
    logging.disable(logging.CRITICAL)

    async def main() -> None:
        async with Broker(port=0, http_port=0 if gateway else None) as broker:
            settle_gc()
            print(broker.port, flush=True)
            print(broker.gateway.port if broker.gateway else 0, flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

    with asyncio.Runner(loop_factory=loop_factory(loop)) as runner:
        runner.run(main())


async def _dashboard(http_port: int) -> None:
    """What the dashboard page does, until stdin closes."""
    import aiohttp

    base = f"http://127.0.0.1:{http_port}"
    async with aiohttp.ClientSession() as http, http.ws_connect(f"{base}/ws") as ws:
        ids = iter(range(1, 1 << 30))
        waiting: dict[int, asyncio.Future[object]] = {}

        async def request(*form: object) -> object:
            rid = next(ids) & 0xFFFF
            future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
            waiting[rid] = future
            await ws.send_str(json.dumps([form[0], rid, *form[1:]]))
            return await future

        async def reader() -> None:
            async for msg in ws:
                form = json.loads(msg.data)
                if form[0] in ("reply", "reply_state"):
                    future = waiting.pop(form[1], None)
                    if future is not None:
                        future.set_result(form[2])

        async def walk(observed: set[str]) -> None:
            async def ls(path: str) -> None:
                result = await request("action_call", "/meta/ls", [path])
                assert isinstance(result, list)
                if result[0] != "ok" or result[1][0] != "dir":
                    return
                for name, kind in result[1][1]:
                    child = (path.rstrip("/") or "") + "/" + name
                    if kind == "dir":
                        await ls(child)
                    elif kind == "state" and child not in observed:
                        observed.add(child)
                        await request("state_observe", child)

            await ls("/")

        async def poll() -> None:
            observed: set[str] = set()
            tick = 0
            while True:
                if tick % 5 == 0:
                    await walk(observed)
                if tick % 2 == 0:
                    async with http.get(f"{base}/api/stats") as reply:
                        await reply.read()
                tick += 1
                await asyncio.sleep(1)

        reading = asyncio.create_task(reader())
        await ws.send_str(json.dumps(["hello", 1, 30]))
        await request("state_observe", "/meta/clients")
        await request("event_listen", "/meta/lease_events")
        polling = asyncio.create_task(poll())
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        polling.cancel()
        reading.cancel()


# -- websocket fan-out -------------------------------------------------------------------------


async def _ws_fanout(server: _GatewayServer, clients: int, duration: float) -> tuple[float, float]:
    import aiohttp

    from roost.protocol import codec
    from roost.protocol import messages as m
    from roost.protocol.values import Value

    path = "/bench/wsev"
    received = [0] * clients
    async with aiohttp.ClientSession() as http:
        sockets = [
            await http.ws_connect(f"http://127.0.0.1:{server.http_port}/ws") for _ in range(clients)
        ]
        for ws in sockets:
            await ws.send_str('["hello", 1, 0]')
            await ws.receive()
            await ws.send_str(json.dumps(["event_listen", 1, path]))
            await ws.receive()

        async def count(index: int, ws: aiohttp.ClientWebSocketResponse) -> None:
            async for _ in ws:
                received[index] += 1

        counters = [asyncio.create_task(count(i, ws)) for i, ws in enumerate(sockets)]
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(codec.encode(m.Hello(1, 0)))
        head = await reader.readexactly(3)
        await reader.readexactly(int.from_bytes(head[1:3], "big"))  # the hello reply

        async def drain() -> None:  # the emitter's "ok" replies
            while await reader.read(1 << 16):
                pass

        draining = asyncio.create_task(drain())
        frame = codec.encode(m.EventEmit(1, path, Value.of("x" * 32)))
        window = 200
        sent = 0
        started = time.perf_counter()
        cpu = server.cpu_seconds()
        deadline = started + duration
        while time.perf_counter() < deadline:
            while sent - min(received) < window:
                writer.write(frame * 20)
                sent += 20
            await asyncio.sleep(0.001)
        while min(received) < sent:
            await asyncio.sleep(0.001)
        elapsed = time.perf_counter() - started
        used = max(server.cpu_seconds() - cpu, 0.01)
        writer.close()
        draining.cancel()
        for task in counters:
            task.cancel()
        for ws in sockets:
            await ws.close()
    total = sent * clients
    return total / elapsed, total / used


# -- the suite ---------------------------------------------------------------------------------


def run(quick: bool = False) -> None:
    """Print the gateway's cost on the native path and the websocket fan-out rate."""
    loop = _loop()
    plain = _GatewayServer(loop)
    web = _GatewayServer(loop, "--http")
    dashboard = _Dashboard(web.http_port)
    rounds = 2 if quick else 4
    best: dict[tuple[str, ...], float] = {}
    try:
        pair = (("off", plain), ("on", web))
        for index in range(rounds):
            # Alternate which broker goes first, so neither always meets a colder machine.
            for name, server in pair if index % 2 == 0 else pair[::-1]:
                fan = _fanout(server, 10, 32, False, quick)
                calls = _calls(server, 16, 0.5 if quick else 1.0)
                for key, (rate, per_cpu) in (("fanout", fan[:2]), ("calls", calls[:2])):
                    best[(key, name)] = max(best.get((key, name), 0.0), rate)
                    best[(key, name, "cpu")] = max(best.get((key, name, "cpu"), 0.0), per_cpu)
    finally:
        dashboard.close()
        plain.close()
    table = Table(
        f"gateway cost on the native path ({loop}, best of {rounds} alternating rounds)",
        [
            "workload",
            "gateway off",
            "gateway on + dashboard",
            "off/on",
            "off/on per CPU-s",
            "target",
        ],
    )
    for key, label in (
        ("fanout", "fan-out 1->10, 32 B, deliveries/s"),
        ("calls", "16 callers, calls/s"),
    ):
        off, on = best[(key, "off")], best[(key, "on")]
        cpu = best[(key, "off", "cpu")] / best[(key, "on", "cpu")]
        table.add(
            label,
            format_rate(off),
            format_rate(on),
            f"{off / on:.3f}x",
            f"{cpu:.3f}x",
            f"<= {TARGET:.2f}x",
        )
    table.print()
    try:
        clients = 100
        rate, per_cpu = asyncio.run(_ws_fanout(web, clients, 1.0 if quick else 3.0))
    finally:
        web.close()
    ws_table = Table(
        "websocket fan-out (JSON forms, 32 B str)", ["listeners", "deliveries/s", "per CPU-s"]
    )
    ws_table.add(clients, format_rate(rate), format_rate(per_cpu))
    ws_table.print()


if __name__ == "__main__":
    if "--serve" in sys.argv:
        args = sys.argv[sys.argv.index("--serve") + 1 :]
        _serve(args[0] if args and args[0] != "--http" else "asyncio", "--http" in args)
    elif "--dashboard" in sys.argv:
        asyncio.run(_dashboard(int(sys.argv[sys.argv.index("--dashboard") + 1])))
    else:
        os.environ.setdefault("PYTHONHASHSEED", "0")
        run("--quick" in sys.argv)

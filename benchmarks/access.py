"""Access control cost: event fan-out and action round trips with 100 ACL rules vs none.

Both brokers run in their own processes, side by side in the same run, on the same event loop
kind; the load is the broker suite's (``benchmarks.broker``). With rules, every connection is
``anonymous`` under 100 rules (99 that grant other users other subtrees, one that grants
``anonymous`` what the benchmark does), so each request is checked against compiled grants.
Permissions are decided once per user and path and cached, so the per-message cost is one
dictionary lookup; the target is at most 10% slower than no rules at all.

Rates are measured alternately (none, rules, none, rules...) and the best of each is shown,
with the ratio; "per CPU-s" divides the work by the broker's CPU time, which stays meaningful
when other processes share the machine.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable

from benchmarks.broker import _calls, _fanout
from benchmarks.common import Table, format_rate
from benchmarks.processes import Server, _loops, _raise_nofile

__all__ = ("run",)

#: Rules in the "with ACL" broker.
RULES = 100
TARGET = 0.90


def _rules_toml(count: int) -> str:
    parts = [
        f'[[acl]]\nuser = "user{i}"\npaths = ["/site{i}/**", "/lab/+/dev{i}"]\n'
        f'allow = ["call", "observe", "set"]\n'
        for i in range(count - 1)
    ]
    parts.append('[[acl]]\nuser = "anonymous"\npaths = ["/bench/**"]\nallow = ["all"]\n')
    return "\n".join(parts)


def _serve(loop: str, rules: int) -> None:
    """Entry point of a broker process with ``rules`` ACL rules (0: none)."""
    from roost.broker import Broker
    from roost.broker.auth.settings import from_sections
    from roost.broker.config import parse_config
    from roost.broker.run import loop_factory, settle_gc

    _raise_nofile()
    logging.disable(logging.CRITICAL)
    auth = from_sections(parse_config(_rules_toml(rules)).get) if rules else None

    async def main() -> None:
        async with Broker(port=0, auth=auth) as broker:
            settle_gc()
            print(broker.port, flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

    with asyncio.Runner(loop_factory=loop_factory(loop)) as runner:
        runner.run(main())


def run(quick: bool = False) -> None:
    """Measure fan-out and round trips with and without rules; print one table."""
    _raise_nofile()
    table = Table(
        f"access control: {RULES} rules vs none (best of alternating runs)",
        [
            "loop",
            "workload",
            "none/s",
            f"{RULES} rules/s",
            "ratio",
            "none per CPU-s",
            "rules per CPU-s",
            "ratio CPU",
        ],
    )
    rounds = 2 if quick else 3
    for loop in _loops():
        plain = Server("benchmarks.access", "--serve", loop, "0")
        acl = Server("benchmarks.access", "--serve", loop, str(RULES))
        try:
            workloads: dict[str, Callable[[Server], tuple[float, float]]] = {
                "fan-out 1 listener": lambda s: _fanout(s, 1, 32, False, quick)[:2],
                "fan-out 100 listeners": lambda s: _fanout(s, 100, 32, False, quick)[:2],
                "calls, 16 callers": lambda s: _calls(s, 16, 0.4 if quick else 1.0)[:2],
            }
            for name, measure in workloads.items():
                best: dict[str, tuple[float, float]] = {"none": (0.0, 0.0), "acl": (0.0, 0.0)}
                for _ in range(rounds):
                    for key, server in (("none", plain), ("acl", acl)):
                        rate, per_cpu = measure(server)
                        old = best[key]
                        best[key] = (max(old[0], rate), max(old[1], per_cpu))
                (n_rate, n_cpu), (a_rate, a_cpu) = best["none"], best["acl"]
                table.add(
                    loop,
                    name,
                    format_rate(n_rate),
                    format_rate(a_rate),
                    f"{a_rate / n_rate:.2f}",
                    format_rate(n_cpu),
                    format_rate(a_cpu),
                    f"{a_cpu / n_cpu:.2f}",
                )
        finally:
            plain.close()
            acl.close()
    table.print()
    print(f"target: with {RULES} rules at least {TARGET:.0%} of the rate without (ratio >= 0.90)")


if __name__ == "__main__":
    if "--serve" in sys.argv:
        _args = sys.argv[sys.argv.index("--serve") + 1 :]
        _serve(_args[0], int(_args[1]))
    else:
        run("--quick" in sys.argv)

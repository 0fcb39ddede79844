"""The ``roost`` command line.

- :mod:`roost.cli.main`: the ``roost`` group, shared options and the client commands
  (call, get, set, emit, observe, listen, publish, ls, clients, ping).
- :mod:`roost.cli.output`: exit codes, error lines, value parsing and printing.
- :mod:`roost.cli.serve`: ``roost serve``.
- :mod:`roost.cli.lease` / :mod:`roost.cli.leases`: ``roost lease ...`` and ``roost leases``.
"""

from roost.cli.main import cli, main

__all__ = ("cli", "main")

"""The lease service: exclusive and shared holds on named resources, with fencing tokens.

The face the rest of the broker uses:

- :func:`install_leases` plugs the service into a :class:`~roost.broker.router.Router`
  (extension requests, guarded nodes, ``/meta/leases`` states, the sweeper timer).
- :class:`LeaseLayer` is what it installs; :class:`LeaseTable` the pure table underneath
  (synchronous, time passed in, returns effects).
- :func:`load_lease_config` / :class:`LeaseConfig` / :class:`LeaseConfigError` read the TOML
  lease configuration.

Inside: ``types`` (records, leases, waiters, effects), ``core`` (the table's state and
transitions), ``table`` (its verbs), ``queries`` and ``views`` (read-only answers and their size
budgets), ``checks`` (invariants, for tests), ``wire`` (request argument parsing), ``store``
(the state directory), ``config`` and ``routes`` (the glue to the router).
"""

from roost.broker.leases.config import LeaseConfig, LeaseConfigError, load_lease_config
from roost.broker.leases.routes import LeaseLayer, install_leases
from roost.broker.leases.table import LeaseTable

__all__ = (
    "LeaseConfig",
    "LeaseConfigError",
    "LeaseLayer",
    "LeaseTable",
    "install_leases",
    "load_lease_config",
)

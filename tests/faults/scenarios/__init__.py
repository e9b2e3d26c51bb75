"""One module per family of faults; :data:`SCENARIOS` lists them in the report's order.

A scenario is a coroutine function taking the :class:`~tests.faults.env.FaultEnv` and returning
one :class:`~tests.faults.ledger.Result` (or a list of them, when one setup serves several)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from tests.faults.env import FaultEnv
from tests.faults.ledger import Result
from tests.faults.scenarios import broker, cluster, database, network, poison, process

Scenario = Callable[[FaultEnv], Awaitable[Result | list[Result]]]

#: name -> scenario, in the order of issue 15's list.
SCENARIOS: dict[str, Scenario] = {
    "broker-restart": broker.broker_restart,
    "sigkill": process.sigkill,
    "pg-restart": database.pg_restart,
    "tcp-cut": network.tcp_cut,
    "tcp-stall": network.tcp_stall,
    "slow-consumer": process.slow_consumer,
    "poison": poison.poison_run,
    "poison-odd-properties": poison.odd_properties,
    "cluster": cluster.cluster_node_stop,
    "transaction-hold": broker.transaction_hold,
}

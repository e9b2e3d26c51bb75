"""A node of a three-node RabbitMQ cluster stops mid-run (outbox and inbox, quorum queue
replicated on all three) and comes back later.

Issue 15 asks for two runs: stop the node leading the busy queue and, separately, the node the
bus is connected to. The second needs ``Bus(url=...)`` to take several broker addresses: the
suite asks busline whether it does, and without them it reports that run as not possible (a
failed check) and keeps the bus of the first run on a node that stays up.

A graceful node stop hands the queue's leadership over while handling goes on, so "recovery"
here is the longest pause in handling after the stop began (0 when it never paused).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable

import aio_pika

from busline import Bus
from tests.faults.env import FaultEnv
from tests.faults.ledger import Effects, Result
from tests.faults.load import Fault, outbox_run
from tests.faults.servers import RabbitCluster, RabbitNode, services

QUEUE = "faults.Work"


async def _several_urls_accepted(urls: str) -> bool:
    """Does this busline connect with a comma-separated list of broker addresses?"""
    bus = Bus("faults-probe", urls, send_timeout=5, shutdown_timeout=5)
    try:
        await asyncio.wait_for(bus.start(), 20)
    except Exception:  # whatever the refusal looks like, the answer is no
        return False
    finally:
        await bus.stop()
    return True


async def _declare_on(node: RabbitNode, vhost: str) -> None:
    """Declare the work queue through ``node``: a quorum queue's leader is placed on the node
    its declaring client is connected to (RabbitMQ's default, client-local)."""
    connection = await aio_pika.connect(node.url(vhost))
    try:
        channel = await connection.channel()
        await channel.declare_queue(QUEUE, durable=True, arguments={"x-queue-type": "quorum"})
    finally:
        await connection.close()


async def cluster_node_stop(env: FaultEnv) -> list[Result]:
    """Scenario 8: on a cluster of the suite's own, stop the node leading the busy quorum queue
    (the bus on another node), then, when busline takes several addresses, the bus's node."""
    cluster = RabbitCluster()
    try:
        await asyncio.to_thread(cluster.start)
        _, urls = await _cluster_vhost(cluster)
        several = await _several_urls_accepted(urls)
        results = [await _stop_leader(env, cluster, several)]
        if several:
            results.append(await _stop_bus_node(env, cluster))
        else:
            skipped = Result("cluster: stop the bus's node", finished=False)
            skipped.notes.append("not run: Bus(url=...) takes one broker address today")
            skipped.check("Bus(url=...) takes several broker addresses", False)
            results.append(skipped)
        return results
    finally:
        await asyncio.to_thread(cluster.stop)


async def _cluster_vhost(cluster: RabbitCluster) -> tuple[str, str]:
    """A fresh vhost of the cluster: its name, and the comma-separated URLs of its three nodes
    for it."""
    vhost = f"faults-{uuid.uuid4().hex[:8]}"
    await asyncio.to_thread(services, cluster.nodes[0].port, "add-vhosts", vhost)
    return vhost, ",".join(node.url(vhost) for node in cluster.nodes)


def _stopper(node: RabbitNode, result: Result, after: Callable[[], Awaitable[None]]) -> Fault:
    """A fault that stops ``node``, runs ``after`` and starts the node again (it rejoins and
    catches up while the load goes on)."""

    async def stop(effects: Effects) -> float:
        began = await effects.mark()
        await node.astop()
        result.notes.append(f"{node.name} stop took {time.monotonic() - began:.1f} s")
        await after()
        await node.astart()
        return began

    return stop


async def _stop_leader(env: FaultEnv, cluster: RabbitCluster, several: bool) -> Result:
    result = Result("cluster: stop the queue leader's node")
    vhost, urls = await _cluster_vhost(cluster)
    first, leader_node = cluster.nodes[0], cluster.nodes[1]
    bus_url = urls if several else first.url(vhost)
    result.notes.append("bus given all three addresses" if several else "bus on the first node")
    await _declare_on(leader_node, vhost)
    result.notes.append(f"leader {await asyncio.to_thread(cluster.leader_of, vhost, QUEUE)}")

    async def new_leader() -> None:
        result.notes.append(
            f"new leader {await asyncio.to_thread(cluster.leader_of, vhost, QUEUE)}"
        )

    return await outbox_run(
        result,
        producer_url=bus_url,
        consumer_url=bus_url,
        admin_url=first.url(vhost),
        store=await env.pg.new_database(),
        count=10_000 if env.long else 1_000,
        rate=250 if env.long else 100,
        fault=_stopper(leader_node, result, new_leader),
        pause=True,
        deadline_s=400 if env.long else 120,
    )


async def _stop_bus_node(env: FaultEnv, cluster: RabbitCluster) -> Result:
    result = Result("cluster: stop the bus's node")
    vhost, urls = await _cluster_vhost(cluster)

    async def nothing() -> None:
        return None

    return await outbox_run(
        result,
        producer_url=urls,
        consumer_url=urls,
        admin_url=cluster.nodes[1].url(vhost),
        store=await env.pg.new_database(),
        count=10_000 if env.long else 1_000,
        rate=250 if env.long else 100,
        fault=_stopper(cluster.nodes[0], result, nothing),
        pause=True,
        deadline_s=400 if env.long else 120,
    )

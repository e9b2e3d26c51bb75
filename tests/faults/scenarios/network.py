"""The network between busline and the broker fails: every connection is cut (both ends see a
reset), or stalls (nothing moves, nothing closes). Both buses talk to the broker through the
suite's proxy; a new connection always gets through, as it would after a real stall."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from tests.faults.env import FaultEnv
from tests.faults.ledger import Effects, Result
from tests.faults.load import outbox_run
from tests.faults.plain import until
from tests.faults.proxy import FaultProxy

#: The consumer's prefetch: deliveries it may still finish after the link went (see
#: Effects.resumed_after).
PREFETCH = 32
#: The bound issue 15 sets for noticing a stalled connection (its default: around 15-20 s).
STALL_BOUND = 20.0

#: A fault done through the proxy (see :data:`tests.faults.load.Fault`).
ProxyFault = Callable[[FaultProxy, Effects], Awaitable[float]]


async def _through_proxy(
    env: FaultEnv, result: Result, fault: ProxyFault, extra_deadline_s: float = 0.0
) -> Result:
    """The outbox run with both buses behind a fresh proxy, ``fault`` striking through it."""
    url = await env.vhost()
    proxy = await FaultProxy(env.rabbit.port).start()

    async def strike(effects: Effects) -> float:
        return await fault(proxy, effects)

    try:
        return await outbox_run(
            result,
            producer_url=proxy.url(url),
            consumer_url=proxy.url(url),
            admin_url=url,
            store=await env.pg.new_database(),
            count=5_000 if env.long else 600,
            rate=250 if env.long else 100,
            fault=strike,
            slack=PREFETCH,
            deadline_s=extra_deadline_s + (300 if env.long else 90),
        )
    finally:
        await proxy.close()


async def tcp_cut(env: FaultEnv) -> Result:
    """Scenario 4: every connection is reset at once under outbox load."""
    result = Result("TCP cut (proxy resets every connection)")

    async def cut(proxy: FaultProxy, effects: Effects) -> float:
        moment = await effects.mark()
        result.notes.append(f"{proxy.cut()} connection(s) reset")
        return moment

    return await _through_proxy(env, result, cut)


async def tcp_stall(env: FaultEnv) -> Result:
    """Scenario 5: every connection stalls under outbox load. Recovery is measured from the
    start of the stall (noticing it is busline's job); if busline has not reconnected within
    the wait (30 s short, 240 s long), the proxy resets the stalled connections so that the
    run can end, and the scenario reports the stall as undetected within that time."""
    result = Result("TCP stall (proxy stops forwarding)")
    wait = 240.0 if env.long else 30.0

    async def stall(proxy: FaultProxy, effects: Effects) -> float:
        began = await effects.mark()
        stalled = proxy.stall()
        # Both buses (producer and consumer) must give up their stalled connection: the
        # detection time is when the last of them came back through the proxy.
        await until(lambda: len(proxy.accepted_since(began)) >= stalled, began + wait, 0.1)
        back = proxy.accepted_since(began)
        if len(back) >= stalled:
            detected = back[stalled - 1] - began
            result.notes.append(f"stall detected after {detected:.1f} s")
            result.check(f"stall detected within {STALL_BOUND:.0f} s", detected <= STALL_BOUND)
        else:
            result.notes.append(f"stall NOT detected within {wait:.0f} s (proxy reset it)")
            result.check(f"stall detected within {STALL_BOUND:.0f} s", False)
            proxy.cut()
        return began

    return await _through_proxy(env, result, stall, extra_deadline_s=wait)

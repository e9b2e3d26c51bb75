"""Sending a handler's messages once it succeeded: the last step before the acknowledgement.

It sits outside the retry middleware, so it runs once, after the attempt that succeeded:

* with a store, the messages were committed to the outbox (``ctx.committed``): they are sent in
  order and marked dispatched; what cannot be sent is left to the relay, and the incoming message
  is still acknowledged (its effects are safely stored);
* without a store, they are sent concurrently; if that fails (broker trouble), the handler did
  nothing wrong, so the whole message is tried again later as a delayed retry, and parked only
  once the delayed rounds are used up.
"""

from __future__ import annotations

from busline.context import Context
from busline.middleware import ConsumeNext, Middleware
from busline.publishing import Publisher
from busline.retries import RetryPolicy, delayed_retry, policy_for
from busline.storage import StoreRuntime


class SendAfterSuccess(Middleware):
    """Sends ``ctx.outgoing`` after the rest of the chain returned.

    Args:
        publisher: The bus's publish chain.
        storage: The bus's store, ``None`` without one.
        default_retry: The bus's retry policy (handlers may have their own ``retry=``).
    """

    def __init__(
        self, publisher: Publisher, storage: StoreRuntime | None, default_retry: RetryPolicy
    ) -> None:
        self._publisher = publisher
        self._storage = storage
        self._default_retry = default_retry

    async def on_consume(self, ctx: Context, call_next: ConsumeNext) -> None:
        """Run the handler (with its retries), then send what it left in ``ctx.outgoing``."""
        await call_next(ctx)
        outgoing = ctx.outgoing
        if not outgoing:
            return
        if ctx.committed is not None and self._storage is not None:
            await self._storage.dispatch_committed(ctx.committed, outgoing)
            return
        try:
            await self._publisher.publish_all(outgoing)
        except Exception as error:
            retry = delayed_retry(policy_for(ctx, self._default_retry), ctx)
            if retry is None:
                raise
            raise retry from error

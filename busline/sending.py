"""Sending a handler's messages once it succeeded: the last step before the acknowledgement.

The consumer calls it inside the outer middleware (tracing: the sends are children of the
process span) and outside the retries, so it runs once, after the attempt that succeeded:

* with a store, the messages were committed to the outbox (``ctx.committed``): they are sent in
  order and marked dispatched; what cannot be sent is left to the relay, and the incoming message
  is still acknowledged (its effects are safely stored);
* without a store, they are sent concurrently; if that fails (broker trouble), the handler did
  nothing wrong, so the whole message is tried again later as a delayed retry, and parked only
  once the delayed rounds are used up.
"""

from __future__ import annotations

from busline.context import Context
from busline.publishing import Publisher
from busline.retries import RetryPolicy, delayed_retry, policy_for
from busline.storage import StoreRuntime


class SendAfterSuccess:
    """Sends ``ctx.outgoing`` once the handler (with its retries) succeeded.

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

    async def send(self, ctx: Context) -> None:
        """Send what the handler left in ``ctx.outgoing`` (not empty); raise
        :class:`~busline.retries.RetryLater` (or the failure, once the delayed rounds are used
        up) when messages of a handler without a store could not be sent."""
        outgoing = ctx.outgoing
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

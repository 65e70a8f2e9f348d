"""An asyncua client subscription that hands data changes over a whole PublishResponse at a time.

asyncua 2.x delivers every data-change notification through its own asyncio task and a
``datachange_notification(node, value, data)`` call (plus a ``DataChangeNotif`` and an event object per
notification): ~25 us of overhead each before the handler does any work. :class:`BulkSubscription`
keeps asyncua's subscription (creation, monitored items, keep-alive, reconnect, republish) and only
changes delivery: the data changes of one PublishResponse go to ``handler.datachange_batch(items)``
in one synchronous call, ``items`` being ``(key, DataValue)`` pairs in server order, ``key`` being
whatever the caller attached to the node in :meth:`BulkSubscription.subscribe_keyed`. Events and
status changes still go through asyncua's usual handler methods.
"""

from __future__ import annotations

import time
from collections.abc import Hashable, Mapping
from typing import Protocol

from asyncua import Client, ua
from asyncua.common.node import Node
from asyncua.common.subscription import StatusChangeEvent, Subscription


class BulkHandler(Protocol):
    """What a :class:`BulkSubscription` handler implements (events/status methods are optional)."""

    def datachange_batch(self, items: list[tuple[Hashable, ua.DataValue]]) -> None:
        """All data changes of one PublishResponse, ``(key, DataValue)`` in server order."""


class BulkSubscription(Subscription):
    """A :class:`~asyncua.common.subscription.Subscription` with one handler call per PublishResponse."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._keys: dict[int, Hashable] = {}
        self.notifications = 0  # data changes delivered (for benchmarks and health displays)

    async def subscribe_keyed(
        self,
        nodes: Mapping[Hashable, ua.NodeId],
        mfilter: ua.MonitoringFilter | None = None,
        queuesize: int = 0,
        chunk: int = 1000,
    ) -> int:
        """Monitor the Value of every node of ``{key: node id}``; notifications carry ``key``.

        Creates the monitored items ``chunk`` at a time (one request each). Returns the number
        created; raises ``ValueError`` naming the first node the server refused.
        """
        items = list(nodes.items())
        created = 0
        for start in range(0, len(items), chunk):
            part = items[start : start + chunk]
            requests = []
            for key, nodeid in part:
                request = self._make_monitored_item_request(
                    Node(self.server, nodeid),
                    ua.AttributeIds.Value,
                    mfilter,
                    queuesize,
                    ua.MonitoringMode.Reporting,
                    0.0,
                )
                self._keys[request.RequestedParameters.ClientHandle] = key
                requests.append(request)
            results = await self.create_monitored_items(requests)
            for (key, nodeid), result in zip(part, results, strict=True):
                if isinstance(result, ua.StatusCode):
                    raise ValueError(f"the server refused to monitor {nodeid.to_string()} ({key!r}): {result.name}")
            created += len(part)
        return created

    async def publish_callback(self, publish_result: ua.PublishResult) -> None:
        """Deliver the data changes in bulk; events and status changes the asyncua way."""
        self.last_publish_at = time.monotonic()
        data = publish_result.NotificationMessage.NotificationData
        if data is None:
            return
        self.last_sequence_number = int(publish_result.NotificationMessage.SequenceNumber)
        others = []
        for notif in data:
            if isinstance(notif, ua.DataChangeNotification):
                keys = self._keys
                batch = [(keys[m.ClientHandle], m.Value) for m in notif.MonitoredItems if m.ClientHandle in keys]
                if batch:
                    self.notifications += len(batch)
                    self._handler.datachange_batch(batch)
            else:
                others.append(notif)
        for event in self._explode_notifications(others):
            if isinstance(event, StatusChangeEvent) and not hasattr(self._handler, "status_change_notification"):
                continue
            self._deliver(event)


async def create_bulk_subscription(client: Client, period_ms: float, handler: BulkHandler) -> BulkSubscription:
    """Create a :class:`BulkSubscription` on a connected ``client`` (as ``Client.create_subscription`` does)."""
    if not callable(getattr(handler, "datachange_batch", None)):
        raise TypeError(f"{type(handler).__name__} needs a datachange_batch(items) method for a bulk subscription")
    params = ua.CreateSubscriptionParameters()
    params.RequestedPublishingInterval = period_ms
    params.RequestedLifetimeCount = 10000
    params.RequestedMaxKeepAliveCount = client.get_keepalive_count(period_ms)
    params.MaxNotificationsPerPublish = 0  # no limit: one response carries the whole interval
    params.PublishingEnabled = True
    params.Priority = 0
    subscription = BulkSubscription(client.uaclient.session, params, handler)
    subscription.set_overflow_disconnect_handler(client.uaclient.notify_transport_lost)
    results = await subscription.init()
    revised = client.get_subscription_revised_params(params, results)
    if revised:
        await subscription.update(revised)
    client._subscriptions.append(subscription)  # so asyncua's reconnect supervisor restores it
    return subscription

"""An asyncua client subscription that hands data changes over a whole PublishResponse at a time.

asyncua 2.x delivers every data-change notification through its own asyncio task and a
``datachange_notification(node, value, data)`` call (plus a ``DataChangeNotif`` and an event object per
notification): ~25 us of overhead each before the handler does any work. :class:`BulkSubscription`
keeps asyncua's subscription (creation, monitored items, keep-alive, reconnect, republish) and only
changes delivery: the data changes of one PublishResponse go to ``handler.datachange_batch(items)``
in one synchronous call, ``items`` being ``(key, DataValue)`` pairs in server order, ``key`` being
whatever the caller attached to the node in ``subscribe_keyed``. Everything else of the response
(events, status changes, sequence numbers) goes through asyncua's own ``publish_callback``.

The fast path relies on two asyncua internals (:func:`fast_path_missing` checks both; pyproject.toml
bounds the asyncua version): that a subscription's ``publish_callback`` is what the session calls, and
``Client._subscriptions``, the list asyncua's reconnect supervisor restores. When one is missing,
:func:`create_bulk_subscription` falls back to a plain asyncua subscription made with the public API
only, behind the same keyed interface: one handler call per notification, slower, never silent. It is
then not restored by asyncua's supervisor; the edge reconnects and subscribes again on its own.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Hashable, Mapping
from itertools import count
from typing import Any, Protocol

from asyncua import Client, ua
from asyncua.common.subscription import Subscription

log = logging.getLogger(__name__)

# Client handles of keyed items: far above the ones asyncua counts up from 200 (events, other items).
_HANDLES = count(1 << 30)


class BulkHandler(Protocol):
    """What a bulk subscription handler implements (events/status methods are optional)."""

    def datachange_batch(self, items: list[tuple[Hashable, ua.DataValue]]) -> None:
        """All data changes of one PublishResponse, ``(key, DataValue)`` in server order."""


async def _subscribe_keyed(sub: Subscription, keys: dict[int, Hashable], nodes: Mapping[Hashable, ua.NodeId],
                           mfilter: ua.MonitoringFilter | None, queuesize: int, chunk: int) -> int:
    """Monitor the Value of every node of ``{key: node id}`` through asyncua's public
    ``create_monitored_items``, ``chunk`` items a request; ``keys`` learns each item's client handle."""
    items = list(nodes.items())
    for start in range(0, len(items), chunk):
        part = items[start : start + chunk]
        requests = []
        for key, nodeid in part:
            params = ua.MonitoringParameters(ClientHandle=next(_HANDLES), SamplingInterval=0.0,
                                             QueueSize=queuesize, DiscardOldest=True)
            if mfilter is not None:
                params.Filter = mfilter
            keys[params.ClientHandle] = key
            requests.append(ua.MonitoredItemCreateRequest(
                ItemToMonitor=ua.ReadValueId(NodeId=nodeid, AttributeId=ua.AttributeIds.Value),
                MonitoringMode=ua.MonitoringMode.Reporting, RequestedParameters=params))
        results = await sub.create_monitored_items(requests)
        for (key, nodeid), result in zip(part, results, strict=True):
            if isinstance(result, ua.StatusCode):
                raise ValueError(f"the server refused to monitor {nodeid.to_string()} ({key!r}): {result.name}")
    return len(items)


class BulkSubscription(Subscription):
    """A :class:`~asyncua.common.subscription.Subscription` with one handler call per PublishResponse.

    asyncua's handler slot holds a :class:`_OneByOne` adapter: it serves events and status changes, and
    would serve data changes one by one should asyncua ever bypass :meth:`publish_callback`."""

    def __init__(self, session: Any, params: ua.CreateSubscriptionParameters, adapter: _OneByOne):
        super().__init__(session, params, adapter)
        self._bulk, self._keys = adapter.handler, adapter.keys
        self.notifications = 0  # data changes delivered (for benchmarks and health displays)

    async def subscribe_keyed(self, nodes: Mapping[Hashable, ua.NodeId], mfilter: ua.MonitoringFilter | None = None,
                              queuesize: int = 0, chunk: int = 1000) -> int:
        """Monitor the Value of every node of ``{key: node id}``; notifications carry ``key``.

        Creates the monitored items ``chunk`` at a time (one request each). Returns the number
        created; raises ``ValueError`` naming the first node the server refused.
        """
        return await _subscribe_keyed(self, self._keys, nodes, mfilter, queuesize, chunk)

    async def publish_callback(self, publish_result: ua.PublishResult) -> None:
        """Deliver the data changes in bulk, then the rest of the response the asyncua way."""
        message = publish_result.NotificationMessage
        data = message.NotificationData
        if data:
            others, keys = [], self._keys
            for notif in data:
                if isinstance(notif, ua.DataChangeNotification):
                    batch = [(keys[m.ClientHandle], m.Value) for m in notif.MonitoredItems if m.ClientHandle in keys]
                    if batch:
                        self.notifications += len(batch)
                        self._bulk.datachange_batch(batch)
                else:
                    others.append(notif)
            message = dataclasses.replace(message, NotificationData=others)
            publish_result = dataclasses.replace(publish_result, NotificationMessage=message)
        await super().publish_callback(publish_result)


class _OneByOne:
    """asyncua's per-notification handler methods, turned into one-item ``datachange_batch`` calls."""

    def __init__(self, handler: BulkHandler):
        self.handler = handler
        self.keys: dict[int, Hashable] = {}
        self.notifications = 0

    def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
        key = self.keys.get(data.subscription_data.client_handle)
        if key is not None:
            self.notifications += 1
            self.handler.datachange_batch([(key, data.monitored_item.Value)])

    def event_notification(self, event: Any) -> None:
        method = getattr(self.handler, "event_notification", None)
        if method is not None:
            method(event)

    def status_change_notification(self, status: Any) -> None:
        method = getattr(self.handler, "status_change_notification", None)
        if method is not None:
            method(status)


class PublicBulkSubscription:
    """The keyed interface of :class:`BulkSubscription` over asyncua's public subscription API; everything
    else (``subscribe_events``, ``set_monitoring_mode``, ``delete`` ...) is the asyncua subscription's."""

    def __init__(self, subscription: Subscription, adapter: _OneByOne):
        self.subscription, self._adapter = subscription, adapter

    @property
    def notifications(self) -> int:
        return self._adapter.notifications

    async def subscribe_keyed(self, nodes: Mapping[Hashable, ua.NodeId], mfilter: ua.MonitoringFilter | None = None,
                              queuesize: int = 0, chunk: int = 1000) -> int:
        """As :meth:`BulkSubscription.subscribe_keyed`."""
        return await _subscribe_keyed(self.subscription, self._adapter.keys, nodes, mfilter, queuesize, chunk)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.subscription, name)


def fast_path_missing(client: Client) -> list[str]:
    """The asyncua internals the fast path relies on that this asyncua (or ``client``) lacks; empty: use it."""
    missing = [] if callable(getattr(Subscription, "publish_callback", None)) else ["Subscription.publish_callback"]
    if not isinstance(getattr(client, "_subscriptions", None), list):
        missing.append("Client._subscriptions")
    return missing


def _parameters(client: Client, period_ms: float) -> ua.CreateSubscriptionParameters:
    params = ua.CreateSubscriptionParameters()
    params.RequestedPublishingInterval = period_ms
    params.RequestedLifetimeCount = 10000
    params.RequestedMaxKeepAliveCount = client.get_keepalive_count(period_ms)
    params.MaxNotificationsPerPublish = 0  # no limit: one response carries the whole interval
    params.PublishingEnabled = True
    params.Priority = 0
    return params


async def create_bulk_subscription(client: Client, period_ms: float,
                                   handler: BulkHandler) -> BulkSubscription | PublicBulkSubscription:
    """A keyed subscription on a connected ``client``, made as ``Client.create_subscription`` makes one:
    the bulk fast path, or the public-API fallback when an asyncua internal it relies on is missing."""
    if not callable(getattr(handler, "datachange_batch", None)):
        raise TypeError(f"{type(handler).__name__} needs a datachange_batch(items) method for a bulk subscription")
    params, adapter = _parameters(client, period_ms), _OneByOne(handler)
    missing = fast_path_missing(client)
    if missing:
        log.warning("asyncua lacks %s: data changes are delivered one by one (public API)", ", ".join(missing))
    subscription = (Subscription if missing else BulkSubscription)(client.uaclient.session, params, adapter)
    subscription.set_overflow_disconnect_handler(client.uaclient.notify_transport_lost)
    results = await subscription.init()
    revised = client.get_subscription_revised_params(params, results)
    if revised:
        await subscription.update(revised)
    if missing:
        return PublicBulkSubscription(subscription, adapter)
    client._subscriptions.append(subscription)  # so asyncua's reconnect supervisor restores it
    return subscription

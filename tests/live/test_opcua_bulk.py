"""The bulk subscription (live.opcua_bulk) against a real asyncua server: data changes in bulk, events the
asyncua way, and the public-API fallback when an asyncua internal the fast path relies on is missing."""

from __future__ import annotations

import asyncio

import pytest
from asyncua import Client, Server, ua

from kernel.net import free_port
from live.opcua_bulk import BulkSubscription, PublicBulkSubscription, create_bulk_subscription, fast_path_missing
from tests.polling import until


class Seen:
    """A bulk handler recording every datachange_batch call and every event."""

    def __init__(self) -> None:
        self.calls: list[list] = []
        self.events: list = []

    def datachange_batch(self, items) -> None:
        self.calls.append([(key, dv.Value.Value) for key, dv in items])

    def event_notification(self, event) -> None:
        self.events.append(event.Message.Text)

    def latest(self, key):
        return next((v for call in reversed(self.calls) for k, v in reversed(call) if k == key), None)


async def deliver_through(server: Server, client: Client, ids: dict[str, ua.NodeId], seen: Seen):
    """Subscribe to both variables and the server's events, write, fire an event; return the subscription."""
    sub = await create_bulk_subscription(client, 50, seen)
    assert await sub.subscribe_keyed({("m", 1): ids["A"], ("m", 2): ids["B"]}) == 2
    await sub.subscribe_events(client.nodes.server)
    await until(lambda: seen.latest(("m", 1)) == 0.0 and seen.latest(("m", 2)) == 0.0, 10, "initial values")
    for value in (1.0, 2.0, 3.0):
        await server.write_attribute_value(ids["A"], ua.DataValue(ua.Variant(value, ua.VariantType.Double)))
        await server.write_attribute_value(ids["B"], ua.DataValue(ua.Variant(-value, ua.VariantType.Double)))
    generator = await server.get_event_generator()
    await generator.trigger(message="breakdown")
    await until(lambda: seen.latest(("m", 1)) == 3.0 and seen.latest(("m", 2)) == -3.0, 10, "the last writes")
    await until(lambda: seen.events == ["breakdown"], 10, "the event")
    return sub


def run_against_a_server(body) -> None:
    async def main() -> None:
        server = Server()
        await server.init()
        url = f"opc.tcp://127.0.0.1:{free_port()}/bulk-test"
        server.set_endpoint(url)
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        idx = await server.register_namespace("urn:synctwin:test:bulk")
        ids = {}
        for name in ("A", "B"):
            var = await server.nodes.objects.add_variable(ua.NodeId(name, idx), name, 0.0, ua.VariantType.Double)
            ids[name] = var.nodeid
        await server.start()
        try:
            async with Client(url) as client:
                await body(server, client, ids)
        finally:
            await server.stop()

    asyncio.run(main())


def test_fast_path_delivers_data_changes_in_bulk_and_events_one_by_one():
    async def body(server, client, ids):
        assert fast_path_missing(client) == []
        seen = Seen()
        sub = await deliver_through(server, client, ids, seen)
        assert isinstance(sub, BulkSubscription) and sub in client._subscriptions  # restored on reconnect
        assert max(len(call) for call in seen.calls) >= 2  # one call carried both keys
        assert sub.notifications == sum(len(call) for call in seen.calls)
        assert sub.last_sequence_number is not None  # asyncua's bookkeeping still runs

    run_against_a_server(body)


def test_without_an_internal_the_public_api_still_delivers(monkeypatch: pytest.MonkeyPatch):
    async def body(server, client, ids):
        with monkeypatch.context() as patch:
            patch.delattr(client, "_subscriptions")  # an asyncua that keeps its subscriptions elsewhere
            assert fast_path_missing(client) == ["Client._subscriptions"]
            seen = Seen()
            sub = await deliver_through(server, client, ids, seen)
            assert isinstance(sub, PublicBulkSubscription) and not isinstance(sub.subscription, BulkSubscription)
            assert {len(call) for call in seen.calls} == {1}  # one by one
            assert sub.notifications == len(seen.calls)
            await sub.delete()  # the asyncua subscription's own methods stay reachable

    run_against_a_server(body)


def test_a_handler_without_datachange_batch_is_refused():
    async def body(server, client, ids):
        with pytest.raises(TypeError, match="datachange_batch"):
            await create_bulk_subscription(client, 100, object())

    run_against_a_server(body)

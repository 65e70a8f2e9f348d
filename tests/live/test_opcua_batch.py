"""Batched writes (live.opcua_batch) notify exactly as asyncua's own write path, seen by a real client
through a bulk subscription (live.opcua_bulk)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from asyncua import Client, Server, ua

from kernel.net import free_port
from live.opcua_batch import BatchWriteError, write_values
from live.opcua_bulk import BulkSubscription, create_bulk_subscription
from tests.polling import until

DEADBAND = ua.DataChangeFilter(
    Trigger=ua.DataChangeTrigger.StatusValue, DeadbandType=ua.DeadbandType.Absolute, DeadbandValue=1.0
)
EVERY_WRITE = ua.DataChangeFilter(Trigger=ua.DataChangeTrigger.StatusValueTimestamp)


class Batches:
    """Bulk handler: every datachange_batch call, and the latest value per key."""

    def __init__(self):
        self.calls: list[list] = []
        self.latest: dict = {}

    def datachange_batch(self, items):
        self.calls.append(items)
        for key, dv in items:
            self.latest[key] = dv.Value.Value

    def values_of(self, key) -> list:
        return [dv.Value.Value for call in self.calls for k, dv in call if k == key]


async def start_server(names: list[str]) -> tuple[Server, dict[str, ua.NodeId]]:
    """A loopback asyncua server with one Double variable per name."""
    server = Server()
    await server.init()
    url = f"opc.tcp://127.0.0.1:{free_port()}/batch-test"
    server.set_endpoint(url)
    server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    idx = await server.register_namespace("urn:synctwin:test:batch")
    ids = {}
    for name in names:
        var = await server.nodes.objects.add_variable(ua.NodeId(name, idx), name, 0.0, ua.VariantType.Double)
        ids[name] = var.nodeid
    await server.start()
    server.test_url = url
    return server, ids


def dv(value: float) -> ua.DataValue:
    """A fresh Double DataValue stamped now (every write gets its own object)."""
    now = datetime.now(UTC)
    return ua.DataValue(ua.Variant(float(value), ua.VariantType.Double), SourceTimestamp=now, ServerTimestamp=now)


def test_batched_writes_notify_exactly_like_asyncuas_write_path():
    """Same values, same filters: the asyncua-written and the batch-written variable report the same."""
    sequence = [1.0, 1.0, 1.5, 3.0, 3.0, 10.0, 9.5, 7.0]

    async def main():
        server, ids = await start_server(["ViaAsyncua", "ViaBatch", "EveryA", "EveryB", "Step"])
        aspace = server.iserver.aspace
        try:
            async with Client(server.test_url) as client:
                seen = Batches()
                sub = await create_bulk_subscription(client, 50, seen)
                assert isinstance(sub, BulkSubscription)
                await sub.subscribe_keyed({"a": ids["ViaAsyncua"], "b": ids["ViaBatch"]}, DEADBAND)
                await sub.subscribe_keyed({"ea": ids["EveryA"], "eb": ids["EveryB"]}, EVERY_WRITE, queuesize=1)
                await sub.subscribe_keyed({"step": ids["Step"]}, EVERY_WRITE)
                await until(lambda: seen.latest.get("step") == 0.0, 10, "initial values")
                for step, value in enumerate(sequence, start=1):
                    await aspace.write_attribute_value(ids["ViaAsyncua"], ua.AttributeIds.Value, dv(value))
                    await aspace.write_attribute_value(ids["EveryA"], ua.AttributeIds.Value, dv(value))
                    written = await write_values(
                        aspace, [(ids["ViaBatch"], dv(value)), (ids["EveryB"], dv(value)), (ids["Step"], dv(step))]
                    )
                    assert written == 3
                    # the step marker is written last and every queued change goes out in one response
                    await until(lambda s=step: seen.latest.get("step") == s, 10, f"step {step}")
        finally:
            await server.stop()
        assert seen.values_of("a") == seen.values_of("b") == [0.0, 3.0, 10.0, 7.0]
        assert seen.values_of("ea") == seen.values_of("eb") == [0.0, *sequence]
        # one handler call per PublishResponse, carrying several keys at once
        assert max(len(call) for call in seen.calls) >= 3

    asyncio.run(main())


def test_batched_writes_store_values_skip_disabled_items_and_call_foreign_callbacks():
    async def main():
        server, ids = await start_server(["X", "Y"])
        aspace = server.iserver.aspace
        foreign: list[float] = []

        async def callback(handle, value):
            foreign.append(value.Value.Value)

        aspace.add_datachange_callback(ids["Y"], ua.AttributeIds.Value, callback)
        try:
            async with Client(server.test_url) as client:
                seen = Batches()
                sub = await create_bulk_subscription(client, 50, seen)
                await sub.subscribe_keyed({"x": ids["X"]}, EVERY_WRITE)
                await until(lambda: "x" in seen.latest, 10, "initial value")
                await sub.set_monitoring_mode(ua.MonitoringMode.Disabled)
                await write_values(aspace, [(ids["X"], dv(5.0)), (ids["Y"], dv(6.0))])
                assert await client.get_node(ids["X"]).read_value() == 5.0
                assert foreign == [6.0]
                await sub.set_monitoring_mode(ua.MonitoringMode.Reporting)  # re-enabling reports the current value
                await until(lambda: seen.latest.get("x") == 5.0, 10, "value after re-enabling")
                assert seen.values_of("x") == [0.0, 5.0]
        finally:
            await server.stop()

    asyncio.run(main())


def test_batched_write_of_a_wrong_type_or_unknown_node_names_the_node():
    async def main():
        server, ids = await start_server(["Z"])
        try:
            wrong = ua.DataValue(ua.Variant("text", ua.VariantType.String))
            with pytest.raises(BatchWriteError, match=r"Z holds Double, not String"):
                await write_values(server.iserver.aspace, [(ids["Z"], wrong)])
            with pytest.raises(BatchWriteError, match=r"Missing.*has no Value attribute"):
                await write_values(server.iserver.aspace, [(ua.NodeId("Missing", 2), dv(1.0))])
        finally:
            await server.stop()

    asyncio.run(main())


def test_bulk_subscription_names_a_refused_node_and_requires_a_batch_handler():
    async def main():
        server, ids = await start_server(["Known"])
        try:
            async with Client(server.test_url) as client:
                with pytest.raises(TypeError, match="datachange_batch"):
                    await create_bulk_subscription(client, 100, object())
                sub = await create_bulk_subscription(client, 100, Batches())
                with pytest.raises(ValueError, match=r"Nope.*'ghost'.*BadNodeIdUnknown"):
                    await sub.subscribe_keyed({"ghost": ua.NodeId("Nope", 2)})
        finally:
            await server.stop()

    asyncio.run(main())

"""The plant OPC UA server seen from a real asyncua client: browse, read, methods, subscriptions, security."""

from __future__ import annotations

import asyncio
import time

import pytest
from asyncua import Client, ua
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256

from live.opcua_server import (
    DOWNTIME_EVENT,
    VARIABLES,
    OpcUaAccess,
    PlantOpcUaServer,
    access_for_run,
    load_opcua_credentials,
    namespace_uri,
)
from live.plant_host import PlantHost, build_bank
from tests.live.opcua_support import LINES, PER_LINE, scenario, secure_client
from tests.polling import until

EXPECTED_TYPES = {
    "State": ua.VariantType.String,
    "GoodCount": ua.VariantType.UInt64,
    "ScrapCount": ua.VariantType.UInt64,
    "CycleTime": ua.VariantType.Double,
    "Speed": ua.VariantType.Double,
    "Temperature": ua.VariantType.Double,
    "Alarm": ua.VariantType.Boolean,
}


class Changes:
    """Subscription handler recording every data change and event."""

    def __init__(self):
        self.values: list[tuple[ua.NodeId, object]] = []
        self.events: list = []

    def datachange_notification(self, node, val, data):
        self.values.append((node.nodeid, val))

    def event_notification(self, event):
        self.events.append(event)


@pytest.fixture(scope="module")
def insecure_host(tmp_path_factory):
    host = PlantHost(scenario(), "P01", tmp_path_factory.mktemp("run"), epoch=time.time(), speed=600, insecure=True)
    host.start()
    yield host
    host.stop()


def test_client_browses_reads_every_machine_and_commands_change_state(insecure_host):
    async def main():
        async with Client(insecure_host.url) as client:
            idx = await client.get_namespace_index(namespace_uri("P01"))
            plant = await client.nodes.objects.get_child([f"{idx}:P01"])
            lines = await plant.get_children()
            names = sorted([(await n.read_browse_name()).Name for n in lines])
            assert names == ["Line01", "Line02"]
            machines = []
            for line in lines:
                machines += await line.get_children()
            assert len(machines) == LINES * PER_LINE
            for machine in machines:
                variables = await machine.get_children(
                    refs=ua.ObjectIds.HasComponent, nodeclassmask=ua.NodeClass.Variable
                )
                by_name = {(await v.read_browse_name()).Name: v for v in variables}
                assert set(by_name) == set(EXPECTED_TYPES)
                for name, node in by_name.items():
                    dv = await node.read_data_value()
                    assert dv.Value.VariantType == EXPECTED_TYPES[name], name
                assert await by_name["State"].read_value() in ("running", "idle", "down", "changeover")
                methods = await machine.get_children(refs=ua.ObjectIds.HasComponent, nodeclassmask=ua.NodeClass.Method)
                assert {(await m.read_browse_name()).Name for m in methods} == {"Start", "Stop", "Reset"}

            m01 = await plant.get_child([f"{idx}:Line01", f"{idx}:M01"])
            state = await m01.get_child([f"{idx}:State"])
            good = await m01.get_child([f"{idx}:GoodCount"])
            changes = Changes()
            sub = await client.create_subscription(50, changes)
            await sub.subscribe_data_change([state, good])
            seen = lambda v: any(n == state.nodeid and val == v for n, val in changes.values)  # noqa: E731

            await until(lambda: seen("running"), 5, "initial running state")
            await m01.call_method(f"{idx}:Stop")
            await until(lambda: seen("idle"), 5, "state idle after Stop")
            changes.values.clear()
            await m01.call_method(f"{idx}:Start")
            await until(lambda: seen("running"), 5, "state running after Start")

            # production shows up as a growing counter; Reset zeroes it
            first = await good.read_value()
            await until(lambda: insecure_host.status()["good"] > 0, 10, "production")
            await m01.call_method(f"{idx}:Reset")
            assert await good.read_value() <= first + 5

    asyncio.run(main())


def test_downtime_fires_an_event_with_machine_and_times(tmp_path):
    """With breakdowns every few scenario minutes, the plant folder emits downtime events."""

    async def main():
        bank, _ = build_bank(scenario(mtbf="2m"), "P01")
        from kernel.clock import ScaledClock

        server = PlantOpcUaServer("P01", bank, PER_LINE, ScaledClock(time.time(), 60), OpcUaAccess(True, tmp_path))
        url = await server.start()
        try:
            async with Client(url) as client:
                idx = await client.get_namespace_index(namespace_uri("P01"))
                etype = await client.nodes.base_event_type.get_child([f"{idx}:{DOWNTIME_EVENT}"])
                changes = Changes()
                sub = await client.create_subscription(50, changes)
                await sub.subscribe_events(client.get_node(ua.NodeId("P01", idx)), etype)
                t = 0.0
                deadline = time.monotonic() + 10
                while not changes.events and time.monotonic() < deadline:
                    t += 60.0
                    await server.publish(bank.advance(t))
                    await asyncio.sleep(0.05)
                assert changes.events, "no downtime event within 10 s"
                ev = changes.events[0]
                assert ev.Line.startswith("Line") and ev.Machine.startswith("M")
                assert 0 <= ev.DownStart < ev.DownEnd
        finally:
            await server.stop()

    asyncio.run(main())


def test_server_writes_only_changed_values_after_the_first_pass(tmp_path):
    async def main():
        bank, _ = build_bank(scenario(), "P01")
        from kernel.clock import ScaledClock

        server = PlantOpcUaServer("P01", bank, PER_LINE, ScaledClock(time.time(), 60), OpcUaAccess(True, tmp_path))
        await server.start()
        try:
            assert server.writes == LINES * PER_LINE * len(VARIABLES)
            # nothing advanced: only the noisy temperature changes
            assert await server.publish(None) == LINES * PER_LINE
        finally:
            await server.stop()

    asyncio.run(main())


# ------------------------------------------------------------------------------------------ security
def test_secure_endpoints_only_and_user_login_works(secure_host):
    host, run_dir = secure_host
    user, password = load_opcua_credentials(run_dir)
    assert (run_dir / "state" / "pki" / "own" / "server-P01-cert.der").exists()

    async def main():
        endpoints = await Client(host.url).connect_and_get_server_endpoints()
        offered = {(e.SecurityPolicyUri.split("#")[-1], e.SecurityMode) for e in endpoints}
        assert offered == {
            ("Basic256Sha256", ua.MessageSecurityMode.Sign),
            ("Basic256Sha256", ua.MessageSecurityMode.SignAndEncrypt),
        }
        for ep in endpoints:
            assert {t.TokenType for t in ep.UserIdentityTokens} == {ua.UserTokenType.UserName}

        client = await secure_client(host.url, run_dir, user, password)
        async with client:
            idx = await client.get_namespace_index(namespace_uri("P01"))
            value = await client.get_node(ua.NodeId("P01.Line02.M03.GoodCount", idx)).read_value()
            assert value >= 0

    asyncio.run(main())


def test_anonymous_wrong_password_unencrypted_and_untrusted_clients_are_refused(secure_host, tmp_path):
    host, run_dir = secure_host
    user, password = load_opcua_credentials(run_dir)

    async def refused(client: Client, error: type[Exception]) -> None:
        with pytest.raises(error):
            async with client:
                pass

    async def main():
        await refused(await secure_client(host.url, run_dir, None, None), ua.uaerrors.BadIdentityTokenRejected)
        await refused(await secure_client(host.url, run_dir, user, "not-the-password"), ua.uaerrors.BadUserAccessDenied)
        await refused(Client(host.url, timeout=5), ua.UaError)  # SecurityPolicy None is not offered
        # a certificate the run never provisioned is not trusted, even with the right password
        stranger = Client(host.url, timeout=5)
        stranger.application_uri = "urn:synctwin:stranger"
        cert, key = await stranger.setup_self_signed_certificate(tmp_path / "key.pem", tmp_path / "cert.der")
        await stranger.set_security(SecurityPolicyBasic256Sha256, str(cert), str(key))
        stranger.set_user(user)
        stranger.set_password(password)
        await refused(stranger, Exception)
        assert not (run_dir / "state" / "pki" / "trusted" / "cert.der").exists()

    asyncio.run(main())


def test_insecure_mode_is_refused_off_loopback(tmp_path):
    bank, _ = build_bank(scenario(), "P01")
    from kernel.clock import ScaledClock

    with pytest.raises(ValueError, match="loopback"):
        PlantOpcUaServer("P01", bank, PER_LINE, ScaledClock(0, 60), OpcUaAccess(True, tmp_path), host="0.0.0.0")


def test_credentials_are_generated_once_and_keep_other_keys(tmp_path):
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "credentials.json").write_text('{"admin": "k", "plants": {"P01": "x"}}')
    first = load_opcua_credentials(tmp_path)
    assert first == load_opcua_credentials(tmp_path)
    import json

    data = json.loads((tmp_path / "state" / "credentials.json").read_text())
    assert data["admin"] == "k" and data["plants"] == {"P01": "x"} and data["opcua"]["user"] == first[0]
    assert access_for_run(tmp_path, insecure=False).password == first[1]


def test_unknown_plant_names_the_known_ones(tmp_path):
    with pytest.raises(ValueError, match="P01"):
        PlantHost(scenario(), "P09", tmp_path, epoch=time.time(), speed=60)

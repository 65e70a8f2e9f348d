"""A vendor's plant OPC UA server, written with plain asyncua (no synctwin code), for onboarding tests.

Its address space follows OPC 40001 Machinery and OPC 30050 PackML the way a vendor would, with the
vendor's own names: ``Objects/Machines/<machine>`` with an ``Identification`` object, a
``MachineryBuildingBlocks/MachineryItemState/CurrentState``, counters in grams (``EngineeringUnits``
``g``) under ``Production``; one Machinery machine has no scrap counter; one machine is a PackML
``PackMLBaseObjectType``. Machines produce on their own every ``--tick`` seconds.

Run: ``python tests/onboarding/vendor_server.py --pki DIR [--user U --password P | --anonymous]``;
prints ``READY vendor-opcua <url>`` once it accepts connections, stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hmac
import random
import signal
import socket
from pathlib import Path

from asyncua import Server, ua
from asyncua.common.utils import ServiceError
from asyncua.crypto import cert_gen
from asyncua.crypto.permission_rules import User, UserRole
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from kernel.net import free_port

MACHINERY_NS = "http://opcfoundation.org/UA/Machinery/"
PACKML_NS = "http://opcfoundation.org/UA/PackML/"
VENDOR_NS = "urn:acme-foods:linz:packaging"
GRAMS = ua.EUInformation(NamespaceUri="http://www.opcfoundation.org/UA/units/un/cefact", UnitId=4733492,
                         DisplayName=ua.LocalizedText("g"), Description=ua.LocalizedText("gram"))
# (name, product, grams per unit, has scrap counter)
MACHINES = (("Filler_A", "CHOC-250", 250, True), ("Filler_B", "CHOC-100", 100, False))


class Users:
    def __init__(self, user: str, password: str):
        self.user, self.password = user, password

    def get_user(self, iserver, username=None, password=None, certificate=None):
        if username and password and hmac.compare_digest(username, self.user) and \
                hmac.compare_digest(str(password), self.password):
            return User(role=UserRole.User, name=username)
        return None


def trusted_only(folder: Path):
    async def validate(certificate, app_description) -> None:
        der = certificate.public_bytes(Encoding.DER)
        if any(p.read_bytes() == der for p in folder.glob("*.der")):
            return
        raise ServiceError(ua.StatusCodes.BadCertificateUntrusted)

    return validate


async def add_types(server: Server, machinery: int, packml: int) -> dict[str, ua.NodeId]:
    base = server.nodes.base_object_type
    ident = await base.add_object_type(machinery, "MachineIdentificationType")
    state = await base.add_object_type(machinery, "MachineryItemState_StateMachineType")
    pack = await base.add_object_type(packml, "PackMLBaseObjectType")
    pack_sm = await base.add_object_type(packml, "PackMLBaseStateMachineType")
    return {"ident": ident.nodeid, "state": state.nodeid, "packml": pack.nodeid, "packml_sm": pack_sm.nodeid}


async def counter(parent, idx: int, node: str, name: str):
    var = await parent.add_variable(ua.NodeId(node, idx), ua.QualifiedName(name, idx),
                                    ua.Variant(0, ua.VariantType.UInt32))
    await var.add_property(idx, "EngineeringUnits", ua.Variant(GRAMS, ua.VariantType.ExtensionObject))
    return var


async def build(server: Server, types: dict[str, ua.NodeId], idx: int) -> list[dict]:
    objects = server.nodes.objects
    machines_folder = await objects.add_folder(ua.NodeId("Machines", idx), ua.QualifiedName("Machines", idx))
    plant = []
    for n, (name, product, grams, has_scrap) in enumerate(MACHINES):
        m = await machines_folder.add_object(ua.NodeId(name, idx), ua.QualifiedName(name, idx))
        ident = await m.add_object(ua.NodeId(f"{name}.Identification", idx), ua.QualifiedName("Identification", idx),
                                   objecttype=types["ident"])
        for prop, value in (("Manufacturer", "ACME Packaging"), ("Model", "FX-200"), ("SerialNumber", f"FX-{n + 4711}"),
                            ("Location", "Hall 2 / Line A")):
            text = ua.LocalizedText(value) if prop == "Manufacturer" else value
            await ident.add_property(idx, prop, ua.Variant(text))
        blocks = await m.add_folder(ua.NodeId(f"{name}.Blocks", idx), ua.QualifiedName("MachineryBuildingBlocks", idx))
        item_state = await blocks.add_object(ua.NodeId(f"{name}.ItemState", idx),
                                             ua.QualifiedName("MachineryItemState", idx), objecttype=types["state"])
        state = await item_state.add_variable(ua.NodeId(f"{name}.ItemState.CurrentState", idx),
                                              ua.QualifiedName("CurrentState", idx), ua.LocalizedText("Executing"))
        mode = await blocks.add_object(ua.NodeId(f"{name}.OpMode", idx),
                                       ua.QualifiedName("MachineryOperationMode", idx))
        await mode.add_variable(ua.NodeId(f"{name}.OpMode.CurrentState", idx), ua.QualifiedName("CurrentState", idx),
                                ua.LocalizedText("Processing"))
        prod = await m.add_folder(ua.NodeId(f"{name}.Production", idx), ua.QualifiedName("Production", idx))
        good = await counter(prod, idx, f"{name}.Production.PartsProduced", "PartsProduced")
        scrap = await counter(prod, idx, f"{name}.Production.Rejects", "Rejects") if has_scrap else None
        cycle = await prod.add_variable(ua.NodeId(f"{name}.Production.ActualCycleTime", idx),
                                        ua.QualifiedName("ActualCycleTime", idx), 0.4)
        await prod.add_variable(ua.NodeId(f"{name}.Production.CurrentProduct", idx),
                                ua.QualifiedName("CurrentProduct", idx), product)
        mon = await m.add_folder(ua.NodeId(f"{name}.Monitoring", idx), ua.QualifiedName("Monitoring", idx))
        speed = await mon.add_variable(ua.NodeId(f"{name}.Monitoring.ActualSpeed", idx),
                                       ua.QualifiedName("ActualSpeed", idx), 150.0)
        temp = await mon.add_variable(ua.NodeId(f"{name}.Monitoring.ProcessTemp", idx),
                                      ua.QualifiedName("ProcessTemp", idx), 31.5)
        alarm = await mon.add_variable(ua.NodeId(f"{name}.Monitoring.AlarmActive", idx),
                                       ua.QualifiedName("AlarmActive", idx), False)
        plant.append({"grams": grams, "good": good, "scrap": scrap, "state": state, "speed": speed, "temp": temp,
                      "alarm": alarm, "cycle": cycle})
    # a PackML wrapper: counters under Admin, state under its base state machine
    w = await machines_folder.add_object(ua.NodeId("Wrapper_C", idx), ua.QualifiedName("Wrapper_C", idx),
                                         objecttype=types["packml"])
    sm = await w.add_object(ua.NodeId("Wrapper_C.SM", idx), ua.QualifiedName("PackMLBaseStateMachine", idx),
                            objecttype=types["packml_sm"])
    state = await sm.add_variable(ua.NodeId("Wrapper_C.SM.CurrentState", idx), ua.QualifiedName("CurrentState", idx),
                                  ua.LocalizedText("Execute"))
    admin = await w.add_object(ua.NodeId("Wrapper_C.Admin", idx), ua.QualifiedName("Admin", idx))
    good = await counter(admin, idx, "Wrapper_C.Admin.ProdProcessedCount", "ProdProcessedCount")
    scrap = await counter(admin, idx, "Wrapper_C.Admin.ProdDefectiveCount", "ProdDefectiveCount")
    status = await w.add_object(ua.NodeId("Wrapper_C.Status", idx), ua.QualifiedName("Status", idx))
    speed = await status.add_variable(ua.NodeId("Wrapper_C.Status.CurMachSpeed", idx),
                                      ua.QualifiedName("CurMachSpeed", idx), 120.0)
    await status.add_variable(ua.NodeId("Wrapper_C.Status.ProductId", idx), ua.QualifiedName("ProductId", idx),
                              "CHOC-250")
    plant.append({"grams": 250, "good": good, "scrap": scrap, "state": state, "speed": speed, "temp": None,
                  "alarm": None, "cycle": None})
    return plant


async def produce(plant: list[dict], tick: float, stop: asyncio.Event) -> None:
    """Each machine makes one unit per tick; about one in twenty is scrap (when it counts scrap)."""
    rng = random.Random(7)
    totals = [[0, 0] for _ in plant]
    while not stop.is_set():
        for m, tot in zip(plant, totals, strict=True):
            if m["scrap"] is not None and rng.random() < 0.05:
                tot[1] += m["grams"]
                await m["scrap"].write_value(ua.Variant(tot[1], ua.VariantType.UInt32))
            else:
                tot[0] += m["grams"]
                await m["good"].write_value(ua.Variant(tot[0], ua.VariantType.UInt32))
            if m["temp"] is not None:
                await m["temp"].write_value(31.5 + rng.random())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), tick)


async def main(args: argparse.Namespace) -> None:
    port = args.port or free_port()
    url = f"opc.tcp://127.0.0.1:{port}/acme/linz"
    server = Server()
    if not args.anonymous:
        server.iserver.set_user_manager(Users(args.user, args.password))
    await server.init()
    server.set_endpoint(url)
    server.set_server_name("ACME Foods Linz packaging")
    await server.set_application_uri("urn:acme-foods:linz:opcua")
    if args.anonymous:
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        server.set_identity_tokens([ua.AnonymousIdentityToken])
    else:
        pki = Path(args.pki)
        (pki / "trusted").mkdir(parents=True, exist_ok=True)
        cert, key = pki / "vendor-cert.der", pki / "vendor-key.pem"
        await cert_gen.setup_self_signed_certificate(key, cert, "urn:acme-foods:linz:opcua", socket.gethostname(),
                                                     [ExtendedKeyUsageOID.SERVER_AUTH], {"organizationName": "ACME"})
        await server.load_certificate(str(cert))
        await server.load_private_key(str(key))
        server.set_security_policy([ua.SecurityPolicyType.Basic256Sha256_Sign,
                                    ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt])
        server.set_identity_tokens([ua.UserNameIdentityToken])
        server.set_certificate_validator(trusted_only(pki / "trusted"))
    machinery = await server.register_namespace(MACHINERY_NS)
    packml = await server.register_namespace(PACKML_NS)
    idx = await server.register_namespace(VENDOR_NS)
    plant = await build(server, await add_types(server, machinery, packml), idx)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        print(f"READY vendor-opcua {url}", flush=True)
        await produce(plant, args.tick, stop)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--pki", default="vendor-pki", help="server certificate; trusts PKI/trusted/*.der clients")
    parser.add_argument("--user", default="operator")
    parser.add_argument("--password", default="")
    parser.add_argument("--anonymous", action="store_true", help="SecurityPolicy None with anonymous access only")
    parser.add_argument("--tick", type=float, default=0.2, help="seconds between production steps")
    asyncio.run(main(parser.parse_args()))

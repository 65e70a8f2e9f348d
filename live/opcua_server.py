"""One plant's OPC UA server: the machine bank's signals as typed variables, commands as methods.

Address space (namespace ``urn:synctwin:plant:<plant>``)::

    Objects/<plant>/Line01/M01/{State, GoodCount, ScrapCount, CycleTime, Speed, Temperature, Alarm}
                              /{Start(), Stop(), Reset()}

Node ids are strings (``ns=2;s=P01.Line01.M01.GoodCount``) so clients and tests can address a
machine without browsing. Every breakdown fires one ``MachineDowntimeEventType`` event on the plant
folder carrying the machine, the line and the scenario-time start and end of the downtime.

Security: by default only Basic256Sha256 (Sign, SignAndEncrypt) endpoints with a username and an
encrypted password, on a secured channel only (:mod:`live.opcua_security`); certificates live under
``RUN_DIR/state/pki/``. Anonymous access over SecurityPolicy None exists only with ``insecure=True`` on
a loopback address.
"""

from __future__ import annotations

import fcntl
import ipaddress
import json
import logging
import os
import secrets
import shutil
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from asyncua import Server, ua
from asyncua.crypto import cert_gen
from cryptography.x509.oid import ExtendedKeyUsageOID

from kernel.clock import ScaledClock
from kernel.net import free_port
from live.opcua_batch import write_values
from live.opcua_security import GuardedInternalServer, PasswordUsers, trusted_validator
from twins.machines import DOWN, STATE_NAMES, BankStep, MachineBank

log = logging.getLogger(__name__)

# (OPC UA browse name, key in MachineBank.telemetry(), variant type)
VARIABLES: tuple[tuple[str, str, ua.VariantType], ...] = (
    ("State", "state", ua.VariantType.String),
    ("GoodCount", "good", ua.VariantType.UInt64),
    ("ScrapCount", "scrap", ua.VariantType.UInt64),
    ("CycleTime", "cycle_time", ua.VariantType.Double),
    ("Speed", "speed", ua.VariantType.Double),
    ("Temperature", "temperature", ua.VariantType.Double),
    ("Alarm", "alarm", ua.VariantType.Boolean),
)
METHODS: tuple[str, ...] = ("Start", "Stop", "Reset")
DOWNTIME_EVENT = "MachineDowntimeEventType"
_PY = {
    ua.VariantType.String: str,
    ua.VariantType.UInt64: int,
    ua.VariantType.Double: float,
    ua.VariantType.Boolean: bool,
}


def namespace_uri(plant: str) -> str:
    """The namespace of ``plant``'s address space."""
    return f"urn:synctwin:plant:{plant}"


def machine_path(index: int, machines_per_line: int) -> tuple[str, str]:
    """``("Line01", "M03")`` for machine ``index`` of a plant with ``machines_per_line`` per line."""
    line, pos = divmod(index, machines_per_line)
    return f"Line{line + 1:02d}", f"M{pos + 1:02d}"


def node_id_text(plant: str, line: str, machine: str, leaf: str | None = None) -> str:
    """The string identifier of a machine object (or of one of its variables/methods)."""
    base = f"{plant}.{line}.{machine}"
    return f"{base}.{leaf}" if leaf else base


# ------------------------------------------------------------------------------------- credentials
@dataclass(frozen=True)
class OpcUaAccess:
    """How clients reach a plant server: secure (user + certificates in ``pki_dir``) or insecure."""

    insecure: bool
    pki_dir: Path
    user: str = ""
    password: str = ""


def credentials_path(run_dir: Path) -> Path:
    """``RUN_DIR/state/credentials.json``, shared by every live process of the run."""
    return Path(run_dir) / "state" / "credentials.json"


def load_opcua_credentials(run_dir: Path) -> tuple[str, str]:
    """The ``opcua`` user and password of the run, generated into credentials.json if absent.

    Other keys of the file (gateway keys, admin key) are preserved; a file lock keeps concurrent
    processes of one run from generating two different passwords.
    """
    path = credentials_path(run_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = json.loads(path.read_text()) if path.exists() and path.stat().st_size else {}
        entry = data.get("opcua")
        if not entry or not entry.get("user") or not entry.get("password"):
            entry = {"user": "edge", "password": secrets.token_urlsafe(18)}
            data["opcua"] = entry
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(data, indent=2))
            os.chmod(tmp, 0o600)
            os.replace(tmp, path)
    return entry["user"], entry["password"]


def access_for_run(run_dir: Path, insecure: bool) -> OpcUaAccess:
    """The access settings every process of the run agrees on."""
    pki = Path(run_dir) / "state" / "pki"
    if insecure:
        return OpcUaAccess(insecure=True, pki_dir=pki)
    user, password = load_opcua_credentials(run_dir)
    return OpcUaAccess(insecure=False, pki_dir=pki, user=user, password=password)


async def ensure_certificate(pki_dir: Path, name: str, app_uri: str, server: bool) -> tuple[Path, Path]:
    """Create (once) a self-signed application certificate and key: ``(cert.der, key.pem)``.

    Client certificates are also copied to ``pki_dir/trusted/``, the folder servers trust.
    """
    own = Path(pki_dir) / "own"
    own.mkdir(parents=True, exist_ok=True)
    cert, key = own / f"{name}-cert.der", own / f"{name}-key.pem"
    use = [ExtendedKeyUsageOID.SERVER_AUTH] if server else [ExtendedKeyUsageOID.CLIENT_AUTH]
    await cert_gen.setup_self_signed_certificate(
        key, cert, app_uri, socket.gethostname(), use, {"organizationName": "synctwin"}
    )
    if not server:
        trusted = Path(pki_dir) / "trusted"
        trusted.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cert, trusted / cert.name)
    return cert, key


# ------------------------------------------------------------------------------------------ server
class PlantOpcUaServer:
    """asyncua server exposing one :class:`MachineBank`. All methods run on one asyncio loop."""

    def __init__(
        self,
        plant: str,
        bank: MachineBank,
        machines_per_line: int,
        clock: ScaledClock,
        access: OpcUaAccess,
        host: str = "127.0.0.1",
        port: int = 0,
    ):
        if access.insecure and not ipaddress.ip_address(socket.gethostbyname(host)).is_loopback:
            raise ValueError(f"--insecure is allowed on a loopback address only, not {host!r}; use 127.0.0.1")
        self.plant, self.bank, self.per_line, self.clock = plant, bank, machines_per_line, clock
        self.access, self.host, self.port = access, host, port
        self.url = ""
        self._server: Server | None = None
        self._nodes: dict[str, list[ua.NodeId]] = {}
        self._last: dict[str, np.ndarray] = {}
        self._events = None
        self.writes = 0  # variable values written since start (for benchmarks)

    async def start(self) -> str:
        """Build the address space, listen, and return the endpoint URL."""
        port = self.port or free_port(self.host)
        self.url = f"opc.tcp://{self.host}:{port}/synctwin/{self.plant}"
        if self.access.insecure:
            server = Server()
        else:
            server = Server(iserver=GuardedInternalServer(PasswordUsers(self.access.user, self.access.password)))
        await server.init()
        server.set_endpoint(self.url)
        server.set_server_name(f"synctwin plant {self.plant}")
        await server.set_application_uri(f"urn:synctwin:opcua:{self.plant}")
        if self.access.insecure:
            server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
            server.set_identity_tokens([ua.AnonymousIdentityToken])
        else:
            cert, key = await ensure_certificate(
                self.access.pki_dir, f"server-{self.plant}", f"urn:synctwin:opcua:{self.plant}", server=True
            )
            await server.load_certificate(str(cert))
            await server.load_private_key(str(key))
            server.set_security_policy(
                [
                    ua.SecurityPolicyType.Basic256Sha256_Sign,
                    ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
                ]
            )
            server.set_identity_tokens([ua.UserNameIdentityToken])
            server.set_certificate_validator(trusted_validator(self.access.pki_dir))
        idx = await server.register_namespace(namespace_uri(self.plant))
        await self._build(server, idx)
        await server.start()
        self._server = server
        await self.publish(None, force=True)
        return self.url

    async def _build(self, server: Server, idx: int) -> None:
        plant_node = await server.nodes.objects.add_folder(
            ua.NodeId(self.plant, idx), ua.QualifiedName(self.plant, idx)
        )
        etype = await server.create_custom_event_type(
            idx,
            DOWNTIME_EVENT,
            ua.ObjectIds.BaseEventType,
            [
                ("Machine", ua.VariantType.String),
                ("Line", ua.VariantType.String),
                ("DownStart", ua.VariantType.Double),
                ("DownEnd", ua.VariantType.Double),
            ],
        )
        self._events = await server.get_event_generator(etype, plant_node)
        self._nodes = {name: [] for name, _, _ in VARIABLES}
        tele = self.bank.telemetry()
        lines: dict[str, object] = {}
        for i in range(self.bank.n):
            line, machine = machine_path(i, self.per_line)
            if line not in lines:
                lines[line] = await plant_node.add_folder(
                    ua.NodeId(f"{self.plant}.{line}", idx), ua.QualifiedName(line, idx)
                )
            obj_id = ua.NodeId(node_id_text(self.plant, line, machine), idx)
            obj = await lines[line].add_object(obj_id, ua.QualifiedName(machine, idx))
            for name, key, vtype in VARIABLES:
                nid = ua.NodeId(node_id_text(self.plant, line, machine, name), idx)
                await obj.add_variable(
                    nid, ua.QualifiedName(name, idx), ua.Variant(self._value(key, tele[key][i]), vtype)
                )
                self._nodes[name].append(nid)
            for action in METHODS:
                await obj.add_method(
                    ua.NodeId(node_id_text(self.plant, line, machine, action), idx),
                    ua.QualifiedName(action, idx),
                    self._method(i, action),
                    [],
                    [],
                )

    def _method(self, machine: int, action: str) -> Callable:
        async def call(parent: ua.NodeId) -> list:
            await self.command(machine, action)
            return []

        return call

    async def command(self, machine: int, action: str) -> None:
        """Apply an operator command to the twin and publish the machine's new values at once."""
        {"Start": self.bank.start, "Stop": self.bank.stop, "Reset": self.bank.reset}[action](machine)
        await self.publish(None)

    @staticmethod
    def _value(key: str, value):
        if key == "state":
            return STATE_NAMES[int(value)]
        if key in ("good", "scrap"):
            return int(value)
        if key == "alarm":
            return bool(value)
        return float(value)

    async def publish(self, step: BankStep | None, force: bool = False) -> int:
        """Write every changed signal (all with ``force``) in one pass; fire downtime events of ``step``.

        Returns the number of values written. The pass yields to the loop every few hundred writes
        so subscriptions keep being served while a large plant is written.
        """
        assert self._server is not None, "start() first"
        written = await write_values(self._server.iserver.aspace, self._changes(force), yield_every=500)
        if step is not None:
            await self._fire_downtime(step)
        self.writes += written
        return written

    def _changes(self, force: bool) -> Iterator[tuple[ua.NodeId, ua.DataValue]]:
        """``(node id, fresh DataValue)`` of every signal that changed since the last pass (all with ``force``)."""
        now = datetime.now(UTC)
        tele = self.bank.telemetry()
        for name, key, vtype in VARIABLES:
            values = tele[key]
            last = self._last.get(key)
            changed = np.arange(len(values)) if force or last is None else np.flatnonzero(values != last)
            self._last[key] = values
            nodes, py = self._nodes[name], _PY[vtype]
            texts = STATE_NAMES if key == "state" else None
            for i, value in zip(changed.tolist(), values[changed].tolist(), strict=True):
                value = texts[int(value)] if texts is not None else py(value)
                yield nodes[i], ua.DataValue(ua.Variant(value, vtype), SourceTimestamp=now, ServerTimestamp=now)

    async def _fire_downtime(self, step: BankStep) -> None:
        for m, start, end in zip(
            step.down_machine.tolist(), step.down_start.tolist(), step.down_end.tolist(), strict=True
        ):
            line, machine = machine_path(int(m), self.per_line)
            ev = self._events.event
            ev.Machine, ev.Line, ev.DownStart, ev.DownEnd = machine, line, float(start), float(end)
            ev.Severity = 500
            await self._events.trigger(message=f"{self.plant}/{line}/{machine} {STATE_NAMES[DOWN]}")

    async def stop(self) -> None:
        """Close client sessions and stop listening."""
        if self._server is not None:
            await self._server.stop()
            self._server = None

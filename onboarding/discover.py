"""``synctwin discover``: browse a plant's OPC UA server and bind its machines' variables to signals.

Machines are recognised three ways, in this order, and a machine's own sub-objects are never taken
for machines themselves:

- OPC 40001 Machinery: an object with an ``Identification`` (``MachineIdentificationType``) child;
  its state is ``MachineryItemState/CurrentState``;
- PackML (OPC 30050): an object with a ``PackMLBaseStateMachine`` (or typed ``PackMLBaseObjectType``);
  its state is that state machine's ``CurrentState``, counters live under ``Admin``;
- plain folders: an object whose own variables bind the profile's required signals by name.

Every signal a machine lacks is listed with the reason (no variable matched, or a match had a type
the edge cannot use), so the onboarding team sees what the plant does not provide.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from asyncua import Client

from onboarding.browse import OBJECT, VARIABLE, Item, browse_tree
from onboarding.opcua_access import (
    fingerprint,
    first_certificate,
    make_client,
    mode_name,
    offered_endpoints,
    policy_name,
)
from onboarding.plant_file import (
    SIGNALS,
    Binding,
    Endpoint,
    Machine,
    MasterData,
    PlantFile,
    PlantInfo,
    ServerCertificate,
    Unbound,
)
from onboarding.profile import Profile

IDENTIFICATION_NAMES = ("identification", "machineidentification")
IDENTIFICATION_TYPES = ("MachineIdentificationType", "MachineryItemIdentificationType")
PACKML_NAMES = ("packmlbasestatemachine", "basestatemachine")
NUMERIC = {"Boolean", "SByte", "Byte", "Int16", "UInt16", "Int32", "UInt32", "Int64", "UInt64", "Float", "Double",
           "Number", "Integer", "UInteger", "Duration"}
STATE_TYPES = NUMERIC | {"String", "LocalizedText", "Enumeration"}
# Signals whose variable must hold a scalar number; state and product also take text.
NUMBER_SIGNALS = ("good", "scrap", "cycle_time", "speed", "temperature")
# Where a structured machine keeps a signal: preferred over an equally named variable elsewhere.
HINTS = {("machinery", "state"): "machineryitemstate", ("packml", "state"): "basestatemachine",
         ("packml", "good"): "admin", ("packml", "scrap"): "admin", ("packml", "speed"): "status"}


@dataclass
class Found:
    """One machine found in the tree."""

    item: Item
    structure: str
    line: str
    signals: dict[str, Item] = field(default_factory=dict)
    unbound: list[Unbound] = field(default_factory=list)
    identification: Item | None = None


def _ident_child(obj: Item) -> Item | None:
    return next((c for c in obj.children if c.kind == OBJECT and (c.name.lower() in IDENTIFICATION_NAMES
                                                                 or c.type_name in IDENTIFICATION_TYPES)), None)


def _structure(obj: Item) -> str | None:
    if _ident_child(obj) is not None:
        return "machinery"
    if obj.type_name == "PackMLBaseObjectType" or any(
            c.kind == OBJECT and (c.name.lower() in PACKML_NAMES or c.type_name == "PackMLBaseStateMachineType")
            for c in obj.children):
        return "packml"
    return None


def _usable(signal: str, var: Item) -> str | None:
    """Why ``var`` cannot carry ``signal`` (None when it can)."""
    if var.value_rank not in (-1, 0) and signal != "alarm":
        return f"{var.path_text} is an array ({var.datatype}); the edge needs one scalar value"
    if signal in NUMBER_SIGNALS and var.datatype and var.datatype not in NUMERIC:
        return f"{var.path_text} is {var.datatype}; {signal} needs a number"
    if signal == "state" and var.datatype and var.datatype not in STATE_TYPES:
        return f"{var.path_text} is {var.datatype}; a state must be text, a number or an enumeration"
    return None


def _bind(found: Found, candidates: list[Item], profile: Profile) -> None:
    """Bind each signal to the best-ranked usable candidate; a variable binds at most one signal."""
    taken: set[str] = set()
    for signal in SIGNALS:
        patterns = profile.matchers(signal)
        hint = HINTS.get((found.structure, signal))
        ranked, refused = [], []
        for var in candidates:
            rank = next((i for i, p in enumerate(patterns) if p.fullmatch(var.name)), None)
            if rank is None or var.node_id.to_string() in taken:
                continue
            why = _usable(signal, var)
            if why:
                refused.append(why)
                continue
            in_hint = hint is not None and hint in var.path_text.lower()
            ranked.append((0 if in_hint else 1, rank, len(var.path), var))
        if ranked:
            var = min(ranked, key=lambda r: r[:3])[3]
            found.signals[signal] = var
            taken.add(var.node_id.to_string())
        elif signal != "product":
            reason = "; ".join(refused) if refused else (
                f"no variable under {found.item.path_text} matches {', '.join(profile.signals.get(signal, [])) or '-'}"
                " (edit the profile's patterns if the plant has it under another name)")
            found.unbound.append(Unbound(signal=signal, reason=reason))


def find_machines(root: Item, profile: Profile) -> list[Found]:
    """Every machine under ``root``, top down: the first object recognised on a path claims its subtree."""
    found: list[Found] = []

    def visit(obj: Item, parent: Item | None) -> None:
        structure = _structure(obj)
        if structure is None:
            own_vars = [c for c in obj.children if c.kind == VARIABLE]
            probe = Found(obj, "folder", "")
            _bind(probe, own_vars, profile)
            if all(s in probe.signals for s in profile.required):
                structure = "folder"
        if structure is not None:
            found.append(_machine(obj, parent, structure, profile))
            return
        for child in obj.children:
            if child.kind == OBJECT:
                visit(child, obj)

    for child in root.children:
        if child.kind == OBJECT:
            visit(child, root)
    return found


def _machine(obj: Item, parent: Item | None, structure: str, profile: Profile) -> Found:
    ident = _ident_child(obj) if structure == "machinery" else None
    skip = {id(i) for i in ident.walk()} if ident is not None else set()
    if structure == "folder":
        candidates = [c for c in obj.children if c.kind == VARIABLE]
    else:  # structured: the whole subtree (a variable's own properties, e.g. EngineeringUnits, never bind)
        skip |= {id(c) for v in obj.walk() if v.kind == VARIABLE for c in v.children}
        candidates = [i for i in obj.walk() if i.kind == VARIABLE and id(i) not in skip]
    line = parent.name if parent is not None and parent.name not in ("Objects", "Machines") else ""
    found = Found(obj, structure, line, identification=ident)
    _bind(found, candidates, profile)
    return found


async def _read_values(client: Client, items: list[Item]) -> list[object]:
    if not items:
        return []
    return await client.read_values([client.get_node(i.node_id) for i in items])


async def _unit_of(client: Client, var: Item) -> str:
    """The display name of a variable's EngineeringUnits property ("" when it has none)."""
    eu = var.child("EngineeringUnits")
    if eu is None:
        return ""
    value = (await _read_values(client, [eu]))[0]
    text = getattr(getattr(value, "DisplayName", None), "Text", "") or ""
    return str(text).strip()


async def describe(client: Client, found: Found) -> Machine:
    """The plant-file entry of ``found``: bindings with units, product, cycle time, identification."""
    signals: dict[str, Binding] = {}
    for signal, var in found.signals.items():
        signals[signal] = Binding(node=var.node_id.to_string(), path=var.path_text, datatype=var.datatype,
                                  unit=await _unit_of(client, var))
    ident: dict[str, str] = {}
    if found.identification is not None:
        props = [c for c in found.identification.children if c.kind == VARIABLE]
        for prop, value in zip(props, await _read_values(client, props), strict=True):
            text = getattr(value, "Text", value)
            if text not in (None, ""):
                ident[prop.name] = str(text)
    product = cycle = None
    if "product" in found.signals:
        product = str(getattr(v := (await _read_values(client, [found.signals["product"]]))[0], "Text", v) or "")
        product = product or None
    if "cycle_time" in found.signals:
        value = (await _read_values(client, [found.signals["cycle_time"]]))[0]
        scale = 0.001 if signals["cycle_time"].unit.lower() in ("ms", "millisecond") else 1.0
        cycle = float(value) * scale if isinstance(value, int | float) and value > 0 else None
    line = found.line or ident.get("Location", "")
    return Machine(name=found.item.name, line=line, structure=found.structure, identification=ident,
                   product=product, cycle_time=cycle, signals=signals, unbound=found.unbound)


def unique_names(machines: list[Machine]) -> list[Machine]:
    """Machines named alike on different lines (``M01`` on every line) become ``Line01/M01``."""
    names = [m.name for m in machines]
    return [m.model_copy(update={"name": f"{m.line}/{m.name}"}) if names.count(m.name) > 1 and m.line else m
            for m in machines]


def plant_unit(machines: list[Machine]) -> str:
    """The counters' unit (their EngineeringUnits, upper case); EA when the server names none."""
    units = [b.unit.upper() for m in machines for s, b in m.signals.items() if s in ("good", "scrap") and b.unit]
    return max(set(units), key=units.count) if units else "EA"


async def pin_server_certificate(endpoint: Endpoint, pki_dir: Path) -> ServerCertificate | None:
    """Save the certificate the server presents on the chosen endpoint and return its pin."""
    for ep in await offered_endpoints(endpoint.url):
        if policy_name(ep.SecurityPolicyUri) == endpoint.policy and mode_name(ep.SecurityMode) == endpoint.mode:
            der = first_certificate(ep.ServerCertificate)
            if not der:
                return None
            pki_dir.mkdir(parents=True, exist_ok=True)
            path = pki_dir / "server-cert.der"
            path.write_bytes(der)
            from cryptography import x509

            cert = x509.load_der_x509_certificate(der)
            return ServerCertificate(sha256=fingerprint(der), file=str(path), subject=cert.subject.rfc4514_string(),
                                     not_after=cert.not_valid_after_utc.isoformat())
    return None


async def discover(endpoint: Endpoint, plant_id: str, profile: Profile, pki_dir: Path) -> tuple[PlantFile, list[str]]:
    """Browse the server at ``endpoint`` and return the plant file plus notes for the user."""
    notes: list[str] = []
    pin = await pin_server_certificate(endpoint, pki_dir) if endpoint.policy != "None" else None
    if pin is not None:
        endpoint = endpoint.model_copy(update={"server_certificate": pin})
        notes.append(f"server certificate pinned: SHA-256 {pin.sha256} ({pin.subject}); confirm it with the "
                     "plant's IT before trusting it")
    client = await make_client(endpoint, pki_dir)
    async with client:
        tree = await browse_tree(client, profile.skip)
        if tree.truncated:
            notes.append("the address space was larger than the browse limit; machines beyond it were not seen")
        machines = unique_names([await describe(client, f) for f in find_machines(tree.root, profile)])
    if not machines:
        raise LookupError(f"no machine found on {endpoint.url}: no Machinery Identification, no PackML state "
                          "machine and no folder whose variables match the profile's required signals "
                          f"({', '.join(profile.required)}); edit the profile's patterns (--profile)")
    now = datetime.now(UTC).isoformat(timespec="seconds")
    plant = PlantFile(plant=PlantInfo(id=plant_id), endpoint=endpoint, unit=plant_unit(machines),
                      master_data=MasterData(items={p: "" for p in dict.fromkeys(m.product for m in machines
                                                                                  if m.product)}),
                      machines=machines, discovered_at=now)
    return plant, notes


def summary_lines(plant: PlantFile, profile: Profile) -> list[str]:
    """Human lines: each machine with its bound signals, and what could not be bound and why."""
    lines = []
    for m in plant.machines:
        where = f"{m.line}/{m.name}" if m.line else m.name
        lines.append(f"{where} ({m.structure}): " + ", ".join(f"{s}={b.node}" for s, b in m.signals.items()))
        for u in m.unbound:
            level = "MISSING (required)" if u.signal in profile.required else "not bound"
            lines.append(f"    {level} {u.signal}: {u.reason}")
    return lines


def as_endpoint(url: str, policy: str, mode: str, user: str | None, password_env: str | None,
                cert: str | None, key: str | None) -> Endpoint:
    """The endpoint section from command-line options."""
    return Endpoint(url=url, policy=policy, mode=mode, user=user, password_env=password_env, certificate=cert,
                    private_key=key)


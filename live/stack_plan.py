"""What a live run will do, decided before any process starts: the fault timeline and the command lines.

Pure: a scenario (and the run's paths, URLs and clock) in, timed actions and argv lists out; nothing is
started, stopped or written here. :mod:`live.stack` carries the plan out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from integration.broker_cluster import cluster_ports, node_name, validate_size
from kernel.routing import Routing
from live.downlink_plan import DOWNLINK, downlink_command, edge_api_args
from live.procs import python_module
from scenarios.spec import FaultSpec, Scenario

SERVICES_MODULE = "synctwin.commands.live_services"
PLANT_MODULE = "synctwin.commands.live_plant"
WORKER_MODULE = "synctwin.commands.live"


@dataclass(frozen=True)
class FaultAction:
    """One step of the fault timeline: at scenario time ``at`` do ``action`` to ``what``."""

    at: float
    action: str  # erp_mode | kill_restart | stop | restart | partition | heal | ack_loss
    what: tuple[str, ...]
    payload: dict[str, Any] = field(default_factory=dict)
    index: int = 0


def fault_timeline(scenario: Scenario) -> tuple[list[FaultAction], list[str]]:
    """The scenario's faults as timed actions, plus a note for each fault the live stack cannot do."""
    actions: list[FaultAction] = []
    notes: list[str] = []
    kinds = sorted(Routing.of(scenario).kinds())
    plants = [p.id for p in scenario.landscape.all_plants]
    for i, f in enumerate(scenario.faults):
        end = f.at + f.duration
        if f.kind in ("erp_outage", "erp_slow"):
            erps = tuple(k for k in kinds if f.erp in ("all", k)) or tuple(kinds)
            mode = {"mode": "outage"} if f.kind == "erp_outage" else {"mode": "slow", "factor": f.factor}
            actions += [FaultAction(f.at, "erp_mode", erps, mode, i),
                        FaultAction(end, "erp_mode", erps, {"mode": "normal"}, i)]
        elif f.kind == "process_kill":
            targets = kill_targets(f, plants, kinds)
            actions.append(FaultAction(f.at, "kill_restart", targets, {}, i))
        elif f.kind == "gateway_down":
            actions += [FaultAction(f.at, "stop", ("gateway",), {}, i),
                        FaultAction(end, "restart", ("gateway",), {}, i)]
        elif f.kind == "wan_outage":
            cut = tuple(plants if f.plants == "all" else f.plants)
            actions += [FaultAction(f.at, "partition", cut, {}, i), FaultAction(end, "heal", cut, {}, i)]
        elif f.kind == "broker_redelivery":  # acks lost on their way: JetStream delivers those messages again
            actions += [FaultAction(f.at, "ack_loss", ("worker",), {"share": f.rate}, i),
                        FaultAction(end, "ack_loss", ("worker",), {"share": 0.0}, i)]
        else:
            notes.append(f"faults[{i}] {f.kind}: not injected by the live stack (virtual engine only)")
    actions.sort(key=lambda a: a.at)
    return actions, notes


def kill_targets(fault: FaultSpec, plants: list[str], kinds: list[str]) -> tuple[str, ...]:
    """Service names a process_kill hits: the plants' edges, the fault's ERP(s), or the one service."""
    if fault.target == "edge":
        chosen = plants if fault.plants == "all" else fault.plants
        return tuple(f"edge-{p}" for p in chosen)
    if fault.target == "erp":
        return tuple(f"erp-{k}" for k in kinds if fault.erp in ("all", k)) or tuple(f"erp-{k}" for k in kinds)
    return (str(fault.target),)


@dataclass(frozen=True)
class Scale:
    """How many of each integration service a run starts: broker nodes (1, or a cluster of 3, 5, ... on
    ``broker_ports``: (client, cluster) ports chosen up front because every node's routes name them),
    gateway uvicorn processes and worker processes (each consuming whole plants, see
    :func:`integration.workers.config.partition_subjects`)."""

    brokers: int = 1
    gateways: int = 1
    workers: int = 1
    broker_ports: tuple[tuple[int, int], ...] = ()

    @classmethod
    def plan(cls, brokers: int, gateways: int, workers: int, plants: int) -> Scale:
        """Validated counts (ValueError naming the option and the fix), with the cluster's ports picked."""
        validate_size(brokers)
        if not 1 <= gateways <= 8:
            raise ValueError(f"--gateways: {gateways}; use 1 to 8 uvicorn processes")
        if not 1 <= workers <= plants:
            raise ValueError(f"--workers: {workers}; a worker process consumes whole plants, so use 1 to "
                             f"{plants} (the scenario's plants)")
        return cls(brokers, gateways, workers, tuple(cluster_ports(brokers)) if brokers > 1 else ())

    @property
    def broker_names(self) -> list[str]:
        """``broker``, or ``broker-1`` ... ``broker-N`` for a cluster."""
        return ["broker"] if self.brokers == 1 else [node_name(i + 1) for i in range(self.brokers)]

    @property
    def worker_names(self) -> list[str]:
        """``worker``, or ``worker-1`` ... ``worker-N``."""
        return ["worker"] if self.workers == 1 else [f"worker-{i + 1}" for i in range(self.workers)]

    def broker_url(self, urls: dict[str, str]) -> str:
        """What clients get as ``--nats``: the broker's URL, or every node's URL joined by commas."""
        return ",".join(urls[n] for n in self.broker_names)

    def expand(self, names: tuple[str, ...] | list[str]) -> list[str]:
        """Role names as service names: ``worker`` is every worker process, ``broker`` every node."""
        roles = {"broker": self.broker_names, "worker": self.worker_names}
        return [n for name in names for n in roles.get(name, [name])]


@dataclass(frozen=True)
class ServiceCommands:
    """The command line of every service of one run, from its resolved scenario file, run folder, clock,
    ERP kinds and plant API keys. Service names: ``broker`` (``broker-<i>`` in a cluster), ``erp-<kind>``,
    ``gateway``, ``worker`` (``worker-<i>`` when several), ``opcua-<plant>``, ``edge-<plant>``, ``downlink``."""

    scenario_path: Path
    run_dir: Path
    credentials_path: Path
    erp_kinds: tuple[str, ...]
    api_keys: dict[str, str]  # plant -> its gateway API key
    epoch: float
    speed: float
    insecure: bool = False  # OPC UA without certificates and passwords
    scale: Scale = Scale()

    def command(self, name: str, urls: dict[str, str], port: int = 0) -> list[str]:
        """Command line of service ``name``; ``urls`` holds the URLs of the services it talks to (by name,
        ``wan-<plant>`` for a plant's link to the gateway); ``port`` pins the port (0: any free one)."""
        scen, run_dir, state = str(self.scenario_path), str(self.run_dir), self.run_dir / "state"
        clock = ["--epoch", repr(self.epoch), "--speed", repr(self.speed)]
        if name == "broker":
            return python_module(SERVICES_MODULE, "broker", "--data-dir", str(state / "nats"), "--port", str(port))
        if name in self.scale.broker_names:  # a cluster node: its ports are planned, the same on a restart
            i = self.scale.broker_names.index(name)
            client, cluster = self.scale.broker_ports[i]
            routes = ",".join(str(c) for _, c in self.scale.broker_ports)
            return python_module(SERVICES_MODULE, "broker", "--data-dir", str(state / "nats" / name), "--port",
                                 str(client), "--node", name, "--cluster-port", str(cluster), "--routes", routes)
        if name.startswith("erp-"):
            kind = name.removeprefix("erp-")
            return python_module(SERVICES_MODULE, "erp", "--kind", kind, "--scenario", scen, "--db",
                                 str(state / f"{name}.sqlite"), "--port", str(port), *clock)
        if name == "gateway":
            return python_module(SERVICES_MODULE, "gateway", "--nats", urls["broker"], "--credentials",
                                 str(self.credentials_path), "--port", str(port), "--workers",
                                 str(self.scale.gateways), *clock)
        if name in self.scale.worker_names:
            erps = [a for k in self.erp_kinds for a in ("--erp", f"{k}={urls[f'erp-{k}']}")]
            part, n = self.scale.worker_names.index(name) + 1, self.scale.workers
            parts = ["--partition", str(part), "--partitions", str(n)] if n > 1 else []
            return python_module(WORKER_MODULE, "worker", "--nats", urls["broker"], "--scenario", scen,
                                 *erps, "--run-dir", run_dir, *clock, *parts)
        insecure = ["--insecure"] if self.insecure else []
        if name.startswith("opcua-"):
            plant = name.removeprefix("opcua-")
            return python_module(PLANT_MODULE, "opcua", "--scenario", scen, "--plant", plant, "--port",
                                 str(port), "--run-dir", run_dir, *clock, *insecure)
        if name.startswith("edge-"):
            plant = name.removeprefix("edge-")
            return python_module(PLANT_MODULE, "edge", "--scenario", scen, "--plant", plant, "--opcua",
                                 urls[f"opcua-{plant}"], "--gateway", urls[f"wan-{plant}"], "--api-key",
                                 self.api_keys[plant], "--run-dir", run_dir, *clock, *insecure,
                                 *edge_api_args(plant, urls))
        if name == DOWNLINK:
            plants = sorted(self.api_keys)
            return downlink_command(scen, run_dir, urls["broker"], urls, plants, clock, self.erp_kinds)
        raise ValueError(f"unknown service {name!r}")

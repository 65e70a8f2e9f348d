"""What a live run will do, decided before any process starts: the fault timeline and the command lines.

Pure: a scenario (and the run's paths, URLs and clock) in, timed actions and argv lists out; nothing is
started, stopped or written here. :mod:`live.stack` carries the plan out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kernel.routing import Routing
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
class ServiceCommands:
    """The command line of every service of one run, from its resolved scenario file, run folder, clock,
    ERP kinds and plant API keys. Service names: ``broker``, ``erp-<kind>``, ``gateway``, ``worker``,
    ``opcua-<plant>``, ``edge-<plant>``."""

    scenario_path: Path
    run_dir: Path
    credentials_path: Path
    erp_kinds: tuple[str, ...]
    api_keys: dict[str, str]  # plant -> its gateway API key
    epoch: float
    speed: float
    insecure: bool = False  # OPC UA without certificates and passwords

    def command(self, name: str, urls: dict[str, str], port: int = 0) -> list[str]:
        """Command line of service ``name``; ``urls`` holds the URLs of the services it talks to (by name,
        ``wan-<plant>`` for a plant's link to the gateway); ``port`` pins the port (0: any free one)."""
        scen, run_dir, state = str(self.scenario_path), str(self.run_dir), self.run_dir / "state"
        clock = ["--epoch", repr(self.epoch), "--speed", repr(self.speed)]
        if name == "broker":
            return python_module(SERVICES_MODULE, "broker", "--data-dir", str(state / "nats"), "--port", str(port))
        if name.startswith("erp-"):
            kind = name.removeprefix("erp-")
            return python_module(SERVICES_MODULE, "erp", "--kind", kind, "--scenario", scen, "--db",
                                 str(state / f"{name}.sqlite"), "--port", str(port), *clock)
        if name == "gateway":
            return python_module(SERVICES_MODULE, "gateway", "--nats", urls["broker"], "--credentials",
                                 str(self.credentials_path), "--port", str(port), *clock)
        if name == "worker":
            erps = [a for k in self.erp_kinds for a in ("--erp", f"{k}={urls[f'erp-{k}']}")]
            return python_module(WORKER_MODULE, "worker", "--nats", urls["broker"], "--scenario", scen,
                                 *erps, "--run-dir", run_dir, *clock)
        insecure = ["--insecure"] if self.insecure else []
        if name.startswith("opcua-"):
            plant = name.removeprefix("opcua-")
            return python_module(PLANT_MODULE, "opcua", "--scenario", scen, "--plant", plant, "--port",
                                 str(port), "--run-dir", run_dir, *clock, *insecure)
        if name.startswith("edge-"):
            plant = name.removeprefix("edge-")
            return python_module(PLANT_MODULE, "edge", "--scenario", scen, "--plant", plant, "--opcua",
                                 urls[f"opcua-{plant}"], "--gateway", urls[f"wan-{plant}"], "--api-key",
                                 self.api_keys[plant], "--run-dir", run_dir, *clock, *insecure)
        raise ValueError(f"unknown service {name!r}")

"""``synctwin up``: the whole live stack for one scenario, as real processes, and its run folder.

Order of events: write the resolved scenario and credentials into ``RUN_DIR``; start the broker and
the ERP twin(s), then gateway and worker, then per plant its OPC UA server (a ``LivePlantActor`` on
an embedded Ray, or a ``synctwin opcua`` process) and edge (serving the plant's endpoint for the
downlink), then the ``downlink`` process (order releases, QMS, master data; :mod:`live.downlink_plan`)
(each tier waits for the ``READY`` lines of the previous one); run until the scenario duration has
passed on the scaled clock while applying the scenario's faults (a ``wan_outage`` cuts both directions
of the plant's link); stop the plants and drain (edge outboxes sent, the workers' and the downlink's
consumers empty) within a deadline; stop every process; build the run folder
(:mod:`live.collect`) and evaluate it (``reports.finalize.finalize_run``).

Whatever happens -- Ctrl-C, a child dying, a failed start -- the ``finally`` block stops every
process the stack started (process groups, SIGTERM then SIGKILL with a deadline) and shuts Ray
down. ``RUN_DIR/state/processes.json`` lists every pid the run started.

Scenario second 0 comes ``StackOptions.warmup`` wall seconds (``--warmup``, 20 s) after the launch:
every process gets that epoch, start-up happens before the scenario and the plants idle until 0. A
start-up that outlasts the warm-up is logged, and production then begins after 0.

What the run will do (fault timeline, command lines) is planned in :mod:`live.stack_plan`; the plants'
OPC UA servers on Ray are :class:`live.ray_plants.RayPlants`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import signal
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from integration.gateway.settings import generate_credentials
from integration.worker_faults import write_ack_loss
from kernel.clock import ScaledClock
from kernel.files import write_text_atomic
from kernel.routing import Routing
from kernel.run_record import RunRecord, burst_windows
from live.admin_client import admin_client, post_control
from live.backlog import consumer_backlog
from live.collect import collect_run, edges_lagging, live_run_record, pending_at_edges
from live.downlink_plan import DOWNLINK, add_down_relays, downlink_backlog, plant_endpoints, wan_relays
from live.faultproxy import Relays
from live.procs import ServiceSet
from live.production_end import clear_production_end, write_production_end
from live.ray_plants import RayPlants
from live.stack_links import chosen_links, client_urls
from live.stack_plan import FaultAction, Scale, ServiceCommands, fault_timeline
from scenarios.loader import dump_scenario
from scenarios.spec import Scenario
from scenarios.units import format_duration


class StackError(RuntimeError):
    """The live stack could not run (a service failed to start or died)."""


@dataclass
class StackOptions:
    """How ``synctwin up`` runs the stack (the scenario says what runs)."""

    speed: float = 60.0
    duration: float | None = None  # scenario seconds; default the scenario's run.duration
    insecure: bool = False  # True: OPC UA without certificates/passwords, on loopback only
    drain_timeout: float = 60.0  # wall seconds
    ready_timeout: float = 60.0
    stop_timeout: float = 10.0
    progress: bool = True
    finalize: bool = True
    plant_host: str = "ray"  # "ray": LivePlantActor per plant; "process": `synctwin opcua` per plant
    # Wall seconds from launch to scenario time 0: start-up happens before the scenario, not inside it.
    warmup: float = 20.0
    brokers: int | None = None  # JetStream nodes; None: the scenario's landscape.integration.brokers
    gateways: int = 1  # uvicorn processes of the gateway
    workers: int = 1  # worker processes, each consuming whole plants
    # Fault-proxy links besides the plants' WAN links: names of live.stack_links, or "all" (each is a relay).
    links: tuple[str, ...] = ()


class LiveStack:
    """One live run. ``run()`` returns the run folder; every started process is gone afterwards."""

    def __init__(self, scenario: Scenario, run_dir: Path, options: StackOptions | None = None,
                 log: Callable[[str], None] = print):
        self.scenario = scenario
        self.opts = options or StackOptions()
        self.duration = float(self.opts.duration or scenario.run.duration)
        self.run_dir = Path(run_dir)
        self.state = self.run_dir / "state"
        self.services = ServiceSet(self.run_dir / "logs")
        self.plants = [p.id for p in scenario.landscape.all_plants]
        self.erp_kinds = sorted(Routing.of(scenario).kinds())
        try:
            self.scale = Scale.plan(self.opts.brokers or scenario.landscape.integration.brokers, self.opts.gateways,
                                    self.opts.workers, len(self.plants))
        except ValueError as exc:
            raise StackError(str(exc)) from None
        self._stopped: set[str] = set()  # services down on purpose (fault window, drain)
        self.log = log
        self.urls: dict[str, str] = {}
        self.events: list[dict[str, Any]] = []  # what the stack did, for run.json
        self.clock: ScaledClock | None = None
        self.all_pids: list[int] = []
        self.ray_plants: RayPlants | None = None
        self.relays: Relays | None = None  # each plant's WAN link: edge → relay → gateway (wan_outage cuts it)
        self.links = chosen_links(self.opts.links, self.plants, self.erp_kinds)  # the other proxied hops
        self.link_urls: dict[str, str] = {}  # link name -> its proxy's URL (what the link's client dials)
        self.verdict = None  # reports.finalize.RunVerdict once evaluated
        self.interrupted_at: float | None = None  # scenario time of a Ctrl-C during the run
        self._admin = admin_client()  # the ERP twins' fault modes (live/admin_client.py)

    # ----------------------------------------------------------------------------------- the run
    def run(self) -> Path:
        """Start, run, drain, stop, collect, evaluate. Raises StackError after cleaning up."""
        self._prepare()
        started = time.time()
        try:
            self._start_all()
            try:
                self._run_for_duration()
            except KeyboardInterrupt:
                self._interrupted()
            try:
                drained = self._drain()
            except KeyboardInterrupt:  # a second Ctrl-C: stop waiting, report the rest as in flight
                drained = False
                self.log("  drain cut short; what is left is reported as in flight")
        finally:
            with _no_interrupts():  # a second Ctrl-C must not cut the cleanup short
                self.services.stop_all(self.opts.stop_timeout)
                if self.relays is not None:
                    self.relays.close()
                if self.ray_plants is not None:
                    self.ray_plants.shutdown()
                self._admin.close()
            self.all_pids = self.services.all_pids() + (self.ray_plants.pids if self.ray_plants else [])
            self._write_pids()
        meta = self._meta(started, drained)
        collect_run(self.run_dir, self.scenario, meta)
        if self.opts.finalize:
            from reports.finalize import finalize_run

            self.verdict = finalize_run(self.run_dir)
        return self.run_dir

    def _prepare(self) -> None:
        self.state.mkdir(parents=True, exist_ok=True)
        write_ack_loss(self.run_dir, 0.0)  # no injected fault left over from an earlier, killed attempt
        clear_production_end(self.run_dir)
        resolved = self.scenario.model_copy(update={"run": self.scenario.run.model_copy(
            update={"duration": self.duration, "speed": self.opts.speed, "mode": "live"})})
        self.scenario_path = self.run_dir / "scenario.yaml"
        self.scenario_path.write_text(dump_scenario(resolved))
        creds = generate_credentials(self.plants)
        creds["opcua"] = {"user": "synctwin", "password": secrets.token_urlsafe(18)}
        self.credentials_path = self.state / "credentials.json"
        self.credentials_path.write_text(json.dumps(creds, indent=2))
        self.credentials_path.chmod(0o600)
        self.credentials = creds

    # ------------------------------------------------------------------------------- processes
    def _command(self, name: str, port: int = 0) -> list[str]:
        """Command line of service ``name`` (:class:`~live.stack_plan.ServiceCommands`); ``port`` pins the
        port on a restart."""
        assert self.clock is not None
        plan = ServiceCommands(self.scenario_path, self.run_dir, self.credentials_path, tuple(self.erp_kinds),
                               self.credentials["plants"], self.clock.epoch, self.clock.speed, self.opts.insecure,
                               self.scale)
        return plan.command(name, client_urls(self.urls, self.link_urls, self.links, name), port)

    def _add_links(self, clients: list[str]) -> None:
        """Proxy the chosen links whose client is about to start (their service is up by now)."""
        assert self.relays is not None
        for link in self.links:
            if link.name in self.link_urls or not any(c == link.client or c.startswith(f"{link.client}-")
                                                      for c in clients):
                continue
            if "," in self.urls[link.service]:  # a broker cluster: clients take every node's URL
                self.log(f"  link {link.name}: not proxied ({link.service} is a cluster)")
                continue
            self.link_urls[link.name] = self.relays.add(link.name, self.urls[link.service])
            self.log(f"  link {link.name:<14} {self.link_urls[link.name]} -> {link.service}")

    def _start_tier(self, names: list[str]) -> None:
        self._add_links(names)
        specs = {n: self._command(n) for n in names}
        try:
            started = self.services.start_many(specs, self.opts.ready_timeout)
        finally:
            self._write_pids()
        for name, service in started.items():
            self.urls[name] = service.url
            self.log(f"  {name:<14} {service.url}  (pid {service.pid})")

    def _write_pids(self) -> None:
        """``state/processes.json``: every pid the run started so far, for checks and forensics."""
        pids = {s.name: s.pids for s in self.services}
        if self.ray_plants is not None:
            pids["ray"] = self.ray_plants.pids
        write_text_atomic(self.state / "processes.json", json.dumps(pids, indent=1))  # polled while written

    def _start_all(self) -> None:
        # Every process gets this epoch at launch; the plants idle until it, so faults and SLA windows
        # count from the start of production rather than from the first process launch.
        self.clock = ScaledClock(time.time() + self.opts.warmup, self.opts.speed)
        self.log(f"starting the live stack in {self.run_dir} (speed {self.opts.speed:g}x; scenario time 0 in "
                 f"{self.opts.warmup:g} s)")
        self.relays = Relays()
        self._start_tier([*self.scale.broker_names, *(f"erp-{k}" for k in self.erp_kinds)])
        self.urls["broker"] = self.scale.broker_url(self.urls)  # a cluster: every node's URL
        self._start_tier(["gateway", *self.scale.worker_names])
        if self.opts.plant_host == "ray":
            self.ray_plants = RayPlants(self.scenario, self.run_dir, self.clock, self.opts.insecure)
            try:
                urls = self.ray_plants.start(self.plants)
            finally:
                self._write_pids()
            for plant, url in urls.items():
                self.urls[f"opcua-{plant}"] = url
                self.log(f"  opcua-{plant:<8} {url}  (Ray actor)")
        else:
            self._start_tier([f"opcua-{p}" for p in self.plants])
        self.urls.update(plant_endpoints(self.plants))  # each edge serves its plant's endpoint (downlink)
        for plant in self.plants:
            self.urls[f"wan-{plant}"] = self.relays.add(plant, self.urls["gateway"])
        self._start_tier([f"edge-{p}" for p in self.plants])
        self.urls.update(add_down_relays(self.relays, self.urls, self.plants))
        self._start_tier([DOWNLINK])
        started_at = self.clock.now()
        self.events.append({"t": started_at, "event": "all_started"})
        if started_at > 0:
            self.log(f"  note: start-up outlasted the {self.opts.warmup:g} s warm-up; production began at "
                     f"{format_duration(started_at)} scenario time (raise --warmup to start it at 0)")
        else:
            self.log(f"  all up; scenario time 0 in {self.clock.wall_delay(-started_at):.1f} s")

    def _restart(self, name: str) -> None:
        """Start ``name`` again on its former port (dependants keep their URLs)."""
        service = self.services[name]
        port = urlsplit(self.urls.get(name, "")).port or 0  # opc.tcp URLs have a path after the port
        try:
            url = service.start(self._command(name, port))
        finally:
            self._write_pids()
        self.urls[name] = url or self.urls.get(name, "")

    # ---------------------------------------------------------------------------------- running
    def _run_for_duration(self) -> None:
        assert self.clock is not None
        actions, notes = fault_timeline(self.scenario)
        for note in notes:
            self.log(f"  note: {note}")
            self.events.append({"t": 0.0, "event": "fault_skipped", "detail": note})
        for burst in burst_windows(self.scenario, self.duration):  # the edges post these (live/edge_bursts.py)
            plants = "every plant" if burst["plants"] == "all" else ", ".join(burst["plants"])
            self.log(f"  burst: {burst['rate']:g}/s extra {burst['flow']} at {plants} from "
                     f"{format_duration(burst['start'])} for {format_duration(burst['end'] - burst['start'])}")
        pending = list(actions)
        bar, task = _scenario_progress(self.duration, self.opts.progress)
        with bar:
            while (now := self.clock.now()) < self.duration:
                while pending and pending[0].at <= now:
                    self._apply(pending.pop(0))
                dead = [s.name for s in self.services.dead() if s.name not in self._stopped]
                if dead:
                    tails = "\n".join(f"--- {n}:\n{self.services[n].tail()}" for n in dead)
                    raise StackError(f"service(s) died: {', '.join(dead)}\n{tails}")
                clock = f"{format_duration(max(0.0, now))} / {format_duration(self.duration)}, " \
                        f"edge backlog {self._pending_at_edges()}"
                bar.update(task, completed=min(max(0.0, now), self.duration), clock=clock)
                next_at = min([a.at for a in pending] + [self.duration])
                time.sleep(min(0.2, max(0.005, self.clock.wall_delay(next_at - self.clock.now()))))

    def _interrupted(self) -> None:
        """Ctrl-C while producing: the run ends here, and what was produced is drained and reported."""
        assert self.clock is not None
        now = self.clock.now()
        if now <= 0:  # still warming up: nothing was produced, so there is nothing to report
            raise KeyboardInterrupt
        self.interrupted_at = now
        self.duration = min(self.duration, now)
        self.events.append({"t": now, "event": "interrupted"})
        self.log(f"  interrupted at {format_duration(now)} scenario time: draining what was produced "
                 "(Ctrl-C again to stop waiting)")

    def _apply(self, action: FaultAction) -> None:
        assert self.clock is not None
        what = ", ".join(action.what)
        self.log(f"  fault at {self.clock.now():.0f}s: {action.action} {what} {action.payload}")
        self.events.append({"t": self.clock.now(), "event": action.action, "what": list(action.what),
                            "planned": action.at, **action.payload})
        for name in self.scale.expand(action.what):  # a cluster's nodes are killed one after the other
            if action.action == "erp_mode":
                self._erp_mode(name, action.payload)
            elif action.action == "kill_restart":
                self.services[name].kill()
                self._restart(name)
            elif action.action == "stop":
                self._stopped.add(name)
                self.services[name].stop(self.opts.stop_timeout)
            elif action.action == "restart":
                self._restart(name)
                self._stopped.discard(name)
            elif action.action == "ack_loss":
                write_ack_loss(self.run_dir, action.payload["share"])
            elif action.action in ("partition", "heal"):
                assert self.relays is not None, "relays start with the edges"
                for relay in wan_relays(name, self.relays):  # the plant's link carries both directions
                    (self.relays.cut if action.action == "partition" else self.relays.heal)(relay)

    def _erp_mode(self, kind: str, mode: dict[str, Any]) -> None:
        """Switch an ERP twin's mode; a refusal is logged, not fatal (the run goes on without it)."""
        try:
            post_control(self._admin, f"{self.urls[f'erp-{kind}']}/admin/mode", mode).raise_for_status()
        except httpx.HTTPError as exc:
            self.log(f"  warning: could not set erp-{kind} to {mode}: {exc}")
            self.events.append({"t": self.clock.now() if self.clock else 0.0, "event": "fault_failed",
                                "what": [f"erp-{kind}"], "detail": str(exc)})

    def _pending_at_edges(self) -> int:
        return pending_at_edges(self.state)

    # --------------------------------------------------------------------------------- draining
    def _drain(self) -> bool:
        """Stop producing, then wait until edges sent everything and the workers' backlog is empty."""
        assert self.clock is not None
        # Production ends at the run's end (its duration, or the interruption): the edges draw no arrivals and
        # the WMS ships nothing after it, so nothing is made while the drain waits, nor after it found all done.
        write_production_end(self.run_dir, self.duration)
        for name in list(self._stopped):  # a window still open at the end is closed for the drain
            self._restart(name)
        self._stopped.clear()
        if self.relays is not None:
            self.relays.heal_all()
        write_ack_loss(self.run_dir, 0.0)
        for kind in self.erp_kinds:
            self._erp_mode(kind, {"mode": "normal"})
        self._stopped.update(f"opcua-{p}" for p in self.plants)
        if self.ray_plants is not None:
            self.ray_plants.stop_plants()
        else:
            for plant in self.plants:
                self.services[f"opcua-{plant}"].stop(self.opts.stop_timeout)
        deadline = time.monotonic() + self.opts.drain_timeout
        while time.monotonic() < deadline:
            # an edge whose outbox was full holds events back: it must have stored all it made, and sent it
            if not edges_lagging(self.state, self.duration) and self._pending_at_edges() == 0 \
                    and asyncio.run(consumer_backlog(self.urls["broker"])) == 0 \
                    and asyncio.run(downlink_backlog(self.urls["broker"], self.plants)) == 0:
                self.events.append({"t": self.clock.now(), "event": "drained"})
                self.log(f"  drained at {self.clock.now():.0f}s scenario time")
                return True
            time.sleep(0.25)
        self.log("  drain deadline passed; what is left is reported as in flight")
        return False

    def _meta(self, started: float, drained: bool) -> RunRecord:
        assert self.clock is not None
        return live_run_record(
            self.scenario, run_id=self.run_dir.name or uuid.uuid4().hex[:8], duration=self.duration,
            wall_seconds=time.time() - started, speed=self.opts.speed, epoch=self.clock.epoch, drained=drained,
            services={s.name: {"pids": s.pids, "url": self.urls.get(s.name, "")} for s in self.services},
            plant_host=self.opts.plant_host, interrupted_at=self.interrupted_at, warmup=self.opts.warmup,
            ray_pids=self.ray_plants.pids if self.ray_plants else [], events=self.events)


@contextlib.contextmanager
def _no_interrupts():
    """Ignore SIGINT inside the block (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _scenario_progress(duration: float, enabled: bool) -> tuple[Progress, TaskID]:
    """Rich progress over scenario time; a disabled one prints nothing."""
    bar = Progress(TextColumn("[bold]live[/] {task.description}"), BarColumn(), TextColumn("{task.fields[clock]}"),
                   TimeRemainingColumn(), disable=not enabled)
    return bar, bar.add_task("scenario", total=duration, clock="")

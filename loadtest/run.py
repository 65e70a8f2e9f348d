"""One ``synctwin load`` run: the chain (embedded, or a team's own), Locust driving it, the run folder.

Embedded: the broker, the scenario's ERP twin(s), the gateway (no rate limit: the load decides) and
the worker start as processes the way ``synctwin up`` starts them (no plants: Locust is the plants).
Then :mod:`loadtest.driver` runs the plan through Locust's library API while this process samples
the chain once a second (:mod:`loadtest.chain`); with ``find_capacity`` each step of the ramp is
judged as it ends (:mod:`loadtest.verdict`) and the load stops at the first that breaks. Afterwards
the backlog drains, every process stops, the run folder is collected like a live run's, and the
Locust statistics (CSV from Locust, Parquet from here) and the chain samples go to ``RUN_DIR/load/``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import psutil
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from integration.gateway.settings import generate_credentials
from kernel.clock import ScaledClock
from kernel.routing import Routing
from live.procs import Service, ServiceSet, python_module
from loadtest.chain import ChainSampler, CpuMeter, DeliveryTail
from loadtest.plan import Stage, pace, plan_duration, rate_at, stage_bounds
from loadtest.users import LoadConfig
from loadtest.verdict import knee, settled, stage_figures
from scenarios.loader import dump_scenario
from scenarios.spec import Scenario

SERVICES_MODULE = "synctwin.commands.live_services"
WORKER_MODULE = "synctwin.commands.live"


@dataclass
class LoadOptions:
    plan: list[Stage]
    speed: float
    batch: int = 200
    users: int | None = None  # users at the plan's peak; default: about 4 requests/s per user
    processes: int = 1
    find_capacity: bool = False
    sla_p99: float = 1.0  # wall seconds, end to end
    max_error_share: float = 0.01
    gateway: str | None = None  # a team's own gateway; None starts the embedded chain
    api_keys: list[str] = field(default_factory=list)
    nats: str | None = None  # external: the broker, for the backlog
    worker_run_dir: Path | None = None  # external: the worker's run folder, for end-to-end latency
    epoch: float | None = None  # external: the chain's scenario second 0
    lanes: int = 2
    drain_timeout: float = 60.0
    progress: bool = True


class LoadRun:
    """Runs the load, writes ``RUN_DIR``; ``run()`` returns the summary written to ``load/load.json``."""

    def __init__(self, scenario: Scenario, run_dir: Path, opts: LoadOptions, log: Callable[[str], None] = print):
        self.scenario, self.run_dir, self.opts, self.log = scenario, Path(run_dir), opts, log
        self.state, self.load_dir = self.run_dir / "state", self.run_dir / "load"
        self.services = ServiceSet(self.run_dir / "logs")
        self.urls: dict[str, str] = {}
        self.plants = [p.id for p in scenario.landscape.all_plants]
        self.erp_kinds = sorted(Routing.of(scenario).kinds())
        self.clock: ScaledClock | None = None
        self.embedded = opts.gateway is None
        self.verdict = None  # reports.finalize.RunVerdict (embedded chain)
        self.sampler: ChainSampler | None = None

    # ------------------------------------------------------------------------------ the chain
    def _start_chain(self) -> None:
        assert self.clock is not None
        clock = ["--epoch", repr(self.clock.epoch), "--speed", repr(self.clock.speed)]
        scen = str(self.run_dir / "scenario.yaml")
        creds = self.state / "credentials.json"
        first = {"broker": python_module(SERVICES_MODULE, "broker", "--data-dir", str(self.state / "nats"))}
        for kind in self.erp_kinds:
            first[f"erp-{kind}"] = python_module(SERVICES_MODULE, "erp", "--kind", kind, "--scenario", scen, "--db",
                                                 str(self.state / f"erp-{kind}.sqlite"), *clock)
        for name, service in self.services.start_many(first).items():
            self.urls[name] = service.url
        nats = self.urls["broker"]
        erps = [a for k in self.erp_kinds for a in ("--erp", f"{k}={self.urls[f'erp-{k}']}")]
        second = {
            "gateway": python_module(SERVICES_MODULE, "gateway", "--nats", nats, "--credentials", str(creds),
                                     "--rate-limit", "10000000/s", *clock),
            "worker": python_module(WORKER_MODULE, "worker", "--nats", nats, "--scenario", scen, *erps, "--run-dir",
                                    str(self.run_dir), "--lanes", str(self.opts.lanes), *clock),
        }
        for name, service in self.services.start_many(second).items():
            self.urls[name] = service.url
        for name, url in self.urls.items():
            self.log(f"  {name:<12} {url}  (pid {self.services[name].pid})")

    def _prepare(self) -> list[str]:
        self.state.mkdir(parents=True, exist_ok=True)
        self.load_dir.mkdir(parents=True, exist_ok=True)
        duration = plan_duration(self.opts.plan) * self.opts.speed
        resolved = self.scenario.model_copy(update={"run": self.scenario.run.model_copy(
            update={"duration": duration, "speed": self.opts.speed, "mode": "live"})})
        (self.run_dir / "scenario.yaml").write_text(dump_scenario(resolved))
        if not self.embedded:
            return list(self.opts.api_keys)
        creds = generate_credentials(self.plants)
        path = self.state / "credentials.json"
        path.write_text(json.dumps(creds, indent=2))
        path.chmod(0o600)
        return list(creds["plants"].values())

    # ------------------------------------------------------------------------------- the load
    def _config(self, keys: list[str]) -> LoadConfig:
        assert self.clock is not None
        batch, rps = pace([s.rate for s in self.opts.plan], self.opts.batch, self.opts.users)
        plant = self.scenario.landscape.all_plants[0]
        return LoadConfig(host=self.opts.gateway or self.urls["gateway"], keys=keys, batch=batch, user_rps=rps,
                          epoch=self.clock.epoch, speed=self.clock.speed, plan=self.opts.plan,
                          out_dir=str(self.load_dir), processes=self.opts.processes, item=plant.products[0],
                          unit=plant.unit)

    def run(self) -> dict[str, Any]:
        """Start, load, drain, stop, collect; the summary also lands in ``load/load.json``."""
        keys = self._prepare()
        self.clock = ScaledClock(self.opts.epoch if self.opts.epoch is not None else time.time(), self.opts.speed)
        started = time.time()
        drained = None
        try:
            if self.embedded:
                self.log(f"starting the chain in {self.run_dir} (speed {self.opts.speed:g}x)")
                self._start_chain()
            cfg = self._config(keys)
            cfg.write(self.load_dir / "config.json")
            self.log(f"load: {len(self.opts.plan)} stage(s) over {plan_duration(self.opts.plan):.0f} s, peak "
                     f"{max(s.rate for s in self.opts.plan):,.0f} events/s in batches of {cfg.batch} "
                     f"({cfg.per_user_rate:,.0f} events/s per user, {self.opts.processes} Locust process(es))")
            summary = self._drive(cfg)
            if self.embedded:
                drained = self._drain()
            self._close_samples(summary, cfg)
        finally:
            self.services.stop_all()
        summary.update(drained=drained, wall_seconds=round(time.time() - started, 1))
        if self.embedded:
            self._collect(started, bool(drained))
        (self.load_dir / "load.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
        if self.embedded:
            from reports.finalize import finalize_run

            self.verdict = finalize_run(self.run_dir)
        else:
            from reports.load import write_load_report

            write_load_report(self.run_dir)
        return summary

    def _sampler(self, t0: float, driver: Service) -> ChainSampler:
        assert self.clock is not None
        nats = self.urls.get("broker") or self.opts.nats
        worker_dir = self.run_dir if self.embedded else self.opts.worker_run_dir
        tail = DeliveryTail(worker_dir / "state" / "deliveries.sqlite", self.clock.speed, self.clock.epoch) \
            if worker_dir is not None else None
        pids = {s.name: s.pid for s in self.services if s.pid is not None and s is not driver}
        pids["load generator"] = driver.pid  # the Locust runner and its worker processes
        sampler = ChainSampler(t0, nats, tail, _MachineCpu(pids))
        return sampler

    def _drive(self, cfg: LoadConfig) -> dict[str, Any]:
        driver = Service("locust", python_module("loadtest.driver", str(self.load_dir / "config.json")),
                         self.run_dir / "logs", ready_timeout=90.0)
        self.services.services["locust"] = driver
        t0 = float(driver.start())
        sampler = self._sampler(t0, driver)
        bounds = stage_bounds(cfg.plan)
        judged: list[dict[str, Any]] = []
        stopped_at = None
        bar, task = _load_progress(plan_duration(cfg.plan), self.opts.progress)
        with bar:
            while driver.alive():
                row = sampler.sample()
                bar.update(task, completed=min(row["t"], plan_duration(cfg.plan)), text=_progress_text(row, cfg.plan))
                i = len(judged)
                if i < len(bounds) and time.time() - t0 >= bounds[i][1] + 1.0:
                    judged.append(self._judge(i, cfg, sampler, t0))
                    if self.opts.find_capacity and not judged[-1]["holds"]:
                        stopped_at = judged[-1]["label"]
                        self.log(f"  {stopped_at} breaks: {'; '.join(judged[-1]['reasons'])}; stopping the load")
                        driver.stop(timeout=20.0)
                        break
                time.sleep(max(0.0, 1.0 - (time.time() - t0 - row["t"])))
        driver.stop(timeout=20.0)
        sampler.sample()
        for i in range(len(judged), len(bounds)):  # stages that ended with the driver (not judged yet)
            if t0 + bounds[i][1] <= time.time() and stopped_at is None:
                judged.append(self._judge(i, cfg, sampler, t0))
        self.sampler = sampler
        locust = self._locust_summary(cfg)
        summary: dict[str, Any] = {
            "mode": "embedded" if self.embedded else "external", "gateway": cfg.host, "t0": t0,
            "speed": cfg.speed, "epoch": cfg.epoch, "batch": cfg.batch, "user_rps": round(cfg.user_rps, 3),
            "per_user_events_per_s": round(cfg.per_user_rate, 1), "processes": cfg.processes,
            "plan": [s.as_dict() for s in cfg.plan], "sla_p99_s": self.opts.sla_p99,
            "max_error_share": self.opts.max_error_share, "find_capacity": self.opts.find_capacity,
            "stages": judged, "stopped_at": stopped_at, "locust": locust,
        }
        if self.opts.find_capacity:
            summary["capacity"] = knee(judged, psutil.cpu_count() or 1)
        summary["passed"] = self._passed(summary)
        return summary

    def _close_samples(self, summary: dict[str, Any], cfg: LoadConfig) -> None:
        """Write the samples (load and drain) and the CPU per delivered event of each process."""
        sampler = self.sampler
        assert sampler is not None, "_drive() first"
        if sampler.deliveries is not None:
            sampler.deliveries.close()
        self._write_samples(sampler, cfg, sampler.t0)
        cpu = sampler.cpu.used() if sampler.cpu else {}
        delivered = sampler.delivered_total
        summary.update({
            "cpu_seconds": {k: round(v, 2) for k, v in cpu.items()}, "delivered": delivered,
            # over the load and the drain, so every accepted event's work is counted once; machine: every
            # core, other work included
            "cpu_us_per_event": {k: round(v / delivered * 1e6, 1) for k, v in cpu.items()} if delivered else {},
        })

    def _passed(self, summary: dict[str, Any]) -> bool:
        if self.opts.find_capacity:
            return bool(summary["capacity"]["found"])
        return bool(summary["stages"]) and all(s["holds"] for s in summary["stages"])

    def _judge(self, i: int, cfg: LoadConfig, sampler: ChainSampler, t0: float) -> dict[str, Any]:
        a, b = settled(*stage_bounds(cfg.plan)[i])
        requests, failures = _locust_counts(self.load_dir / "locust_stats_history.csv", t0 + a, t0 + b)
        stage = cfg.plan[i]
        return stage_figures(stage.label or f"stage {i + 1}", stage.rate, (a, b), sampler.latencies_between(a, b),
                             sampler.rows_between(a, b + 1.0), requests, failures, cfg.batch, self.opts.sla_p99,
                             self.opts.max_error_share, sampler.deliveries is not None)

    # -------------------------------------------------------------------------------- finishing
    def _drain(self) -> bool:
        assert self.sampler is not None, "_drive() first"
        deadline = time.monotonic() + self.opts.drain_timeout
        while time.monotonic() < deadline:
            row = self.sampler.sample()  # the drain is part of the record: backlog down, CPU, deliveries
            if row["backlog"] == 0:
                return True
            time.sleep(max(0.0, 1.0 - (time.time() - self.sampler.t0 - row["t"])))
        self.log("  drain deadline passed; what is left is reported as in flight")
        return False

    def _write_samples(self, sampler: ChainSampler, cfg: LoadConfig, t0: float) -> None:
        chain = pd.DataFrame(sampler.rows)
        chain.to_csv(self.load_dir / "chain.csv", index=False)
        chain.to_parquet(self.load_dir / "chain.parquet", index=False)
        history = self.load_dir / "locust_stats_history.csv"
        if history.is_file():
            frame = pd.read_csv(history)
            frame = frame[frame["Name"] == "Aggregated"].copy()
            frame.insert(0, "t", frame["Timestamp"].astype(float) - t0)
            ok = frame["Total Request Count"] - frame["Total Failure Count"]
            # per row, from the cumulative counts (Locust's Requests/s is a sliding 10 s average)
            frame["events_per_s"] = (ok.diff() / frame["Timestamp"].diff()).fillna(0.0).clip(lower=0) * cfg.batch
            frame.columns = [str(c) for c in frame.columns]
            pct = [c for c in frame.columns if c.endswith("%")]
            frame[pct] = frame[pct].apply(pd.to_numeric, errors="coerce")  # "N/A" before the first answer
            frame.loc[frame["Total Request Count"] == 0, pct] = float("nan")
            frame.to_parquet(self.load_dir / "requests.parquet", index=False)
        stats = self.load_dir / "locust_stats.csv"
        if stats.is_file():
            pd.read_csv(stats).to_parquet(self.load_dir / "locust_stats.parquet", index=False)

    def _locust_summary(self, cfg: LoadConfig) -> dict[str, Any]:
        path = self.load_dir / f"{cfg.stats_prefix}_summary.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    def _collect(self, started: float, drained: bool) -> None:
        from live.collect import collect_run, live_run_record

        assert self.clock is not None
        record = live_run_record(
            self.scenario, run_id=self.run_dir.name, duration=max(self.clock.now(), 1.0),
            wall_seconds=time.time() - started, speed=self.clock.speed, epoch=self.clock.epoch, drained=drained,
            services={s.name: {"pids": s.pids, "url": self.urls.get(s.name, "")} for s in self.services},
            notes=["synctwin load: Locust drove the gateway (no plants ran); its statistics are in load/"])
        collect_run(self.run_dir, self.scenario, record)


def _locust_counts(history: Path, a: float, b: float) -> tuple[float, float]:
    """Requests and failures Locust counted between unix times ``a`` and ``b`` (its cumulative totals)."""
    if not history.is_file():
        return 0.0, 0.0
    try:
        frame = pd.read_csv(history)
    except (pd.errors.EmptyDataError, pd.errors.ParserError):
        return 0.0, 0.0
    frame = frame[frame["Name"] == "Aggregated"]
    ts = frame["Timestamp"].astype(float)
    before, upto = frame[ts <= a], frame[ts <= b]
    if upto.empty:
        return 0.0, 0.0
    req0 = float(before["Total Request Count"].iloc[-1]) if not before.empty else 0.0
    fail0 = float(before["Total Failure Count"].iloc[-1]) if not before.empty else 0.0
    return (float(upto["Total Request Count"].iloc[-1]) - req0, float(upto["Total Failure Count"].iloc[-1]) - fail0)


class _MachineCpu(CpuMeter):
    """CPU per process plus the whole machine's busy cores (other work on a shared machine shows here)."""

    def __init__(self, pids: dict[str, int]):
        psutil.cpu_percent(None)
        super().__init__(pids)

    def sample(self) -> dict[str, float]:
        out = super().sample()
        out["machine"] = psutil.cpu_percent(None) / 100.0 * (psutil.cpu_count() or 1)
        times = psutil.cpu_times()
        busy = sum(times) - times.idle - getattr(times, "iowait", 0.0)
        self.totals["machine"] = self.last["machine"] = busy
        return out


def _load_progress(total: float, enabled: bool) -> tuple[Progress, TaskID]:
    """Rich progress over the plan; a disabled one prints nothing."""
    bar = Progress(TextColumn("[bold]load[/]"), BarColumn(), TextColumn("{task.fields[text]}"), TimeRemainingColumn(),
                   disable=not enabled)
    return bar, bar.add_task("load", total=total, text="")


def _progress_text(row: dict[str, float], plan: list[Stage]) -> str:
    """Target rate, what the chain delivered in the last second, its p99 and backlog."""
    target = rate_at(plan, row["t"]) or 0.0
    delivered = row.get("delivered", math.nan)
    text = f"target {target:,.0f}/s"
    if not math.isnan(delivered):
        text += f", delivered {delivered:,.0f} in the last second"
    if not math.isnan(row.get("e2e_p99_s", math.nan)):
        text += f", p99 {row['e2e_p99_s']:.2f} s"
    if not math.isnan(row.get("backlog", math.nan)):
        text += f", backlog {row['backlog']:,.0f}"
    return text

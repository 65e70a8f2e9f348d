"""Calibration of the virtual engine's hop service times from a live run's trace.

A live run at speed ``S`` stretches every wall second a process spends into ``S`` scenario seconds, so
a hop's delta in its trace (scenario seconds) divided by ``S`` is the wall-clock processing per event.
:func:`calibrate` fits one distribution per hop (constant, exponential or lognormal, by the moments and
the p50/p95 of the samples: the shapes of :class:`scenarios.spec.LatencySpec`) and
:func:`hops_at_speed` turns a calibration back into ``landscape.integration.hops`` at any speed: at the
live run's speed the virtual engine predicts that run; at speed 1 it predicts the real plant, where
processing takes its wall-clock time. The live chain's configured intervals are scenario-time settings
(kernel/trace.py): their expected share of a hop (half of each interval a record waits for: OPC UA
sampling and publishing plus the edge's scan for ``edge``, the edge's flush for ``edge_to_broker``) is
kept apart as ``interval`` (scenario seconds, not stretched) and only the rest counts as processing.

Hops (``HOP_DELTAS``): ``edge`` t_created -> t_edge, ``edge_to_broker`` t_edge -> t_broker,
``broker_to_erp`` t_broker -> t_erp_arrival (where the live trace has no ERP arrival, t_broker ->
t_delivered less the scenario's ERP service, by moments), and ``erp`` t_service_start -> t_delivered
less the ERP's configured service (its draws are scenario-time waits, not stretched): the ERP twin's
handling of the request and the ledger's commit, by moments (the virtual engine adds it to the answer,
not to the posting server's queue: the live ERP spends it once per batch). Samples: first attempts
delivered to an ERP whose journey does not overlap a fault window (nor the drain after it, until the last
posting made inside the window was answered); the chain's hops are then fitted again together against those
postings' end-to-end delays (``virtual.calibration_chain``). And
``downlink``, from the lots table: a quality hold's or release's ``t_hold`` -> ``t_hold_at_wms`` less the
broker's and the plant's WAN latency (the QMS's publishing, the downlink's delivery, the plant's apply),
outside the windows of faults other than the ERP's. And ``lane_batch``, per posting of the large lane
batches the closing probe after an ERP outage releases (the only place a live run makes them): the time
from the probe's arrival to the last of them accepted, less the ERP's configured service of each posting
and its calibrated processing of each batch, over the postings (a mean: it stands for the worker's building
and the ERP's handling of a batch request, which grow with its size). And ``breaker_probe``, from the workers'
breaker transitions in ``run.json``: how much later than its grid point and the lanes' mean jitter an open
breaker half-opened (a waiting lane's late wake-up, wall time). The openings themselves are kept per ERP outage
(``breaker_openings``) and replayed at the live run's speed (``BreakerSpec.replay_openings``): when a live
breaker opens depends on the jitter its lanes' retries drew, several seconds either way. So are the edges'
resumes after each WAN outage (``edge_resumes``, ``replay_edge_resumes``): a live edge retries on its backoff
from its first failed post, i.e. from whichever record happened to come first. And the chain's load over the
run (``load_profile``, ``virtual.calibration_load``): how much busier or quieter than typical the live chain was
in each wall second, replayed at the live run's speed (``integration.replay_load``); the chain's hops are fitted
to the delays with that factor taken out.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from kernel.trace import ERP_POSTING_FLOWS
from scenarios.loader import load_scenario
from scenarios.spec import LatencySpec
from virtual.calibration_chain import ChainFit, fit_chain, spread_sigma
from virtual.calibration_load import load_profile, steady_delays
from virtual.calibration_replay import breaker_timing, edge_resumes

HOP_DELTAS: dict[str, tuple[str, str]] = {
    "edge": ("t_created", "t_edge"),
    "edge_to_broker": ("t_edge", "t_broker"),
    "broker_to_erp": ("t_broker", "t_erp_arrival"),
}
ERP_HOP = "erp"  # t_service_start -> t_delivered beyond the configured service
DOWNLINK_HOP = "downlink"  # a QMS disposition -> the plant's WMS beyond the broker and WAN latencies (lots table)
LANE_BATCH_HOP = "lane_batch"  # per posting of the lane batches a closing breaker releases, beyond the ERP's service
BREAKER_PROBE_HOP = "breaker_probe"  # an open breaker's half-opening beyond its grid point and the lanes' jitter
HOPS = (*HOP_DELTAS, ERP_HOP, DOWNLINK_HOP, LANE_BATCH_HOP, BREAKER_PROBE_HOP)
CHAIN_HOPS = (*HOP_DELTAS, ERP_HOP)  # a posting's way from the machine to the ERP's answer
BIG_BATCH = 20  # postings arriving at the ERP together: a lane batch of a drain
Z95 = 1.6449


class CalibrationError(ValueError):
    """A live run folder or calibration file that cannot be used; the message names what and the fix."""


@dataclass(frozen=True)
class HopFit:
    """One hop's fitted service time: ``mean`` in wall seconds of processing per event."""

    mean: float
    distribution: str
    sigma: float
    samples: int
    p50: float  # of the samples, wall seconds
    p95: float
    interval: float = 0.0  # scenario seconds of the hop that are configured intervals, not processing

    def at_speed(self, speed: float) -> LatencySpec:
        """The hop as a scenario-time latency at ``speed``: its intervals as configured, its processing
        stretched by the speed."""
        return LatencySpec(mean=self.interval + self.mean * speed, distribution=self.distribution, sigma=self.sigma)


def _quantiles(distribution: str, mean: float, sigma: float) -> tuple[float, float]:
    if distribution == "constant":
        return mean, mean
    if distribution == "exponential":
        return mean * math.log(2), mean * math.log(20)
    mu = math.log(mean) - sigma**2 / 2
    return math.exp(mu), math.exp(mu + Z95 * sigma)


def fit_moments(mean: float, variance: float, p50: float | None = None, p95: float | None = None,
                samples: int = 0) -> HopFit:
    """The shape of :class:`LatencySpec` closest to the sample's p50 and p95 (log error), with its mean;
    without quantiles, chosen by the coefficient of variation alone."""
    mean, variance = max(float(mean), 0.0), float(variance)
    p50, p95 = (None if p50 is None else float(p50)), (None if p95 is None else float(p95))
    if mean == 0:
        return HopFit(0.0, "constant", 0.5, samples, 0.0, 0.0)
    cv = math.sqrt(max(variance, 0.0)) / mean
    sigma = min(max(math.sqrt(math.log1p(cv**2)), 1e-3), 5.0)
    candidates = {"constant": 0.5, "exponential": 0.5, "lognormal": sigma}
    if p50 is None or p95 is None or p50 <= 0 or p95 <= 0:
        best = "constant" if cv < 0.15 else "exponential" if abs(cv - 1) < 0.2 else "lognormal"
    else:
        def error(name: str) -> float:
            q50, q95 = _quantiles(name, mean, candidates[name])
            return abs(math.log(q50 / p50)) + abs(math.log(q95 / p95))

        best = min(candidates, key=error)
    return HopFit(mean, best, candidates[best], samples, p50 or 0.0, p95 or 0.0)


def fit_samples(x: np.ndarray) -> HopFit:
    """Fit a hop from its samples (wall seconds)."""
    x = x[np.isfinite(x)]
    x = np.maximum(x, 0.0)
    if x.size == 0:
        return HopFit(0.0, "constant", 0.5, 0, 0.0, 0.0)
    p50, p95 = np.quantile(x, [0.5, 0.95])
    return fit_moments(float(x.mean()), float(x.var()), float(p50), float(p95), int(x.size))


def _quiet_rows(trace: pd.DataFrame, faults: list[dict]) -> pd.DataFrame:
    """First attempts delivered to an ERP whose journey overlaps no fault window nor the drain after it."""
    erp = trace.target.str.lower().str.startswith("erp") & (trace.outcome == "delivered")
    delivered = trace[erp]
    rows = delivered[delivered.attempts <= 1]
    keep = np.ones(len(rows), dtype=bool)
    for fault in faults:
        start, drained = float(fault["start"]), _drain_end(delivered, fault)
        keep &= ~((rows.t_created.to_numpy() < drained) & (rows.t_delivered.to_numpy() >= start))
    return rows[keep]


def _drain_end(delivered: pd.DataFrame, fault: dict) -> float:
    """When the postings a fault held back were through: the last answer to a posting made inside its window
    (the window's end when none was). Measured, not a fixed margin: the postings after the drain belong in the
    sample, since a live machine's load changes within a run and the flows are compared over all of it."""
    start, end = float(fault["start"]), float(fault["end"])
    inside = delivered.t_delivered[(delivered.t_created >= start) & (delivered.t_created < end)]
    return max(end, float(inside.max())) if len(inside) else end


def hop_intervals(scenario) -> dict[str, float]:
    """Expected scenario seconds of each hop spent waiting on configured intervals (half of each
    interval, averaged over the plants)."""
    edges = [p.edge for p in scenario.landscape.all_plants]
    half = lambda name: float(np.mean([getattr(e, name, 0.0) for e in edges])) / 2  # noqa: E731
    return {"edge": half("sampling_interval") + half("publishing_interval") + half("scan_interval"),
            "edge_to_broker": half("flush_interval")}


def _service_moments(spec: LatencySpec) -> tuple[float, float]:
    if spec.distribution == "constant":
        return spec.mean, 0.0
    if spec.distribution == "exponential":
        return spec.mean, spec.mean**2
    return spec.mean, spec.mean**2 * math.expm1(spec.sigma**2)


def calibrate(run_dir: str | Path) -> dict:
    """Fit every hop of the live run in ``run_dir``; returns the calibration as a plain dict."""
    run_dir = Path(run_dir)
    try:
        record = json.loads((run_dir / "run.json").read_text())
        trace = pd.read_parquet(run_dir / "trace.parquet")
    except (OSError, ValueError) as exc:
        raise CalibrationError(f"{run_dir}: not a readable run folder ({exc}); pass the folder of a "
                               "`synctwin up` run") from None
    if record.get("engine") != "live":
        raise CalibrationError(f"{run_dir}: a {record.get('engine')} run; calibrate from a live run "
                               "(`synctwin up SCENARIO --out DIR`)")
    speed = float(record.get("speed") or 1.0)
    rows = _quiet_rows(trace, record.get("faults", []))
    if len(rows) < 20:
        raise CalibrationError(f"{run_dir}: only {len(rows)} quiet first-attempt postings to fit from; "
                               "run the live engine longer or with fewer faults")
    scenario = load_scenario(run_dir / "scenario.yaml")
    intervals = hop_intervals(scenario)
    hops: dict[str, HopFit] = {}
    for hop, (a, b) in HOP_DELTAS.items():
        if b in rows and rows[b].notna().any():
            fit = fit_samples((rows[b] - rows[a]).to_numpy(dtype=float) / speed)
            interval = min(intervals.get(hop, 0.0), fit.mean * speed)  # never more than the hop took
            hops[hop] = replace(fit, mean=fit.mean - interval / speed, interval=interval)
    notes = []
    if "broker_to_erp" not in hops:
        delta = (rows.t_delivered - rows.t_broker).to_numpy(dtype=float)
        delta = delta[np.isfinite(delta)]
        s_mean, s_var = _service_moments(scenario.landscape.erp.service)
        hops["broker_to_erp"] = fit_moments((delta.mean() - s_mean) / speed, (delta.var() - s_var) / speed**2,
                                            samples=int(delta.size))
        notes.append("broker_to_erp: the live trace has no ERP arrival; fitted from t_broker -> t_delivered "
                     "less the scenario's ERP service (moments)")
    if "t_service_start" in rows and rows.t_service_start.notna().any():
        delta = (rows.t_delivered - rows.t_service_start).to_numpy(dtype=float)
        delta = delta[np.isfinite(delta)]
        s_mean, s_var = _service_moments(scenario.landscape.erp.service)
        hops[ERP_HOP] = fit_moments(max(delta.mean() - s_mean, 0.0) / speed,
                                    max(delta.var() - s_var, 0.0) / speed**2, samples=int(delta.size))
    fit, load_bin, load_factors = chain_fit(rows, hops, scenario, speed)
    if not fit.identity:
        _apply_chain_fit(hops, fit)
        notes.append(f"chain hops fitted jointly: their processing x{fit.level:.3f} and their lognormal sigma "
                     f"x{fit.spread:.2f}, so that the sum of independent draws has the live run's median delay of "
                     f"its quiet postings, and its quartiles and 90th percentile within {100 * fit.error:.1f} % "
                     "(root mean square)")
    lane = _lane_batch_cost(trace, record.get("faults", []), scenario, hops.get(ERP_HOP), speed)
    if lane is not None:
        hops[LANE_BATCH_HOP] = lane
    downlink = _downlink_samples(run_dir, record.get("faults", []), scenario)
    if downlink.size:
        hops[DOWNLINK_HOP] = fit_samples(downlink / speed)
    to_broker = hops.get("edge_to_broker")
    resumes = edge_resumes(trace, scenario, to_broker.interval + to_broker.mean * speed if to_broker else 0.0)
    openings, probe = breaker_timing(record.get("breaker", []), scenario)
    if probe.size:
        late = max(float(probe.mean()), 0.0) / speed  # the jitter's mean is modelled; only the rest is fitted
        hops[BREAKER_PROBE_HOP] = HopFit(late, "constant", 0.5, int(probe.size), late, late)
    return {"source_run": str(run_dir), "run_id": record.get("run_id", ""), "scenario": record.get("scenario", ""),
            "speed": speed, "unit": "wall seconds of processing per event; scenario seconds = wall x speed",
            "hops": {name: asdict(fit) for name, fit in hops.items()}, "breaker_openings": openings,
            "edge_resumes": resumes, "load_profile": {"bin": load_bin, "factors": load_factors}, "notes": notes}


def chain_fit(rows: pd.DataFrame, hops: dict[str, HopFit], scenario, speed: float
              ) -> tuple[ChainFit, float, list[float]]:
    """The live chain's load profile (``virtual.calibration_load``) and the level and spread of the chain hops
    that give the sum of their independent draws the live quiet postings' delays at their typical load
    (``virtual.calibration_chain``); returns the fit, the profile's bin width and its factors."""
    land = scenario.landscape
    fixed = (float(np.mean([p.wan.latency for p in land.all_plants])) + land.integration.broker.latency
             + land.erp.network_latency)
    chain = [hops[name] for name in CHAIN_HOPS if name in hops]
    created = rows.t_created.to_numpy(dtype=float)
    delays = (rows.t_delivered - rows.t_created).to_numpy(dtype=float)
    base = fixed + _service_moments(land.erp.service)[0]
    width, factors = load_profile(created, delays, base, speed)
    steady = steady_delays(created, delays, base, width, factors)
    return fit_chain(steady, chain, fixed, land.erp.service, speed), width, factors


def _apply_chain_fit(hops: dict[str, HopFit], fit: ChainFit) -> None:
    for name in CHAIN_HOPS:
        if name in hops:
            hop = hops[name]
            sigma = spread_sigma(hop.sigma, fit.spread) if hop.distribution == "lognormal" else hop.sigma
            hops[name] = replace(hop, mean=hop.mean * fit.level, sigma=sigma)


def _lane_batch_cost(trace: pd.DataFrame, faults: list[dict], scenario, erp: HopFit | None,
                     speed: float) -> HopFit | None:
    """Wall seconds per posting of the lane batches released after each ERP outage (None without any)."""
    posted = trace[trace.target.str.lower().str.startswith("erp") & (trace.outcome == "delivered")
                   & trace.flow.isin(ERP_POSTING_FLOWS)]
    if "t_erp_arrival" not in posted or posted.t_erp_arrival.isna().all():
        return None
    service = _service_moments(scenario.landscape.erp.service)[0]
    per_batch = (erp.mean * speed + erp.interval) if erp is not None else 0.0
    costs, postings = [], 0
    cooldown = scenario.landscape.integration.circuit_breaker.cooldown
    for fault in faults:
        if not str(fault.get("kind", "")).startswith("erp_outage"):
            continue
        end = float(fault["end"])
        after = posted[(posted.t_erp_arrival >= end) & (posted.t_erp_arrival < end + 2 * cooldown)]
        sizes = after.groupby("t_erp_arrival").size()
        big = sizes[sizes >= BIG_BATCH]
        if after.empty or big.empty:
            continue
        n = int(big.sum())
        last = float(after[after.t_erp_arrival.isin(big.index)].t_delivered.max())
        extra = last - float(after.t_erp_arrival.min()) - n * service - len(big) * per_batch
        costs.append(max(extra, 0.0) / speed)
        postings += n
    if not postings:
        return None
    mean = sum(costs) / postings
    return HopFit(mean, "constant", 0.5, postings, mean, mean)


def _downlink_samples(run_dir: Path, faults: list[dict], scenario) -> np.ndarray:
    """Scenario seconds from each quality disposition to its arrival at the plant's WMS, beyond the broker's
    and the WAN's latency, for dispositions that met no fault window but the ERP's."""
    path = run_dir / "lots.parquet"
    if not path.is_file():
        return np.empty(0)
    lots = pd.read_parquet(path)
    pairs = [("t_hold", "t_hold_at_wms"), ("t_release", "t_release_at_wms")]
    if not all(c in lots for pair in pairs for c in pair):
        return np.empty(0)
    sent = np.concatenate([lots[a].to_numpy(dtype=float) for a, _ in pairs])
    arrived = np.concatenate([lots[b].to_numpy(dtype=float) for _, b in pairs])
    keep = np.isfinite(sent) & np.isfinite(arrived)
    for fault in faults:
        if not str(fault.get("kind", "")).startswith("erp"):
            keep &= ~((sent < float(fault["end"])) & (arrived >= float(fault["start"])))
    wan = float(np.mean([p.wan.latency for p in scenario.landscape.all_plants]))
    fixed = scenario.landscape.integration.broker.latency + wan
    return np.maximum(arrived[keep] - sent[keep] - fixed, 0.0)


def write_calibration(calibration: dict, path: str | Path) -> Path:
    """Write ``calibration`` as YAML at ``path``."""
    path = Path(path)
    path.write_text(yaml.safe_dump(calibration, sort_keys=False))
    return path


def read_calibration(path: str | Path) -> dict:
    """A calibration file written by :func:`write_calibration` (clear error otherwise)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
        fits = {name: HopFit(**fit) for name, fit in data["hops"].items() if name in HOPS}
        float(data["speed"])
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        raise CalibrationError(f"{path}: not a calibration file ({exc}); write one with "
                               "`synctwin calibrate LIVE_RUN_DIR -o calibration.yaml`") from None
    return data | {"fits": fits}


def hops_at_speed(calibration: dict, speed: float | None = None) -> tuple[dict[str, object], str]:
    """``landscape.integration.hops`` overrides at ``speed`` (default: the live run's; at that speed also the
    live breaker's openings) and a sentence saying what the run then predicts."""
    live_speed = float(calibration["speed"])
    speed = live_speed if speed is None else float(speed)
    hops: dict[str, object] = {f"landscape.integration.hops.{name}": fit.at_speed(speed).model_dump(mode="json")
                               for name, fit in calibration["fits"].items()}
    if speed == live_speed:  # the live run's own breaker openings and edge resumes, replayed
        if calibration.get("breaker_openings"):
            hops["landscape.integration.circuit_breaker.replay_openings"] = calibration["breaker_openings"]
        if calibration.get("edge_resumes"):
            hops["landscape.integration.replay_edge_resumes"] = calibration["edge_resumes"]
        if (calibration.get("load_profile") or {}).get("factors"):
            hops["landscape.integration.replay_load"] = calibration["load_profile"]
    source = calibration.get("run_id") or calibration.get("source_run", "a live run")
    if speed == 1.0:
        note = (f"calibrated from live run {source} (speed {live_speed:g}) at speed 1: hop processing takes its "
                "wall-clock time, so this run predicts the real plant")
    elif speed == live_speed:
        note = (f"calibrated from live run {source} at its speed {live_speed:g}: hop processing stretched "
                f"x{speed:g} in scenario time, so this run predicts that live run"
                + (" (its breakers open, its edges resume and its chain is busy where the live ones were)"
                   if calibration.get("breaker_openings") or calibration.get("edge_resumes")
                   or (calibration.get("load_profile") or {}).get("factors") else ""))
    else:
        note = (f"calibrated from live run {source} (speed {live_speed:g}) at speed {speed:g}: hop processing "
                f"stretched x{speed:g} in scenario time")
    return hops, note

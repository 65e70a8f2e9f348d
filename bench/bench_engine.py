"""Benchmark of the virtual-time engine.

1. ``fleet-week`` end to end (Ray start included): simulated seconds per wall second, business
   transactions per wall second, peak memory of the whole process tree (driver + Ray).
2. The engine against a plain single-process SimPy yardstick on the same small scenario, side by
   side in one run: wall time per replication and the posting-delay figures with 95 % CIs.

Usage: ``.venv/bin/python bench/bench_engine.py [--skip-fleet] [--replications 5]``
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pyarrow.parquet as pq
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))

import contextlib

from yardstick_simpy import run_yardstick  # noqa: E402

from kernel import trace as T  # noqa: E402
from scenarios.loader import load_scenario, parse_scenario  # noqa: E402
from virtual import batch as B  # noqa: E402
from virtual.coordinator import window_ends  # noqa: E402
from virtual.engine import run_virtual  # noqa: E402
from virtual.hosts import HubHost, PlantHost  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
console = Console()
T95 = {2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}

COMPARE = {
    "name": "yardstick-compare",
    "run": {"duration": "2d", "seed": 99, "window": "12h"},
    "landscape": {
        "erp": {"service": {"mean": "40ms"}},
        "items": {"FG-100": {"unit": "EA"}, "RM-10": {"unit": "KG"}},
        "plants": [{"id": "P", "count": 3, "lines": 4, "machines_per_line": 10}],
    },
    "load": {"orders": 0, "shift": {"length": "30d", "change_burst_factor": 1}},
}


class PeakMemory:
    """Samples the summed RSS of this process and all its descendants (Ray's raylet and workers)."""

    def __init__(self, every: float = 0.2):
        self.every = every
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> int:
        me = psutil.Process()
        total = 0
        for proc in [me, *me.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                total += proc.memory_info().rss
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
            self._stop.wait(self.every)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def fleet_week(out: Path) -> dict:
    scenario = load_scenario(ROOT / "scenarios/library/fleet-week.yaml")
    with PeakMemory() as memory:
        started = time.perf_counter()
        run = run_virtual(scenario, out, quiet=True)
        wall = time.perf_counter() - started
    rows = pq.read_metadata(run / "trace.parquet").num_rows
    postings = pq.read_metadata(run / "ledger.parquet").num_rows
    return {"wall_s": wall, "sim_per_wall": scenario.run.duration / wall, "txn": rows, "postings": postings,
            "txn_per_s": rows / wall, "peak_gib": memory.peak / 1024**3}


def engine_in_process(scenario, replication_seed: int) -> tuple[float, pd.DataFrame]:
    """The engine's hosts without Ray (pure compute), one replication."""
    spec = scenario.model_copy(update={"run": scenario.run.model_copy(update={"seed": replication_seed})})
    started = time.perf_counter()
    n = len(spec.landscape.all_plants)
    plants, hub = PlantHost(spec, list(range(n)), 1), HubHost(spec, [0], 1)
    rows = []
    for t_end in window_ends(spec.run.duration, spec.run.window):
        finished, _ = hub.step(float(t_end), plants.step(float(t_end)))
        rows.append(finished)
    rows.append(hub.finish()[0])
    wall = time.perf_counter() - started
    out = B.concat(rows)
    erp = (out["target"] <= 1) & (out["outcome"] == B.OUTCOME_CODE[T.DELIVERED])
    erp &= out["t_delivered"] <= spec.run.duration
    frame = pd.DataFrame({"flow": np.array(T.FLOWS)[out["flow"][erp]], "t_created": out["t_created"][erp],
                          "t_delivered": out["t_delivered"][erp]})
    return wall, frame


def figures(frames: list[pd.DataFrame]) -> dict[str, tuple[float, float]]:
    """Mean over replications and 95 % CI half-width of posting-delay statistics."""
    stats = {"postings": [], "mean delay s": [], "p50 delay s": [], "p95 delay s": []}
    for f in frames:
        d = f.t_delivered - f.t_created
        stats["postings"].append(len(f))
        stats["mean delay s"].append(d.mean())
        stats["p50 delay s"].append(d.quantile(0.5))
        stats["p95 delay s"].append(d.quantile(0.95))
    k = len(frames)
    return {name: (float(np.mean(v)), float(T95.get(k - 1, 2.0) * np.std(v, ddof=1) / np.sqrt(k)))
            for name, v in stats.items()}


def compare(replications: int) -> None:
    scenario = parse_scenario(COMPARE)
    machines = sum(p.lines * p.machines_per_line for p in scenario.landscape.all_plants)
    engine_walls, engine_frames, yard_walls, yard_frames = [], [], [], []
    for r in range(replications):
        wall, frame = engine_in_process(scenario, 1000 + r)
        engine_walls.append(wall)
        engine_frames.append(frame)
        started = time.perf_counter()
        yard_frames.append(run_yardstick(scenario, seed=1000 + r))
        yard_walls.append(time.perf_counter() - started)
    started = time.perf_counter()
    run_virtual(scenario, ROOT / "runs/bench-compare", replications=replications, quiet=True)
    ray_wall = time.perf_counter() - started
    e, y = figures(engine_frames), figures(yard_frames)
    table = Table(title=f"engine vs SimPy yardstick: {machines} machines, 2 simulated days, {replications} reps")
    for col in ("figure", "engine", "yardstick"):
        table.add_column(col)
    for name in e:
        table.add_row(name, f"{e[name][0]:.3f} ± {e[name][1]:.3f}", f"{y[name][0]:.3f} ± {y[name][1]:.3f}")
    table.add_row("wall s / replication", f"{np.mean(engine_walls):.2f}", f"{np.mean(yard_walls):.2f}")
    console.print(table)
    console.print(f"speed-up, compute only: [bold]{np.mean(yard_walls) / np.mean(engine_walls):.1f}x[/bold]; "
                  f"engine on Ray with {replications} replications in parallel incl. Ray start: {ray_wall:.1f} s "
                  f"vs yardstick {sum(yard_walls):.1f} s sequential "
                  f"([bold]{sum(yard_walls) / ray_wall:.1f}x[/bold])")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-fleet", action="store_true")
    parser.add_argument("--replications", type=int, default=5)
    args = parser.parse_args()
    if not args.skip_fleet:
        r = fleet_week(ROOT / "runs/bench-fleet-week")
        console.print(f"fleet-week: {r['wall_s']:.1f} s wall incl. Ray start; {r['sim_per_wall']:,.0f} simulated s "
                      f"per wall s; {r['txn']:,} business transactions ({r['txn_per_s']:,.0f}/s), of which "
                      f"{r['postings']:,} ERP postings; "
                      f"peak memory {r['peak_gib']:.2f} GiB")
    compare(args.replications)


if __name__ == "__main__":
    main()

"""Scaling of the virtual engine and of the whole ``synctwin run`` command with the fleet size.

Fleets of 12, 24, 48 and 96 plants in fleet-week's shape (each plant 4 lines x 10 machines, 7 days,
the same faults): fleet-week's plant group with its ``count`` changed, written to a scenario file.
Each fleet runs as the real command (``synctwin run FILE --quiet`` in a child process); a sampler
sums the RSS and CPU time of the child's process tree (driver, Ray's raylet, GCS and actor workers).
The engine's share is the command's time up to ``run.json`` (Ray start, simulation, run folder);
the report's share is the rest (SLA evaluation, sla.json, report.html). Business transactions per
second: trace rows over wall time.

``--compare-with DIR`` also runs the same fleets from another checkout (e.g. an older commit made
with ``git worktree add``) in the same session, one after the other, so the before/after figures
come from one machine state.

Usage: ``.venv/bin/python bench/bench_scaling.py [--plants 12,24,48,96] [--compare-with /tmp/base]
[--compare-sizes 12]``
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import pyarrow.parquet as pq
import yaml
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
FLEET_WEEK = ROOT / "scenarios" / "library" / "fleet-week.yaml"
console = Console()


class TreeSampler:
    """Samples the summed RSS and CPU seconds of a process and all its descendants, with timestamps."""

    def __init__(self, pid: int, every: float = 0.1):
        self.root = psutil.Process(pid)
        self.every = every
        self.samples: list[tuple[float, int]] = []  # (monotonic time, RSS bytes)
        self.cpu: dict[int, float] = {}  # pid -> last seen user+system seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        total = 0
        with contextlib.suppress(psutil.Error):
            procs = [self.root, *self.root.children(recursive=True)]
            for proc in procs:
                with contextlib.suppress(psutil.Error):
                    total += proc.memory_info().rss
                    times = proc.cpu_times()
                    self.cpu[proc.pid] = times.user + times.system + times.children_user + times.children_system
        self.samples.append((time.monotonic(), total))

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.every)

    def start(self) -> TreeSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def peak(self, t_from: float = 0.0, t_to: float = float("inf")) -> int:
        return max((rss for t, rss in self.samples if t_from <= t <= t_to), default=0)

    def cpu_seconds(self) -> float:
        return sum(self.cpu.values())


def fleet_scenario(plants: int, days: int, folder: Path) -> Path:
    """fleet-week with ``plants`` plants and ``days`` days, written to ``folder``."""
    spec = yaml.safe_load(FLEET_WEEK.read_text())
    group = spec["landscape"]["plants"][0]
    group["count"] = plants
    spec["run"]["duration"] = f"{days}d"
    spec["name"] = f"fleet-{plants}"
    path = folder / f"fleet-{plants}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def run_command(scenario: Path, out: Path, checkout: Path, extra: tuple[str, ...] = ()) -> dict:
    """``synctwin run`` of ``checkout`` on ``scenario``: wall, engine/report split, memory, CPU."""
    env = os.environ | {"PYTHONPATH": str(checkout)}
    code = "import sys; from synctwin.cli import app; sys.argv[0] = 'synctwin'; app()"
    cmd = [sys.executable, "-c", code, "run", str(scenario), "--out", str(out), "--quiet", *extra]
    started, started_wall = time.monotonic(), time.time()
    proc = subprocess.Popen(cmd, cwd=checkout, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sampler = TreeSampler(proc.pid).start()
    stdout, stderr = proc.communicate()
    ended = time.monotonic()
    sampler.stop()
    if proc.returncode not in (0, 1) or not (out / "sla.json").is_file():  # 1 with sla.json = an SLA breached
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{stdout[-2000:]}\n{stderr[-2000:]}")
    # run.json is written when the engine is done; sla.json and the report come after it.
    engine_done = min(max(started + (out / "run.json").stat().st_mtime - started_wall, started), ended)
    rows = pq.read_metadata(out / "trace.parquet").num_rows
    wall, engine = ended - started, engine_done - started
    return {"wall_s": wall, "engine_s": engine, "report_s": wall - engine, "transactions": rows,
            "txn_per_s_command": rows / wall, "txn_per_s_engine": rows / engine,
            "peak_gib_command": sampler.peak() / 1024**3,
            "peak_gib_engine": sampler.peak(started, engine_done) / 1024**3,
            "peak_gib_report": sampler.peak(engine_done) / 1024**3,
            "cpu_s": sampler.cpu_seconds(), "exit": proc.returncode}


def run_retrying(scenario: Path, out: Path, checkout: Path, label: str, attempts: int = 3) -> dict:
    """:func:`run_command`, again after a failure such as Ray's 30 s start-up deadline on a loaded machine."""
    for attempt in range(1, attempts + 1):
        try:
            return run_command(scenario, out, checkout)
        except RuntimeError as exc:
            if attempt == attempts:
                raise
            console.print(f"{label} failed, running it again: {str(exc)[-300:]}")
            subprocess.run(["rm", "-rf", str(out)], check=False)
    raise AssertionError("unreachable")


def mean_wall(results: list[dict], code: str, plants: int) -> float:
    """Mean wall time of the runs of ``code`` with ``plants`` plants (NaN when there are none)."""
    walls = [r["wall_s"] for r in results if r["code"] == code and r["plants"] == plants]
    return sum(walls) / len(walls) if walls else float("nan")


def table_of(results: list[dict], title: str) -> Table:
    table = Table(title=title)
    for col in ("code", "plants", "transactions", "engine s", "engine txn/s", "engine peak GiB", "report s",
                "command s", "command txn/s", "command peak GiB", "CPU s", "x 12-plant command", "load 1m"):
        table.add_column(col, justify="right")
    base = {code: mean_wall(results, code, min(x["plants"] for x in results)) for code in {r["code"] for r in results}}
    for r in results:
        table.add_row(r["code"], str(r["plants"]), f"{r['transactions']:,}", f"{r['engine_s']:.1f}",
                      f"{r['txn_per_s_engine']:,.0f}", f"{r['peak_gib_engine']:.2f}", f"{r['report_s']:.1f}",
                      f"{r['wall_s']:.1f}", f"{r['txn_per_s_command']:,.0f}", f"{r['peak_gib_command']:.2f}",
                      f"{r['cpu_s']:.0f}", f"{r['wall_s'] / base[r['code']]:.2f}",
                      f"{r.get('load_1m_before', float('nan')):.1f}-{r['load_1m']:.1f}")
    return table


def save(path: Path, days: int, load_before: float, results: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"days": days, "load_1m_at_start": load_before, "machine_cpus": os.cpu_count(),
                                "results": results}, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plants", default="12,24,48,96", help="fleet sizes, comma-separated")
    parser.add_argument("--days", type=int, default=7, help="simulated days (fleet-week: 7)")
    parser.add_argument("--compare-with", type=Path, help="another checkout to run side by side (before)")
    parser.add_argument("--compare-sizes", help="fleet sizes run from --compare-with too (default: all)")
    parser.add_argument("--json", type=Path, default=ROOT / "runs" / "bench-scaling.json", help="results file")
    parser.add_argument("--repeat", type=int, default=1,
                        help="run each compared size this many times, current and before alternated")
    parser.add_argument("--keep", action="store_true", help="keep the run folders (in a temp dir)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.plants.split(",")]
    checkouts = [("current", ROOT)] + ([("before", args.compare_with.resolve())] if args.compare_with else [])
    compare_sizes = [int(s) for s in args.compare_sizes.split(",")] if args.compare_sizes else sizes
    work = Path(tempfile.mkdtemp(prefix="bench-scaling-"))
    results: list[dict] = []
    load_before = os.getloadavg()[0]
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[now]}"),
                        TimeElapsedColumn(), console=console)
    with progress:
        plan = [(plants, code, checkout) for plants in sizes
                for _ in range(args.repeat if args.compare_with and plants in compare_sizes else 1)
                for code, checkout in checkouts  # side by side: before and after of one size back to back
                if code == "current" or plants in compare_sizes]
        task = progress.add_task("fleets", total=len(plan), now="")
        for plants, code, checkout in plan:
            scenario = fleet_scenario(plants, args.days, work)
            progress.update(task, now=f"{code}: {plants} plants")
            out = work / f"{code}-{plants}"
            load_now = os.getloadavg()[0]
            result = run_retrying(scenario, out, checkout, f"{code} {plants} plants")
            results.append({"code": code, "plants": plants, "load_1m_before": load_now,
                            "load_1m": os.getloadavg()[0]} | result)
            save(args.json, args.days, load_before, results)  # partial results survive an interrupted run
            progress.advance(task)
            if not args.keep:
                subprocess.run(["rm", "-rf", str(out)], check=False)
    console.print(table_of(results, f"fleet-week shape, {args.days} days: engine and whole `synctwin run`"))
    for code, _ in checkouts:
        ratio = mean_wall(results, code, max(sizes)) / mean_wall(results, code, min(sizes))
        if ratio == ratio:  # both sizes ran for this code
            console.print(f"{code}: {max(sizes)} plants take {ratio:.2f}x the {min(sizes)}-plant command "
                          f"(linear: {max(sizes) / min(sizes):.1f}x)")
    save(args.json, args.days, load_before, results)
    console.print(f"results: {args.json}")


if __name__ == "__main__":
    main()

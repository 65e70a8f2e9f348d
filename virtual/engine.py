"""Entry point of the virtual-time engine: scenario in, run folder out."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import ray
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from actors.runtime import ensure_ray
from kernel.run_folder import write_run_folder
from kernel.run_record import run_record
from scenarios.spec import Scenario
from scenarios.units import format_duration
from virtual import run_folder
from virtual.coordinator import run_windows


def new_run_id(scenario: Scenario) -> str:
    """A sortable, readable id: ``20261123-101500-erp-outage``."""
    return f"{datetime.now():%Y%m%d-%H%M%S}-{scenario.name}"


def default_plant_actors(n_plants: int, cpus: int | None = None) -> int:
    """One plant group per core of the Ray cluster (``cpus``; default this machine's). Ray prestarts
    one idle worker per core and the plant actors take those over; every further actor is another
    worker process to start (about 1.5 s of CPU for its imports), and plant actors never wait on each
    other, so more groups than cores buy nothing."""
    return max(1, min(n_plants, cpus or os.cpu_count() or 2))


def run_virtual(scenario: Scenario, out: Path | None = None, replications: int | None = None,
                address: str | None = None, plant_actors: int | None = None,
                console: Console | None = None, quiet: bool = False, notes: list[str] | None = None) -> Path:
    """Simulate ``scenario`` in virtual time on Ray and write its run folder; returns the folder.
    ``notes`` go into ``run.json`` (e.g. what a calibrated run predicts)."""
    console = console or Console()
    reps = replications or scenario.run.replications
    run_id = new_run_id(scenario)
    out = out or Path("runs") / run_id
    n_plants = len(scenario.landscape.all_plants)
    started = time.perf_counter()
    we_started = ensure_ray(address)
    try:
        progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[clock]}"),
                            TimeElapsedColumn(), console=console, disable=quiet, transient=False)
        with progress:
            task = progress.add_task(f"{scenario.name} × {reps}", total=scenario.run.duration, clock="")

            def advance(t_end: float) -> None:
                progress.update(task, completed=t_end, clock=f"{format_duration(t_end)} simulated")

            cpus = int(ray.cluster_resources().get("CPU", 0))
            result = run_windows(scenario, reps, plant_actors or default_plant_actors(n_plants, cpus),
                                 min(reps, os.cpu_count() or 2), advance)
    except BaseException:
        if we_started:
            ray.shutdown()
        raise
    # Ray's processes take a second or two to end: the run folder is built and written meanwhile.
    stopping = threading.Thread(target=ray.shutdown, name="ray-shutdown") if we_started else None
    if stopping:
        stopping.start()
    try:
        wall = time.perf_counter() - started
        if len(result.placement) > 1:
            spread_over = ", ".join(f"{node[:8]}×{n}" for node, n in sorted(result.placement.items()))
            console.print(f"  plant actors on {len(result.placement)} nodes: {spread_over}", highlight=False)
        # Arrow's kernels release the GIL: the three tables are built side by side on the cores Ray freed.
        with ThreadPoolExecutor(3, thread_name_prefix="run-folder") as pool:
            trace_f = pool.submit(run_folder.trace_table, result.rows, scenario, run_id)
            ledger_f = pool.submit(run_folder.ledger_table, result.rows, scenario, run_id)
            lots_f = pool.submit(run_folder.lots_table, result.lots, scenario, run_id)
        trace_t = trace_f.result()
        kills = [f"faults[{i}] process_kill: acts in the live engine only (a killed process has no virtual twin)"
                 for i, f in enumerate(scenario.faults) if f.kind == "process_kill"]
        for note in kills:
            console.print(f"  note: {note}", highlight=False)
        record = run_record(scenario, run_id=run_id, engine="virtual", wall_seconds=wall, replications=reps,
                            breaker=result.breaker, transactions=trace_t.num_rows, notes=[*(notes or []), *kills])
        write_run_folder(out, record, trace_t, ledger_f.result(), lots_f.result(), scenario=scenario)
        del trace_t, trace_f, ledger_f, lots_f, result
        # Arrow's allocator keeps freed buffers for reuse: hand the tables' memory back before the report
        # reads the folder (at 96 plants it was gigabytes on top of the report's own peak).
        pa.default_memory_pool().release_unused()
    finally:
        if stopping:
            stopping.join()
    return out

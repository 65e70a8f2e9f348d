"""``synctwin run`` (virtual-time engine) and ``synctwin validate``."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.console import Console

from scenarios.loader import ScenarioError, load_scenario

console = Console()

ScenarioArg = Annotated[Path, typer.Argument(help="scenario YAML file, e.g. scenarios/library/erp-outage.yaml")]


def parse_sets(pairs: list[str]) -> dict[str, object]:
    """``--set a.b=value`` options as dotted keys with YAML-typed values."""
    overrides: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            hint = f"{pair!r}: write --set section.key=value, e.g. --set run.seed=3"
            raise typer.BadParameter(hint, param_hint="--set")
        overrides[key.strip()] = yaml.safe_load(value)
    return overrides


def load_or_exit(path: Path, overrides: dict[str, object] | None = None):
    """The validated scenario, or the problems on stderr and exit code 2."""
    try:
        return load_scenario(path, overrides)
    except ScenarioError as exc:
        Console(stderr=True).print(f"[red]{exc.source}: invalid scenario[/red]")
        for problem in exc.problems:
            Console(stderr=True).print(f"  - {problem}", markup=False, highlight=False)
        raise typer.Exit(2) from None


def _import_report_modules() -> None:
    """Import what :func:`finish_run` needs (pandas, matplotlib: about 2 s of CPU) while the engine runs:
    the driver mostly waits on Ray then, so the imports leave the command's critical path."""
    import reports.finalize  # noqa: F401
    import reports.narrative  # noqa: F401


def preload_reports() -> threading.Thread:
    """Start :func:`_import_report_modules` in a daemon thread; join it before evaluating."""
    thread = threading.Thread(target=_import_report_modules, name="import-reports", daemon=True)
    thread.start()
    return thread


def finish_run(run_dir: Path) -> None:
    """Evaluate SLAs, write sla.json and report.html, print the verdict and exit 0 or 1."""
    from reports.finalize import finalize_run
    from reports.narrative import fault_lines

    verdict = finalize_run(run_dir)
    console.print(f"run folder: {run_dir}", markup=False, highlight=False, soft_wrap=True)
    console.print(f"report:     {run_dir / 'report.html'}", markup=False, highlight=False, soft_wrap=True)
    for line in fault_lines(verdict.sla):
        console.print(f"fault:      {line}", markup=False, highlight=False, soft_wrap=True)
    if verdict.passed:
        console.print("[green]PASS[/green] every SLA and invariant holds")
        return
    console.print("[red]BREACH[/red]")
    for line in verdict.breaches:
        console.print(f"  - {line}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``run`` and ``validate`` to ``app``."""

    @app.command()
    def validate(scenario: ScenarioArg) -> None:
        """Check a scenario file; exit 2 naming every problem."""
        spec = load_or_exit(scenario)
        plants = spec.landscape.all_plants
        machines = sum(p.lines * p.machines_per_line for p in plants)
        console.print(f"[green]valid[/green] {spec.name}: {len(plants)} plants, {machines} machines, "
                      f"{len(spec.faults)} faults, {len(spec.rollout.waves)} waves")

    @app.command()
    def run(
        scenario: ScenarioArg,
        replications: Annotated[int | None, typer.Option(min=1, help="Monte Carlo replications")] = None,
        out: Annotated[Path | None, typer.Option(help="run folder (default runs/<run-id>)")] = None,
        address: Annotated[str | None, typer.Option(help="join this Ray cluster instead of an embedded one")] = None,
        plant_actors: Annotated[int | None, typer.Option(min=1, help="Ray actors hosting the plants")] = None,
        seed: Annotated[int | None, typer.Option(min=0, help="override run.seed")] = None,
        set_: Annotated[list[str], typer.Option("--set", help="override a key: --set run.duration=2h")] = [],  # noqa: B006
        quiet: Annotated[bool, typer.Option(help="no progress bar")] = False,
        calibration: Annotated[Path | None, typer.Option(help="hop service times from `synctwin calibrate`")] = None,
        speed: Annotated[float | None, typer.Option(min=1e-9, help="with --calibration: the speed processing is "
                                                    "stretched by (default the live run's; 1 = real plant)")] = None,
    ) -> None:
        """Simulate SCENARIO in virtual time and check its SLAs (exit 0 pass, 1 breach, 2 bad input)."""
        from virtual.engine import run_virtual

        overrides = parse_sets(set_)
        if seed is not None:
            overrides["run.seed"] = seed
        notes: list[str] = []
        if calibration is not None:
            from virtual.calibration import CalibrationError, hops_at_speed, read_calibration

            try:
                hops, note = hops_at_speed(read_calibration(calibration), speed)
            except CalibrationError as exc:
                Console(stderr=True).print(str(exc), markup=False, highlight=False)
                raise typer.Exit(2) from None
            overrides |= hops
            notes.append(note)
            console.print(f"  note: {note}", markup=False, highlight=False)
        elif speed is not None:
            raise typer.BadParameter("--speed needs --calibration (the virtual engine has no wall clock)",
                                     param_hint="--speed")
        spec = load_or_exit(scenario, overrides)
        importing = preload_reports()
        run_dir = run_virtual(spec, out, replications, address, plant_actors, console, quiet, notes=notes)
        importing.join()
        finish_run(run_dir)

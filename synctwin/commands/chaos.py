"""``synctwin chaos EXPERIMENT``: a Chaos Toolkit experiment against the live integration layer.

Exit codes: 0 the steady-state hypothesis held before and after and every invariant holds; 1 otherwise
(each failure on a ``FAILED`` line); 2 a bad experiment (the path in the file is named).
"""

from __future__ import annotations

import time
from pathlib import Path

import typer


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def chaos(
    experiments: list[Path] = typer.Argument(..., help="Chaos Toolkit experiment (YAML or JSON), e.g. "
                                                      "scenarios/chaos/wan-cut.yaml; several run one after "
                                                      "another on one stack (they must name the same scenario)"),
    out: Path = typer.Option(None, help="run folder (default runs/chaos-<experiment>-<time>)"),
    speed: float = typer.Option(None, help="scenario seconds per wall second (default: the scenario's)"),
    target: str = typer.Option(None, help="gateway=URL,erp=URL: run against services synctwin did not start "
                                          "(only activities that need no more than these)"),
    warmup: float = typer.Option(8.0, help="wall seconds the processes get to start before scenario time 0"),
    pause_scale: float = typer.Option(1.0, help="multiply every pause of the experiments (e.g. 0.3 for a quick "
                                               "check; faults then last less long)"),
) -> None:
    """Start the live stack for the experiment's scenario, run the experiment while the plants produce, drain,
    stop, and write the run folder with journal.json and a chaos section in report.html."""
    from synctwin.chaos.experiment import ExperimentError, load_experiment

    try:
        suite = [load_experiment(path) for path in experiments]
    except ExperimentError as exc:
        _fail(str(exc))
    others = [one.path for one in suite if one.scenario_path != suite[0].scenario_path]
    if others:
        _fail(f"{others[0]}: configuration.synctwin_scenario: names another scenario than {suite[0].path}; "
              "experiments run together share one stack, hence one scenario")
    if speed is not None and speed <= 0:
        _fail("--speed: must be > 0, e.g. --speed 60")
    if pause_scale <= 0:
        _fail("--pause-scale: must be > 0, e.g. --pause-scale 0.3")
    name = experiments[0].stem if len(experiments) == 1 else "suite"
    run_dir = out or Path("runs") / f"chaos-{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    if (run_dir / "run.json").exists() or (run_dir / "journal.json").exists():
        _fail(f"--out: {run_dir} already holds a run; choose another folder")
    if target:
        from synctwin.chaos.targeted import TargetError, parse_target, run_targeted

        if len(suite) > 1:
            _fail("--target: one experiment at a time")
        try:
            urls = parse_target(target)
            outcome = run_targeted(suite[0], urls, run_dir, log=typer.echo)
        except TargetError as exc:
            _fail(str(exc))
    else:
        from live.procs import ProcessError
        from live.stack import StackError
        from synctwin.chaos.runner import run_chaos

        try:
            outcome = run_chaos(suite, run_dir, speed=speed, warmup=warmup, log=typer.echo, pause_scale=pause_scale)
        except (StackError, ProcessError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
    typer.echo(f"run folder: {run_dir}  (report: {run_dir / 'report.html'})")
    for result in outcome.experiments or []:
        typer.echo(f"{result.stem}: hypothesis before {_word(result.before)}, after {_word(result.after)} "
                   f"(journal: {run_dir / result.journal_file})")
    if not outcome.experiments:
        typer.echo(f"hypothesis before: {_word(outcome.before)}, after: {_word(outcome.after)}")
    if not outcome.passed:
        for line in outcome.failures:
            typer.echo(f"FAILED {line}")
        raise typer.Exit(1)
    typer.echo("the hypothesis held before and after; every invariant holds")


def _word(met: bool | None) -> str:
    return {True: "met", False: "NOT met", None: "not checked"}[met]


def register(app: typer.Typer) -> None:
    """Add ``chaos`` to ``app``."""
    app.command("chaos")(chaos)


if __name__ == "__main__":
    _app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    _app.command("chaos")(chaos)
    _app()

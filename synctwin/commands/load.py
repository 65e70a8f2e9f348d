"""``synctwin load``: Locust drives the gateway with the scenario's load shapes; results in the run folder.

Against the embedded chain (broker, gateway, worker, ERP twin started here) or a team's own gateway
(``--gateway URL --api-key KEY``, optionally ``--nats URL`` for the backlog and ``--worker-run-dir``
for end-to-end latency). ``--find-capacity`` ramps in steps until the chain breaks and reports the
knee with the component that limits it. Exit codes: 0 ok, 1 breach, 2 bad input.
"""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlsplit

import typer

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def _loopback_url(option: str, url: str | None, schemes: tuple[str, ...]) -> None:
    if url is None:
        return
    parts = urlsplit(url)
    if parts.scheme not in schemes or not parts.hostname:
        _fail(f"{option}: {url!r} is not a {'/'.join(schemes)} URL, e.g. {schemes[0]}://127.0.0.1:8000")
    if parts.hostname not in LOOPBACK:
        _fail(f"{option}: {parts.hostname} is not this machine; load runs against 127.0.0.1 only")


def _seconds(option: str, value: str) -> float:
    from scenarios.units import parse_duration

    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        _fail(f"{option}: {exc}")
    if seconds <= 0:
        _fail(f"{option}: must be > 0, e.g. {option} 60s")
    return seconds


def load(
    scenario: Path = typer.Argument(..., help="scenario YAML: plants, ERP, load shape (shift change, bursts)"),
    gateway: str = typer.Option(None, help="a running gateway, e.g. http://127.0.0.1:8000 (default: start one)"),
    api_key: list[str] = typer.Option(None, "--api-key", help="plant API key(s) for --gateway"),
    nats: str = typer.Option(None, help="with --gateway: its broker URL, to sample the workers' backlog"),
    worker_run_dir: Path = typer.Option(None, help="with --gateway: the worker's --run-dir (end-to-end latency)"),
    epoch: float = typer.Option(None, help="with --gateway: the chain's --epoch (Unix time of scenario second 0)"),
    out: Path = typer.Option(None, help="run folder (default runs/<scenario>-load-<time>)"),
    shape: str = typer.Option("steady", help="steady, shift-change, bursts, step-ramp or spike"),
    rate: float = typer.Option(None, help="base events/s (wall); default: the scenario's steady rate x speed"),
    duration: str = typer.Option("60s", help="wall time of the load, e.g. 60s or 2m"),
    steps: int = typer.Option(5, help="step-ramp: number of steps"),
    max_rate: float = typer.Option(None, help="step-ramp / --find-capacity: top rate in events/s"),
    find_capacity: bool = typer.Option(False, help="ramp in steps until the SLA breaks; report the knee"),
    step_rate: float = typer.Option(2000.0, help="--find-capacity: events/s added per step"),
    step_seconds: str = typer.Option("15s", help="--find-capacity: length of one step"),
    sla_p99: str = typer.Option("1s", help="end-to-end p99 (wall) a stage must hold"),
    max_errors: float = typer.Option(0.01, help="share of failed requests a stage may have"),
    users: int = typer.Option(None, help="Locust users at the peak (default: about 4 requests/s each)"),
    processes: int = typer.Option(1, help="Locust worker processes (1: one local runner)"),
    batch: int = typer.Option(200, help="events per request"),
    speed: float = typer.Option(None, help="scenario seconds per wall second (default: the scenario's)"),
    lanes: int = typer.Option(2, help="embedded worker's lanes"),
    drain_timeout: float = typer.Option(60.0, help="wall seconds to wait for the backlog to drain"),
    progress: bool = typer.Option(True, help="show a progress bar"),
) -> None:
    """Drive the gateway with Locust under the scenario's load shape; statistics land in the run folder."""
    from loadtest.plan import PlanError, build_plan, scenario_rate, step_ramp
    from scenarios.loader import ScenarioError, load_scenario

    try:
        spec = load_scenario(scenario)
    except ScenarioError as exc:
        _fail(str(exc))
    _loopback_url("--gateway", gateway, ("http",))
    _loopback_url("--nats", nats, ("nats",))
    if gateway is None and (api_key or nats or worker_run_dir or epoch is not None):
        _fail("--api-key/--nats/--worker-run-dir/--epoch: only with --gateway (the embedded chain sets its own)")
    if gateway is not None and not api_key:
        _fail("--api-key: --gateway needs a plant API key, e.g. --api-key $(jq -r .plants.P01 credentials.json)")
    if worker_run_dir is not None and epoch is None:
        _fail("--epoch: --worker-run-dir needs the chain's --epoch (and --speed) to read end-to-end latency")
    if worker_run_dir is not None and not (worker_run_dir / "state").is_dir():
        _fail(f"--worker-run-dir: {worker_run_dir} has no state/ folder; give the worker's --run-dir")
    if not 1 <= processes <= 16:
        _fail("--processes: must be between 1 and 16")
    if users is not None and users < 1:
        _fail("--users: must be >= 1")
    if batch < 1 or batch > 5000:
        _fail("--batch: must be between 1 and 5000 events per request")
    if speed is not None and speed <= 0:
        _fail("--speed: must be > 0, e.g. --speed 60")
    if not 0 <= max_errors < 1:
        _fail("--max-errors: a share between 0 and 1, e.g. 0.01")
    if rate is not None and rate <= 0:
        _fail("--rate: must be > 0 events per second")
    run_speed = speed or spec.run.speed
    wall = _seconds("--duration", duration)
    sla = _seconds("--sla-p99", sla_p99)
    try:
        if find_capacity:
            if step_rate <= 0:
                _fail("--step-rate: must be > 0 events per second")
            top = max_rate or 40000.0
            start = rate or step_rate
            if top < start:
                _fail(f"--max-rate: {top:g} is below the first step {start:g}")
            n = int((top - start) // step_rate) + 1
            plan = step_ramp(start, step_rate, n, _seconds("--step-seconds", step_seconds))
        else:
            plan = build_plan(spec, shape, rate or scenario_rate(spec) * run_speed, wall, run_speed, steps, max_rate)
    except PlanError as exc:
        _fail(str(exc))
    run_dir = out or Path("runs") / f"{spec.name}-load-{time.strftime('%Y%m%d-%H%M%S')}"
    if (run_dir / "load" / "load.json").exists() or (run_dir / "run.json").exists():
        _fail(f"--out: {run_dir} already holds a run; choose another folder")

    from live.procs import ProcessError
    from loadtest.run import LoadOptions, LoadRun

    opts = LoadOptions(plan=plan, speed=run_speed, batch=batch, users=users, processes=processes,
                       find_capacity=find_capacity, sla_p99=sla, max_error_share=max_errors, gateway=gateway,
                       api_keys=list(api_key or []), nats=nats, worker_run_dir=worker_run_dir, epoch=epoch,
                       lanes=lanes, drain_timeout=drain_timeout, progress=progress)
    runner = LoadRun(spec, run_dir, opts, log=typer.echo)
    try:
        summary = runner.run()
    except ProcessError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        typer.echo("interrupted; every process of the load run was stopped", err=True)
        raise typer.Exit(130) from None
    _print_outcome(summary, run_dir)
    chain_ok = runner.verdict is None or runner.verdict.passed
    if runner.verdict is not None:
        for line in runner.verdict.breaches:
            typer.echo(f"BREACH {line}")
    if not summary["passed"] or not chain_ok:
        raise typer.Exit(1)


def _print_outcome(summary: dict, run_dir: Path) -> None:
    for s in summary["stages"]:
        state = "holds" if s["holds"] else "BREACH " + "; ".join(s["reasons"])
        p99 = "n/a" if s.get("e2e_p99_s") is None else f"{s['e2e_p99_s']:.3f} s"
        delivered = s.get("delivered_events_per_s")
        typer.echo(f"  {s['label']:<22} target {s['target_events_per_s']:>9,.0f}/s  accepted "
                   f"{s['accepted_events_per_s']:>9,.0f}/s  delivered "
                   f"{'n/a' if delivered is None else format(delivered, ',.0f'):>9}/s  p99 {p99}  {state}")
    cap = summary.get("capacity")
    if cap:
        if cap["found"]:
            typer.echo(f"KNEE {cap['knee_events_per_s']:,.0f} events/s end to end (stage {cap['knee_stage']}); "
                       f"limited by {cap['limiting_component']}: {cap['limiting_note']}")
        else:
            typer.echo("KNEE not found: the first step already breaks the SLA")
    typer.echo(f"run folder: {run_dir}  (report: {run_dir / 'report.html'}, Locust statistics: {run_dir / 'load'})")


def register(app: typer.Typer) -> None:
    """Add ``load`` to ``app``."""
    app.command("load")(load)


if __name__ == "__main__":
    _app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    register(_app)
    _app()

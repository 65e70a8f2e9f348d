"""Live engine commands: ``synctwin up`` and ``synctwin worker``, plus the services' commands
(``broker``, ``gateway``, ``erp`` from :mod:`synctwin.commands.live_services`; ``opcua``, ``edge``
from :mod:`synctwin.commands.live_plant`).

Runnable on its own as well: ``python -m synctwin.commands.live worker ...`` -- this is how the
orchestrator starts workers, without loading the virtual engine's commands.
"""

from __future__ import annotations

import time
from pathlib import Path

import typer

from synctwin.commands import live_plant, live_services


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def worker(
    nats_url: str = typer.Option(..., "--nats", help="broker URL, e.g. nats://127.0.0.1:4222 (a cluster: its URLs "
                                 "joined by commas)"),
    scenario: Path = typer.Option(..., help="scenario YAML: plants, mappings, routing, retry/breaker policy"),
    erp: list[str] = typer.Option(..., help="KIND=URL of an ERP twin, e.g. legacy=http://127.0.0.1:8081"),
    run_dir: Path = typer.Option(..., help="run folder; state goes to RUN_DIR/state/"),
    epoch: float = typer.Option(None, help="Unix time of scenario second 0 (default: now)"),
    speed: float = typer.Option(60.0, help="scenario seconds per wall second"),
    lanes: int = typer.Option(2, min=1, max=1024, help="parallel lanes (one business key stays in one)"),
    batch: int = typer.Option(1000, min=1, max=8192, help="messages per pull, and the largest ERP batch of a lane"),
    consumer: str = typer.Option("erp-workers",
                                 help="durable JetStream consumer; another name reads the stream anew, independently"),
    partition: int = typer.Option(1, min=1, help="this worker's partition (1-based) of --partitions"),
    partitions: int = typer.Option(1, min=1, help="worker processes sharing the stream; each consumes whole plants "
                                   "through its own consumer <consumer>-<partition>"),
) -> None:
    """Run an integration worker: EVENTS → mapping → routing → ERP postings, exactly once."""
    from integration.workers import WorkerConfig, parse_erp_urls, run_worker
    from scenarios.loader import ScenarioError, load_scenario

    if speed <= 0:
        _fail("--speed: must be > 0")
    try:
        spec = load_scenario(scenario)
        config = WorkerConfig(nats_url, spec, parse_erp_urls(erp), run_dir,
                              time.time() if epoch is None else epoch, speed, lanes=lanes, fetch_batch=batch,
                              seed=spec.run.seed, consumer=consumer,
                              partition=partition, partitions=partitions)
    except (ScenarioError, ValueError) as exc:
        _fail(str(exc))
    run_worker(config)


def up(
    scenario: Path = typer.Argument(..., help="scenario YAML, e.g. scenarios/library/live-smoke.yaml"),
    speed: float = typer.Option(None, help="scenario seconds per wall second (default: the scenario's)"),
    duration: str = typer.Option(None, help="scenario time to run, e.g. 5m or 2h (default: the scenario's)"),
    out: Path = typer.Option(None, help="run folder (default runs/<scenario>-live-<time>)"),
    insecure: bool = typer.Option(False, help="OPC UA without security (loopback only; faster start-up)"),
    drain_timeout: float = typer.Option(60.0, help="wall seconds to wait for the backlog to drain"),
    progress: bool = typer.Option(True, help="show a progress bar"),
    plants: str = typer.Option("ray", help="how plants run: ray (LivePlantActor) or process (synctwin opcua)"),
    warmup: float = typer.Option(20.0, help="wall seconds the processes get to start before scenario time 0"),
    links: str = typer.Option("", help="fault-proxy links besides the WAN links, comma-separated: broker-gateway, "
                              "erp-<kind>-worker, opcua-<plant>, or all (each adds a relay on its hop)"),
    brokers: int = typer.Option(None, help="JetStream nodes: 1, or 3 for a cluster with every stream replicated "
                                "three times (default: the scenario's landscape.integration.brokers)"),
    gateways: int = typer.Option(1, help="gateway uvicorn processes sharing its port"),
    workers: int = typer.Option(1, help="integration worker processes; each consumes whole plants, in order"),
    live_view: bool = typer.Option(True, help="serve the live view on 127.0.0.1 (URL printed at start): "
                                   "throughput, backlog, latency, the scenario's faults as they start and end"),
) -> None:
    """Run the whole live stack for SCENARIO as real processes, then write and evaluate the run folder."""
    from live.procs import ProcessError
    from live.stack import LiveStack, StackError, StackOptions
    from scenarios.loader import ScenarioError, load_scenario
    from scenarios.units import parse_duration

    try:
        spec = load_scenario(scenario)
        seconds = parse_duration(duration) if duration is not None else None
    except ScenarioError as exc:
        _fail(str(exc))
    except ValueError as exc:
        _fail(f"--duration: {exc}")
    if plants not in ("ray", "process"):
        _fail(f"--plants: {plants!r} is not a choice; use ray or process")
    if speed is not None and speed <= 0:
        _fail("--speed: must be > 0, e.g. --speed 60")
    if seconds is not None and seconds <= 0:
        _fail("--duration: must be > 0, e.g. --duration 5m")
    if warmup < 0:
        _fail("--warmup: must be >= 0 wall seconds, e.g. --warmup 20")
    from integration.broker_cluster import validate_size

    try:
        validate_size(brokers if brokers is not None else spec.landscape.integration.brokers)
    except ValueError as exc:
        _fail(str(exc))
    cluster = (brokers or spec.landscape.integration.brokers) > 1
    if cluster and {"all", "broker-gateway"} & {n.strip() for n in links.split(",")}:
        _fail("--links: the broker-gateway link relays one broker; with a cluster name the other links "
              "(erp-<kind>-worker, opcua-<plant>) instead of broker-gateway or all")
    if not 1 <= gateways <= 8:
        _fail(f"--gateways: {gateways}; use 1 to 8")
    if not 1 <= workers <= len(spec.landscape.all_plants):
        _fail(f"--workers: {workers}; a worker process consumes whole plants, so use 1 to "
              f"{len(spec.landscape.all_plants)} (the scenario's plants)")
    run_dir = out or Path("runs") / f"{spec.name}-live-{time.strftime('%Y%m%d-%H%M%S')}"
    if (run_dir / "run.json").exists():
        _fail(f"--out: {run_dir} already holds a run; choose another folder")
    options = StackOptions(speed=speed or spec.run.speed, duration=seconds, insecure=insecure,
                           drain_timeout=drain_timeout, progress=progress, plant_host=plants, warmup=warmup,
                           links=tuple(n.strip() for n in links.split(",") if n.strip()),
                           brokers=brokers, gateways=gateways, workers=workers)
    try:
        stack = LiveStack(spec, run_dir, options, log=typer.echo)
    except ValueError as exc:  # an unknown link name
        _fail(f"--{exc}")
    close_view = None
    if live_view:
        from synctwin.chaos.upview import start_up_view

        close_view = start_up_view(stack, run_dir, options.speed, typer.echo)
    try:
        stack.run()
    except (StackError, ProcessError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        typer.echo("interrupted; every process of the run was stopped", err=True)
        raise typer.Exit(130) from None
    finally:
        if close_view is not None:
            close_view()
    typer.echo(f"run folder: {run_dir}  (report: {run_dir / 'report.html'})")
    if stack.verdict is not None:
        from reports.narrative import fault_lines

        for line in fault_lines(stack.verdict.sla):
            typer.echo(f"FAULT {line}")
    if stack.interrupted_at is not None:
        typer.echo(f"interrupted at {stack.interrupted_at:.0f} s scenario time; every process of the run was "
                   "stopped and the run folder covers what ran", err=True)
        raise typer.Exit(130)
    if stack.verdict is not None and not stack.verdict.passed:
        for line in stack.verdict.breaches:
            typer.echo(f"BREACH {line}")
        raise typer.Exit(1)
    typer.echo("all SLAs and invariants hold")


def register(app: typer.Typer) -> None:
    """Add the live-engine commands to ``app``."""
    app.command("up")(up)
    app.command("worker")(worker)
    live_services.register(app)
    live_plant.register(app)


if __name__ == "__main__":
    _app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    _app.command("up")(up)
    _app.command("worker")(worker)
    _app()

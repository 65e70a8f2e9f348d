"""``synctwin broker``, ``synctwin gateway``, ``synctwin erp``: the live engine's integration services
(and ``synctwin opcua-trust``, which trusts a third-party OPC UA client's certificate).

Each runs in the foreground, prints ``READY <service> <url>`` once it accepts requests and stops
cleanly on SIGTERM. Runnable on its own too: ``python -m synctwin.commands.live_services gateway ...``.
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import typer


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def broker(
    data_dir: Path = typer.Option(..., "--data-dir", help="directory for the JetStream file store"),
    port: int = typer.Option(0, help="client port on 127.0.0.1; 0 picks a free one (a cluster node needs one)"),
    sync_always: bool = typer.Option(False, help="fsync every write (slower, survives power loss)"),
    node: str = typer.Option("", help="cluster node name, e.g. broker-1 (with --cluster-port and --routes)"),
    cluster_port: int = typer.Option(0, help="this node's cluster (route) port on 127.0.0.1"),
    routes: str = typer.Option("", help="every node's cluster port, comma-separated, e.g. 6301,6302,6303"),
) -> None:
    """Run an embedded NATS JetStream server with the EVENTS and DLQ streams (or one node of a cluster,
    whose streams get one replica per node)."""
    import asyncio

    from integration.broker import BrokerError, EmbeddedNats
    from integration.broker_cluster import ClusterNode, ensure_backbone, validate_size

    server: EmbeddedNats = EmbeddedNats(data_dir, port, sync_always=sync_always, die_with_parent=True)
    replicas = 1
    if node:
        route_ports = [int(p) for p in routes.split(",") if p.strip().isdigit()]
        try:
            validate_size(len(route_ports), "--routes")
        except ValueError as exc:
            _fail(str(exc))
        if cluster_port not in route_ports or not port:
            _fail(f"--node {node}: needs --port and a --cluster-port listed in --routes")
        server = ClusterNode(data_dir, node, port, cluster_port, route_ports, sync_always=sync_always,
                             die_with_parent=True)
        replicas = len(route_ports)
    try:
        url = server.start()
        asyncio.run(ensure_backbone(url, replicas) if node else _single_streams(url))
    except BrokerError as exc:
        server.stop()
        _fail(str(exc))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    typer.echo(f"READY {node or 'broker'} {url}")
    while not stop.is_set() and server.proc is not None and server.proc.poll() is None:
        stop.wait(0.5)
    server.stop()


async def _single_streams(url: str) -> None:
    import nats

    from integration.broker import ensure_streams

    nc = await nats.connect(url)
    await ensure_streams(nc.jetstream())
    await nc.close()


def gateway(
    nats_url: str = typer.Option(..., "--nats", help="broker URL, e.g. nats://127.0.0.1:4222 (a cluster: its URLs "
                                 "joined by commas)"),
    credentials: Path = typer.Option(..., help='JSON file {"admin": key, "plants": {"P01": key}}'),
    port: int = typer.Option(0, help="HTTP port on 127.0.0.1; 0 picks a free one"),
    epoch: float = typer.Option(None, help="Unix time of scenario second 0 (default: now)"),
    speed: float = typer.Option(60.0, help="scenario seconds per wall second"),
    rate_limit: str = typer.Option("2000/s", help="events per second per plant, e.g. 2000/s"),
    max_batch: int = typer.Option(5000, help="most events in one request"),
    workers: int = typer.Option(1, min=1, max=8, help="uvicorn worker processes (rate limit is per worker)"),
) -> None:
    """Run the plant-facing HTTP gateway (FastAPI under uvicorn)."""
    from pydantic import ValidationError

    from integration.gateway import GatewaySettings, create_app
    from integration.gateway.serve import serve, serve_workers

    env = {
        "SYNCTWIN_GATEWAY_NATS_URL": nats_url, "SYNCTWIN_GATEWAY_CREDENTIALS_FILE": str(credentials.resolve()),
        "SYNCTWIN_GATEWAY_RATE_LIMIT": rate_limit, "SYNCTWIN_GATEWAY_MAX_BATCH": str(max_batch),
        "SYNCTWIN_GATEWAY_EPOCH": repr(time.time() if epoch is None else epoch),
        "SYNCTWIN_GATEWAY_SPEED": repr(speed),
    }
    try:
        settings = GatewaySettings(**{k.removeprefix("SYNCTWIN_GATEWAY_").lower(): v for k, v in env.items()})
    except ValidationError as exc:
        _fail("; ".join(f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors()))
    if workers == 1:
        serve(create_app(settings), "gateway", port)
    else:
        serve_workers("integration.gateway.app:app_from_env", "gateway", workers, port, env=env)


def erp(
    kind: str = typer.Option("legacy", help="legacy or cloud: which ERP of the scenario this is"),
    scenario: Path = typer.Option(..., help="scenario YAML (its ERP spec sets latency and rate limit)"),
    db: Path = typer.Option(..., help="SQLite ledger, e.g. RUN_DIR/state/erp-legacy.sqlite"),
    port: int = typer.Option(0, help="HTTP port on 127.0.0.1; 0 picks a free one"),
    epoch: float = typer.Option(None, help="Unix time of scenario second 0 (default: now)"),
    speed: float = typer.Option(60.0, help="scenario seconds per wall second"),
) -> None:
    """Run the ERP twin service: postings into a durable ledger, with outage/slow/rate-limit behaviour."""
    from integration.gateway.serve import serve
    from kernel.clock import ScaledClock
    from live.erp_service import create_erp_app
    from scenarios.loader import ScenarioError, load_scenario

    if kind not in ("legacy", "cloud"):
        _fail(f"--kind: {kind!r} is not an ERP kind; use legacy or cloud")
    if speed <= 0:
        _fail("--speed: must be > 0")
    try:
        spec = load_scenario(scenario)
    except ScenarioError as exc:
        _fail(str(exc))
    clock = ScaledClock(time.time() if epoch is None else epoch, speed)
    app = create_erp_app(kind, spec.erp_for(kind), db, clock, seed=spec.run.seed)
    serve(app, f"erp-{kind}", port)


def opcua_trust(
    cert: Path = typer.Argument(..., help="the client's application certificate, DER or PEM"),
    run_dir: Path = typer.Option(..., help="run folder; the certificate goes to RUN_DIR/state/pki/trusted/"),
) -> None:
    """Trust an OPC UA client's certificate (e.g. UaExpert's) on the plant servers of RUN_DIR.

    Stored as DER in RUN_DIR/state/pki/trusted/, read on every new session (no restart needed).

    The user and password are the "opcua" entry of RUN_DIR/state/credentials.json.
    """
    from live.opcua_security import trust_client_certificate

    try:
        target = trust_client_certificate(cert, run_dir / "state" / "pki")
    except ValueError as exc:
        _fail(str(exc))
    typer.echo(f"trusted {cert} as {target}")


def register(app: typer.Typer) -> None:
    """Add ``broker``, ``gateway``, ``erp`` and ``opcua-trust`` to ``app``."""
    app.command("broker")(broker)
    app.command("gateway")(gateway)
    app.command("erp")(erp)
    app.command("opcua-trust")(opcua_trust)


if __name__ == "__main__":
    _app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    register(_app)
    _app()

"""``synctwin opcua`` and ``synctwin edge``: one plant's OPC UA server and its edge gateway.

Each runs in the foreground, prints ``READY <service> <url>`` once it serves and stops cleanly on
SIGTERM (the edge commits its outbox and state first). Runnable on its own too:
``python -m synctwin.commands.live_plant opcua ...``.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import typer


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def _load(scenario: Path, speed: float):
    from scenarios.loader import ScenarioError, load_scenario

    if speed <= 0:
        _fail("--speed: must be > 0, e.g. --speed 60")
    try:
        return load_scenario(scenario)
    except ScenarioError as exc:
        _fail(str(exc))


def _stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)


def opcua(
    scenario: Path = typer.Option(..., help="scenario YAML holding the plant"),
    plant: str = typer.Option(..., help="plant id, e.g. P01"),
    port: int = typer.Option(0, help="TCP port on 127.0.0.1; 0 picks a free one"),
    insecure: bool = typer.Option(False, help="anonymous, SecurityPolicy None (loopback only)"),
    run_dir: Path = typer.Option(..., help="run folder; certificates go to RUN_DIR/state/pki/"),
    epoch: float = typer.Option(None, help="Unix time of scenario second 0 (default: now)"),
    speed: float = typer.Option(60.0, help="scenario seconds per wall second"),
    tick: float = typer.Option(None, min=0.001, max=10.0,
                               help="wall seconds between publishing passes (default: sampling_interval / speed)"),
) -> None:
    """Serve PLANT's machine bank over OPC UA on the scaled clock.

    Third-party clients (UaExpert, SCADA, node-opcua):

    \b
    - Endpoint: opc.tcp://127.0.0.1:PORT/synctwin/PLANT (printed on the READY line).
    - Policies: Basic256Sha256, modes Sign and SignAndEncrypt; user-name login only.
    - No None endpoint: a None channel serves discovery only; a session on it is refused.
    - The password must be encrypted (token policy Basic256Sha256, RSA-OAEP); clear text is refused.
    - User and password: the "opcua" entry of RUN_DIR/state/credentials.json.
    - Trust the client certificate: synctwin opcua-trust CERT --run-dir RUN_DIR (DER or PEM);
      it is stored as DER in RUN_DIR/state/pki/trusted/ (DER or PEM files copied there work too).
    - Server certificate: RUN_DIR/state/pki/own/server-PLANT-cert.der.
    - --insecure: one anonymous SecurityPolicy None endpoint, on loopback only.
    """
    from live.plant_host import PlantHost

    spec = _load(scenario, speed)
    try:
        host = PlantHost(spec, plant, run_dir, time.time() if epoch is None else epoch, speed, port, insecure, tick)
    except ValueError as exc:
        _fail(str(exc))

    async def main() -> None:
        stop = asyncio.Event()
        _stop_on_signals(stop)
        await host.serve(lambda url: typer.echo(f"READY opcua-{plant} {url}"), stop)

    asyncio.run(main())


def edge(
    scenario: Path = typer.Option(..., help="scenario YAML holding the plant"),
    plant: str = typer.Option(..., help="plant id, e.g. P01"),
    opcua_url: str = typer.Option(..., "--opcua", help="the plant server, e.g. opc.tcp://127.0.0.1:4840/..."),
    gateway: str = typer.Option(..., help="gateway base URL, e.g. http://127.0.0.1:8000"),
    api_key: str = typer.Option(..., help="the plant's gateway key (X-Api-Key)"),
    run_dir: Path = typer.Option(..., help="run folder; the outbox goes to RUN_DIR/state/edge-<plant>.sqlite"),
    epoch: float = typer.Option(None, help="Unix time of scenario second 0 (default: now)"),
    speed: float = typer.Option(60.0, help="scenario seconds per wall second"),
    insecure: bool = typer.Option(False, help="connect anonymously with SecurityPolicy None"),
    batch_size: int = typer.Option(200, min=1, max=10_000, help="events per gateway post"),
    plant_api_port: int = typer.Option(None, min=0, max=65535, help="also run the plant's WMS and serve its "
                                       "endpoint for enterprise messages (quality holds) on 127.0.0.1:PORT"),
) -> None:
    """Subscribe to PLANT's OPC UA server, turn counters into business events, forward them."""
    from kernel.clock import ScaledClock
    from live.edge import Edge, EdgeConfig
    from live.opcua_server import access_for_run
    from live.plant_wms import WmsConfig

    spec = _load(scenario, speed)
    if not opcua_url.startswith("opc.tcp://"):
        _fail(f"--opcua: {opcua_url!r} is not an OPC UA endpoint; write opc.tcp://HOST:PORT/...")
    if not gateway.startswith(("http://", "https://")):
        _fail(f"--gateway: {gateway!r} is not an HTTP URL; write e.g. http://127.0.0.1:8000")
    try:
        config = EdgeConfig.from_scenario(spec, plant)
    except ValueError as exc:
        _fail(str(exc))
    clock = ScaledClock(time.time() if epoch is None else epoch, speed)

    async def main() -> None:
        stop = asyncio.Event()
        _stop_on_signals(stop)
        node = Edge(
            config,
            run_dir,
            opcua_url,
            gateway,
            api_key,
            clock,
            access_for_run(run_dir, insecure),
            batch_size=batch_size,
            wms=None if plant_api_port is None else WmsConfig.from_scenario(spec, plant),
            api_port=plant_api_port,
        )
        await node.run(stop, lambda: typer.echo(f"READY edge-{plant} {node.store.path.resolve().as_uri()}"))

    asyncio.run(main())


def register(app: typer.Typer) -> None:
    """Add ``opcua`` and ``edge`` to ``app``."""
    app.command("opcua")(opcua)
    app.command("edge")(edge)


if __name__ == "__main__":
    _app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    register(_app)
    _app()

"""``synctwin discover`` and ``synctwin onboard``: a new plant from its OPC UA server to a readiness verdict.

Exit codes: discover 0 (machines found), 1 (no machine or a machine misses a required signal),
2 (bad options, unreachable server); onboard 0 ready (warnings listed), 1 not ready, 2 unreadable input.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

PASSWORD_ENV = "SYNCTWIN_OPCUA_PASSWORD"


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def discover_command(
    url: Annotated[str, typer.Argument(help="the plant's endpoint, e.g. opc.tcp://plant:4840")],
    out: Annotated[Path, typer.Option("-o", "--out", help="plant file to write")] = Path("plant.yaml"),
    plant: Annotated[str, typer.Option(help="plant id the gateway and the ERP will know it by")] = "NEW",
    user: Annotated[str | None, typer.Option(help="OPC UA user name")] = None,
    password: Annotated[str | None, typer.Option(help=f"OPC UA password (or set {PASSWORD_ENV})")] = None,
    security: Annotated[str | None, typer.Option(help="policy,mode e.g. Basic256Sha256,SignAndEncrypt")] = None,
    cert: Annotated[Path | None, typer.Option(help="client certificate (DER) the plant trusts")] = None,
    key: Annotated[Path | None, typer.Option(help="private key (PEM) of --cert")] = None,
    profile: Annotated[Path | None, typer.Option(help="mapping profile (default onboarding/profiles/default.yaml)")]
    = None,
) -> None:
    """Browse a plant's OPC UA server and write its plant file: machines and the node ids of their signals."""
    from onboarding.discover import as_endpoint, discover, summary_lines
    from onboarding.opcua_access import parse_security
    from onboarding.plant_file import PlantFileError, dump_plant
    from onboarding.profile import load_profile

    if not url.startswith("opc.tcp://"):
        _fail(f"URL: {url!r} is not an OPC UA endpoint; write opc.tcp://HOST:PORT[/path]")
    if (cert is None) != (key is None):
        _fail("--cert and --key go together (the certificate and its private key)")
    try:
        policy, mode = parse_security(security)
        prof = load_profile(profile)
    except (ValueError, PlantFileError) as exc:
        _fail(str(exc))
    endpoint = as_endpoint(url, policy, mode, user, PASSWORD_ENV if user else None,
                           str(cert.resolve()) if cert else None, str(key.resolve()) if key else None)
    if password is not None:  # used for this connection only; the plant file names the variable
        endpoint = endpoint.model_copy(update={"password": password})
    pki = out.resolve().parent / f"{out.stem}.pki"
    try:
        plant_file, notes = asyncio.run(discover(endpoint, plant, prof, pki))
    except LookupError as exc:
        _fail(str(exc), 1)
    except Exception as exc:  # noqa: BLE001 - connection and security errors end here with their cause
        hint = ""
        if "Untrusted" in type(exc).__name__ or "Untrusted" in str(exc):
            hint = f"; the server does not trust the client certificate: have it trust {pki}/own/*-cert.der"
        _fail(f"could not browse {url}: {type(exc).__name__}: {exc}{hint}")
    plant_file.endpoint = plant_file.endpoint.model_copy(update={"password": None})
    out.write_text(dump_plant(plant_file))
    for line in summary_lines(plant_file, prof):
        typer.echo(line)
    for note in notes:
        typer.echo(f"note: {note}")
    if user:
        typer.echo(f"note: the password is read from ${PASSWORD_ENV} (plant file: endpoint.password_env)")
    typer.echo(f"plant file: {out} ({len(plant_file.machines)} machines); fill in master_data, then "
               f"`synctwin onboard {out}`")
    missing = [m.name for m in plant_file.machines if any(u.signal in prof.required for u in m.unbound)]
    if missing:
        _fail(f"required signals missing on: {', '.join(missing)}", 1)


def onboard_command(
    plant_file: Annotated[Path, typer.Argument(help="plant file written by `synctwin discover`")],
    into: Annotated[Path | None, typer.Option(
        help="fleet scenario the plant joins: ERP item master, plants, SLAs (default scenarios/library/baseline.yaml)")]
    = None,
    wave: Annotated[str | None, typer.Option(help="rollout wave of --into the plant joins, e.g. wave-3")] = None,
    gateway: Annotated[str | None, typer.Option(help="the team's own gateway URL (default: an embedded one)")]
    = None,
    out: Annotated[Path | None, typer.Option(help="folder for onboarding.html/.json (default runs/onboard-<id>)")]
    = None,
    pilot_minutes: Annotated[float, typer.Option(min=0, help="pilot length in wall minutes (0: no pilot)")] = 2.0,
    pilot_interval: Annotated[str, typer.Option(help="edge confirmation interval during the pilot")] = "10s",
    replications: Annotated[int, typer.Option(min=1, help="capacity: Monte Carlo replications")] = 5,
    capacity_duration: Annotated[str | None, typer.Option(help="capacity: simulated time (default the fleet's)")]
    = None,
    profile: Annotated[Path | None, typer.Option(help="mapping profile (state names), as for discover")] = None,
    capacity: Annotated[bool, typer.Option(help="run the fleet with the plant in the virtual engine")] = True,
) -> None:
    """Check a new plant's readiness (master data, contract, security, connectivity, capacity, pilot)."""
    from onboarding.plant_file import PlantFileError, load_plant
    from onboarding.run import OnboardOptions, fleet_scenario, run_onboarding
    from scenarios.loader import ScenarioError
    from scenarios.units import parse_duration

    try:
        plant = load_plant(plant_file)
        fleet = fleet_scenario(into, plant, wave)
        interval = parse_duration(pilot_interval)
        duration = parse_duration(capacity_duration) if capacity_duration else None
    except PlantFileError as exc:
        _fail(str(exc))
    except ScenarioError as exc:
        _fail(str(exc))
    except ValueError as exc:
        _fail(str(exc))
    folder = out or Path("runs") / f"onboard-{plant.plant.id}"
    options = OnboardOptions(gateway=gateway, pilot_minutes=pilot_minutes, pilot_interval=interval,
                             replications=replications, capacity_duration=duration, wave=wave,
                             pki_dir=plant_file.resolve().parent / f"{plant_file.stem}.pki", profile=profile,
                             capacity=capacity)
    result = run_onboarding(plant, fleet, folder, options, typer.echo)
    typer.echo(f"onboarding report: {folder / 'onboarding.html'}")
    for row in result.rows:
        if row.verdict != "pass":
            typer.echo(f"{row.verdict.upper():5} {row.check}: {row.name}: {row.evidence}"
                       + (f" -> fix: {row.fix}" if row.fix else ""))
    typer.echo(f"VERDICT {result.verdict}")
    raise typer.Exit(0 if result.ready else 1)


def register(app: typer.Typer) -> None:
    """Add ``discover`` and ``onboard`` to ``app``."""
    app.command("discover")(discover_command)
    app.command("onboard")(onboard_command)

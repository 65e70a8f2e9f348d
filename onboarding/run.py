"""``synctwin onboard``: every readiness check in order, then ``onboarding.json`` and ``onboarding.html``.

Order: master data (no I/O), the plant's OPC UA endpoint (security, connectivity), the gateway
(contract and segmentation: the embedded one, or ``--gateway``), the pilot through the embedded
integration layer, and last the capacity runs of the virtual engine (CPU-heavy, so nothing else
runs beside them). A check that cannot run is a failing row with its reason, never a crash.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kernel.clock import ScaledClock
from onboarding.checks.capacity import check_capacity
from onboarding.checks.contract import GatewayTarget, check_contract, check_gateway_security
from onboarding.checks.master_data import check_master_data
from onboarding.checks.opcua import check_connectivity, check_endpoint_security
from onboarding.checks.pilot import check_pilot
from onboarding.fleet import Fleet, fleet_scenario
from onboarding.html import render
from onboarding.plant_file import PlantFile
from onboarding.profile import load_profile
from onboarding.services import Embedded
from onboarding.verdict import FAIL, WARN, Result, Row

__all__ = ["OnboardOptions", "fleet_scenario", "run_onboarding"]


@dataclass(frozen=True)
class OnboardOptions:
    gateway: str | None = None
    pilot_minutes: float = 2.0
    pilot_interval: float = 10.0
    replications: int = 5
    capacity_duration: float | None = None
    wave: str | None = None
    pki_dir: Path = Path("plant.pki")
    profile: Path | None = None
    capacity: bool = True


def _guarded(check: str, name: str, fix: str, work: Callable[[], list[Row]]) -> list[Row]:
    """``work()``'s rows, or one failing row naming the error (a check that cannot run is not a pass)."""
    try:
        return work()
    except Exception as exc:  # noqa: BLE001 - reported as a finding, with the exception's text as evidence
        return [Row(check, name, FAIL, f"could not run: {type(exc).__name__}: {exc}", fix)]


def _external_target(plant: PlantFile, url: str, fleet: Fleet) -> GatewayTarget | Row:
    key = plant.gateway.resolved_key()
    if not key:
        return Row("contract", "gateway key", FAIL, f"no API key for {url}",
                   "set gateway.api_key_env in the plant file to the variable holding the plant's key")
    other = plant.gateway.other_plant or next(iter(p.id for p in fleet.base.landscape.all_plants), "P01")
    return GatewayTarget(url, key, other)


def run_onboarding(plant: PlantFile, fleet: Fleet, out: Path, options: OnboardOptions,
                   log: Callable[[str], None] = print) -> Result:
    """Run every check, write ``onboarding.json`` and ``onboarding.html`` into ``out``; return the result."""
    out = Path(out).resolve()  # services run in the project folder: every path they get is absolute
    out.mkdir(parents=True, exist_ok=True)
    profile = load_profile(options.profile)
    result = Result(plant.plant.id)
    rows = result.rows
    log(f"onboarding {plant.plant.id} into {fleet.source}" + (f" (wave {fleet.wave})" if fleet.wave else ""))
    rows += _guarded("master data", "master data", "", lambda: check_master_data(plant, fleet.base))
    log("  master data checked; OPC UA endpoint ...")
    rows += _guarded("security", "endpoint security", "", lambda: asyncio.run(check_endpoint_security(plant)))
    rows += _guarded("connectivity", "connectivity", "",
                     lambda: asyncio.run(check_connectivity(plant, profile, options.pki_dir)))
    opcua_ok = not any(r.verdict == FAIL and r.name in ("OPC UA login", "connectivity") for r in rows)
    fleet_plants = [p.id for p in fleet.base.landscape.all_plants]
    epoch = time.time()
    log("  starting the embedded integration layer (broker, gateway) ...")
    with Embedded(out / "state", [*fleet_plants, plant.plant.id], epoch=epoch, speed=1.0) as embedded:
        def start_gateway() -> list[Row]:
            embedded.start_gateway()
            return []

        started = _guarded("contract", "embedded gateway", "see the logs under state/logs", start_gateway)
        rows += started
        if options.gateway:
            target = _external_target(plant, options.gateway, fleet)
        elif not started:
            target = GatewayTarget(embedded.urls["gateway"], embedded.key(plant.plant.id), fleet_plants[0])
        else:
            target = None
        if isinstance(target, Row):
            rows.append(target)
        elif target is not None:
            log(f"  contract and segmentation against {target.url} ...")
            stored: list[str | None] = [None]

            def contract() -> list[Row]:
                found, stored[0] = check_contract(plant, target)
                return found

            rows += _guarded("contract", "contract", "", contract)
            rows += _guarded("security", "gateway segmentation", "",
                             lambda: check_gateway_security(plant, target, stored[0]))
        rows += _pilot(plant, fleet, profile, options, embedded, epoch, opcua_ok and not started, out, result, log)
    if not options.capacity:
        rows.append(Row("capacity", "capacity", WARN, "no capacity run (--no-capacity)",
                        "run onboard with capacity before go-live"))
        write(result, out)
        return result
    log(f"  capacity: the fleet plus {plant.plant.id} in the virtual engine ...")

    def capacity() -> list[Row]:
        found, result.figures["capacity"] = check_capacity(fleet, plant.plant.id, out / "capacity",
                                                           options.replications, options.capacity_duration)
        return found

    rows += _guarded("capacity", "capacity run", "see the capacity run's folder", capacity)
    write(result, out)
    return result


def _pilot(plant: PlantFile, fleet: Fleet, profile, options: OnboardOptions, embedded: Embedded, epoch: float,
           can_run: bool, out: Path, result: Result, log: Callable[[str], None]) -> list[Row]:
    if options.pilot_minutes <= 0:
        return [Row("pilot", "pilot", WARN, "no pilot was run (--pilot-minutes 0)",
                    "run onboard with --pilot-minutes 2 or more before go-live")]
    if not can_run:
        return [Row("pilot", "pilot", FAIL, "not run: the plant's OPC UA endpoint or the gateway is not usable",
                    "fix the failing connectivity and security rows first")]
    log(f"  pilot: {options.pilot_minutes:g} min on the plant's server through the embedded layer ...")
    scenario = fleet.combined.model_copy(update={"rollout": fleet.combined.rollout.model_copy(update={"waves": []})})

    def pilot() -> list[Row]:
        erp_url = embedded.start_chain(scenario, plant.erp)
        found, result.figures["pilot"] = check_pilot(
            plant, fleet, profile, options.pki_dir, out / "state", embedded.urls["gateway"],
            (embedded.key(plant.plant.id), embedded.credentials["admin"]), erp_url, ScaledClock(epoch, 1.0),
            options.pilot_minutes, options.pilot_interval)
        return found

    return _guarded("pilot", "pilot", "see the logs under state/logs", pilot)


def write(result: Result, out: Path) -> None:
    """``onboarding.json`` (the rows, failing first) and ``onboarding.html``."""
    (out / "onboarding.json").write_text(json.dumps(result.as_json(), indent=2, default=str) + "\n")
    (out / "onboarding.html").write_text(render(result), encoding="utf-8")

"""``synctwin onboard``: every readiness check, then ``onboarding.json`` and ``onboarding.html``.

Order: master data (no I/O), the plant's OPC UA endpoint (security, connectivity), the gateway
(contract and segmentation: the embedded one, or ``--gateway``), then the pilot through the embedded
integration layer on a thread of its own while the capacity runs of the virtual engine use this one
(the pilot mostly waits on the plant's wall clock). A check that cannot run is a failing row with its
reason, never a crash.
"""

from __future__ import annotations

import asyncio
import json
import threading
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
        gateway_ok = _gateway_checks(plant, fleet, options, embedded, rows, log)
        pilot = _start_pilot(plant, fleet, profile, options, embedded, epoch, opcua_ok and gateway_ok, out,
                             result, log)
        # The pilot mostly waits on the plant's wall clock: the capacity runs meanwhile, on this thread
        # (Ray starts only from the main thread).
        rows += _capacity(plant, fleet, options, out, result, log)
        rows += pilot.join()
    write(result, out)
    return result


def _gateway_checks(plant: PlantFile, fleet: Fleet, options: OnboardOptions, embedded: Embedded, rows: list[Row],
                    log: Callable[[str], None]) -> bool:
    """Start the embedded gateway, then the contract and segmentation rows (against ``--gateway`` if given)."""
    def start_gateway() -> list[Row]:
        embedded.start_gateway()
        return []

    started = _guarded("contract", "embedded gateway", "see the logs under state/logs", start_gateway)
    rows += started
    if started:
        return False
    target = (_external_target(plant, options.gateway, fleet) if options.gateway else
              GatewayTarget(embedded.urls["gateway"], embedded.key(plant.plant.id),
                            next(p.id for p in fleet.base.landscape.all_plants)))
    if isinstance(target, Row):
        rows.append(target)
        return True
    log(f"  contract and segmentation against {target.url} ...")
    stored: list[str | None] = [None]

    def contract() -> list[Row]:
        found, stored[0] = check_contract(plant, target)
        return found

    rows += _guarded("contract", "contract", "", contract)
    rows += _guarded("security", "gateway segmentation", "", lambda: check_gateway_security(plant, target, stored[0]))
    return True


def _capacity(plant: PlantFile, fleet: Fleet, options: OnboardOptions, out: Path, result: Result,
              log: Callable[[str], None]) -> list[Row]:
    if not options.capacity:
        return [Row("capacity", "capacity", WARN, "no capacity run (--no-capacity)",
                    "run onboard with capacity before go-live")]
    log(f"  capacity: the fleet plus {plant.plant.id} in the virtual engine ...")

    def capacity() -> list[Row]:
        found, result.figures["capacity"] = check_capacity(fleet, plant.plant.id, out / "capacity",
                                                           options.replications, options.capacity_duration)
        return found

    return _guarded("capacity", "capacity run", "see the capacity run's folder", capacity)


class _Background:
    """Rows computed on a thread of their own; ``join()`` returns them."""

    def __init__(self, work: Callable[[], list[Row]] | None = None, rows: list[Row] | None = None):
        self.rows = rows or []
        self.thread = threading.Thread(target=self._run, args=(work,), daemon=True) if work else None
        if self.thread is not None:
            self.thread.start()

    def _run(self, work: Callable[[], list[Row]]) -> None:
        self.rows = work()

    def join(self) -> list[Row]:
        if self.thread is not None:
            self.thread.join()
        return self.rows


def _start_pilot(plant: PlantFile, fleet: Fleet, profile, options: OnboardOptions, embedded: Embedded,
                 epoch: float, can_run: bool, out: Path, result: Result, log: Callable[[str], None]) -> _Background:
    if options.pilot_minutes <= 0:
        return _Background(rows=[Row("pilot", "pilot", WARN, "no pilot was run (--pilot-minutes 0)",
                                     "run onboard with --pilot-minutes 2 or more before go-live")])
    if not can_run:
        return _Background(rows=[Row("pilot", "pilot", FAIL, "not run: the plant's OPC UA endpoint or the "
                                     "gateway is not usable", "fix the failing connectivity and security rows first")])
    scenario = fleet.combined.model_copy(update={"rollout": fleet.combined.rollout.model_copy(update={"waves": []})})
    erp: list[str] = []

    def start_chain() -> list[Row]:  # on the main thread: services die with the thread that started them
        erp.append(embedded.start_chain(scenario, plant.erp))
        return []

    failed = _guarded("pilot", "pilot", "see the logs under state/logs", start_chain)
    if failed:
        return _Background(rows=failed)
    log(f"  pilot: {options.pilot_minutes:g} min on the plant's server through the embedded layer (in the "
        "background) ...")

    def pilot() -> list[Row]:
        found, result.figures["pilot"] = check_pilot(
            plant, fleet, profile, options.pki_dir, out / "state", embedded.urls["gateway"],
            (embedded.key(plant.plant.id), embedded.credentials["admin"]), erp[0], ScaledClock(epoch, 1.0),
            options.pilot_minutes, options.pilot_interval)
        log("  pilot finished")
        return found

    return _Background(lambda: _guarded("pilot", "pilot", "see the logs under state/logs", pilot))


def write(result: Result, out: Path) -> None:
    """``onboarding.json`` (the rows, failing first) and ``onboarding.html``."""
    (out / "onboarding.json").write_text(json.dumps(result.as_json(), indent=2, default=str) + "\n")
    (out / "onboarding.html").write_text(render(result), encoding="utf-8")

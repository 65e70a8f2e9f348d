"""``run.json``: the one typed record of a run, written by both engines and read by every report.

:class:`RunRecord` is the contract; :func:`run_record` builds the fields both engines share from the
scenario (plants, faults, waves, bursts, SLAs, version) so they cannot drift apart, and each engine
adds what only it knows (the virtual engine: replications; the live engine: speed, epoch, services,
events); both record their circuit breakers' transitions. :func:`write_run_folder` (in
:mod:`kernel.run_folder`) writes it.
All times are scenario seconds.
"""

from __future__ import annotations

from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from kernel.routing import Routing
from scenarios.spec import Scenario


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PlantRecord(_Record):
    """A plant of the landscape as the run saw it."""

    id: str
    erp: str = ""
    lines: int = 0
    machines: int = 0
    schema_version: str = ""


class FaultRecord(_Record):
    """A fault that began inside the run: [start, end) in scenario seconds (end = start when instant)."""

    kind: str
    start: float
    end: float
    erp: str = "all"
    plants: list[str] | Literal["all"] = "all"
    target: str | None = None
    factor: float | None = Field(None, description="erp_slow: service time multiplier")
    rate: float | None = Field(None, description="broker_redelivery: share delivered twice")


class WaveRecord(_Record):
    """A rollout wave: from ``at`` on, ``plants`` post to ``erp``."""

    name: str
    at: float
    plants: list[str]
    erp: str


class BurstRecord(_Record):
    """A load burst that began inside the run: ``rate`` extra ``flow`` events per second per plant."""

    flow: str
    start: float
    end: float
    rate: float
    plants: list[str] | Literal["all"] = "all"


class RunRecord(_Record):
    """The content of ``run.json``. Fields after ``notes`` are set by one engine only."""

    run_id: str
    engine: Literal["virtual", "live"]
    duration: float = Field(gt=0, description="scenario seconds the run covered")
    start_clock: datetime = Field(description="wall-clock date of scenario second 0, for the charts")
    scenario: str = ""
    version: str = ""
    seed: int | None = None
    replications: int = Field(1, ge=1)
    wall_seconds: float = 0.0
    created_at: str = ""
    plants: list[PlantRecord] = []
    erp: list[str] = Field([], description="ERP kinds the rollout routes to")
    faults: list[FaultRecord] = []
    waves: list[WaveRecord] = []
    bursts: list[BurstRecord] = []
    slas: dict[str, Any] | None = Field(None, description="the SLA thresholds the run was judged with")
    counts: dict[str, int] = {}
    notes: list[str] = []
    breaker: list[dict[str, Any]] = Field([], description="circuit-breaker transitions (replication, target, t, "
                                          "state; a live run adds the worker)")
    # virtual engine
    transactions: int | None = None
    # live engine
    speed: float | None = None
    epoch: float | None = Field(None, description="Unix time of scenario second 0")
    drained: bool | None = None
    interrupted_at: float | None = None
    warmup: float | None = None
    plant_host: str | None = None
    services: dict[str, dict[str, Any]] = {}
    ray_pids: list[int] = []
    events: list[dict[str, Any]] = []

    def json_dict(self, written: bool = False) -> dict[str, Any]:
        """The record as a JSON object: every field (with its default where absent), or with ``written``
        what goes into ``run.json``: the fields that were set (an engine omits the other engine's)."""
        return self.model_dump(mode="json", exclude_unset=written)


def package_version() -> str:
    """The installed synctwin version (without importing the CLI package)."""
    try:
        return version("synctwin")
    except PackageNotFoundError:
        return "unknown"


def burst_windows(scenario: Scenario, until: float | None = None) -> list[dict]:
    """The load bursts that begin before ``until`` (default: the run's end) in scenario seconds;
    a burst planned after the run ended never happened."""
    end = scenario.run.duration if until is None else until
    return [{"flow": b.flow, "start": b.at, "end": b.at + b.duration, "rate": b.rate, "plants": b.plants}
            for b in scenario.load.bursts if b.at < end]


def fault_windows(scenario: Scenario, until: float) -> list[dict]:
    """The faults that began before ``until``: only these happened; the report judges recovery from them."""
    return [{"kind": f.kind, "start": f.at, "end": f.at + f.duration, "erp": f.erp, "plants": f.plants,
             "target": f.target, **({"factor": f.factor} if f.kind == "erp_slow" else {}),
             **({"rate": f.rate} if f.kind == "broker_redelivery" else {})} for f in scenario.faults if f.at < until]


def run_record(scenario: Scenario, *, run_id: str, engine: str, duration: float | None = None,
               replications: int = 1, wall_seconds: float = 0.0, **engine_fields: Any) -> RunRecord:
    """The run record of ``scenario``: the shared fields from the scenario, then ``engine_fields``.

    ``duration`` defaults to the scenario's (a live run cut short covers less)."""
    end = scenario.run.duration if duration is None else float(duration)
    plants = [PlantRecord(id=p.id, erp=p.erp, lines=p.lines, machines=p.lines * p.machines_per_line,
                          schema_version=p.schema_version) for p in scenario.landscape.all_plants]
    return RunRecord.model_validate({
        "run_id": run_id, "engine": engine, "duration": end, "start_clock": scenario.run.start_clock,
        "scenario": scenario.name, "version": package_version(), "seed": scenario.run.seed,
        "replications": replications,
        "wall_seconds": round(wall_seconds, 3), "created_at": datetime.now().isoformat(timespec="seconds"),
        "plants": plants, "erp": sorted(Routing.of(scenario).kinds()),
        "faults": fault_windows(scenario, end),
        "waves": [w.model_dump(mode="json") for w in scenario.rollout.waves],
        "bursts": burst_windows(scenario, end),
        "slas": scenario.slas.model_dump(mode="json"),
        **engine_fields,
    })

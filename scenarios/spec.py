"""Scenario files: the pydantic model of ARCHITECTURE §5.

Every model forbids unknown keys, so a typo is an error that names its path rather than a silently
ignored setting. Durations and rates accept human units (see :mod:`scenarios.units`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from scenarios.units import Duration, Rate


class Strict(BaseModel):
    """Base of every scenario section: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------------------------- run
class RunSpec(Strict):
    duration: Duration = Field(86400.0, gt=0, description="simulated time, e.g. 8h or 7d")
    seed: int = Field(42, ge=0)
    replications: int = Field(1, ge=1, le=1000)
    mode: Literal["virtual", "live"] = "virtual"
    speed: float = Field(60.0, gt=0, description="live engine: simulated seconds per wall second")
    window: Duration = Field(3600.0, gt=0, description="virtual engine: conservative time window")
    start_clock: datetime = Field(
        datetime(2026, 1, 5, 6, 0), description="wall-clock time of scenario second 0, for reports"
    )


# ---------------------------------------------------------------------------------------- landscape
class LatencySpec(Strict):
    """A latency distribution: exponential around ``mean``, or lognormal with shape ``sigma``."""

    mean: Duration = Field(0.2, ge=0)
    distribution: Literal["exponential", "lognormal", "constant"] = "exponential"
    sigma: float = Field(0.5, gt=0)


class ErpSpec(Strict):
    """One ERP system: a single posting server of the given capacity, optionally rate limited."""

    kind: Literal["legacy", "cloud"] = "legacy"
    service: LatencySpec = LatencySpec()
    rate_limit: Rate | None = Field(None, gt=0, description="API calls per second (cloud ERP)")
    network_latency: Duration = Field(0.02, ge=0)


class RetrySpec(Strict):
    initial: Duration = Field(1.0, gt=0)
    multiplier: float = Field(2.0, ge=1.0)
    max_delay: Duration = Field(300.0, gt=0)
    max_attempts: int = Field(20, ge=1)
    jitter: float = Field(0.2, ge=0, le=1, description="share of each delay drawn at random")


class BreakerSpec(Strict):
    failure_threshold: int = Field(5, ge=1)
    cooldown: Duration = Field(30.0, gt=0)
    replay_openings: dict[Literal["legacy", "cloud"], list[float | None]] = Field(
        {}, description="virtual engine: openings observed in a live run, per ERP kind and outage window (scenario "
        "seconds after the window starts; null where it did not open). `synctwin run --calibration` sets them at "
        "the live run's speed: a live opening depends on the jitter its lanes' retries drew, which no other run "
        "draws alike")


class BrokerSpec(Strict):
    latency: Duration = Field(0.005, ge=0)
    redelivery_rate: float = Field(0.0, ge=0, le=1, description="share of messages delivered twice")
    ack_wait: Duration = Field(30.0, gt=0, description="a message not acked by then is redelivered")


class HopsSpec(Strict):
    """Service times of the integration layer's hops in scenario seconds (virtual engine), each on top of
    the intervals and latencies set elsewhere. Zero by default; ``synctwin calibrate`` fits them from a
    live run and ``synctwin run --calibration`` sets them."""

    edge: LatencySpec = Field(LatencySpec(mean=0.0), description="t_created -> t_edge: OPC UA sampling and "
                              "publishing, the edge's scan and confirmation")
    edge_to_broker: LatencySpec = Field(LatencySpec(mean=0.0), description="t_edge -> t_broker: the edge's "
                                        "flush and post, the gateway, the broker's store")
    broker_to_erp: LatencySpec = Field(LatencySpec(mean=0.0), description="t_broker -> ERP arrival: the "
                                       "worker's pull and batching, its request to the ERP")
    erp: LatencySpec = Field(LatencySpec(mean=0.0), description="ERP service start -> t_delivered beyond the "
                             "ERP's configured service: its handling of the request and the ledger's commit "
                             "(a delay, not queued: the live ERP spreads it over a batch)")
    downlink: LatencySpec = Field(LatencySpec(mean=0.0), description="a QMS disposition -> the plant's WMS beyond "
                                  "the broker and WAN latencies: the QMS's publishing, the downlink's delivery, "
                                  "the plant's apply")
    lane_batch: LatencySpec = Field(LatencySpec(mean=0.0), description="per posting a closing breaker releases, "
                                    "beyond the ERP's service: the worker's building and the ERP's handling of "
                                    "the large lane batches of a drain (mean only)")
    breaker_probe: LatencySpec = Field(LatencySpec(mean=0.0), description="an open breaker's probe beyond its "
                                       "cooldown and the lanes' retry jitter: a waiting lane's late wake-up (mean "
                                       "only)")


class LoadReplaySpec(Strict):
    """How busy a live run's chain was over its scenario time: a factor on the chain hops' draws per bin."""

    bin: Duration = Field(60.0, gt=0, description="scenario seconds per factor")
    factors: list[float] = Field([], description="per bin from scenario time 0; 1 after the last")

    @field_validator("factors")
    @classmethod
    def _positive(cls, value: list[float]) -> list[float]:
        bad = [f for f in value if not f > 0]
        if bad:
            raise ValueError(f"load factors must be positive, got {bad[0]}; write each bin's factor as a number > 0")
        return value


class IntegrationSpec(Strict):
    idempotency: bool = Field(True, description="idempotency keys + processed-key store")
    retry: RetrySpec = RetrySpec()
    circuit_breaker: BreakerSpec = BreakerSpec()
    broker: BrokerSpec = BrokerSpec()
    quality_gate: bool = Field(True, description="goods receipt and shipment wait for quality release")
    hops: HopsSpec = HopsSpec()
    brokers: int = Field(1, description="live engine: JetStream nodes, 1 or a cluster of 3 (or 5, ...) with every "
                         "stream replicated on each node")
    replay_edge_resumes: dict[str, list[float | None]] = Field(
        {}, description="virtual engine: per plant id and WAN outage window, when a live run's edge posted again "
        "(scenario seconds after the window ends; null: the model's first retry). `synctwin run --calibration` sets "
        "them at the live run's speed: a live edge's retries count from its first failed post, i.e. from whichever "
        "event came first in that run")
    replay_load: LoadReplaySpec = Field(
        LoadReplaySpec(), description="virtual engine: a live run's chain load over time, as factors on the chain "
        "hops (edge to ERP answer). `synctwin run --calibration` sets them at the live run's speed: how busy the "
        "machine was, second by second, is the live run's own")

    @field_validator("brokers")
    @classmethod
    def _quorum(cls, value: int) -> int:
        if value != 1 and (value < 3 or value % 2 == 0):
            raise ValueError(f"{value} brokers cannot keep a JetStream quorum through a node loss; use 1 (one "
                             "broker) or an odd number from 3, e.g. brokers: 3")
        return value


class ItemSpec(Strict):
    """An ERP-owned item master record (canonical code)."""

    unit: str = "EA"
    inspection: bool = False
    hold_rate: float = Field(0.0, ge=0, le=1, description="share of inspected lots put on hold")


class UnitMapping(Strict):
    to: str
    factor: float = Field(1.0, gt=0)


class MappingSpec(Strict):
    """Plant codes to canonical codes. An item or unit missing here is dead-lettered, never dropped."""

    items: dict[str, str] = {}
    units: dict[str, UnitMapping] = {}


class WanSpec(Strict):
    latency: Duration = Field(0.04, ge=0)


class EdgeSpec(Strict):
    buffer: int = Field(1_000_000, ge=1, description="store-and-forward capacity in events")
    overflow: Literal["block", "drop_oldest", "drop_newest"] = "block"
    drain_rate: Rate = Field(500.0, gt=0, description="events per second forwarded after an outage")
    # Scenario-time settings of the live chain; a live run divides them by its speed (kernel/trace.py).
    sampling_interval: Duration = Field(1.0, gt=0, description="the PLC's OPC UA server updates its values this often")
    publishing_interval: Duration = Field(1.0, gt=0, description="the edge's OPC UA subscription publishes this often")
    scan_interval: Duration = Field(1.0, gt=0, description="the edge turns readings into confirmed events this often")
    flush_interval: Duration = Field(1.0, gt=0, description="an idle edge looks for new outbox rows this often")
    retry_initial: Duration = Field(1.0, gt=0, description="first wait before the edge posts a failed batch again")
    retry_max: Duration = Field(60.0, gt=0, description="longest wait between the edge's posting attempts")


class PlantSpec(Strict):
    """One plant, or with ``count`` a templated group of plants named ``{id}01``, ``{id}02`` ..."""

    id: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]*$")
    count: int | None = Field(None, ge=1, le=500)
    name: str | None = None
    lines: int = Field(2, ge=1, le=100)
    machines_per_line: int = Field(5, ge=1, le=500)
    cycle_time: Duration = Field(60.0, gt=0)
    scrap_rate: float = Field(0.02, ge=0, lt=1)
    mtbf: Duration = Field(8 * 3600.0, gt=0, description="mean running time between breakdowns")
    mttr: Duration = Field(20 * 60.0, gt=0)
    products: list[str] = Field(default_factory=lambda: ["FG-100"], min_length=1)
    unit: str = "EA"
    component_unit: str | None = Field(None, description="unit of backflush/material issues (default load's)")
    mapping: MappingSpec = MappingSpec()
    schema_version: Literal["v1", "v2"] = "v1"
    erp: Literal["legacy", "cloud"] = "legacy"
    wan: WanSpec = WanSpec()
    edge: EdgeSpec = EdgeSpec()

    def expand(self) -> list[PlantSpec]:
        """The plants this entry stands for (itself, or ``count`` numbered copies)."""
        if self.count is None:
            return [self]
        width = max(2, len(str(self.count)))
        return [
            self.model_copy(update={"id": f"{self.id}{i:0{width}d}", "count": None})
            for i in range(1, self.count + 1)
        ]


class LandscapeSpec(Strict):
    erp: ErpSpec = ErpSpec()
    cloud_erp: ErpSpec | None = None
    items: dict[str, ItemSpec] = Field(
        default_factory=lambda: {"FG-100": ItemSpec(), "RM-10": ItemSpec(unit="KG")}
    )
    integration: IntegrationSpec = IntegrationSpec()
    plants: list[PlantSpec] = Field(min_length=1)

    @property
    def all_plants(self) -> list[PlantSpec]:
        """Plants with templated groups expanded, in file order."""
        return [p for entry in self.plants for p in entry.expand()]

    @model_validator(mode="after")
    def _unique_plants(self) -> LandscapeSpec:
        ids = [p.id for p in self.all_plants]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"plant ids must be unique; repeated: {', '.join(dupes)}")
        return self


# --------------------------------------------------------------------------------------------- load
class ShiftSpec(Strict):
    length: Duration = Field(8 * 3600.0, gt=0)
    change_burst_duration: Duration = Field(15 * 60.0, ge=0)
    change_burst_factor: float = Field(3.0, ge=1)


class BurstSpec(Strict):
    at: Duration
    duration: Duration = Field(gt=0)
    flow: Literal["backflush", "material_issue", "inventory_move", "operation_confirmation"] = "backflush"
    rate: Rate = Field(gt=0, description="extra events per second per plant")
    plants: list[str] | Literal["all"] = "all"


class LoadSpec(Strict):
    confirmation_interval: Duration = Field(300.0, gt=0, description="each machine confirms output this often")
    lot_size: int = Field(200, ge=1, description="good units per completed lot, per line")
    orders: Rate = Field(1 / 3600, ge=0, description="production orders released per line")
    material_issues: Rate = Field(4 / 3600, ge=0, description="per line")
    inventory_moves: Rate = Field(20 / 3600, ge=0, description="per plant")
    telemetry_interval: Duration = Field(60.0, gt=0, description="edge aggregation interval")
    ship_delay: Duration = Field(3600.0, ge=0, description="mean time from goods receipt to shipment")
    backflush_item: str = Field("RM-10", description="component consumed by backflush")
    backflush_unit: str = "KG"
    backflush_per_unit: float = Field(0.25, ge=0)
    inspection_time: Duration = Field(1200.0, gt=0, description="mean QMS inspection time per lot")
    hold_duration: Duration = Field(7200.0, gt=0, description="mean time a held lot stays on hold")
    mes_ack: Duration = Field(2.0, ge=0, description="MES time to validate and acknowledge an order")
    master_data_interval: Duration = Field(
        0.0, ge=0, description="the ERP publishes a new master-data version to every plant's MES this often "
        "(0: never); postings a plant creates before it applied the newest version count as version skew")
    shift: ShiftSpec = ShiftSpec()
    bursts: list[BurstSpec] = []


# ------------------------------------------------------------------------------------------- faults
class FaultSpec(Strict):
    kind: Literal[
        "erp_outage", "erp_slow", "wan_outage", "broker_redelivery", "process_kill", "gateway_down"
    ]
    at: Duration
    duration: Duration = Field(0.0, ge=0)
    erp: Literal["legacy", "cloud", "all"] = "all"
    plants: list[str] | Literal["all"] = "all"
    factor: float = Field(5.0, ge=1, description="erp_slow: service time multiplier")
    rate: float = Field(0.3, ge=0, le=1, description="broker_redelivery: share delivered twice")
    target: Literal["gateway", "worker", "erp", "broker", "edge", "downlink"] | None = None

    @model_validator(mode="after")
    def _windowed(self) -> FaultSpec:
        if self.kind not in ("process_kill",) and self.duration <= 0:
            raise ValueError(f"a {self.kind} fault needs a duration > 0, e.g. duration: 30m")
        if self.kind == "process_kill" and self.target is None:
            raise ValueError("a process_kill fault needs a target: gateway, worker, erp, broker, edge or downlink")
        return self


# ------------------------------------------------------------------------------------------ rollout
class WaveSpec(Strict):
    name: str
    at: Duration
    plants: list[str] = Field(min_length=1)
    erp: Literal["legacy", "cloud"] = "cloud"


class RolloutSpec(Strict):
    waves: list[WaveSpec] = []


# --------------------------------------------------------------------------------------------- SLAs
class PercentileSla(Strict):
    p50: Duration | None = None
    p95: Duration | None = None
    p99: Duration | None = None
    max: Duration | None = None


class ReconciliationSla(Strict):
    window: Duration = Field(1800.0, gt=0)
    min_share: float = Field(0.99, ge=0, le=1)


class MaxSla(Strict):
    max: Duration


class DlqSla(Strict):
    max_count: int = Field(ge=0)


class SlaSpec(Strict):
    order_release_latency: PercentileSla | None = PercentileSla(p95=120.0)
    inventory_posting_delay: PercentileSla | None = PercentileSla(p95=300.0)
    quality_hold_propagation: PercentileSla | None = PercentileSla(max=600.0)
    shipment_posting_delay: PercentileSla | None = None
    reconciled_within: ReconciliationSla | None = ReconciliationSla()
    recovery_time: MaxSla | None = None
    dlq: DlqSla | None = None


# -------------------------------------------------------------------------------------------- whole
class Scenario(Strict):
    name: str
    description: str = ""
    run: RunSpec = RunSpec()
    landscape: LandscapeSpec
    load: LoadSpec = LoadSpec()
    faults: list[FaultSpec] = []
    rollout: RolloutSpec = RolloutSpec()
    slas: SlaSpec = SlaSpec()

    @field_validator("name")
    @classmethod
    def _name_is_slug(cls, value: str) -> str:
        if not value.replace("-", "").replace("_", "").isalnum():
            raise ValueError("name may hold letters, digits, '-' and '_' only")
        return value

    @model_validator(mode="after")
    def _references_exist(self) -> Scenario:
        plants = {p.id for p in self.landscape.all_plants}
        problems: list[str] = []
        for i, fault in enumerate(self.faults):
            if fault.plants != "all":
                problems += [f"faults[{i}].plants: unknown plant {p!r}" for p in fault.plants if p not in plants]
        for i, burst in enumerate(self.load.bursts):
            if burst.plants != "all":
                problems += [f"load.bursts[{i}].plants: unknown plant {p!r}" for p in burst.plants if p not in plants]
        cloud_missing = self.landscape.cloud_erp is None and self.landscape.erp.kind != "cloud"
        for i, wave in enumerate(self.rollout.waves):
            problems += [f"rollout.waves[{i}].plants: unknown plant {p!r}" for p in wave.plants if p not in plants]
            if wave.erp == "cloud" and cloud_missing:
                problems.append(f"rollout.waves[{i}].erp: 'cloud' needs landscape.cloud_erp to be set")
        if cloud_missing and any(p.erp == "cloud" for p in self.landscape.all_plants):
            problems.append("landscape.plants: a plant routes to 'cloud' but landscape.cloud_erp is not set")
        if problems:
            raise ValueError("; ".join(problems) + f" (known plants: {', '.join(sorted(plants))})")
        return self

    def erp_for(self, kind: str) -> ErpSpec:
        """The ERP spec serving ``kind`` (``legacy`` or ``cloud``)."""
        if kind == "cloud" and self.landscape.cloud_erp is not None:
            return self.landscape.cloud_erp
        return self.landscape.erp

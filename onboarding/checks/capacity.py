"""Capacity: the fleet plus the new plant in the virtual engine, with replications.

Does any SLA or any plant break with the plant on board (a breach is checked against the fleet
without it, so the plant is blamed only for what it changes); how much ERP capacity and API
rate-limit headroom is left, as means with 95 % confidence intervals over the replications.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from onboarding.fleet import Fleet
from onboarding.verdict import FAIL, PASS, WARN, Row
from scenarios.spec import Scenario

CHECK = "capacity"
BUSY = 0.8  # ERP utilisation above this in the busiest minute leaves too little room for a fault's backlog


def simulate(scenario: Scenario, out: Path, replications: int, duration: float | None) -> dict[str, Any]:
    """Run ``scenario`` in the virtual engine and return its sla.json content."""
    from reports.finalize import finalize_run
    from virtual.engine import run_virtual

    run = scenario.model_copy(update={"run": scenario.run.model_copy(update={
        "replications": replications, **({"duration": duration} if duration else {})})})
    run_dir = run_virtual(run, out, replications)  # with its progress bar: capacity runs take a while
    return finalize_run(run_dir).sla


def _ci(figure: dict[str, Any] | None, scale: float = 1.0) -> str:
    if not figure or figure.get("mean") is None:
        return "n/a"
    text = f"{figure['mean'] * scale:.3g}"
    if figure.get("ci_low") is not None:
        text += f" [{figure['ci_low'] * scale:.3g}, {figure['ci_high'] * scale:.3g}]"
    return text


def check_capacity(fleet: Fleet, plant_id: str, out: Path, replications: int,
                   duration: float | None) -> tuple[list[Row], dict[str, Any]]:
    """Rows and figures of the capacity check (runs the virtual engine, twice if a breach needs blame)."""
    sla = simulate(fleet.combined, out / "with-plant", replications, duration)
    rows: list[Row] = []
    figures: dict[str, Any] = {"replications": replications, "run_dir": str(out / "with-plant")}
    where = f"{fleet.source}" + (f" (wave {fleet.wave})" if fleet.wave else "")
    if sla["passed"]:
        rows.append(Row(CHECK, "fleet SLAs with the plant", PASS, f"every SLA and invariant of {where} holds with "
                        f"{plant_id} added ({replications} replications)"))
    else:
        base = simulate(fleet.base, out / "without-plant", replications, duration)
        new = [b for b in sla["breaches"] if b not in base["breaches"]]
        figures["breaches_without_plant"] = base["breaches"]
        if new:
            rows.append(Row(CHECK, "fleet SLAs with the plant", FAIL, f"with {plant_id}: " + "; ".join(new),
                            "add ERP capacity, move the plant to a later wave or another ERP, or lower its posting "
                            "rate (confirmation interval, lot size)"))
        else:
            rows.append(Row(CHECK, "fleet SLAs with the plant", WARN, "the fleet breaches without the plant too: "
                            + "; ".join(base["breaches"]), "fix the fleet's own breaches; the plant adds none"))
    rows += _plant_rows(fleet, plant_id, sla)
    if fleet.wave is not None:
        rows.append(_wave_row(fleet, plant_id, sla, out / "with-plant" / "sla.json"))
    rows += _erp_rows(fleet.combined, sla, figures)
    figures["per_plant"] = sla.get("per_plant", [])
    return rows, figures


def _plant_rows(fleet: Fleet, plant_id: str, sla: dict[str, Any]) -> list[Row]:
    limit_spec = fleet.combined.slas.inventory_posting_delay
    limit = limit_spec.p95 if limit_spec is not None else None
    over, mine = [], None
    for row in sla.get("per_plant", []):
        if row["plant"] == plant_id:
            mine = row
        p95 = row.get("posting_p95")
        if (limit is not None and p95 is not None and p95 > limit) or row.get("lost") or row.get("duplicates_posted"):
            over.append(f"{row['plant']} (p95 {p95 if p95 is None else round(p95, 2)} s, lost {row.get('lost')}, "
                        f"duplicates {row.get('duplicates_posted')})")
    if over:
        return [Row(CHECK, "every plant within its SLA", FAIL, "breaking: " + ", ".join(over),
                    "see the capacity run's report.html; add ERP capacity or stage the plant later")]
    if mine is None:
        return [Row(CHECK, "every plant within its SLA", WARN, f"{plant_id} posted nothing in the capacity run",
                    "check the plant's products and mapping")]
    return [Row(CHECK, "every plant within its SLA", PASS, f"{plant_id}: {mine['transactions']:.0f} transactions a "
                f"replication, posting p95 {mine.get('posting_p95') or 0:.2f} s"
                + (f" (SLA {limit:g} s)" if limit else ""))]


def _wave_row(fleet: Fleet, plant_id: str, sla: dict[str, Any], sla_path: Path) -> Row:
    """The wave the plant joined, after its cutover, from the same sla.json the rollout's architect reads."""
    wave = next((w for w in sla.get("per_wave", []) if w.get("wave") == fleet.wave), None)
    if wave is None:
        return Row(CHECK, f"wave {fleet.wave}", FAIL, f"the capacity run has no wave {fleet.wave}", "")
    after, before = wave.get("after") or {}, wave.get("before") or {}
    limit_spec = fleet.combined.slas.inventory_posting_delay
    limit = limit_spec.p95 if limit_spec is not None else None
    p95 = after.get("posting_p95")
    broken = bool(after.get("lost") or after.get("duplicates_posted")) or (
        limit is not None and p95 is not None and p95 > limit)
    fmt = lambda v: "n/a" if v is None else f"{v:.2f} s"  # noqa: E731
    plants = ", ".join(wave.get("plants", []))
    evidence = (f"wave {fleet.wave} ({plants}) to {wave.get('erp')} at {wave.get('at'):g} s: "
                f"posting p95 {fmt(p95)} after the cutover ({fmt(before.get('posting_p95'))} before), lost "
                f"{after.get('lost', 0):g}, duplicates {after.get('duplicates_posted', 0):g}; {sla_path}")
    return Row(CHECK, f"wave {fleet.wave} with {plant_id}", FAIL if broken else PASS, evidence,
               "move the plant to another wave or add capacity to the wave's ERP" if broken else "")


def _erp_rows(scenario: Scenario, sla: dict[str, Any], figures: dict[str, Any]) -> list[Row]:
    rows = []
    load = sla.get("kpis", {}).get("erp_load", {})
    for name, figs in sorted(load.items()):
        kind = "cloud" if "cloud" in name else "legacy"
        spec = scenario.erp_for(kind)
        service = spec.service.mean
        mean, peak = figs.get("mean_per_s") or {}, figs.get("peak_per_s") or {}
        util_peak = (peak.get("mean") or 0.0) * service
        figures[name] = {"mean_per_s": mean, "peak_per_s": peak, "service_mean_s": service}
        headroom = {k: (1 - v * service) if v is not None else None for k, v in
                    (("mean", peak.get("mean")), ("ci_low", peak.get("ci_high")), ("ci_high", peak.get("ci_low")))}
        verdict = PASS if util_peak < BUSY else (WARN if util_peak < 1 else FAIL)
        rows.append(Row(CHECK, f"{name} headroom", verdict,
                        f"postings/s mean {_ci(mean)}, busiest minute {_ci(peak)}; at {service * 1000:.0f} ms a "
                        f"posting the busiest minute leaves {_ci(headroom, 100)} % of the ERP free",
                        "" if verdict == PASS else "add ERP capacity or spread the plant's postings"))
        if spec.rate_limit:
            room = {k: (1 - v / spec.rate_limit) if v is not None else None for k, v in
                    (("mean", peak.get("mean")), ("ci_low", peak.get("ci_high")), ("ci_high", peak.get("ci_low")))}
            share = (peak.get("mean") or 0.0) / spec.rate_limit
            verdict = PASS if share < BUSY else (WARN if share < 1 else FAIL)
            rows.append(Row(CHECK, f"{name} rate-limit headroom", verdict,
                            f"busiest minute {_ci(peak)} postings/s against {spec.rate_limit:g}/s: "
                            f"{_ci(room, 100)} % left", "" if verdict == PASS else "raise the API quota or batch more"))
    return rows

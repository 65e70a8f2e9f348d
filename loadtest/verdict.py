"""Per-stage figures of a load run and the capacity search's verdicts (pure: arrays and dicts in).

A stage *holds* when, over its settled part (its first seconds are the ramp between stages):

* the chain's p99 end-to-end latency is within the SLA,
* the share of failed requests is within the error threshold,
* the backlog late in the stage (median of its last half) is at most what arrives in one SLA span
  (``rate x sla``, at least two batches): a longer queue makes the newest event wait past the SLA,
  and a growing one soon will,
* the chain delivered at least 90 % of the target rate, less two batches over the window (otherwise
  the rate was not sustained).

The knee is the highest stage that holds, as the events/s the chain delivered there.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

SUSTAINED_SHARE = 0.9


def settled(start: float, end: float) -> tuple[float, float]:
    """The part of a stage its verdict reads: without the first 30 % (at most 5 s)."""
    return start + min(5.0, 0.3 * (end - start)), end


def _late(backlog: list[float]) -> float:
    """The backlog late in a stage: the median of its last half (one sample can catch a batch in flight)."""
    return float(np.median(backlog[len(backlog) // 2:]))


def _nan_to_none(value: float) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else round(float(value), 4)


def stage_figures(label: str, rate: float, window: tuple[float, float], latencies: np.ndarray,
                  chain_rows: list[dict[str, float]], requests: float, failures: float, batch: int,
                  sla_p99: float, max_error_share: float, have_chain: bool) -> dict[str, Any]:
    """The figures and verdict of one stage (``requests``/``failures``: Locust's counts in the window)."""
    a, b = window
    span = max(b - a, 1e-9)
    backlog = [r["backlog"] for r in chain_rows if not math.isnan(r.get("backlog", math.nan))]
    cpu_names = sorted({k for r in chain_rows for k in r if k.startswith("cpu_")})
    cpu = {k.removeprefix("cpu_"): float(np.nanmean([r.get(k, math.nan) for r in chain_rows]))
           for k in cpu_names} if chain_rows else {}
    p99 = float(np.percentile(latencies, 99)) if latencies.size else math.nan
    error_share = failures / requests if requests else (1.0 if rate > 0 else 0.0)
    fig: dict[str, Any] = {
        "label": label, "target_events_per_s": round(rate, 1), "start_s": round(a, 2), "end_s": round(b, 2),
        "accepted_events_per_s": round((requests - failures) * batch / span, 1),
        "requests": int(requests), "failures": int(failures), "error_share": round(error_share, 4),
        "delivered_events_per_s": round(latencies.size / span, 1) if have_chain else None,
        "e2e_p50_s": _nan_to_none(float(np.percentile(latencies, 50))) if latencies.size else None,
        "e2e_p99_s": _nan_to_none(p99), "backlog_start": int(backlog[0]) if backlog else None,
        "backlog_end": int(_late(backlog)) if backlog else None,
        "cpu_cores": {k: round(v, 3) for k, v in cpu.items() if not math.isnan(v)},
    }
    reasons = []
    slack = 2 * batch / span  # events come in batches: a short window may see two fewer than it should
    if error_share > max_error_share:
        reasons.append(f"{error_share:.1%} of requests failed (threshold {max_error_share:.1%})")
    if have_chain:
        if not latencies.size:
            reasons.append("nothing was delivered end to end")
        elif p99 > sla_p99:
            reasons.append(f"p99 end to end {p99:.2f} s > SLA {sla_p99:g} s")
        bound = max(rate * sla_p99, 2 * batch)  # a batch or two in flight is not a queue
        if backlog and _late(backlog) > bound:
            reasons.append(f"backlog {_late(backlog):,.0f} events late in the stage > {bound:,.0f} "
                           f"(one SLA span of arrivals)")
        delivered = latencies.size / span
        if rate > 0 and delivered < SUSTAINED_SHARE * rate - slack:
            reasons.append(f"delivered {delivered:,.0f} events/s < {SUSTAINED_SHARE:.0%} of the target {rate:,.0f}")
    elif rate > 0 and fig["accepted_events_per_s"] < SUSTAINED_SHARE * rate - slack:
        reasons.append(f"the gateway accepted {fig['accepted_events_per_s']:,.0f} events/s < "
                       f"{SUSTAINED_SHARE:.0%} of the target {rate:,.0f}")
    fig["holds"] = not reasons
    fig["reasons"] = reasons
    return fig


def limiting_component(cpu: dict[str, float]) -> tuple[str | None, float]:
    """The process (not the load generator) that used the most cores, and how many."""
    chain = {k: v for k, v in cpu.items() if k not in ("load generator", "machine")}
    if not chain:
        return None, math.nan
    name = max(chain, key=chain.get)
    return name, chain[name]


def knee(stages: list[dict[str, Any]], cores: int) -> dict[str, Any]:
    """The capacity search's answer: the highest stage that holds, and what limits the chain there."""
    held = [s for s in stages if s["holds"]]
    failed = next((s for s in stages if not s["holds"]), None)
    best = max(held, key=lambda s: s["delivered_events_per_s"] or s["accepted_events_per_s"]) if held else None
    at = failed or best
    name, used = limiting_component(at["cpu_cores"]) if at else (None, math.nan)
    machine = at["cpu_cores"].get("machine") if at else None
    why = None
    if name is not None:
        why = f"{name} used {used:.2f} cores"
        if machine is not None:
            ours = sum(v for k, v in at["cpu_cores"].items() if k != "machine")
            why += f" while the machine was {machine / cores:.0%} busy ({machine:.2f} of {cores} cores"
            other = machine - ours
            why += f", {other:.2f} of them other work)" if other > 0.05 else ")"
    return {
        "found": best is not None,
        "knee_events_per_s": (best["delivered_events_per_s"] or best["accepted_events_per_s"]) if best else None,
        "knee_target_events_per_s": best["target_events_per_s"] if best else None,
        "knee_stage": best["label"] if best else None,
        "breached_at_events_per_s": failed["target_events_per_s"] if failed else None,
        "breach_reasons": failed["reasons"] if failed else [],
        "limiting_component": name, "limiting_cores": None if name is None else round(used, 3),
        "limiting_note": why, "cpu_at_knee": best["cpu_cores"] if best else {},
        "cpu_at_breach": failed["cpu_cores"] if failed else {},
    }

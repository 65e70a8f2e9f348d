"""``evaluate_run``: the sla.json content of a run folder (SLAs, invariants, KPIs, tables, faults).

Top-level keys of sla.json:

- ``passed`` — every SLA and every invariant holds; ``breaches`` — one plain line per failure.
- ``slas.<name>`` — ``status`` (pass / breach / no_data / not_set), ``checks`` (each: ``stat``,
  ``threshold``, ``value`` = mean over replications, ``ci_low``/``ci_high`` = 95 % t-interval with
  more than one replication, ``per_replication``, ``passed``) and ``stats`` (all p50/p95/p99/max
  figures, also for SLAs without a threshold). Durations in seconds, shares in 0..1.
- ``invariants.<name>`` — ``count``, ``passed``, ``ids`` (first 50 offenders) and details.
- ``kpis`` — success rate, DLQ count/oldest age, retry volume, ERP load per ERP (mean/CI each).
- ``version_skew`` — postings created on an old master-data version (``reports/skew.py``).
- ``dead_letters`` — the DLQ grouped by plant, reason, item and unit, with example ids.
- ``per_plant``, ``per_wave``, ``faults`` (queued, drained, recovery per fault), ``breaker``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reports import backlog as bl
from reports.invariants import check_invariants
from reports.kpis import dead_letters, kpis, per_plant, per_wave
from reports.narrative import breaches
from reports.prep import Prepared, prepare
from reports.runfolder import RunData, load_run
from reports.skew import version_skew
from reports.slas import evaluate_slas

SLA_JSON_VERSION = 1


def evaluate_prepared(prep: Prepared) -> dict[str, Any]:
    """Evaluate an already prepared run (lets the report reuse the prepared tables)."""
    run = prep.run
    slas, faults = evaluate_slas(prep)
    invariants = check_invariants(prep)
    meta = run.meta
    out = {
        "format": SLA_JSON_VERSION,
        "run": {
            key: meta.get(key)
            for key in ("run_id", "scenario", "engine", "version", "seed", "replications", "duration",
                        "start_clock", "wall_seconds", "created_at", "speed")
        } | {"replications": prep.n_reps, "duration": run.duration, "start_clock": str(run.start_clock)},
        "passed": all(s["passed"] for s in slas.values()) and all(i["passed"] for i in invariants.values()),
        "slas": slas,
        "invariants": invariants,
        "kpis": kpis(prep),
        "per_plant": per_plant(prep),
        "per_wave": per_wave(prep),
        "dead_letters": dead_letters(prep),
        "version_skew": version_skew(prep),
        "faults": faults,
        "breaker": meta.get("breaker", []),
        "recovery_definition": (
            f"backlog of the ERP postings a fault touches (its plants, its ERP) back at or below "
            f"{bl.RECOVERY_FACTOR}x the {bl.BASELINE_PERCENTILE:.0f}th percentile of the hour before the fault "
            f"+ {bl.RECOVERY_SLACK:.0f}, and staying there {bl.RECOVERY_HOLD:.0f} s (or until the next fault)"
        ),
        "problems": list(run.problems),
    }
    out["breaches"] = breaches(out)
    return out


def evaluate_loaded(run: RunData) -> dict[str, Any]:
    """Evaluate a run already read with :func:`reports.runfolder.load_run`."""
    return evaluate_prepared(prepare(run))


def evaluate_run(run_dir: Path) -> dict[str, Any]:
    """Read ``run_dir`` and return the sla.json content (JSON-serialisable).

    Raises :class:`reports.runfolder.RunFolderError` when the folder is missing or malformed.
    """
    return evaluate_loaded(load_run(run_dir))

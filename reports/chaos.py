"""The chaos section of a report: a ``synctwin chaos`` run's hypothesis before and after, each activity
on the timeline, and recovery per injected fault.

Reads ``RUN_DIR/chaos.json`` (experiment, fault timeline and windows, as ``synctwin chaos`` writes it)
and ``RUN_DIR/journal.json`` (Chaos Toolkit's journal); recovery per fault comes from ``sla.json``'s
``faults`` (the injected faults are in ``run.json``'s fault list, so they are measured like scheduled
ones). The invariants are the report's own section.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from reports.view import Table

CHAOS_FILE = "chaos.json"
JOURNAL_FILE = "journal.json"


@dataclass
class ChaosSection:
    """The chaos section's tables and one-line verdicts (``(state, sentence)``)."""

    tables: list[Table] = field(default_factory=list)
    lines: list[tuple[str, str]] = field(default_factory=list)


def _met(value: Any) -> str:
    return {True: "met", False: "NOT met", None: "not checked"}.get(value, str(value))


def _short(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _wall(stamp: str | None) -> float | None:
    if not stamp:
        return None
    try:
        return datetime.fromisoformat(str(stamp)).timestamp()
    except ValueError:
        return None


def hypothesis_table(journals: list[tuple[str, dict[str, Any]]]) -> Table:
    """Each experiment's hypothesis probes: tolerance, value before and after, met or not."""
    rows: list[list[str]] = []
    for stem, journal in journals:
        steady = journal.get("steady_states") or {}
        by_name: dict[str, list[str]] = {}
        for when, col in (("before", 3), ("after", 4)):
            for p in (steady.get(when) or {}).get("probes") or []:
                name = p["activity"]["name"]
                row = by_name.setdefault(name, [stem, name, _short(p["activity"].get("tolerance")), "—", "—"])
                row[col] = f"{_short(p.get('output'), 40)} ({'ok' if p.get('tolerance_met') else 'NOT met'})"
        rows += by_name.values()
    return Table("Chaos: steady-state hypothesis", ["experiment", "probe", "tolerance", "before", "after"], rows,
                 "the hypothesis is checked before the method and again after it")


def activity_table(journals: list[tuple[str, dict[str, Any]]], epoch_speed: tuple[float, float] | None) -> Table:
    """Each activity of the methods and the rollbacks, in order, at its scenario time."""
    rows = []
    parts = [(f"{stem} {part}", runs) for stem, journal in journals
             for part, runs in (("method", journal.get("run") or []), ("rollback", journal.get("rollbacks") or []))]
    for part, runs in parts:
        for r in runs:
            a = r.get("activity") or {}
            start = _wall(r.get("start"))
            t = "—"
            if start is not None and epoch_speed is not None:
                t = f"{(start - epoch_speed[0]) * epoch_speed[1]:,.0f} s"
            result = r.get("exception", [""])[-1].strip() if r.get("status") == "failed" else r.get("output")
            rows.append([t, part, a.get("type", ""), a.get("name", ""), r.get("status", ""),
                         f"{r.get('duration', 0):.1f} s", _short(result)])
    return Table("Chaos: activities on the timeline", ["scenario time", "part", "type", "name", "status",
                                                         "took", "result"], rows,
                 "scenario time at the start of each activity; the result is what it returned (or its error)")


def recovery_table(chaos: dict[str, Any], sla: dict[str, Any]) -> Table:
    """Each injected fault: its window and how long the backlog it touched took to recover."""
    measured = {(round(float(f.get("start", 0)), 3), f.get("kind")): f for f in sla.get("faults") or []}
    rows = []
    for w in chaos.get("faults") or []:
        f = measured.get((round(float(w["start"]), 3), w["kind"]), {})
        rec = (f.get("recovery") or {}).get("value")
        if rec is None or (isinstance(rec, float) and math.isnan(rec)):
            text = "not measurable" if f.get("next_fault_first") else "—"
        else:
            text = f"{rec:,.0f} s" + ("" if f.get("recovered_all", True) else " (lower bound: not recovered)")
        rows.append([w["kind"], w["what"], f"{w['start']:,.0f} s", f"{w['end'] - w['start']:,.0f} s", text,
                     f"{f.get('queued') or 0:,.0f}"])
    return Table("Chaos: recovery per fault", ["fault", "on", "start", "lasted", "recovery", "queued"], rows,
                 "recovery: scenario seconds from the fault's end until the backlog it touched is back to normal")


def chaos_section(run_dir: Path, sla: dict[str, Any]) -> ChaosSection | None:
    """The section for a ``synctwin chaos`` run folder, or None for any other run."""
    run_dir = Path(run_dir)
    if not (run_dir / CHAOS_FILE).is_file():
        return None
    chaos = json.loads((run_dir / CHAOS_FILE).read_text())
    meta = json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").is_file() else {}
    epoch_speed = (float(meta["epoch"]), float(meta["speed"])) if meta.get("epoch") and meta.get("speed") else None
    journals, lines = [], []
    for e in chaos.get("experiments") or []:
        path = run_dir / e.get("journal", JOURNAL_FILE)
        journals.append((e["stem"], json.loads(path.read_text()) if path.is_file() else {}))
        before, after = e.get("hypothesis_before"), e.get("hypothesis_after")
        lines.append(("pass" if before is True and after is True else "fail",
                      f"Chaos experiment {e['stem']} ({e.get('title', '')}): hypothesis {_met(before)} before and "
                      f"{_met(after)} after, {e.get('status')}"))
    lines.append(("neutral", f"{len(chaos.get('faults') or [])} fault(s) injected; recovery per fault below"))
    return ChaosSection([hypothesis_table(journals), activity_table(journals, epoch_speed),
                         recovery_table(chaos, sla)], lines)

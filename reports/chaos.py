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


def hypothesis_table(journal: dict[str, Any]) -> Table:
    """Each hypothesis probe: tolerance, value before and after, met or not."""
    steady = journal.get("steady_states") or {}
    rows: dict[str, list[str]] = {}
    for when, col in (("before", 2), ("after", 3)):
        for p in (steady.get(when) or {}).get("probes") or []:
            name = p["activity"]["name"]
            row = rows.setdefault(name, [name, _short(p["activity"].get("tolerance")), "—", "—"])
            row[col] = f"{_short(p.get('output'), 40)} ({'ok' if p.get('tolerance_met') else 'NOT met'})"
    note = (f"before: {_met((steady.get('before') or {}).get('steady_state_met'))}; "
            f"after: {_met((steady.get('after') or {}).get('steady_state_met'))}")
    return Table("Chaos: steady-state hypothesis", ["probe", "tolerance", "before", "after"], list(rows.values()),
                 note)


def activity_table(journal: dict[str, Any], chaos: dict[str, Any], epoch_speed: tuple[float, float] | None) -> Table:
    """Each activity of the method and the rollbacks, in order, at its scenario time."""
    rows = []
    for part, runs in (("method", journal.get("run") or []), ("rollback", journal.get("rollbacks") or [])):
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
                 f"experiment {chaos.get('title', '')!r}: {journal.get('status', '?')}")


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
    journal = json.loads((run_dir / JOURNAL_FILE).read_text()) if (run_dir / JOURNAL_FILE).is_file() else {}
    meta = json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").is_file() else {}
    epoch_speed = (float(meta["epoch"]), float(meta["speed"])) if meta.get("epoch") and meta.get("speed") else None
    before, after = chaos.get("hypothesis_before"), chaos.get("hypothesis_after")
    state = "pass" if before is True and after is True else "fail"
    lines = [(state, f"Chaos experiment {chaos.get('title', '')!r}: hypothesis {_met(before)} before and "
                     f"{_met(after)} after; {len(chaos.get('faults') or [])} fault(s) injected")]
    return ChaosSection([hypothesis_table(journal), activity_table(journal, chaos, epoch_speed),
                         recovery_table(chaos, sla)], lines)

"""Read a run folder (``run.json``, ``scenario.yaml``, trace/ledger/lots Parquet) into memory.

This is the only place reports touch the file system for input; everything downstream works on
the :class:`RunData` it returns, so both engines' folders look the same to the rest of the package.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import ValidationError

from kernel.run_record import RunRecord
from kernel.trace import ERP_QUEUE_TIMES, LEDGER_SCHEMA, LOTS_SCHEMA, TRACE_SCHEMA
from scenarios.loader import ScenarioError, load_scenario
from scenarios.spec import Scenario, SlaSpec

RUN_FILES = ("run.json", "trace.parquet", "ledger.parquet", "lots.parquet")

# Low-cardinality text columns are read as categoricals: grouping 1.5 M rows on them stays cheap.
_CATEGORICAL = ("run_id", "flow", "plant", "line", "source", "target", "unit", "schema_version",
                "outcome", "reason", "item", "erp")
# Columns the reports never read; skipping them saves time on fleet-size traces.
_TRACE_SKIP = ("correlation_id", "lot")


class RunFolderError(ValueError):
    """A run folder that cannot be evaluated; the message names the file/field and the fix."""


@dataclass
class RunData:
    """Everything a report needs from one run folder."""

    path: Path
    meta: dict[str, Any]
    scenario: Scenario | None
    scenario_text: str
    trace: pd.DataFrame
    ledger: pd.DataFrame
    lots: pd.DataFrame
    slas: SlaSpec
    record: RunRecord  # run.json, typed; ``meta`` is its JSON form
    problems: list[str] = field(default_factory=list)  # non-fatal oddities shown in the report

    @property
    def duration(self) -> float:
        """Scenario seconds the run covered."""
        return self.record.duration

    @property
    def replications(self) -> int:
        """Number of replications (at least 1)."""
        return self.record.replications

    @property
    def start_clock(self) -> datetime:
        """Wall-clock time of scenario second 0."""
        return self.record.start_clock


def _read_table(path: Path, schema: pa.Schema, skip: tuple[str, ...] = ()) -> pd.DataFrame:
    if not path.is_file():
        raise RunFolderError(f"{path}: file missing; a run folder holds {', '.join(RUN_FILES)} and scenario.yaml")
    try:
        file_schema = pq.read_schema(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise RunFolderError(f"{path}: not a readable Parquet file ({exc})") from None
    added_later = [name for name in ERP_QUEUE_TIMES if name in schema.names and name not in file_schema.names]
    missing = [f.name for f in schema
               if f.name not in file_schema.names and f.name not in skip and f.name not in added_later]
    if missing:
        raise RunFolderError(
            f"{path}: missing column(s) {', '.join(missing)}; write it with kernel.trace's schema"
        )
    columns = [f.name for f in schema if f.name not in skip and f.name not in added_later]
    dictionary = [c for c in columns if c in _CATEGORICAL and pa.types.is_string(file_schema.field(c).type)]
    table = pq.read_table(path, columns=columns, read_dictionary=dictionary)
    # One block per column, each Arrow buffer released once converted: the trace is not held twice
    # (Arrow's and pandas' copies, then pandas' consolidated blocks) at its conversion.
    frame = table.to_pandas(split_blocks=True, self_destruct=True)
    del table
    for name in added_later:  # run folders written before the ERP's queueing times were traced: not measured
        frame[name] = np.nan
    if added_later:  # in the schema's order (a reordering copies every column)
        frame = frame[[f.name for f in schema if f.name not in skip]]
    for col in columns:
        if schema.field(col).type == pa.float64():
            frame[col] = frame[col].astype(np.float64)
    return frame


def _read_record(run_dir: Path) -> RunRecord:
    """``run.json`` through :class:`RunRecord`; a malformed one raises naming each bad field."""
    path = run_dir / "run.json"
    if not path.is_file():
        raise RunFolderError(f"{path}: file missing; is {run_dir} a run folder (runs/<run-id>/)?")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise RunFolderError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise RunFolderError(f"{path}: expected a JSON object with run_id, engine, duration, start_clock, ...")
    try:
        return RunRecord.model_validate(raw)
    except ValidationError as exc:
        raise RunFolderError(f"{path}: {'; '.join(_field_problem(e) for e in exc.errors())} "
                             "(kernel.run_record.RunRecord is the contract; the engine writes it at the end of a run)"
                             ) from None


def _field_problem(error: Any) -> str:
    field_name = ".".join(str(part) for part in error["loc"])
    if error["type"] == "missing":
        return f"field {field_name!r} missing"
    if error["type"] == "extra_forbidden":
        return f"field {field_name!r} is not part of run.json"
    return f"field {field_name!r}: {error['msg']} (got {error.get('input')!r})"


LATE_FAULT_S = 60.0  # a live fault switch normally lands within a scenario second or two of its time


def fault_notes(events: list[dict]) -> list[str]:
    """A live run's faults that did not take effect, or took it late (``run.json`` events): the run did not
    carry the scenario's fault timeline there, and its verdicts must be read knowing it."""
    out = []
    for e in events:
        t, what = float(e.get("t", 0.0)), ", ".join(e.get("what") or []) or "a service"
        if "planned" in e and t - e["planned"] > LATE_FAULT_S:
            out.append(f"{e['event']} of {what} took effect at {t:,.0f} s scenario time, {t - e['planned']:,.0f} s "
                       f"after its planned {e['planned']:,.0f} s (the stack was busy, e.g. restarting a service)")
        if e.get("event") == "fault_failed":
            out.append(f"a fault switch of {what} failed at {t:,.0f} s scenario time ({e.get('detail', 'no detail')}): "
                       "from there the run differs from the scenario")
        elif e.get("event") == "fault_skipped":
            out.append(e.get("detail", "a fault was skipped"))
    return out


def load_run(run_dir: str | Path) -> RunData:
    """Read ``run_dir``; raise :class:`RunFolderError` naming what is missing or malformed."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunFolderError(f"{run_dir}: no such run folder; pass a folder such as runs/<run-id>")
    record = _read_record(run_dir)
    meta = record.json_dict()
    problems: list[str] = []
    scenario: Scenario | None = None
    scenario_path = run_dir / "scenario.yaml"
    scenario_text = scenario_path.read_text() if scenario_path.is_file() else ""
    if scenario_text:
        try:
            scenario = load_scenario(scenario_path)
        except ScenarioError as exc:
            problems.append(f"scenario.yaml could not be loaded: {'; '.join(exc.problems)}")
    else:
        problems.append("scenario.yaml missing; thresholds taken from run.json")
    problems += fault_notes(meta.get("events") or [])
    slas = _slas(meta, scenario, run_dir)
    trace = _read_table(run_dir / "trace.parquet", TRACE_SCHEMA, skip=_TRACE_SKIP)
    ledger = _read_table(run_dir / "ledger.parquet", LEDGER_SCHEMA)
    lots = _read_table(run_dir / "lots.parquet", LOTS_SCHEMA)
    return RunData(run_dir, meta, scenario, scenario_text, trace, ledger, lots, slas, record, problems)


def _slas(meta: dict[str, Any], scenario: Scenario | None, run_dir: Path) -> SlaSpec:
    """Thresholds: run.json's ``slas`` when present (what the engine ran with), else the scenario's."""
    if meta.get("slas") is not None:
        try:
            return SlaSpec.model_validate(meta["slas"])
        except ValueError as exc:
            raise RunFolderError(f"{run_dir / 'run.json'}: field 'slas' is invalid: {exc}") from None
    if scenario is not None:
        return scenario.slas
    return SlaSpec()

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

from kernel.trace import LEDGER_SCHEMA, LOTS_SCHEMA, TRACE_SCHEMA
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
    problems: list[str] = field(default_factory=list)  # non-fatal oddities shown in the report

    @property
    def duration(self) -> float:
        """Scenario seconds the run covered."""
        return float(self.meta["duration"])

    @property
    def replications(self) -> int:
        """Number of replications (at least 1)."""
        return max(1, int(self.meta.get("replications", 1)))

    @property
    def start_clock(self) -> datetime:
        """Wall-clock time of scenario second 0."""
        return datetime.fromisoformat(str(self.meta["start_clock"]))


def _read_table(path: Path, schema: pa.Schema, skip: tuple[str, ...] = ()) -> pd.DataFrame:
    if not path.is_file():
        raise RunFolderError(f"{path}: file missing; a run folder holds {', '.join(RUN_FILES)} and scenario.yaml")
    try:
        file_schema = pq.read_schema(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise RunFolderError(f"{path}: not a readable Parquet file ({exc})") from None
    missing = [f.name for f in schema if f.name not in file_schema.names and f.name not in skip]
    if missing:
        raise RunFolderError(
            f"{path}: missing column(s) {', '.join(missing)}; write it with kernel.trace's schema"
        )
    columns = [f.name for f in schema if f.name not in skip]
    dictionary = [c for c in columns if c in _CATEGORICAL and pa.types.is_string(file_schema.field(c).type)]
    table = pq.read_table(path, columns=columns, read_dictionary=dictionary)
    frame = table.to_pandas()
    for col in columns:
        if schema.field(col).type == pa.float64():
            frame[col] = frame[col].astype(np.float64)
    return frame


def _read_meta(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "run.json"
    if not path.is_file():
        raise RunFolderError(f"{path}: file missing; is {run_dir} a run folder (runs/<run-id>/)?")
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise RunFolderError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise RunFolderError(f"{path}: expected a JSON object with run_id, duration, start_clock, ...")
    for key in ("run_id", "duration"):
        if key not in meta:
            raise RunFolderError(f"{path}: field {key!r} missing; the engine writes it at the end of a run")
    try:
        meta["duration"] = float(meta["duration"])
    except (TypeError, ValueError):
        raise RunFolderError(f"{path}: field 'duration' must be scenario seconds, got {meta['duration']!r}") from None
    if meta["duration"] <= 0:
        raise RunFolderError(f"{path}: field 'duration' must be > 0 seconds")
    meta.setdefault("start_clock", "2026-01-05T06:00:00")
    try:
        datetime.fromisoformat(str(meta["start_clock"]))
    except ValueError:
        raise RunFolderError(f"{path}: field 'start_clock' must be ISO time like 2026-01-05T06:00:00") from None
    for key in ("faults", "waves", "bursts", "breaker", "plants"):
        if not isinstance(meta.get(key) or [], list):
            raise RunFolderError(f"{path}: field {key!r} must be a list")
        meta[key] = meta.get(key) or []
    return meta


def load_run(run_dir: str | Path) -> RunData:
    """Read ``run_dir``; raise :class:`RunFolderError` naming what is missing or malformed."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunFolderError(f"{run_dir}: no such run folder; pass a folder such as runs/<run-id>")
    meta = _read_meta(run_dir)
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
    slas = _slas(meta, scenario, run_dir)
    trace = _read_table(run_dir / "trace.parquet", TRACE_SCHEMA, skip=_TRACE_SKIP)
    ledger = _read_table(run_dir / "ledger.parquet", LEDGER_SCHEMA)
    lots = _read_table(run_dir / "lots.parquet", LOTS_SCHEMA)
    return RunData(run_dir, meta, scenario, scenario_text, trace, ledger, lots, slas, problems)


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

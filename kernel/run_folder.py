"""The one writer of a run folder, used by both engines: ``run.json``, the three Parquet tables and
(optionally) ``scenario.yaml``. Every report reads what this writes (:mod:`reports.runfolder`)."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from kernel.run_record import RunRecord
from kernel.trace import LEDGER_SCHEMA, LOTS_SCHEMA, TRACE_SCHEMA
from scenarios.loader import dump_scenario
from scenarios.spec import Scenario


def _encoding(table: pa.Table) -> dict:
    """Dictionary pages only for the text columns with few distinct values, statistics only for the
    numbers: dictionary-encoding and min/max-scanning ids unique per row was half of a fleet trace's
    write time, and no reader filters on them."""
    sample = table.slice(0, 10_000)
    text = [f.name for f in table.schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
    few = [name for name in text if len(sample.column(name).unique()) <= 1_000]
    return {"use_dictionary": few or False,
            "write_statistics": [f.name for f in table.schema if f.name not in text] or False}


def write_run_folder(out: str | Path, record: RunRecord, trace: pa.Table, ledger: pa.Table, lots: pa.Table,
                     scenario: Scenario | None = None) -> Path:
    """Write every file of a run folder into ``out`` (created if needed); ``scenario.yaml`` only when
    ``scenario`` is given (the live stack writes it before launch). Tables must carry the
    :mod:`kernel.trace` schemas."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tables = (("trace", trace, TRACE_SCHEMA), ("ledger", ledger, LEDGER_SCHEMA), ("lots", lots, LOTS_SCHEMA))
    for name, table, schema in tables:
        if not table.schema.equals(schema):
            raise ValueError(f"{name} table does not carry the {name} schema of kernel.trace")
    # Parquet's encoders release the GIL: the ledger and lots are written beside the trace, not after it.
    with ThreadPoolExecutor(len(tables), thread_name_prefix="parquet") as pool:
        for done in [pool.submit(pq.write_table, table, out / f"{name}.parquet", compression="zstd",
                                 **_encoding(table)) for name, table, _ in tables]:
            done.result()
    if scenario is not None:
        (out / "scenario.yaml").write_text(dump_scenario(scenario))
    (out / "run.json").write_text(json.dumps(record.json_dict(written=True), indent=2) + "\n")
    return out

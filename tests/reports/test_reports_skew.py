"""Master-data version skew read from the trace: postings created between a version's release and its
arrival at the plant are counted, per plant, the same for either engine's run folder."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from kernel.trace import ERP_POSTING_FLOWS, MASTER_DATA, TRACE_SCHEMA
from reports.evaluate import evaluate_run
from reports.html import render_report
from reports.prep import prepare
from reports.runfolder import load_run
from reports.skew import version_skew
from reports.view import build_view


def _add_versions(run_dir: Path, versions: list[tuple[str, float, float]]) -> None:
    """Append one master_data row per (plant, released, applied; NaN: never applied) to the trace."""
    path = run_dir / "trace.parquet"
    table = pq.read_table(path)
    rows = {f.name: [] for f in TRACE_SCHEMA}
    for k, (plant, released, applied) in enumerate(versions):
        row = {"run_id": table["run_id"][0].as_py(), "replication": 0, "txn_id": f"MD-{plant}-v{k}",
               "correlation_id": "", "flow": MASTER_DATA, "plant": plant, "line": "", "source": "ERP",
               "target": "MES", "item": "", "lot": "", "qty": float(k + 1), "unit": "", "schema_version": "",
               "t_created": released, "t_edge": np.nan, "t_broker": released, "t_delivered": applied,
               "t_acked": applied, "attempts": 1, "outcome": "in_flight" if np.isnan(applied) else "delivered",
               "reason": "", "t_erp_arrival": np.nan, "t_service_start": np.nan}
        for name in rows:
            rows[name].append(row[name])
    pq.write_table(pa.concat_tables([table.cast(TRACE_SCHEMA), pa.Table.from_pydict(rows, schema=TRACE_SCHEMA)]),
                   path)


def test_postings_created_before_the_plant_applied_the_newest_version_are_counted(clean_run):
    run_dir, _ = clean_run
    duration = 43200.0
    # P01: two overlapping spans (merged, not counted twice); P02: a version never applied (until the end).
    versions = [("P01", 3600.0, 7200.0), ("P01", 6000.0, 9000.0), ("P02", 30000.0, np.nan)]
    _add_versions(run_dir, versions)
    prep = prepare(load_run(run_dir))
    skew = version_skew(prep)

    trace = pq.read_table(run_dir / "trace.parquet").to_pandas()
    posts = trace[trace["flow"].isin(ERP_POSTING_FLOWS)].drop_duplicates("txn_id")
    p01 = posts[(posts["plant"] == "P01") & posts["t_created"].between(3600.0, 9000.0, inclusive="left")]
    p02 = posts[(posts["plant"] == "P02") & posts["t_created"].between(30000.0, duration, inclusive="left")]
    assert len(p01) > 0 and len(p02) > 0  # the fixture has postings in both spans: the check means something
    assert skew["versions"] == 3
    assert skew["by_plant"] == {"P01": len(p01), "P02": len(p02)}
    assert skew["count"] == len(p01) + len(p02) and 0 < skew["share"] < 1
    assert evaluate_run(run_dir)["version_skew"]["count"] == skew["count"]  # reported in sla.json


def test_a_run_without_master_data_reports_no_skew(clean_run):
    run_dir, _ = clean_run
    skew = version_skew(prepare(load_run(run_dir)))
    assert skew["versions"] == 0 and skew["count"] == 0 and skew["share"] is None


def _skew_section(sla: dict) -> str:
    """The version-skew section of the report page rendered from ``sla`` (charts left out: not under test)."""
    html = render_report(build_view(sla), [], "")
    section = html[html.index("<h3>Master-data version skew</h3>"):]
    return section[:section.index("</table>") + 200]


def test_the_html_report_shows_the_skew_of_sla_json(clean_run):
    run_dir, _ = clean_run
    sla = evaluate_run(run_dir)
    assert "No master-data versions were published" in _skew_section(sla)
    _add_versions(run_dir, [("P01", 3600.0, 7200.0), ("P02", 30000.0, 36000.0)])
    sla = json.loads(json.dumps(evaluate_run(run_dir)))  # as read back from sla.json
    skew = sla["version_skew"]
    assert skew["count"] > 0 and set(skew["by_plant"]) == {"P01", "P02"}
    section = _skew_section(sla)
    rows = re.findall(r"<tr>((?:<td[^>]*>[^<]*</td>)+)</tr>", section)
    cells = [re.findall(r"<td[^>]*>([^<]*)</td>", r) for r in rows]
    assert cells == [["P01", f"{skew['by_plant']['P01']:,}", ""], ["P02", f"{skew['by_plant']['P02']:,}", ""],
                     ["all plants", f"{skew['count']:,}", f"{skew['share'] * 100:.2f} %"]]
    assert f"{skew['versions']:,} master-data versions published" in section

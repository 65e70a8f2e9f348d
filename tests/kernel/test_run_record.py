"""run.json: one typed record from both engines, one writer, read back by the reports with clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kernel.run_folder import write_run_folder
from kernel.run_record import RunRecord, run_record
from kernel.trace import LEDGER_SCHEMA, LOTS_SCHEMA, TRACE_SCHEMA
from live.collect import live_run_record
from reports.runfolder import RunFolderError, load_run
from scenarios.loader import parse_scenario

SCENARIO = parse_scenario({
    "name": "record", "run": {"duration": "2h", "seed": 3},
    "landscape": {"cloud_erp": {"kind": "cloud"},
                  "plants": [{"id": "P01", "erp": "legacy", "lines": 2, "machines_per_line": 3},
                             {"id": "P02", "erp": "legacy"}]},
    "faults": [{"kind": "erp_outage", "at": "30m", "duration": "10m", "erp": "legacy"},
               {"kind": "wan_outage", "at": "90m", "duration": "5m", "plants": ["P02"]}],
    "rollout": {"waves": [{"name": "w1", "at": "1h", "plants": ["P02"], "erp": "cloud"}]},
    "load": {"bursts": [{"at": "100m", "duration": "5m", "rate": "2/s"}]},
})


def _empty_folder(out: Path, record: RunRecord) -> Path:
    return write_run_folder(out, record, TRACE_SCHEMA.empty_table(), LEDGER_SCHEMA.empty_table(),
                            LOTS_SCHEMA.empty_table(), scenario=SCENARIO)


def test_both_engines_share_the_scenario_fields():
    virtual = run_record(SCENARIO, run_id="v", engine="virtual", replications=2, breaker=[{"t": 1.0}])
    live = live_run_record(SCENARIO, run_id="l", duration=SCENARIO.run.duration, speed=60.0, epoch=1e9,
                           drained=True, events=[{"t": 0.0, "event": "all_started"}])
    shared = ("plants", "erp", "faults", "waves", "bursts", "slas", "seed", "start_clock", "duration")
    assert {k: virtual.json_dict()[k] for k in shared} == {k: live.json_dict()[k] for k in shared}
    assert virtual.plants[0].model_dump() == {"id": "P01", "erp": "legacy", "lines": 2, "machines": 6,
                                              "schema_version": "v1"}
    assert virtual.erp == ["cloud", "legacy"] and virtual.version


def test_a_live_run_cut_short_lists_only_what_began_inside_it():
    live = live_run_record(SCENARIO, run_id="l", duration=3600.0)
    assert [f.kind for f in live.faults] == ["erp_outage"] and live.bursts == []
    assert live.faults[0].start == 1800.0 and live.faults[0].end == 2400.0


def test_the_writer_output_reads_back_through_the_model(tmp_path: Path):
    record = run_record(SCENARIO, run_id="v", engine="virtual", wall_seconds=1.23456, notes=["n"])
    run = load_run(_empty_folder(tmp_path / "run", record))
    assert run.record == RunRecord.model_validate(json.loads((tmp_path / "run" / "run.json").read_text()))
    assert run.duration == 7200.0 and run.replications == 1 and run.record.wall_seconds == 1.235
    assert run.meta["plants"][1]["id"] == "P02" and run.start_clock == SCENARIO.run.start_clock
    written = json.loads((tmp_path / "run" / "run.json").read_text())
    assert "drained" not in written and "services" not in written  # the live engine's fields only


def test_the_writer_refuses_a_table_without_the_trace_schema(tmp_path: Path):
    record = run_record(SCENARIO, run_id="v", engine="virtual")
    with pytest.raises(ValueError, match="ledger table"):
        write_run_folder(tmp_path, record, TRACE_SCHEMA.empty_table(), LOTS_SCHEMA.empty_table(),
                         LOTS_SCHEMA.empty_table())


@pytest.mark.parametrize(("change", "message"), [
    ({"engine": "simulated"}, r"field 'engine': Input should be 'virtual' or 'live'"),
    ({"duration": -5}, r"field 'duration': Input should be greater than 0"),
    ({"faults": [{"kind": "erp_outage", "start": "soon", "end": 10}]}, r"field 'faults\.0\.start'"),
    ({"plants": ["P01"]}, r"field 'plants\.0'"),
    ({"colour": "blue"}, r"field 'colour' is not part of run\.json"),
])
def test_a_malformed_run_json_names_the_field(tmp_path: Path, change: dict, message: str):
    folder = _empty_folder(tmp_path / "run", run_record(SCENARIO, run_id="v", engine="virtual"))
    meta = json.loads((folder / "run.json").read_text())
    (folder / "run.json").write_text(json.dumps({**meta, **change}))
    with pytest.raises(RunFolderError, match=message):
        load_run(folder)

"""A short form of every experiment of the library (``scenarios/chaos/``) on the embedded live stack: pauses
at 15 %, several experiments on one stack. Each must hold its hypothesis before and after, every fault's
probe must see the fault take effect, and the run must end with lost 0 and duplicates 0, a journal per
experiment, recovery per fault in sla.json and the chaos section in report.html."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from live.procs import pid_alive
from synctwin.cli import app
from tests.polling import poll

pytestmark = pytest.mark.slow
LIBRARY = Path(__file__).resolve().parents[2] / "scenarios" / "chaos"
API_ONLY = {"target-erp-storm"}  # run against --target services (tests/chaos/test_chaos_target.py)
GROUPS = {
    # Plants on Ray here (kill-plant-actor asks for it); the links of every hop that the experiments name.
    "links-and-erp": sorted([*LIBRARY.glob("wan-*.yaml"), *LIBRARY.glob("erp-*.yaml"), *LIBRARY.glob("link-*.yaml"),
                             *LIBRARY.glob("opcua-*.yaml"), LIBRARY / "kill-plant-actor.yaml"]),
    "processes-poison-duplicates": sorted([*(p for p in LIBRARY.glob("kill-*.yaml") if p.stem != "kill-plant-actor"),
                                           LIBRARY / "poison-messages.yaml",
                                           LIBRARY / "duplicate-flood.yaml", LIBRARY / "redelivery-storm.yaml"])
    + [LIBRARY / "dlq-replay.yaml", LIBRARY / "second-edge.yaml", LIBRARY / "edge-clock-skew.yaml"],
}


def test_the_groups_cover_the_whole_library():
    grouped = {p.stem for paths in GROUPS.values() for p in paths}
    assert grouped | API_ONLY == {p.stem for p in LIBRARY.glob("*.yaml")}


@pytest.mark.timeout(900)  # about 3.5 minutes each on a quiet machine; headroom for a loaded one
@pytest.mark.parametrize("group", sorted(GROUPS))
def test_library_experiments_pass_on_the_embedded_stack(group: str, tmp_path: Path):
    run_dir = tmp_path / group
    paths = GROUPS[group]
    result = CliRunner().invoke(app, ["chaos", *map(str, paths), "--out", str(run_dir), "--pause-scale", "0.15"])
    assert result.exit_code == 0, result.output
    chaos = json.loads((run_dir / "chaos.json").read_text())
    assert [e["stem"] for e in chaos["experiments"]] == [p.stem for p in paths]
    for e in chaos["experiments"]:
        journal = json.loads((run_dir / e["journal"]).read_text())
        assert e["hypothesis_before"] and e["hypothesis_after"], e["stem"]
        assert all(r["status"] == "succeeded" for r in journal["run"]), (e["stem"], journal["run"])
    sla = json.loads((run_dir / "sla.json").read_text())
    assert sla["invariants"]["lost"]["count"] == 0 and sla["invariants"]["duplicates_posted"]["count"] == 0
    injected = {(round(w["start"], 3), w["kind"]) for w in chaos["faults"]}
    measured = {(round(f["start"], 3), f["kind"]): f for f in sla["faults"]}
    assert injected and injected <= set(measured)  # every injected fault is measured ...
    assert all(measured[k]["recovery"]["value"] is not None for k in injected)  # ... with its recovery time
    report = (run_dir / "report.html").read_text()
    assert "Chaos: recovery per fault" in report and "Chaos: steady-state hypothesis" in report
    pids = [pid for s in json.loads((run_dir / "run.json").read_text())["services"].values() for pid in s["pids"]]
    assert pids
    poll(lambda: not any(pid_alive(p) for p in pids), 20, message="processes left running")

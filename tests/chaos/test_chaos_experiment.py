"""Loading experiments: every library experiment is valid; a bad one exits 2 naming the path in the file;
--target refuses, before anything starts, what it cannot do against services synctwin did not start."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from synctwin.chaos.experiment import ExperimentError, load_experiment
from synctwin.chaos.targeted import TargetError, parse_target, refusals
from synctwin.chaos.timeline import fault_windows
from synctwin.commands.chaos import register

LIBRARY = Path(__file__).resolve().parents[2] / "scenarios" / "chaos"
EXPERIMENTS = sorted(LIBRARY.glob("*.yaml"))


def _app():
    import typer

    app = typer.Typer(add_completion=False)
    register(app)
    app.command("noop", hidden=True)(lambda: None)  # keeps `chaos` a subcommand
    return app


@pytest.mark.parametrize("path", EXPERIMENTS, ids=[p.stem for p in EXPERIMENTS])
def test_every_library_experiment_is_valid_and_says_what_it_proves(path: Path):
    loaded = load_experiment(path)
    assert loaded.scenario_path.is_file()
    header = path.read_text().splitlines()[0]
    assert header.startswith(f"# {path.stem} — "), "each experiment starts with a header saying what it proves"
    assert "Proves:" in path.read_text()


def _write(tmp_path: Path, change) -> Path:
    data = yaml.safe_load((LIBRARY / "wan-cut.yaml").read_text())
    data["configuration"]["synctwin_scenario"] = str(LIBRARY / "scenarios" / "two-plants.yaml")
    change(data)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("change, where", [
    (lambda d: d["method"][0]["provider"].update(func="cut_everything"), "method[0].provider.func"),
    (lambda d: d["method"][0]["provider"]["arguments"].update(cable="x"), "method[0].provider.arguments"),
    (lambda d: d["steady-state-hypothesis"]["probes"][1].pop("tolerance"),
     "steady-state-hypothesis.probes[1].tolerance"),
    (lambda d: d["configuration"].pop("synctwin_scenario"), "configuration.synctwin_scenario"),
    (lambda d: d["method"][1].update(type="wish"), "method[1].type"),
    (lambda d: d.pop("title"), "title"),
])
def test_bad_experiment_exits_2_naming_the_path(tmp_path: Path, change, where: str):
    path = _write(tmp_path, change)
    with pytest.raises(ExperimentError, match=rf"{path}: {where.replace('[', '.').replace(']', '.')}"):
        load_experiment(path)
    result = CliRunner().invoke(_app(), ["chaos", str(path), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and where in result.output


def test_target_parsing_and_refusals_name_what_is_not_possible():
    assert parse_target("gateway=http://127.0.0.1:8000,erp=http://127.0.0.1:8081") == {
        "gateway": "http://127.0.0.1:8000", "erp": "http://127.0.0.1:8081"}
    with pytest.raises(TargetError, match="broker"):
        parse_target("broker=http://x:1")
    with pytest.raises(TargetError, match="NAME=http"):
        parse_target("gateway=127.0.0.1:8000")
    experiment = load_experiment(LIBRARY / "wan-cut.yaml").experiment
    refused = refusals(experiment)
    assert any(r.startswith("method[0] (cut-p02-wan): link_down") for r in refused)
    assert any(r.startswith("steady-state-hypothesis.probes[1] (nothing-lost): lost_so_far") for r in refused)


def test_fault_windows_pair_each_fault_with_its_end():
    timeline = [
        {"t": 10.0, "event": "process_kill", "what": "worker", "restart_after": 5},
        {"t": 15.0, "event": "process_restart", "what": "worker"},
        {"t": 20.0, "event": "link_down", "what": "P02"},
        {"t": 22.0, "event": "toxic_added", "what": "P01", "toxic": "latency_downstream", "type": "latency"},
        {"t": 30.0, "event": "link_up", "what": "P02"},
        {"t": 31.0, "event": "erp_mode", "what": "erp-legacy", "mode": "lose_answer"},
        {"t": 35.0, "event": "erp_mode", "what": "erp-legacy", "mode": "normal"},
        {"t": 40.0, "event": "links_reset", "what": "all"},
        {"t": 41.0, "event": "process_kill", "what": "edge-P01"},
    ]
    windows = [(w["kind"], w["start"], w["end"]) for w in fault_windows(timeline, 100.0)]
    assert windows == [("process_kill", 10.0, 15.0), ("wan_outage", 20.0, 30.0), ("link_latency", 22.0, 40.0),
                       ("erp_lose_answer", 31.0, 35.0), ("process_kill", 41.0, 100.0)]
    records = [w["record"] for w in fault_windows(timeline, 100.0)]
    assert records[1] == {"kind": "wan_outage", "start": 20.0, "end": 30.0, "plants": ["P02"]}
    assert records[3]["erp"] == "legacy" and records[0]["target"] == "worker"


def test_fault_windows_of_the_other_hops_and_the_opcua_faults():
    timeline = [
        {"t": 5.0, "event": "link_down", "what": "broker-gateway"},
        {"t": 8.0, "event": "link_up", "what": "broker-gateway"},
        {"t": 10.0, "event": "link_down", "what": "opcua-P01"},
        {"t": 12.0, "event": "link_up", "what": "opcua-P01"},
        {"t": 20.0, "event": "opcua_session_drop", "what": "opcua-P01", "dropped": 1},
        {"t": 30.0, "event": "opcua_stall", "what": "opcua-P02", "seconds": 6},
        {"t": 36.0, "event": "opcua_stall_end", "what": "opcua-P02"},
    ]
    records = [w["record"] for w in fault_windows(timeline, 100.0)]
    assert [(r["kind"], r["start"], r["end"], r["plants"]) for r in records] == [
        ("link_down", 5.0, 8.0, "all"), ("link_down", 10.0, 12.0, ["P01"]),
        ("opcua_session_drop", 20.0, 20.0, ["P01"]), ("opcua_stall", 30.0, 36.0, ["P02"])]

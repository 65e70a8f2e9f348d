"""What the orchestrator plans from a scenario: fault timeline, ERP services, service commands."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from kernel.clock import ScaledClock
from live.stack import LiveStack, StackOptions
from live.stack_plan import FaultAction, ServiceCommands, fault_timeline
from scenarios.loader import parse_scenario

SPEC = {
    "name": "plan",
    "landscape": {"cloud_erp": {"kind": "cloud", "rate_limit": "50/s"},
                  "plants": [{"id": "P", "count": 2}]},
    "rollout": {"waves": [{"name": "w1", "at": "2h", "plants": ["P02"], "erp": "cloud"}]},
    "faults": [
        {"kind": "erp_outage", "at": "1h", "duration": "30m", "erp": "cloud"},
        {"kind": "process_kill", "at": "90m", "target": "edge", "plants": ["P01"]},
        {"kind": "gateway_down", "at": "3h", "duration": "10m"},
        {"kind": "wan_outage", "at": "4h", "duration": "10m"},
        {"kind": "process_kill", "at": "5h", "target": "erp", "erp": "cloud"},
        {"kind": "broker_redelivery", "at": "6h", "duration": "10m"},
    ],
}


def test_fault_timeline_turns_every_fault_into_timed_actions():
    actions, notes = fault_timeline(parse_scenario(SPEC))
    assert actions == [
        FaultAction(3600.0, "erp_mode", ("cloud",), {"mode": "outage"}, 0),
        FaultAction(5400.0, "erp_mode", ("cloud",), {"mode": "normal"}, 0),
        FaultAction(5400.0, "kill_restart", ("edge-P01",), {}, 1),
        FaultAction(10800.0, "stop", ("gateway",), {}, 2),
        FaultAction(11400.0, "restart", ("gateway",), {}, 2),
        FaultAction(14400.0, "partition", ("P01", "P02"), {}, 3),
        FaultAction(15000.0, "heal", ("P01", "P02"), {}, 3),
        FaultAction(18000.0, "kill_restart", ("erp-cloud",), {}, 4),
        FaultAction(21600.0, "ack_loss", ("worker",), {"share": 0.3}, 5),
        FaultAction(22200.0, "ack_loss", ("worker",), {"share": 0.0}, 5),
    ]
    assert notes == []


def test_service_commands_are_planned_from_paths_urls_and_clock_alone(tmp_path: Path):
    plan = ServiceCommands(tmp_path / "scenario.yaml", tmp_path, tmp_path / "state" / "credentials.json",
                           ("cloud", "legacy"), {"P01": "key-1"}, epoch=1000.0, speed=60.0, insecure=True)
    urls = {"broker": "nats://127.0.0.1:1", "erp-legacy": "http://127.0.0.1:2", "erp-cloud": "http://127.0.0.1:3",
            "opcua-P01": "opc.tcp://127.0.0.1:5/synctwin/P01", "wan-P01": "http://127.0.0.1:6"}
    erp = plan.command("erp-cloud", urls, port=3)
    assert erp[erp.index("--db") + 1] == str(tmp_path / "state" / "erp-cloud.sqlite")
    assert erp[erp.index("--port") + 1] == "3" and erp[erp.index("--speed") + 1] == "60.0"
    edge = plan.command("edge-P01", urls)
    assert edge[edge.index("--api-key") + 1] == "key-1" and "--insecure" in edge
    assert plan.command("broker", urls)[-2:] == ["--port", "0"]  # any free port on the first start
    with pytest.raises(ValueError, match="unknown service 'mes'"):
        plan.command("mes", urls)
    with pytest.raises(KeyError):  # the worker cannot be planned before its ERPs have URLs
        plan.command("worker", {"broker": "nats://127.0.0.1:1"})


def test_stack_starts_both_erps_when_a_wave_moves_to_cloud(tmp_path: Path):
    stack = LiveStack(parse_scenario(SPEC), tmp_path, StackOptions(progress=False))
    assert stack.erp_kinds == ["cloud", "legacy"]
    stack._prepare()
    stack.clock = ScaledClock(1000.0, 60.0)
    stack.urls = {"broker": "nats://127.0.0.1:1", "erp-legacy": "http://127.0.0.1:2",
                  "erp-cloud": "http://127.0.0.1:3", "gateway": "http://127.0.0.1:4",
                  "opcua-P01": "opc.tcp://127.0.0.1:5/synctwin/P01", "wan-P01": "http://127.0.0.1:6"}
    worker = stack._command("worker")
    assert "legacy=http://127.0.0.1:2" in worker and "cloud=http://127.0.0.1:3" in worker
    assert worker[worker.index("--epoch") + 1] == "1000.0"
    edge = stack._command("edge-P01")
    assert edge[edge.index("--api-key") + 1] == stack.credentials["plants"]["P01"]
    assert edge[edge.index("--gateway") + 1] == "http://127.0.0.1:6"  # through its WAN relay
    assert "--insecure" not in edge  # OPC UA is secured unless asked otherwise
    gateway = stack._command("gateway", port=4)  # a restart keeps the port its clients know
    assert gateway[gateway.index("--port") + 1] == "4"
    assert (tmp_path / "scenario.yaml").is_file()
    assert (tmp_path / "state" / "credentials.json").stat().st_mode & 0o077 == 0  # keys readable by owner only


def test_ctrl_c_in_the_warm_up_aborts_and_during_production_ends_the_run_there(tmp_path: Path):
    stack = LiveStack(parse_scenario(SPEC), tmp_path / "run", StackOptions(duration=6 * 3600.0), log=lambda _: None)
    stack.clock = ScaledClock(time.time() + 60, 60.0)  # scenario time 0 is a minute away
    with pytest.raises(KeyboardInterrupt):
        stack._interrupted()
    assert stack.interrupted_at is None and stack.duration == 6 * 3600.0
    stack.clock = ScaledClock(time.time() - 30, 60.0)  # half a wall minute into production
    stack._interrupted()
    assert 1700 < stack.interrupted_at < 1900 and stack.duration == stack.interrupted_at
    assert stack.events[-1]["event"] == "interrupted"

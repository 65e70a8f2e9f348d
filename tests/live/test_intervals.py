"""The live chain's intervals are scenario-time settings, run at 1/speed in wall time."""

from __future__ import annotations

import pytest

from integration.workers.config import ACK_WAIT_FLOOR, WorkerConfig
from kernel.clock import ScaledClock
from live.edge import Edge
from live.edge_aggregator import EdgeConfig
from live.intervals import WALL_FLOOR, EdgeIntervals, floor_notes, wall_interval
from live.opcua_server import OpcUaAccess
from live.plant_host import PlantHost
from scenarios.spec import Scenario


def _scenario(edge: dict | None = None, ack_wait: float = 30.0) -> Scenario:
    plant = {"id": "P01", "lines": 1, "machines_per_line": 2, **({"edge": edge} if edge else {})}
    return Scenario.model_validate({"name": "t", "landscape": {"plants": [plant],
                                                               "integration": {"broker": {"ack_wait": ack_wait}}}})


def test_wall_interval_divides_by_speed_above_the_floor():
    assert wall_interval(1.0, 60) == pytest.approx(1 / 60)
    assert wall_interval(1.0, 1) == 1.0
    assert wall_interval(0.1, 1000) == WALL_FLOOR
    with pytest.raises(ValueError, match="speed"):
        wall_interval(1.0, 0)


def test_floor_notes_name_only_the_lengthened_intervals():
    iv = EdgeIntervals(sampling=0.5, publishing=2.0)
    notes = floor_notes("P01", iv, 200)  # 0.5 s / 200 = 2.5 ms < floor; 2 s / 200 = 10 ms
    assert len(notes) == 1 and "sampling" in notes[0]
    assert floor_notes("P01", iv, 60) == []


@pytest.mark.parametrize("speed", [1.0, 60.0, 120.0])
def test_edge_and_plant_run_the_scenario_intervals_at_one_over_speed(tmp_path, speed):
    spec = _scenario({"sampling_interval": "2s", "publishing_interval": "900ms", "scan_interval": "3s",
                      "flush_interval": "1500ms", "retry_initial": "4s", "retry_max": "2m"})
    config = EdgeConfig.from_scenario(spec, "P01")
    edge = Edge(config, tmp_path, "opc.tcp://127.0.0.1:1/x", "http://127.0.0.1:1", "k",
                ScaledClock(0.0, speed), OpcUaAccess(insecure=True, pki_dir=tmp_path / "pki"))
    try:
        assert edge.tick * speed == pytest.approx(3.0)
        assert edge.publishing_interval_ms * speed / 1000 == pytest.approx(0.9)
        assert edge.poster.idle_poll * speed == pytest.approx(1.5)
        assert (edge.poster.backoff_initial * speed, edge.poster.backoff_max * speed) == pytest.approx((4.0, 120.0))
    finally:
        edge.store.close()
    host = PlantHost(spec, "P01", tmp_path, 0.0, speed)
    assert host.tick * speed == pytest.approx(2.0)


def test_worker_ack_wait_is_the_scenario_ack_wait_at_one_over_speed(tmp_path):
    urls = {"legacy": "http://127.0.0.1:1"}
    assert WorkerConfig("nats://x", _scenario(ack_wait=60.0), urls, tmp_path, 0.0, 60.0).ack_wait == pytest.approx(1.0)
    assert WorkerConfig("nats://x", _scenario(ack_wait=30.0), urls, tmp_path, 0.0, 1.0).ack_wait == pytest.approx(30.0)
    assert WorkerConfig("nats://x", _scenario(ack_wait=5.0), urls, tmp_path, 0.0, 600.0).ack_wait == ACK_WAIT_FLOOR
    assert WorkerConfig("nats://x", _scenario(), urls, tmp_path, 0.0, 60.0, ack_wait=7.0).ack_wait == 7.0


def test_the_live_report_states_the_stretch():
    from reports.narrative import time_stretch

    text = time_stretch({"engine": "live", "speed": 60.0})
    assert text is not None and "60 × the plants' real rate" in text and "1/60" in text
    assert time_stretch({"engine": "virtual", "speed": None}) is None

"""An edge's own clock: a skew written while the edge runs moves its ``now`` (not the conversion of an OPC
UA server's timestamps); the edge's instance id survives a restart."""

from __future__ import annotations

import time
from pathlib import Path

from kernel.clock import ScaledClock
from live.edge_clock import EdgeClock, instance_id, skew_file, write_skew


def test_a_skew_written_at_run_time_moves_now_but_not_server_stamps(tmp_path: Path):
    base = ScaledClock(time.time(), 60.0)
    clock = EdgeClock(base, skew_file(tmp_path, "P01"), recheck_s=0.0)  # every read looks at the file
    assert abs(clock.now() - base.now()) < 1.0
    write_skew(tmp_path, "P01", -300.0)
    assert abs(clock.now() - base.now() + 300.0) < 1.0
    wall = time.time()
    assert clock.to_scenario(wall) == base.to_scenario(wall)
    write_skew(tmp_path, "P01", 0.0)
    assert abs(clock.now() - base.now()) < 1.0


def test_the_instance_id_is_kept_beside_the_outbox(tmp_path: Path):
    store = tmp_path / "state" / "edge-P01.sqlite"
    first = instance_id(store)
    assert first.startswith("edge-P01-") and instance_id(store) == first
    assert instance_id(tmp_path / "other" / "edge-P01.sqlite") != first

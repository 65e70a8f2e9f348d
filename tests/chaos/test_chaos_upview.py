"""The live view under `synctwin up` shows the scenario's scheduled faults: the stack's fault steps become
control-timeline events, paired into windows as they start and end (the browser test reuses the Ctrl-C run
of tests/live/test_stack_cleanup.py)."""

from __future__ import annotations

import math

from synctwin.chaos.timeline import fault_windows
from synctwin.chaos.upview import scenario_timeline


def test_scheduled_fault_steps_become_windows_open_until_they_end():
    events = [{"t": 0.0, "event": "all_started"},
              {"t": 1200.0, "event": "erp_mode", "what": ["legacy"], "mode": "outage"},
              {"t": 1500.0, "event": "erp_mode", "what": ["legacy"], "mode": "normal"},
              {"t": 1680.0, "event": "partition", "what": ["P02"]},
              {"t": 2400.0, "event": "kill_restart", "what": ["worker"]},
              {"t": 2500.0, "event": "stop", "what": ["gateway"]},
              {"t": 2640.0, "event": "ack_loss", "what": ["worker"], "share": 0.5}]
    windows = {(w["kind"], w["what"]): (w["start"], w["end"]) for w in fault_windows(scenario_timeline(events),
                                                                                       math.inf)}
    assert windows == {("erp_outage", "erp-legacy"): (1200.0, 1500.0), ("wan_outage", "P02"): (1680.0, math.inf),
                       ("process_kill", "worker"): (2400.0, 2400.0), ("process_kill", "gateway"): (2500.0, math.inf),
                       ("broker_redelivery", "worker"): (2640.0, math.inf)}

"""The services' garbage-collector settings: start-up objects frozen, cyclic garbage still collected."""

from __future__ import annotations

import json
import subprocess
import sys

# Runs in a child process: freezing would otherwise pin the test session's own objects.
_PROBE = """
import gc, json, weakref
from integration.gc_tuning import YOUNG_THRESHOLD, tune_gc

class Node:
    pass

before = gc.get_threshold()
tune_gc()
refs = []
for _ in range(4 * YOUNG_THRESHOLD):  # cycles only the collector can free, as per-message garbage makes
    a, b = Node(), Node()
    a.other, b.other = b, a
    refs.append(weakref.ref(a))
alive = sum(r() is not None for r in refs)
print(json.dumps({"before": before, "after": gc.get_threshold(), "frozen": gc.get_freeze_count(),
                  "alive": alive, "made": len(refs), "young": YOUNG_THRESHOLD}))
"""


def test_tune_gc_freezes_start_up_and_still_collects_cycles() -> None:
    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True)
    probe = json.loads(out.stdout)
    assert probe["after"][0] == probe["young"] > probe["before"][0]
    assert probe["after"][1:] == probe["before"][1:]
    assert probe["frozen"] > 1000  # modules, classes and functions loaded at start-up
    # Young collections still run without an explicit gc.collect(): at most the last window survives.
    assert probe["alive"] <= probe["young"], probe

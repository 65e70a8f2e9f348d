"""Fidelity of the virtual engine to a live run, end to end, against the acceptance bars.

Runs SCENARIO live at speed 60 (``synctwin up``, process-hosted plants), calibrates the virtual engine from that
run (``synctwin calibrate``), runs it with the same seed and speed (``synctwin run --calibration --speed``) and
compares (``synctwin compare``): the chain of ``synctwin.commands.calibrate_check``. For flows with at least 200
live postings: p50 and p95 posting delay within 10 %, delivered within 2 %; the recovery after each fault within
10 % (``reports.fidelity.verdicts``). Prints each figure with its verdict and exits 1 when one misses its bar.
The suite runs the same check on ``fidelity-outage.yaml`` (``tests/synctwin/test_fidelity_live.py``); this
script runs it on any scenario and duration, and prints each verdict.

    .venv/bin/python bench/bench_fidelity.py --out /tmp/fidelity
    .venv/bin/python bench/bench_fidelity.py --scenario scenarios/library/baseline.yaml --duration 1h --out /tmp/fb
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reports.fidelity import verdict_lines, verdicts  # noqa: E402
from synctwin.commands.calibrate_check import CheckOptions, fidelity_check  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", type=Path, default=ROOT / "scenarios" / "library" / "fidelity-outage.yaml")
    parser.add_argument("--out", type=Path, default=Path("fidelity-bench"), help="folder for the three outputs")
    parser.add_argument("--speed", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=CheckOptions.warmup, help="wall seconds before scenario time 0")
    parser.add_argument("--replications", type=int, default=5)
    parser.add_argument("--duration", default=None, help="override run.duration in both engines (e.g. 1h)")
    opts = parser.parse_args()
    rows = fidelity_check(opts.scenario, opts.out, CheckOptions(opts.speed, opts.warmup, opts.replications,
                                                                opts.duration))
    judged = verdicts(rows)
    for line in verdict_lines(judged):
        print(line)
    return 0 if judged and all(inside for _, _, inside in judged) else 1


if __name__ == "__main__":
    sys.exit(main())

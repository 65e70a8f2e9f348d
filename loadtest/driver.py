"""One Locust load run, driven through Locust's library API (no ``locust`` command line).

    python -m loadtest.driver CONFIG.json            # the runner (local, or master of N workers)
    python -m loadtest.driver CONFIG.json --worker P # a worker process, connecting to 127.0.0.1:P

The runner builds an ``Environment`` with the user class of :mod:`loadtest.users` and the plan's
``LoadTestShape``; with ``processes > 1`` it is a ``MasterRunner`` and starts that many worker
processes (``WorkerRunner``), each the same user class from the same config. Statistics are written
by Locust's ``StatsCSVFileWriter`` (full history, one row a second) into the config's ``out_dir``.
It prints ``READY locust <unix time the shape started>`` and, at the end, ``DONE``; SIGTERM stops
the load early (the capacity search does that at the knee). The load is bounded: the shape ends it.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import gevent
import locust  # noqa: F401 - patches the standard library (gevent) before the runner starts
from locust import stats as locust_stats
from locust.env import Environment
from locust.runners import STATE_STOPPED, WORKER_REPORT_INTERVAL
from locust.stats import PERCENTILES_TO_REPORT, StatsCSVFileWriter

from kernel.net import free_port
from loadtest.shapes import plan_shape
from loadtest.users import LoadConfig, make_user_class

PERCENTILES = sorted({*PERCENTILES_TO_REPORT, 0.5, 0.95, 0.99})


def _worker_command(config: Path, port: int) -> list[str]:
    """A worker process's command; it gets SIGTERM if this runner dies without cleaning up."""
    cmd = [sys.executable, "-m", "loadtest.driver", str(config), "--worker", str(port)]
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", *cmd] if setpriv else cmd


def run_worker(config_path: Path, port: int) -> None:
    """Join the master at 127.0.0.1:``port`` and run users until it says quit."""
    cfg = LoadConfig.read(config_path)
    env = Environment(user_classes=[make_user_class(cfg)], host=cfg.host)
    runner = env.create_worker_runner("127.0.0.1", port)
    gevent.signal_handler(signal.SIGTERM, runner.quit)
    runner.greenlet.join()


def run_load(config_path: Path) -> dict:
    """Run the plan; return the summary (also written to ``out_dir/<prefix>_summary.json``)."""
    cfg = LoadConfig.read(config_path)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    shape = plan_shape(cfg.plan, cfg.per_user_rate)
    env = Environment(user_classes=[make_user_class(cfg)], shape_class=shape, host=cfg.host, stop_timeout=5.0)
    workers: list[subprocess.Popen] = []
    if cfg.processes > 1:
        port = free_port()
        runner = env.create_master_runner("127.0.0.1", port)
        log = open(out / f"{cfg.stats_prefix}_workers.log", "ab")  # noqa: SIM115 - closed below
        workers = [subprocess.Popen(_worker_command(config_path, port), stdout=log, stderr=log,
                                    stdin=subprocess.DEVNULL) for _ in range(cfg.processes)]
        deadline = time.monotonic() + 60
        while runner.worker_count < cfg.processes:
            if time.monotonic() > deadline or any(w.poll() is not None for w in workers):
                runner.quit()
                raise SystemExit(f"only {runner.worker_count} of {cfg.processes} Locust workers connected; "
                                 f"see {out / (cfg.stats_prefix + '_workers.log')}")
            gevent.sleep(0.1)
    else:
        runner = env.create_local_runner()
    locust_stats.CSV_STATS_FLUSH_INTERVAL_SEC = 1  # the capacity search reads each step's rows as it ends
    writer = StatsCSVFileWriter(env, PERCENTILES, str(out / cfg.stats_prefix), full_history=True)
    writer_greenlet = gevent.spawn(writer)
    stopped = {"early": False}

    def _stop(*_: object) -> None:
        stopped["early"] = True
        runner.stop()

    gevent.signal_handler(signal.SIGTERM, _stop)
    started = time.time()
    runner.start_shape()
    print(f"READY locust {started!r}", flush=True)
    gevent.sleep(0.5)
    while runner.state != STATE_STOPPED or runner.shape_greenlet is not None:
        if stopped["early"] and runner.state == STATE_STOPPED:
            break
        gevent.sleep(0.25)
    # one last row of the history after the users stopped; workers report their counts every
    # WORKER_REPORT_INTERVAL seconds, so a master waits for their last report first
    gevent.sleep(1.2 + (WORKER_REPORT_INTERVAL + 0.5 if workers else 0.0))
    writer_greenlet.kill()
    writer.close_files()
    total = env.stats.total
    summary = {
        "started": started, "ended": time.time(), "stopped_early": stopped["early"], "requests": total.num_requests,
        "failures": total.num_failures, "batch": cfg.batch, "events_accepted": (total.num_requests -
                                                                               total.num_failures) * cfg.batch,
        "p50_ms": total.get_response_time_percentile(0.5), "p99_ms": total.get_response_time_percentile(0.99),
        "processes": cfg.processes, "failures_by_reason": {str(e.error): e.occurrences
                                                           for e in env.stats.errors.values()},
    }
    (out / f"{cfg.stats_prefix}_summary.json").write_text(json.dumps(summary, indent=1))
    runner.quit()
    for w in workers:
        try:
            w.wait(10)
        except subprocess.TimeoutExpired:
            w.kill()
            w.wait()
    print("DONE", flush=True)
    return summary


def main(argv: list[str]) -> None:
    if len(argv) == 3 and argv[1] == "--worker":
        run_worker(Path(argv[0]), int(argv[2]))
    elif len(argv) == 1:
        run_load(Path(argv[0]))
    else:
        raise SystemExit("usage: python -m loadtest.driver CONFIG.json [--worker MASTER_PORT]")


if __name__ == "__main__":
    main(sys.argv[1:])

"""The report's charts drawn in a second process while this one evaluates the SLAs.

Drawing the charts (matplotlib, pure Python, holding the GIL) and evaluating the SLAs (numpy and
pandas) each take seconds on a fleet-size run and need nothing from each other but the chart series
and the fault windows. A second process draws the charts beside the evaluation; only the series
(a few thousand points) go to it, pickled over its stdin, and only SVG text comes back. It is a fresh
interpreter (``python -m reports.drawing``: no fork of a process holding the run's tables and other
threads, and unlike multiprocessing's ``spawn`` it never re-runs the caller's main script), started as
soon as the run is read so that its imports overlap the preparation of the tables. Small runs draw in
this process: there the second process's start costs more than it saves. Whatever goes wrong in the
second process, the charts are drawn here instead.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import subprocess
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

from reports.charts import Chart, plant_chart, series_charts
from reports.timeseries import Series

PARALLEL_FROM_ROWS = 300_000  # trace rows from which a second process pays for its start
_ROOT = Path(__file__).resolve().parents[1]


def _draw_series(s: Series, meta: dict[str, Any], start: datetime, faults: list[dict[str, Any]]) -> list[Chart | None]:
    return [None if c is None else c.drawn() for c in series_charts(s, meta, start, faults)]


def _draw_plants(per_plant: list[dict[str, Any]]) -> Chart | None:
    chart = plant_chart(per_plant)
    return None if chart is None else chart.drawn()


_TASKS = {"series": _draw_series, "plants": _draw_plants}


class ChartDrawer:
    """Draws a run's charts in a second process when ``parallel``, else in this one (figures kept,
    drawn when the page or the PDF is rendered). Use as a context manager."""

    def __init__(self, parallel: bool):
        self._proc: subprocess.Popen | None = None
        self._io: ThreadPoolExecutor | None = None
        if parallel:
            env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [str(_ROOT), os.environ.get("PYTHONPATH")]))}
            self._proc = subprocess.Popen([sys.executable, "-m", "reports.drawing"], stdin=subprocess.PIPE,
                                          stdout=subprocess.PIPE, env=env)
            self._io = ThreadPoolExecutor(1, thread_name_prefix="chart-process")  # one task at a time, in order

    def __enter__(self) -> ChartDrawer:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._io is not None:
            self._io.shutdown(wait=True, cancel_futures=True)
        if self._proc is not None:
            with contextlib.suppress(OSError):  # a helper that died leaves a broken pipe
                self._proc.stdin.close()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    def _ask(self, task: str, args: tuple) -> Any:
        pickle.dump((task, args), self._proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
        self._proc.stdin.flush()
        ok, value = pickle.load(self._proc.stdout)
        if not ok:
            raise RuntimeError(value)
        return value

    def _submit(self, task: str, in_process, *args) -> Future:
        if self._io is not None:
            return self._io.submit(self._ask, task, args)
        done: Future = Future()
        done.set_result(in_process(*args))
        return done

    def series(self, s: Series, meta: dict[str, Any], start: datetime, faults: list[dict[str, Any]]) -> Future:
        """:func:`reports.charts.series_charts`, as a future."""
        return self._submit("series", series_charts, s, meta, start, faults)

    def plants(self, per_plant: list[dict[str, Any]]) -> Future:
        """:func:`reports.charts.plant_chart`, as a future."""
        return self._submit("plants", plant_chart, per_plant)


def result(future: Future, redo) -> Any:
    """The future's result; ``redo()`` in this process when the drawing process failed."""
    try:
        return future.result()
    except Exception as exc:  # noqa: BLE001 - any failure of the helper process: draw here
        print(f"charts drawn in the report's process ({type(exc).__name__}: {exc})", file=sys.stderr)
        return redo()


def serve() -> None:
    """The drawing process: answer pickled ``(task, args)`` requests from stdin until it closes."""
    requests, answers = sys.stdin.buffer, os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints must not corrupt the answers
    import matplotlib.backends.backend_svg  # noqa: F401  (otherwise imported by the first chart)

    while True:
        try:
            task, args = pickle.load(requests)
        except EOFError:
            return
        try:
            answer = (True, _TASKS[task](*args))
        except Exception as exc:  # noqa: BLE001 - reported to the caller, which draws itself
            answer = (False, f"{type(exc).__name__}: {exc}")
        pickle.dump(answer, answers, protocol=pickle.HIGHEST_PROTOCOL)
        answers.flush()


if __name__ == "__main__":
    serve()

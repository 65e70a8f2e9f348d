"""The MES twin: turns machine output into operation confirmations, scrap, backflush and lots.

Each reporting interval the MES confirms every machine's good output, reports scrap, backflushes
the component per line, and closes a lot each time a line's good count passes a multiple of the lot
size (the completion time interpolated inside the interval).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from twins.machines import BankStep, IntervalSteps


@dataclass(frozen=True)
class IntervalOutput:
    # per machine with output (confirmations, scrap)
    conf_machine: np.ndarray
    conf_time: np.ndarray
    conf_good: np.ndarray
    scrap_machine: np.ndarray
    scrap_time: np.ndarray
    scrap_qty: np.ndarray
    # per line with output (backflush)
    flush_line: np.ndarray
    flush_time: np.ndarray
    flush_units: np.ndarray
    # completed lots
    lot_line: np.ndarray
    lot_number: np.ndarray  # 1-based per line
    lot_time: np.ndarray


REPORT_JITTER = 5.0  # scenario seconds over which the MES reports one interval's confirmations (both engines)


class Mes:
    """Per-plant MES state: running lot counters per line."""

    def __init__(self, lines: int, line_of: np.ndarray, lot_size: int, rng: np.random.Generator,
                 report_jitter: float = REPORT_JITTER):
        self.lines = lines
        self.line_of = line_of
        self.lot_size = lot_size
        self.rng = rng
        self.report_jitter = report_jitter
        self.line_good = np.zeros(lines, dtype=np.int64)
        self.lots_closed = np.zeros(lines, dtype=np.int64)

    def report(self, step: BankStep) -> IntervalOutput:
        """Business records for one reporting interval of the machine bank."""
        t = step.t_to
        produced = np.flatnonzero(step.good > 0)
        conf_time = t + self.rng.uniform(0, self.report_jitter, produced.size)
        scrapped = np.flatnonzero(step.scrap > 0)
        scrap_time = t + self.rng.uniform(0, self.report_jitter, scrapped.size)
        per_line = np.bincount(self.line_of, weights=step.good, minlength=self.lines).astype(np.int64)
        flush_line = np.flatnonzero(per_line > 0)
        flush_time = t + self.rng.uniform(0, self.report_jitter, flush_line.size)

        before = self.line_good
        after = before + per_line
        closed = after // self.lot_size - self.lots_closed
        lot_line = np.repeat(np.arange(self.lines), closed)
        # k-th new lot of a line completes when the line's count reaches (lots_closed + k) * lot_size.
        k = np.arange(lot_line.size) - np.repeat(np.cumsum(closed) - closed, closed) + 1
        lot_number = self.lots_closed[lot_line] + k
        share = (lot_number * self.lot_size - before[lot_line]) / np.maximum(per_line[lot_line], 1)
        lot_time = step.t_from + share * (step.t_to - step.t_from)
        self.line_good = after
        self.lots_closed = self.lots_closed + closed
        return IntervalOutput(
            produced, conf_time, step.good[produced], scrapped, scrap_time, step.scrap[scrapped],
            flush_line, flush_time, per_line[flush_line], lot_line, lot_number, lot_time,
        )

    def report_many(self, steps: IntervalSteps) -> IntervalOutput:
        """Business records for consecutive reporting intervals at once (same rules as :meth:`report`)."""
        edges = np.concatenate([[steps.t_from], steps.bounds])
        k = steps.bounds.size
        conf_machine, conf_k = np.nonzero(steps.good > 0)
        scrap_machine, scrap_k = np.nonzero(steps.scrap > 0)
        per_line = np.zeros((self.lines, k), dtype=np.int64)
        np.add.at(per_line, self.line_of, steps.good)
        flush_line, flush_k = np.nonzero(per_line > 0)
        jitter = lambda n: self.rng.uniform(0, self.report_jitter, n)  # noqa: E731

        cum = self.line_good[:, None] + np.cumsum(per_line, axis=1)
        before = cum - per_line
        closed = cum // self.lot_size  # lots closed by the end of each interval
        new = closed - before // self.lot_size
        lot_line, lot_k = np.nonzero(new)
        counts = new[lot_line, lot_k]
        lot_line, lot_k = np.repeat(lot_line, counts), np.repeat(lot_k, counts)
        first = (before // self.lot_size)[lot_line, lot_k] + 1
        offset = np.arange(lot_line.size) - np.repeat(np.cumsum(counts) - counts, counts)
        lot_number = first + offset
        share = (lot_number * self.lot_size - before[lot_line, lot_k]) / per_line[lot_line, lot_k]
        lot_time = edges[lot_k] + share * (edges[lot_k + 1] - edges[lot_k])
        order = np.lexsort((lot_number, lot_line))
        self.line_good = cum[:, -1].copy()
        self.lots_closed = closed[:, -1].copy()
        return IntervalOutput(
            conf_machine, steps.bounds[conf_k] + jitter(conf_k.size), steps.good[conf_machine, conf_k],
            scrap_machine, steps.bounds[scrap_k] + jitter(scrap_k.size), steps.scrap[scrap_machine, scrap_k],
            flush_line, steps.bounds[flush_k] + jitter(flush_k.size), per_line[flush_line, flush_k],
            lot_line[order], lot_number[order], lot_time[order],
        )

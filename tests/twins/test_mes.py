"""The MES twin: confirmations, scrap, backflush per line, and lots closed every lot_size good units."""

from __future__ import annotations

import numpy as np
import pytest

from twins.machines import BankStep, MachineBank
from twins.mes import Mes


def _step(t_from: float, t_to: float, good, scrap=None) -> BankStep:
    good = np.asarray(good, dtype=np.int64)
    scrap = np.zeros_like(good) if scrap is None else np.asarray(scrap, dtype=np.int64)
    empty = np.empty(0)
    return BankStep(t_from, t_to, good, scrap, np.full(good.size, t_to - t_from),
                    np.empty(0, dtype=np.int64), empty, empty)


def _mes(lines: int, per_line: int, lot_size: int, jitter: float = 5.0) -> Mes:
    line_of = np.arange(lines * per_line) // per_line
    return Mes(lines, line_of, lot_size, np.random.default_rng(0), report_jitter=jitter)


def test_lot_times_interpolate_inside_the_interval():
    mes = _mes(lines=1, per_line=1, lot_size=100)
    out = mes.report(_step(0.0, 100.0, [250]))
    assert out.lot_line.tolist() == [0, 0]
    assert out.lot_number.tolist() == [1, 2]
    assert out.lot_time == pytest.approx([40.0, 80.0])
    # 50 carried over: the third lot completes after 50 more of the next 100.
    out = mes.report(_step(100.0, 200.0, [100]))
    assert out.lot_number.tolist() == [3]
    assert out.lot_time == pytest.approx([150.0])


def test_lots_per_line_are_counted_separately():
    mes = _mes(lines=3, per_line=2, lot_size=10)
    out = mes.report(_step(0.0, 60.0, [5, 4, 20, 15, 0, 0]))  # lines: 9, 35, 0
    assert out.lot_line.tolist() == [1, 1, 1]
    assert out.lot_number.tolist() == [1, 2, 3]
    assert out.lot_time == pytest.approx([60 * 10 / 35, 60 * 20 / 35, 60 * 30 / 35])
    out = mes.report(_step(60.0, 120.0, [1, 0, 5, 0, 10, 0]))  # lines now 10, 40, 10
    assert out.lot_line.tolist() == [0, 1, 2]
    assert out.lot_number.tolist() == [1, 4, 1]
    assert out.lot_time == pytest.approx([120.0, 120.0, 120.0])


def test_lots_close_exactly_every_lot_size_over_a_real_bank():
    bank = MachineBank(12, 30.0, 0.05, 7200.0, 600.0, np.random.default_rng(9), machines_per_line=4)
    mes = Mes(3, bank.line_of, 37, np.random.default_rng(10))
    lots_line, lots_number, lots_time, intervals = [], [], [], []
    for k in range(1, 49):
        step = bank.advance(k * 300.0)
        out = mes.report(step)
        lots_line.append(out.lot_line)
        lots_number.append(out.lot_number)
        lots_time.append(out.lot_time)
        intervals.append(np.full(out.lot_line.size, k))
        assert np.all(out.lot_time > step.t_from - 1e-9) and np.all(out.lot_time <= step.t_to + 1e-9)
    line = np.concatenate(lots_line)
    number = np.concatenate(lots_number)
    time = np.concatenate(lots_time)
    good_per_line = np.bincount(bank.line_of, weights=bank.good_total, minlength=3)
    for ln in range(3):
        mine = line == ln
        # Exactly floor(good / lot_size) lots, numbered 1..n, completing in time order.
        assert mine.sum() == good_per_line[ln] // 37
        assert number[mine].tolist() == list(range(1, mine.sum() + 1))
        assert np.all(np.diff(time[mine]) >= 0)
    assert np.array_equal(mes.line_good, good_per_line.astype(np.int64))


def test_confirmations_scrap_and_backflush_reflect_the_step():
    mes = _mes(lines=2, per_line=2, lot_size=1000, jitter=5.0)
    out = mes.report(_step(0.0, 300.0, good=[3, 0, 7, 2], scrap=[0, 1, 0, 2]))
    assert out.conf_machine.tolist() == [0, 2, 3]
    assert out.conf_good.tolist() == [3, 7, 2]
    assert out.scrap_machine.tolist() == [1, 3]
    assert out.scrap_qty.tolist() == [1, 2]
    assert out.flush_line.tolist() == [0, 1]
    assert out.flush_units.tolist() == [3, 9]
    for times in (out.conf_time, out.scrap_time, out.flush_time):
        assert np.all((times >= 300.0) & (times <= 305.0))
    assert out.lot_line.size == 0


def test_idle_interval_produces_nothing():
    mes = _mes(lines=2, per_line=1, lot_size=5)
    out = mes.report(_step(0.0, 300.0, [0, 0]))
    assert out.conf_machine.size == out.scrap_machine.size == out.flush_line.size == out.lot_line.size == 0

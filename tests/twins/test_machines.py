"""The vectorised machine bank: conservation of time and output, breakdowns, operator commands."""

from __future__ import annotations

import numpy as np
import pytest

from twins.machines import CHANGEOVER, DOWN, IDLE, RUNNING, MachineBank


def _bank(n: int = 10, cycle_time: float = 60.0, scrap_rate: float = 0.0, mtbf: float = 1e15,
          mttr: float = 600.0, seed: int = 0, per_line: int | None = None) -> MachineBank:
    return MachineBank(n, cycle_time, scrap_rate, mtbf, mttr, np.random.default_rng(seed), per_line)


def _downtime_inside(step, n: int) -> np.ndarray:
    """Per machine, seconds of breakdown that fall inside the step."""
    inside = np.minimum(step.down_end, step.t_to) - np.maximum(step.down_start, step.t_from)
    out = np.zeros(n)
    np.add.at(out, step.down_machine, inside)
    return out


def test_without_breakdowns_every_machine_runs_the_whole_step():
    bank = _bank(n=400)
    step = bank.advance(3600.0)
    assert np.all(step.running_time == 3600.0)
    assert step.down_machine.size == 0
    assert np.all(bank.state == RUNNING)
    assert bank.t == 3600.0 and step.t_from == 0.0 and step.t_to == 3600.0


def test_mean_output_matches_time_over_cycle_time():
    bank = _bank(n=2000, cycle_time=45.0, seed=3)
    step = bank.advance(8 * 3600.0)
    expected = 8 * 3600.0 / 45.0  # 640 cycles per machine
    mean = (step.good + step.scrap).mean()
    # Poisson(640) per machine over 2000 machines: standard error of the mean ~0.57.
    assert mean == pytest.approx(expected, abs=4.0)
    assert (step.good + step.scrap).var() == pytest.approx(expected, rel=0.15)  # Poisson: var == mean


def test_scrap_share_follows_scrap_rate_and_counts_add_up():
    bank = _bank(n=500, cycle_time=10.0, scrap_rate=0.1, seed=4)
    first = bank.advance(3600.0)
    second = bank.advance(7200.0)
    cycles = first.good + first.scrap + second.good + second.scrap
    assert np.array_equal(bank.good_total, first.good + second.good)
    assert np.array_equal(bank.scrap_total, first.scrap + second.scrap)
    assert bank.scrap_total.sum() / cycles.sum() == pytest.approx(0.1, abs=0.005)
    assert np.all(first.good >= 0) and np.all(first.scrap >= 0)


def test_running_plus_downtime_is_the_step_length_with_breakdowns():
    bank = _bank(n=300, mtbf=3600.0, mttr=900.0, seed=5)
    last_end = np.zeros(300)  # end of each machine's latest breakdown so far
    for t_to in (1800.0, 3000.0, 7200.0, 20000.0):
        t_from = bank.t
        step = bank.advance(t_to)
        carried = np.clip(last_end - t_from, 0.0, t_to - t_from)  # repair begun in an earlier step
        down = _downtime_inside(step, 300) + carried
        np.testing.assert_allclose(step.running_time + down, t_to - t_from, atol=1e-6)
        np.maximum.at(last_end, step.down_machine, step.down_end)
    assert bank.downtime_total.sum() > 0


def test_breakdown_records_are_consistent_and_frequency_matches_mtbf():
    mtbf, mttr = 4 * 3600.0, 1200.0
    bank = _bank(n=1000, mtbf=mtbf, mttr=mttr, seed=6)
    step = bank.advance(24 * 3600.0)
    assert step.down_machine.size == step.down_start.size == step.down_end.size
    assert np.all(step.down_start >= 0) and np.all(step.down_start < 24 * 3600.0)
    assert np.all(step.down_end > step.down_start)
    repair = step.down_end - step.down_start
    assert repair.mean() == pytest.approx(mttr, rel=0.1)
    # Failures per running hour: running time / mtbf breakdowns expected.
    assert step.down_machine.size == pytest.approx(step.running_time.sum() / mtbf, rel=0.1)
    np.testing.assert_allclose(bank.downtime_total.sum(), repair.sum())
    # Machines whose last repair ends after the step are down now.
    last_end = np.full(1000, -np.inf)
    np.maximum.at(last_end, step.down_machine, step.down_end)
    assert np.array_equal(bank.state == DOWN, last_end > 24 * 3600.0)


def test_stop_idles_a_machine_until_start():
    bank = _bank(n=3)
    bank.stop(1)
    step = bank.advance(600.0)
    assert bank.state[1] == IDLE
    assert step.running_time.tolist() == [600.0, 0.0, 600.0]
    assert step.good[1] == 0 and step.scrap[1] == 0
    bank.start(1)
    assert bank.state[1] == RUNNING
    step = bank.advance(1200.0)
    assert step.running_time.tolist() == [600.0, 600.0, 600.0]


def test_start_does_not_repair_a_broken_machine():
    bank = _bank(n=1, mtbf=10.0, mttr=1e9, seed=2)
    bank.advance(1000.0)
    assert bank.state[0] == DOWN
    bank.start(0)
    assert bank.state[0] == DOWN
    assert bank.advance(2000.0).running_time[0] == 0.0


def test_reset_zeroes_counters_but_not_downtime():
    bank = _bank(n=2, cycle_time=1.0)
    bank.advance(100.0)
    assert bank.good_total[0] > 0
    bank.reset(0)
    assert bank.good_total[0] == 0 and bank.scrap_total[0] == 0
    assert bank.good_total[1] > 0


def test_changeover_pauses_running_machines_for_its_duration():
    bank = _bank(n=4)
    bank.advance(100.0)
    bank.stop(3)
    bank.changeover(np.array([0, 1, 3]), 50.0)
    assert bank.state.tolist() == [CHANGEOVER, CHANGEOVER, RUNNING, IDLE]
    step = bank.advance(300.0)
    assert step.running_time.tolist() == [150.0, 150.0, 200.0, 0.0]
    assert bank.state.tolist() == [RUNNING, RUNNING, RUNNING, IDLE]


def test_line_of_groups_machines_by_line():
    bank = _bank(n=6, per_line=2)
    assert bank.line_of.tolist() == [0, 0, 1, 1, 2, 2]


def test_same_seed_same_history():
    a = _bank(n=50, mtbf=3600.0, seed=11).advance(36000.0)
    b = _bank(n=50, mtbf=3600.0, seed=11).advance(36000.0)
    assert np.array_equal(a.good, b.good) and np.array_equal(a.down_start, b.down_start)


def test_telemetry_reflects_state():
    bank = _bank(n=2, cycle_time=30.0)
    bank.stop(1)
    bank.advance(60.0)
    tel = bank.telemetry()
    assert tel["speed"].tolist() == [2.0, 0.0]
    assert tel["cycle_time"].tolist() == [30.0, 0.0]
    assert tel["alarm"].tolist() == [False, False]
    assert tel["good"][0] == bank.good_total[0]

"""A plant's machine bank, vectorised: every machine of a plant is one slot in numpy arrays.

The bank advances in steps (``advance(t_to)``) of any length. Within a step each running machine
produces a Poisson number of cycles for the time it ran; breakdowns arrive with exponential time
between failures (``mtbf``) and last an exponential repair time (``mttr``). Only state *changes* are
visited one by one, and they are rare next to cycles, so a week of 500 machines costs milliseconds.

The same bank feeds the virtual-time engine (steps of one window) and the live OPC UA servers
(steps of one scaled-clock tick).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RUNNING, IDLE, DOWN, CHANGEOVER = 0, 1, 2, 3
STATE_NAMES = ("running", "idle", "down", "changeover")


@dataclass(frozen=True)
class BankStep:
    """What happened in one ``advance`` call, per machine (arrays of length ``n``)."""

    t_from: float
    t_to: float
    good: np.ndarray  # good units produced
    scrap: np.ndarray  # scrapped units
    running_time: np.ndarray  # seconds spent running
    down_machine: np.ndarray  # one entry per breakdown that *started* in the step
    down_start: np.ndarray
    down_end: np.ndarray  # may lie beyond t_to


class MachineBank:
    """``n`` machines with shared parameters and one seeded RNG.

    ``line_of[i]`` is machine ``i``'s line index. Commands (``stop``, ``start``, ``reset``) act at
    once; breakdowns and repairs happen by themselves as time advances.
    """

    def __init__(
        self,
        n: int,
        cycle_time: float,
        scrap_rate: float,
        mtbf: float,
        mttr: float,
        rng: np.random.Generator,
        machines_per_line: int | None = None,
        t0: float = 0.0,
    ):
        self.n = n
        self.cycle_time = cycle_time
        self.scrap_rate = scrap_rate
        self.mtbf = mtbf
        self.mttr = mttr
        self.rng = rng
        self.t = t0
        per_line = machines_per_line or n
        self.line_of = np.arange(n) // per_line
        self.state = np.full(n, RUNNING, dtype=np.int8)
        self.held_until = np.full(n, np.inf)  # end of a breakdown or changeover
        self.next_failure = t0 + rng.exponential(mtbf, n)
        self.good_total = np.zeros(n, dtype=np.int64)
        self.scrap_total = np.zeros(n, dtype=np.int64)
        self.downtime_total = np.zeros(n)

    # ------------------------------------------------------------------------------------ commands
    def stop(self, machine: int) -> None:
        """Operator stop: the machine idles until started again."""
        self.state[machine] = IDLE
        self.held_until[machine] = np.inf

    def start(self, machine: int) -> None:
        """Operator start: an idle machine runs again (a broken one stays down until repaired)."""
        if self.state[machine] in (IDLE, CHANGEOVER):
            self.state[machine] = RUNNING
            self.held_until[machine] = np.inf
            self.next_failure[machine] = self.t + self.rng.exponential(self.mtbf)

    def reset(self, machine: int) -> None:
        """Zero the machine's counters (as a PLC counter reset does)."""
        self.good_total[machine] = 0
        self.scrap_total[machine] = 0

    def changeover(self, machines: np.ndarray, duration: float) -> None:
        """Put running ``machines`` into changeover for ``duration`` seconds from now."""
        mask = np.zeros(self.n, dtype=bool)
        mask[machines] = True
        mask &= self.state == RUNNING
        self.state[mask] = CHANGEOVER
        self.held_until[mask] = self.t + duration

    # ------------------------------------------------------------------------------------ dynamics
    def advance(self, t_to: float) -> BankStep:
        """Move every machine to ``t_to`` and return what each produced and which broke down."""
        t_from = self.t
        running_time = np.zeros(self.n)
        cursor = np.full(self.n, t_from)
        downs_m, downs_s, downs_e = [], [], []
        while True:
            # Next own state change of each machine: failure while running, end of repair/changeover.
            change_at = np.where(self.state == RUNNING, self.next_failure, self.held_until)
            due = change_at < t_to
            if not due.any():
                break
            idx = np.flatnonzero(due)
            at = change_at[idx]
            running = self.state[idx] == RUNNING
            running_time[idx[running]] += at[running] - cursor[idx[running]]
            cursor[idx] = at
            fail = idx[running]
            if fail.size:
                repair = self.rng.exponential(self.mttr, fail.size)
                self.state[fail] = DOWN
                self.held_until[fail] = at[running] + repair
                downs_m.append(fail)
                downs_s.append(at[running])
                downs_e.append(at[running] + repair)
            back = idx[~running]
            if back.size:
                self.state[back] = RUNNING
                self.held_until[back] = np.inf
                self.next_failure[back] = at[~running] + self.rng.exponential(self.mtbf, back.size)
        tail = self.state == RUNNING
        running_time[tail] += t_to - cursor[tail]
        cycles = self.rng.poisson(running_time / self.cycle_time)
        scrap = self.rng.binomial(cycles, self.scrap_rate)
        good = cycles - scrap
        self.good_total += good
        self.scrap_total += scrap
        self.t = t_to
        empty = np.empty(0)
        down_m = np.concatenate(downs_m) if downs_m else np.empty(0, dtype=np.int64)
        down_s = np.concatenate(downs_s) if downs_s else empty
        down_e = np.concatenate(downs_e) if downs_e else empty
        np.add.at(self.downtime_total, down_m, down_e - down_s)
        return BankStep(t_from, t_to, good, scrap, running_time, down_m, down_s, down_e)

    # ----------------------------------------------------------------------------------- telemetry
    def telemetry(self) -> dict[str, np.ndarray]:
        """Current per-machine signals as the PLCs expose them."""
        running = self.state == RUNNING
        speed = np.where(running, 60.0 / self.cycle_time, 0.0)  # units per minute
        temperature = 35.0 + np.where(running, 25.0, 5.0) + self.rng.normal(0.0, 0.5, self.n)
        return {
            "state": self.state.copy(),
            "good": self.good_total.copy(),
            "scrap": self.scrap_total.copy(),
            "cycle_time": np.where(running, self.cycle_time, 0.0),
            "speed": speed,
            "temperature": temperature,
            "alarm": self.state == DOWN,
        }

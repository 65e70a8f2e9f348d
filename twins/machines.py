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

from scenarios.spec import PlantSpec

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


@dataclass(frozen=True)
class IntervalSteps:
    """What happened over several consecutive intervals: (n machines × k intervals) arrays."""

    t_from: float
    bounds: np.ndarray  # end of each interval
    good: np.ndarray
    scrap: np.ndarray
    running_time: np.ndarray
    down_machine: np.ndarray
    down_start: np.ndarray
    down_end: np.ndarray


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
        self.planned_changeovers: list[tuple[float, float]] = []

    @classmethod
    def for_plant(cls, plant: PlantSpec, rng: np.random.Generator, t0: float = 0.0) -> MachineBank:
        """The bank of ``plant``'s machines (line by line), drawing from ``rng``: the one constructor both
        engines use, with ``rng`` seeded by :func:`scenarios.generator.plant_seed`."""
        return cls(plant.lines * plant.machines_per_line, plant.cycle_time, plant.scrap_rate, plant.mtbf,
                   plant.mttr, rng, machines_per_line=plant.machines_per_line, t0=t0)

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

    def schedule_changeover(self, at: float, duration: float) -> None:
        """At time ``at`` (not before the bank's clock) every running machine changes over for ``duration``."""
        self.planned_changeovers.append((max(at, self.t), duration))
        self.planned_changeovers.sort()

    # ------------------------------------------------------------------------------------ dynamics
    def advance(self, t_to: float) -> BankStep:
        """Move every machine to ``t_to`` and return what each produced and which broke down."""
        t_from = self.t
        steps = self.advance_intervals(np.array([t_to], dtype=float))
        return BankStep(t_from, t_to, steps.good[:, 0], steps.scrap[:, 0], steps.running_time[:, 0],
                        steps.down_machine, steps.down_start, steps.down_end)

    def advance_intervals(self, bounds: np.ndarray) -> IntervalSteps:
        """Move every machine to ``bounds[-1]``; output per machine and per interval ending at each bound."""
        t_from, t_to = self.t, float(bounds[-1])
        seg_m, seg_s, seg_e = [], [], []  # running segments
        cursor = np.full(self.n, t_from)
        downs_m, downs_s, downs_e = [], [], []
        while True:
            # Next own state change of each machine: failure while running, end of repair/changeover,
            # or a planned changeover reached while running.
            planned = self.planned_changeovers[0][0] if self.planned_changeovers else np.inf
            change_at = np.where(self.state == RUNNING, np.minimum(self.next_failure, planned), self.held_until)
            due = change_at < t_to
            if not due.any():
                if planned < t_to:  # nobody was running at the planned changeover: nothing to change
                    self.planned_changeovers.pop(0)
                    continue
                break
            at_min = change_at[due].min()
            if planned <= at_min and planned < t_to:
                _, duration = self.planned_changeovers.pop(0)
                running = np.flatnonzero(self.state == RUNNING)
                seg_m.append(running)
                seg_s.append(cursor[running])
                seg_e.append(np.full(running.size, planned))
                cursor[running] = planned
                self.state[running] = CHANGEOVER
                self.held_until[running] = planned + duration
                continue
            idx = np.flatnonzero(due & (change_at < planned))
            at = change_at[idx]
            running = self.state[idx] == RUNNING
            fail = idx[running]
            if fail.size:
                seg_m.append(fail)
                seg_s.append(cursor[fail])
                seg_e.append(at[running])
                repair = self.rng.exponential(self.mttr, fail.size)
                self.state[fail] = DOWN
                self.held_until[fail] = at[running] + repair
                downs_m.append(fail)
                downs_s.append(at[running])
                downs_e.append(at[running] + repair)
            cursor[idx] = at
            back = idx[~running]
            if back.size:
                self.state[back] = RUNNING
                self.held_until[back] = np.inf
                self.next_failure[back] = at[~running] + self.rng.exponential(self.mtbf, back.size)
        tail = np.flatnonzero(self.state == RUNNING)
        seg_m.append(tail)
        seg_s.append(cursor[tail])
        seg_e.append(np.full(tail.size, t_to))
        running_time = self._bin_segments(np.concatenate(seg_m), np.concatenate(seg_s), np.concatenate(seg_e),
                                          t_from, bounds)
        cycles = self.rng.poisson(running_time / self.cycle_time)
        scrap = self.rng.binomial(cycles, self.scrap_rate)
        good = cycles - scrap
        self.good_total += good.sum(axis=1)
        self.scrap_total += scrap.sum(axis=1)
        self.t = t_to
        empty = np.empty(0)
        down_m = np.concatenate(downs_m) if downs_m else np.empty(0, dtype=np.int64)
        down_s = np.concatenate(downs_s) if downs_s else empty
        down_e = np.concatenate(downs_e) if downs_e else empty
        np.add.at(self.downtime_total, down_m, down_e - down_s)
        return IntervalSteps(t_from, np.asarray(bounds, dtype=float), good, scrap, running_time,
                             down_m, down_s, down_e)

    def _bin_segments(self, m: np.ndarray, start: np.ndarray, end: np.ndarray, t_from: float,
                      bounds: np.ndarray) -> np.ndarray:
        """Running seconds per machine and interval from running segments (machine, start, end)."""
        edges = np.concatenate([[t_from], bounds])
        overlap = np.minimum(end[:, None], edges[None, 1:]) - np.maximum(start[:, None], edges[None, :-1])
        out = np.zeros((self.n, bounds.size))
        np.add.at(out, m, np.clip(overlap, 0.0, None))
        return out

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

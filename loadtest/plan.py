"""Load plans: what rate of events per second the gateway gets, and when, in wall seconds.

A plan is a list of :class:`Stage` s (a duration and a target rate). It comes from the scenario's
``load`` section (its steady rate, its shift change, its bursts; scenario times and rates are scaled
to wall time by the run's speed) or from a generic shape (step ramp, spike). Pure functions, no
Locust: :mod:`loadtest.shapes` turns a plan into user counts, the capacity search reads it per step.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from scenarios.spec import Scenario

SHAPES = ("steady", "shift-change", "bursts", "step-ramp", "spike")


class PlanError(ValueError):
    """A load plan that cannot be built; the message names the option and the fix."""


@dataclass(frozen=True)
class Stage:
    """``rate`` events per second (wall) for ``duration`` wall seconds; ``label`` names it in reports."""

    duration: float
    rate: float
    label: str = ""

    def as_dict(self) -> dict[str, float | str]:
        return asdict(self)


def scenario_rate(scenario: Scenario) -> float:
    """The scenario's steady rate of business events per scenario second, over all plants: output
    confirmations of every machine plus material issues, orders and inventory moves."""
    load = scenario.load
    total = 0.0
    for plant in scenario.landscape.all_plants:
        machines = plant.lines * plant.machines_per_line
        total += machines / load.confirmation_interval
        total += plant.lines * (load.material_issues + load.orders)
        total += load.inventory_moves
    return total


def steady(rate: float, duration: float) -> list[Stage]:
    """One stage at ``rate`` for ``duration``."""
    return [Stage(duration, rate, "steady")]


def shift_change(scenario: Scenario, rate: float, duration: float, speed: float) -> list[Stage]:
    """Steady, then the scenario's shift-change burst (its factor, its length scaled by ``speed``,
    at least 5 s), then steady again; the burst starts a quarter into the run."""
    shift = scenario.load.shift
    burst = min(max(shift.change_burst_duration / speed, 5.0), duration / 2)
    before = duration / 4
    after = max(duration - before - burst, 0.0)
    stages = [Stage(before, rate, "before shift change"), Stage(burst, rate * shift.change_burst_factor,
                                                                 "shift change")]
    return stages + ([Stage(after, rate, "after shift change")] if after > 0 else [])


def bursts(scenario: Scenario, rate: float, duration: float, speed: float) -> list[Stage]:
    """The steady rate plus each of the scenario's bursts (extra events per plant, scenario times and
    rates scaled by ``speed``) that starts within ``duration`` wall seconds."""
    plants = [p.id for p in scenario.landscape.all_plants]
    edges = {0.0, duration}
    windows = []
    for b in scenario.load.bursts:
        start, end = b.at / speed, min((b.at + b.duration) / speed, duration)
        if start >= duration:
            continue
        n = len(plants) if b.plants == "all" else len(b.plants)
        windows.append((start, end, b.rate * n * speed, b.flow))
        edges |= {start, end}
    if not windows:
        raise PlanError(f"--shape bursts: scenario {scenario.name!r} has no load.bursts that start within "
                        f"{duration:g} wall seconds at speed {speed:g}; add one or use --shape steady")
    points = sorted(edges)
    stages = []
    for a, b in zip(points, points[1:], strict=False):
        active = [w for w in windows if w[0] <= a < w[1]]
        extra = sum(w[2] for w in active)
        label = "burst: " + ", ".join(w[3] for w in active) if active else "steady"
        stages.append(Stage(b - a, rate + extra, label))
    return stages


def step_ramp(start: float, step: float, steps: int, step_s: float) -> list[Stage]:
    """``steps`` stages of ``step_s`` seconds: ``start``, ``start + step``, ..."""
    return [Stage(step_s, start + i * step, f"step {i + 1}") for i in range(steps)]


def spike(rate: float, duration: float, factor: float = 5.0) -> list[Stage]:
    """Steady, a spike of ``factor`` x the rate for a tenth of the run (at least 3 s) at mid-run, steady."""
    peak = max(duration / 10, 3.0)
    before = (duration - peak) / 2
    return [Stage(before, rate, "before spike"), Stage(peak, rate * factor, "spike"),
            Stage(duration - before - peak, rate, "after spike")]


def build_plan(scenario: Scenario, shape: str, rate: float, duration: float, speed: float,
               steps: int = 5, max_rate: float | None = None) -> list[Stage]:
    """The plan for ``shape`` (one of :data:`SHAPES`) around the base ``rate`` events/s (wall).

    A step ramp climbs from ``rate`` to ``max_rate`` (default 3 x ``rate``) in ``steps`` steps that
    share ``duration`` equally."""
    if shape not in SHAPES:
        raise PlanError(f"--shape: {shape!r} is not a shape; use one of {', '.join(SHAPES)}")
    if rate <= 0:
        raise PlanError("--rate: must be > 0 events per second, e.g. --rate 2000")
    if duration <= 0:
        raise PlanError("--duration: must be > 0, e.g. --duration 60s")
    if shape == "steady":
        return steady(rate, duration)
    if shape == "shift-change":
        return shift_change(scenario, rate, duration, speed)
    if shape == "bursts":
        return bursts(scenario, rate, duration, speed)
    if shape == "spike":
        return spike(rate, duration)
    top = max_rate if max_rate is not None else 3 * rate
    if steps < 1:
        raise PlanError("--steps: must be >= 1")
    if top < rate:
        raise PlanError(f"--max-rate: {top:g} is below --rate {rate:g}; the ramp climbs from --rate to --max-rate")
    increment = (top - rate) / (steps - 1) if steps > 1 else 0.0
    return step_ramp(rate, increment, steps, duration / steps)


def plan_duration(plan: list[Stage]) -> float:
    """Wall seconds the plan lasts."""
    return sum(s.duration for s in plan)


def rate_at(plan: list[Stage], t: float) -> float | None:
    """Target events/s at ``t`` seconds into the plan; None once it is over."""
    end = 0.0
    for stage in plan:
        end += stage.duration
        if t < end:
            return stage.rate
    return None


def stage_bounds(plan: list[Stage]) -> list[tuple[float, float]]:
    """(start, end) wall seconds of every stage."""
    out, t = [], 0.0
    for stage in plan:
        out.append((t, t + stage.duration))
        t += stage.duration
    return out


def users_for(rate: float, per_user: float) -> int:
    """Locust users that post ``rate`` events/s when each posts ``per_user`` events/s (0 for rate 0)."""
    return 0 if rate <= 0 else max(1, math.ceil(rate / per_user - 1e-9))


def shape_tick(plan: list[Stage], per_user: float, t: float) -> tuple[int, float] | None:
    """What a Locust shape returns ``t`` seconds into ``plan``: (users, spawn rate), None once it is over.
    A stage's users start (or stop) at once: the plan's steps are sharp."""
    rate = rate_at(plan, t)
    return None if rate is None else (users_for(rate, per_user), 100.0)


def pace(rates: list[float], batch: int, users: int | None, max_users: int = 400) -> tuple[int, float]:
    """(batch, requests/s per user) for a plan with stage ``rates`` (events/s).

    Users are the control: a stage of rate r runs r / per-user-rate users. With ``users`` given the
    per-user rate is the peak over them. Otherwise it starts at about 2 requests/s per user and is
    refined to a divisor of the stages' common step (their greatest common divisor, or a tenth of the
    smallest rate), so each stage gets its rate rather than the next multiple, with at most
    ``max_users`` users at the peak. Small rates get smaller batches, not idle users."""
    peak = max(rates)
    if users:
        per_user = peak / users
    else:
        per_user = peak / max(1, math.ceil(peak / (batch * 2)))
        positive = [r for r in rates if r > 0]
        whole = all(abs(r - round(r)) < 1e-6 for r in positive)
        step = float(math.gcd(*(round(r) for r in positive))) if whole else min(positive) / 10
        per_user = step / math.ceil(step / per_user) if step >= per_user else step
        per_user = max(per_user, peak / max_users)
    if per_user < batch:  # less than one batch a second per user: post smaller batches
        batch = max(1, int(per_user))
    return batch, per_user / batch

"""Load shapes for the gateway: a shift-change burst and a step ramp to find the knee.

Use one with the users of :mod:`loadtest.locustfile`, e.g.::

    locust -f loadtest/shift_change.py --headless --host http://127.0.0.1:8000
"""

from __future__ import annotations

from locust import LoadTestShape


class ShiftChangeShape(LoadTestShape):
    """Steady load, a burst of ``factor`` x users for ``burst_s`` (the shift change), then steady again."""

    base_users = 10
    factor = 3
    warmup_s = 20
    burst_s = 30
    cooldown_s = 30

    def tick(self) -> tuple[int, float] | None:
        t = self.get_run_time()
        if t < self.warmup_s:
            return self.base_users, self.base_users
        if t < self.warmup_s + self.burst_s:
            return self.base_users * self.factor, self.base_users * self.factor
        if t < self.warmup_s + self.burst_s + self.cooldown_s:
            return self.base_users, self.base_users
        return None


class StepShape(LoadTestShape):
    """``step_users`` more users every ``step_s`` up to ``max_users``; stop after the last step."""

    step_users = 10
    step_s = 15
    max_users = 80

    def tick(self) -> tuple[int, float] | None:
        step = int(self.get_run_time() // self.step_s) + 1
        users = step * self.step_users
        if users > self.max_users:
            return None
        return users, self.step_users


class PlanShape(LoadTestShape):
    """A :mod:`loadtest.plan` plan as Locust user counts: each user posts ``per_user_rate`` events/s,
    so a stage of ``rate`` events/s runs ``ceil(rate / per_user_rate)`` users. Stops after the plan."""

    plan: list = []
    per_user_rate: float = 1.0

    def tick(self) -> tuple[int, float] | None:
        from loadtest.plan import shape_tick

        return shape_tick(self.plan, self.per_user_rate, self.get_run_time())


def plan_shape(plan: list, per_user_rate: float) -> PlanShape:
    """A :class:`PlanShape` instance for ``plan``."""
    shape_cls = type("ScenarioPlanShape", (PlanShape,), {"plan": list(plan), "per_user_rate": per_user_rate})
    return shape_cls()

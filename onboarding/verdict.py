"""Readiness rows and the verdict they add up to: ready, ready with warnings, not ready."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

PASS, WARN, FAIL = "pass", "warn", "fail"
READY, READY_WITH_WARNINGS, NOT_READY = "ready", "ready with warnings", "not ready"
CHECKS = ("master data", "contract", "security", "connectivity", "capacity", "pilot")


@dataclass(frozen=True)
class Row:
    """One readiness finding: which check, about what, its verdict, the evidence and the fix."""

    check: str
    name: str
    verdict: str
    evidence: str
    fix: str = ""


@dataclass
class Result:
    """Every row of an onboarding run, plus figures worth keeping (capacity, pilot)."""

    plant: str
    rows: list[Row] = field(default_factory=list)
    figures: dict = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        verdicts = {r.verdict for r in self.rows}
        if FAIL in verdicts or not self.rows:
            return NOT_READY
        return READY_WITH_WARNINGS if WARN in verdicts else READY

    @property
    def ready(self) -> bool:
        return self.verdict != NOT_READY

    def counts(self) -> dict[str, int]:
        return {v: sum(r.verdict == v for r in self.rows) for v in (FAIL, WARN, PASS)}

    def ordered(self) -> list[Row]:
        """Failing rows first, then warnings, then passes; check order within each."""
        rank = {FAIL: 0, WARN: 1, PASS: 2}
        order = {c: i for i, c in enumerate(CHECKS)}
        return sorted(self.rows, key=lambda r: (rank.get(r.verdict, 3), order.get(r.check, 99)))

    def as_json(self) -> dict:
        return {"plant": self.plant, "verdict": self.verdict, "counts": self.counts(),
                "rows": [asdict(r) for r in self.ordered()], "figures": self.figures}

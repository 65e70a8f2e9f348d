"""One colour scheme for every chart: a fixed colour per flow, per plant, per run and per state."""

from __future__ import annotations

from kernel.trace import FLOWS

# Colour-blind-friendly categorical colours (Okabe–Ito first, then Tableau), fixed per flow so a flow
# has the same colour in every chart and every report.
_BASE = (
    "#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000", "#8C564B",
    "#7F7F7F", "#BCBD22", "#17BECF", "#9467BD", "#393B79", "#F0E442", "#2CA02C", "#D62728",
    "#E377C2", "#AEC7E8", "#FFBB78", "#637939",
)
FLOW_COLORS: dict[str, str] = {flow: _BASE[i % len(_BASE)] for i, flow in enumerate(FLOWS)}
STAGE_COLORS = {"edge": "#E69F00", "integration": "#0072B2", "erp_postings": "#D55E00"}
BREAKER_COLORS = {"closed": "#009E73", "half_open": "#E69F00", "open": "#D55E00"}
RUN_COLORS = ("#0072B2", "#D55E00")  # run A, run B in comparisons
PERCENTILE_STYLES = {"p50": ":", "p95": "-", "p99": "--"}
FAULT_SHADE = "#D55E00"
WAVE_LINE = "#6A3D9A"
BURST_SHADE = "#0072B2"
PASS_COLOR, FAIL_COLOR, NEUTRAL_COLOR = "#1B7F3B", "#B3261E", "#5F6368"


def flow_color(flow: str) -> str:
    """The colour of ``flow`` (grey for unknown flows)."""
    return FLOW_COLORS.get(flow, "#7F7F7F")


def plant_color(plant: str, plants: list[str]) -> str:
    """The colour of ``plant`` given the run's sorted plant list (stable across charts of one report)."""
    order = sorted(plants)
    return _BASE[order.index(plant) % len(_BASE)] if plant in order else "#7F7F7F"

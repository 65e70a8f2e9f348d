"""The report as PDF: text pages for verdicts and tables, the same charts as vector pages.

Uses matplotlib's ``PdfPages`` so no extra dependency is needed.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure

from reports import palette
from reports.charts import Chart
from reports.view import ReportView, Table

A4 = (8.27, 11.69)
WRAP = 105
LINE = 0.018  # fraction of the page height per text line


class _TextPage:
    """Writes lines top to bottom, starting a new page when one is full."""

    def __init__(self, pdf: PdfPages, title: str):
        self.pdf, self.title = pdf, title
        self.fig: Figure | None = None
        self.y = 0.0

    def _new(self) -> None:
        self.flush()
        self.fig = Figure(figsize=A4)
        self.fig.text(0.06, 0.965, self.title, fontsize=9, color=palette.NEUTRAL_COLOR)
        self.y = 0.93

    def write(self, text: str, size: float = 9.0, color: str = "black", weight: str = "normal",
              indent: float = 0.0) -> None:
        width = int(WRAP * 9.0 / size) - int(indent * 100)
        for i, chunk in enumerate(textwrap.wrap(text, width) or [""]):
            if self.fig is None or self.y < 0.05:
                self._new()
            assert self.fig is not None
            self.fig.text(0.06 + indent + (0.02 if i else 0.0), self.y, chunk, fontsize=size, color=color,
                          weight=weight, va="top", family="DejaVu Sans")
            self.y -= LINE * size / 9.0
        self.y -= LINE * 0.3

    def gap(self, lines: float = 1.0) -> None:
        self.y -= LINE * lines

    def table(self, t: Table) -> None:
        self.write(t.title, 11, weight="bold")
        widths = [max(len(h), *(len(r[i]) for r in t.rows)) if t.rows else len(h) for i, h in enumerate(t.header)]
        widths = [min(w, 28) for w in widths]
        line_chars = sum(widths) + 2 * len(widths)
        # Shrink the monospace font until the widest line fits the printable width (a glyph is ~0.63 em).
        size = max(4.5, min(8.0, (A4[0] - 1.3) * 72 / (0.65 * line_chars)))

        def fmt(cells: list[str]) -> str:
            return "  ".join(c[:w].ljust(w) for c, w in zip(cells, widths, strict=True))

        for line in [fmt(t.header), "-" * line_chars] + [fmt(r) for r in t.rows]:
            if self.fig is None or self.y < 0.05:
                self._new()
            assert self.fig is not None
            self.fig.text(0.06, self.y, line, fontsize=size, family="DejaVu Sans Mono", va="top")
            self.y -= LINE * size / 9.0
        if t.note:
            self.write(t.note, 7.5, palette.NEUTRAL_COLOR)
        self.gap()

    def flush(self) -> None:
        if self.fig is not None:
            self.pdf.savefig(self.fig)
            self.fig = None


def write_pdf(path: Path, view: ReportView, charts: list[Chart], scenario_text: str) -> None:
    """Write the report to ``path`` as a multi-page PDF."""
    with PdfPages(path, metadata={"Title": view.title, "Creator": "synctwin"}) as pdf:
        page = _TextPage(pdf, view.title)
        page.write(view.title, 15, weight="bold")
        color = palette.PASS_COLOR if view.passed else palette.FAIL_COLOR
        page.write(("PASS — " if view.passed else "BREACH — ") + view.headline, 12, color, "bold")
        page.gap()
        for state, line in view.verdicts:
            mark = {"pass": "✓", "fail": "✗"}.get(state, "•")
            c = {"pass": palette.PASS_COLOR, "fail": palette.FAIL_COLOR}.get(state, "black")
            page.write(f"{mark} {line}", 9.5, c)
        if view.breaches:
            page.gap()
            page.write("Breaches", 11, weight="bold")
            for b in view.breaches:
                page.write(f"– {b}", 9, palette.FAIL_COLOR)
        page.gap()
        page.write("Key figures", 11, weight="bold")
        for t in view.tiles:
            page.write(f"{t.label}: {t.value}  ({t.note})" if t.note else f"{t.label}: {t.value}", 9)
        page.gap()
        page.table(view.sla_table)
        page.write("Invariants", 11, weight="bold")
        for i in view.invariant_rows:
            verdict = "pass" if i["passed"] else "FAIL"
            page.write(f"{i['label']} = 0: {i['count']} — {verdict}", 9,
                       palette.PASS_COLOR if i["passed"] else palette.FAIL_COLOR)
            if i["ids"]:
                page.write("ids: " + ", ".join(i["ids"]), 7.5, indent=0.02)
        page.gap()
        page.table(view.fault_table)
        page.flush()
        for chart in charts:
            pdf.savefig(chart.figure)
        page = _TextPage(pdf, view.title)
        for t in view.tables:
            page.table(t)
        page.write("Scenario as run", 11, weight="bold")
        for k, val in view.run_facts:
            page.write(f"{k}: {val}", 8.5)
        page.gap()
        for line in scenario_text.splitlines():
            if page.fig is None or page.y < 0.05:
                page._new()
            assert page.fig is not None
            page.fig.text(0.06, page.y, line[:120], fontsize=7, family="DejaVu Sans Mono", va="top")
            page.y -= LINE * 7 / 9.0
        page.flush()

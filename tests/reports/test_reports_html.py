"""The HTML and PDF reports: numbers in the text, self-contained, charts titled with units."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from reports.finalize import finalize_run
from tests.reports.reports_fixture_run import Expected, build_run


class _Page(HTMLParser):
    """Collects text, chart figures and every src/href of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.charts: list[dict[str, str]] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "figure" and "data-chart-id" in a:
            self.charts.append(a)
        self.links += [v for k, v in a.items() if k in ("src", "href")]

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _page(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.plain = re.sub(r"\s+", " ", " ".join(page.text))  # type: ignore[attr-defined]
    return page


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[_Page, Path, Expected]:
    """One faulty run rendered once (HTML + PDF) for all read-only checks of this module."""
    run_dir, exp = build_run(tmp_path_factory.mktemp("report"))
    finalize_run(run_dir, pdf=True)
    return _page(run_dir / "report.html"), run_dir, exp


def test_executive_lines_carry_the_numbers(report: tuple[_Page, Path, Expected]) -> None:
    page, _, exp = report
    text = page.plain  # type: ignore[attr-defined]
    assert f"During the 45-minute ERP outage (legacy) at Mon 10:00, {exp.queued_during_outage} postings queued" in text
    assert "all were delivered within 90.0 s of the outage ending" in text
    assert "BREACH" in text
    assert "Inventory postings reached the ERP: 95 % within" in text and "(target 15 min) — met." in text


def test_invariant_offenders_are_listed(report: tuple[_Page, Path, Expected]) -> None:
    page, _, exp = report
    text = page.plain  # type: ignore[attr-defined]
    for txn in exp.lost_ids + exp.duplicate_ids + exp.held_shipped:
        assert txn in text
    assert "duplicates posted: 1 transaction posted twice to erp-legacy (e.g. P01-000010)" in text


def test_report_is_self_contained(report: tuple[_Page, Path, Expected]) -> None:
    page, run_dir, _ = report
    assert page.links, "expected chart images and in-page links"
    assert all(link.startswith(("data:", "#")) for link in page.links), [
        link[:40] for link in page.links if not link.startswith(("data:", "#"))]
    html = (run_dir / "report.html").read_text()
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", html)
    assert "@media print" in html
    assert "name: fixture-outage" in html  # the scenario as run


def test_every_chart_has_title_and_axis_units(report: tuple[_Page, Path, Expected]) -> None:
    page, _, _ = report
    ids = [c["data-chart-id"] for c in page.charts]
    assert {"latency", "backlog", "retries", "erp_load", "plants", "timeline"} <= set(ids)
    for chart in page.charts:
        assert chart["data-title"].strip()
        for axis in ("data-xlabel", "data-ylabel"):
            assert re.search(r"\(.+\)", chart[axis]), f"{chart['data-chart-id']} {axis} lacks a unit: {chart[axis]}"
    time_charts = [c for c in page.charts if c["data-chart-id"] not in ("plants",)]
    assert all(c["data-xlabel"].startswith("clock time") for c in time_charts)


def test_pdf_has_text_and_chart_pages(report: tuple[_Page, Path, Expected]) -> None:
    _, run_dir, _ = report
    pdf = (run_dir / "report.pdf").read_bytes()
    assert pdf.startswith(b"%PDF")
    pages = len(re.findall(rb"/Type\s*/Page\b", pdf))
    assert pages >= 8  # verdict/tables pages + six chart pages + scenario page


def test_replicated_report_shows_confidence_intervals(tmp_path: Path) -> None:
    run_dir, _ = build_run(tmp_path, replications=3, lost=False, duplicate=False, held_shipped=False)
    finalize_run(run_dir)
    text = _page(run_dir / "report.html").plain  # type: ignore[attr-defined]
    assert "95 % CI" in text
    assert "Means over replications with 95 % t-intervals." in text


def test_charts_use_the_object_api_only() -> None:
    for path in Path("reports").glob("*.py"):
        assert not re.search(r"import .*pyplot|pyplot\s+import|plt\.", path.read_text()), f"{path} uses pyplot"

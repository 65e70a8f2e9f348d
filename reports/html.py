"""Render the self-contained HTML report (jinja2 template, charts as inline SVG data URIs)."""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from reports.charts import Chart
from reports.view import ReportView


def environment() -> Environment:
    """The template environment of ``reports/templates`` (autoescaped, strict about typos)."""
    return Environment(loader=PackageLoader("reports", "templates"),
                       autoescape=select_autoescape(["html", "j2"]), undefined=StrictUndefined,
                       trim_blocks=True, lstrip_blocks=True)


def render_report(view: ReportView, charts: list[Chart], scenario_text: str) -> str:
    """The report page as one HTML string with no external assets."""
    return environment().get_template("report.html.j2").render(v=view, charts=charts, scenario_text=scenario_text)


def render_template(name: str, **context: Any) -> str:
    """Render another template of the package (e.g. the comparison page)."""
    return environment().get_template(name).render(**context)

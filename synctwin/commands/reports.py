"""``synctwin report`` and ``synctwin compare``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from reports.runfolder import RunFolderError

EXIT_PASS, EXIT_BREACH, EXIT_BAD_INPUT = 0, 1, 2


def report(
    run_dir: Annotated[Path, typer.Argument(help="run folder, e.g. runs/20261123-101500-erp-outage")],
    pdf: Annotated[bool, typer.Option("--pdf", help="also write report.pdf (vector charts)")] = False,
) -> None:
    """Rebuild sla.json and report.html from a run folder; exit 1 on a breach, 2 on bad input."""
    from reports.finalize import finalize_run

    console = Console()
    try:
        verdict = finalize_run(run_dir, pdf=pdf)
    except RunFolderError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    written = "sla.json, report.html" + (", report.pdf" if pdf else "")
    console.print(f"wrote {written} in {run_dir}", highlight=False, soft_wrap=True)
    if verdict.passed:
        console.print("[green]PASS[/green]: every SLA and invariant holds", highlight=False)
        raise typer.Exit(EXIT_PASS)
    console.print(f"[red]BREACH[/red]: {len(verdict.breaches)} breach(es)", highlight=False)
    for line in verdict.breaches:
        console.print(f"  - {line}", highlight=False, markup=False, soft_wrap=True)
    raise typer.Exit(EXIT_BREACH)


def compare(
    run_a: Annotated[Path, typer.Argument(help="first run folder (A)")],
    run_b: Annotated[Path, typer.Argument(help="second run folder (B)")],
    out: Annotated[Path | None, typer.Option("--out", help="folder for compare.html (default: RUN_B)")] = None,
) -> None:
    """Compare two runs side by side: SLA deltas on the terminal, compare.html with overlaid charts."""
    from reports.compare import compare_runs

    console = Console()
    try:
        result = compare_runs(run_a, run_b, out or run_b)
    except RunFolderError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    names = result["names"]
    table = Table(title=f"{names[0]} (A) vs {names[1]} (B)")
    for col in ("figure", "A", "B", "B − A", "verdict A", "verdict B"):
        table.add_column(col, justify="right" if col in ("A", "B", "B − A") else "left")
    for d in result["deltas"]:
        table.add_row(*d.row())
    console.print(table)
    console.print(f"wrote {result['html']}", highlight=False, soft_wrap=True)
    _fidelity(console, run_a, run_b, out or run_b)


def _fidelity(console: Console, run_a: Path, run_b: Path, out: Path) -> None:
    """A live run against a virtual one: the fidelity table (reports/fidelity.py) and fidelity.json."""
    from reports.fidelity import COLUMNS, engines, fidelity, write_fidelity

    kinds = engines(run_a, run_b)
    if sorted(kinds) != ["live", "virtual"]:
        return
    live, virtual = (run_a, run_b) if kinds[0] == "live" else (run_b, run_a)
    rows = fidelity(live, virtual)
    table = Table(title=f"fidelity: virtual {virtual.name} against live {live.name}")
    for col in COLUMNS:
        table.add_column(col, justify="left" if col in ("flow", "figure") else "right")
    for row in rows:
        table.add_row(*row.cells())
    console.print(table)
    console.print(f"wrote {write_fidelity(rows, Path(out) / 'fidelity.json')}", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add the report commands to ``app``."""
    app.command("report")(report)
    app.command("compare")(compare)

"""``synctwin report`` / ``synctwin compare``: exit codes, messages, the comparison page."""

from __future__ import annotations

from pathlib import Path

import typer
from typer.testing import CliRunner

from synctwin.commands import reports as report_commands
from tests.reports.reports_fixture_run import Expected, build_run


def _app() -> typer.Typer:
    app = typer.Typer()
    report_commands.register(app)
    return app


def test_report_exit_0_on_pass(clean_run: tuple[Path, Expected]) -> None:
    run_dir, _ = clean_run
    result = CliRunner().invoke(_app(), ["report", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert "PASS" in result.output
    assert (run_dir / "sla.json").is_file() and (run_dir / "report.html").is_file()
    assert not (run_dir / "report.pdf").exists()


def test_report_exit_1_names_the_breach(faulty_run: tuple[Path, Expected]) -> None:
    run_dir, _ = faulty_run
    result = CliRunner().invoke(_app(), ["report", str(run_dir), "--pdf"])
    assert result.exit_code == 1
    assert "duplicates posted: 1 transaction posted twice to erp-legacy (e.g. P01-000010)" in result.output
    assert "held lots shipped" in result.output
    assert (run_dir / "report.pdf").is_file()


def test_report_exit_2_on_bad_input(tmp_path: Path) -> None:
    result = CliRunner().invoke(_app(), ["report", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert "no such run folder" in result.output
    run_dir, _ = build_run(tmp_path)
    (run_dir / "trace.parquet").write_text("not parquet")
    result = CliRunner().invoke(_app(), ["report", str(run_dir)])
    assert result.exit_code == 2
    assert "trace.parquet: not a readable Parquet file" in result.output


def test_compare_shows_deltas(tmp_path: Path) -> None:
    a, _ = build_run(tmp_path, lost=False, duplicate=False, held_shipped=False, run_id="baseline")
    b, _ = build_run(tmp_path, lost=False, duplicate=True, held_shipped=False, slow=1000.0, run_id="slower")
    out = tmp_path / "cmp"
    result = CliRunner(env={"COLUMNS": "200"}).invoke(_app(), ["compare", str(a), str(b), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "baseline (A) vs slower (B)" in result.output
    html = (out / "compare.html").read_text()
    # Every normal posting is 1000 s slower in B: its p95 breaches the 15 min target, A passes.
    row = next(line for line in html.splitlines() if "Inventory posting delay p95" in line)
    assert "BREACH" in row and "pass" in row
    dup_row = [line for line in result.output.splitlines() if "Duplicates posted" in line]
    assert dup_row and "+1" in dup_row[0]
    assert html.count('data-chart-id="cmp_') == 2
    assert "http://" not in html and "https://" not in html

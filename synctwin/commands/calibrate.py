"""``synctwin calibrate``: the virtual engine's hop service times fitted from a live run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

console = Console()


def register(app: typer.Typer) -> None:
    """Add ``calibrate`` to ``app``."""

    @app.command()
    def calibrate(
        live_run: Annotated[Path, typer.Argument(help="run folder of a live run (`synctwin up ... --out DIR`)")],
        out: Annotated[Path, typer.Option("-o", "--out", help="calibration file to write")] = Path("calibration.yaml"),
    ) -> None:
        """Fit each hop's service time (wall-clock processing per event) from LIVE_RUN's trace; use it with
        `synctwin run SCENARIO --calibration FILE [--speed S]` (exit 0, 2 for an unusable run folder)."""
        from virtual.calibration import CalibrationError, write_calibration
        from virtual.calibration import calibrate as fit

        try:
            calibration = fit(live_run)
        except CalibrationError as exc:
            Console(stderr=True).print(f"[red]{exc}[/red]", markup=True, highlight=False)
            raise typer.Exit(2) from None
        write_calibration(calibration, out)
        console.print(f"calibration: {out} (live run {calibration['run_id']}, speed {calibration['speed']:g})",
                      markup=False, highlight=False, soft_wrap=True)
        for name, fit_ in calibration["hops"].items():
            console.print(f"  {name:15s} {fit_['distribution']:11s} mean {fit_['mean'] * 1000:8.2f} ms wall "
                          f"({fit_['samples']} samples)", highlight=False)
        for note in calibration["notes"]:
            console.print(f"  note: {note}", markup=False, highlight=False)

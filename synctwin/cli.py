"""The ``synctwin`` command. Each group of subcommands lives in :mod:`synctwin.commands`.

Exit codes: 0 every SLA and invariant holds, 1 a breach (named on stdout), 2 bad input.
"""

from __future__ import annotations

import typer

from synctwin.commands import calibrate, chaos, live, onboard, reports, simulate
from synctwin.commands import load as load_command

app = typer.Typer(
    name="synctwin",
    help="Digital-twin testbed for manufacturing integration: run scenarios, check SLAs, read reports.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for module in (simulate, calibrate, reports, live, onboard, load_command, chaos):
    module.register(app)


if __name__ == "__main__":
    app()

"""Live engine commands: ``up``, ``chaos`` and the single services."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the live-engine commands to ``app``."""

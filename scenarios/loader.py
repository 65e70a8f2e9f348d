"""Read a scenario file into a validated :class:`~scenarios.spec.Scenario`, or explain why not.

Errors name the YAML path (``landscape.plants[2].cycle_time``), the value found and what is
allowed, so a user can fix the file without reading code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from scenarios.spec import Scenario


class ScenarioError(ValueError):
    """A scenario file that cannot be used; ``problems`` holds one line per fault."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: invalid scenario\n" + "\n".join(f"  - {p}" for p in problems))


def _yaml_path(loc: tuple[Any, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif str(part).startswith(("function-", "constrained-")) or part in ("str", "float", "int"):
            continue  # pydantic's internal union/validator tags say nothing to the user
        else:
            path += ("." if path else "") + str(part)
    return path or "(top level)"


def explain_validation_error(error: dict[str, Any]) -> str:
    """One line for one pydantic error: the YAML path, what is wrong, and what was found or the fix."""
    where = _yaml_path(tuple(error["loc"]))
    kind = error["type"]
    found = error.get("input")
    message = error["msg"].removeprefix("Value error, ")
    if kind == "extra_forbidden":
        return f"{where}: unknown key (remove it or check its spelling)"
    if kind == "missing":
        return f"{where}: required but missing"
    if kind == "literal_error":
        return f"{where}: {found!r} is not allowed; {message[0].lower()}{message[1:]}"
    shown = repr(found) if not isinstance(found, dict | list) else type(found).__name__
    return f"{where}: {message} (found {shown})"


def parse_scenario(data: Any, source: str = "<scenario>") -> Scenario:
    """Validate already-parsed YAML data; raise :class:`ScenarioError` listing every problem."""
    if not isinstance(data, dict):
        raise ScenarioError(source, ["(top level): expected a mapping with name, landscape, ... sections"])
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(source, [explain_validation_error(e) for e in exc.errors()]) from None


def load_scenario(path: str | Path, overrides: dict[str, Any] | None = None) -> Scenario:
    """Load and validate ``path``; ``overrides`` maps dotted keys (``run.seed``) to new values."""
    path = Path(path)
    if not path.is_file():
        raise ScenarioError(str(path), ["file not found; give a path to a scenario YAML file"])
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ScenarioError(str(path), [f"not valid YAML: {exc}"]) from None
    for dotted, value in (overrides or {}).items():
        if isinstance(data, dict):
            set_dotted(data, dotted, value)
    return parse_scenario(data, str(path))


def set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``a.b.c`` in nested dicts, creating the intermediate mappings."""
    node = data
    *parents, leaf = dotted.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value


def dump_scenario(scenario: Scenario) -> str:
    """The scenario as resolved (defaults filled in, groups kept), as YAML text."""
    return yaml.safe_dump(scenario.model_dump(mode="json"), sort_keys=False)

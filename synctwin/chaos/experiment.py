"""Loading a Chaos Toolkit experiment for ``synctwin chaos``: clear errors that name the path in the file.

The experiment is Chaos Toolkit's format (``title``, ``description``, ``configuration``,
``steady-state-hypothesis``, ``method``, ``rollbacks``); synctwin reads one key of its own from the
``configuration``: ``synctwin_scenario``, the scenario (relative to the experiment file) whose landscape
and load the live stack runs. Structure and every Python activity (module, function, arguments) are
checked here with the path of the offending entry; chaostoolkit-lib's own validation runs after.
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any

import yaml

SCENARIO_KEY = "synctwin_scenario"


class ExperimentError(ValueError):
    """A bad experiment; the message starts with the file and the path inside it."""


@dataclass
class LoadedExperiment:
    path: Path
    experiment: dict[str, Any]
    scenario_path: Path


def load_experiment(path: Path) -> LoadedExperiment:
    """Parse, check and return the experiment at ``path`` (raises :class:`ExperimentError`)."""
    path = Path(path)
    if not path.is_file():
        raise ExperimentError(f"{path}: no such file")
    text = path.read_text()
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ExperimentError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}") from None

    def fail(where: str, what: str) -> ExperimentError:
        return ExperimentError(f"{path}: {where}: {what}")

    if not isinstance(data, dict):
        raise fail("(top level)", "an experiment is a mapping with title, steady-state-hypothesis and method")
    for key in ("title", "description"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            raise fail(key, "required, a non-empty string")
    config = data.get("configuration") or {}
    if not isinstance(config, dict):
        raise fail("configuration", "a mapping of names to values")
    scenario = config.get(SCENARIO_KEY)
    if not isinstance(scenario, str):
        raise fail(f"configuration.{SCENARIO_KEY}", "required: the scenario (YAML path, relative to this file) "
                                                    "whose landscape and load the stack runs")
    scenario_path = (path.parent / scenario).resolve()
    if not scenario_path.is_file():
        raise fail(f"configuration.{SCENARIO_KEY}", f"{scenario} does not exist (looked at {scenario_path})")
    hypothesis = data.get("steady-state-hypothesis")
    if not isinstance(hypothesis, dict) or not isinstance(hypothesis.get("probes"), list) or not hypothesis["probes"]:
        raise fail("steady-state-hypothesis", "required, with a title and a non-empty list of probes")
    for i, probe in enumerate(hypothesis["probes"]):
        _check_activity(probe, f"steady-state-hypothesis.probes[{i}]", fail, need_tolerance=True)
    method = data.get("method")
    if not isinstance(method, list) or not method:
        raise fail("method", "required, a non-empty list of actions and probes")
    for i, activity in enumerate(method):
        _check_activity(activity, f"method[{i}]", fail)
    if not isinstance(data.get("rollbacks", []), list):
        raise fail("rollbacks", "a list of actions (write rollbacks: [] for none)")
    for i, activity in enumerate(data.get("rollbacks", [])):
        _check_activity(activity, f"rollbacks[{i}]", fail)
    _chaoslib_check(data, fail)
    return LoadedExperiment(path, data, scenario_path)


def _check_activity(activity: Any, where: str, fail, need_tolerance: bool = False) -> None:
    if isinstance(activity, dict) and set(activity) == {"ref"}:  # an earlier activity: chaostoolkit-lib checks it
        return
    if not isinstance(activity, dict):
        raise fail(where, "an activity is a mapping with type, name and provider")
    if activity.get("type") not in ("action", "probe"):
        raise fail(f"{where}.type", f"{activity.get('type')!r}; use action or probe")
    if not activity.get("name"):
        raise fail(f"{where}.name", "required")
    if need_tolerance and "tolerance" not in activity:
        raise fail(f"{where}.tolerance", "a hypothesis probe needs a tolerance")
    pauses = activity.get("pauses") or {}
    for key, value in pauses.items():
        if key not in ("before", "after") or not isinstance(value, int | float) or value < 0:
            raise fail(f"{where}.pauses.{key}", "before/after, a number of seconds >= 0")
    provider = activity.get("provider")
    if not isinstance(provider, dict):
        raise fail(f"{where}.provider", "required, a mapping with type (python, http or process)")
    if provider.get("type") != "python":
        return
    module_name, func = provider.get("module"), provider.get("func")
    try:
        module = import_module(str(module_name))
    except ImportError:
        raise fail(f"{where}.provider.module", f"cannot import {module_name!r}") from None
    function = getattr(module, str(func), None)
    if not callable(function):
        public = getattr(module, "__all__", [n for n in dir(module) if not n.startswith("_")])
        raise fail(f"{where}.provider.func", f"{module_name} has no function {func!r}; it has: {', '.join(public)}")
    arguments = dict(provider.get("arguments") or {})
    signature = inspect.signature(function)
    if "configuration" in signature.parameters:
        arguments["configuration"] = None
    if "secrets" in signature.parameters:
        arguments["secrets"] = None
    try:
        signature.bind(**arguments)
    except TypeError as exc:
        raise fail(f"{where}.provider.arguments", f"{exc} (signature of {func}: {signature})") from None


def _chaoslib_check(data: dict[str, Any], fail) -> None:
    from chaoslib.exceptions import ChaosException
    from chaoslib.experiment import ensure_experiment_is_valid

    try:
        ensure_experiment_is_valid(data)
    except (ChaosException, TypeError, KeyError, ValueError) as exc:
        raise fail("(chaostoolkit-lib)", str(exc)) from None

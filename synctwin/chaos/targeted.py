"""``synctwin chaos --target gateway=URL,erp=URL``: an experiment against services synctwin did not start.

Only what the gateway API and the ERP ledger's read API (and the ERP twin's mode switch) allow is
possible there; an activity that needs more -- a kill -9 of a process synctwin did not start, a link
without synctwin's fault proxy, a probe reading the stack's run folder -- is refused, naming its path in
the experiment, before anything starts. The one invariant checkable through the ledger API is checked:
no transaction posted twice.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path

from synctwin.chaos.experiment import SCENARIO_KEY, LoadedExperiment
from synctwin.chaos.runner import JOURNAL, ChaosOutcome, _probe_failures

# (module, function) an experiment may use against services synctwin did not start
ALLOWED = {
    ("synctwin.chaos.actions", "set_erp_mode"),
    ("synctwin.chaos.probes", "gateway_health"),
    ("synctwin.chaos.probes", "duplicates_so_far"),
    ("synctwin.chaos.probes", "duplicate_ids"),
    ("synctwin.chaos.probes", "erp_state"),
}


class TargetError(ValueError):
    """A --target that cannot be used, or an experiment that needs what it does not give."""


def parse_target(text: str) -> dict[str, str]:
    """``gateway=URL,erp=URL`` (``erp-<kind>=URL`` for several ERPs) as a dict; errors name the part."""
    urls: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, url = part.partition("=")
        if not sep or not url.startswith(("http://", "https://")):
            raise TargetError(f"--target: {part!r}; write NAME=http://HOST:PORT, e.g. gateway=http://127.0.0.1:8000")
        if key != "gateway" and key != "erp" and not key.startswith("erp-"):
            raise TargetError(f"--target: {key!r} is not a service; use gateway, erp or erp-<kind>")
        urls[key] = url.rstrip("/")
    if not urls:
        raise TargetError("--target: give gateway=URL and/or erp=URL")
    return urls


def refusals(experiment: dict) -> list[str]:
    """Activities of ``experiment`` that need a stack synctwin started, by path."""
    out = []
    groups = [("steady-state-hypothesis.probes", (experiment.get("steady-state-hypothesis") or {}).get("probes")),
              ("method", experiment.get("method")), ("rollbacks", experiment.get("rollbacks"))]
    for where, activities in groups:
        for i, activity in enumerate(activities or []):
            provider = activity.get("provider") or {}
            module = str(provider.get("module", ""))
            if provider.get("type") == "python" and module.startswith("synctwin.") and \
                    (module, provider.get("func")) not in ALLOWED:
                out.append(f"{where}[{i}] ({activity.get('name')}): {provider.get('func')} needs a stack synctwin "
                           "started (its processes, fault proxies or run folder)")
    return out


def run_targeted(loaded: LoadedExperiment, urls: dict[str, str], run_dir: Path,
                 log: Callable[[str], None] = print) -> ChaosOutcome:
    """Run the experiment against ``urls``; refuse it before anything starts when it needs more."""
    from chaoslib.experiment import run_experiment

    from synctwin.chaos.probes import duplicate_ids

    refused = refusals(loaded.experiment)
    if refused:
        raise TargetError(f"{loaded.path}: cannot run against --target services:\n  " + "\n  ".join(refused))
    experiment = copy.deepcopy(loaded.experiment)
    configuration = experiment.setdefault("configuration", {})
    configuration.pop(SCENARIO_KEY, None)
    erps = {"legacy" if k == "erp" else k.removeprefix("erp-"): u for k, u in urls.items() if k.startswith("erp")}
    if "gateway" in urls:
        configuration["gateway_url"] = urls["gateway"]
    if erps:
        configuration["erp_urls"] = erps
    log(f"running {loaded.experiment['title']!r} against {', '.join(f'{k} {u}' for k, u in urls.items())}")
    journal = run_experiment(experiment, settings={})
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / JOURNAL).write_text(json.dumps(journal, indent=1, default=str))
    steady = journal.get("steady_states") or {}
    before = (steady.get("before") or {}).get("steady_state_met")
    after = (steady.get("after") or {}).get("steady_state_met")
    failures = []
    if before is not True:
        failures.append(f"steady-state hypothesis before the method: {_probe_failures(journal, 'before') or 'not met'}")
    elif after is not True:
        failures.append(f"steady-state hypothesis after the method: {_probe_failures(journal, 'after') or 'not met'}")
    if erps:
        twice = duplicate_ids(configuration)
        if twice:
            failures.append(f"invariant duplicates_posted: {len(twice)} ({', '.join(twice[:10])})")
    return ChaosOutcome(run_dir, journal, before, after, failures)

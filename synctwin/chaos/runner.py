"""``synctwin chaos``'s run: the live stack for the experiment's scenario, the experiment while the plants
produce, then drain, stop and a run folder with the experiment's journal and fault timeline.

The stack runs on a thread of its own and chaostoolkit-lib on the main thread (it installs signal
handlers, which only the main thread may). The experiment starts once production has begun; when it
ends, whatever it left (a link down, an ERP mode, a killed process) is rolled back, production stops and
the stack drains as after its scenario duration. The control API's timeline becomes the run's fault
windows (``run.json``), so the report measures recovery per fault like for scheduled faults.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synctwin.chaos.control import StackControl
from synctwin.chaos.experiment import SCENARIO_KEY, LoadedExperiment
from synctwin.chaos.stack_host import LiveStackHost
from synctwin.chaos.timeline import fault_windows

JOURNAL = "journal.json"
PLANT_HOST_KEY = "synctwin_plant_host"  # configuration: "ray" runs the plants as Ray actors
CHAOS_FILE = "chaos.json"


@dataclass
class ExperimentResult:
    """One experiment of a run: its journal and hypothesis verdicts."""

    stem: str
    journal: dict[str, Any]
    before: bool | None
    after: bool | None
    journal_file: str = JOURNAL


@dataclass
class ChaosOutcome:
    """How a chaos run ended: each experiment's verdict, the invariants and one line per failure."""

    run_dir: Path
    journal: dict[str, Any]
    before: bool | None
    after: bool | None
    failures: list[str] = field(default_factory=list)
    sla: dict[str, Any] = field(default_factory=dict)
    experiments: list[ExperimentResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures


def run_chaos(loaded: LoadedExperiment | list[LoadedExperiment], run_dir: Path, speed: float | None = None,
              warmup: float = 8.0, log: Callable[[str], None] = print, pause_scale: float = 1.0) -> ChaosOutcome:
    """Run the experiment(s) one after another against one live stack started for their scenario (they must
    name the same one); every process is gone afterwards. ``pause_scale`` shortens every pause (a quick
    check of a library; faults then last less long)."""
    from live.stack import LiveStack, StackError, StackOptions
    from scenarios.loader import load_scenario

    suite = loaded if isinstance(loaded, list) else [loaded]
    scenario = load_scenario(suite[0].scenario_path)
    options = StackOptions(speed=speed or scenario.run.speed, insecure=True, progress=False, finalize=False,
                           plant_host=plant_host(suite), warmup=warmup, links=named_links(suite))
    stack = LiveStack(scenario, run_dir, options, log=log)
    host = LiveStackHost(stack)
    failed: list[BaseException] = []

    def run_stack() -> None:
        try:
            stack.run()
        except BaseException as exc:  # noqa: BLE001 - reported on the main thread
            failed.append(exc)

    thread = threading.Thread(target=run_stack, name="live-stack")
    thread.start()
    control: StackControl | None = None
    results: list[ExperimentResult] = []
    try:
        _wait_for_production(stack, thread, failed)
        control = StackControl(host, run_dir, lambda: dict(stack.urls),
                               {"epoch": stack.clock.epoch, "speed": stack.clock.speed, "plants": stack.plants})
        url = control.start()
        log(f"chaos control API {url}; live view {url}/view")
        for one in suite:
            if failed or host.now() >= stack.duration:  # the stack failed, or its scenario time is over
                break
            log(f"experiment {one.path.stem}: {one.experiment['title']}")
            experiment = scale_pauses(copy.deepcopy(one.experiment), pause_scale)
            configuration = experiment.setdefault("configuration", {})
            configuration.update({"synctwin_run_dir": str(run_dir), "synctwin_control_url": control.url,
                                  "synctwin_experiment": one.path.stem})
            configuration.pop(SCENARIO_KEY, None)
            control.hypothesis = {"experiment": one.path.stem, "phase": "starting", "before": None, "after": None}
            try:
                journal = _run_experiment(experiment, control.hypothesis)
            finally:
                _roll_back(configuration, log)
            results.append(_result(one, journal, len(suite) > 1))
            log(f"  {one.path.stem}: {journal.get('status')}, hypothesis before {_met(results[-1].before)}, "
                f"after {_met(results[-1].after)}")
    finally:
        ended_at = host.now()
        sources = _edge_sources(run_dir, log) if control is not None else {}
        host.end_run()
        thread.join()
        if control is not None:
            control.close()
    if failed:
        _write_journals(run_dir, results)  # what ran is kept for the post-mortem
        raise StackError(f"the live stack failed: {failed[0]}") from failed[0]
    if stack.duration < ended_at:
        log("  warning: the scenario's duration ended before the experiments did; lengthen its run.duration")
    timeline = control.timeline if control is not None else []
    return _finish(run_dir, suite, results, timeline, stack.duration, sources)


def plant_host(suite: list[LoadedExperiment]) -> str:
    """``ray`` when an experiment's configuration asks for plants on Ray (``synctwin_plant_host: ray``),
    else ``process`` (a ``synctwin opcua`` process per plant)."""
    asked = {str((one.experiment.get("configuration") or {}).get(PLANT_HOST_KEY, "process")) for one in suite}
    return "ray" if "ray" in asked else "process"


def named_links(suite: list[LoadedExperiment]) -> tuple[str, ...]:
    """The links the experiments' activities name (``arguments.link``): the stack proxies those hops
    (besides the WAN links, always proxied); the others go direct and cost no relay."""
    names: set[str] = set()
    for one in suite:
        e = one.experiment
        for activity in [*(e.get("steady-state-hypothesis") or {}).get("probes", []), *e.get("method", []),
                         *e.get("rollbacks", [])]:
            link = ((activity.get("provider") or {}).get("arguments") or {}).get("link")
            if isinstance(link, str) and not link.startswith("wan-"):
                names.add(link)
    return tuple(sorted(names))


def scale_pauses(experiment: dict[str, Any], scale: float) -> dict[str, Any]:
    """Every ``pauses.before/after`` of the experiment times ``scale`` (at least one second when set)."""
    if scale == 1.0:
        return experiment
    activities = [*(experiment.get("steady-state-hypothesis") or {}).get("probes", []),
                  *experiment.get("method", []), *experiment.get("rollbacks", [])]
    for activity in activities:
        for key, value in (activity.get("pauses") or {}).items():
            activity["pauses"][key] = max(1.0, value * scale) if value else value
    return experiment


def _met(value: bool | None) -> str:
    return {True: "met", False: "NOT met", None: "not checked"}[value]


def _result(loaded: LoadedExperiment, journal: dict[str, Any], in_suite: bool) -> ExperimentResult:
    steady = journal.get("steady_states") or {}
    return ExperimentResult(loaded.path.stem, journal, (steady.get("before") or {}).get("steady_state_met"),
                            (steady.get("after") or {}).get("steady_state_met"),
                            f"journals/{loaded.path.stem}.json" if in_suite else JOURNAL)


def _wait_for_production(stack: Any, thread: threading.Thread, failed: list[BaseException]) -> None:
    from live.stack import StackError

    pause = threading.Event()
    while not (stack.clock is not None and stack.relays is not None
               and any(e["event"] == "all_started" for e in stack.events) and stack.clock.now() >= 0):
        if failed or not thread.is_alive():
            raise StackError(f"the live stack did not start: {failed[0] if failed else 'it ended'}")
        pause.wait(0.1)


def _run_experiment(experiment: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
    import logging

    from chaoslib.experiment import run_experiment
    from chaoslib.run import RunEventHandler

    class Phases(RunEventHandler):
        """Keeps ``status`` (the live view's hypothesis line) up to date."""

        def start_hypothesis_before(self, experiment: Any) -> None:
            status["phase"] = "checking the hypothesis before"

        def hypothesis_before_completed(self, experiment: Any, state: Any, journal: Any) -> None:
            status["before"] = bool(state and state.get("steady_state_met"))

        def start_method(self, experiment: Any) -> None:
            status["phase"] = "method (faults)"

        def start_hypothesis_after(self, experiment: Any) -> None:
            status["phase"] = "checking the hypothesis after"

        def hypothesis_after_completed(self, experiment: Any, state: Any, journal: Any) -> None:
            status["after"] = bool(state and state.get("steady_state_met"))

        def start_rollbacks(self, experiment: Any) -> None:
            status["phase"] = "rollbacks"

        def finish(self, journal: Any) -> None:
            status["phase"] = f"finished ({journal.get('status')})"

    logging.getLogger("chaostoolkit").setLevel(logging.WARNING)
    return run_experiment(experiment, settings={}, event_handlers=[Phases()])


def _roll_back(configuration: dict[str, Any], log: Callable[[str], None]) -> None:
    """Leave no fault behind (the experiment's own rollbacks have run already)."""
    from synctwin.chaos.actions import rollback_all

    try:
        done = rollback_all(configuration)
        if done["restarted"]:
            log(f"  rolled back: restarted {', '.join(done['restarted'])}")
    except Exception as exc:  # noqa: BLE001 - the drain still restores links and ERP modes
        log(f"  warning: rollback failed: {exc}")


def _edge_sources(run_dir: Path, log: Callable[[str], None]) -> dict[str, Any]:
    """The gateway's view of the plants' edges at the end (``GET /admin/sources``): the clock skews and
    second sources it flagged, which the run folder must name (the edges' own timestamps are off then)."""
    import httpx

    from synctwin.chaos.settings import target

    cfg = target({"synctwin_run_dir": str(run_dir)})
    try:
        reply = httpx.get(f"{cfg.need('gateway')}/admin/sources", headers={"X-Api-Key": cfg.credentials["admin"]},
                          timeout=10)
        reply.raise_for_status()
    except Exception as exc:  # noqa: BLE001 - a gateway killed at the end: the run still finishes, unflagged
        log(f"  warning: the gateway's edge sources could not be read: {exc}")
        return {}
    for flag in flags_of(reply.json()):
        log(f"  flagged: plant {flag['plant']} {flag['kind']} from {flag['start']:.0f} s: {flag['note']}")
    return reply.json()


def flags_of(sources: dict[str, Any]) -> list[dict[str, Any]]:
    """One flag per episode the gateway saw: a plant's edge clock off beyond its bound, or two edges posting
    with one plant's credentials -- each with what it means for the run's figures."""
    meaning = {"clock_skew": "the edge's own timestamps (t_created, t_edge) are off by up to {worst:.0f} s here; "
                             "the gateway corrected creation times from the future only",
               "second_source": "{worst:.0f} edge instances posted with this plant's credentials"}
    return [{**e, "note": meaning.get(e["kind"], "").format(worst=e["worst"])} for e in sources.get("episodes", [])]


def _finish(run_dir: Path, suite: list[LoadedExperiment], results: list[ExperimentResult],
            timeline: list[dict[str, Any]], duration: float, sources: dict[str, Any] | None = None) -> ChaosOutcome:
    from reports.finalize import finalize_run, write_json

    _write_journals(run_dir, results)
    windows = fault_windows(timeline, duration)
    meta_path = run_dir / "run.json"
    meta = json.loads(meta_path.read_text())
    meta["faults"] = list(meta.get("faults") or []) + [w["record"] for w in windows]
    meta_path.write_text(json.dumps(meta, indent=1))
    experiments = [{"stem": r.stem, "experiment": str(one.path), "title": one.experiment.get("title"),
                    "description": one.experiment.get("description"), "journal": r.journal_file,
                    "status": r.journal.get("status"), "deviated": r.journal.get("deviated"),
                    "hypothesis_before": r.before, "hypothesis_after": r.after}
                   for one, r in zip(suite, results, strict=False)]
    flags = flags_of(sources or {})
    chaos = {"experiments": experiments, "timeline": timeline, "faults": windows, "edge_sources": sources or {},
             "flags": flags, "written": time.time()}
    (run_dir / CHAOS_FILE).write_text(json.dumps(chaos, indent=1, default=str))
    sla = finalize_run(run_dir).sla
    if flags:  # figures taken from a flagged plant's own clock are named, never silently wrong
        sla["flags"] = flags
        write_json(run_dir / "sla.json", sla)
    failures = [f"{r.stem}: {line}" if len(suite) > 1 else line
                for r in results for line in _failures(r.journal, r.before, r.after, {})]
    failures += [f"{one.path.stem}: did not run (the scenario's run.duration ended first; lengthen it)"
                 for one in suite[len(results):]]
    failures += _failures({}, True, True, sla)
    first = results[0] if results else ExperimentResult("", {}, None, None)
    return ChaosOutcome(run_dir, first.journal, first.before, first.after, failures, sla, results)


def _write_journals(run_dir: Path, results: list[ExperimentResult]) -> None:
    for r in results:
        path = run_dir / r.journal_file
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(r.journal, indent=1, default=str))


def _failures(journal: dict[str, Any], before: bool | None, after: bool | None, sla: dict[str, Any]) -> list[str]:
    out = []
    if before is not True:
        out.append(f"steady-state hypothesis before the method: {_probe_failures(journal, 'before') or 'not met'}")
    if after is not True and before is True:
        out.append(f"steady-state hypothesis after the method: {_probe_failures(journal, 'after') or 'not met'}")
    if before is True and (journal.get("status") not in ("completed", None) or _run_errors(journal)):
        out.append(f"experiment {journal.get('status')}: {_run_errors(journal) or 'see journal.json'}")
    for name, inv in (sla.get("invariants") or {}).items():
        if not inv.get("passed", True):
            ids = ", ".join(map(str, inv.get("ids", [])[:10]))
            out.append(f"invariant {name}: {inv.get('count')} ({ids})")
    return out


def _probe_failures(journal: dict[str, Any], when: str) -> str:
    probes = ((journal.get("steady_states") or {}).get(when) or {}).get("probes") or []
    bad = [p for p in probes if not p.get("tolerance_met", True)]
    return "; ".join(f"{p['activity']['name']} gave {p.get('output')!r} (tolerance "
                     f"{p['activity'].get('tolerance')!r})" for p in bad)


def _run_errors(journal: dict[str, Any]) -> str:
    return "; ".join(f"{r['activity']['name']}: {r.get('exception', [''])[-1].strip()}"
                     for r in journal.get("run", []) if r.get("status") == "failed")

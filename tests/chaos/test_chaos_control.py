"""The control API with real processes and a real fault proxy, driven through the Chaos Toolkit actions and
probes: kill -9 with and without restart, link down and toxics, and every change on the timeline."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from live.faultproxy import FaultProxies
from live.procs import ServiceSet, pid_alive
from synctwin.chaos import actions, probes
from synctwin.chaos.control import StackControl
from tests.polling import poll

SLEEPER = [sys.executable, "-c", "import signal; print('READY sleeper http://127.0.0.1:9', flush=True); signal.pause()"]


class ServicesHost:
    """Real processes (a ServiceSet) and real fault proxies as the control's process host."""

    def __init__(self, services: ServiceSet, links: FaultProxies):
        self.services, self.links = services, links

    def names(self) -> list[str]:
        return [s.name for s in self.services]

    def kill(self, name: str) -> None:
        self.services[name].kill()

    def restart(self, name: str) -> None:
        self.services[name].start()

    def pid(self, name: str) -> int | None:
        return self.services[name].pid

    def alive(self, name: str) -> bool:
        return self.services[name].alive()

    def now(self) -> float:
        return 0.0

    def proxies(self):
        return self.links


@pytest.fixture()
def control(tmp_path: Path):
    links = FaultProxies()
    with ServiceSet(tmp_path / "logs") as services:
        services.start_many({"worker": SLEEPER, "edge-P01": SLEEPER})
        links.add("P01", "http://127.0.0.1:9")
        ctl = StackControl(ServicesHost(services, links), tmp_path, lambda: {"worker": "", "edge-P01": ""})
        ctl.start()
        yield ctl, {"synctwin_run_dir": str(tmp_path)}
        ctl.close()
    links.close()


def test_kill_with_restart_after_a_delay_and_without(control):
    ctl, cfg = control
    first = actions.kill_process("worker", restart_after=0.5, configuration=cfg)
    assert first["state"] == "restarting" and not pid_alive(first["pid"])
    poll(lambda: probes.process_state("worker", configuration=cfg) == "running", 15, message="no restart")
    state = ctl.process("worker")
    assert state["pid"] != first["pid"] and pid_alive(state["pid"]) and (state["kills"], state["restarts"]) == (1, 1)

    killed = actions.kill_process("edge", configuration=cfg)  # a role: the first edge
    assert killed["name"] == "edge-P01" and probes.process_state("edge-P01", configuration=cfg) == "killed"
    assert actions.restart_process("edge-P01", configuration=cfg)["state"] == "running"
    with pytest.raises(RuntimeError, match="no process 'gateway'; known: worker, edge-P01"):
        actions.kill_process("gateway", configuration=cfg)
    events = [(e["event"], e["what"]) for e in ctl.timeline]
    assert events == [("process_kill", "worker"), ("process_restart", "worker"), ("process_kill", "edge-P01"),
                      ("process_restart", "edge-P01")]


def test_links_through_the_control_api_show_in_the_link_probe(control):
    ctl, cfg = control
    actions.link_down("wan-P01", configuration=cfg)
    assert probes.link_state("wan-P01", configuration=cfg)["enabled"] is False
    actions.link_up("wan-P01", configuration=cfg)
    actions.add_toxic("wan-P01", "latency", attributes={"latency": 100, "jitter": 10}, configuration=cfg)
    assert [t["type"] for t in probes.link_state("wan-P01", configuration=cfg)["toxics"]] == ["latency"]
    with pytest.raises(RuntimeError, match="400 .*attributes.rate"):
        actions.add_toxic("wan-P01", "latency", name="bad", attributes={"rate": 1}, configuration=cfg)
    actions.reset_links(configuration=cfg)
    assert probes.link_state("wan-P01", configuration=cfg)["toxics"] == []
    assert [e["event"] for e in ctl.timeline] == ["link_down", "link_up", "toxic_added", "links_reset"]
    assert all(not math.isnan(e["t"]) for e in ctl.timeline)


def test_the_stock_chaos_run_cli_drives_the_stack_through_the_provider(control, tmp_path: Path):
    ctl, cfg = control
    experiment = {
        "title": "kill and restart through the stock CLI",
        "description": "synctwin.chaos as a Chaos Toolkit extension",
        "configuration": {"synctwin_control_url": ctl.url},
        "steady-state-hypothesis": {"title": "the worker runs", "probes": [
            {"type": "probe", "name": "worker-runs", "tolerance": "running",
             "provider": {"type": "python", "module": "synctwin.chaos.probes", "func": "process_state",
                          "arguments": {"name": "worker"}}}]},
        "method": [
            {"type": "action", "name": "kill-worker",
             "provider": {"type": "python", "module": "synctwin.chaos.actions", "func": "kill_process",
                          "arguments": {"name": "worker"}}},
            {"type": "probe", "name": "worker-is-killed",
             "provider": {"type": "python", "module": "synctwin.chaos.probes", "func": "process_state",
                          "arguments": {"name": "worker", "expect": "killed"}}},
            {"type": "action", "name": "restart-worker",
             "provider": {"type": "python", "module": "synctwin.chaos.actions", "func": "restart_process",
                          "arguments": {"name": "worker"}}}],
        "rollbacks": [],
    }
    path = tmp_path / "experiment.json"
    path.write_text(json.dumps(experiment))
    journal = tmp_path / "journal.json"
    chaos = Path(sys.executable).with_name("chaos")
    done = subprocess.run([str(chaos), "--no-version-check", "run", str(path), "--journal-path", str(journal)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)  # its chaostoolkit.log goes there
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(journal.read_text())
    assert result["status"] == "completed" and result["steady_states"]["after"]["steady_state_met"]
    assert [r["status"] for r in result["run"]] == ["succeeded"] * 3
    assert [e["event"] for e in ctl.timeline] == ["process_kill", "process_restart"]


def test_live_view_shows_a_fault_while_it_lasts_in_headless_chromium(control, tmp_path: Path):
    ctl, cfg = control
    ctl.hypothesis.update({"experiment": "wan-cut", "phase": "method (faults)", "before": True, "after": None})
    actions.link_down("wan-P01", configuration=cfg)
    actions.kill_process("worker", configuration=cfg)
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync",
           "--disable-background-networking", f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,900",
           "--virtual-time-budget=5000"]
    dom = subprocess.run([*cmd, "--dump-dom", f"{ctl.url}/view"], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    page = dom.stdout
    assert '<tr class="open"><td>wan_outage</td><td>P01</td>' in page and "ACTIVE" in page
    assert "<td>worker</td><td>killed</td>" in page and "experiment <b>wan-cut</b>: method (faults)" in page
    shot = tmp_path / "during-the-fault.png"
    done = subprocess.run([*cmd, f"--screenshot={shot}", f"{ctl.url}/view"], capture_output=True, timeout=120)
    assert done.returncode == 0 and shot.stat().st_size > 10_000  # the page was painted during the fault
    actions.link_up("wan-P01", configuration=cfg)
    after = subprocess.run([*cmd, "--dump-dom", f"{ctl.url}/view"], capture_output=True, text=True, timeout=120)
    assert '<tr class="open"><td>wan_outage</td>' not in after.stdout and "<td>wan_outage</td>" in after.stdout

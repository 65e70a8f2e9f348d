"""The live view under ``synctwin up``: the chaos control API and its page, fed by the scenario's fault timeline.

``synctwin up`` applies the scenario's ``faults:`` itself (``live.stack``) and records each step in the
stack's events. :class:`UpControl` serves the same control API and live view as ``synctwin chaos``; its
timeline is whatever was changed through the API plus the stack's fault steps translated into the control
timeline's events, so each scheduled fault shows as it starts and ends. It also writes
``state/chaos.json`` once the stack is up, so the stock ``chaos run`` can aim probes at a ``synctwin up``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from synctwin.chaos.control import StackControl
from synctwin.chaos.stack_host import LiveStackHost


def scenario_timeline(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The stack's fault steps (``live.stack`` events) as control-timeline entries (see ``timeline.py``)."""
    out: list[dict[str, Any]] = []
    for e in list(events):
        t, action, what = e.get("t", 0.0), e.get("event"), list(e.get("what") or [])
        base = {"t": t, "wall": None, "scheduled": True}
        for name in what:
            if action == "erp_mode":
                out.append({**base, "event": "erp_mode", "what": f"erp-{name}", "mode": e.get("mode", "normal"),
                            **({"factor": e["factor"]} if "factor" in e else {})})
            elif action in ("stop", "kill_restart"):
                out.append({**base, "event": "process_kill", "what": name})
                if action == "kill_restart":  # killed and started again at once
                    out.append({**base, "event": "process_restart", "what": name})
            elif action == "restart":
                out.append({**base, "event": "process_restart", "what": name})
            elif action in ("partition", "heal"):
                out.append({**base, "event": "link_down" if action == "partition" else "link_up", "what": name})
            elif action == "ack_loss":
                out.append({**base, "event": "ack_loss", "what": name, "share": e.get("share", 0.0)})
    return out


class UpControl(StackControl):
    """The control API of a ``synctwin up`` stack; its timeline includes the scenario's scheduled faults."""

    def __init__(self, stack: Any, run_dir: Path, speed: float):
        self.stack = stack
        super().__init__(LiveStackHost(stack), run_dir, lambda: dict(stack.urls),
                         {"speed": speed, "plants": list(stack.plants)})

    @property
    def timeline(self) -> list[dict[str, Any]]:
        return sorted([*self._own, *scenario_timeline(self.stack.events)], key=lambda e: e["t"])

    @timeline.setter
    def timeline(self, value: list[dict[str, Any]]) -> None:
        self._own = value

    def record(self, event: str, what: str, detail: dict[str, Any] | None = None) -> None:
        import time

        with self._lock:
            self._own.append({"t": self.host.now(), "wall": time.time(), "event": event, "what": what,
                              **(detail or {})})

    def watch_start(self, stop: threading.Event) -> None:
        """Once the stack is up, write ``state/chaos.json`` with its URLs and clock (a thread of its own)."""

        def wait() -> None:
            while not stop.wait(0.2):
                if self.stack.clock is not None and any(e.get("event") == "all_started" for e in self.stack.events):
                    self.info["epoch"] = self.stack.clock.epoch
                    self.write_state()
                    return

        threading.Thread(target=wait, name="up-view-state", daemon=True).start()


def start_up_view(stack: Any, run_dir: Path, speed: float, echo: Callable[[str], None]) -> Callable[[], None]:
    """Serve the live view for ``stack`` (printing its URL); returns the function that stops it."""
    control = UpControl(stack, run_dir, speed)
    url = control.start()
    echo(f"live view: {url}/view  (control API {url})")
    stop = threading.Event()
    control.watch_start(stop)

    def close() -> None:
        stop.set()
        control.close()

    return close

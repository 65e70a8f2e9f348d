"""Where the stack under test is, from an experiment's ``configuration``.

Keys (all optional, explicit values win over what the run folder says):

| key | meaning |
|---|---|
| ``synctwin_run_dir`` | run folder of a stack synctwin started; its ``state/chaos.json`` holds every URL below |
| ``synctwin_control_url`` | the stack's control API (processes, links, ERP modes, timeline) |
| ``gateway_url`` | the gateway |
| ``erp_url`` / ``erp_urls`` | one ERP's ledger API, or ``{kind: url}`` |
| ``broker_url`` | the NATS broker (backlog probe) |
| ``admin_key`` | the gateway's admin key (dead-letter probes) |
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STATE_FILE = "chaos.json"  # under RUN_DIR/state/


class ChaosConfigError(ValueError):
    """The configuration does not say where the stack is, for what an activity needs."""


@dataclass
class Target:
    """The URLs and files of the stack an activity acts on."""

    control: str = ""
    gateway: str = ""
    broker: str = ""
    erps: dict[str, str] = field(default_factory=dict)
    run_dir: Path | None = None
    epoch: float | None = None
    speed: float = 1.0
    plants: list[str] = field(default_factory=list)
    credentials: dict[str, Any] = field(default_factory=dict)

    @property
    def state(self) -> Path:
        if self.run_dir is None:
            raise ChaosConfigError("this probe reads the run folder: set synctwin_run_dir in the configuration")
        return self.run_dir / "state"

    def need(self, what: str) -> str:
        """The URL of ``what`` (control, gateway, broker), or a clear error naming the key to set."""
        url = getattr(self, what)
        if not url:
            key = {"control": "synctwin_control_url"}.get(what, f"{what}_url")
            raise ChaosConfigError(f"no {what} URL: set {key} (or synctwin_run_dir of a stack synctwin started) "
                                   "in the experiment's configuration")
        return url

    def now(self) -> float:
        """Scenario seconds of the stack's clock (wall seconds when the stack's clock is unknown)."""
        if self.epoch is None:
            return time.time()
        return (time.time() - self.epoch) * self.speed


def target(configuration: dict[str, Any] | None) -> Target:
    """Resolve the configuration (and the run folder's ``state/chaos.json``) into a :class:`Target`."""
    cfg = dict(configuration or {})
    run_dir = Path(cfg["synctwin_run_dir"]) if cfg.get("synctwin_run_dir") else None
    saved: dict[str, Any] = {}
    if run_dir is not None:
        path = run_dir / "state" / STATE_FILE
        if path.is_file():
            saved = json.loads(path.read_text())
    urls = saved.get("urls", {})
    erps = {name.removeprefix("erp-"): url for name, url in urls.items() if name.startswith("erp-")}
    if cfg.get("erp_urls"):
        erps = dict(cfg["erp_urls"])
    elif cfg.get("erp_url"):
        erps = {str(cfg.get("erp_kind", "legacy")): cfg["erp_url"]}
    creds: dict[str, Any] = {}
    if run_dir is not None and (run_dir / "state" / "credentials.json").is_file():
        creds = json.loads((run_dir / "state" / "credentials.json").read_text())
    if cfg.get("admin_key"):
        creds["admin"] = cfg["admin_key"]
    return Target(control=cfg.get("synctwin_control_url") or saved.get("control", ""),
                  gateway=cfg.get("gateway_url") or urls.get("gateway", ""),
                  broker=cfg.get("broker_url") or urls.get("broker", ""), erps=erps, run_dir=run_dir,
                  epoch=saved.get("epoch"), speed=float(saved.get("speed", 1.0)), plants=saved.get("plants", []),
                  credentials=creds)

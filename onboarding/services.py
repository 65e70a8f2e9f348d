"""The embedded integration layer onboarding talks to: real processes, as ``synctwin up`` starts them.

The contract and security checks need the broker and the gateway (credentials for every fleet plant
and the new one); the pilot adds an ERP twin and a worker for a scenario holding the new plant. Every
process is stopped by :meth:`Embedded.stop` (use the object as a context manager).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from integration.gateway.settings import generate_credentials
from live.procs import ServiceSet, python_module
from live.stack_plan import SERVICES_MODULE, WORKER_MODULE
from scenarios.loader import dump_scenario
from scenarios.spec import Scenario


class Embedded:
    """Broker + gateway (+ ERP twin + worker for the pilot) under ``state_dir``, on 127.0.0.1."""

    def __init__(self, state_dir: Path, plants: list[str], epoch: float | None = None, speed: float = 1.0):
        self.state = Path(state_dir)
        self.state.mkdir(parents=True, exist_ok=True)
        self.services = ServiceSet(self.state / "logs")
        self.epoch = time.time() if epoch is None else epoch
        self.speed = speed
        self.credentials = generate_credentials(plants)
        self.credentials_path = self.state / "credentials.json"
        self.credentials_path.write_text(json.dumps(self.credentials, indent=2))
        self.credentials_path.chmod(0o600)
        self.urls: dict[str, str] = {}

    def _clock(self) -> list[str]:
        return ["--epoch", repr(self.epoch), "--speed", repr(self.speed)]

    def start_gateway(self, ready_timeout: float = 90.0) -> str:
        """Start the broker, then the gateway; return the gateway URL."""
        broker = self.services.start("broker", python_module(SERVICES_MODULE, "broker", "--data-dir",
                                                             str(self.state / "nats")), ready_timeout)
        self.urls["broker"] = broker.url
        gateway = self.services.start("gateway", python_module(
            SERVICES_MODULE, "gateway", "--nats", broker.url, "--credentials", str(self.credentials_path),
            *self._clock()), ready_timeout)
        self.urls["gateway"] = gateway.url
        return gateway.url

    def start_chain(self, scenario: Scenario, erp_kind: str, ready_timeout: float = 90.0) -> str:
        """Start an ERP twin of ``erp_kind`` and a worker mapping for ``scenario``; return the ERP URL."""
        path = self.state / "pilot-scenario.yaml"
        path.write_text(dump_scenario(scenario))
        erp = self.services.start(f"erp-{erp_kind}", python_module(
            SERVICES_MODULE, "erp", "--kind", erp_kind, "--scenario", str(path), "--db",
            str(self.state / f"erp-{erp_kind}.sqlite"), *self._clock()), ready_timeout)
        self.urls["erp"] = erp.url
        self.services.start("worker", python_module(
            WORKER_MODULE, "worker", "--nats", self.urls["broker"], "--scenario", str(path), "--erp",
            f"{erp_kind}={erp.url}", "--run-dir", str(self.state), *self._clock()), ready_timeout)
        return erp.url

    def key(self, plant: str) -> str:
        return self.credentials["plants"][plant]

    def stop(self) -> None:
        """Stop every process started here (newest first)."""
        self.services.stop_all()

    def __enter__(self) -> Embedded:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

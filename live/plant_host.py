"""Run one plant live: its machine bank on the scaled clock, exposed by its OPC UA server.

:class:`PlantHost` is a plain class. ``serve()`` is the coroutine (used by the ``synctwin opcua``
command on its own loop); ``start()``/``stop()`` run the same coroutine on a private event loop in a
background thread, which is how the Ray actor hosts it. Either way the host serves the fault endpoint of
:mod:`live.opcua_faults` next to the OPC UA server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from kernel.clock import ScaledClock
from kernel.files import write_text_atomic
from live.intervals import wall_interval
from live.opcua_faults import OpcUaFaults, control_file, serve_faults
from live.opcua_server import PlantOpcUaServer, access_for_run
from scenarios.generator import plant_seed
from scenarios.spec import PlantSpec, Scenario
from twins.machines import DOWN, MachineBank


def find_plant(scenario: Scenario, plant_id: str) -> tuple[int, PlantSpec]:
    """``(index, spec)`` of ``plant_id`` in the scenario; a clear error names the known plants."""
    plants = scenario.landscape.all_plants
    for i, plant in enumerate(plants):
        if plant.id == plant_id:
            return i, plant
    known = ", ".join(p.id for p in plants)
    raise ValueError(f"--plant {plant_id!r} is not in scenario {scenario.name!r}; use one of: {known}")


def build_bank(scenario: Scenario, plant_id: str, t0: float = 0.0) -> tuple[MachineBank, PlantSpec]:
    """The plant's machine bank, seeded as the virtual engine seeds it (replication 0's plant seed)."""
    index, plant = find_plant(scenario, plant_id)
    return MachineBank.for_plant(plant, np.random.default_rng(plant_seed(scenario, index)), t0), plant


WARMUP_TICK = 0.25  # wall seconds between passes during the warm-up


class PlantHost:
    """One plant's bank + OPC UA server, advanced one pass per ``tick`` wall seconds.

    ``tick`` defaults to the plant's ``edge.sampling_interval`` (scenario seconds) at ``1/speed``."""

    def __init__(
        self,
        scenario: Scenario,
        plant_id: str,
        run_dir: Path,
        epoch: float,
        speed: float,
        port: int = 0,
        insecure: bool = False,
        tick: float | None = None,
        host: str = "127.0.0.1",
        autostart: bool = False,
    ):
        """``autostart``: begin serving at once without waiting for it (a Ray actor that Ray restarts after its
        process died serves again; its constructor must not fail because a busy host starts the server slowly)."""
        self.scenario, self.plant_id, self.run_dir = scenario, plant_id, Path(run_dir)
        self.clock = ScaledClock(epoch, speed)
        self.port, self.insecure, self.host = port, insecure, host
        _, plant = find_plant(scenario, plant_id)  # fail early on a bad plant id
        if tick is None:
            tick = wall_interval(plant.edge.sampling_interval, speed)
        self.tick = tick
        self.server: PlantOpcUaServer | None = None
        self.url = ""
        self.passes = 0
        self.faults: OpcUaFaults | None = None  # session drops and publishing stalls (live.opcua_faults)
        self.faults_url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._ready = threading.Event()
        if autostart:
            self._launch()

    async def serve(self, ready: Callable[[str], None] | None = None, stop: asyncio.Event | None = None) -> None:
        """Run until ``stop`` is set: advance the bank to the scaled clock and publish, once per tick.

        Paced on purpose: a pass that never yields would starve the server's subscriptions.
        """
        self._stop = stop or asyncio.Event()
        bank, plant = build_bank(self.scenario, self.plant_id, t0=max(0.0, self.clock.now()))
        access = access_for_run(self.run_dir, self.insecure)
        self.server = PlantOpcUaServer(
            self.plant_id, bank, plant.machines_per_line, self.clock, access, self.host, self.port
        )
        self.url = await self.server.start()
        self.faults = OpcUaFaults(self.server)
        endpoint, self.faults_url = await serve_faults(self.faults, self.host)
        self._write_control()
        try:
            if ready is not None:
                ready(self.url)
            while not self._stop.is_set():
                began = time.monotonic()
                now = self.clock.now()
                if now > bank.t:
                    await self.server.publish(bank.advance(now))
                self.passes += 1
                # Before scenario time 0 there is nothing to advance: a relaxed pace leaves the CPU to start-up.
                period = self.tick if now >= 0 else max(self.tick, WARMUP_TICK)
                remaining = period - (time.monotonic() - began)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(remaining, 0.0) or 0.001):
                        await self._stop.wait()
        finally:
            endpoint.close()
            await self.faults.resume()
            await self.server.stop()

    def _write_control(self) -> None:
        """``state/opcua-<plant>.control.json``: the fault endpoint of this incarnation, for the stack's control."""
        write_text_atomic(control_file(self.run_dir, self.plant_id),
                          json.dumps({"control": self.faults_url, "opcua": self.url, "pid": os.getpid()}))

    # ---------------------------------------------------------------------------- threaded hosting
    def start(self, timeout: float = 60.0) -> str:
        """Serve on a background thread; return the endpoint URL once it accepts connections."""
        self._launch()
        ready = self._ready
        if not ready.wait(timeout):
            raise TimeoutError(f"OPC UA server of {self.plant_id} did not start within {timeout} s")
        if self._error is not None:
            raise RuntimeError(f"OPC UA server of {self.plant_id} failed to start: {self._error}") from self._error
        return self.url

    def _launch(self) -> None:
        """Serve on a background thread (once); ``_ready`` is set when it serves or failed."""
        if self._thread is not None:
            return

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            try:
                self._loop.run_until_complete(self._serve_threaded(self._ready))
            except BaseException as exc:  # surfaced to the caller of start() and in status()
                self._error = exc
                self._ready.set()
            finally:
                self._loop.close()

        self._thread = threading.Thread(target=run, name=f"plant-{self.plant_id}", daemon=True)
        self._thread.start()

    async def _serve_threaded(self, ready: threading.Event) -> None:
        await self.serve(lambda _url: ready.set(), asyncio.Event())

    def call(self, coro_factory: Callable, timeout: float = 10.0):
        """Run ``coro_factory()`` on the host's loop from another thread and return its result."""
        if self._loop is None:
            raise RuntimeError("start() the host first")
        return asyncio.run_coroutine_threadsafe(coro_factory(), self._loop).result(timeout)

    def command(self, machine: int, action: str) -> None:
        """Start/Stop/Reset machine ``machine`` (as the OPC UA methods do)."""
        self.call(lambda: self.server.command(machine, action))

    def status(self) -> dict:
        """Scenario time of the bank, totals and the endpoint, for progress displays."""
        server = self.server
        if server is None:
            return {"plant": self.plant_id, "url": self.url, "pid": os.getpid(), "running": False, "serving": False,
                    "error": repr(self._error) if self._error is not None else None}
        bank = server.bank
        return {
            "plant": self.plant_id,
            "url": self.url,
            "pid": os.getpid(),
            "running": self._thread is not None,
            "serving": self._ready.is_set() and self._error is None,
            "error": repr(self._error) if self._error is not None else None,
            "t": float(bank.t),
            "good": int(bank.good_total.sum()),
            "scrap": int(bank.scrap_total.sum()),
            "down": int((bank.state == DOWN).sum()),
            "passes": self.passes,
            "writes": server.writes,
        }

    def stop(self, timeout: float = 30.0) -> None:
        """Stop serving and join the thread (idempotent)."""
        if self._thread is None:
            return
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop may have closed meanwhile
                self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)
        self._thread = None
        self._ready = threading.Event()

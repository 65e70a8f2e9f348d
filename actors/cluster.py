"""A real multi-node Ray cluster on this machine: one head and N worker nodes, each its own raylet.

Every piece advertises the same address (``127.0.0.1`` by default): Ray otherwise advertises the
interface address, and a driver that joins on loopback times out against a GCS it cannot match.
The cluster keeps everything it owns apart from any other Ray on the machine:

- its own ``--temp-dir`` (sessions, sockets, logs and the address file, so a plain ``ray.init()``
  elsewhere never joins it by accident) and its own free ports;
- its own token: Ray 2.60 turns token authentication on by default and reads ``~/.ray/auth_token``;
  the cluster writes a fresh token into its temp dir and hands it to every node and driver through
  ``RAY_AUTH_MODE`` / ``RAY_AUTH_TOKEN_PATH`` (:meth:`LocalCluster.driver_env`);
- stopping: ``ray stop`` kills every Ray process on the machine by name, so :meth:`LocalCluster.stop`
  ends only the processes whose command line names this cluster's temp dir, and their children
  (the actor workers, whose command lines are rewritten to ``ray::Name``).

Usage: ``python -m actors.cluster --nodes 2`` starts a cluster, prints its address and the driver's
environment, and stops it on Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from kernel.net import free_port

LOOPBACK = "127.0.0.1"
RAY_CLI = Path(sys.executable).with_name("ray")
START_TIMEOUT_S = 120.0


class ClusterError(RuntimeError):
    """A node did not start; the message carries the ``ray start`` output."""


@dataclass
class LocalCluster:
    """A head plus ``workers`` worker nodes, all advertising ``node_ip``; use as a context manager."""

    workers: int = 1
    cpus_per_node: int = 1
    node_ip: str = LOOPBACK
    object_store_bytes: int = 256 * 1024**2
    temp_dir: Path | None = None
    port: int = 0
    _own_temp: bool = field(default=False, init=False)

    @property
    def address(self) -> str:
        """``HOST:PORT`` of the head's GCS: what ``synctwin run --address`` takes."""
        return f"{self.node_ip}:{self.port}"

    @property
    def token_path(self) -> Path:
        return self.temp / "auth_token"

    @property
    def temp(self) -> Path:
        if self.temp_dir is None:
            raise ClusterError("the cluster has not been started")
        return self.temp_dir

    def driver_env(self) -> dict[str, str]:
        """Environment a driver (``synctwin run --address``) needs to authenticate with this cluster."""
        return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(self.token_path)}

    # ------------------------------------------------------------------------------ start / stop
    def start(self) -> LocalCluster:
        """Start the head, then the worker nodes; raises :class:`ClusterError` naming the failed node."""
        if self.temp_dir is None:
            # Short path: Ray's socket paths live under it and AF_UNIX paths stop at 107 bytes.
            self.temp_dir = Path(tempfile.mkdtemp(prefix="stray-", dir="/tmp"))
            self._own_temp = True
        self.temp.mkdir(parents=True, exist_ok=True)
        self.token_path.write_text(secrets.token_hex(32))
        self.token_path.chmod(0o600)
        self.port = self.port or free_port(self.node_ip)
        try:
            self._ray_start("head", ["--head", "--port", str(self.port), "--include-dashboard", "false"])
            for i in range(self.workers):
                self._ray_start(f"worker {i + 1}", ["--address", self.address])
        except BaseException:
            self.stop()
            raise
        return self

    def _ray_start(self, name: str, role_args: list[str]) -> None:
        args = [str(RAY_CLI), "start", *role_args, "--node-ip-address", self.node_ip,
                "--temp-dir", str(self.temp), "--num-cpus", str(self.cpus_per_node),
                "--object-store-memory", str(self.object_store_bytes), "--disable-usage-stats",
                "--node-manager-port", "0", "--object-manager-port", "0",
                "--min-worker-port", "0", "--max-worker-port", "0",
                # Fixed defaults (52365, ...) would collide with any other Ray on the machine.
                "--dashboard-agent-listen-port", str(free_port(self.node_ip)),
                "--dashboard-agent-grpc-port", str(free_port(self.node_ip)),
                "--metrics-export-port", str(free_port(self.node_ip)),
                "--runtime-env-agent-port", str(free_port(self.node_ip))]
        env = os.environ | self.driver_env() | {"RAY_DEDUP_LOGS": "0"}
        done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=START_TIMEOUT_S, check=False)
        if done.returncode != 0:
            raise ClusterError(f"ray start ({name}) exited {done.returncode}:\n{done.stdout[-2000:]}"
                               f"\n{done.stderr[-2000:]}")

    def processes(self) -> list[psutil.Process]:
        """Every process of this cluster: those naming its temp dir, and all their descendants."""
        if self.temp_dir is None:
            return []
        marker = str(self.temp)
        roots = []
        for proc in psutil.process_iter(["cmdline"]):
            with contextlib.suppress(psutil.Error):
                if any(marker in part for part in proc.info["cmdline"] or []):
                    roots.append(proc)
        found = {p.pid: p for p in roots}
        for root in roots:
            with contextlib.suppress(psutil.Error):
                found.update({c.pid: c for c in root.children(recursive=True)})
        found.pop(os.getpid(), None)
        return list(found.values())

    def stop(self, grace_s: float = 5.0) -> None:
        """End this cluster's processes (TERM, then KILL after ``grace_s``) and remove its temp dir."""
        procs = self.processes()
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                proc.terminate()
        _, alive = psutil.wait_procs(procs, timeout=grace_s)
        for proc in alive:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        psutil.wait_procs(alive, timeout=grace_s)
        if self._own_temp and self.temp_dir is not None:
            shutil.rmtree(self.temp_dir, ignore_errors=True)

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main() -> None:
    """Start a cluster on loopback and keep it until Ctrl-C."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=2, help="nodes including the head (default 2)")
    parser.add_argument("--cpus-per-node", type=int, default=1)
    opts = parser.parse_args()
    with LocalCluster(workers=max(0, opts.nodes - 1), cpus_per_node=opts.cpus_per_node) as cluster:
        env = " ".join(f"{k}={v}" for k, v in cluster.driver_env().items())
        print(f"cluster of {opts.nodes} nodes at {cluster.address}; run a scenario on it with:\n"
              f"  {env} synctwin run SCENARIO --address {cluster.address}\nCtrl-C stops it.", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()

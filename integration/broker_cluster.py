"""A NATS JetStream cluster on 127.0.0.1: one ``nats-server`` process per node, joined by cluster routes.

Each node has its own ``server_name``, client port, cluster port and file store; the routes list every
node's cluster port, so the nodes find each other whatever the start order. The streams (``EVENTS``,
``DLQ``) are created with one replica per node: a PubAck then
means a quorum of nodes stored the message, so a node killed with SIGKILL loses nothing that was
acknowledged, and the remaining nodes elect new stream and consumer leaders within seconds. Clients
get every node's URL (:func:`integration.broker.nats_servers`) and fail over between them.

The live stack runs each node as its own ``synctwin broker --node ...`` process (service ``broker-<i>``)
so a chaos action can kill one; :class:`NatsCluster` runs all of them from one process (tests, benches).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from types import TracebackType

from integration.broker import BrokerError, EmbeddedNats, ensure_streams, nats_servers
from kernel.net import free_port

CLUSTER_NAME = "synctwin"
# Three Go servers share the machine's cores: one OS thread of Go code each spares them the scheduler's
# spinning, and a higher GC target spares collections (memory is not the limit here). ``env`` execs the
# server, so the pid is the server's.
NODE_ENV = ("env", "GOMAXPROCS=1", "GOGC=400")


def node_name(index: int) -> str:
    """Service and ``server_name`` of node ``index`` (1-based): ``broker-1``, ``broker-2``, ..."""
    return f"broker-{index}"


def validate_size(size: int, what: str = "--brokers") -> None:
    """A JetStream cluster needs a majority to elect leaders: 1 broker, or an odd number of 3 or more."""
    if size < 1 or (size > 1 and (size < 3 or size % 2 == 0)):
        raise ValueError(f"{what}: {size} brokers cannot keep a JetStream quorum through a node loss; "
                         "use 1 (one broker) or an odd number from 3, e.g. 3")


class ClusterNode(EmbeddedNats):
    """One node of a cluster: an :class:`EmbeddedNats` whose config adds ``server_name`` and the routes."""

    def __init__(self, data_dir: Path | str, name: str, port: int, cluster_port: int, route_ports: list[int],
                 sync_always: bool = False, die_with_parent: bool = False) -> None:
        if not port or not cluster_port:
            raise BrokerError("a cluster node needs fixed ports: its peers' routes name them")
        super().__init__(data_dir, port, sync_always=sync_always, die_with_parent=die_with_parent)
        self.name, self.cluster_port, self.route_ports = name, cluster_port, list(route_ports)

    def _command(self, binary: Path) -> list[str]:
        store = self.data_dir / "jetstream"
        sync = "  sync_interval: always\n" if self.sync_always else ""
        routes = ", ".join(f'"nats-route://127.0.0.1:{p}"' for p in self.route_ports)
        config = self.data_dir / "nats-server.conf"
        config.write_text(
            f'server_name: "{self.name}"\nlisten: "127.0.0.1:{self.port}"\n'
            f'jetstream {{\n  store_dir: "{store}"\n{sync}}}\n'
            f'cluster {{\n  name: "{CLUSTER_NAME}"\n  listen: "127.0.0.1:{self.cluster_port}"\n'
            f"  routes: [{routes}]\n}}\n"
        )
        return [*NODE_ENV, str(binary), "-c", str(config)]


async def ensure_backbone(url: str, replicas: int, timeout_s: float = 60.0) -> None:
    """Create (or update) the streams (and the gateway's status-index bucket, where the status index keeps
    one) with ``replicas`` copies, retrying until the cluster has elected its JetStream leader (a node alone
    cannot: it waits for a quorum of peers)."""
    import nats

    from integration.gateway import status_index

    open_bucket = getattr(status_index, "open_bucket", None)

    deadline = time.monotonic() + timeout_s
    while True:
        nc = None
        try:
            nc = await nats.connect(nats_servers(url), connect_timeout=2, max_reconnect_attempts=2,
                                    reconnect_time_wait=0.2)
            js = nc.jetstream(timeout=5.0)
            await ensure_streams(js, replicas)
            if open_bucket is not None:
                await open_bucket(js, replicas)
            return
        except Exception as exc:  # noqa: BLE001 - no quorum yet, or a create raced another node's
            if time.monotonic() > deadline:
                raise BrokerError(f"JetStream on {url} not ready within {timeout_s:.0f} s: {exc!r}") from exc
            await asyncio.sleep(0.25)
        finally:
            if nc is not None:
                with contextlib.suppress(Exception):
                    await nc.close()


async def stream_leader(url: str, stream: str) -> str:
    """``server_name`` of the node leading ``stream`` now."""
    import nats

    nc = await nats.connect(nats_servers(url), connect_timeout=2)
    try:
        info = await nc.jetstream().stream_info(stream)
        return str(info.cluster.leader) if info.cluster is not None else ""
    finally:
        await nc.close()


class NatsCluster:
    """``size`` nodes under ``data_dir/<node>``, started and stopped together; ``url`` lists them all."""

    def __init__(self, data_dir: Path | str, size: int = 3, sync_always: bool = False) -> None:
        validate_size(size, "size")
        self.data_dir = Path(data_dir)
        ports = cluster_ports(size)
        self.nodes = [
            ClusterNode(self.data_dir / node_name(i + 1), node_name(i + 1), client, cluster,
                        [c for _, c in ports], sync_always=sync_always)
            for i, (client, cluster) in enumerate(ports)
        ]

    @property
    def urls(self) -> list[str]:
        """Every node's client URL."""
        return [n.url for n in self.nodes]

    @property
    def url(self) -> str:
        """Every node's client URL joined by commas (what ``--nats`` takes)."""
        return ",".join(self.urls)

    def node(self, name: str) -> ClusterNode:
        """The node called ``name`` (``broker-1``, ...)."""
        return next(n for n in self.nodes if n.name == name)

    def start(self, timeout_s: float = 60.0) -> str:
        """Start every node, wait for the cluster to elect its leaders and create the replicated streams."""
        for node in self.nodes:
            node.start(timeout_s)
        asyncio.run(ensure_backbone(self.url, len(self.nodes), timeout_s))
        return self.url

    def stop(self) -> None:
        """Stop every node gracefully."""
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> NatsCluster:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def cluster_ports(size: int) -> list[tuple[int, int]]:
    """Distinct free (client, cluster) port pairs for ``size`` nodes, chosen before any node starts (the
    routes name them)."""
    ports: list[int] = []
    while len(ports) < 2 * size:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return [(ports[2 * i], ports[2 * i + 1]) for i in range(size)]

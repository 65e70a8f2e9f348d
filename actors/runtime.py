"""The one place that starts or joins Ray, and wraps plain host classes as Ray actors.

Both engines host their twins on Ray through this module: the virtual engine its plant groups and
hubs (:mod:`virtual.coordinator`), the live engine its plants (:mod:`live.plant_actor`). Hosts are
plain classes; :func:`actor_class` wraps one with ``ray.remote``. Actors reserve no CPU slot: they
alternate (plants, then the hub) rather than run flat out side by side, and a 2-core machine must
still be able to place one per plant group. On a cluster of several nodes :func:`spread` gives each
actor a node in turn, so the plant groups share the cluster's machines.
"""

from __future__ import annotations

import ipaddress
import os

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

DEFAULT_OBJECT_STORE = 512 * 1024**2
NODE_IP_ENV = "SYNCTWIN_RAY_NODE_IP"  # the driver's address as the cluster sees it (see driver_node_ip)


def actor_class(host: type, **options):
    """``host`` as a Ray actor class that reserves no CPU slot (``options`` override).

    The actor also answers ``ray_node_id()``: the id of the node it landed on.
    """
    hosted = type(host.__name__, (host,), {"ray_node_id": _node_id, "__doc__": host.__doc__,
                                           "__module__": host.__module__, "__qualname__": host.__qualname__})
    return ray.remote(**({"num_cpus": 0} | options))(hosted)


def _node_id(self) -> str:
    """The Ray node this actor runs on."""
    return ray.get_runtime_context().get_node_id()


def driver_node_ip(address: str) -> str | None:
    """The address the driver advertises when joining ``address``: every piece of a Ray cluster must
    agree on it. Loopback for a cluster on loopback; ``$SYNCTWIN_RAY_NODE_IP`` if set; else Ray's own
    guess (the interface address)."""
    if os.environ.get(NODE_IP_ENV):
        return os.environ[NODE_IP_ENV]
    host = address.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return "127.0.0.1"
    try:
        return "127.0.0.1" if ipaddress.ip_address(host).is_loopback else None
    except ValueError:
        return None


def ensure_ray(address: str | None = None, num_cpus: int | None = None) -> bool:
    """Join the cluster at ``address`` or start an embedded Ray with a bounded object store.

    ``address`` is a GCS ``HOST:PORT`` (the driver runs on a node of the cluster, e.g. its head) or
    a Ray Client ``ray://HOST:10001``. Returns True when this call started or joined Ray (so the
    caller should shut it down).
    """
    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    if address:
        extra = {}
        node_ip = None if address.startswith("ray://") else driver_node_ip(address)
        if node_ip:
            extra["_node_ip_address"] = node_ip
        ray.init(address=address, logging_level="ERROR", log_to_driver=False, **extra)
    else:
        ray.init(
            address="local",  # always a fresh embedded instance, never a stray cluster left on this machine
            num_cpus=num_cpus or os.cpu_count() or 2,
            include_dashboard=False,
            object_store_memory=DEFAULT_OBJECT_STORE,
            logging_level="ERROR",
            log_to_driver=False,
            configure_logging=False,
        )
    return True


def spread(count: int) -> list[dict]:
    """Actor options placing ``count`` actors round-robin over the cluster's alive nodes.

    Strict affinity: with ``soft=True`` Ray let busy nodes hand actors back to the head, so a plant
    group's node depended on timing. One node (the embedded Ray): no placement at all."""
    nodes = sorted(n["NodeID"] for n in ray.nodes() if n.get("Alive"))
    if len(nodes) < 2:
        return [{} for _ in range(count)]
    return [{"scheduling_strategy": NodeAffinitySchedulingStrategy(nodes[i % len(nodes)], soft=False)}
            for i in range(count)]

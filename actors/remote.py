"""Ray actor wrappers of the hosts, and the one place that starts or joins Ray.

Actors reserve no CPU slot: they alternate (plants, then the hub) rather than run flat out side by
side, and a 2-core machine must still be able to place one per plant group.
"""

from __future__ import annotations

import os

import ray

from actors.hosts import HubHost, PlantHost

RemotePlantHost = ray.remote(num_cpus=0)(PlantHost)
RemoteHubHost = ray.remote(num_cpus=0)(HubHost)

DEFAULT_OBJECT_STORE = 512 * 1024**2


def ensure_ray(address: str | None = None, num_cpus: int | None = None) -> bool:
    """Join the cluster at ``address`` or start an embedded Ray with a bounded object store.

    Returns True when this call started Ray (so the caller should shut it down).
    """
    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    if address:
        ray.init(address=address, logging_level="ERROR", log_to_driver=False)
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

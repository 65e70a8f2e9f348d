"""The one place that starts or joins Ray, and wraps plain host classes as Ray actors.

Both engines host their twins on Ray through this module: the virtual engine its plant groups and
hubs (:mod:`virtual.coordinator`), the live engine its plants (:mod:`live.plant_actor`). Hosts are
plain classes; :func:`actor_class` wraps one with ``ray.remote``. Actors reserve no CPU slot: they
alternate (plants, then the hub) rather than run flat out side by side, and a 2-core machine must
still be able to place one per plant group.
"""

from __future__ import annotations

import os

import ray

DEFAULT_OBJECT_STORE = 512 * 1024**2


def actor_class(host: type, **options):
    """``host`` as a Ray actor class that reserves no CPU slot (``options`` override)."""
    return ray.remote(**({"num_cpus": 0} | options))(host)


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

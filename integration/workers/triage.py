"""Sorting one lane batch before anything is posted: hand-offs, dead letters, postings per target ERP.

Pure: mapping (:class:`~integration.mapping.PlantMapping`) and rollout routing
(:class:`~kernel.routing.Routing`, on ``t_created``) decide, nothing is sent or stored here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from integration.mapping import Mapped, PlantMapping
from integration.workers.lanes import Copy
from kernel.routing import Routing
from kernel.trace import ERP_POSTING_FLOWS

REASON_INVALID_EVENT = "invalid_event"
REASON_UNKNOWN_PLANT = "unknown_plant"

# (copy, target, attempts, reason, detail) of a copy to dead-letter
DeadEntry = tuple[Copy, str, int, str, str]


@dataclass
class Triage:
    """One batch sorted: ``posts`` maps target ERP to its copies in stream order; ``carry`` holds later
    copies of a transaction already in the batch, for the lane's next batch."""

    dead: list[DeadEntry] = field(default_factory=list)
    handoff: list[Copy] = field(default_factory=list)
    posts: dict[str, list[Copy]] = field(default_factory=dict)
    carry: list[Copy] = field(default_factory=list)
    keys: set[str] = field(default_factory=set)  # transaction ids of the copies in ``posts``


def triage(batch: list[Copy], mappings: dict[str, PlantMapping], router: Routing) -> Triage:
    """Sort ``batch``; sets ``copy.mapped`` on every copy it routes to an ERP."""
    out = Triage()
    for copy in batch:
        event = copy.event
        if event is None:
            out.dead.append((copy, "", 0, REASON_INVALID_EVENT, copy.error))
        elif event.flow not in ERP_POSTING_FLOWS:
            out.handoff.append(copy)
        elif event.txn_id in out.keys:
            out.carry.append(copy)
        else:
            mapping = mappings.get(event.plant)
            kind = router.target(event.plant, event.t_created)
            if mapping is None or kind is None:
                out.dead.append((copy, "", 0, REASON_UNKNOWN_PLANT, f"plant {event.plant!r} is not in the scenario"))
                continue
            mapped = mapping.map_one(event.item, event.qty, event.unit)
            if not isinstance(mapped, Mapped):
                out.dead.append((copy, kind, 0, mapped.reason, mapped.detail))
                continue
            copy.mapped = mapped
            out.keys.add(event.txn_id)
            out.posts.setdefault(kind, []).append(copy)
    return out

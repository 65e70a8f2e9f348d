"""The links of a live run that a fault proxy can sit on, and which client dials which.

Every plant's WAN link (edge → gateway, proxy named after the plant, addressed as ``wan-<plant>``) is
always proxied: the scenario's ``wan_outage`` needs it. The other hops are proxied when a run asks for
them, because a relay on the broker hop costs latency on every event (see bench/RESULTS.md, "Relays on
every hop"):

| link | client → service |
|---|---|
| ``broker-gateway`` | gateway → NATS broker (publishing; a single broker, not a cluster) |
| ``erp-<kind>-worker`` | worker(s) → ERP twin of that kind (postings, lookups) |
| ``opcua-<plant>`` | edge of the plant → its OPC UA server (session, subscription) |

A run asks with ``StackOptions.links`` (``synctwin up --links``): link names, or ``all``. ``synctwin
chaos`` asks for the links its experiments name. Pure: names and URLs in, names out.
"""

from __future__ import annotations

from dataclasses import dataclass

ALL = "all"


@dataclass(frozen=True)
class HopLink:
    """A proxied hop: ``client`` reaches ``service`` through the proxy ``name``."""

    name: str
    service: str
    client: str


def hop_links(plants: list[str], erp_kinds: list[str]) -> list[HopLink]:
    """Every link besides the WAN links, in start order (broker, ERPs, then the plants)."""
    links = [HopLink("broker-gateway", "broker", "gateway")]
    links += [HopLink(f"erp-{k}-worker", f"erp-{k}", "worker") for k in erp_kinds]
    links += [HopLink(f"opcua-{p}", f"opcua-{p}", f"edge-{p}") for p in plants]
    return links


def chosen_links(asked: tuple[str, ...] | list[str], plants: list[str], erp_kinds: list[str]) -> list[HopLink]:
    """The links ``asked`` for (names, ``all``, or ``wan-<plant>`` which is always there); an unknown name
    is a ValueError naming the known ones."""
    every = hop_links(plants, erp_kinds)
    names = {link.name for link in every}
    wan = {f"wan-{p}" for p in plants} | set(plants)
    unknown = [n for n in asked if n != ALL and n not in names and n not in wan]
    if unknown:
        raise ValueError(f"links: no link {', '.join(map(repr, unknown))} in this run; known: "
                         f"{', '.join([ALL, *sorted(names), *sorted(f'wan-{p}' for p in plants)])}")
    return [link for link in every if ALL in asked or link.name in asked]


def client_urls(urls: dict[str, str], links: dict[str, str], chosen: list[HopLink], client: str) -> dict[str, str]:
    """``urls`` as ``client`` should dial them: each service behind a chosen link at its proxy's URL
    (``links``: link name → proxy URL)."""
    out = dict(urls)
    for link in chosen:
        if link.name in links and (client == link.client or client.startswith(f"{link.client}-")):  # worker-2
            out[link.service] = links[link.name]
    return out

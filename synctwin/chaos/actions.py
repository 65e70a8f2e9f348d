"""Chaos Toolkit actions on a live stack: ``provider: {type: python, module: synctwin.chaos.actions, func: ...}``.

Every action takes the experiment's ``configuration`` (:mod:`synctwin.chaos.settings`) and returns what it
did as JSON, which lands in the journal. Process and link faults go through the stack's control API (so
they are on the run's fault timeline); ERP modes too when there is one, else straight to the ERP twin.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from synctwin.chaos.settings import ChaosConfigError, Target, target

__all__ = ["add_mapping", "add_toxic", "flood_duplicates", "inject_poison", "kill_process", "link_down", "link_up",
           "lose_acks", "opcua_session_drop", "opcua_stall", "remove_mapping", "remove_toxic", "replay_dead_letters",
           "reset_links", "restart_process", "rollback_all", "set_erp_mode"]


def _control(cfg: Target, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    reply = httpx.request(method, cfg.need("control") + path, json=body, timeout=130)
    if reply.status_code >= 400:
        detail = reply.json().get("error", reply.text) if reply.content else reply.reason_phrase
        raise RuntimeError(f"{method} {path}: {reply.status_code} {detail}")
    return reply.json() if reply.content else None


# ----------------------------------------------------------------------------------- processes
def kill_process(name: str, restart_after: float | None = None,
                 configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """SIGKILL a process (``gateway``, ``worker``/``worker-<i>``, ``broker`` or a cluster node ``broker-<i>``,
    ``erp``/``erp-<kind>``, ``edge-<plant>``, ``opcua-<plant>``; a role name hits its first process); with
    ``restart_after`` (wall seconds) it is started again that much later."""
    return _control(target(configuration), "POST", f"/processes/{name}/kill", {"restart_after": restart_after})


def restart_process(name: str, configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Start a killed process again on its former port."""
    return _control(target(configuration), "POST", f"/processes/{name}/restart", {})


# -------------------------------------------------------------------------------------- links
def link_down(link: str, configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Take a link down (Toxiproxy's ``enabled: false``): every connection through it is reset."""
    return _control(target(configuration), "POST", f"/proxies/{link}", {"enabled": False})


def link_up(link: str, configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Bring a link back up."""
    return _control(target(configuration), "POST", f"/proxies/{link}", {"enabled": True})


def add_toxic(link: str, type: str, stream: str = "downstream", toxicity: float = 1.0,  # noqa: A002 - Toxiproxy's
              attributes: dict[str, float] | None = None, name: str | None = None,
              configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Add a Toxiproxy toxic to a link: latency, bandwidth, timeout, reset_peer, slow_close, slicer, limit_data."""
    body = {"type": type, "stream": stream, "toxicity": toxicity, "attributes": attributes or {}}
    if name:
        body["name"] = name
    return _control(target(configuration), "POST", f"/proxies/{link}/toxics", body)


def remove_toxic(link: str, name: str, configuration: dict[str, Any] | None = None) -> None:
    """Remove toxic ``name`` (default names are ``<type>_<stream>``) from a link."""
    _control(target(configuration), "DELETE", f"/proxies/{link}/toxics/{name}")


def reset_links(configuration: dict[str, Any] | None = None) -> None:
    """Every link up, every toxic removed."""
    _control(target(configuration), "POST", "/reset", {})


# ------------------------------------------------------------------------------------- OPC UA
def opcua_session_drop(plant: str, configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Plant ``plant``'s OPC UA server closes every client session (subscriptions deleted) and connection:
    its edge must reconnect and subscribe again. Returns how many sessions were dropped."""
    return _control(target(configuration), "POST", f"/opcua/{plant}/session_drop", {})


def opcua_stall(plant: str, seconds: float = 10.0, configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Plant ``plant``'s OPC UA server sends no notifications for ``seconds`` wall seconds (keep-alives go
    on, the session stays), then resumes with the counters' new values."""
    return _control(target(configuration), "POST", f"/opcua/{plant}/stall", {"seconds": seconds})


# ---------------------------------------------------------------------------------------- ERP
def set_erp_mode(mode: str, erp: str = "all", share: float = 1.0, retry_after: float = 1.0, factor: float = 5.0,
                 configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Switch ERP twin(s): ``normal``, ``outage``, ``slow`` (``factor``), ``throttle`` (429 + ``retry_after``),
    ``errors`` (500s), ``lose_answer`` (commit, then drop the connection) -- the last three on ``share``."""
    cfg = target(configuration)
    kinds = list(cfg.erps) if erp == "all" else [erp]
    if not kinds:
        raise ChaosConfigError("no ERP known: set erp_url (or synctwin_run_dir) in the configuration")
    body = {"mode": mode, "share": share, "retry_after": retry_after, "factor": factor}
    out = {}
    for kind in kinds:
        if cfg.control:
            out[kind] = _control(cfg, "POST", f"/erp/{kind}/mode", body)
        else:
            reply = httpx.post(f"{cfg.erps[kind]}/admin/mode", json=body, timeout=10)
            reply.raise_for_status()
            out[kind] = reply.json()
    return out


# ---------------------------------------------------------------------------- poison, floods
def inject_poison(kind: str = "unmappable", count: int = 5, plant: str | None = None,
                  configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Post ``count`` poison events as plant ``plant`` (default: the first): ``unmappable`` (valid v2 events
    with an item no mapping knows: dead-lettered by the workers with a reason), ``wrong_types`` (v1 bodies
    with a string quantity: refused by the gateway), ``oversized`` (a body over the gateway's limit).
    Returns the HTTP status codes and the txn ids posted."""
    cfg = target(configuration)
    plant = plant or (cfg.plants[0] if cfg.plants else "")
    key = cfg.credentials.get("plants", {}).get(plant)
    if not key:
        raise ChaosConfigError(f"no API key for plant {plant!r}: set synctwin_run_dir of a stack synctwin started")
    now = max(0.0, cfg.now())
    ids = [f"poison-{kind}-{plant}-{int(now)}-{i}" for i in range(count)]
    url, headers = cfg.need("gateway"), {"X-Api-Key": key}
    if kind == "unmappable":
        body = [{"txn_id": t, "flow": "goods_receipt", "item": "NO-SUCH-ITEM", "qty": 1, "unit": "EA",
                 "t_created": now} for t in ids]
        reply = httpx.post(f"{url}/v2/events", json=body, headers=headers, timeout=30)
    elif kind == "wrong_types":
        body = [{"id": t, "type": "goods_receipt", "material": "X", "quantity": "many", "uom": "EA",
                 "timestamp": now} for t in ids]
        reply = httpx.post(f"{url}/v1/events", json=body, headers=headers, timeout=30)
    elif kind == "oversized":
        blob = json.dumps([{"txn_id": ids[0], "flow": "goods_receipt", "item": "X" * (8 << 20), "qty": 1,
                            "unit": "EA", "t_created": now}])
        reply = httpx.post(f"{url}/v2/events", content=blob, headers={**headers, "Content-Type": "application/json"},
                           timeout=60)
    else:
        raise ValueError(f"kind: {kind!r}; use unmappable, wrong_types or oversized")
    return {"kind": kind, "plant": plant, "status": reply.status_code, "txn_ids": ids}


def flood_duplicates(plant: str | None = None, limit: int = 100_000,
                     configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """An edge replays its whole outbox: every event it already sent is posted to the gateway again (same
    txn ids, as v2 events of the same plant). The layer must suppress every copy."""
    from integration.sqlite import connect_readonly

    cfg = target(configuration)
    plant = plant or (cfg.plants[0] if cfg.plants else "")
    key = cfg.credentials.get("plants", {}).get(plant)
    if not key:
        raise ChaosConfigError(f"no API key for plant {plant!r}: set synctwin_run_dir of a stack synctwin started")
    db = connect_readonly(cfg.state / f'edge-{plant}.sqlite')
    try:
        rows = db.execute("SELECT txn_id, correlation_id, flow, line, item, lot, qty, unit, t_created FROM outbox "
                          "WHERE status = 'sent' ORDER BY rowid LIMIT ?", (limit,)).fetchall()
    finally:
        db.close()
    names = ("txn_id", "correlation_id", "flow", "line", "item", "lot", "qty", "unit", "t_created")
    events = [{k: ("" if v is None else v) for k, v in zip(names, r, strict=True)} for r in rows]
    statuses: dict[str, int] = {}
    with httpx.Client(base_url=cfg.need("gateway"), headers={"X-Api-Key": key}, timeout=30) as http:
        for start in range(0, len(events), 500):
            code = str(http.post("/v2/events", json=events[start:start + 500]).status_code)
            statuses[code] = statuses.get(code, 0) + 1
    return {"plant": plant, "replayed": len(events), "requests": statuses}


# ------------------------------------------------------------------------------- mapping, DLQ
def add_mapping(plant: str, item: str, to: str, configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Fix a plant's mapping at run time: its code ``item`` maps to the canonical ``to`` from now on. The
    running workers pick the change up within a heartbeat (``integration.workers.mapping_reload``)."""
    from integration.workers.mapping_reload import write_mapping_fix

    cfg = target(configuration)
    fixes = write_mapping_fix(cfg.state.parent, plant, item, to)
    _record(cfg, "mapping_fix", plant, {"item": item, "to": to, "version": fixes["version"]})
    return fixes


def remove_mapping(plant: str, item: str, configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Undo :func:`add_mapping` (the code is unmappable again)."""
    from integration.workers.mapping_reload import write_mapping_fix

    cfg = target(configuration)
    fixes = write_mapping_fix(cfg.state.parent, plant, item, None)
    _record(cfg, "mapping_fix", plant, {"item": item, "to": None, "version": fixes["version"]})
    return fixes


def replay_dead_letters(reason: str | None = None, plant: str | None = None,
                        configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Replay the dead letters (of one ``reason``, one ``plant``) through the gateway's ``/admin/replay``;
    returns what the gateway replayed."""
    cfg = target(configuration)
    admin = cfg.credentials.get("admin")
    if not admin:
        raise ChaosConfigError("no admin key: set admin_key (or synctwin_run_dir of a stack synctwin started)")
    with httpx.Client(base_url=cfg.need("gateway"), headers={"X-Api-Key": admin}, timeout=60) as http:
        listed = http.get("/admin/dlq", params={"limit": 100_000, **({"plant": plant} if plant else {})})
        listed.raise_for_status()
        ids = sorted({m["txn_id"] for m in listed.json()["messages"] if reason is None or m["reason"] == reason})
        if not ids:
            return {"replayed": 0, "txn_ids": [], "not_found": []}
        reply = http.post("/admin/replay", json={"txn_ids": ids, **({"plant": plant} if plant else {})})
        reply.raise_for_status()
    return reply.json()


def _record(cfg: Target, event: str, what: str, detail: dict[str, Any]) -> None:
    """Put a change made outside the control API on its timeline (when there is one)."""
    if cfg.control:
        _control(cfg, "POST", "/timeline", {"event": event, "what": what, **detail})


def lose_acks(share: float, configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """The workers withhold ``share`` of their acks: JetStream delivers those messages again (a redelivery
    storm); 0 ends it."""
    return _control(target(configuration), "POST", "/worker/ack_loss", {"share": share})


# ------------------------------------------------------------------------------------ rollback
def rollback_all(configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Undo every fault: links reset, ERPs normal, killed processes started again."""
    cfg = target(configuration)
    if cfg.control:
        reset_links(configuration)
        lose_acks(0.0, configuration)
    set_erp_mode("normal", configuration=configuration)
    if cfg.run_dir is not None:  # second edges stopped, skewed edge clocks put right
        from synctwin.chaos.edges import reset_edges

        reset_edges(configuration)
    restarted = []
    if cfg.control:
        for name, proc in _control(cfg, "GET", "/processes").items():
            if proc["state"] in ("killed", "dead", "restart_failed"):
                restart_process(name, configuration)
                restarted.append(name)
    return {"restarted": restarted}

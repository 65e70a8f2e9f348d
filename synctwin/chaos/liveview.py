"""The live view of a chaos run: one page on the control API (``GET /view``) that polls ``GET /live`` every
second -- throughput, backlog, per-flow posting-delay percentiles, each fault as it starts and ends, the
processes' states and the hypothesis status -- updated in place, without reloading.
"""

from __future__ import annotations

import asyncio
import math
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np

from integration.sqlite import connect_readonly
from live.collect import pending_at_edges
from synctwin.chaos.timeline import fault_windows

WINDOW_S = 600.0  # scenario seconds of postings behind each latency percentile
RATE_WALL_S = 10.0  # wall seconds behind the throughput figure


def _deliveries(state: Path, since: float) -> list[tuple[str, float, float]]:
    path = state / "deliveries.sqlite"
    if not path.is_file():
        return []
    db = connect_readonly(path, timeout=2)
    try:
        return db.execute("SELECT flow, t_delivered, t_delivered - t_created FROM deliveries "
                          "WHERE outcome = 'delivered' AND t_delivered >= ?", (since,)).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        db.close()


def snapshot(control: Any) -> dict[str, Any]:
    """What the page shows now (scenario seconds; throughput in events per wall second)."""
    from live.backlog import consumer_backlog

    now, speed = control.host.now(), float(control.info.get("speed", 1.0))
    state = control.run_dir / "state"
    rows = _deliveries(state, now - WINDOW_S)
    recent = [r for r in rows if r[1] >= now - RATE_WALL_S * speed]
    latency: dict[str, dict[str, float]] = {}
    for flow in sorted({r[0] for r in rows}):
        delays = np.array([r[2] for r in rows if r[0] == flow and r[2] is not None], dtype=float)
        if delays.size:
            latency[flow] = {f"p{q}": float(np.percentile(delays, q)) for q in (50, 95, 99)} | {"n": int(delays.size)}
    broker = control.urls().get("broker", "")
    nodes = [n for n in control.host.names() if n == "broker" or n.startswith("broker-")]
    broker_up = not nodes or any(control.host.alive(n) for n in nodes)  # a stopped broker: no connect errors
    at_broker = asyncio.run(consumer_backlog(broker)) if broker and broker_up else -1
    faults = [{"kind": w["kind"], "what": w["what"], "start": w["start"],
               "end": None if math.isinf(w["end"]) else w["end"]}  # None: still going on
              for w in fault_windows(control.timeline, math.inf)]
    return {"now": now, "throughput": len(recent) / RATE_WALL_S, "backlog": {"edges": pending_at_edges(state),
                                                                            "broker": at_broker},
            "latency": latency, "faults": faults, "processes": _processes(control),
            "hypothesis": dict(control.hypothesis)}


def _processes(control: Any) -> dict[str, Any]:
    """The processes' states; none while the stack is tearing its service set down."""
    try:
        return control.route("GET", "/processes", {})[1]
    except KeyError:
        return {}


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>synctwin chaos — live</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:20px;margin:0 0 .3em} .tiles{display:flex;gap:1em;flex-wrap:wrap}
.tile{border:1px solid #ccc;border-radius:6px;padding:.5em .9em;min-width:9em}
.tile b{display:block;font-size:22px} table{border-collapse:collapse;margin:.6em 0}
td,th{border-bottom:1px solid #ddd;padding:.2em .7em;text-align:left} .open{background:#fde2e1;font-weight:600}
.ok{color:#1a7f37} .bad{color:#c62828}
</style></head><body>
<h1>synctwin chaos — live view</h1><div id="hyp">waiting for data…</div>
<div class="tiles"><div class="tile">scenario time<b id="now">–</b></div>
<div class="tile">throughput (events/s)<b id="tput">–</b></div>
<div class="tile">backlog<b id="backlog">–</b></div></div>
<h2>Faults</h2><table><thead><tr><th>fault</th><th>on</th><th>start</th><th>end</th></tr></thead>
<tbody id="faults"></tbody></table>
<h2>Posting delay (last 10 scenario minutes)</h2><table><thead><tr><th>flow</th><th>p50</th><th>p95</th><th>p99</th>
<th>n</th></tr></thead><tbody id="latency"></tbody></table>
<h2>Processes</h2><table><thead><tr><th>process</th><th>state</th><th>pid</th><th>kills</th><th>restarts</th></tr>
</thead><tbody id="procs"></tbody></table>
<script>
const s = x => x === null || x === undefined ? "–" :
  (typeof x === "number" && !Number.isInteger(x) ? x.toFixed(1) : String(x));
const row = cells => "<tr>" + cells.map(c => "<td>" + s(c) + "</td>").join("") + "</tr>";
async function tick() {
  try {
    const d = await (await fetch("live")).json();
    document.getElementById("now").textContent = s(d.now) + " s";
    document.getElementById("tput").textContent = s(d.throughput);
    document.getElementById("backlog").textContent = d.backlog.edges + " at edges, " + d.backlog.broker + " at broker";
    document.getElementById("faults").innerHTML = d.faults.map(f =>
      (f.end === null ? '<tr class="open">' : "<tr>") + [f.kind, f.what, f.start,
       f.end === null ? "ACTIVE" : f.end].map(c => "<td>" + s(c) + "</td>").join("") + "</tr>").join("");
    document.getElementById("latency").innerHTML = Object.entries(d.latency).map(([k, v]) =>
      row([k, v.p50, v.p95, v.p99, v.n])).join("");
    document.getElementById("procs").innerHTML = Object.values(d.processes).map(p =>
      row([p.name, p.state, p.pid, p.kills, p.restarts])).join("");
    const h = d.hypothesis;
    document.getElementById("hyp").innerHTML = h.experiment ? "experiment <b>" + h.experiment + "</b>: " +
      h.phase + " — hypothesis before <span class='" + (h.before === false ? "bad" : "ok") + "'>" + s(h.before) +
      "</span>, after <span class='" + (h.after === false ? "bad" : "ok") + "'>" + s(h.after) + "</span>"
      : "no experiment running";
  } catch (e) { document.getElementById("hyp").textContent = "control API unreachable: " + e; }
}
tick(); setInterval(tick, 1000);
</script></body></html>
"""

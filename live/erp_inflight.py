"""Postings the ERP twin has taken in but not answered yet, so that a ledger lookup can wait for them.

A worker whose request lost its answer (a reset connection, a timeout) asks the ledger which of the batch's
transactions landed before it posts the others again. The request it lost may still be queued for the
ERP's single posting server or being committed; a lookup that answered "not there" at that moment would
make the retry post those transactions twice. So the twin's lookup is read-your-writes: it answers once no
posting of the asked ids is in flight, and within a bounded wait, or says it cannot tell yet.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager


class InFlight:
    """Counts of the transaction ids of requests in progress; :meth:`settled` waits until none is asked for."""

    def __init__(self) -> None:
        self._count: dict[str, int] = {}
        self._changed = asyncio.Condition()

    @asynccontextmanager
    async def holding(self, txn_ids: Iterable[str]) -> AsyncIterator[None]:
        """Mark ``txn_ids`` in flight for the duration of the block (answered or refused, they leave)."""
        ids = list(txn_ids)
        count = self._count
        for t in ids:
            count[t] = count.get(t, 0) + 1
        try:
            yield
        finally:
            for t in ids:
                left = count[t] - 1
                if left:
                    count[t] = left
                else:
                    del count[t]
            async with self._changed:
                self._changed.notify_all()

    def __len__(self) -> int:
        return len(self._count)

    def busy(self, txn_ids: Iterable[str]) -> bool:
        """Is any of ``txn_ids`` in flight now?"""
        count = self._count
        return any(t in count for t in txn_ids)

    async def settled(self, txn_ids: list[str], timeout_s: float) -> bool:
        """Wait until none of ``txn_ids`` is in flight; False if some still are after ``timeout_s``."""
        if not self.busy(txn_ids):
            return True
        try:
            async with self._changed:
                async with asyncio.timeout(timeout_s):
                    await self._changed.wait_for(lambda: not self.busy(txn_ids))
        except TimeoutError:
            return False
        return True

"""Inclusion proofs for concurrent acknowledgements, read together.

A cluster node answers the submitters of a block when its checkpoint turns final: a hundred
acknowledgements wake in the same moment, each wanting the inclusion proof of its record in
the same tree. Read one by one, every proof was a thread hop and a read transaction with
three queries (its leaf, its nodes), most of them reading nodes the others read too. Here
the requests that arrive while the event loop is busy are read in one hop and one snapshot
(:meth:`Ledger.inclusion_proofs`); each waiter gets its own proof, or its own error.
"""

from __future__ import annotations

import asyncio
import functools

from ledger.service import InclusionProof, Ledger
from signing.errors import CertLedgerError

#: proofs read in one hop at most (a bound on one read transaction's work)
_MAX_BATCH = 512

_Pending = tuple[int, int, "asyncio.Future[InclusionProof]"]


class ProofBatcher:
    """``await proof(index, size)``; requests made on one event loop in one turn are read together."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        # per event loop: a future belongs to the loop it was made on (one loop per server
        # process; tests and embedders may drive the app from several)
        self._pending: dict[asyncio.AbstractEventLoop, list[_Pending]] = {}

    async def proof(self, index: int, size: int) -> InclusionProof:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[InclusionProof] = loop.create_future()
        pending = self._pending.get(loop)
        if pending is None:
            pending = self._pending[loop] = []
            # after the callbacks already queued: the other acknowledgements woken with this one
            loop.call_soon(self._flush, loop)
        pending.append((index, size, fut))
        # shielded: a client that goes away cancels its own wait, not the read others share
        return await asyncio.shield(fut)

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        pending = self._pending.pop(loop, [])
        for start in range(0, len(pending), _MAX_BATCH):
            batch = pending[start : start + _MAX_BATCH]
            task = loop.create_task(asyncio.to_thread(self.ledger.inclusion_proofs, [(i, s) for i, s, _ in batch]))
            task.add_done_callback(functools.partial(_deliver, batch=batch))


def _deliver(done: asyncio.Task[list[InclusionProof | CertLedgerError]], *, batch: list[_Pending]) -> None:
    if done.cancelled():
        for _, _, fut in batch:
            fut.cancel()
        return
    error = done.exception()
    for position, (_, _, fut) in enumerate(batch):
        if fut.done():
            continue
        if error is not None:
            fut.set_exception(error)
            continue
        result = done.result()[position]
        if isinstance(result, CertLedgerError):
            fut.set_exception(result)
        else:
            fut.set_result(result)

"""Group commit for concurrent submitters of a single-node ledger.

Submissions from many API requests are queued; one writer thread takes what
has arrived (up to ``max_batch`` records, waiting at most ``max_wait`` seconds
for more once the first is there) and appends it with one ``Ledger.submit``:
one block, one checkpoint, one fsync. Each submitter's future resolves only
after that transaction committed, so an acknowledgement always means durable.

When the queue is full the sequencer refuses at once (an explicit pushback the
API turns into 503 + Retry-After) instead of letting latency grow unbounded.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Protocol

import structlog

from ledger.records import SignedRecord
from ledger.service import Accepted, Ledger
from signing.errors import CertLedgerError, StorageError

_log = structlog.get_logger("certledger.sequencer")


@dataclass(frozen=True)
class Acknowledgement:
    """What a submitter gets back once its record is durable."""

    accepted: Accepted
    tree_size: int
    block_height: int
    checkpoint: str
    #: True when the orderer itself established that ``checkpoint`` is final (a cluster node
    #: assembled it from cosignatures it verified one by one before storing them); None when
    #: it does not say, and the API checks the note's signatures against the quorum itself
    final: bool | None = None


class Sequencer(Protocol):
    """Whatever orders submissions: the group-commit sequencer, or a cluster node."""

    def submit(self, signed: SignedRecord) -> Future[Acknowledgement]: ...


class OverloadedError(StorageError):
    reason = "ledger.overloaded"

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class GroupCommitSequencer:
    def __init__(
        self, ledger: Ledger, *, max_batch: int = 500, max_wait: float = 0.004, max_queue: int = 20_000
    ) -> None:
        self.ledger = ledger
        self.max_batch = max_batch
        self.max_wait = max_wait
        self._queue: queue.Queue[tuple[SignedRecord, Future[Acknowledgement]] | None] = queue.Queue(max_queue)
        self._thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
        self._stopped = threading.Event()
        self._thread.start()

    def submit(self, signed: SignedRecord) -> Future[Acknowledgement]:
        fut: Future[Acknowledgement] = Future()
        if self._stopped.is_set():
            fut.set_exception(StorageError("the ledger is shutting down", reason="ledger.closed"))
            return fut
        try:
            self._queue.put_nowait((signed, fut))
        except queue.Full:
            fut.set_exception(OverloadedError("too many submissions queued; retry shortly"))
        return fut

    def close(self, timeout: float = 10.0) -> None:
        self._stopped.set()
        self._queue.put(None)
        self._thread.join(timeout)

    def _take_batch(self) -> list[tuple[SignedRecord, Future[Acknowledgement]]] | None:
        first = self._queue.get()
        if first is None:
            return None
        batch = [first]
        deadline = time.monotonic() + self.max_wait
        while len(batch) < self.max_batch:
            remaining = deadline - time.monotonic()
            try:
                item = self._queue.get(timeout=max(0.0, remaining)) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                self._queue.put(None)  # let the loop see the stop marker after this batch
                break
            batch.append(item)
        return batch

    def _run(self) -> None:
        while True:
            batch = self._take_batch()
            if batch is None:
                return
            records = [signed for signed, _ in batch]
            try:
                result = self.ledger.submit(records)
            except CertLedgerError as exc:
                for _, fut in batch:
                    fut.set_exception(exc)
                continue
            except Exception as exc:
                _log.exception("append failed", error=type(exc).__name__)
                for _, fut in batch:
                    fut.set_exception(StorageError(f"append failed: {type(exc).__name__}"))
                continue
            for rejected in result.rejected:
                batch[rejected.position][1].set_exception(rejected.error)
            if result.block is None or result.checkpoint is None:
                continue
            for accepted in result.accepted:
                batch[accepted.position][1].set_result(
                    Acknowledgement(accepted, result.block.header.tree_size, result.block.height, result.checkpoint)
                )

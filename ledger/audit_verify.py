"""Record signature checks for the audit, run in worker processes.

A large audit verifies its licence records' SM2 signatures in a process pool rather
than in threads: libcrypto releases the GIL during the curve arithmetic, but each check's
Python part (DER decoding, range and signer-ID checks) and the replay itself still take
it, so threads on a 2-core machine spend a quarter of their time waiting for each other.
This module is what a worker imports: no SQL, no ledger state, so a spawned worker is
ready in well under 0.1 s.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import queue
import struct
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import IO

from ledger.records import RECORD_SIGNER_ID
from signing.errors import CertLedgerError
from signing.sm2 import SM2PublicKey

#: one check: (the record's signed bytes, the DER signature, the key's point x, y)
Job = tuple[bytes, bytes, int, int]

# a worker verifies every record of a ledger with the same few agency keys: decode each once
_KEYS: dict[tuple[int, int], SM2PublicKey] = {}


def verify_batch(jobs: Sequence[Job | None]) -> list[bool | None]:
    """True / False per job; None where no check ran (no job, or the key does not load)."""
    out: list[bool | None] = []
    for job in jobs:
        if job is None:
            out.append(None)
            continue
        message, sig, x, y = job
        key = _KEYS.get((x, y))
        if key is None:
            try:
                key = SM2PublicKey(x, y)
            except CertLedgerError:
                out.append(None)  # the replay's own check reports it
                continue
            _KEYS[(x, y)] = key
        try:
            key.verify(sig, message, signer_id=RECORD_SIGNER_ID)
        except CertLedgerError:
            out.append(False)
        else:
            out.append(True)
    return out


# -- the worker processes ------------------------------------------------------------------
#
# Plain subprocesses speaking length-prefixed marshal over their pipes, not
# multiprocessing: its spawn and forkserver start methods re-run the parent's main
# script in each child, so an audit() called from an unguarded script would start
# workers forever; fork would copy the parent's SQL connections, locks and threads.

_FRAME = struct.Struct(">I")
#: batches written to a worker before its first answer is read
_IN_FLIGHT = 2
#: a reply or request above this is not ours: the peer is broken
_MAX_FRAME = 64 << 20


def _read_frame(stream: IO[bytes]) -> bytes | None:
    head = stream.read(_FRAME.size)
    if len(head) < _FRAME.size:
        return None
    (size,) = _FRAME.unpack(head)
    if size > _MAX_FRAME:
        raise ValueError(f"frame of {size} bytes")
    body = stream.read(size)
    if len(body) < size:
        return None
    return body


def _write_frame(stream: IO[bytes], body: bytes) -> None:
    stream.write(_FRAME.pack(len(body)) + body)
    stream.flush()


class ProcessVerifier:
    """``workers`` verifier processes fed batches of jobs; :meth:`submit` returns a Future.

    One feeding thread per process writes a batch and waits for its answer (blocking on
    the pipe releases the GIL), so each worker always holds at most one batch and the
    batches queue here. A worker that dies fails its batch's future and stops taking
    work; the audit then checks those records in sequence.

    The caller's thread is a verifier too: :meth:`result` verifies queued batches itself
    while the one it needs is not ready. So use one process fewer than there are cores:
    the caller's sequential work plus its share of checks fills the last core, where a
    third busy process on two cores would cost every check ~15 % more CPU (preemption
    and cache refills, measured).
    """

    def __init__(self, workers: int) -> None:
        self._queue: queue.SimpleQueue[tuple[Future[list[bool | None]], list[Job | None]] | None] = (
            queue.SimpleQueue()
        )
        root = str(Path(__file__).resolve().parent.parent)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
        self._procs: list[subprocess.Popen[bytes]] = []
        self._threads: list[threading.Thread] = []
        for i in range(workers):
            proc = subprocess.Popen(
                [sys.executable, "-m", "ledger.audit_verify"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env=env,
            )
            self._procs.append(proc)
            thread = threading.Thread(target=self._feed, args=(proc,), name=f"audit-verify-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def submit(self, jobs: list[Job | None]) -> Future[list[bool | None]]:
        future: Future[list[bool | None]] = Future()
        self._queue.put((future, jobs))
        return future

    def result(self, future: Future[list[bool | None]]) -> list[bool | None]:
        """``future``'s verdicts; until it is done, verify queued batches in this thread."""
        while not future.done():
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:  # shutting down: leave it for a feeding thread
                self._queue.put(None)
                break
            stolen, jobs = item
            if stolen.set_running_or_notify_cancel():
                try:
                    stolen.set_result(verify_batch(jobs))
                except Exception as exc:
                    stolen.set_exception(exc)
        return future.result()

    def _feed(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdin is not None and proc.stdout is not None
        # two batches in flight: the worker starts the next one while this thread waits for
        # the GIL (held by the replay up to a switch interval) to read the last answer
        inflight: deque[tuple[Future[list[bool | None]], int]] = deque()
        stopping = False
        try:
            while True:
                while not stopping and len(inflight) < _IN_FLIGHT:
                    try:
                        item = self._queue.get(block=not inflight)
                    except queue.Empty:
                        break
                    if item is None:
                        stopping = True
                        break
                    future, jobs = item
                    if future.set_running_or_notify_cancel():
                        _write_frame(proc.stdin, marshal.dumps(jobs))
                        inflight.append((future, len(jobs)))
                if not inflight:
                    if stopping:
                        return
                    continue
                future, count = inflight.popleft()
                reply = _read_frame(proc.stdout)
                if reply is None:
                    raise RuntimeError("audit verifier process ended")
                verdicts = marshal.loads(reply)  # noqa: S302 (from our own child process)
                if not isinstance(verdicts, list) or len(verdicts) != count:
                    raise RuntimeError("audit verifier process gave a malformed answer")
                future.set_result(verdicts)
        except Exception as exc:  # this worker is gone: fail its batches, take no more work
            for future, _ in inflight:
                future.set_exception(exc)

    def shutdown(self) -> None:
        """Stop the workers once they have answered what is queued."""
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout=30)
        for proc in self._procs:
            if proc.stdin is not None:
                with contextlib.suppress(OSError):
                    proc.stdin.close()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        # batches a dead worker's thread left queued: nobody will answer them
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                item[0].set_exception(RuntimeError("audit verifier processes stopped"))


def _serve(stdin: IO[bytes], stdout: IO[bytes]) -> None:
    while (request := _read_frame(stdin)) is not None:
        jobs = marshal.loads(request)  # noqa: S302 (from the parent that started us)
        _write_frame(stdout, marshal.dumps(verify_batch(jobs)))


if __name__ == "__main__":
    _serve(sys.stdin.buffer, sys.stdout.buffer)

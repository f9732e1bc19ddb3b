"""Audit: replay the whole ledger from genesis and re-verify everything.

Steps (each finding names the step's reason code and the first place it failed):

1. Entries: each stored leaf hash is SM3(0x00 || entry); each entry is
   canonical and re-parses; its indexed columns match its content.
2. Records: each record is re-validated against the state rebuilt so far, at
   its block's time: signatures, authorisation, state transition, nonce.
3. Blocks: hash links, contiguous entry ranges, the proposer's SM2 signature
   by a node admitted at that time, and the tree root recomputed from the
   entries equals the header's root.
4. Tree nodes: every stored full node equals the recomputed one (proofs are
   served from them, so a wrong node would mean wrong proofs).
5. Checkpoints: each verifies with an admitted node's key, and its root is the
   recomputed root at its size.
6. Derived state: the stored licence, agency and node tables equal the state
   rebuilt by replay.

Nothing here writes. Licence records' signature checks run in a pool one
chunk ahead of the sequential pass that does everything else, so the two
overlap: worker processes for a large ledger (threads would contend for the
GIL with the replay), threads for a small one (no start-up cost).
"""

from __future__ import annotations

import gc
import json
import os
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import LargeBinary, cast, select

from ledger import reasons
from ledger.audit_verify import Job, ProcessVerifier, verify_batch
from ledger.blocks import Block, BlockHeader, check_link
from ledger.checkpoint import open_checkpoint
from ledger.identity import checkpoint_verifiers
from ledger.merkle.compact import CompactRange
from ledger.merkle.hashing import TreeHasher
from ledger.records import GOVERNANCE_TYPES, SignedRecord
from ledger.state import LicenceState, MemoryState, Node
from ledger.statusmap import StatusMap, root_from_extensions, state_value, status_key
from ledger.store import schema as t
from ledger.store.sql import EntryRow, SqlStore, state_json
from ledger.validation import validate
from signing.errors import CertLedgerError

#: findings beyond this many are counted, not listed
MAX_FINDINGS = 100
_CHUNK = 2000
#: signature checks per task: each costs a future (and for a process, a pipe round trip); the
#: replay thread steals whole process batches, so they stay small (64 checks = ~20 ms)
_THREAD_BATCH = 32
_PROCESS_BATCH = 64
#: ledgers at least this large verify in worker processes (start-up ~0.1 s, repaid by ~1000 checks)
PROCESS_MIN_ENTRIES = 4096


@dataclass(frozen=True)
class Finding:
    reason: str
    where: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"reason": self.reason, "where": self.where, "message": self.message}


@dataclass
class AuditReport:
    origin: str = ""
    tree_size: int = 0
    blocks: int = 0
    entries: int = 0
    signatures: int = 0
    checkpoints: int = 0
    root: str = ""
    seconds: float = 0.0
    licences: dict[str, int] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    finding_count: int = 0
    evidence: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.finding_count == 0

    @property
    def first(self) -> Finding | None:
        return self.findings[0] if self.findings else None

    def add(self, reason: str, where: str, message: str) -> None:
        self.finding_count += 1
        if len(self.findings) < MAX_FINDINGS:
            self.findings.append(Finding(reason, where, message))

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "origin": self.origin,
            "tree_size": self.tree_size,
            "root": self.root,
            "blocks": self.blocks,
            "entries": self.entries,
            "signatures_verified": self.signatures,
            "checkpoints": self.checkpoints,
            "licences": self.licences,
            "seconds": round(self.seconds, 3),
            "first_finding": self.first.to_json() if self.first else None,
            "finding_count": self.finding_count,
            "findings": [f.to_json() for f in self.findings],
            "evidence": self.evidence,
        }


@dataclass
class _Prepared:
    """A chunk after step 1: its rows, leaf hashes, parsed records and queued signature checks."""

    rows: Sequence[EntryRow]
    leaves: list[bytes] = field(default_factory=list)
    parsed: list[SignedRecord | None] = field(default_factory=list)
    verdicts: list[Future[list[bool | None]]] = field(default_factory=list)
    #: step 1's findings (reason, where, message), reported when the chunk is replayed
    findings: list[tuple[str, str, str]] = field(default_factory=list)


class _Replay:
    def __init__(
        self,
        store: SqlStore,
        report: AuditReport,
        progress: Callable[[int], None] | None,
        workers: int,
        processes: bool,
    ) -> None:
        self.store = store
        self.report = report
        self.progress = progress
        self.state = MemoryState()
        self.hasher = TreeHasher()
        self.range = CompactRange(self.hasher)
        self.submit: Callable[[list[Job | None]], Future[list[bool | None]]]
        self.result: Callable[[Future[list[bool | None]]], list[bool | None]]
        self.close: Callable[[], None]
        if processes:
            # the replay's own thread verifies too (ProcessVerifier.result): one process fewer
            verifier = ProcessVerifier(max(1, workers - 1))
            self.submit, self.result = verifier.submit, verifier.result
            self.close, self.batch = verifier.shutdown, _PROCESS_BATCH
            # a deeper queue: a worker never waits for the replay to prepare its next batch
            self.ahead = 3
        else:
            pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="audit")
            self.submit = lambda jobs: pool.submit(verify_batch, jobs)
            self.result = lambda future: future.result()
            self.close, self.batch = pool.shutdown, _THREAD_BATCH
            self.ahead = 1
        #: recomputed full nodes not yet compared with the stored ones
        self.pending_nodes: list[tuple[tuple[int, int], bytes]] = []
        self.roots: dict[int, bytes] = {0: self.hasher.empty_root()}
        #: the replayed status map (ADR 0018), the licences changed in the current block, and
        #: the map's root after each block by tree size
        self.status = StatusMap()
        self.changed: dict[str, LicenceState] = {}
        self.status_roots: dict[int, bytes] = {}
        self.node_keys_at: dict[int, dict[str, Node]] = {}

    # -- steps 1 + 2 ------------------------------------------------------------------------

    def prepare(self, rows: Sequence[EntryRow]) -> _Prepared:
        """Step 1 for ``rows`` and the start of their signature checks (in the pool).

        Runs one chunk ahead of :meth:`finish`, so the pool verifies this chunk's
        signatures while the previous chunk is replayed. Keys are looked up in the
        state replayed so far: a key admitted by an entry not yet replayed is not
        found, and that record's signature is checked in sequence by ``validate``.
        Step 1's findings are kept with the chunk and reported by :meth:`finish`, so
        the report stays in ledger order.
        """
        prepared = _Prepared(rows)
        for row in rows:
            where = f"entry {row.index}"
            # 1. leaf hash and encoding
            leaf = self.hasher.hash_leaf(row.data)
            prepared.leaves.append(leaf)
            if leaf != row.leaf_hash:
                prepared.findings.append((reasons.ENTRY_HASH, where, "stored leaf hash is not SM3(0x00 || entry)"))
            try:
                signed = SignedRecord.from_bytes(row.data)
            except CertLedgerError as exc:
                prepared.findings.append((exc.reason, where, f"entry does not parse: {exc}"))
                prepared.parsed.append(None)
                continue
            record = signed.record
            if (row.record_hash, row.rtype, row.licence_id or "", row.agency_id or "") != (
                record.record_hash(),
                str(record.type),
                record.licence_id,
                record.agency,
            ):
                prepared.findings.append((reasons.ENTRY_HASH, where, "indexed columns do not match the entry"))
            prepared.parsed.append(signed)
        prepared.verdicts = self._verify_signatures(prepared.parsed)
        return prepared

    def _verify_signatures(self, parsed: Sequence[SignedRecord | None]) -> list[Future[list[bool | None]]]:
        """Pool SM2 checks of licence records whose key is known; None = check in sequence."""
        jobs: list[Job | None] = []
        for signed in parsed:
            jobs.append(self._job(signed) if signed is not None else None)
        return [self.submit(jobs[i : i + self.batch]) for i in range(0, len(jobs), self.batch)]

    def _job(self, signed: SignedRecord) -> Job | None:
        record = signed.record
        if record.type in GOVERNANCE_TYPES:
            return None
        agency = self.state.agency(record.agency)
        key = agency.key(record.key_id) if agency else None
        if key is None:
            return None
        for s in signed.signatures:
            if s.key_id == record.key_id:
                x, y = key.public_key.point
                return (record.signed_bytes(), s.sig, x, y)
        return None

    def finish(self, prepared: _Prepared, block_time: datetime | None) -> None:
        """Step 2 for a prepared chunk; ``block_time`` is None when its block header is unreadable."""
        for finding in prepared.findings:
            self.report.add(*finding)
        verified: list[bool | None] = []
        for future in prepared.verdicts:
            try:
                verified += self.result(future)
            except Exception:  # a broken pool must not stop the audit
                # a worker that died (or a pool that broke) decided nothing: those records'
                # signatures are checked in sequence by validate, like any unknown key
                verified += [None] * min(self.batch, len(prepared.rows) - len(verified))
        rows = prepared.rows
        for row, leaf, maybe_signed, ok in zip(rows, prepared.leaves, prepared.parsed, verified, strict=True):
            where = f"entry {row.index}"
            # the leaf goes into the tree whatever it says: the tree commits to bytes
            self.pending_nodes.extend(self.range.append(leaf))
            if maybe_signed is None:
                continue
            signed = maybe_signed
            if ok is False:
                self.report.add(reasons.SIGNATURE_INVALID, where, "record signature does not verify")
                continue
            # 2. re-validate against the replayed state at the block's time
            try:
                # without a readable header the block time is unknown: that block is already a
                # finding, so its records are replayed at their own time (no false time findings)
                now = block_time if block_time is not None else signed.record.time
                change = validate(signed, self.state, index=row.index, now=now, signatures_verified=ok is True)
            except CertLedgerError as exc:
                self.report.add(exc.reason, where, f"record is not valid on replay: {exc}")
                continue
            self.state.apply(change)
            if change.licence is not None:
                self.changed[change.licence.licence_id] = change.licence
            self.report.signatures += len(signed.signatures)
        self.report.entries += len(rows)
        if self.progress is not None:
            self.progress(len(rows))

    # -- step 3 -----------------------------------------------------------------------------

    def block(self, height: int, prev: Block | None, block: Block) -> None:
        """Step 3 before the block's entries: header height, hash link, proposer signature.

        ``height`` is the stored height (the row's key): findings name it, whatever a
        tampered header claims. ``prev`` is None when the previous header was unreadable.
        """
        where = f"block {height}"
        if block.header.height != height:
            self.report.add(reasons.BLOCK_HEADER, where, f"header says height {block.header.height}")
        if prev is not None or height == 0:
            try:
                check_link(prev, block.header)
            except CertLedgerError as exc:
                self.report.add(exc.reason, where, str(exc))
        if height > 0:
            node = self.state.node(block.header.proposer)
            # as apply_block: a removed node proposes no later block, whatever time that block claims
            if node is None or node.removed_at is not None:
                self.report.add(
                    reasons.BLOCK_SIGNATURE, where, f"proposer {block.header.proposer} is not an admitted node"
                )
            else:
                try:
                    block.verify(node.sm2_public_key)
                except CertLedgerError as exc:
                    self.report.add(exc.reason, where, str(exc))

    def block_end(self, height: int, block: Block) -> None:
        where = f"block {height}"
        self.status = self.status.updated(
            (status_key(i), state_value(lic.to_json())) for i, lic in self.changed.items()
        )
        self.changed.clear()
        self.status_roots[self.range.size] = self.status.root
        if self.status.root != block.header.status_root:
            self.report.add(
                reasons.BLOCK_STATUS_ROOT, where, "header status map root differs from the state its entries leave"
            )
        if self.range.size != block.header.tree_size:
            self.report.add(
                reasons.BLOCK_SIZE,
                where,
                f"header says tree size {block.header.tree_size}, entries give {self.range.size}",
            )
            return
        root = self.range.root()
        self.roots[self.range.size] = root
        if root != block.header.tree_root:
            self.report.add(reasons.BLOCK_ROOT, where, "header tree root differs from the root of its entries")
        if height == 0:
            # the genesis block is signed by the node the genesis names: verify now that it is known
            node = self.state.node(block.header.proposer)
            if node is None:
                self.report.add(reasons.BLOCK_SIGNATURE, where, "genesis proposer is not a genesis node")
            else:
                try:
                    block.verify(node.sm2_public_key)
                except CertLedgerError as exc:
                    self.report.add(exc.reason, where, str(exc))

    # -- step 4 -----------------------------------------------------------------------------

    def compare_nodes(self, conn: Any) -> None:
        if not self.pending_nodes:
            return
        stored = self.store.get_node_runs_conn(conn, [k for k, _ in self.pending_nodes])
        for (key, expected), got in zip(self.pending_nodes, stored, strict=True):
            if got is None:
                self.report.add(reasons.TREE_NODE, f"tree node {key}", "stored node is missing")
            elif expected != got:
                self.report.add(reasons.TREE_NODE, f"tree node {key}", "stored node differs from the recomputed node")
        self.pending_nodes.clear()


def _stored_blocks(conn: Any) -> Iterator[tuple[int, Block | CertLedgerError]]:
    """Every stored block by its stored height, or the reason its header cannot be read."""
    pos = 0
    while True:
        rows = conn.execute(
            select(t.blocks.c.height, t.blocks.c.header, t.blocks.c.signature)
            .where(t.blocks.c.height >= pos)
            .order_by(t.blocks.c.height)
            .limit(_CHUNK)
        ).all()
        if not rows:
            return
        for r in rows:
            try:
                yield int(r.height), Block(BlockHeader.from_bytes(bytes(r.header)), bytes(r.signature))
            except CertLedgerError as exc:
                yield int(r.height), exc
        pos = int(rows[-1].height) + 1


def _blocks_with_entries(
    store: SqlStore, conn: Any
) -> Iterator[tuple[int, Block | CertLedgerError, list[EntryRow]]]:
    """Each stored block with its entries.

    Entries are grouped by the block height stored with them, not by the header's
    tree size: a tampered header must not move entries into another block; step 3
    compares the header's size with the entries the block really holds.
    """
    entries = store.iter_entries(conn, chunk=_CHUNK)
    pending: EntryRow | None = None
    for height, block in _stored_blocks(conn):
        rows: list[EntryRow] = []
        if pending is not None:
            if pending.block_height > height:
                yield height, block, rows
                continue
            rows.append(pending)
            pending = None
        for row in entries:
            if row.block_height > height:
                pending = row
                break
            rows.append(row)
        yield height, block, rows


@dataclass(frozen=True)
class _Chunk:
    """Up to _CHUNK entries of one block; ``first``/``last`` mark the block's first and last chunk."""

    height: int
    stored: Block | CertLedgerError
    rows: list[EntryRow]
    first: bool
    last: bool


def _chunks_of_blocks(store: SqlStore, conn: Any) -> Iterator[_Chunk]:
    for height, stored, rows in _blocks_with_entries(store, conn):
        starts = range(0, len(rows), _CHUNK) if rows else range(1)
        for start in starts:
            yield _Chunk(height, stored, rows[start : start + _CHUNK], start == 0, start + _CHUNK >= len(rows))


def _replay_chunk(
    replay: _Replay, report: AuditReport, conn: Any, prev: Block | None, chunk: _Chunk, prepared: _Prepared
) -> Block | None:
    """Steps 2-4 for one prepared chunk, in ledger order; returns the block to link the next one to."""
    height = chunk.height
    block = chunk.stored if isinstance(chunk.stored, Block) else None
    if chunk.first:
        if isinstance(chunk.stored, CertLedgerError):
            report.add(chunk.stored.reason, f"block {height}", f"block header cannot be read: {chunk.stored}")
        elif height > 0:
            replay.block(height, prev, chunk.stored)
        if block is not None and chunk.rows and chunk.rows[0].index != block.header.first_index:
            report.add(
                reasons.BLOCK_SIZE,
                f"entry {chunk.rows[0].index}",
                f"block {height} should start at entry {block.header.first_index}",
            )
    if chunk.rows:
        replay.finish(prepared, block.header.time if block else None)
        replay.compare_nodes(conn)
    if not chunk.last:
        return prev
    if block is not None:
        if height == 0:
            replay.block(0, None, block)
        replay.block_end(height, block)
    report.blocks += 1
    return block


def audit(
    store: SqlStore,
    *,
    progress: Callable[[int], None] | None = None,
    workers: int | None = None,
    processes: bool | None = None,
) -> AuditReport:
    """Replay-verify the whole ledger; the report lists findings, first bad place first.

    ``processes``: verify signatures in worker processes (True), threads (False), or
    processes from :data:`PROCESS_MIN_ENTRIES` entries on (None). The findings are the same.
    """
    # The replay allocates millions of objects that live to the end (the rebuilt state) and
    # forms no reference cycles: the cyclic collector would rescan the growing heap again and
    # again (measured: 10-20 % of a large audit). Paused for the audit, as one pauses it for
    # a bulk load; other threads' cycles wait until it ends.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _audit(store, progress, workers, processes)
    finally:
        if collecting:
            gc.enable()


def _audit(
    store: SqlStore, progress: Callable[[int], None] | None, workers: int | None, processes: bool | None
) -> AuditReport:
    report = AuditReport()
    started = time.perf_counter()
    with store.read() as conn:
        stored_size = store.tree_size(conn)
    if processes is None:
        processes = stored_size >= PROCESS_MIN_ENTRIES
    replay = _Replay(store, report, progress, workers or min(4, os.cpu_count() or 2), processes)
    try:
        with store.read() as conn:
            report.origin = store.meta_get(conn, "origin") or ""
            prev: Block | None = None
            # one chunk is prepared (parsed, its signatures queued in the pool) ahead of the
            # one being replayed: the pool's SM2 checks overlap the sequential replay
            ahead: deque[tuple[_Chunk, _Prepared]] = deque()
            for chunk in _chunks_of_blocks(store, conn):
                ahead.append((chunk, replay.prepare(chunk.rows)))
                # the genesis block is replayed at once: its agencies' keys let the next
                # chunk's signatures go to the pool instead of being checked in sequence
                if len(ahead) > replay.ahead or chunk.height == 0:
                    prev = _replay_chunk(replay, report, conn, prev, *ahead.popleft())
            while ahead:
                prev = _replay_chunk(replay, report, conn, prev, *ahead.popleft())
            size = store.tree_size(conn)
            if size != replay.range.size:
                report.add(
                    reasons.BLOCK_SIZE,
                    f"entry {replay.range.size}",
                    f"{size - replay.range.size} entries are not covered by any block",
                )
            report.tree_size = replay.range.size
            report.root = replay.range.root().hex()
            _checkpoints(conn, replay, report)
            _derived(conn, replay, report)
            report.licences = {}
            for lic in replay.state.licences.values():
                report.licences[str(lic.status)] = report.licences.get(str(lic.status), 0) + 1
            report.evidence = store.evidence(conn)
    finally:
        replay.close()
    report.seconds = time.perf_counter() - started
    return report


def _stored_checkpoints(conn: Any) -> Iterator[tuple[int, bytes | str]]:
    note = t.checkpoints.c.note
    # SQLite decodes TEXT as UTF-8 in the driver, and one bad row would fail the whole read:
    # read the raw bytes, so a note that is not UTF-8 is a finding at its checkpoint
    column = cast(note, LargeBinary) if conn.dialect.name == "sqlite" else note
    query = select(t.checkpoints.c.tree_size, column.label("note")).order_by(t.checkpoints.c.tree_size)
    for row in conn.execute(query):
        yield int(row.tree_size), row.note


def _checkpoints(conn: Any, replay: _Replay, report: AuditReport) -> None:
    # 5. every stored checkpoint: signed by an admitted node, root = recomputed root
    verifiers = checkpoint_verifiers(report.origin, replay.state.nodes.values())
    for size, note in _stored_checkpoints(conn):
        where = f"checkpoint {size}"
        try:
            opened = open_checkpoint(note, verifiers, origin=report.origin)
        except CertLedgerError as exc:
            report.add(reasons.CHECKPOINT_SIGNATURE, where, f"checkpoint does not verify: {exc}")
            continue
        if opened.note.unverified:
            # a node stores only notes it signed itself: a line no admitted node key verifies
            # is not noise here but a changed (or foreign) signature
            report.add(reasons.CHECKPOINT_SIGNATURE, where,
                       f"note carries {len(opened.note.unverified)} signature(s) no admitted node key verifies")
        if opened.checkpoint.size != size:
            report.add(reasons.CHECKPOINT_ROOT, where, f"note says size {opened.checkpoint.size}")
        expected = replay.roots.get(opened.checkpoint.size)
        if expected is None:
            report.add(reasons.CHECKPOINT_ROOT, where, "no block ends at this tree size")
        elif opened.checkpoint.root_hash != expected:
            report.add(reasons.CHECKPOINT_ROOT, where, "checkpoint root differs from the recomputed root")
        try:
            status_root = root_from_extensions(opened.checkpoint.extensions)
        except CertLedgerError as exc:
            report.add(reasons.CHECKPOINT_STATUS_ROOT, where, str(exc))
        else:
            if status_root is None:
                report.add(reasons.CHECKPOINT_STATUS_ROOT, where, "checkpoint carries no status map root")
            elif status_root != replay.status_roots.get(opened.checkpoint.size):
                report.add(reasons.CHECKPOINT_STATUS_ROOT, where, "status map root differs from the replayed state")
        report.checkpoints += 1


def _derived(conn: Any, replay: _Replay, report: AuditReport) -> None:
    # 6. derived tables equal the replayed state; stored licence rows are streamed (a
    # million-entry ledger would otherwise hold every licence twice more in memory)
    rebuilt = replay.state.licences
    seen: set[str] = set()
    differ: list[str] = []
    for r in conn.execute(select(t.st_licences.c.licence_id, t.st_licences.c.data)):
        lid = str(r.licence_id)
        seen.add(lid)
        lic = rebuilt.get(lid)
        if lic is None:
            differ.append(lid)
            continue
        # rows are written as state_json: equal text is the common case and needs no parse
        expected = lic.to_json()
        if r.data != state_json(expected) and json.loads(r.data) != expected:
            differ.append(lid)
    differ += [lid for lid in rebuilt if lid not in seen]
    for lid in sorted(differ):
        report.add(
            reasons.STATE_DERIVED,
            f"licence {lid}",
            "stored licence state differs from replay (run `certledger rebuild`)",
        )
    stored_ag = {str(r.agency_id): json.loads(r.data) for r in conn.execute(select(t.st_agencies))}
    rebuilt_ag = {k: v.to_json() for k, v in replay.state.agencies.items()}
    if stored_ag != rebuilt_ag:
        report.add(reasons.STATE_DERIVED, "agency registry", "stored agency registry differs from replay")

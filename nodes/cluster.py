"""A department node in a cluster: ordering through etcd, replication, cosigning.

etcd (Raft) is the only ordering engine; certledger adds no consensus of its
own. Keys under ``/certledger/<origin>/``:

    leader                  node id, attached to a lease (leader election)
    reject/<record hash>    why the leader refused it (short lease)
    block/<height>          a signed block with its entries (create-only: one block per height)
    cosig/<height>/<node>   a node's signed checkpoint for that block

Submissions do not pass through etcd: the node that accepts one keeps it and
hands it to the leader over the leader's API (``POST /v1/cluster/submissions``),
again after a leader change or when it is not in a block soon; the leader
keeps what it is handed in memory until a block holds it. A submission is
acknowledged only once its block is in etcd (and, by default, final), so a
leader that dies loses nothing acknowledged (ADR 0015).

Every node — the leader too — applies blocks only from etcd, in height
order, re-validating every entry and the block itself (``Ledger.apply_block``)
before writing it to its own store, and then publishes its signed checkpoint.
A checkpoint is final when the genesis quorum of distinct nodes signed the
same tree head (ADR 0009). A block that fails validation, or a signed
checkpoint that disagrees with this node's for the same size, is refused,
logged, counted and kept as evidence.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import struct
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import httpx
import structlog
from sqlalchemy import select

from ledger import reasons
from ledger.blocks import Block, BlockHeader
from ledger.checkpoint import Checkpoint, open_checkpoint, verify_quorum
from ledger.identity import checkpoint_verifiers, note_key_name
from ledger.merkle.verify import verify_consistency
from ledger.records import GOVERNANCE_TYPES, SignedRecord
from ledger.sequencer import Acknowledgement, OverloadedError
from ledger.service import Accepted, BatchResult, Ledger
from ledger.state import Node
from ledger.statusmap import extension_line, root_from_extensions
from ledger.store import schema
from nodes.etcd import Etcd, KeyValue, WatchCompacted, prefix_end
from nodes.handon_ticket import TICKET_HEADER, TICKET_LIFETIME, UNAUTHENTICATED, TicketCheck, issue_ticket
from signing.errors import (
    AuthorizationError,
    CertLedgerError,
    ConflictError,
    InvalidInputError,
    TransportError,
    VerificationError,
)
from signing.note.model import Verifier

_log = structlog.get_logger("certledger.cluster")
#: blocks per etcd range when reading what etcd holds (a block can be ~1 MB)
_RANGE_PAGE = 50
#: record hashes per ``IN (...)`` query (well under SQLite's and PostgreSQL's bound-parameter limits)
_IN_CHUNK = 500
#: recent blocks whose (size, root) are kept in memory for checking cosignatures
_HEADS_KEPT = 256
#: blocks fetched from a peer per round of catch-up
_CATCHUP_CHUNK = 32
#: decimal digits of the height in block/ and cosig/ keys (_height_key); any other key is not ours
_HEIGHT_DIGITS = 12
#: heights whose cosignatures may wait for their block at once (a node restarting far behind
#: finds those of the whole window in etcd); when full, the furthest height gives way
_PARK_HEIGHTS = 4096
#: a cosignature note longer than this is not a checkpoint of ours (three lines and a few signatures)
_MAX_COSIG_NOTE = 16 * 1024
#: alarms kept in memory for the API (every one is also stored as evidence)
_ALARMS_KEPT = 1000


@dataclass
class ClusterSettings:
    etcd_endpoints: list[str]
    peers: list[str] = field(default_factory=list)
    max_batch: int = 500
    #: how long the leader waits for more submissions once one is pending (0: propose at once; the
    #: block pipeline batches by itself — submissions queue while the previous block is applied)
    batch_wait: float = 0.0
    #: the leader proposes a block that is not full only while fewer than this many of its blocks
    #: wait for their quorum (adaptive batching: under load blocks grow instead of multiplying,
    #: idle a submission is proposed at once; a hold lasts at most _HOLD_MAX)
    max_unfinal_blocks: int = 1
    lease_ttl: int = 2
    #: blocks kept in etcd behind the last final one (catch-up beyond this uses peers)
    window: int = 2000
    submit_timeout: float = 15.0
    #: acknowledge only once the checkpoint holding the record is final (quorum-cosigned)
    wait_final: bool = True


class _Cosig(NamedTuple):
    """Another node's signed checkpoint for one of our blocks, waiting to be checked."""

    tree_size: int
    signer: str
    note: str
    #: our (tree root, status map root) at that size when known in memory (else read from our
    #: stored checkpoint)
    own_roots: tuple[bytes, bytes] | None


@dataclass
class _Waiter:
    future: Future[Acknowledgement]
    created: float


class ClusterNode:
    """Runs the election, proposer, applier and cosignature collector threads of one node."""

    def __init__(self, ledger: Ledger, settings: ClusterSettings, *, genesis: SignedRecord) -> None:
        if ledger.identity is None:
            raise InvalidInputError("a cluster node needs its keys", reason="node.keys_missing")
        self.ledger = ledger
        self.settings = settings
        self.genesis = genesis
        self.node_id = ledger.identity.node_id
        self.origin = genesis.record.origin
        self.prefix = f"/certledger/{self.origin}/".encode()
        self.etcd = Etcd(settings.etcd_endpoints)
        self._stop = threading.Event()
        self._lease = 0
        self.is_leader = False
        self.leader_id = ""
        self.etcd_height = -1
        self.final_size = 0
        #: the latest alarms (each one is also stored as evidence, which audit reports)
        self.alarms: deque[dict[str, Any]] = deque(maxlen=_ALARMS_KEPT)
        self._waiters: dict[str, list[_Waiter]] = {}
        self._waiters_lock = threading.Lock()
        self._applied = threading.Condition()
        #: height -> signer -> note: cosignatures for blocks not applied here yet
        self._pending_cosigs: dict[int, dict[str, str]] = {}
        #: guards _pending_cosigs together with "is block h applied?" so no cosignature is parked forever
        self._pending_lock = threading.Lock()
        #: one block is applied at a time, whether it came from the watch, the proposer or a peer
        self._apply_lock = threading.RLock()
        #: submissions accepted here, not yet handed to the leader (the submitter thread does that)
        self._outbox: dict[str, bytes] = {}
        self._outbox_cv = threading.Condition()
        #: submissions accepted here and not yet in a block we applied: hash -> (bytes, leader
        #: handed to, when). Handed again to a new leader, or when no block holds them soon.
        self._inflight: dict[str, tuple[bytes, str, float]] = {}
        self._inflight_lock = threading.Lock()
        #: leader only: submissions handed to us, in arrival order, until a block holds them
        self._queue: dict[str, SignedRecord] = {}
        self._queue_bytes = 0
        self._queue_lock = threading.Lock()
        #: set when something is added to _queue (wakes the proposer)
        self._submitted = threading.Event()
        self._forward_http = httpx.Client(timeout=_FORWARD_TIMEOUT)
        #: leader -> (ticket header, expiry) we hand submissions to it with (ADR 0017)
        self._tickets: dict[str, tuple[str, int]] = {}
        #: the leader's side: which node a hand-on comes from
        self._ticket_check = TicketCheck(self.node_id)
        #: (kind, height/size, ...) of alarms already raised: a block retried forever is reported once
        self._alarmed: set[tuple[Any, ...]] = set()
        self._verifier_cache: dict[tuple[str, str, bytes, bytes], list[Verifier]] = {}
        #: our signed checkpoints waiting to be published as cosig/<height>/<us> (one txn for all)
        self._cosig_out: dict[int, str] = {}
        self._cosig_out_cv = threading.Condition()
        #: applied records whose submitters wait for finality: hash -> (accepted, block, note)
        self._unfinal: dict[str, tuple[Accepted, Block, str]] = {}
        self._threads: list[threading.Thread] = []
        self._height = self._stored_height()
        #: (origin, admitted nodes, threshold), re-read after a block with a governance record
        self._policy: tuple[str, list[Node], int] | None = None
        #: moved on whenever _policy is reset: a policy read from the store while a governance block
        #: was being applied is not cached (see _quorum)
        self._policy_generation = 0
        #: cosignatures verified but not stored (the store refused the transaction): taken again
        #: with the collector's next batch
        self._cosig_retry: list[_Cosig] = []
        #: tree size -> nodes whose matching cosignature we hold (finality is decided from this)
        self._cosigners: dict[int, set[str]] = {}
        self._cosigners_lock = threading.Lock()
        #: height -> (tree size, root) of recently applied blocks: cosignatures are checked against these
        self._heads: dict[int, tuple[int, bytes, bytes]] = {}

    # -- keys -----------------------------------------------------------------------------

    def _k(self, *parts: str) -> bytes:
        return self.prefix + "/".join(parts).encode()

    @staticmethod
    def _height_key(height: int) -> str:
        return f"{height:012d}"

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        with contextlib.suppress(CertLedgerError):
            self.final_size = self.ledger.latest_checkpoint()[0]  # what was final when we stopped
        for name, target in (
            ("applier", self._applier),
            ("cosigs", self._cosig_collector),
            ("elector", self._elector),
            ("proposer", self._proposer),
            ("janitor", self._janitor),
            ("submitter", self._submitter),
            ("publisher", self._publisher),
            ("rejects", self._reject_watcher),
            ("expirer", self._expirer),
        ):
            thread = threading.Thread(target=self._guard(name, target), name=f"cluster-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        self._submitted.set()
        with self._applied:
            self._applied.notify_all()
        with self._outbox_cv:
            self._outbox_cv.notify_all()
        with self._cosig_out_cv:
            self._cosig_out_cv.notify_all()
        for thread in self._threads:
            thread.join(timeout=5)
        if self.is_leader and self._lease:
            with contextlib.suppress(CertLedgerError):
                self.etcd.revoke(self._lease)
        self.etcd.close()
        self._forward_http.close()

    def _guard(self, name: str, target: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            while not self._stop.is_set():
                try:
                    target()
                    return
                except Exception as exc:
                    _log.warning("cluster loop failed; restarting", loop=name, error=f"{type(exc).__name__}: {exc}")
                    self._stop.wait(0.5)

        return run

    def local_height(self) -> int:
        """The height of our latest block (kept in memory: only this node writes its store)."""
        return self._height

    def _stored_height(self) -> int:
        with self.ledger.store.read() as conn:
            block = self.ledger.store.latest_block(conn)
        return -1 if block is None else block.height

    # -- election -------------------------------------------------------------------------

    def _elector(self) -> None:
        key = self._k("leader")
        while not self._stop.is_set():
            # while another node leads, its lease (2 s) bounds how soon we could take over: poll slowly
            interval = 0.2
            try:
                current = self.etcd.get(key)
                self.leader_id = current.value.decode() if current else ""
                if current is not None:
                    interval = 0.5
                if current is None:
                    lease = self.etcd.grant(self.settings.lease_ttl)
                    created, _ = self.etcd.create(key, self.node_id.encode(), lease=lease)
                    if created:
                        self._lease, self.is_leader, self.leader_id = lease, True, self.node_id
                        _log.info("became leader", node=self.node_id)
                        self._keep_leadership()
                    else:
                        self.etcd.revoke(lease)
            except CertLedgerError as exc:
                _log.info("election round failed", error=str(exc))
            self.is_leader = False
            self._stop.wait(interval)

    def _keep_leadership(self) -> None:
        interval = max(0.2, self.settings.lease_ttl / 4)
        while not self._stop.is_set():
            try:
                if self.etcd.keepalive(self._lease) <= 0:
                    break
            except CertLedgerError:
                break
            self._stop.wait(interval)
        _log.info("leadership lost", node=self.node_id)
        self.is_leader = False
        with self._queue_lock:
            # the submitting nodes hand what was queued here to the next leader
            self._queue.clear()
            self._queue_bytes = 0

    # -- proposer (leader only) -----------------------------------------------------------

    def _proposer(self) -> None:
        while not self._stop.is_set():
            if not self.is_leader:
                self._stop.wait(0.05)
                continue
            if self.local_height() < self.etcd_height:
                # propose only on top of everything etcd holds: wait for the applier
                with self._applied:
                    self._applied.wait(0.05)
                continue
            self._hold_for_finality()
            self._submitted.clear()  # a submission arriving from now on wakes the wait below
            try:
                proposed = self._propose_once()
            except CertLedgerError as exc:
                _log.info("proposal round failed", error=str(exc))
                proposed = False
                self._stop.wait(0.1)
            if not proposed:
                # nothing pending: sleep until the submit/ watch sees one (the timeout is a safety net)
                self._submitted.wait(0.5)

    def _unfinal_blocks(self) -> int:
        with self._pending_lock:
            return sum(1 for size, _, _ in self._heads.values() if size > self.final_size)

    def _hold_for_finality(self) -> None:
        """Wait (bounded) while our earlier blocks are not final yet and the next one would not be full.

        Every block costs the cluster the same fixed work (a block signature and its 4 checks,
        4 checkpoint signatures, 12 cosignature checks, a transaction on every node), so under
        load fewer, larger blocks carry more records on the same CPUs; the records wait no longer
        than the quorum takes to cosign the previous block.
        """
        started = time.monotonic()
        while (
            not self._stop.is_set()
            and self.is_leader
            and len(self._queue) < self.settings.max_batch
            and self._unfinal_blocks() >= self.settings.max_unfinal_blocks
            and time.monotonic() - started < _HOLD_MAX
        ):
            with self._applied:
                self._applied.wait(0.01)

    def _propose_once(self) -> bool:
        local = self.local_height()
        if local < 0:
            return self._propose([self.genesis], [])
        pending = self._peek_queue()
        if not pending:
            return False
        if len(pending) < self.settings.max_batch and self.settings.batch_wait > 0:
            self._stop.wait(self.settings.batch_wait)
            pending = self._peek_queue()
        # a record already in the log (handed to us again by a node that had not yet applied the
        # block holding it) is not proposed again: that node acknowledges it when it applies the block
        committed = _committed(self.ledger, [h for h, _ in pending])
        records, hashes, drop = _take_pending(pending, committed, _BLOCK_ENTRY_BYTES)
        self._dequeue(drop)
        if not records:
            return bool(drop)
        return self._propose(records, hashes)

    def _propose(self, records: list[SignedRecord], hashes: list[str]) -> bool:
        proposal = self.ledger.propose(records)
        refused = [r for r in proposal.rejected if r.position < len(hashes)]
        if refused:
            # one applied between our committed check and the proposal (two leaders overlapping) is
            # refused as a replay, but it is in the log: its submitters get the block, not a rejection
            committed = _committed(self.ledger, [hashes[r.position] for r in refused])
            self._reject([(hashes[r.position], r.error) for r in refused if hashes[r.position] not in committed])
            self._dequeue([hashes[r.position] for r in refused])
        if proposal.block is not None:
            height = proposal.block.height
            value = _encode_block(proposal.block, proposal.entries)
            key = self._k("block", self._height_key(height))
            created, existing = self.etcd.create(key, value)
            if not created and (existing is None or existing.value != value):
                # this height was taken (our view was stale, or a leader whose lease we have not yet
                # seen expire wrote it): apply what etcd holds and propose again on top of it. If we
                # lost the lease, the keep-alive notices and we step down there.
                _log.warning("block height taken by another proposer", height=height)
                if existing is None:
                    return False
                self._apply_kvs([existing])
                return True  # propose again at once, on top of it
            # the block is in etcd: what it holds leaves the queue (a leader dying before this line
            # loses only its queue, which the submitting nodes hand to the next leader)
            self._dequeue(hashes)
            # apply our own block now rather than when the watch echoes it back (it is the same
            # value etcd holds, and goes through the same apply_block checks)
            self._apply_kvs([KeyValue(key, value, 0, 0, 0)])
        return proposal.block is not None or bool(refused)

    # -- the leader's queue -----------------------------------------------------------------

    def enqueue(self, records: list[SignedRecord]) -> None:
        """Take submissions handed to us (by our own submitter or another node's) for the next blocks.

        ConflictError if we are not the leader (the caller hands them to the one that is);
        OverloadedError if the queue is full (the caller tries again shortly). A record already
        queued is queued once.
        """
        if not self.is_leader:
            raise ConflictError(f"{self.node_id} is not the leader", reason="cluster.not_leader")
        added = 0
        with self._queue_lock:
            if len(self._queue) >= _QUEUE_MAX_RECORDS or self._queue_bytes >= _QUEUE_MAX_BYTES:
                raise OverloadedError("the leader's queue is full; hand the submissions again shortly")
            for record in records:
                record_hash = record.record.record_hash()
                if record_hash not in self._queue:
                    self._queue[record_hash] = record
                    self._queue_bytes += len(record.entry_bytes())
                    added += 1
        if added:
            self._submitted.set()

    def _peek_queue(self) -> list[tuple[str, SignedRecord]]:
        """The oldest ``max_batch`` queued submissions (they stay queued until a block holds them)."""
        with self._queue_lock:
            return list(itertools.islice(self._queue.items(), self.settings.max_batch))

    def _dequeue(self, hashes: list[str]) -> None:
        with self._queue_lock:
            for record_hash in hashes:
                record = self._queue.pop(record_hash, None)
                if record is not None:
                    self._queue_bytes -= len(record.entry_bytes())

    def _reject(self, rejections: list[tuple[str, CertLedgerError]]) -> None:
        """Tell the submitters why (a short-lived key per record, all under one lease)."""
        if not rejections:
            return
        lease = self.etcd.grant(60)
        self.etcd.put_many(
            [
                (
                    self._k("reject", record_hash),
                    json.dumps({"reason": exc.reason, "message": str(exc), "family": type(exc).__name__}).encode(),
                )
                for record_hash, exc in rejections
            ],
            lease=lease,
        )

    # -- applier (every node) -------------------------------------------------------------

    def _applier(self) -> None:
        self._publish_own_cosig()
        while not self._stop.is_set():
            # what etcd holds from our next height on, a page at a time (blocks can be large)
            revision = 0
            while not self._stop.is_set():
                page, revision = self.etcd.range_at(
                    self._k("block", self._height_key(self.local_height() + 1)),
                    prefix_end(self._k("block/")),
                    limit=_RANGE_PAGE,
                )
                self._apply_kvs(page)  # a gap before the first block etcd still holds is fetched from peers
                if len(page) < _RANGE_PAGE:
                    break
            try:
                # from just after the revision the last page reflects: no block can slip in between
                for _rev, events in self.etcd.watch(self._k("block/"), revision + 1, self._stop.is_set):
                    self._apply_kvs([ev.kv for ev in events if ev.kind == "PUT"])
            except WatchCompacted:
                continue

    def _apply_kvs(self, kvs: list[KeyValue]) -> None:
        # keys come from etcd, which any node (or operator) can write: one this code never writes
        # (block/<12 digits>) is skipped, never allowed to stop the applier
        numbered = [(h, kv) for kv in kvs if (h := self._block_height_of(kv.key)) is not None]
        for height, kv in sorted(numbered, key=lambda item: item[0]):
            with self._apply_lock:
                local = self.local_height()
                if height <= local:
                    self._check_same_block(height, kv.value)
                    continue
                if height > local + 1:
                    # a gap. A block far ahead must at least be a block its proposer signed before it
                    # sends us to peers for everything in between (or holds the proposer back)
                    if not self._plausible_block(height, kv.value):
                        continue
                    self.etcd_height = max(self.etcd_height, height)
                    # fetch the missing heights from etcd, or from peers if etcd no longer has them
                    missing = self.etcd.range(
                        self._k("block", self._height_key(local + 1)), self._k("block", self._height_key(height))
                    )
                    first = min((h for k in missing if (h := _height_of(k.key)) is not None), default=None)
                    if first != local + 1:
                        self._catch_up_from_peers(local + 1, first if first is not None else height)
                    self._apply_kvs(missing)
                    if self.local_height() != height - 1:
                        continue
                self.etcd_height = max(self.etcd_height, height)
                self._apply_one(height, kv.value)

    def _block_height_of(self, key: bytes) -> int | None:
        height = _height_of(key)
        if height is None:
            self._alarm("foreign_key", {"key": key.decode("utf-8", "replace")[:300]}, key=("foreign_key", key[:300]))
        return height

    def _plausible_block(self, height: int, value: bytes) -> bool:
        """Whether a block above our next height decodes, says its height and, if we know its proposer, is signed."""
        try:
            block = _decode_header(value)
            if block.height != height:
                raise VerificationError(f"block stored at height {height} says {block.height}", reason="block.header")
            policy = self._quorum()
            node = next((n for n in policy[1] if n.id == block.header.proposer), None) if policy else None
            if node is not None:  # a node admitted after our height is checked when its block is applied
                block.verify(node.sm2_public_key)
        except CertLedgerError as exc:
            self._invalid_etcd_block(height, value, exc)
            return False
        return True

    def _invalid_etcd_block(self, height: int, value: bytes, exc: CertLedgerError) -> None:
        """Alarm once for a value under block/<height> that is no block its named proposer signed."""
        self._alarm(
            "invalid_block",
            {"height": height, "reason": exc.reason, "message": str(exc), "block": base64.b64encode(value).decode()},
            key=("invalid_block", height, value),
        )

    def _apply_one(self, height: int, value: bytes) -> None:
        try:
            block, entries = _decode_block(value)
            if block.height != height:
                raise VerificationError(f"block stored at height {height} says {block.height}", reason="block.header")
            result = self.ledger.apply_block(block, entries)
        except CertLedgerError as exc:
            self._alarm(
                "invalid_block",
                {
                    "height": height,
                    "reason": exc.reason,
                    "message": str(exc),
                    "block": base64.b64encode(value).decode(),
                },
                key=("invalid_block", height, value),
            )
            raise
        self._applied_block(block, result, publish=True, governance=_has_governance(entries))

    def _applied_block(self, block: Block, result: BatchResult, *, publish: bool, governance: bool) -> None:
        """After a block is in our store: publish our checkpoint, answer submitters, take parked cosignatures."""
        note = result.checkpoint or ""
        self._height = max(self._height, block.height)
        self.etcd_height = max(self.etcd_height, block.height)
        with self._pending_lock:
            # apply_block checked that our tree has the header's size and root, and our checkpoint says so
            self._heads[block.height] = (block.header.tree_size, block.header.tree_root, block.header.status_root)
            for h in [h for h in self._heads if h < block.height - _HEADS_KEPT]:
                del self._heads[h]
        if governance:
            self._policy = None  # nodes may have been admitted or removed
            self._policy_generation += 1
        if publish:
            with self._cosig_out_cv:
                self._cosig_out[block.height] = note
                self._cosig_out_cv.notify()
        with self._applied:
            self._applied.notify_all()
        self._resolve(result.accepted, block, note)
        with self._pending_lock:
            parked = self._pending_cosigs.pop(block.height, {})
            for h in [h for h in self._pending_cosigs if h < block.height]:
                del self._pending_cosigs[h]  # cosignatures of heights we skipped over (caught up from peers)
        self._take_cosigs(
            [
                _Cosig(block.header.tree_size, signer, note, (block.header.tree_root, block.header.status_root))
                for signer, note in parked.items()
            ]
        )
        policy = self._quorum()
        if policy is not None and policy[2] <= 1:
            self._advance_final()  # a quorum of one: our own checkpoint is final, no cosignature will say so

    def _publisher(self) -> None:
        """Publish our checkpoints off the apply path: applying the next block need not wait for etcd."""
        while not self._stop.is_set():
            with self._cosig_out_cv:
                while not self._cosig_out and not self._stop.is_set():
                    self._cosig_out_cv.wait(0.5)
                batch = sorted(self._cosig_out.items())
                self._cosig_out.clear()
            if not batch:
                continue
            try:
                self.etcd.put_many(
                    [(self._k("cosig", self._height_key(h), self.node_id), note.encode()) for h, note in batch]
                )
            except CertLedgerError as exc:
                _log.info("cannot publish checkpoints yet", error=str(exc))
                with self._cosig_out_cv:
                    for h, note in batch:
                        self._cosig_out.setdefault(h, note)
                self._stop.wait(0.2)

    def _publish_own_cosig(self) -> None:
        """Announce our latest signed checkpoint again (a crash may have come between storing and publishing)."""
        with self.ledger.store.read() as conn:
            block = self.ledger.store.latest_block(conn)
            own = self.ledger.store.checkpoint(conn, block.header.tree_size) if block is not None else None
        if block is not None and own is not None:
            self.etcd.put(self._k("cosig", self._height_key(block.height), self.node_id), own[1].encode())

    def _check_same_block(self, height: int, value: bytes) -> None:
        try:
            block = _decode_header(value)  # the entries are covered by the header's root: no need to parse them
        except CertLedgerError as exc:
            self._alarm("invalid_block", {"height": height, "reason": exc.reason}, key=("invalid_block", height, value))
            return
        local = self.ledger.block(height)
        if local is None or local.hash() == block.hash():
            return
        policy = self._quorum()
        node = next((n for n in policy[1] if n.id == block.header.proposer), None) if policy else None
        try:
            if node is None:
                raise VerificationError(
                    f"proposer {block.header.proposer} is not an admitted node", reason="block.signature"
                )
            block.verify(node.sm2_public_key)
        except CertLedgerError as exc:
            # not signed by the node it names: junk in etcd, not evidence against that node
            self._invalid_etcd_block(height, value, exc)
            return
        # the proposer signed two different blocks for one height: proof of a fork
        self._alarm(
            "fork",
            {"height": height, "local": local.to_json(), "etcd": block.to_json()},
            key=("fork", height, block.hash()),
        )

    def _catch_up_from_peers(self, start: int, end: int) -> None:
        """Fetch blocks [start, end) from peers' APIs; every block is re-validated by apply_block.

        Block headers are fetched a chunk at a time in parallel and the chunk's
        entries in pages of /v1/entries, so catching up costs a few round trips
        per chunk rather than two per block.
        """
        _log.info("catching up from peers", start=start, end=end)
        for peer in self.settings.peers:
            try:
                with httpx.Client(timeout=10) as http, ThreadPoolExecutor(8) as pool:
                    while self.local_height() + 1 < end and not self._stop.is_set():
                        first = self.local_height() + 1
                        heights = range(first, min(end, first + _CATCHUP_CHUNK))
                        blocks = list(pool.map(_fetch_block, [http] * len(heights), [peer] * len(heights), heights))
                        base = blocks[0].header.first_index
                        if base != self._tree_size():
                            raise TransportError(
                                f"peer's block {first} does not start at our tree size", reason="catchup.partial"
                            )
                        # before anything is applied: the tree head the chunk ends in is one the quorum signed
                        self._check_quorum_head(http, peer, blocks[-1])
                        entries = _fetch_entries(http, peer, base, blocks[-1].header.tree_size)
                        for block in blocks:
                            own = entries[block.header.first_index - base : block.header.tree_size - base]
                            # the same checks as a block from etcd: link, proposer signature, every entry, root
                            with self._apply_lock:
                                try:
                                    result = self.ledger.apply_block(block, own)
                                except VerificationError as exc:
                                    self._alarm(
                                        "invalid_block",
                                        {
                                            "height": block.height,
                                            "peer": peer,
                                            "reason": exc.reason,
                                            "message": str(exc),
                                            "block": block.to_json(),
                                        },
                                        key=("invalid_block", block.height, block.hash()),
                                    )
                                    raise
                                # cosignatures of old heights are of no use to anyone: publish only the newest
                                self._applied_block(
                                    block, result, publish=block.height == end - 1, governance=_has_governance(own)
                                )
                return
            except Exception as exc:  # a peer's answers are hostile input: on any failure try the next peer
                _log.warning("catch-up from peer failed", peer=peer, error=f"{type(exc).__name__}: {exc}")
        raise TransportError(
            f"cannot catch up blocks {start}..{end - 1}: no peer could serve them", reason="catchup.failed"
        )

    def _tree_size(self) -> int:
        block = self.ledger.block(self.local_height()) if self.local_height() >= 0 else None
        return block.header.tree_size if block is not None else 0

    def _check_quorum_head(self, http: httpx.Client, peer: str, block: Block) -> None:
        """Refuse a peer's block unless the quorum signed the tree head it claims (DESIGN §5).

        The peer's note for exactly that tree size, if it carries the quorum's signatures;
        otherwise its latest final checkpoint and a consistency proof from the block's head to it.
        """
        policy = self._quorum()
        if policy is None:
            raise TransportError("no quorum policy to check a peer's blocks with", reason="catchup.unverified")
        origin, nodes, threshold = policy
        verifiers = [v for n in nodes for v in self._verifiers(origin, n)]
        names = [note_key_name(origin, n.id) for n in nodes]
        size, root = block.header.tree_size, block.header.tree_root

        def quorum_head(note: str) -> Checkpoint:
            opened = open_checkpoint(note, verifiers, origin=origin)
            verify_quorum(opened, names, threshold)
            return opened.checkpoint

        resp = http.get(f"{peer}/v1/checkpoint", params={"size": size})
        if resp.status_code == 200:
            with contextlib.suppress(CertLedgerError):  # not cosigned by the quorum at this size: see below
                head = quorum_head(resp.text)
                if head.size == size and head.root_hash == root:
                    return
        resp = http.get(f"{peer}/v1/checkpoint")
        resp.raise_for_status()
        final = quorum_head(resp.text)
        if final.size < size:
            raise TransportError(
                f"peer's final checkpoint (size {final.size}) does not cover block {block.height} yet",
                reason="catchup.unverified",
            )
        if final.size == size:
            if final.root_hash != root:
                raise VerificationError(
                    f"block {block.height}: its tree root is not the quorum's at size {size}", reason="checkpoint.fork"
                )
            return
        resp = http.get(f"{peer}/v1/proofs/consistency", params={"first": size, "second": final.size})
        resp.raise_for_status()
        path = [bytes.fromhex(h) for h in resp.json()["path"]]
        verify_consistency(self.ledger.hasher, size, final.size, root, final.root_hash, path)

    # -- cosignatures -----------------------------------------------------------------------

    def _cosig_collector(self) -> None:
        while not self._stop.is_set():
            revision = self.etcd.current_revision()
            self._take_cosigs([c for c in map(self._cosig_kv, self.etcd.prefix(self._k("cosig/"))) if c is not None])
            try:
                for _rev, events in self.etcd.watch(self._k("cosig/"), revision + 1, self._stop.is_set):
                    # one watch response's cosignatures are verified, then stored in one transaction
                    found = [self._cosig_kv(ev.kv) for ev in events if ev.kind == "PUT"]
                    with self._pending_lock:
                        retry, self._cosig_retry = self._cosig_retry, []
                    self._take_cosigs(retry + [c for c in found if c is not None])
            except WatchCompacted:
                continue  # history compacted while we were away: list what is there again

    def _cosig_kv(self, kv: KeyValue) -> _Cosig | None:
        """The cosignature ``kv`` holds, ready to check; None if it is ours, malformed, or parked."""
        # keys come from etcd, which any node (or operator) can write: one that is not
        # cosig/<decimal height>/<node> is skipped, never allowed to stop the collector
        parts = kv.key[len(self.prefix) :].decode("utf-8", errors="replace").split("/")
        if len(parts) != 3 or parts[2] == self.node_id or len(kv.value) > _MAX_COSIG_NOTE:
            return None
        digits, signer = parts[1], parts[2]
        if len(digits) != _HEIGHT_DIGITS or not (digits.isascii() and digits.isdigit()):
            return None
        height = int(digits)
        note = kv.value.decode(errors="replace")
        policy = self._quorum()
        if policy is None or all(n.id != signer for n in policy[1]):
            return None  # not a node of the policy (one admitted later: its cosignatures count from then on)
        with self._pending_lock:
            # checked under the lock the applier takes to pick up parked cosignatures, so none is missed
            head = self._heads.get(height)
            if head is None:
                # above our height it cannot be in our store (every apply moves _height first): no read.
                # Followers see most cosignatures before they have applied the block.
                block = self.ledger.block(height) if height <= self._height else None
                if block is None:
                    # the block is not applied here yet: hold the cosignature until it is, one per
                    # signer and height (a re-listed one replaces itself), for a bounded number of heights
                    if height not in self._pending_cosigs and len(self._pending_cosigs) >= _PARK_HEIGHTS:
                        furthest = max(self._pending_cosigs)
                        if height > furthest:
                            return None
                        del self._pending_cosigs[furthest]
                    self._pending_cosigs.setdefault(height, {})[signer] = note
                    return None
                # an older block: compare with our stored checkpoint
                return _Cosig(block.header.tree_size, signer, note, None)
        return _Cosig(head[0], signer, note, (head[1], head[2]))

    def _verifiers(self, origin: str, node: Node) -> list[Verifier]:
        # built once per node key: decoding the public keys costs about as much as a verification
        key = (origin, node.id, node.sm2_public_key.to_bytes(), node.ed25519_public_key)
        found = self._verifier_cache.get(key)
        if found is None:
            found = self._verifier_cache[key] = checkpoint_verifiers(origin, [node])
        return found

    def _quorum(self) -> tuple[str, list[Node], int] | None:
        policy = self._policy
        if policy is None:
            generation = self._policy_generation
            policy = self.ledger.quorum_policy()
            # cached only if no governance block was applied meanwhile (it may predate that block)
            if generation == self._policy_generation:
                self._policy = policy
        return policy

    def _take_cosigs(self, cosigs: list[_Cosig]) -> None:
        """Verify cosignatures, store the good ones in one transaction, then decide finality once."""
        policy = self._quorum()
        if policy is None or not cosigs:
            return
        origin, nodes, threshold = policy
        accepted: list[tuple[int, str, list[str]]] = []
        for cosig in cosigs:
            lines = self._verified_cosig(origin, nodes, cosig)
            if lines is not None:
                accepted.append((cosig.tree_size, cosig.signer, lines))
        if not accepted:
            return
        try:
            self.ledger.add_cosignature_sets(
                [(size, note_key_name(origin, signer), lines) for size, signer, lines in accepted]
            )
        except CertLedgerError as exc:
            # nothing was stored; parked cosignatures would not come again from etcd: keep them all
            _log.warning("cannot store cosignatures yet", error=str(exc), count=len(cosigs))
            with self._pending_lock:
                self._cosig_retry.extend(cosigs)
            return
        reached = False
        with self._cosigners_lock:
            for size, signer, _ in accepted:
                signers = self._cosigners.setdefault(size, set())
                signers.add(signer)
                # our own signature counts too; below the last final size nothing changes
                reached = reached or (len(signers) + 1 >= threshold and size > self.final_size)
            for size in [s for s in self._cosigners if s < self.final_size]:
                del self._cosigners[size]
        if reached:
            self._advance_final()

    def _advance_final(self) -> None:
        """Take the store's latest final checkpoint as ours and answer the submitters it covers."""
        try:
            final = self.ledger.latest_checkpoint()  # the store decides; it merges the signature lines
        except CertLedgerError:
            return  # no final checkpoint yet
        with self._cosigners_lock:  # the collector and the applier both get here: final_size only grows
            advanced = final[0] > self.final_size
            if advanced:
                self.final_size = final[0]
        if advanced:
            with self._applied:
                self._applied.notify_all()
            self._resolve_final(final)

    def _verified_cosig(self, origin: str, nodes: list[Node], cosig: _Cosig) -> list[str] | None:
        """The signer's signature lines if its note verifies and states our root; else None (alarmed if bad)."""
        tree_size, signer, note = cosig.tree_size, cosig.signer, cosig.note
        node = next((n for n in nodes if n.id == signer), None)
        if node is None:
            return None
        try:
            opened = open_checkpoint(note, self._verifiers(origin, node), origin=origin)
        except CertLedgerError as exc:
            self._alarm(
                "bad_cosignature",
                {"size": tree_size, "signer": signer, "reason": exc.reason, "note": note},
                key=("bad_cosignature", signer, note),
            )
            return None
        if opened.checkpoint.size != tree_size:
            return None
        own_roots = cosig.own_roots
        if own_roots is None:
            with self.ledger.store.read() as conn:
                own = self.ledger.store.checkpoint(conn, tree_size)
            if own is None:
                return None
            try:
                # our own stored note: parsed, not re-verified (audit verifies what is stored)
                own_cp = _note_checkpoint(own[1])
                own_status = root_from_extensions(own_cp.extensions)
                if own_status is None:
                    raise VerificationError("no status map root", reason=reasons.CHECKPOINT_STATUS_ROOT)
            except CertLedgerError as exc:
                self._alarm("own_checkpoint_unreadable", {"size": tree_size, "reason": exc.reason})
                return None
            own_roots = (own_cp.root_hash, own_status)
        own_root, own_status = own_roots
        try:
            their_status = root_from_extensions(opened.checkpoint.extensions)
        except CertLedgerError:
            their_status = None  # two status lines, or a malformed one: not our text (below)
        if own_root != opened.checkpoint.root_hash or (their_status is not None and their_status != own_status):
            # the same tree with another status map is a fork too: one of the two states is false
            # two signed checkpoints for the same origin and size that disagree: proof of a fork
            self._alarm(
                "checkpoint_fork",
                {"size": tree_size, "signer": signer, "theirs": note, "ours": self.ledger.checkpoint_at(tree_size)},
                key=("checkpoint_fork", tree_size, signer, note),
            )
            return None
        ours = Checkpoint(origin, tree_size, own_root, (extension_line(own_status),))
        if opened.checkpoint.to_text() != ours.to_text():
            # our tree head with other extension lines (or none): its signature lines do not sign our
            # note's text, so merged into our note they would make it fail for everyone who checks it
            self._alarm(
                "bad_cosignature",
                {"size": tree_size, "signer": signer, "reason": "checkpoint.extensions", "note": note},
                key=("bad_cosignature", signer, note),
            )
            return None
        name = note_key_name(origin, signer)
        return [sig.line().rstrip("\n") for sig in opened.note.signatures if sig.name == name]

    # -- janitor: compaction after finality --------------------------------------------------

    def _janitor(self) -> None:
        # etcd keeps every revision until compacted: compact what is older than ~30 s (a watcher that
        # fell further behind gets WatchCompacted and re-lists), or its database grows to the quota
        revisions: deque[int] = deque(maxlen=6)
        while not self._stop.wait(5.0):
            if not self.is_leader or self.final_size == 0:
                revisions.clear()
                continue
            try:
                final_height = self._final_height()
                cutoff = final_height - self.settings.window
                if cutoff > 0:
                    self.etcd.delete(self._k("block/"), self._k("block", self._height_key(cutoff)))
                    self.etcd.delete(self._k("cosig/"), self._k("cosig", self._height_key(cutoff)))
                if len(revisions) == revisions.maxlen:
                    self.etcd.compact(revisions[0])
                revisions.append(self.etcd.current_revision())
            except CertLedgerError as exc:
                _log.info("compaction failed", error=str(exc))

    def _final_height(self) -> int:
        with self.ledger.store.read() as conn:
            height = self.ledger.store.block_for_index(conn, self.final_size - 1)
        return height or 0

    # -- submissions ------------------------------------------------------------------------

    def submit(self, signed: SignedRecord) -> Future[Acknowledgement]:
        """Hand a record to the cluster; the future resolves once it is in a (final) block.

        The record is queued for the submitter thread, which hands queued
        records to the leader in one request; rejections arrive
        through a watch on ``reject/``; a record not final within
        ``submit_timeout`` fails with ``cluster.not_final``.
        """
        record_hash = signed.record.record_hash()
        fut: Future[Acknowledgement] = Future()
        with self._waiters_lock:
            self._waiters.setdefault(record_hash, []).append(_Waiter(fut, time.monotonic()))
        # whether it is in our log already is asked by the submitter thread, once per batch: a
        # query per submission cost the API more than the rest of its answer
        with self._outbox_cv:
            self._outbox[record_hash] = signed.entry_bytes()
            self._outbox_cv.notify()
        return fut

    def _submitter(self) -> None:
        """Hand submissions accepted here to the leader; again to a new leader, or if no block holds them soon."""
        while not self._stop.is_set():
            with self._outbox_cv:
                if not self._outbox:
                    # woken by a new submission; otherwise look again soon at what is due again
                    self._outbox_cv.wait(_FORWARD_RETRY)
                if self._outbox and self.leader_id != self.node_id:
                    # a few milliseconds for more to arrive: each request to the leader costs both
                    # nodes about a millisecond of CPU, and under load one carried a single record.
                    # The leader holds its next block longer than this anyway (_hold_for_finality).
                    linger_until = time.monotonic() + _FORWARD_LINGER
                    while len(self._outbox) < _FORWARD_ENOUGH and not self._stop.is_set():
                        left = linger_until - time.monotonic()
                        if left <= 0:
                            break
                        self._outbox_cv.wait(left)
                batch = list(self._outbox.items())
                self._outbox.clear()
            if batch:
                # submitted before and already in our log: the same acknowledgement again, not handed on
                known = self._resolve_committed([h for h, _ in batch])
                with self._waiters_lock:
                    # ...and one whose block was applied meanwhile (or whose waiters all went) neither:
                    # nothing would ever take it out of _inflight again
                    batch = [
                        (h, data)
                        for h, data in batch
                        if h not in known and h in self._waiters and h not in self._unfinal
                    ]
            now = time.monotonic()
            leader = self.leader_id
            with self._inflight_lock:
                for record_hash, data in batch:
                    self._inflight[record_hash] = (data, "", 0.0)
                due = [
                    (h, data)
                    for h, (data, handed_to, when) in self._inflight.items()
                    if handed_to != leader or now - when > _RESEND_AFTER
                ]
            if due and leader:
                self._hand_to_leader(leader, due, now)

    def _hand_to_leader(self, leader: str, due: list[tuple[str, bytes]], now: float) -> None:
        for chunk in _chunks(due, _FORWARD_BYTES):
            try:
                if leader == self.node_id:
                    self.enqueue([SignedRecord.from_bytes(data) for _, data in chunk])
                else:
                    self._post_submissions(leader, [data for _, data in chunk])
            except (CertLedgerError, httpx.HTTPError) as exc:
                # not the leader (any more), overloaded, unreachable: the next round tries again
                _log.debug("cannot hand submissions to the leader yet", leader=leader, error=str(exc))
                return
            with self._inflight_lock:
                for record_hash, data in chunk:
                    if record_hash in self._inflight:
                        self._inflight[record_hash] = (data, leader, now)

    def _post_submissions(self, leader: str, entries: list[bytes]) -> None:
        policy = self._quorum()
        endpoint = next((n.endpoint for n in policy[1] if n.id == leader), "") if policy is not None else ""
        if not endpoint:
            raise TransportError(f"no API endpoint known for leader {leader}", reason="cluster.unavailable")
        resp = self._forward_http.post(
            endpoint.rstrip("/") + "/v1/cluster/submissions",
            content=encode_submissions(entries),
            headers={"content-type": SUBMISSIONS_MEDIA_TYPE, TICKET_HEADER: self._ticket_for(leader)},
        )
        if resp.status_code == 403:
            # our ticket was refused (clocks apart, a key change): the next round makes a new one
            self._tickets.pop(leader, None)
            _log.warning("the leader refused our hand-on ticket", leader=leader, answer=resp.text[:300])
        if resp.status_code != 202:
            raise TransportError(f"leader {leader} answered {resp.status_code}", reason="cluster.unavailable")

    def _ticket_for(self, leader: str) -> str:
        """Our ticket for handing submissions to ``leader``: a new one when half its life is gone."""
        now = time.time()
        held = self._tickets.get(leader)
        if held is None or held[1] - now < TICKET_LIFETIME / 2:
            identity = self.ledger.identity
            assert identity is not None  # checked in __init__
            held = self._tickets[leader] = issue_ticket(
                identity.block_key, origin=self.origin, sender=self.node_id, leader=leader, now=now
            )
        return held[0]

    def hand_on_sender(self, ticket: str | None) -> str:
        """The node a hand-on to us comes from, by its ticket; AuthorizationError if none is valid."""
        policy = self._quorum()
        if policy is None:
            raise AuthorizationError("no node policy to check a hand-on ticket against", reason=UNAUTHENTICATED)
        return self._ticket_check.sender(ticket, origin=policy[0], nodes=policy[1], now=time.time())

    def _reject_watcher(self) -> None:
        while not self._stop.is_set():
            revision = self.etcd.current_revision()
            try:
                for _rev, events in self.etcd.watch(self._k("reject/"), revision + 1, self._stop.is_set):
                    for ev in events:
                        if ev.kind == "PUT":
                            self._rejected(_hash_of(ev.kv.key), ev.kv.value)
            except WatchCompacted:
                continue

    def _rejected(self, record_hash: str, value: bytes) -> None:
        with self._waiters_lock:
            if record_hash not in self._waiters or record_hash in self._unfinal:
                return  # not ours, or already in a block here (a retried submission of a committed record)
        try:
            info = json.loads(value)
            if not isinstance(info, dict):
                raise TypeError("a reject value is a JSON object")
            family = ConflictError if info.get("family") == "ConflictError" else InvalidInputError
            error: CertLedgerError = family(str(info["message"]), reason=str(info["reason"]))
        except (ValueError, KeyError, TypeError, RecursionError):
            error = InvalidInputError("the leader rejected the record", reason="cluster.rejected")
        self._fail(record_hash, error)

    def _expirer(self) -> None:
        while not self._stop.wait(0.25):
            deadline = time.monotonic() - self.settings.submit_timeout
            expired: list[_Waiter] = []
            with self._waiters_lock:
                for record_hash, waiters in list(self._waiters.items()):
                    keep = [w for w in waiters if w.created > deadline and not w.future.done()]
                    expired += [w for w in waiters if w.created <= deadline]
                    if keep:
                        self._waiters[record_hash] = keep
                    else:
                        del self._waiters[record_hash]
                        self._unfinal.pop(record_hash, None)
                        with self._inflight_lock:
                            self._inflight.pop(record_hash, None)  # nobody waits: stop handing it on
            with self._waiters_lock:
                waited_for = set(self._waiters)
            with self._inflight_lock:
                for record_hash in [h for h in self._inflight if h not in waited_for]:
                    del self._inflight[record_hash]  # nobody waits for it any more: stop handing it on
            for waiter in expired:
                _settle(
                    waiter.future,
                    TransportError("the record was not acknowledged as final in time", reason="cluster.not_final"),
                )

    def _resolve_committed(self, record_hashes: list[str]) -> set[str]:
        """Answer the waiters of those of ``record_hashes`` in our log as for records just applied; returns them."""
        column = schema.entries.c
        rows: list[Any] = []
        with self.ledger.store.read() as conn:
            for start in range(0, len(record_hashes), _IN_CHUNK):
                chunk = record_hashes[start : start + _IN_CHUNK]
                rows += conn.execute(
                    select(column.idx, column.leaf_hash, column.block_height, column.record_hash).where(
                        column.record_hash.in_(chunk)
                    )
                ).all()
        found: dict[str, tuple[Accepted, Block, str]] = {}
        blocks: dict[int, tuple[Block, str] | None] = {}
        for row in rows:
            height = int(row.block_height)
            if height not in blocks:
                block = self.ledger.block(height)
                note = self.ledger.checkpoint_at(block.header.tree_size) if block is not None else None
                blocks[height] = None if block is None else (block, note or "")
            held = blocks[height]
            if held is not None:
                record_hash = str(row.record_hash)
                found[record_hash] = (Accepted(0, int(row.idx), record_hash, bytes(row.leaf_hash)), *held)
        if not found:
            return set()
        with self._inflight_lock:
            for record_hash in found:
                self._inflight.pop(record_hash, None)
        with self._waiters_lock:
            for record_hash, answer in found.items():
                if record_hash in self._waiters:
                    self._unfinal[record_hash] = answer
        self._resolve_final()
        return set(found)

    def _fail(self, record_hash: str, exc: CertLedgerError) -> None:
        with self._inflight_lock:
            self._inflight.pop(record_hash, None)
        with self._waiters_lock:
            waiters = self._waiters.pop(record_hash, [])
        for waiter in waiters:
            if not waiter.future.done():
                _settle(waiter.future, exc)

    def _resolve(self, accepted: list[Accepted], block: Block, note: str) -> None:
        if self._inflight:
            with self._inflight_lock:
                for acc in accepted:
                    self._inflight.pop(acc.record_hash, None)  # in a block: handed on for good
        with self._waiters_lock:
            for acc in accepted:
                if acc.record_hash in self._waiters:
                    self._unfinal[acc.record_hash] = (acc, block, note)
            # records of a block just applied are final only once its cosignatures come in (which
            # resolves them), unless an earlier final checkpoint already covers them
            due = any(acc.index < self.final_size for acc, _, _ in self._unfinal.values())
        if due or (self._unfinal and not self.settings.wait_final):
            self._resolve_final()

    def _resolve_final(self, final: tuple[int, str] | None = None) -> None:
        try:
            final_size, final_note = final if final is not None else self.ledger.latest_checkpoint()
        except CertLedgerError:
            if self.settings.wait_final:
                return
            final_size, final_note = 0, ""
        with self._waiters_lock:
            for record_hash, (acc, block, note) in list(self._unfinal.items()):
                if self.settings.wait_final and acc.index >= final_size:
                    continue
                del self._unfinal[record_hash]
                for waiter in self._waiters.pop(record_hash, []):
                    if not waiter.future.done():
                        size = final_size if self.settings.wait_final else block.header.tree_size
                        if self.settings.wait_final:
                            # final_note is the store's final checkpoint: our signature plus the quorum's
                            # cosignature lines, each verified before it was stored (_verified_cosig)
                            ack = Acknowledgement(acc, size, block.height, final_note, final=True)
                        else:
                            ack = Acknowledgement(acc, size, block.height, note)
                        _settle(waiter.future, ack)

    # -- alarms ---------------------------------------------------------------------------

    def _alarm(self, kind: str, detail: dict[str, Any], *, key: tuple[Any, ...] | None = None) -> None:
        """Log, count and keep as evidence; ``key`` names the fault so a retried one is reported once."""
        if key is not None:
            if key in self._alarmed:
                return
            if len(self._alarmed) >= 10 * _ALARMS_KEPT:
                self._alarmed.clear()  # bounded: a fault still going on after this is reported once more
            self._alarmed.add(key)
        _log.error(
            "cluster alarm",
            kind=kind,
            **{k: v for k, v in detail.items() if k in ("height", "size", "signer", "reason")},
        )
        self.alarms.append({"kind": kind, "time": time.time(), **detail})
        try:
            self.ledger.record_evidence(kind, detail)
        except CertLedgerError as exc:
            _log.error("cannot store evidence", error=str(exc))

    def status(self) -> dict[str, Any]:
        return {
            "node_id": self.node_id,
            "leader": self.leader_id,
            "is_leader": self.is_leader,
            "height": self.local_height(),
            "etcd_height": self.etcd_height,
            "lag": max(0, self.etcd_height - self.local_height()),
            "final_tree_size": self.final_size,
            "alarms": len(self.alarms),
        }


#: a block value in etcd: this tag, then the zlib-compressed binary block (see _encode_block)
_BLOCK_TAG = b"CLB\x02"
#: raw entry bytes one proposal takes at most: with the header and keys its transaction stays well
#: inside etcd's 1.5 MiB request limit even if the entries do not compress at all
_BLOCK_ENTRY_BYTES = 1024 * 1024
#: a leader queues at most this many submissions (bytes, records); beyond, handing on answers 503
_QUEUE_MAX_BYTES = 64 * 1024 * 1024
_QUEUE_MAX_RECORDS = 50_000
#: the longest the leader holds a proposal back for earlier blocks to become final
_HOLD_MAX = 0.5
#: a submission not in a block this long after it was handed to the leader is handed again
_RESEND_AFTER = 3.0
#: how often the submitter looks at what is due to be handed again
_FORWARD_RETRY = 0.1
#: how long a submission waits for others to share its request to the leader, and how many end the wait
_FORWARD_LINGER = 0.02
_FORWARD_ENOUGH = 64
#: entry bytes per POST /v1/cluster/submissions (the API's body limit is set above this)
_FORWARD_BYTES = 1024 * 1024
_FORWARD_TIMEOUT = 5.0
#: what a block value may inflate to (a bound on hostile values: a zlib bomb is refused, not expanded)
_BLOCK_MAX_INFLATED = 4 * 1024 * 1024


def _take_pending(
    pending: list[tuple[str, SignedRecord]], committed: set[str], max_bytes: int
) -> tuple[list[SignedRecord], list[str], list[str]]:
    """What one proposal takes from the leader's queue, in order: (records, their hashes, hashes to drop).

    Records already ``committed`` are dropped; the rest are taken while their bytes stay within
    ``max_bytes`` (at least one), so the block's etcd transaction stays under the request limit.
    What is not taken stays queued for the next block.
    """
    records: list[SignedRecord] = []
    hashes: list[str] = []
    drop: list[str] = []
    taken = 0
    for record_hash, record in pending:
        if record_hash in committed:
            drop.append(record_hash)
            continue
        size = len(record.entry_bytes())
        if records and taken + size > max_bytes:
            break
        taken += size
        records.append(record)
        hashes.append(record_hash)  # hashes[i] is the hash of records[i]
    return records, hashes, drop


def _settle(future: Future[Acknowledgement], outcome: Acknowledgement | BaseException) -> None:
    """Resolve a submitter's future unless it is done already (cancelled: its client went away)."""
    if future.done():
        return
    with contextlib.suppress(InvalidStateError):  # cancelled between the check and here
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)


def _chunks(items: list[tuple[str, bytes]], max_bytes: int) -> list[list[tuple[str, bytes]]]:
    """``items`` in consecutive runs of at most ``max_bytes`` of values (at least one item each)."""
    out: list[list[tuple[str, bytes]]] = []
    size = 0
    for item in items:
        if not out or (size + len(item[1]) > max_bytes and out[-1]):
            out.append([])
            size = 0
        out[-1].append(item)
        size += len(item[1])
    return out


#: the body of POST /v1/cluster/submissions: u32 count, then each entry as a u32 length and its bytes
SUBMISSIONS_MEDIA_TYPE = "application/vnd.certledger.submissions"


def encode_submissions(entries: list[bytes]) -> bytes:
    parts = [struct.pack(">I", len(entries))]
    for data in entries:
        parts += [struct.pack(">I", len(data)), data]
    return b"".join(parts)


def decode_submissions(body: bytes, max_entry_bytes: int) -> list[SignedRecord]:
    """The signed records of a submissions body; InvalidInputError if it is malformed in any way."""

    def bad(why: str) -> InvalidInputError:
        return InvalidInputError(f"malformed submissions body: {why}", reason="request.malformed")

    if len(body) < 4:
        raise bad("truncated")
    (count,) = struct.unpack_from(">I", body, 0)
    # every entry takes at least its 4-byte length: a count beyond that is a lie, refused before any work
    if count > (len(body) - 4) // 4:
        raise bad("count larger than the body")
    pos, records = 4, []
    for _ in range(count):
        if pos + 4 > len(body):
            raise bad("truncated")
        (size,) = struct.unpack_from(">I", body, pos)
        pos += 4
        if size > max_entry_bytes:
            raise bad(f"an entry is larger than {max_entry_bytes} bytes")
        if pos + size > len(body):
            raise bad("truncated")
        records.append(SignedRecord.from_bytes(body[pos : pos + size]))
        pos += size
    if pos != len(body):
        raise bad("trailing bytes")
    return records


def _encode_block(block: Block, entries: list[SignedRecord]) -> bytes:
    """``_BLOCK_TAG`` + zlib(u32 header length, header, u16 signature length, signature, u32 count, entries).

    Each entry is a u32 length and its canonical bytes. Binary and compressed, not JSON with
    base64: the records of a block share most of their text, the value crosses etcd's Raft log,
    its WAL and four watch streams, and etcd's JSON gateway base64-encodes every value again.
    """
    header = block.header.to_bytes()
    parts = [struct.pack(">I", len(header)), header, struct.pack(">H", len(block.signature)), block.signature]
    parts.append(struct.pack(">I", len(entries)))
    for entry in entries:
        data = entry.entry_bytes()
        parts += [struct.pack(">I", len(data)), data]
    return _BLOCK_TAG + zlib.compress(b"".join(parts), 1)


def _block_fields(value: bytes) -> tuple[bytes, bytes, list[bytes]]:
    """(header bytes, signature, entry bytes) of a block value; VerificationError if malformed."""

    def bad(why: str) -> VerificationError:
        return VerificationError(f"malformed block in etcd: {why}", reason="block.header")

    if value.startswith(b"{"):  # written by a node of an earlier version: JSON with base64
        try:
            data = json.loads(value)
            return (
                base64.b64decode(data["header"], validate=True),
                base64.b64decode(data["signature"], validate=True),
                [base64.b64decode(e, validate=True) for e in data["entries"]],
            )
        except (ValueError, KeyError, TypeError, RecursionError) as exc:  # RecursionError: deep nesting
            raise bad(type(exc).__name__ if isinstance(exc, RecursionError) else str(exc)) from None
    if not value.startswith(_BLOCK_TAG):
        raise bad("unknown encoding")
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(value[len(_BLOCK_TAG) :], _BLOCK_MAX_INFLATED)
    except zlib.error as exc:
        raise bad(f"zlib: {exc}") from None
    if inflater.unconsumed_tail or not inflater.eof or inflater.unused_data:
        raise bad(f"not one zlib stream of at most {_BLOCK_MAX_INFLATED} bytes")
    pos = 0

    def take(size: int) -> bytes:
        nonlocal pos
        if size > len(raw) - pos:
            raise bad("truncated")
        pos += size
        return raw[pos - size : pos]

    header = take(struct.unpack(">I", take(4))[0])
    signature = take(struct.unpack(">H", take(2))[0])
    count = struct.unpack(">I", take(4))[0]
    if count > len(raw) // 4:
        raise bad("entry count larger than the value")
    entries = [take(struct.unpack(">I", take(4))[0]) for _ in range(count)]
    if pos != len(raw):
        raise bad("trailing bytes")
    return header, signature, entries


def _fetch_block(http: httpx.Client, peer: str, height: int) -> Block:
    resp = http.get(f"{peer}/v1/blocks/{height}")
    resp.raise_for_status()
    data = resp.json()
    block = Block(BlockHeader.from_json(data["header"]), base64.b64decode(data["signature"]))
    if block.height != height:
        raise TransportError(f"peer answered block {block.height} for {height}", reason="catchup.partial")
    return block


def _fetch_entries(http: httpx.Client, peer: str, start: int, end: int) -> list[SignedRecord]:
    """Entries [start, end) from a peer, page by page (it answers at most 1000 per call)."""
    entries: list[SignedRecord] = []
    while start + len(entries) < end:
        resp = http.get(f"{peer}/v1/entries", params={"start": start + len(entries), "end": end})
        resp.raise_for_status()
        rows = resp.json()["entries"]
        if not rows:
            raise TransportError("peer returned a partial block", reason="catchup.partial")
        for row in rows:
            if row["index"] != start + len(entries):
                raise TransportError("peer returned entries out of order", reason="catchup.partial")
            entries.append(SignedRecord.from_json(row["entry"]))
    return entries


def _decode_header(value: bytes) -> Block:
    header, signature, _ = _block_fields(value)
    try:
        return Block(BlockHeader.from_bytes(header), signature)
    except (ValueError, KeyError, TypeError) as exc:
        raise VerificationError(f"malformed block in etcd: {exc}", reason="block.header") from None


def _decode_block(value: bytes) -> tuple[Block, list[SignedRecord]]:
    header, signature, raw_entries = _block_fields(value)
    try:
        block = Block(BlockHeader.from_bytes(header), signature)
    except (ValueError, KeyError, TypeError) as exc:
        raise VerificationError(f"malformed block in etcd: {exc}", reason="block.header") from None
    return block, [SignedRecord.from_bytes(e) for e in raw_entries]


def _height_of(key: bytes) -> int | None:
    """The height a ``block/<height>`` key names; None for a key of any other form (not written by us)."""
    last = key.rsplit(b"/", 1)[-1]
    if len(last) != _HEIGHT_DIGITS or not last.isdigit():  # bytes.isdigit: ASCII digits only
        return None
    return int(last)


def _has_governance(entries: list[SignedRecord]) -> bool:
    return any(e.record.type in GOVERNANCE_TYPES for e in entries)


def _hash_of(key: bytes) -> str:
    return key.rsplit(b"/", 1)[-1].decode("utf-8", "replace")


def _committed(ledger: Ledger, record_hashes: list[str]) -> set[str]:
    """Which of ``record_hashes`` are already entries of this node's log."""
    if not record_hashes:
        return set()
    column = schema.entries.c.record_hash
    found: set[str] = set()
    with ledger.store.read() as conn:
        for start in range(0, len(record_hashes), _IN_CHUNK):
            chunk = record_hashes[start : start + _IN_CHUNK]
            found.update(str(row[0]) for row in conn.execute(select(column).where(column.in_(chunk))))
    return found


def _note_checkpoint(note: str) -> Checkpoint:
    """The checkpoint a signed note states (its text up to the blank line), signatures not checked."""
    return Checkpoint.parse(note.split("\n\n", 1)[0] + "\n")

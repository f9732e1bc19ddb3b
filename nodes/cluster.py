"""A department node in a cluster: ordering through etcd, replication, cosigning.

etcd (Raft) is the only ordering engine; certledger adds no consensus of its
own. Keys under ``/certledger/<origin>/``:

    leader                  node id, attached to a lease (leader election)
    submit/<record hash>    a validated submission waiting for a block (create-only)
    reject/<record hash>    why the leader refused it (short lease)
    block/<height>          a signed block with its entries (create-only: one block per height)
    cosig/<height>/<node>   a node's signed checkpoint for that block

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
import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import httpx
import structlog

from ledger.blocks import Block, BlockHeader
from ledger.checkpoint import open_checkpoint
from ledger.identity import checkpoint_verifiers, note_key_name
from ledger.records import SignedRecord
from ledger.sequencer import Acknowledgement
from ledger.service import Accepted, Ledger
from nodes.etcd import Etcd, KeyValue, WatchCompacted, prefix_end
from signing.errors import CertLedgerError, ConflictError, InvalidInputError, TransportError, VerificationError

_log = structlog.get_logger("certledger.cluster")


@dataclass
class ClusterSettings:
    etcd_endpoints: list[str]
    peers: list[str] = field(default_factory=list)
    max_batch: int = 500
    #: how long the leader waits for more submissions once one is pending
    batch_wait: float = 0.01
    lease_ttl: int = 2
    #: blocks kept in etcd behind the last final one (catch-up beyond this uses peers)
    window: int = 2000
    submit_timeout: float = 15.0
    #: acknowledge only once the checkpoint holding the record is final (quorum-cosigned)
    wait_final: bool = True


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
        self.alarms: list[dict[str, Any]] = []
        self._waiters: dict[str, list[_Waiter]] = {}
        self._waiters_lock = threading.Lock()
        self._applied = threading.Condition()
        self._pending_cosigs: dict[int, list[tuple[str, str]]] = {}
        #: applied records whose submitters wait for finality: hash -> (accepted, block, note)
        self._unfinal: dict[str, tuple[Accepted, Block, str]] = {}
        self._threads: list[threading.Thread] = []

    # -- keys -----------------------------------------------------------------------------

    def _k(self, *parts: str) -> bytes:
        return self.prefix + "/".join(parts).encode()

    @staticmethod
    def _height_key(height: int) -> str:
        return f"{height:012d}"

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        for name, target in (
            ("applier", self._applier),
            ("cosigs", self._cosig_collector),
            ("elector", self._elector),
            ("proposer", self._proposer),
            ("janitor", self._janitor),
        ):
            thread = threading.Thread(target=self._guard(name, target), name=f"cluster-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        with self._applied:
            self._applied.notify_all()
        for thread in self._threads:
            thread.join(timeout=5)
        if self.is_leader and self._lease:
            with contextlib.suppress(CertLedgerError):
                self.etcd.revoke(self._lease)
        self.etcd.close()

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
        with self.ledger.store.read() as conn:
            block = self.ledger.store.latest_block(conn)
        return -1 if block is None else block.height

    # -- election -------------------------------------------------------------------------

    def _elector(self) -> None:
        key = self._k("leader")
        while not self._stop.is_set():
            try:
                current = self.etcd.get(key)
                self.leader_id = current.value.decode() if current else ""
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
            self._stop.wait(0.2)

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

    # -- proposer (leader only) -----------------------------------------------------------

    def _proposer(self) -> None:
        while not self._stop.is_set():
            if not self.is_leader:
                self._stop.wait(0.05)
                continue
            try:
                proposed = self._propose_once()
            except CertLedgerError as exc:
                _log.info("proposal round failed", error=str(exc))
                proposed = False
            if not proposed:
                self._stop.wait(0.005)

    def _propose_once(self) -> bool:
        # propose only on top of everything etcd holds: the next height must be free
        local = self.local_height()
        if local < self.etcd_height or self.etcd.get(self._k("block", self._height_key(local + 1))) is not None:
            return False
        if local < 0:
            return self._propose([self.genesis], [])
        pending = self.etcd.prefix(self._k("submit/"), limit=self.settings.max_batch, sort_by_create=True)
        if not pending:
            return False
        if len(pending) < self.settings.max_batch and self.settings.batch_wait > 0:
            self._stop.wait(self.settings.batch_wait)
            pending = self.etcd.prefix(self._k("submit/"), limit=self.settings.max_batch, sort_by_create=True)
        records: list[SignedRecord] = []
        keys: list[bytes] = []
        for kv in pending:
            keys.append(kv.key)
            try:
                records.append(SignedRecord.from_bytes(kv.value))
            except CertLedgerError as exc:
                self._reject(kv.key.rsplit(b"/", 1)[-1].decode(), exc)
        return self._propose(records, keys)

    def _propose(self, records: list[SignedRecord], keys: list[bytes]) -> bool:
        proposal = self.ledger.propose(records)
        for rejected in proposal.rejected:
            self._reject(records[rejected.position].record.record_hash(), rejected.error)
        done_keys = [keys[r.position] for r in proposal.rejected if r.position < len(keys)]
        if proposal.block is not None:
            value = _encode_block(proposal.block, proposal.entries)
            key = self._k("block", self._height_key(proposal.block.height))
            created, existing = self.etcd.create(key, value)
            if not created and (existing is None or existing.value != value):
                # another leader wrote this height: we are stale; step down and resync
                _log.warning("block height taken by another proposer", height=proposal.block.height)
                self.is_leader = False
                return False
            done_keys += [k for k in keys if k not in done_keys]
        if done_keys:
            self.etcd.delete_many(done_keys)
        return proposal.block is not None

    def _reject(self, record_hash: str, exc: CertLedgerError) -> None:
        body = json.dumps({"reason": exc.reason, "message": str(exc), "family": type(exc).__name__}).encode()
        lease = self.etcd.grant(60)
        self.etcd.put(self._k("reject", record_hash), body, lease=lease)

    # -- applier (every node) -------------------------------------------------------------

    def _applier(self) -> None:
        while not self._stop.is_set():
            start = self.local_height() + 1
            existing = self.etcd.range(self._k("block", self._height_key(start)), prefix_end(self._k("block/")))
            revision = self._apply_kvs(existing)
            if existing and _height_of(existing[0].key) > start:
                self._catch_up_from_peers(start, _height_of(existing[0].key))
                continue
            try:
                for _rev, events in self.etcd.watch(self._k("block/"), revision + 1, self._stop.is_set):
                    self._apply_kvs([ev.kv for ev in events if ev.kind == "PUT"])
            except WatchCompacted:
                continue

    def _apply_kvs(self, kvs: list[KeyValue]) -> int:
        revision = 0
        for kv in sorted(kvs, key=lambda k: _height_of(k.key)):
            revision = max(revision, kv.mod_revision)
            height = _height_of(kv.key)
            self.etcd_height = max(self.etcd_height, height)
            local = self.local_height()
            if height <= local:
                self._check_same_block(height, kv.value)
                continue
            if height > local + 1:
                # a gap: fetch the missing heights from etcd (or peers) first
                missing = self.etcd.range(
                    self._k("block", self._height_key(local + 1)), self._k("block", self._height_key(height))
                )
                if not missing or _height_of(missing[0].key) != local + 1:
                    self._catch_up_from_peers(local + 1, height)
                else:
                    self._apply_kvs(missing)
                if self.local_height() != height - 1:
                    continue
            self._apply_one(height, kv.value)
        if not kvs:
            revision = self.etcd.current_revision()
        return revision

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
            )
            raise
        note = result.checkpoint or ""
        self.etcd.put(self._k("cosig", self._height_key(height), self.node_id), note.encode())
        with self._applied:
            self._applied.notify_all()
        self._resolve(result.accepted, block, note)
        for signer, cosig in self._pending_cosigs.pop(height, []):
            self._take_cosig(block.header.tree_size, signer, cosig)

    def _check_same_block(self, height: int, value: bytes) -> None:
        block, _ = _decode_block(value)
        local = self.ledger.block(height)
        if local is not None and local.hash() != block.hash():
            self._alarm("fork", {"height": height, "local": local.to_json(), "etcd": block.to_json()})

    def _catch_up_from_peers(self, start: int, end: int) -> None:
        """Fetch blocks [start, end) from peers' APIs; every block is re-validated by apply_block."""
        for peer in self.settings.peers:
            try:
                with httpx.Client(timeout=10) as http:
                    for height in range(start, end):
                        blk = http.get(f"{peer}/v1/blocks/{height}").json()
                        header = BlockHeader.from_json(blk["header"])
                        block = Block(header, base64.b64decode(blk["signature"]))
                        rows = http.get(
                            f"{peer}/v1/entries", params={"start": header.first_index, "end": header.tree_size}
                        ).json()
                        entries = [SignedRecord.from_json(e["entry"]) for e in rows["entries"]]
                        if len(entries) != header.tree_size - header.first_index:
                            raise TransportError("peer returned a partial block", reason="catchup.partial")
                        result = self.ledger.apply_block(block, entries)
                        self.etcd.put(
                            self._k("cosig", self._height_key(height), self.node_id), (result.checkpoint or "").encode()
                        )
                return
            except (httpx.HTTPError, KeyError, ValueError, CertLedgerError) as exc:
                _log.warning("catch-up from peer failed", peer=peer, error=str(exc))
        raise TransportError(
            f"cannot catch up blocks {start}..{end - 1}: no peer could serve them", reason="catchup.failed"
        )

    # -- cosignatures -----------------------------------------------------------------------

    def _cosig_collector(self) -> None:
        revision = 0
        for kv in self.etcd.prefix(self._k("cosig/")):
            revision = max(revision, kv.mod_revision)
            self._cosig_kv(kv)
        try:
            for _rev, events in self.etcd.watch(self._k("cosig/"), revision + 1, self._stop.is_set):
                for ev in events:
                    if ev.kind == "PUT":
                        self._cosig_kv(ev.kv)
        except WatchCompacted:
            return

    def _cosig_kv(self, kv: KeyValue) -> None:
        parts = kv.key[len(self.prefix) :].decode().split("/")
        if len(parts) != 3 or parts[2] == self.node_id:
            return
        height, signer = int(parts[1]), parts[2]
        block = self.ledger.block(height)
        if block is None:
            # the block is not applied here yet: hold the cosignature until it is
            self._pending_cosigs.setdefault(height, []).append((signer, kv.value.decode()))
            return
        self._take_cosig(block.header.tree_size, signer, kv.value.decode())

    def _take_cosig(self, tree_size: int, signer: str, note: str) -> None:
        policy = self.ledger.quorum_policy()
        if policy is None:
            return
        origin, nodes, _ = policy
        node = next((n for n in nodes if n.id == signer), None)
        if node is None:
            return
        try:
            opened = open_checkpoint(note, checkpoint_verifiers(origin, [node]), origin=origin)
        except CertLedgerError as exc:
            self._alarm("bad_cosignature", {"signer": signer, "reason": exc.reason, "note": note})
            return
        own = self.ledger.checkpoint_at(tree_size)
        if own is None or opened.checkpoint.size != tree_size:
            return
        try:
            own_cp = open_checkpoint(own, checkpoint_verifiers(origin, nodes), origin=origin).checkpoint
        except CertLedgerError as exc:
            self._alarm("own_checkpoint_unreadable", {"size": tree_size, "reason": exc.reason})
            return
        if own_cp.root_hash != opened.checkpoint.root_hash:
            # two signed checkpoints for the same origin and size that disagree: proof of a fork
            self._alarm("checkpoint_fork", {"size": tree_size, "signer": signer, "theirs": note, "ours": own})
            return
        name = note_key_name(origin, signer)
        lines = [sig.line().rstrip("\n") for sig in opened.note.signatures if sig.name == name]
        self.ledger.add_cosignatures(tree_size, name, lines)
        size, _ = self.ledger.latest_checkpoint() if self._has_final() else (0, "")
        if size > self.final_size:
            self.final_size = size
            with self._applied:
                self._applied.notify_all()
            self._resolve_final()

    def _has_final(self) -> bool:
        try:
            self.ledger.latest_checkpoint()
        except CertLedgerError:
            return False
        return True

    # -- janitor: compaction after finality --------------------------------------------------

    def _janitor(self) -> None:
        while not self._stop.wait(5.0):
            if not self.is_leader or self.final_size == 0:
                continue
            try:
                final_height = self._final_height()
                cutoff = final_height - self.settings.window
                if cutoff > 0:
                    self.etcd.delete(self._k("block/"), self._k("block", self._height_key(cutoff)))
                    self.etcd.delete(self._k("cosig/"), self._k("cosig", self._height_key(cutoff)))
            except CertLedgerError as exc:
                _log.info("compaction failed", error=str(exc))

    def _final_height(self) -> int:
        with self.ledger.store.read() as conn:
            for block in self.ledger.store.iter_blocks(conn):
                if block.header.tree_size == self.final_size:
                    return block.height
        return 0

    # -- submissions ------------------------------------------------------------------------

    def submit(self, signed: SignedRecord) -> Future[Acknowledgement]:
        """Hand a record to the cluster; the future resolves once it is in a (final) block."""
        record_hash = signed.record.record_hash()
        fut: Future[Acknowledgement] = Future()
        with self._waiters_lock:
            self._waiters.setdefault(record_hash, []).append(_Waiter(fut, time.monotonic()))
        threading.Thread(target=self._submit_worker, args=(signed, record_hash, fut), daemon=True).start()
        return fut

    def _submit_worker(self, signed: SignedRecord, record_hash: str, fut: Future[Acknowledgement]) -> None:
        try:
            self.etcd.create(self._k("submit", record_hash), signed.entry_bytes())
        except CertLedgerError as exc:
            self._fail(
                record_hash, TransportError(f"cannot reach the ordering service: {exc}", reason="cluster.unavailable")
            )
            return
        deadline = time.monotonic() + self.settings.submit_timeout
        while not fut.done() and time.monotonic() < deadline and not self._stop.is_set():
            try:
                rejected = self.etcd.get(self._k("reject", record_hash))
            except CertLedgerError:
                rejected = None
            if rejected is not None:
                info = json.loads(rejected.value)
                family = ConflictError if info.get("family") == "ConflictError" else InvalidInputError
                self._fail(record_hash, family(info["message"], reason=info["reason"]))
                return
            with self._applied:
                self._applied.wait(0.05)
        if not fut.done():
            self._fail(
                record_hash,
                TransportError("the record was not acknowledged as final in time", reason="cluster.not_final"),
            )

    def _fail(self, record_hash: str, exc: CertLedgerError) -> None:
        with self._waiters_lock:
            waiters = self._waiters.pop(record_hash, [])
        for waiter in waiters:
            if not waiter.future.done():
                waiter.future.set_exception(exc)

    def _resolve(self, accepted: list[Accepted], block: Block, note: str) -> None:
        with self._waiters_lock:
            for acc in accepted:
                if acc.record_hash in self._waiters:
                    self._unfinal[acc.record_hash] = (acc, block, note)
        self._resolve_final()

    def _resolve_final(self) -> None:
        try:
            final_size, final_note = self.ledger.latest_checkpoint()
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
                        waiter.future.set_result(
                            Acknowledgement(acc, size, block.height, final_note if self.settings.wait_final else note)
                        )

    # -- alarms ---------------------------------------------------------------------------

    def _alarm(self, kind: str, detail: dict[str, Any]) -> None:
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


def _encode_block(block: Block, entries: list[SignedRecord]) -> bytes:
    return json.dumps(
        {
            "header": base64.b64encode(block.header.to_bytes()).decode(),
            "signature": base64.b64encode(block.signature).decode(),
            "entries": [base64.b64encode(e.entry_bytes()).decode() for e in entries],
        },
        separators=(",", ":"),
    ).encode()


def _decode_block(value: bytes) -> tuple[Block, list[SignedRecord]]:
    try:
        data = json.loads(value)
        header = BlockHeader.from_bytes(base64.b64decode(data["header"]))
        block = Block(header, base64.b64decode(data["signature"]))
        entries = [SignedRecord.from_bytes(base64.b64decode(e)) for e in data["entries"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise VerificationError(f"malformed block in etcd: {exc}", reason="block.header") from None
    return block, entries


def _height_of(key: bytes) -> int:
    return int(key.rsplit(b"/", 1)[-1])

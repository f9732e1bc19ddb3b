"""The ledger of one node: append batches, answer status, history and proofs.

This is where validation, the Merkle tree, blocks, checkpoints and the store
meet. In the single-node (embedded) configuration the node is its own
sequencer: every successful :meth:`Ledger.submit` call becomes one block and
one checkpoint, written in one transaction and acknowledged after commit.

Throughput comes from two things: SM2 signatures of a batch are verified in a
thread pool before the (sequential) state checks, because libcrypto releases
the GIL; and a whole batch shares one transaction, i.e. one fsync (group
commit).
"""

from __future__ import annotations

import json
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Connection

from ledger import reasons
from ledger.blocks import GENESIS_PREV_HASH, Block, BlockHeader, check_link, sign_block
from ledger.merkle.compact import CompactRange
from ledger.merkle.hashing import TreeHasher
from ledger.merkle.nodes import read_nodes
from ledger.merkle.plan import ProofPlan, inclusion_proof_keys
from ledger.merkle.proofs import consistency_proof, inclusion_proof, root_at
from ledger.records import GOVERNANCE_TYPES, RecordType, SignedRecord, encode_public_key, now_utc
from ledger.state import GOVERNANCE_SIGNER, Agency, LicenceState, Node, OverlayState, StateChange, node_from_payload
from ledger.statusmap import StatusMap, extension_line, state_value, status_key
from ledger.store.sql import EntryRow, SqlStateView, SqlStore
from ledger.validation import validate
from signing.errors import CertLedgerError, ConflictError, InvalidInputError, StorageError, VerificationError
from signing.sm2 import SM2PrivateKey, SM2PublicKey

#: signs checkpoint bodies as a note: (origin, size, root, extension lines) -> signed note text
CheckpointSigner = Callable[[str, int, bytes, tuple[str, ...]], str]
#: status map versions kept per tree size, for proofs against a final checkpoint older than the head
_STATUS_VERSIONS = 256
#: entries another process may have appended before the map is rebuilt rather than updated
_STATUS_CATCH_UP = 50_000

SM3_HASHER = TreeHasher()
_T = TypeVar("_T")


@dataclass(frozen=True)
class NodeIdentity:
    """What a node signs with: its ID, SM2 block key and a checkpoint note signer."""

    node_id: str
    block_key: SM2PrivateKey
    sign_checkpoint: CheckpointSigner


@dataclass(frozen=True)
class Accepted:
    position: int  # position in the submitted batch
    index: int  # leaf index in the log
    record_hash: str
    leaf_hash: bytes


@dataclass(frozen=True)
class Rejected:
    position: int
    reason: str
    message: str
    error: CertLedgerError


@dataclass
class BatchResult:
    accepted: list[Accepted] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    block: Block | None = None
    checkpoint: str | None = None

    def raise_first(self) -> None:
        """For single-record callers: re-raise the rejection, if any."""
        if self.rejected:
            raise self.rejected[0].error


class NotFinalError(StorageError):
    """The data asked for exists here but is not yet covered by a final checkpoint."""

    reason = "ledger.not_final"
    retry_after = 1


@dataclass
class _Batch:
    """A validated, not yet written batch: rows, tree nodes and state changes."""

    start: int
    height: int
    prev: Block | None
    range: CompactRange
    origin: str
    #: the time the records were validated at: the block's time (never before the previous block's)
    time: datetime
    genesis_hex: str = ""
    rows: list[EntryRow] = field(default_factory=list)
    changes: list[StateChange] = field(default_factory=list)
    new_nodes: list[tuple[tuple[int, int], bytes]] = field(default_factory=list)
    accepted: list[Accepted] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    #: the status map after the batch (ADR 0018)
    status: StatusMap = field(default_factory=StatusMap)


@dataclass(frozen=True)
class Proposal:
    """A signed block over the valid records of a batch, not yet applied anywhere."""

    block: Block | None
    entries: list[SignedRecord]
    rejected: list[Rejected]


@dataclass(frozen=True)
class InclusionProof:
    index: int
    tree_size: int
    leaf_hash: bytes
    path: tuple[bytes, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "tree_size": self.tree_size,
            "leaf_hash": self.leaf_hash.hex(),
            "path": [h.hex() for h in self.path],
        }


@dataclass(frozen=True)
class HistoryItem:
    index: int
    block_height: int
    record: SignedRecord
    proof: InclusionProof


class Ledger:
    """One node's ledger over a :class:`SqlStore`."""

    def __init__(self, store: SqlStore, identity: NodeIdentity | None, *, workers: int | None = None) -> None:
        self.store = store
        self.identity = identity
        self.hasher = SM3_HASHER
        self._write_lock = threading.Lock()
        self._workers = workers or min(4, os.cpu_count() or 2)
        self._pool = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="sm2-verify")
        self._range = self._load_range()
        #: key_id -> its admission entry; entries never change once committed, so a found
        #: admission stays right (and the lookup scans the governance entries: not per request)
        self._admissions: dict[str, tuple[int, SignedRecord]] = {}
        #: (commit counter, latest final checkpoint) as last read; replaced whole (see status_document)
        self._final_memo: tuple[int, tuple[int, str]] | None = None
        #: inclusion proofs of key admission records per (index, tree size): shared by every licence an
        #: agency key signed, and an append-only log's proof for a given (index, size) never changes
        self._admission_proofs: dict[tuple[int, int], InclusionProof] = {}
        #: (block hash, signature checks that passed) of this node's latest proposal: when the same
        #: block comes back to apply_block, those exact (entry bytes, key point) pairs are not verified
        #: a second time — every other check of apply_block still runs
        self._proposed: tuple[bytes, frozenset[tuple[bytes, int, int]]] | None = None
        #: block proposers' SM2 keys as first seen (equal keys hash equal): see _check_proposer
        self._node_keys: dict[SM2PublicKey, SM2PublicKey] = {}
        #: status map versions by tree size (ADR 0018), newest last; built from the licence table
        #: on first use (a CLI command that never needs it never pays for it)
        self._status_maps: OrderedDict[int, StatusMap] = OrderedDict()
        self._status_lock = threading.Lock()

    @classmethod
    def open(cls, url: str, identity: NodeIdentity | None = None, *, create: bool = True) -> Ledger:
        """The ledger at ``url``; ``create=False`` refuses a database that is not a ledger yet."""
        return cls(SqlStore(url, create=create), identity)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self.store.close()

    def _load_range(self) -> CompactRange:
        with self.store.read() as conn:
            size = self.store.tree_size(conn)
        return CompactRange.from_nodes(size, self.store, hasher=self.hasher)

    def _status_map(self, conn: Connection, size: int) -> StatusMap | None:
        """The status map at tree ``size`` as committed, or None if this node no longer has it.

        Kept per size as blocks are written; when ``size`` is the head of ``conn``'s snapshot
        and not kept (first use, or another process appended), it is built from the licence
        table of that snapshot, which is the state at that size.
        """
        with self._status_lock:
            found = self._status_maps.get(size)
            older = max((s for s in self._status_maps if s < size), default=None)
            base = None if older is None else self._status_maps[older]
        if found is not None:
            return found
        if self.store.tree_size(conn) != size:
            return None
        if base is not None and older is not None and size - older <= _STATUS_CATCH_UP:
            # another process appended since: only the licences of those entries changed
            changed = self.store.licence_ids_between(conn, older, size)
            built = base.updated(
                (status_key(licence_id), state_value(json.loads(data)))
                for licence_id, data in self.store.licence_rows(conn, changed)
            )
        else:
            built = StatusMap.build(
                (status_key(licence_id), state_value(json.loads(data)))
                for licence_id, data in self.store.licence_rows(conn)
            )
        self._keep_status_map(size, built)
        return built

    def _keep_status_map(self, size: int, status: StatusMap) -> None:
        with self._status_lock:
            self._status_maps[size] = status
            self._status_maps.move_to_end(size)
            while len(self._status_maps) > _STATUS_VERSIONS:
                self._status_maps.popitem(last=False)

    # -- reads ----------------------------------------------------------------------------

    @property
    def origin(self) -> str:
        with self.store.read() as conn:
            origin = self.store.meta_get(conn, "origin")
        if origin is None:
            raise StorageError("the ledger is not initialised (run `certledger init`)", reason="ledger.uninitialised")
        return origin

    def tree_size(self) -> int:
        with self.store.read() as conn:
            return self.store.tree_size(conn)

    def root(self, size: int | None = None) -> bytes:
        size = self.tree_size() if size is None else size
        return root_at(size, self.store, hasher=self.hasher)

    def latest_checkpoint(self) -> tuple[int, str]:
        """The newest *final* checkpoint: signed by the quorum of nodes the genesis policy demands.

        The note carries this node's signatures plus the other nodes'
        cosignature lines collected for the same tree head. With a quorum of
        one (a single node) every checkpoint is final when written.
        """
        with self.store.read() as conn:
            return self._latest_checkpoint(conn)

    def _final_checkpoint(self, conn: Connection, counter: int | None) -> tuple[int, str]:
        """:meth:`latest_checkpoint` in ``conn``'s snapshot, or as kept for the store's commit ``counter``.

        Kept only when the counter has not moved while it was read: then no commit fell between
        reading the counter and the snapshot, and the checkpoint is the one of that counter.
        """
        memo = self._final_memo
        if counter is not None and memo is not None and memo[0] == counter:
            return memo[1]
        found = self._latest_checkpoint(conn)
        if counter is not None and self.store.commit_counter() == counter:
            self._final_memo = (counter, found)
        return found

    def _latest_checkpoint(self, conn: Connection) -> tuple[int, str]:
        policy = self.store.cached_policy(conn)
        threshold = policy.quorum_threshold if policy is not None else 1
        size = self.store.final_tree_size(conn, threshold - 1)
        cp = self.store.checkpoint(conn, size) if size is not None else None
        if cp is None:
            raise StorageError("the ledger has no final checkpoint yet", reason="ledger.not_final")
        lines = [line for _, line in self.store.cosignatures(conn, cp[0])]
        return cp[0], _merge_note(cp[1], lines)

    def latest_own_checkpoint(self) -> tuple[int, str]:
        """This node's newest checkpoint (final or not)."""
        with self.store.read() as conn:
            cp = self.store.checkpoint(conn)
        if cp is None:
            raise StorageError("the ledger has no checkpoint yet", reason="ledger.uninitialised")
        return cp

    def checkpoint_at(self, tree_size: int) -> str | None:
        with self.store.read() as conn:
            cp = self.store.checkpoint(conn, tree_size)
            if cp is None:
                return None
            lines = [line for _, line in self.store.cosignatures(conn, tree_size)]
        return _merge_note(cp[1], lines)

    def add_cosignatures(self, tree_size: int, signer: str, lines: Sequence[str]) -> None:
        """Store another node's verified signature lines for our checkpoint at ``tree_size``."""
        self.add_cosignature_sets([(tree_size, signer, lines)])

    def add_cosignature_sets(self, sets: Sequence[tuple[int, str, Sequence[str]]]) -> None:
        """Store several nodes' verified signature lines, (tree size, signer, lines) each, in one transaction.

        A signer's slot that is already stored is kept: SM2 signatures are
        randomised, so a node that signed the same checkpoint again has a
        different, equally valid line, and one is enough.
        """
        if not sets:
            return
        with self._write_lock, self.store.write() as conn:
            known: dict[int, dict[str, str]] = {}
            rows: list[tuple[int, str, str]] = []
            for tree_size, signer, lines in sets:
                stored = known.get(tree_size)
                if stored is None:
                    stored = known[tree_size] = dict(self.store.cosignatures(conn, tree_size))
                have = set(stored.values())
                for i, line in enumerate(lines):
                    slot = f"{signer}#{i}"
                    if line in have or slot in stored:
                        continue
                    rows.append((tree_size, slot, line))
                    stored[slot] = line
                    have.add(line)
            self.store.add_cosignatures(conn, rows)

    def record_evidence(self, kind: str, detail: dict[str, Any]) -> None:
        """Keep signed statements that prove misbehaviour (forks, invalid blocks)."""
        import json as _json

        with self.store.write() as conn:
            self.store.add_evidence(conn, kind, now_utc().isoformat(), _json.dumps(detail, ensure_ascii=False))

    def licence(self, licence_id: str) -> LicenceState | None:
        with self.store.read() as conn:
            return SqlStateView(conn, self.store).licence(licence_id)

    def entry(self, index: int) -> SignedRecord:
        with self.store.read() as conn:
            return self._entry(conn, index)

    def _entry(self, conn: Connection, index: int) -> SignedRecord:
        row = self.store.entry(conn, index)
        if row is None:
            raise InvalidInputError(f"no entry {index}", reason="entry.unknown")
        return SignedRecord.from_bytes(row.data)

    def inclusion_proof(self, index: int, tree_size: int | None = None) -> InclusionProof:
        with self.store.read() as conn:
            size = self.store.tree_size(conn) if tree_size is None else tree_size
            return self._inclusion_proof(conn, index, size)

    def inclusion_proofs(self, requests: Sequence[tuple[int, int]]) -> list[InclusionProof | CertLedgerError]:
        """The proofs of many (index, tree size) pairs from one snapshot, each as :meth:`inclusion_proof`.

        The acknowledgements of one block ask for proofs in the same tree that share most of
        their nodes: their leaves and nodes are read in two queries, not two per proof. A
        request that cannot be answered gets its error in its place; the others are unaffected.
        """
        out: list[InclusionProof | CertLedgerError | None] = [None] * len(requests)
        plans: dict[int, ProofPlan] = {}
        with self.store.read() as conn:
            leaves = self.store.leaf_hashes(conn, sorted({index for index, _ in requests}))
            for pos, (index, size) in enumerate(requests):
                if index not in leaves or index >= size:
                    out[pos] = InvalidInputError(f"entry {index} is not in a tree of size {size}", reason="proof.range")
                    continue
                try:
                    plans[pos] = inclusion_proof_keys(index, size)
                except CertLedgerError as exc:
                    out[pos] = exc
            keys = list(dict.fromkeys(key for plan in plans.values() for key in plan.keys))
            try:
                hashes = dict(zip(keys, read_nodes(_ConnReader(self.store, conn), keys, self.hasher), strict=True))
            except StorageError:
                # a size beyond what is stored: find out which, one proof at a time
                for pos in plans:
                    index, size = requests[pos]
                    try:
                        out[pos] = self._inclusion_proof(conn, index, size)
                    except CertLedgerError as exc:
                        out[pos] = exc
                return [r for r in out if r is not None]
        for pos, plan in plans.items():
            index, size = requests[pos]
            path = plan.assemble(self.hasher, [hashes[key] for key in plan.keys])
            out[pos] = InclusionProof(index, size, leaves[index], tuple(path))
        return [r for r in out if r is not None]

    def _inclusion_proof(self, conn: Connection, index: int, size: int, row: EntryRow | None = None) -> InclusionProof:
        """The proof of entry ``index`` in the tree of ``size``; ``row``: that entry, when already read."""
        if row is None or row.index != index:
            row = self.store.entry(conn, index)
        if row is None or index >= size:
            raise InvalidInputError(f"entry {index} is not in a tree of size {size}", reason="proof.range")
        path = inclusion_proof(index, size, _ConnReader(self.store, conn), hasher=self.hasher)
        return InclusionProof(index, size, row.leaf_hash, tuple(path))

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        with self.store.read() as conn:
            size = self.store.tree_size(conn) if new_size is None else new_size
            if not 0 <= old_size <= size <= self.store.tree_size(conn):
                raise InvalidInputError(f"no consistency proof from {old_size} to {size}", reason="proof.range")
            return consistency_proof(old_size, size, _ConnReader(self.store, conn), hasher=self.hasher)

    def history(self, licence_id: str, tree_size: int | None = None) -> list[HistoryItem]:
        with self.store.read() as conn:
            size = self.store.tree_size(conn) if tree_size is None else tree_size
            reader = _ConnReader(self.store, conn)
            items = []
            for row in self.store.licence_entries(conn, licence_id):
                if row.index >= size:
                    break
                path = inclusion_proof(row.index, size, reader, hasher=self.hasher)
                items.append(
                    HistoryItem(
                        index=row.index,
                        block_height=row.block_height,
                        record=SignedRecord.from_bytes(row.data),
                        proof=InclusionProof(row.index, size, row.leaf_hash, tuple(path)),
                    )
                )
        return items

    def licence_records(self, licence_id: str) -> list[tuple[int, SignedRecord]]:
        """Every record of the licence on this ledger, oldest first, as (index, record).

        :meth:`history` without the inclusion proofs (one per record, most of its cost), for
        callers that only show the records.
        """
        with self.store.read() as conn:
            rows = self.store.licence_entries(conn, licence_id)
        return [(row.index, SignedRecord.from_bytes(row.data)) for row in rows]

    def key_admission(self, key_id: str) -> tuple[int, SignedRecord] | None:
        """The governance entry that introduced agency key ``key_id`` (GENESIS, ADMIT or ROTATE)."""
        cached = self._admissions.get(key_id)
        if cached is not None:
            return cached
        with self.store.read() as conn:
            for row in self.store.governance_entries(conn):
                signed = SignedRecord.from_bytes(row.data)
                p = signed.record.payload
                keys: list[Any] = []
                if signed.record.type is RecordType.GENESIS:
                    keys = [k for a in p["agencies"] for k in a["keys"]]
                elif signed.record.type is RecordType.AGENCY_ADMIT:
                    keys = list(p["agency"]["keys"])
                else:
                    keys = [p["new_key"]]
                if any(k["key_id"] == key_id for k in keys):
                    self._admissions[key_id] = (row.index, signed)
                    return row.index, signed
        return None

    def agency(self, agency_id: str) -> Agency | None:
        with self.store.read() as conn:
            return SqlStateView(conn, self.store).agency(agency_id)

    def quorum_policy(self) -> tuple[str, list[Node], int] | None:
        """(origin, admitted nodes, quorum threshold), or None before genesis."""
        with self.store.read() as conn:
            policy = self.store.cached_policy(conn)
            if policy is None:
                return None
            nodes = [n for n in self.store.all_nodes(conn) if n.removed_at is None]
        return policy.origin, nodes, policy.quorum_threshold

    def status_document(self, licence_id: str) -> dict[str, Any]:
        """Everything a verifier needs about a licence, at the latest final checkpoint.

        The status, the latest record with its inclusion proof, the governance
        record that admitted the signing key with its own inclusion proof, and
        the checkpoint. Served by ``GET /v1/licences/{id}``, embedded in issued
        files as their proof bundle, and checked by ``ledger.proofcheck``.
        """
        # One read snapshot for all of it: the licence, the checkpoint and both proofs are of the
        # same ledger state, and one transaction instead of six is most of a cache miss's cost.
        # The final checkpoint is the same for every licence until the next commit: it is kept
        # per commit counter, read before the snapshot begins (so the snapshot is at least as new).
        counter = self.store.commit_counter()
        with self.store.read() as conn:
            view = SqlStateView(conn, self.store)
            lic = view.licence(licence_id)
            if lic is None:
                raise self._unknown_licence(conn, counter, licence_id)
            size, note = self._final_checkpoint(conn, counter)
            if lic.latest_index >= size:
                # a kept checkpoint may predate this snapshot (a commit since the counter was read)
                size, note = self._latest_checkpoint(conn)
            if lic.latest_index >= size:
                # applied here, but its checkpoint is not yet quorum-cosigned
                raise NotFinalError("the licence's latest record is not final yet; retry shortly")
            row = self.store.entry(conn, lic.latest_index)
            if row is None:
                raise InvalidInputError(f"no entry {lic.latest_index}", reason="entry.unknown")
            latest = SignedRecord.from_bytes(row.data)
            found = self.key_admission(latest.record.key_id)
            agency = view.agency(latest.record.agency)
            key = agency.key(latest.record.key_id) if agency else None
            if found is None or key is None:
                raise InvalidInputError("the record's key has no admission record", reason="agency.key_unknown")
            admission_index, admission = found
            status_map = self._status_map(conn, size)
            if status_map is None:
                # a node that restarted holds the map at its head only, and the final checkpoint lags
                raise NotFinalError("the status map of the final checkpoint is not held here yet; retry shortly")
            status_proof = status_map.proof(status_key(licence_id))
            latest_proof = self._inclusion_proof(conn, lic.latest_index, size, row)
            admission_proof = self._admission_proofs.get((admission_index, size))
            if admission_proof is None:
                admission_proof = self._inclusion_proof(conn, admission_index, size)
                if len(self._admission_proofs) >= 1024:
                    self._admission_proofs.clear()  # bounded: old sizes are never asked for again
                self._admission_proofs[(admission_index, size)] = admission_proof
        state = lic.to_json()
        return {
            "origin": latest.record.origin,
            "licence_id": lic.licence_id,
            "status": state["status"],
            "version": lic.version,
            "issuer": lic.issuer,
            "type_code": lic.type_code,
            "region": lic.region,
            "files": dict(lic.files),
            "metadata": dict(lic.metadata),
            "issued_at": state["issued_at"],
            "updated_at": state["updated_at"],
            "revocation_reason": lic.revocation_reason,
            "superseded_files": list(lic.superseded_files),
            "latest_record": latest.to_json(),
            "inclusion_proof": latest_proof.to_json(),
            "signing_key": {
                "agency_id": latest.record.agency,
                "key_id": key.key_id,
                "public_key": encode_public_key(key.public_key),
                "record": admission.to_json(),
                "inclusion_proof": admission_proof.to_json(),
            },
            "state": state,
            "status_proof": status_proof.to_json(),
            "checkpoint": note,
        }

    def _unknown_licence(self, conn: Connection, counter: int | None, licence_id: str) -> InvalidInputError:
        """The not-found error, with a proof of absence at the final checkpoint when one can be given.

        Licences never leave the status map, so one absent from this snapshot was absent at every
        earlier size too; a verifier checks the proof against the quorum's checkpoint (ADR 0018).
        """
        error = InvalidInputError(f"licence {licence_id} is not on this ledger", reason="state.unknown_licence")
        try:
            size, note = self._final_checkpoint(conn, counter)
        except CertLedgerError:
            return error  # no final checkpoint yet: nothing to prove against
        status_map = self._status_map(conn, size)
        if status_map is None:
            return error
        proof = status_map.proof(status_key(licence_id))
        error.details["absence"] = {"tree_size": size, "status_proof": proof.to_json(), "checkpoint": note}
        return error

    def block(self, height: int) -> Block | None:
        with self.store.read() as conn:
            return self.store.block(conn, height)

    def entries(self, start: int, end: int) -> list[tuple[EntryRow, SignedRecord]]:
        with self.store.read() as conn:
            rows = self.store.entries(conn, start, end)
        return [(r, SignedRecord.from_bytes(r.data)) for r in rows]

    # -- writes ---------------------------------------------------------------------------

    def initialise(self, genesis: SignedRecord, *, now: datetime | None = None) -> BatchResult:
        """Create the genesis block from the GENESIS record."""
        if genesis.record.type is not RecordType.GENESIS:
            raise InvalidInputError("initialise needs a GENESIS record", reason=reasons.RECORD_MALFORMED)
        with self.store.read() as conn:
            if self.store.tree_size(conn) != 0:
                raise ConflictError("the ledger is already initialised", reason=reasons.GOVERNANCE_CONFLICT)
        result = self.submit([genesis], now=now)
        result.raise_first()
        return result

    def submit(
        self, records: Sequence[SignedRecord], *, now: datetime | None = None, all_or_nothing: bool = False
    ) -> BatchResult:
        """Validate ``records`` in order, append the valid ones as one block, commit.

        Rejected records change nothing and are reported with their reason; with
        ``all_or_nothing`` one rejected record means nothing at all is appended (a batch
        whose files are written only if every record is on the ledger).
        Returns once the block is durable. (Single node: this node is the sequencer.)
        """
        identity = self._identity()
        now = now or now_utc()
        result = BatchResult()
        if not records:
            return result
        with self._write_lock:
            # 1. parallel signature pre-verification against the committed state
            preverified = self._preverify(records)
            try:
                with self.store.write() as conn:
                    batch = self._validate_batch(conn, records, preverified, now)
                    result.accepted, result.rejected = batch.accepted, batch.rejected
                    if all_or_nothing and batch.rejected:
                        result.accepted = []
                    elif batch.rows:
                        block = sign_block(self._header(batch, identity.node_id), identity.block_key)
                        result.block, result.checkpoint = block, self._write(conn, batch, block, identity)
            except BaseException:
                # the transaction rolled back: the in-memory frontier must forget the batch
                self._range = self._load_range()
                raise
            if result.block is not None:
                self._range = batch.range
                self._keep_status_map(batch.range.size, batch.status)
        return result

    def propose(self, records: Sequence[SignedRecord], *, now: datetime | None = None) -> Proposal:
        """Validate ``records`` against the committed state and sign a block for them; write nothing.

        The leader of a cluster publishes the proposal; every node (the leader
        included) then appends it through :meth:`apply_block`.
        """
        identity = self._identity()
        now = now or now_utc()
        passed: set[tuple[bytes, int, int]] = set()
        preverified = self._preverify(records, remember=passed)
        with self._write_lock, self.store.read() as conn:
            batch = self._validate_batch(conn, records, preverified, now)
        if not batch.rows:
            return Proposal(None, [], batch.rejected)
        block = sign_block(self._header(batch, identity.node_id), identity.block_key)
        self._proposed = (block.hash(), frozenset(passed))
        accepted = [records[a.position] for a in batch.accepted]
        return Proposal(block, accepted, batch.rejected)

    def apply_block(self, block: Block, entries: Sequence[SignedRecord]) -> BatchResult:
        """Re-validate a block made by another node (or by this one as leader) and append it.

        Everything is checked again here — the link to this node's latest block,
        the proposer's admission and SM2 signature, every entry against this
        node's own state at the block's time, and the resulting tree root — so a
        faulty or lying proposer cannot make this node store anything invalid.
        Raises VerificationError (nothing written) if any check fails.
        """
        identity = self._identity()
        result = BatchResult()
        proposed = self._proposed
        # our own proposal coming back: its signatures passed moments ago (same bytes, same key point)
        verified = proposed[1] if proposed is not None and proposed[0] == block.hash() else None
        with self._write_lock:
            preverified = self._preverify(entries, verified=verified)
            try:
                with self.store.write() as conn:
                    prev = self.store.latest_block(conn)
                    check_link(prev, block.header)
                    self._check_proposer(conn, block, entries)
                    batch = self._validate_batch(conn, entries, preverified, block.header.time)
                    if batch.rejected:
                        first = batch.rejected[0]
                        raise VerificationError(
                            f"block {block.height}: entry {block.header.first_index + first.position} is invalid: "
                            f"{first.message} [{first.reason}]",
                            reason=reasons.BLOCK_ENTRY,
                        )
                    if (batch.start, batch.range.size, batch.range.root()) != (
                        block.header.first_index,
                        block.header.tree_size,
                        block.header.tree_root,
                    ):
                        raise VerificationError(
                            f"block {block.height}: its header does not match the tree of its entries",
                            reason=reasons.BLOCK_ROOT,
                        )
                    if block.header.status_root != batch.status.root:
                        raise VerificationError(
                            f"block {block.height}: its status map root is not the state its entries leave",
                            reason=reasons.BLOCK_STATUS_ROOT,
                        )
                    result.accepted = batch.accepted
                    result.block, result.checkpoint = block, self._write(conn, batch, block, identity)
            except BaseException:
                self._range = self._load_range()
                raise
            self._range = batch.range
            self._keep_status_map(batch.range.size, batch.status)
        return result

    def _check_proposer(self, conn: Connection, block: Block, entries: Sequence[SignedRecord]) -> None:
        if block.height == 0:
            # the genesis block is signed by a node the GENESIS record itself names
            if len(entries) != 1 or entries[0].record.type is not RecordType.GENESIS:
                raise VerificationError("block 0 must hold exactly the GENESIS record", reason=reasons.BLOCK_HEADER)
            nodes = {n["id"]: n for n in entries[0].record.payload["nodes"]}
            node_json = nodes.get(block.header.proposer)
            if node_json is None:
                raise VerificationError("block 0 proposer is not a genesis node", reason=reasons.BLOCK_SIGNATURE)
            block.verify(node_from_payload(node_json).sm2_public_key)
            return
        node = SqlStateView(conn, self.store).node(block.header.proposer)
        # removal takes effect when it is appended, whatever time a later block claims (as for agencies)
        if node is None or node.removed_at is not None:
            raise VerificationError(
                f"block {block.height}: proposer {block.header.proposer} is not an admitted node",
                reason=reasons.BLOCK_SIGNATURE,
            )
        # one key object per node key: it holds the decoded OpenSSL key (decoding costs about a verification)
        block.verify(self._node_keys.setdefault(node.sm2_public_key, node.sm2_public_key))

    def _identity(self) -> NodeIdentity:
        if self.identity is None:
            raise StorageError("this ledger is opened read-only (no node identity)", reason="ledger.read_only")
        return self.identity

    def _header(self, batch: _Batch, proposer: str) -> BlockHeader:
        header = BlockHeader(
            origin=batch.origin,
            height=batch.height,
            prev_hash=GENESIS_PREV_HASH if batch.prev is None else batch.prev.hash(),
            first_index=batch.start,
            tree_size=batch.range.size,
            tree_root=batch.range.root(),
            status_root=batch.status.root,
            time=batch.time,
            proposer=proposer,
        )
        check_link(batch.prev, header)
        return header

    def _write(self, conn: Connection, batch: _Batch, block: Block, identity: NodeIdentity) -> str:
        """Persist a validated batch as ``block``; returns this node's signed checkpoint."""
        if batch.prev is None:
            self.store.meta_put(conn, "origin", batch.origin)
            self.store.meta_put(conn, "policy", batch.genesis_hex)
        rows = [replace(r, block_height=block.height) for r in batch.rows]
        note = identity.sign_checkpoint(
            batch.origin, block.header.tree_size, block.header.tree_root, (extension_line(block.header.status_root),)
        )
        self.store.write_batch(conn, rows, batch.new_nodes, batch.changes, block, (block.header.tree_size, note))
        return note

    def _preverify(
        self,
        records: Sequence[SignedRecord],
        *,
        remember: set[tuple[bytes, int, int]] | None = None,
        verified: frozenset[tuple[bytes, int, int]] | None = None,
    ) -> list[CertLedgerError | bool | None]:
        """True = verified, an error = failed, None = must be checked in sequence.

        Keys are resolved once, in this thread, from the committed state; only
        the SM2 verifications (which release the GIL) run in the pool.
        ``remember`` collects the (entry bytes, key x, key y) of every check that
        passed; a check listed in ``verified`` passed already and is not repeated
        (the key still comes from the committed state read here, so a key revoked
        in between is not trusted).
        """
        keys: list[Any] = []
        with self.store.read() as conn:
            view = SqlStateView(conn, self.store)
            for signed in records:
                record = signed.record
                agency = None if record.type in GOVERNANCE_TYPES else view.agency(record.agency)
                key = agency.key(record.key_id) if agency is not None else None
                # governance keys come from the policy, unknown agencies may be admitted
                # earlier in this batch: both are checked in sequence
                keys.append(key.public_key if key is not None else None)

        def check(item: tuple[SignedRecord, Any]) -> CertLedgerError | bool | None:
            signed, pub = item
            if pub is None:
                return None
            done = (signed.entry_bytes(), pub.x, pub.y)
            if verified is not None and done in verified:
                return True
            try:
                signed.verify_signature_by(pub)
            except CertLedgerError as exc:
                return exc
            if remember is not None:
                remember.add(done)  # set.add is atomic under the GIL: safe from the pool's threads
            return True

        def check_all(items: list[tuple[SignedRecord, Any]]) -> list[CertLedgerError | bool | None]:
            return [check(item) for item in items]

        pairs = list(zip(records, keys, strict=True))
        if len(pairs) < 8:
            return check_all(pairs)
        # one task per worker, not per record: handing a task to the pool costs about a tenth of a
        # verification in this thread, which holds the GIL the workers need
        step = -(-len(pairs) // self._workers)
        return [r for part in self._pool.map(check_all, _slices(pairs, step)) for r in part]

    def _validate_batch(
        self,
        conn: Connection,
        records: Sequence[SignedRecord],
        preverified: Sequence[CertLedgerError | bool | None],
        now: datetime,
    ) -> _Batch:
        """Validate ``records`` in order on top of the committed state (nothing written)."""
        start = self.store.tree_size(conn)
        if start != self._range.size:
            # another writer (process) appended since our last batch: the frontier and the cached
            # agencies (a key may have been retired meanwhile) are stale
            self.store.invalidate_caches()
            self._range = CompactRange.from_nodes(start, _ConnReader(self.store, conn), hasher=self.hasher)
        tree = self._range.copy()
        prev = self.store.latest_block(conn)
        height = 0 if prev is None else prev.height + 1
        if prev is not None and now < prev.header.time:
            # a block is never dated before its predecessor (check_link): a proposer whose clock is
            # behind the previous proposer's dates its block, and validates it, at that block's time
            now = prev.header.time
        base_view = SqlStateView(conn, self.store)
        base_view.prefetch(
            (s.record.licence_id for s in records),
            ((s.record.agency or GOVERNANCE_SIGNER, s.record.nonce) for s in records),
        )
        overlay = OverlayState(base_view)
        batch = _Batch(
            start=start,
            height=height,
            prev=prev,
            range=tree,
            origin=records[0].record.origin
            if prev is None and records
            else (prev.header.origin if prev is not None else ""),
            time=now,
        )
        for position, signed in enumerate(records):
            index = start + len(batch.rows)
            pre = preverified[position]
            try:
                if isinstance(pre, CertLedgerError):
                    raise pre
                change = validate(signed, overlay, index=index, now=now, signatures_verified=pre is True)
            except CertLedgerError as exc:
                batch.rejected.append(Rejected(position, exc.reason, str(exc), exc))
                continue
            overlay.apply(change)
            batch.changes.append(change)
            data = signed.entry_bytes()
            leaf = self.hasher.hash_leaf(data)
            batch.new_nodes.extend(tree.append(leaf))
            record = signed.record
            if index == 0:
                batch.genesis_hex = data.hex()
            batch.rows.append(
                EntryRow(
                    index=index,
                    leaf_hash=leaf,
                    record_hash=record.record_hash(),
                    data=data,
                    block_height=height,
                    rtype=str(record.type),
                    licence_id=record.licence_id or None,
                    agency_id=record.agency or None,
                )
            )
            batch.accepted.append(Accepted(position, index, record.record_hash(), leaf))
        base = self._status_map(conn, start)
        if base is None:  # start is this snapshot's head: the map is kept or built, never missing
            raise StorageError(f"no status map at tree size {start}", reason="ledger.status_map")
        final = {c.licence.licence_id: c.licence for c in batch.changes if c.licence is not None}
        batch.status = base.updated((status_key(i), state_value(lic.to_json())) for i, lic in final.items())
        return batch

    def rebuild(self, progress: Callable[[int], None] | None = None) -> int:
        """Recompute every derived table from the entries; returns the entry count."""
        from ledger.state import MemoryState

        with self._write_lock, self.store.write() as conn:
            self.store.clear_derived(conn)
            state = MemoryState()
            blocks = {b.height: b for b in self.store.iter_blocks(conn)}
            count = 0
            for row in self.store.iter_entries(conn):
                signed = SignedRecord.from_bytes(row.data)
                block_time = blocks[row.block_height].header.time
                change = validate(signed, state, index=row.index, now=block_time, signatures_verified=True)
                state.apply(change)
                self.store.apply_change(conn, change)
                count += 1
                if progress is not None:
                    progress(1)
        self.store.invalidate_caches()
        with self._status_lock:
            self._status_maps.clear()
        return count


def _merge_note(note: str, lines: Sequence[str]) -> str:
    """Append cosignature lines to a signed note (each line once)."""
    if not lines:
        return note
    present = set(note.splitlines())
    extra = [line.rstrip("\n") for line in lines if line.rstrip("\n") not in present]
    return note + "".join(line + "\n" for line in extra)


class _ConnReader:
    """NodeReader bound to one open connection (a proof reads one consistent snapshot)."""

    def __init__(self, store: SqlStore, conn: Connection) -> None:
        self.store = store
        self.conn = conn

    def get_nodes(self, keys: Sequence[tuple[int, int]], /) -> list[bytes]:
        return self.store.get_nodes_conn(self.conn, keys)


def _slices(items: list[_T], step: int) -> list[list[_T]]:
    return [items[i : i + step] for i in range(0, len(items), step)]

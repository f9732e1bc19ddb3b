"""The SQL ledger store (SQLAlchemy 2 Core).

SQLite is the embedded default, in WAL mode with ``synchronous=FULL`` so a
committed transaction survives power loss; PostgreSQL is used by URL. One
write transaction holds a whole batch: its entries, the new tree nodes, the
derived-state changes, the block and the checkpoint. A batch is acknowledged
only after that transaction commits, so a crash at any point leaves either
all of it or none of it.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, delete, event, func, insert, inspect, make_url, select, tuple_
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from ledger.blocks import Block, BlockHeader
from ledger.merkle.nodes import NodeKey
from ledger.state import Agency, LicenceState, Node, Policy, StateChange
from ledger.store import schema as t
from signing.errors import InvalidInputError, StorageError

_MIGRATIONS = Path(__file__).parent / "migrations"
#: execution option marking a connection opened by :meth:`SqlStore.read`
_READ_ONLY = "certledger_read_only"
#: pg_advisory_xact_lock key that serialises ledger writers on PostgreSQL (ASCII "certledg")
_PG_WRITE_LOCK = 0x63657274_6C656467


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL: readers never block the writer; FULL: fsync the WAL on every commit (durability)
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL or bare path (None: not SQLite, or in memory)."""
    if "://" not in url:
        return Path(url).resolve()
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def _shown(url: str) -> str:
    """``url`` as it may appear in a message (no password)."""
    if "://" not in url:
        return url
    return make_url(url).render_as_string(hide_password=True)


def _require_existing(url: str) -> None:
    """Refuse a SQLite ledger file that is missing or holds no ledger (read-only: nothing is written)."""
    path = _sqlite_file(url)
    if path is None:
        return  # a server database: checked through the engine (reading its catalogue changes nothing)
    if not path.is_file():
        raise InvalidInputError(
            f"no ledger database at {path} (run `certledger init`, or check the configured database)",
            reason="store.missing",
        )
    try:
        # opened read-only: the engine's own connection would set WAL mode, i.e. write to the file
        with contextlib.closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)) as db:
            tables = {str(row[0]) for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:
        raise InvalidInputError(f"{path} is not a SQLite database ({exc})", reason="store.not_a_ledger") from None
    if not {"alembic_version", "entries"} <= tables:
        raise InvalidInputError(
            f"{path} is not a certledger ledger database (run `certledger init` to create one)",
            reason="store.not_a_ledger",
        )


def make_engine(url: str) -> Engine:
    """An engine for ``url``; a bare path means SQLite. InvalidInputError for a URL no driver here serves."""
    try:
        return _engine(url)
    except (ArgumentError, NoSuchModuleError, ModuleNotFoundError) as exc:
        raise InvalidInputError(
            f"unsupported database URL {_shown(url) if '://' in url else url!r}: {exc} "
            "(use sqlite:///path or postgresql://user@host/db)",
            reason="config.invalid",
        ) from None


def _engine(url: str) -> Engine:
    if "://" not in url:
        url = f"sqlite:///{Path(url).resolve()}"
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "isolation_level": None})
        event.listen(engine, "connect", _sqlite_pragmas)

        @event.listens_for(engine, "begin")
        def _begin_immediate(conn: Connection) -> None:
            # writers take the write lock at BEGIN, so two writers never both read a stale tree size;
            # readers take a deferred snapshot (under WAL a reader never blocks the writer)
            conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(_READ_ONLY) else "BEGIN IMMEDIATE")

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(url, pool_pre_ping=True)


@dataclass(frozen=True)
class EntryRow:
    index: int
    leaf_hash: bytes
    record_hash: str
    data: bytes
    block_height: int
    rtype: str
    licence_id: str | None
    agency_id: str | None


class SqlStateView:
    """:class:`StateView` over the derived tables, read through one connection.

    :meth:`prefetch` loads the licences and nonces a batch will ask about in two
    queries, so validating a batch costs O(1) queries instead of O(records).
    """

    def __init__(self, conn: Connection, store: SqlStore) -> None:
        self.conn = conn
        self.store = store
        self._licences: dict[str, LicenceState | None] = {}
        self._nonces: dict[tuple[str, str], bool] = {}

    def prefetch(self, licence_ids: Iterable[str], nonces: Iterable[tuple[str, str]]) -> None:
        ids = sorted({i for i in licence_ids if i})
        for chunk in _chunks(ids, 500):
            found = {
                str(r.licence_id): LicenceState.from_json(json.loads(r.data))
                for r in self.conn.execute(
                    select(t.st_licences.c.licence_id, t.st_licences.c.data).where(
                        t.st_licences.c.licence_id.in_(chunk)
                    )
                )
            }
            for i in chunk:
                self._licences[i] = found.get(i)
        pairs = sorted(set(nonces))
        for pchunk in _chunks(pairs, 400):
            used = {
                (str(r.signer), str(r.nonce))
                for r in _select_pairs(self.conn, "st_nonces", ("signer", "nonce"), ("signer", "nonce"), pchunk)
            }
            for pair in pchunk:
                self._nonces[pair] = pair in used

    def policy(self) -> Policy | None:
        return self.store.cached_policy(self.conn)

    def agency(self, agency_id: str) -> Agency | None:
        return self.store.cached_agency(self.conn, agency_id)

    def agency_by_key(self, key_id: str) -> Agency | None:
        owner = self.conn.execute(
            select(t.st_agency_keys.c.agency_id).where(t.st_agency_keys.c.key_id == key_id)
        ).scalar()
        return self.agency(owner) if owner else None

    def node(self, node_id: str) -> Node | None:
        data = self.conn.execute(select(t.st_nodes.c.data).where(t.st_nodes.c.node_id == node_id)).scalar()
        return Node.from_json(json.loads(data)) if data else None

    def licence(self, licence_id: str) -> LicenceState | None:
        if licence_id in self._licences:
            return self._licences[licence_id]
        data = self.conn.execute(select(t.st_licences.c.data).where(t.st_licences.c.licence_id == licence_id)).scalar()
        return LicenceState.from_json(json.loads(data)) if data else None

    def admitted_nodes(self) -> set[str]:
        rows = self.conn.execute(select(t.st_nodes.c.data)).all()
        return {node.id for node in (Node.from_json(json.loads(r.data)) for r in rows) if node.removed_at is None}

    def nonce_used(self, signer: str, nonce: str) -> bool:
        cached = self._nonces.get((signer, nonce))
        if cached is not None:
            return cached
        row = self.conn.execute(
            select(t.st_nonces.c.nonce).where(t.st_nonces.c.signer == signer, t.st_nonces.c.nonce == nonce)
        ).first()
        return row is not None


class SqlStore:
    """Tables, migrations, reads, and the one write path (:meth:`write_batch`)."""

    def __init__(self, url: str, *, create: bool = True) -> None:
        """Open the ledger database at ``url``; ``create=False`` refuses one that is not a ledger yet.

        Only ``certledger init`` (and the cluster node's first start) create a ledger: every other
        opener would otherwise turn a mistyped path into a new empty database, or add the ledger's
        tables to some other application's database, and then report "not found" from it.
        """
        self.url = url
        if not create:
            _require_existing(url)
        self.engine = make_engine(url)
        self._lock = threading.Lock()
        self._agencies: dict[str, Agency] = {}
        self._policy: Policy | None = None
        self._watch: sqlite3.Connection | None = None
        self._watch_lock = threading.Lock()
        if not create and _sqlite_file(url) is None:
            try:
                ours = inspect(self.engine).has_table("alembic_version") and inspect(self.engine).has_table("entries")
            except SQLAlchemyError as exc:
                self.engine.dispose()
                raise StorageError(f"cannot open the ledger database: {exc.__class__.__name__}: {exc}") from None
            if not ours:
                self.engine.dispose()
                raise InvalidInputError(
                    f"{_shown(url)} is not a certledger ledger database (run `certledger init` to create one)",
                    reason="store.not_a_ledger",
                )
        self.migrate()

    # -- lifecycle ------------------------------------------------------------------------

    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision (idempotent)."""
        cfg = Config()
        cfg.set_main_option("script_location", str(_MIGRATIONS))
        try:
            with self.engine.begin() as conn:
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
        except SQLAlchemyError as exc:
            raise StorageError(f"cannot open or migrate the ledger database: {exc.__class__.__name__}: {exc}") from None

    def close(self) -> None:
        with self._watch_lock:
            if self._watch is not None:
                self._watch.close()
                self._watch = None
        self.engine.dispose()

    @property
    def embedded(self) -> bool:
        """Whether reads are local file reads (SQLite), never a wait on the network."""
        return self.engine.dialect.name == "sqlite"

    def commit_counter(self) -> int | None:
        """A number that changes whenever anything commits to the database; None when not known.

        Lets a reader skip re-reading what only a commit can change (the API reads the tree
        sizes for every request). SQLite: ``PRAGMA data_version`` on a connection kept for it,
        a few microseconds against ~0.15 ms for a read transaction; that connection never
        writes, so every commit, from this process or another, is another connection's and
        moves the number. Other backends (and in-memory SQLite, which another connection
        cannot see) have no such counter: None, and callers read as usual.
        """
        url = self.engine.url
        if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
            return None
        with self._watch_lock:
            try:
                if self._watch is None:
                    self._watch = sqlite3.connect(url.database, check_same_thread=False, isolation_level=None)
                row = self._watch.execute("PRAGMA data_version").fetchone()
            except sqlite3.Error:
                return None  # e.g. busy during recovery: the caller reads the database instead
        return int(row[0])

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection whose reads all see one consistent snapshot of the ledger."""
        try:
            with self.engine.connect() as conn:
                conn.execution_options(**{_READ_ONLY: True})
                if conn.dialect.name == "postgresql":
                    # READ COMMITTED would give every statement a new snapshot: an audit or a
                    # proof spanning several queries could mix two tree sizes
                    conn.execution_options(isolation_level="REPEATABLE READ")
                yield conn
        except SQLAlchemyError as exc:
            raise StorageError(f"database read failed: {exc}") from None

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One write transaction; commits on success, rolls back on any error."""
        try:
            with self.engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    # the counterpart of SQLite's BEGIN IMMEDIATE: one writer at a time across
                    # processes, taken before the transaction reads the tree size
                    conn.execute(select(func.pg_advisory_xact_lock(_PG_WRITE_LOCK)))
                yield conn
        except SQLAlchemyError as exc:
            self.invalidate_caches()
            raise StorageError(f"database write failed: {exc.__class__.__name__}: {exc}") from None
        except BaseException:
            self.invalidate_caches()
            raise

    # -- caches of rarely-changing state ---------------------------------------------------

    def invalidate_caches(self) -> None:
        with self._lock:
            self._agencies.clear()
            self._policy = None

    def cached_policy(self, conn: Connection) -> Policy | None:
        if self._policy is None:
            data = conn.execute(select(t.meta.c.value).where(t.meta.c.key == "policy")).scalar()
            if data is None:
                return None
            from ledger.records import SignedRecord

            genesis = SignedRecord.from_bytes(bytes.fromhex(data))
            self._policy = Policy.from_genesis(genesis.record)
        return self._policy

    def cached_agency(self, conn: Connection, agency_id: str) -> Agency | None:
        # Agency objects are cached so their SM2 key handles (decoded EVP_PKEYs) are reused
        agency = self._agencies.get(agency_id)
        if agency is None:
            data = conn.execute(select(t.st_agencies.c.data).where(t.st_agencies.c.agency_id == agency_id)).scalar()
            if data is None:
                return None
            agency = Agency.from_json(json.loads(data))
            with self._lock:
                self._agencies[agency_id] = agency
        return agency

    # -- reads ----------------------------------------------------------------------------

    def tree_size(self, conn: Connection) -> int:
        value = conn.execute(select(func.max(t.entries.c.idx))).scalar()
        return 0 if value is None else int(value) + 1

    def get_nodes_conn(self, conn: Connection, keys: Sequence[NodeKey]) -> list[bytes]:
        if not keys:
            return []
        rows: list[Any] = []
        for chunk in _chunks(list(dict.fromkeys(keys)), 400):
            rows += _select_pairs(conn, "tree_nodes", ("level", "idx"), ("level", "idx", "hash"), chunk)
        found = {(int(r.level), int(r.idx)): bytes(r.hash) for r in rows}
        try:
            return [found[k] for k in keys]
        except KeyError as exc:
            raise StorageError(f"tree node {exc.args[0]} is missing", reason="merkle.node_missing") from None

    def get_node_runs_conn(self, conn: Connection, keys: Sequence[NodeKey]) -> list[bytes | None]:
        """The stored hash of each node in ``keys``, None where it is missing.

        For the audit, whose keys are the full nodes a run of appends completed: per
        level they are consecutive indices, read as one range scan each instead of one
        index search per node.
        """
        by_level: dict[int, list[int]] = {}
        for level, idx in keys:
            by_level.setdefault(level, []).append(idx)
        found: dict[NodeKey, bytes] = {}
        tn = t.tree_nodes
        for level, indices in by_level.items():
            ordered = sorted(set(indices))
            start = 0
            while start < len(ordered):
                end = start
                while end + 1 < len(ordered) and ordered[end + 1] == ordered[end] + 1:
                    end += 1
                lo, hi = ordered[start], ordered[end]
                span = tn.c.level == level, tn.c.idx >= lo, tn.c.idx <= hi
                hashes = conn.execute(select(tn.c.hash).where(*span).order_by(tn.c.idx)).scalars().all()
                if len(hashes) == hi - lo + 1:
                    # the run is complete: the i-th hash is node lo + i (hash only, ~4x cheaper)
                    found.update(((level, lo + i), bytes(h)) for i, h in enumerate(hashes))
                else:
                    rows = conn.execute(select(tn.c.idx, tn.c.hash).where(*span))
                    found.update(((level, int(r.idx)), bytes(r.hash)) for r in rows)
                start = end + 1
        return [found.get(k) for k in keys]

    def get_nodes(self, keys: Sequence[NodeKey], /) -> list[bytes]:
        """NodeReader: one query per proof."""
        with self.read() as conn:
            return self.get_nodes_conn(conn, keys)

    def leaf_hashes(self, conn: Connection, indices: Sequence[int]) -> dict[int, bytes]:
        """The leaf hash of each of ``indices`` that is an entry (absent ones are left out)."""
        found: dict[int, bytes] = {}
        c = t.entries.c
        for chunk in _chunks(list(indices), 500):
            for row in conn.execute(select(c.idx, c.leaf_hash).where(c.idx.in_(chunk))):
                found[int(row.idx)] = bytes(row.leaf_hash)
        return found

    def entry(self, conn: Connection, index: int) -> EntryRow | None:
        row = conn.execute(select(t.entries).where(t.entries.c.idx == index)).first()
        return _entry_row(row) if row is not None else None

    def entries(self, conn: Connection, start: int, end: int) -> list[EntryRow]:
        rows = conn.execute(
            select(t.entries).where(t.entries.c.idx >= start, t.entries.c.idx < end).order_by(t.entries.c.idx)
        ).all()
        return [_entry_row(r) for r in rows]

    def iter_entries(self, conn: Connection, start: int = 0, chunk: int = 5000) -> Iterator[EntryRow]:
        pos = start
        while True:
            rows = self.entries(conn, pos, pos + chunk)
            if not rows:
                return
            yield from rows
            pos = rows[-1].index + 1

    def licence_rows(self, conn: Connection, ids: Sequence[str] | None = None) -> Iterator[tuple[str, str]]:
        """(ID, stored state JSON) of every licence, or of those in ``ids``; in no particular order."""
        query = select(t.st_licences.c.licence_id, t.st_licences.c.data)
        if ids is None:
            for licence_id, data in conn.execute(query):
                yield str(licence_id), str(data)
            return
        for chunk in _chunks(list(ids), 500):
            for licence_id, data in conn.execute(query.where(t.st_licences.c.licence_id.in_(chunk))):
                yield str(licence_id), str(data)

    def licence_ids_between(self, conn: Connection, start: int, end: int) -> list[str]:
        """The distinct licences of entries [start, end)."""
        e = t.entries.c
        query = select(e.licence_id).where(e.idx >= start, e.idx < end, e.licence_id.is_not(None)).distinct()
        return [str(row[0]) for row in conn.execute(query)]

    def licence_entries(self, conn: Connection, licence_id: str) -> list[EntryRow]:
        rows = conn.execute(
            select(t.entries).where(t.entries.c.licence_id == licence_id).order_by(t.entries.c.idx)
        ).all()
        return [_entry_row(r) for r in rows]

    def governance_entries(self, conn: Connection) -> list[EntryRow]:
        """The GENESIS and agency governance entries (few: they admit and rotate keys)."""
        rows = conn.execute(
            select(t.entries)
            .where(t.entries.c.rtype.in_(("GENESIS", "AGENCY_ADMIT", "AGENCY_ROTATE_KEY")))
            .order_by(t.entries.c.idx)
        ).all()
        return [_entry_row(r) for r in rows]

    def latest_block(self, conn: Connection) -> Block | None:
        row = conn.execute(select(t.blocks).order_by(t.blocks.c.height.desc()).limit(1)).first()
        return _block(row) if row is not None else None

    def block(self, conn: Connection, height: int) -> Block | None:
        row = conn.execute(select(t.blocks).where(t.blocks.c.height == height)).first()
        return _block(row) if row is not None else None

    def iter_blocks(self, conn: Connection, chunk: int = 2000) -> Iterator[Block]:
        pos = 0
        while True:
            rows = conn.execute(
                select(t.blocks).where(t.blocks.c.height >= pos).order_by(t.blocks.c.height).limit(chunk)
            ).all()
            if not rows:
                return
            for r in rows:
                yield _block(r)
            pos = int(rows[-1].height) + 1

    def block_for_index(self, conn: Connection, index: int) -> int | None:
        value = conn.execute(select(t.entries.c.block_height).where(t.entries.c.idx == index)).scalar()
        return None if value is None else int(value)

    def checkpoint(self, conn: Connection, tree_size: int | None = None) -> tuple[int, str] | None:
        q = select(t.checkpoints.c.tree_size, t.checkpoints.c.note)
        if tree_size is None:
            q = q.order_by(t.checkpoints.c.tree_size.desc()).limit(1)
        else:
            q = q.where(t.checkpoints.c.tree_size == tree_size)
        row = conn.execute(q).first()
        return (int(row.tree_size), str(row.note)) if row is not None else None

    def iter_checkpoints(self, conn: Connection) -> Iterator[tuple[int, str]]:
        for row in conn.execute(select(t.checkpoints).order_by(t.checkpoints.c.tree_size)):
            yield int(row.tree_size), str(row.note)

    def final_tree_size(self, conn: Connection, other_signers: int) -> int | None:
        """Largest checkpointed size cosigned by at least ``other_signers`` other nodes."""
        if other_signers <= 0:
            value = conn.execute(select(func.max(t.checkpoints.c.tree_size))).scalar()
            return None if value is None else int(value)
        # signer column is "<node key name>#<line no>": count distinct names
        if self.engine.dialect.name == "postgresql":
            name = func.split_part(t.cosignatures.c.signer, "#", 1)
        else:
            name = func.substr(t.cosignatures.c.signer, 1, func.instr(t.cosignatures.c.signer, "#") - 1)
        q = (
            select(t.cosignatures.c.tree_size)
            .group_by(t.cosignatures.c.tree_size)
            .having(func.count(func.distinct(name)) >= other_signers)
            .order_by(t.cosignatures.c.tree_size.desc())
            .limit(1)
        )
        value = conn.execute(q).scalar()
        return None if value is None else int(value)

    def cosignatures(self, conn: Connection, tree_size: int) -> list[tuple[str, str]]:
        rows = conn.execute(
            select(t.cosignatures.c.signer, t.cosignatures.c.line).where(t.cosignatures.c.tree_size == tree_size)
        ).all()
        return [(str(r.signer), str(r.line)) for r in rows]

    def meta_get(self, conn: Connection, key: str) -> str | None:
        value = conn.execute(select(t.meta.c.value).where(t.meta.c.key == key)).scalar()
        return None if value is None else str(value)

    def all_agencies(self, conn: Connection) -> list[Agency]:
        rows = conn.execute(select(t.st_agencies.c.data).order_by(t.st_agencies.c.agency_id)).all()
        return [Agency.from_json(json.loads(r.data)) for r in rows]

    def all_nodes(self, conn: Connection) -> list[Node]:
        rows = conn.execute(select(t.st_nodes.c.data).order_by(t.st_nodes.c.node_id)).all()
        return [Node.from_json(json.loads(r.data)) for r in rows]

    def count_licences(self, conn: Connection) -> dict[str, int]:
        rows = conn.execute(select(t.st_licences.c.status, func.count()).group_by(t.st_licences.c.status)).all()
        return {str(r[0]): int(r[1]) for r in rows}

    # -- writes ---------------------------------------------------------------------------

    def meta_put(self, conn: Connection, key: str, value: str) -> None:
        conn.execute(delete(t.meta).where(t.meta.c.key == key))
        conn.execute(insert(t.meta).values(key=key, value=value))

    def write_batch(
        self,
        conn: Connection,
        rows: Sequence[EntryRow],
        nodes: Iterable[tuple[NodeKey, bytes]],
        changes: Sequence[StateChange],
        block: Block,
        checkpoint: tuple[int, str],
    ) -> None:
        """Insert one block's worth of everything, inside the caller's transaction."""
        if rows:
            conn.execute(
                insert(t.entries),
                [
                    {
                        "idx": r.index,
                        "leaf_hash": r.leaf_hash,
                        "record_hash": r.record_hash,
                        "data": r.data,
                        "block_height": r.block_height,
                        "rtype": r.rtype,
                        "licence_id": r.licence_id,
                        "agency_id": r.agency_id,
                    }
                    for r in rows
                ],
            )
        node_rows = [{"level": k[0], "idx": k[1], "hash": h} for k, h in nodes]
        if node_rows:
            conn.execute(insert(t.tree_nodes), node_rows)
        self.apply_changes(conn, changes)
        conn.execute(
            insert(t.blocks).values(
                height=block.height,
                hash=block.hash(),
                header=block.header.to_bytes(),
                signature=block.signature,
            )
        )
        conn.execute(insert(t.checkpoints).values(tree_size=checkpoint[0], note=checkpoint[1]))

    def add_cosignature(self, conn: Connection, tree_size: int, signer: str, line: str) -> None:
        conn.execute(insert(t.cosignatures).values(tree_size=tree_size, signer=signer, line=line))

    def add_cosignatures(self, conn: Connection, rows: Sequence[tuple[int, str, str]]) -> None:
        """Insert (tree size, signer slot, line) rows in one statement."""
        if rows:
            conn.execute(insert(t.cosignatures), [{"tree_size": z, "signer": s, "line": ln} for z, s, ln in rows])

    def add_evidence(self, conn: Connection, kind: str, created_at: str, detail: str) -> None:
        conn.execute(insert(t.evidence).values(kind=kind, created_at=created_at, detail=detail))

    def evidence(self, conn: Connection) -> list[dict[str, Any]]:
        rows = conn.execute(select(t.evidence).order_by(t.evidence.c.id)).all()
        return [{"id": r.id, "kind": r.kind, "created_at": r.created_at, "detail": r.detail} for r in rows]

    def apply_changes(self, conn: Connection, changes: Sequence[StateChange]) -> None:
        """Write a batch's effects on the derived tables with bulk statements.

        Licence rows are written once per batch with their final state; the
        rare governance changes go through :meth:`apply_change`.
        """
        if not changes:
            return
        conn.execute(insert(t.st_nonces), [{"signer": c.nonce[0], "nonce": c.nonce[1]} for c in changes])
        final: dict[str, LicenceState] = {}
        for change in changes:
            if change.licence is not None:
                final[change.licence.licence_id] = change.licence
            if change.policy or change.agency or change.node or change.genesis_agencies or change.genesis_nodes:
                self.apply_change(conn, replace(change, licence=None), with_nonce=False)
        ids = list(final)
        for chunk in _chunks(ids, 500):
            conn.execute(delete(t.st_licences).where(t.st_licences.c.licence_id.in_(chunk)))
        if final:
            conn.execute(
                insert(t.st_licences),
                [
                    {
                        "licence_id": lic.licence_id,
                        "status": str(lic.status),
                        "issuer": lic.issuer,
                        "data": state_json(lic.to_json()),
                    }
                    for lic in final.values()
                ],
            )

    def apply_change(self, conn: Connection, change: StateChange, *, with_nonce: bool = True) -> None:
        """Write one record's effect on the derived tables."""
        if with_nonce:
            conn.execute(insert(t.st_nonces).values(signer=change.nonce[0], nonce=change.nonce[1]))
        if change.policy is not None:
            self._policy = None
        agencies = [*change.genesis_agencies, *([change.agency] if change.agency else [])]
        for ag in agencies:
            conn.execute(delete(t.st_agencies).where(t.st_agencies.c.agency_id == ag.id))
            conn.execute(insert(t.st_agencies).values(agency_id=ag.id, data=state_json(ag.to_json())))
            for key in ag.keys:
                conn.execute(delete(t.st_agency_keys).where(t.st_agency_keys.c.key_id == key.key_id))
                conn.execute(insert(t.st_agency_keys).values(key_id=key.key_id, agency_id=ag.id))
            with self._lock:
                self._agencies.pop(ag.id, None)
        for node in (*change.genesis_nodes, *([change.node] if change.node else [])):
            conn.execute(delete(t.st_nodes).where(t.st_nodes.c.node_id == node.id))
            conn.execute(insert(t.st_nodes).values(node_id=node.id, data=state_json(node.to_json())))
        if change.licence is not None:
            lic = change.licence
            conn.execute(delete(t.st_licences).where(t.st_licences.c.licence_id == lic.licence_id))
            conn.execute(
                insert(t.st_licences).values(
                    licence_id=lic.licence_id,
                    status=str(lic.status),
                    issuer=lic.issuer,
                    data=state_json(lic.to_json()),
                )
            )

    def clear_derived(self, conn: Connection) -> None:
        for name in t.DERIVED:
            conn.execute(delete(t.metadata.tables[name]))
        self.invalidate_caches()


def state_json(obj: dict[str, Any]) -> str:
    """The stored text of a derived row: a function of the entries alone.

    Keys are sorted because dict order depends on the path a record took (a payload
    built in code keeps its insertion order, a parsed one is in canonical order), and
    ``rebuild`` must reproduce the derived tables exactly.
    """
    return json.dumps(obj, ensure_ascii=False, sort_keys=True)


def _select_pairs(
    conn: Connection, table: str, key: tuple[str, str], columns: tuple[str, ...], pairs: Sequence[tuple[Any, Any]]
) -> list[Any]:
    """Rows of ``table`` whose two-column primary ``key`` is one of ``pairs`` (at most a few hundred).

    SQLite plans a row-value ``(a, b) IN ((?, ?), ...)`` list as a full table scan —
    O(tree size) per proof, O(all nonces) per batch — so on SQLite the query is an OR
    of primary-key equalities, which it answers with one index search per pair.
    Table and column names come from this module, never from input.
    """
    tbl = t.metadata.tables[table]
    if conn.dialect.name != "sqlite":
        query = select(*(tbl.c[c] for c in columns)).where(tuple_(*(tbl.c[k] for k in key)).in_(pairs))
        return list(conn.execute(query))
    where = " OR ".join([f"({key[0]} = ? AND {key[1]} = ?)"] * len(pairs))
    sql = f"SELECT {', '.join(columns)} FROM {table} WHERE {where}"  # noqa: S608 (placeholders only)
    return list(conn.exec_driver_sql(sql, tuple(v for pair in pairs for v in pair)))


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


_ENTRY_COLUMNS = ("idx", "leaf_hash", "record_hash", "data", "block_height", "rtype", "licence_id", "agency_id")
if tuple(c.name for c in t.entries.columns) != _ENTRY_COLUMNS:  # a schema edit must update _entry_row
    raise RuntimeError("ledger.store.sql._entry_row does not match the entries table's columns")


def _entry_row(r: Any) -> EntryRow:
    # positional, in the table's column order (every caller selects the whole table): about
    # twice as fast as attribute access per row, which matters to audit and rebuild
    idx, leaf_hash, record_hash, data, block_height, rtype, licence_id, agency_id = r
    return EntryRow(
        index=int(idx),
        leaf_hash=bytes(leaf_hash),
        record_hash=str(record_hash),
        data=bytes(data),
        block_height=int(block_height),
        rtype=str(rtype),
        licence_id=licence_id,
        agency_id=agency_id,
    )


def _block(r: Any) -> Block:
    return Block(BlockHeader.from_bytes(bytes(r.header)), bytes(r.signature))


__all__ = ["EntryRow", "SqlStateView", "SqlStore", "make_engine"]

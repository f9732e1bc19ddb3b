"""The ledger on a real PostgreSQL server (started by ``tests/pg.py``), and against SQLite.

1. End to end on PostgreSQL: genesis, agency and node admission, key rotation,
   batches with rejections, proofs checked by the independent verifier, history,
   checkpoints, audit, rebuild, reopen.
2. The append-only triggers refuse UPDATE, DELETE and TRUNCATE on every log
   table, on both databases; the derived tables stay writable (rebuild).
3. The same records submitted at the same times give byte-identical entries,
   block headers, roots and proofs on SQLite and PostgreSQL.
4. Concurrency: readers see one snapshot (and on SQLite never block the writer);
   two writers on one database interleave cleanly, and a writer's cached agency
   registry does not outlive the other writer's key rotation.
5. A node role that owns nothing cannot drop or disable the triggers.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import DBAPIError

from ledger import reasons
from ledger.audit import audit
from ledger.checkpoint import open_checkpoint
from ledger.identity import NodeKeys, checkpoint_verifiers
from ledger.merkle.verify import verify_consistency, verify_inclusion
from ledger.records import RecordType, SignedRecord
from ledger.service import Ledger
from ledger.state import LicenceStatus
from ledger.store import schema as t
from ledger.store.sql import SqlStore
from signing.sm2 import SM2PrivateKey
from tests.integration.crash_appender import AGENCY_ID, ORIGIN, Founders, agency_json, issue_payload, key_json, utc
from tests.pg import PostgresServer, postgres_db_url, postgres_server  # noqa: F401

pytestmark = pytest.mark.postgres

T0 = utc("2026-03-01T08:00:00")
AGENCY_B = "91440100MA5GZ0002B"


@dataclass
class Batch:
    now: datetime
    records: list[SignedRecord]
    #: position in the batch -> expected rejection reason
    rejected: dict[int, str] = field(default_factory=dict)


@dataclass
class Scenario:
    """A ledger's life as batches of signed records, each with its block time."""

    founders: Founders
    batches: list[Batch] = field(default_factory=list)

    @classmethod
    def build(cls) -> Scenario:
        f = Founders.generate()
        s = cls(f)
        agency_b = SM2PrivateKey.generate()
        new_a = SM2PrivateKey.generate()
        at = [T0 + timedelta(minutes=k) for k in range(7)]
        s.batches.append(Batch(at[0], [f.genesis(at[0])]))
        s.batches.append(Batch(at[1], [
            f.governance(RecordType.AGENCY_ADMIT,
                         {"agency": agency_json(AGENCY_B, "广州市市场监督管理局", agency_b, region="4401")}, at[1]),
            f.governance(RecordType.NODE_ADMIT, {"node": NodeKeys.generate("node-2").node_json("深圳节点")}, at[1]),
        ]))
        issues = [f.licence(RecordType.ISSUE, issue_payload(f"LIC-A-{i}"), at[2]) for i in range(20)]
        b_payload = [issue_payload(f"LIC-B-{i}") | {"region": "440106"} for i in range(10)]
        issues += [f.licence(RecordType.ISSUE, p, at[2], key=agency_b, agency_id=AGENCY_B) for p in b_payload]
        s.batches.append(Batch(at[2], issues))
        s.batches.append(Batch(at[3], [
            f.licence(RecordType.AMEND, issue_payload("LIC-A-0", version=2) | {"reason_text": "名称变更"}, at[3]),
            f.licence(RecordType.SUSPEND, {"licence_id": "LIC-A-1", "reason_code": "inspection",
                                           "reason_text": "检查"}, at[3]),
            f.licence(RecordType.REVOKE, {"licence_id": "LIC-B-0", "reason_code": "fraud", "reason_text": "欺诈"},
                      at[3], key=agency_b, agency_id=AGENCY_B),
            f.licence(RecordType.ISSUE, issue_payload("LIC-A-2"), at[3]),  # issued already
            f.licence(RecordType.RESUME, {"licence_id": "LIC-B-0"}, at[3], key=agency_b, agency_id=AGENCY_B),
        ], rejected={3: reasons.STATE_ALREADY_ISSUED, 4: reasons.STATE_REVOKED}))
        s.batches.append(Batch(at[4], [f.governance(RecordType.AGENCY_ROTATE_KEY, {
            "agency_id": AGENCY_ID, "new_key": key_json(new_a), "retire_key_id": f.agency.public_key.key_id,
        }, at[4])]))
        s.batches.append(Batch(at[5], [
            f.licence(RecordType.RESUME, {"licence_id": "LIC-A-1", "reason_text": "恢复"}, at[5], key=new_a),
            f.licence(RecordType.ISSUE, issue_payload("LIC-A-20"), at[5], key=new_a),
            f.licence(RecordType.ISSUE, issue_payload("LIC-A-21"), at[5]),  # the retired key
        ], rejected={2: reasons.AGENCY_KEY_NOT_VALID}))
        s.batches.append(Batch(at[6], [f.licence(RecordType.ISSUE, issue_payload(f"LIC-A-{i}"), at[6], key=new_a)
                                       for i in range(22, 60)]))
        return s

    def run(self, url: str) -> Ledger:
        """Submit every batch to a new ledger at ``url``; checks the rejections on the way."""
        ledger = Ledger.open(url, self.founders.node.identity())
        for batch in self.batches:
            result = ledger.submit(batch.records, now=batch.now)
            assert {r.position: r.reason for r in result.rejected} == batch.rejected
            assert len(result.accepted) == len(batch.records) - len(batch.rejected)
        return ledger


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return Scenario.build()


def _derived_tables(store: SqlStore) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    with store.read() as conn:
        for name in t.DERIVED:
            table = t.metadata.tables[name]
            out[name] = sorted(tuple(r) for r in conn.execute(select(table)))
    return out


def test_ledger_end_to_end_on_postgres(scenario: Scenario, postgres_server: PostgresServer) -> None:  # noqa: F811
    # a database of its own, named by a plain URL, as an operator would configure it
    url = postgres_server.create_database()
    assert url.startswith("postgresql://") and "?" not in url
    ledger = scenario.run(url)
    try:
        assert ledger.store.engine.dialect.name == "postgresql"
        assert ledger.store.engine.dialect.driver == "psycopg"
        size = ledger.tree_size()
        assert size == 1 + 2 + 30 + 3 + 1 + 2 + 38
        root = ledger.root()

        # state derived from the entries
        a0, a1, b0 = ledger.licence("LIC-A-0"), ledger.licence("LIC-A-1"), ledger.licence("LIC-B-0")
        assert a0 is not None and a0.version == 2 and a0.status is LicenceStatus.ACTIVE
        assert a1 is not None and a1.status is LicenceStatus.ACTIVE  # suspended, then resumed by the new key
        assert b0 is not None and b0.status is LicenceStatus.REVOKED
        assert ledger.licence("LIC-A-21") is None
        with ledger.store.read() as conn:
            assert ledger.store.count_licences(conn) == {"ACTIVE": 29 + 1 + 38, "REVOKED": 1}
            assert [n.id for n in ledger.store.all_nodes(conn)] == ["node-1", "node-2"]
            nodes = ledger.store.all_nodes(conn)

        # proofs, checked by the independent verifier against the signed checkpoints
        verifiers = checkpoint_verifiers(ORIGIN, nodes)
        cp_size, note = ledger.latest_checkpoint()
        latest = open_checkpoint(note, verifiers, origin=ORIGIN).checkpoint
        assert (cp_size, latest.size, latest.root_hash) == (size, size, root)
        for index in (0, 1, 5, size // 2, size - 1):
            proof = ledger.inclusion_proof(index)
            verify_inclusion(ledger.hasher, index, size, proof.leaf_hash, list(proof.path), root)
        old_note = ledger.checkpoint_at(3)
        assert old_note is not None
        old = open_checkpoint(old_note, verifiers, origin=ORIGIN).checkpoint
        verify_consistency(ledger.hasher, old.size, size, old.root_hash, root, ledger.consistency_proof(old.size))
        history = ledger.history("LIC-A-1")
        assert [h.record.record.type for h in history] == [RecordType.ISSUE, RecordType.SUSPEND, RecordType.RESUME]
        for item in history:
            verify_inclusion(ledger.hasher, item.index, size, item.proof.leaf_hash, list(item.proof.path), root)

        # audit replays everything; rebuild recomputes the derived tables to the same content
        report = audit(ledger.store)
        assert report.ok, report.first
        assert (report.entries, report.blocks, report.checkpoints) == (size, len(scenario.batches), 7)
        assert report.root == root.hex()
        before = _derived_tables(ledger.store)
        assert ledger.rebuild() == size
        assert _derived_tables(ledger.store) == before
        assert audit(ledger.store).ok
    finally:
        ledger.close()

    # a new process sees the same ledger, and appends after it
    again = Ledger.open(url, scenario.founders.node.identity())
    try:
        assert (again.tree_size(), again.root()) == (size, root)
        more = again.submit([scenario.founders.licence(
            RecordType.SUSPEND, {"licence_id": "LIC-A-30", "reason_code": "x", "reason_text": "y"},
            key=None)])
        # the original key was retired by the rotation: rejected, nothing written
        assert [r.reason for r in more.rejected] == [reasons.AGENCY_KEY_NOT_VALID]
        assert again.tree_size() == size
    finally:
        again.close()


def _count(engine: Engine, table: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.db'}"
    else:
        yield request.getfixturevalue("postgres_db_url")


def test_log_tables_refuse_update_delete_truncate(db_url: str) -> None:
    """Every append-only table, every way of rewriting it, refused by the database itself."""
    f = Founders.generate()
    ledger = Ledger.open(db_url, f.node.identity())
    try:
        ledger.initialise(f.genesis())
        store = ledger.store
        with store.write() as conn:
            store.add_cosignature(conn, 1, "witness.example", "— witness.example AAAA")
            store.add_evidence(conn, "fork", "2026-03-01T08:00:00Z", "{}")
        engine = store.engine
        postgres = engine.dialect.name == "postgresql"
        for table in t.APPEND_ONLY:
            rows = _count(engine, table)
            assert rows >= 1, table
            first_col = next(iter(t.metadata.tables[table].c)).name
            attempts = [
                f"UPDATE {table} SET {first_col} = {first_col}",
                f"DELETE FROM {table} WHERE 1 = 1",
                # SQLite's "truncate" is an unqualified DELETE (its truncate optimisation is off with triggers)
                f"TRUNCATE {table}" if postgres else f"DELETE FROM {table}",
            ]
            for sql in attempts:
                with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
                    conn.execute(text(sql))
            assert _count(engine, table) == rows, table
        # the derived tables are not history: rebuild may clear and refill them
        assert ledger.rebuild() == 1
        assert audit(store).ok
    finally:
        ledger.close()


def test_same_content_same_roots_on_sqlite_and_postgres(
    scenario: Scenario, tmp_path: Path, postgres_db_url: str  # noqa: F811
) -> None:
    lite = scenario.run(f"sqlite:///{tmp_path / 'ledger.db'}")
    pg = scenario.run(postgres_db_url)
    try:
        size = lite.tree_size()
        assert pg.tree_size() == size
        for n in range(size + 1):
            assert lite.root(n) == pg.root(n), f"root at size {n}"
        with lite.store.read() as lc, pg.store.read() as pc:
            lite_blocks = list(lite.store.iter_blocks(lc))
            pg_blocks = list(pg.store.iter_blocks(pc))
            # headers are deterministic (same entries, same time, same proposer); signatures are not (SM2)
            assert [b.header.to_bytes() for b in lite_blocks] == [b.header.to_bytes() for b in pg_blocks]
            assert [b.hash() for b in lite_blocks] == [b.hash() for b in pg_blocks]
            assert lite.store.entries(lc, 0, size) == pg.store.entries(pc, 0, size)
        for index in range(0, size, 7):
            assert lite.inclusion_proof(index) == pg.inclusion_proof(index)
        for old in range(0, size, 11):
            assert lite.consistency_proof(old) == pg.consistency_proof(old)
        assert _derived_tables(lite.store) == _derived_tables(pg.store)
        lite_report, pg_report = audit(lite.store), audit(pg.store)
        assert lite_report.ok and pg_report.ok
        assert lite_report.root == pg_report.root == lite.root().hex()
    finally:
        lite.close()
        pg.close()


def test_postgres_readers_see_one_snapshot(postgres_db_url: str) -> None:  # noqa: F811
    """A read connection spanning several queries sees one tree size, even while a batch commits."""
    f = Founders.generate()
    ledger = Ledger.open(postgres_db_url, f.node.identity())
    try:
        ledger.initialise(f.genesis())
        with ledger.store.read() as conn:
            size = ledger.store.tree_size(conn)
            ledger.submit([f.licence(RecordType.ISSUE, issue_payload("LIC-SNAP-1"))])
            assert ledger.store.tree_size(conn) == size
            assert ledger.store.latest_block(conn).height == 0  # type: ignore[union-attr]
        assert ledger.tree_size() == size + 1
    finally:
        ledger.close()


def test_two_writers_on_one_database(db_url: str) -> None:
    """Two ledger instances (think: two API worker processes) appending to one database interleave cleanly."""
    f = Founders.generate()
    first = Ledger.open(db_url, f.node.identity())
    first.initialise(f.genesis())
    second = Ledger.open(db_url, f.node.identity())
    errors: list[BaseException] = []

    def append(ledger: Ledger, tag: str) -> None:
        try:
            for i in range(15):
                result = ledger.submit([f.licence(RecordType.ISSUE, issue_payload(f"LIC-{tag}-{i}-{j}"))
                                        for j in range(3)])
                assert not result.rejected
        except BaseException as exc:
            errors.append(exc)

    try:
        threads = [threading.Thread(target=append, args=(lg, tag)) for lg, tag in ((first, "X"), (second, "Y"))]
        for th in threads:
            th.start()
        for th in threads:
            th.join(timeout=120)
        assert not errors, errors[0]
        assert first.tree_size() == second.tree_size() == 1 + 2 * 15 * 3
        assert first.root() == second.root()
        report = audit(first.store)
        assert report.ok, report.first
        assert report.blocks == 1 + 2 * 15
    finally:
        first.close()
        second.close()


def test_second_writer_sees_a_key_retired_by_the_first(db_url: str) -> None:
    """A writer's cached agency registry must not outlive another writer's key rotation."""
    f = Founders.generate()
    first = Ledger.open(db_url, f.node.identity())
    second = Ledger.open(db_url, f.node.identity())
    try:
        first.initialise(f.genesis(T0), now=T0)
        # the second writer caches the agency while using its key
        assert not second.submit([f.licence(RecordType.ISSUE, issue_payload("LIC-1"), T0)], now=T0).rejected
        rotate = f.governance(RecordType.AGENCY_ROTATE_KEY, {
            "agency_id": AGENCY_ID, "new_key": key_json(SM2PrivateKey.generate()),
            "retire_key_id": f.agency.public_key.key_id,
        }, T0 + timedelta(seconds=10))
        assert not first.submit([rotate], now=T0 + timedelta(seconds=10)).rejected
        later = T0 + timedelta(seconds=20)
        result = second.submit([f.licence(RecordType.ISSUE, issue_payload("LIC-2"), later)], now=later)
        assert [r.reason for r in result.rejected] == [reasons.AGENCY_KEY_NOT_VALID]
        report = audit(first.store)
        assert report.ok, report.first
    finally:
        first.close()
        second.close()


def test_sqlite_reader_does_not_block_the_writer(tmp_path: Path) -> None:
    """WAL's promise: a long read (an audit, a proof) never holds the write lock."""
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    f = Founders.generate()
    ledger = Ledger.open(url, f.node.identity())
    reader = SqlStore(url)
    try:
        ledger.initialise(f.genesis())
        done = threading.Event()
        with reader.read() as conn:
            size = reader.tree_size(conn)  # the read transaction is open from here on

            def write() -> None:
                ledger.submit([f.licence(RecordType.ISSUE, issue_payload("LIC-R"))])
                done.set()

            writer = threading.Thread(target=write)
            writer.start()
            # the busy timeout is 30 s: a reader holding the write lock would stall the writer that long
            assert done.wait(timeout=10), "the writer waited for a reader"
            assert reader.tree_size(conn) == size  # and the reader keeps its snapshot
            writer.join()
        assert ledger.tree_size() == size + 1
    finally:
        reader.close()
        ledger.close()


def test_node_role_that_owns_nothing_cannot_unlock_history(postgres_server: PostgresServer) -> None:  # noqa: F811
    """docs/storage.md: migrate as the owner, run the node as a role that cannot drop the triggers."""
    owner_url = postgres_server.create_database()
    owner = SqlStore(owner_url)  # the first start, as the owner: creates the schema
    role = f"node_{owner_url.rsplit('_', 1)[-1]}"[:40]
    with owner.engine.begin() as conn:
        conn.execute(text(f"CREATE ROLE {role} LOGIN"))
        conn.execute(text(f"GRANT SELECT, INSERT ON {', '.join(t.APPEND_ONLY)} TO {role}"))
        conn.execute(text(f"GRANT USAGE ON SEQUENCE evidence_id_seq TO {role}"))
        conn.execute(text(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {', '.join(t.DERIVED)}, meta TO {role}"))
        conn.execute(text(f"GRANT SELECT ON alembic_version TO {role}"))
    owner.close()
    node_url = owner_url.replace("postgresql://certledger@", f"postgresql://{role}@")
    f = Founders.generate()
    ledger = Ledger.open(node_url, f.node.identity())  # the start-up migration finds nothing to do
    try:
        ledger.initialise(f.genesis())
        assert not ledger.submit([f.licence(RecordType.ISSUE, issue_payload("LIC-ROLE-1"))]).rejected
        with ledger.store.write() as conn:
            ledger.store.add_evidence(conn, "test", "2026-03-01T08:00:00Z", "{}")
        assert ledger.rebuild() == 2
        assert audit(ledger.store).ok
        engine = ledger.store.engine
        for sql in ("DROP TRIGGER entries_append_only ON entries",
                    "ALTER TABLE entries DISABLE TRIGGER ALL",
                    "DROP TABLE blocks",
                    "UPDATE entries SET rtype = 'ISSUE'"):
            with pytest.raises(DBAPIError, match=r"must be owner|permission denied"), engine.begin() as conn:
                conn.execute(text(sql))
    finally:
        ledger.close()

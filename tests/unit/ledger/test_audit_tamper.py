"""Audit catches any single changed byte in the stored log, and names the right place.

The database's append-only triggers stop UPDATE and DELETE through SQL; someone with
write access to the file can still drop them, change a byte and put them back. Here
we do exactly that with raw sqlite3, on a copy of a small ledger, for a byte that
hypothesis picks, then require ``ledger.audit.audit`` to fail with its FIRST finding
at the place that was changed:

=====================  =====================================  ======================
changed column         "the right place" (``Finding.where``)  reason of that finding
=====================  =====================================  ======================
entries.data           ``entry <idx>`` of that row            ``entry.hash``
entries.leaf_hash      ``entry <idx>`` of that row            ``entry.hash``
blocks.header          ``block <height>`` of that row         ``block.*``
blocks.signature       ``block <height>`` of that row         ``block.signature``
checkpoints.note       ``checkpoint <tree_size>`` of that row ``checkpoint.signature``
tree_nodes.hash        ``tree node (<level>, <idx>)``          ``tree.node``
=====================  =====================================  ======================

``<idx>``, ``<height>``, ``<tree_size>`` and ``(<level>, <idx>)`` are the row's primary
key, not what the (possibly changed) content claims. ``checkpoints.note`` is a TEXT
column: it is changed once keeping it valid UTF-8 (one ASCII character replaced by
another) and once making it invalid UTF-8.
"""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, insert, text, update

from ledger import reasons
from ledger.audit import AuditReport, audit
from ledger.audit_verify import ProcessVerifier, verify_batch
from ledger.canonical import canonical_bytes
from ledger.merkle.hashing import TreeHasher
from ledger.records import RECORD_SIGNER_ID, RecordType
from ledger.store import schema as t
from ledger.store.sql import SqlStore
from signing.errors import StorageError
from signing.sm2 import SM2PrivateKey

from .builders import (
    AGENCIES,
    KeyRing,
    World,
    agency_json,
    agency_key_json,
    amend_payload,
    open_world,
    revoke_payload,
    suspend_payload,
)


def _populate(world: World) -> None:
    """Six blocks after genesis: governance and licence records, batches of 1 to 6."""
    world.accept(world.governance(RecordType.AGENCY_ADMIT, {"agency": agency_json(AGENCIES["NEW"], world.keys["NEW"])}))
    world.accept(*(world.issue("SZ", f"L{i}") for i in range(6)))
    world.accept(world.record(RecordType.AMEND, "SZ", amend_payload("L0", 2, "440305")),
                 world.record(RecordType.SUSPEND, "SZ", suspend_payload("L1")),
                 world.issue("GZ", "G1"))
    world.accept(world.governance(RecordType.AGENCY_ROTATE_KEY, {
        "agency_id": AGENCIES["SZ"].id, "new_key": agency_key_json(world.keys["SZ-2"], world.now),
        "retire_key_id": world.keys["SZ"].public_key.key_id}))
    world.agency_key["SZ"] = "SZ-2"
    world.accept(world.record(RecordType.REVOKE, "SZ", revoke_payload("L2")),
                 world.record(RecordType.REVOKE, "PROV", revoke_payload("G1")))
    world.accept(*(world.issue("NEW", f"N{i}") for i in range(5)))


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, keys: KeyRing) -> Path:
    """A small audited ledger (SQLite file) that each example copies before changing it."""
    path = tmp_path_factory.mktemp("tamper") / "template.db"
    world = open_world(f"sqlite:///{path}", keys)
    try:
        _populate(world)
        assert world.ledger.tree_size() == 19
        assert audit(world.ledger.store).ok
    finally:
        world.ledger.close()
    return path


@pytest.fixture(scope="module")
def copies(template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[], Path]]:
    workdir = tmp_path_factory.mktemp("copies")
    counter = iter(range(1_000_000))

    def copy() -> Path:
        target = workdir / f"ledger-{next(counter)}.db"
        with sqlite3.connect(template) as src, sqlite3.connect(target) as dst:
            src.backup(dst)  # a consistent copy, WAL included
        return target

    yield copy
    shutil.rmtree(workdir, ignore_errors=True)


# -- raw SQL around the triggers ---------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    table: str
    column: str
    key: tuple[str, ...]  # primary key columns

    def where(self, row_key: tuple[Any, ...]) -> str:
        if self.table == "entries":
            return f"entry {row_key[0]}"
        if self.table == "blocks":
            return f"block {row_key[0]}"
        if self.table == "checkpoints":
            return f"checkpoint {row_key[0]}"
        return f"tree node {tuple(row_key)}"

    def reasons(self) -> set[str]:
        return {
            "entries": {reasons.ENTRY_HASH},
            "blocks": {reasons.BLOCK_HEADER, reasons.BLOCK_SIGNATURE, reasons.BLOCK_HASH_LINK, reasons.BLOCK_SIZE,
                       reasons.BLOCK_ROOT},
            "checkpoints": {reasons.CHECKPOINT_SIGNATURE},
            "tree_nodes": {reasons.TREE_NODE},
        }[self.table]


TARGETS = {
    "entries.data": Target("entries", "data", ("idx",)),
    "entries.leaf_hash": Target("entries", "leaf_hash", ("idx",)),
    "blocks.header": Target("blocks", "header", ("height",)),
    "blocks.signature": Target("blocks", "signature", ("height",)),
    "checkpoints.note": Target("checkpoints", "note", ("tree_size",)),
    "tree_nodes.hash": Target("tree_nodes", "hash", ("level", "idx")),
}


def _rows(path: Path, target: Target) -> list[tuple[tuple[Any, ...], bytes]]:
    with sqlite3.connect(path) as conn:
        cols = ", ".join(target.key)
        rows = conn.execute(
            f"SELECT {cols}, CAST({target.column} AS BLOB) FROM {target.table} ORDER BY {cols}"
        ).fetchall()
    return [(tuple(r[:-1]), bytes(r[-1])) for r in rows]


def _write_around_triggers(path: Path, target: Target, row_key: tuple[Any, ...], value: bytes | str) -> None:
    """Drop the table's triggers, write ``value``, and create the same triggers again."""
    conn = sqlite3.connect(path)
    try:
        triggers = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ?", (target.table,)
        ).fetchall()
        assert {name for name, _ in triggers} == {f"{target.table}_no_update", f"{target.table}_no_delete"}
        with conn:
            for name, _ in triggers:
                conn.execute(f"DROP TRIGGER {name}")
            where = " AND ".join(f"{k} = ?" for k in target.key)
            # a TEXT column gets the bytes as TEXT, unchecked, as SQLite stores whatever it is given
            placeholder = "CAST(? AS TEXT)" if target.column == "note" and isinstance(value, bytes) else "?"
            cur = conn.execute(f"UPDATE {target.table} SET {target.column} = {placeholder} WHERE {where}",
                               (value, *row_key))
            assert cur.rowcount == 1
            for _, sql in triggers:
                conn.execute(sql)
        after = conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ?", (target.table,)
        ).fetchone()[0]
        assert after == len(triggers)
    finally:
        conn.close()


def _audit_first(path: Path) -> Any:
    store = SqlStore(f"sqlite:///{path}")
    try:
        report = audit(store)
    finally:
        store.close()
    assert not report.ok, "audit missed a changed byte"
    assert report.first is not None
    return report.first


# -- the property ------------------------------------------------------------------------------


TAMPER_SETTINGS = settings(max_examples=12, deadline=None,
                           suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.mark.parametrize("name", [n for n in TARGETS if n != "checkpoints.note"])
@TAMPER_SETTINGS
@given(data=st.data())
def test_changed_byte_in_binary_column(name: str, copies: Callable[[], Path], data: st.DataObject) -> None:
    target = TARGETS[name]
    path = copies()
    row_key, value = data.draw(st.sampled_from(_rows(path, target)), label="row")
    offset = data.draw(st.integers(0, len(value) - 1), label="offset")
    mask = data.draw(st.integers(1, 255), label="xor")
    changed = bytearray(value)
    changed[offset] ^= mask
    _write_around_triggers(path, target, row_key, bytes(changed))
    first = _audit_first(path)
    assert first.where == target.where(row_key), first
    assert first.reason in target.reasons(), first


ASCII_REPLACEMENTS = [chr(c) for c in range(0x20, 0x7F)] + ["\n"]


@TAMPER_SETTINGS
@given(data=st.data())
def test_changed_ascii_character_in_checkpoint_note(copies: Callable[[], Path], data: st.DataObject) -> None:
    target = TARGETS["checkpoints.note"]
    path = copies()
    row_key, value = data.draw(st.sampled_from(_rows(path, target)), label="row")
    note = value.decode("utf-8")
    positions = [i for i, ch in enumerate(note) if ord(ch) < 0x80]
    offset = data.draw(st.sampled_from(positions), label="offset")
    new = data.draw(st.sampled_from([c for c in ASCII_REPLACEMENTS if c != note[offset]]), label="char")
    changed = note[:offset] + new + note[offset + 1 :]
    assert len(changed.encode()) == len(value)  # one byte changed, still UTF-8
    _write_around_triggers(path, target, row_key, changed)
    first = _audit_first(path)
    assert first.where == target.where(row_key), first
    assert first.reason in target.reasons(), first


@TAMPER_SETTINGS
@given(data=st.data())
def test_checkpoint_note_made_invalid_utf8(copies: Callable[[], Path], data: st.DataObject) -> None:
    target = TARGETS["checkpoints.note"]
    path = copies()
    row_key, value = data.draw(st.sampled_from(_rows(path, target)), label="row")
    offset = data.draw(st.integers(0, len(value) - 1), label="offset")
    bad = data.draw(st.sampled_from([0x80, 0xBF, 0xC0, 0xFE, 0xFF]), label="byte")
    changed = bytearray(value)
    changed[offset] = bad
    try:
        bytes(changed).decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        # a continuation byte of a multi-byte character ("—" in the signature lines) replaced by
        # another continuation byte is still valid UTF-8: not the case this test is about
        assume(False)
    _write_around_triggers(path, target, row_key, bytes(changed))
    first = _audit_first(path)
    assert first.where == target.where(row_key), first
    assert first.reason in target.reasons(), first


def test_untouched_copy_passes(copies: Callable[[], Path]) -> None:
    """The control: the copy itself audits clean, so every finding above is the changed byte's."""
    path = copies()
    store = SqlStore(f"sqlite:///{path}")
    try:
        report = audit(store)
    finally:
        store.close()
    assert report.ok, report.findings
    assert (report.entries, report.blocks, report.checkpoints) == (19, 7, 7)


# -- the triggers themselves -------------------------------------------------------------------


def _fill_side_tables(store: SqlStore) -> None:
    with store.write() as conn:
        store.add_cosignature(conn, 1, "witness.example/w1", "— witness.example/w1 AAAA\n")
        store.add_evidence(conn, "test", "2026-03-02T09:00:00Z", "{}")


@pytest.mark.parametrize("table", t.APPEND_ONLY)
def test_triggers_refuse_update_and_delete_raw_sqlite(template: Path, copies: Callable[[], Path],
                                                      table: str) -> None:
    path = copies()
    store = SqlStore(f"sqlite:///{path}")
    try:
        _fill_side_tables(store)
    finally:
        store.close()
    conn = sqlite3.connect(path)
    try:
        before = conn.execute(f"SELECT * FROM {table}").fetchall()
        assert before, f"{table} has rows to protect"
        column = t.metadata.tables[table].columns.keys()[-1]
        for statement in (f"UPDATE {table} SET {column} = {column}", f"DELETE FROM {table}"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                conn.execute(statement)
            conn.rollback()
        assert conn.execute(f"SELECT * FROM {table}").fetchall() == before
    finally:
        conn.close()


@pytest.mark.parametrize("table", t.APPEND_ONLY)
def test_triggers_refuse_update_and_delete_through_the_store(make_world: Callable[..., World],
                                                             table: str) -> None:
    """Through SQLAlchemy on the configured backend(s): refused, reported as StorageError."""
    world = make_world()
    _populate(world)
    store = world.ledger.store
    _fill_side_tables(store)
    tbl = t.metadata.tables[table]
    with store.read() as conn:
        before = conn.execute(tbl.select()).all()
    assert before
    column = tbl.columns[tbl.columns.keys()[-1]]
    for statement in (update(tbl).values({column.name: column}), delete(tbl)):
        with pytest.raises(StorageError) as info, store.write() as conn:
            conn.execute(statement)
        assert "append-only" in str(info.value)
    if store.engine.dialect.name == "postgresql":
        with pytest.raises(StorageError), store.write() as conn:
            conn.execute(text(f"TRUNCATE {table}"))
    with store.read() as conn:
        assert conn.execute(tbl.select()).all() == before
    # inserting stays possible: append-only, not read-only
    if table == "evidence":
        with store.write() as conn:
            conn.execute(insert(tbl).values(kind="test", created_at="2026-03-02T09:00:01Z", detail="{}"))
    assert audit(store).ok


# -- the same findings with signature checks in worker processes -------------------------------
#
# Large ledgers are audited with ledger.audit_verify.ProcessVerifier; these ledgers are small,
# so the process path is forced with processes=True and compared with processes=False.


def _audit(path: Path, processes: bool) -> AuditReport:
    store = SqlStore(f"sqlite:///{path}")
    try:
        return audit(store, processes=processes)
    finally:
        store.close()


def _findings(report: AuditReport) -> list[tuple[str, str, str]]:
    return [(f.reason, f.where, f.message) for f in report.findings]


def test_clean_ledger_same_report(copies: Callable[[], Path]) -> None:
    path = copies()
    threads, processes = _audit(path, False), _audit(path, True)
    assert threads.ok and processes.ok, (threads.findings, processes.findings)
    summary = lambda r: (r.entries, r.blocks, r.checkpoints, r.signatures, r.root, r.licences)  # noqa: E731
    assert summary(processes) == summary(threads)
    assert processes.signatures > 0


def _licence_entries(path: Path) -> list[tuple[int, bytes]]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT idx, data FROM entries WHERE rtype IN ('ISSUE', 'AMEND', 'SUSPEND', 'REVOKE') ORDER BY idx"
        ).fetchall()
    return [(int(i), bytes(d)) for i, d in rows]


@pytest.mark.parametrize("pick", [0, 3, -1])
def test_forged_signature_found_by_the_workers(copies: Callable[[], Path], pick: int) -> None:
    """A licence entry whose signature no longer verifies, its leaf hash made consistent."""
    path = copies()
    index, data = _licence_entries(path)[pick]
    env = json.loads(data)
    sig = bytearray(base64.b64decode(env["signatures"][0]["sig"]))
    sig[-1] ^= 0x01  # still DER (the last byte of s), no longer the signature
    env["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()
    forged = canonical_bytes(env)
    _write_around_triggers(path, TARGETS["entries.data"], (index,), forged)
    _write_around_triggers(path, TARGETS["entries.leaf_hash"], (index,), TreeHasher().hash_leaf(forged))
    threads, processes = _audit(path, False), _audit(path, True)
    assert _findings(processes) == _findings(threads)
    assert (reasons.SIGNATURE_INVALID, f"entry {index}") in {(f.reason, f.where) for f in processes.findings}


def _jobs() -> list[tuple[bytes, bytes, int, int] | None]:
    key = SM2PrivateKey.generate()
    x, y = key.public_key.point
    good = key.sign(b"record bytes", signer_id=RECORD_SIGNER_ID)
    other = key.sign(b"other bytes", signer_id=RECORD_SIGNER_ID)
    return [(b"record bytes", good, x, y), (b"record bytes", other, x, y), None, (b"record bytes", b"\x30\x00", x, y)]


def test_process_verifier_matches_in_process_checks() -> None:
    jobs = _jobs()
    expected = verify_batch(jobs)
    assert expected == [True, False, None, False]
    verifier = ProcessVerifier(2)
    try:
        futures = [verifier.submit(jobs) for _ in range(6)]
        assert [verifier.result(f) for f in futures] == [expected] * 6
    finally:
        verifier.shutdown()


def test_dead_worker_fails_its_batches_and_shutdown_returns() -> None:
    jobs = _jobs()
    verifier = ProcessVerifier(1)
    try:
        for proc in verifier._procs:
            proc.kill()
            proc.wait()
        future = verifier.submit(jobs)
        # the caller may steal the batch before the feeding thread sees the dead worker;
        # if it does not, the batch fails (and the audit checks it in sequence)
        with contextlib.suppress(RuntimeError, OSError, ValueError):
            assert verifier.result(future) == verify_batch(jobs)
    finally:
        verifier.shutdown()

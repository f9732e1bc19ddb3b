"""Properties of the whole ledger under random operation sequences and random batch splits.

For N random ISSUE/AMEND/SUSPEND/RESUME/REVOKE records (legal and illegal ones mixed,
by two agencies, one of them the provincial authority), submitted in random batches:

* the ledger accepts exactly what a small reference model of the state machine accepts,
  and its derived licence states equal the model's;
* every entry's inclusion proof verifies against the root of every later checkpoint
  (the root read from the signed checkpoint note, opened with the node's keys);
* every pair of checkpoints has a consistency proof that verifies;
* a full audit passes, and ``rebuild()`` reproduces the derived tables byte for byte.

Each example uses its own fresh SQLite ledger (hypothesis runs many examples per test,
so it cannot use the function-scoped ``db_url``); the backend-specific behaviour is
covered by the other ledger tests through ``db_url``.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from ledger.audit import audit
from ledger.checkpoint import open_checkpoint
from ledger.identity import checkpoint_verifiers
from ledger.merkle import verify_consistency, verify_inclusion
from ledger.records import RecordType, SignedRecord
from ledger.state import LicenceStatus
from ledger.store import schema as t

from .builders import (
    AGENCIES,
    ORIGIN,
    KeyRing,
    World,
    amend_payload,
    issue_payload,
    open_world,
    resume_payload,
    revoke_payload,
    suspend_payload,
)

LICENCES = ("L1", "L2", "L3", "L4")
ACTORS = ("SZ", "SZ", "SZ", "PROV")  # mostly the city agency; sometimes the authority
REGION = AGENCIES["SZ"].home_region
KINDS = (RecordType.ISSUE, RecordType.AMEND, RecordType.SUSPEND, RecordType.RESUME, RecordType.REVOKE)


@dataclass
class ModelLicence:
    issuer: str
    status: LicenceStatus = LicenceStatus.ACTIVE
    version: int = 1


@dataclass
class Model:
    """The licence state machine of ledger/validation.py, written out plainly."""

    licences: dict[str, ModelLicence] = field(default_factory=dict)

    def allows(self, kind: RecordType, licence_id: str, actor: str, version: int) -> bool:
        current = self.licences.get(licence_id)
        if kind is RecordType.ISSUE:
            return current is None
        if current is None or current.status is LicenceStatus.REVOKED:
            return False
        if actor != current.issuer and not AGENCIES[actor].authority:
            return False
        return {
            RecordType.AMEND: version == current.version + 1,
            RecordType.SUSPEND: current.status is LicenceStatus.ACTIVE,
            RecordType.RESUME: current.status is LicenceStatus.SUSPENDED,
            RecordType.REVOKE: True,
        }[kind]

    def apply(self, kind: RecordType, licence_id: str, actor: str, version: int) -> None:
        if kind is RecordType.ISSUE:
            self.licences[licence_id] = ModelLicence(actor)
            return
        lic = self.licences[licence_id]
        if kind is RecordType.AMEND:
            lic.version = version
        else:
            lic.status = {RecordType.SUSPEND: LicenceStatus.SUSPENDED, RecordType.RESUME: LicenceStatus.ACTIVE,
                          RecordType.REVOKE: LicenceStatus.REVOKED}[kind]


operations = st.lists(
    st.tuples(st.sampled_from(KINDS), st.sampled_from(LICENCES), st.sampled_from(ACTORS),
              st.sampled_from((1, 1, 1, 0))),  # AMEND version offset: 1 = next version, 0 = stale
    min_size=1,
    max_size=24,
)
batch_sizes = st.lists(st.integers(min_value=1, max_value=7), min_size=1, max_size=24)


def _record(world: World, model: Model, op: tuple[RecordType, str, str, int]) -> tuple[SignedRecord, int]:
    kind, licence_id, actor, offset = op
    current = model.licences.get(licence_id)
    version = (current.version if current else 1) + offset
    payload = {
        RecordType.ISSUE: lambda: issue_payload(licence_id, REGION),
        RecordType.AMEND: lambda: amend_payload(licence_id, max(version, 2), REGION),
        RecordType.SUSPEND: lambda: suspend_payload(licence_id),
        RecordType.RESUME: lambda: resume_payload(licence_id),
        RecordType.REVOKE: lambda: revoke_payload(licence_id),
    }[kind]()
    return world.record(kind, actor, payload), max(version, 2)


def _derived_tables(world: World) -> dict[str, list[tuple[object, ...]]]:
    with world.ledger.store.read() as conn:
        return {name: sorted(tuple(r) for r in conn.execute(select(t.metadata.tables[name])))
                for name in t.DERIVED}


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=operations, sizes=batch_sizes)
def test_random_batches(keys: KeyRing, ops: list[tuple[RecordType, str, str, int]], sizes: list[int]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        world = open_world(f"sqlite:///{Path(tmp) / 'ledger.db'}", keys)
        try:
            _check(world, ops, sizes)
        finally:
            world.ledger.close()


def _check(world: World, ops: list[tuple[RecordType, str, str, int]], sizes: list[int]) -> None:
    ledger = world.ledger
    model = Model()
    position = 0
    expected_size = 1  # the genesis entry
    batches = iter(sizes)
    while position < len(ops):
        batch = ops[position : position + next(batches, len(ops))]
        position += len(batch)
        records, verdicts = [], []
        for op in batch:
            signed, version = _record(world, model, op)
            allowed = model.allows(op[0], op[1], op[2], version)
            if allowed:
                model.apply(op[0], op[1], op[2], version)
            records.append(signed)
            verdicts.append(allowed)
        result = world.submit(*records)
        # the ledger accepts exactly what the model allows, in batch order
        assert [a.position for a in result.accepted] == [i for i, ok in enumerate(verdicts) if ok]
        assert [r.position for r in result.rejected] == [i for i, ok in enumerate(verdicts) if not ok]
        assert [a.index for a in result.accepted] == list(range(expected_size, expected_size + len(result.accepted)))
        expected_size += len(result.accepted)
        assert (result.block is None) == (not result.accepted)
        assert ledger.tree_size() == expected_size

    # derived licence state = the model
    for licence_id in LICENCES:
        state, want = ledger.licence(licence_id), model.licences.get(licence_id)
        assert (state is None) == (want is None)
        if state is not None and want is not None:
            assert (state.status, state.version, state.issuer) == (want.status, want.version, AGENCIES[want.issuer].id)

    # every checkpoint: signed by the node, root = the tree's root at that size
    with ledger.store.read() as conn:
        notes = list(ledger.store.iter_checkpoints(conn))
        nodes = ledger.store.all_nodes(conn)
    verifiers = checkpoint_verifiers(ORIGIN, nodes)
    roots: dict[int, bytes] = {}
    for size, note in notes:
        opened = open_checkpoint(note, verifiers, origin=ORIGIN)
        assert opened.checkpoint.size == size
        assert opened.checkpoint.root_hash == ledger.root(size)
        roots[size] = opened.checkpoint.root_hash
    assert max(roots) == expected_size

    # every entry is included in every later checkpoint's tree
    for index in range(expected_size):
        for size, root in roots.items():
            if size <= index:
                continue
            proof = ledger.inclusion_proof(index, size)
            assert proof.leaf_hash == ledger.hasher.hash_leaf(ledger.entry(index).entry_bytes())
            verify_inclusion(ledger.hasher, index, size, proof.leaf_hash, list(proof.path), root)

    # every pair of checkpoints is consistent
    sizes_seen = sorted(roots)
    for i, old in enumerate(sizes_seen):
        for new in sizes_seen[i:]:
            verify_consistency(ledger.hasher, old, new, roots[old], roots[new], ledger.consistency_proof(old, new))

    report = audit(ledger.store)
    assert report.ok, report.findings
    assert (report.entries, report.blocks, report.checkpoints) == (expected_size, len(roots), len(roots))

    before = _derived_tables(world)
    assert ledger.rebuild() == expected_size
    assert _derived_tables(world) == before
    assert audit(ledger.store).ok

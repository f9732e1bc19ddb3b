"""Applying proposed blocks: the proposer's shortcut and the follower's full checks.

A cluster's leader proposes a block (``Ledger.propose``) and then applies the
very same block through ``apply_block`` like every other node. It verified the
block's record signatures while proposing; applying its own block must not
verify them a second time, but a block that differs in anything — another
node's, or the same header with a changed entry — must be verified in full.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ledger import reasons
from ledger.records import SignedRecord
from ledger.service import Ledger
from signing.errors import VerificationError

from .builders import KeyRing, World

Counter = Callable[[], int]


@pytest.fixture
def verifications(monkeypatch: pytest.MonkeyPatch) -> Counter:
    """Counts calls of the real SignedRecord.verify_signature_by (which still runs every time)."""
    calls: list[int] = []
    real = SignedRecord.verify_signature_by

    def counted(self: SignedRecord, key: object) -> None:
        calls.append(1)
        real(self, key)  # type: ignore[arg-type]

    monkeypatch.setattr(SignedRecord, "verify_signature_by", counted)
    return lambda: len(calls)


@pytest.fixture
def follower(world: World, tmp_path: Path) -> Iterator[Ledger]:
    """A second node's ledger (its own SQLite file) holding the same genesis block as ``world``."""
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'follower.db'}", world.keys.node.identity())
    genesis_block = world.ledger.block(0)
    assert genesis_block is not None
    ledger.apply_block(genesis_block, [world.ledger.entry(0)])
    yield ledger
    ledger.close()


def _issues(world: World, count: int) -> list[SignedRecord]:
    return [world.issue("SZ", f"L-APPLY-{n:04d}") for n in range(count)]


@pytest.mark.parametrize("count", [3, 20])  # below and above the size the SM2 pool is used from
def test_own_proposal_is_not_verified_again(world: World, verifications: Counter, count: int) -> None:
    records = _issues(world, count)
    proposal = world.ledger.propose(records, now=world.now)
    assert proposal.block is not None and not proposal.rejected
    assert verifications() == count  # proposing verified each record once
    result = world.ledger.apply_block(proposal.block, proposal.entries)
    assert verifications() == count  # applying our own block verified none again
    assert [a.record_hash for a in result.accepted] == [r.record.record_hash() for r in records]
    assert world.ledger.tree_size() == count + 1


def test_follower_verifies_every_entry(world: World, follower: Ledger, verifications: Counter) -> None:
    records = _issues(world, 20)
    proposal = world.ledger.propose(records, now=world.now)
    assert proposal.block is not None
    before = verifications()
    follower.apply_block(proposal.block, proposal.entries)
    assert verifications() - before == 20
    assert follower.root() == proposal.block.header.tree_root


def _forged(signed: SignedRecord) -> SignedRecord:
    """The same record with its signature's last byte flipped (still well-formed DER)."""
    doc = signed.to_json()
    sig = bytearray(base64.b64decode(doc["signatures"][0]["sig"]))
    sig[-1] ^= 0x01
    doc["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()
    return SignedRecord.from_json(doc)


def test_own_block_with_a_changed_entry_is_verified_and_refused(world: World, verifications: Counter) -> None:
    records = _issues(world, 10)
    proposal = world.ledger.propose(records, now=world.now)
    assert proposal.block is not None
    entries = list(proposal.entries)
    entries[4] = _forged(entries[4])
    before = verifications()
    size = world.ledger.tree_size()
    with pytest.raises(VerificationError) as caught:
        world.ledger.apply_block(proposal.block, entries)
    assert caught.value.reason == reasons.BLOCK_ENTRY
    assert verifications() - before == 1  # only the entry that is not the proposal's was checked
    assert world.ledger.tree_size() == size  # nothing written
    # the genuine block still applies afterwards
    world.ledger.apply_block(proposal.block, proposal.entries)
    assert world.ledger.tree_size() == size + 10


def test_a_different_block_is_verified_in_full(world: World, verifications: Counter) -> None:
    """A superseded proposal (this node proposed again before applying it) gives no shortcut."""
    records = _issues(world, 10)
    ours = world.ledger.propose(records[:9], now=world.now)
    other = world.ledger.propose(records, now=world.now)  # the newest proposal replaces the memo
    assert ours.block is not None and other.block is not None
    before = verifications()
    world.ledger.apply_block(ours.block, ours.entries)
    assert verifications() - before == 9


def test_cosignature_sets_are_stored_once(world: World, keys: KeyRing) -> None:
    size, note = world.ledger.latest_own_checkpoint()
    line_a, line_b = "— node-b AAAA", "— node-c BBBB"
    world.ledger.add_cosignature_sets([(size, "node-b", [line_a]), (size, "node-c", [line_b])])
    # the same lines again, and a node-b re-signature (a different line for its stored slot)
    world.ledger.add_cosignature_sets([(size, "node-b", [line_a]), (size, "node-b", ["— node-b CCCC"])])
    with world.ledger.store.read() as conn:
        stored = sorted(world.ledger.store.cosignatures(conn, size))
    assert stored == [("node-b#0", line_a), ("node-c#0", line_b)]
    merged = world.ledger.checkpoint_at(size)
    assert merged is not None and merged.startswith(note.rstrip("\n"))
    assert line_a in merged and line_b in merged and "CCCC" not in merged

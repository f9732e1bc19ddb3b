"""What a cluster node takes from etcd and from peers is input from outside.

Any node (or an operator) can write keys under the cluster's etcd prefix, and a peer's API
answers whatever it likes. A key of a form this code never writes is skipped, never allowed
to stop a thread; a cosignature is counted only if it signs exactly our checkpoint's text;
blocks fetched from a peer are applied only under a tree head the quorum signed; a block is
never dated before its predecessor; a removed node proposes nothing more.

Two-node world: ``node-1`` (the ledger under test) and ``node-2`` (a peer with its own
ledger), quorum 2. etcd is never reached here (its port is closed).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from ledger import reasons
from ledger.blocks import sign_block
from ledger.checkpoint import Checkpoint, sign_checkpoint
from ledger.identity import NodeKeys, note_key_name
from ledger.records import RecordType
from ledger.sequencer import Acknowledgement
from ledger.service import Ledger
from ledger.statusmap import extension_line
from nodes import cluster
from nodes.cluster import ClusterNode, ClusterSettings, _Cosig, _encode_block, _height_of, _settle, _Waiter
from nodes.etcd import KeyValue
from signing.errors import CertLedgerError, VerificationError
from verify_api.app import create_app

from .builders import ORIGIN, T0, KeyRing, World, build_genesis

PEER = NodeKeys.generate("node-2")


@pytest.fixture
def pair(tmp_path: Path, keys: KeyRing) -> Iterator[tuple[World, Ledger, ClusterNode]]:
    """Our world (node-1, under a two-node genesis with quorum 2), the peer's ledger, our cluster node."""
    genesis = build_genesis(keys, nodes=[PEER], quorum=2)
    ours = Ledger.open(f"sqlite:///{tmp_path / 'ours.db'}", keys.node.identity())
    peer = Ledger.open(f"sqlite:///{tmp_path / 'peer.db'}", PEER.identity())
    ours.initialise(genesis, now=T0)
    peer.apply_block(ours.block(0), [genesis])  # type: ignore[arg-type]
    world = World(ours, keys, ("auth1",), 1, genesis)
    world.tick()
    node = ClusterNode(ours, ClusterSettings(etcd_endpoints=["http://127.0.0.1:9"]), genesis=genesis)
    try:
        yield world, peer, node
    finally:
        node.etcd.close()
        node._forward_http.close()
        ours.close()
        peer.close()


def _block(world: World, peer: Ledger, n: int) -> tuple[int, bytes, bytes]:
    """A block of ``n`` records proposed by us and applied on both nodes; its (tree size, root, status root)."""
    p = world.ledger.propose([world.issue("SZ", f"L-HOST-{world.next_nonce()}") for _ in range(n)], now=world.now)
    assert p.block is not None
    world.ledger.apply_block(p.block, p.entries)
    peer.apply_block(p.block, p.entries)
    world.tick()
    return p.block.header.tree_size, p.block.header.tree_root, p.block.header.status_root


def _kinds(node: ClusterNode) -> list[str]:
    return [a["kind"] for a in node.alarms]


def test_height_keys_are_exactly_twelve_ascii_digits() -> None:
    assert _height_of(b"/certledger/o/block/000000000042") == 42
    for key in (
        b"block/42",
        b"block/zzz",
        b"block/1_0",
        b"block/ 00000000012",
        b"block/" + b"9" * 5000,
        "block/٠٠٠٠٠٠٠٠٠٠٤٢".encode(),
    ):
        assert _height_of(key) is None, key


def test_foreign_block_keys_are_skipped_not_fatal(pair: tuple[World, Ledger, ClusterNode]) -> None:
    _, _, node = pair
    junk = [KeyValue(node.prefix + k, b"junk", 1, 1, 0) for k in (b"block/zzz", b"block/1_0", b"block/" + b"9" * 5000)]
    node._apply_kvs(junk)  # no exception, nothing applied, nothing asked of etcd (it is unreachable)
    assert node.local_height() == 0
    assert _kinds(node).count("foreign_key") == 3


def test_a_junk_block_far_ahead_neither_moves_the_height_nor_sends_us_to_peers(
    pair: tuple[World, Ledger, ClusterNode],
) -> None:
    _, _, node = pair
    node._apply_kvs([KeyValue(node.prefix + b"block/999999999999", b"junk", 1, 1, 0)])
    assert node.etcd_height == -1 and node.local_height() == 0  # the proposer is not held back by it
    assert _kinds(node) == ["invalid_block"]


def test_a_forged_block_far_ahead_is_refused(pair: tuple[World, Ledger, ClusterNode], keys: KeyRing) -> None:
    """Well formed and naming an admitted proposer, but not signed by it: refused before any catch-up."""
    world, _, node = pair
    p = world.ledger.propose([world.issue("SZ", "L-HOST-FORGED")], now=world.now)
    assert p.block is not None
    header = replace(p.block.header, height=500)
    forged = sign_block(header, PEER.sm2)  # signed, but by node-2, while it names node-1
    node._apply_kvs([KeyValue(node.prefix + b"block/000000000500", _encode_block(forged, p.entries), 1, 1, 0)])
    assert node.etcd_height == -1 and node.local_height() == 0
    assert _kinds(node) == ["invalid_block"]


def test_cosignature_keys_with_huge_heights_or_unknown_signers_are_skipped(
    pair: tuple[World, Ledger, ClusterNode],
) -> None:
    _, _, node = pair
    cosig = node.prefix + b"cosig/"
    for key in (cosig + b"9" * 5000 + b"/node-2", cosig + b"000000000000/nobody", cosig + b"0/node-2"):
        assert node._cosig_kv(KeyValue(key, b"note", 1, 1, 0)) is None, key
    taken = node._cosig_kv(KeyValue(cosig + b"000000000000/node-2", b"note", 1, 1, 0))
    assert taken is not None and taken.signer == "node-2"


def test_cosignatures_are_parked_once_per_signer_for_a_bounded_number_of_heights(
    pair: tuple[World, Ledger, ClusterNode], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, _, node = pair
    monkeypatch.setattr(cluster, "_PARK_HEIGHTS", 3)
    cosig = node.prefix + b"cosig/"

    def park(height: int) -> None:
        assert node._cosig_kv(KeyValue(cosig + f"{height:012d}/node-2".encode(), b"note", 1, 1, 0)) is None

    for _ in range(3):  # re-listed after a restart or a compaction: still one
        park(3)
    park(100_000)
    park(5000)
    assert node._pending_cosigs == {3: {"node-2": "note"}, 5000: {"node-2": "note"}, 100_000: {"node-2": "note"}}
    park(4)  # full: the furthest height gives way
    assert sorted(node._pending_cosigs) == [3, 4, 5000]
    park(200_000)  # full, and further than all: not parked
    assert sorted(node._pending_cosigs) == [3, 4, 5000]


def test_a_cosignature_with_extension_lines_is_refused(pair: tuple[World, Ledger, ClusterNode]) -> None:
    """Same origin, size and root, plus an extension line: its signature does not sign our note's text."""
    world, peer, node = pair
    size, root, status = _block(world, peer, 3)
    ours = (extension_line(status),)
    extended = sign_checkpoint(Checkpoint(ORIGIN, size, root, (*ours, "extra line")), PEER.signers(ORIGIN)).decode()
    policy = node._quorum()
    assert policy is not None
    origin, nodes, _ = policy
    assert node._verified_cosig(origin, nodes, _Cosig(size, "node-2", extended, (root, status))) is None
    assert _kinds(node) == ["bad_cosignature"]
    assert node.alarms[0]["reason"] == "checkpoint.extensions"
    # the peer's own checkpoint for that head is taken, and makes it final (quorum 2 of 2)
    theirs = peer.checkpoint_at(size)
    assert theirs is not None
    node._take_cosigs([_Cosig(size, "node-2", theirs, (root, status))])
    assert node.final_size == size
    final_size, final_note = world.ledger.latest_checkpoint()
    assert final_size == size and "extra line" not in final_note


@pytest.mark.parametrize("in_memory", [True, False])
def test_a_cosignature_of_our_tree_with_another_status_map_is_a_fork(
    pair: tuple[World, Ledger, ClusterNode], in_memory: bool
) -> None:
    """Same origin, size and tree root, another status map root: one of the two states is false."""
    world, peer, node = pair
    size, root, status = _block(world, peer, 2)
    lying = sign_checkpoint(
        Checkpoint(ORIGIN, size, root, (extension_line(bytes(32)),)), PEER.signers(ORIGIN)
    ).decode()
    policy = node._quorum()
    assert policy is not None
    origin, nodes, _ = policy
    # known in memory (a recent head) or read back from our stored checkpoint (an older one)
    cosig = _Cosig(size, "node-2", lying, (root, status) if in_memory else None)
    assert node._verified_cosig(origin, nodes, cosig) is None
    assert _kinds(node) == ["checkpoint_fork"]


def test_a_reject_value_of_another_shape_fails_the_waiter_cleanly(pair: tuple[World, Ledger, ClusterNode]) -> None:
    _, _, node = pair
    fut: Future[Acknowledgement] = Future()
    node._waiters["ab" * 32] = [_Waiter(fut, 0.0)]
    node._rejected("ab" * 32, json.dumps(["not", "an", "object"]).encode())
    with pytest.raises(CertLedgerError) as caught:
        fut.result(timeout=0)
    assert caught.value.reason == "cluster.rejected"


def test_a_cancelled_waiter_is_settled_without_error() -> None:
    fut: Future[Acknowledgement] = Future()
    assert fut.cancel()
    _settle(fut, VerificationError("x", reason="x"))  # no InvalidStateError
    assert fut.cancelled()


def test_blocks_are_never_dated_before_their_predecessor(pair: tuple[World, Ledger, ClusterNode]) -> None:
    world, peer, _ = pair
    _block(world, peer, 2)
    prev = world.ledger.block(1)
    assert prev is not None
    # a proposer whose clock is behind dates its block at the previous block's time, and validates it there
    p = world.ledger.propose([world.issue("SZ", "L-HOST-CLOCK")], now=prev.header.time - timedelta(seconds=5))
    assert p.block is not None and p.block.header.time == prev.header.time
    # a block signed by an admitted proposer but dated before its predecessor is refused
    backdated = sign_block(replace(p.block.header, time=prev.header.time - timedelta(seconds=5)), world.keys.node.sm2)
    with pytest.raises(VerificationError) as caught:
        peer.apply_block(backdated, p.entries)
    assert caught.value.reason == reasons.BLOCK_TIME
    peer.apply_block(p.block, p.entries)  # the one dated right is taken


def test_a_removed_node_proposes_no_later_block(pair: tuple[World, Ledger, ClusterNode]) -> None:
    world, peer, _ = pair
    # a third node first: removing node-2 must leave the quorum (2) admitted
    third = world.governance(RecordType.NODE_ADMIT, {"node": NodeKeys.generate("node-3").node_json("node 3")})
    below = world.governance(RecordType.NODE_REMOVE, {"node_id": "node-2"})
    assert world.ledger.propose([below], now=world.now).rejected[0].reason == reasons.GOVERNANCE_BELOW_QUORUM
    removal = world.governance(RecordType.NODE_REMOVE, {"node_id": "node-2"})
    p = world.ledger.propose([third, removal], now=world.now)
    assert p.block is not None and not p.rejected, p.rejected
    world.ledger.apply_block(p.block, p.entries)
    peer.apply_block(p.block, p.entries)
    world.tick()
    # node-2 proposes the next block anyway (dated after the removal, as blocks must be)
    q = peer.propose([world.issue("SZ", "L-HOST-REMOVED")], now=world.now)
    assert q.block is not None
    with pytest.raises(VerificationError) as caught:
        world.ledger.apply_block(q.block, q.entries)
    assert caught.value.reason == reasons.BLOCK_SIGNATURE


def test_peer_blocks_need_a_tree_head_the_quorum_signed(pair: tuple[World, Ledger, ClusterNode]) -> None:
    """Catch-up checks the head a chunk of peer blocks ends in against a quorum checkpoint first."""
    world, peer, node = pair
    size, _, _ = _block(world, peer, 4)
    block = world.ledger.block(1)
    assert block is not None
    with TestClient(create_app(peer)) as http:
        # the peer holds only its own signature for that head (quorum 2): not enough (and it has no
        # final checkpoint at all: its API answers 503)
        with pytest.raises((CertLedgerError, httpx.HTTPStatusError)):
            node._check_quorum_head(http, "", block)
        # once it holds ours too, the head is the quorum's
        name = note_key_name(ORIGIN, "node-1")
        peer.add_cosignature_sets([(size, name, _our_lines(world.ledger, size))])
        node._check_quorum_head(http, "", block)
        # a block claiming another root at that size is refused
        forged = replace(block, header=replace(block.header, tree_root=bytes(32)))
        with pytest.raises(CertLedgerError):
            node._check_quorum_head(http, "", forged)
        # a head whose own note lacks the quorum is checked through a consistency proof to a final one
        _block(world, peer, 2)
        older = world.ledger.block(2)
        assert older is not None
        size3, _, _ = _block(world, peer, 3)
        peer.add_cosignature_sets([(size3, name, _our_lines(world.ledger, size3))])
        assert peer.latest_checkpoint()[0] == size3
        node._check_quorum_head(http, "", older)
        with pytest.raises(CertLedgerError):
            node._check_quorum_head(http, "", replace(older, header=replace(older.header, tree_root=bytes(32))))


def _our_lines(ledger: Ledger, size: int) -> list[str]:
    """node-1's signature lines in its checkpoint note at ``size``."""
    note = ledger.checkpoint_at(size)
    assert note is not None
    prefix = f"\u2014 {note_key_name(ORIGIN, 'node-1')} "
    lines = [line for line in note.split("\n\n", 1)[1].splitlines() if line.startswith(prefix)]
    assert lines
    return lines

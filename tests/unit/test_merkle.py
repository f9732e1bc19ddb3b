"""Tests of ledger.merkle: public vectors, an independent RFC reference, properties, scale.

The reference below follows the recursive definitions of RFC 9162 §2.1.1,
§2.1.3.1 and §2.1.4.1 literally over leaf lists and calls only the raw hash
function, so it shares no code with the store-based implementation it checks.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import random
import shutil
import subprocess
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.merkle import (
    MAX_TREE_SIZE,
    PROOF_CONSISTENCY,
    PROOF_INCLUSION,
    PROOF_MALFORMED,
    SHA256_HASHER,
    SM3_HASHER,
    CompactRange,
    MemoryMerkleTree,
    MemoryNodeStore,
    NodeKey,
    ProofPlan,
    TreeHasher,
    compact_range_keys,
    consistency_proof,
    consistency_proof_keys,
    inclusion_proof,
    inclusion_proof_keys,
    merkle_root,
    root_at,
    root_from_inclusion_proof,
    verify_consistency,
    verify_inclusion,
)
from signing.errors import InvalidInputError, StorageError, VerificationError

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "merkle"
HASHERS = [SHA256_HASHER, SM3_HASHER]
HASHER_IDS = ["sha256", "sm3"]


def load(name: str) -> Any:
    return json.loads((VECTORS / name).read_text(encoding="utf-8"))


def b64(value: str) -> bytes:
    return base64.b64decode(value)


# --------------------------------------------------------------------------- reference


class Reference:
    """RFC 9162 MTH / PATH / PROOF, straight from the recursive definitions."""

    def __init__(self, hasher: TreeHasher, entries: Sequence[bytes]) -> None:
        self.fn = hasher.hash_fn
        self.leaves = [self.fn(b"\x00" + entry) for entry in entries]
        self._memo: dict[tuple[int, int], bytes] = {}

    @staticmethod
    def split(n: int) -> int:
        k = 1
        while k * 2 < n:
            k *= 2
        return k

    def mth(self, a: int, b: int) -> bytes:
        """MTH(D[a:b])."""
        if b - a == 0:
            return self.fn(b"")
        if b - a == 1:
            return self.leaves[a]
        if (a, b) not in self._memo:
            k = self.split(b - a)
            self._memo[(a, b)] = self.fn(b"\x01" + self.mth(a, a + k) + self.mth(a + k, b))
        return self._memo[(a, b)]

    def path(self, m: int, a: int, b: int) -> list[bytes]:
        """PATH(m, D[a:b]), m relative to a."""
        if b - a <= 1:
            return []
        k = self.split(b - a)
        if m < k:
            return [*self.path(m, a, a + k), self.mth(a + k, b)]
        return [*self.path(m - k, a + k, b), self.mth(a, a + k)]

    def subproof(self, m: int, a: int, b: int, whole: bool) -> list[bytes]:
        """SUBPROOF(m, D[a:b], whole)."""
        n = b - a
        if m == n:
            return [] if whole else [self.mth(a, b)]
        k = self.split(n)
        if m <= k:
            return [*self.subproof(m, a, a + k, whole), self.mth(a + k, b)]
        return [*self.subproof(m - k, a + k, b, False), self.mth(a, a + k)]

    def proof(self, m: int, n: int) -> list[bytes]:
        """PROOF(m, D[0:n])."""
        return self.subproof(m, 0, n, True) if 0 < m < n else []


def entries(n: int, tag: str = "e") -> list[bytes]:
    return [f"{tag}-{i}".encode() for i in range(n)]


@cache
def built(hasher: TreeHasher, n: int) -> tuple[MemoryMerkleTree, Reference]:
    """A store-backed tree of n distinct entries and its reference (cached across examples)."""
    data = entries(n)
    tree = MemoryMerkleTree(hasher)
    for entry in data:
        tree.append_entry(entry)
    return tree, Reference(hasher, data)


class CountingReader:
    """Wraps a NodeReader and records each get_nodes call."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[int] = []

    def get_nodes(self, keys: Sequence[NodeKey], /) -> list[bytes]:
        self.calls.append(len(keys))
        return list(self.inner.get_nodes(keys))


def flip_bit(value: bytes, bit: int) -> bytes:
    out = bytearray(value)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def reason_of(call: Any) -> str:
    with pytest.raises(VerificationError) as info:
        call()
    return info.value.reason


# --------------------------------------------------------------------------- public vectors


def test_sha256_tree_vectors_roots_nodes_and_frontiers() -> None:
    data = load("transparency_dev_tree.json")
    leaves = [bytes.fromhex(x) for x in data["leaf_inputs"]]
    roots = [bytes.fromhex(x) for x in data["root_hashes"]]
    assert SHA256_HASHER.empty_root() == roots[0]
    frontier = CompactRange(SHA256_HASHER)
    store = MemoryNodeStore()
    for size in range(len(leaves) + 1):
        assert merkle_root(SHA256_HASHER, [SHA256_HASHER.hash_leaf(x) for x in leaves[:size]]) == (roots[size])
        assert frontier.root() == roots[size]
        expected_keys = tuple(tuple(k) for k in data["compact_trees"][size])
        assert compact_range_keys(size) == expected_keys
        assert frontier.hashes == tuple(
            bytes.fromhex(data["node_hashes"][level][index]) for level, index in expected_keys
        )
        if size < len(leaves):
            store.put_nodes(frontier.append(SHA256_HASHER.hash_leaf(leaves[size])))
    for level, row in enumerate(data["node_hashes"]):
        for index, value in enumerate(row):
            assert store.get_nodes([(level, index)]) == [bytes.fromhex(value)]
    assert len(store) == sum(len(row) for row in data["node_hashes"])


def test_sha256_proof_vectors_generate_and_verify() -> None:
    data = load("transparency_dev_proofs.json")
    roots = [bytes.fromhex(x) for x in load("transparency_dev_tree.json")["root_hashes"]]
    leaves = [bytes.fromhex(x) for x in load("transparency_dev_tree.json")["leaf_inputs"]]
    tree = MemoryMerkleTree(SHA256_HASHER)
    for leaf in leaves:
        tree.append_entry(leaf)
    for case in data["inclusion"]:
        index, size = case["leaf_index"], case["tree_size"]
        expected = [bytes.fromhex(x) for x in case["proof"]]
        assert tree.inclusion_proof(index, size) == expected
        leaf_hash = SHA256_HASHER.hash_leaf(leaves[index])
        verify_inclusion(SHA256_HASHER, index, size, leaf_hash, expected, roots[size])
        assert root_from_inclusion_proof(SHA256_HASHER, index, size, leaf_hash, expected) == (roots[size])
    for case in data["consistency"]:
        old, new = case["old_size"], case["new_size"]
        expected = [bytes.fromhex(x) for x in case["proof"]]
        assert tree.consistency_proof(old, new) == expected
        verify_consistency(SHA256_HASHER, old, new, roots[old], roots[new], expected)


@pytest.mark.parametrize(
    "case",
    load("transparency_dev_testdata_inclusion.json")["cases"],
    ids=lambda c: c["file"],
)
def test_transparency_dev_inclusion_testdata(case: dict[str, Any]) -> None:
    args = (
        SHA256_HASHER,
        case["leafIdx"],
        case["treeSize"],
        b64(case["leafHash"]),
        [b64(p) for p in case["proof"] or []],
        b64(case["root"]),
    )
    if case["wantErr"]:
        assert reason_of(lambda: verify_inclusion(*args)) in {PROOF_MALFORMED, PROOF_INCLUSION}
    else:
        verify_inclusion(*args)


@pytest.mark.parametrize(
    "case",
    load("transparency_dev_testdata_consistency.json")["cases"],
    ids=lambda c: c["file"],
)
def test_transparency_dev_consistency_testdata(case: dict[str, Any]) -> None:
    args = (
        SHA256_HASHER,
        case["size1"],
        case["size2"],
        b64(case["root1"]),
        b64(case["root2"]),
        [b64(p) for p in case["proof"] or []],
    )
    if case["wantErr"]:
        assert reason_of(lambda: verify_consistency(*args)) in {PROOF_MALFORMED, PROOF_CONSISTENCY}
    else:
        verify_consistency(*args)


def test_testdata_reasons_are_specific() -> None:
    """Bad paths are malformed; good-shaped paths with wrong hashes are inclusion failures."""
    cases = {
        c["file"].rsplit("/", 1)[-1]: c
        for c in load("transparency_dev_testdata_inclusion.json")["cases"]
        if "/2/" in c["file"]
    }

    def run(name: str) -> str:
        c = cases[name]
        return reason_of(
            lambda: verify_inclusion(
                SHA256_HASHER,
                c["leafIdx"],
                c["treeSize"],
                b64(c["leafHash"]),
                [b64(p) for p in c["proof"]],
                b64(c["root"]),
            )
        )

    assert run("modified-proof[1]-bit-3.json") == PROOF_INCLUSION
    assert run("random-root.json") == PROOF_INCLUSION
    assert run("leafIdx-+-1.json") == PROOF_INCLUSION
    assert run("removed-component.json") == PROOF_MALFORMED
    assert run("trailing-root.json") == PROOF_MALFORMED
    assert run("wrong-leaf.json") == PROOF_MALFORMED


def sm3_openssl(data: bytes) -> bytes:
    out = subprocess.run(["openssl", "dgst", "-sm3", "-binary"], input=data, capture_output=True, check=True)
    return out.stdout


@pytest.mark.interop
@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not installed")
def test_sm3_tree_matches_openssl_cli() -> None:
    """The SM3 tree equals one hashed by an independent SM3 (the openssl CLI)."""
    try:
        sm3_openssl(b"")
    except subprocess.CalledProcessError:
        pytest.skip("openssl CLI lacks SM3")
    leaves = [bytes.fromhex(x) for x in load("transparency_dev_tree.json")["leaf_inputs"]]
    cli = TreeHasher(hash_fn=sm3_openssl, digest_size=32, name="sm3")
    reference = Reference(cli, leaves)
    tree = MemoryMerkleTree(SM3_HASHER)
    assert tree.root() == sm3_openssl(b"")
    for leaf in leaves:
        tree.append_entry(leaf)
    for size in range(1, len(leaves) + 1):
        assert tree.root(size) == reference.mth(0, size)
    assert tree.inclusion_proof(5, 7) == reference.path(5, 0, 7)
    assert tree.consistency_proof(3, 7) == reference.proof(3, 7)


def test_hasher_domain_separation() -> None:
    for hasher in HASHERS:
        assert hasher.hash_leaf(b"x") == hasher.hash_fn(b"\x00x")
        assert hasher.hash_children(b"a" * 32, b"b" * 32) == hasher.hash_fn(b"\x01" + b"a" * 32 + b"b" * 32)
    assert SHA256_HASHER.empty_root() == hashlib.sha256(b"").digest()
    assert SM3_HASHER.empty_root() == hashlib.new("sm3", b"").digest()
    assert TreeHasher() == SM3_HASHER
    with pytest.raises(InvalidInputError):
        TreeHasher(hash_fn=lambda d: hashlib.sha1(d).digest(), digest_size=32, name="sha1")


# --------------------------------------------------------------------------- exhaustive, small


@pytest.mark.parametrize("hasher", HASHERS, ids=HASHER_IDS)
def test_every_proof_of_small_trees_matches_reference_and_verifies(hasher: TreeHasher) -> None:
    tree, ref = built(hasher, 40)
    for n in range(1, 41):
        root = ref.mth(0, n)
        assert tree.root(n) == root
        for index in range(n):
            proof = tree.inclusion_proof(index, n)
            assert proof == ref.path(index, 0, n)
            verify_inclusion(hasher, index, n, ref.leaves[index], proof, root)
        for old in range(n + 1):
            proof = tree.consistency_proof(old, n)
            assert proof == ref.proof(old, n)
            verify_consistency(hasher, old, n, ref.mth(0, old), root, proof)


def test_plans_use_distinct_full_nodes_within_bound() -> None:
    for n in range(1, 200):
        bound = 2 * math.ceil(math.log2(n)) if n > 1 else 0
        for plan in [inclusion_proof_keys(i, n) for i in range(n)] + [
            consistency_proof_keys(m, n) for m in range(n + 1)
        ]:
            keys = plan.keys
            assert len(keys) == len(set(keys)) <= bound
            # every key is a full node of the tree at size n (stored by then)
            assert all((index + 1) << level <= n for level, index in keys)
            for element in plan.elements:
                levels = [level for level, _ in element]
                assert levels == sorted(levels, reverse=True)
                assert len(set(levels)) == len(levels)


# --------------------------------------------------------------------------- properties

sizes = st.integers(min_value=1, max_value=3000)
prop = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@prop
@given(hasher=st.sampled_from(HASHERS), n=sizes, data=st.data())
def test_inclusion_proofs_verify_and_match_reference(hasher: TreeHasher, n: int, data: st.DataObject) -> None:
    tree, ref = built(hasher, n)
    size = data.draw(st.integers(1, n), label="size")
    index = data.draw(st.integers(0, size - 1), label="index")
    root = ref.mth(0, size)
    reader = CountingReader(tree.nodes)
    proof = inclusion_proof(index, size, reader, hasher=hasher)
    assert len(reader.calls) <= 1
    assert proof == ref.path(index, 0, size)
    verify_inclusion(hasher, index, size, ref.leaves[index], proof, root)
    assert root_from_inclusion_proof(hasher, index, size, ref.leaves[index], proof) == root


@prop
@given(hasher=st.sampled_from(HASHERS), n=sizes, data=st.data())
def test_consistency_proofs_verify_and_match_reference(hasher: TreeHasher, n: int, data: st.DataObject) -> None:
    tree, ref = built(hasher, n)
    new = data.draw(st.integers(0, n), label="new")
    old = data.draw(st.integers(0, new), label="old")
    reader = CountingReader(tree.nodes)
    proof = consistency_proof(old, new, reader, hasher=hasher)
    assert len(reader.calls) <= 1
    assert proof == ref.proof(old, new)
    verify_consistency(hasher, old, new, ref.mth(0, old), ref.mth(0, new), proof)


@prop
@given(hasher=st.sampled_from(HASHERS), n=sizes, data=st.data())
def test_tampered_inclusion_proofs_fail(hasher: TreeHasher, n: int, data: st.DataObject) -> None:
    tree, ref = built(hasher, n)
    index = data.draw(st.integers(0, n - 1), label="index")
    proof = tree.inclusion_proof(index, n)
    root, leaf = ref.mth(0, n), ref.leaves[index]

    def check(p: list[bytes], i: int = index, s: int = n, lf: bytes = leaf, r: bytes = root) -> str:
        return reason_of(lambda: verify_inclusion(hasher, i, s, lf, p, r))

    bit = data.draw(st.integers(0, 8 * hasher.digest_size - 1), label="bit")
    for pos in range(len(proof)):
        assert check([*proof[:pos], flip_bit(proof[pos], bit), *proof[pos + 1 :]]) == (PROOF_INCLUSION)
        assert check(proof[:pos] + proof[pos + 1 :]) == PROOF_MALFORMED
    extra = data.draw(st.binary(min_size=hasher.digest_size, max_size=hasher.digest_size))
    for pos in range(len(proof) + 1):
        assert check([*proof[:pos], extra, *proof[pos:]]) == PROOF_MALFORMED
    assert check(proof, lf=flip_bit(leaf, bit)) == PROOF_INCLUSION
    assert check(proof, r=flip_bit(root, bit)) == PROOF_INCLUSION
    # the transparency-dev probes: a wrong index or a tree twice / half as high.
    # (Not size + 1: trees of n and n + 1 leaves can share a path's shape, so the
    # same proof and root verify; the checkpoint, not the proof, binds size to root.)
    for other in {index - 1, index + 1, index ^ 2} - {index}:
        if 0 <= other < n:
            check(proof, i=other)  # any reason: it must not verify
    for other_size in {n * 2, n // 2} - {n}:
        if other_size > index:
            check(proof, s=other_size)


@prop
@given(hasher=st.sampled_from(HASHERS), n=st.integers(2, 3000), data=st.data())
def test_tampered_consistency_proofs_fail(hasher: TreeHasher, n: int, data: st.DataObject) -> None:
    tree, ref = built(hasher, n)
    old = data.draw(st.integers(1, n - 1), label="old")
    proof = tree.consistency_proof(old, n)
    r1, r2 = ref.mth(0, old), ref.mth(0, n)

    def check(p: list[bytes], m: int = old, s: int = n, a: bytes = r1, b: bytes = r2) -> str:
        return reason_of(lambda: verify_consistency(hasher, m, s, a, b, p))

    bit = data.draw(st.integers(0, 8 * hasher.digest_size - 1), label="bit")
    for pos in range(len(proof)):
        assert check([*proof[:pos], flip_bit(proof[pos], bit), *proof[pos + 1 :]]) == (PROOF_CONSISTENCY)
        assert check(proof[:pos] + proof[pos + 1 :]) == PROOF_MALFORMED
    extra = data.draw(st.binary(min_size=hasher.digest_size, max_size=hasher.digest_size))
    for pos in range(len(proof) + 1):
        assert check([*proof[:pos], extra, *proof[pos:]]) == PROOF_MALFORMED
    assert check(proof, a=flip_bit(r1, bit)) == PROOF_CONSISTENCY
    assert check(proof, b=flip_bit(r2, bit)) == PROOF_CONSISTENCY
    assert check(proof, a=r2, b=r1) == PROOF_CONSISTENCY
    for other in {old - 1, old + 1, old ^ 2} - {old, 0, n}:
        if 0 < other < n:
            check(proof, m=other)
    check(proof, s=n * 2)


@settings(max_examples=25, deadline=None)
@given(hasher=st.sampled_from(HASHERS), n=st.integers(0, 2000), tag=st.text(max_size=4))
def test_compact_range_tracks_reference_and_emits_exactly_the_full_nodes(hasher: TreeHasher, n: int, tag: str) -> None:
    data = entries(n, tag)
    ref = Reference(hasher, data)
    frontier = CompactRange(hasher)
    store = MemoryNodeStore()
    assert frontier.root() == hasher.empty_root()
    for k, leaf in enumerate(ref.leaves, start=1):
        new_nodes = frontier.append(leaf)
        # 1 + trailing one bits of the old size, each completed by exactly this append
        trailing_ones = ((k - 1) ^ k).bit_length() - 1
        assert len(new_nodes) == trailing_ones + 1 <= math.log2(k) + 1
        for (level, index), value in new_nodes:
            assert (index + 1) << level == k
            assert value == ref.mth(index << level, (index + 1) << level)
        store.put_nodes(new_nodes)
        assert frontier.size == k
        assert frontier.root() == ref.mth(0, k)
    # the store holds every full node of the tree and nothing else
    assert len(store) == 2 * n - n.bit_count()
    # any historic frontier can be rebuilt from the stored nodes in one read
    for size in {0, n // 3, n // 2, n}:
        reader = CountingReader(store)
        again = CompactRange.from_nodes(size, reader, hasher=hasher)
        assert again.root() == ref.mth(0, size) == root_at(size, store, hasher=hasher)
        assert len(reader.calls) <= 1
    assert CompactRange.from_nodes(n, store, hasher=hasher) == frontier


def test_compact_range_state_roundtrip_and_resume() -> None:
    hasher = SM3_HASHER
    frontier = CompactRange(hasher)
    frontier.extend(hasher.hash_leaf(e) for e in entries(13))
    state = json.loads(json.dumps(frontier.to_dict()))
    resumed = CompactRange.from_dict(state, hasher=hasher)
    assert resumed == frontier and resumed is not frontier
    more = [hasher.hash_leaf(e) for e in entries(7, "more")]
    copy = frontier.copy()
    assert resumed.extend(more) == frontier.extend(more)
    assert resumed.root() == frontier.root() != copy.root()
    assert copy.size == 13


@pytest.mark.parametrize(
    "state",
    [
        None,
        {},
        {"hash": "sm3", "size": 3, "hashes": ["00" * 32]},  # popcount(3) == 2
        {"hash": "sha256", "size": 1, "hashes": ["00" * 32]},  # other hash function
        {"hash": "sm3", "size": 1, "hashes": ["zz" * 32]},
        {"hash": "sm3", "size": 1, "hashes": ["00" * 31]},
        {"hash": "sm3", "size": -1, "hashes": []},
        {"hash": "sm3", "size": True, "hashes": ["00" * 32]},
        {"hash": "sm3", "size": 2**64, "hashes": ["00" * 32]},
        {"hash": "sm3", "size": "1", "hashes": ["00" * 32]},
        {"hash": "sm3", "size": 1, "hashes": "00" * 32},
        {"hash": "sm3", "size": 1, "hashes": [1]},
        {"hash": "sm3", "size": 0, "hashes": [], "extra": 1},
    ],
)
def test_compact_range_rejects_bad_state(state: Any) -> None:
    with pytest.raises(InvalidInputError) as info:
        CompactRange.from_dict(state, hasher=SM3_HASHER)
    assert info.value.reason == "merkle.bad_state"


def test_compact_range_rejects_bad_leaf_hash() -> None:
    with pytest.raises(InvalidInputError):
        CompactRange(SM3_HASHER).append(b"short")


# --------------------------------------------------------------------------- edges and hostile input


def test_consistency_edges() -> None:
    h = SHA256_HASHER
    _tree, ref = built(h, 8)
    r0, r1, r8 = h.empty_root(), ref.mth(0, 1), ref.mth(0, 8)
    verify_consistency(h, 0, 0, r0, r0, [])
    verify_consistency(h, 0, 8, r0, r8, [])
    verify_consistency(h, 8, 8, r8, r8, [])
    assert reason_of(lambda: verify_consistency(h, 8, 8, r8, r1, [])) == PROOF_CONSISTENCY
    assert reason_of(lambda: verify_consistency(h, 0, 8, r1, r8, [])) == PROOF_CONSISTENCY
    assert reason_of(lambda: verify_consistency(h, 8, 8, r8, r8, [r0])) == PROOF_MALFORMED
    assert reason_of(lambda: verify_consistency(h, 0, 8, r0, r8, [r0])) == PROOF_MALFORMED
    assert reason_of(lambda: verify_consistency(h, 8, 1, r8, r1, [])) == PROOF_MALFORMED
    assert reason_of(lambda: verify_consistency(h, 1, 8, r1, r8, [])) == PROOF_MALFORMED


@pytest.mark.parametrize(
    ("index", "size", "leaf", "proof", "root"),
    [
        (0, 0, b"\0" * 32, [], b"\0" * 32),  # empty tree has no leaves
        (1, 1, b"\0" * 32, [], b"\0" * 32),
        (-1, 1, b"\0" * 32, [], b"\0" * 32),
        (True, 2, b"\0" * 32, [b"\0" * 32], b"\0" * 32),
        (0, 2**64, b"\0" * 32, [], b"\0" * 32),
        ("0", 1, b"\0" * 32, [], b"\0" * 32),
        (0, 1, "00" * 32, [], b"\0" * 32),
        (0, 1, b"\0" * 32, [], None),
        (0, 2, b"\0" * 32, ["00" * 32], b"\0" * 32),
        (0, 2, b"\0" * 32, b"\0" * 32, b"\0" * 32),
        (0, 2, b"\0" * 32, "x", b"\0" * 32),
        (0, 2, b"\0" * 32, None, b"\0" * 32),
        (0, 2, b"\0" * 32, [b"\0" * 33], b"\0" * 32),
        (0, 2, b"\0" * 32, [b"\0" * 32] * 10_000_000, b"\0" * 32),  # refused, not iterated
        (2**64 - 2, 2**64 - 1, b"\0" * 32, [b"\0" * 32] * 62, b"\0" * 32),  # 63 needed
    ],
)
def test_verify_inclusion_rejects_malformed_input(index: Any, size: Any, leaf: Any, proof: Any, root: Any) -> None:
    assert reason_of(lambda: verify_inclusion(SM3_HASHER, index, size, leaf, proof, root)) == PROOF_MALFORMED


@pytest.mark.parametrize(
    ("old", "new", "r1", "r2", "proof"),
    [
        (-1, 2, b"\0" * 32, b"\0" * 32, [b"\0" * 32]),
        (1, 2**64, b"\0" * 32, b"\0" * 32, [b"\0" * 32]),
        (1, 2, b"\0" * 31, b"\0" * 32, [b"\0" * 32]),
        (1, 2, b"\0" * 32, "r2", [b"\0" * 32]),
        (1, 2, b"\0" * 32, b"\0" * 32, [None]),
        (1, 2, b"\0" * 32, b"\0" * 32, {"not": "a list"}),
        (3, 4, b"\0" * 32, b"\0" * 32, [b"\0" * 32] * 10_000_000),
        (1, False, b"\0" * 32, b"\0" * 32, []),
    ],
)
def test_verify_consistency_rejects_malformed_input(old: Any, new: Any, r1: Any, r2: Any, proof: Any) -> None:
    assert reason_of(lambda: verify_consistency(SM3_HASHER, old, new, r1, r2, proof)) == PROOF_MALFORMED


def test_proof_plan_rejects_inconsistent_use() -> None:
    with pytest.raises(InvalidInputError):
        ProofPlan(((),))
    plan = inclusion_proof_keys(3, 7)
    with pytest.raises(InvalidInputError):
        plan.assemble(SM3_HASHER, [b"\0" * 32] * (len(plan.keys) - 1))


def test_largest_tree_size_is_handled() -> None:
    """A uint64-sized tree plans and verifies without overflow or unbounded loops."""
    n = MAX_TREE_SIZE
    assert len(inclusion_proof_keys(0, n).elements) == 64
    assert len(inclusion_proof_keys(n - 1, n).elements) == 63
    for plan in (inclusion_proof_keys(0, n), consistency_proof_keys(2**63 + 1, n)):
        assert len(plan.keys) <= 128
        assert all((index + 1) << level <= n for level, index in plan.keys)
    leaf = b"\0" * 32
    assert reason_of(lambda: verify_inclusion(SM3_HASHER, n - 1, n, leaf, [leaf] * 63, leaf)) == PROOF_INCLUSION


@pytest.mark.parametrize(
    "call",
    [
        lambda: inclusion_proof_keys(5, 5),
        lambda: inclusion_proof_keys(-1, 5),
        lambda: inclusion_proof_keys(0, 2**64),
        lambda: inclusion_proof_keys(True, 5),
        lambda: consistency_proof_keys(6, 5),
        lambda: consistency_proof_keys(0, -1),
        lambda: compact_range_keys(-3),
    ],
)
def test_generation_rejects_out_of_range(call: Any) -> None:
    with pytest.raises(InvalidInputError) as info:
        call()
    assert info.value.reason == "merkle.out_of_range"


def test_memory_tree_refuses_future_sizes() -> None:
    tree, _ = built(SM3_HASHER, 8)
    for call in (
        lambda: tree.root(9),
        lambda: tree.inclusion_proof(0, 9),
        lambda: tree.consistency_proof(1, 9),
    ):
        with pytest.raises(InvalidInputError):
            call()


def test_store_errors_are_storage_errors() -> None:
    store = MemoryNodeStore()
    store.put_nodes([((0, 0), b"a" * 32)])
    store.put_nodes([((0, 0), b"a" * 32)])  # same hash again: idempotent
    with pytest.raises(StorageError) as conflict:
        store.put_nodes([((0, 1), b"b" * 32), ((0, 0), b"c" * 32)])
    assert conflict.value.reason == "merkle.node_conflict"
    assert (0, 1) not in store  # the failed batch wrote nothing
    for bad_key in [(64, 0), (0, -1), (1, 2**63), "x", (0,), (True, 0)]:
        with pytest.raises(InvalidInputError):
            store.put_nodes([(bad_key, b"a" * 32)])  # type: ignore[list-item]
    with pytest.raises(StorageError) as missing:
        inclusion_proof(0, 2, store, hasher=SM3_HASHER)
    assert missing.value.reason == "merkle.node_missing"

    class ShortReader:
        def get_nodes(self, keys: Sequence[NodeKey], /) -> list[bytes]:
            return [b"x" * 32] * (len(keys) - 1)

    class BadHashReader:
        def get_nodes(self, keys: Sequence[NodeKey], /) -> list[bytes]:
            return [b"x" * 31 for _ in keys]

    for reader in (ShortReader(), BadHashReader()):
        with pytest.raises(StorageError):
            consistency_proof(3, 7, reader, hasher=SM3_HASHER)
        with pytest.raises(StorageError):
            CompactRange.from_nodes(7, reader, hasher=SM3_HASHER)


# --------------------------------------------------------------------------- scale


class PeriodicTreeReader:
    """The full nodes of a million-leaf tree without hashing a million leaves.

    Leaf i is entry ``i mod 2**period_bits``, so every subtree at or above
    that level is identical and below it repeats with the period; node hashes
    are derived on demand, memoised, and form a genuine RFC 9162 tree.
    """

    def __init__(self, hasher: TreeHasher, period_bits: int = 10) -> None:
        self.hasher = hasher
        self.period_bits = period_bits
        self.calls: list[int] = []
        self._memo: dict[NodeKey, bytes] = {}

    def node(self, level: int, index: int) -> bytes:
        if level < self.period_bits:
            index %= 1 << (self.period_bits - level)
        else:
            index = 0
        key = (level, index)
        if key not in self._memo:
            if level == 0:
                self._memo[key] = self.hasher.hash_leaf(b"entry-%d" % index)
            else:
                self._memo[key] = self.hasher.hash_children(
                    self.node(level - 1, 2 * index), self.node(level - 1, 2 * index + 1)
                )
        return self._memo[key]

    def get_nodes(self, keys: Sequence[NodeKey], /) -> list[bytes]:
        self.calls.append(len(keys))
        return [self.node(level, index) for level, index in keys]


@pytest.mark.parametrize("hasher", HASHERS, ids=HASHER_IDS)
def test_million_leaf_proofs_are_one_batch_of_at_most_2log2n_nodes(hasher: TreeHasher) -> None:
    n = 1_000_000
    bound = 2 * math.log2(n)
    reader = PeriodicTreeReader(hasher)
    root = root_at(n, reader, hasher=hasher)
    assert reader.calls == [n.bit_count()]
    rng = random.Random(9162)
    indices = [0, 1, 1023, 1024, n // 2, 2**19, 2**19 + 1, n - 2, n - 1]
    indices += [rng.randrange(n) for _ in range(200)]
    for index in indices:
        reader.calls.clear()
        proof = inclusion_proof(index, n, reader, hasher=hasher)
        assert len(reader.calls) == 1 and reader.calls[0] <= bound
        verify_inclusion(hasher, index, n, reader.node(0, index), proof, root)
    olds = [1, 2, 1024, 2**19, 2**19 + 1, n // 2, n - 1, *(rng.randrange(1, n) for _ in range(200))]
    for old in olds:
        reader.calls.clear()
        proof = consistency_proof(old, n, reader, hasher=hasher)
        assert len(reader.calls) == 1 and reader.calls[0] <= bound
        old_root = root_at(old, reader, hasher=hasher)
        verify_consistency(hasher, old, n, old_root, root, proof)
    # the worst case over every index / old size of this tree (plans only, no I/O)
    step = 997  # a prime stride keeps this fast while hitting every residue pattern
    worst = max(len(inclusion_proof_keys(i, n).keys) for i in range(0, n, step))
    worst = max(worst, *(len(consistency_proof_keys(m, n).keys) for m in range(1, n, step)))
    assert worst <= bound


def test_a_proof_does_not_bind_the_tree_size() -> None:
    """Documented RFC behaviour: trees of 3 and 4 leaves share leaf 0's path shape.

    So the size a proof is checked against must come with the root from a
    signed checkpoint; the proof alone cannot tell 3 from 4.
    """
    h = SHA256_HASHER
    tree, ref = built(h, 4)
    proof = tree.inclusion_proof(0, 3)
    verify_inclusion(h, 0, 3, ref.leaves[0], proof, ref.mth(0, 3))
    verify_inclusion(h, 0, 4, ref.leaves[0], proof, ref.mth(0, 3))
    assert reason_of(lambda: verify_inclusion(h, 0, 4, ref.leaves[0], proof, ref.mth(0, 4))) == PROOF_INCLUSION

"""The status map (ledger/statusmap.py) against its definition, written out naively here.

The reference below computes the root straight from the set of leaves, by the
recursive definition in the module's docstring (an empty subtree is EMPTY, a subtree
of one leaf is that leaf, anything else a branch of its two halves). The map builds
and updates its tree by other routes (sorted bulk build, path copying); both must
give the reference's root for every set, under SM3 and under SHA-256.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable

import pytest

from ledger import statusmap
from ledger.statusmap import (
    EMPTY,
    StatusMap,
    StatusProof,
    extension_line,
    root_from_extensions,
    status_key,
    verify_absence,
    verify_membership,
)
from signing.errors import InvalidInputError, VerificationError
from signing.sm3 import sm3


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


HASHES: dict[str, Callable[[bytes], bytes]] = {"sm3": sm3, "sha256": sha256}


def bit(key: bytes, depth: int) -> int:
    return (key[depth // 8] >> (7 - depth % 8)) & 1


def reference_root(items: dict[bytes, bytes], h: Callable[[bytes], bytes], depth: int = 0) -> bytes:
    if not items:
        return EMPTY
    if len(items) == 1:
        ((key, value),) = items.items()
        return h(b"\x02" + key + value)
    left = {k: v for k, v in items.items() if bit(k, depth) == 0}
    right = {k: v for k, v in items.items() if bit(k, depth) == 1}
    return h(b"\x03" + reference_root(left, h, depth + 1) + reference_root(right, h, depth + 1))


def random_items(n: int, seed: int) -> dict[bytes, bytes]:
    rng = random.Random(seed)
    return {rng.randbytes(32): rng.randbytes(32) for _ in range(n)}


@pytest.mark.parametrize("name", sorted(HASHES))
@pytest.mark.parametrize("n", [0, 1, 2, 3, 5, 17, 200])
def test_build_and_updates_give_the_reference_root(name: str, n: int) -> None:
    h = HASHES[name]
    items = random_items(n, seed=n)
    expected = reference_root(items, h)
    assert StatusMap.build(items.items(), hash_fn=h).root == expected
    shuffled = list(items.items())
    random.Random(7).shuffle(shuffled)
    one_by_one = StatusMap(hash_fn=h)
    for pair in shuffled:
        one_by_one = one_by_one.updated([pair])
    assert one_by_one.root == expected
    assert StatusMap(hash_fn=h).updated(shuffled).root == expected
    assert len(one_by_one) == n


def test_the_empty_map_and_a_single_leaf() -> None:
    assert StatusMap().root == EMPTY
    key, value = status_key("LIC-1"), sm3(b"state")
    assert StatusMap().updated([(key, value)]).root == sm3(b"\x02" + key + value)


def test_replacing_a_value_changes_the_root_and_leaves_older_versions_intact() -> None:
    items = random_items(50, seed=1)
    old = StatusMap.build(items.items())
    key = sorted(items)[20]
    new = old.updated([(key, sm3(b"revoked"))])
    assert new.root != old.root and len(new) == len(old) == 50
    assert new.root == reference_root({**items, key: sm3(b"revoked")}, sm3)
    # path copying: the old version still answers as it did
    assert old.root == reference_root(items, sm3) and old.get(key) == items[key]
    assert new.get(key) == sm3(b"revoked")


def test_keys_sharing_255_bits_sit_at_the_bottom_of_the_tree() -> None:
    base = bytes(31) + b"\x00"
    twin = bytes(31) + b"\x01"
    items = {base: sm3(b"a"), twin: sm3(b"b"), b"\x80" + bytes(31): sm3(b"c")}
    tree = StatusMap.build(items.items())
    assert tree.root == reference_root(items, sm3) == StatusMap().updated(items.items()).root
    proof = tree.proof(twin)
    assert len(proof.siblings) == 256
    verify_membership(tree.root, twin, items[twin], proof)


def test_every_leaf_has_a_membership_proof_that_binds_key_and_value() -> None:
    items = random_items(64, seed=3)
    tree = StatusMap.build(items.items())
    keys = sorted(items)
    for key in keys:
        proof = tree.proof(key)
        assert proof.other is None
        verify_membership(tree.root, key, items[key], proof)
        with pytest.raises(VerificationError):
            verify_membership(tree.root, key, sm3(b"another state"), proof)
        with pytest.raises(VerificationError):
            verify_membership(tree.root, keys[0] if key != keys[0] else keys[1], items[key], proof)
    proof = tree.proof(keys[5])
    broken = StatusProof((proof.siblings[0][::-1], *proof.siblings[1:]))
    with pytest.raises(VerificationError):
        verify_membership(tree.root, keys[5], items[keys[5]], broken)
    # a leaf claimed lower than it stands (an extra empty sibling) is not the tree
    with pytest.raises(VerificationError):
        verify_membership(tree.root, keys[5], items[keys[5]], StatusProof((*proof.siblings, EMPTY)))


def test_absent_keys_have_absence_proofs_and_present_ones_do_not() -> None:
    items = random_items(64, seed=4)
    tree = StatusMap.build(items.items())
    rng = random.Random(9)
    kinds = set()
    for _ in range(200):
        key = rng.randbytes(32)
        proof = tree.proof(key)
        kinds.add(proof.other is None)
        verify_absence(tree.root, key, proof)
        with pytest.raises(VerificationError):
            verify_membership(tree.root, key, sm3(b"x"), proof)
    assert kinds == {True, False}  # both an empty subtree and another leaf in the key's place occur
    present = sorted(items)[0]
    with pytest.raises(VerificationError):
        verify_absence(tree.root, present, tree.proof(present))
    # another leaf offered as the witness of absence must stand in this key's place
    other = sorted(items)[-1]
    far = StatusProof(tree.proof(present).siblings, (other, items[other]))
    with pytest.raises(VerificationError):
        verify_absence(tree.root, present, far)


def test_the_empty_map_proves_every_absence() -> None:
    verify_absence(EMPTY, status_key("anything"), StatusMap().proof(status_key("anything")))


def test_proofs_round_trip_through_json_and_hostile_json_is_refused() -> None:
    items = random_items(10, seed=5)
    tree = StatusMap.build(items.items())
    key = sorted(items)[3]
    proof = tree.proof(key)
    assert StatusProof.from_json(proof.to_json()) == proof
    absent = tree.proof(bytes(32))
    assert StatusProof.from_json(absent.to_json()) == absent
    for bad in (
        None,
        [],
        {"siblings": "00"},
        {"siblings": ["00" * 32] * 257},
        {"siblings": ["AB" * 32]},
        {"siblings": ["00" * 31]},
        {"siblings": [], "extra": 1},
        {"siblings": [], "other": {"key": "00" * 32}},
        {"siblings": [1]},
    ):
        with pytest.raises(InvalidInputError) as err:
            StatusProof.from_json(bad)
        assert err.value.reason == "statusmap.malformed"


def test_build_refuses_duplicate_or_malformed_keys() -> None:
    with pytest.raises(InvalidInputError):
        StatusMap.build([(bytes(32), sm3(b"a")), (bytes(32), sm3(b"b"))])
    with pytest.raises(InvalidInputError):
        StatusMap.build([(b"short", sm3(b"a"))])
    with pytest.raises(InvalidInputError):
        StatusMap().updated([(bytes(32), b"short")])


def test_the_checkpoint_extension_line_round_trips_and_is_strict() -> None:
    root = sm3(b"root")
    assert root_from_extensions([extension_line(root)]) == root
    assert root_from_extensions(["other extension"]) is None
    with pytest.raises(VerificationError):
        root_from_extensions([extension_line(root), extension_line(root)])
    for text in ("status-map AAAA", "status-map " + "!" * 44, extension_line(root)[:-2] + "=="):
        with pytest.raises(VerificationError):
            root_from_extensions([text])


def test_state_value_is_the_hash_of_the_canonical_json() -> None:
    # key order does not matter: the value is of RFC 8785 bytes
    a = statusmap.state_value({"b": 1, "a": "证照"})
    assert a == statusmap.state_value({"a": "证照", "b": 1}) == sm3('{"a":"证照","b":1}'.encode())

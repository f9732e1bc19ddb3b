"""The status map: a sparse Merkle tree from licence to current state (ADR 0018).

An inclusion proof shows that a record is in the log; it cannot show that no later
record exists. Without more, a node could answer with a licence's ISSUE record and a
valid proof while a REVOKE sits later in the log. The status map closes that gap: a
Merkle tree keyed by ``SM3(licence_id)`` whose leaf commits to the licence's whole
derived state (status, version, files, latest entry index and record hash, ...). Its
root goes into every block header and, as an extension line, into every checkpoint,
so the quorum that cosigns a checkpoint vouches for every licence's current state at
that size, and a proof of one leaf is a proof of the current status.

The tree is *compact* (as in Diem's Jellyfish tree): 256 levels in principle, but a
subtree holding one leaf is that leaf, and an empty subtree is :data:`EMPTY`. With N
licences a path is about log2 N long. Hashes are domain-separated from the log tree
(RFC 9162 uses 0x00 and 0x01)::

    key    = SM3(licence_id)             value = SM3(RFC 8785 JSON of the licence state)
    leaf   = H(0x02 || key || value)
    branch = H(0x03 || left || right)    EMPTY = 32 zero bytes

A leaf hash commits to its whole key, so a leaf standing high in the tree is not
ambiguous; a proof is the list of sibling hashes from the root down to the leaf (or
to the empty subtree or other leaf that proves absence). Nodes are immutable: an
update copies its path, so earlier roots stay valid and a node can answer proofs
against the last few checkpoints while newer blocks are applied.
"""

from __future__ import annotations

import base64
import binascii
import bisect
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from ledger.canonical import canonical_bytes
from signing.errors import InvalidInputError, VerificationError
from signing.sm3 import sm3

HashFn = Callable[[bytes], bytes]

EMPTY: Final = bytes(32)
KEY_BITS: Final = 256
LEAF_PREFIX: Final = b"\x02"
BRANCH_PREFIX: Final = b"\x03"
#: the checkpoint extension line that carries the root: ``status-map <base64 root>``
EXTENSION_PREFIX: Final = "status-map "


def status_key(licence_id: str) -> bytes:
    """The map key of a licence: SM3 of its identifier (UTF-8)."""
    return sm3(licence_id.encode("utf-8"))


def state_value(state: Mapping[str, Any]) -> bytes:
    """The value a leaf commits to: SM3 of the licence state's canonical JSON (RFC 8785)."""
    return sm3(canonical_bytes(dict(state)))


def _bit(key: bytes, depth: int) -> int:
    return (key[depth >> 3] >> (7 - (depth & 7))) & 1


@dataclass(frozen=True, slots=True)
class _Leaf:
    key: bytes
    value: bytes
    hash: bytes


@dataclass(frozen=True, slots=True)
class _Branch:
    left: _Node | None
    right: _Node | None
    hash: bytes


_Node = _Leaf | _Branch


def _h(node: _Node | None) -> bytes:
    return EMPTY if node is None else node.hash


class StatusMap:
    """One version of the map: immutable; :meth:`updated` returns a new version."""

    __slots__ = ("_count", "_hash", "_root")

    def __init__(self, root: _Node | None = None, count: int = 0, *, hash_fn: HashFn = sm3) -> None:
        self._root = root
        self._count = count
        self._hash = hash_fn

    # -- building ------------------------------------------------------------------------
    @classmethod
    def build(cls, items: Iterable[tuple[bytes, bytes]], *, hash_fn: HashFn = sm3) -> StatusMap:
        """The map of ``(key, value)`` pairs (32-byte keys, unique), in O(N) hashes."""
        pairs = sorted(items)
        for i, (key, value) in enumerate(pairs):
            _check_pair(key, value)
            if i and pairs[i - 1][0] == key:
                raise InvalidInputError("status map keys must be unique", reason="statusmap.duplicate_key")
        empty = cls(hash_fn=hash_fn)
        keys = [k for k, _ in pairs]
        return cls(empty._build(pairs, keys, 0, len(pairs), 0), len(pairs), hash_fn=hash_fn)

    def _build(self, pairs: list[tuple[bytes, bytes]], keys: list[bytes], lo: int, hi: int, depth: int) -> _Node | None:
        if lo == hi:
            return None
        if hi - lo == 1:
            return self._leaf(*pairs[lo])
        # keys are sorted and share their first `depth` bits: those with bit `depth` set come last
        prefix = keys[lo][: depth >> 3]
        split = bisect.bisect_left(keys, _first_with_bit(prefix, keys[lo], depth), lo, hi)
        left = self._build(pairs, keys, lo, split, depth + 1)
        right = self._build(pairs, keys, split, hi, depth + 1)
        return self._branch(left, right)

    def _leaf(self, key: bytes, value: bytes) -> _Leaf:
        return _Leaf(key, value, self._hash(LEAF_PREFIX + key + value))

    def _branch(self, left: _Node | None, right: _Node | None) -> _Node | None:
        # a subtree with one leaf is that leaf; with none, empty
        if left is None and (right is None or isinstance(right, _Leaf)):
            return right
        if right is None and isinstance(left, _Leaf):
            return left
        return _Branch(left, right, self._hash(BRANCH_PREFIX + _h(left) + _h(right)))

    # -- reading -------------------------------------------------------------------------
    @property
    def root(self) -> bytes:
        return _h(self._root)

    def __len__(self) -> int:
        return self._count

    def get(self, key: bytes) -> bytes | None:
        node, depth = self._root, 0
        while isinstance(node, _Branch):
            node = node.right if _bit(key, depth) else node.left
            depth += 1
        return node.value if node is not None and node.key == key else None

    def proof(self, key: bytes) -> StatusProof:
        """The path to ``key``: its leaf if present, else the empty subtree or other leaf in its place."""
        _check_pair(key, EMPTY)
        siblings: list[bytes] = []
        node, depth = self._root, 0
        while isinstance(node, _Branch):
            if _bit(key, depth):
                siblings.append(_h(node.left))
                node = node.right
            else:
                siblings.append(_h(node.right))
                node = node.left
            depth += 1
        other = None if node is None or node.key == key else (node.key, node.value)
        return StatusProof(tuple(siblings), other)

    # -- writing -------------------------------------------------------------------------
    def updated(self, items: Iterable[tuple[bytes, bytes]]) -> StatusMap:
        """A new version with ``items`` set (added or replaced); this one is unchanged."""
        root, count = self._root, self._count
        for key, value in items:
            _check_pair(key, value)
            root, added = self._put(root, self._leaf(key, value), 0)
            count += added
        return StatusMap(root, count, hash_fn=self._hash)

    def _put(self, node: _Node | None, leaf: _Leaf, depth: int) -> tuple[_Node, int]:
        if node is None:
            return leaf, 1
        if isinstance(node, _Leaf):
            if node.key == leaf.key:
                return leaf, 0
            return self._join(node, leaf, depth), 1
        if _bit(leaf.key, depth):
            right, added = self._put(node.right, leaf, depth + 1)
            joined = self._branch(node.left, right)
        else:
            left, added = self._put(node.left, leaf, depth + 1)
            joined = self._branch(left, node.right)
        assert joined is not None  # it holds at least the new leaf
        return joined, added

    def _join(self, a: _Leaf, b: _Leaf, depth: int) -> _Branch:
        """The subtree at ``depth`` holding exactly the two leaves ``a`` and ``b`` (different keys)."""
        bit_a, bit_b = _bit(a.key, depth), _bit(b.key, depth)
        if bit_a != bit_b:
            left, right = (a, b) if bit_a == 0 else (b, a)
            return _Branch(left, right, self._hash(BRANCH_PREFIX + left.hash + right.hash))
        child = self._join(a, b, depth + 1)
        left_c, right_c = (child, None) if bit_a == 0 else (None, child)
        return _Branch(left_c, right_c, self._hash(BRANCH_PREFIX + _h(left_c) + _h(right_c)))


def _first_with_bit(prefix: bytes, sample: bytes, depth: int) -> bytes:
    """The smallest 32-byte key that shares ``sample``'s first ``depth`` bits and has bit ``depth`` set."""
    byte_index, bit = depth >> 3, 7 - (depth & 7)
    head = sample[byte_index] & (0xFF << (bit + 1)) & 0xFF
    return prefix + bytes([head | (1 << bit)]) + bytes(31 - byte_index)


def _check_pair(key: bytes, value: bytes) -> None:
    if not isinstance(key, bytes) or len(key) != 32 or not isinstance(value, bytes) or len(value) != 32:
        raise InvalidInputError("status map keys and values are 32 bytes", reason="statusmap.malformed")


@dataclass(frozen=True)
class StatusProof:
    """Sibling hashes from the root down; ``other`` is the leaf found in the key's place, if another."""

    siblings: tuple[bytes, ...]
    other: tuple[bytes, bytes] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"siblings": [s.hex() for s in self.siblings]}
        if self.other is not None:
            out["other"] = {"key": self.other[0].hex(), "value": self.other[1].hex()}
        return out

    @classmethod
    def from_json(cls, obj: Any) -> StatusProof:
        try:
            if not isinstance(obj, dict) or set(obj) - {"siblings", "other"}:
                raise ValueError
            raw = obj["siblings"]
            if not isinstance(raw, list) or len(raw) > KEY_BITS:
                raise ValueError
            siblings = tuple(_hex32(s) for s in raw)
            other = None
            if obj.get("other") is not None:  # JSON null: a membership proof, as when absent
                o = obj["other"]
                if not isinstance(o, dict) or set(o) != {"key", "value"}:
                    raise ValueError
                other = (_hex32(o["key"]), _hex32(o["value"]))
        except (KeyError, TypeError, ValueError):
            raise InvalidInputError("status proof is malformed", reason="statusmap.malformed") from None
        return cls(siblings, other)


def _hex32(value: Any) -> bytes:
    if not isinstance(value, str) or len(value) != 64 or value != value.lower():
        raise ValueError
    return bytes.fromhex(value)


def _fold(key: bytes, start: bytes, siblings: Sequence[bytes], hash_fn: HashFn) -> bytes:
    node = start
    for depth in range(len(siblings) - 1, -1, -1):
        pair = siblings[depth] + node if _bit(key, depth) else node + siblings[depth]
        node = hash_fn(BRANCH_PREFIX + pair)
    return node


def verify_membership(root: bytes, key: bytes, value: bytes, proof: StatusProof, *, hash_fn: HashFn = sm3) -> None:
    """``key`` maps to ``value`` in the map with ``root``; else :class:`VerificationError`."""
    _check_pair(key, value)
    if proof.other is not None or len(proof.siblings) > KEY_BITS:
        raise VerificationError("the status proof is not a proof of this licence's leaf", reason="statusmap.proof")
    if _fold(key, hash_fn(LEAF_PREFIX + key + value), proof.siblings, hash_fn) != root:
        raise VerificationError(
            "the licence state does not match the status map root of the checkpoint", reason="statusmap.proof"
        )


def verify_absence(root: bytes, key: bytes, proof: StatusProof, *, hash_fn: HashFn = sm3) -> None:
    """``key`` is not in the map with ``root``; else :class:`VerificationError`."""
    _check_pair(key, EMPTY)
    depth = len(proof.siblings)
    if depth > KEY_BITS:
        raise VerificationError("the status proof is too long", reason="statusmap.proof")
    if proof.other is None:
        start = EMPTY
    else:
        other_key, other_value = proof.other
        if other_key == key or any(_bit(other_key, d) != _bit(key, d) for d in range(depth)):
            raise VerificationError("the leaf in the proof is not in this licence's place", reason="statusmap.proof")
        start = hash_fn(LEAF_PREFIX + other_key + other_value)
    if _fold(key, start, proof.siblings, hash_fn) != root:
        raise VerificationError("the absence proof does not match the status map root", reason="statusmap.proof")


def extension_line(root: bytes) -> str:
    """The checkpoint extension line for a status map root."""
    return EXTENSION_PREFIX + base64.b64encode(root).decode("ascii")


def root_from_extensions(extensions: Sequence[str]) -> bytes | None:
    """The status map root a checkpoint's extension lines carry, or None if it has none."""
    found = [line for line in extensions if line.startswith(EXTENSION_PREFIX)]
    if not found:
        return None
    if len(found) > 1:
        raise VerificationError("the checkpoint has two status map roots", reason="statusmap.extension")
    text = found[0][len(EXTENSION_PREFIX) :]
    try:
        root = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        root = b""
    if len(root) != 32 or base64.b64encode(root).decode("ascii") != text:
        raise VerificationError("the checkpoint's status map root is malformed", reason="statusmap.extension")
    return root

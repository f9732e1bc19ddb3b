"""The Merkle frontier ("compact range" [0, size)): O(log n) state for appending.

A tree of ``size`` leaves is the right fold of one perfect subtree per set bit
of ``size``, largest first. Appending a leaf merges the equal-sized subtrees
at the right end, like carrying in binary addition; every merge completes a
full node, and exactly those nodes (plus the leaf) are what a store persists.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from signing.errors import InvalidInputError

from .hashing import TreeHasher
from .nodes import MAX_TREE_SIZE, NodeKey, NodeReader, read_nodes
from .plan import check_tree_size, compact_range_keys

#: serialised frontier state that cannot be loaded
REASON_BAD_STATE: Final = "merkle.bad_state"


def _bad_state(message: str) -> InvalidInputError:
    return InvalidInputError(f"compact range state: {message}", reason=REASON_BAD_STATE)


class CompactRange:
    """The frontier of a tree: its size and the hashes of :func:`compact_range_keys`."""

    __slots__ = ("_hasher", "_hashes", "_size")

    def __init__(self, hasher: TreeHasher, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        """A frontier of ``size`` leaves from its ``popcount(size)`` subtree hashes.

        Usually built with :meth:`from_nodes` or :meth:`from_dict`; an empty
        range (the default) is the start of a new tree.
        """
        check_tree_size(size)
        if len(hashes) != size.bit_count():
            raise _bad_state(f"a tree of size {size} needs {size.bit_count()} hashes")
        for value in hashes:
            if not isinstance(value, bytes) or len(value) != hasher.digest_size:
                raise _bad_state(f"hashes must be {hasher.digest_size}-byte strings")
        self._hasher = hasher
        self._size = size
        self._hashes = list(hashes)

    @classmethod
    def from_nodes(cls, size: int, nodes: NodeReader, *, hasher: TreeHasher) -> CompactRange:
        """Load the frontier of the tree at ``size`` leaves from stored full nodes (one read)."""
        return cls(hasher, size, read_nodes(nodes, compact_range_keys(size), hasher))

    @property
    def hasher(self) -> TreeHasher:
        """The hasher this frontier was built with."""
        return self._hasher

    @property
    def size(self) -> int:
        """Number of leaves appended so far."""
        return self._size

    @property
    def hashes(self) -> tuple[bytes, ...]:
        """Hashes of the perfect subtrees, largest (leftmost) first."""
        return tuple(self._hashes)

    def keys(self) -> tuple[NodeKey, ...]:
        """Node keys of :attr:`hashes`, in the same order."""
        return compact_range_keys(self._size)

    def append(self, leaf_hash: bytes) -> list[tuple[NodeKey, bytes]]:
        """Add one leaf hash; return the full nodes it completes, leaf first.

        That is ``1 + (number of trailing one bits of the old size)`` nodes, at
        most log2(n) + 1. Persisting them all keeps the store able to answer
        any proof for any size up to the new one.
        """
        if not isinstance(leaf_hash, bytes) or len(leaf_hash) != self._hasher.digest_size:
            raise InvalidInputError(f"leaf hash must be {self._hasher.digest_size} bytes", reason="merkle.bad_hash")
        if self._size >= MAX_TREE_SIZE:
            raise InvalidInputError("tree is full (2**64 - 1 leaves)", reason="merkle.full")
        level, index = 0, self._size
        node = leaf_hash
        completed: list[tuple[NodeKey, bytes]] = [((0, index), node)]
        # an odd index is a right child: its left sibling is the last (smallest) subtree
        while index & 1:
            node = self._hasher.hash_children(self._hashes.pop(), node)
            level, index = level + 1, index >> 1
            completed.append(((level, index), node))
        self._hashes.append(node)
        self._size += 1
        return completed

    def extend(self, leaf_hashes: Iterable[bytes]) -> list[tuple[NodeKey, bytes]]:
        """Append several leaf hashes; return every full node they complete, in order."""
        completed: list[tuple[NodeKey, bytes]] = []
        for leaf_hash in leaf_hashes:
            completed.extend(self.append(leaf_hash))
        return completed

    def root(self) -> bytes:
        """The RFC 9162 root hash of the tree of :attr:`size` leaves."""
        if not self._hashes:
            return self._hasher.empty_root()
        root = self._hashes[-1]
        for left in reversed(self._hashes[:-1]):
            root = self._hasher.hash_children(left, root)
        return root

    def copy(self) -> CompactRange:
        """An independent copy (appending to it leaves this one unchanged)."""
        return CompactRange(self._hasher, self._size, self._hashes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready state: ``{"hash": name, "size": n, "hashes": [hex, ...]}``."""
        return {
            "hash": self._hasher.name,
            "size": self._size,
            "hashes": [value.hex() for value in self._hashes],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, hasher: TreeHasher) -> CompactRange:
        """Load state written by :meth:`to_dict`; refuses state of another hash function."""
        if not isinstance(data, Mapping) or set(data) != {"hash", "size", "hashes"}:
            raise _bad_state("expected exactly the keys hash, size, hashes")
        if data["hash"] != hasher.name:
            raise _bad_state(f"built with {data['hash']!r}, not {hasher.name!r}")
        raw = data["hashes"]
        if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
            raise _bad_state("hashes must be a list of hex strings")
        try:
            hashes = [bytes.fromhex(item) for item in raw]
        except ValueError:
            raise _bad_state("hashes must be a list of hex strings") from None
        size = data["size"]
        if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_TREE_SIZE:
            raise _bad_state("size must be an integer in [0, 2**64 - 1]")
        return cls(hasher, size, hashes)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CompactRange):
            return NotImplemented
        return (self._hasher, self._size, self._hashes) == (
            other._hasher,
            other._size,
            other._hashes,
        )

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"CompactRange(hasher={self._hasher.name}, size={self._size})"


def merkle_root(hasher: TreeHasher, leaf_hashes: Iterable[bytes]) -> bytes:
    """MTH of a list of leaf hashes (RFC 9162 §2.1.1), in O(n) time and O(log n) memory."""
    frontier = CompactRange(hasher)
    for leaf_hash in leaf_hashes:
        frontier.append(leaf_hash)
    return frontier.root()

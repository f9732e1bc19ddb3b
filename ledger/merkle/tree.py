"""A whole Merkle log in memory: frontier + node store, for tests and small uses.

It wires the pieces together exactly as the ledger store does (append ->
persist the completed full nodes -> answer proofs from them), so it doubles as
the executable description of that contract.
"""

from __future__ import annotations

from signing.errors import InvalidInputError

from .compact import CompactRange
from .hashing import SM3_HASHER, TreeHasher
from .nodes import MemoryNodeStore
from .plan import REASON_OUT_OF_RANGE, check_tree_size
from .proofs import consistency_proof, inclusion_proof, root_at


class MemoryMerkleTree:
    """An append-only RFC 9162 tree held in memory."""

    def __init__(self, hasher: TreeHasher = SM3_HASHER) -> None:
        self.hasher = hasher
        self.nodes = MemoryNodeStore()
        self._frontier = CompactRange(hasher)

    @property
    def size(self) -> int:
        """Number of leaves."""
        return self._frontier.size

    def append_entry(self, entry: bytes) -> int:
        """Hash ``entry`` as a leaf, append it and return its index."""
        return self.append_leaf_hash(self.hasher.hash_leaf(entry))

    def append_leaf_hash(self, leaf_hash: bytes) -> int:
        """Append an already hashed leaf and return its index."""
        index = self._frontier.size
        self.nodes.put_nodes(self._frontier.append(leaf_hash))
        return index

    def leaf_hash(self, index: int) -> bytes:
        """The stored hash of leaf ``index``."""
        return self.nodes.get_nodes([(0, index)])[0]

    def root(self, size: int | None = None) -> bytes:
        """The root now, or when the tree had ``size`` leaves."""
        if size is None:
            return self._frontier.root()
        self._check_known(size)
        return root_at(size, self.nodes, hasher=self.hasher)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """Inclusion path of leaf ``index`` in the tree of ``size`` (default: current) leaves."""
        size = self.size if size is None else size
        self._check_known(size)
        return inclusion_proof(index, size, self.nodes, hasher=self.hasher)

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """Consistency proof from ``old_size`` to ``new_size`` (default: current) leaves."""
        new_size = self.size if new_size is None else new_size
        self._check_known(new_size)
        return consistency_proof(old_size, new_size, self.nodes, hasher=self.hasher)

    def _check_known(self, size: int) -> None:
        # sizes beyond the current one would read nodes that do not exist yet;
        # say so plainly instead of surfacing a storage error
        check_tree_size(size)
        if size > self.size:
            raise InvalidInputError(
                f"tree size {size} is beyond the current size {self.size}",
                reason=REASON_OUT_OF_RANGE,
            )

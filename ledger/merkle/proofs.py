"""Inclusion and consistency proofs (and historic roots) read from stored full nodes.

Each function makes exactly one :meth:`NodeReader.get_nodes` call with at most
~2·log2(n) keys, then hashes at most log2(n) times to rebuild the one right-edge
subtree a proof may need.
"""

from __future__ import annotations

from .hashing import TreeHasher
from .nodes import NodeReader, read_nodes
from .plan import (
    ProofPlan,
    compact_range_keys,
    consistency_proof_keys,
    inclusion_proof_keys,
)


def _run(plan: ProofPlan, nodes: NodeReader, hasher: TreeHasher) -> list[bytes]:
    return plan.assemble(hasher, read_nodes(nodes, plan.keys, hasher))


def inclusion_proof(index: int, size: int, nodes: NodeReader, *, hasher: TreeHasher) -> list[bytes]:
    """The RFC 9162 inclusion path of leaf ``index`` in the tree of ``size`` leaves.

    ``nodes`` must hold every full node of the tree at ``size`` (any larger
    tree of the same log does). Raises InvalidInputError for an index or size
    out of range, StorageError when the store lacks a node.
    """
    return _run(inclusion_proof_keys(index, size), nodes, hasher)


def consistency_proof(old_size: int, new_size: int, nodes: NodeReader, *, hasher: TreeHasher) -> list[bytes]:
    """The RFC 9162 consistency proof from the tree of ``old_size`` to ``new_size`` leaves."""
    return _run(consistency_proof_keys(old_size, new_size), nodes, hasher)


def root_at(size: int, nodes: NodeReader, *, hasher: TreeHasher) -> bytes:
    """The root hash of the tree when it had ``size`` leaves, from stored full nodes."""
    hashes = read_nodes(nodes, compact_range_keys(size), hasher)
    if not hashes:
        return hasher.empty_root()
    root = hashes[-1]
    for left in reversed(hashes[:-1]):
        root = hasher.hash_children(left, root)
    return root

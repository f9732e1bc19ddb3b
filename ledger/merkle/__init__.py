"""RFC 9162 (Certificate Transparency v2) Merkle tree, hash-agnostic, SM3 by default.

Layout: :mod:`.hashing` (leaf/node hashes), :mod:`.nodes` (full-node keys and
the NodeReader/NodeWriter store interface), :mod:`.plan` (which full nodes a
proof needs), :mod:`.proofs` (proofs from a store), :mod:`.verify` (RFC 9162
verification, raising), :mod:`.compact` (the append frontier), :mod:`.tree`
(an in-memory log). docs/adr/0005-merkle-tree-storage.md explains the design.
"""

from .compact import REASON_BAD_STATE, CompactRange, merkle_root
from .hashing import SHA256_HASHER, SM3_HASHER, TreeHasher
from .nodes import (
    MAX_LEVEL,
    MAX_TREE_SIZE,
    REASON_BAD_KEY,
    REASON_NODE_CONFLICT,
    REASON_NODE_MISSING,
    MemoryNodeStore,
    NodeKey,
    NodeReader,
    NodeWriter,
)
from .plan import (
    REASON_OUT_OF_RANGE,
    ProofPlan,
    compact_range_keys,
    consistency_proof_keys,
    inclusion_proof_keys,
)
from .proofs import consistency_proof, inclusion_proof, root_at
from .tree import MemoryMerkleTree
from .verify import (
    MAX_PROOF_LENGTH,
    PROOF_CONSISTENCY,
    PROOF_INCLUSION,
    PROOF_MALFORMED,
    root_from_inclusion_proof,
    verify_consistency,
    verify_inclusion,
)

__all__ = [
    "MAX_LEVEL",
    "MAX_PROOF_LENGTH",
    "MAX_TREE_SIZE",
    "PROOF_CONSISTENCY",
    "PROOF_INCLUSION",
    "PROOF_MALFORMED",
    "REASON_BAD_KEY",
    "REASON_BAD_STATE",
    "REASON_NODE_CONFLICT",
    "REASON_NODE_MISSING",
    "REASON_OUT_OF_RANGE",
    "SHA256_HASHER",
    "SM3_HASHER",
    "CompactRange",
    "MemoryMerkleTree",
    "MemoryNodeStore",
    "NodeKey",
    "NodeReader",
    "NodeWriter",
    "ProofPlan",
    "TreeHasher",
    "compact_range_keys",
    "consistency_proof",
    "consistency_proof_keys",
    "inclusion_proof",
    "inclusion_proof_keys",
    "merkle_root",
    "root_at",
    "root_from_inclusion_proof",
    "verify_consistency",
    "verify_inclusion",
]

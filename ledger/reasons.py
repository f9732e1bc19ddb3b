"""Stable reason codes for rejected records, failed proofs and audit findings.

Codes are part of the public contract (API problem+json ``reason``, CLI
output, audit reports): never rename one; add new ones. docs/reason-codes.md
lists each with its meaning.
"""

from __future__ import annotations

from typing import Final

# record shape and encoding
RECORD_MALFORMED: Final = "record.malformed"
RECORD_NOT_CANONICAL: Final = "record.not_canonical"
RECORD_UNKNOWN_TYPE: Final = "record.unknown_type"
RECORD_ORIGIN: Final = "record.origin_mismatch"
RECORD_TOO_LARGE: Final = "record.too_large"

# who signed
AGENCY_UNKNOWN: Final = "agency.unknown"
AGENCY_REMOVED: Final = "agency.removed"
AGENCY_KEY_UNKNOWN: Final = "agency.key_unknown"
AGENCY_KEY_NOT_VALID: Final = "agency.key_not_valid"
AGENCY_SCOPE_TYPE: Final = "agency.scope_type"
AGENCY_SCOPE_REGION: Final = "agency.scope_region"
SIGNATURE_INVALID: Final = "sig.invalid"

# what it does
STATE_ALREADY_ISSUED: Final = "state.already_issued"
STATE_UNKNOWN_LICENCE: Final = "state.unknown_licence"
STATE_NOT_ISSUER: Final = "state.not_issuer"
STATE_REVOKED: Final = "state.revoked"
STATE_NOT_SUSPENDED: Final = "state.not_suspended"
STATE_ALREADY_SUSPENDED: Final = "state.already_suspended"
STATE_STALE_VERSION: Final = "state.stale_version"
STATE_TYPE_CHANGE: Final = "state.type_change"

# replay and time
NONCE_REPLAYED: Final = "nonce.replayed"
TIME_OUT_OF_WINDOW: Final = "time.out_of_window"

# governance
GOVERNANCE_SIGNATURES: Final = "governance.signatures"
GOVERNANCE_CONFLICT: Final = "governance.conflict"
GOVERNANCE_BELOW_QUORUM: Final = "governance.below_quorum"

# chain, tree, checkpoints (audit)
BLOCK_HASH_LINK: Final = "block.hash_link"
BLOCK_SIGNATURE: Final = "block.signature"
BLOCK_ROOT: Final = "block.root"
BLOCK_STATUS_ROOT: Final = "block.status_root"
BLOCK_SIZE: Final = "block.size"
BLOCK_HEADER: Final = "block.header"
BLOCK_TIME: Final = "block.time"
BLOCK_ENTRY: Final = "block.invalid_entry"
ENTRY_HASH: Final = "entry.hash"
CHECKPOINT_SIGNATURE: Final = "checkpoint.signature"
CHECKPOINT_ROOT: Final = "checkpoint.root"
CHECKPOINT_STATUS_ROOT: Final = "checkpoint.status_root"
CHECKPOINT_FORK: Final = "checkpoint.fork"
TREE_NODE: Final = "tree.node"
STATE_DERIVED: Final = "state.derived_mismatch"

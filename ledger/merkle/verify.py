"""Verification of inclusion and consistency proofs, as RFC 9162 §2.1.3.2 / §2.1.4.2 say.

Everything here raises :class:`~signing.errors.VerificationError`; nothing
returns a bool to be forgotten. Reason codes:

- ``proof.malformed``   the input cannot be a proof for these sizes: an index or
  size out of range, a hash of the wrong length, a path of the wrong length.
- ``proof.inclusion``   well-formed, but the leaf is not in the tree with that root.
- ``proof.consistency`` well-formed, but the two roots are not of one append-only log.

The inputs come from outside (API callers, proof bundles in files), so loops
are bounded by the bit length of a uint64 size, never by the proof's length.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from typing import Final

from signing.errors import VerificationError

from .hashing import TreeHasher
from .nodes import MAX_TREE_SIZE

PROOF_MALFORMED: Final = "proof.malformed"
PROOF_INCLUSION: Final = "proof.inclusion"
PROOF_CONSISTENCY: Final = "proof.consistency"

#: valid proofs for uint64 trees have at most 65 elements; refusing anything past twice
#: that before looking at it keeps a hostile proof from costing more than a real one
MAX_PROOF_LENGTH: Final = 130


def _malformed(message: str, **details: object) -> VerificationError:
    return VerificationError(message, reason=PROOF_MALFORMED, details=details)


def _check_uint64(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TREE_SIZE:
        raise _malformed(f"{what} must be an integer in [0, 2**64 - 1], got {value!r:.40}")
    return value


def _check_hash(hasher: TreeHasher, value: object, what: str) -> bytes:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise _malformed(f"{what} is not a byte string")
    value = bytes(value)
    if len(value) != hasher.digest_size:
        raise _malformed(f"{what} is {len(value)} bytes, {hasher.name} hashes are {hasher.digest_size}")
    return value


def _check_path(proof: object) -> Sequence[object]:
    if isinstance(proof, str | bytes | bytearray) or not isinstance(proof, Sequence):
        raise _malformed("proof must be a sequence of hashes")
    if len(proof) > MAX_PROOF_LENGTH:
        raise _malformed(f"proof has {len(proof)} elements, more than any uint64 tree needs")
    return proof


def root_from_inclusion_proof(
    hasher: TreeHasher, index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes]
) -> bytes:
    """The root that ``proof`` implies for leaf ``index`` of a tree of ``size`` leaves.

    Steps 1-4 of RFC 9162 §2.1.3.2 plus the ``sn == 0`` half of step 5. A path
    of the wrong length raises ``proof.malformed``; comparing the result with a
    trusted root is the caller's job (or use :func:`verify_inclusion`).
    """
    index = _check_uint64(index, "leaf index")
    size = _check_uint64(size, "tree size")
    leaf_hash = _check_hash(hasher, leaf_hash, "leaf hash")
    path = _check_path(proof)
    # 1. leaf_index >= tree_size fails.
    if index >= size:
        raise _malformed(f"leaf index {index} is not in a tree of size {size}")
    # 2. fn = leaf_index, sn = tree_size - 1.
    fn, sn = index, size - 1
    # 3. r = hash.
    r = leaf_hash
    # 4. for each p in inclusion_path:
    for position, element in enumerate(path):
        # 4a. sn == 0: more path than tree.
        if sn == 0:
            raise _malformed("inclusion proof is longer than the tree is high", size=size)
        p = _check_hash(hasher, element, f"proof[{position}]")
        # 4b. LSB(fn) set or fn == sn: p is a left sibling.
        if fn & 1 or fn == sn:
            r = hasher.hash_children(p, r)
            # 4b.ii. skip the levels where this node had no right sibling
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = hasher.hash_children(r, p)
        # 4c.
        fn >>= 1
        sn >>= 1
    # 5. sn must be 0 (the path reached the root) ...
    if sn != 0:
        raise _malformed("inclusion proof is shorter than the tree is high", size=size)
    return r


# The positional order is the RFC's and transparency-dev's, and the agreed contract.
def verify_inclusion(
    hasher: TreeHasher,
    index: int,
    size: int,
    leaf_hash: bytes,
    proof: Sequence[bytes],
    root: bytes,
) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` of the tree of ``size`` leaves and ``root``.

    RFC 9162 §2.1.3.2. Returns None on success; raises VerificationError
    (``proof.malformed`` or ``proof.inclusion``) otherwise.
    """
    root = _check_hash(hasher, root, "root hash")
    computed = root_from_inclusion_proof(hasher, index, size, leaf_hash, proof)
    # 5. ... and r must equal root_hash.
    if not hmac.compare_digest(computed, root):
        raise VerificationError(
            f"leaf {index} is not included in the tree of size {size} with this root",
            reason=PROOF_INCLUSION,
            details={"index": index, "size": size, "root": root.hex(), "computed": computed.hex()},
        )


def verify_consistency(
    hasher: TreeHasher,
    old_size: int,
    new_size: int,
    old_root: bytes,
    new_root: bytes,
    proof: Sequence[bytes],
) -> None:
    """Check that the tree ``new_root`` of ``new_size`` leaves extends ``old_root``.

    RFC 9162 §2.1.4.2 covers 0 < old_size < new_size. The edges follow from the
    definition of PROOF (§2.1.4.1), whose proof is then empty:

    - old_size == new_size: the roots must be equal;
    - old_size == 0: the old root must be the empty root (stricter than the
      transparency-dev verifier, which ignores it: a size-0 checkpoint with any
      other root is bogus, and an auditor should hear about it).

    Raises VerificationError (``proof.malformed`` or ``proof.consistency``).
    """
    old_size = _check_uint64(old_size, "old tree size")
    new_size = _check_uint64(new_size, "new tree size")
    old_root = _check_hash(hasher, old_root, "old root")
    new_root = _check_hash(hasher, new_root, "new root")
    path = _check_path(proof)
    if old_size > new_size:
        raise _malformed(f"old tree size {old_size} is larger than new tree size {new_size}")

    if old_size in (0, new_size):
        if len(path) != 0:
            raise _malformed("consistency proof must be empty for these sizes")
        expected = hasher.empty_root() if old_size == 0 else new_root
        if not hmac.compare_digest(old_root, expected):
            raise VerificationError(
                f"old root is not consistent with the tree of size {new_size}",
                reason=PROOF_CONSISTENCY,
                details={"old_size": old_size, "new_size": new_size},
            )
        return

    # 1. An empty consistency_path fails.
    if len(path) == 0:
        raise _malformed("consistency proof is empty")
    # 2. If first is an exact power of 2, prepend first_hash.
    if old_size & (old_size - 1) == 0:
        path = [old_root, *path]
    # 3. fn = first - 1, sn = second - 1.
    fn, sn = old_size - 1, new_size - 1
    # 4. If LSB(fn) is set, right-shift fn and sn until LSB(fn) is not set.
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # 5. fr = sr = the first value of the path.
    fr = sr = _check_hash(hasher, path[0], "proof[0]")
    # 6. for each subsequent value c:
    for position in range(1, len(path)):
        # 6a. sn == 0: more path than tree.
        if sn == 0:
            raise _malformed("consistency proof is longer than the trees need")
        c = _check_hash(hasher, path[position], f"proof[{position}]")
        # 6b. LSB(fn) set or fn == sn: c is a left sibling in both trees.
        if fn & 1 or fn == sn:
            fr = hasher.hash_children(c, fr)
            sr = hasher.hash_children(c, sr)
            # 6b.iii.
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            # c is a right sibling that only the new tree has.
            sr = hasher.hash_children(sr, c)
        # 6c.
        fn >>= 1
        sn >>= 1
    # 7. sn == 0, fr == first_hash, sr == second_hash.
    if sn != 0:
        raise _malformed("consistency proof is shorter than the trees need")
    details = {"old_size": old_size, "new_size": new_size}
    if not hmac.compare_digest(fr, old_root):
        raise VerificationError(
            f"proof does not lead to the old root of size {old_size}",
            reason=PROOF_CONSISTENCY,
            details={**details, "computed_old_root": fr.hex()},
        )
    if not hmac.compare_digest(sr, new_root):
        raise VerificationError(
            f"proof does not lead to the new root of size {new_size}",
            reason=PROOF_CONSISTENCY,
            details={**details, "computed_new_root": sr.hex()},
        )

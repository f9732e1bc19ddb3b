"""RFC 9162 §2.1.1 Merkle tree hashing, parameterised by the hash function.

The ledger uses SM3; SHA-256 exists so the very same tree code can be checked
against the public RFC 6962 / transparency-dev vectors.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from signing.errors import InvalidInputError
from signing.sm3 import sm3

#: domain-separation prefixes of RFC 9162 §2.1.1: a leaf can never be mistaken for a node
LEAF_PREFIX: Final = b"\x00"
NODE_PREFIX: Final = b"\x01"


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


@dataclass(frozen=True, slots=True)
class TreeHasher:
    """The three hashes of an RFC 9162 tree over one hash function (SM3 unless told).

    ``name`` identifies the function in serialised state, so a frontier built
    with one hash is never resumed with another.
    """

    hash_fn: Callable[[bytes], bytes] = field(default=sm3, compare=False, repr=False)
    digest_size: int = 32
    name: str = "sm3"

    def __post_init__(self) -> None:
        # a hash_fn that disagrees with digest_size would make every length check lie
        if len(self.hash_fn(b"")) != self.digest_size:
            raise InvalidInputError(
                f"hash function {self.name!r} does not produce {self.digest_size}-byte digests",
                reason="merkle.hasher",
            )

    def empty_root(self) -> bytes:
        """MTH({}) = HASH(): the root of the tree with no leaves."""
        return self.hash_fn(b"")

    def hash_leaf(self, data: bytes) -> bytes:
        """MTH({d}) = HASH(0x00 || d): the hash of one entry."""
        return self.hash_fn(LEAF_PREFIX + data)

    def hash_children(self, left: bytes, right: bytes) -> bytes:
        """HASH(0x01 || left || right): the hash of an interior node."""
        return self.hash_fn(NODE_PREFIX + left + right)


#: the ledger's hasher (GB/T 32905 SM3)
SM3_HASHER: Final = TreeHasher()
#: RFC 6962 / RFC 9162 SHA-256 hasher, for the public vectors and interop checks
SHA256_HASHER: Final = TreeHasher(hash_fn=_sha256, digest_size=32, name="sha256")

"""Blocks: hash-chained, node-signed batches of entries.

A block header commits to the Merkle tree after its entries (size and root),
to the status map after them (ADR 0018), to the previous block's hash, and names
the proposing node. Its hash is SM3
of its canonical JSON; the proposer signs those same bytes with its SM2 node
key. The genesis block (height 0) holds exactly the GENESIS entry and links
to 32 zero bytes.

    {"v": 1, "origin": ..., "height": h, "prev_hash": hex, "first_index": i,
     "tree_size": n, "tree_root": hex, "status_root": hex, "time": RFC 3339,
     "proposer": node-id}

Entries [first_index, tree_size) belong to block h; first_index equals the
previous block's tree_size, so blocks tile the log without gaps or overlaps.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from ledger import reasons
from ledger.canonical import canonical_bytes, parse_canonical
from ledger.records import format_time, parse_time
from signing.errors import CertLedgerError, InvalidInputError, VerificationError
from signing.sm2 import DEFAULT_SIGNER_ID, SM2PrivateKey, SM2PublicKey
from signing.sm3 import sm3

GENESIS_PREV_HASH: Final = bytes(32)
BLOCK_SIGNER_ID: Final = DEFAULT_SIGNER_ID
_HEADER_FIELDS: Final = frozenset(
    {"v", "origin", "height", "prev_hash", "first_index", "tree_size", "tree_root", "status_root", "time", "proposer"}
)


@dataclass(frozen=True)
class BlockHeader:
    origin: str
    height: int
    prev_hash: bytes
    first_index: int
    tree_size: int
    tree_root: bytes
    #: the root of the status map (ledger.statusmap) after this block's entries
    status_root: bytes
    time: datetime
    proposer: str

    def __post_init__(self) -> None:
        if self.height < 0 or self.first_index < 0 or self.tree_size <= self.first_index:
            raise InvalidInputError("block must hold at least one entry", reason=reasons.BLOCK_HEADER)
        if len(self.prev_hash) != 32 or len(self.tree_root) != 32 or len(self.status_root) != 32:
            raise InvalidInputError("block hashes must be 32 bytes", reason=reasons.BLOCK_HEADER)

    def to_json(self) -> dict[str, Any]:
        return {
            "v": 1,
            "origin": self.origin,
            "height": self.height,
            "prev_hash": self.prev_hash.hex(),
            "first_index": self.first_index,
            "tree_size": self.tree_size,
            "tree_root": self.tree_root.hex(),
            "status_root": self.status_root.hex(),
            "time": format_time(self.time),
            "proposer": self.proposer,
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> BlockHeader:
        if set(obj) != _HEADER_FIELDS or obj.get("v") != 1:
            raise InvalidInputError("block header has unexpected fields", reason=reasons.BLOCK_HEADER)
        try:
            return cls(
                origin=str(obj["origin"]),
                height=int(obj["height"]),
                prev_hash=bytes.fromhex(obj["prev_hash"]),
                first_index=int(obj["first_index"]),
                tree_size=int(obj["tree_size"]),
                tree_root=bytes.fromhex(obj["tree_root"]),
                status_root=bytes.fromhex(obj["status_root"]),
                time=parse_time(obj["time"]),
                proposer=str(obj["proposer"]),
            )
        except (TypeError, ValueError):
            raise InvalidInputError("block header is malformed", reason=reasons.BLOCK_HEADER) from None

    def to_bytes(self) -> bytes:
        return canonical_bytes(self.to_json())

    @classmethod
    def from_bytes(cls, data: bytes) -> BlockHeader:
        """Parse a stored header strictly: it must be exactly the bytes it re-encodes to."""
        try:
            obj = parse_canonical(data, max_bytes=4096, max_depth=4)
        except InvalidInputError as exc:
            raise InvalidInputError(f"block header is malformed: {exc}", reason=reasons.BLOCK_HEADER) from None
        if not isinstance(obj, dict):
            raise InvalidInputError("block header is not a JSON object", reason=reasons.BLOCK_HEADER)
        try:
            header = cls.from_json(obj)
        except InvalidInputError as exc:  # e.g. a time field that is not RFC 3339 (record.malformed)
            raise InvalidInputError(f"block header is malformed: {exc}", reason=reasons.BLOCK_HEADER) from None
        # the hash and the signature cover the re-encoded bytes: a value that parses to the same
        # field ("AB" for "ab" in a hex hash) must not leave the stored bytes changed yet verifying
        if header.to_bytes() != data:
            raise InvalidInputError("block header is not in its canonical form", reason=reasons.BLOCK_HEADER)
        return header

    def hash(self) -> bytes:
        return sm3(self.to_bytes())


@dataclass(frozen=True)
class Block:
    """A header with its proposer's SM2 signature (the entries are stored separately)."""

    header: BlockHeader
    signature: bytes

    @property
    def height(self) -> int:
        return self.header.height

    def hash(self) -> bytes:
        return self.header.hash()

    def verify(self, proposer_key: SM2PublicKey) -> None:
        try:
            proposer_key.verify(self.signature, self.header.to_bytes(), signer_id=BLOCK_SIGNER_ID)
        except CertLedgerError as exc:
            raise VerificationError(
                f"block {self.header.height}: proposer signature does not verify ({exc})",
                reason=reasons.BLOCK_SIGNATURE,
            ) from None

    def to_json(self) -> dict[str, Any]:
        return {
            "header": self.header.to_json(),
            "hash": self.hash().hex(),
            "signature": base64.b64encode(self.signature).decode(),
        }


def sign_block(header: BlockHeader, node_key: SM2PrivateKey) -> Block:
    return Block(header, node_key.sign(header.to_bytes(), signer_id=BLOCK_SIGNER_ID))


def check_link(prev: Block | None, header: BlockHeader) -> None:
    """The chain rules between consecutive blocks."""
    if prev is None:
        if header.height != 0 or header.prev_hash != GENESIS_PREV_HASH or header.first_index != 0:
            raise VerificationError("genesis block must be height 0 linking to zero", reason=reasons.BLOCK_HASH_LINK)
        return
    if header.height != prev.height + 1:
        raise VerificationError(f"block {header.height} follows block {prev.height}", reason=reasons.BLOCK_HASH_LINK)
    if header.prev_hash != prev.hash():
        raise VerificationError(
            f"block {header.height}: prev_hash does not match block {prev.height}", reason=reasons.BLOCK_HASH_LINK
        )
    if header.first_index != prev.header.tree_size:
        raise VerificationError(
            f"block {header.height}: first_index {header.first_index} != previous tree size {prev.header.tree_size}",
            reason=reasons.BLOCK_SIZE,
        )
    if header.origin != prev.header.origin:
        raise VerificationError(f"block {header.height}: origin changed", reason=reasons.BLOCK_HEADER)
    if header.time < prev.header.time:
        # entries are validated at their block's time (key expiry, retirement, removal): a proposer
        # free to date a block before its predecessor could revive a key retired there
        raise VerificationError(f"block {header.height} is dated before block {prev.height}", reason=reasons.BLOCK_TIME)

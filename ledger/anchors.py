"""Trust anchors of a ledger, as another province holds them.

A verifier trusts a ledger through its GENESIS record, obtained out of band
(and pinned by its SM3 hash in the federation registry): it names the origin,
the nodes whose keys sign checkpoints, the quorum of them a checkpoint needs,
and the governance authorities whose signatures admit agencies and their keys.
Nothing a node says later can change these.
"""

from __future__ import annotations

from dataclasses import dataclass

from ledger.identity import checkpoint_verifiers, note_key_name
from ledger.records import RecordType, SignedRecord
from ledger.state import Node, Policy, node_from_payload
from ledger.validation import validate_genesis
from signing.errors import InvalidInputError
from signing.note.model import Verifier
from signing.sm3 import sm3


@dataclass(frozen=True)
class TrustAnchors:
    origin: str
    genesis_hash: str
    nodes: tuple[Node, ...]
    quorum_threshold: int
    policy: Policy

    @property
    def checkpoint_verifiers(self) -> list[Verifier]:
        return checkpoint_verifiers(self.origin, self.nodes)

    @property
    def quorum_names(self) -> list[str]:
        return [note_key_name(self.origin, n.id) for n in self.nodes]

    @classmethod
    def from_genesis(cls, data: bytes, *, expected_hash: str | None = None) -> TrustAnchors:
        """Anchors from the GENESIS entry bytes; checks its pinned hash and its own signatures."""
        data = data.removesuffix(b"\n")
        digest = sm3(data).hex()
        if expected_hash is not None and digest != expected_hash.lower():
            raise InvalidInputError(
                f"genesis record hash {digest} does not match the pinned {expected_hash}", reason="anchors.genesis_hash"
            )
        signed = SignedRecord.from_bytes(data)
        if signed.record.type is not RecordType.GENESIS:
            raise InvalidInputError("trust anchors need the GENESIS record", reason="anchors.not_genesis")
        validate_genesis(signed)  # the authorities it names must have signed it
        policy = Policy.from_genesis(signed.record)
        nodes = tuple(node_from_payload(n) for n in signed.record.payload["nodes"])
        return cls(signed.record.origin, digest, nodes, policy.quorum_threshold, policy)

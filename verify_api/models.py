"""Wire formats of the API (pydantic models: they document the OpenAPI schema).

Hashes are lower-case hex; records are the canonical JSON envelopes
``{"record": {...}, "signatures": [...]}`` exactly as stored (their canonical
re-encoding is the Merkle leaf data); checkpoints are C2SP signed-note text.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class InclusionProofModel(BaseModel):
    index: int = Field(description="Leaf index of the entry.")
    tree_size: int = Field(description="Size of the tree the proof is for (the checkpoint's size).")
    leaf_hash: str = Field(description="SM3(0x00 || canonical entry), hex.")
    path: list[str] = Field(description="RFC 9162 inclusion path, hex hashes.")


class ConsistencyProofModel(BaseModel):
    first: int
    second: int
    path: list[str]


class SubmitResponse(BaseModel):
    index: int
    record_hash: str
    leaf_hash: str
    block_height: int
    tree_size: int
    checkpoint: str = Field(description="Signed checkpoint (C2SP note) that includes the record.")
    inclusion_proof: InclusionProofModel
    final: bool = Field(description="True when the checkpoint carries the quorum the genesis policy demands.")


class KeyAdmission(BaseModel):
    agency_id: str
    key_id: str
    public_key: str = Field(description="base64 SPKI DER of the agency's SM2 key.")
    record: dict[str, Any] = Field(description="The governance record that admitted this key.")
    inclusion_proof: InclusionProofModel


class StatusLeafModel(BaseModel):
    key: str = Field(description="Another licence's key (SM3 of its ID), hex, standing where the asked key would.")
    value: str = Field(description="That licence's state value, hex.")


class StatusProofModel(BaseModel):
    siblings: list[str] = Field(
        description="Sibling hashes from the status map root down to the licence's leaf (ADR 0018), hex."
    )
    other: StatusLeafModel | None = Field(default=None, description="Only in proofs of absence.")


class LicenceResponse(BaseModel):
    origin: str
    licence_id: str
    status: str = Field(description="ACTIVE, SUSPENDED or REVOKED.")
    version: int
    issuer: str
    type_code: str
    region: str
    files: dict[str, str]
    metadata: dict[str, Any]
    issued_at: str
    updated_at: str
    revocation_reason: str = ""
    superseded_files: list[str] = []
    latest_record: dict[str, Any]
    inclusion_proof: InclusionProofModel
    signing_key: KeyAdmission
    state: dict[str, Any] = Field(
        description="The licence state: SM3 of its RFC 8785 JSON is the licence's leaf value in the status map. "
        "The fields above restate it."
    )
    status_proof: StatusProofModel = Field(
        description="The leaf's path to the status map root carried by the checkpoint (extension line `status-map`)."
    )
    checkpoint: str


class HistoryItemModel(BaseModel):
    index: int
    block_height: int
    record: dict[str, Any]
    inclusion_proof: InclusionProofModel


class HistoryResponse(BaseModel):
    origin: str
    licence_id: str
    tree_size: int
    checkpoint: str
    records: list[HistoryItemModel]


class EntryModel(BaseModel):
    index: int
    leaf_hash: str
    block_height: int
    entry: dict[str, Any]


class EntriesResponse(BaseModel):
    start: int
    end: int
    tree_size: int
    entries: list[EntryModel]


class BlockModel(BaseModel):
    header: dict[str, Any]
    hash: str
    signature: str


class HealthResponse(BaseModel):
    status: str
    origin: str
    tree_size: int
    node_id: str


class Problem(BaseModel):
    """RFC 9457 problem details (``application/problem+json``) with the stable reason code."""

    type: str = Field(description="URI naming the problem type (ends with the reason code).")
    title: str
    status: int
    detail: str = Field(description="Human-readable explanation (English).")
    reason: str = Field(description="Stable dotted reason code a client can act on, e.g. state.already_issued.")
    retry_after: int | None = Field(default=None, description="Seconds to wait (overload); also a Retry-After header.")
    absence: dict[str, Any] | None = Field(
        default=None,
        description="404 state.unknown_licence only: a proof that the licence is in no leaf of the status map "
        "at the final checkpoint (`tree_size`, `status_proof`, `checkpoint`; ADR 0018).",
    )


#: JSON Schema of the body of POST /v1/records: a signed record envelope, as canonical JSON
#: (RFC 8785). The server parses it strictly (ledger.records); this schema documents the shape.
SIGNED_RECORD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["record", "signatures"],
    "additionalProperties": False,
    "properties": {
        "record": {
            "type": "object",
            "required": ["v", "type", "origin", "time", "nonce", "agency", "key_id", "payload"],
            "additionalProperties": False,
            "properties": {
                "v": {"type": "integer", "enum": [1]},
                "type": {
                    "type": "string",
                    "enum": [
                        "ISSUE",
                        "AMEND",
                        "SUSPEND",
                        "RESUME",
                        "REVOKE",
                        "AGENCY_ADMIT",
                        "AGENCY_ROTATE_KEY",
                        "AGENCY_REMOVE",
                        "NODE_ADMIT",
                        "NODE_REMOVE",
                    ],
                },
                "origin": {"type": "string", "maxLength": 255},
                "time": {"type": "string", "description": "RFC 3339 UTC, seconds: 2026-11-22T03:00:00Z"},
                "nonce": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
                "agency": {"type": "string", "maxLength": 128},
                "key_id": {"type": "string", "maxLength": 64},
                "payload": {"type": "object"},
            },
        },
        "signatures": {
            "type": "array",
            "minItems": 1,
            "maxItems": 16,
            "items": {
                "type": "object",
                "required": ["key_id", "sig"],
                "additionalProperties": False,
                "properties": {
                    "key_id": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                    "sig": {"type": "string", "description": "base64 DER SM2 signature"},
                },
            },
        },
    },
}

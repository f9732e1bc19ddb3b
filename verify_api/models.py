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

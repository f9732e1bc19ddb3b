"""Derived state: the agency registry, the node set, licence status, used nonces.

Everything here is *derived* from the entries and can be rebuilt from them at
any time (``certledger rebuild``, audit replay). Validation reads state only
through the :class:`StateView` protocol, so the same rules run against the
SQL store, an in-memory replay, or a batch overlay of either.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from functools import cached_property
from typing import Any, Protocol

from ledger.records import Record, RecordType, decode_public_key, encode_public_key, format_time, parse_time
from signing.sm2 import SM2PublicKey

#: the nonce namespace of governance records (authorities sign them, not agencies)
GOVERNANCE_SIGNER = "~governance"


class LicenceStatus(StrEnum):
    ACTIVE = "ACTIVE"
    SUSPENDED = "SUSPENDED"
    REVOKED = "REVOKED"


@dataclass(frozen=True)
class AgencyKey:
    key_id: str
    public_key: SM2PublicKey
    not_before: datetime
    not_after: datetime | None = None

    def valid_at(self, t: datetime) -> bool:
        return self.not_before <= t and (self.not_after is None or t < self.not_after)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "key_id": self.key_id,
            "public_key": encode_public_key(self.public_key),
            "not_before": format_time(self.not_before),
        }
        if self.not_after is not None:
            out["not_after"] = format_time(self.not_after)
        return out

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> AgencyKey:
        return cls(
            key_id=obj["key_id"],
            public_key=decode_public_key(obj["public_key"], "public_key"),
            not_before=parse_time(obj["not_before"]),
            not_after=parse_time(obj["not_after"]) if obj.get("not_after") else None,
        )


@dataclass(frozen=True)
class Agency:
    """An issuing agency (发证机构) as the governance records have admitted it."""

    id: str
    name: str
    regions: tuple[str, ...]
    types: tuple[str, ...]
    authority: bool
    keys: tuple[AgencyKey, ...]
    removed_at: datetime | None = None

    def key(self, key_id: str) -> AgencyKey | None:
        return self._keys_by_id.get(key_id)

    @cached_property
    def _keys_by_id(self) -> dict[str, AgencyKey]:
        # asked once per record of every block; the first of a repeated key_id wins, as a scan would
        by_id: dict[str, AgencyKey] = {}
        for k in self.keys:
            by_id.setdefault(k.key_id, k)
        return by_id

    def covers_region(self, region: str) -> bool:
        # GB/T 2260 codes are hierarchical: "44" covers every code of Guangdong
        return any(r == "*" or region.startswith(r) for r in self.regions)

    def covers_type(self, type_code: str) -> bool:
        return "*" in self.types or type_code in self.types

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "regions": list(self.regions),
            "types": list(self.types),
            "authority": self.authority,
            "keys": [k.to_json() for k in self.keys],
        }
        if self.removed_at is not None:
            out["removed_at"] = format_time(self.removed_at)
        return out

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Agency:
        return cls(
            id=obj["id"],
            name=obj["name"],
            regions=tuple(obj["regions"]),
            types=tuple(obj["types"]),
            authority=bool(obj["authority"]),
            keys=tuple(AgencyKey.from_json(k) for k in obj["keys"]),
            removed_at=parse_time(obj["removed_at"]) if obj.get("removed_at") else None,
        )


@dataclass(frozen=True)
class Node:
    """A department node: signs blocks (SM2) and cosigns checkpoints (Ed25519)."""

    id: str
    name: str
    sm2_public_key: SM2PublicKey
    ed25519_public_key: bytes
    endpoint: str = ""
    removed_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "sm2_public_key": encode_public_key(self.sm2_public_key),
            "ed25519_public_key": base64.b64encode(self.ed25519_public_key).decode(),
        }
        if self.endpoint:
            out["endpoint"] = self.endpoint
        if self.removed_at is not None:
            out["removed_at"] = format_time(self.removed_at)
        return out

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Node:
        return cls(
            id=obj["id"],
            name=obj["name"],
            sm2_public_key=decode_public_key(obj["sm2_public_key"], "sm2_public_key"),
            ed25519_public_key=base64.b64decode(obj["ed25519_public_key"]),
            endpoint=obj.get("endpoint", ""),
            removed_at=parse_time(obj["removed_at"]) if obj.get("removed_at") else None,
        )


@dataclass(frozen=True)
class Authority:
    """A governance authority named in the genesis record; signs governance records."""

    id: str
    name: str
    public_key: SM2PublicKey


@dataclass(frozen=True)
class Policy:
    """The rules fixed by the genesis record."""

    origin: str
    authorities: tuple[Authority, ...]
    governance_threshold: int
    quorum_threshold: int
    time_window_seconds: int

    def authority_by_key(self, key_id: str) -> Authority | None:
        return next((a for a in self.authorities if a.public_key.key_id == key_id), None)

    @classmethod
    def from_genesis(cls, record: Record) -> Policy:
        p = record.payload
        gov = p["governance"]
        return cls(
            origin=record.origin,
            authorities=tuple(
                Authority(a["id"], a["name"], decode_public_key(a["public_key"], "authority"))
                for a in gov["authorities"]
            ),
            governance_threshold=gov["threshold"],
            quorum_threshold=p["quorum"]["threshold"],
            time_window_seconds=p["time_window_seconds"],
        )


@dataclass(frozen=True)
class LicenceState:
    """Current state of one licence, derived from its records."""

    licence_id: str
    status: LicenceStatus
    version: int
    issuer: str
    type_code: str
    region: str
    files: Mapping[str, str]
    metadata: Mapping[str, Any]
    issued_at: datetime
    updated_at: datetime
    latest_index: int
    latest_record_hash: str
    #: file digests of every earlier version, so a superseded file is recognised
    superseded_files: tuple[str, ...] = ()
    revocation_reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "licence_id": self.licence_id,
            "status": str(self.status),
            "version": self.version,
            "issuer": self.issuer,
            "type_code": self.type_code,
            "region": self.region,
            "files": dict(self.files),
            "metadata": dict(self.metadata),
            "issued_at": format_time(self.issued_at),
            "updated_at": format_time(self.updated_at),
            "latest_index": self.latest_index,
            "latest_record_hash": self.latest_record_hash,
            "superseded_files": list(self.superseded_files),
            "revocation_reason": self.revocation_reason,
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> LicenceState:
        return cls(
            licence_id=obj["licence_id"],
            status=LicenceStatus(obj["status"]),
            version=obj["version"],
            issuer=obj["issuer"],
            type_code=obj["type_code"],
            region=obj["region"],
            files=dict(obj["files"]),
            metadata=dict(obj["metadata"]),
            issued_at=parse_time(obj["issued_at"]),
            updated_at=parse_time(obj["updated_at"]),
            latest_index=obj["latest_index"],
            latest_record_hash=obj["latest_record_hash"],
            superseded_files=tuple(obj.get("superseded_files", ())),
            revocation_reason=obj.get("revocation_reason", ""),
        )


class StateView(Protocol):
    """Read access to derived state, as validation needs it."""

    def policy(self) -> Policy | None: ...

    def agency(self, agency_id: str) -> Agency | None: ...

    def agency_by_key(self, key_id: str) -> Agency | None: ...

    def node(self, node_id: str) -> Node | None: ...

    def licence(self, licence_id: str) -> LicenceState | None: ...

    def nonce_used(self, signer: str, nonce: str) -> bool: ...

    def admitted_nodes(self) -> set[str]: ...


@dataclass
class StateChange:
    """What one accepted record changes; applied atomically with the entry."""

    index: int
    nonce: tuple[str, str]
    licence: LicenceState | None = None
    agency: Agency | None = None
    node: Node | None = None
    policy: Policy | None = None
    genesis_nodes: tuple[Node, ...] = ()
    genesis_agencies: tuple[Agency, ...] = ()


@dataclass
class MemoryState:
    """State held in dictionaries: audit replay, tests, and the batch overlay."""

    _policy: Policy | None = None
    agencies: dict[str, Agency] = field(default_factory=dict)
    key_owner: dict[str, str] = field(default_factory=dict)
    nodes: dict[str, Node] = field(default_factory=dict)
    licences: dict[str, LicenceState] = field(default_factory=dict)
    nonces: set[tuple[str, str]] = field(default_factory=set)

    def policy(self) -> Policy | None:
        return self._policy

    def agency(self, agency_id: str) -> Agency | None:
        return self.agencies.get(agency_id)

    def agency_by_key(self, key_id: str) -> Agency | None:
        owner = self.key_owner.get(key_id)
        return self.agencies.get(owner) if owner else None

    def node(self, node_id: str) -> Node | None:
        return self.nodes.get(node_id)

    def licence(self, licence_id: str) -> LicenceState | None:
        return self.licences.get(licence_id)

    def nonce_used(self, signer: str, nonce: str) -> bool:
        return (signer, nonce) in self.nonces

    def admitted_nodes(self) -> set[str]:
        return {n.id for n in self.nodes.values() if n.removed_at is None}

    def apply(self, change: StateChange) -> None:
        self.nonces.add(change.nonce)
        if change.policy is not None:
            self._policy = change.policy
        for ag in (*change.genesis_agencies, *([change.agency] if change.agency else [])):
            self.agencies[ag.id] = ag
            for k in ag.keys:
                self.key_owner[k.key_id] = ag.id
        for node in (*change.genesis_nodes, *([change.node] if change.node else [])):
            self.nodes[node.id] = node
        if change.licence is not None:
            self.licences[change.licence.licence_id] = change.licence


class OverlayState:
    """A batch's view: its own accepted changes on top of a base view.

    Validating record k of a batch must see records 0..k-1 of the same batch
    (two AMENDs of one licence, a nonce used twice) before any of them is
    written to the store.
    """

    def __init__(self, base: StateView) -> None:
        self.base = base
        self.local = MemoryState()
        self.changes: list[StateChange] = []

    def policy(self) -> Policy | None:
        return self.local.policy() or self.base.policy()

    def agency(self, agency_id: str) -> Agency | None:
        return self.local.agency(agency_id) or self.base.agency(agency_id)

    def agency_by_key(self, key_id: str) -> Agency | None:
        return self.local.agency_by_key(key_id) or self.base.agency_by_key(key_id)

    def node(self, node_id: str) -> Node | None:
        return self.local.node(node_id) or self.base.node(node_id)

    def licence(self, licence_id: str) -> LicenceState | None:
        return self.local.licence(licence_id) or self.base.licence(licence_id)

    def nonce_used(self, signer: str, nonce: str) -> bool:
        return self.local.nonce_used(signer, nonce) or self.base.nonce_used(signer, nonce)

    def admitted_nodes(self) -> set[str]:
        admitted = self.base.admitted_nodes()
        for node in self.local.nodes.values():  # the batch's own admissions and removals, in effect
            if node.removed_at is None:
                admitted.add(node.id)
            else:
                admitted.discard(node.id)
        return admitted

    def apply(self, change: StateChange) -> None:
        self.local.apply(change)
        self.changes.append(change)


def agency_from_payload(obj: Mapping[str, Any]) -> Agency:
    return Agency(
        id=obj["id"],
        name=obj["name"],
        regions=tuple(obj["regions"]),
        types=tuple(obj["types"]),
        authority=obj["authority"],
        keys=tuple(AgencyKey.from_json(k) for k in obj["keys"]),
    )


def node_from_payload(obj: Mapping[str, Any]) -> Node:
    return Node(
        id=obj["id"],
        name=obj["name"],
        sm2_public_key=decode_public_key(obj["sm2_public_key"], "sm2_public_key"),
        ed25519_public_key=base64.b64decode(obj["ed25519_public_key"]),
        endpoint=obj.get("endpoint", ""),
    )


def retire_key(agency: Agency, key_id: str, at: datetime) -> Agency:
    keys = tuple(
        replace(k, not_after=at) if k.key_id == key_id and (k.not_after is None or k.not_after > at) else k
        for k in agency.keys
    )
    return replace(agency, keys=keys)


__all__ = [
    "GOVERNANCE_SIGNER",
    "Agency",
    "AgencyKey",
    "Authority",
    "LicenceState",
    "LicenceStatus",
    "MemoryState",
    "Node",
    "OverlayState",
    "Policy",
    "RecordType",
    "StateChange",
    "StateView",
]

"""Checking licence status proofs: the offline core of every verifier.

The HTTP client (verify_api.client), the file verifier (a proof bundle
embedded in a licence file) and the federation all call these functions;
they fetch nothing and trust nothing but the :class:`TrustAnchors`.

Steps (each recorded as a :class:`Check`):

1. checkpoint: the signed note verifies with the anchors' node keys and
   carries the quorum of distinct nodes the genesis policy demands;
2. (online only) consistency with the last checkpoint seen;
3. inclusion: the record's leaf hash is recomputed from its bytes and its
   inclusion proof leads to the checkpoint's root;
4. key admission: the governance record that admitted the signing key is
   signed by enough genesis authorities and is itself included;
5. signature: the record's SM2 signature verifies with that key;
6. statement: the record is about this licence, on this origin, and the
   reported status follows from it;
7. current state: the licence's whole state (status, version, files, latest
   entry, ...) is the leaf of the status map whose root the quorum's checkpoint
   carries (ADR 0018), and that state names exactly the record of step 3. An
   inclusion proof alone cannot show that no later record exists; this can.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from ledger.anchors import TrustAnchors
from ledger.canonical import canonical_bytes
from ledger.checkpoint import Checkpoint, open_checkpoint, verify_quorum
from ledger.merkle.hashing import TreeHasher
from ledger.merkle.verify import verify_inclusion
from ledger.records import RecordType, SignedRecord, decode_public_key
from ledger.statusmap import (
    StatusProof,
    root_from_extensions,
    state_value,
    status_key,
    verify_absence,
    verify_membership,
)
from ledger.validation import check_governance_signatures
from signing.errors import CertLedgerError, VerificationError
from signing.sm3 import sm3

HASHER = TreeHasher()
_STATUS_BY_TYPE = {
    RecordType.REVOKE: "REVOKED",
    RecordType.SUSPEND: "SUSPENDED",
    RecordType.RESUME: "ACTIVE",
    RecordType.ISSUE: "ACTIVE",
}
#: the status document's top-level fields that restate the licence state (and must equal it)
_STATE_FIELDS = (
    "licence_id",
    "status",
    "version",
    "issuer",
    "type_code",
    "region",
    "files",
    "metadata",
    "issued_at",
    "updated_at",
    "revocation_reason",
    "superseded_files",
)


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


@dataclass(frozen=True)
class VerifiedCheckpoint:
    checkpoint: Checkpoint
    note: str
    signers: frozenset[str]


@dataclass(frozen=True)
class VerifiedStatus:
    origin: str
    licence_id: str
    status: str
    version: int
    issuer: str
    files: dict[str, str]
    metadata: dict[str, Any]
    record: SignedRecord
    checkpoint: VerifiedCheckpoint
    checks: tuple[Check, ...]
    fetched_at: float
    revocation_reason: str = ""
    superseded_files: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "origin": self.origin,
            "licence_id": self.licence_id,
            "status": self.status,
            "version": self.version,
            "issuer": self.issuer,
            "files": self.files,
            "metadata": self.metadata,
            "revocation_reason": self.revocation_reason,
            "superseded_files": list(self.superseded_files),
            "record": self.record.to_json(),
            "tree_size": self.checkpoint.checkpoint.size,
            "checkpoint": self.checkpoint.note,
            "checks": [c.to_json() for c in self.checks],
            "fetched_at": self.fetched_at,
        }


def open_quorum_checkpoint(anchors: TrustAnchors, note: str, checks: list[Check]) -> VerifiedCheckpoint:
    """Step 1: the note's signatures, and a quorum of distinct genesis nodes."""
    opened = open_checkpoint(note, anchors.checkpoint_verifiers, origin=anchors.origin)
    quorum = verify_quorum(opened, anchors.quorum_names, anchors.quorum_threshold)
    cp = opened.checkpoint
    checks.append(
        Check(
            "checkpoint",
            True,
            f"tree size {cp.size} signed by {len(quorum.signers)} of "
            f"{len(anchors.quorum_names)} nodes (quorum {quorum.threshold})",
        )
    )
    return VerifiedCheckpoint(cp, note, quorum.signers)


def verify_offline(anchors: TrustAnchors, licence_id: str, document: dict[str, Any]) -> VerifiedStatus:
    """Steps 1, 3-6 on a status document, e.g. the proof bundle embedded in a licence file."""
    checks: list[Check] = []
    try:
        vcp = open_quorum_checkpoint(anchors, str(document["checkpoint"]), checks)
        return verify_status_document(anchors, licence_id, document, vcp, checks)
    except (KeyError, TypeError, ValueError) as exc:
        raise VerificationError(
            f"the proof document is malformed: {type(exc).__name__}: {exc}", reason="proof.malformed"
        ) from None


def verify_status_document(
    anchors: TrustAnchors, licence_id: str, data: dict[str, Any], vcp: VerifiedCheckpoint, checks: list[Check]
) -> VerifiedStatus:
    """Steps 3-6 on a status document (the API's licence answer or a file's proof bundle)."""
    size, root = vcp.checkpoint.size, vcp.checkpoint.root_hash
    # 3. inclusion of the latest record
    record = included(data["latest_record"], data["inclusion_proof"], size, root, "record inclusion", checks)
    # 4. the key that signed it was admitted by the governance authorities, on this ledger
    key_info = data["signing_key"]
    admission = included(key_info["record"], key_info["inclusion_proof"], size, root, "key admission inclusion", checks)
    pub = decode_public_key(key_info["public_key"], "signing_key.public_key")
    if pub.key_id != record.record.key_id or key_info["key_id"] != pub.key_id:
        raise VerificationError("the signing key does not match the record's key_id", reason="client.key_mismatch")
    check_admission(anchors, admission, pub.key_id, record.record.agency)
    checks.append(
        Check(
            "key admission",
            True,
            f"key {pub.key_id[:16]}… of {record.record.agency} admitted by "
            f"{admission.record.type} signed by the genesis authorities",
        )
    )
    # 5. the agency's signature
    record.verify_signature_by(pub)
    checks.append(Check("signature", True, f"SM2 signature of {record.record.agency} verifies"))
    # 6. the statement
    if record.record.origin != anchors.origin or record.record.licence_id != licence_id:
        raise VerificationError("the record is not about this licence on this ledger", reason="client.wrong_record")
    status = str(data["status"])
    implied = _STATUS_BY_TYPE.get(record.record.type)
    if implied is not None and implied != status:
        raise VerificationError(
            f"the node reports {status} but the latest record is {record.record.type}",
            reason="client.status_mismatch",
        )
    if record.record.type is RecordType.AMEND and status == "REVOKED":
        raise VerificationError("an AMEND cannot leave a licence revoked", reason="client.status_mismatch")
    payload = record.record.payload
    if "files" in payload and dict(payload["files"]) != dict(data["files"]):
        raise VerificationError("reported file digests differ from the latest record", reason="client.files_mismatch")
    checks.append(Check("statement", True, f"latest record {record.record.type} implies {status}"))
    # 7. the whole state is the status map's, at this checkpoint, and its latest record is that record
    state = _verified_state(licence_id, data, vcp, record, int(data["inclusion_proof"]["index"]))
    checks.append(
        Check(
            "current status",
            True,
            f"{state['status']}, version {state['version']}, latest entry {state['latest_index']}: "
            "the licence's leaf in the status map of the quorum's checkpoint",
        )
    )
    return VerifiedStatus(
        origin=anchors.origin,
        licence_id=licence_id,
        status=str(state["status"]),
        version=int(state["version"]),
        issuer=str(state["issuer"]),
        files=dict(state["files"]),
        metadata=dict(state["metadata"]),
        record=record,
        checkpoint=vcp,
        checks=tuple(checks),
        fetched_at=time.time(),
        revocation_reason=str(state["revocation_reason"]),
        superseded_files=tuple(state["superseded_files"]),
    )


def verify_absence_document(
    anchors: TrustAnchors, licence_id: str, absence: dict[str, Any], vcp: VerifiedCheckpoint, checks: list[Check]
) -> None:
    """The licence is in no leaf of the status map whose root the quorum's checkpoint carries.

    ``absence`` is the ``absence`` member of a not-found answer: ``tree_size``,
    ``status_proof`` and ``checkpoint`` (already opened as ``vcp``).
    """
    status_root = root_from_extensions(vcp.checkpoint.extensions)
    if status_root is None:
        raise VerificationError(
            "the checkpoint carries no status map root: absence cannot be proven", reason="client.no_status_root"
        )
    if int(absence["tree_size"]) != vcp.checkpoint.size:
        raise VerificationError("the proof of absence is for another tree size", reason="statusmap.proof")
    verify_absence(status_root, status_key(licence_id), StatusProof.from_json(absence["status_proof"]))
    checks.append(
        Check("absence", True, f"no licence {licence_id} in the status map at tree size {vcp.checkpoint.size}")
    )


def _verified_state(
    licence_id: str, data: dict[str, Any], vcp: VerifiedCheckpoint, record: SignedRecord, index: int
) -> dict[str, Any]:
    """The licence state of ``data``, proven by the status map root of the checkpoint (step 7)."""
    status_root = root_from_extensions(vcp.checkpoint.extensions)
    if status_root is None:
        raise VerificationError(
            "the checkpoint carries no status map root: the current status cannot be proven",
            reason="client.no_status_root",
        )
    state = data["state"]
    if not isinstance(state, dict):
        raise TypeError("state is not an object")
    proof = StatusProof.from_json(data["status_proof"])
    verify_membership(status_root, status_key(licence_id), state_value(state), proof)
    if state.get("licence_id") != licence_id:
        raise VerificationError("the proven state is of another licence", reason="client.wrong_record")
    if state.get("latest_index") != index or state.get("latest_record_hash") != record.record.record_hash():
        # e.g. an older record of the licence, with a valid inclusion proof, offered as its latest
        raise VerificationError(
            "the record offered is not the licence's latest record on the ledger", reason="client.not_latest"
        )
    for name in _STATE_FIELDS:
        if data.get(name) != state.get(name):
            raise VerificationError(
                f"the reported {name} differs from the licence's proven state", reason="client.status_mismatch"
            )
    return state


def included(
    record_json: Any, proof: dict[str, Any], size: int, root: bytes, name: str, checks: list[Check]
) -> SignedRecord:
    signed = SignedRecord.from_bytes(canonical_bytes(record_json))
    leaf = HASHER.hash_leaf(signed.entry_bytes())
    if proof["leaf_hash"] != leaf.hex():
        raise VerificationError(f"{name}: the leaf hash does not match the record", reason="proof.inclusion")
    if int(proof["tree_size"]) != size:
        raise VerificationError(f"{name}: proof is for another tree size", reason="proof.inclusion")
    verify_inclusion(HASHER, int(proof["index"]), size, leaf, [bytes.fromhex(h) for h in proof["path"]], root)
    checks.append(Check(name, True, f"entry {proof['index']} is in the tree of size {size}"))
    return signed


def check_admission(anchors: TrustAnchors, admission: SignedRecord, key_id: str, agency_id: str) -> None:
    rtype = admission.record.type
    p = admission.record.payload
    if rtype is RecordType.GENESIS:
        if sm3(admission.entry_bytes()).hex() != anchors.genesis_hash:
            raise VerificationError("the genesis record differs from the pinned one", reason="anchors.genesis_hash")
        keys = [(a["id"], k["key_id"]) for a in p["agencies"] for k in a["keys"]]
    elif rtype is RecordType.AGENCY_ADMIT:
        keys = [(p["agency"]["id"], k["key_id"]) for k in p["agency"]["keys"]]
    elif rtype is RecordType.AGENCY_ROTATE_KEY:
        keys = [(p["agency_id"], p["new_key"]["key_id"])]
    else:
        raise VerificationError(f"{rtype} does not admit keys", reason="client.key_admission")
    if (agency_id, key_id) not in keys:
        raise VerificationError(
            "the admission record does not name this key for this agency", reason="client.key_admission"
        )
    if rtype is not RecordType.GENESIS:
        # the governance signatures, checked with the genesis authorities (not the node's word)
        try:
            check_governance_signatures(admission, anchors.policy, verify=True)
        except CertLedgerError as exc:
            raise VerificationError(
                f"the key admission is not validly signed: {exc}", reason="client.key_admission"
            ) from None

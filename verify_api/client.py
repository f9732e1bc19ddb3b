"""A client that checks everything a certledger node tells it.

For a licence status the steps are (each recorded as a :class:`Check`):

1. checkpoint: the signed note verifies with the anchors' node keys and
   carries the quorum of distinct nodes the genesis policy demands;
2. consistency: the checkpoint extends the last one this client saw for the
   origin (kept on disk), proven by an RFC 9162 consistency proof; a
   checkpoint that does not is a fork, kept with the old one as evidence;
3. inclusion: the latest record's leaf hash is recomputed from its bytes and
   its inclusion proof leads to the checkpoint's root;
4. key admission: the governance record that admitted the signing key is
   signed by enough genesis authorities and is itself included;
5. signature: the record's SM2 signature verifies with that key;
6. statement: the record is about this licence, on this origin, and the
   reported status follows from it.

Only if every step passes is a :class:`VerifiedStatus` returned; otherwise
:class:`VerificationError` names the failed step.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from ledger.canonical import canonical_bytes
from ledger.checkpoint import Checkpoint, open_checkpoint, verify_quorum
from ledger.merkle.hashing import TreeHasher
from ledger.merkle.verify import verify_consistency, verify_inclusion
from ledger.records import RecordType, SignedRecord, decode_public_key
from ledger.validation import check_governance_signatures
from signing.errors import CertLedgerError, InvalidInputError, TransportError, VerificationError
from signing.sm3 import sm3
from verify_api.anchors import TrustAnchors

HASHER = TreeHasher()
_STATUS_BY_TYPE = {
    RecordType.REVOKE: "REVOKED",
    RecordType.SUSPEND: "SUSPENDED",
    RecordType.RESUME: "ACTIVE",
    RecordType.ISSUE: "ACTIVE",
}


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


@dataclass(frozen=True)
class VerifiedHistory:
    origin: str
    licence_id: str
    records: tuple[tuple[int, SignedRecord], ...]
    checkpoint: VerifiedCheckpoint
    checks: tuple[Check, ...]


@dataclass
class CheckpointMemory:
    """The last verified checkpoint per origin, on disk (atomic replace, fsync)."""

    path: Path | None
    _data: dict[str, dict[str, Any]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if self.path is not None and self.path.exists():
            try:
                self._data = json.loads(self.path.read_text("utf-8"))
            except (ValueError, OSError) as exc:
                raise InvalidInputError(
                    f"checkpoint memory {self.path} is unreadable: {exc}", reason="client.state"
                ) from None

    def get(self, origin: str) -> dict[str, Any] | None:
        return self._data.get(origin)

    def put(self, origin: str, size: int, root: bytes, note: str) -> None:
        with self._lock:
            old = self._data.get(origin)
            if old is not None and old["size"] > size:
                return  # never move backwards
            self._data[origin] = {"size": size, "root": root.hex(), "note": note}
            if self.path is None:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".checkpoints-")
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(self._data, f, indent=1)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)


class LedgerClient:
    """Talks to one province's node and verifies what it answers against ``anchors``."""

    def __init__(
        self,
        base_url: str,
        anchors: TrustAnchors,
        *,
        memory: CheckpointMemory | None = None,
        timeout: float = 10.0,
        http: httpx.Client | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.anchors = anchors
        self.memory = memory or CheckpointMemory(None)
        self.http = http or httpx.Client(timeout=timeout)

    def close(self) -> None:
        self.http.close()

    # -- transport ------------------------------------------------------------------------

    def _get(self, path: str, **params: Any) -> httpx.Response:
        try:
            resp = self.http.get(self.base_url + path, params={k: v for k, v in params.items() if v is not None})
        except httpx.HTTPError as exc:
            raise TransportError(
                f"{self.base_url}: {type(exc).__name__}: {exc}", reason="transport.unreachable"
            ) from None
        if resp.status_code == 404:
            reason = _problem_reason(resp) or "remote.not_found"
            raise InvalidInputError(f"{self.base_url}{path}: not found", reason=reason)
        if resp.status_code >= 400:
            raise TransportError(
                f"{self.base_url}{path}: HTTP {resp.status_code} {_problem_reason(resp)}", reason="transport.http_error"
            )
        return resp

    def _json(self, path: str, **params: Any) -> dict[str, Any]:
        resp = self._get(path, **params)
        try:
            data = resp.json()
        except ValueError:
            raise VerificationError(f"{path}: the node answered with invalid JSON", reason="remote.malformed") from None
        if not isinstance(data, dict):
            raise VerificationError(f"{path}: the node answered with a non-object", reason="remote.malformed")
        return data

    # -- checkpoints ----------------------------------------------------------------------

    def verify_checkpoint(self, note: str, checks: list[Check]) -> VerifiedCheckpoint:
        """Steps 1 and 2: signatures + quorum, then consistency with the last one seen."""
        opened = open_checkpoint(note, self.anchors.checkpoint_verifiers, origin=self.anchors.origin)
        quorum = verify_quorum(opened, self.anchors.quorum_names, self.anchors.quorum_threshold)
        cp = opened.checkpoint
        checks.append(
            Check(
                "checkpoint",
                True,
                f"tree size {cp.size} signed by {len(quorum.signers)} of "
                f"{len(self.anchors.quorum_names)} nodes (quorum {quorum.threshold})",
            )
        )
        last = self.memory.get(self.anchors.origin)
        if last is not None:
            old_size, old_root = int(last["size"]), bytes.fromhex(last["root"])
            if old_size > cp.size:
                # an older head than we saw: prove the one we saw extends it, i.e. no rollback hides a fork
                self._check_consistency(cp.size, cp.root_hash, old_size, old_root, note, last["note"])
            elif old_size < cp.size or old_root != cp.root_hash:
                self._check_consistency(old_size, old_root, cp.size, cp.root_hash, last["note"], note)
            checks.append(Check("consistency", True, f"consistent with the checkpoint seen before (size {old_size})"))
        else:
            checks.append(Check("consistency", True, "first checkpoint seen for this origin (trust on first use)"))
        self.memory.put(self.anchors.origin, cp.size, cp.root_hash, note)
        return VerifiedCheckpoint(cp, note, quorum.signers)

    def _check_consistency(
        self, old_size: int, old_root: bytes, new_size: int, new_root: bytes, old_note: str, new_note: str
    ) -> None:
        try:
            if old_size == new_size:
                raise VerificationError("two different roots for the same tree size", reason="proof.consistency")
            data = self._json("/v1/proofs/consistency", first=old_size, second=new_size)
            path = [bytes.fromhex(h) for h in data.get("path", [])]
            verify_consistency(HASHER, old_size, new_size, old_root, new_root, path)
        except (VerificationError, ValueError) as exc:
            raise VerificationError(
                f"checkpoint fork: the tree of size {new_size} does not extend the tree of size {old_size} "
                f"seen before ({exc})",
                reason="checkpoint.fork",
                details={"seen_before": old_note, "received": new_note},
            ) from None

    def checkpoint(self) -> VerifiedCheckpoint:
        note = self._get("/v1/checkpoint").text
        return self.verify_checkpoint(note, [])

    # -- licences -------------------------------------------------------------------------

    def licence_status(self, licence_id: str) -> VerifiedStatus:
        data = self._json(f"/v1/licences/{licence_id}")
        checks: list[Check] = []
        try:
            return self._verify_status(licence_id, data, checks)
        except (KeyError, TypeError, ValueError) as exc:
            raise VerificationError(
                f"the node's answer is malformed: {type(exc).__name__}: {exc}", reason="remote.malformed"
            ) from None

    def _verify_status(self, licence_id: str, data: dict[str, Any], checks: list[Check]) -> VerifiedStatus:
        # 1 + 2
        vcp = self.verify_checkpoint(str(data["checkpoint"]), checks)
        size, root = vcp.checkpoint.size, vcp.checkpoint.root_hash
        # 3. inclusion of the latest record
        record = self._included(data["latest_record"], data["inclusion_proof"], size, root, "record inclusion", checks)
        # 4. the key that signed it was admitted by the governance authorities, on this ledger
        key_info = data["signing_key"]
        admission = self._included(
            key_info["record"], key_info["inclusion_proof"], size, root, "key admission inclusion", checks
        )
        pub = decode_public_key(key_info["public_key"], "signing_key.public_key")
        if pub.key_id != record.record.key_id or key_info["key_id"] != pub.key_id:
            raise VerificationError("the signing key does not match the record's key_id", reason="client.key_mismatch")
        self._check_admission(admission, pub.key_id, record.record.agency)
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
        if record.record.origin != self.anchors.origin or record.record.licence_id != licence_id:
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
            raise VerificationError(
                "reported file digests differ from the latest record", reason="client.files_mismatch"
            )
        checks.append(Check("statement", True, f"latest record {record.record.type} implies {status}"))
        return VerifiedStatus(
            origin=self.anchors.origin,
            licence_id=licence_id,
            status=status,
            version=int(data["version"]),
            issuer=str(data["issuer"]),
            files=dict(data["files"]),
            metadata=dict(data["metadata"]),
            record=record,
            checkpoint=vcp,
            checks=tuple(checks),
            fetched_at=time.time(),
            revocation_reason=str(data.get("revocation_reason", "")),
            superseded_files=tuple(data.get("superseded_files", ())),
        )

    def _included(
        self, record_json: Any, proof: dict[str, Any], size: int, root: bytes, name: str, checks: list[Check]
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

    def _check_admission(self, admission: SignedRecord, key_id: str, agency_id: str) -> None:
        rtype = admission.record.type
        p = admission.record.payload
        if rtype is RecordType.GENESIS:
            if sm3(admission.entry_bytes()).hex() != self.anchors.genesis_hash:
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
                check_governance_signatures(admission, self.anchors.policy, verify=True)
            except CertLedgerError as exc:
                raise VerificationError(
                    f"the key admission is not validly signed: {exc}", reason="client.key_admission"
                ) from None

    def history(self, licence_id: str) -> VerifiedHistory:
        data = self._json(f"/v1/licences/{licence_id}/history")
        checks: list[Check] = []
        try:
            vcp = self.verify_checkpoint(str(data["checkpoint"]), checks)
            out = []
            for item in data["records"]:
                signed = self._included(
                    item["record"],
                    item["inclusion_proof"],
                    vcp.checkpoint.size,
                    vcp.checkpoint.root_hash,
                    f"entry {item['index']}",
                    checks,
                )
                if signed.record.licence_id != licence_id:
                    raise VerificationError("history holds a record of another licence", reason="client.wrong_record")
                out.append((int(item["index"]), signed))
        except (KeyError, TypeError, ValueError) as exc:
            raise VerificationError(f"the node's answer is malformed: {exc}", reason="remote.malformed") from None
        indices = [i for i, _ in out]
        if indices != sorted(set(indices)):
            raise VerificationError("history is not in log order", reason="client.history_order")
        return VerifiedHistory(self.anchors.origin, licence_id, tuple(out), vcp, tuple(checks))


def _problem_reason(resp: httpx.Response) -> str:
    try:
        data = resp.json()
    except ValueError:
        return ""
    return str(data.get("reason", "")) if isinstance(data, dict) else ""

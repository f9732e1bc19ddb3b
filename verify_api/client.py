"""A client that checks everything a certledger node tells it.

The checks themselves live in :mod:`ledger.proofcheck` (they also verify a
licence file's embedded proof bundle offline); this module adds transport
and step 2, consistency with what this client saw before. For a licence
status the steps are (each recorded as a :class:`Check`):

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

from ledger.anchors import TrustAnchors
from ledger.merkle.verify import verify_consistency
from ledger.proofcheck import (
    HASHER,
    Check,
    VerifiedCheckpoint,
    VerifiedStatus,
    included,
    open_quorum_checkpoint,
    verify_absence_document,
    verify_status_document,
)
from ledger.records import SignedRecord
from signing.errors import CertLedgerError, InvalidInputError, TransportError, VerificationError

#: the most a node's answer may hold: a status document with its proofs and history is far smaller
MAX_ANSWER_BYTES = 8 * 1024 * 1024
#: headers that described the body as sent, not the decoded body kept
_RECODED = frozenset({"content-encoding", "content-length", "transfer-encoding"})


@dataclass(frozen=True)
class VerifiedHistory:
    origin: str
    licence_id: str
    records: tuple[tuple[int, SignedRecord], ...]
    checkpoint: VerifiedCheckpoint
    checks: tuple[Check, ...]


def _memory_shape(data: Any) -> bool:
    """``{origin: {"size": int, "root": hex, "note": str}}``, as :meth:`CheckpointMemory.put` writes it."""
    if not isinstance(data, dict):
        return False
    for origin, head in data.items():
        if not isinstance(origin, str) or not isinstance(head, dict):
            return False
        size, root, note = head.get("size"), head.get("root"), head.get("note")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            return False
        if not isinstance(root, str) or len(root) != 64 or not isinstance(note, str):
            return False
        try:
            bytes.fromhex(root)
        except ValueError:
            return False
    return True


@dataclass
class CheckpointMemory:
    """The last verified checkpoint per origin, on disk (atomic replace, fsync)."""

    path: Path | None
    _data: dict[str, dict[str, Any]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if self.path is not None and self.path.exists():
            try:
                data = json.loads(self.path.read_text("utf-8"))
            except (ValueError, OSError) as exc:
                raise InvalidInputError(
                    f"checkpoint memory {self.path} is unreadable: {exc}", reason="client.state"
                ) from None
            if not _memory_shape(data):
                raise InvalidInputError(
                    f"checkpoint memory {self.path} is not a checkpoint memory (origin -> size, root, note)",
                    reason="client.state",
                )
            self._data = data

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
        #: for the whole answer, not each read: a node dripping a byte a second would hold every
        #: per-read timeout off forever
        self.timeout = timeout
        self.http = http or httpx.Client(timeout=timeout)

    def close(self) -> None:
        self.http.close()

    # -- transport ------------------------------------------------------------------------

    def _get(self, path: str, **params: Any) -> httpx.Response:
        url = self.base_url + path
        deadline = time.monotonic() + self.timeout
        try:
            with self.http.stream("GET", url, params={k: v for k, v in params.items() if v is not None}) as streamed:
                body = bytearray()
                for chunk in streamed.iter_bytes():  # decoded: the bound is on what is parsed
                    body += chunk
                    if len(body) > MAX_ANSWER_BYTES:
                        raise TransportError(
                            f"{url}: the answer is larger than {MAX_ANSWER_BYTES} bytes", reason="transport.too_large"
                        )
                    if time.monotonic() > deadline:
                        raise TransportError(
                            f"{url}: no complete answer within {self.timeout:g} s", reason="transport.timeout"
                        )
                headers = [(k, v) for k, v in streamed.headers.multi_items() if k.lower() not in _RECODED]
                resp = httpx.Response(
                    streamed.status_code, headers=headers, content=bytes(body), request=streamed.request
                )
        except httpx.HTTPError as exc:
            raise TransportError(
                f"{self.base_url}: {type(exc).__name__}: {exc}", reason="transport.unreachable"
            ) from None
        except httpx.InvalidURL as exc:  # not an HTTPError: raised before any request is made
            raise InvalidInputError(f"{self.base_url} is not a usable URL: {exc}", reason="remote.url") from None
        if resp.status_code == 404:
            reason = _problem_reason(resp) or "remote.not_found"
            absence = _problem_member(resp, "absence")
            details = {"absence": absence} if isinstance(absence, dict) else None
            raise InvalidInputError(f"{self.base_url}{path}: not found", reason=reason, details=details)
        if resp.status_code >= 400:
            raise TransportError(
                f"{self.base_url}{path}: HTTP {resp.status_code} {_problem_reason(resp)}", reason="transport.http_error"
            )
        return resp

    def _json(self, path: str, **params: Any) -> dict[str, Any]:
        resp = self._get(path, **params)
        try:
            data = resp.json()
        except (ValueError, RecursionError):  # RecursionError: nesting deeper than json recurses
            raise VerificationError(f"{path}: the node answered with invalid JSON", reason="remote.malformed") from None
        if not isinstance(data, dict):
            raise VerificationError(f"{path}: the node answered with a non-object", reason="remote.malformed")
        return data

    # -- checkpoints ----------------------------------------------------------------------

    def verify_checkpoint(self, note: str, checks: list[Check]) -> VerifiedCheckpoint:
        """Steps 1 and 2: signatures + quorum, then consistency with the last one seen."""
        vcp = open_quorum_checkpoint(self.anchors, note, checks)
        cp = vcp.checkpoint
        last = self.memory.get(self.anchors.origin)
        if last is not None:
            old_size, old_root = int(last["size"]), bytes.fromhex(last["root"])
            if old_size > cp.size:
                # an older head than we saw: first prove the one we saw extends it (a fork is the
                # graver finding), then refuse it: an answer at that size may leave out records
                # appended since, and the head remembered stays the newer one
                self._check_consistency(cp.size, cp.root_hash, old_size, old_root, note, last["note"])
                raise VerificationError(
                    f"the node answers at tree size {cp.size}, older than the size {old_size} already seen: "
                    "its answer may leave out later records (ask again, or another node)",
                    reason="client.stale_checkpoint",
                )
            elif old_size < cp.size or old_root != cp.root_hash:
                self._check_consistency(old_size, old_root, cp.size, cp.root_hash, last["note"], note)
            checks.append(Check("consistency", True, f"consistent with the checkpoint seen before (size {old_size})"))
        else:
            checks.append(Check("consistency", True, "first checkpoint seen for this origin (trust on first use)"))
        self.memory.put(self.anchors.origin, cp.size, cp.root_hash, note)
        return vcp

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
        """The licence's verified current status; for a licence the ledger does not hold, the
        not-found error says whether the node proved it (``details["proven"]``)."""
        try:
            data = self._json(f"/v1/licences/{licence_id}")
        except InvalidInputError as exc:
            if exc.reason == "state.unknown_licence" and "absence" in exc.details:
                raise self._proven_unknown(licence_id, exc.details["absence"]) from None
            raise
        checks: list[Check] = []
        try:
            vcp = self.verify_checkpoint(str(data["checkpoint"]), checks)
            return verify_status_document(self.anchors, licence_id, data, vcp, checks)
        except (KeyError, TypeError, ValueError) as exc:
            raise VerificationError(
                f"the node's answer is malformed: {type(exc).__name__}: {exc}", reason="remote.malformed"
            ) from None

    def _proven_unknown(self, licence_id: str, absence: dict[str, Any]) -> CertLedgerError:
        """The not-found answer, once its proof of absence is checked (a bad proof is the error)."""
        checks: list[Check] = []
        try:
            vcp = self.verify_checkpoint(str(absence["checkpoint"]), checks)
            verify_absence_document(self.anchors, licence_id, absence, vcp, checks)
        except (KeyError, TypeError, ValueError) as exc:
            return VerificationError(
                f"the node's proof of absence is malformed: {type(exc).__name__}: {exc}", reason="remote.malformed"
            )
        except CertLedgerError as exc:
            return exc
        return InvalidInputError(
            f"licence {licence_id} is not on ledger {self.anchors.origin} "
            f"(proven absent at tree size {vcp.checkpoint.size})",
            reason="state.unknown_licence",
            details={"proven": True, "tree_size": vcp.checkpoint.size},
        )

    def history(self, licence_id: str) -> VerifiedHistory:
        data = self._json(f"/v1/licences/{licence_id}/history")
        checks: list[Check] = []
        try:
            vcp = self.verify_checkpoint(str(data["checkpoint"]), checks)
            out = []
            for item in data["records"]:
                signed = included(
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
    return str(_problem_member(resp, "reason") or "")


def _problem_member(resp: httpx.Response, name: str) -> Any:
    try:
        data = resp.json()
    except (ValueError, RecursionError):
        return None
    return data.get(name) if isinstance(data, dict) else None

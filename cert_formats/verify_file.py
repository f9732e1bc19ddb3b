"""Verifying a licence file someone was handed: a verdict, and every check behind it.

Verdicts:

``forged``      the file's own signature/seal fails, or its digest is on no record of the licence
``unknown``     the licence is on no ledger we can ask and the file carries no valid proof
``revoked``     the file is the current one, or an earlier one, of a revoked licence
``superseded``  the file is an earlier version of a licence that was amended since
``suspended``   the file is the current version of a suspended licence
``valid``       the file is the current version of an active licence

Steps:

1. format: PDF (``%PDF-``) or OFD (zip) — anything else is refused;
2. signature: PDF — the PAdES SM2 signature over the signed revision, and any
   later revision must be exactly certledger's proof-bundle update; OFD — every
   GB/T 38540 seal, all files protected but the proof-bundle attachment;
   certificate chains to the province roots given;
3. identity: the GB/T 36904 identifier in the file's metadata, its lineage is
   the ledger's licence ID;
4. digest: SM3 of the signed revision (PDF) / the content (OFD);
5. status: from a live source (the local ledger, or a remote node through a
   verifying client) if given, else from the embedded proof bundle, checked
   offline against the trust anchors (signatures, Merkle proofs, quorum);
6. verdict: the digest and the status decide (revoked > superseded >
   suspended > valid).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from cert_formats.binding import (
    attach_pdf_bundle,
    ofd_bundle_path,
    ofd_digest,
    parse_bundle,
    pdf_signed_revision_end,
)
from cert_formats.identifier import LicenceIdentifier
from cert_formats.pdf_update import read_own_bundle
from ledger.anchors import TrustAnchors
from ledger.proofcheck import VerifiedStatus, verify_offline
from signing.errors import CertLedgerError, InvalidInputError
from signing.sm3 import sm3
from signing.x509 import Certificate

VERDICTS: Final = ("valid", "suspended", "revoked", "superseded", "unknown", "forged")
MAX_FILE_BYTES: Final = 20 * 1024 * 1024

#: a live status source: licence ID -> verified status document, or None if not on the ledger
StatusSource = Callable[[str], dict[str, Any] | None]


@dataclass(frozen=True)
class FileCheck:
    name: str
    ok: bool
    detail: str
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail, "reason": self.reason}


@dataclass(frozen=True)
class FileVerdict:
    verdict: str
    format: str
    checks: tuple[FileCheck, ...]
    licence_id: str = ""
    identifier: str = ""
    digest: str = ""
    status: dict[str, Any] = field(default_factory=dict)
    status_source: str = ""

    @property
    def reason(self) -> str:
        failed = [c for c in self.checks if not c.ok]
        return failed[0].reason if failed else ""

    def to_json(self) -> dict[str, Any]:
        lic = self.status
        return {
            "verdict": self.verdict,
            "format": self.format,
            "licence_id": self.licence_id,
            "identifier": self.identifier,
            "digest_sm3": self.digest,
            "status_source": self.status_source,
            "status": lic.get("status", ""),
            "version": lic.get("version"),
            "issuer": lic.get("issuer", ""),
            "metadata": lic.get("metadata", {}),
            "revocation_reason": lic.get("revocation_reason", ""),
            "checkpoint": lic.get("checkpoint", ""),
            "reason": self.reason,
            "checks": [c.to_json() for c in self.checks],
        }


def detect_format(data: bytes) -> str:
    if data[:5] == b"%PDF-" or b"%PDF-" in data[:1024]:
        return "pdf"
    if data[:4] == b"PK\x03\x04":
        return "ofd"
    raise InvalidInputError("not a PDF or OFD file", reason="file.unsupported")


@dataclass
class _Facts:
    checks: list[FileCheck]
    identifier: str = ""
    digest: str = ""
    bundle: bytes | None = None
    authentic: bool = True


def _pdf(data: bytes, roots: Sequence[Certificate], at: datetime | None) -> _Facts:
    from cert_formats.pdfsig import verify_pdf_signatures

    facts = _Facts([])
    end = pdf_signed_revision_end(data)
    if end is None:
        facts.checks.append(FileCheck("signature", False, "the PDF carries no signature", "pdf.no_signature"))
        facts.authentic = False
        signed = data
    else:
        signed = data[:end]
        if end < len(data):
            # the only change allowed after signing: certledger's own bundle update, byte for byte
            facts.bundle = read_own_bundle(data, end)
            if facts.bundle is None or not _is_bundle_update(signed, facts.bundle, data):
                facts.bundle = None
                facts.checks.append(
                    FileCheck("revisions", False, "the PDF was changed after it was signed", "pdf.modified")
                )
                facts.authentic = False
            else:
                facts.checks.append(FileCheck("revisions", True, "after signing only the proof bundle was attached"))
        result = verify_pdf_signatures(signed, list(roots), at=at)
        if result.ok:
            sm2 = [s for s in result.signatures if s.algorithm == "sm2-sm3"]
            who = sm2[0].signer_subject if sm2 else "?"
            facts.checks.append(FileCheck("signature", True, f"PAdES SM2 signature by {who} verifies; chain trusted"))
        else:
            facts.checks.append(
                FileCheck(
                    "signature",
                    False,
                    f"PDF signature check failed: {result.reason}",
                    result.reason or "pdf.signature_invalid",
                )
            )
            facts.authentic = False
    facts.digest = sm3(signed).hex()
    # the identifier from the parse that checked the signature; an unsigned file is read for
    # it alone (its verdict is forged whatever it says, but the answer names the licence)
    info = result.info if end is not None else _pdf_info(signed)
    facts.identifier = str(info.get("/Subject", "") or "").strip()
    return facts


def _is_bundle_update(signed: bytes, bundle: bytes, data: bytes) -> bool:
    try:
        return attach_pdf_bundle(signed, bundle) == data
    except InvalidInputError:  # a signed revision certledger could not have attached a bundle to
        return False


def _pdf_info(pdf: bytes) -> dict[str, str]:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        info: Any = PdfReader(io.BytesIO(pdf), strict=False).metadata or {}
        return {str(k): str(v) for k, v in info.items() if isinstance(v, str)}
    except (PyPdfError, ValueError, KeyError, TypeError, OSError):
        return {}


def _ofd(data: bytes, roots: Sequence[Certificate], at: datetime | None) -> _Facts:
    from cert_formats.binding import BUNDLE_NAME
    from cert_formats.ofd import Deadline, read_ofd_metadata, read_zip
    from cert_formats.seal import SealVerifyLimits, inspect_ofd_package

    facts = _Facts([])
    limits = SealVerifyLimits()
    deadline = Deadline(limits.max_seconds)
    # unzipped once; only the parts the verdict needs are parsed: the metadata (identifier,
    # attachments) and the seals, which protect every other part byte for byte
    parts = read_zip(data, limits.read.zip, deadline)
    meta = read_ofd_metadata(parts, limits=limits.read, deadline=deadline)
    attachment = next((a for a in meta.attachments if a.name == BUNDLE_NAME), None)
    bundle_path = ofd_bundle_path(parts, attachment.data if attachment else None)
    facts.bundle = attachment.data if attachment else None
    digests: dict[str, bytes] = {}
    result = inspect_ofd_package(
        parts,
        list(roots),
        at=at,
        exempt=[bundle_path] if bundle_path else [],
        limits=limits,
        deadline=deadline,
        digests=digests,
    )
    if result.ok:
        facts.checks.append(
            FileCheck(
                "seal",
                True,
                f"{len(result.signatures)} GB/T 38540 seal(s) verify; "
                "every file but the proof bundle is protected; chain trusted",
            )
        )
    else:
        facts.checks.append(
            FileCheck(
                "seal", False, f"OFD seal check failed: {result.reason}", result.reason or "seal.signature_invalid"
            )
        )
        facts.authentic = False
    facts.digest = ofd_digest(parts, bundle_path, digests)
    facts.identifier = meta.info.custom.get("certledger.identifier", "")
    return facts


def verify_licence_file(
    data: bytes,
    *,
    roots: Sequence[Certificate],
    anchors: Sequence[TrustAnchors] = (),
    live: StatusSource | None = None,
    live_origin: str | None = None,
    at: datetime | None = None,
) -> FileVerdict:
    """The verdict on a licence file. ``roots`` are the province CA certificates the
    signers chain to; ``anchors`` the ledgers whose proof bundles are accepted offline;
    ``live`` a verified status source (local ledger or remote client) for the ledger
    ``live_origin``.

    When ``live`` is asked and gives no status (unreachable, not final yet, or it does not
    know the licence), a proof bundle of that same ledger gives no verdict: it proves the
    status at issue time, and the ledger that could say whether it still holds did not.
    Only a bundle of another ledger (``live_origin`` set and different), or a check
    without ``live`` at all (offline), is judged by its bundle."""
    if len(data) > MAX_FILE_BYTES:
        raise InvalidInputError(f"file larger than {MAX_FILE_BYTES} bytes", reason="file.too_large")
    fmt = detect_format(data)  # 1.
    facts = _pdf(data, roots, at) if fmt == "pdf" else _ofd(data, roots, at)  # 2. + 4.
    checks = facts.checks
    # 3. identity
    try:
        ident = LicenceIdentifier.parse(facts.identifier)
    except CertLedgerError as exc:
        checks.append(FileCheck("identifier", False, f"no valid GB/T 36904 identifier: {exc}", exc.reason))
        return FileVerdict("forged" if not facts.authentic else "unknown", fmt, tuple(checks), digest=facts.digest)
    licence_id = ident.lineage
    checks.append(FileCheck("identifier", True, f"{facts.identifier} (licence {licence_id})"))
    if not facts.authentic:
        return FileVerdict("forged", fmt, tuple(checks), licence_id, facts.identifier, facts.digest)
    # 5. status
    status, source = _status(licence_id, facts.bundle, anchors, live, live_origin, checks)
    if status is None:
        return FileVerdict("unknown", fmt, tuple(checks), licence_id, facts.identifier, facts.digest)
    # 6. verdict
    verdict = _decide(fmt, facts.digest, status, checks)
    return FileVerdict(verdict, fmt, tuple(checks), licence_id, facts.identifier, facts.digest, status, source)


def _status(
    licence_id: str,
    bundle: bytes | None,
    anchors: Sequence[TrustAnchors],
    live: StatusSource | None,
    live_origin: str | None,
    checks: list[FileCheck],
) -> tuple[dict[str, Any] | None, str]:
    if live is not None:
        try:
            status = live(licence_id)
        except CertLedgerError as exc:
            checks.append(FileCheck("ledger", False, f"the ledger could not be asked: {exc}", exc.reason))
            status = None
        else:
            if status is not None:
                checks.append(FileCheck("ledger", True, f"current status from the ledger: {status['status']}"))
                if bundle is not None:
                    # the live answer decides; the bundle (outside the seal) is still checked and shown,
                    # so a file whose attachment was replaced says so instead of riding along as valid
                    _bundle(licence_id, bundle, anchors, checks)
                return status, "ledger"
            checks.append(FileCheck("ledger", False, "the licence is not on the ledger", "state.unknown_licence"))
    if bundle is None:
        checks.append(FileCheck("proof bundle", False, "the file carries no proof bundle", "bundle.missing"))
        return None, ""
    found = _bundle(licence_id, bundle, anchors, checks)
    if found is None:
        return None, ""
    document, verified = found
    if live is not None and (live_origin is None or live_origin == verified.origin):
        # the licence's own ledger was asked and did not confirm it: a revocation since the file
        # was issued would look exactly like this, so the issue-time status decides nothing
        checks.append(
            FileCheck(
                "current status",
                False,
                "the licence's own ledger did not give its current status; the proof bundle only shows "
                f"its status when the file was issued ({verified.status})",
                "bundle.not_current",
            )
        )
        return None, ""
    return document, "proof bundle (status when the file was issued)"


def _bundle(
    licence_id: str, bundle: bytes, anchors: Sequence[TrustAnchors], checks: list[FileCheck]
) -> tuple[dict[str, Any], VerifiedStatus] | None:
    """The proof bundle's document and what it proves, or None (the reason is in ``checks``)."""
    try:
        document = parse_bundle(bundle)
        if document is None:
            checks.append(
                FileCheck("proof bundle", False, "the proof bundle is still the placeholder", "bundle.pending")
            )
            return None
        origin = str(document.get("origin", ""))
        anchor = next((a for a in anchors if a.origin == origin), None)
        if anchor is None:
            checks.append(
                FileCheck("proof bundle", False, f"no trust anchors for ledger {origin!r}", "bundle.unknown_origin")
            )
            return None
        verified = verify_offline(anchor, licence_id, document)
    except CertLedgerError as exc:
        checks.append(FileCheck("proof bundle", False, f"the proof bundle does not verify: {exc}", exc.reason))
        return None
    checks.append(FileCheck("proof bundle", True, "; ".join(c.detail for c in verified.checks)))
    return document, verified


def _decide(fmt: str, digest: str, status: dict[str, Any], checks: list[FileCheck]) -> str:
    current = dict(status.get("files", {})).get(fmt)
    superseded = set(status.get("superseded_files", []))
    state = str(status.get("status", ""))
    if digest == current:
        checks.append(FileCheck("digest", True, f"the file is version {status.get('version')} on the ledger"))
        return {"ACTIVE": "valid", "SUSPENDED": "suspended", "REVOKED": "revoked"}.get(state, "unknown")
    if digest in superseded:
        checks.append(FileCheck("digest", True, "the file is an earlier version of the licence"))
        return "revoked" if state == "REVOKED" else "superseded"
    checks.append(
        FileCheck("digest", False, "the file's digest is on no record of this licence", "file.digest_unknown")
    )
    return "forged"

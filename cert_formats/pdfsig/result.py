"""Frozen results of PDF signature verification: one entry per signature, one line per check.

Reason codes (stable, documented in docs/formats-pdf-signature.md):

``pdf.no_signature``     the file has no signed signature field (or none of the required kind)
``pdf.malformed``        the file, a signature dictionary or its CMS cannot be parsed
``pdf.byte_range``       /ByteRange is not the standard two-part range around this /Contents,
                         or does not cover a whole revision
``pdf.modified``         revisions after the signed one change more than form fields/signatures
``pdf.digest_mismatch``  the digest of the signed bytes differs from the signed messageDigest
``pdf.signature_invalid`` the signature over the signed attributes does not verify (or the
                         signing-certificate attribute names another certificate)
``pdf.chain``            the signer certificate does not chain to a trust anchor given
``pdf.unsupported``      a signature kind this verifier does not evaluate (document timestamps)
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from signing.errors import VerificationError

REASON_NO_SIGNATURE: Final = "pdf.no_signature"
REASON_MALFORMED: Final = "pdf.malformed"
REASON_BYTE_RANGE: Final = "pdf.byte_range"
REASON_MODIFIED: Final = "pdf.modified"
REASON_DIGEST: Final = "pdf.digest_mismatch"
REASON_SIGNATURE: Final = "pdf.signature_invalid"
REASON_CHAIN: Final = "pdf.chain"
REASON_UNSUPPORTED: Final = "pdf.unsupported"

#: algorithm labels used in results
ALGORITHM_SM2: Final = "sm2-sm3"
ALGORITHM_UNKNOWN: Final = "unknown"


class CheckName(enum.StrEnum):
    """The checks run on every signature, in the order they are reported.

    Integrity comes first (is this what was signed?), then later revisions,
    then trust: a result's ``reason`` is the first failed check, so a changed
    byte is reported as a digest mismatch even when it also upsets the
    analysis of later revisions.
    """

    #: the CMS in /Contents parses under the profile
    STRUCTURE = "structure"
    #: /ByteRange is [0 a b c] around exactly this /Contents and covers a whole revision
    BYTE_RANGE = "byte_range"
    #: the digest of the signed bytes equals the signed messageDigest attribute
    DIGEST = "digest"
    #: the signature over the signed attributes verifies with the signer certificate's key
    SIGNATURE = "signature"
    #: later revisions (if any) only add signatures or fill form fields
    MODIFICATIONS = "modifications"
    #: the signer certificate chains to a trust anchor given
    CHAIN = "chain"


class Coverage(enum.StrEnum):
    """What a signature's /ByteRange covers."""

    #: the whole file except the /Contents hex string (the last signature)
    ENTIRE_FILE = "entire_file"
    #: a whole earlier revision, up to its %%EOF (signatures followed by incremental updates)
    ENTIRE_REVISION = "entire_revision"
    #: a contiguous block from the start that is not a complete revision
    PARTIAL = "partial"
    #: not the standard [0 a b c] shape, or not established
    UNCLEAR = "unclear"


@dataclass(frozen=True)
class SignatureCheck:
    """One check on one signature: passed, or failed with a reason code and an explanation."""

    name: CheckName
    ok: bool
    reason: str | None
    detail: str

    def __post_init__(self) -> None:
        if self.ok == (self.reason is not None):
            raise ValueError("a passed check has no reason; a failed check has one")

    def as_dict(self) -> dict[str, Any]:
        return {"check": self.name.value, "ok": self.ok, "reason": self.reason, "detail": self.detail}


@dataclass(frozen=True)
class PdfSignatureResult:
    """The verification of one signature field.

    ``signing_time`` is the time the signer *claims* (``/M``), not a trusted
    timestamp. ``revision`` is the 0-based revision the signature belongs to.
    """

    field_name: str
    algorithm: str
    signer_subject: str | None
    byte_range: tuple[int, ...]
    coverage: Coverage
    revision: int | None
    modification_level: str | None
    signing_time: datetime | None
    checks: tuple[SignatureCheck, ...]

    def __post_init__(self) -> None:
        if not self.checks:
            raise ValueError("a signature result has at least one check")

    @property
    def ok(self) -> bool:
        """Every check passed."""
        return all(c.ok for c in self.checks)

    @property
    def intact(self) -> bool:
        """Every check except the chain passed: the bytes are what this key signed."""
        return all(c.ok for c in self.checks if c.name is not CheckName.CHAIN)

    @property
    def reason(self) -> str | None:
        """The reason of the first failed check, or None."""
        return next((c.reason for c in self.checks if not c.ok), None)

    def check(self, name: CheckName) -> SignatureCheck | None:
        return next((c for c in self.checks if c.name is name), None)

    def as_dict(self) -> dict[str, Any]:
        return {
            "field_name": self.field_name,
            "algorithm": self.algorithm,
            "signer_subject": self.signer_subject,
            "byte_range": list(self.byte_range),
            "coverage": self.coverage.value,
            "revision": self.revision,
            "modification_level": self.modification_level,
            "signing_time": None if self.signing_time is None else self.signing_time.isoformat(),
            "ok": self.ok,
            "reason": self.reason,
            "checks": [c.as_dict() for c in self.checks],
        }


@dataclass(frozen=True)
class PdfVerification:
    """Every signature of one PDF, in signing (revision) order."""

    signatures: tuple[PdfSignatureResult, ...]
    file_size: int
    #: the text entries of the document information dictionary (/Title, /Subject, ...), as
    #: read by the same parse that checked the signatures; a non-text value is left out
    info: Mapping[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """At least one signature, and every signature passed every check."""
        return bool(self.signatures) and all(s.ok for s in self.signatures)

    def __bool__(self) -> bool:
        return self.ok

    @property
    def reason(self) -> str | None:
        """``pdf.no_signature`` for an unsigned file, else the first failing signature's reason."""
        if not self.signatures:
            return REASON_NO_SIGNATURE
        return next((s.reason for s in self.signatures if not s.ok), None)

    def by_algorithm(self, algorithm: str) -> tuple[PdfSignatureResult, ...]:
        return tuple(s for s in self.signatures if s.algorithm == algorithm)

    def require_valid(self, *, algorithm: str | None = ALGORITHM_SM2) -> None:
        """Raise :class:`VerificationError` unless the file passes, as a hard stop.

        With ``algorithm`` (default: SM2/SM3, the agency seal): there must be
        at least one signature of that algorithm and each must pass every
        check; signatures of other algorithms must be intact (byte range,
        modifications, digest, signature) but their chains are not required,
        since a verifier may have no trust anchors for them. With
        ``algorithm=None`` every signature must pass every check.
        """
        if not self.signatures:
            raise VerificationError("the PDF has no signature", reason=REASON_NO_SIGNATURE)
        for sig in self.signatures:
            required = algorithm is None or sig.algorithm == algorithm
            if not (sig.ok if required else sig.intact):
                failed = next(c for c in sig.checks if not c.ok and (required or c.name is not CheckName.CHAIN))
                raise VerificationError(
                    f"signature {sig.field_name!r} ({sig.algorithm}): {failed.detail}",
                    reason=failed.reason,
                    details={"field": sig.field_name, "check": failed.name.value},
                )
        if algorithm is not None and not self.by_algorithm(algorithm):
            raise VerificationError(f"the PDF has no {algorithm} signature", reason=REASON_NO_SIGNATURE)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "reason": self.reason,
            "file_size": self.file_size,
            "signatures": [s.as_dict() for s in self.signatures],
        }

"""Frozen results of OFD seal verification: one entry per seal, one line per check.

Reason codes (stable; documented in docs/formats-seal.md):

``seal.missing``           the file has no seal, or a part a seal names is absent
``seal.malformed``         a signature part (Signatures.xml, Signature.xml, SignedValue.dat,
                           an embedded certificate, a Seal.esl copy) cannot be parsed
``seal.unsupported``       well-formed but outside what is verified here: a GM/T 0031 (V1)
                           signature, a bare ``Type="Sign"`` signature, another algorithm,
                           a critical extension
``seal.digest_mismatch``   a protected file's SM3 differs from its ``CheckValue``, or
                           ``TBS_Sign.dataHash`` / ``propertyInfo`` do not match Signature.xml
``seal.signature_invalid`` the signer's SM2 signature over ``TBS_Sign``, or the seal maker's
                           over ``SES_SealInfo``, does not verify
``seal.signer_mismatch``   the seal does not list the signer's certificate
``seal.chain``             the signer's or the seal maker's certificate does not chain to a
                           trust anchor at the verification time (role, usage, validity)
``seal.expired``           the seal's validity, or the signer certificate's validity at the
                           signing time, does not contain the time it must
``seal.unprotected_file``  the package holds a file no seal protects
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from signing.errors import VerificationError

REASON_MISSING: Final = "seal.missing"
REASON_MALFORMED: Final = "seal.malformed"
REASON_UNSUPPORTED: Final = "seal.unsupported"
REASON_DIGEST: Final = "seal.digest_mismatch"
REASON_SIGNATURE: Final = "seal.signature_invalid"
REASON_SIGNER: Final = "seal.signer_mismatch"
REASON_CHAIN: Final = "seal.chain"
REASON_EXPIRED: Final = "seal.expired"
REASON_UNPROTECTED: Final = "seal.unprotected_file"


class CheckName(enum.StrEnum):
    """The checks, in the order they run."""

    # package level
    #: Signatures.xml is present and lists the seals
    SIGNATURE_LIST = "signature_list"
    #: every file of the package is protected by some seal
    COVERAGE = "coverage"
    # per seal
    #: Signature.xml parses; SM2-with-SM3 / SM3 are the algorithms it names
    SIGNATURE_FILE = "signature_file"
    #: one per protected file: SM3 of the file equals its CheckValue
    REFERENCE = "reference"
    #: a separate Seal.esl copy, if named, is the seal inside SignedValue.dat
    SEAL_FILE = "seal_file"
    #: SignedValue.dat parses as a GB/T 38540 V4 SES_Signature
    SIGNED_VALUE = "signed_value"
    #: TBS_Sign.dataHash = SM3(Signature.xml) and propertyInfo names it
    DATA_HASH = "data_hash"
    #: the signer's SM2 signature over TBS_Sign verifies with the embedded certificate
    SIGNATURE = "signature"
    #: the seal lists the signer's certificate (or its SM3 digest)
    SIGNER_IN_SEAL = "signer_in_seal"
    #: the signer's certificate chains to a trust anchor at the verification time
    SIGNER_CHAIN = "signer_chain"
    #: the signing time lies in the signer certificate's validity, not in the future
    SIGNING_TIME = "signing_time"
    #: the seal maker's SM2 signature over SES_SealInfo verifies
    SEAL_SIGNATURE = "seal_signature"
    #: the seal maker's certificate chains to a trust anchor at the verification time
    MAKER_CHAIN = "maker_chain"
    #: the seal is valid at the signing time and at the verification time
    SEAL_VALIDITY = "seal_validity"


#: checks that establish trust rather than integrity (see ``intact``)
TRUST_CHECKS: Final = frozenset({CheckName.SIGNER_CHAIN, CheckName.MAKER_CHAIN})


@dataclass(frozen=True)
class SealCheck:
    """One check: passed, or failed with a reason code; ``target`` names the file it is about."""

    name: CheckName
    ok: bool
    reason: str | None
    detail: str
    target: str | None = None

    def __post_init__(self) -> None:
        if self.ok == (self.reason is not None):
            raise ValueError("a passed check has no reason; a failed check has one")

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"check": self.name.value, "ok": self.ok, "reason": self.reason,
                               "detail": self.detail}
        if self.target is not None:
            out["target"] = self.target
        return out


@dataclass(frozen=True)
class StampAppearance:
    """Where a seal is shown: ``page_index`` is None when ``page_ref`` names no page."""

    page_index: int | None
    page_ref: str
    boundary: tuple[float, float, float, float]


@dataclass(frozen=True)
class SealSignatureResult:
    """The verification of one seal (one ``Signatures.xml`` entry).

    ``signed_at`` is the time the signer *claims* (``TBS_Sign.timeInfo``), not a
    trusted timestamp. Fields the seal's files did not yield are None.
    """

    sign_id: str
    signature_path: str
    seal_name: str | None
    es_id: str | None
    signer_subject: str | None
    maker_subject: str | None
    signed_at: datetime | None
    protected_files: tuple[str, ...]
    stamps: tuple[StampAppearance, ...]
    timestamp_present: bool
    checks: tuple[SealCheck, ...]

    def __post_init__(self) -> None:
        if not self.checks:
            raise ValueError("a seal result has at least one check")

    @property
    def ok(self) -> bool:
        """Every check passed."""
        return all(c.ok for c in self.checks)

    @property
    def intact(self) -> bool:
        """Every check but the chains passed: the bytes are what the embedded keys signed."""
        return all(c.ok for c in self.checks if c.name not in TRUST_CHECKS)

    @property
    def failures(self) -> tuple[SealCheck, ...]:
        """The failed checks, in order."""
        return tuple(c for c in self.checks if not c.ok)

    @property
    def reason(self) -> str | None:
        """The reason of the first failed check, or None."""
        return next((c.reason for c in self.checks if not c.ok), None)

    def check(self, name: CheckName) -> SealCheck | None:
        """The first check called ``name`` (REFERENCE has one per file: see ``checks_named``)."""
        return next((c for c in self.checks if c.name is name), None)

    def checks_named(self, name: CheckName) -> tuple[SealCheck, ...]:
        """Every check called ``name``."""
        return tuple(c for c in self.checks if c.name is name)

    def as_dict(self) -> dict[str, Any]:
        return {
            "sign_id": self.sign_id,
            "signature_path": self.signature_path,
            "seal_name": self.seal_name,
            "es_id": self.es_id,
            "signer_subject": self.signer_subject,
            "maker_subject": self.maker_subject,
            "signed_at": None if self.signed_at is None else self.signed_at.isoformat(),
            "protected_files": list(self.protected_files),
            "stamps": [{"page_index": s.page_index, "page_ref": s.page_ref, "boundary": list(s.boundary)}
                       for s in self.stamps],
            "timestamp_present": self.timestamp_present,
            "ok": self.ok,
            "reason": self.reason,
            "checks": [c.as_dict() for c in self.checks],
        }


@dataclass(frozen=True)
class OFDSealVerification:
    """Every seal of one OFD file, in ``Signatures.xml`` order, plus the package-level checks."""

    signatures: tuple[SealSignatureResult, ...]
    checks: tuple[SealCheck, ...]
    unprotected_files: tuple[str, ...]
    verified_at: datetime

    @property
    def ok(self) -> bool:
        """At least one seal, every package check and every check of every seal passed."""
        return bool(self.signatures) and all(c.ok for c in self.checks) and all(s.ok for s in self.signatures)

    def __bool__(self) -> bool:
        return self.ok

    @property
    def intact(self) -> bool:
        """Like ``ok`` but without the certificate chains: nothing was changed since sealing."""
        return (bool(self.signatures) and all(c.ok for c in self.checks)
                and all(s.intact for s in self.signatures))

    @property
    def reason(self) -> str | None:
        """``seal.missing`` without seals; else the first failed package check's, then seal's, reason."""
        first = self.first_failure
        if first is not None:
            return first[1].reason
        return None if self.signatures else REASON_MISSING

    @property
    def first_failure(self) -> tuple[SealSignatureResult | None, SealCheck] | None:
        """The first failed check and the seal it belongs to (None for a package check)."""
        for check in self.checks:
            if not check.ok:
                return None, check
        for sig in self.signatures:
            for check in sig.checks:
                if not check.ok:
                    return sig, check
        return None

    def require_valid(self) -> None:
        """Raise :class:`VerificationError` (reason: the first failure's) unless ``ok``."""
        first = self.first_failure
        if first is None and self.signatures:
            return
        if first is None:
            raise VerificationError("the OFD file carries no electronic seal", reason=REASON_MISSING)
        sig, check = first
        details: dict[str, Any] = {"check": check.name.value}
        if check.target is not None:
            details["file"] = check.target
        where = "the package"
        if sig is not None:
            details["signature"] = sig.signature_path
            where = f"seal {sig.sign_id} ({sig.signature_path})"
        raise VerificationError(f"{where}: {check.detail}", reason=check.reason, details=details)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "intact": self.intact,
            "reason": self.reason,
            "verified_at": self.verified_at.isoformat(),
            "unprotected_files": list(self.unprotected_files),
            "checks": [c.as_dict() for c in self.checks],
            "signatures": [s.as_dict() for s in self.signatures],
        }


__all__ = [
    "REASON_CHAIN",
    "REASON_DIGEST",
    "REASON_EXPIRED",
    "REASON_MALFORMED",
    "REASON_MISSING",
    "REASON_SIGNATURE",
    "REASON_SIGNER",
    "REASON_UNPROTECTED",
    "REASON_UNSUPPORTED",
    "TRUST_CHECKS",
    "CheckName",
    "OFDSealVerification",
    "SealCheck",
    "SealSignatureResult",
    "StampAppearance",
]

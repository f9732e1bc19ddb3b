"""Certificate chain validation for the certledger profile (RFC 5280 §6, narrowed).

:func:`verify_chain` raises :class:`VerificationError` with a stable reason
code or returns a frozen :class:`ChainVerification`. The steps, labelled again
in the code:

1. Inputs: the time is timezone-aware (default: now); there is a trust anchor.
2. The leaf: valid at that time, no critical extension left unprocessed, the
   key usage / role / extended key usage the caller requires.
3. Path building, depth-first from the leaf: a candidate issuer (a trust
   anchor first, else a supplied intermediate) has the exact issuer name, a
   subject key identifier equal to the child's authority key identifier when
   both are present, is valid at the time, is a CA (basicConstraints) with
   keyCertSign, has no unprocessed critical extension, respects its
   pathLenConstraint, and its SM2 key verifies the child's signature (SM3,
   GM/T 0009 default signer ID). The first path that reaches a trust anchor
   wins; if none does, the error from the attempt that got furthest is raised.
4. The trust anchor: valid at the time, a CA, and if it is self-signed its
   own signature must verify too, so a corrupted anchor file is noticed
   rather than trusted.

Names are matched byte for byte on their DER (not with the RFC 5280 §7.1
case-folding rules): every certificate here is issued by this package or by
OpenSSL, both of which copy the issuer's subject bytes, and exact matching
leaves no room for look-alike names.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from signing.errors import CertLedgerError, InvalidInputError, VerificationError
from signing.sm2 import DEFAULT_SIGNER_ID
from signing.sm2.memo import VerifiedSignatures
from signing.x509.model import Certificate, KeyUsage, Role

#: leaf + intermediates + anchor; a province hierarchy is two or three deep
MAX_PATH_LENGTH: Final = 8
#: bound on candidate issuers tried, so a hostile pool cannot make building explode
_MAX_ATTEMPTS: Final = 64


@dataclass(frozen=True)
class ChainVerification:
    """A chain that verified: leaf first, trust anchor last."""

    path: tuple[Certificate, ...]
    at: datetime
    checks: tuple[str, ...]

    @property
    def leaf(self) -> Certificate:
        return self.path[0]

    @property
    def trust_anchor(self) -> Certificate:
        return self.path[-1]

    @property
    def role(self) -> Role | None:
        return self.leaf.role


def _label(cert: Certificate) -> str:
    return cert.subject.rfc4514() or f"serial {cert.serial_number:x}"


def _fail(reason: str, message: str, cert: Certificate) -> VerificationError:
    return VerificationError(
        message,
        reason=reason,
        details={"subject": _label(cert), "serial": f"{cert.serial_number:x}"},
    )


def check_validity(cert: Certificate, at: datetime) -> None:
    """Raise ``cert.not_yet_valid`` / ``cert.expired`` unless ``at`` is in the validity period."""
    if at < cert.not_before:
        raise _fail(
            "cert.not_yet_valid",
            f"certificate {_label(cert)} is not valid before {cert.not_before.isoformat()}",
            cert,
        )
    if at > cert.not_after:
        raise _fail(
            "cert.expired",
            f"certificate {_label(cert)} expired at {cert.not_after.isoformat()}",
            cert,
        )


#: certificate signatures repeat on every file a verifier sees (same agency, same root)
_CERT_SIGNATURES: Final = VerifiedSignatures()


def verify_issued_by(cert: Certificate, issuer: Certificate) -> None:
    """Check that ``issuer`` names and signs ``cert``: the name link and the SM2 signature.

    Raises ``cert.issuer_mismatch`` or ``cert.signature``. This is the one
    place certificate signatures are checked; it uses the GM/T 0009 default
    signer ID, as GM/T 0015 prescribes for certificates.
    """
    if cert.issuer_der != issuer.subject_der:
        raise _fail(
            "cert.issuer_mismatch",
            f"certificate {_label(cert)} names issuer {cert.issuer.rfc4514()}, not {_label(issuer)}",
            cert,
        )
    try:
        _CERT_SIGNATURES.verify(issuer.public_key, cert.signature, cert.tbs_der, signer_id=DEFAULT_SIGNER_ID)
    except CertLedgerError:
        raise _fail(
            "cert.signature",
            f"signature on certificate {_label(cert)} does not verify with the key of {_label(issuer)}",
            cert,
        ) from None


def _check_leaf(
    leaf: Certificate,
    at: datetime,
    required_usage: KeyUsage,
    required_role: Role | None,
    required_extended_usage: str | None,
) -> None:
    check_validity(leaf, at)
    _check_critical(leaf)
    if required_usage:
        if leaf.key_usage is None:
            raise _fail(
                "cert.key_usage",
                f"certificate {_label(leaf)} has no keyUsage extension; {', '.join(required_usage.names)} is required",
                leaf,
            )
        missing = required_usage & ~leaf.key_usage
        if missing:
            raise _fail(
                "cert.key_usage",
                f"certificate {_label(leaf)} does not allow {', '.join(missing.names)}",
                leaf,
            )
    if required_role is not None and leaf.role is not Role(required_role):
        actual = leaf.role.value if leaf.role is not None else "no certledger role"
        raise _fail(
            "cert.role",
            f"certificate {_label(leaf)} is a {actual} certificate, not {Role(required_role).value}",
            leaf,
        )
    if required_extended_usage is not None and required_extended_usage not in leaf.extended_key_usage:
        raise _fail(
            "cert.extended_key_usage",
            f"certificate {_label(leaf)} does not allow extended key usage {required_extended_usage}",
            leaf,
        )


def _check_critical(cert: Certificate) -> None:
    if cert.unhandled_critical_extensions:
        raise _fail(
            "cert.critical_extension",
            f"certificate {_label(cert)} has critical extensions this verifier does not process: "
            f"{', '.join(cert.unhandled_critical_extensions)}",
            cert,
        )


def _check_link(child: Certificate, issuer: Certificate, below: Sequence[Certificate], at: datetime) -> None:
    """Everything step 3 requires of ``issuer`` as the issuer of ``child``."""
    if (
        child.authority_key_id is not None
        and issuer.subject_key_id is not None
        and child.authority_key_id != issuer.subject_key_id
    ):
        raise _fail(
            "cert.issuer_mismatch",
            f"certificate {_label(child)} was issued by a different key than that of "
            f"{_label(issuer)} (authority key identifier differs)",
            child,
        )
    check_validity(issuer, at)
    if not issuer.is_ca:
        raise _fail(
            "cert.not_ca",
            f"certificate {_label(issuer)} is not a CA (basicConstraints) but issued {_label(child)}",
            issuer,
        )
    if issuer.key_usage is None or KeyUsage.KEY_CERT_SIGN not in issuer.key_usage:
        raise _fail(
            "cert.key_usage",
            f"CA certificate {_label(issuer)} does not allow keyCertSign",
            issuer,
        )
    _check_critical(issuer)
    # RFC 5280 §4.2.1.9: non-self-issued intermediates below this CA count against it
    intermediates = sum(1 for c in below if not c.is_self_issued)
    if issuer.path_length is not None and intermediates > issuer.path_length:
        raise _fail(
            "cert.path_length",
            f"CA certificate {_label(issuer)} allows {issuer.path_length} intermediate CA(s) "
            f"below it, the chain has {intermediates}",
            issuer,
        )
    verify_issued_by(child, issuer)


def verify_chain(
    leaf: Certificate,
    intermediates: Iterable[Certificate],
    trust_anchors: Iterable[Certificate],
    *,
    required_usage: KeyUsage,
    at: datetime | None = None,
    required_role: Role | None = None,
    required_extended_usage: str | None = None,
) -> ChainVerification:
    """Validate ``leaf`` up to one of ``trust_anchors`` at time ``at`` (default: now).

    ``required_usage`` names the key usage bits the leaf must allow (pass
    ``KeyUsage(0)`` to require none; the argument has no default so that a
    caller states what the key is used for). ``intermediates`` are untrusted
    helpers for path building. Raises :class:`VerificationError` with reason
    ``cert.expired``, ``cert.not_yet_valid``, ``cert.signature``,
    ``cert.issuer_mismatch``, ``cert.not_ca``, ``cert.key_usage``,
    ``cert.role``, ``cert.extended_key_usage``, ``cert.path_length``,
    ``cert.critical_extension`` or ``cert.untrusted``.
    """
    # 1. inputs
    anchors = list(trust_anchors)
    pool = anchors + [c for c in intermediates if c not in anchors]
    if not anchors:
        raise InvalidInputError("no trust anchor given", reason="cert.no_trust_anchor")
    when = datetime.now(UTC) if at is None else at
    if when.tzinfo is None or when.utcoffset() is None:
        raise InvalidInputError("verification time must be timezone-aware", reason="cert.time")
    when = when.astimezone(UTC)

    # 2. the leaf
    _check_leaf(leaf, when, required_usage, required_role, required_extended_usage)

    # 3. path building
    failures: list[tuple[int, VerificationError]] = []
    attempts = [0]

    def extend(path: list[Certificate]) -> list[Certificate] | None:
        current = path[-1]
        if current in anchors:
            return path
        candidates = [c for c in pool if c.subject_der == current.issuer_der and c not in path]
        if not candidates or len(path) >= MAX_PATH_LENGTH:
            why = (
                "is not a trust anchor and was not supplied"
                if not candidates
                else f"is not reached within {MAX_PATH_LENGTH} certificates"
            )
            message = f"no trust anchor for {_label(current)}: its issuer {current.issuer.rfc4514()}"
            failures.append((len(path), _fail("cert.untrusted", f"{message} {why}", current)))
            return None
        for candidate in candidates:
            attempts[0] += 1
            if attempts[0] > _MAX_ATTEMPTS:
                break
            try:
                _check_link(current, candidate, path[1:], when)
            except VerificationError as exc:
                failures.append((len(path), exc))
                continue
            found = extend([*path, candidate])
            if found is not None:
                return found
        return None

    path = extend([leaf])
    if path is None:
        # the attempt that got furthest says most about what is wrong
        raise max(failures, key=lambda f: f[0])[1]

    # 4. the trust anchor
    anchor = path[-1]
    check_validity(anchor, when)
    _check_critical(anchor)
    if not anchor.is_ca:
        # an end-entity certificate configured as "trusted" would vouch for itself
        raise _fail(
            "cert.not_ca",
            f"trust anchor {_label(anchor)} is not a CA certificate",
            anchor,
        )
    if anchor.is_self_issued and (anchor.authority_key_id is None or anchor.authority_key_id == anchor.subject_key_id):
        verify_issued_by(anchor, anchor)

    checks = (
        "validity",
        "critical_extensions",
        *(("key_usage",) if required_usage else ()),
        *(("role",) if required_role is not None else ()),
        *(("extended_key_usage",) if required_extended_usage is not None else ()),
        "issuer_name",
        "key_identifiers",
        "basic_constraints",
        "path_length",
        "signatures",
        "trust_anchor",
    )
    return ChainVerification(path=tuple(path), at=when, checks=checks)

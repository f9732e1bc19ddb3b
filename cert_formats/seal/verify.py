"""Verifying the electronic seals of an OFD file (GB/T 38540-2020 V4 on GB/T 33190 §18).

The file comes from outside. The steps, labelled again in the code:

1. the container: :func:`cert_formats.ofd.read_zip` under the zip limits. No
   page is parsed: a seal is about bytes, and a tampered page must be reported
   as a digest mismatch naming the file, not as an unreadable document;
2. ``OFD.xml``: the document root and the ``Signatures`` pointer (none: the
   file has no seal, ``seal.missing``);
3. ``Signatures.xml``: the list of seals, at most ``max_signatures``;
4. for each seal, in list order (what GB/T 38540 asks a verifier to check):

   a. ``Signature.xml`` parses; it names SM2-with-SM3 and SM3;
   b. every ``Reference``: SM3 of the file equals its ``CheckValue``;
   c. ``SignedValue.dat`` parses as a V4 ``SES_Signature`` (strict DER);
   d. ``TBS_Sign.dataHash`` = SM3(Signature.xml) and ``propertyInfo`` names it;
   e. the signer's SM2 signature over the exact ``TBS_Sign`` bytes verifies with
      the certificate in ``SES_Signature.cert`` (GM/T 0009 default signer ID);
   f. the seal lists that certificate (certListType 1) or its SM3 digest (2);
   g. the signer's certificate chains to a trust anchor at the verification
      time (:func:`signing.x509.verify_chain`; digitalSignature, agency role);
   h. the claimed signing time lies in the signer certificate's validity and
      not after the verification time;
   i. the seal maker's SM2 signature over the exact ``SES_SealInfo`` verifies;
   j. the maker's certificate chains to a trust anchor at the verification time;
   k. the seal is valid at the signing time and at the verification time;

5. coverage: every file of the package is protected by some seal's
   references, except the signature list and each seal's own Signature.xml and
   SignedValue.dat (bound by dataHash and by the signature itself).

The verification time is ``at`` (default: now). Without a trusted timestamp the
signing time is only what the signer claims, so trust (chains, seal validity)
is judged at ``at``; a caller that knows when the file was sealed from a trusted
source (the ledger entry recording it) passes that time.

:func:`inspect_ofd_seals` returns a frozen :class:`OFDSealVerification`;
:func:`verify_ofd_seals` raises :class:`VerificationError` unless every check passes.
"""

from __future__ import annotations

import hmac
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

from cert_formats.ofd import Deadline, ReadLimits, read_zip, resolve_loc
from signing import sm3
from signing.errors import CertLedgerError, InvalidInputError, VerificationError
from signing.sm2 import DEFAULT_SIGNER_ID
from signing.sm2.memo import VerifiedSignatures
from signing.x509 import Certificate, KeyUsage, Role, load_certificate, verify_chain

from . import ofdsig
from .result import (
    REASON_CHAIN,
    REASON_DIGEST,
    REASON_EXPIRED,
    REASON_MALFORMED,
    REASON_MISSING,
    REASON_SIGNATURE,
    REASON_SIGNER,
    REASON_UNPROTECTED,
    REASON_UNSUPPORTED,
    CheckName,
    OFDSealVerification,
    SealCheck,
    SealSignatureResult,
    StampAppearance,
)
from .ses import SM2_WITH_SM3, SM3, ElectronicSeal, SealSignature, SesLimits, parse_seal_signature

#: how far a claimed signing time may lie ahead of the verification time (clock skew)
CLOCK_SKEW: Final = timedelta(minutes=5)
#: CertDigestObj.type values understood as SM3
_SM3_DIGEST_TYPES: Final = frozenset({"sm3", SM3})
_LISTED_FILES: Final = 8
#: a seal's maker signature is the same on every file sealed with it
_SEAL_SIGNATURES: Final = VerifiedSignatures()


@dataclass(frozen=True)
class SealVerifyLimits:
    """What :func:`inspect_ofd_seals` accepts, with its defaults."""

    #: the zip container and every XML part
    read: ReadLimits = field(default_factory=ReadLimits)
    #: each SignedValue.dat
    ses: SesLimits = field(default_factory=SesLimits)
    #: seals listed in Signatures.xml
    max_signatures: int = 16
    #: references in one Signature.xml
    max_references: int = 4096
    #: wall-clock seconds for one whole verification
    max_seconds: float = 20.0

    def __post_init__(self) -> None:
        if self.max_signatures <= 0 or self.max_references <= 0:
            raise ValueError("SealVerifyLimits counts must be positive")
        if not self.max_seconds > 0:
            raise ValueError("SealVerifyLimits.max_seconds must be positive")


@dataclass(frozen=True)
class _Context:
    parts: dict[str, bytes]
    pages: tuple[str, ...]
    trust_anchors: tuple[Certificate, ...]
    maker_trust_anchors: tuple[Certificate, ...]
    intermediates: tuple[Certificate, ...]
    signer_role: Role | None
    when: datetime
    limits: SealVerifyLimits
    deadline: Deadline
    #: SM3 of each part, computed once however many seals reference it
    digests: dict[str, bytes] = field(default_factory=dict)

    def sm3_of(self, path: str) -> bytes | None:
        data = self.parts.get(path)
        if data is None:
            return None
        digest = self.digests.get(path)
        if digest is None:
            digest = self.digests[path] = sm3.sm3(data)
        return digest


class _Checks:
    """The checks of one seal as they are made."""

    def __init__(self) -> None:
        self.items: list[SealCheck] = []

    def passed(self, name: CheckName, detail: str, target: str | None = None) -> None:
        self.items.append(SealCheck(name, True, None, detail, target))

    def failed(self, name: CheckName, reason: str, detail: str, target: str | None = None) -> None:
        self.items.append(SealCheck(name, False, reason, detail, target))


@dataclass
class _Found:
    """What one seal's files yielded, for the result and for the coverage step."""

    signature_file: ofdsig.SignatureFile | None = None
    signed: SealSignature | None = None
    signer: Certificate | None = None
    maker: Certificate | None = None
    stamps: tuple[StampAppearance, ...] = ()


def _error_text(exc: CertLedgerError) -> str:
    return f"{exc} [{exc.reason}]"


def _check_references(ctx: _Context, sigfile: ofdsig.SignatureFile, checks: _Checks) -> None:
    """Step 4b."""
    for ref in sigfile.references:
        ctx.deadline.check()
        actual = ctx.sm3_of(ref.path)
        if actual is None:
            checks.failed(CheckName.REFERENCE, REASON_DIGEST, f"protected file {ref.path} is missing", ref.path)
            continue
        if hmac.compare_digest(actual, ref.check_value):
            checks.passed(CheckName.REFERENCE, f"SM3 of {ref.path} matches", ref.path)
        else:
            checks.failed(CheckName.REFERENCE, REASON_DIGEST,
                          f"{ref.path} was changed: its SM3 is {actual.hex()}, the seal recorded "
                          f"{ref.check_value.hex()}", ref.path)


def _signer_listed(seal: ElectronicSeal, signer: Certificate) -> bool:
    info = seal.info
    if signer.der in info.signer_certificates:
        return True
    digest = sm3.sm3(signer.der)
    return any(d.hash_type.strip().lower() in _SM3_DIGEST_TYPES and hmac.compare_digest(d.value, digest)
               for d in info.signer_cert_digests)


def _chain(ctx: _Context, checks: _Checks, name: CheckName, cert: Certificate,
           anchors: tuple[Certificate, ...], role: Role | None, who: str) -> None:
    if not anchors:
        checks.failed(name, REASON_CHAIN, f"no trust anchor was given for the {who}'s certificate")
        return
    try:
        chain = verify_chain(cert, ctx.intermediates, anchors, required_usage=KeyUsage.DIGITAL_SIGNATURE,
                             required_role=role, at=ctx.when)
    except CertLedgerError as exc:
        checks.failed(name, REASON_CHAIN, f"the {who}'s certificate {cert.subject.rfc4514()}: {_error_text(exc)}")
        return
    checks.passed(name, f"the {who}'s certificate {cert.subject.rfc4514()} chains to "
                        f"{chain.trust_anchor.subject.rfc4514()} at {ctx.when.isoformat()}")


def _check_signed_value(ctx: _Context, entry: ofdsig.SignatureListEntry, signature_xml: bytes,
                        sigfile: ofdsig.SignatureFile, checks: _Checks, found: _Found) -> None:
    """Steps 4c-4k, on a SignedValue.dat that exists."""
    # c. SignedValue.dat
    raw = ctx.parts[sigfile.signed_value_path]
    try:
        signed = parse_seal_signature(raw, limits=ctx.limits.ses)
    except InvalidInputError as exc:
        reason = REASON_UNSUPPORTED if exc.reason == REASON_UNSUPPORTED else REASON_MALFORMED
        checks.failed(CheckName.SIGNED_VALUE, reason, f"{sigfile.signed_value_path}: {_error_text(exc)}",
                      sigfile.signed_value_path)
        return
    found.signed = signed
    tbs, seal = signed.to_sign, signed.to_sign.seal
    critical = [e.extn_id for e in (*tbs.extensions, *seal.info.extensions) if e.critical]
    if critical:
        checks.failed(CheckName.SIGNED_VALUE, REASON_UNSUPPORTED,
                      f"critical extension(s) not understood: {', '.join(critical)}", sigfile.signed_value_path)
    else:
        checks.passed(CheckName.SIGNED_VALUE, f"SES_Signature V{tbs.version} with seal {seal.info.name!r} "
                                              f"(esID {seal.info.es_id})", sigfile.signed_value_path)
    if sigfile.seal_path is not None:
        copy = ctx.parts.get(sigfile.seal_path)
        if copy is None:
            checks.failed(CheckName.SEAL_FILE, REASON_MISSING, f"{sigfile.seal_path} is missing", sigfile.seal_path)
        elif not hmac.compare_digest(copy, seal.der):
            checks.failed(CheckName.SEAL_FILE, REASON_MALFORMED,
                          f"{sigfile.seal_path} is not the seal inside {sigfile.signed_value_path}", sigfile.seal_path)
        else:
            checks.passed(CheckName.SEAL_FILE, f"{sigfile.seal_path} is the seal that signed", sigfile.seal_path)

    # d. dataHash and propertyInfo bind this signed value to this Signature.xml
    actual = sm3.sm3(signature_xml)
    try:
        named = resolve_loc(tbs.property_info, "", "", part=sigfile.signed_value_path)
    except InvalidInputError:
        named = None
    if not hmac.compare_digest(actual, tbs.data_hash):
        checks.failed(CheckName.DATA_HASH, REASON_DIGEST,
                      f"{entry.path} was changed: its SM3 is {actual.hex()}, TBS_Sign.dataHash is "
                      f"{tbs.data_hash.hex()}", entry.path)
    elif named != entry.path:
        checks.failed(CheckName.DATA_HASH, REASON_DIGEST,
                      f"TBS_Sign.propertyInfo names {tbs.property_info[:200]!r}, not {entry.path}", entry.path)
    else:
        checks.passed(CheckName.DATA_HASH, f"TBS_Sign.dataHash is SM3 of {entry.path}", entry.path)

    # e. the signer's signature
    if signed.algorithm != SM2_WITH_SM3:
        checks.failed(CheckName.SIGNATURE, REASON_UNSUPPORTED, f"signature algorithm {signed.algorithm} is not SM2")
    else:
        try:
            found.signer = load_certificate(signed.signer_certificate)
        except InvalidInputError as exc:
            checks.failed(CheckName.SIGNATURE, REASON_MALFORMED, f"the signer certificate: {_error_text(exc)}")
        else:
            try:
                found.signer.public_key.verify(signed.signature, tbs.der, signer_id=DEFAULT_SIGNER_ID)
            except (VerificationError, InvalidInputError) as exc:
                checks.failed(CheckName.SIGNATURE, REASON_SIGNATURE,
                              f"the SM2 signature over TBS_Sign does not verify with the key of "
                              f"{found.signer.subject.rfc4514()}: {_error_text(exc)}")
            else:
                checks.passed(CheckName.SIGNATURE,
                              f"SM2 signature by {found.signer.subject.rfc4514()} over TBS_Sign verifies")
    signer = found.signer
    if signer is not None:
        # f. the seal lists the signer
        if _signer_listed(seal, signer):
            checks.passed(CheckName.SIGNER_IN_SEAL, f"the seal lists {signer.subject.rfc4514()}")
        else:
            checks.failed(CheckName.SIGNER_IN_SEAL, REASON_SIGNER,
                          f"the seal {seal.info.name!r} does not list the signer {signer.subject.rfc4514()}")
        # g. the signer's chain
        _chain(ctx, checks, CheckName.SIGNER_CHAIN, signer, ctx.trust_anchors, ctx.signer_role, "signer")
        # h. the signing time
        if not signer.validity.contains(tbs.signed_at):
            checks.failed(CheckName.SIGNING_TIME, REASON_EXPIRED,
                          f"signed at {tbs.signed_at.isoformat()}, outside the signer certificate's validity "
                          f"{signer.not_before.isoformat()} .. {signer.not_after.isoformat()}")
        elif tbs.signed_at > ctx.when + CLOCK_SKEW:
            checks.failed(CheckName.SIGNING_TIME, REASON_EXPIRED,
                          f"claims to be signed at {tbs.signed_at.isoformat()}, after the verification time "
                          f"{ctx.when.isoformat()}")
        else:
            checks.passed(CheckName.SIGNING_TIME, f"signed at {tbs.signed_at.isoformat()} (claimed), within "
                                                  "the signer certificate's validity")

    # i. the seal maker's signature
    if seal.algorithm != SM2_WITH_SM3:
        checks.failed(CheckName.SEAL_SIGNATURE, REASON_UNSUPPORTED, f"the seal is signed with {seal.algorithm}")
    else:
        try:
            found.maker = load_certificate(seal.maker_certificate)
        except InvalidInputError as exc:
            checks.failed(CheckName.SEAL_SIGNATURE, REASON_MALFORMED, f"the seal maker certificate: {_error_text(exc)}")
        else:
            try:
                _SEAL_SIGNATURES.verify(found.maker.public_key, seal.signature, seal.info_der,
                                        signer_id=DEFAULT_SIGNER_ID)
            except (VerificationError, InvalidInputError) as exc:
                checks.failed(CheckName.SEAL_SIGNATURE, REASON_SIGNATURE,
                              f"the seal maker's SM2 signature over SES_SealInfo does not verify: {_error_text(exc)}")
            else:
                checks.passed(CheckName.SEAL_SIGNATURE,
                              f"the seal was made by {found.maker.subject.rfc4514()}")
    # j. the maker's chain
    if found.maker is not None:
        _chain(ctx, checks, CheckName.MAKER_CHAIN, found.maker, ctx.maker_trust_anchors, None, "seal maker")

    # k. the seal's validity
    info = seal.info
    problems: list[str] = []
    if not info.valid_at(tbs.signed_at):
        problems.append(f"it was not valid at the signing time {tbs.signed_at.isoformat()}")
    if not info.valid_at(ctx.when):
        problems.append(f"it is not valid at the verification time {ctx.when.isoformat()}")
    if info.created > tbs.signed_at + CLOCK_SKEW:
        problems.append(f"it was made at {info.created.isoformat()}, after it was used")
    span = f"{info.valid_start.isoformat()} .. {info.valid_end.isoformat()}"
    if problems:
        checks.failed(CheckName.SEAL_VALIDITY, REASON_EXPIRED, f"the seal is valid {span}: {'; '.join(problems)}")
    else:
        checks.passed(CheckName.SEAL_VALIDITY, f"the seal is valid {span}")


def _verify_one(ctx: _Context, entry: ofdsig.SignatureListEntry) -> tuple[SealSignatureResult, _Found]:
    """Step 4 for one Signatures.xml entry."""
    checks = _Checks()
    found = _Found()
    # a. Signature.xml
    signature_xml = ctx.parts.get(entry.path)
    if entry.sign_type != ofdsig.TYPE_SEAL:
        checks.failed(CheckName.SIGNATURE_FILE, REASON_UNSUPPORTED,
                      f"signature type {entry.sign_type[:16]!r} is not an electronic seal", entry.path)
    elif signature_xml is None:
        checks.failed(CheckName.SIGNATURE_FILE, REASON_MISSING, f"{entry.path} is missing", entry.path)
    else:
        try:
            sigfile = ofdsig.read_signature_file(signature_xml, entry.path,
                                                 max_references=ctx.limits.max_references,
                                                 limits=ctx.limits.read.xml, deadline=ctx.deadline)
        except InvalidInputError as exc:
            if exc.reason == "ofd.timeout":
                raise
            checks.failed(CheckName.SIGNATURE_FILE, REASON_MALFORMED, _error_text(exc), entry.path)
        else:
            found.signature_file = sigfile
            found.stamps = tuple(
                StampAppearance(page_index=ctx.pages.index(s.page_ref) if s.page_ref in ctx.pages else None,
                                page_ref=s.page_ref, boundary=s.boundary) for s in sigfile.stamps)
            if not ofdsig.is_sm3(sigfile.check_method):
                checks.failed(CheckName.SIGNATURE_FILE, REASON_UNSUPPORTED,
                              f"CheckMethod {sigfile.check_method!r} is not SM3", entry.path)
            elif not ofdsig.is_sm2_with_sm3(sigfile.signature_method):
                checks.failed(CheckName.SIGNATURE_FILE, REASON_UNSUPPORTED,
                              f"SignatureMethod {sigfile.signature_method!r} is not SM2-with-SM3", entry.path)
            else:
                checks.passed(CheckName.SIGNATURE_FILE,
                              f"{len(sigfile.references)} protected files, provider {sigfile.provider.name!r}",
                              entry.path)
            # b. the references
            _check_references(ctx, sigfile, checks)
            # c.-k.
            if sigfile.signed_value_path not in ctx.parts:
                checks.failed(CheckName.SIGNED_VALUE, REASON_MISSING, f"{sigfile.signed_value_path} is missing",
                              sigfile.signed_value_path)
            else:
                _check_signed_value(ctx, entry, signature_xml, sigfile, checks, found)
    signed = found.signed
    seal_info = signed.to_sign.seal.info if signed is not None else None
    result = SealSignatureResult(
        sign_id=entry.sign_id,
        signature_path=entry.path,
        seal_name=None if seal_info is None else seal_info.name,
        es_id=None if seal_info is None else seal_info.es_id,
        signer_subject=None if found.signer is None else found.signer.subject.rfc4514(),
        maker_subject=None if found.maker is None else found.maker.subject.rfc4514(),
        signed_at=None if signed is None else signed.to_sign.signed_at,
        protected_files=() if found.signature_file is None else tuple(r.path for r in found.signature_file.references),
        stamps=found.stamps,
        timestamp_present=signed is not None and signed.timestamp is not None,
        checks=tuple(checks.items),
    )
    return result, found


def _coverage(parts: dict[str, bytes], signatures_path: str, entries: Sequence[ofdsig.SignatureListEntry],
              found: Sequence[_Found], allowed: Collection[str] = ()) -> tuple[SealCheck, tuple[str, ...]]:
    """Step 5."""
    exempt = {signatures_path, *(e.path for e in entries), *allowed}
    covered: set[str] = set()
    for item in found:
        if item.signature_file is not None:
            exempt.add(item.signature_file.signed_value_path)
            covered.update(r.path for r in item.signature_file.references)
    unprotected = tuple(sorted(p for p in parts if p not in exempt and p not in covered))
    if unprotected:
        shown = ", ".join(unprotected[:_LISTED_FILES]) + (" ..." if len(unprotected) > _LISTED_FILES else "")
        return SealCheck(CheckName.COVERAGE, False, REASON_UNPROTECTED,
                         f"{len(unprotected)} file(s) no seal protects: {shown}",
                         unprotected[0]), unprotected
    return SealCheck(CheckName.COVERAGE, True, None, f"every one of the {len(parts)} files is protected"), ()


def inspect_ofd_seals(
    data: bytes,
    trust_anchors: Sequence[Certificate],
    *,
    intermediates: Sequence[Certificate] = (),
    maker_trust_anchors: Sequence[Certificate] | None = None,
    at: datetime | None = None,
    signer_role: Role | None = Role.AGENCY,
    limits: SealVerifyLimits | None = None,
    exempt: Collection[str] = (),
) -> OFDSealVerification:
    """Check every seal of an OFD file; never returns a bool, never trusts the file.

    ``exempt`` lists package paths allowed to be outside every seal (the
    caller's own self-authenticating content, e.g. certledger's proof bundle);
    any other unprotected file fails the coverage check.

    ``trust_anchors`` are the province root (or CA) certificates the signers'
    certificates must chain to; ``maker_trust_anchors`` those of the seal
    makers (default: the same). ``intermediates`` help build either path.
    ``at`` is the verification time (default: now); ``signer_role`` the
    certledger role the signer's certificate must have (None: any with
    digitalSignature).

    Raises :class:`InvalidInputError` only when no verdict is possible: the
    container is not a readable zip (``ofd.*`` reasons of
    :func:`cert_formats.ofd.read_zip`), ``OFD.xml`` is missing or unreadable
    (``ofd.missing_part`` / ``seal.malformed``), or the time budget ran out
    (``ofd.timeout``). Everything else is a check in the result.
    """
    limits = limits or SealVerifyLimits()
    if not isinstance(data, bytes | bytearray | memoryview):
        raise InvalidInputError("the OFD file must be given as bytes", reason="ofd.not_zip")
    deadline = Deadline(limits.max_seconds)
    # 1. the container
    parts = read_zip(bytes(data), limits.read.zip, deadline)
    return inspect_ofd_package(parts, trust_anchors, intermediates=intermediates,
                               maker_trust_anchors=maker_trust_anchors, at=at, signer_role=signer_role,
                               limits=limits, exempt=exempt, deadline=deadline)


def inspect_ofd_package(
    parts: dict[str, bytes],
    trust_anchors: Sequence[Certificate],
    *,
    intermediates: Sequence[Certificate] = (),
    maker_trust_anchors: Sequence[Certificate] | None = None,
    at: datetime | None = None,
    signer_role: Role | None = Role.AGENCY,
    limits: SealVerifyLimits | None = None,
    exempt: Collection[str] = (),
    deadline: Deadline | None = None,
    digests: dict[str, bytes] | None = None,
) -> OFDSealVerification:
    """:func:`inspect_ofd_seals` from step 2 on, for a package already read by
    :func:`cert_formats.ofd.read_zip` (a caller that also reads the package's metadata
    unzips it once). ``digests`` (path -> SM3), if given, is filled with the SM3 of every
    part the seals reference, so the caller need not hash them again.
    """
    limits = limits or SealVerifyLimits()
    if at is not None and (at.tzinfo is None or at.utcoffset() is None):
        raise InvalidInputError("the verification time must be timezone-aware", reason="seal.time")
    when = datetime.now(UTC) if at is None else at.astimezone(UTC)
    deadline = deadline or Deadline(limits.max_seconds)

    # 2. OFD.xml
    ofd_xml = parts.get("OFD.xml")
    if ofd_xml is None:
        raise InvalidInputError("the package has no OFD.xml", reason="ofd.missing_part")
    doc_root, signatures_path = ofdsig.doc_body_locations(ofd_xml, limits=limits.read.xml, deadline=deadline)
    if signatures_path is None:
        return OFDSealVerification(signatures=(), checks=(), unprotected_files=tuple(sorted(parts)),
                                   verified_at=when)
    try:
        pages = ofdsig.page_ids(parts, doc_root, limits=limits.read.xml, deadline=deadline)
    except InvalidInputError as exc:
        if exc.reason == "ofd.timeout":
            raise
        pages = ()  # a broken Document.xml is reported by the digests; stamps then name no page

    # 3. Signatures.xml
    listed = parts.get(signatures_path)
    if listed is None:
        check = SealCheck(CheckName.SIGNATURE_LIST, False, REASON_MISSING,
                          f"OFD.xml names the signature list {signatures_path}, which is missing", signatures_path)
        return OFDSealVerification(signatures=(), checks=(check,), unprotected_files=(), verified_at=when)
    try:
        signature_list = ofdsig.read_signature_list(listed, signatures_path, max_signatures=limits.max_signatures,
                                                    limits=limits.read.xml, deadline=deadline)
    except InvalidInputError as exc:
        if exc.reason == "ofd.timeout":
            raise
        check = SealCheck(CheckName.SIGNATURE_LIST, False, REASON_MALFORMED, _error_text(exc), signatures_path)
        return OFDSealVerification(signatures=(), checks=(check,), unprotected_files=(), verified_at=when)
    if not signature_list.entries:
        return OFDSealVerification(signatures=(), checks=(), unprotected_files=tuple(sorted(parts)),
                                   verified_at=when)

    # 4. every seal
    anchors = tuple(trust_anchors)
    ctx = _Context(parts=parts, pages=pages, trust_anchors=anchors,
                   maker_trust_anchors=anchors if maker_trust_anchors is None else tuple(maker_trust_anchors),
                   intermediates=tuple(intermediates), signer_role=signer_role, when=when, limits=limits,
                   deadline=deadline, digests={} if digests is None else digests)
    results: list[SealSignatureResult] = []
    found: list[_Found] = []
    for entry in signature_list.entries:
        deadline.check()
        result, item = _verify_one(ctx, entry)
        results.append(result)
        found.append(item)

    # 5. coverage
    listed_check = SealCheck(CheckName.SIGNATURE_LIST, True, None,
                             f"{len(signature_list.entries)} seal(s) listed in {signatures_path}", signatures_path)
    coverage, unprotected = _coverage(parts, signatures_path, signature_list.entries, found, exempt)
    return OFDSealVerification(signatures=tuple(results), checks=(listed_check, coverage),
                               unprotected_files=unprotected, verified_at=when)


def verify_ofd_seals(
    data: bytes,
    trust_anchors: Sequence[Certificate],
    *,
    intermediates: Sequence[Certificate] = (),
    maker_trust_anchors: Sequence[Certificate] | None = None,
    at: datetime | None = None,
    signer_role: Role | None = Role.AGENCY,
    limits: SealVerifyLimits | None = None,
) -> OFDSealVerification:
    """:func:`inspect_ofd_seals`, then raise :class:`VerificationError` unless every check passed.

    The error's reason is the first failure's (``seal.missing`` for a file
    without seals); its details name the check, the seal and the file.
    """
    result = inspect_ofd_seals(data, trust_anchors, intermediates=intermediates,
                               maker_trust_anchors=maker_trust_anchors, at=at, signer_role=signer_role,
                               limits=limits)
    result.require_valid()
    return result


__all__ = ["CLOCK_SKEW", "SealVerifyLimits", "inspect_ofd_seals", "verify_ofd_seals"]

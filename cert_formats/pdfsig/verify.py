"""Verifying every signature of a licence PDF: SM2/SM3 by this package, others by pyHanko.

The PDF comes from outside. The steps, labelled again in the code:

1. Limits: size, ``%PDF-`` header, then (after pyHanko has read the xref
   sections) revisions, objects and signature fields are counted against
   :class:`PdfLimits`; any parse failure is ``pdf.malformed``; the whole run
   has a wall-clock budget (``pdf.timeout``).
2. For each signed field, in revision order:

   a. structure: the signature dictionary and the CMS in ``/Contents`` parse
      (a broken one is reported for that field, the others are still checked);
   b. byte range: ``/ByteRange`` is ``[0 a b c]``, the gap ``[a, b)`` is
      exactly the ``<hex>`` string of this ``/Contents``, and the range covers
      the entire file (the last signature) or an entire revision up to its
      ``%%EOF`` (earlier ones);
   c. modifications: revisions after the signed one only add signatures or
      fill form fields (pyHanko's difference analysis);
   d. SM2/SM3 (GB/T 35275): SM3 over the byte range equals messageDigest; the
      SM2 signature (default signer ID) over the DER ``SET OF`` signed
      attributes verifies with the embedded agency certificate, which the
      signing-certificate-v2 attribute names; the certificate chains to one
      of ``trust_anchors_sm2`` (:func:`signing.x509.verify_chain`, agency
      role, digitalSignature);
   e. any other algorithm (ECDSA P-256 in practice): pyHanko's validation
      with ``trust_anchors_ecdsa`` as the only roots and no network access.

The result is a frozen :class:`PdfVerification`; ``require_valid`` raises.
"""

from __future__ import annotations

import hmac
import io
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.diff_analysis import DEFAULT_DIFF_POLICY, ModificationLevel, SuspiciousModification
from pyhanko.sign.fields import enumerate_sig_fields
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature
from pyhanko.sign.validation.status import SignatureCoverageLevel
from pyhanko_certvalidator import ValidationContext

from cert_formats.pdfsig import cms_sm2, fast_hex, oids
from cert_formats.pdfsig.limits import PDF_PARSE_ERRORS, Deadline, PdfLimits
from cert_formats.pdfsig.result import (
    ALGORITHM_SM2,
    ALGORITHM_UNKNOWN,
    REASON_BYTE_RANGE,
    REASON_CHAIN,
    REASON_DIGEST,
    REASON_MALFORMED,
    REASON_MODIFIED,
    REASON_SIGNATURE,
    REASON_UNSUPPORTED,
    CheckName,
    Coverage,
    PdfSignatureResult,
    PdfVerification,
    SignatureCheck,
)
from signing import sm3
from signing.errors import CertLedgerError, InvalidInputError, VerificationError
from signing.x509 import Certificate, KeyUsage, Role, verify_chain

_HEADER_WINDOW: Final = 1024
_HEX_RE: Final = re.compile(rb"[0-9A-Fa-f]*")
#: AcroForm field tree depth (fields are nested by /Kids; real forms are a few levels deep)
_MAX_FIELD_DEPTH: Final = 32
_CHECK_ORDER: Final = {name: index for index, name in enumerate(CheckName)}
#: the most a later revision may change without invalidating an earlier signature
_ALLOWED_LEVEL: Final = ModificationLevel.FORM_FILLING
_COVERAGE: Final = {
    SignatureCoverageLevel.ENTIRE_FILE: Coverage.ENTIRE_FILE,
    SignatureCoverageLevel.ENTIRE_REVISION: Coverage.ENTIRE_REVISION,
    SignatureCoverageLevel.CONTIGUOUS_BLOCK_FROM_START: Coverage.PARTIAL,
    SignatureCoverageLevel.UNCLEAR: Coverage.UNCLEAR,
}
_ALGORITHM_NAMES: Final = {
    "1.2.840.10045.4.3.2": "ecdsa-sha256",
    "1.2.840.10045.4.3.3": "ecdsa-sha384",
    "1.2.840.10045.4.3.4": "ecdsa-sha512",
    "1.2.840.10045.2.1": "ecdsa",
    "1.2.840.113549.1.1.11": "rsa-sha256",
    "1.2.840.113549.1.1.1": "rsa",
    "1.2.840.113549.1.1.10": "rsa-pss",
    "1.3.101.112": "ed25519",
}


def _malformed(message: str) -> InvalidInputError:
    return InvalidInputError(message, reason=REASON_MALFORMED)


def _passed(name: CheckName, detail: str) -> SignatureCheck:
    return SignatureCheck(name=name, ok=True, reason=None, detail=detail)


def _failed(name: CheckName, reason: str, detail: str) -> SignatureCheck:
    return SignatureCheck(name=name, ok=False, reason=reason, detail=detail)


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0]


# -- 1. the file ----------------------------------------------------------------------


def _open_reader(data: bytes, limits: PdfLimits) -> Any:
    if len(data) > limits.max_bytes:
        raise _malformed(f"the PDF is larger than {limits.max_bytes} bytes")
    if b"%PDF-" not in data[:_HEADER_WINDOW]:
        raise _malformed("not a PDF file (no %PDF- header)")
    try:
        reader = PdfFileReader(io.BytesIO(data), strict=True, decode_limits=limits.decode_limits())
        revisions = reader.xrefs.total_revisions
        size = int(reader.trailer_view["/Size"])
        encrypted = reader.encrypted
    except PDF_PARSE_ERRORS as exc:
        raise _malformed(f"cannot parse the PDF: {_first_line(exc)}") from None
    if encrypted:
        raise _malformed("encrypted PDFs are not verified here")
    if revisions > limits.max_revisions:
        raise _malformed(f"the PDF has {revisions} revisions; at most {limits.max_revisions} are read")
    if not 0 < size <= limits.max_objects:
        raise _malformed(f"the PDF declares {size} objects; at most {limits.max_objects} are read")
    return reader


def _check_field_tree(reader: Any, limits: PdfLimits) -> None:
    """The AcroForm field tree is a tree of at most ``max_fields`` fields, before pyHanko walks it.

    pyHanko guards against a field that is its own ancestor, not against one reached twice:
    a few KiB of ``/Kids`` that list the next level twice make a 40-level "tree" of 2^40
    fields, and the walk cannot be interrupted by the time budget.
    """
    try:
        acro = reader.root.get("/AcroForm")
        if acro is None:
            return
        fields = acro.get_object().get("/Fields")
        if fields is None:
            return
        seen: set[tuple[int, int]] = set()
        stack: list[tuple[Any, int]] = [(kid, 1) for kid in fields.get_object()]
        count = 0
        while stack:
            ref, depth = stack.pop()
            if isinstance(ref, generic.IndirectObject):
                key = (ref.idnum, ref.generation)
                if key in seen:
                    raise _malformed("the form field tree reaches one field twice")
                seen.add(key)
            count += 1
            if count > limits.max_fields:
                raise _malformed(f"the PDF has more than {limits.max_fields} form fields")
            if depth > _MAX_FIELD_DEPTH:
                raise _malformed(f"the form field tree is deeper than {_MAX_FIELD_DEPTH} levels")
            node = ref.get_object()
            kids = node.get("/Kids") if isinstance(node, generic.DictionaryObject) else None
            if kids is not None:
                stack.extend((kid, depth + 1) for kid in kids.get_object())
    except InvalidInputError:
        raise
    except PDF_PARSE_ERRORS as exc:
        raise _malformed(f"cannot read the PDF's form fields: {_first_line(exc)}") from None


def _signed_fields(reader: Any, limits: PdfLimits) -> list[tuple[str, Any]]:
    _check_field_tree(reader, limits)
    try:
        found = [(name, ref) for name, value, ref in enumerate_sig_fields(reader, filled_status=True)]
    except PDF_PARSE_ERRORS as exc:
        raise _malformed(f"cannot read the PDF's signature fields: {_first_line(exc)}") from None
    if len(found) > limits.max_signatures:
        raise _malformed(f"the PDF has more than {limits.max_signatures} signatures")
    return found


# -- 2b/2c. byte range and modifications ----------------------------------------------


def _byte_range(embedded: Any) -> tuple[int, ...]:
    raw = embedded.byte_range
    if not isinstance(raw, list | generic.ArrayObject) or len(raw) != 4:
        raise _malformed("/ByteRange is not an array of four numbers")
    values: list[int] = []
    for item in raw:
        if isinstance(item, bool) or not isinstance(item, int):
            raise _malformed("/ByteRange holds a non-integer")
        values.append(int(item))
    return tuple(values)


def _check_byte_range(data: bytes, br: tuple[int, ...], contents: bytes) -> str | None:
    """None if ``br`` is the standard range around exactly ``contents``, else why not."""
    start1, len1, start2, len2 = br
    if start1 != 0 or min(br) < 0:
        return "the range does not start at byte 0 or has negative numbers"
    if not 0 < len1 < start2 or start2 + len2 > len(data):
        return "the two parts overlap, are out of order or run past the end of the file"
    gap = data[len1:start2]
    if len(gap) < 2 or gap[:1] != b"<" or gap[-1:] != b">":
        return "the excluded gap is not a <hex> string"
    hex_body = gap[1:-1]
    if len(hex_body) % 2 or not _HEX_RE.fullmatch(hex_body):
        return "the excluded gap holds something other than hex digits"
    if not hmac.compare_digest(bytes.fromhex(hex_body.decode("ascii")), contents):
        return "the excluded gap is not this signature's /Contents"
    return None


def _integrity(
    data: bytes, embedded: Any, br: tuple[int, ...], deadline: Deadline
) -> tuple[Coverage, str | None, list[SignatureCheck]]:
    """Steps 2b and 2c: coverage, modification level and their two checks."""
    why = _check_byte_range(data, br, embedded.pkcs7_content)
    if why is not None:
        coverage = Coverage.UNCLEAR
        return (
            coverage,
            None,
            [
                _failed(CheckName.BYTE_RANGE, REASON_BYTE_RANGE, f"/ByteRange {list(br)}: {why}"),
                _failed(CheckName.MODIFICATIONS, REASON_BYTE_RANGE, "not evaluated: the byte range is unusable"),
            ],
        )
    try:
        level = embedded.evaluate_signature_coverage()
    except PDF_PARSE_ERRORS as exc:
        raise _malformed(f"cannot evaluate the signature coverage: {_first_line(exc)}") from None
    coverage = _COVERAGE[level]
    if level < SignatureCoverageLevel.ENTIRE_REVISION:
        return (
            coverage,
            None,
            [
                _failed(
                    CheckName.BYTE_RANGE,
                    REASON_BYTE_RANGE,
                    f"/ByteRange {list(br)} covers a {coverage.value} block, not a whole revision",
                ),
                _failed(CheckName.MODIFICATIONS, REASON_BYTE_RANGE, "not evaluated: the revision is not covered"),
            ],
        )
    checks = [_passed(CheckName.BYTE_RANGE, f"/ByteRange {list(br)} covers the {coverage.value.replace('_', ' ')}")]
    if level == SignatureCoverageLevel.ENTIRE_FILE:
        checks.append(_passed(CheckName.MODIFICATIONS, "nothing was added after this signature"))
        return coverage, ModificationLevel.NONE.name.lower(), checks
    deadline.check()
    embedded.coverage = level
    try:
        diff = embedded.evaluate_modifications(DEFAULT_DIFF_POLICY)
    except PDF_PARSE_ERRORS as exc:
        diff = SuspiciousModification(_first_line(exc))
    if isinstance(diff, SuspiciousModification):
        checks.append(
            _failed(CheckName.MODIFICATIONS, REASON_MODIFIED, f"later revisions make disallowed changes: {diff}")
        )
        return coverage, "suspicious", checks
    mod_level = diff.modification_level
    name = mod_level.name.lower()
    if mod_level > _ALLOWED_LEVEL:
        checks.append(_failed(CheckName.MODIFICATIONS, REASON_MODIFIED, f"later revisions change {name}"))
    else:
        checks.append(_passed(CheckName.MODIFICATIONS, f"later revisions stay within the allowed level ({name})"))
    return coverage, name, checks


# -- 2d. SM2 ----------------------------------------------------------------------------


def _sm3_over(data: bytes, br: tuple[int, ...]) -> bytes:
    h = sm3.new()
    h.update(data[br[0] : br[0] + br[1]])
    h.update(data[br[2] : br[2] + br[3]])
    return h.digest()


def _verify_sm2(
    data: bytes,
    br: tuple[int, ...],
    byte_range_ok: bool,
    signed: cms_sm2.Sm2SignedData,
    anchors: Sequence[Certificate],
    at: datetime | None,
) -> list[SignatureCheck]:
    checks: list[SignatureCheck] = []
    # digest: SM3 over exactly the signed bytes, compared with the signed messageDigest
    if not byte_range_ok:
        checks.append(_failed(CheckName.DIGEST, REASON_BYTE_RANGE, "not computed: the byte range is unusable"))
    elif hmac.compare_digest(_sm3_over(data, br), signed.message_digest):
        checks.append(_passed(CheckName.DIGEST, "SM3 of the signed bytes matches messageDigest"))
    else:
        checks.append(_failed(CheckName.DIGEST, REASON_DIGEST, "SM3 of the signed bytes differs from messageDigest"))
    # signature: SM2 over the DER SET OF signed attributes, and the ESS certificate binding
    try:
        signed.check_signature()
        signed.check_certificate_binding()
        checks.append(
            _passed(
                CheckName.SIGNATURE,
                f"SM2 signature ({signed.signature_algorithm}, signer ID 1234567812345678) verifies",
            )
        )
    except VerificationError as exc:
        checks.append(_failed(CheckName.SIGNATURE, REASON_SIGNATURE, exc.message))
    # chain: the agency certificate up to a province root given by the caller
    try:
        path = verify_chain(
            signed.certificate,
            signed.intermediates,
            anchors,
            required_usage=KeyUsage.DIGITAL_SIGNATURE,
            required_role=Role.AGENCY,
            at=at,
        )
        checks.append(_passed(CheckName.CHAIN, f"chains to trust anchor {path.trust_anchor.subject.rfc4514()}"))
    except CertLedgerError as exc:
        detail = "no SM2 trust anchor was given" if exc.reason == "cert.no_trust_anchor" else exc.message
        checks.append(_failed(CheckName.CHAIN, REASON_CHAIN, f"{detail} [{exc.reason}]"))
    return checks


# -- 2e. other algorithms through pyHanko ------------------------------------------------


def _verify_with_pyhanko(
    embedded: Any, byte_range_ok: bool, anchors: Sequence[x509.Certificate], at: datetime | None, limits: PdfLimits
) -> tuple[list[SignatureCheck], str | None]:
    try:
        carried = len(embedded.signed_data["certificates"] or ())
    except PDF_PARSE_ERRORS:
        carried = 0  # pyHanko reports the broken envelope itself, below
    if carried > limits.max_path_certificates:
        detail = f"the CMS carries {carried} certificates; at most {limits.max_path_certificates} are path-checked"
        return [
            _failed(CheckName.DIGEST, REASON_MALFORMED, "not evaluated"),
            _failed(CheckName.SIGNATURE, REASON_MALFORMED, "not evaluated"),
            _failed(CheckName.CHAIN, REASON_MALFORMED, detail),
        ], None
    roots = [asn1_x509.Certificate.load(c.public_bytes(serialization.Encoding.DER)) for c in anchors]
    # trust_roots given explicitly (even empty) so pyHanko never falls back to the OS store
    context = ValidationContext(trust_roots=roots, allow_fetching=False, moment=at, revocation_mode="soft-fail")
    try:
        status = validate_pdf_signature(embedded, signer_validation_context=context, skip_diff=True)
    except PDF_PARSE_ERRORS as exc:
        return [
            _failed(CheckName.DIGEST, REASON_MALFORMED, f"pyHanko could not evaluate it: {_first_line(exc)}"),
            _failed(CheckName.SIGNATURE, REASON_MALFORMED, "not evaluated"),
            _failed(CheckName.CHAIN, REASON_MALFORMED, "not evaluated"),
        ], None
    except CertLedgerError:
        raise
    except Exception as exc:
        # pyHanko's validation errors (unsupported or disallowed algorithms, broken signer
        # info) share no common root; any of them means "this signature does not validate"
        return [
            _failed(CheckName.DIGEST, REASON_SIGNATURE, f"pyHanko validation failed: {_first_line(exc)}"),
            _failed(CheckName.SIGNATURE, REASON_SIGNATURE, "not evaluated"),
            _failed(CheckName.CHAIN, REASON_CHAIN, "not evaluated"),
        ], None
    subject = None
    if status.signing_cert is not None:
        subject = x509.load_der_x509_certificate(status.signing_cert.dump()).subject.rfc4514_string()
    checks = []
    if not byte_range_ok:
        checks.append(_failed(CheckName.DIGEST, REASON_BYTE_RANGE, "not trusted: the byte range is unusable"))
    elif status.intact:
        checks.append(_passed(CheckName.DIGEST, f"{status.md_algorithm} of the signed bytes matches messageDigest"))
    else:
        checks.append(_failed(CheckName.DIGEST, REASON_DIGEST, f"{status.md_algorithm} of the signed bytes differs"))
    if status.valid:
        checks.append(_passed(CheckName.SIGNATURE, "the signature over the signed attributes verifies"))
    else:
        checks.append(_failed(CheckName.SIGNATURE, REASON_SIGNATURE, "the signature does not verify"))
    if status.trusted:
        checks.append(_passed(CheckName.CHAIN, "chains to a configured trust anchor"))
    else:
        why = "no trust anchor was given for this algorithm" if not anchors else str(status.trust_problem_indic)
        checks.append(_failed(CheckName.CHAIN, REASON_CHAIN, why))
    return checks, subject


# -- 2. one signature ---------------------------------------------------------------------


def _signing_time(sig_object: Any) -> datetime | None:
    try:
        raw = sig_object.get("/M")
        return None if raw is None else generic.parse_pdf_date(str(raw))
    except PDF_PARSE_ERRORS:
        return None


def _verify_one(
    data: bytes,
    reader: Any,
    name: str,
    field_ref: Any,
    anchors_sm2: Sequence[Certificate],
    anchors_other: Sequence[x509.Certificate],
    at: datetime | None,
    limits: PdfLimits,
    deadline: Deadline,
) -> PdfSignatureResult:
    def broken(detail: str, br: tuple[int, ...] = (), revision: int | None = None) -> PdfSignatureResult:
        return PdfSignatureResult(
            field_name=name,
            algorithm=ALGORITHM_UNKNOWN,
            signer_subject=None,
            byte_range=br,
            coverage=Coverage.UNCLEAR,
            revision=revision,
            modification_level=None,
            signing_time=None,
            checks=(_failed(CheckName.STRUCTURE, REASON_MALFORMED, detail),),
        )

    # 2a. structure: the signature dictionary and the CMS envelope; the revision is read
    # first so that even a broken signature is reported in signing order
    revision: int | None = None
    try:
        value_ref = field_ref.get_object().raw_get("/V")
        if isinstance(value_ref, generic.IndirectObject):
            revision = int(reader.xrefs.get_last_change(value_ref.reference))
    except PDF_PARSE_ERRORS:
        revision = None
    try:
        embedded = EmbeddedPdfSignature(reader, field_ref, name)
        br = _byte_range(embedded)
        sig_type = embedded.sig_object.get("/Type")
        signing_time = _signing_time(embedded.sig_object)
        revision = int(embedded.signed_revision)
    except InvalidInputError as exc:
        return broken(exc.message, revision=revision)
    except PDF_PARSE_ERRORS as exc:
        return broken(f"the signature dictionary or its CMS cannot be parsed: {_first_line(exc)}", revision=revision)
    try:
        cms_der = cms_sm2.cms_envelope(embedded.pkcs7_content, max_bytes=limits.max_contents_bytes)
        algorithms = cms_sm2.signer_algorithms(cms_der)
        sm2 = cms_sm2.is_sm2(algorithms)
        signed = cms_sm2.parse_sm2_signed_data(cms_der, max_certificates=limits.max_certificates) if sm2 else None
    except InvalidInputError as exc:
        return broken(exc.message, br, revision)
    algorithm = ALGORITHM_SM2 if sm2 else _ALGORITHM_NAMES.get(algorithms[1], algorithms[1])
    structure = _passed(CheckName.STRUCTURE, f"CMS signedData, {algorithm}")

    # 2b/2c. byte range and later modifications
    coverage, modification_level, integrity = _integrity(data, embedded, br, deadline)
    byte_range_ok = integrity[0].ok
    deadline.check()

    # 2d/2e. cryptography and trust
    if sig_type == "/DocTimeStamp":
        crypto = [_failed(CheckName.SIGNATURE, REASON_UNSUPPORTED, "document timestamps are not verified here")]
        subject = None
    elif signed is not None:
        crypto = _verify_sm2(data, br, byte_range_ok, signed, anchors_sm2, at)
        subject = signed.certificate.subject.rfc4514()
    else:
        crypto, subject = _verify_with_pyhanko(embedded, byte_range_ok, anchors_other, at, limits)
    return PdfSignatureResult(
        field_name=name,
        algorithm=algorithm,
        signer_subject=subject,
        byte_range=br,
        coverage=coverage,
        revision=revision,
        modification_level=modification_level,
        signing_time=signing_time,
        checks=tuple(sorted((structure, *integrity, *crypto), key=lambda c: _CHECK_ORDER[c.name])),
    )


def verify_pdf_signatures(
    pdf: bytes,
    trust_anchors_sm2: Sequence[Certificate],
    trust_anchors_ecdsa: Sequence[x509.Certificate] = (),
    *,
    at: datetime | None = None,
    limits: PdfLimits | None = None,
) -> PdfVerification:
    """Verify every signature in ``pdf``; never returns a bool, never trusts the file.

    ``trust_anchors_sm2`` are province root (or CA) certificates for SM2
    signatures; ``trust_anchors_ecdsa`` are the only roots for every other
    algorithm (pass none and those chains fail with ``pdf.chain``). ``at``
    is the validation time (default: now). Raises
    :class:`InvalidInputError` ``pdf.malformed`` when the file itself cannot
    be read or exceeds ``limits``, ``pdf.timeout`` when the time budget runs
    out; every per-signature finding is in the returned result (an unsigned
    file gives an empty result whose ``reason`` is ``pdf.no_signature``).
    """
    oids.register_sm_oids()
    fast_hex.install()
    limits = limits or PdfLimits()
    deadline = Deadline(limits.max_seconds)
    if at is not None and (at.tzinfo is None or at.utcoffset() is None):
        raise InvalidInputError("verification time must be timezone-aware", reason="pdf.time")
    when = datetime.now(UTC) if at is None else at.astimezone(UTC)
    if not isinstance(pdf, bytes | bytearray | memoryview):
        raise _malformed("the PDF must be given as bytes")
    data = bytes(pdf)

    # 1. limits and the reader
    reader = _open_reader(data, limits)
    found = _signed_fields(reader, limits)
    deadline.check()

    # 2. every signed field
    results: list[PdfSignatureResult] = []
    for name, field_ref in found:
        deadline.check()
        results.append(
            _verify_one(data, reader, name, field_ref, trust_anchors_sm2, trust_anchors_ecdsa, when, limits, deadline)
        )
    results.sort(key=lambda r: (r.revision is None, r.revision or 0, r.field_name))
    return PdfVerification(signatures=tuple(results), file_size=len(data), info=_document_info(reader))


def _document_info(reader: Any) -> dict[str, str]:
    """The text entries of the trailer's /Info; a broken or missing dictionary gives none."""
    try:
        info = reader.trailer_view.get("/Info")
        if info is None:
            return {}
        info = info.get_object()
        if not isinstance(info, generic.DictionaryObject):
            return {}
        out: dict[str, str] = {}
        for key in list(info.keys())[:64]:
            value = info[key]  # pyHanko dereferences an indirect value
            if isinstance(value, str):  # TextStringObject: decoded per PDFDocEncoding / UTF-16
                out[str(key)] = str(value)
        return out
    except PDF_PARSE_ERRORS:
        return {}

"""Signing licence PDFs with pyHanko: SM2/SM3 (the agency seal) and ECDSA P-256.

Both signatures are PAdES baseline B-B (``/SubFilter /ETSI.CAdES.detached``,
CMS with content-type, message-digest and signing-certificate-v2 signed
attributes, signing time in the signature dictionary's ``/M``). Each call adds
one signature as an incremental update, so a PDF is signed twice by calling
:func:`sign_pdf_sm2` and then :func:`sign_pdf_ecdsa` on its output; the first
signature then covers exactly its own revision.

The SM2 signature follows GB/T 35275 inside the PDF CMS envelope:

* digestAlgorithm SM3 (1.2.156.10197.1.401); the ``/ByteRange`` digest and the
  signed-attributes digest are SM3;
* signatureAlgorithm SM2-with-SM3 (1.2.156.10197.1.501, see :mod:`.oids`);
* the signature is SM2 (GM/T 0003) over the DER ``SET OF`` signed attributes
  with the GM/T 0009 default signer ID ``1234567812345678``, DER ``{r, s}``;
* the certificates set carries the agency certificate and the CA chain given;
* signing-certificate-v2 identifies the agency certificate by its SM3 hash.

The SM2 CMS is written by :mod:`.cms_build` (byte for byte what pyHanko's own signer
assembles, tested) and handed to pyHanko as an external signature; the ``/Contents``
placeholder is the exact size of that CMS with a maximal-length (72-byte) SM2 signature, so
the real one always fits, and no dry run is needed.
"""

from __future__ import annotations

import asyncio
import io
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from asn1crypto import algos
from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives import serialization
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import fields, signers
from pyhanko.sign.attributes import CMSAttributeProvider, SignedAttributeProviderSpec
from pyhanko.sign.general import SigningError, as_signing_certificate_v2
from pyhanko.sign.signers.pdf_signer import PdfTBSDocument
from pyhanko_certvalidator.registry import SimpleCertificateStore

from cert_formats.pdfsig import appearance, oids
from cert_formats.pdfsig.cms_build import MAX_SM2_SIGNATURE_DER, sm2_signed_data
from cert_formats.pdfsig.ecdsa import EcdsaSigningIdentity
from cert_formats.pdfsig.limits import PDF_PARSE_ERRORS
from signing.errors import CertLedgerError, CryptoBackendError, InvalidInputError
from signing.sm2 import DEFAULT_SIGNER_ID, SM2PrivateKey
from signing.x509 import Certificate

#: a PDF partial field name: no period (it separates name parts), printable, bounded
_FIELD_NAME_RE: Final = re.compile(r"[^.\x00-\x1f\x7f]{1,64}")
_MAX_TEXT: Final = 256
#: smallest visible box that can still show a line of text
_MIN_BOX_PT: Final = 12.0


@dataclass(frozen=True)
class SignatureBox:
    """A visible signature rectangle: page index (0-based) and corners in PDF points.

    Coordinates are PDF user space (origin bottom-left of the page). If
    ``appearance_pdf`` is given, its first page is drawn in the box; otherwise
    a text block with the signer name, reason, location and time is drawn.
    """

    page: int
    x1: float
    y1: float
    x2: float
    y2: float
    appearance_pdf: bytes | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.page, int) or self.page < 0:
            raise InvalidInputError("signature page index must be >= 0", reason="pdf.field")
        corners = (self.x1, self.y1, self.x2, self.y2)
        if not all(isinstance(v, int | float) and math.isfinite(v) for v in corners):
            raise InvalidInputError("signature box corners must be finite numbers", reason="pdf.field")
        if self.x2 - self.x1 < _MIN_BOX_PT or self.y2 - self.y1 < _MIN_BOX_PT:
            raise InvalidInputError(
                f"signature box must be at least {_MIN_BOX_PT:g} pt wide and high, with x1 < x2 and y1 < y2",
                reason="pdf.field",
            )

    @property
    def rect(self) -> tuple[int, int, int, int]:
        """The corners rounded to whole points, as the field's /Rect is written."""
        return (round(self.x1), round(self.y1), round(self.x2), round(self.y2))


@dataclass(frozen=True)
class SignatureDetails:
    """Where a signature goes and what its signature dictionary says.

    ``box`` None makes an invisible signature. ``signer_name`` (``/Name``)
    defaults to the certificate's common name. ``certify`` makes it a
    certification (DocMDP) signature that still allows form filling and
    further signatures, so a second signature can follow.
    """

    field_name: str
    box: SignatureBox | None = None
    signer_name: str | None = None
    reason: str | None = None
    location: str | None = None
    contact_info: str | None = None
    certify: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.field_name, str) or not _FIELD_NAME_RE.fullmatch(self.field_name):
            raise InvalidInputError(
                "signature field name must be 1-64 printable characters without '.'",
                reason="pdf.field",
            )
        for label in ("signer_name", "reason", "location", "contact_info"):
            value = getattr(self, label)
            if value is None:
                continue
            if not isinstance(value, str) or len(value) > _MAX_TEXT or re.search(r"[\x00-\x1f\x7f]", value):
                raise InvalidInputError(
                    f"signature {label} must be text of at most {_MAX_TEXT} characters without control characters",
                    reason="pdf.field",
                )


# -- SM2 ------------------------------------------------------------------------------


class _SigningCertificateV2Sm3(CMSAttributeProvider):
    """signing-certificate-v2 (RFC 5035) naming the agency certificate by its SM3 hash."""

    attribute_type = "signing_certificate_v2"

    def __init__(self, signing_cert: asn1_x509.Certificate) -> None:
        self.signing_cert = signing_cert

    async def build_attr_value(self, dry_run: bool = False) -> Any:
        return as_signing_certificate_v2(self.signing_cert, hash_algo=oids.SM3_NAME)


class _PadesSm2Attributes(SignedAttributeProviderSpec):
    """PAdES B-B signed attributes for SM2; pyHanko adds content-type and message-digest.

    No signing-time attribute: PAdES (ETSI EN 319 142-1 §6.3) puts the claimed
    time in the signature dictionary's ``/M`` instead.
    """

    def __init__(self, signing_cert: asn1_x509.Certificate) -> None:
        self._signing_cert = signing_cert

    def signed_attr_providers(self, data_digest: bytes, digest_algorithm: str) -> Iterable[Any]:
        yield _SigningCertificateV2Sm3(self._signing_cert)


class SM2CmsSigner(signers.Signer):
    """A pyHanko :class:`~pyhanko.sign.signers.Signer` whose raw signature is SM2/SM3.

    pyHanko hands ``async_sign_raw`` the DER of the signed attributes (with the
    ``SET OF`` tag); the SM2 signature over those bytes is computed by
    :meth:`signing.sm2.SM2PrivateKey.sign` with the GM/T 0009 default signer
    ID, which is also the ID every verifier assumes (a CMS cannot carry one).
    ``signature_algorithm`` is SM2-with-SM3 by default; ``oids.SM2_1`` writes
    the ``sm2-1`` OID some GB/T 35275 readers (ofdrw) expect instead.
    """

    def __init__(
        self,
        key: SM2PrivateKey,
        certificate: Certificate,
        chain: Sequence[Certificate] = (),
        *,
        signature_algorithm: str = oids.SM2_WITH_SM3,
    ) -> None:
        oids.register_sm_oids()
        if signature_algorithm not in oids.SM2_SIGNATURE_ALGORITHMS:
            raise InvalidInputError(
                f"{signature_algorithm} is not an SM2 signature algorithm OID", reason="pdf.algorithm"
            )
        if key.public_key != certificate.public_key:
            raise InvalidInputError("the SM2 key does not belong to the signing certificate", reason="pdf.key_mismatch")
        leaf = asn1_x509.Certificate.load(certificate.der)
        registry = SimpleCertificateStore()  # type: ignore[no-untyped-call]
        registry.register_multiple([asn1_x509.Certificate.load(c.der) for c in chain if c != certificate])
        super().__init__(
            signing_cert=leaf,
            cert_registry=registry,
            signature_mechanism=algos.SignedDigestAlgorithm({"algorithm": signature_algorithm}),
            embed_roots=True,
        )
        self.signed_attr_prov_spec = _PadesSm2Attributes(leaf)
        self._key = key
        self._certificate = certificate

    @property
    def certificate(self) -> Certificate:
        return self._certificate

    async def async_sign_raw(self, data: bytes, digest_algorithm: str, dry_run: bool = False) -> bytes:
        if digest_algorithm != oids.SM3_NAME:
            # SM2-with-SM3 fixes the hash; anything else here is a wiring mistake
            raise CryptoBackendError(f"SM2 signatures use SM3, not {digest_algorithm}", reason="crypto.algorithm")
        if dry_run:
            return bytes(MAX_SM2_SIGNATURE_DER)
        return self._key.sign(data, signer_id=DEFAULT_SIGNER_ID)


def sign_pdf_sm2(
    pdf: bytes,
    *,
    key: SM2PrivateKey,
    certificate: Certificate,
    details: SignatureDetails,
    chain: Sequence[Certificate] = (),
    signature_algorithm: str = oids.SM2_WITH_SM3,
) -> bytes:
    """Add a PAdES SM2/SM3 signature by ``certificate``'s holder to ``pdf``; return the new PDF.

    ``chain`` lists CA certificates (intermediates and, for self-containment,
    the root) to embed in the CMS. ``signature_algorithm`` is the
    SignerInfo.signatureAlgorithm OID (see :class:`SM2CmsSigner`). Raises
    :class:`InvalidInputError` with ``pdf.malformed`` (unreadable or
    encrypted PDF), ``pdf.field`` (bad or already-signed field, page out of
    range), ``pdf.key_mismatch``, ``pdf.algorithm``, ``pdf.sign_refused``
    (pyHanko refuses, e.g. a certification signature forbids changes) or
    ``pdf.font_unavailable`` (visible Chinese text and no CJK font).
    """
    signer = SM2CmsSigner(key, certificate, chain, signature_algorithm=signature_algorithm)
    default_name = certificate.subject.common_name or certificate.subject.organization
    chain = list(chain)

    def cms(document_digest: bytes | None) -> bytes:
        # the CMS is written by cms_build, not assembled by pyHanko: the same bytes (tested),
        # without asn1crypto's object model; None sizes the placeholder (maximal signature)
        return sm2_signed_data(
            bytes(32) if document_digest is None else document_digest,
            certificate=certificate,
            chain=chain,
            key=None if document_digest is None else key,
            signature_algorithm=signature_algorithm,
        )

    return _sign(pdf, signer, details, md_algorithm=oids.SM3_NAME, default_name=default_name, tight=True, cms=cms)


# -- ECDSA ----------------------------------------------------------------------------


def _ecdsa_signer(identity: EcdsaSigningIdentity) -> Any:
    key_der = identity.key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    cert_der = identity.certificate.public_bytes(serialization.Encoding.DER)
    registry = SimpleCertificateStore()  # type: ignore[no-untyped-call]
    registry.register_multiple(
        [asn1_x509.Certificate.load(c.public_bytes(serialization.Encoding.DER)) for c in identity.chain]
    )
    return signers.SimpleSigner(
        signing_cert=asn1_x509.Certificate.load(cert_der),
        signing_key=asn1_keys.PrivateKeyInfo.load(key_der),
        cert_registry=registry,
    )


def sign_pdf_ecdsa(pdf: bytes, *, identity: EcdsaSigningIdentity, details: SignatureDetails) -> bytes:
    """Add a PAdES ECDSA P-256 / SHA-256 signature to ``pdf`` (pyHanko's standard signer).

    This is the signature that readers without SM2 (Adobe, poppler) validate.
    Same errors as :func:`sign_pdf_sm2`.
    """
    return _sign(
        pdf,
        _ecdsa_signer(identity),
        details,
        md_algorithm="sha256",
        default_name=identity.subject_common_name,
        tight=False,
    )


# -- shared ---------------------------------------------------------------------------


def _open(pdf: bytes) -> Any:
    if not isinstance(pdf, bytes | bytearray) or b"%PDF-" not in pdf[:1024]:
        raise InvalidInputError("not a PDF file", reason="pdf.malformed")
    try:
        writer = IncrementalPdfFileWriter(io.BytesIO(bytes(pdf)), strict=True)
    except PDF_PARSE_ERRORS as exc:
        raise InvalidInputError(f"cannot read the PDF to sign: {exc}", reason="pdf.malformed") from None
    if writer.prev.encrypted:
        raise InvalidInputError("encrypted PDFs are not signed here", reason="pdf.malformed")
    return writer


def _existing_signed_fields(writer: Any) -> set[str]:
    try:
        return {name for name, value, _ in fields.enumerate_sig_fields(writer.prev) if value is not None}
    except PDF_PARSE_ERRORS as exc:
        raise InvalidInputError(f"cannot read the PDF's form fields: {exc}", reason="pdf.malformed") from None


def _page_count(writer: Any) -> int:
    try:
        return int(writer.root["/Pages"]["/Count"])
    except PDF_PARSE_ERRORS as exc:
        raise InvalidInputError(f"cannot read the PDF's page tree: {exc}", reason="pdf.malformed") from None


def _appearance_lines(details: SignatureDetails, name: str | None) -> list[str]:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [name or details.field_name]
    lines += [text for text in (details.reason, details.location) if text]
    lines.append(when)
    return lines


def _sign(
    pdf: bytes,
    signer: Any,
    details: SignatureDetails,
    *,
    md_algorithm: str,
    default_name: str | None,
    tight: bool,
    cms: Callable[[bytes | None], bytes] | None = None,
) -> bytes:
    # 1. the input: a readable, unencrypted PDF whose target field is not yet signed
    writer = _open(pdf)
    if details.field_name in _existing_signed_fields(writer):
        raise InvalidInputError(f"signature field {details.field_name!r} is already signed", reason="pdf.field")
    name = details.signer_name or default_name

    # 2. the field: invisible, or a rectangle with an appearance on an existing page
    field_spec = fields.SigFieldSpec(sig_field_name=details.field_name)
    style = None
    if details.box is not None:
        box = details.box
        if box.page >= _page_count(writer):
            raise InvalidInputError(f"the PDF has no page {box.page}", reason="pdf.field")
        field_spec = fields.SigFieldSpec(
            sig_field_name=details.field_name,
            on_page=box.page,
            box=box.rect,
        )
        x1, y1, x2, y2 = box.rect
        art = box.appearance_pdf or appearance.render_text_appearance(
            x2 - x1, y2 - y1, _appearance_lines(details, name)
        )
        style = appearance.stamp_style(art)

    # 3. the signature: PAdES, sized by a dry run, written as an incremental update
    meta = signers.PdfSignatureMetadata(
        field_name=details.field_name,
        md_algorithm=md_algorithm,
        subfilter=fields.SigSeedSubFilter.PADES,
        name=name,
        reason=details.reason,
        location=details.location,
        contact_info=details.contact_info,
        certify=details.certify,
        docmdp_permissions=fields.MDPPerm.FILL_FORMS,
        tight_size_estimates=tight,
    )
    pdf_signer = signers.PdfSigner(meta, signer, stamp_style=style, new_field_spec=field_spec)
    try:
        # with an external CMS pyHanko lays out the signature and digests the byte range; the
        # placeholder is the exact hex length of the largest CMS (what a tight dry run gives)
        out = pdf_signer.sign_pdf(writer) if cms is None else asyncio.run(_sign_externally(pdf_signer, writer, cms))
    except CertLedgerError:
        raise
    except SigningError as exc:
        raise InvalidInputError(f"pyHanko refused to sign this PDF: {exc}", reason="pdf.sign_refused") from None
    except PDF_PARSE_ERRORS as exc:
        raise InvalidInputError(f"cannot sign this PDF: {exc}", reason="pdf.malformed") from None
    return bytes(out.getvalue())


async def _sign_externally(pdf_signer: Any, writer: Any, cms: Callable[[bytes | None], bytes]) -> Any:
    prepared, _, out = await pdf_signer.async_digest_doc_for_signing(writer, bytes_reserved=2 * len(cms(None)))
    await PdfTBSDocument.async_finish_signing(out, prepared, cms(prepared.document_digest))
    return out

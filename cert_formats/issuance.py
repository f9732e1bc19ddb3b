"""Issuing a licence's files: render both faces, sign the PDF, seal the OFD, bind digests.

1. the face is laid out once (:func:`build_face`) and drawn as PDF and as OFD;
2. the PDF gets the agency's PAdES SM2 signature (GB/T 35275 OIDs) and,
   optionally, an ECDSA P-256 signature for readers without SM2;
3. the OFD gets the agency's GB/T 38540 seal, stamped where the template
   places the seal; the proof-bundle attachment is a placeholder the seal
   leaves out on purpose;
4. the SM3 digests of both files (:mod:`cert_formats.binding`) go into the
   ISSUE record, which the ledger appends;
5. once the record is final, its status document is embedded in both files
   as the proof bundle (:func:`attach_bundles`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cert_formats.binding import (
    BUNDLE_NAME,
    BUNDLE_PLACEHOLDER,
    attach_pdf_bundle,
    make_bundle,
    ofd_bundle_path,
    ofd_digest,
    pdf_digest,
)
from cert_formats.identifier import LicenceIdentifier
from cert_formats.licence import Licence
from cert_formats.ofd import Attachment, read_zip, replace_part
from cert_formats.ofd_face import face_to_ofd
from cert_formats.pdf_face import build_face, render_pdf
from cert_formats.template import LicenceTemplate
from signing.errors import InvalidInputError
from signing.sm2 import SM2PrivateKey
from signing.x509 import Certificate


@dataclass(frozen=True)
class AgencyCredentials:
    """What an agency signs and seals with."""

    key: SM2PrivateKey
    certificate: Certificate
    #: intermediates and root embedded with the PDF signature
    chain: tuple[Certificate, ...]
    #: the agency's electronic seal (SESeal), made by the seal maker for this certificate
    seal: Any
    #: optional ECDSA P-256 identity (cert_formats.pdfsig.EcdsaSigningIdentity)
    ecdsa: Any = None


@dataclass(frozen=True)
class IssuedFiles:
    licence: Licence
    pdf: bytes
    ofd: bytes
    digests: dict[str, str]

    @property
    def licence_id(self) -> str:
        """The ledger key: the identifier's lineage, shared by every version."""
        return LicenceIdentifier.parse(self.licence.identifier).lineage


def render_and_sign(
    licence: Licence,
    template: LicenceTemplate,
    creds: AgencyCredentials,
    *,
    verify_host: str,
    signed_at: datetime | None = None,
) -> IssuedFiles:
    """Steps 1-4: both files, signed and sealed, and their digests."""
    from cert_formats.pdfsig import SignatureDetails, sign_pdf_ecdsa, sign_pdf_sm2
    from cert_formats.seal import StampPlacement, seal_document

    template.validate(licence)
    if creds.certificate.public_key != creds.key.public_key:
        raise InvalidInputError("the agency key does not match its certificate", reason="issue.key_mismatch")
    layout = build_face(licence, template, verify_host=verify_host)

    # 2. PDF: the face already shows the seal picture; the PAdES signature itself is invisible
    pdf = sign_pdf_sm2(
        render_pdf(layout),
        key=creds.key,
        certificate=creds.certificate,
        chain=list(creds.chain),
        details=SignatureDetails(
            "AgencySeal",
            box=None,
            signer_name=licence.issuer_name,
            reason=f"颁发 {template.name}",
            location=licence.region_code,
        ),
    )
    if creds.ecdsa is not None:
        pdf = sign_pdf_ecdsa(pdf, identity=creds.ecdsa, details=SignatureDetails("ReaderSignature"))

    seal_spec = template.seal
    # 3. OFD with the placeholder bundle, sealed (the bundle attachment left out on purpose)
    document = face_to_ofd(
        layout, licence, template, attachments=[Attachment(BUNDLE_NAME, BUNDLE_PLACEHOLDER, format="json")]
    )
    ofd = seal_document(
        document,
        seal=creds.seal,
        signer_key=creds.key,
        signer_cert=creds.certificate,
        stamps=[StampPlacement.centred(0, seal_spec.x_mm, seal_spec.y_mm, seal_spec.diameter_mm)],
        signed_at=signed_at,
        unprotected=lambda path, data: "/Attachs/" in path and data == BUNDLE_PLACEHOLDER,
    )
    parts = read_zip(ofd)
    digests = {"pdf": pdf_digest(pdf), "ofd": ofd_digest(parts, ofd_bundle_path(parts, BUNDLE_PLACEHOLDER))}
    return IssuedFiles(licence, pdf, ofd, digests)


def issue_payload(files: IssuedFiles) -> dict[str, Any]:
    """The ISSUE record payload for these files (licence metadata + digests)."""
    lic = files.licence
    ident = LicenceIdentifier.parse(lic.identifier)
    return {
        "licence_id": ident.lineage,
        "type_code": lic.type_code,
        "region": lic.region_code,
        "version": lic.version,
        "files": dict(files.digests),
        "metadata": {"identifier": lic.identifier, **lic.to_dict()},
    }


def attach_bundles(files: IssuedFiles, status_document: dict[str, Any]) -> tuple[bytes, bytes]:
    """Step 5: both files with the proof bundle embedded; their ledger digests do not change."""
    bundle = make_bundle(status_document)
    pdf = attach_pdf_bundle(files.pdf, bundle)
    parts = read_zip(files.ofd)
    path = ofd_bundle_path(parts, BUNDLE_PLACEHOLDER)
    if path is None:
        raise InvalidInputError("the OFD has no proof-bundle placeholder", reason="bundle.malformed")
    # one entry changes: the others' compressed bytes are copied, not deflated again
    return pdf, replace_part(files.ofd, path, bundle)

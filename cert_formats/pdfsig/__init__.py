"""PAdES signatures on licence PDFs: the agency's SM2/SM3 seal and an optional ECDSA P-256 one.

    signed = sign_pdf_sm2(pdf, key=agency_key, certificate=agency_cert, chain=[root],
                          details=SignatureDetails("AgencySeal", reason="颁发"))
    signed = sign_pdf_ecdsa(signed, identity=ecdsa_identity,
                            details=SignatureDetails("ReaderSignature"))
    result = verify_pdf_signatures(signed, [root], ecdsa_roots)
    result.require_valid()          # raises VerificationError with a pdf.* reason

The profile (OIDs, attributes, byte ranges, reason codes) is in
docs/formats-pdf-signature.md.
"""

from cert_formats.pdfsig import _quiet  # noqa: F401  (first: see its docstring)
from cert_formats.pdfsig.ecdsa import EcdsaAuthority, EcdsaSigningIdentity, load_ecdsa_certificates
from cert_formats.pdfsig.limits import PdfLimits
from cert_formats.pdfsig.oids import SM2_1, SM2_WITH_SM3, SM3, register_sm_oids
from cert_formats.pdfsig.result import (
    ALGORITHM_SM2,
    CheckName,
    Coverage,
    PdfSignatureResult,
    PdfVerification,
    SignatureCheck,
)
from cert_formats.pdfsig.sign import SignatureBox, SignatureDetails, SM2CmsSigner, sign_pdf_ecdsa, sign_pdf_sm2
from cert_formats.pdfsig.verify import verify_pdf_signatures

__all__ = [
    "ALGORITHM_SM2",
    "SM2_1",
    "SM2_WITH_SM3",
    "SM3",
    "CheckName",
    "Coverage",
    "EcdsaAuthority",
    "EcdsaSigningIdentity",
    "PdfLimits",
    "PdfSignatureResult",
    "PdfVerification",
    "SM2CmsSigner",
    "SignatureBox",
    "SignatureCheck",
    "SignatureDetails",
    "load_ecdsa_certificates",
    "register_sm_oids",
    "sign_pdf_ecdsa",
    "sign_pdf_sm2",
    "verify_pdf_signatures",
]

"""The CMS SignedData of an SM2 PDF signature (GB/T 35275 in PAdES B-B), written directly.

pyHanko assembles a CMS through asn1crypto's object model, twice per signature (a dry run
with a dummy signature to size the ``/Contents`` placeholder, then the real one): ~40 % of
issuing a licence went there. For SM2 the structure is fixed, so it is written here with
:mod:`signing.der`, the same fields pyHanko writes (checked by tests against pyHanko's own
output and by ``openssl cms``):

    ContentInfo { signedData, [0] SignedData {
        version 1, digestAlgorithms { sm3 }, encapContentInfo { data } (detached),
        certificates [0] { signer certificate and chain, DER-sorted },
        signerInfos { SignerInfo {
            version 1, sid IssuerAndSerialNumber, digestAlgorithm sm3,
            signedAttrs [0] { contentType data, messageDigest, signingCertificateV2 (SM3) },
            signatureAlgorithm SM2-with-SM3 (or sm2-1), signature } } } }

The signed attributes are DER-sorted (a SET OF); the signature is SM2 over their DER with the
``SET`` tag and the GM/T 0009 default signer ID, as pyHanko's signer computes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from cert_formats.pdfsig import oids
from signing import der
from signing.sm2 import DEFAULT_SIGNER_ID, SM2PrivateKey
from signing.sm3 import sm3
from signing.x509 import Certificate

_SIGNED_DATA: Final = "1.2.840.113549.1.7.2"
_DATA: Final = "1.2.840.113549.1.7.1"
_CONTENT_TYPE: Final = "1.2.840.113549.1.9.3"
_MESSAGE_DIGEST: Final = "1.2.840.113549.1.9.4"
_SIGNING_CERTIFICATE_V2: Final = "1.2.840.113549.1.9.16.2.47"
_TAG_SET: Final = 0x31
#: DER SEQUENCE { INTEGER r, INTEGER s } with both 33-byte (leading-zero) integers
MAX_SM2_SIGNATURE_DER: Final = 72


def _set_of(items: Sequence[bytes]) -> bytes:
    """DER SET OF: the encodings in ascending order."""
    return der.tlv(_TAG_SET, b"".join(sorted(items)))


def _algorithm(dotted: str) -> bytes:
    # SM3 and SM2 identifiers carry no parameters (GM/T 0010), as pyHanko writes them
    return der.sequence(der.oid(dotted))


def _issuer_and_serial(cert: Certificate) -> bytes:
    return der.sequence(cert.issuer_der, der.integer(cert.serial_number))


def _signing_certificate_v2(cert: Certificate) -> bytes:
    # ESSCertIDv2 { hashAlgorithm sm3, certHash, issuerSerial { GeneralNames { [4] Name }, serial } }
    issuer_serial = der.sequence(der.sequence(der.context(4, cert.issuer_der)), der.integer(cert.serial_number))
    ess_cert_id = der.sequence(_algorithm(oids.SM3), der.octet_string(sm3(cert.der)), issuer_serial)
    return der.sequence(der.sequence(ess_cert_id))


def _attribute(dotted: str, value: bytes) -> bytes:
    return der.sequence(der.oid(dotted), _set_of([value]))


def signed_attributes(document_digest: bytes, certificate: Certificate) -> bytes:
    """The DER ``SET OF`` signed attributes: what the SM2 signature covers."""
    return _set_of([
        _attribute(_CONTENT_TYPE, der.oid(_DATA)),
        _attribute(_MESSAGE_DIGEST, der.octet_string(document_digest)),
        _attribute(_SIGNING_CERTIFICATE_V2, _signing_certificate_v2(certificate)),
    ])


def sm2_signed_data(
    document_digest: bytes,
    *,
    certificate: Certificate,
    chain: Sequence[Certificate] = (),
    key: SM2PrivateKey | None = None,
    signature_algorithm: str = oids.SM2_WITH_SM3,
) -> bytes:
    """The DER ContentInfo for ``document_digest`` (SM3 of the byte range), signed with ``key``.

    Without ``key`` the signature is a maximal-length placeholder: the result then has the
    largest size a real one can have, which is what the ``/Contents`` reservation needs.
    """
    attrs = signed_attributes(document_digest, certificate)
    signature = bytes(MAX_SM2_SIGNATURE_DER) if key is None else key.sign(attrs, signer_id=DEFAULT_SIGNER_ID)
    return assemble(attrs, signature, certificate=certificate, chain=chain, signature_algorithm=signature_algorithm)


def assemble(
    attrs: bytes,
    signature: bytes,
    *,
    certificate: Certificate,
    chain: Sequence[Certificate] = (),
    signature_algorithm: str = oids.SM2_WITH_SM3,
) -> bytes:
    """The ContentInfo around signed attributes ``attrs`` (DER SET OF) and their signature."""
    signer_info = der.sequence(
        der.integer(1),
        _issuer_and_serial(certificate),
        _algorithm(oids.SM3),
        der.tlv(0xA0, der.parse_one(attrs).value),  # [0] IMPLICIT SET OF Attribute
        _algorithm(signature_algorithm),
        der.octet_string(signature),
    )
    certificates = [certificate.der, *(c.der for c in chain if c.der != certificate.der)]
    signed_data = der.sequence(
        der.integer(1),
        _set_of([_algorithm(oids.SM3)]),
        der.sequence(der.oid(_DATA)),
        der.tlv(0xA0, b"".join(sorted(certificates))),  # [0] IMPLICIT SET OF, DER-sorted like pyHanko's
        der.tlv(_TAG_SET, signer_info),
    )
    return der.sequence(der.oid(_SIGNED_DATA), der.context(0, signed_data))

"""Reading and checking the CMS of an SM2/SM3 PDF signature (GB/T 35275 in a PDF envelope).

The CMS comes from the file being verified, so it is hostile input. The steps,
labelled again in the code:

1. Envelope: the decoded ``/Contents`` is one DER SEQUENCE followed only by
   zero padding; its outer length is minimal and within the size limit.
2. Structure: a ContentInfo of type signedData, detached ``data`` content,
   exactly one SignerInfo with digestAlgorithm SM3, signatureAlgorithm
   SM2-with-SM3 or sm2-1, and signed attributes.
3. Signed attributes: each type at most once; content-type is ``data``;
   message-digest is one 32-byte value; signing-certificate(-v2), when
   present, is kept for the certificate binding check.
4. Certificates: at most ``max_certificates``; the one named by the SignerInfo
   (issuer and serial, or subject key identifier) parses as an SM2
   certificate of the project profile; the other SM2 certificates are kept as
   untrusted intermediates, others ignored.

The signed-attributes bytes handed to the signature check are cut from the
input and re-tagged ``SET OF`` (RFC 5652 §5.4), never re-encoded.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any, Final

from asn1crypto import cms, core

from cert_formats.pdfsig import oids
from signing import der, sm3
from signing.errors import CertLedgerError, InvalidInputError, VerificationError
from signing.sm2 import DEFAULT_SIGNER_ID
from signing.x509 import Certificate, parse_der

_ID_DATA: Final = "1.2.840.113549.1.7.1"
_ID_SIGNED_DATA: Final = "1.2.840.113549.1.7.2"
_ATTR_CONTENT_TYPE: Final = "1.2.840.113549.1.9.3"
_ATTR_MESSAGE_DIGEST: Final = "1.2.840.113549.1.9.4"
_ATTR_SIGNING_CERT: Final = "1.2.840.113549.1.9.16.2.12"
_ATTR_SIGNING_CERT_V2: Final = "1.2.840.113549.1.9.16.2.47"
_MAX_SIGNED_ATTRIBUTES: Final = 32
#: hashes a signing-certificate(-v2) attribute may name, by OID
_ESS_HASHES: Final = {
    oids.SM3: "sm3",
    "2.16.840.1.101.3.4.2.1": "sha256",
    "2.16.840.1.101.3.4.2.2": "sha384",
    "2.16.840.1.101.3.4.2.3": "sha512",
    "1.3.14.3.2.26": "sha1",  # signing-certificate (v1) only
}
_ASN1_ERRORS: Final = (ValueError, TypeError, KeyError, IndexError, OverflowError)


def _malformed(message: str) -> InvalidInputError:
    return InvalidInputError(f"signature CMS: {message}", reason="pdf.malformed")


@dataclass(frozen=True)
class EssCertId:
    """What a signing-certificate(-v2) attribute says about the signer certificate."""

    hash_name: str
    cert_hash: bytes
    serial_number: int | None


@dataclass(frozen=True)
class Sm2SignedData:
    """The parts of an SM2 CMS that verification needs, as cut from the input."""

    signature_algorithm: str
    certificate: Certificate
    intermediates: tuple[Certificate, ...]
    message_digest: bytes
    #: DER ``SET OF Attribute`` exactly as signed
    signed_attributes: bytes
    signature: bytes
    ess_cert_id: EssCertId | None

    def check_signature(self) -> None:
        """Verify the SM2 signature over the signed attributes; raise ``pdf.signature_invalid``."""
        try:
            self.certificate.public_key.verify(self.signature, self.signed_attributes, signer_id=DEFAULT_SIGNER_ID)
        except CertLedgerError:
            raise VerificationError(
                "the SM2 signature over the signed attributes does not verify with the signer certificate's key",
                reason="pdf.signature_invalid",
            ) from None

    def check_certificate_binding(self) -> None:
        """The signing-certificate(-v2) attribute, if any, names this certificate."""
        ess = self.ess_cert_id
        if ess is None:
            return
        cert_der = self.certificate.der
        actual = sm3.sm3(cert_der) if ess.hash_name == "sm3" else hashlib.new(ess.hash_name, cert_der).digest()
        if not hmac.compare_digest(actual, ess.cert_hash) or (
            ess.serial_number is not None and ess.serial_number != self.certificate.serial_number
        ):
            raise VerificationError(
                "the signing-certificate attribute names a different certificate than the one "
                "the signature was checked with",
                reason="pdf.signature_invalid",
            )


def cms_envelope(contents: bytes, *, max_bytes: int) -> bytes:
    """Step 1: the DER CMS inside a zero-padded ``/Contents`` value."""
    if len(contents) > max_bytes:
        raise _malformed(f"/Contents is larger than {max_bytes} bytes")
    if len(contents) < 2 or contents[0] != der.TAG_SEQUENCE:
        raise _malformed("/Contents does not start with a DER SEQUENCE")
    first = contents[1]
    if first < 0x80:
        end = 2 + first
    else:
        nbytes = first & 0x7F
        if first == 0x80 or nbytes > 3 or len(contents) < 2 + nbytes:
            raise _malformed("bad outer length")
        end = 2 + nbytes + int.from_bytes(contents[2 : 2 + nbytes], "big")
    if end > len(contents):
        raise _malformed("truncated")
    if contents[end:].strip(b"\x00"):
        raise _malformed("non-zero bytes after the CMS in /Contents")
    body = contents[:end]
    try:
        der.parse_one(body, what="signature CMS")
    except InvalidInputError as exc:
        raise _malformed(str(exc)) from None
    return body


def signer_algorithms(cms_der: bytes) -> tuple[str, str]:
    """``(digestAlgorithm, signatureAlgorithm)`` OIDs of the one SignerInfo, to route verification."""
    try:
        info = cms.ContentInfo.load(cms_der, strict=True)
        if info["content_type"].dotted != _ID_SIGNED_DATA:
            raise _malformed("not a signedData ContentInfo")
        infos = info["content"]["signer_infos"]
        if len(infos) != 1:
            raise _malformed(f"expected one SignerInfo, found {len(infos)}")
        si = infos[0]
        return si["digest_algorithm"]["algorithm"].dotted, si["signature_algorithm"]["algorithm"].dotted
    except _ASN1_ERRORS as exc:
        raise _malformed(_first_line(exc)) from None


def is_sm2(algorithms: tuple[str, str]) -> bool:
    """Whether a SignerInfo with these algorithms is an SM2/SM3 signature (either OID counts)."""
    digest, signature = algorithms
    return signature in oids.SM2_SIGNATURE_ALGORITHMS or digest == oids.SM3


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0]


def parse_sm2_signed_data(cms_der: bytes, *, max_certificates: int) -> Sm2SignedData:
    """Steps 2-4 on the envelope :func:`cms_envelope` returned."""
    oids.register_sm_oids()
    try:
        return _parse(cms_der, max_certificates)
    except CertLedgerError:
        raise
    except _ASN1_ERRORS as exc:
        raise _malformed(_first_line(exc)) from None


def _absent(value: Any) -> bool:
    """Whether an OPTIONAL field is missing (asn1crypto's Void).

    What ``value.native is None`` answers, without building the native form: for the
    certificate set that decoded every certificate into dicts (~4 ms of a ~15 ms PDF check).
    """
    return isinstance(value, core.Void)


def _algorithm(value: Any, what: str) -> str:
    params = value["parameters"]
    if params.native is not None:
        raise _malformed(f"{what} has parameters")
    return str(value["algorithm"].dotted)


def _parse(cms_der: bytes, max_certificates: int) -> Sm2SignedData:
    # 2. structure
    info = cms.ContentInfo.load(cms_der, strict=True)
    if info["content_type"].dotted != _ID_SIGNED_DATA:
        raise _malformed("not a signedData ContentInfo")
    signed = info["content"]
    encap = signed["encap_content_info"]
    if encap["content_type"].dotted != _ID_DATA or not _absent(encap["content"]):
        raise _malformed("a PDF signature is detached signedData over id-data")
    if len(signed["signer_infos"]) != 1:
        raise _malformed(f"expected one SignerInfo, found {len(signed['signer_infos'])}")
    si = signed["signer_infos"][0]
    if _algorithm(si["digest_algorithm"], "digestAlgorithm") != oids.SM3:
        raise _malformed("an SM2 SignerInfo must use the SM3 digest")
    signature_algorithm = _algorithm(si["signature_algorithm"], "signatureAlgorithm")
    if signature_algorithm not in oids.SM2_SIGNATURE_ALGORITHMS:
        raise _malformed(f"signatureAlgorithm {signature_algorithm} is not SM2")
    attrs = si["signed_attrs"]
    if _absent(attrs) or not attrs.contents:
        raise _malformed("no signed attributes (GB/T 35275 PDF signatures sign attributes)")

    # the exact received bytes, re-tagged [0] IMPLICIT -> SET OF (RFC 5652 §5.4)
    tagged, end = der.read_tlv(attrs.dump(), 0, what="signed attributes")
    if tagged.tag != 0xA0 or end != len(attrs.dump()):
        raise _malformed("signed attributes are not [0] IMPLICIT SET OF")
    signed_attributes = der.tlv(0x31, tagged.value)

    # 3. signed attributes
    seen: dict[str, Any] = {}
    if len(attrs) > _MAX_SIGNED_ATTRIBUTES:
        raise _malformed("too many signed attributes")
    for attr in attrs:
        kind = attr["type"].dotted
        if kind in seen:
            raise _malformed(f"signed attribute {kind} appears twice")
        seen[kind] = attr["values"]
    content_type = seen.get(_ATTR_CONTENT_TYPE)
    if content_type is None or len(content_type) != 1 or content_type[0].dotted != _ID_DATA:
        raise _malformed("content-type attribute missing or not id-data")
    digest_values = seen.get(_ATTR_MESSAGE_DIGEST)
    if digest_values is None or len(digest_values) != 1:
        raise _malformed("message-digest attribute missing or multi-valued")
    message_digest = bytes(digest_values[0].native)
    if len(message_digest) != 32:
        raise _malformed("message-digest is not a 32-byte SM3 value")
    ess = _ess_cert_id(seen)

    # 4. certificates
    certificates = signed["certificates"]
    if _absent(certificates) or len(certificates) == 0:
        raise _malformed("the CMS carries no certificates; the signer certificate must be embedded")
    if len(certificates) > max_certificates:
        raise _malformed(f"more than {max_certificates} certificates")
    parsed: list[Certificate] = []
    for choice in certificates:
        if choice.name != "certificate":
            continue
        try:
            parsed.append(parse_der(choice.chosen.dump()))
        except InvalidInputError:
            continue  # not an SM2 certificate of the profile (e.g. an ECDSA chain): not usable here
    signer = _find_signer(si["sid"], parsed)
    return Sm2SignedData(
        signature_algorithm=signature_algorithm,
        certificate=signer,
        intermediates=tuple(c for c in parsed if c != signer),
        message_digest=message_digest,
        signed_attributes=signed_attributes,
        signature=bytes(si["signature"].native),
        ess_cert_id=ess,
    )


def _ess_cert_id(attrs: dict[str, Any]) -> EssCertId | None:
    for kind, version in ((_ATTR_SIGNING_CERT_V2, 2), (_ATTR_SIGNING_CERT, 1)):
        values = attrs.get(kind)
        if values is None:
            continue
        if len(values) != 1 or len(values[0]["certs"]) == 0:
            raise _malformed("signing-certificate attribute is empty or multi-valued")
        first = values[0]["certs"][0]
        hash_oid = first["hash_algorithm"]["algorithm"].dotted if version == 2 else "1.3.14.3.2.26"
        hash_name = _ESS_HASHES.get(hash_oid)
        if hash_name is None or (hash_name == "sha1" and version == 2):
            raise _malformed(f"signing-certificate hash {hash_oid} is not accepted")
        serial = None
        issuer_serial = first["issuer_serial"]
        if not _absent(issuer_serial):
            serial = int(issuer_serial["serial_number"].native)
        return EssCertId(hash_name=hash_name, cert_hash=bytes(first["cert_hash"].native), serial_number=serial)
    return None


def _find_signer(sid: Any, candidates: list[Certificate]) -> Certificate:
    if sid.name == "issuer_and_serial_number":
        issuer_der = sid.chosen["issuer"].dump()
        serial = int(sid.chosen["serial_number"].native)
        match = [c for c in candidates if c.issuer_der == issuer_der and c.serial_number == serial]
    else:
        key_id = bytes(sid.chosen.native)
        match = [c for c in candidates if c.subject_key_id == key_id]
    if not match:
        raise _malformed("the signer's SM2 certificate is not in the CMS certificates")
    return match[0]

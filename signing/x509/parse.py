"""Load certificates (PEM or DER) from untrusted input into :class:`Certificate`.

Certificates arrive inside licence files, API calls and federation messages, so
this is hostile-input code. The steps, each labelled again below:

1. Size: PEM input, block count and each DER body are capped.
2. Strict DER: every TLV is walked with :mod:`signing.der` (definite minimal
   lengths, no constructed strings, no trailing bytes, bounded depth and
   count) *before* asn1crypto, which is lenient about BER, sees the bytes.
3. Structure: asn1crypto decodes the fields; any error it raises becomes an
   :class:`InvalidInputError` with reason ``cert.malformed``.
4. Profile: X.509 v3 only; signature algorithm SM2-with-SM3 in both places
   and identical; an SM2 key; a positive serial of at most 20 octets;
   no duplicate extensions; known extensions decoded strictly.

The TBS bytes handed to signature verification are cut from the input itself,
never re-encoded, so what is verified is exactly what was signed.
"""

from __future__ import annotations

import base64
import functools
import re
from datetime import datetime
from typing import Any, Final

from asn1crypto import core as asn1_core
from asn1crypto import x509 as asn1_x509

from signing import der
from signing.errors import CertLedgerError, InvalidInputError
from signing.sm2 import SM2PublicKey
from signing.x509 import oids
from signing.x509.model import (
    CREDIT_CODE_PREFIX,
    Certificate,
    DistinguishedName,
    KeyUsage,
    Validity,
)

#: one certificate of this profile is ~700 bytes; 32 KiB leaves room for foreign ones
MAX_CERTIFICATE_SIZE: Final = 32 * 1024
MAX_PEM_SIZE: Final = 1024 * 1024
MAX_CERTIFICATES_PER_FILE: Final = 64
_MAX_DEPTH: Final = 24
_MAX_NODES: Final = 4096

#: the two AlgorithmIdentifier encodings accepted: parameters absent (what OpenSSL
#: writes and what this package writes) or NULL (written by some other toolkits)
SM2_WITH_SM3_ALGORITHM_ID: Final = der.sequence(der.oid(oids.SM2_WITH_SM3))
_SM2_WITH_SM3_NULL: Final = der.sequence(der.oid(oids.SM2_WITH_SM3), der.tlv(der.TAG_NULL, b""))

_PEM_BLOCK_RE: Final = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n([A-Za-z0-9+/=\s]*?)-----END \1-----")
_TAG_BOOLEAN: Final = 0x01
_UNIVERSAL_SET: Final = 0x31
# X.680 tag numbers of the string/bit types DER requires to be primitive
_PRIMITIVE_ONLY: Final = frozenset({3, 4, 12, 19, 20, 22, 23, 24, 26, 28, 30})

_NAME_FIELDS: Final = {
    oids.COMMON_NAME: "common_name",
    oids.ORGANIZATION: "organization",
    oids.ORGANIZATIONAL_UNIT: "organizational_unit",
    oids.LOCALITY: "locality",
    oids.STATE: "state",
    oids.COUNTRY: "country",
}
_ASN1_ERRORS: Final = (ValueError, TypeError, KeyError, IndexError, OverflowError, AttributeError)


def _malformed(message: str) -> InvalidInputError:
    return InvalidInputError(f"certificate: {message}", reason="cert.malformed")


# -- 1. size and PEM ---------------------------------------------------------------------


def pem_blocks(data: bytes) -> list[bytes]:
    """DER bodies of the ``CERTIFICATE`` PEM blocks in ``data``; other blocks are skipped."""
    if len(data) > MAX_PEM_SIZE:
        raise InvalidInputError(f"certificate file is larger than {MAX_PEM_SIZE} bytes", reason="cert.too_large")
    out: list[bytes] = []
    for match in _PEM_BLOCK_RE.finditer(data):
        if match.group(1) != b"CERTIFICATE":
            continue
        if len(out) == MAX_CERTIFICATES_PER_FILE:
            raise InvalidInputError(
                f"more than {MAX_CERTIFICATES_PER_FILE} certificates in one file",
                reason="cert.too_large",
            )
        try:
            out.append(base64.b64decode(b"".join(match.group(2).split()), validate=True))
        except ValueError:
            raise _malformed("PEM body is not valid base64") from None
    if not out:
        raise _malformed("no CERTIFICATE PEM block found")
    return out


def _is_pem(data: bytes) -> bool:
    # DER always starts with a SEQUENCE tag, so this cannot mistake DER for PEM
    return not data.startswith(b"\x30") and b"-----BEGIN " in data


# -- 2. strict DER -----------------------------------------------------------------------


def _walk_strict(data: bytes, what: str) -> der.TLV:
    """Check that ``data`` is one strictly DER-encoded value; return its top TLV."""
    budget = [_MAX_NODES]

    def walk(buf: bytes, depth: int) -> None:
        if depth > _MAX_DEPTH:
            raise _malformed(f"{what} is nested too deeply")
        pos = 0
        while pos < len(buf):
            node, pos = der.read_tlv(buf, pos, what=what)
            budget[0] -= 1
            if budget[0] < 0:
                raise _malformed(f"{what} has too many elements")
            _check_node(node, what)
            if node.tag & 0x20:
                walk(node.value, depth + 1)

    top = der.parse_one(data, what=what)
    _check_node(top, what)
    if top.tag & 0x20:
        walk(top.value, 1)
    return top


def _check_node(node: der.TLV, what: str) -> None:
    universal = node.tag & 0xC0 == 0
    if universal and node.tag & 0x20 and (node.tag & 0x1F) in _PRIMITIVE_ONLY:
        raise _malformed(f"{what}: constructed string encoding is BER, not DER")
    if node.tag == _TAG_BOOLEAN and node.value not in (b"\x00", b"\xff"):
        raise _malformed(f"{what}: BOOLEAN must be 00 or FF in DER")


def _strict(data: bytes, what: str) -> der.TLV:
    try:
        return _walk_strict(data, what)
    except InvalidInputError as exc:
        if exc.reason.startswith("cert."):
            raise
        message = str(exc) if str(exc).startswith("certificate") else f"certificate {exc}"
        raise InvalidInputError(message, reason="cert.malformed") from None


# -- 3./4. structure and profile ---------------------------------------------------------


def load_certificate(data: bytes) -> Certificate:
    """Parse exactly one certificate from PEM or DER; raise InvalidInputError if it is not one."""
    certs = load_certificates(data)
    if len(certs) != 1:
        raise InvalidInputError(f"expected one certificate, found {len(certs)}", reason="cert.count")
    return certs[0]


def load_certificates(data: bytes) -> list[Certificate]:
    """Parse every certificate in a PEM bundle (in file order), or the one in a DER blob."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise InvalidInputError("certificate input must be bytes", reason="cert.malformed")
    data = bytes(data)
    if not data:
        raise _malformed("empty input")
    bodies = pem_blocks(data) if _is_pem(data) else [data]
    return [parse_der(body) for body in bodies]


def parse_der(data: bytes) -> Certificate:
    """Parse one DER certificate under the profile rules (steps 1-4 above)."""
    # the same few certificates (agency, seal maker, root) come in every file a
    # verifier sees; the result depends on the bytes alone and is frozen, so a
    # successful parse is kept by its exact DER (failures are never kept)
    data = bytes(data)
    return _parse_der_cached(data) if len(data) <= MAX_CERTIFICATE_SIZE else _parse_der(data)


@functools.lru_cache(maxsize=256)
def _parse_der_cached(data: bytes) -> Certificate:
    return _parse_der(data)


def _parse_der(data: bytes) -> Certificate:
    # 1. size
    if len(data) > MAX_CERTIFICATE_SIZE:
        raise InvalidInputError(f"certificate is larger than {MAX_CERTIFICATE_SIZE} bytes", reason="cert.too_large")
    # 2. strict DER, and the exact TBS bytes
    if not data.startswith(b"\x30"):
        raise _malformed("neither PEM nor DER (DER starts with a SEQUENCE)")
    top = _strict(data, "certificate")
    if top.tag != der.TAG_SEQUENCE:
        raise _malformed("not a SEQUENCE")
    _tbs, end = der.read_tlv(top.value, 0, what="certificate")
    tbs_der = top.value[:end]
    # 3. structure
    try:
        return _from_asn1(data, tbs_der)
    except CertLedgerError:
        raise
    except _ASN1_ERRORS as exc:
        # asn1crypto appends "while parsing ..." lines; the first line says what was wrong
        first = (str(exc).splitlines() or [""])[0]
        raise _malformed(f"{type(exc).__name__}: {first}") from None


def _from_asn1(data: bytes, tbs_der: bytes) -> Certificate:
    cert = asn1_x509.Certificate.load(data, strict=True)
    if len(cert) != 3:
        raise _malformed("expected tbsCertificate, signatureAlgorithm and signature")
    tbs = cert["tbs_certificate"]

    # 4a. version
    version = tbs["version"].native
    if version != "v3":
        raise InvalidInputError(f"certificate is X.509 {version}; only v3 is accepted", reason="cert.version")

    # 4b. signature algorithm: SM2-with-SM3, the same inside and outside the TBS
    outer_alg = cert["signature_algorithm"].dump()
    inner_alg = tbs["signature"].dump()
    if outer_alg not in (SM2_WITH_SM3_ALGORITHM_ID, _SM2_WITH_SM3_NULL):
        dotted = cert["signature_algorithm"]["algorithm"].dotted
        name = oids.KNOWN_SIGNATURE_ALGORITHMS.get(dotted, dotted)
        raise InvalidInputError(
            f"certificate is signed with {name}, not SM2-with-SM3 ({oids.SM2_WITH_SM3})",
            reason="cert.algorithm_not_sm2",
        )
    if inner_alg != outer_alg:
        raise InvalidInputError(
            "signatureAlgorithm differs from the signature field inside tbsCertificate",
            reason="cert.algorithm_mismatch",
        )

    # 4c. serial number: positive, at most 20 octets (RFC 5280 §4.1.2.2)
    serial = tbs["serial_number"].native
    if not isinstance(serial, int) or serial <= 0 or serial.bit_length() > 159:
        raise InvalidInputError(
            "certificate serial number must be positive and at most 20 octets",
            reason="cert.serial",
        )

    # 4d. SM2 subject key
    public_key = _public_key(tbs["subject_public_key_info"].dump())

    # 4e. names and validity
    issuer = _name(tbs["issuer"], "issuer")
    subject = _name(tbs["subject"], "subject")
    validity = Validity(
        _time(tbs["validity"]["not_before"], "notBefore"),
        _time(tbs["validity"]["not_after"], "notAfter"),
    )
    if tbs["issuer_unique_id"].native is not None or tbs["subject_unique_id"].native is not None:
        raise _malformed("issuer/subject unique identifiers are not part of the profile")

    # 4f. extensions
    ext = _Extensions.parse(tbs["extensions"])

    sig_body = cert["signature_value"].contents
    if not sig_body or sig_body[0] != 0:
        raise _malformed("signature BIT STRING has unused bits")

    return Certificate(
        der=data,
        tbs_der=tbs_der,
        version=3,
        serial_number=serial,
        signature_algorithm=oids.SM2_WITH_SM3,
        signature=bytes(sig_body[1:]),
        issuer=issuer,
        subject=subject,
        issuer_der=tbs["issuer"].dump(),
        subject_der=tbs["subject"].dump(),
        validity=validity,
        public_key=public_key,
        is_ca=ext.is_ca,
        path_length=ext.path_length,
        key_usage=ext.key_usage,
        extended_key_usage=ext.extended_key_usage,
        subject_key_id=ext.subject_key_id,
        authority_key_id=ext.authority_key_id,
        unhandled_critical_extensions=ext.unhandled_critical,
    )


def _public_key(spki: bytes) -> SM2PublicKey:
    try:
        return SM2PublicKey.from_der(spki)
    except CertLedgerError as exc:
        reason = "cert.key_not_sm2" if exc.reason == "key.not_sm2" else "cert.key_invalid"
        raise InvalidInputError(f"certificate public key: {exc}", reason=reason) from None


def _name(name: Any, what: str) -> DistinguishedName:
    fields: dict[str, str] = {}
    other: list[tuple[str, str]] = []
    credit_code: str | None = None
    for rdn in name.chosen:
        if len(rdn) == 0:
            raise _malformed(f"{what} has an empty RDN")
        for ava in rdn:
            oid = ava["type"].dotted
            text = _attribute_text(ava["value"])
            field = _NAME_FIELDS.get(oid)
            if field is not None and field not in fields:
                fields[field] = text
            elif oid == oids.ORGANIZATION_IDENTIFIER and credit_code is None and text.startswith(CREDIT_CODE_PREFIX):
                credit_code = text[len(CREDIT_CODE_PREFIX) :]
            else:
                other.append((oid, text))
    try:
        return DistinguishedName(**fields, credit_code=credit_code, other=tuple(other))
    except InvalidInputError as exc:
        raise InvalidInputError(f"certificate {what}: {exc}", reason=exc.reason) from None


def _attribute_text(value: Any) -> str:
    native = value.native
    if isinstance(native, str):
        return native
    # not a string type: show it as RFC 4514 hex rather than guess at a decoding
    return "#" + bytes(value.dump()).hex()


def _time(value: Any, what: str) -> datetime:
    native = value.native
    if not isinstance(native, datetime) or native.tzinfo is None:
        raise _malformed(f"{what} is not a usable time")
    return native


class _Extensions:
    """The extensions the profile knows, decoded strictly; the rest noted by criticality."""

    def __init__(self) -> None:
        self.is_ca = False
        self.path_length: int | None = None
        self.key_usage: KeyUsage | None = None
        self.extended_key_usage: tuple[str, ...] = ()
        self.subject_key_id: bytes | None = None
        self.authority_key_id: bytes | None = None
        self.unhandled_critical: tuple[str, ...] = ()

    @classmethod
    def parse(cls, extensions: Any) -> _Extensions:
        out = cls()
        seen: set[str] = set()
        unhandled: list[str] = []
        if isinstance(extensions, asn1_core.Void):
            return out
        for ext in extensions:
            oid = ext["extn_id"].dotted
            if oid in seen:
                raise InvalidInputError(f"certificate has extension {oid} twice", reason="cert.extension_duplicate")
            seen.add(oid)
            raw = ext["extn_value"].contents
            _strict(raw, f"extension {oid}")
            if not out._decode(oid, raw) and ext["critical"].native:
                unhandled.append(oid)
        out.unhandled_critical = tuple(unhandled)
        return out

    def _decode(self, oid: str, raw: bytes) -> bool:
        if oid == oids.BASIC_CONSTRAINTS:
            bc = asn1_x509.BasicConstraints.load(raw, strict=True)
            self.is_ca = bool(bc["ca"].native)
            path_length = bc["path_len_constraint"].native
            if path_length is not None and (not self.is_ca or path_length < 0):
                raise _malformed("pathLenConstraint on a non-CA certificate or negative")
            self.path_length = path_length
        elif oid == oids.KEY_USAGE:
            self.key_usage = _key_usage(raw)
        elif oid == oids.EXTENDED_KEY_USAGE:
            eku = asn1_x509.ExtKeyUsageSyntax.load(raw, strict=True)
            self.extended_key_usage = tuple(purpose.dotted for purpose in eku)
        elif oid == oids.SUBJECT_KEY_IDENTIFIER:
            self.subject_key_id = bytes(asn1_core.OctetString.load(raw, strict=True).native)
        elif oid == oids.AUTHORITY_KEY_IDENTIFIER:
            aki = asn1_x509.AuthorityKeyIdentifier.load(raw, strict=True)
            key_id = aki["key_identifier"].native
            self.authority_key_id = None if key_id is None else bytes(key_id)
        else:
            return False
        return True


def _key_usage(raw: bytes) -> KeyUsage:
    body = der.expect(der.parse_one(raw, what="keyUsage"), der.TAG_BIT_STRING, what="keyUsage")
    if not body or body[0] > 7 or (len(body) == 1 and body[0] != 0):
        raise _malformed("keyUsage BIT STRING is malformed")
    bits = int.from_bytes(body[1:], "big") >> body[0] if len(body) > 1 else 0
    nbits = (len(body) - 1) * 8 - body[0]
    out = KeyUsage(0)
    for i in range(min(nbits, 9)):
        # BIT STRING bit 0 is the most significant bit of the first byte
        if bits >> (nbits - 1 - i) & 1:
            out |= KeyUsage(1 << i)
    return out

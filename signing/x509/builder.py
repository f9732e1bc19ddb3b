"""Issue certificates in the certledger profile, signed SM2-with-SM3.

The builder refuses anything the profile (``signing.x509.profile``) does not
allow instead of writing a certificate that chain validation later rejects:
a subject missing its organization or credit code, an issuer that is not a
CA, an issuer key that does not match the issuer certificate, a certificate
that would outlive its issuer.

Signatures use the GM/T 0009 default signer ID ``1234567812345678``, as
GM/T 0015 (the SM2 certificate profile) requires. After signing, the result is
parsed back and its signature verified, so a faulty signer or encoder can
never hand out a certificate that does not verify.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from typing import Any, Final

from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509

from signing import der, sm3
from signing.errors import InvalidInputError
from signing.sm2 import DEFAULT_SIGNER_ID, SM2PrivateKey, SM2PublicKey
from signing.x509 import oids
from signing.x509.chain import verify_issued_by
from signing.x509.model import Certificate, DistinguishedName, KeyUsage, Role, Validity
from signing.x509.parse import SM2_WITH_SM3_ALGORITHM_ID, parse_der
from signing.x509.profile import PROFILES

#: RFC 5280 §4.1.2.2: at most 20 octets; 159 bits keeps the DER INTEGER positive in 20
SERIAL_BITS: Final = 159
_OID_RE: Final = re.compile(r"[0-2](\.(0|[1-9][0-9]*))+")
_UTC_TIME_LAST_YEAR: Final = 2049


def key_identifier(public_key: SM2PublicKey) -> bytes:
    """Subject key identifier: the leftmost 160 bits of SM3 over the subjectPublicKey bits.

    RFC 7093 method 1 with SM3 in place of SHA-256 (ADR 0003): the usual
    SHA-1 method would bring a hash into the SM2/SM3 profile for no gain.
    """
    return sm3.sm3(public_key.to_bytes())[:20]


def random_serial() -> int:
    """A positive serial number of up to 159 random bits from the OS CSPRNG."""
    while True:
        serial = secrets.randbits(SERIAL_BITS)
        if serial:
            return serial


def resolve_extended_key_usage(value: str) -> str:
    """An EKU given by OpenSSL short name (``clientAuth``) or dotted OID, as a dotted OID."""
    if value in oids.EXTENDED_KEY_USAGES:
        return oids.EXTENDED_KEY_USAGES[value]
    if _OID_RE.fullmatch(value):
        return value
    known = ", ".join(sorted(oids.EXTENDED_KEY_USAGES))
    raise InvalidInputError(
        f"unknown extended key usage {value!r} (use a dotted OID or one of: {known})",
        reason="cert.extended_key_usage",
    )


def issue_root_certificate(
    subject: DistinguishedName,
    key: SM2PrivateKey,
    validity: Validity,
    *,
    path_length: int | None = None,
    serial_number: int | None = None,
) -> Certificate:
    """A self-signed province root CA certificate for ``key``."""
    return issue_certificate(
        role=Role.ROOT,
        subject=subject,
        public_key=key.public_key,
        validity=validity,
        issuer=None,
        issuer_key=key,
        path_length=path_length,
        serial_number=serial_number,
    )


def issue_certificate(
    *,
    role: Role,
    subject: DistinguishedName,
    public_key: SM2PublicKey,
    validity: Validity,
    issuer: Certificate | None,
    issuer_key: SM2PrivateKey,
    extended_key_usage: Sequence[str] = (),
    path_length: int | None = None,
    serial_number: int | None = None,
) -> Certificate:
    """Issue a certificate of ``role`` for ``public_key``, signed by ``issuer_key``.

    ``issuer`` is the CA certificate of ``issuer_key``; it must be None for
    ``Role.ROOT`` (self-signed, then ``issuer_key`` must be the subject's key)
    and given for every other role. ``extended_key_usage`` takes OIDs or
    OpenSSL short names. Raises :class:`InvalidInputError` (reason
    ``cert.profile``, ``cert.issuer_key_mismatch``, ``cert.not_ca``,
    ``cert.path_length``, ``cert.validity`` ...) when the profile forbids it.
    """
    # 1. the role's profile and the subject it needs
    profile = PROFILES[Role(role)]
    profile.check_subject(subject)
    days = (validity.not_after - validity.not_before).total_seconds() / 86400
    if days > profile.max_days:
        raise InvalidInputError(
            f"a {profile.role.value} certificate may be valid for at most {profile.max_days} days",
            reason="cert.validity",
        )
    if path_length is not None and not profile.is_ca:
        raise InvalidInputError("only CA certificates carry a path length", reason="cert.profile")
    if path_length is not None and path_length < 0:
        raise InvalidInputError("path length must not be negative", reason="cert.profile")
    if path_length is None:
        path_length = profile.default_path_length
    ekus = tuple(resolve_extended_key_usage(e) for e in extended_key_usage)
    if len(set(ekus)) != len(ekus):
        raise InvalidInputError("extended key usage listed twice", reason="cert.extended_key_usage")
    if serial_number is not None and not 0 < serial_number < 1 << SERIAL_BITS:
        raise InvalidInputError("serial number must be in [1, 2^159)", reason="cert.serial")

    # 2. the issuer: itself for a root, else a CA whose key is the one given
    subject_name = encode_name(subject)
    own_key_id = key_identifier(public_key)
    if issuer is None:
        if profile.role is not Role.ROOT:
            raise InvalidInputError(
                f"a {profile.role.value} certificate needs an issuing CA certificate",
                reason="cert.profile",
            )
        if issuer_key.public_key != public_key:
            raise InvalidInputError(
                "a self-signed root must be signed by its own key",
                reason="cert.issuer_key_mismatch",
            )
        issuer_name = subject_name
        authority_key_id = own_key_id
    else:
        if profile.role is Role.ROOT:
            raise InvalidInputError("a root certificate is self-signed", reason="cert.profile")
        authority_key_id = _check_issuer(issuer, issuer_key, profile.role, validity)
        issuer_name = asn1_x509.Name.load(issuer.subject_der)

    # 3. the TBSCertificate
    extensions: list[dict[str, Any]] = [
        {
            "extn_id": "basic_constraints",
            "critical": True,
            "extn_value": {"ca": profile.is_ca, "path_len_constraint": path_length} if profile.is_ca else {"ca": False},
        },
        {
            "extn_id": "key_usage",
            "critical": True,
            "extn_value": {m.name.lower() for m in KeyUsage if m in profile.key_usage and m.name},
        },
    ]
    if ekus:
        extensions.append({"extn_id": "extended_key_usage", "critical": False, "extn_value": list(ekus)})
    extensions.append({"extn_id": "key_identifier", "critical": False, "extn_value": own_key_id})
    extensions.append(
        {
            "extn_id": "authority_key_identifier",
            "critical": False,
            "extn_value": {"key_identifier": authority_key_id},
        }
    )
    algorithm = {"algorithm": oids.SM2_WITH_SM3}
    tbs = asn1_x509.TbsCertificate(
        {
            "version": "v3",
            "serial_number": serial_number if serial_number is not None else random_serial(),
            "signature": algorithm,
            "issuer": issuer_name,
            "validity": {
                "not_before": _time(validity.not_before.year, validity.not_before),
                "not_after": _time(validity.not_after.year, validity.not_after),
            },
            "subject": subject_name,
            "subject_public_key_info": asn1_keys.PublicKeyInfo.load(public_key.to_der()),
            "extensions": extensions,
        }
    )

    # 4. sign with the GM/T 0015 default signer ID and assemble
    tbs_der = tbs.dump()
    signature = issuer_key.sign(tbs_der, signer_id=DEFAULT_SIGNER_ID)
    cert_der = der.sequence(tbs_der, SM2_WITH_SM3_ALGORITHM_ID, der.bit_string(signature))

    # 5. parse what was made and check its signature: never hand out a broken certificate
    cert = parse_der(cert_der)
    verify_issued_by(cert, cert if issuer is None else issuer)
    return cert


def _check_issuer(issuer: Certificate, issuer_key: SM2PrivateKey, role: Role, validity: Validity) -> bytes:
    if issuer_key.public_key != issuer.public_key:
        raise InvalidInputError("the CA key does not belong to the CA certificate", reason="cert.issuer_key_mismatch")
    if not issuer.is_ca or (issuer.key_usage is not None and KeyUsage.KEY_CERT_SIGN not in issuer.key_usage):
        raise InvalidInputError(
            f"{issuer.subject.rfc4514()} is not a CA certificate that may sign certificates",
            reason="cert.not_ca",
        )
    if role is Role.CA and issuer.path_length == 0:
        raise InvalidInputError(
            "the issuing CA has path length 0: it may not issue CA certificates",
            reason="cert.path_length",
        )
    if validity.not_after > issuer.not_after:
        raise InvalidInputError(
            f"the certificate would outlive its issuer (issuer expires {issuer.not_after.isoformat()})",
            reason="cert.validity",
        )
    if issuer.subject_key_id is None:
        raise InvalidInputError("the issuing CA certificate has no subject key identifier", reason="cert.profile")
    return issuer.subject_key_id


def encode_name(name: DistinguishedName) -> Any:
    """An asn1crypto ``Name``: one attribute per RDN, C as PrintableString, the rest UTF8String."""
    rdns = []
    for oid, value in name.attributes():
        kind = "printable_string" if oid == oids.COUNTRY else "utf8_string"
        ava = asn1_x509.NameTypeAndValue({"type": oid, "value": asn1_x509.DirectoryString(name=kind, value=value)})
        rdns.append(asn1_x509.RelativeDistinguishedName([ava]))
    return asn1_x509.Name(name="", value=asn1_x509.RDNSequence(rdns))


def _time(year: int, when: Any) -> Any:
    # RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050
    kind = "utc_time" if year <= _UTC_TIME_LAST_YEAR else "general_time"
    return asn1_x509.Time(name=kind, value=when)


__all__ = [
    "SERIAL_BITS",
    "encode_name",
    "issue_certificate",
    "issue_root_certificate",
    "key_identifier",
    "random_serial",
    "resolve_extended_key_usage",
]

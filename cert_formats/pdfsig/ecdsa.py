"""ECDSA P-256 signing identities, for PDF readers that do not know SM2.

Adobe Reader, poppler and browsers' PDF viewers validate ECDSA/SHA-256
signatures but not SM2. A licence PDF may therefore carry a second, ECDSA
signature next to the agency's SM2 one. Its keys and certificates are ordinary
X.509 made with ``cryptography``: :class:`EcdsaSigningIdentity` holds one
(loaded from PEM), and :class:`EcdsaAuthority` is a minimal CA for
deployments and tests that have no other source of P-256 certificates.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from signing.errors import InvalidInputError

#: RFC 9336 id-kp-documentSigning
DOCUMENT_SIGNING_EKU = x509.ObjectIdentifier("1.3.6.1.5.5.7.3.36")
_MAX_PEM_BYTES = 1024 * 1024


def _require_p256_public(public: object, what: str) -> ec.EllipticCurvePublicKey:
    if not isinstance(public, ec.EllipticCurvePublicKey) or not isinstance(public.curve, ec.SECP256R1):
        raise InvalidInputError(f"{what} is not an ECDSA P-256 key", reason="pdf.key_type")
    return public


def load_ecdsa_certificates(pem: bytes) -> list[x509.Certificate]:
    """Every certificate in a PEM bundle (e.g. ECDSA trust anchors); raises ``pdf.certificate``."""
    if len(pem) > _MAX_PEM_BYTES:
        raise InvalidInputError("certificate bundle is too large", reason="pdf.certificate")
    try:
        certs = x509.load_pem_x509_certificates(pem)
    except ValueError as exc:
        raise InvalidInputError(f"cannot read certificates: {exc}", reason="pdf.certificate") from None
    return certs


@dataclass(frozen=True, eq=False)
class EcdsaSigningIdentity:
    """A P-256 private key, its certificate and the CA certificates above it (leaf excluded)."""

    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...] = field(default=())

    def __post_init__(self) -> None:
        if not isinstance(self.key, ec.EllipticCurvePrivateKey) or not isinstance(self.key.curve, ec.SECP256R1):
            raise InvalidInputError("the ECDSA signing key must be a P-256 key", reason="pdf.key_type")
        public = _require_p256_public(self.certificate.public_key(), "the certificate's key")
        if public.public_numbers() != self.key.public_key().public_numbers():
            raise InvalidInputError("the ECDSA key does not belong to the certificate", reason="pdf.key_mismatch")
        object.__setattr__(self, "chain", tuple(self.chain))

    @classmethod
    def from_pem(
        cls, key_pem: bytes, certificate_pem: bytes, chain_pem: bytes = b"", *, passphrase: bytes | None = None
    ) -> EcdsaSigningIdentity:
        """Load a PKCS#8 (optionally encrypted) key, its certificate and an optional chain bundle."""
        try:
            key = serialization.load_pem_private_key(key_pem, password=passphrase)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise InvalidInputError(f"cannot read the ECDSA key: {exc}", reason="pdf.key_type") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise InvalidInputError("the key is not an EC key", reason="pdf.key_type")
        leaf = load_ecdsa_certificates(certificate_pem)
        if len(leaf) != 1:
            raise InvalidInputError("expected exactly one signing certificate", reason="pdf.certificate")
        chain = load_ecdsa_certificates(chain_pem) if chain_pem.strip() else []
        return cls(key=key, certificate=leaf[0], chain=tuple(chain))

    @property
    def subject_common_name(self) -> str | None:
        names = self.certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return str(names[0].value) if names else None


def _name(common_name: str, organization: str | None, country: str | None) -> x509.Name:
    attrs = []
    if country:
        attrs.append(x509.NameAttribute(NameOID.COUNTRY_NAME, country))
    if organization:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attrs)


def _serial() -> int:
    return secrets.randbits(159) | 1


@dataclass(frozen=True, eq=False)
class EcdsaAuthority:
    """A self-signed P-256 CA that issues document-signing certificates.

    Meant for tests, demos and closed deployments; a production deployment
    that wants Adobe to trust the ECDSA signature gets its certificate from a
    CA on the Adobe Approved Trust List instead and loads it with
    :meth:`EcdsaSigningIdentity.from_pem`.
    """

    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    @classmethod
    def create(
        cls,
        common_name: str,
        *,
        organization: str | None = None,
        country: str | None = "CN",
        days: int = 3650,
    ) -> EcdsaAuthority:
        """A fresh P-256 root CA valid for ``days`` (backdated five minutes for clock skew)."""
        key = ec.generate_private_key(ec.SECP256R1())
        name = _name(common_name, organization, country)
        start = datetime.now(UTC) - timedelta(minutes=5)
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(_serial())
            .not_valid_before(start)
            .not_valid_after(start + timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(ski, critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(key=key, certificate=cert)

    def issue_signing_identity(
        self,
        common_name: str,
        *,
        organization: str | None = None,
        country: str | None = "CN",
        days: int = 825,
        key: ec.EllipticCurvePrivateKey | None = None,
    ) -> EcdsaSigningIdentity:
        """A P-256 document-signing identity (digitalSignature + nonRepudiation, EKU documentSigning)."""
        key = key or ec.generate_private_key(ec.SECP256R1())
        _require_p256_public(key.public_key(), "the subject key")
        start = datetime.now(UTC) - timedelta(minutes=5)
        not_after = min(start + timedelta(days=days), self.certificate.not_valid_after_utc)
        issuer_ski = self.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name, organization, country))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(_serial())
            .not_valid_before(start)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=True,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            # RFC 9336 documentSigning says what the key is for; emailProtection is there
            # because Adobe Reader only accepts signer certificates whose EKU (if any)
            # includes one of a short list that predates RFC 9336
            .add_extension(
                x509.ExtendedKeyUsage([DOCUMENT_SIGNING_EKU, ExtendedKeyUsageOID.EMAIL_PROTECTION]),
                critical=False,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuer_ski), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        return EcdsaSigningIdentity(key=key, certificate=cert, chain=(self.certificate,))

    def certificates(self) -> Sequence[x509.Certificate]:
        """The trust anchors a verifier configures for signatures under this CA."""
        return (self.certificate,)

"""The certificate model: names, validity, key usage, roles and the parsed certificate.

No I/O and no ASN.1 library here: :mod:`signing.x509.parse` turns bytes into
these objects and :mod:`signing.x509.builder` turns them into bytes. Every
object validates itself when built, so a ``Certificate`` in hand is always one
that parsed under the profile's rules.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from signing import sm3
from signing.errors import InvalidInputError
from signing.sm2 import SM2PublicKey, encoding
from signing.x509 import oids
from signing.x509.credit_code import validate_credit_code

#: ETSI EN 319 412-1 §5.1.4 semantics identifier: national trade register, China
CREDIT_CODE_PREFIX: Final = "NTRCN-"

# RFC 5280 Appendix A upper bounds (in characters)
_UB_NAME: Final = {
    "common_name": 64,
    "organization": 64,
    "organizational_unit": 64,
    "locality": 128,
    "state": 128,
}
_CONTROL_RE: Final = re.compile(r"[\x00-\x1f\x7f]")


class Role(enum.StrEnum):
    """What a certificate is for in certledger (see ADR 0003)."""

    #: the province root CA: self-issued trust anchor
    ROOT = "root"
    #: a subordinate CA under a province root
    CA = "ca"
    #: an issuing agency (department): signs licence records and seals files
    AGENCY = "agency"
    #: a department node: signs blocks and checkpoints
    NODE = "node"


class KeyUsage(enum.Flag):
    """RFC 5280 §4.2.1.3 key usage bits; the flag value is ``1 << bit``."""

    DIGITAL_SIGNATURE = 1 << 0
    #: X.509 calls it contentCommitment since 2008; the bit is the same
    NON_REPUDIATION = 1 << 1
    KEY_ENCIPHERMENT = 1 << 2
    DATA_ENCIPHERMENT = 1 << 3
    KEY_AGREEMENT = 1 << 4
    KEY_CERT_SIGN = 1 << 5
    CRL_SIGN = 1 << 6
    ENCIPHER_ONLY = 1 << 7
    DECIPHER_ONLY = 1 << 8

    @property
    def names(self) -> tuple[str, ...]:
        """The RFC 5280 (camelCase) names of the bits set, in bit order."""
        return tuple(_KU_NAMES[m] for m in KeyUsage if m in self)

    @classmethod
    def from_names(cls, names: Iterable[str]) -> KeyUsage:
        """Parse names like ``digitalSignature`` or ``digital_signature`` (case-insensitive)."""
        out = cls(0)
        for name in names:
            key = name.replace("_", "").replace("-", "").lower()
            match = _KU_BY_KEY.get(key)
            if match is None:
                raise InvalidInputError(f"unknown key usage {name!r}", reason="cert.key_usage")
            out |= match
        return out


_KU_NAMES: Final = {
    KeyUsage.DIGITAL_SIGNATURE: "digitalSignature",
    KeyUsage.NON_REPUDIATION: "nonRepudiation",
    KeyUsage.KEY_ENCIPHERMENT: "keyEncipherment",
    KeyUsage.DATA_ENCIPHERMENT: "dataEncipherment",
    KeyUsage.KEY_AGREEMENT: "keyAgreement",
    KeyUsage.KEY_CERT_SIGN: "keyCertSign",
    KeyUsage.CRL_SIGN: "cRLSign",
    KeyUsage.ENCIPHER_ONLY: "encipherOnly",
    KeyUsage.DECIPHER_ONLY: "decipherOnly",
}
_KU_BY_KEY: Final = {
    **{v.lower(): k for k, v in _KU_NAMES.items()},
    "contentcommitment": KeyUsage.NON_REPUDIATION,
}


def _check_text(field: str, value: str) -> None:
    if not isinstance(value, str) or not value or value != value.strip():
        raise InvalidInputError(
            f"name attribute {field} must be non-empty text without surrounding spaces",
            reason="cert.name",
        )
    if _CONTROL_RE.search(value):
        # a newline in a name could forge extra lines in any text report that shows it
        raise InvalidInputError(f"name attribute {field} contains control characters", reason="cert.name")


@dataclass(frozen=True)
class DistinguishedName:
    """A subject or issuer name in the certledger profile.

    ``credit_code`` is the 统一社会信用代码, carried as the X.520
    organizationIdentifier ``NTRCN-<code>``. Attributes outside the profile
    (found in certificates made by other tools) are kept in ``other`` as
    ``(oid, text)`` pairs so nothing is silently dropped from a display.
    """

    common_name: str | None = None
    organization: str | None = None
    organizational_unit: str | None = None
    credit_code: str | None = None
    locality: str | None = None
    state: str | None = None
    country: str | None = None
    other: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        for field, limit in _UB_NAME.items():
            value = getattr(self, field)
            if value is None:
                continue
            _check_text(field, value)
            if len(value) > limit:
                raise InvalidInputError(
                    f"name attribute {field} is longer than {limit} characters (RFC 5280)",
                    reason="cert.name",
                )
        if self.country is not None and not re.fullmatch(r"[A-Z]{2}", self.country):
            raise InvalidInputError("country must be a two-letter ISO 3166 code such as CN", reason="cert.name")
        if self.credit_code is not None:
            validate_credit_code(self.credit_code)
        for oid, text in self.other:
            _check_text(oid, text)

    @property
    def organization_identifier(self) -> str | None:
        """The organizationIdentifier value this name encodes, if any."""
        return None if self.credit_code is None else CREDIT_CODE_PREFIX + self.credit_code

    def attributes(self) -> list[tuple[str, str]]:
        """``(oid, value)`` in encoding order: C, ST, L, O, OU, organizationIdentifier, CN."""
        ordered = [
            (oids.COUNTRY, self.country),
            (oids.STATE, self.state),
            (oids.LOCALITY, self.locality),
            (oids.ORGANIZATION, self.organization),
            (oids.ORGANIZATIONAL_UNIT, self.organizational_unit),
            (oids.ORGANIZATION_IDENTIFIER, self.organization_identifier),
            (oids.COMMON_NAME, self.common_name),
        ]
        return [(oid, v) for oid, v in ordered if v is not None] + list(self.other)

    def rfc4514(self) -> str:
        """The RFC 4514 string form (most specific attribute first), for display."""
        short = {
            oids.COUNTRY: "C",
            oids.STATE: "ST",
            oids.LOCALITY: "L",
            oids.ORGANIZATION: "O",
            oids.ORGANIZATIONAL_UNIT: "OU",
            oids.ORGANIZATION_IDENTIFIER: "organizationIdentifier",
            oids.COMMON_NAME: "CN",
        }
        parts = [f"{short.get(oid, oid)}={_escape_rfc4514(v)}" for oid, v in self.attributes()]
        return ",".join(reversed(parts))

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            k: getattr(self, k)
            for k in (
                "country",
                "state",
                "locality",
                "organization",
                "organizational_unit",
                "credit_code",
                "common_name",
            )
            if getattr(self, k) is not None
        }
        if self.other:
            out["other"] = [list(pair) for pair in self.other]
        return out


def _escape_rfc4514(value: str) -> str:
    # names never start or end with spaces (see _check_text), so only these need escaping
    out = re.sub(r'([,+"\\<>;=])', r"\\\1", value)
    return "\\" + out if out.startswith("#") else out


def _require_aware(when: datetime, what: str) -> datetime:
    if not isinstance(when, datetime) or when.tzinfo is None or when.utcoffset() is None:
        raise InvalidInputError(f"{what} must be a timezone-aware datetime", reason="cert.time")
    return when.astimezone(UTC)


@dataclass(frozen=True)
class Validity:
    """The interval in which a certificate may be relied on; both ends inclusive (RFC 5280)."""

    not_before: datetime
    not_after: datetime

    def __post_init__(self) -> None:
        # X.509 times are UTC with whole seconds (RFC 5280 §4.1.2.5): normalize once here
        # so that what the model holds is exactly what the certificate encodes
        nb = _require_aware(self.not_before, "not_before").replace(microsecond=0)
        na = _require_aware(self.not_after, "not_after").replace(microsecond=0)
        if na < nb:
            raise InvalidInputError("not_after is before not_before", reason="cert.validity")
        if nb.year < 1950:
            raise InvalidInputError("validity starts before 1950, which X.509 cannot encode", reason="cert.validity")
        object.__setattr__(self, "not_before", nb)
        object.__setattr__(self, "not_after", na)

    @classmethod
    def for_days(cls, days: int, *, start: datetime | None = None) -> Validity:
        """``days`` long from ``start`` (default: now, backdated five minutes).

        The backdating absorbs clock skew between the issuing host and the
        nodes that check the certificate right after it is made.
        """
        if days < 1:
            raise InvalidInputError("validity must be at least one day", reason="cert.validity")
        begin = (datetime.now(UTC) - timedelta(minutes=5) if start is None else _require_aware(start, "start")).replace(
            microsecond=0
        )
        try:
            end = begin + timedelta(days=days)
        except OverflowError:
            end = datetime.max.replace(tzinfo=UTC)
        if end.year > 9999 or end >= datetime(9999, 12, 31, tzinfo=UTC):
            # X.509 GeneralizedTime ends with year 9999; Python's datetime overflows there too
            raise InvalidInputError("the validity would end after the year 9999", reason="cert.validity")
        return cls(begin, end)

    def contains(self, at: datetime) -> bool:
        """Whether ``at`` (timezone-aware) lies within the interval."""
        when = _require_aware(at, "time")
        return self.not_before <= when <= self.not_after


@dataclass(frozen=True, eq=False)
class Certificate:
    """A parsed X.509 v3 certificate with an SM2 key, signed SM2-with-SM3.

    Build it with :func:`signing.x509.load_certificate` (or the builder, which
    parses what it made); the fields are what that DER says. ``der`` is kept
    so the certificate can be re-emitted byte for byte and embedded in seals
    and CMS structures.
    """

    der: bytes
    tbs_der: bytes
    version: int
    serial_number: int
    signature_algorithm: str
    signature: bytes
    issuer: DistinguishedName
    subject: DistinguishedName
    #: DER of the issuer and subject Names: chains are linked by exact name match
    issuer_der: bytes
    subject_der: bytes
    validity: Validity
    public_key: SM2PublicKey
    is_ca: bool
    path_length: int | None
    #: None when the certificate has no keyUsage extension (the profile requires one)
    key_usage: KeyUsage | None
    extended_key_usage: tuple[str, ...]
    subject_key_id: bytes | None
    authority_key_id: bytes | None
    #: OIDs of critical extensions this code does not process (chain validation refuses them)
    unhandled_critical_extensions: tuple[str, ...] = ()

    def __eq__(self, other: object) -> bool:
        # every other field is derived from the DER, so the DER is the identity
        return isinstance(other, Certificate) and self.der == other.der

    def __hash__(self) -> int:
        return hash(self.der)

    @property
    def is_self_issued(self) -> bool:
        return self.issuer_der == self.subject_der

    @property
    def role(self) -> Role | None:
        """The certledger role the extensions describe, or None if they fit no role."""
        return role_from_extensions(self.is_ca, self.is_self_issued, self.key_usage)

    @property
    def fingerprint(self) -> str:
        """Hex SM3 of the whole certificate DER."""
        return sm3.sm3(self.der).hex()

    @property
    def not_before(self) -> datetime:
        return self.validity.not_before

    @property
    def not_after(self) -> datetime:
        return self.validity.not_after

    def to_pem(self) -> bytes:
        """PEM ``CERTIFICATE`` block, as ``openssl x509`` writes it."""
        return encoding.pem_encode("CERTIFICATE", self.der)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (what ``certledger cert show --json`` prints)."""
        role = self.role
        return {
            "version": self.version,
            "serial_number": f"{self.serial_number:x}",
            "signature_algorithm": self.signature_algorithm,
            "subject": self.subject.as_dict(),
            "subject_dn": self.subject.rfc4514(),
            "issuer": self.issuer.as_dict(),
            "issuer_dn": self.issuer.rfc4514(),
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
            "role": None if role is None else role.value,
            "is_ca": self.is_ca,
            "path_length": self.path_length,
            "key_usage": None if self.key_usage is None else list(self.key_usage.names),
            "extended_key_usage": list(self.extended_key_usage),
            "subject_key_id": None if self.subject_key_id is None else self.subject_key_id.hex(),
            "authority_key_id": None if self.authority_key_id is None else self.authority_key_id.hex(),
            "public_key": self.public_key.to_bytes().hex(),
            "key_id": self.public_key.key_id,
            "fingerprint_sm3": self.fingerprint,
        }


def role_from_extensions(is_ca: bool, self_issued: bool, key_usage: KeyUsage | None) -> Role | None:
    """Map basicConstraints and keyUsage to a role (ADR 0003, "Roles").

    CA certificates are ROOT when self-issued, else CA. End-entity certificates
    need a keyUsage with digitalSignature; nonRepudiation (a legal commitment,
    what an agency makes when it signs a licence record) makes them AGENCY,
    its absence NODE. Anything else fits no role.
    """
    if is_ca:
        if key_usage is not None and KeyUsage.KEY_CERT_SIGN not in key_usage:
            return None
        return Role.ROOT if self_issued else Role.CA
    if key_usage is None or KeyUsage.DIGITAL_SIGNATURE not in key_usage:
        return None
    if key_usage & (KeyUsage.KEY_CERT_SIGN | KeyUsage.CRL_SIGN):
        return None
    return Role.AGENCY if KeyUsage.NON_REPUDIATION in key_usage else Role.NODE

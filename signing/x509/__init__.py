"""X.509 v3 certificates with SM2 keys, signed SM2-with-SM3 (GM/T 0015 profile).

A province root CA issues agency and node certificates; see
docs/adr/0003-certificate-profile.md for the profile and its reasons.

    root = issue_root_certificate(subject, root_key, Validity.for_days(3650))
    agency = issue_certificate(role=Role.AGENCY, subject=..., public_key=...,
                               validity=..., issuer=root, issuer_key=root_key)
    result = verify_chain(load_certificate(data), [], [root],
                          required_usage=KeyUsage.DIGITAL_SIGNATURE)
"""

from signing.x509.builder import (
    issue_certificate,
    issue_root_certificate,
    key_identifier,
    random_serial,
    resolve_extended_key_usage,
)
from signing.x509.chain import ChainVerification, check_validity, verify_chain, verify_issued_by
from signing.x509.credit_code import check_character, validate_credit_code
from signing.x509.model import (
    CREDIT_CODE_PREFIX,
    Certificate,
    DistinguishedName,
    KeyUsage,
    Role,
    Validity,
    role_from_extensions,
)
from signing.x509.parse import (
    MAX_CERTIFICATE_SIZE,
    MAX_CERTIFICATES_PER_FILE,
    load_certificate,
    load_certificates,
    parse_der,
)
from signing.x509.profile import PROFILES, RoleProfile

__all__ = [
    "CREDIT_CODE_PREFIX",
    "MAX_CERTIFICATES_PER_FILE",
    "MAX_CERTIFICATE_SIZE",
    "PROFILES",
    "Certificate",
    "ChainVerification",
    "DistinguishedName",
    "KeyUsage",
    "Role",
    "RoleProfile",
    "Validity",
    "check_character",
    "check_validity",
    "issue_certificate",
    "issue_root_certificate",
    "key_identifier",
    "load_certificate",
    "load_certificates",
    "parse_der",
    "random_serial",
    "resolve_extended_key_usage",
    "role_from_extensions",
    "validate_credit_code",
    "verify_chain",
    "verify_issued_by",
]

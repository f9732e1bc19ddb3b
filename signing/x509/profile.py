"""The certledger certificate profile: what each role's certificate must carry.

One table, used by the builder (what to write) and documented in ADR 0003.
Role *recognition* on parsed certificates is
:func:`signing.x509.model.role_from_extensions`; the two agree by
construction and the tests check it for every role.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from signing.errors import InvalidInputError
from signing.x509.model import DistinguishedName, KeyUsage, Role


@dataclass(frozen=True)
class RoleProfile:
    """The fixed extension content and subject rules of one role."""

    role: Role
    is_ca: bool
    key_usage: KeyUsage
    #: pathLenConstraint written when the caller gives none (None = unlimited)
    default_path_length: int | None
    requires_credit_code: bool
    #: a sanity cap that catches typos such as --days 36500
    max_days: int

    def check_subject(self, subject: DistinguishedName) -> None:
        """Raise InvalidInputError unless ``subject`` has what this role needs."""
        missing = [
            label
            for label, value in (
                ("country", subject.country),
                ("organization", subject.organization),
                ("common name", subject.common_name),
            )
            if value is None
        ]
        if self.requires_credit_code and subject.credit_code is None:
            missing.append("credit code (统一社会信用代码)")
        if missing:
            raise InvalidInputError(
                f"a {self.role.value} certificate subject needs: {', '.join(missing)}",
                reason="cert.profile",
            )
        if subject.other:
            raise InvalidInputError("attributes outside the profile cannot be issued", reason="cert.profile")


PROFILES: Final = {
    Role.ROOT: RoleProfile(
        role=Role.ROOT,
        is_ca=True,
        key_usage=KeyUsage.KEY_CERT_SIGN | KeyUsage.CRL_SIGN,
        default_path_length=None,
        requires_credit_code=False,
        max_days=30 * 366,
    ),
    Role.CA: RoleProfile(
        role=Role.CA,
        is_ca=True,
        key_usage=KeyUsage.KEY_CERT_SIGN | KeyUsage.CRL_SIGN,
        default_path_length=0,
        requires_credit_code=False,
        max_days=20 * 366,
    ),
    Role.AGENCY: RoleProfile(
        role=Role.AGENCY,
        is_ca=False,
        key_usage=KeyUsage.DIGITAL_SIGNATURE | KeyUsage.NON_REPUDIATION,
        default_path_length=None,
        requires_credit_code=True,
        max_days=10 * 366,
    ),
    Role.NODE: RoleProfile(
        role=Role.NODE,
        is_ca=False,
        key_usage=KeyUsage.DIGITAL_SIGNATURE,
        default_path_length=None,
        requires_credit_code=False,
        max_days=10 * 366,
    ),
}

"""The GB/T 36904-2018 electronic licence identifier (电子证照标识).

Structure (six dot-separated parts after the root)::

    1.2.156.3005.2 . {type code} . {issuer code} . {serial} . {version} . {check}
    root OID         证照类型代码    颁发机构代码      流水号     版本号      校验位

* type code: the 18-character 统一社会信用代码 of the agency that *defines* the
  licence type, followed by a 3-digit sequence number (21 characters);
* issuer code: the 18-character 统一社会信用代码 of the issuing agency;
* serial: assigned by the issuer, digits and upper-case letters (1-40 here);
* version: three digits, ``001`` for the first issue;
* check: one ISO/IEC 7064 MOD 37,36 (hybrid system) check character, computed
  over the concatenation ``type code + issuer code + serial + version`` — the
  root OID and the dots are *not* fed into it.

The check-input rule is taken from published identifiers whose check characters
only verify that way (see docs/formats.md and tests/vectors/licence-identifier/).
This module checks structure and the check character only; whether the two codes
inside are valid credit codes is checked by :mod:`cert_formats.licence`.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Final

from signing.errors import InvalidInputError

ROOT_OID: Final = "1.2.156.3005.2"
REASON_BAD_IDENTIFIER: Final = "licence.bad_identifier"
REASON_BAD_IDENTIFIER_CHECK: Final = "licence.bad_identifier_check"

#: ISO/IEC 7064 MOD 37,36 alphabet in value order
MOD37_36_ALPHABET: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_VALUE: Final = {ch: i for i, ch in enumerate(MOD37_36_ALPHABET)}

MAX_SERIAL_LENGTH: Final = 40
MAX_VERSION: Final = 999
#: longest identifier this module produces or accepts (root + 21 + 18 + 40 + 3 + 1 + dots)
MAX_IDENTIFIER_LENGTH: Final = len(ROOT_OID) + 21 + 18 + MAX_SERIAL_LENGTH + 3 + 1 + 5

_TYPE_CODE_RE: Final = re.compile(r"^[0-9A-Z]{18}\d{3}$")
_ISSUER_CODE_RE: Final = re.compile(r"^[0-9A-Z]{18}$")
_SERIAL_RE: Final = re.compile(rf"^[0-9A-Z]{{1,{MAX_SERIAL_LENGTH}}}$")
_VERSION_RE: Final = re.compile(r"^\d{3}$")
_CHECK_RE: Final = re.compile(r"^[0-9A-Z]$")


def mod37_36_check_character(data: str) -> str:
    """The ISO/IEC 7064 MOD 37,36 check character of ``data`` (0-9, A-Z).

    Hybrid system with M = 36: start with P = M; for each character value a,
    S = (P + a) mod M (0 becomes M), P = 2S mod (M + 1). The check character c
    makes (P + c) mod M == 1, i.e. c = (M + 1 - P) mod M.
    """
    if not data:
        raise InvalidInputError("nothing to compute a check character over", reason=REASON_BAD_IDENTIFIER)
    m = 36
    p = m
    for ch in data:
        value = _VALUE.get(ch)
        if value is None:
            raise InvalidInputError(f"character {ch!r} is outside 0-9A-Z", reason=REASON_BAD_IDENTIFIER)
        s = (p + value) % m or m
        p = (2 * s) % (m + 1)
    return MOD37_36_ALPHABET[(m + 1 - p) % m]


def mod37_36_verify(data_with_check: str) -> None:
    """Raise unless the last character of ``data_with_check`` is its MOD 37,36 check."""
    if len(data_with_check) < 2:
        raise InvalidInputError("too short to carry a check character", reason=REASON_BAD_IDENTIFIER)
    expected = mod37_36_check_character(data_with_check[:-1])
    if data_with_check[-1] != expected:
        raise InvalidInputError(
            f"check character {data_with_check[-1]!r} is wrong (expected {expected!r})",
            reason=REASON_BAD_IDENTIFIER_CHECK,
            details={"expected": expected, "found": data_with_check[-1]},
        )


@dataclass(frozen=True)
class LicenceIdentifier:
    """A parsed, check-verified GB/T 36904 identifier. ``str()`` gives its text form."""

    type_code: str
    issuer_code: str
    serial: str
    version: int
    check: str

    def __post_init__(self) -> None:
        _check_parts(self.type_code, self.issuer_code, self.serial, self.version)
        if not isinstance(self.check, str) or not _CHECK_RE.match(self.check):
            raise InvalidInputError("the check character is one of 0-9A-Z", reason=REASON_BAD_IDENTIFIER)
        expected = compute_check_character(self.type_code, self.issuer_code, self.serial, self.version)
        if self.check != expected:
            raise InvalidInputError(
                f"identifier check character {self.check!r} is wrong (expected {expected!r})",
                reason=REASON_BAD_IDENTIFIER_CHECK,
                details={"expected": expected, "found": self.check},
            )

    @classmethod
    def build(cls, type_code: str, issuer_code: str, serial: str, version: int = 1) -> LicenceIdentifier:
        """A new identifier with its check character computed."""
        check = compute_check_character(type_code, issuer_code, serial, version)
        return cls(type_code, issuer_code, serial, version, check)

    @classmethod
    def parse(cls, text: str) -> LicenceIdentifier:
        """Parse and verify the text form; raises ``InvalidInputError`` on any defect.

        Reasons: ``licence.bad_identifier`` (structure) or
        ``licence.bad_identifier_check`` (well formed but the check character is wrong,
        which almost always means a mistyped identifier).
        """
        if not isinstance(text, str) or len(text) > MAX_IDENTIFIER_LENGTH:
            raise InvalidInputError("not a licence identifier (too long)", reason=REASON_BAD_IDENTIFIER)
        prefix = ROOT_OID + "."
        if not text.startswith(prefix):
            raise InvalidInputError(f"a licence identifier starts with {prefix!r}", reason=REASON_BAD_IDENTIFIER)
        parts = text[len(prefix) :].split(".")
        if len(parts) != 5:
            raise InvalidInputError(
                "a licence identifier has type.issuer.serial.version.check after the root",
                reason=REASON_BAD_IDENTIFIER,
            )
        type_code, issuer_code, serial, version_text, check = parts
        if not _VERSION_RE.match(version_text):
            raise InvalidInputError("the version is three digits", reason=REASON_BAD_IDENTIFIER)
        return cls(type_code, issuer_code, serial, int(version_text), check)

    @property
    def version_text(self) -> str:
        """The version as the three digits written in the identifier."""
        return f"{self.version:03d}"

    @property
    def lineage(self) -> str:
        """Root, type, issuer and serial: the part every version of one licence shares."""
        return ".".join((ROOT_OID, self.type_code, self.issuer_code, self.serial))

    def with_version(self, version: int) -> LicenceIdentifier:
        """The identifier of another version of the same licence (check recomputed)."""
        return LicenceIdentifier.build(self.type_code, self.issuer_code, self.serial, version)

    def __str__(self) -> str:
        return f"{self.lineage}.{self.version_text}.{self.check}"


def compute_check_character(type_code: str, issuer_code: str, serial: str, version: int) -> str:
    """The GB/T 36904 check character: MOD 37,36 over type+issuer+serial+version."""
    _check_parts(type_code, issuer_code, serial, version)
    return mod37_36_check_character(f"{type_code}{issuer_code}{serial}{version:03d}")


def new_serial(length: int = 20) -> str:
    """A random serial (流水号) of upper-case letters and digits from the OS CSPRNG.

    Issuers may use their own numbering instead; this is for callers that need a
    serial that will not collide with anything else the issuer has handed out.
    """
    if not 8 <= length <= MAX_SERIAL_LENGTH:
        raise InvalidInputError(f"serial length must be 8..{MAX_SERIAL_LENGTH}", reason=REASON_BAD_IDENTIFIER)
    return "".join(secrets.choice(MOD37_36_ALPHABET) for _ in range(length))


def _check_parts(type_code: object, issuer_code: object, serial: object, version: object) -> None:
    if not isinstance(type_code, str) or not _TYPE_CODE_RE.match(type_code):
        raise InvalidInputError(
            "the type code is an 18-character credit code plus 3 digits",
            reason=REASON_BAD_IDENTIFIER,
        )
    if not isinstance(issuer_code, str) or not _ISSUER_CODE_RE.match(issuer_code):
        raise InvalidInputError("the issuer code is an 18-character credit code", reason=REASON_BAD_IDENTIFIER)
    if not isinstance(serial, str) or not _SERIAL_RE.match(serial):
        raise InvalidInputError(
            f"the serial is 1-{MAX_SERIAL_LENGTH} digits or upper-case letters",
            reason=REASON_BAD_IDENTIFIER,
        )
    # bool is an int: refuse it explicitly so True never becomes version 001
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= MAX_VERSION:
        raise InvalidInputError(f"the version is an integer 1..{MAX_VERSION}", reason=REASON_BAD_IDENTIFIER)

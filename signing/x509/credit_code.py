"""The unified social credit code (统一社会信用代码), GB 32100-2015.

Eighteen characters from a 31-character set (digits and capital letters
without I, O, Z, S, V): registration authority (1), organization type (1),
administrative division code of the registering authority (6 digits), the
GB 11714 organization body code (9) and a check character (1). The check
character is ``C18 = 31 - (sum(Ci * Wi) mod 31)`` with ``Wi = 3^(i-1) mod 31``,
and a result of 31 written as ``0``.

Only the structure the standard fixes is checked here: the character set, the
six-digit division code and the check character. Whether a code was ever issued
is a question for the registry, not for a parser.
"""

from __future__ import annotations

from typing import Final

from signing.errors import InvalidInputError

#: GB 32100-2015 Table 1, in value order
CHARSET: Final = "0123456789ABCDEFGHJKLMNPQRTUWXY"
LENGTH: Final = 18
_VALUE: Final = {ch: i for i, ch in enumerate(CHARSET)}
_WEIGHTS: Final = tuple(pow(3, i, 31) for i in range(LENGTH - 1))


def check_character(first17: str) -> str:
    """The GB 32100 check character for the first 17 characters of a code."""
    if len(first17) != LENGTH - 1 or any(ch not in _VALUE for ch in first17):
        raise InvalidInputError(
            "credit code: 17 characters from the GB 32100 character set expected",
            reason="cert.credit_code",
        )
    total = sum(_VALUE[ch] * w for ch, w in zip(first17, _WEIGHTS, strict=True))
    return CHARSET[(31 - total % 31) % 31]


def validate_credit_code(code: str) -> str:
    """Return ``code`` if it is a well-formed 统一社会信用代码, else raise InvalidInputError.

    Lower-case input is refused rather than upper-cased: the code is an
    identifier that is compared byte for byte once it is in a certificate.
    """
    if not isinstance(code, str) or len(code) != LENGTH:
        raise InvalidInputError(f"credit code must be {LENGTH} characters", reason="cert.credit_code")
    bad = sorted({ch for ch in code if ch not in _VALUE})
    if bad:
        shown = "".join(bad) if all(ch.isprintable() for ch in bad) else repr("".join(bad))
        raise InvalidInputError(
            f"credit code contains characters outside GB 32100 (0-9, A-Y without I O S V Z): {shown}",
            reason="cert.credit_code",
        )
    if not code[2:8].isdigit():
        raise InvalidInputError(
            "credit code: characters 3-8 (administrative division code) must be digits",
            reason="cert.credit_code",
        )
    expected = check_character(code[:17])
    if code[17] != expected:
        raise InvalidInputError(
            f"credit code check character is {code[17]}, GB 32100 gives {expected}",
            reason="cert.credit_code",
        )
    return code

"""Check characters of the two codes that name a licence holder.

* 统一社会信用代码 (unified social credit code, GB 32100-2015): 18 characters from
  the 31-character alphabet ``0-9`` plus ``ABCDEFGHJKLMNPQRTUWXY`` (no I, O, S, V, Z).
  Characters 3-8 are the registering authority's GB/T 2260 region code; the 18th is
  a check character: ``C18 = (31 - sum(Ci * Wi) mod 31) mod 31`` with weights
  ``Wi = 3^(i-1) mod 31``.
* 公民身份号码 (citizen identity number, GB 11643-1999): 17 digits (6-digit region,
  8-digit birth date, 3-digit sequence) plus an ISO 7064 MOD 11-2 check character
  (``0-9`` or ``X``).

Both validators raise :class:`~signing.errors.InvalidInputError` and return the
code unchanged when it is well formed: there is no lenient mode, because a licence
naming a holder by a code that fails its own check is a typo waiting to be signed.
"""

from __future__ import annotations

import datetime as _dt
import re
from typing import Final

from signing.errors import InvalidInputError

REASON_BAD_CREDIT_CODE: Final = "licence.bad_credit_code"
REASON_BAD_ID_NUMBER: Final = "licence.bad_id_number"

#: GB 32100 code alphabet, in value order (I, O, S, V and Z are never used)
USCC_ALPHABET: Final = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_VALUE: Final = {ch: i for i, ch in enumerate(USCC_ALPHABET)}
#: Wi = 3^(i-1) mod 31 for positions 1..17
USCC_WEIGHTS: Final = tuple(pow(3, i, 31) for i in range(17))
_USCC_RE: Final = re.compile(r"^[0-9A-HJ-NPQRTUWXY]{2}\d{6}[0-9A-HJ-NPQRTUWXY]{10}$")

#: GB 11643 weights: 2^(18-i) mod 11 for positions 1..17
ID_NUMBER_WEIGHTS: Final = tuple(pow(2, 17 - i, 11) for i in range(17))
_ID_CHECK: Final = "10X98765432"  # indexed by sum mod 11
_ID_RE: Final = re.compile(r"^\d{17}[0-9X]$")

#: first two digits of a GB/T 2260 code: the provincial-level divisions
PROVINCE_PREFIXES: Final = frozenset(
    {
        "11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35",
        "36", "37", "41", "42", "43", "44", "45", "46", "50", "51", "52", "53", "54",
        "61", "62", "63", "64", "65", "71", "81", "82",
    }
)  # fmt: skip


def uscc_check_character(first17: str) -> str:
    """The GB 32100 check character for the first 17 characters of a credit code."""
    if len(first17) != 17 or any(ch not in _USCC_VALUE for ch in first17):
        raise InvalidInputError(
            "a credit code body is 17 characters from 0-9A-Z without I, O, S, V, Z",
            reason=REASON_BAD_CREDIT_CODE,
        )
    total = sum(_USCC_VALUE[ch] * w for ch, w in zip(first17, USCC_WEIGHTS, strict=True))
    return USCC_ALPHABET[(31 - total % 31) % 31]


def validate_credit_code(code: str) -> str:
    """Check a 统一社会信用代码 (GB 32100): alphabet, layout and check character.

    Returns ``code`` unchanged; raises ``InvalidInputError`` with reason
    ``licence.bad_credit_code`` otherwise. Lower case is refused rather than
    folded, so the code that is signed is the code that was typed.
    """
    if not isinstance(code, str) or not _USCC_RE.match(code):
        raise InvalidInputError(
            f"not a unified social credit code (18 characters, GB 32100): {code!r:.40}",
            reason=REASON_BAD_CREDIT_CODE,
        )
    expected = uscc_check_character(code[:17])
    if code[17] != expected:
        raise InvalidInputError(
            f"credit code {code} fails its check character (expected {expected})",
            reason=REASON_BAD_CREDIT_CODE,
            details={"expected": expected, "found": code[17]},
        )
    return code


def id_number_check_character(first17: str) -> str:
    """The GB 11643 (ISO 7064 MOD 11-2) check character for 17 digits."""
    if len(first17) != 17 or not first17.isascii() or not first17.isdigit():
        raise InvalidInputError("an identity number body is 17 digits", reason=REASON_BAD_ID_NUMBER)
    total = sum(int(ch) * w for ch, w in zip(first17, ID_NUMBER_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11]


def validate_id_number(number: str) -> str:
    """Check an 18-digit 公民身份号码 (GB 11643): region, birth date and check digit.

    Returns ``number`` unchanged; raises ``InvalidInputError`` with reason
    ``licence.bad_id_number`` otherwise. The check character ``X`` must be upper
    case. 15-digit first-generation numbers are refused: they carry no check digit.
    """
    if not isinstance(number, str) or not _ID_RE.match(number):
        raise InvalidInputError(
            "not an 18-character citizen identity number (GB 11643)",
            reason=REASON_BAD_ID_NUMBER,
        )
    if number[:2] not in PROVINCE_PREFIXES:
        raise InvalidInputError(
            "identity number does not start with a GB/T 2260 province code",
            reason=REASON_BAD_ID_NUMBER,
        )
    try:
        _dt.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        raise InvalidInputError(
            "identity number carries an impossible birth date", reason=REASON_BAD_ID_NUMBER
        ) from None
    expected = id_number_check_character(number[:17])
    if number[17] != expected:
        # the number itself is personal data: the error names only the check characters
        raise InvalidInputError(
            f"identity number fails its check character (expected {expected})",
            reason=REASON_BAD_ID_NUMBER,
            details={"expected": expected, "found": number[17]},
        )
    return number

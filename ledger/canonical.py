"""RFC 8785 JSON Canonicalization Scheme (JCS): the one byte form that is hashed and signed.

Two functions make up the public surface:

* :func:`canonical_bytes` turns a JSON value (``dict`` with ``str`` keys, ``list``/``tuple``,
  ``str``, ``int``, ``float``, ``bool``, ``None``) into its RFC 8785 bytes: UTF-8, no
  whitespace, object members sorted by the UTF-16 code units of their names, strings escaped
  per RFC 8785 section 3.2.2.2, numbers written as ECMAScript ``Number.prototype.toString``
  writes them (section 3.2.2.3).
* :func:`parse_canonical` is the strict inverse for bytes that arrive from outside. It
  accepts only input that re-encodes to exactly the same bytes, so there is one and only one
  byte string per value and a signature over the bytes is a signature over the value.

Numbers follow I-JSON (RFC 7493): every number is an IEEE 754 double, so a Python ``int``
outside +-(2**53 - 1) is refused rather than silently rounded. Ledger records use integers
only (``allow_floats=False``, the default of :func:`parse_canonical`).

Every refusal is an :class:`~signing.errors.InvalidInputError` with one of the ``canonical.*``
reason codes defined below.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from itertools import accumulate
from json.encoder import encode_basestring
from typing import Any, Final

from signing.errors import InvalidInputError

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_DEPTH",
    "MAX_NESTING",
    "MAX_SAFE_INTEGER",
    "REASON_DEPTH",
    "REASON_DUPLICATE_KEY",
    "REASON_FLOAT",
    "REASON_NOT_CANONICAL",
    "REASON_NUMBER",
    "REASON_SIZE",
    "REASON_SYNTAX",
    "REASON_TYPE",
    "REASON_UNICODE",
    "REASON_UTF8",
    "canonical_bytes",
    "parse_canonical",
    "reencode_parsed",
]

# -- reason codes (stable; see docs/reason-codes.md) ---------------------------------------

#: a Python value that has no JSON form (set, bytes, object, non-str key, ...)
REASON_TYPE: Final = "canonical.type"
#: NaN, Infinity, or an integer outside the I-JSON range +-(2**53 - 1)
REASON_NUMBER: Final = "canonical.number"
#: a lone surrogate in a string (RFC 8785 section 3.2.2.2 requires refusing it)
REASON_UNICODE: Final = "canonical.unicode"
#: the input is not UTF-8, or starts with a byte order mark
REASON_UTF8: Final = "canonical.utf8"
#: the input is not JSON at all (syntax error, trailing data)
REASON_SYNTAX: Final = "canonical.syntax"
#: an object names the same member twice
REASON_DUPLICATE_KEY: Final = "canonical.duplicate_key"
#: valid JSON, but not in canonical form (whitespace, order, escapes, number spelling)
REASON_NOT_CANONICAL: Final = "canonical.not_canonical"
#: the input is larger than ``max_bytes``
REASON_SIZE: Final = "canonical.too_large"
#: arrays/objects nest deeper than ``max_depth``
REASON_DEPTH: Final = "canonical.too_deep"
#: a number with a fraction or exponent where only integers are allowed
REASON_FLOAT: Final = "canonical.float"

# -- limits ---------------------------------------------------------------------------------

#: largest integer I-JSON allows: every integer up to it is exact as an IEEE 754 double
MAX_SAFE_INTEGER: Final = 2**53 - 1
#: default input size limit of :func:`parse_canonical`; records are digests and metadata
DEFAULT_MAX_BYTES: Final = 1024 * 1024
#: default nesting limit of :func:`parse_canonical` (a record nests 4-5 levels)
DEFAULT_MAX_DEPTH: Final = 64
#: hard nesting limit of the encoder; keeps recursion far below Python's stack limit and turns
#: a cyclic structure into a clean error instead of a RecursionError
MAX_NESTING: Final = 256

_UTF8_BOM: Final = b"\xef\xbb\xbf"
# The longest decimal spelling of a safe integer has 16 digits (9007199254740991).
_SAFE_INT_DIGITS: Final = 16


def _fail(message: str, reason: str, **details: Any) -> InvalidInputError:
    return InvalidInputError(message, reason=reason, details=details or None)


# ===========================================================================================
# Encoding
# ===========================================================================================

# json's C string encoder (the ensure_ascii=False variant) escapes exactly what RFC 8785
# section 3.2.2.2 asks for: \" \\ \b \f \n \r \t, \u00xx (lower-case hex) for the other
# C0 controls, everything else literal. tests/unit/test_canonical.py checks this claim
# against a transcription of the RFC rule over every code point.
_quote: Final[Callable[[str], str]] = encode_basestring
_ONLY_STR: Final = frozenset((str,))


def _es_number(value: float) -> str:
    """Format a finite double as ECMAScript ``Number.prototype.toString`` does (radix 10).

    ``repr`` already yields the shortest digit string that round-trips, choosing the one
    nearest the exact value (the "Note 2" rule RFC 8785 section 3.2.2.3 makes mandatory);
    only the layout differs between Python and ECMAScript, so the digits and the decimal
    exponent are taken from ``repr`` and laid out by ECMA-262 section 7.1.12.1 steps 6-10.
    """
    if value == 0.0:
        return "0"  # covers -0.0: ECMAScript writes both zeros as "0"
    if not math.isfinite(value):
        raise _fail(f"{value!r} is not a JSON number", REASON_NUMBER)
    text = float.__repr__(value)
    sign = ""
    if text[0] == "-":
        sign = "-"
        text = text[1:]
    # digits: the significant decimal digits s; point: n, so that value = 0.s * 10**n
    mantissa, _, exponent = text.partition("e")
    whole, _, fraction = mantissa.partition(".")
    if exponent:
        digits = whole + fraction  # repr's scientific form has exactly one digit before "."
        point = int(exponent) + 1
    elif whole != "0":
        digits = whole + fraction
        point = len(whole)
    else:
        digits = fraction.lstrip("0")
        point = len(digits) - len(fraction)
    digits = digits.rstrip("0")
    k = len(digits)
    if k <= point <= 21:
        return sign + digits + "0" * (point - k)
    if 0 < point <= 21:
        return sign + digits[:point] + "." + digits[point:]
    if -6 < point <= 0:
        return sign + "0." + "0" * -point + digits
    e = point - 1
    exp_text = f"e+{e}" if e >= 0 else f"e-{-e}"
    if k == 1:
        return sign + digits + exp_text
    return sign + digits[0] + "." + digits[1:] + exp_text


def _utf16_key(name: str) -> bytes:
    # Big-endian UTF-16 bytes compare exactly like sequences of UTF-16 code units.
    # "surrogatepass" lets a lone surrogate reach the final UTF-8 step, which refuses it.
    return name.encode("utf-16-be", "surrogatepass")


def _sorted_names(obj: dict[str, Any]) -> list[str]:
    names = sorted(obj)
    # Code point order (Python's) and UTF-16 code unit order agree except where a character
    # above U+FFFF (a surrogate pair in UTF-16) meets one in U+E000..U+FFFF, so the slower
    # UTF-16 key is only needed when some name has a non-BMP character.
    joined = "".join(names)
    if not joined.isascii() and max(joined) > "\uffff":
        names.sort(key=_utf16_key)
    return names


def _normalize_object(obj: dict[Any, Any]) -> dict[str, Any]:
    """Rebuild a dict whose keys are not all exact ``str`` (str subclasses, or an error)."""
    out: dict[str, Any] = {}
    for key, member in obj.items():
        if not isinstance(key, str):
            raise _fail(
                f"object member names must be strings, not {type(key).__name__}", REASON_TYPE
            )
        name = str.__str__(key)
        if name in out:
            raise _fail(f"object member {name!r} appears twice", REASON_DUPLICATE_KEY)
        out[name] = member
    return out


def _int_text(value: int) -> str:
    if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
        return int.__repr__(value)
    # Name huge values by size: str() of an int past 4300 digits raises ValueError.
    shown = str(value) if value.bit_length() <= 128 else f"of {value.bit_length()} bits"
    raise _fail(f"integer {shown} is outside the I-JSON range +-(2**53 - 1)", REASON_NUMBER)


def _too_deep() -> InvalidInputError:
    return _fail(f"arrays/objects nest deeper than {MAX_NESTING} levels", REASON_DEPTH)


def _encode(value: Any, emit: Callable[[str], None], depth: int) -> None:
    # Exact-type dispatch, with strings and integers inside containers written inline:
    # this is the hot path of every ledger append.
    kind = type(value)
    if kind is dict:
        if depth >= MAX_NESTING:
            raise _too_deep()
        if not value:
            emit("{}")
            return
        if not _ONLY_STR.issuperset(map(type, value)):
            value = _normalize_object(value)
        separator = "{"
        for name in _sorted_names(value):
            member = value[name]
            member_kind = type(member)
            if member_kind is str:
                emit(separator + _quote(name) + ":" + _quote(member))
            elif member_kind is int:
                emit(separator + _quote(name) + ":" + _int_text(member))
            else:
                emit(separator + _quote(name) + ":")
                _encode(member, emit, depth + 1)
            separator = ","
        emit("}")
    elif kind is list or kind is tuple:
        if depth >= MAX_NESTING:
            raise _too_deep()
        if not value:
            emit("[]")
            return
        separator = "["
        for member in value:
            if type(member) is str:
                emit(separator + _quote(member))
            else:
                emit(separator)
                _encode(member, emit, depth + 1)
            separator = ","
        emit("]")
    elif kind is str:
        emit(_quote(value))
    elif kind is int:
        emit(_int_text(value))
    elif value is None:
        emit("null")
    elif value is True:
        emit("true")
    elif value is False:
        emit("false")
    elif kind is float:
        emit(_es_number(value))
    # Subclasses (StrEnum, IntEnum, OrderedDict, ...) are written as their base JSON value.
    elif isinstance(value, str):
        emit(_quote(str.__str__(value)))
    elif isinstance(value, int):
        emit(_int_text(int(value)))
    elif isinstance(value, float):
        emit(_es_number(float(value)))
    elif isinstance(value, dict):
        _encode(dict(value), emit, depth)
    elif isinstance(value, (list, tuple)):
        _encode(list(value), emit, depth)
    else:
        raise _fail(f"{kind.__name__} has no JSON representation", REASON_TYPE)


def _to_utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise _fail(
            f"lone surrogate U+{ord(text[exc.start]):04X} in a string", REASON_UNICODE
        ) from None


def canonical_bytes(value: Any) -> bytes:
    """Return the RFC 8785 (JCS) canonical UTF-8 bytes of a JSON value.

    Accepted: ``dict`` with ``str`` keys, ``list``/``tuple``, ``str``, ``int`` within
    +-(2**53 - 1), finite ``float``, ``bool`` and ``None`` (subclasses such as ``StrEnum``
    count as their base value). ``-0.0`` is written as ``0``; a float with an integral
    value is written without a fraction (``1.0`` -> ``1``), as ECMAScript does.

    Raises InvalidInputError with reason ``canonical.type`` (no JSON form, non-str key),
    ``canonical.number`` (NaN, infinity, integer out of range), ``canonical.unicode``
    (lone surrogate), ``canonical.duplicate_key`` (two keys with the same string value) or
    ``canonical.too_deep`` (nesting beyond :data:`MAX_NESTING`, e.g. a cycle).
    """
    parts: list[str] = []
    _encode(value, parts.append, 0)
    return _to_utf8("".join(parts))


def _no_default(value: Any) -> Any:
    raise TypeError(type(value).__name__)  # keeps json strict; the strict decoder never needs it


# Re-encoder for parse_canonical's shortcut. json's C encoder sorts members by code point,
# which is RFC 8785's UTF-16 order while no name holds a character above U+FFFF, and writes
# str/int/bool/None exactly as RFC 8785 does (the string claim is tested over every code
# point). It is only given values from the strict decoder: exact JSON types, safe integers,
# no floats. Everything else goes through canonical_bytes.
_C_ENCODER: Final = json.JSONEncoder(
    ensure_ascii=False,
    allow_nan=False,
    check_circular=False,  # decoder output is a tree of bounded depth
    sort_keys=True,
    separators=(",", ":"),
    default=_no_default,
)


def reencode_parsed(value: Any) -> bytes:
    """:func:`canonical_bytes` for a value built from :func:`parse_canonical` output, at C speed.

    Only for values whose leaves are exact ``str``, ``bool``, ``None`` and integers within
    +-(2**53 - 1) under exact ``dict``/``list`` containers with ``str`` keys — what the strict
    decoder returns with ``allow_floats=False``, plus plain ``str``/``int`` fields a model adds.
    For those, json's C encoder writes RFC 8785 bytes except for the member order of names
    above U+FFFF, so any output holding such a character is redone by :func:`canonical_bytes`.
    (Given a float or a huge integer it would *not* match; callers guarantee there is none.)
    """
    out = _to_utf8(_C_ENCODER.encode(value))
    if _NON_BMP_LEAD.search(out) is not None:
        return canonical_bytes(value)
    return out


# ===========================================================================================
# Strict parsing
# ===========================================================================================

# A JSON string, or an unterminated one running to the end of input. The pattern always
# matches from an opening quote without backtracking (the alternatives never overlap), so
# stripping strings is linear even for hostile input such as '"\"\"\"...'.
_STRING_RE: Final = re.compile(rb'"[^"\\]*(?:\\(?:.|\Z)[^"\\]*)*(?:"|\Z)', re.DOTALL)
# Lead bytes of 4-byte UTF-8 sequences (characters above U+FFFF) and bytes never in UTF-8.
_NON_BMP_LEAD: Final = re.compile(rb"[\xf0-\xff]")
_NOT_BRACKET: Final = bytes(b for b in range(256) if b not in b"[]{}")
_BRACKET_DELTA: Final = tuple(1 if b in b"[{" else -1 if b in b"]}" else 0 for b in range(256))


def _check_depth(data: bytes, max_depth: int) -> None:
    """Refuse nesting deeper than ``max_depth`` before ``json`` recurses into it."""
    # Cheap bound first: fewer openers than the limit cannot nest deeper than it.
    if data.count(b"[") + data.count(b"{") <= max_depth:
        return
    structural = _STRING_RE.sub(b"", data).translate(None, _NOT_BRACKET)
    if structural.count(b"[") + structural.count(b"{") <= max_depth:
        return
    depth = max(accumulate(map(_BRACKET_DELTA.__getitem__, structural)))
    if depth > max_depth:
        raise _fail(
            f"arrays/objects nest {depth} levels deep; the limit is {max_depth}",
            REASON_DEPTH,
            depth=depth,
            limit=max_depth,
        )


def _object_from_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for name, _ in pairs:
            if name in seen:
                raise _fail(f"object member {name!r} appears twice", REASON_DUPLICATE_KEY)
            seen.add(name)
    return obj


def _refuse_constant(name: str) -> Any:
    raise _fail(f"{name} is not a JSON number", REASON_NUMBER)


def _refuse_float(literal: str) -> Any:
    raise _fail(
        f"number {literal[:40]} is not an integer; only integers are allowed here", REASON_FLOAT
    )


def _strict_int(literal: str) -> int:
    # Length check first: int() of a huge literal is slow and raises past 4300 digits.
    if len(literal.lstrip("-")) <= _SAFE_INT_DIGITS:
        number = int(literal)
        if -MAX_SAFE_INTEGER <= number <= MAX_SAFE_INTEGER:
            return number
    raise _fail(
        f"integer {literal[:40]} is outside the I-JSON range +-(2**53 - 1)", REASON_NUMBER
    )


def _int_or_double(literal: str) -> int | float:
    # In JCS every number is a double: a digit-only literal beyond the safe range is the
    # canonical spelling of a large double (e.g. 295147905179352830000 for 2**68).
    if len(literal.lstrip("-")) <= _SAFE_INT_DIGITS:
        number = int(literal)
        if -MAX_SAFE_INTEGER <= number <= MAX_SAFE_INTEGER:
            return number
    return float(literal)


_INTEGER_DECODER: Final = json.JSONDecoder(
    object_pairs_hook=_object_from_pairs,
    parse_float=_refuse_float,
    parse_int=_strict_int,
    parse_constant=_refuse_constant,
)
# no pairs hook: the C scanner builds dicts itself, several times faster (see check_form)
_UNCHECKED_DECODER: Final = json.JSONDecoder(
    parse_float=_refuse_float,
    parse_int=_strict_int,
    parse_constant=_refuse_constant,
)
_NUMBER_DECODER: Final = json.JSONDecoder(
    object_pairs_hook=_object_from_pairs,
    parse_float=float,
    parse_int=_int_or_double,
    parse_constant=_refuse_constant,
)


def _first_difference(a: bytes, b: bytes) -> int:
    block = 4096
    limit = min(len(a), len(b))
    start = 0
    while start < limit and a[start : start + block] == b[start : start + block]:
        start += block
    for i in range(start, min(start + block, limit)):
        if a[i] != b[i]:
            return i
    return limit


def parse_canonical(
    data: bytes | bytearray | memoryview,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
    allow_floats: bool = False,
    check_form: bool = True,
) -> Any:
    """Parse RFC 8785 canonical JSON bytes, refusing anything that is not exactly canonical.

    Steps, in order (each refusal is an InvalidInputError with the reason shown):

    1. type and size: ``bytes``-like (``canonical.type``), at most ``max_bytes``
       (``canonical.too_large``);
    2. encoding: no byte order mark, valid UTF-8 (``canonical.utf8``);
    3. nesting: at most ``max_depth`` (capped at :data:`MAX_NESTING`) arrays/objects
       deep, checked by scanning brackets before the JSON parser recurses
       (``canonical.too_deep``);
    4. JSON: syntax (``canonical.syntax``), duplicate member names
       (``canonical.duplicate_key``), NaN/Infinity or out-of-range integers
       (``canonical.number``), and with ``allow_floats=False`` any number with a fraction
       or exponent (``canonical.float``);
    5. canonical form: the value re-encoded with :func:`canonical_bytes` must equal ``data``
       byte for byte (``canonical.not_canonical``, message names the first differing
       offset; a lone surrogate escape gives ``canonical.unicode``).

    Returns the value: ``dict``, ``list``, ``str``, ``int``, ``float`` (only with
    ``allow_floats=True``; integral doubles come back as ``int``), ``bool`` or ``None``.

    ``check_form=False`` skips step 5 and the duplicate-name check of step 4 (a repeated
    name keeps its last value). Only for callers that compare their own exact re-encoding
    of *everything* parsed with ``data`` afterwards, which refuses both cases anyway (a
    dropped duplicate makes the re-encoding shorter); such a caller should re-run the full
    parse to report why bytes were refused. Not combinable with ``allow_floats``.
    """
    if not check_form and allow_floats:
        raise ValueError("check_form=False needs allow_floats=False: floats have no exact re-encoding")
    # 1. type and size (typed callers pass bytes; untyped ones may pass anything)
    raw: object = data
    if isinstance(raw, (bytearray, memoryview)):
        raw = bytes(raw)
    if not isinstance(raw, bytes):
        raise _fail(f"canonical JSON must be bytes, not {type(raw).__name__}", REASON_TYPE)
    data = raw
    if len(data) > max_bytes:
        raise _fail(
            f"input is {len(data)} bytes; the limit is {max_bytes}",
            REASON_SIZE,
            size=len(data),
            limit=max_bytes,
        )
    # 2. encoding
    if data.startswith(_UTF8_BOM):
        raise _fail("input starts with a UTF-8 byte order mark", REASON_UTF8, offset=0)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _fail(
            f"invalid UTF-8 at byte offset {exc.start}", REASON_UTF8, offset=exc.start
        ) from None
    # 3. nesting, before json.loads recurses
    _check_depth(data, min(max_depth, MAX_NESTING))
    # 4. JSON
    decoder = _NUMBER_DECODER if allow_floats else _INTEGER_DECODER if check_form else _UNCHECKED_DECODER
    try:
        value = decoder.decode(text)
    except json.JSONDecodeError as exc:
        offset = len(text[: exc.pos].encode("utf-8", "surrogatepass"))
        raise _fail(
            f"not JSON: {exc.msg} at byte offset {offset}", REASON_SYNTAX, offset=offset
        ) from None
    except RecursionError:
        # only reachable when the caller itself already runs deep in the interpreter's stack
        raise _fail("arrays/objects nest too deep to parse", REASON_DEPTH) from None
    if not check_form:
        return value
    # 5. canonical form
    # Shortcut: the strict decoder yields exact JSON types, safe integers and no floats;
    # and with no 4-byte UTF-8 sequence in the input, a re-encoding equal to the input holds
    # no character above U+FFFF, so json's code point order was UTF-16 order.
    shortcut = not allow_floats and _NON_BMP_LEAD.search(data) is None
    again = _to_utf8(_C_ENCODER.encode(value)) if shortcut else canonical_bytes(value)
    if again != data:
        # Report the offset against the full encoder, the reference for canonical form.
        offset = _first_difference(data, canonical_bytes(value))
        raise _fail(
            f"not in RFC 8785 canonical form: first difference at byte offset {offset}",
            REASON_NOT_CANONICAL,
            offset=offset,
        )
    return value

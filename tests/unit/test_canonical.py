"""Tests for ledger.canonical: RFC 8785 (JCS) encoding and the strict canonical parser.

Vectors (tests/vectors/jcs/, sources in tests/vectors/README.md):
* RFC 8785 section 3.2.2/3.2.4 sample, section 3.2.3 sorting sample, Appendix B numbers;
* cyberphone/json-canonicalization testdata input/output/outhex pairs;
* the first 10**5 (10**6 when slow tests run) lines of the deterministic es6testfile100m
  number corpus, checked against the SHA-256 prefixes its authors publish.
"""

from __future__ import annotations

import collections
import enum
import hashlib
import json
import math
import random
import shutil
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import canonical
from ledger.canonical import (
    DEFAULT_MAX_DEPTH,
    MAX_NESTING,
    MAX_SAFE_INTEGER,
    canonical_bytes,
    parse_canonical,
)
from signing.errors import InvalidInputError

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "jcs"


def _double(hex_bits: str) -> float:
    value: float = struct.unpack(">d", bytes.fromhex(hex_bits.rjust(16, "0")))[0]
    return value


def _reason(exc_info: pytest.ExceptionInfo[InvalidInputError]) -> str:
    return exc_info.value.reason


# ------------------------------------------------------------------------------------------
# RFC 8785 examples
# ------------------------------------------------------------------------------------------


def test_rfc8785_section_3_2_2_sample_gives_the_section_3_2_4_bytes() -> None:
    value = json.loads((VECTORS / "rfc8785-sec3.2.2-input.json").read_bytes())
    expected = bytes.fromhex((VECTORS / "rfc8785-sec3.2.4-output.hex").read_text())
    assert canonical_bytes(value) == expected
    assert parse_canonical(expected, allow_floats=True) == value


def test_rfc8785_section_3_2_3_sorts_by_utf16_code_units() -> None:
    value = json.loads((VECTORS / "rfc8785-sec3.2.3-sorting.json").read_bytes())
    expected_order = (VECTORS / "rfc8785-sec3.2.3-order.txt").read_text().splitlines()
    encoded = canonical_bytes(value)
    parsed = parse_canonical(encoded)
    assert list(parsed.values()) == expected_order
    # The sample is built so that code point order would put U+FB33 before U+1F600.
    assert [value[k] for k in sorted(value)] != expected_order


def _appendix_b() -> list[tuple[str, str, str]]:
    lines = (VECTORS / "rfc8785-appendix-b.csv").read_text().splitlines()[1:]
    rows = []
    for line in lines:
        hex_bits, expected, comment = line.split(",", 2)
        rows.append((hex_bits, expected, comment))
    assert len(rows) == 26
    return rows


@pytest.mark.parametrize(("hex_bits", "expected", "comment"), _appendix_b())
def test_rfc8785_appendix_b_numbers(hex_bits: str, expected: str, comment: str) -> None:
    value = _double(hex_bits)
    if not expected:  # NaN and Infinity must be refused
        with pytest.raises(InvalidInputError) as exc:
            canonical_bytes(value)
        assert _reason(exc) == canonical.REASON_NUMBER
        return
    assert canonical_bytes(value) == expected.encode(), comment
    assert canonical_bytes([value]) == b"[" + expected.encode() + b"]"
    parsed = parse_canonical(expected.encode(), allow_floats=True)
    assert parsed == value
    assert math.copysign(1.0, parsed) == 1.0 or value < 0  # -0 comes back as 0


def test_negative_zero_is_written_as_zero() -> None:
    assert canonical_bytes(-0.0) == b"0"
    assert canonical_bytes({"z": -0.0}) == b'{"z":0}'


# ------------------------------------------------------------------------------------------
# cyberphone/json-canonicalization testdata
# ------------------------------------------------------------------------------------------

CYBERPHONE = sorted(p.stem for p in (VECTORS / "output").glob("*.json"))


def test_cyberphone_vectors_present() -> None:
    assert CYBERPHONE == ["french", "simpleString", "structures", "unicode", "values", "weird"]


@pytest.mark.parametrize("name", CYBERPHONE)
def test_cyberphone_input_canonicalizes_to_output(name: str) -> None:
    source = (VECTORS / "input" / f"{name}.json").read_bytes()
    expected = (VECTORS / "output" / f"{name}.json").read_bytes()
    value = json.loads(source)
    assert canonical_bytes(value) == expected
    # the published output is canonical, and the non-canonical input is refused
    assert parse_canonical(expected, allow_floats=True) == value
    with pytest.raises(InvalidInputError) as exc:
        parse_canonical(source, allow_floats=True)
    assert _reason(exc) == canonical.REASON_NOT_CANONICAL


@pytest.mark.parametrize("path", sorted((VECTORS / "outhex").glob("*.txt")), ids=lambda p: p.stem)
def test_cyberphone_outhex(path: Path) -> None:
    value = json.loads((VECTORS / "input" / f"{path.stem}.json").read_bytes())
    assert canonical_bytes(value) == bytes.fromhex(path.read_text())


# ------------------------------------------------------------------------------------------
# es6testfile100m: deterministic number corpus with published SHA-256 prefixes
# ------------------------------------------------------------------------------------------


def _es6_corpus_bits() -> Iterator[int]:
    """The IEEE 754 bit patterns of es6testfile100m.txt, in order (algorithm in the
    cyberphone testdata README): the static values, 2000 consecutive small values from
    0x0010000000000000, then doubles read little-endian from an SHA-256 chain started at
    32 zero bytes, skipping zero, NaN and infinities."""
    yield from (int(h, 16) for h in (VECTORS / "es6numgen-static.txt").read_text().split())
    for i in range(2000):
        yield 0x0010000000000000 + i
    block = bytes(32)
    while True:
        block = hashlib.sha256(block).digest()
        for j in range(0, 32, 8):
            bits = int.from_bytes(block[j : j + 8], "little")
            exponent = (bits >> 52) & 0x7FF
            if bits & 0x7FFFFFFFFFFFFFFF == 0 or exponent == 0x7FF:
                continue
            yield bits


def _published_prefix_hashes() -> dict[int, tuple[int, str]]:
    out = {}
    for line in (VECTORS / "es6numgen-sha256.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            lines, size, digest = line.split()
            out[int(lines)] = (int(size), digest)
    return out


def _check_es6_corpus(lines: int) -> None:
    published = _published_prefix_hashes()
    digest = hashlib.sha256()
    size = 0
    checked = 0
    for n, bits in enumerate(_es6_corpus_bits(), 1):
        value = struct.unpack("<d", bits.to_bytes(8, "little"))[0]
        line = f"{bits:x},".encode() + canonical_bytes(value) + b"\n"
        digest.update(line)
        size += len(line)
        if n in published:
            assert (size, digest.hexdigest()) == published[n], f"first {n} lines"
            checked += 1
        if n == lines:
            break
    assert checked == round(math.log10(lines)) - 2


def test_es6_number_corpus_first_100k_lines() -> None:
    _check_es6_corpus(100_000)


@pytest.mark.slow
def test_es6_number_corpus_first_million_lines() -> None:
    _check_es6_corpus(1_000_000)


# ------------------------------------------------------------------------------------------
# String escaping: the json C encoder claim, over every code point
# ------------------------------------------------------------------------------------------


def _rfc8785_escape(ch: str) -> str:
    """RFC 8785 section 3.2.2.2, transcribed: short escapes for the five predefined
    controls and the two mandatory characters, lower-case \\u00xx for other C0 controls,
    everything else as is."""
    short = {"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}
    if ch in short:
        return short[ch]
    if ch == '"':
        return '\\"'
    if ch == "\\":
        return "\\\\"
    if ord(ch) < 0x20:
        return f"\\u{ord(ch):04x}"
    return ch


def _all_scalar_values() -> Iterator[str]:
    for start in range(0, 0x110000, 0x1000):
        yield "".join(chr(c) for c in range(start, start + 0x1000) if not 0xD800 <= c <= 0xDFFF)


def test_json_string_encoder_matches_rfc8785_escaping_for_every_code_point() -> None:
    for chunk in _all_scalar_values():
        expected = '"' + "".join(map(_rfc8785_escape, chunk)) + '"'
        assert json.encoder.encode_basestring(chunk) == expected
        assert json.dumps(chunk, ensure_ascii=False) == expected
        assert canonical_bytes(chunk) == expected.encode()
        assert canonical_bytes({chunk: [1.5]}) == ("{" + expected + ":[1.5]}").encode()
        # parse_canonical re-encodes with json's C encoder when the input allows it
        assert parse_canonical(expected.encode()) == chunk
        assert parse_canonical(("{" + expected + ":1}").encode()) == {chunk: 1}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("\x00\x1f\x7f", b'"\\u0000\\u001f\x7f"'),
        ("/", b'"/"'),
        ("\u2028\u2029", '"\u2028\u2029"'.encode()),
        ("\U0001f600", '"\U0001f600"'.encode()),
        ("é", '"é"'.encode()),
    ],
)
def test_string_escapes(text: str, expected: bytes) -> None:
    assert canonical_bytes(text) == expected
    assert parse_canonical(expected) == text


# ------------------------------------------------------------------------------------------
# Encoder: accepted and refused Python values
# ------------------------------------------------------------------------------------------


class _Kind(enum.StrEnum):
    ISSUE = "ISSUE"


class _Level(enum.IntEnum):
    TWO = 2


def test_encoder_accepts_json_types_and_their_subclasses() -> None:
    assert canonical_bytes(None) == b"null"
    assert canonical_bytes(True) == b"true"
    assert canonical_bytes([False, 0, 1]) == b"[false,0,1]"
    assert canonical_bytes((1, "a")) == b'[1,"a"]'
    assert canonical_bytes({"t": _Kind.ISSUE, "n": _Level.TWO}) == b'{"n":2,"t":"ISSUE"}'
    assert canonical_bytes({_Kind.ISSUE: 1}) == b'{"ISSUE":1}'
    assert canonical_bytes(collections.OrderedDict([("b", 1), ("a", 2)])) == b'{"a":2,"b":1}'
    assert canonical_bytes({}) == b"{}"
    assert canonical_bytes([]) == b"[]"
    assert canonical_bytes(MAX_SAFE_INTEGER) == b"9007199254740991"
    assert canonical_bytes(-MAX_SAFE_INTEGER) == b"-9007199254740991"


def _cycle() -> list[Any]:
    a: list[Any] = []
    a.append(a)
    return a


def _nested(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


def _short_id(value: object) -> str:
    try:
        text = repr(value)
    except ValueError:  # int too large to print
        text = type(value).__name__
    return text[:40]


class _EqualKey(str):
    """A str subclass whose instances never compare equal: two can share a dict."""

    __hash__ = object.__hash__

    def __eq__(self, other: object) -> bool:
        return self is other


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ({1, 2}, canonical.REASON_TYPE),
        (b"bytes", canonical.REASON_TYPE),
        (object(), canonical.REASON_TYPE),
        ({1: "a"}, canonical.REASON_TYPE),
        ({None: "a"}, canonical.REASON_TYPE),
        ({"a": 1, 2: "b"}, canonical.REASON_TYPE),
        ([1, {"x": {1.5}}], canonical.REASON_TYPE),
        (math.nan, canonical.REASON_NUMBER),
        (math.inf, canonical.REASON_NUMBER),
        ([-math.inf], canonical.REASON_NUMBER),
        (MAX_SAFE_INTEGER + 1, canonical.REASON_NUMBER),
        ({"a": -(2**53)}, canonical.REASON_NUMBER),
        (2**64, canonical.REASON_NUMBER),
        (-(10**5000), canonical.REASON_NUMBER),
        ("\ud800", canonical.REASON_UNICODE),
        (["ok", "x\udeadx"], canonical.REASON_UNICODE),
        ({"\udc00": 1}, canonical.REASON_UNICODE),
        ({"\U0001f600\ud800": 1}, canonical.REASON_UNICODE),
        (_cycle(), canonical.REASON_DEPTH),
        (_nested(MAX_NESTING + 1), canonical.REASON_DEPTH),
        ({_EqualKey("a"): 1, _EqualKey("a"): 2}, canonical.REASON_DUPLICATE_KEY),
    ],
    ids=_short_id,
)
def test_encoder_refuses(value: Any, reason: str) -> None:
    with pytest.raises(InvalidInputError) as exc:
        canonical_bytes(value)
    assert _reason(exc) == reason


def test_encoder_nesting_limit_is_inclusive() -> None:
    assert canonical_bytes(_nested(MAX_NESTING)) == b"[" * MAX_NESTING + b"1" + b"]" * MAX_NESTING


# ------------------------------------------------------------------------------------------
# Parser: refusals
# ------------------------------------------------------------------------------------------

NOT_CANONICAL = canonical.REASON_NOT_CANONICAL
REFUSED: list[tuple[str, bytes, str]] = [
    ("space after colon", b'{"a": 1}', NOT_CANONICAL),
    ("space after comma", b"[1, 2]", NOT_CANONICAL),
    ("leading space", b' {"a":1}', NOT_CANONICAL),
    ("trailing newline", b'{"a":1}\n', NOT_CANONICAL),
    ("pretty printed", b'{\n  "a": 1\n}', NOT_CANONICAL),
    ("unsorted keys", b'{"b":1,"a":2}', NOT_CANONICAL),
    ("nested unsorted keys", b'{"a":{"y":1,"x":2}}', NOT_CANONICAL),
    ("code point order, not UTF-16", '{"\ufb33":1,"\U0001f600":2}'.encode(), NOT_CANONICAL),
    ("duplicate keys", b'{"a":1,"a":1}', canonical.REASON_DUPLICATE_KEY),
    ("nested duplicate keys", b'[{"a":1,"b":2,"a":3}]', canonical.REASON_DUPLICATE_KEY),
    ("duplicate via escape", b'{"a":1,"\\u0061":2}', canonical.REASON_DUPLICATE_KEY),
    ("escaped solidus", b'"a\\/b"', NOT_CANONICAL),
    ("unneeded \\u escape", b'"\\u0041"', NOT_CANONICAL),
    ("escaped non-ASCII", b'"\\u00e9"', NOT_CANONICAL),
    ("escaped DEL", b'"\\u007f"', NOT_CANONICAL),
    ("escaped astral pair", b'"\\ud83d\\ude00"', NOT_CANONICAL),
    ("astral key as escapes", b'{"\\ud83d\\ude00":1,"\\ufb33":2}', NOT_CANONICAL),
    ("uppercase hex escape", b'"\\u001F"', NOT_CANONICAL),
    ("\\u escape for newline", b'"\\u000a"', NOT_CANONICAL),
    ("raw control character", b'"\x01"', canonical.REASON_SYNTAX),
    ("leading zero", b"01", canonical.REASON_SYNTAX),
    ("leading zero in array", b"[01]", canonical.REASON_SYNTAX),
    ("negative leading zero", b"-01", canonical.REASON_SYNTAX),
    ("1.0 for 1", b"1.0", canonical.REASON_FLOAT),
    ("float member", b'{"a":1.5}', canonical.REASON_FLOAT),
    ("exponent integer", b"1e2", canonical.REASON_FLOAT),
    ("minus zero", b"-0", NOT_CANONICAL),
    ("plus sign", b"+1", canonical.REASON_SYNTAX),
    ("integer above 2**53-1", b"9007199254740992", canonical.REASON_NUMBER),
    ("integer below -(2**53-1)", b"[-9007199254740992]", canonical.REASON_NUMBER),
    ("huge integer", b"1" + b"0" * 5000, canonical.REASON_NUMBER),
    ("NaN", b"NaN", canonical.REASON_NUMBER),
    ("Infinity", b"[Infinity]", canonical.REASON_NUMBER),
    ("-Infinity", b"-Infinity", canonical.REASON_NUMBER),
    ("BOM", b"\xef\xbb\xbf{}", canonical.REASON_UTF8),
    ("invalid UTF-8 byte", b'"\xff"', canonical.REASON_UTF8),
    ("overlong UTF-8", b'"\xc0\xaf"', canonical.REASON_UTF8),
    ("UTF-8 encoded surrogate", b'"\xed\xa0\x80"', canonical.REASON_UTF8),
    ("truncated UTF-8", b'"\xe2\x82"', canonical.REASON_UTF8),
    ("UTF-16 input", '"a"'.encode("utf-16"), canonical.REASON_UTF8),
    ("lone high surrogate", b'"\\ud800"', canonical.REASON_UNICODE),
    ("lone low surrogate key", b'{"\\udead":1}', canonical.REASON_UNICODE),
    ("trailing garbage", b"{}x", canonical.REASON_SYNTAX),
    ("two documents", b"{}{}", canonical.REASON_SYNTAX),
    ("trailing comma", b"[1,]", canonical.REASON_SYNTAX),
    ("single quotes", b"{'a':1}", canonical.REASON_SYNTAX),
    ("truncated", b'{"a":', canonical.REASON_SYNTAX),
    ("empty", b"", canonical.REASON_SYNTAX),
    ("only whitespace", b" ", canonical.REASON_SYNTAX),
    ("10_000 open brackets", b"[" * 10_000, canonical.REASON_DEPTH),
    ("10_000 nested arrays", b"[" * 10_000 + b"]" * 10_000, canonical.REASON_DEPTH),
    ("deep objects", b'{"a":' * 100 + b"1" + b"}" * 100, canonical.REASON_DEPTH),
]


@pytest.mark.parametrize(("data", "reason"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_parser_refuses(data: bytes, reason: str) -> None:
    with pytest.raises(InvalidInputError) as exc:
        parse_canonical(data)
    assert _reason(exc) == reason, exc.value.message


FLOAT_MODE_REFUSED: list[tuple[str, bytes, str]] = [
    ("1.0 for 1", b"1.0", NOT_CANONICAL),
    ("trailing zero", b"4.50", NOT_CANONICAL),
    ("uppercase exponent", b"1E+30", NOT_CANONICAL),
    ("exponent without sign", b"1e30", NOT_CANONICAL),
    ("exponent where digits belong", b"1e2", NOT_CANONICAL),
    ("digits where exponent belongs", b"1000000000000000000000", NOT_CANONICAL),
    ("small number as exponent", b"1e-6", NOT_CANONICAL),
    ("tiny number as digits", b"0.0000001", NOT_CANONICAL),
    ("minus zero", b"-0.0", NOT_CANONICAL),
    ("more digits than needed", b"333333333.33333329", NOT_CANONICAL),
    ("integer beyond 2**53 not a shortest double", b"9007199254740993", NOT_CANONICAL),
    ("overflow to infinity", b"1e400", canonical.REASON_NUMBER),
]


@pytest.mark.parametrize(
    ("data", "reason"), [r[1:] for r in FLOAT_MODE_REFUSED], ids=[r[0] for r in FLOAT_MODE_REFUSED]
)
def test_parser_refuses_with_floats_allowed(data: bytes, reason: str) -> None:
    with pytest.raises(InvalidInputError) as exc:
        parse_canonical(data, allow_floats=True)
    assert _reason(exc) == reason, exc.value.message


@pytest.mark.parametrize(
    ("data", "value"),
    [
        (b"1.5", 1.5),
        (b"1e+21", 1e21),
        (b"1e-7", 1e-7),
        (b"0.000001", 1e-6),
        (b"295147905179352830000", 2.0**68),
        (b"9007199254740992", 2.0**53),
        (b'{"a":[0.5,-2]}', {"a": [0.5, -2]}),
    ],
)
def test_parser_accepts_canonical_numbers_with_floats_allowed(data: bytes, value: Any) -> None:
    assert parse_canonical(data, allow_floats=True) == value


def test_not_canonical_names_first_differing_offset() -> None:
    with pytest.raises(InvalidInputError) as exc:
        parse_canonical(b'{"b":1,"a":2}')
    assert exc.value.details["offset"] == 2
    assert "offset 2" in exc.value.message
    with pytest.raises(InvalidInputError) as exc:
        parse_canonical(b'{"a":1} ')
    assert exc.value.details["offset"] == 7


def test_size_limit() -> None:
    data = canonical_bytes({"k": "x" * 100})
    assert parse_canonical(data, max_bytes=len(data)) == {"k": "x" * 100}
    with pytest.raises(InvalidInputError) as exc:
        parse_canonical(data, max_bytes=len(data) - 1)
    assert _reason(exc) == canonical.REASON_SIZE
    with pytest.raises(InvalidInputError) as exc:
        parse_canonical(b'"' + b"a" * canonical.DEFAULT_MAX_BYTES + b'"')
    assert _reason(exc) == canonical.REASON_SIZE


def test_depth_limit_is_inclusive_and_ignores_brackets_in_strings() -> None:
    ok = b"[" * DEFAULT_MAX_DEPTH + b"]" * DEFAULT_MAX_DEPTH
    expected: list[Any] = []
    for _ in range(DEFAULT_MAX_DEPTH - 1):
        expected = [expected]
    assert parse_canonical(ok) == expected
    with pytest.raises(InvalidInputError) as exc:
        parse_canonical(b"[" + ok + b"]")
    assert _reason(exc) == canonical.REASON_DEPTH
    with pytest.raises(InvalidInputError):
        parse_canonical(b'{"a":[{"b":[1]}]}', max_depth=3)
    assert parse_canonical(b'{"a":[{"b":[1]}]}', max_depth=4) == {"a": [{"b": [1]}]}
    deep = b"[" * (MAX_NESTING + 1) + b"]" * (MAX_NESTING + 1)
    with pytest.raises(InvalidInputError) as exc:
        parse_canonical(deep, max_depth=10 * MAX_NESTING)  # capped at MAX_NESTING
    assert _reason(exc) == canonical.REASON_DEPTH
    in_string = canonical_bytes(["[{" * 5000 + '\\"[', {"k": "]]]"}])
    assert parse_canonical(in_string) == ["[{" * 5000 + '\\"[', {"k": "]]]"}]


def test_parser_accepts_bytes_like_and_refuses_str() -> None:
    assert parse_canonical(bytearray(b'{"a":1}')) == {"a": 1}
    assert parse_canonical(memoryview(b"[true]")) == [True]
    with pytest.raises(InvalidInputError) as exc:
        parse_canonical('{"a":1}')  # type: ignore[arg-type]
    assert _reason(exc) == canonical.REASON_TYPE


@pytest.mark.parametrize(
    "data",
    [
        b"[" * 200 + b'"' + b'\\"' * 400_000,  # unterminated string of escaped quotes
        b"[" * 200 + b'"' + b"\\" * 700_001,  # odd run of backslashes
        b'["' * 300_000,  # many unterminated strings
        b"[{" * 400_000,
        b"[]" * 500_000,
    ],
    ids=["escaped-quotes", "backslashes", "open-strings", "brackets", "flat-pairs"],
)
def test_hostile_inputs_are_refused_quickly(data: bytes) -> None:
    start = time.process_time()
    with pytest.raises(InvalidInputError):
        parse_canonical(data)
    assert time.process_time() - start < 5.0  # a quadratic scan would take minutes


# ------------------------------------------------------------------------------------------
# Properties (hypothesis)
# ------------------------------------------------------------------------------------------

_text = st.text(st.characters(codec="utf-8"), max_size=12)
_safe_int = st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER)
_double_st = st.floats(allow_nan=False, allow_infinity=False)
_int_json = st.recursive(
    st.none() | st.booleans() | _safe_int | _text,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(_text, inner, max_size=5),
    max_leaves=30,
)
_any_json = st.recursive(
    st.none() | st.booleans() | _safe_int | _double_st | _text,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(_text, inner, max_size=5),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(_any_json)
def test_roundtrip_any_json_value(value: Any) -> None:
    encoded = canonical_bytes(value)
    parsed = parse_canonical(encoded, allow_floats=True)
    assert parsed == value  # 1.0 == 1 and -0.0 == 0 in Python, as in JCS
    assert canonical_bytes(parsed) == encoded  # idempotent


@settings(max_examples=300, deadline=None)
@given(_int_json)
def test_roundtrip_integer_json_value_strict(value: Any) -> None:
    encoded = canonical_bytes(value)
    assert parse_canonical(encoded) == value
    assert canonical_bytes(parse_canonical(encoded)) == encoded


@settings(max_examples=300, deadline=None)
@given(_int_json)
def test_parse_shortcut_encoder_equals_canonical_bytes(value: Any) -> None:
    # parse_canonical re-encodes strict-decoder output without 4-byte UTF-8 sequences
    # with json's C encoder; on that domain it must agree with canonical_bytes.
    encoded = canonical_bytes(value)
    if canonical._NON_BMP_LEAD.search(encoded) is None:
        assert canonical._C_ENCODER.encode(value).encode("utf-8") == encoded


@settings(max_examples=300, deadline=None)
@given(_any_json, st.sampled_from(["indent", "ascii", "unsorted", "spaced"]))
def test_other_serializations_are_refused_unless_identical(value: Any, style: str) -> None:
    encoded = canonical_bytes(value)
    if style == "indent":
        other = json.dumps(value, indent=1, ensure_ascii=False).encode("utf-8")
    elif style == "ascii":
        other = json.dumps(value, ensure_ascii=True, separators=(",", ":"), sort_keys=True).encode()
    elif style == "unsorted":
        other = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    else:
        other = json.dumps(value, ensure_ascii=False, sort_keys=True).encode("utf-8")
    if other == encoded:
        assert parse_canonical(other, allow_floats=True) == value
    else:
        with pytest.raises(InvalidInputError):
            parse_canonical(other, allow_floats=True)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=64))
def test_arbitrary_bytes_never_crash(data: bytes) -> None:
    try:
        value = parse_canonical(data, allow_floats=True)
    except InvalidInputError:
        return
    assert canonical_bytes(value) == data


@settings(max_examples=300, deadline=None)
@given(_double_st)
def test_number_roundtrips_exactly(value: float) -> None:
    text = canonical_bytes(value)
    assert float(text) == value
    assert parse_canonical(text, allow_floats=True) == value


# ------------------------------------------------------------------------------------------
# Differential check against V8 (node): Number::toString, JSON.stringify, code unit sort
# ------------------------------------------------------------------------------------------

# Written for this test: JSON.stringify writes strings and numbers exactly as RFC 8785
# requires; the default Array.prototype.sort compares UTF-16 code units.
_NODE_CANONICALIZE = r"""
const canon = (v) => {
  if (v === null || typeof v !== "object") return JSON.stringify(v);
  if (Array.isArray(v)) return "[" + v.map(canon).join(",") + "]";
  return "{" + Object.keys(v).sort().map((k) => JSON.stringify(k) + ":" + canon(v[k])).join(",") + "}";
};
const lines = require("fs").readFileSync(0, "utf8").split("\n").filter((l) => l.length);
const out = lines.map((l) => Buffer.from(canon(JSON.parse(l)), "utf8").toString("hex"));
process.stdout.write(out.join("\n") + "\n");
"""


def _random_string(rng: random.Random) -> str:
    pools = [(0x20, 0x7E), (0x00, 0x1F), (0x80, 0x7FF), (0xE000, 0xFFFF), (0x10000, 0x10FFFF)]
    chars = []
    for _ in range(rng.randrange(6)):
        lo, hi = rng.choice(pools)
        chars.append(chr(rng.randint(lo, hi)))
    return "".join(chars)


def _random_double(rng: random.Random) -> float:
    while True:
        value: float = struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0]
        if math.isfinite(value):
            return value


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    pick = rng.randrange(9 if depth < 4 else 6)
    if pick == 0:
        return rng.choice([None, True, False])
    if pick == 1:
        return rng.randint(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER)
    if pick in (2, 3):
        return _random_double(rng)
    if pick in (4, 5):
        return _random_string(rng)
    if pick in (6, 7):
        return {_random_string(rng): _random_value(rng, depth + 1) for _ in range(rng.randrange(5))}
    return [_random_value(rng, depth + 1) for _ in range(rng.randrange(5))]


@pytest.mark.interop
def test_matches_node_v8() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    rng = random.Random(8785)
    values: list[Any] = [_random_double(rng) for _ in range(20_000)]
    values += [_random_value(rng) for _ in range(3_000)]
    values += [rng.randint(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER) for _ in range(1_000)]
    request = "".join(json.dumps(v) + "\n" for v in values)
    result = subprocess.run(
        [node, "-e", _NODE_CANONICALIZE],
        input=request.encode(),
        capture_output=True,
        check=True,
        timeout=120,
    )
    got = result.stdout.decode().split()
    assert len(got) == len(values)
    mismatches = [
        (v, bytes.fromhex(h)) for v, h in zip(values, got) if canonical_bytes(v) != bytes.fromhex(h)
    ]
    assert mismatches == []


def test_check_form_false_skips_only_the_form_checks() -> None:
    # for callers that compare their own exact re-encoding with the input afterwards
    unsorted, duplicate = b'{"b":1,"a":2}', b'{"a":1,"a":2}'
    assert parse_canonical(unsorted, check_form=False) == {"b": 1, "a": 2}
    assert parse_canonical(duplicate, check_form=False) == {"a": 2}
    for data, reason in ((unsorted, "canonical.not_canonical"), (duplicate, "canonical.duplicate_key")):
        with pytest.raises(InvalidInputError) as exc:
            parse_canonical(data)
        assert exc.value.reason == reason
    # everything else is still refused
    for bad in (b'{"a":1.5}', b'{"a":', b"\xef\xbb\xbf{}", b"[" * 100 + b"]" * 100, b'{"a":9007199254740992}'):
        with pytest.raises(InvalidInputError):
            parse_canonical(bad, check_form=False, max_depth=32)
    with pytest.raises(ValueError, match="allow_floats"):
        parse_canonical(b"1", check_form=False, allow_floats=True)

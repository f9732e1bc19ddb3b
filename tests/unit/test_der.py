"""The strict DER reader/writer: what it writes is minimal, what it reads must be DER."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from signing import der
from signing.errors import CertLedgerError, InvalidInputError


def _reason(exc: pytest.ExceptionInfo[CertLedgerError]) -> str:
    return exc.value.reason


# -- writer -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "encoded"),
    [
        (0, "020100"),
        (1, "020101"),
        (0x7F, "02017f"),
        (0x80, "02020080"),  # high bit set: a 0x00 keeps it positive
        (0xFF, "020200ff"),
        (0x100, "02020100"),
        (0x7FFF, "02027fff"),
        (0x8000, "0203008000"),
    ],
)
def test_integer_is_minimal_and_positive(n: int, encoded: str) -> None:
    assert der.integer(n).hex() == encoded
    assert der.read_integer(der.parse_one(der.integer(n)), what="x") == n


def test_integer_refuses_negative() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        der.integer(-1)


@pytest.mark.parametrize("size", [0, 1, 0x7F, 0x80, 0xFF, 0x100, 0xFFFF, 0x10000])
def test_length_forms_round_trip(size: int) -> None:
    encoded = der.octet_string(b"\xaa" * size)
    head = encoded[: len(encoded) - size]
    if size < 0x80:
        assert len(head) == 2
    else:  # long form with the fewest length bytes
        assert head[1] == 0x80 | ((size.bit_length() + 7) // 8)
    if len(encoded) <= der.MAX_DER_SIZE:
        node = der.parse_one(encoded)
        assert node.tag == der.TAG_OCTET_STRING and node.value == b"\xaa" * size


@pytest.mark.parametrize(
    "dotted",
    [
        "1.2.156.10197.1.301",
        "1.2.156.10197.1.401",
        "1.2.156.10197.1.501",
        "1.2.840.10045.2.1",
        "2.16.840.1.101.3.4.1.42",
        "0.0",
        "2.999.1",
    ],
)
def test_oid_round_trip(dotted: str) -> None:
    assert der.read_oid(der.parse_one(der.oid(dotted)), what="oid") == dotted


def test_known_oid_encoding() -> None:
    # sm2 curve OID as OpenSSL writes it in SPKI
    assert der.oid("1.2.156.10197.1.301").hex() == "06082a811ccf5501822d"


def test_bit_string_and_sequence() -> None:
    seq = der.sequence(der.integer(5), der.bit_string(b"\x04\x01"), der.tlv(der.TAG_NULL, b""))
    items = der.children(der.parse_one(seq))
    assert [i.tag for i in items] == [der.TAG_INTEGER, der.TAG_BIT_STRING, der.TAG_NULL]
    assert der.read_bit_string(items[1], what="bits") == b"\x04\x01"
    assert der.context(1, b"").hex() == "a100"
    assert der.context(0, b"", constructed=False).hex() == "8000"


# -- reader: every deviation from DER is refused, with a reason ---------------------------


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ("", "der.truncated"),
        ("04", "der.truncated"),
        ("0405aabb", "der.truncated"),  # value shorter than its length
        ("1f0100", "der.malformed"),  # multi-byte tag
        ("0480", "der.malformed"),  # indefinite length
        ("048101aa", "der.malformed"),  # long form for a length < 128
        ("04820080" + "aa" * 0x80, "der.malformed"),  # leading zero length byte
        ("0484000000010a", "der.malformed"),  # 4 length bytes: more than anything here needs
        ("0482ffff", "der.truncated"),  # a long length, no value behind it
        ("040100ff", "der.trailing"),  # one byte too many
    ],
)
def test_reader_rejects(data: str, reason: str) -> None:
    with pytest.raises(InvalidInputError) as exc:
        der.parse_one(bytes.fromhex(data), what="thing")
    assert _reason(exc) == reason
    assert str(exc.value).startswith("thing: ")


def test_size_cap() -> None:
    with pytest.raises(InvalidInputError, match="larger than allowed"):
        der.parse_one(der.octet_string(b"\0" * (der.MAX_DER_SIZE + 1)))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("", "empty INTEGER"),
        ("80", "negative INTEGER"),
        ("ff", "negative INTEGER"),
        ("0001", "non-minimal INTEGER"),
        ("0000", "non-minimal INTEGER"),
        ("007f", "non-minimal INTEGER"),
    ],
)
def test_integer_reader_rejects(body: str, message: str) -> None:
    node = der.TLV(der.TAG_INTEGER, bytes.fromhex(body))
    with pytest.raises(InvalidInputError, match=message) as exc:
        der.read_integer(node, what="r")
    assert exc.value.reason == "der.malformed"


def test_integer_reader_length_cap_and_tag() -> None:
    with pytest.raises(InvalidInputError, match="too long"):
        der.read_integer(der.TLV(der.TAG_INTEGER, b"\x01" * 34), what="r")
    assert der.read_integer(der.TLV(der.TAG_INTEGER, b"\x00\xff" + b"\x01" * 31), what="r") > 0
    with pytest.raises(InvalidInputError, match="expected tag 0x02, found 0x04"):
        der.read_integer(der.TLV(der.TAG_OCTET_STRING, b"\x01"), what="r")


@pytest.mark.parametrize("body", ["", "2a81", "2a8080", "80"])
def test_oid_reader_rejects(body: str) -> None:
    with pytest.raises(InvalidInputError) as exc:
        der.read_oid(der.TLV(der.TAG_OID, bytes.fromhex(body)), what="alg")
    assert exc.value.reason == "der.malformed"


def test_bit_string_with_unused_bits_rejected() -> None:
    for body in (b"", b"\x01\xfe"):
        with pytest.raises(InvalidInputError, match="unused bits"):
            der.read_bit_string(der.TLV(der.TAG_BIT_STRING, body), what="key")


def test_children_limits_count() -> None:
    many = der.sequence(*(der.integer(i) for i in range(17)))
    with pytest.raises(InvalidInputError, match="too many elements"):
        der.children(der.parse_one(many))
    assert len(der.children(der.parse_one(many), max_items=17)) == 17


# -- properties -------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80))
def test_arbitrary_bytes_parse_or_raise_invalid_input(data: bytes) -> None:
    # hostile input: a value or InvalidInputError, never another exception
    try:
        node = der.parse_one(data)
    except InvalidInputError:
        return
    assert der.tlv(node.tag, node.value) == data  # what parses re-encodes to the same bytes


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=2**264 - 1))
def test_integer_round_trip(n: int) -> None:
    encoded = der.integer(n)
    assert der.read_integer(der.parse_one(encoded), what="n", max_bytes=34) == n


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=2**40), min_size=1, max_size=6))
def test_oid_arcs_round_trip(arcs: list[int]) -> None:
    dotted = ".".join(str(a) for a in [1, 2, *arcs])
    assert der.read_oid(der.parse_one(der.oid(dotted)), what="oid") == dotted

"""A strict, minimal DER reader and writer for the few structures signing needs.

Signatures, SPKI and PKCS#8 come from outside and are hostile input: this
reader accepts only definite, minimal lengths, minimal INTEGER encodings and no
trailing bytes, and caps sizes and nesting so that nothing it is handed can
make it allocate or recurse without bound. Anything else raises
:class:`InvalidInputError` naming what was wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from signing.errors import InvalidInputError

TAG_INTEGER: Final = 0x02
TAG_BIT_STRING: Final = 0x03
TAG_OCTET_STRING: Final = 0x04
TAG_NULL: Final = 0x05
TAG_OID: Final = 0x06
TAG_SEQUENCE: Final = 0x30

#: nothing certledger parses with this module is anywhere near this large
MAX_DER_SIZE: Final = 64 * 1024


@dataclass(frozen=True, slots=True)
class TLV:
    tag: int
    value: bytes


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def tlv(tag: int, value: bytes) -> bytes:
    return bytes([tag]) + _length(len(value)) + value


def integer(n: int) -> bytes:
    if n < 0:
        raise ValueError("only non-negative integers are encoded here")
    body = n.to_bytes(max(1, (n.bit_length() + 8) // 8), "big")
    return tlv(TAG_INTEGER, body)


def sequence(*items: bytes) -> bytes:
    return tlv(TAG_SEQUENCE, b"".join(items))


def octet_string(b: bytes) -> bytes:
    return tlv(TAG_OCTET_STRING, b)


def bit_string(b: bytes) -> bytes:
    return tlv(TAG_BIT_STRING, b"\x00" + b)


def oid(dotted: str) -> bytes:
    arcs = [int(a) for a in dotted.split(".")]
    body = bytearray()
    # the first two arcs share one subidentifier, base-128 like the rest (2.999 needs two bytes)
    for arc in [40 * arcs[0] + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        rest = arc >> 7
        while rest:
            chunk.append(0x80 | (rest & 0x7F))
            rest >>= 7
        body.extend(reversed(chunk))
    return tlv(TAG_OID, bytes(body))


def context(n: int, value: bytes, *, constructed: bool = True) -> bytes:
    return tlv((0xA0 if constructed else 0x80) | n, value)


def read_tlv(data: bytes, offset: int = 0, *, what: str = "DER") -> tuple[TLV, int]:
    """Read one TLV at ``offset``; returns it and the offset just past it."""
    if len(data) > MAX_DER_SIZE:
        raise InvalidInputError(f"{what}: {len(data)} bytes is larger than allowed")
    if offset + 2 > len(data):
        raise InvalidInputError(f"{what}: truncated (no tag/length)", reason="der.truncated")
    tag = data[offset]
    if tag & 0x1F == 0x1F:
        raise InvalidInputError(f"{what}: multi-byte tags are not used here", reason="der.malformed")
    first = data[offset + 1]
    pos = offset + 2
    if first < 0x80:
        length = first
    elif first == 0x80:
        raise InvalidInputError(f"{what}: indefinite length is not DER", reason="der.malformed")
    else:
        nbytes = first & 0x7F
        if nbytes > 3 or pos + nbytes > len(data):
            raise InvalidInputError(f"{what}: bad length field", reason="der.malformed")
        raw = data[pos : pos + nbytes]
        length = int.from_bytes(raw, "big")
        if raw[0] == 0 or length < 0x80:
            raise InvalidInputError(f"{what}: non-minimal length", reason="der.malformed")
        pos += nbytes
    end = pos + length
    if end > len(data):
        raise InvalidInputError(f"{what}: truncated value", reason="der.truncated")
    return TLV(tag, data[pos:end]), end


def parse_one(data: bytes, *, what: str = "DER") -> TLV:
    """Exactly one TLV spanning all of ``data``."""
    node, end = read_tlv(data, 0, what=what)
    if end != len(data):
        raise InvalidInputError(f"{what}: {len(data) - end} trailing bytes", reason="der.trailing")
    return node


def children(node: TLV, *, what: str = "DER", max_items: int = 16) -> list[TLV]:
    """The TLVs inside a constructed ``node`` (not recursive)."""
    out: list[TLV] = []
    pos = 0
    while pos < len(node.value):
        child, pos = read_tlv(node.value, pos, what=what)
        out.append(child)
        if len(out) > max_items:
            raise InvalidInputError(f"{what}: too many elements", reason="der.malformed")
    return out


def expect(node: TLV, tag: int, *, what: str) -> bytes:
    if node.tag != tag:
        raise InvalidInputError(
            f"{what}: expected tag 0x{tag:02x}, found 0x{node.tag:02x}", reason="der.malformed"
        )
    return node.value


def read_integer(node: TLV, *, what: str, max_bytes: int = 33) -> int:
    body = expect(node, TAG_INTEGER, what=what)
    if not body:
        raise InvalidInputError(f"{what}: empty INTEGER", reason="der.malformed")
    if len(body) > max_bytes:
        raise InvalidInputError(f"{what}: INTEGER too long", reason="der.malformed")
    if body[0] & 0x80:
        raise InvalidInputError(f"{what}: negative INTEGER", reason="der.malformed")
    if len(body) > 1 and body[0] == 0 and not body[1] & 0x80:
        raise InvalidInputError(f"{what}: non-minimal INTEGER", reason="der.malformed")
    return int.from_bytes(body, "big")


def read_oid(node: TLV, *, what: str) -> str:
    body = expect(node, TAG_OID, what=what)
    if not body or body[-1] & 0x80:
        raise InvalidInputError(f"{what}: malformed OID", reason="der.malformed")
    arcs: list[int] = []
    acc = 0
    for i, byte in enumerate(body):
        if acc == 0 and byte == 0x80 and (i == 0 or not body[i - 1] & 0x80):
            raise InvalidInputError(f"{what}: non-minimal OID arc", reason="der.malformed")
        acc = (acc << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(acc)
            acc = 0
    first = arcs[0]
    head = [0, first] if first < 40 else [1, first - 40] if first < 80 else [2, first - 80]
    return ".".join(str(a) for a in head + arcs[1:])


def read_bit_string(node: TLV, *, what: str) -> bytes:
    body = expect(node, TAG_BIT_STRING, what=what)
    if not body or body[0] != 0:
        raise InvalidInputError(f"{what}: BIT STRING with unused bits", reason="der.malformed")
    return body[1:]

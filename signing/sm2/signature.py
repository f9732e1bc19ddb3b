"""SM2 signature encodings: DER ``SEQUENCE { r INTEGER, s INTEGER }`` and raw r||s.

GM/T 0009 / GB/T 35276 specify the DER form; the 64-byte raw form is what some
hardware and the seal formats' older profiles use. Both decoders enforce
1 <= r, s <= n-1: a signature outside that range is rejected before any curve
arithmetic happens.
"""

from __future__ import annotations

from typing import Final

from signing import der
from signing.errors import InvalidInputError, VerificationError
from signing.sm2.curve import N

RAW_SIZE: Final = 64


def check_range(r: int, s: int) -> None:
    """Raise :class:`VerificationError` unless 1 <= r, s <= n-1 (GB/T 32918.2 §7.1 B1/B2)."""
    if not 1 <= r < N:
        raise VerificationError("SM2 signature r is out of range [1, n-1]", reason="sig.range")
    if not 1 <= s < N:
        raise VerificationError("SM2 signature s is out of range [1, n-1]", reason="sig.range")


def encode_der(r: int, s: int) -> bytes:
    check_range(r, s)
    return der.sequence(der.integer(r), der.integer(s))


def decode_der(sig: bytes) -> tuple[int, int]:
    """Strictly decode a DER SM2 signature; raises on any deviation from DER."""
    if len(sig) > 72:
        raise InvalidInputError(
            f"SM2 signature: {len(sig)} bytes is longer than any DER SM2 signature",
            reason="sig.malformed",
        )
    try:
        seq = der.parse_one(sig, what="SM2 signature")
        der.expect(seq, der.TAG_SEQUENCE, what="SM2 signature")
        items = der.children(seq, what="SM2 signature")
        if len(items) != 2:
            raise InvalidInputError("SM2 signature: expected exactly r and s", reason="sig.malformed")
        r = der.read_integer(items[0], what="SM2 signature r")
        s = der.read_integer(items[1], what="SM2 signature s")
    except InvalidInputError as exc:
        raise InvalidInputError(str(exc), reason="sig.malformed") from None
    check_range(r, s)
    return r, s


def encode_raw(r: int, s: int) -> bytes:
    check_range(r, s)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def decode_raw(sig: bytes) -> tuple[int, int]:
    if len(sig) != RAW_SIZE:
        raise InvalidInputError(
            f"raw SM2 signature must be 64 bytes (r||s), got {len(sig)}", reason="sig.malformed"
        )
    r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
    check_range(r, s)
    return r, s


def raw_to_der(sig: bytes) -> bytes:
    return encode_der(*decode_raw(sig))


def der_to_raw(sig: bytes) -> bytes:
    return encode_raw(*decode_der(sig))

"""Pure-Python SM3 (GB/T 32905-2016), used only where hashlib lacks SM3.

Written from the standard's description (section 5): message padding, the
message expansion W0..W67 / W'0..W'63 and the compression function CF with
the constants T_j. Slow by design of the language; correct by test vectors.
"""

from __future__ import annotations

import struct

_IV = (
    0x7380166F, 0x4914B2B9, 0x172442D7, 0xDA8A0600,
    0xA96F30BC, 0x163138AA, 0xE38DEE4D, 0xB0FB0E4E,
)
_MASK = 0xFFFFFFFF


def _rotl(x: int, n: int) -> int:
    n %= 32
    return ((x << n) | (x >> (32 - n))) & _MASK


def _p0(x: int) -> int:
    return x ^ _rotl(x, 9) ^ _rotl(x, 17)


def _p1(x: int) -> int:
    return x ^ _rotl(x, 15) ^ _rotl(x, 23)


_T = [_rotl(0x79CC4519 if j < 16 else 0x7A879D8A, j) for j in range(64)]


def _compress(v: tuple[int, ...], block: bytes) -> tuple[int, ...]:
    w = list(struct.unpack(">16I", block))
    for j in range(16, 68):
        w.append(_p1(w[j - 16] ^ w[j - 9] ^ _rotl(w[j - 3], 15)) ^ _rotl(w[j - 13], 7) ^ w[j - 6])
    w1 = [w[j] ^ w[j + 4] for j in range(64)]
    a, b, c, d, e, f, g, h = v
    for j in range(64):
        ss1 = _rotl((_rotl(a, 12) + e + _T[j]) & _MASK, 7)
        ss2 = ss1 ^ _rotl(a, 12)
        if j < 16:
            ff = a ^ b ^ c
            gg = e ^ f ^ g
        else:
            ff = (a & b) | (a & c) | (b & c)
            gg = (e & f) | (~e & g)
        tt1 = (ff + d + ss2 + w1[j]) & _MASK
        tt2 = (gg + h + ss1 + w[j]) & _MASK
        d = c
        c = _rotl(b, 9)
        b = a
        a = tt1
        h = g
        g = _rotl(f, 19)
        f = e
        e = _p0(tt2)
    return tuple(x ^ y for x, y in zip((a, b, c, d, e, f, g, h), v, strict=True))


class SM3Pure:
    """hashlib-compatible SM3 object (update / digest / hexdigest / copy)."""

    digest_size = 32
    block_size = 64
    name = "sm3"

    def __init__(self, data: bytes = b"") -> None:
        self._v: tuple[int, ...] = _IV
        self._buf = b""
        self._len = 0
        if data:
            self.update(data)

    def update(self, data: bytes, /) -> None:
        self._len += len(data)
        buf = self._buf + bytes(data)
        full = len(buf) - len(buf) % 64
        v = self._v
        for off in range(0, full, 64):
            v = _compress(v, buf[off : off + 64])
        self._v = v
        self._buf = buf[full:]

    def digest(self) -> bytes:
        bitlen = self._len * 8
        pad = b"\x80" + b"\x00" * ((55 - self._len) % 64) + struct.pack(">Q", bitlen)
        v = self._v
        tail = self._buf + pad
        for off in range(0, len(tail), 64):
            v = _compress(v, tail[off : off + 64])
        return struct.pack(">8I", *v)

    def hexdigest(self) -> str:
        return self.digest().hex()

    def copy(self) -> SM3Pure:
        other = SM3Pure()
        other._v, other._buf, other._len = self._v, self._buf, self._len
        return other

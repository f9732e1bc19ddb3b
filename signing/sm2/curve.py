"""The SM2 recommended curve (GB/T 32918.5-2017) and pure-Python point arithmetic.

The arithmetic is the reference implementation: clear rather than fast. It is
used by the pure-Python backend, for public-key validation and to derive the
public key from a private scalar; the fast path goes through libcrypto.
"""

from __future__ import annotations

from typing import Final

#: prime of the field F_p
P: Final = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF
A: Final = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC
B: Final = 0x28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93
#: order of the base point; the cofactor is 1, so every curve point but O is in the group
N: Final = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123
GX: Final = 0x32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7
GY: Final = 0xBC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0

#: DER OID of the curve (also used as the algorithm parameter in SPKI / PKCS#8)
CURVE_OID: Final = "1.2.156.10197.1.301"

Point = tuple[int, int] | None  # None is the point at infinity
_Jacobian = tuple[int, int, int]  # (X, Y, Z) with x = X/Z^2, y = Y/Z^3; Z == 0 is infinity


def is_on_curve(x: int, y: int) -> bool:
    """True when (x, y) has coordinates in [0, p) and satisfies y^2 = x^3 + ax + b."""
    if not (0 <= x < P and 0 <= y < P):
        return False
    return (y * y - (x * x * x + A * x + B)) % P == 0


def _to_jacobian(pt: Point) -> _Jacobian:
    if pt is None:
        return (1, 1, 0)
    return (pt[0], pt[1], 1)


def _from_jacobian(j: _Jacobian) -> Point:
    x, y, z = j
    if z == 0:
        return None
    zi = pow(z, -1, P)
    zi2 = zi * zi % P
    return (x * zi2 % P, y * zi2 * zi % P)


def _double(j: _Jacobian) -> _Jacobian:
    x1, y1, z1 = j
    if z1 == 0 or y1 == 0:
        return (1, 1, 0)
    # a = -3 mod p for SM2, so M = 3(X - Z^2)(X + Z^2)
    z1sq = z1 * z1 % P
    m = 3 * (x1 - z1sq) * (x1 + z1sq) % P
    y1sq = y1 * y1 % P
    s = 4 * x1 * y1sq % P
    x3 = (m * m - 2 * s) % P
    y3 = (m * (s - x3) - 8 * y1sq * y1sq) % P
    z3 = 2 * y1 * z1 % P
    return (x3, y3, z3)


def _add(p1: _Jacobian, p2: _Jacobian) -> _Jacobian:
    x1, y1, z1 = p1
    x2, y2, z2 = p2
    if z1 == 0:
        return p2
    if z2 == 0:
        return p1
    z1sq = z1 * z1 % P
    z2sq = z2 * z2 % P
    u1 = x1 * z2sq % P
    u2 = x2 * z1sq % P
    s1 = y1 * z2sq * z2 % P
    s2 = y2 * z1sq * z1 % P
    if u1 == u2:
        if s1 != s2:
            return (1, 1, 0)
        return _double(p1)
    h = (u2 - u1) % P
    r = (s2 - s1) % P
    h2 = h * h % P
    h3 = h2 * h % P
    u1h2 = u1 * h2 % P
    x3 = (r * r - h3 - 2 * u1h2) % P
    y3 = (r * (u1h2 - x3) - s1 * h3) % P
    z3 = h * z1 * z2 % P
    return (x3, y3, z3)


def scalar_mult(k: int, pt: Point) -> Point:
    """k * pt by double-and-add (reference code: not constant time)."""
    k %= N
    result: _Jacobian = (1, 1, 0)
    addend = _to_jacobian(pt)
    while k:
        if k & 1:
            result = _add(result, addend)
        addend = _double(addend)
        k >>= 1
    return _from_jacobian(result)


def point_add(p1: Point, p2: Point) -> Point:
    return _from_jacobian(_add(_to_jacobian(p1), _to_jacobian(p2)))


def base_mult(k: int) -> Point:
    return scalar_mult(k, (GX, GY))


def decompress(prefix: int, x: int) -> tuple[int, int] | None:
    """Recover y from x and the parity prefix (0x02 / 0x03); None when x is not on the curve."""
    if not 0 <= x < P:
        return None
    rhs = (x * x * x + A * x + B) % P
    # p = 3 mod 4, so a square root is rhs^((p+1)/4)
    y = pow(rhs, (P + 1) // 4, P)
    if y * y % P != rhs:
        return None
    if (y & 1) != (prefix & 1):
        y = P - y
    return (x, y)

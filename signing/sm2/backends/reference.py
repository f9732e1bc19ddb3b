"""Pure-Python SM2 (GB/T 32918.2 §6.1 signing, §7.1 verification).

The reference backend: written from the standard, used where libcrypto lacks
SM2 and as the independent cross-check of the libcrypto backend in tests. The
nonce k comes from :mod:`secrets` (never :mod:`random`), and every range check
of the standard is done.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from signing.sm2 import curve
from signing.sm2.za import message_digest


def sign_digest(d: int, e: int, k: int) -> tuple[int, int] | None:
    """Steps A4-A6 with a given k; None when k must be redrawn (r = 0, r + k = n, s = 0)."""
    pt = curve.base_mult(k)
    if pt is None:
        return None
    r = (e + pt[0]) % curve.N
    if r == 0 or r + k == curve.N:
        return None
    s = pow(1 + d, -1, curve.N) * (k - r * d) % curve.N
    if s == 0:
        return None
    return r, s


def verify_digest(public_point: tuple[int, int], e: int, r: int, s: int) -> bool:
    # B1, B2: range checks
    if not (1 <= r < curve.N and 1 <= s < curve.N):
        return False
    # B5: t = (r + s) mod n, t != 0
    t = (r + s) % curve.N
    if t == 0:
        return False
    # B6: (x1, y1) = [s]G + [t]P_A
    pt = curve.point_add(curve.base_mult(s), curve.scalar_mult(t, public_point))
    if pt is None:
        return False
    # B7: R = (e + x1) mod n == r
    return (e + pt[0]) % curve.N == r


@dataclass(frozen=True)
class _ReferencePrivate:
    d: int
    public_point: tuple[int, int]

    def sign(self, message: bytes, signer_id: bytes) -> tuple[int, int]:
        e = message_digest(message, signer_id, self.public_point)
        while True:
            k = secrets.randbelow(curve.N - 1) + 1
            out = sign_digest(self.d, e, k)
            if out is not None:
                return out


@dataclass(frozen=True)
class _ReferencePublic:
    public_point: tuple[int, int]

    def verify(self, message: bytes, signer_id: bytes, r: int, s: int) -> bool:
        e = message_digest(message, signer_id, self.public_point)
        return verify_digest(self.public_point, e, r, s)


class ReferenceBackend:
    name = "reference"

    def load_private(self, d: int, public_point: tuple[int, int]) -> _ReferencePrivate:
        return _ReferencePrivate(d, public_point)

    def load_public(self, public_point: tuple[int, int]) -> _ReferencePublic:
        return _ReferencePublic(public_point)

"""The signer-identity digest Z_A and the message digest e (GB/T 32918.2 §5.5, §6.1).

Z_A = SM3(ENTL_A || ID_A || a || b || x_G || y_G || x_A || y_A), ENTL_A being
the bit length of ID_A as two bytes. The ID is always explicit: GM/T 0009 names
``1234567812345678`` as the default, while OpenSSL 3 silently uses an empty ID
unless told otherwise, which would produce signatures nobody else verifies.
"""

from __future__ import annotations

from typing import Final

from signing.errors import InvalidInputError
from signing.sm2 import curve
from signing.sm3 import new as sm3_new

#: GM/T 0009-2012 §10: the default user ID when none is agreed
DEFAULT_SIGNER_ID: Final = b"1234567812345678"
#: ENTL is a 16-bit bit length, so an ID is at most 8191 bytes
MAX_SIGNER_ID_BYTES: Final = 8191

_CURVE_BYTES: Final = b"".join(
    v.to_bytes(32, "big") for v in (curve.A, curve.B, curve.GX, curve.GY)
)


def check_signer_id(signer_id: bytes) -> bytes:
    """Validate a signer ID; an empty one is refused rather than silently used."""
    if not isinstance(signer_id, bytes | bytearray):
        raise InvalidInputError("SM2 signer ID must be bytes", reason="sig.signer_id")
    if not signer_id:
        raise InvalidInputError(
            "SM2 signer ID must not be empty (GM/T 0009 default is 1234567812345678)",
            reason="sig.signer_id",
        )
    if len(signer_id) > MAX_SIGNER_ID_BYTES:
        raise InvalidInputError("SM2 signer ID is longer than 8191 bytes", reason="sig.signer_id")
    return bytes(signer_id)


def z_a(signer_id: bytes, public_point: tuple[int, int]) -> bytes:
    signer_id = check_signer_id(signer_id)
    entl = (len(signer_id) * 8).to_bytes(2, "big")
    h = sm3_new(entl + signer_id + _CURVE_BYTES)
    h.update(public_point[0].to_bytes(32, "big") + public_point[1].to_bytes(32, "big"))
    return h.digest()


def message_digest(message: bytes, signer_id: bytes, public_point: tuple[int, int]) -> int:
    """e = SM3(Z_A || M) as an integer."""
    h = sm3_new(z_a(signer_id, public_point))
    h.update(message)
    return int.from_bytes(h.digest(), "big")

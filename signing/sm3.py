"""SM3 (GB/T 32905-2016) through hashlib, with a pure-Python fallback.

``hashlib.new("sm3")`` is OpenSSL's implementation and is always preferred. The
fallback in :mod:`signing._sm3_pure` exists only for Python builds whose OpenSSL
lacks SM3; both are tested against the same vectors.
"""

from __future__ import annotations

import hashlib
from typing import Final, Protocol

from signing._sm3_pure import SM3Pure

DIGEST_SIZE: Final = 32


class Hasher(Protocol):
    """The slice of the hashlib interface certledger relies on."""

    @property
    def digest_size(self) -> int: ...

    def update(self, data: bytes, /) -> None: ...

    def digest(self) -> bytes: ...

    def hexdigest(self) -> str: ...

    def copy(self) -> Hasher: ...


def _hashlib_has_sm3() -> bool:
    try:
        hashlib.new("sm3")
    except ValueError:
        return False
    return True


#: True when OpenSSL's SM3 is used; False means the pure-Python fallback is active
NATIVE: Final = _hashlib_has_sm3()


def new(data: bytes = b"") -> Hasher:
    """A new SM3 hash object, primed with ``data``."""
    if NATIVE:
        return hashlib.new("sm3", data)
    return SM3Pure(data)


def sm3(data: bytes) -> bytes:
    """The 32-byte SM3 digest of ``data``."""
    if NATIVE:
        return hashlib.new("sm3", data).digest()
    return SM3Pure(data).digest()


def sm3_hex(data: bytes) -> str:
    return sm3(data).hex()

"""The small interface every SM2 backend implements.

Backends see only validated integers: the private scalar d and the public
point (x, y). Key parsing, encodings and ID checks happen once, above them, in
:mod:`signing.sm2.keys`, so the backends stay small and interchangeable.
"""

from __future__ import annotations

from typing import Protocol


class PrivateHandle(Protocol):
    """A private key loaded into a backend; safe to use from several threads."""

    def sign(self, message: bytes, signer_id: bytes) -> tuple[int, int]:
        """Sign ``message`` with GM/T 0009 identity ``signer_id``; returns (r, s)."""
        ...


class PublicHandle(Protocol):
    """A public key loaded into a backend; safe to use from several threads."""

    def verify(self, message: bytes, signer_id: bytes, r: int, s: int) -> bool:
        """True iff (r, s) is a valid signature; never raises for a wrong signature."""
        ...


class SM2Backend(Protocol):
    #: short name used in configuration and benchmark output
    name: str

    def load_private(self, d: int, public_point: tuple[int, int]) -> PrivateHandle: ...

    def load_public(self, public_point: tuple[int, int]) -> PublicHandle: ...

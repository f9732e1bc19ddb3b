"""Choosing the SM2 backend.

libcrypto is the default; the pure-Python reference is used when libcrypto is
missing or lacks SM2, or when ``CERTLEDGER_SM2_BACKEND=reference`` asks for it.
Every backend must pass the GB/T 32918.5-2017 Annex A self-test when it is
first loaded: a backend that gets the standard's example wrong is never used.
"""

from __future__ import annotations

import os
import threading
from typing import Final

from signing.errors import CertLedgerError, CryptoBackendError
from signing.sm2.backends.base import PrivateHandle, PublicHandle, SM2Backend
from signing.sm2.backends.reference import ReferenceBackend, sign_digest

__all__ = ["PrivateHandle", "PublicHandle", "SM2Backend", "available", "get_backend", "self_test"]

# GB/T 32918.5-2017 Annex A: signature example on the recommended curve
ANNEX_A_D: Final = 0x3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8
ANNEX_A_X: Final = 0x09F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020
ANNEX_A_Y: Final = 0xCCEA490CE26775A52DC6EA718CC1AA600AED05FBF35E084A6632F6072DA9AD13
ANNEX_A_ID: Final = b"1234567812345678"
ANNEX_A_MSG: Final = b"message digest"
ANNEX_A_K: Final = 0x59276E27D506861A16680F3AD9C02DCCEF3CC1FA3CDBE4CE6D54B80DEAC1BC21
ANNEX_A_R: Final = 0xF5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3
ANNEX_A_S: Final = 0xB1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA

_lock = threading.Lock()
_cache: dict[str, SM2Backend] = {}


def self_test(backend: SM2Backend) -> None:
    """Raise CryptoBackendError unless ``backend`` reproduces the Annex A example."""
    from signing.sm2.za import message_digest

    pub = (ANNEX_A_X, ANNEX_A_Y)
    handle = backend.load_public(pub)
    if not handle.verify(ANNEX_A_MSG, ANNEX_A_ID, ANNEX_A_R, ANNEX_A_S):
        raise CryptoBackendError(f"SM2 backend {backend.name} rejects the Annex A signature")
    if handle.verify(ANNEX_A_MSG + b".", ANNEX_A_ID, ANNEX_A_R, ANNEX_A_S):
        raise CryptoBackendError(f"SM2 backend {backend.name} accepts a tampered message")
    # the fixed-k signature can only be reproduced by the code that takes k as input
    e = message_digest(ANNEX_A_MSG, ANNEX_A_ID, pub)
    if sign_digest(ANNEX_A_D, e, ANNEX_A_K) != (ANNEX_A_R, ANNEX_A_S):
        raise CryptoBackendError("reference SM2 does not reproduce the Annex A signature")
    # and a fresh signature by this backend must verify under the reference
    r, s = backend.load_private(ANNEX_A_D, pub).sign(b"self-test", ANNEX_A_ID)
    if not ReferenceBackend().load_public(pub).verify(b"self-test", ANNEX_A_ID, r, s):
        raise CryptoBackendError(f"SM2 backend {backend.name} signature fails reference check")


def _make(name: str) -> SM2Backend:
    if name == "reference":
        return ReferenceBackend()
    if name == "libcrypto":
        from signing.sm2.backends.libcrypto import LibcryptoBackend

        return LibcryptoBackend()
    raise CryptoBackendError(f"unknown SM2 backend {name!r} (use libcrypto or reference)")


def get_backend(name: str | None = None) -> SM2Backend:
    """The named backend, or the configured / best available one, self-tested once."""
    requested = name or os.environ.get("CERTLEDGER_SM2_BACKEND") or ""
    with _lock:
        key = requested or "auto"
        if key in _cache:
            return _cache[key]
        candidates = [requested] if requested else ["libcrypto", "reference"]
        errors: list[str] = []
        for candidate in candidates:
            try:
                backend = _make(candidate)
                self_test(backend)
            except CertLedgerError as exc:
                errors.append(f"{candidate}: {exc}")
                continue
            _cache[key] = backend
            return backend
        raise CryptoBackendError("no usable SM2 backend: " + "; ".join(errors))


def available() -> list[str]:
    """Names of the backends that load and pass the self-test here."""
    out = []
    for name in ("libcrypto", "reference"):
        try:
            get_backend(name)
        except CryptoBackendError:
            continue
        out.append(name)
    return out

"""A memory of SM2 verifications that passed, for signatures a process sees again and again.

A verifier of licence files checks the same few signatures on every file: each agency
certificate's signature by its province root, each seal's signature by its maker. Those
inputs repeat exactly; the answer for identical inputs is identical, so a verification that
passed once need not be redone. The memory is keyed by *everything* the answer depends on —
the public point, the signer ID, the exact DER signature and the exact message bytes — so
no other input can ever hit an entry; failures are never remembered (a bad signature is
rechecked and refused every time). Bounded (least recently used out) and thread-safe.

Not used for signatures that are new on every call (record signatures, a file's own
SES_Signature or CMS signature): remembering those would only cost memory.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Final

from signing.sm2.keys import SM2PublicKey
from signing.sm2.za import DEFAULT_SIGNER_ID

#: entries per memory: far more than the certificates and seals of every province
DEFAULT_SIZE: Final = 1024


class VerifiedSignatures:
    """``verify`` is :meth:`SM2PublicKey.verify`, skipping inputs that already passed."""

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        if size < 1:
            raise ValueError("the memory needs room for at least one entry")
        self._size = size
        self._passed: OrderedDict[tuple[int, int, bytes, bytes, bytes], None] = OrderedDict()
        self._lock = threading.Lock()

    def verify(
        self, key: SM2PublicKey, sig_der: bytes, message: bytes, *, signer_id: bytes = DEFAULT_SIGNER_ID
    ) -> None:
        """Raise exactly as ``key.verify`` would; return at once for inputs that passed before."""
        entry = (key.x, key.y, bytes(signer_id), bytes(sig_der), bytes(message))
        with self._lock:
            if entry in self._passed:
                self._passed.move_to_end(entry)
                return
        key.verify(entry[3], entry[4], signer_id=entry[2])  # raises: nothing is remembered
        with self._lock:
            self._passed[entry] = None
            self._passed.move_to_end(entry)
            while len(self._passed) > self._size:
                self._passed.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._passed)

    def clear(self) -> None:
        with self._lock:
            self._passed.clear()

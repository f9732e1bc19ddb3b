"""Sets of known note verifiers, and building a verifier from a verifier key string."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator

from signing.errors import InvalidInputError
from signing.note.cosignature import DEFAULT_MAX_FUTURE_SKEW, Clock, CosignatureVerifier
from signing.note.ed25519 import Ed25519NoteVerifier
from signing.note.keys import TYPE_COSIGNATURE_V1, TYPE_ED25519, TYPE_SM2_SM3, decode_verifier_key
from signing.note.model import Verifier
from signing.note.sm2 import SM2NoteVerifier
from signing.sm2.backends import SM2Backend


class VerifierSet:
    """The known keys, looked up by (key name, key ID) as signed-note prescribes.

    Two verifiers with the same name and key ID make the set ambiguous: that is a
    configuration error and is refused when the set is built, rather than when a
    note happens to carry that key (golang's VerifierList defers it to lookup).
    """

    __slots__ = ("_by_key",)

    def __init__(self, verifiers: Iterable[Verifier] = ()) -> None:
        self._by_key: dict[tuple[str, int], Verifier] = {}
        for v in verifiers:
            key = (v.name, v.key_hash)
            if key in self._by_key:
                raise InvalidInputError(
                    f"ambiguous key {v.name}+{v.key_hash:08x}: configured twice",
                    reason="note.verifier_ambiguous",
                )
            self._by_key[key] = v

    def lookup(self, name: str, key_hash: int) -> Verifier | None:
        """The verifier for exactly this name and key ID, or None (an unknown key)."""
        return self._by_key.get((name, key_hash))

    @property
    def names(self) -> frozenset[str]:
        return frozenset(name for name, _ in self._by_key)

    def __len__(self) -> int:
        return len(self._by_key)

    def __iter__(self) -> Iterator[Verifier]:
        return iter(self._by_key.values())


def verifier_from_key(
    vkey: str,
    *,
    sm2_backend: SM2Backend | None = None,
    max_future_skew: int | None = DEFAULT_MAX_FUTURE_SKEW,
    clock: Clock = time.time,
) -> Verifier:
    """A verifier for a vkey string of any supported type.

    0x01 Ed25519, 0x04 cosignature/v1 (Ed25519), 0xff certledger SM2/SM3. Any
    other type is refused (``note.key_type``): a key we cannot check is not a key
    we can trust.
    """
    kind = decode_verifier_key(vkey).type_and_key
    if kind[:1] == TYPE_ED25519:
        return Ed25519NoteVerifier.from_verifier_key(vkey)
    if kind[:1] == TYPE_COSIGNATURE_V1:
        return CosignatureVerifier.from_verifier_key(
            vkey, max_future_skew=max_future_skew, clock=clock
        )
    if kind.startswith(TYPE_SM2_SM3):
        return SM2NoteVerifier.from_verifier_key(vkey, backend=sm2_backend)
    raise InvalidInputError(
        f"verifier key type 0x{kind[0]:02x} is not supported", reason="note.key_type"
    )

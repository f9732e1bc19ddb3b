"""Timestamped Ed25519 cosignatures, signature type 0x04 (c2sp.org/tlog-cosignature).

A cosignature is a note signature whose bytes are a ``timestamped_signature``::

    u64 timestamp (big-endian, POSIX seconds, <= 2^63 - 1) || Ed25519 signature (64)

and whose signed message is::

    "cosignature/v1\\n" || "time " || decimal(timestamp) || "\\n" || note text

The key ID is ``SHA-256(name || 0x0A || 0x04 || 32-byte public key)[:4]``. The
signed message does not commit to the cosigner name, so the spec requires a
distinct key per cosigner; the verifier key binds the name through the key ID.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from signing.ed25519 import SEED_SIZE, SIGNATURE_SIZE, Ed25519PrivateKey, Ed25519PublicKey
from signing.errors import InvalidInputError, VerificationError
from signing.note.keys import (
    TYPE_COSIGNATURE_V1,
    TYPE_ED25519,
    decode_signer_key,
    decode_verifier_key,
    encode_verifier_key,
    key_id,
)
from signing.note.model import NoteSignature
from signing.note.syntax import check_key_name

#: 8-byte timestamp followed by the 64-byte Ed25519 signature
COSIGNATURE_SIZE: Final = 8 + SIGNATURE_SIZE
MAX_TIMESTAMP: Final = (1 << 63) - 1
#: default tolerance for a cosigner clock that runs ahead of ours
DEFAULT_MAX_FUTURE_SKEW: Final = 600

Clock = Callable[[], float]


def cosignature_message(text: bytes, timestamp: int) -> bytes:
    """The bytes a cosigner signs for ``text`` at ``timestamp``."""
    if not 0 <= timestamp <= MAX_TIMESTAMP:
        raise InvalidInputError(
            "cosignature timestamp out of range", reason="cosignature.timestamp"
        )
    return b"cosignature/v1\ntime %d\n" % timestamp + text


def cosignature_timestamp(sig: NoteSignature | bytes) -> int:
    """The POSIX timestamp inside a cosignature (line or raw signature bytes).

    Decoding only: it says nothing about validity unless the signature was verified.
    """
    raw = sig.signature if isinstance(sig, NoteSignature) else sig
    if len(raw) != COSIGNATURE_SIZE:
        raise InvalidInputError(
            f"a cosignature is {COSIGNATURE_SIZE} bytes, got {len(raw)}",
            reason="cosignature.malformed",
        )
    timestamp = int.from_bytes(raw[:8], "big")
    if timestamp > MAX_TIMESTAMP:
        raise InvalidInputError(
            "cosignature timestamp exceeds 2^63-1", reason="cosignature.timestamp"
        )
    return timestamp


@dataclass(frozen=True)
class CosignatureVerifier:
    """Verifies cosignature/v1 signatures of one named cosigner key.

    ``max_future_skew``: seconds a timestamp may lie ahead of ``clock()`` (the spec
    lets verifiers reject future timestamps); ``None`` accepts any time.
    """

    name: str
    public_key: Ed25519PublicKey
    max_future_skew: int | None = DEFAULT_MAX_FUTURE_SKEW
    clock: Clock = field(default=time.time, compare=False, repr=False)
    key_hash: int = field(init=False)

    def __post_init__(self) -> None:
        check_key_name(self.name)
        if self.max_future_skew is not None and self.max_future_skew < 0:
            raise InvalidInputError("max_future_skew must be >= 0", reason="cosignature.config")
        object.__setattr__(
            self, "key_hash", key_id(self.name, TYPE_COSIGNATURE_V1 + self.public_key.to_bytes())
        )

    @classmethod
    def from_verifier_key(
        cls,
        vkey: str,
        *,
        max_future_skew: int | None = DEFAULT_MAX_FUTURE_SKEW,
        clock: Clock = time.time,
    ) -> CosignatureVerifier:
        """Parse a type-0x04 vkey; a type-0x01 vkey of the same Ed25519 key is also
        accepted (its key ID is recomputed for type 0x04), as witness operators often
        publish only that form."""
        parsed = decode_verifier_key(vkey)
        kind = parsed.type_and_key[:1]
        if kind not in (TYPE_COSIGNATURE_V1, TYPE_ED25519) or len(parsed.type_and_key) != 33:
            raise InvalidInputError(
                f"verifier key {parsed.name} is not an Ed25519 cosigner key", reason="note.key_type"
            )
        return cls(
            parsed.name,
            Ed25519PublicKey(parsed.type_and_key[1:]),
            max_future_skew=max_future_skew,
            clock=clock,
        )

    def verifier_key(self) -> str:
        """``<name>+<hash>+<base64(0x04 || key)>``."""
        return encode_verifier_key(self.name, TYPE_COSIGNATURE_V1 + self.public_key.to_bytes())

    def verify(self, msg: bytes, sig: bytes) -> None:
        """Check the timestamp bounds, then the Ed25519 signature over the v1 message."""
        try:
            timestamp = cosignature_timestamp(sig)
        except InvalidInputError as exc:
            raise VerificationError(str(exc), reason=exc.reason) from None
        if self.max_future_skew is not None and timestamp > self.clock() + self.max_future_skew:
            raise VerificationError(
                f"cosignature by {self.name} is dated in the future ({timestamp})",
                reason="cosignature.future",
                details={"timestamp": timestamp},
            )
        self.public_key.verify(sig[8:], cosignature_message(msg, timestamp))


class CosignatureSigner:
    """Cosigns note texts (normally checkpoints) with one named Ed25519 key, type 0x04."""

    __slots__ = ("_clock", "_key", "key_hash", "name")

    def __init__(
        self, name: str, private_key: Ed25519PrivateKey, *, clock: Clock = time.time
    ) -> None:
        self.name = check_key_name(name)
        self._key = private_key
        self._clock = clock
        self.key_hash = key_id(name, TYPE_COSIGNATURE_V1 + private_key.public_key.to_bytes())

    def __repr__(self) -> str:
        return f"CosignatureSigner(name={self.name!r}, key_hash={self.key_hash:08x})"

    @classmethod
    def generate(cls, name: str, *, clock: Clock = time.time) -> CosignatureSigner:
        return cls(name, Ed25519PrivateKey.generate(), clock=clock)

    @classmethod
    def from_signer_key(cls, skey: str, *, clock: Clock = time.time) -> CosignatureSigner:
        """A cosigner from a golang ``PRIVATE+KEY+...`` Ed25519 (type 0x01) signer key.

        The key ID in the string is checked as type 0x01; signatures made here carry
        the type-0x04 key ID, as transparency-dev/formats does.
        """
        parsed = decode_signer_key(skey)
        material = parsed.type_and_key
        if material[:1] != TYPE_ED25519 or len(material) != 1 + SEED_SIZE:
            raise InvalidInputError(
                f"signer key {parsed.name} is not an Ed25519 key", reason="note.key_type"
            )
        key = Ed25519PrivateKey(material[1:])
        if key_id(parsed.name, TYPE_ED25519 + key.public_key.to_bytes()) != parsed.key_hash:
            raise InvalidInputError(
                f"signer key {parsed.name}: key ID does not match the key", reason="note.key_hash"
            )
        return cls(parsed.name, key, clock=clock)

    def verifier(
        self, *, max_future_skew: int | None = DEFAULT_MAX_FUTURE_SKEW
    ) -> CosignatureVerifier:
        return CosignatureVerifier(
            self.name, self._key.public_key, max_future_skew=max_future_skew, clock=self._clock
        )

    def verifier_key(self) -> str:
        return self.verifier().verifier_key()

    def sign(self, msg: bytes) -> bytes:
        """``u64 timestamp || Ed25519(cosignature/v1 message)`` at the current time."""
        timestamp = int(self._clock())
        message = cosignature_message(msg, timestamp)  # range-checks the timestamp first
        return timestamp.to_bytes(8, "big") + self._key.sign(message)

"""Ed25519 note signatures, signature type 0x01 (c2sp.org/signed-note §Ed25519).

The signature is plain RFC 8032 Ed25519 over the note text; the key ID is
``SHA-256(name || 0x0A || 0x01 || 32-byte public key)[:4]``. Key strings are
compatible with golang.org/x/mod/sumdb/note (``NewVerifier``/``NewSigner``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from signing.ed25519 import SEED_SIZE, Ed25519PrivateKey, Ed25519PublicKey
from signing.errors import InvalidInputError
from signing.note.keys import (
    TYPE_ED25519,
    decode_signer_key,
    decode_verifier_key,
    encode_signer_key,
    encode_verifier_key,
    key_id,
)
from signing.note.syntax import check_key_name


@dataclass(frozen=True)
class Ed25519NoteVerifier:
    """Verifies type-0x01 signatures of one named Ed25519 key."""

    name: str
    public_key: Ed25519PublicKey
    key_hash: int = field(init=False)

    def __post_init__(self) -> None:
        check_key_name(self.name)
        object.__setattr__(
            self, "key_hash", key_id(self.name, TYPE_ED25519 + self.public_key.to_bytes())
        )

    @classmethod
    def from_verifier_key(cls, vkey: str) -> Ed25519NoteVerifier:
        """Parse ``<name>+<hash>+<base64(0x01 || key)>``."""
        parsed = decode_verifier_key(vkey)
        if parsed.type_and_key[:1] != TYPE_ED25519 or len(parsed.type_and_key) != 33:
            raise InvalidInputError(
                f"verifier key {parsed.name} is not an Ed25519 (type 0x01) key",
                reason="note.key_type",
            )
        return cls(parsed.name, Ed25519PublicKey(parsed.type_and_key[1:]))

    def verifier_key(self) -> str:
        """The vkey string other parties configure to trust this key."""
        return encode_verifier_key(self.name, TYPE_ED25519 + self.public_key.to_bytes())

    def verify(self, msg: bytes, sig: bytes) -> None:
        """Raise VerificationError unless ``sig`` is this key's signature of ``msg``."""
        self.public_key.verify(sig, msg)


class Ed25519NoteSigner:
    """Signs note texts with one named Ed25519 key (type 0x01)."""

    __slots__ = ("_key", "key_hash", "name")

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        self.name = check_key_name(name)
        self._key = private_key
        self.key_hash = key_id(name, TYPE_ED25519 + private_key.public_key.to_bytes())

    def __repr__(self) -> str:
        return f"Ed25519NoteSigner(name={self.name!r}, key_hash={self.key_hash:08x})"

    @classmethod
    def generate(cls, name: str) -> Ed25519NoteSigner:
        """A signer with a fresh key."""
        return cls(name, Ed25519PrivateKey.generate())

    @classmethod
    def from_signer_key(cls, skey: str) -> Ed25519NoteSigner:
        """Parse ``PRIVATE+KEY+<name>+<hash>+<base64(0x01 || seed)>`` and check its hash."""
        parsed = decode_signer_key(skey)
        material = parsed.type_and_key
        if material[:1] != TYPE_ED25519 or len(material) != 1 + SEED_SIZE:
            raise InvalidInputError(
                f"signer key {parsed.name} is not an Ed25519 (type 0x01) key",
                reason="note.key_type",
            )
        signer = cls(parsed.name, Ed25519PrivateKey(material[1:]))
        if signer.key_hash != parsed.key_hash:
            raise InvalidInputError(
                f"signer key {parsed.name}: key ID does not match the key", reason="note.key_hash"
            )
        return signer

    @property
    def private_key(self) -> Ed25519PrivateKey:
        return self._key

    def signer_key(self) -> str:
        """The secret ``PRIVATE+KEY+...`` string (golang sumdb/note format)."""
        return encode_signer_key(self.name, self.key_hash, TYPE_ED25519 + self._key.seed())

    def verifier(self) -> Ed25519NoteVerifier:
        return Ed25519NoteVerifier(self.name, self._key.public_key)

    def verifier_key(self) -> str:
        return self.verifier().verifier_key()

    def sign(self, msg: bytes) -> bytes:
        """The 64-byte Ed25519 signature of the note text."""
        return self._key.sign(msg)

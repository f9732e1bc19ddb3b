"""Ed25519 keys (RFC 8032): generation, signing, verification and storage.

Signing and verification go through pynacl (libsodium), which rejects
non-canonical encodings and small-order public keys at verification time.

Keys at rest use the same formats as the SM2 keys, so one set of tools and one
threat model covers both:

* public keys: SPKI (RFC 8410, OID 1.3.101.112) DER or ``PUBLIC KEY`` PEM;
* private keys: PKCS#8 (RFC 8410) wrapped in a PBES2 EncryptedPrivateKeyInfo
  (PBKDF2-HMAC-SHA256, AES-256-CBC) as ``ENCRYPTED PRIVATE KEY`` PEM, which
  ``openssl pkey`` reads with the passphrase. Decryption bounds the PBKDF2 work
  factor, so a hostile key file cannot stall the process.

Verification raises :class:`VerificationError`; it never returns a bool.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import nacl.exceptions
import nacl.signing
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519 as _crypto_ed25519

from signing.errors import CertLedgerError, ConflictError, InvalidInputError, VerificationError
from signing.sm2 import encoding as _pkcs8
from signing.sm3 import sm3

__all__ = [
    "PUBLIC_KEY_SIZE",
    "SEED_SIZE",
    "SIGNATURE_SIZE",
    "Ed25519PrivateKey",
    "Ed25519PublicKey",
    "load_public_key",
]

PUBLIC_KEY_SIZE: Final = 32
SEED_SIZE: Final = 32
SIGNATURE_SIZE: Final = 64

_PEM_PUBLIC: Final = "PUBLIC KEY"
_PEM_PRIVATE: Final = "PRIVATE KEY"
_PEM_ENCRYPTED: Final = "ENCRYPTED PRIVATE KEY"
#: a key file is a few hundred bytes; anything far larger is not a key
_MAX_KEY_FILE: Final = 64 * 1024


@dataclass(frozen=True)
class Ed25519PublicKey:
    """A 32-byte Ed25519 public key (RFC 8032 encoding)."""

    raw: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.raw, bytes) or len(self.raw) != PUBLIC_KEY_SIZE:
            raise InvalidInputError(
                f"an Ed25519 public key is {PUBLIC_KEY_SIZE} bytes", reason="key.malformed"
            )

    # -- encodings ------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        return self.raw

    @classmethod
    def from_bytes(cls, data: bytes) -> Ed25519PublicKey:
        return cls(bytes(data))

    def to_der(self) -> bytes:
        """SubjectPublicKeyInfo DER (RFC 8410)."""
        key = _crypto_ed25519.Ed25519PublicKey.from_public_bytes(self.raw)
        return key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @classmethod
    def from_der(cls, data: bytes) -> Ed25519PublicKey:
        if len(data) > _MAX_KEY_FILE:
            raise InvalidInputError("public key input is too large", reason="key.malformed")
        try:
            key = serialization.load_der_public_key(data)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise InvalidInputError(
                "not a DER SubjectPublicKeyInfo", reason="key.malformed"
            ) from None
        if not isinstance(key, _crypto_ed25519.Ed25519PublicKey):
            raise InvalidInputError("the public key is not an Ed25519 key", reason="key.malformed")
        return cls(key.public_bytes_raw())

    def to_pem(self) -> bytes:
        return _pkcs8.pem_encode(_PEM_PUBLIC, self.to_der())

    @classmethod
    def from_pem(cls, data: bytes) -> Ed25519PublicKey:
        label, body = _pkcs8.pem_decode(data)
        if label != _PEM_PUBLIC:
            raise InvalidInputError(
                f"expected a PUBLIC KEY PEM block, found {label}", reason="key.malformed"
            )
        return cls.from_der(body)

    @property
    def key_id(self) -> str:
        """Hex SM3 of the SPKI DER: the same naming rule as SM2 keys in the registries."""
        return sm3(self.to_der()).hex()

    # -- verification ---------------------------------------------------------------------

    def verify(self, signature: bytes, message: bytes) -> None:
        """Raise :class:`VerificationError` unless ``signature`` is valid for ``message``."""
        if not isinstance(signature, bytes | bytearray) or len(signature) != SIGNATURE_SIZE:
            raise VerificationError(
                f"an Ed25519 signature is {SIGNATURE_SIZE} bytes", reason="sig.malformed"
            )
        try:
            nacl.signing.VerifyKey(self.raw).verify(bytes(message), bytes(signature))
        except (nacl.exceptions.BadSignatureError, nacl.exceptions.CryptoError, ValueError):
            raise VerificationError(
                "Ed25519 signature does not verify", reason="sig.invalid"
            ) from None


class Ed25519PrivateKey:
    """An Ed25519 private key (32-byte RFC 8032 seed). The seed leaves only through encoders."""

    __slots__ = ("_signing_key", "public_key")

    def __init__(self, seed: bytes) -> None:
        if not isinstance(seed, bytes | bytearray) or len(seed) != SEED_SIZE:
            raise InvalidInputError(
                f"an Ed25519 private key seed is {SEED_SIZE} bytes", reason="key.malformed"
            )
        self._signing_key = nacl.signing.SigningKey(bytes(seed))
        self.public_key = Ed25519PublicKey(bytes(self._signing_key.verify_key))

    def __repr__(self) -> str:
        return f"Ed25519PrivateKey(key_id={self.public_key.key_id[:16]}...)"

    @classmethod
    def generate(cls) -> Ed25519PrivateKey:
        """A new key from the OS CSPRNG (libsodium ``randombytes``)."""
        return cls(bytes(nacl.signing.SigningKey.generate()))

    def seed(self) -> bytes:
        """The 32-byte secret seed. Handle with care: it *is* the private key."""
        return bytes(self._signing_key)

    def sign(self, message: bytes) -> bytes:
        """The 64-byte RFC 8032 signature of ``message`` (deterministic)."""
        return bytes(self._signing_key.sign(bytes(message)).signature)

    # -- encodings ------------------------------------------------------------------------

    def to_der(self) -> bytes:
        """Unencrypted PKCS#8 DER. Prefer :meth:`to_pem` with a passphrase for storage."""
        key = _crypto_ed25519.Ed25519PrivateKey.from_private_bytes(self.seed())
        return key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @classmethod
    def from_der(cls, data: bytes) -> Ed25519PrivateKey:
        """A key from unencrypted PKCS#8 DER (RFC 8410, v1 or v2)."""
        if len(data) > _MAX_KEY_FILE:
            raise InvalidInputError("private key input is too large", reason="key.malformed")
        try:
            key = serialization.load_der_private_key(data, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise InvalidInputError("not a PKCS#8 private key", reason="key.malformed") from None
        if not isinstance(key, _crypto_ed25519.Ed25519PrivateKey):
            raise InvalidInputError("the private key is not an Ed25519 key", reason="key.malformed")
        return cls(key.private_bytes_raw())

    def to_pem(self, passphrase: bytes | None) -> bytes:
        """PKCS#8 PEM, encrypted (PBES2, AES-256-CBC) unless ``passphrase`` is None."""
        if passphrase is None:
            return _pkcs8.pem_encode(_PEM_PRIVATE, self.to_der())
        if not passphrase:
            raise InvalidInputError("the passphrase must not be empty", reason="key.passphrase")
        return _pkcs8.pem_encode(_PEM_ENCRYPTED, _pkcs8.encrypt_pkcs8(self.to_der(), passphrase))

    @classmethod
    def from_pem(cls, data: bytes, passphrase: bytes | None = None) -> Ed25519PrivateKey:
        """Load PEM; an encrypted key needs ``passphrase`` (wrong one: VerificationError)."""
        if len(data) > _MAX_KEY_FILE:
            raise InvalidInputError("private key input is too large", reason="key.malformed")
        label, body = _pkcs8.pem_decode(data)
        if label == _PEM_ENCRYPTED:
            if not passphrase:
                raise InvalidInputError(
                    "the private key is encrypted: a passphrase is required",
                    reason="key.passphrase",
                )
            return cls.from_der(_pkcs8.decrypt_pkcs8(body, passphrase))
        if label == _PEM_PRIVATE:
            return cls.from_der(body)
        raise InvalidInputError(
            f"expected a PRIVATE KEY PEM block, found {label}", reason="key.malformed"
        )

    def save(self, path: Path, passphrase: bytes, *, overwrite: bool = False) -> None:
        """Write the key encrypted with ``passphrase`` to ``path`` with mode 0600.

        Refuses to replace an existing file unless ``overwrite`` is set, so a key is never
        lost to a typo.
        """
        pem = self.to_pem(passphrase)
        flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
        try:
            # 0600 from creation: there is never a moment the key is world-readable
            fd = os.open(path, flags, 0o600)
        except FileExistsError:
            raise ConflictError(f"{path} already exists; refusing to overwrite a key",
                                reason="key.exists") from None
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
            f.flush()
            os.fsync(f.fileno())

    @classmethod
    def load(cls, path: Path, passphrase: bytes | None = None) -> Ed25519PrivateKey:
        """Read a PEM key file written by :meth:`save` (or by ``openssl genpkey``)."""
        with path.open("rb") as f:
            data = f.read(_MAX_KEY_FILE + 1)
        return cls.from_pem(data, passphrase)


def load_public_key(data: bytes) -> Ed25519PublicKey:
    """A public key from PEM (SPKI), DER (SPKI) or the raw 32 bytes."""
    if data.lstrip().startswith(b"-----BEGIN"):
        return Ed25519PublicKey.from_pem(data)
    if len(data) == PUBLIC_KEY_SIZE:
        return Ed25519PublicKey.from_bytes(data)
    try:
        return Ed25519PublicKey.from_der(data)
    except CertLedgerError:
        raise InvalidInputError(
            "not an Ed25519 public key (PEM, DER or 32 raw bytes)", reason="key.malformed"
        ) from None

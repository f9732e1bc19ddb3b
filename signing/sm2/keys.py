"""SM2 keys: the public surface for signing and verifying.

``SM2PrivateKey.sign`` returns a DER signature; ``SM2PublicKey.verify`` raises
:class:`VerificationError` on a bad one (never returns a bool to be forgotten).
Keys validate themselves when built: a public point must be on the curve and
not infinity, a private scalar in [1, n-2].
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Final

from signing.errors import InvalidInputError, VerificationError
from signing.sm2 import curve, encoding, signature
from signing.sm2.backends import PrivateHandle, PublicHandle, SM2Backend, get_backend
from signing.sm2.za import DEFAULT_SIGNER_ID, check_signer_id
from signing.sm3 import sm3

PEM_PUBLIC: Final = "PUBLIC KEY"
PEM_PRIVATE: Final = "PRIVATE KEY"
PEM_ENCRYPTED: Final = "ENCRYPTED PRIVATE KEY"
PEM_EC_PRIVATE: Final = "EC PRIVATE KEY"
#: OpenSSL 3 labels SEC1 SM2 keys this way (`openssl ec -in sm2.pem`)
PEM_SM2_PRIVATE: Final = "SM2 PRIVATE KEY"


@dataclass(frozen=True, eq=False)
class SM2PublicKey:
    """A validated SM2 public point."""

    x: int
    y: int
    _handles: dict[str, PublicHandle] = field(default_factory=dict, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not curve.is_on_curve(self.x, self.y):
            raise VerificationError("SM2 public key is not on the curve", reason="key.off_curve")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SM2PublicKey) and (self.x, self.y) == (other.x, other.y)

    def __hash__(self) -> int:
        return hash((self.x, self.y))

    # -- encodings ------------------------------------------------------------------------

    @property
    def point(self) -> tuple[int, int]:
        return (self.x, self.y)

    def to_bytes(self) -> bytes:
        """Uncompressed point 04 || x || y (65 bytes)."""
        return encoding.encode_point(self.point)

    @classmethod
    def from_bytes(cls, data: bytes) -> SM2PublicKey:
        return cls(*encoding.decode_point(data))

    def to_der(self) -> bytes:
        return encoding.spki_der(self.point)

    @classmethod
    def from_der(cls, data: bytes) -> SM2PublicKey:
        return cls(*encoding.parse_spki(data))

    def to_pem(self) -> bytes:
        return encoding.pem_encode(PEM_PUBLIC, self.to_der())

    @classmethod
    def from_pem(cls, data: bytes) -> SM2PublicKey:
        label, body = encoding.pem_decode(data)
        if label != PEM_PUBLIC:
            raise InvalidInputError(f"expected a PUBLIC KEY PEM block, found {label}", reason="key.malformed")
        return cls.from_der(body)

    @cached_property
    def key_id(self) -> str:
        """Hex SM3 of the SPKI DER: a stable name for this key in records and registries."""
        # cached: a node asks it for every signature it checks, of a point that never changes
        return sm3(self.to_der()).hex()

    # -- verification ---------------------------------------------------------------------

    def _handle(self, backend: SM2Backend | None) -> PublicHandle:
        b = backend or get_backend()
        h = self._handles.get(b.name)
        if h is None:
            with self._lock:
                h = self._handles.get(b.name) or b.load_public(self.point)
                self._handles[b.name] = h
        return h

    def verify(
        self,
        sig_der: bytes,
        message: bytes,
        *,
        signer_id: bytes = DEFAULT_SIGNER_ID,
        backend: SM2Backend | None = None,
    ) -> None:
        """Verify a DER signature; raise :class:`VerificationError` (or InvalidInputError) if bad."""
        r, s = signature.decode_der(sig_der)
        self.verify_rs(r, s, message, signer_id=signer_id, backend=backend)

    def verify_raw(
        self,
        sig_raw: bytes,
        message: bytes,
        *,
        signer_id: bytes = DEFAULT_SIGNER_ID,
        backend: SM2Backend | None = None,
    ) -> None:
        r, s = signature.decode_raw(sig_raw)
        self.verify_rs(r, s, message, signer_id=signer_id, backend=backend)

    def verify_rs(
        self,
        r: int,
        s: int,
        message: bytes,
        *,
        signer_id: bytes = DEFAULT_SIGNER_ID,
        backend: SM2Backend | None = None,
    ) -> None:
        signature.check_range(r, s)
        check_signer_id(signer_id)
        if not self._handle(backend).verify(message, signer_id, r, s):
            raise VerificationError("SM2 signature does not verify", reason="sig.invalid")


class SM2PrivateKey:
    """An SM2 private key. The scalar never leaves this object except through encoders."""

    __slots__ = ("_d", "_handles", "_lock", "public_key")

    def __init__(self, d: int, public_key: SM2PublicKey | None = None) -> None:
        # GB/T 32918.1 §6.1: d in [1, n-2] (d = n-1 makes 1+d non-invertible)
        if not 1 <= d <= curve.N - 2:
            raise InvalidInputError("SM2 private scalar out of range [1, n-2]", reason="key.malformed")
        self._d = d
        derived = curve.base_mult(d)
        assert derived is not None  # d in range, so dG is never infinity
        if public_key is not None and public_key.point != derived:
            raise InvalidInputError(
                "SM2 private key does not match its embedded public key", reason="key.mismatch"
            )
        self.public_key = public_key or SM2PublicKey(*derived)
        self._handles: dict[str, PrivateHandle] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SM2PrivateKey(key_id={self.public_key.key_id[:16]}...)"

    @classmethod
    def generate(cls) -> SM2PrivateKey:
        """A new key from the OS CSPRNG."""
        return cls(secrets.randbelow(curve.N - 2) + 1)

    # -- encodings ------------------------------------------------------------------------

    def private_scalar(self) -> int:
        return self._d

    def to_der(self) -> bytes:
        """Unencrypted PKCS#8 DER. Prefer :meth:`to_pem` with a passphrase for storage."""
        return encoding.pkcs8_der(self._d, self.public_key.point)

    @classmethod
    def from_der(cls, data: bytes) -> SM2PrivateKey:
        d, point = encoding.parse_pkcs8(data)
        return cls(d, SM2PublicKey(*point) if point else None)

    def to_pem(self, passphrase: bytes | None) -> bytes:
        """PKCS#8 PEM; encrypted (PBES2, AES-256-CBC) unless ``passphrase`` is None."""
        if passphrase is None:
            return encoding.pem_encode(PEM_PRIVATE, self.to_der())
        return encoding.pem_encode(PEM_ENCRYPTED, encoding.encrypt_pkcs8(self.to_der(), passphrase))

    @classmethod
    def from_pem(cls, data: bytes, passphrase: bytes | None = None) -> SM2PrivateKey:
        label, body = encoding.pem_decode(data)
        if label == PEM_ENCRYPTED:
            if not passphrase:
                raise InvalidInputError(
                    "the private key is encrypted: a passphrase is required", reason="key.passphrase"
                )
            return cls.from_der(encoding.decrypt_pkcs8(body, passphrase))
        if label == PEM_PRIVATE:
            return cls.from_der(body)
        if label in (PEM_EC_PRIVATE, PEM_SM2_PRIVATE):
            d, point = encoding.parse_ec_private_key(body, "SM2 private key (SEC1)")
            return cls(d, SM2PublicKey(*point) if point else None)
        raise InvalidInputError(f"expected a PRIVATE KEY PEM block, found {label}", reason="key.malformed")

    @classmethod
    def load(cls, path: Path, passphrase: bytes | None = None) -> SM2PrivateKey:
        return cls.from_pem(path.read_bytes(), passphrase)

    # -- signing --------------------------------------------------------------------------

    def _handle(self, backend: SM2Backend | None) -> PrivateHandle:
        b = backend or get_backend()
        h = self._handles.get(b.name)
        if h is None:
            with self._lock:
                h = self._handles.get(b.name) or b.load_private(self._d, self.public_key.point)
                self._handles[b.name] = h
        return h

    def sign_rs(
        self, message: bytes, *, signer_id: bytes = DEFAULT_SIGNER_ID, backend: SM2Backend | None = None
    ) -> tuple[int, int]:
        return self._handle(backend).sign(message, check_signer_id(signer_id))

    def sign(
        self, message: bytes, *, signer_id: bytes = DEFAULT_SIGNER_ID, backend: SM2Backend | None = None
    ) -> bytes:
        """DER ``SEQUENCE {r, s}`` signature over ``message`` (SM3 with Z_A of ``signer_id``)."""
        return signature.encode_der(*self.sign_rs(message, signer_id=signer_id, backend=backend))

    def sign_raw(
        self, message: bytes, *, signer_id: bytes = DEFAULT_SIGNER_ID, backend: SM2Backend | None = None
    ) -> bytes:
        """64-byte r || s signature."""
        return signature.encode_raw(*self.sign_rs(message, signer_id=signer_id, backend=backend))


def load_public_key(data: bytes) -> SM2PublicKey:
    """A public key from PEM (SPKI), DER (SPKI) or a raw 65-byte point."""
    if data.lstrip().startswith(b"-----BEGIN"):
        return SM2PublicKey.from_pem(data)
    if len(data) in (33, 65) and data[0] in (2, 3, 4):
        return SM2PublicKey.from_bytes(data)
    return SM2PublicKey.from_der(data)

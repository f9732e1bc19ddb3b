"""SM2/SM3 note signatures: certledger's type under signed-note's 0xff escape.

c2sp.org/signed-note reserves type 0xff "for signature types without an
identifier byte assigned by this specification" and recommends that a longer
identifier follow it. Ours (ADR 0004), every field fixed or length-prefixed so
that the encoding is unambiguous::

    signature type = 0xff || "certledger/SM2-SM3/v1"
    public key     = 0x04 || x (32) || y (32)              uncompressed SM2 point
                     || u8 len(signer ID) || signer ID       GM/T 0009 ID, 1..255 bytes
    key ID         = SHA-256(name || 0x0A || signature type || public key)[:4]
    signed message = "certledger/SM2-SM3/v1\\n" || name || "\\n" || note text
    signature      = r (32) || s (32)                        big-endian, 1 <= r, s < n

The SM2 signature is GB/T 32918.2 with SM3 and Z_A computed from the signer ID
in the key, so the ID is always explicit and committed to by the key ID. The
message is domain-separated and names the key, because a node's SM2 key also
signs records and block headers, and a signature must not be replayable under
another name or in another role. r || s (not DER) gives one fixed-length
encoding per signature: nothing to parse, nothing malleable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from signing.errors import CertLedgerError, InvalidInputError, VerificationError
from signing.note.keys import TYPE_SM2_SM3, decode_verifier_key, encode_verifier_key, key_id
from signing.note.syntax import check_key_name
from signing.sm2 import DEFAULT_SIGNER_ID, SM2PrivateKey, SM2PublicKey
from signing.sm2.backends import SM2Backend
from signing.sm2.za import check_signer_id

#: prefix of the signed message: the identifier after 0xff, then a newline
MESSAGE_PREFIX: Final = TYPE_SM2_SM3[1:] + b"\n"
SIGNATURE_SIZE: Final = 64
_POINT_SIZE: Final = 65
MAX_NOTE_SIGNER_ID: Final = 255


def _check_note_signer_id(signer_id: bytes) -> bytes:
    signer_id = check_signer_id(signer_id)
    if len(signer_id) > MAX_NOTE_SIGNER_ID:
        raise InvalidInputError(
            "a note SM2 signer ID is at most 255 bytes", reason="sig.signer_id"
        )
    return signer_id


def sm2_key_material(public_key: SM2PublicKey, signer_id: bytes) -> bytes:
    """``point || u8 len || signer ID``: the public key field of the type."""
    signer_id = _check_note_signer_id(signer_id)
    return public_key.to_bytes() + bytes([len(signer_id)]) + signer_id


def sm2_message(name: str, text: bytes) -> bytes:
    """The bytes the SM2 key signs for note ``text`` under key ``name``."""
    return MESSAGE_PREFIX + name.encode("utf-8") + b"\n" + text


@dataclass(frozen=True)
class SM2NoteVerifier:
    """Verifies certledger SM2 note signatures of one named key and signer ID."""

    name: str
    public_key: SM2PublicKey
    signer_id: bytes = DEFAULT_SIGNER_ID
    backend: SM2Backend | None = field(default=None, compare=False, repr=False)
    key_hash: int = field(init=False)

    def __post_init__(self) -> None:
        check_key_name(self.name)
        material = sm2_key_material(self.public_key, self.signer_id)
        object.__setattr__(self, "key_hash", key_id(self.name, TYPE_SM2_SM3 + material))

    @classmethod
    def from_verifier_key(cls, vkey: str, *, backend: SM2Backend | None = None) -> SM2NoteVerifier:
        """Parse ``<name>+<hash>+<base64(0xff || identifier || point || len || id)>``."""
        parsed = decode_verifier_key(vkey)
        material = parsed.type_and_key
        if not material.startswith(TYPE_SM2_SM3):
            raise InvalidInputError(
                f"verifier key {parsed.name} is not a certledger SM2 key", reason="note.key_type"
            )
        body = material[len(TYPE_SM2_SM3) :]
        if (
            len(body) < _POINT_SIZE + 2
            or body[0] != 0x04
            or len(body) != _POINT_SIZE + 1 + body[_POINT_SIZE]
        ):
            raise InvalidInputError(
                f"verifier key {parsed.name}: malformed SM2 key material",
                reason="note.key_malformed",
            )
        try:
            public_key = SM2PublicKey.from_bytes(body[:_POINT_SIZE])
        except CertLedgerError:
            raise InvalidInputError(
                f"verifier key {parsed.name}: not a valid SM2 public point",
                reason="note.key_malformed",
            ) from None
        return cls(parsed.name, public_key, body[_POINT_SIZE + 1 :], backend=backend)

    def verifier_key(self) -> str:
        return encode_verifier_key(
            self.name, TYPE_SM2_SM3 + sm2_key_material(self.public_key, self.signer_id)
        )

    def verify(self, msg: bytes, sig: bytes) -> None:
        """Raise VerificationError unless ``sig`` (r || s) signs ``msg`` under this key."""
        if len(sig) != SIGNATURE_SIZE:
            raise VerificationError("an SM2 note signature is 64 bytes (r || s)",
                                    reason="sig.malformed")
        self.public_key.verify_raw(
            sig, sm2_message(self.name, msg), signer_id=self.signer_id, backend=self.backend
        )


class SM2NoteSigner:
    """Signs note texts with a node's SM2 key under certledger's 0xff type."""

    __slots__ = ("_backend", "_key", "key_hash", "name", "signer_id")

    def __init__(
        self,
        name: str,
        private_key: SM2PrivateKey,
        *,
        signer_id: bytes = DEFAULT_SIGNER_ID,
        backend: SM2Backend | None = None,
    ) -> None:
        self.name = check_key_name(name)
        self.signer_id = _check_note_signer_id(signer_id)
        self._key = private_key
        self._backend = backend
        material = sm2_key_material(private_key.public_key, self.signer_id)
        self.key_hash = key_id(name, TYPE_SM2_SM3 + material)

    def __repr__(self) -> str:
        return f"SM2NoteSigner(name={self.name!r}, key_hash={self.key_hash:08x})"

    def verifier(self, *, backend: SM2Backend | None = None) -> SM2NoteVerifier:
        return SM2NoteVerifier(
            self.name, self._key.public_key, self.signer_id, backend=backend or self._backend
        )

    def verifier_key(self) -> str:
        return self.verifier().verifier_key()

    def sign(self, msg: bytes) -> bytes:
        """r || s of the SM2 signature over the domain-separated message."""
        return self._key.sign_raw(
            sm2_message(self.name, msg), signer_id=self.signer_id, backend=self._backend
        )

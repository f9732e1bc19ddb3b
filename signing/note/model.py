"""The data model of a signed note (c2sp.org/signed-note): no I/O, no crypto.

A note is UTF-8 text ending in a newline, a blank line, and one or more
signature lines ``— <key name> base64(key ID || signature)``. The text must be
ignored unless a trusted key's signature over it has been verified, so the only
way to get a :class:`Note` whose ``signatures`` are non-empty is
:func:`signing.note.open_note`.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Final, Protocol, runtime_checkable

#: em dash, space: the start of every signature line
SIGNATURE_PREFIX: Final = "\u2014 "
#: default ceiling on a whole signed note in bytes. The spec asks verifiers to accept
#: at least 16 signatures of up to ~5 kB (post-quantum); 1 MiB leaves room for 100 of
#: those while keeping a hostile note cheap to reject.
MAX_NOTE_BYTES: Final = 1 << 20
#: default ceiling on signature lines, as golang.org/x/mod/sumdb/note (spec minimum: 16)
MAX_SIGNATURES: Final = 100
#: key IDs are uint32
KEY_HASH_MAX: Final = 0xFFFFFFFF


@runtime_checkable
class Signer(Protocol):
    """Produces the signature bytes of one key (without the 4-byte key ID)."""

    @property
    def name(self) -> str:
        """The key name written on the signature line."""
        ...

    @property
    def key_hash(self) -> int:
        """The uint32 key ID written in front of the signature."""
        ...

    def sign(self, msg: bytes) -> bytes:
        """Sign the note text ``msg`` (UTF-8 bytes, final newline included)."""
        ...


@runtime_checkable
class Verifier(Protocol):
    """Checks the signatures of one known key."""

    @property
    def name(self) -> str:
        """The key name this verifier answers for."""
        ...

    @property
    def key_hash(self) -> int:
        """The uint32 key ID this verifier answers for."""
        ...

    def verify(self, msg: bytes, sig: bytes) -> None:
        """Raise :class:`signing.errors.VerificationError` unless ``sig`` signs ``msg``."""
        ...


@dataclass(frozen=True)
class NoteSignature:
    """One signature line: key name, uint32 key ID and the signature bytes after it."""

    name: str
    key_hash: int
    signature: bytes

    @property
    def key_id(self) -> str:
        """The key ID as 8 lower-case hex digits, as in verifier keys."""
        return f"{self.key_hash:08x}"

    def encoded(self) -> str:
        """base64(key ID || signature), the last field of the line."""
        return base64.b64encode(self.key_hash.to_bytes(4, "big") + self.signature).decode("ascii")

    def line(self) -> str:
        """The full signature line, final newline included."""
        return f"{SIGNATURE_PREFIX}{self.name} {self.encoded()}\n"


@dataclass(frozen=True)
class VerifiedSignature(NoteSignature):
    """A signature that a known :class:`Verifier` has checked over the note text."""

    verifier: Verifier = field(compare=False, repr=False, kw_only=True)


@dataclass(frozen=True)
class Note:
    """A note text with its verified and its unverified (unknown-key) signatures."""

    text: str
    signatures: tuple[VerifiedSignature, ...] = ()
    unverified: tuple[NoteSignature, ...] = ()

    @property
    def signer_names(self) -> frozenset[str]:
        """Names of the keys whose signatures were verified."""
        return frozenset(s.name for s in self.signatures)

    def to_bytes(self) -> bytes:
        """The signed note: text, blank line, verified then unverified signature lines."""
        lines = "".join(s.line() for s in (*self.signatures, *self.unverified))
        return (self.text + "\n" + lines).encode("utf-8")

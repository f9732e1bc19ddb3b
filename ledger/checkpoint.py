"""Checkpoints in the C2SP tlog-checkpoint format, signed and cosigned as notes.

The note text is exactly::

    <origin>\\n
    <tree size, ASCII decimal, no leading zeros>\\n
    <base64 root hash>\\n
    [<extension line>\\n ...]

Parsing accepts only that canonical form (a size like ``007`` or a root of the
wrong length is rejected), so one checkpoint has one text and one set of
signed bytes. The module is hash-agnostic: the root length is a parameter
(32 for SM3 and SHA-256).

A checkpoint is trusted through :func:`open_checkpoint` (signatures, then the
text, then the origin) and :func:`verify_quorum` (enough distinct known
cosigners). Two validly signed checkpoints of one origin that disagree are
evidence of a fork; that comparison lives with the consistency proofs.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from signing.errors import InvalidInputError, VerificationError
from signing.note import (
    MAX_NOTE_BYTES,
    Note,
    Signer,
    Verifier,
    VerifierSet,
    add_signatures,
    open_note,
    sign_note,
)

__all__ = [
    "DEFAULT_HASH_SIZE",
    "Checkpoint",
    "OpenedCheckpoint",
    "QuorumResult",
    "cosign_checkpoint",
    "open_checkpoint",
    "sign_checkpoint",
    "verify_quorum",
]

DEFAULT_HASH_SIZE: Final = 32
#: tree sizes are uint64 (RFC 6962 / RFC 9162)
MAX_TREE_SIZE: Final = (1 << 64) - 1
#: a checkpoint body is three short lines; extension lines are NOT RECOMMENDED.
#: 64 KiB is generous and keeps hostile input cheap.
MAX_CHECKPOINT_TEXT: Final = 64 * 1024
MAX_EXTENSION_LINES: Final = 64

_SIZE_RE: Final = re.compile(r"0|[1-9][0-9]{0,19}")
_CONTROL_RE: Final = re.compile(r"[\x00-\x1f]")


def _malformed(message: str, reason: str = "checkpoint.malformed") -> InvalidInputError:
    return InvalidInputError(message, reason=reason)


def _check_line(value: str, what: str) -> None:
    if not isinstance(value, str) or not value:
        raise _malformed(f"checkpoint {what} must be a non-empty string")
    if _CONTROL_RE.search(value):
        raise _malformed(f"checkpoint {what} must not contain newlines or control characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _malformed(f"checkpoint {what} is not valid Unicode") from None


@dataclass(frozen=True)
class Checkpoint:
    """A log's tree head: origin, size and root hash, plus opaque extension lines."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_line(self.origin, "origin")
        if isinstance(self.size, bool) or not isinstance(self.size, int):
            raise _malformed("checkpoint size must be an int")
        if not 0 <= self.size <= MAX_TREE_SIZE:
            raise _malformed("checkpoint size must be a uint64")
        if not isinstance(self.root_hash, bytes) or not self.root_hash:
            raise _malformed(
                "checkpoint root hash must be non-empty bytes", "checkpoint.root_length"
            )
        if not isinstance(self.extensions, tuple):
            raise _malformed("checkpoint extensions must be a tuple of lines")
        if len(self.extensions) > MAX_EXTENSION_LINES:
            raise _malformed("too many checkpoint extension lines")
        for line in self.extensions:
            _check_line(line, "extension line")

    def to_text(self) -> str:
        """The note text: origin, size, base64 root, extension lines, each ending in \\n."""
        root = base64.b64encode(self.root_hash).decode("ascii")
        lines = (self.origin, str(self.size), root, *self.extensions)
        return "".join(f"{line}\n" for line in lines)

    def to_bytes(self) -> bytes:
        return self.to_text().encode("utf-8")

    @classmethod
    def parse(cls, text: str | bytes, *, hash_size: int = DEFAULT_HASH_SIZE) -> Checkpoint:
        """Strictly parse a checkpoint note text (not a signed note: see open_checkpoint).

        Raises :class:`InvalidInputError` with ``checkpoint.malformed``,
        ``checkpoint.size_noncanonical`` or ``checkpoint.root_length``.
        """
        if hash_size < 1:
            raise InvalidInputError("hash_size must be positive", reason="checkpoint.config")
        if isinstance(text, bytes | bytearray):
            if len(text) > MAX_CHECKPOINT_TEXT:
                raise _malformed("checkpoint text is too large")
            try:
                text = bytes(text).decode("utf-8")
            except UnicodeDecodeError:
                raise _malformed("checkpoint text is not valid UTF-8") from None
        if not isinstance(text, str):
            raise _malformed("checkpoint text must be str or bytes")
        if len(text) > MAX_CHECKPOINT_TEXT:
            raise _malformed("checkpoint text is too large")
        if not text.endswith("\n"):
            raise _malformed("checkpoint text must end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise _malformed("a checkpoint has at least three lines: origin, size, root hash")
        origin, size_text, root_text, *extensions = lines
        if not origin:
            raise _malformed("checkpoint origin must be non-empty")
        if _SIZE_RE.fullmatch(size_text) is None:
            raise _malformed(
                f"checkpoint size {size_text[:32]!r} is not canonical decimal",
                "checkpoint.size_noncanonical",
            )
        size = int(size_text)
        if size > MAX_TREE_SIZE:
            raise _malformed("checkpoint size exceeds uint64")
        root = _decode_root(root_text, hash_size)
        if any(not line for line in extensions):
            raise _malformed("checkpoint extension lines must be non-empty")
        return cls(origin, size, root, tuple(extensions))


def _decode_root(value: str, hash_size: int) -> bytes:
    expected_chars = 4 * ((hash_size + 2) // 3)
    if len(value) != expected_chars:
        raise _malformed(
            f"checkpoint root hash must be {hash_size} bytes of base64", "checkpoint.root_length"
        )
    try:
        root = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _malformed("checkpoint root hash is not base64") from None
    if len(root) != hash_size:
        raise _malformed(
            f"checkpoint root hash must be {hash_size} bytes", "checkpoint.root_length"
        )
    # canonical: no second spelling of the same root through the padding bits
    if base64.b64encode(root).decode("ascii") != value:
        raise _malformed("checkpoint root hash is not canonical base64")
    return root


@dataclass(frozen=True)
class OpenedCheckpoint:
    """A checkpoint whose note carried at least one verified signature of a known key."""

    checkpoint: Checkpoint
    note: Note

    @property
    def signer_names(self) -> frozenset[str]:
        """Distinct names of the known keys whose signatures verified."""
        return self.note.signer_names

    def to_bytes(self) -> bytes:
        return self.note.to_bytes()


@dataclass(frozen=True)
class QuorumResult:
    """The outcome of a successful :func:`verify_quorum`."""

    threshold: int
    #: distinct eligible names whose signatures verified
    signers: frozenset[str]
    #: eligible names with no verified signature
    missing: frozenset[str]

    def __bool__(self) -> bool:
        return len(self.signers) >= self.threshold


def sign_checkpoint(cp: Checkpoint, signers: Sequence[Signer]) -> bytes:
    """The checkpoint as a signed note (the log/node signatures)."""
    return sign_note(cp.to_text(), signers)


def open_checkpoint(
    note: bytes | str,
    verifiers: VerifierSet | Iterable[Verifier],
    *,
    origin: str,
    hash_size: int = DEFAULT_HASH_SIZE,
    max_bytes: int = MAX_NOTE_BYTES,
) -> OpenedCheckpoint:
    """Verify a signed checkpoint and parse it.

    1. the note opens: at least one known key verified, no known key failed;
    2. only then is the text parsed, strictly, with ``hash_size``-byte roots;
    3. the origin line equals ``origin`` (``checkpoint.origin_mismatch``).
    """
    # 1. signatures before text: the text of an unverified note means nothing
    opened = open_note(note, verifiers, max_bytes=max_bytes)
    # 2. strict body
    cp = Checkpoint.parse(opened.text, hash_size=hash_size)
    # 3. the log we asked about
    if cp.origin != origin:
        raise VerificationError(
            f"checkpoint is for origin {cp.origin[:200]!r}, expected {origin!r}",
            reason="checkpoint.origin_mismatch",
        )
    return OpenedCheckpoint(cp, opened)


def cosign_checkpoint(opened: OpenedCheckpoint, signers: Sequence[Signer]) -> bytes:
    """Add cosignatures (e.g. a node's :class:`signing.note.CosignatureSigner`).

    The caller must have checked consistency with what it saw before: a cosignature
    states that this is the largest consistent tree head it has observed.
    """
    return add_signatures(opened.note, signers)


def verify_quorum(
    opened: OpenedCheckpoint, required_names: Collection[str], threshold: int
) -> QuorumResult:
    """Require verified signatures from at least ``threshold`` distinct names among
    ``required_names`` (the nodes/witnesses of the quorum policy).

    Names count once however many keys they hold, and names outside the policy do
    not count. An empty policy or a threshold of 0 is an error, not a pass.
    """
    if isinstance(required_names, str):
        # a bare name would silently become a set of characters
        raise InvalidInputError("required_names must be a collection of names",
                                reason="quorum.config")
    eligible = frozenset(required_names)
    if not eligible:
        raise InvalidInputError("the quorum policy names no signers", reason="quorum.config")
    if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 1:
        raise InvalidInputError("the quorum threshold must be at least 1", reason="quorum.config")
    if threshold > len(eligible):
        raise InvalidInputError(
            f"threshold {threshold} exceeds the {len(eligible)} names of the policy",
            reason="quorum.config",
        )
    signers = opened.signer_names & eligible
    result = QuorumResult(threshold=threshold, signers=signers, missing=eligible - signers)
    if not result:
        raise VerificationError(
            f"checkpoint has {len(signers)} of the {threshold} required cosignatures",
            reason="checkpoint.quorum",
            details={"signers": sorted(signers), "missing": sorted(result.missing)},
        )
    return result

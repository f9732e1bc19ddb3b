"""Syntax of signed notes: the rules for text, key names, base64 and signature lines.

Everything here is pure string work with explicit bounds, so hostile input is
rejected in time linear in its (bounded) size before any cryptography runs.
Deliberate strictness beyond golang.org/x/mod/sumdb/note, recorded in ADR 0004:
base64 must be canonical (one encoding per signature, so a line cannot be
re-encoded into a "different" duplicate), and a byte-identical repeated
signature line makes the note malformed.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from typing import Final

from signing.errors import InvalidInputError
from signing.note.model import (
    KEY_HASH_MAX,
    MAX_NOTE_BYTES,
    MAX_SIGNATURES,
    SIGNATURE_PREFIX,
    Note,
    NoteSignature,
)

_B64_RE: Final = re.compile(r"[A-Za-z0-9+/]*={0,2}")
#: ASCII control characters other than newline (U+0000..U+001F without U+000A)
_CONTROL_RE: Final = re.compile(r"[\x00-\x09\x0b-\x1f]")


def _malformed(message: str, reason: str = "note.malformed") -> InvalidInputError:
    return InvalidInputError(message, reason=reason)


def is_valid_key_name(name: str) -> bool:
    """Non-empty, no Unicode space, no ``+``, no control character (signed-note §Format)."""
    return (
        isinstance(name, str)
        and name != ""
        and "+" not in name
        and not any(ch.isspace() for ch in name)
        and _CONTROL_RE.search(name) is None
        and _encodable(name)
    )


def check_key_name(name: str) -> str:
    """Return ``name`` if it is a valid key name, else raise InvalidInputError."""
    if not is_valid_key_name(name):
        raise InvalidInputError(
            f"invalid note key name {name!r}: must be non-empty, without spaces or '+'",
            reason="note.key_name",
        )
    return name


def _encodable(text: str) -> bool:
    # a Python str may hold lone surrogates, which have no UTF-8 encoding
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_text(text: str, *, max_bytes: int = MAX_NOTE_BYTES) -> bytes:
    """Validate a note text to be signed; return its UTF-8 bytes.

    The text must be valid UTF-8, end in a newline and hold no ASCII control
    character other than newline.
    """
    if not isinstance(text, str):
        raise _malformed("a note text must be a str")
    if not _encodable(text):
        raise _malformed("the note text is not valid Unicode (lone surrogate)")
    data = text.encode("utf-8")
    if len(data) > max_bytes:
        raise _malformed(f"the note text is larger than {max_bytes} bytes", "note.too_large")
    if not text.endswith("\n"):
        raise _malformed("the note text must end with a newline")
    if _CONTROL_RE.search(text):
        raise _malformed("the note text contains an ASCII control character")
    return data


def decode_b64(value: str, *, what: str) -> bytes:
    """Strict, canonical RFC 4648 §4 base64 (padding required, no whitespace)."""
    if len(value) % 4 or _B64_RE.fullmatch(value) is None:
        raise _malformed(f"{what} is not canonical base64")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _malformed(f"{what} is not canonical base64") from None
    # non-zero pad bits would give a second spelling of the same bytes
    if base64.b64encode(raw).decode("ascii") != value:
        raise _malformed(f"{what} is not canonical base64")
    return raw


def parse_signature_line(line: str) -> NoteSignature:
    """Parse ``— <name> <base64>`` (without the final newline)."""
    if not line.startswith(SIGNATURE_PREFIX):
        raise _malformed("a signature line must start with an em dash and a space")
    rest = line[len(SIGNATURE_PREFIX) :]
    name, sep, encoded = rest.partition(" ")
    if not sep or not is_valid_key_name(name) or not encoded:
        raise _malformed("malformed signature line")
    raw = decode_b64(encoded, what="signature")
    if len(raw) < 5:
        raise _malformed("a signature must hold a 4-byte key ID and at least one byte")
    return NoteSignature(name, int.from_bytes(raw[:4], "big"), raw[4:])


def split_note(
    data: bytes | str,
    *,
    max_bytes: int = MAX_NOTE_BYTES,
    max_signatures: int = MAX_SIGNATURES,
) -> tuple[str, list[NoteSignature]]:
    """Split a signed note into its text and its signature lines, checking syntax only.

    Nothing is verified here: the caller must not trust the text. Raises
    :class:`InvalidInputError` (``note.too_large``, ``note.too_many_signatures``,
    ``note.duplicate_signature`` or ``note.malformed``).
    """
    if isinstance(data, str):
        if not _encodable(data):
            raise _malformed("the note is not valid Unicode (lone surrogate)")
        data = data.encode("utf-8")
    if not isinstance(data, bytes | bytearray):
        raise _malformed("a note must be bytes or str")
    # 1. bound the work before touching the content
    if len(data) > max_bytes:
        raise _malformed(f"the note is larger than {max_bytes} bytes", "note.too_large")
    # 2. valid UTF-8, no control characters but newline
    try:
        text_all = bytes(data).decode("utf-8", errors="strict")
    except UnicodeDecodeError:
        raise _malformed("the note is not valid UTF-8") from None
    if _CONTROL_RE.search(text_all):
        raise _malformed("the note contains an ASCII control character")
    # 3. the text ends at the last blank line; the signature block follows it
    split = text_all.rfind("\n\n")
    if split < 0:
        raise _malformed("the note has no blank line before its signatures")
    text, block = text_all[: split + 1], text_all[split + 2 :]
    if not block or not block.endswith("\n"):
        raise _malformed("the note must end with a newline-terminated signature line")
    lines = block[:-1].split("\n")
    # 4. bound the number of lines before parsing any of them
    if len(lines) > max_signatures:
        raise _malformed(
            f"the note has more than {max_signatures} signatures", "note.too_many_signatures"
        )
    if len(set(lines)) != len(lines):
        raise _malformed("the note repeats a signature line", "note.duplicate_signature")
    return text, [parse_signature_line(line) for line in lines]


def format_note(text: str, signatures: Sequence[NoteSignature]) -> bytes:
    """Serialize ``text`` and ``signatures`` as a signed note, validating both."""
    body = check_text(text)
    if not signatures:
        raise _malformed("a signed note needs at least one signature")
    out = [body, b"\n"]
    for sig in signatures:
        check_key_name(sig.name)
        if not 0 <= sig.key_hash <= KEY_HASH_MAX:
            raise _malformed("a key ID must be a uint32")
        if not sig.signature:
            raise _malformed("an empty signature cannot be written")
        out.append(sig.line().encode("utf-8"))
    return b"".join(out)


def parse_unverified(data: bytes | str, **limits: int) -> Note:
    """Syntax-check a note and return it with *every* signature unverified.

    For inspection and storage only: the text of the result must not be trusted.
    Use :func:`signing.note.open_note` to verify.
    """
    text, sigs = split_note(data, **limits)
    return Note(text=text, signatures=(), unverified=tuple(sigs))

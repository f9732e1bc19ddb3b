"""Signing, opening and cosigning signed notes (c2sp.org/signed-note).

Opening a note, in order (each step is labelled below):

1. syntax, bounded: size, UTF-8, control characters, the blank line, the
   signature lines (count, canonical base64, no repeated line);
2. each signature whose (name, key ID) is not a known key is kept as unverified
   and otherwise ignored, even if it shares the name or the ID with a known key;
3. a known key may sign a note once: a second line for it rejects the note;
4. every signature of a known key is verified, and one failure rejects the note
   (the spec allows clients to; a forged line next to a good one is an attack);
5. at least one known key must have verified, else the note is rejected.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from signing.errors import InvalidInputError, VerificationError
from signing.note.model import (
    KEY_HASH_MAX,
    MAX_NOTE_BYTES,
    MAX_SIGNATURES,
    Note,
    NoteSignature,
    Signer,
    VerifiedSignature,
    Verifier,
)
from signing.note.syntax import check_key_name, check_text, format_note, split_note
from signing.note.verifiers import VerifierSet


def _sign_all(text: bytes, signers: Sequence[Signer]) -> list[NoteSignature]:
    if not signers:
        raise InvalidInputError("at least one signer is required", reason="note.no_signer")
    out: list[NoteSignature] = []
    seen: set[tuple[str, int]] = set()
    for signer in signers:
        name, key_hash = check_key_name(signer.name), signer.key_hash
        if not isinstance(key_hash, int) or not 0 <= key_hash <= KEY_HASH_MAX:
            raise InvalidInputError(f"signer {name}: key ID is not a uint32", reason="note.signer")
        if (name, key_hash) in seen:
            raise InvalidInputError(
                f"signer {name}+{key_hash:08x} given twice", reason="note.duplicate_signature"
            )
        seen.add((name, key_hash))
        signature = signer.sign(text)
        if not isinstance(signature, bytes) or not signature:
            raise InvalidInputError(f"signer {name} returned no signature", reason="note.signer")
        out.append(NoteSignature(name, key_hash, signature))
    return out


def _checked_output(text: str, signatures: Sequence[NoteSignature]) -> bytes:
    # never emit a note that open_note would refuse with the default limits
    if len(signatures) > MAX_SIGNATURES:
        raise InvalidInputError(
            f"a note may carry at most {MAX_SIGNATURES} signatures",
            reason="note.too_many_signatures",
        )
    data = format_note(text, signatures)
    if len(data) > MAX_NOTE_BYTES:
        raise InvalidInputError(
            f"the signed note would exceed {MAX_NOTE_BYTES} bytes", reason="note.too_large"
        )
    return data


def sign_note(text: str, signers: Sequence[Signer]) -> bytes:
    """Sign ``text`` (valid note text, final newline included) with every signer."""
    body = check_text(text)
    return _checked_output(text, _sign_all(body, signers))


def open_note(
    data: bytes | str,
    verifiers: VerifierSet | Iterable[Verifier],
    *,
    max_bytes: int = MAX_NOTE_BYTES,
    max_signatures: int = MAX_SIGNATURES,
) -> Note:
    """Parse and verify a signed note against the known keys.

    Returns the :class:`Note` with its verified signatures (each naming its
    verifier) and the unverified ones from unknown keys. Raises
    :class:`InvalidInputError` for a malformed note and :class:`VerificationError`
    (``note.signature_invalid``, ``note.unverified``) when verification fails.
    """
    known = verifiers if isinstance(verifiers, VerifierSet) else VerifierSet(verifiers)
    # 1. syntax, bounded
    text, lines = split_note(data, max_bytes=max_bytes, max_signatures=max_signatures)
    msg = text.encode("utf-8")
    verified: list[VerifiedSignature] = []
    unverified: list[NoteSignature] = []
    seen: set[tuple[str, int]] = set()
    for sig in lines:
        # 2. unknown keys: kept, ignored
        verifier = known.lookup(sig.name, sig.key_hash)
        if verifier is None:
            unverified.append(sig)
            continue
        # 3. one signature per known key
        if (sig.name, sig.key_hash) in seen:
            raise InvalidInputError(
                f"key {sig.name}+{sig.key_id} signs the note twice",
                reason="note.duplicate_signature",
            )
        seen.add((sig.name, sig.key_hash))
        # 4. a known key's signature must verify
        try:
            verifier.verify(msg, sig.signature)
        except (VerificationError, InvalidInputError) as exc:
            raise VerificationError(
                f"invalid signature for key {sig.name}+{sig.key_id}",
                reason="note.signature_invalid",
                details={"key": f"{sig.name}+{sig.key_id}", "cause": exc.reason},
            ) from None
        verified.append(
            VerifiedSignature(sig.name, sig.key_hash, sig.signature, verifier=verifier)
        )
    # 5. at least one known, verified signature
    if not verified:
        raise VerificationError(
            "note has no verifiable signatures",
            reason="note.unverified",
            details={"unknown_keys": sorted({f"{s.name}+{s.key_id}" for s in unverified})},
        )
    return Note(text=text, signatures=tuple(verified), unverified=tuple(unverified))


def add_signatures(
    note: Note, signers: Sequence[Signer], *, require_verified: bool = True
) -> bytes:
    """Cosign: the note's existing signatures followed by one from each signer.

    An existing signature by the same (name, key ID) as a new signer is replaced.
    Unless ``require_verified`` is False, the note must come from :func:`open_note`
    with at least one verified signature: nobody should cosign what they did not
    check.
    """
    if require_verified and not note.signatures:
        raise InvalidInputError(
            "refusing to cosign a note without verified signatures", reason="note.unverified"
        )
    body = check_text(note.text)
    new = _sign_all(body, signers)
    replaced = {(s.name, s.key_hash) for s in new}
    kept = [
        s for s in (*note.signatures, *note.unverified) if (s.name, s.key_hash) not in replaced
    ]
    return _checked_output(note.text, [*kept, *new])


def merge_notes(base: Note, *others: Note) -> Note:
    """Combine the signatures of opened notes over the same text (e.g. cosignatures
    collected from several nodes). The first verified signature per key wins."""
    verified: dict[tuple[str, int], VerifiedSignature] = {}
    unverified: dict[tuple[str, int, bytes], NoteSignature] = {}
    for note in (base, *others):
        if note.text != base.text:
            raise InvalidInputError(
                "cannot merge signatures of different note texts", reason="note.text_mismatch"
            )
        for vs in note.signatures:
            verified.setdefault((vs.name, vs.key_hash), vs)
        for us in note.unverified:
            unverified.setdefault((us.name, us.key_hash, us.signature), us)
    rest = tuple(
        s for s in unverified.values() if (s.name, s.key_hash) not in verified
    )
    merged = Note(text=base.text, signatures=tuple(verified.values()), unverified=rest)
    if len(merged.signatures) + len(merged.unverified) > MAX_SIGNATURES:
        raise InvalidInputError(
            f"a note may carry at most {MAX_SIGNATURES} signatures",
            reason="note.too_many_signatures",
        )
    return merged

"""C2SP signed notes with Ed25519, cosignature/v1 and SM2/SM3 signatures.

The public surface::

    sign_note(text, signers) -> bytes
    open_note(data, verifiers) -> Note          # raises unless a known key verified
    add_signatures(note, signers) -> bytes      # cosigning
    merge_notes(base, *others) -> Note

Signers and verifiers are small protocols (``name``, ``key_hash``,
``sign(msg) -> bytes`` / ``verify(msg, sig) -> None``) implemented for
Ed25519 (type 0x01), tlog-cosignature v1 (type 0x04) and certledger's SM2/SM3
type (0xff + identifier). See docs/adr/0004-signed-notes-and-checkpoints.md.
"""

from signing.note.cosignature import (
    CosignatureSigner,
    CosignatureVerifier,
    cosignature_message,
    cosignature_timestamp,
)
from signing.note.ed25519 import Ed25519NoteSigner, Ed25519NoteVerifier
from signing.note.keys import (
    TYPE_COSIGNATURE_V1,
    TYPE_ED25519,
    TYPE_SM2_SM3,
    decode_verifier_key,
    encode_verifier_key,
    key_id,
)
from signing.note.model import (
    MAX_NOTE_BYTES,
    MAX_SIGNATURES,
    Note,
    NoteSignature,
    Signer,
    VerifiedSignature,
    Verifier,
)
from signing.note.signed_note import add_signatures, merge_notes, open_note, sign_note
from signing.note.sm2 import SM2NoteSigner, SM2NoteVerifier
from signing.note.syntax import check_key_name, is_valid_key_name, parse_unverified
from signing.note.verifiers import VerifierSet, verifier_from_key

__all__ = [
    "MAX_NOTE_BYTES",
    "MAX_SIGNATURES",
    "TYPE_COSIGNATURE_V1",
    "TYPE_ED25519",
    "TYPE_SM2_SM3",
    "CosignatureSigner",
    "CosignatureVerifier",
    "Ed25519NoteSigner",
    "Ed25519NoteVerifier",
    "Note",
    "NoteSignature",
    "SM2NoteSigner",
    "SM2NoteVerifier",
    "Signer",
    "VerifiedSignature",
    "Verifier",
    "VerifierSet",
    "add_signatures",
    "check_key_name",
    "cosignature_message",
    "cosignature_timestamp",
    "decode_verifier_key",
    "encode_verifier_key",
    "is_valid_key_name",
    "key_id",
    "merge_notes",
    "open_note",
    "parse_unverified",
    "sign_note",
    "verifier_from_key",
]

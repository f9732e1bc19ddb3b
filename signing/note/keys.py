"""Key IDs and the text forms of note keys.

* key ID (signed-note §Signatures):
  ``SHA-256(key name || 0x0A || signature type || public key)[:4]`` as a uint32.
* verifier key ("vkey", c2sp.org/signed-note, golang.org/x/mod/sumdb/note):
  ``<name>+<8 hex digits key ID>+<base64(signature type || public key)>``.
* signer key (golang.org/x/mod/sumdb/note, secret):
  ``PRIVATE+KEY+<name>+<8 hex digits key ID>+<base64(signature type || private key)>``.

The base64 part may itself contain ``+``, so a key string is cut at its first
two (signer: four) plus signs only. Parsing checks the key ID against the key
material: a vkey whose hash does not match its key is refused.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from typing import Final

from signing.errors import InvalidInputError
from signing.note.syntax import decode_b64, is_valid_key_name

#: signature type bytes assigned by c2sp.org/signed-note
TYPE_ED25519: Final = b"\x01"
TYPE_COSIGNATURE_V1: Final = b"\x04"
#: 0xff: "signature types without an identifier byte assigned by this specification";
#: the spec recommends a longer identifier after it, which ours is (ADR 0004)
TYPE_SM2_SM3: Final = b"\xff" + b"certledger/SM2-SM3/v1"

_SIGNER_PREFIX: Final = "PRIVATE+KEY+"
_HEX8_RE: Final = re.compile(r"[0-9a-f]{8}")
#: verifier keys come from configuration; bound them anyway
_MAX_KEY_STRING: Final = 16 * 1024


def key_id(name: str, type_and_key: bytes) -> int:
    """The uint32 key ID of ``name`` and ``signature type || public key``."""
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + type_and_key).digest()
    return int.from_bytes(digest[:4], "big")


@dataclass(frozen=True)
class KeyString:
    """A decoded verifier or signer key string (not yet bound to an algorithm)."""

    name: str
    key_hash: int
    #: signature type byte(s) followed by the key material
    type_and_key: bytes


def _malformed(what: str) -> InvalidInputError:
    return InvalidInputError(f"malformed {what}", reason="note.key_malformed")


def _split(value: str, what: str) -> KeyString:
    if not isinstance(value, str) or len(value) > _MAX_KEY_STRING:
        raise _malformed(what)
    name, sep1, rest = value.partition("+")
    hash_hex, sep2, encoded = rest.partition("+")
    if not (sep1 and sep2) or not is_valid_key_name(name) or not _HEX8_RE.fullmatch(hash_hex):
        raise _malformed(what)
    try:
        raw = decode_b64(encoded, what=what)
    except InvalidInputError:
        raise _malformed(what) from None
    if not raw:
        raise _malformed(what)
    return KeyString(name, int(hash_hex, 16), raw)


def decode_verifier_key(vkey: str) -> KeyString:
    """Split a verifier key and check that its key ID matches its name and key."""
    parsed = _split(vkey, "verifier key")
    if key_id(parsed.name, parsed.type_and_key) != parsed.key_hash:
        raise InvalidInputError(
            f"verifier key {parsed.name}: key ID does not match the key", reason="note.key_hash"
        )
    return parsed


def encode_verifier_key(name: str, type_and_key: bytes) -> str:
    """``<name>+<key ID>+<base64(type || key)>`` with the key ID computed here."""
    if not is_valid_key_name(name):
        raise InvalidInputError(f"invalid note key name {name!r}", reason="note.key_name")
    encoded = base64.b64encode(type_and_key).decode("ascii")
    return f"{name}+{key_id(name, type_and_key):08x}+{encoded}"


def decode_signer_key(skey: str) -> KeyString:
    """Split a ``PRIVATE+KEY+...`` string. The key ID is checked by the algorithm,
    which alone can derive the public key from the private one."""
    if not isinstance(skey, str) or not skey.startswith(_SIGNER_PREFIX):
        raise _malformed("signer key")
    return _split(skey[len(_SIGNER_PREFIX) :], "signer key")


def encode_signer_key(name: str, key_hash: int, type_and_private: bytes) -> str:
    """``PRIVATE+KEY+<name>+<key ID>+<base64(type || private key)>``. Keep it secret."""
    if not is_valid_key_name(name):
        raise InvalidInputError(f"invalid note key name {name!r}", reason="note.key_name")
    encoded = base64.b64encode(type_and_private).decode("ascii")
    return f"{_SIGNER_PREFIX}{name}+{key_hash:08x}+{encoded}"

"""How licence files are bound to ledger records, and how proof bundles ride along.

An ISSUE/AMEND record carries one SM3 digest per format (ADR 0011):

* ``pdf``: SM3 of the PDF's *signed revision* — the bytes up to the end of
  the last signature's ``/ByteRange``. Everything a signature covers is in
  it; an incremental update appended later (the proof bundle) is not.
* ``ofd``: SM3 of the OFD package's *content*: every part except the
  proof-bundle attachment, as a canonical list of (path, SM3 of bytes) pairs.
  It does not depend on how the zip was compressed, so any reader anywhere
  recomputes the same value.

The proof bundle is the licence's status document (``Ledger.status_document``:
record, inclusion proof, key admission, quorum checkpoint) as canonical JSON,
embedded as ``certledger-proof.json`` — a PDF embedded file added in an
incremental update after signing, or an OFD attachment the seal leaves
unprotected on purpose (written as a placeholder before sealing, filled in
once the record is final). It authenticates itself with signatures and
Merkle proofs; a verifier never needs to trust the file for it.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Mapping
from typing import Any, Final

from ledger.canonical import canonical_bytes, parse_canonical
from signing.errors import InvalidInputError
from signing.sm3 import sm3

BUNDLE_NAME: Final = "certledger-proof.json"
BUNDLE_KIND: Final = "certledger.proof/v1"
#: what the OFD bundle attachment holds between sealing and the record becoming final
BUNDLE_PLACEHOLDER: Final = canonical_bytes({"kind": BUNDLE_KIND, "pending": True})
MAX_BUNDLE_BYTES: Final = 256 * 1024

# at most 19 digits (int64): a longer number is no byte range (and no int-conversion error)
_BYTE_RANGE_RE = re.compile(rb"/ByteRange\s*\[\s*(\d{1,19})\s+(\d{1,19})\s+(\d{1,19})\s+(\d{1,19})\s*\]")


# -- bundles ------------------------------------------------------------------------------


def make_bundle(status_document: Mapping[str, Any]) -> bytes:
    return canonical_bytes({"kind": BUNDLE_KIND, "status": dict(status_document)})


def parse_bundle(data: bytes) -> dict[str, Any] | None:
    """The status document inside a bundle; None for the placeholder."""
    if len(data) > MAX_BUNDLE_BYTES:
        raise InvalidInputError("proof bundle is too large", reason="bundle.malformed")
    try:
        obj = parse_canonical(data, max_bytes=MAX_BUNDLE_BYTES, max_depth=24)
    except InvalidInputError as exc:
        raise InvalidInputError(f"proof bundle is not canonical JSON: {exc}", reason="bundle.malformed") from None
    if not isinstance(obj, dict) or obj.get("kind") != BUNDLE_KIND:
        raise InvalidInputError("not a certledger proof bundle", reason="bundle.malformed")
    if obj.get("pending") is True:
        return None
    status = obj.get("status")
    if not isinstance(status, dict):
        raise InvalidInputError("proof bundle holds no status document", reason="bundle.malformed")
    return status


# -- PDF ----------------------------------------------------------------------------------


def pdf_signed_revision_end(pdf: bytes) -> int | None:
    """End offset of the revision covered by the last signature (None: no signature)."""
    ends = [int(m.group(3)) + int(m.group(4)) for m in _BYTE_RANGE_RE.finditer(pdf)]
    ends = [e for e in ends if 0 < e <= len(pdf)]
    return max(ends) if ends else None


def pdf_digest(pdf: bytes) -> str:
    """SM3 of the signed revision (the whole file when nothing was appended after signing)."""
    end = pdf_signed_revision_end(pdf)
    return sm3(pdf[: end if end is not None else len(pdf)]).hex()


def attach_pdf_bundle(pdf: bytes, bundle: bytes) -> bytes:
    """Append the bundle as an embedded file in an incremental update (signatures stay intact).

    The update is :mod:`cert_formats.pdf_update`'s: a pure function of the signed revision and
    the bundle, so a verifier rebuilds it and compares bytes. Raises ``pdf.unsupported_update``
    for a PDF certledger did not sign (an xref stream, a catalog that already has /Names).
    """
    from cert_formats.pdf_update import attach_bundle

    return attach_bundle(pdf, bundle)


def extract_pdf_bundle(pdf: bytes) -> bytes | None:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(pdf), strict=False)
        found = reader.attachments.get(BUNDLE_NAME)
    except (PyPdfError, ValueError, KeyError, TypeError, OSError) as exc:
        raise InvalidInputError(f"cannot read the PDF's attachments: {exc}", reason="pdf.malformed") from None
    if not found:
        return None
    data = found[-1]
    if len(data) > MAX_BUNDLE_BYTES:
        raise InvalidInputError("proof bundle is too large", reason="bundle.malformed")
    return bytes(data)


# -- OFD ----------------------------------------------------------------------------------


def ofd_bundle_path(parts: Mapping[str, bytes], attachment_data: bytes | None) -> str | None:
    """The package path of the bundle attachment (the one Attachs/ part holding its bytes)."""
    if attachment_data is None:
        return None
    matches = [p for p, data in parts.items() if "/Attachs/" in p and data == attachment_data]
    if len(matches) != 1:
        raise InvalidInputError("cannot locate the proof bundle attachment unambiguously", reason="bundle.malformed")
    return matches[0]


def ofd_digest(parts: Mapping[str, bytes], bundle_path: str | None, known: Mapping[str, bytes] | None = None) -> str:
    """SM3 over the canonical (path, SM3) list of every part but the bundle.

    ``known``: SM3 values already computed for some parts (path -> digest of exactly
    ``parts[path]``, as a seal check leaves them); the others are hashed here.
    """
    known = known or {}
    listing = [
        [path, (known.get(path) or sm3(data)).hex()] for path, data in sorted(parts.items()) if path != bundle_path
    ]
    return sm3(json.dumps(listing, separators=(",", ":"), ensure_ascii=False).encode()).hex()

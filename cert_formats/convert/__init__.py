"""PDF <-> OFD conversion of licence documents.

Text (position, font, size, colour, glyph advances), vector paths, images and
the metadata are carried over; the embedded fonts too, so both files show the
same glyphs. Signatures and seals cannot survive (the bytes change), so a
converted file is always an **unsealed copy**: its metadata carries
``certledger.copy = unsealed``, ``certledger.source_sm3`` (SM3 of the source
file) and ``certledger.source_format``, and the source's certledger proof
bundle (``certledger-proof.json``), if it had one, is copied unchanged. Re-sealing
is the agency's business (``certledger issue`` / the seal commands), never the
converter's. See ADR 0010 and docs/formats-conversion.md.

Typical use::

    from cert_formats.convert import convert, detect_format

    result = convert(pdf_bytes, "ofd")          # or pdf_to_ofd(...) / ofd_to_pdf(...)
    open("licence.ofd", "wb").write(result.data)
    result.source_sm3, result.proof_bundle, result.sealed   # sealed is always False

Both directions read untrusted files: limits on size, pages, objects, content
operators, images, fonts and time (:class:`ConvertLimits`), and errors are
``InvalidInputError`` with a ``convert.*`` reason.
"""

from __future__ import annotations

from typing import Final

from signing.errors import InvalidInputError

from .limits import (
    REASON_ENCRYPTED,
    REASON_FONT,
    REASON_MALFORMED_OFD,
    REASON_MALFORMED_PDF,
    REASON_TIMEOUT,
    REASON_TOO_LARGE,
    REASON_UNKNOWN_FORMAT,
    REASON_UNSUPPORTED,
    ConvertLimits,
    PdfLimits,
)
from .metadata import (
    COPY_MARK,
    META_COPY,
    META_ORIGINAL_FORMAT,
    META_ORIGINAL_SM3,
    META_SOURCE_FORMAT,
    META_SOURCE_SM3,
    PROOF_BUNDLE_NAME,
)
from .ofd_to_pdf import ofd_to_pdf
from .pdf_to_ofd import pdf_to_ofd
from .pdfparse import PdfContent, read_pdf
from .result import ConversionResult

FORMATS: Final = ("pdf", "ofd")


def detect_format(data: bytes) -> str:
    """``"pdf"`` or ``"ofd"`` from the file's magic bytes; raises ``convert.unknown_format``.

    A PDF has ``%PDF-`` in its first kilobyte; an OFD is a zip (``PK\\x03\\x04``).
    """
    head = bytes(data[:1024])
    if b"%PDF-" in head:
        return "pdf"
    if head.startswith(b"PK\x03\x04"):
        return "ofd"
    raise InvalidInputError("the file is neither a PDF nor an OFD (zip) file", reason=REASON_UNKNOWN_FORMAT)


def convert(data: bytes, target: str, *, limits: ConvertLimits | None = None) -> ConversionResult:
    """Convert ``data`` (PDF or OFD, detected from its bytes) to ``target`` (``pdf``/``ofd``)."""
    if target not in FORMATS:
        raise InvalidInputError(f"unknown target format {target!r} (pdf or ofd)", reason=REASON_UNKNOWN_FORMAT)
    source = detect_format(data)
    if source == target:
        raise InvalidInputError(f"the input is already {source.upper()}", reason=REASON_UNSUPPORTED)
    return pdf_to_ofd(data, limits=limits) if target == "ofd" else ofd_to_pdf(data, limits=limits)


__all__ = [
    "COPY_MARK",
    "FORMATS",
    "META_COPY",
    "META_ORIGINAL_FORMAT",
    "META_ORIGINAL_SM3",
    "META_SOURCE_FORMAT",
    "META_SOURCE_SM3",
    "PROOF_BUNDLE_NAME",
    "REASON_ENCRYPTED",
    "REASON_FONT",
    "REASON_MALFORMED_OFD",
    "REASON_MALFORMED_PDF",
    "REASON_TIMEOUT",
    "REASON_TOO_LARGE",
    "REASON_UNKNOWN_FORMAT",
    "REASON_UNSUPPORTED",
    "ConversionResult",
    "ConvertLimits",
    "PdfContent",
    "PdfLimits",
    "convert",
    "detect_format",
    "ofd_to_pdf",
    "pdf_to_ofd",
    "read_pdf",
]

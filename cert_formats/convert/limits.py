"""Limits, the time budget and the reason codes of licence-file conversion.

Every number bounds work that the author of an input file controls: bytes read,
pages, objects, content operators, pixels decoded, font bytes, seconds. The
defaults fit a licence (one to a few pages, a couple of subset fonts, a few
images, a proof bundle) with a wide margin; callers converting larger documents
pass their own :class:`ConvertLimits`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields
from typing import Final

from cert_formats.ofd.limits import ReadLimits
from signing.errors import InvalidInputError

KIB: Final = 1024
MIB: Final = 1024 * KIB

#: the input is not a PDF, or pypdf / our content reader could not make sense of it
REASON_MALFORMED_PDF: Final = "convert.malformed_pdf"
#: the input is not a readable OFD package (``details["cause"]`` has the ``ofd.*`` reason)
REASON_MALFORMED_OFD: Final = "convert.malformed_ofd"
#: a limit of :class:`ConvertLimits` (or of the OFD reader) was exceeded
REASON_TOO_LARGE: Final = "convert.too_large"
#: the conversion took longer than ``ConvertLimits.max_seconds``
REASON_TIMEOUT: Final = "convert.timeout"
#: an encrypted PDF: converting it would strip the owner's protection
REASON_ENCRYPTED: Final = "convert.encrypted"
#: a feature a licence never uses and we do not convert (e.g. a page rotation of 45°)
REASON_UNSUPPORTED: Final = "convert.unsupported"
#: neither a PDF nor an OFD, or the direction asked for makes no sense
REASON_UNKNOWN_FORMAT: Final = "convert.unknown_format"
#: no usable embedded font and no system CJK font to fall back to
REASON_FONT: Final = "convert.font_unavailable"


@dataclass(frozen=True)
class PdfLimits:
    """Bounds on reading an untrusted PDF (:mod:`.pdfparse`)."""

    #: size of the file as received
    max_file_bytes: int = 32 * MIB
    #: objects listed in the cross-reference table(s)
    max_objects: int = 100_000
    #: pages (a ``/Count`` claim above this is refused before anything is walked)
    max_pages: int = 50
    #: depth of the page tree, of nested arrays in content and of form XObjects
    max_tree_depth: int = 32
    #: decoded content of one page (its streams together), and of one stream of any kind
    max_content_bytes: int = 16 * MIB
    #: content-stream tokens (operands and operators) over the whole document
    max_tokens: int = 1_500_000
    #: painting / text / state operators over the whole document
    max_operators: int = 1_000_000
    #: nesting of ``q`` (graphics state saves)
    max_state_depth: int = 256
    #: form XObjects executed over the whole document (stops "fork bombs" of forms)
    max_form_invocations: int = 2_000
    #: nesting of form XObjects
    max_form_depth: int = 12
    #: image XObjects decoded over the whole document
    max_images: int = 256
    #: pixels of one image (width x height)
    max_image_pixels: int = 40_000_000
    #: decoded bytes of one embedded font file
    max_font_bytes: int = 16 * MIB
    #: distinct fonts over the whole document
    max_fonts: int = 256
    #: characters of text over the whole document
    max_text_chars: int = 1_000_000
    #: path points over the whole document
    max_path_points: int = 2_000_000
    #: bytes of one ToUnicode / encoding CMap stream
    max_cmap_bytes: int = 2 * MIB
    #: entries of the document information dictionary read as metadata
    max_info_entries: int = 128
    #: characters of one metadata value
    max_info_chars: int = 64 * KIB
    #: bytes of the XMP metadata stream
    max_xmp_bytes: int = 1 * MIB
    #: bytes of one embedded file that is copied (the proof bundle)
    max_embedded_file_bytes: int = 8 * MIB
    #: name-tree nodes visited looking for embedded files
    max_name_tree_nodes: int = 4_096

    def __post_init__(self) -> None:
        for f in fields(self):
            if getattr(self, f.name) <= 0:
                raise ValueError(f"PdfLimits.{f.name} must be positive")


@dataclass(frozen=True)
class ConvertLimits:
    """Everything one conversion bounds: the PDF side, the OFD side and the clock."""

    pdf: PdfLimits = field(default_factory=PdfLimits)
    ofd: ReadLimits = field(default_factory=ReadLimits)
    #: wall-clock seconds for one whole conversion (reading, fonts, writing)
    max_seconds: float = 30.0
    #: pixels of one OFD image decoded for re-encoding (BMP/GIF/TIFF -> PNG)
    max_image_pixels: int = 40_000_000

    def __post_init__(self) -> None:
        if not self.max_seconds > 0:
            raise ValueError("ConvertLimits.max_seconds must be positive")
        if self.max_image_pixels <= 0:
            raise ValueError("ConvertLimits.max_image_pixels must be positive")


class Deadline:
    """A monotonic wall-clock budget that every loop over untrusted data checks."""

    __slots__ = ("_expires", "_seconds")

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._expires = time.monotonic() + seconds

    @property
    def remaining(self) -> float:
        """Seconds left (never negative)."""
        return max(0.0, self._expires - time.monotonic())

    def check(self) -> None:
        """Raise ``InvalidInputError(reason="convert.timeout")`` once the budget is spent."""
        if time.monotonic() > self._expires:
            raise InvalidInputError(f"conversion exceeded its time budget of {self._seconds:g} s",
                                    reason=REASON_TIMEOUT)


def too_large(message: str, **details: object) -> InvalidInputError:
    """The error for an exceeded limit."""
    return InvalidInputError(message, reason=REASON_TOO_LARGE, details=details or None)


def malformed_pdf(message: str, **details: object) -> InvalidInputError:
    """The error for a PDF we cannot read."""
    return InvalidInputError(message, reason=REASON_MALFORMED_PDF, details=details or None)

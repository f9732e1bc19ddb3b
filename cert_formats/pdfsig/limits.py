"""Bounds on the work a PDF from outside can make signature verification do.

A signed licence PDF is small (one or two pages, two signatures, a few hundred
objects). Each number here bounds something an attacker controls; the defaults
leave a wide margin for real licences. The wall-clock budget is checked between
steps and inside the loops this package runs; a single pyHanko call is not
interruptible, which is why the size, revision, object and signature counts are
capped *before* pyHanko is asked to do anything proportional to them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Final

from pyhanko.pdf_utils.decode_limits import DecodeLimits, DocumentDecodeBudget, StreamDecodeLimits
from pyhanko.pdf_utils.misc import PdfError

from signing.errors import InvalidInputError

KIB: Final = 1024
MIB: Final = 1024 * KIB

#: what pyHanko's and asn1crypto's parsers raise on malformed input. pyHanko has no single
#: "this file is broken" error: besides PdfError, fuzzing shows ValueError (and UnicodeError),
#: KeyError, TypeError, IndexError, AttributeError, AssertionError, decimal.InvalidOperation
#: (an ArithmeticError) and RecursionError escaping from its reader.
PDF_PARSE_ERRORS: Final = (
    PdfError,
    ValueError,
    KeyError,
    TypeError,
    IndexError,
    AttributeError,
    AssertionError,
    ArithmeticError,
    RecursionError,
)


@dataclass(frozen=True)
class PdfLimits:
    """What :func:`cert_formats.pdfsig.verify_pdf_signatures` accepts, with its defaults."""

    #: size of the whole file
    max_bytes: int = 32 * MIB
    #: incremental-update revisions (each signature adds one)
    max_revisions: int = 32
    #: the trailer's /Size (objects in the file); bounds the diff analysis
    max_objects: int = 50_000
    #: signature fields with a value
    max_signatures: int = 16
    #: decoded /Contents of one signature (the CMS plus its zero padding)
    max_contents_bytes: int = 256 * KIB
    #: certificates carried in one CMS
    max_certificates: int = 16
    #: certificates of a non-SM2 CMS, which pyHanko's path builder tries in every order
    #: (a dozen certificates of one name took it minutes); a real chain has 2-4
    max_path_certificates: int = 6
    #: form fields in the AcroForm tree (a licence has one or two); the field walk and the
    #: modification analysis are both uninterruptible and grow with it
    max_fields: int = 256
    #: decoded size of one stream (FlateDecode and friends); bounds "zip bombs"
    max_stream_bytes: int = 32 * MIB
    #: decoded bytes of all streams together over one verification (the difference
    #: analysis decodes some streams once per revision)
    max_decoded_bytes: int = 128 * MIB
    #: wall-clock seconds for one whole verification
    max_seconds: float = 20.0

    def __post_init__(self) -> None:
        for name in (
            "max_bytes",
            "max_revisions",
            "max_objects",
            "max_signatures",
            "max_contents_bytes",
            "max_certificates",
            "max_path_certificates",
            "max_fields",
            "max_stream_bytes",
            "max_decoded_bytes",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"PdfLimits.{name} must be positive")
        if not self.max_seconds > 0:
            raise ValueError("PdfLimits.max_seconds must be positive")

    def decode_limits(self) -> DecodeLimits:
        """pyHanko's stream-decoding limits for these bounds (its untrusted-input defaults, tightened)."""
        return DecodeLimits(
            per_stream=StreamDecodeLimits(max_output_size=self.max_stream_bytes),
            # total = max(base_allowance, max_ratio * file size): the ratio is kept low so
            # that max_decoded_bytes is the effective bound for every file under max_bytes
            document_budget=DocumentDecodeBudget(base_allowance=self.max_decoded_bytes, max_ratio=1),
        )


class Deadline:
    """A monotonic wall-clock budget; ``check`` raises ``pdf.timeout`` once it is spent."""

    __slots__ = ("_expires", "_seconds")

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._expires = time.monotonic() + seconds

    def check(self) -> None:
        """Raise ``InvalidInputError(reason="pdf.timeout")`` if the budget is spent."""
        if time.monotonic() > self._expires:
            raise InvalidInputError(
                f"PDF signature verification exceeded its time budget of {self._seconds:g} s",
                reason="pdf.timeout",
            )

"""Resource limits and the wall-clock deadline for reading untrusted OFD files.

Every number here bounds work an attacker controls: bytes inflated, entries
listed, XML elements built, objects decoded, seconds spent. The defaults fit a
licence document (a few pages, one embedded font, a few images, a proof bundle)
with a wide margin; callers that read larger documents pass their own limits.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Final

from signing.errors import InvalidInputError

KIB: Final = 1024
MIB: Final = 1024 * KIB


@dataclass(frozen=True)
class ZipLimits:
    """Bounds enforced on the zip container before and while anything is inflated."""

    #: size of the whole archive as received
    max_archive_bytes: int = 64 * MIB
    #: number of central-directory entries (directories included)
    max_entries: int = 2048
    #: bytes of central directory; bounds the work of listing before counting entries
    max_central_directory_bytes: int = 2 * MIB
    #: inflated size of one entry
    max_entry_bytes: int = 32 * MIB
    #: inflated size of all entries together
    max_total_bytes: int = 96 * MIB
    #: inflated / compressed, checked while inflating once an entry passes ``ratio_floor_bytes``
    max_ratio: float = 200.0
    #: below this many inflated bytes the ratio is not judged (tiny files compress wildly)
    ratio_floor_bytes: int = 256 * KIB
    #: length of one entry name in UTF-8 bytes
    max_name_bytes: int = 512
    #: directory depth of one entry name
    max_path_depth: int = 16

    def __post_init__(self) -> None:
        for name in (
            "max_archive_bytes",
            "max_entries",
            "max_central_directory_bytes",
            "max_entry_bytes",
            "max_total_bytes",
            "ratio_floor_bytes",
            "max_name_bytes",
            "max_path_depth",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"ZipLimits.{name} must be positive")
        if not self.max_ratio > 1.0:
            raise ValueError("ZipLimits.max_ratio must be > 1")


@dataclass(frozen=True)
class XmlLimits:
    """Bounds enforced on each XML part while it is parsed."""

    #: size of one XML part in bytes (a licence page is tens of kilobytes)
    max_bytes: int = 4 * MIB
    #: nesting depth of elements
    max_depth: int = 48
    #: number of elements in one part
    max_elements: int = 100_000
    #: length of one attribute value in characters
    max_attribute_chars: int = 256 * KIB
    #: number of attributes on one element
    max_attributes: int = 64

    def __post_init__(self) -> None:
        for name in ("max_bytes", "max_depth", "max_elements", "max_attribute_chars",
                     "max_attributes"):
            if getattr(self, name) <= 0:
                raise ValueError(f"XmlLimits.{name} must be positive")


@dataclass(frozen=True)
class ReadLimits:
    """Everything :func:`cert_formats.ofd.read_ofd` bounds, with its defaults."""

    zip: ZipLimits = field(default_factory=ZipLimits)
    xml: XmlLimits = field(default_factory=XmlLimits)
    #: pages in the document
    max_pages: int = 200
    #: drawable objects (text codes, paths, images) in the whole document; a licence
    #: face has a few hundred, and each costs tens of microseconds to model
    max_objects: int = 20_000
    #: characters in one text code
    max_text_chars: int = 10_000
    #: characters of text in the whole document (bounds the model's memory)
    max_total_text_chars: int = 1_000_000
    #: path commands in the whole document (bounds the model's memory and time)
    max_path_commands: int = 200_000
    #: attachments listed
    max_attachments: int = 64
    #: wall-clock seconds for one whole read
    max_seconds: float = 10.0

    def __post_init__(self) -> None:
        for name in ("max_pages", "max_objects", "max_text_chars", "max_total_text_chars",
                     "max_path_commands", "max_attachments"):
            if getattr(self, name) <= 0:
                raise ValueError(f"ReadLimits.{name} must be positive")
        if not self.max_seconds > 0:
            raise ValueError("ReadLimits.max_seconds must be positive")


class Deadline:
    """A wall-clock budget that loops over untrusted data check as they go.

    Monotonic time, so a clock change cannot extend or cut it. ``check`` is cheap
    enough to call per element or per inflated chunk.
    """

    __slots__ = ("_expires", "_seconds")

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._expires = time.monotonic() + seconds

    @classmethod
    def unbounded(cls) -> Deadline:
        """A deadline that never expires in practice (for trusted, local input)."""
        return cls(float(365 * 24 * 3600))

    def check(self) -> None:
        """Raise ``InvalidInputError(reason="ofd.timeout")`` once the budget is spent."""
        if time.monotonic() > self._expires:
            raise InvalidInputError(
                f"OFD parsing exceeded its time budget of {self._seconds:g} s",
                reason="ofd.timeout",
            )

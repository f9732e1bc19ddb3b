"""The frozen result of one conversion."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ConversionResult:
    """A converted file and what happened on the way.

    The output is always an **unsealed copy**: signatures and seals of the source
    cannot survive conversion (the bytes change), so ``sealed`` is always False
    and the output's metadata names the source by its SM3 digest.
    """

    #: the converted file
    data: bytes = field(repr=False)
    #: ``pdf`` or ``ofd``
    source_format: str
    target_format: str
    #: SM3 of the source file's bytes, lower-case hex (also in the output's metadata)
    source_sm3: str
    pages: int
    texts: int
    paths: int
    images: int
    #: fonts carried over from the source file (same glyphs)
    embedded_fonts: int
    #: fonts replaced by the system CJK font (the source's could not be used)
    fallback_fonts: int
    #: the certledger proof bundle of the source was copied into the output
    proof_bundle: bool
    #: the source carried signatures or seals; they are not in the output
    source_sealed: bool
    #: the source carried JavaScript / launch / submit / auto actions; none were copied or run
    active_content_dropped: bool = False
    #: features of the source that were not converted (clipping, transparency, ...)
    notes: tuple[str, ...] = ()

    @property
    def sealed(self) -> bool:
        """Always False: a converted file is an unsealed copy."""
        return False

    def summary(self) -> dict[str, Any]:
        """A JSON-safe description (everything but the bytes)."""
        return {
            "source_format": self.source_format,
            "target_format": self.target_format,
            "source_sm3": self.source_sm3,
            "bytes": len(self.data),
            "pages": self.pages,
            "texts": self.texts,
            "paths": self.paths,
            "images": self.images,
            "embedded_fonts": self.embedded_fonts,
            "fallback_fonts": self.fallback_fonts,
            "proof_bundle": self.proof_bundle,
            "source_sealed": self.source_sealed,
            "active_content_dropped": self.active_content_dropped,
            "sealed": self.sealed,
            "copy": "unsealed",
            "notes": list(self.notes),
        }

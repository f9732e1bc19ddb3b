"""OFD (GB/T 33190-2016) packages: a deterministic writer and a hostile-input-safe reader.

The format layer only: it knows pages, text, paths, images, metadata and
attachments, and nothing about seals (GB/T 38540 builds on :func:`build_parts`,
:func:`pack_parts` and :attr:`OFDReadResult.parts`).

Typical use::

    from cert_formats.ofd import (OFDDocument, DocumentInfo, Page, TextObject, Font,
                                  new_doc_id, write_ofd, read_ofd)

    font = Font("AR PL UMing CN", data=ttf_bytes)
    doc = OFDDocument(info=DocumentInfo(doc_id=new_doc_id(), title="营业执照"),
                      pages=(Page((TextObject("营业执照", 80, 40, font, 8),)),))
    data = write_ofd(doc)
    again = read_ofd(data).document
"""

from .limits import Deadline, ReadLimits, XmlLimits, ZipLimits
from .model import (
    A4,
    BLACK,
    OFD_NAMESPACE,
    ArcTo,
    Attachment,
    ClosePath,
    Color,
    CubicTo,
    DocumentInfo,
    Font,
    ImageObject,
    LineTo,
    MoveTo,
    OFDDocument,
    Page,
    PageObject,
    PathCommand,
    PathObject,
    QuadTo,
    TextObject,
    new_doc_id,
)
from .reader import OFDMetadata, OFDReadResult, read_ofd, read_ofd_metadata, resolve_loc
from .safezip import read_zip
from .writer import build_parts, pack_parts, replace_part, write_ofd
from .xmlsafe import parse_xml

__all__ = [
    "A4",
    "BLACK",
    "OFD_NAMESPACE",
    "ArcTo",
    "Attachment",
    "ClosePath",
    "Color",
    "CubicTo",
    "Deadline",
    "DocumentInfo",
    "Font",
    "ImageObject",
    "LineTo",
    "MoveTo",
    "OFDDocument",
    "OFDMetadata",
    "OFDReadResult",
    "Page",
    "PageObject",
    "PathCommand",
    "PathObject",
    "QuadTo",
    "ReadLimits",
    "TextObject",
    "XmlLimits",
    "ZipLimits",
    "build_parts",
    "new_doc_id",
    "pack_parts",
    "parse_xml",
    "read_ofd",
    "read_ofd_metadata",
    "read_zip",
    "replace_part",
    "resolve_loc",
    "write_ofd",
]

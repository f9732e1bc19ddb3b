"""Document metadata across PDF (Info + XMP) and OFD (DocInfo + CustomDatas).

One format-neutral :class:`Metadata` sits between the two: each direction reads
its source into it and writes it out. The mapping (also in
docs/formats-conversion.md):

==========================  ===============================  ==========================
PDF                         :class:`Metadata`                OFD
==========================  ===============================  ==========================
/Title (dc:title)           title                            DocInfo/Title
/Author (dc:creator)        author                           DocInfo/Author
/Subject (dc:description)   subject                          DocInfo/Subject
/Keywords (pdf:Keywords)    keywords (split on , and ;)      DocInfo/Keywords/Keyword
/Creator                    creator                          DocInfo/Creator
/CreationDate, /ModDate     creation_date, mod_date (dates)  DocInfo/CreationDate, ModDate
cl:identifier (XMP)         custom certledger.identifier     CustomData certledger.identifier
cl:typeCode (XMP)           custom certledger.type_code      CustomData certledger.type_code
cl:verifyUrl (XMP)          custom certledger.verify_url     CustomData certledger.verify_url
dc:language, /Lang          custom certledger.language       CustomData certledger.language
/certledger.X               custom certledger.X              CustomData certledger.X
/certledger.custom.N        custom N                         CustomData N
/Producer, any other /K     custom pdf.Producer, pdf.K       CustomData pdf.K
==========================  ===============================  ==========================

Every converted file also gets the copy marks of :func:`mark_copy`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date
from typing import Final
from xml.sax.saxutils import escape as _xml_escape

from cert_formats.ofd.model import DocumentInfo

#: name of the certledger proof bundle, as an OFD attachment and a PDF embedded file
PROOF_BUNDLE_NAME: Final = "certledger-proof.json"
#: SM3 (hex) of the bytes of the file this copy was converted from
META_SOURCE_SM3: Final = "certledger.source_sm3"
#: ``pdf`` or ``ofd``: the format of that file
META_SOURCE_FORMAT: Final = "certledger.source_format"
#: SM3 / format of the first file in a chain of conversions (the sealed original)
META_ORIGINAL_SM3: Final = "certledger.original_sm3"
META_ORIGINAL_FORMAT: Final = "certledger.original_format"
#: always ``unsealed``: a converted file is a copy, never the sealed original
META_COPY: Final = "certledger.copy"
COPY_MARK: Final = "unsealed"
META_IDENTIFIER: Final = "certledger.identifier"
META_TYPE_CODE: Final = "certledger.type_code"
META_VERIFY_URL: Final = "certledger.verify_url"
META_LANGUAGE: Final = "certledger.language"

CERTLEDGER_PREFIX: Final = "certledger."
CUSTOM_PREFIX: Final = "certledger.custom."
PDF_PREFIX: Final = "pdf."
#: the PDF Info keys the standard defines (never taken from custom data)
STANDARD_INFO_KEYS: Final = frozenset(
    {"Title", "Author", "Subject", "Keywords", "Creator", "Producer", "CreationDate", "ModDate", "Trapped"})
_XMP_CUSTOM: Final[Mapping[str, str]] = {
    "cl:identifier": META_IDENTIFIER, "cl:typeCode": META_TYPE_CODE, "cl:verifyUrl": META_VERIFY_URL,
    "dc:language": META_LANGUAGE,
}
_PDF_DATE_RE: Final = re.compile(r"^D?:?(\d{4})(\d{2})?(\d{2})?")
_CUSTOM_NAME_MAX: Final = 256
_CUSTOM_VALUE_MAX: Final = 64 * 1024
_CERTLEDGER_NS: Final = "https://certledger.example/ns/licence/1.0/"


@dataclass(frozen=True)
class Metadata:
    """Document metadata common to PDF and OFD."""

    title: str | None = None
    author: str | None = None
    subject: str | None = None
    keywords: tuple[str, ...] = ()
    creator: str | None = None
    creation_date: date | None = None
    mod_date: date | None = None
    #: ordered, unique names (see the module table)
    custom: tuple[tuple[str, str], ...] = ()

    def get(self, name: str) -> str | None:
        """The custom value called ``name``, if any."""
        return dict(self.custom).get(name)

    def with_custom(self, name: str, value: str) -> Metadata:
        """A copy with ``name`` set to ``value`` (replacing any earlier value)."""
        pairs = [(k, v) for k, v in self.custom if k != name]
        pairs.append((name, value))
        return replace(self, custom=tuple(pairs))


def _pdf_date(text: str | None) -> date | None:
    if not text:
        return None
    m = _PDF_DATE_RE.match(text.strip())
    if m is None:
        return None
    try:
        return date(int(m.group(1)), int(m.group(2) or 1), int(m.group(3) or 1))
    except ValueError:
        return None


def _keywords(text: str | None) -> tuple[str, ...]:
    if not text:
        return ()
    out: list[str] = []
    for part in re.split(r"[,;]", text):
        word = part.strip()
        if word and word not in out:
            out.append(word[:1024])
    return tuple(out[:256])


def _clean(value: str | None) -> str | None:
    return None if value is None else value[:4096]


def from_pdf(info: Mapping[str, str], xmp: Mapping[str, str], lang: str | None = None) -> Metadata:
    """Metadata of a PDF from its Info dictionary (keys without ``/``) and XMP properties."""
    custom: dict[str, str] = {}
    for key, value in info.items():
        if key in STANDARD_INFO_KEYS and key != "Producer":
            continue
        if key.startswith(CUSTOM_PREFIX) and len(key) > len(CUSTOM_PREFIX):
            name = key[len(CUSTOM_PREFIX):]
        elif key.startswith(CERTLEDGER_PREFIX):
            name = key
        else:
            name = PDF_PREFIX + key
        custom.setdefault(name[:_CUSTOM_NAME_MAX], value[:_CUSTOM_VALUE_MAX])
    for prop, name in _XMP_CUSTOM.items():
        if xmp.get(prop):
            custom.setdefault(name, xmp[prop][:_CUSTOM_VALUE_MAX])
    if lang and META_LANGUAGE not in custom:
        custom[META_LANGUAGE] = lang[:64]
    return Metadata(
        title=_clean(info.get("Title") or xmp.get("dc:title")),
        author=_clean(info.get("Author") or xmp.get("dc:creator")),
        subject=_clean(info.get("Subject") or xmp.get("dc:description")),
        keywords=_keywords(info.get("Keywords") or xmp.get("pdf:Keywords")),
        creator=_clean(info.get("Creator") or xmp.get("xmp:CreatorTool")),
        creation_date=_pdf_date(info.get("CreationDate")) or _xmp_date(xmp.get("xmp:CreateDate")),
        mod_date=_pdf_date(info.get("ModDate")) or _xmp_date(xmp.get("xmp:ModifyDate")),
        custom=tuple(custom.items()),
    )


def _xmp_date(text: str | None) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text.strip()[:10])
    except ValueError:
        return None


def from_ofd(info: DocumentInfo) -> Metadata:
    """Metadata of an OFD document from its ``DocInfo``."""
    return Metadata(title=info.title, author=info.author, subject=info.subject, keywords=info.keywords,
                    creator=info.creator, creation_date=info.creation_date, mod_date=info.mod_date,
                    custom=info.custom_data)


def mark_copy(meta: Metadata, source_sm3: str, source_format: str) -> Metadata:
    """Mark ``meta`` as that of an unsealed copy converted from a file with ``source_sm3``.

    The source is the file converted now; the *original* is the first file of a
    chain of conversions (a copy of a copy still names the sealed original).
    """
    original_sm3 = meta.get(META_ORIGINAL_SM3) or meta.get(META_SOURCE_SM3) or source_sm3
    original_format = meta.get(META_ORIGINAL_FORMAT) or meta.get(META_SOURCE_FORMAT) or source_format
    out = meta
    for name, value in ((META_COPY, COPY_MARK), (META_SOURCE_SM3, source_sm3),
                        (META_SOURCE_FORMAT, source_format), (META_ORIGINAL_SM3, original_sm3),
                        (META_ORIGINAL_FORMAT, original_format)):
        out = out.with_custom(name, value)
    return out


def to_ofd_info(meta: Metadata, doc_id: str) -> DocumentInfo:
    """``DocInfo`` for ``meta``; ``doc_id`` is 32 letters/digits."""
    return DocumentInfo(doc_id=doc_id, title=meta.title, author=meta.author, subject=meta.subject,
                        creation_date=meta.creation_date, mod_date=meta.mod_date,
                        creator=meta.creator or "certledger", keywords=meta.keywords, custom_data=meta.custom)


def pdf_info_key(name: str) -> str:
    """The PDF Info key (without ``/``) that carries the custom value ``name``."""
    if name.startswith(CERTLEDGER_PREFIX) and not name.startswith(CUSTOM_PREFIX):
        return name
    if name.startswith(PDF_PREFIX) and name[len(PDF_PREFIX):] and name[len(PDF_PREFIX):] not in STANDARD_INFO_KEYS:
        return name[len(PDF_PREFIX):]
    return CUSTOM_PREFIX + name


def pdf_date(day: date) -> str:
    """A PDF date string for a calendar day (no time: OFD keeps dates only)."""
    return f"D:{day.year:04d}{day.month:02d}{day.day:02d}"


def to_pdf_custom(meta: Metadata) -> dict[str, str]:
    """Custom Info entries (keys without ``/``) for ``meta.custom``."""
    out: dict[str, str] = {}
    for name, value in meta.custom:
        out.setdefault(pdf_info_key(name), value)
    return out


def xmp_packet(meta: Metadata, producer: str) -> str:
    """An XMP packet with the Dublin Core, XMP, PDF and certledger licence properties."""
    e = _xml_escape
    lines = [
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>',
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">',
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">',
        '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/"'
        ' xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmlns:pdf="http://ns.adobe.com/pdf/1.3/"'
        f' xmlns:cl="{_CERTLEDGER_NS}">',
    ]
    if meta.title is not None:
        lines.append(f'<dc:title><rdf:Alt><rdf:li xml:lang="x-default">{e(meta.title)}</rdf:li></rdf:Alt></dc:title>')
    if meta.author is not None:
        lines.append(f"<dc:creator><rdf:Seq><rdf:li>{e(meta.author)}</rdf:li></rdf:Seq></dc:creator>")
    if meta.subject is not None:
        lines.append('<dc:description><rdf:Alt><rdf:li xml:lang="x-default">'
                     f"{e(meta.subject)}</rdf:li></rdf:Alt></dc:description>")
    identifier = meta.get(META_IDENTIFIER)
    if identifier:
        lines.append(f"<dc:identifier>{e(identifier)}</dc:identifier>")
    language = meta.get(META_LANGUAGE)
    if language:
        lines.append(f"<dc:language><rdf:Bag><rdf:li>{e(language)}</rdf:li></rdf:Bag></dc:language>")
    if meta.creation_date is not None:
        lines.append(f"<xmp:CreateDate>{meta.creation_date.isoformat()}</xmp:CreateDate>")
    if meta.mod_date is not None:
        lines.append(f"<xmp:ModifyDate>{meta.mod_date.isoformat()}</xmp:ModifyDate>")
    if meta.creator is not None:
        lines.append(f"<xmp:CreatorTool>{e(meta.creator)}</xmp:CreatorTool>")
    if meta.keywords:
        lines.append(f"<pdf:Keywords>{e(', '.join(meta.keywords))}</pdf:Keywords>")
    lines.append(f"<pdf:Producer>{e(producer)}</pdf:Producer>")
    for prop, name in (("identifier", META_IDENTIFIER), ("typeCode", META_TYPE_CODE),
                       ("verifyUrl", META_VERIFY_URL), ("copy", META_COPY), ("sourceSm3", META_SOURCE_SM3),
                       ("sourceFormat", META_SOURCE_FORMAT), ("originalSm3", META_ORIGINAL_SM3),
                       ("originalFormat", META_ORIGINAL_FORMAT)):
        value = meta.get(name)
        if value:
            lines.append(f"<cl:{prop}>{e(value)}</cl:{prop}>")
    lines += ["</rdf:Description>", "</rdf:RDF>", "</x:xmpmeta>", '<?xpacket end="w"?>']
    return "\n".join(lines)

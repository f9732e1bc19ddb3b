"""Reading an untrusted OFD file into the model, within limits and a time budget.

Steps (each labelled again below):

1. unpack the zip in memory under :class:`ZipLimits` (:mod:`.safezip`);
2. parse ``OFD.xml``: exactly one ``DocBody``; its ``DocInfo`` (with
   ``CustomDatas``), ``DocRoot`` and ``Signatures`` pointer;
3. parse ``Document.xml``: ``CommonData`` (default page area, ``PublicRes`` and
   ``DocumentRes`` with their fonts and multimedia), the page list, attachments;
4. parse each page's ``Content.xml`` (and its ``PageRes``): layers and page
   blocks down to text, path and image objects, mapped into page coordinates;
5. read ``Attachments.xml`` and the attached files;
6. build the frozen model; hand back the raw parts as well, for a seal layer.

Every XML part goes through :func:`.xmlsafe.parse_xml`. Every ``ST_Loc`` is
resolved by :func:`resolve_loc`: absolute (``/``) from the package root, relative
from the referencing part's folder, normalised, and confined — ``DocRoot`` to the
package, everything the document references to the document's own folder.
A wall-clock :class:`Deadline` is checked in every loop.

Not read (known limits): template pages, annotations, composite objects,
``DrawParam`` inheritance, colour spaces other than RGB/gray/CMYK values,
``DeltaY``/vertical text, clipping, and objects marked ``Visible="false"``
(they are not what a person sees, so they are not reported as content).
"""

from __future__ import annotations

import math
import posixpath
import re
import threading
import xml.etree.ElementTree as ET
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from types import MappingProxyType
from typing import Final, TypeAlias

from signing.errors import InvalidInputError

from .geometry import Matrix
from .limits import Deadline, ReadLimits
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
    default_advances,
    em_advance,
)
from .safezip import read_zip
from .xmlsafe import parse_xml

_NS: Final = "{" + OFD_NAMESPACE + "}"
_ID_RE: Final = re.compile(r"^\d{1,10}$")
_SCHEME_RE: Final = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")
_DRIVE_RE: Final = re.compile(r"^[A-Za-z]:")
_DATE_RE: Final = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:[T ].*)?$")
#: coordinates beyond a kilometre are not a page, they are an attack on arithmetic
_MAX_COORD: Final = 1_000_000.0
_MAX_PAGE_MM: Final = 10_000.0
_PATH_ARITY: Final = {"S": 2, "M": 2, "L": 2, "Q": 4, "B": 6, "A": 7, "C": 0}
_MEDIA_MAGIC: Final = ((b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"),
                       (b"GIF8", "GIF"), (b"BM", "BMP"), (b"II*\x00", "TIFF"),
                       (b"MM\x00*", "TIFF"))


@dataclass(frozen=True)
class OFDReadResult:
    """What :func:`read_ofd` returns.

    ``parts`` is every file of the package (read-only), for a seal layer that
    recomputes digests; ``signatures_loc`` is the resolved path of the
    ``Signatures.xml`` that ``OFD.xml`` names, if any (it is not parsed here).
    """

    document: OFDDocument
    parts: Mapping[str, bytes] = field(repr=False)
    doc_root: str
    signatures_loc: str | None
    version: str | None
    doc_type: str | None


@dataclass(frozen=True)
class OFDMetadata:
    """What :func:`read_ofd_metadata` returns: the document's info and attachments only."""

    info: DocumentInfo
    attachments: tuple[Attachment, ...]
    doc_root: str
    signatures_loc: str | None


class _ParsedPathCache:
    """Parsed ``AbbreviatedData``, keyed by everything the parse depends on.

    Only successful parses are kept (an invalid path raises every time), and the
    model objects are frozen, so a hit is exactly what parsing again would give.
    Bounded by the total number of commands held, so hostile files can only
    evict entries, not grow memory.
    """

    def __init__(self, max_commands: int) -> None:
        self._max = max_commands
        self._held = 0
        self._entries: OrderedDict[_PathKey, tuple[PathCommand, ...]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: _PathKey) -> tuple[PathCommand, ...] | None:
        with self._lock:
            commands = self._entries.get(key)
            if commands is not None:
                self._entries.move_to_end(key)
            return commands

    def put(self, key: _PathKey, commands: tuple[PathCommand, ...]) -> None:
        if len(commands) > self._max // 4:
            return  # one huge path would flush everything else
        with self._lock:
            if key in self._entries:
                return
            self._entries[key] = commands
            self._held += len(commands)
            while self._held > self._max:
                _, evicted = self._entries.popitem(last=False)
                self._held -= len(evicted)


#: (AbbreviatedData, Boundary, CTM) exactly as the file spells them
_PathKey: TypeAlias = tuple[str, str | None, str | None]
#: about five templates' worth of ornaments
_PARSED_PATHS: Final = _ParsedPathCache(100_000)


def _err(message: str, reason: str, part: str | None = None) -> InvalidInputError:
    return InvalidInputError(message, reason=reason,
                             details={"part": part} if part is not None else None)


def resolve_loc(loc: str, base_dir: str, confine: str, *, part: str) -> str:
    """Resolve an ``ST_Loc`` found in ``part`` to a package path, safely.

    ``base_dir`` is the folder relative paths start from ("" for the root);
    ``confine`` is the folder the result must stay inside ("" for the package).
    Raises ``ofd.path_traversal`` when it climbs out, ``ofd.absolute_path`` for a
    drive letter, ``ofd.external_reference`` for a URL, ``ofd.bad_reference`` for
    an empty or malformed location.
    """
    loc = loc.strip()
    if not loc:
        raise _err("an empty location", "ofd.bad_reference", part)
    if _DRIVE_RE.match(loc) or loc.startswith("\\\\"):
        raise _err(f"location {loc!r} is a file-system path", "ofd.absolute_path", part)
    if _SCHEME_RE.match(loc):
        raise _err(f"location {loc!r} points outside the package", "ofd.external_reference",
                   part)
    if "\\" in loc or "\x00" in loc:
        raise _err(f"location {loc!r} has a forbidden character", "ofd.bad_reference", part)
    joined = loc[1:] if loc.startswith("/") else (f"{base_dir}/{loc}" if base_dir else loc)
    out: list[str] = []
    for seg in joined.split("/"):
        if seg in ("", "."):
            continue
        if seg == "..":
            if not out:
                raise _err(f"location {loc!r} climbs out of the package", "ofd.path_traversal",
                           part)
            out.pop()
        else:
            out.append(seg)
    resolved = "/".join(out)
    if not resolved:
        raise _err(f"location {loc!r} names no file", "ofd.bad_reference", part)
    if confine and not resolved.startswith(confine + "/"):
        raise _err(f"location {loc!r} leaves the document folder {confine!r}",
                   "ofd.path_traversal", part)
    return resolved


def _q(name: str) -> str:
    return _NS + name


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(el: ET.Element, name: str) -> ET.Element | None:
    return el.find(_q(name))


def _children(el: ET.Element, name: str) -> list[ET.Element]:
    return el.findall(_q(name))


def _child_text(el: ET.Element, name: str) -> str | None:
    """A child's text with surrounding blanks removed (locations, dates, IDs)."""
    found = _child(el, name)
    if found is None:
        return None
    return (found.text or "").strip()


def _child_string(el: ET.Element, name: str) -> str | None:
    """A child's text exactly as written (titles and names round-trip unchanged)."""
    found = _child(el, name)
    return None if found is None else (found.text or "")


def _dir(path: str) -> str:
    return posixpath.dirname(path)


class _Reader:
    """One read: the parts, the limits, the budget and what has been found so far."""

    def __init__(self, parts: dict[str, bytes], limits: ReadLimits, deadline: Deadline) -> None:
        self.parts = parts
        self.limits = limits
        self.deadline = deadline
        self.objects = 0
        self.text_chars = 0
        self.path_commands = 0
        self.ids: dict[str, str] = {}
        self.fonts: dict[str, Font] = {}
        self.media: dict[str, tuple[str, str]] = {}  # ID -> (format, package path)
        self.loaded_res: set[str] = set()

    # -- parts and XML ---------------------------------------------------------------

    def part(self, path: str, what: str) -> bytes:
        try:
            return self.parts[path]
        except KeyError:
            raise _err(f"the package has no {what} {path!r}", "ofd.missing_part", path) from None

    def xml(self, path: str, what: str, root_name: str) -> ET.Element:
        root = parse_xml(self.part(path, what), part=path, limits=self.limits.xml,
                         deadline=self.deadline)
        if root.tag != _q(root_name):
            if _local(root.tag) == root_name:
                raise _err(f"{path!r} is not in the OFD namespace {OFD_NAMESPACE}",
                           "ofd.wrong_namespace", path)
            raise _err(f"{path!r} has root <{_local(root.tag)}>, expected <{root_name}>",
                       "ofd.unexpected_root", path)
        return root

    def count_object(self, path: str) -> None:
        self.objects += 1
        if self.objects > self.limits.max_objects:
            raise _err(f"more than {self.limits.max_objects} objects", "ofd.too_many_objects",
                       path)
        if self.objects % 64 == 0:
            self.deadline.check()

    def register_id(self, value: str | None, kind: str, path: str) -> str:
        if value is None or not _ID_RE.match(value.strip()):
            raise _err(f"{kind} has a missing or malformed ID {value!r}", "ofd.bad_value", path)
        value = value.strip()
        if value in self.ids:
            raise _err(f"ID {value} is used twice", "ofd.duplicate_id", path)
        self.ids[value] = kind
        return value

    # -- values ----------------------------------------------------------------------

    def numbers(self, text: str | None, path: str, what: str, count: int | None = None,
                ) -> list[float]:
        if text is None:
            raise _err(f"{what} is missing", "ofd.bad_value", path)
        tokens = text.split()
        if count is not None and len(tokens) != count:
            raise _err(f"{what} needs {count} numbers, got {len(tokens)}", "ofd.bad_value", path)
        return [self.number(tok, path, what) for tok in tokens]

    @staticmethod
    def number(token: str, path: str, what: str) -> float:
        # float() is the fast path; what it accepts beyond plain ASCII decimals ("nan",
        # "inf", "1_0", non-ASCII digits) is refused so every reader sees the same number
        try:
            value = float(token)
        except ValueError:
            value = math.nan
        if not -_MAX_COORD <= value <= _MAX_COORD or "_" in token or not token.isascii():
            raise _err(f"{what} has a bad number {token[:32]!r}", "ofd.bad_value", path)
        return value

    def box(self, text: str | None, path: str, what: str) -> tuple[float, float, float, float]:
        x, y, w, h = self.numbers(text, path, what, 4)
        if w < 0 or h < 0:
            raise _err(f"{what} has a negative size", "ofd.bad_value", path)
        return x, y, w, h

    def matrix(self, text: str | None, path: str) -> Matrix:
        if text is None:
            return Matrix()
        return Matrix(*self.numbers(text, path, "CTM", 6))

    @staticmethod
    def boolean(text: str | None, default: bool, path: str, what: str) -> bool:
        if text is None:
            return default
        value = text.strip().lower()
        if value in ("true", "1"):
            return True
        if value in ("false", "0"):
            return False
        raise _err(f"{what} is not a boolean: {text[:32]!r}", "ofd.bad_value", path)

    def color(self, el: ET.Element | None, default: Color, path: str) -> Color:
        if el is None or el.get("Value") is None:
            return default
        channels: list[int] = []
        for tok in (el.get("Value") or "").split():
            try:
                value = int(tok[1:], 16) if tok.startswith("#") else int(tok)
            except ValueError:
                raise _err(f"colour value {tok[:16]!r} is not an integer", "ofd.bad_value",
                           path) from None
            if not 0 <= value <= 255:
                raise _err(f"colour value {value} is out of 0..255", "ofd.bad_value", path)
            channels.append(value)
        if len(channels) == 3:
            return Color(*channels)
        if len(channels) == 1:
            return Color(channels[0], channels[0], channels[0])
        if len(channels) == 4:  # CMYK, naive conversion: enough to show roughly the right ink
            c, m, y, k = (v / 255 for v in channels)
            return Color(*(round(255 * (1 - v) * (1 - k)) for v in (c, m, y)))
        raise _err(f"colour has {len(channels)} channels", "ofd.bad_value", path)

    def deltas(self, text: str | None, wanted: int, path: str) -> list[float]:
        """Expand a ``DeltaX`` (``g N v`` repeats included) to at most ``wanted`` values."""
        if not text:
            return []
        tokens = text.split()
        out: list[float] = []
        i = 0
        while i < len(tokens) and len(out) < wanted:
            if tokens[i] == "g":
                # ASCII digits only: str.isdigit() is also true of "²", which int() refuses
                if i + 2 >= len(tokens) or not (tokens[i + 1].isascii() and tokens[i + 1].isdigit()):
                    raise _err("malformed 'g' repeat in DeltaX", "ofd.bad_value", path)
                count_tok = tokens[i + 1]
                # never trust N: "g 999999999999 1" must not allocate what it asks for
                count = int(count_tok) if len(count_tok) <= 9 else wanted
                repeat = min(count, wanted - len(out))
                out.extend([self.number(tokens[i + 2], path, "DeltaX")] * repeat)
                i += 3
            else:
                out.append(self.number(tokens[i], path, "DeltaX"))
                i += 1
        return out

    # -- 2. OFD.xml ------------------------------------------------------------------

    def read(self) -> OFDReadResult:
        root, info, doc_root, signatures = self.entry()
        pages, attachments = self.document(doc_root)
        document = OFDDocument(info=info, pages=tuple(pages), attachments=tuple(attachments))
        # 6. the model, and the raw parts for whoever verifies a seal over them
        return OFDReadResult(document=document, parts=MappingProxyType(self.parts),
                             doc_root=doc_root, signatures_loc=signatures,
                             version=root.get("Version"), doc_type=root.get("DocType"))

    def metadata(self) -> OFDMetadata:
        _root, info, doc_root, signatures = self.entry()
        document = self.xml(doc_root, "document root", "Document")
        attachments: list[Attachment] = []
        attach_loc = _child_text(document, "Attachments")
        if attach_loc:
            doc_dir = _dir(doc_root)
            attachments = self.attachments(resolve_loc(attach_loc, doc_dir, doc_dir, part=doc_root), doc_dir)
        return OFDMetadata(info=info, attachments=tuple(attachments), doc_root=doc_root,
                           signatures_loc=signatures)

    def entry(self) -> tuple[ET.Element, DocumentInfo, str, str | None]:
        """OFD.xml: its root, the document's info, the DocRoot and Signatures paths."""
        root = self.xml("OFD.xml", "entry part", "OFD")
        bodies = _children(root, "DocBody")
        if not bodies:
            raise _err("OFD.xml has no DocBody", "ofd.missing_part", "OFD.xml")
        if len(bodies) > 1:
            # One file, one document: a second body could show a viewer something the
            # seal and the ledger never saw.
            raise _err("OFD.xml holds more than one document", "ofd.multiple_documents",
                       "OFD.xml")
        body = bodies[0]
        info_el = _child(body, "DocInfo")
        if info_el is None:
            raise _err("DocBody has no DocInfo", "ofd.missing_part", "OFD.xml")
        info = self.doc_info(info_el)
        doc_root_loc = _child_text(body, "DocRoot")
        if not doc_root_loc:
            raise _err("DocBody has no DocRoot", "ofd.missing_part", "OFD.xml")
        doc_root = resolve_loc(doc_root_loc, "", "", part="OFD.xml")
        signatures_text = _child_text(body, "Signatures")
        signatures = (resolve_loc(signatures_text, "", "", part="OFD.xml")
                      if signatures_text else None)
        return root, info, doc_root, signatures

    def doc_info(self, el: ET.Element) -> DocumentInfo:
        path = "OFD.xml"
        custom: list[tuple[str, str]] = []
        seen: set[str] = set()
        datas = _child(el, "CustomDatas")
        for data in _children(datas, "CustomData") if datas is not None else []:
            name = data.get("Name")
            if not name:
                raise _err("CustomData without a Name", "ofd.bad_value", path)
            if name in seen:
                # Custom data carries identifiers; two values for one name is ambiguity
                # an attacker would love, so it is refused rather than resolved.
                raise _err(f"CustomData {name!r} appears twice", "ofd.duplicate_custom_data",
                           path)
            seen.add(name)
            custom.append((name, data.text or ""))
        keywords_el = _child(el, "Keywords")
        keywords = tuple((k.text or "").strip() for k in _children(keywords_el, "Keyword")
                         if (k.text or "").strip()) if keywords_el is not None else ()
        return DocumentInfo(
            doc_id=_child_text(el, "DocID") or None,
            title=_child_string(el, "Title"),
            author=_child_string(el, "Author"),
            subject=_child_string(el, "Subject"),
            creation_date=self.date(_child_text(el, "CreationDate"), path),
            mod_date=self.date(_child_text(el, "ModDate"), path),
            creator=_child_string(el, "Creator"),
            creator_version=_child_string(el, "CreatorVersion"),
            keywords=keywords,
            custom_data=tuple(custom),
        )

    @staticmethod
    def date(text: str | None, path: str) -> date | None:
        if not text:
            return None
        match = _DATE_RE.match(text)
        if not match:
            raise _err(f"date {text[:32]!r} is not YYYY-MM-DD", "ofd.bad_value", path)
        try:
            return date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
        except ValueError:
            raise _err(f"date {text[:32]!r} does not exist", "ofd.bad_value", path) from None

    # -- 3. Document.xml -------------------------------------------------------------

    def document(self, doc_root: str) -> tuple[list[Page], list[Attachment]]:
        root = self.xml(doc_root, "document root", "Document")
        doc_dir = _dir(doc_root)
        confine = doc_dir  # "" when Document.xml sits at the package root
        common = _child(root, "CommonData")
        if common is None:
            raise _err("Document.xml has no CommonData", "ofd.missing_part", doc_root)
        default_size = A4
        area = _child(common, "PageArea")
        if area is not None and _child(area, "PhysicalBox") is not None:
            default_size = self.page_size(_child_text(area, "PhysicalBox"), doc_root)
        for tag in ("PublicRes", "DocumentRes"):
            for res_el in _children(common, tag):
                loc = (res_el.text or "").strip()
                self.resources(resolve_loc(loc, doc_dir, confine, part=doc_root), confine)
        pages_el = _child(root, "Pages")
        page_refs = _children(pages_el, "Page") if pages_el is not None else []
        if not page_refs:
            raise _err("the document has no pages", "ofd.no_pages", doc_root)
        if len(page_refs) > self.limits.max_pages:
            raise _err(f"more than {self.limits.max_pages} pages", "ofd.too_many_pages",
                       doc_root)
        pages: list[Page] = []
        for ref in page_refs:
            self.deadline.check()
            self.register_id(ref.get("ID"), "page", doc_root)
            page_loc = ref.get("BaseLoc")
            if not page_loc:
                raise _err("a Page has no BaseLoc", "ofd.bad_reference", doc_root)
            page_path = resolve_loc(page_loc, doc_dir, confine, part=doc_root)
            pages.append(self.page(page_path, default_size, confine))
        attachments: list[Attachment] = []
        attach_loc = _child_text(root, "Attachments")
        if attach_loc:
            attachments = self.attachments(resolve_loc(attach_loc, doc_dir, confine,
                                                       part=doc_root), confine)
        return pages, attachments

    def page_size(self, text: str | None, path: str) -> tuple[float, float]:
        _x, _y, w, h = self.box(text, path, "PhysicalBox")
        if not (0 < w <= _MAX_PAGE_MM and 0 < h <= _MAX_PAGE_MM):
            raise _err(f"page size {w}x{h} mm is not a page", "ofd.bad_value", path)
        return w, h

    def resources(self, res_path: str, confine: str) -> None:
        """Fonts and multimedia of one ``Res`` part (read once, however often named)."""
        if res_path in self.loaded_res:
            return
        self.loaded_res.add(res_path)
        root = self.xml(res_path, "resource list", "Res")
        base_loc = root.get("BaseLoc")
        base_dir = (resolve_loc(base_loc, _dir(res_path), confine, part=res_path)
                    if base_loc and base_loc.strip() not in ("", ".") else _dir(res_path))
        for fonts in _children(root, "Fonts"):
            for font_el in _children(fonts, "Font"):
                self.deadline.check()
                font_id = self.register_id(font_el.get("ID"), "font", res_path)
                self.fonts[font_id] = self.font(font_el, base_dir, confine, res_path)
        for medias in _children(root, "MultiMedias"):
            for media in _children(medias, "MultiMedia"):
                self.deadline.check()
                media_id = self.register_id(media.get("ID"), "multimedia", res_path)
                file_loc = _child_text(media, "MediaFile")
                if not file_loc:
                    raise _err(f"MultiMedia {media_id} has no MediaFile", "ofd.bad_reference",
                               res_path)
                media_path = resolve_loc(file_loc, base_dir, confine, part=res_path)
                kind = (media.get("Type") or "Image").strip()
                if kind.lower() == "image":
                    self.media[media_id] = ((media.get("Format") or "").strip().upper(),
                                            media_path)

    def font(self, el: ET.Element, base_dir: str, confine: str, path: str) -> Font:
        font_name = (el.get("FontName") or "").strip()
        family = (el.get("FamilyName") or "").strip() or font_name
        if not family:
            raise _err("a Font has neither FontName nor FamilyName", "ofd.bad_value", path)
        data: bytes | None = None
        file_loc = _child_text(el, "FontFile")
        if file_loc:
            data = self.part(resolve_loc(file_loc, base_dir, confine, part=path), "font file")
        return Font(
            family=family, data=data or None,
            font_name=font_name if font_name and font_name != family else None,
            bold=self.boolean(el.get("Bold"), False, path, "Bold"),
            italic=self.boolean(el.get("Italic"), False, path, "Italic"),
            serif=self.boolean(el.get("Serif"), False, path, "Serif"),
            fixed_width=self.boolean(el.get("FixedWidth"), False, path, "FixedWidth"),
        )

    # -- 4. pages --------------------------------------------------------------------

    def page(self, path: str, default_size: tuple[float, float], confine: str) -> Page:
        root = self.xml(path, "page", "Page")
        for page_res in _children(root, "PageRes"):
            loc = (page_res.text or "").strip()
            self.resources(resolve_loc(loc, _dir(path), confine, part=path), confine)
        width, height = default_size
        area = _child(root, "Area")
        if area is not None and _child(area, "PhysicalBox") is not None:
            width, height = self.page_size(_child_text(area, "PhysicalBox"), path)
        objects: list[PageObject] = []
        content = _child(root, "Content")
        if content is not None:
            for layer in _children(content, "Layer"):
                objects.extend(self.block(layer, path))
        return Page(objects=tuple(objects), width=width, height=height)

    def block(self, el: ET.Element, path: str) -> Iterator[PageObject]:
        """Objects of a layer or page block, in document order (depth bounded by XML)."""
        for child in el:
            self.deadline.check()
            name = _local(child.tag)
            if not child.tag.startswith(_NS):
                continue
            if child.get("Visible", "true").strip().lower() == "false":
                continue
            if name == "PageBlock":
                yield from self.block(child, path)
            elif name == "TextObject":
                yield from self.text_object(child, path)
            elif name == "PathObject":
                self.count_object(path)
                path_obj = self.path_object(child, path)
                if path_obj is not None:
                    yield path_obj
            elif name == "ImageObject":
                self.count_object(path)
                image = self.image_object(child, path)
                if image is not None:
                    yield image

    def text_object(self, el: ET.Element, path: str) -> Iterator[TextObject]:
        bx, by, _bw, _bh = self.box(el.get("Boundary"), path, "Boundary")
        ctm = self.matrix(el.get("CTM"), path)
        font_ref = (el.get("Font") or "").strip()
        font = self.fonts.get(font_ref)
        if font is None:
            raise _err(f"TextObject uses unknown font {font_ref[:16]!r}", "ofd.bad_reference",
                       path)
        (size,) = self.numbers(el.get("Size"), path, "Size", 1)
        if size <= 0:
            raise _err("TextObject has a non-positive Size", "ofd.bad_value", path)
        fill = self.color(_child(el, "FillColor"), BLACK, path)
        scale = ctm.scale if not ctm.is_identity else 1.0
        x = y = 0.0
        for code in _children(el, "TextCode"):
            self.count_object(path)
            text = code.text or ""
            if len(text) > self.limits.max_text_chars:
                raise _err(f"a TextCode longer than {self.limits.max_text_chars} characters",
                           "ofd.text_too_long", path)
            self.text_chars += len(text)
            if self.text_chars > self.limits.max_total_text_chars:
                raise _err(f"more than {self.limits.max_total_text_chars} characters of text",
                           "ofd.text_too_long", path)
            if code.get("X") is not None:
                (x,) = self.numbers(code.get("X"), path, "X", 1)
            if code.get("Y") is not None:
                (y,) = self.numbers(code.get("Y"), path, "Y", 1)
            if not text:
                continue
            deltas = self.deltas(code.get("DeltaX"), len(text) - 1, path)
            # a short DeltaX leaves the rest to the font's own advances; ours are assumed
            deltas += default_advances(text, size)[len(deltas):]
            px, py = ctm.apply(x, y)
            yield TextObject(text=text, x=bx + px, y=by + py, font=font,
                             size=size * scale, fill=fill,
                             delta_x=tuple(d * scale for d in deltas))
            # where a following TextCode without X continues
            x += sum(deltas) + em_advance(text[-1], size)

    def path_object(self, el: ET.Element, path: str) -> PathObject | None:
        bx, by, _bw, _bh = self.box(el.get("Boundary"), path, "Boundary")
        ctm = self.matrix(el.get("CTM"), path)
        stroke = self.boolean(el.get("Stroke"), True, path, "Stroke")
        fill = self.boolean(el.get("Fill"), False, path, "Fill")
        width_text = el.get("LineWidth")
        line_width = 0.353
        if width_text is not None:
            (line_width,) = self.numbers(width_text, path, "LineWidth", 1)
            if line_width < 0:
                raise _err("negative LineWidth", "ofd.bad_value", path)
        line_width = max(line_width * (ctm.scale if not ctm.is_identity else 1.0), 0.001)
        data = _child_text(el, "AbbreviatedData")
        if data is None:
            raise _err("PathObject has no AbbreviatedData", "ofd.bad_value", path)
        commands = self.abbreviated(data, ctm, bx, by, path,
                                    source=(data, el.get("Boundary"), el.get("CTM")))
        if not commands or not (stroke or fill):
            return None  # nothing a person would see
        return PathObject(
            commands=tuple(commands),
            stroke=self.color(_child(el, "StrokeColor"), BLACK, path) if stroke else None,
            fill=self.color(_child(el, "FillColor"), BLACK, path) if fill else None,
            line_width=line_width,
        )

    def abbreviated(self, data: str, ctm: Matrix, bx: float, by: float, path: str, *,
                    source: _PathKey | None = None) -> tuple[PathCommand, ...]:
        """``AbbreviatedData`` to commands in page coordinates (Boundary origin + CTM).

        ``source`` is the raw text the four values were read from (data,
        ``Boundary``, ``CTM``), which decides the result completely. Licence
        faces repeat the same ornament paths file after file, so parses are kept
        by that text (:data:`_PARSED_PATHS`); this file's command budget is
        charged either way.
        """
        budget = self.limits.max_path_commands - self.path_commands
        commands = _PARSED_PATHS.get(source) if source is not None else None
        if commands is None:
            commands = tuple(self._parse_abbreviated(data, ctm, bx, by, path, budget))
            if source is not None:
                _PARSED_PATHS.put(source, commands)
        elif len(commands) > budget:
            raise _err(f"more than {self.limits.max_path_commands} path commands",
                       "ofd.path_too_complex", path)
        self.path_commands += len(commands)
        return commands

    def _parse_abbreviated(self, data: str, ctm: Matrix, bx: float, by: float, path: str,
                           budget: int) -> list[PathCommand]:
        tokens = data.split()
        count = len(tokens)
        commands: list[PathCommand] = []
        number = self.number
        identity = ctm.is_identity
        i = 0

        def point(k: int) -> tuple[float, float]:
            px, py = number(tokens[k], path, "path"), number(tokens[k + 1], path, "path")
            if identity:
                return bx + px, by + py
            tx, ty = ctm.apply(px, py)
            return bx + tx, by + ty

        while i < count:
            if len(commands) >= budget:
                raise _err(f"more than {self.limits.max_path_commands} path commands",
                           "ofd.path_too_complex", path)
            if len(commands) % 1024 == 1023:
                self.deadline.check()
            op = tokens[i]
            arity = _PATH_ARITY.get(op)
            if arity is None:
                raise _err(f"unknown path operator {op[:16]!r}", "ofd.bad_value", path)
            if i + arity >= count and arity:
                raise _err(f"path operator {op!r} lacks operands", "ofd.bad_value", path)
            if op not in ("S", "M") and not commands:
                raise _err("a path must start with a move", "ofd.bad_value", path)
            a = i + 1
            i += 1 + arity
            if op == "L":
                commands.append(LineTo(*point(a)))
            elif op in ("S", "M"):
                commands.append(MoveTo(*point(a)))
            elif op == "B":
                commands.append(CubicTo(*point(a), *point(a + 2), *point(a + 4)))
            elif op == "Q":
                commands.append(QuadTo(*point(a), *point(a + 2)))
            elif op == "C":
                commands.append(ClosePath())
            else:  # "A": rx ry rotation large-arc sweep x y
                rx, ry, rot = (number(t, path, "arc") for t in tokens[a:a + 3])
                flags = tokens[a + 3:a + 5]
                if any(f not in ("0", "1") for f in flags):
                    raise _err("arc flags must be 0 or 1", "ofd.bad_value", path)
                end = point(a + 5)
                scale = ctm.scale if not identity else 1.0
                if rx == 0 or ry == 0 or scale == 0:
                    commands.append(LineTo(*end))  # SVG: a zero radius is a straight line
                else:
                    mirrored = ctm.a * ctm.d - ctm.b * ctm.c < 0
                    commands.append(ArcTo(abs(rx) * scale, abs(ry) * scale,
                                          rot + (ctm.rotation_deg if not identity else 0.0),
                                          flags[0] == "1", (flags[1] == "1") != mirrored, *end))
        return commands

    def image_object(self, el: ET.Element, path: str) -> ImageObject | None:
        bx, by, bw, bh = self.box(el.get("Boundary"), path, "Boundary")
        ref = (el.get("ResourceID") or "").strip()
        media = self.media.get(ref)
        if media is None:
            raise _err(f"ImageObject uses unknown resource {ref[:16]!r}", "ofd.bad_reference",
                       path)
        declared, media_path = media
        data = self.part(media_path, "image")
        if not data:
            raise _err(f"image {media_path!r} is empty", "ofd.bad_value", path)
        sniffed = next((fmt for magic, fmt in _MEDIA_MAGIC if data.startswith(magic)), None)
        fmt = sniffed or declared or "UNKNOWN"
        if el.get("CTM") is None:
            x, y, w, h = bx, by, bw, bh
        else:
            ctm = self.matrix(el.get("CTM"), path)
            corners = [ctm.apply(u, v) for u in (0.0, 1.0) for v in (0.0, 1.0)]
            xs = [c[0] for c in corners]
            ys = [c[1] for c in corners]
            x, y = bx + min(xs), by + min(ys)
            w, h = max(xs) - min(xs), max(ys) - min(ys)
        if w <= 0 or h <= 0:
            return None  # a degenerate image paints nothing
        return ImageObject(data=data, format=fmt, x=x, y=y, width=w, height=h)

    # -- 5. attachments --------------------------------------------------------------

    def attachments(self, path: str, confine: str) -> list[Attachment]:
        root = self.xml(path, "attachment list", "Attachments")
        entries = _children(root, "Attachment")
        if len(entries) > self.limits.max_attachments:
            raise _err(f"more than {self.limits.max_attachments} attachments",
                       "ofd.too_many_attachments", path)
        out: list[Attachment] = []
        names: set[str] = set()
        for entry in entries:
            self.deadline.check()
            self.register_id(entry.get("ID"), "attachment", path)
            name = entry.get("Name")
            if not name:
                raise _err("an Attachment has no Name", "ofd.bad_value", path)
            if name in names:
                raise _err(f"attachment {name!r} appears twice", "ofd.duplicate_attachment",
                           path)
            names.add(name)
            file_loc = _child_text(entry, "FileLoc")
            if not file_loc:
                raise _err(f"attachment {name!r} has no FileLoc", "ofd.bad_reference", path)
            data = self.part(resolve_loc(file_loc, _dir(path), confine, part=path),
                             "attachment file")
            out.append(Attachment(name=name, data=data, format=entry.get("Format") or "",
                                  creation_date=self.date(entry.get("CreationDate"), path)))
        return out


def read_ofd(data: bytes, *, limits: ReadLimits | None = None) -> OFDReadResult:
    """Read an untrusted OFD file (bytes) into the model.

    Raises :class:`InvalidInputError` with an ``ofd.*`` reason code for anything
    malformed, hostile or over a limit, including ``ofd.timeout`` when the read
    takes longer than ``limits.max_seconds``. Never writes to disk, never fetches.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise InvalidInputError("read_ofd needs the file's bytes", reason="ofd.not_zip")
    limits = limits or ReadLimits()
    deadline = Deadline(limits.max_seconds)
    # 1. the container
    parts = read_zip(bytes(data), limits.zip, deadline)
    # 2.-6.
    return _Reader(parts, limits, deadline).read()


def read_ofd_metadata(
    parts: dict[str, bytes], *, limits: ReadLimits | None = None, deadline: Deadline | None = None
) -> OFDMetadata:
    """The document info (OFD.xml) and attachments (Document.xml) of a package read by
    :func:`cert_formats.ofd.read_zip`, with :func:`read_ofd`'s rules for those parts.

    Pages and resources are not read: for a verifier whose seal check protects every part
    byte for byte, the page content adds nothing to the verdict, and not parsing it leaves
    hostile page content nothing to attack.
    """
    limits = limits or ReadLimits()
    return _Reader(parts, limits, deadline or Deadline(limits.max_seconds)).metadata()

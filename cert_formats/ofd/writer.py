"""Serialising an :class:`OFDDocument` into a GB/T 33190 package.

Two steps, so that a later layer (the GB/T 38540 seal) can add its own parts
between them without this module knowing about signatures:

* :func:`build_parts` renders the model into ``{path: bytes}``;
* :func:`pack_parts` zips any such mapping deterministically.

:func:`write_ofd` does both. The same model always gives the same bytes: no
clocks are read, IDs are assigned in model order, entries are sorted (``OFD.xml``
first), every entry has the same fixed timestamp and permissions, and the XML is
written without incidental whitespace. (DEFLATE output depends on the zlib
build; digests are therefore stable on one platform, and are recorded rather
than recomputed elsewhere.)

Package layout (the layout ofdrw and most producers use, which ofd.js and
easyofd resolve)::

    OFD.xml
    Doc_0/Document.xml
    Doc_0/PublicRes.xml                 fonts            (BaseLoc="Res")
    Doc_0/DocumentRes.xml               images           (BaseLoc="Res")
    Doc_0/Res/font_<id>.ttf, image_<id>.png|jpg
    Doc_0/Pages/Page_<n>/Content.xml
    Doc_0/Attachs/Attachments.xml, attach_<id>.<ext>
"""

from __future__ import annotations

import io
import re
import struct
import threading
import xml.etree.ElementTree as ET
import zipfile
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from signing.errors import InvalidInputError

from .geometry import Box, fmt_number, path_bounds
from .limits import ZipLimits
from .model import (
    DOC_ID_RE,
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
    PathCommand,
    PathObject,
    QuadTo,
    TextObject,
)
from .safezip import check_entry_name

DOC_DIR: Final = "Doc_0"
OFD_XML: Final = "OFD.xml"
DOCUMENT_XML: Final = f"{DOC_DIR}/Document.xml"
#: fixed timestamp of every zip entry (the earliest the format can express)
ZIP_TIMESTAMP: Final = (1980, 1, 1, 0, 0, 0)
#: zlib level of every part. A licence's page content is ~330 KB of XML (the ornaments):
#: level 4 packs it in ~2.4 ms against ~6.7 ms at the default 6, for ~8 % more bytes
DEFLATE_LEVEL: Final = 4

REASON_WRITE: Final = "ofd.unwritable"

_XML_DECL: Final = b'<?xml version="1.0" encoding="UTF-8"?>\n'
_EXT_RE: Final = re.compile(r"\.([A-Za-z0-9]{1,8})$")
_IMAGE_EXT: Final = {"PNG": "png", "JPEG": "jpg"}
_NAME_LIMITS: Final = ZipLimits()
_FONT_MAGIC: Final = (b"\x00\x01\x00\x00", b"true", b"OTTO")
# Text box: the baseline sits one em below the top; the box reaches 0.3 em below it.
_TEXT_ASCENT_EM: Final = 1.0
_TEXT_HEIGHT_EM: Final = 1.3


def _numbers(values: Iterable[float]) -> str:
    return " ".join(fmt_number(v) for v in values)


def _color(color: Color) -> str:
    return f"{color.r} {color.g} {color.b}"


def _q(name: str) -> str:
    """An element name with the package's ``ofd:`` prefix."""
    return f"ofd:{name}"


def _root(name: str, attrs: Mapping[str, str] | None = None) -> ET.Element:
    root = ET.Element(_q(name))
    root.set("xmlns:ofd", OFD_NAMESPACE)
    for key, value in (attrs or {}).items():
        root.set(key, value)
    return root


def _child(parent: ET.Element, name: str, text: str | None = None,
           attrs: Mapping[str, str] | None = None) -> ET.Element:
    el = ET.SubElement(parent, _q(name))
    for key, value in (attrs or {}).items():
        el.set(key, value)
    if text is not None:
        el.text = text
    return el


def _serialise(root: ET.Element) -> bytes:
    return _XML_DECL + ET.tostring(root, encoding="unicode").encode("utf-8")


@dataclass
class _Ids:
    """Sequential ``ST_ID`` allocation; one counter for the whole document."""

    last: int = 0

    def next(self) -> int:
        self.last += 1
        return self.last


@dataclass
class _Resources:
    fonts: dict[Font, int] = field(default_factory=dict)
    images: dict[tuple[str, bytes], int] = field(default_factory=dict)


def _abbreviated(commands: Iterable[PathCommand], dx: float, dy: float) -> str:
    """``AbbreviatedData`` for commands shifted by (-dx, -dy) into the object's box."""
    out: list[str] = []
    for cmd in commands:
        if isinstance(cmd, MoveTo):
            out.append(f"M {_numbers((cmd.x - dx, cmd.y - dy))}")
        elif isinstance(cmd, LineTo):
            out.append(f"L {_numbers((cmd.x - dx, cmd.y - dy))}")
        elif isinstance(cmd, QuadTo):
            out.append(f"Q {_numbers((cmd.x1 - dx, cmd.y1 - dy, cmd.x - dx, cmd.y - dy))}")
        elif isinstance(cmd, CubicTo):
            out.append("B " + _numbers((cmd.x1 - dx, cmd.y1 - dy, cmd.x2 - dx, cmd.y2 - dy,
                                        cmd.x - dx, cmd.y - dy)))
        elif isinstance(cmd, ArcTo):
            out.append(f"A {_numbers((cmd.rx, cmd.ry, cmd.rotation))} "
                       f"{int(cmd.large_arc)} {int(cmd.sweep)} "
                       f"{_numbers((cmd.x - dx, cmd.y - dy))}")
        elif isinstance(cmd, ClosePath):
            out.append("C")
    return " ".join(out)


def _text_object(layer: ET.Element, obj: TextObject, font_id: int, obj_id: int) -> None:
    deltas = obj.advances
    box = Box(obj.x, obj.y - _TEXT_ASCENT_EM * obj.size, max(obj.width, obj.size),
              _TEXT_HEIGHT_EM * obj.size)
    el = _child(layer, "TextObject", attrs={
        "ID": str(obj_id), "Boundary": box.st_box(), "Font": str(font_id),
        "Size": fmt_number(obj.size),
    })
    _child(el, "FillColor", attrs={"Value": _color(obj.fill)})
    code_attrs = {"X": "0", "Y": fmt_number(_TEXT_ASCENT_EM * obj.size)}
    if deltas:
        code_attrs["DeltaX"] = _numbers(deltas)
    _child(el, "TextCode", obj.text, attrs=code_attrs)


class _PathTextCache:
    """``Boundary`` and ``AbbreviatedData`` of recently written path objects.

    Licence faces share their ornaments' PathObjects (thousands of points, the
    same on every face); formatting them was most of writing a page. Entries are
    keyed by object identity — hashing a long path would cost what it saves —
    and hold the object itself, so an id cannot be reused while its entry lives.
    The model is frozen, so a kept object's text cannot go stale.
    """

    def __init__(self, max_entries: int) -> None:
        self._max = max_entries
        self._entries: OrderedDict[int, tuple[PathObject, str, str]] = OrderedDict()
        self._lock = threading.Lock()

    def text(self, obj: PathObject) -> tuple[str, str]:
        with self._lock:
            entry = self._entries.get(id(obj))
            if entry is not None and entry[0] is obj:
                self._entries.move_to_end(id(obj))
                return entry[1], entry[2]
        box = path_bounds(obj.commands).expanded(obj.line_width / 2)
        boundary, data = box.st_box(), _abbreviated(obj.commands, box.x, box.y)
        with self._lock:
            self._entries[id(obj)] = (obj, boundary, data)
            if len(self._entries) > self._max:
                self._entries.popitem(last=False)
        return boundary, data


_PATH_TEXT: Final = _PathTextCache(4096)


def _path_object(layer: ET.Element, obj: PathObject, obj_id: int) -> None:
    boundary, data = _PATH_TEXT.text(obj)
    el = _child(layer, "PathObject", attrs={
        "ID": str(obj_id), "Boundary": boundary, "LineWidth": fmt_number(obj.line_width),
        "Stroke": "true" if obj.stroke is not None else "false",
        "Fill": "true" if obj.fill is not None else "false",
    })
    if obj.stroke is not None:
        _child(el, "StrokeColor", attrs={"Value": _color(obj.stroke)})
    if obj.fill is not None:
        _child(el, "FillColor", attrs={"Value": _color(obj.fill)})
    _child(el, "AbbreviatedData", data)


def _image_object(layer: ET.Element, obj: ImageObject, res_id: int, obj_id: int) -> None:
    box = Box(obj.x, obj.y, obj.width, obj.height)
    _child(layer, "ImageObject", attrs={
        "ID": str(obj_id), "Boundary": box.st_box(),
        # the image is painted into the unit square; CTM scales it to the box
        "CTM": _numbers((obj.width, 0, 0, obj.height, 0, 0)),
        "ResourceID": str(res_id),
    })


def _check_font_file(font: Font) -> None:
    if font.data is None:
        raise InvalidInputError(
            f"font {font.family!r} has no font file; licences embed their fonts",
            reason=REASON_WRITE)
    if font.data[:4] == b"ttcf":
        raise InvalidInputError(
            f"font {font.family!r} is a collection (.ttc); embed one face as a .ttf",
            reason=REASON_WRITE)
    if font.data[:4] not in _FONT_MAGIC:
        raise InvalidInputError(f"font {font.family!r} is not a TrueType/OpenType file",
                                reason=REASON_WRITE)


def _collect_resources(document: OFDDocument, ids: _Ids) -> _Resources:
    res = _Resources()
    for page in document.pages:
        for obj in page.objects:
            if isinstance(obj, TextObject) and obj.font not in res.fonts:
                _check_font_file(obj.font)
                res.fonts[obj.font] = ids.next()
    for page in document.pages:
        for obj in page.objects:
            if isinstance(obj, ImageObject):
                if obj.format not in _IMAGE_EXT:
                    raise InvalidInputError(
                        f"image format {obj.format!r} cannot be written (PNG or JPEG only)",
                        reason=REASON_WRITE)
                key = (obj.format, obj.data)
                if key not in res.images:
                    res.images[key] = ids.next()
    return res


def _doc_info(parent: ET.Element, info: DocumentInfo) -> None:
    el = _child(parent, "DocInfo")
    _child(el, "DocID", info.doc_id or "")
    for tag, value in (("Title", info.title), ("Author", info.author),
                       ("Subject", info.subject)):
        if value is not None:
            _child(el, tag, value)
    if info.creation_date is not None:
        _child(el, "CreationDate", info.creation_date.isoformat())
    if info.mod_date is not None:
        _child(el, "ModDate", info.mod_date.isoformat())
    if info.keywords:
        kws = _child(el, "Keywords")
        for kw in info.keywords:
            _child(kws, "Keyword", kw)
    if info.creator is not None:
        _child(el, "Creator", info.creator)
    if info.creator_version is not None:
        _child(el, "CreatorVersion", info.creator_version)
    if info.custom_data:
        datas = _child(el, "CustomDatas")
        for name, value in info.custom_data:
            _child(datas, "CustomData", value, attrs={"Name": name})


def _attachment_file(att: Attachment, att_id: int) -> str:
    match = _EXT_RE.search(att.name)
    ext = f".{match.group(1).lower()}" if match else ".bin"
    return f"attach_{att_id}{ext}"


def build_parts(document: OFDDocument, *, signatures_loc: str | None = None) -> dict[str, bytes]:
    """Render ``document`` into package parts ``{path inside the zip: bytes}``.

    ``signatures_loc`` (e.g. ``"Doc_0/Signs/Signatures.xml"``) adds the
    ``DocBody/Signatures`` pointer for a seal layer that adds those parts itself.
    """
    if not isinstance(document, OFDDocument):
        raise InvalidInputError("build_parts needs an OFDDocument", reason=REASON_WRITE)
    if document.info.doc_id is None or not DOC_ID_RE.match(document.info.doc_id):
        raise InvalidInputError("DocumentInfo.doc_id must be 32 letters or digits "
                                "(see new_doc_id())", reason=REASON_WRITE)
    ids = _Ids()
    res = _collect_resources(document, ids)
    parts: dict[str, bytes] = {}

    # Resources: fonts in PublicRes.xml, images in DocumentRes.xml, files under Res/.
    public = _root("Res", {"BaseLoc": "Res"})
    fonts_el = _child(public, "Fonts")
    for font, font_id in res.fonts.items():
        attrs = {"ID": str(font_id), "FontName": font.name, "FamilyName": font.family}
        for flag, attr in ((font.italic, "Italic"), (font.bold, "Bold"), (font.serif, "Serif"),
                           (font.fixed_width, "FixedWidth")):
            if flag:
                attrs[attr] = "true"
        font_el = _child(fonts_el, "Font", attrs=attrs)
        file_name = f"font_{font_id}.{font.file_extension}"
        _child(font_el, "FontFile", file_name)
        assert font.data is not None  # checked in _collect_resources
        parts[f"{DOC_DIR}/Res/{file_name}"] = font.data
    parts[f"{DOC_DIR}/PublicRes.xml"] = _serialise(public)
    if res.images:
        doc_res = _root("Res", {"BaseLoc": "Res"})
        medias = _child(doc_res, "MultiMedias")
        for (fmt, data), res_id in res.images.items():
            file_name = f"image_{res_id}.{_IMAGE_EXT[fmt]}"
            media = _child(medias, "MultiMedia",
                           attrs={"ID": str(res_id), "Type": "Image", "Format": fmt})
            _child(media, "MediaFile", file_name)
            parts[f"{DOC_DIR}/Res/{file_name}"] = data
        parts[f"{DOC_DIR}/DocumentRes.xml"] = _serialise(doc_res)

    # Pages.
    page_refs: list[tuple[int, str]] = []
    for index, page in enumerate(document.pages):
        page_id = ids.next()
        loc = f"Pages/Page_{index}/Content.xml"
        parts[f"{DOC_DIR}/{loc}"] = _page_xml(page, res, ids)
        page_refs.append((page_id, loc))

    # Attachments.
    attach_loc: str | None = None
    if document.attachments:
        attach_loc = "Attachs/Attachments.xml"
        atts = _root("Attachments")
        for att in document.attachments:
            att_id = ids.next()
            file_name = _attachment_file(att, att_id)
            attrs = {"ID": str(att_id), "Name": att.name}
            if att.format:
                attrs["Format"] = att.format
            if att.creation_date is not None:
                attrs["CreationDate"] = f"{att.creation_date.isoformat()}T00:00:00"
            attrs["Size"] = fmt_number(len(att.data) / 1024)  # GB/T 33190: kilobytes
            att_el = _child(atts, "Attachment", attrs=attrs)
            _child(att_el, "FileLoc", file_name)
            parts[f"{DOC_DIR}/Attachs/{file_name}"] = att.data
        parts[f"{DOC_DIR}/{attach_loc}"] = _serialise(atts)

    # Document.xml: written last, once MaxUnitID is known.
    first = document.pages[0]
    doc = _root("Document")
    common = _child(doc, "CommonData")
    _child(common, "MaxUnitID", str(ids.last))
    area = _child(common, "PageArea")
    _child(area, "PhysicalBox", Box(0, 0, first.width, first.height).st_box())
    _child(common, "PublicRes", "PublicRes.xml")
    if res.images:
        _child(common, "DocumentRes", "DocumentRes.xml")
    pages_el = _child(doc, "Pages")
    for page_id, loc in page_refs:
        _child(pages_el, "Page", attrs={"ID": str(page_id), "BaseLoc": loc})
    if attach_loc is not None:
        _child(doc, "Attachments", attach_loc)
    parts[DOCUMENT_XML] = _serialise(doc)

    ofd = _root("OFD", {"Version": "1.0", "DocType": "OFD"})
    body = _child(ofd, "DocBody")
    _doc_info(body, document.info)
    _child(body, "DocRoot", DOCUMENT_XML)
    if signatures_loc is not None:
        _child(body, "Signatures", signatures_loc)
    parts[OFD_XML] = _serialise(ofd)
    return parts


def _page_xml(page: Page, res: _Resources, ids: _Ids) -> bytes:
    root = _root("Page")
    area = _child(root, "Area")
    _child(area, "PhysicalBox", Box(0, 0, page.width, page.height).st_box())
    content = _child(root, "Content")
    layer = _child(content, "Layer", attrs={"ID": str(ids.next()), "Type": "Body"})
    for obj in page.objects:
        obj_id = ids.next()
        if isinstance(obj, TextObject):
            _text_object(layer, obj, res.fonts[obj.font], obj_id)
        elif isinstance(obj, PathObject):
            _path_object(layer, obj, obj_id)
        else:
            _image_object(layer, obj, res.images[(obj.format, obj.data)], obj_id)
    return _serialise(root)


def pack_parts(parts: Mapping[str, bytes]) -> bytes:
    """Zip package parts deterministically (DEFLATE, fixed time, ``OFD.xml`` first)."""
    names = sorted(parts, key=lambda n: (n != OFD_XML, n))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=DEFLATE_LEVEL) as zf:
        for name in names:
            # the reader's own rules, so that whatever we write we can read back
            check_entry_name(name, _NAME_LIMITS)
            info = zipfile.ZipInfo(name, date_time=ZIP_TIMESTAMP)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # Unix, whatever the host, so the bytes do not vary
            info.external_attr = 0o100644 << 16  # regular file, rw-r--r--
            zf.writestr(info, parts[name], compresslevel=DEFLATE_LEVEL)
    return buf.getvalue()


_LOCAL_HEADER: Final = struct.Struct("<4s5H3L2H")  # 30 bytes, then name and extra
_CENTRAL_HEADER: Final = struct.Struct("<4s6H3L5H2L")  # 46 bytes, then name, extra, comment
_END_RECORD: Final = struct.Struct("<4s4H2LH")  # 22 bytes
_CENTRAL_OFFSET_AT: Final = 42  # "relative offset of local header" in a central record


def replace_part(package: bytes, path: str, data: bytes) -> bytes:
    """``package`` (written by :func:`pack_parts`) with part ``path`` holding ``data``.

    Every other entry's local record is copied as it is, not inflated and compressed again;
    the result is byte for byte what :func:`pack_parts` gives for the changed parts (tested),
    about twenty times faster for a licence (its page content and font are most of the
    package). A package this writer could not have produced — data descriptors, zip64,
    comments, an entry written elsewhere — is unpacked and packed again instead.
    """
    zf = zipfile.ZipFile(io.BytesIO(package))
    infos = zf.infolist()
    names = [i.filename for i in infos]
    if path not in names or not _copyable(package, infos):
        parts = {i.filename: zf.read(i) for i in infos}
        parts[path] = data
        return pack_parts(parts)
    fresh = pack_parts({path: data})  # the new entry's local and central records, as pack_parts writes them
    fresh_local_end = _local_record_end(fresh, 0)
    fresh_central = fresh[fresh_local_end : len(fresh) - _END_RECORD.size]
    out = bytearray()
    central = bytearray()
    cd_at = _END_RECORD.unpack_from(package, len(package) - _END_RECORD.size)[6]
    for info in infos:
        offset = len(out)
        if info.filename == path:
            out += fresh[:fresh_local_end]
            record = bytearray(fresh_central)
        else:
            out += package[info.header_offset : _local_record_end(package, info.header_offset)]
            record = bytearray(package[cd_at : _central_record_end(package, cd_at)])
        cd_at += _central_length(package, cd_at)
        struct.pack_into("<L", record, _CENTRAL_OFFSET_AT, offset)
        central += record
    end = _END_RECORD.pack(b"PK\x05\x06", 0, 0, len(infos), len(infos), len(central), len(out), 0)
    return bytes(out + central + end)


def _local_record_end(package: bytes, at: int) -> int:
    fields = _LOCAL_HEADER.unpack_from(package, at)
    name_len, extra_len, compressed = fields[9], fields[10], fields[7]
    return int(at + _LOCAL_HEADER.size + name_len + extra_len + compressed)


def _central_length(package: bytes, at: int) -> int:
    fields = _CENTRAL_HEADER.unpack_from(package, at)
    return int(_CENTRAL_HEADER.size + fields[10] + fields[11] + fields[12])


def _central_record_end(package: bytes, at: int) -> int:
    return at + _central_length(package, at)


def _copyable(package: bytes, infos: list[zipfile.ZipInfo]) -> bool:
    """Entries in file order, no data descriptors, no zip64, no comments, nothing between them."""
    if len(package) < _END_RECORD.size or package[-_END_RECORD.size : -_END_RECORD.size + 4] != b"PK\x05\x06":
        return False
    expected = 0
    for info in infos:
        if info.flag_bits & 0x08 or info.header_offset != expected or info.comment or info.file_size >= 0xFFFFFFFF:
            return False
        if package[info.header_offset : info.header_offset + 4] != b"PK\x03\x04":
            return False
        expected = _local_record_end(package, info.header_offset)
    cd_at = _END_RECORD.unpack_from(package, len(package) - _END_RECORD.size)[6]
    return bool(cd_at == expected)


def write_ofd(document: OFDDocument) -> bytes:
    """The OFD file for ``document``: :func:`build_parts` then :func:`pack_parts`."""
    return pack_parts(build_parts(document))

"""A bounded, hostile-input-safe reader of PDF page content, built on pypdf.

pypdf parses the file structure (cross references, objects, stream filters)
under a tightened :class:`pypdf.Configuration`; this module walks the page tree
itself and runs its own content-stream interpreter, so that every loop over
attacker-controlled data counts against a :class:`PdfLimits` budget and checks a
:class:`Deadline`.

What comes out is what a person sees on each page, in **page space**: points,
origin at the top-left corner of the visible page box (CropBox within MediaBox),
x to the right, y downwards, the page's ``/Rotate`` applied. Each page is a list
of items in painting order:

* :class:`TextRun` — one text-showing operation (``Tj``, ``TJ``, ``'``, ``"``):
  its codes, their Unicode text, each glyph's origin, the font size, the angle,
  fill/stroke colours and the render mode. The text matrix and the CTM are
  tracked through ``BT``/``ET``, ``Tm``, ``Td``, ``TD``, ``T*``, ``q``/``Q``, ``cm``;
  glyph advances come from the font's widths, ``Tc``, ``Tw``, ``Tz`` and ``TJ``
  adjustments.
* :class:`PathItem` — a painted path (``m l c v y h re`` then ``S s f F f* B B*
  b b*``; ``n`` paints nothing) with its colours and line width.
* :class:`ImageItem` — an image XObject (or inline image) placed by the CTM,
  decoded to PNG (or JPEG passed through unchanged).

Plus the document information dictionary, the XMP packet's simple properties,
the embedded files the caller asked for by name, and flags for signatures and
active content. Nothing is ever executed: JavaScript, launch and submit actions
are only detected, so a caller can say that they were dropped.

Not interpreted (recorded in :attr:`PdfContent.notes`): clipping paths, shadings
(``sh``), soft masks, blend modes, patterns (painted as grey), Type 3 glyph
procedures (their text is kept, their pictures are not), optional content.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import re
import threading
import zlib
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final, TypeAlias

from pypdf import PdfReader, apply_configuration
from pypdf.errors import LimitReachedError
from pypdf.generic import (
    ArrayObject,
    DictionaryObject,
    IndirectObject,
    NameObject,
    NullObject,
    StreamObject,
)

from signing.errors import InvalidInputError

from .limits import (
    REASON_ENCRYPTED,
    Deadline,
    PdfLimits,
    malformed_pdf,
    too_large,
)
from .pdflex import MAX_CMAP_ENTRIES as _MAX_CMAP_ENTRIES
from .pdflex import Budget as _Budget
from .pdflex import Lexer as _Lexer
from .pdflex import Name as _Name
from .pdflex import parse_cid_cmap as _parse_cid_cmap
from .pdflex import parse_to_unicode

Matrix: TypeAlias = tuple[float, float, float, float, float, float]
RGB: TypeAlias = tuple[float, float, float]
#: a path command in page space: ("M", (x, y)), ("L", (x, y)), ("C", (x1, y1, x2, y2, x, y)), ("Z", ())
PathCommand: TypeAlias = tuple[str, tuple[float, ...]]

IDENTITY: Final[Matrix] = (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)
BLACK_RGB: Final[RGB] = (0.0, 0.0, 0.0)
#: first code point of the private-use plane that codes without a known Unicode map to
PUA_BASE: Final = 0xF0000
#: coordinates beyond this (points, about 35 km) are not a page; items using them are dropped
_MAX_COORD: Final = 1.0e8
_PDF_MAGIC_WINDOW: Final = 1024
_SUBSET_TAG_RE: Final = re.compile(r"^[A-Z]{6}\+")
_GLYPH_UNI_RE: Final = re.compile(r"^(?:uni([0-9A-F]{4})|u([0-9A-F]{4,6}))$")
_BAD_CHAR_RE: Final = re.compile("[\x00-\x1f\x7f\ud800-\udfff\ufffe\uffff]")

#: operators and how many operands each takes (those not listed are ignored)
_ARITY: Final[Mapping[str, int]] = {
    "q": 0, "Q": 0, "cm": 6, "w": 1, "gs": 1,
    "m": 2, "l": 2, "c": 6, "v": 4, "y": 4, "h": 0, "re": 4,
    "S": 0, "s": 0, "f": 0, "F": 0, "f*": 0, "B": 0, "B*": 0, "b": 0, "b*": 0, "n": 0,
    "W": 0, "W*": 0,
    "BT": 0, "ET": 0, "Tc": 1, "Tw": 1, "Tz": 1, "TL": 1, "Tf": 2, "Tr": 1, "Ts": 1,
    "Td": 2, "TD": 2, "Tm": 6, "T*": 0, "Tj": 1, "TJ": 1, "'": 1, '"': 3,
    "g": 1, "G": 1, "rg": 3, "RG": 3, "k": 4, "K": 4, "cs": 1, "CS": 1,
    "sc": -1, "scn": -1, "SC": -1, "SCN": -1,
    "Do": 1, "BI": 2, "sh": 1,
}


# -- the result ----------------------------------------------------------------------


class PdfFont:
    """One font resource: how its codes split, their widths and their Unicode text.

    Also carries what a converter needs to re-embed it: the embedded font file
    (``file_kind`` ``truetype`` for FontFile2, ``opentype``/``cff`` for FontFile3,
    ``type1`` for FontFile), the CID-to-GID map of a CIDFontType2 and the glyph
    names a simple font's encoding assigns to its codes.
    """

    __slots__ = ("_unicode_cache", "base_font", "cid_to_gid", "code_to_cid", "codespace",
                 "default_width", "file_bytes", "file_kind", "font_matrix_scale", "glyph_names",
                 "key", "scheme", "subtype", "symbolic", "to_unicode", "vertical", "widths")

    def __init__(self, *, key: int, base_font: str, subtype: str, scheme: str,
                 widths: Mapping[int, float], default_width: float,
                 to_unicode: Mapping[int, str], glyph_names: Mapping[int, str],
                 file_bytes: bytes | None, file_kind: str | None,
                 cid_to_gid: Mapping[int, int] | None, code_to_cid: Mapping[int, int] | None,
                 codespace: tuple[tuple[bytes, bytes], ...], symbolic: bool, vertical: bool,
                 font_matrix_scale: float) -> None:
        self.key = key
        self.base_font = base_font
        self.subtype = subtype
        #: how bytes split into codes: simple, identity, ucs2, gbk, codespace
        self.scheme = scheme
        self.widths = widths
        self.default_width = default_width
        self.to_unicode = to_unicode
        self.glyph_names = glyph_names
        self.file_bytes = file_bytes
        self.file_kind = file_kind
        self.cid_to_gid = cid_to_gid
        self.code_to_cid = code_to_cid
        self.codespace = codespace
        self.symbolic = symbolic
        self.vertical = vertical
        self.font_matrix_scale = font_matrix_scale
        self._unicode_cache: dict[int, str] = {}

    def __repr__(self) -> str:
        return f"PdfFont({self.base_font!r}, {self.subtype}, {self.scheme})"

    @property
    def family(self) -> str:
        """``BaseFont`` without the six-letter subset tag (``AAAAAA+``)."""
        return _SUBSET_TAG_RE.sub("", self.base_font) or "Unnamed"

    @property
    def is_cid(self) -> bool:
        """True for a composite (Type0) font."""
        return self.subtype == "Type0"

    def split(self, data: bytes) -> list[int]:
        """The character codes of a string operand."""
        if self.scheme == "simple":
            return list(data)
        if self.scheme in ("identity", "ucs2"):
            return [(data[i] << 8) | data[i + 1] for i in range(0, len(data) - 1, 2)]
        codes: list[int] = []
        i = 0
        n = len(data)
        while i < n:
            length = self._code_length(data, i)
            codes.append(int.from_bytes(data[i:i + length], "big"))
            i += length
        return codes

    def _code_length(self, data: bytes, i: int) -> int:
        if self.scheme == "gbk":
            return 2 if 0x81 <= data[i] <= 0xFE and i + 1 < len(data) else 1
        for length in (1, 2, 3, 4):
            chunk = data[i:i + length]
            if len(chunk) < length:
                break
            for lo, hi in self.codespace:
                if len(lo) == length and all(lo[k] <= chunk[k] <= hi[k] for k in range(length)):
                    return length
        return 1

    def cid(self, code: int) -> int:
        """The CID of ``code`` (composite fonts; the code itself otherwise)."""
        if self.code_to_cid is not None:
            return self.code_to_cid.get(code, 0)
        return code

    def width(self, code: int) -> float:
        """Advance of ``code`` in thousandths of text space (font-matrix scaled)."""
        key = self.cid(code) if self.is_cid else code
        return self.widths.get(key, self.default_width) * self.font_matrix_scale

    def is_single_byte_space(self, code: int) -> bool:
        """Whether word spacing applies (PDF: single-byte code 32 only)."""
        return code == 32 and self.scheme in ("simple", "gbk")

    def unicode(self, code: int) -> str:
        """The text of ``code``; codes with no known text map into the private-use plane."""
        cached = self._unicode_cache.get(code)
        if cached is not None:
            return cached
        # ToUnicode first; a missing or unusable entry falls back to what the encoding implies
        text = self.to_unicode.get(code)
        if not text or _BAD_CHAR_RE.search(text):
            text = self._implied_unicode(code)
        if not text and self.scheme == "simple" and 0x20 <= code < 0x7F:
            text = chr(code)  # what text extractors assume for a printable byte in a bare simple font
        text = _clean_text(text, code)
        self._unicode_cache[code] = text
        return text

    def _implied_unicode(self, code: int) -> str:
        if self.scheme == "ucs2":
            return chr(code) if code else ""
        if self.scheme == "gbk":
            try:
                return code.to_bytes(2 if code > 0xFF else 1, "big").decode("gbk")
            except UnicodeDecodeError:
                return ""
        if self.scheme == "simple":
            name = self.glyph_names.get(code)
            if name is not None:
                return _glyph_name_to_unicode(name)
        return ""


def _clean_text(text: str, code: int) -> str:
    if text and not _BAD_CHAR_RE.search(text):
        return text
    return chr(PUA_BASE + code) if code < 0xFFFE else "\ufffd"


@dataclass(frozen=True)
class TextRun:
    """One text-showing operation in page space (points, y down)."""

    font: PdfFont
    codes: tuple[int, ...]
    #: the Unicode text of each code (one or more characters each)
    chars: tuple[str, ...]
    #: each glyph's origin on the baseline
    origins: tuple[tuple[float, float], ...]
    #: where the next glyph would start
    end: tuple[float, float]
    #: em size in points along the glyphs' vertical axis
    size: float
    #: direction of the baseline, degrees clockwise on the page (0 = left to right)
    angle: float
    #: glyphs drawn mirrored (the text space is flipped)
    mirrored: bool
    fill: RGB
    stroke: RGB
    #: ``Tr``: 0 fill, 1 stroke, 2 fill+stroke, 3 invisible, 4-7 the same plus clip
    render_mode: int
    #: stroke width in points, page space (for render modes 1, 2, 5, 6)
    line_width: float
    fill_alpha: float = 1.0
    stroke_alpha: float = 1.0

    @property
    def text(self) -> str:
        """The run's text."""
        return "".join(self.chars)

    @property
    def visible(self) -> bool:
        """False for invisible text (render mode 3 or 7)."""
        return self.render_mode not in (3, 7)


@dataclass(frozen=True)
class PathItem:
    """A painted path in page space."""

    commands: tuple[PathCommand, ...]
    stroke: RGB | None
    fill: RGB | None
    #: points, page space
    line_width: float
    even_odd: bool = False
    stroke_alpha: float = 1.0
    fill_alpha: float = 1.0

    def bounds(self) -> tuple[float, float, float, float]:
        """``(x0, y0, x1, y1)`` of every point and control point."""
        xs = [c[1][i] for c in self.commands for i in range(0, len(c[1]), 2)]
        ys = [c[1][i] for c in self.commands for i in range(1, len(c[1]), 2)]
        return min(xs), min(ys), max(xs), max(ys)


@dataclass(frozen=True)
class ImageItem:
    """A raster image in the page-space box ``(x, y, width, height)``, upright."""

    data: bytes = field(repr=False)
    #: ``PNG`` or ``JPEG``
    format: str
    x: float
    y: float
    width: float
    height: float
    pixel_width: int
    pixel_height: int


PageItem: TypeAlias = TextRun | PathItem | ImageItem


@dataclass(frozen=True)
class PdfPage:
    """One page: its visible size in points and its items in painting order."""

    width: float
    height: float
    items: tuple[PageItem, ...]

    @property
    def texts(self) -> tuple[TextRun, ...]:
        """The text runs, in painting order."""
        return tuple(i for i in self.items if isinstance(i, TextRun))

    @property
    def paths(self) -> tuple[PathItem, ...]:
        """The painted paths, in painting order."""
        return tuple(i for i in self.items if isinstance(i, PathItem))

    @property
    def images(self) -> tuple[ImageItem, ...]:
        """The images, in painting order."""
        return tuple(i for i in self.items if isinstance(i, ImageItem))


@dataclass(frozen=True)
class PdfContent:
    """What :func:`read_pdf` found in a PDF."""

    pages: tuple[PdfPage, ...]
    #: document information dictionary: key without the slash -> text
    info: Mapping[str, str]
    #: simple XMP properties as ``prefix:name`` (``dc``, ``xmp``, ``pdf``, ``cl``) -> text
    xmp: Mapping[str, str]
    #: embedded files asked for by name and found: name -> bytes
    embedded_files: Mapping[str, bytes]
    #: the file carries (or declares) digital signatures
    signed: bool
    #: the file carries JavaScript, launch, submit or auto actions (detected, never run)
    active_content: bool
    #: what was present but not converted (clipping, shadings, ...), each once
    notes: tuple[str, ...] = ()
    #: the catalog's ``/Lang`` (natural language), if any
    lang: str | None = None


# -- entry point ----------------------------------------------------------------------

_QUIET_LOCK = threading.Lock()
_QUIET_USERS = [0]
_QUIET_LOGGERS: Final = ("pypdf", "fontTools")
_QUIET_SAVED: dict[str, int] = {}


@contextlib.contextmanager
def quiet_library_logs() -> Iterator[None]:
    """Silence pypdf's and fontTools' warnings while a hostile file is read.

    They log every oddity of a broken file at WARNING through child loggers
    (``pypdf._reader``, ``fontTools.subset``...), which a filter on the parent
    does not see; the parents' level does. Counted, so nested and concurrent
    conversions restore the level only when the last one ends.
    """
    with _QUIET_LOCK:
        if _QUIET_USERS[0] == 0:
            for name in _QUIET_LOGGERS:
                logger = logging.getLogger(name)
                _QUIET_SAVED[name] = logger.level
                logger.setLevel(logging.ERROR)
        _QUIET_USERS[0] += 1
    try:
        yield
    finally:
        with _QUIET_LOCK:
            _QUIET_USERS[0] -= 1
            if _QUIET_USERS[0] == 0:
                for name in _QUIET_LOGGERS:
                    logging.getLogger(name).setLevel(_QUIET_SAVED.pop(name, logging.NOTSET))


def read_pdf(data: bytes, *, limits: PdfLimits | None = None, deadline: Deadline | None = None,
             embedded_files: Collection[str] = ()) -> PdfContent:
    """Read the visible content and the metadata of an untrusted PDF.

    Raises :class:`InvalidInputError` with reason ``convert.malformed_pdf`` for a
    file that is not a PDF or cannot be parsed, ``convert.encrypted`` for an
    encrypted one, ``convert.too_large`` past a limit and ``convert.timeout``
    when ``deadline`` expires. Never writes, never fetches, never executes.
    """
    limits = limits or PdfLimits()
    deadline = deadline or Deadline(30.0)
    if not isinstance(data, bytes | bytearray | memoryview):
        raise malformed_pdf("read_pdf needs the file's bytes")
    data = bytes(data)
    if len(data) > limits.max_file_bytes:
        raise too_large(f"the PDF is larger than {limits.max_file_bytes} bytes")
    if b"%PDF-" not in data[:_PDF_MAGIC_WINDOW]:
        raise malformed_pdf("not a PDF file (no %PDF- header)")
    config = _pypdf_configuration(limits)
    try:
        with quiet_library_logs(), apply_configuration(**config):
            return _Document(data, limits, deadline, frozenset(embedded_files)).read()
    except InvalidInputError:
        raise
    except LimitReachedError as exc:
        raise too_large(f"the PDF exceeds a parsing limit: {_short(exc)}") from None
    except RecursionError:
        raise malformed_pdf("the PDF nests objects too deeply") from None
    except MemoryError:
        raise too_large("the PDF needs more memory than allowed") from None
    except Exception as exc:
        # pypdf raises a zoo of exceptions on broken files (PdfReadError, KeyError,
        # ValueError, struct.error, zlib.error, ...): all of them mean "malformed"
        raise malformed_pdf(f"the PDF cannot be parsed: {type(exc).__name__}: {_short(exc)}") from None


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200]


def _pypdf_configuration(limits: PdfLimits) -> dict[str, Any]:
    # decoded images are at most 4 bytes per pixel; content and fonts have their own limit
    stream_out = max(limits.max_content_bytes, limits.max_font_bytes, limits.max_image_pixels * 4,
                     limits.max_embedded_file_bytes)
    return {
        "maximum_declared_stream_length": limits.max_file_bytes,
        "array_based_stream_maximum_output_length": limits.max_content_bytes,
        "zlib_maximum_output_length": stream_out,
        "lzw_maximum_output_length": stream_out,
        "run_length_maximum_output_length": stream_out,
        "jbig2_maximum_output_length": limits.max_image_pixels,
        "brotli_maximum_output_length": stream_out,
        "image_maximum_buffer_size": limits.max_image_pixels * 4,
        "stream_decoding_work_maximum_length": stream_out * 2,
        "page_tree_maximum_entries": limits.max_pages * 8,
        "page_tree_maximum_depth": limits.max_tree_depth,
        "xmp_maximum_input_length": limits.max_xmp_bytes,
        "jbig2dec_binary": None,  # never run an external program on hostile input
    }


# -- matrices ------------------------------------------------------------------------


def mat_mul(m: Matrix, n: Matrix) -> Matrix:
    """``m`` then ``n`` (PDF row-vector convention: ``m x n``)."""
    a, b, c, d, e, f = m
    aa, bb, cc, dd, ee, ff = n
    return (a * aa + b * cc, a * bb + b * dd, c * aa + d * cc, c * bb + d * dd,
            e * aa + f * cc + ee, e * bb + f * dd + ff)


def mat_apply(m: Matrix, x: float, y: float) -> tuple[float, float]:
    """Map one point through ``m``."""
    return m[0] * x + m[2] * y + m[4], m[1] * x + m[3] * y + m[5]


def _finite_matrix(m: Matrix) -> bool:
    return all(math.isfinite(v) and abs(v) < _MAX_COORD for v in m)


# -- pypdf object helpers ------------------------------------------------------------


def _resolve(obj: Any) -> Any:
    if isinstance(obj, IndirectObject):
        obj = obj.get_object()
    return None if isinstance(obj, NullObject) else obj


def _get(d: Any, key: str, default: Any = None) -> Any:
    if not isinstance(d, DictionaryObject):
        return default
    value = _resolve(d.get(key))
    return default if value is None else value


def _name(value: Any) -> str | None:
    value = _resolve(value)
    return str(value)[1:] if isinstance(value, NameObject) else None


def _number(value: Any, default: float = 0.0) -> float:
    value = _resolve(value)
    if isinstance(value, bool):
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    return number if math.isfinite(number) else default


def _ident(obj: Any, fallback: Any) -> int:
    """A key identifying an object: its object number when indirect."""
    ref = getattr(obj, "indirect_reference", None)
    if isinstance(ref, IndirectObject):
        return ref.idnum * 65536 + ref.generation
    return -id(fallback) - 1


def _text_value(value: Any, max_chars: int) -> str | None:
    value = _resolve(value)
    if isinstance(value, str):
        text = str(value)
    elif isinstance(value, bytes):
        text = value.decode("latin-1")
    else:
        return None
    text = _BAD_CHAR_RE.sub("", text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", " ")
                             .replace("\t", " "))
    return text[:max_chars]


# -- the document ----------------------------------------------------------------------


class _Document:
    def __init__(self, data: bytes, limits: PdfLimits, deadline: Deadline,
                 wanted_files: frozenset[str]) -> None:
        self.data = data
        self.limits = limits
        self.deadline = deadline
        self.wanted_files = wanted_files
        self.budget = _Budget(limits, deadline)
        self.fonts: dict[int, PdfFont | None] = {}
        self.notes: list[str] = []

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def read(self) -> PdfContent:
        # 1. structure: xref, trailer, encryption
        reader = PdfReader(io.BytesIO(self.data), strict=False)
        if reader.is_encrypted:
            raise InvalidInputError("the PDF is encrypted; decrypt it with its owner's consent first",
                                    reason=REASON_ENCRYPTED)
        objects = sum(len(v) for v in reader.xref.values()) + len(reader.xref_objStm)
        if objects > self.limits.max_objects:
            raise too_large(f"the PDF lists {objects} objects (limit {self.limits.max_objects})")
        self.deadline.check()
        root = _resolve(reader.trailer.get("/Root"))
        if not isinstance(root, DictionaryObject):
            raise malformed_pdf("the PDF has no document catalog")
        # 2. pages, by our own bounded walk of the page tree
        page_dicts = self._page_dicts(root)
        pages = tuple(self._page(p, inherited) for p, inherited in page_dicts)
        # 3. metadata, embedded files, signatures, active content
        info = self._info(reader)
        xmp = self._xmp(root)
        files = self._embedded_files(root)
        return PdfContent(pages=pages, info=info, xmp=xmp, embedded_files=files,
                          signed=self._signed(root), active_content=self._active(root, page_dicts),
                          notes=tuple(self.notes), lang=_text_value(root.get("/Lang"), 64))

    # -- page tree --------------------------------------------------------------------

    def _page_dicts(self, root: DictionaryObject) -> list[tuple[DictionaryObject, dict[str, Any]]]:
        top = _get(root, "/Pages")
        if not isinstance(top, DictionaryObject):
            raise malformed_pdf("the document catalog has no page tree")
        claimed = _number(top.get("/Count"), -1)
        if claimed > self.limits.max_pages:
            raise too_large(f"the PDF claims {claimed:.0f} pages (limit {self.limits.max_pages})")
        out: list[tuple[DictionaryObject, dict[str, Any]]] = []
        seen: set[int] = set()
        visits = 0
        stack: list[tuple[Any, dict[str, Any], int]] = [(top, {}, 0)]
        while stack:
            node, inherited, depth = stack.pop()
            node = _resolve(node)
            visits += 1
            if visits > self.limits.max_pages * 16:
                raise too_large("the page tree has too many nodes")
            self.deadline.check()
            if not isinstance(node, DictionaryObject):
                continue
            key = _ident(node, node)
            if key in seen:
                raise malformed_pdf("the page tree has a loop")
            seen.add(key)
            if depth > self.limits.max_tree_depth:
                raise too_large(f"the page tree is deeper than {self.limits.max_tree_depth}")
            here = dict(inherited)
            for attr in ("/Resources", "/MediaBox", "/CropBox", "/Rotate"):
                if attr in node:
                    here[attr] = node[attr]
            kids = _get(node, "/Kids")
            if _name(node.get("/Type")) == "Page" or (kids is None and "/Contents" in node):
                out.append((node, here))
                if len(out) > self.limits.max_pages:
                    raise too_large(f"the PDF has more than {self.limits.max_pages} pages")
                continue
            if isinstance(kids, ArrayObject):
                if len(kids) > self.limits.max_pages * 8:
                    raise too_large("a page-tree node has too many kids")
                stack.extend((kid, here, depth + 1) for kid in reversed(kids))
        if not out:
            raise malformed_pdf("the PDF has no pages")
        return out

    def _box(self, value: Any) -> tuple[float, float, float, float] | None:
        value = _resolve(value)
        if not isinstance(value, ArrayObject) or len(value) != 4:
            return None
        nums = [_number(v, math.nan) for v in value]
        if any(math.isnan(v) for v in nums):
            return None
        x0, y0, x1, y1 = nums
        return min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)

    def _page(self, page: DictionaryObject, inherited: Mapping[str, Any]) -> PdfPage:
        media = self._box(inherited.get("/MediaBox")) or (0.0, 0.0, 612.0, 792.0)
        crop = self._box(inherited.get("/CropBox")) or media
        x0, y0 = max(media[0], crop[0]), max(media[1], crop[1])
        x1, y1 = min(media[2], crop[2]), min(media[3], crop[3])
        if x1 - x0 < 1 or y1 - y0 < 1:
            x0, y0, x1, y1 = media
        w, h = x1 - x0, y1 - y0
        if not (1 <= w <= 14_400 and 1 <= h <= 14_400):
            raise malformed_pdf(f"page size {w:.0f} x {h:.0f} pt is not a page")
        rotate = int(_number(inherited.get("/Rotate"), 0)) % 360
        if rotate % 90:
            self.note("a page /Rotate that is not a multiple of 90 was ignored")
            rotate = 0
        # base: default user space -> page space (top-left origin, y down, rotation applied)
        base: Matrix
        if rotate == 0:
            base, size = (1.0, 0.0, 0.0, -1.0, -x0, y1), (w, h)
        elif rotate == 90:
            base, size = (0.0, 1.0, 1.0, 0.0, -y0, -x0), (h, w)
        elif rotate == 180:
            base, size = (-1.0, 0.0, 0.0, 1.0, x1, -y0), (w, h)
        else:
            base, size = (0.0, -1.0, -1.0, 0.0, y1, x1), (h, w)
        resources = _resolve(inherited.get("/Resources"))
        content = self._page_content(page)
        painter = _Painter(self, base)
        painter.run(content, resources if isinstance(resources, DictionaryObject) else None, 0)
        return PdfPage(width=size[0], height=size[1], items=tuple(painter.items))

    def _page_content(self, page: DictionaryObject) -> bytes:
        contents = _get(page, "/Contents")
        streams: list[Any]
        if isinstance(contents, ArrayObject):
            if len(contents) > 4096:
                raise too_large("a page has too many content streams")
            streams = [_resolve(s) for s in contents]
        else:
            streams = [contents]
        out = bytearray()
        for stream in streams:
            if isinstance(stream, StreamObject):
                room = self.limits.max_content_bytes - len(out)
                out += self.stream_data(stream, room, "page content")
                out += b"\n"
        return bytes(out)

    def stream_data(self, stream: StreamObject, limit: int, what: str) -> bytes:
        """Decoded bytes of ``stream``, never more than ``limit``."""
        self.deadline.check()
        if limit <= 0:
            raise too_large(f"{what} is larger than allowed")
        filters = _resolve(stream.get("/Filter"))
        if isinstance(filters, ArrayObject) and len(filters) == 1:
            filters = _resolve(filters[0])
        raw = bytes(stream._data)  # the encoded bytes as stored
        decoded: bytes
        if filters is None or (isinstance(filters, ArrayObject) and not filters):
            decoded = raw
        elif _name(filters) == "FlateDecode" and _get(stream, "/DecodeParms") is None:
            # the common case, decoded here so that a bomb stops at the limit, not at pypdf's
            decoded = _inflate(raw, limit, what)
        else:
            decoded = stream.get_data()
        if len(decoded) > limit:
            raise too_large(f"{what} decodes to more than {limit} bytes")
        return bytes(decoded)

    # -- fonts --------------------------------------------------------------------------

    def font(self, ref: Any) -> PdfFont | None:
        obj = _resolve(ref)
        if not isinstance(obj, DictionaryObject):
            return None
        key = _ident(obj, obj)
        if key in self.fonts:
            return self.fonts[key]
        if len(self.fonts) >= self.limits.max_fonts:
            raise too_large(f"more than {self.limits.max_fonts} fonts")
        try:
            font: PdfFont | None = _FontLoader(self, obj, key).load()
        except (InvalidInputError, LimitReachedError):
            raise
        except Exception:  # a broken font: its text cannot be shown, like in a viewer
            self.note("a font that could not be read was skipped")
            font = None
        self.fonts[key] = font
        return font

    # -- metadata -----------------------------------------------------------------------

    def _info(self, reader: PdfReader) -> dict[str, str]:
        info = _resolve(reader.trailer.get("/Info"))
        out: dict[str, str] = {}
        if not isinstance(info, DictionaryObject):
            return out
        for i, (key, value) in enumerate(info.items()):
            if i >= self.limits.max_info_entries:
                self.note("metadata entries past the limit were dropped")
                break
            text = _text_value(value, self.limits.max_info_chars)
            name = str(key)[1:]
            if text is not None and name and len(name) <= 256 and not _BAD_CHAR_RE.search(name):
                out[name] = text
        return out

    def _xmp(self, root: DictionaryObject) -> dict[str, str]:
        stream = _get(root, "/Metadata")
        if not isinstance(stream, StreamObject):
            return {}
        try:
            data = self.stream_data(stream, self.limits.max_xmp_bytes, "XMP metadata")
        except InvalidInputError as exc:
            if exc.reason == "convert.timeout":
                raise
            self.note("XMP metadata that could not be read was dropped")
            return {}
        return parse_xmp(data, self.limits.max_info_chars)

    def _embedded_files(self, root: DictionaryObject) -> dict[str, bytes]:
        if not self.wanted_files:
            return {}
        tree = _get(_get(root, "/Names"), "/EmbeddedFiles")
        found: dict[str, bytes] = {}
        visits = 0
        seen: set[int] = set()
        stack: list[Any] = [tree]
        while stack:
            node = _resolve(stack.pop())
            visits += 1
            if visits > self.limits.max_name_tree_nodes:
                raise too_large("the embedded-file name tree is too large")
            if not isinstance(node, DictionaryObject):
                continue
            key = _ident(node, node)
            if key in seen:
                continue
            seen.add(key)
            kids = _get(node, "/Kids")
            if isinstance(kids, ArrayObject):
                stack.extend(kids[:self.limits.max_name_tree_nodes])
            names = _get(node, "/Names")
            if not isinstance(names, ArrayObject):
                continue
            for i in range(0, min(len(names), 2 * self.limits.max_name_tree_nodes) - 1, 2):
                spec = _resolve(names[i + 1])
                label = _text_value(names[i], 256)
                names_here = {label, _text_value(_get(spec, "/UF"), 256), _text_value(_get(spec, "/F"), 256)}
                wanted = next((n for n in self.wanted_files if n in names_here), None)
                if wanted is None or wanted in found:
                    continue
                ef = _get(spec, "/EF")
                stream = _get(ef, "/UF") or _get(ef, "/F")
                if isinstance(stream, StreamObject):
                    found[wanted] = self.stream_data(stream, self.limits.max_embedded_file_bytes,
                                                     f"embedded file {wanted!r}")
        return found

    def _signed(self, root: DictionaryObject) -> bool:
        if _get(root, "/Perms") is not None:
            return True
        form = _get(root, "/AcroForm")
        if int(_number(_get(form, "/SigFlags"), 0)) & 1:
            return True
        stack: list[Any] = list(_get(form, "/Fields", [])[:1024])
        visits = 0
        while stack and visits < 4096:
            visits += 1
            field_obj = _resolve(stack.pop())
            if not isinstance(field_obj, DictionaryObject):
                continue
            if _name(field_obj.get("/FT")) == "Sig" and _get(field_obj, "/V") is not None:
                return True
            kids = _get(field_obj, "/Kids")
            if isinstance(kids, ArrayObject):
                stack.extend(kids[:1024])
        return False

    def _active(self, root: DictionaryObject, pages: list[tuple[DictionaryObject, dict[str, Any]]]) -> bool:
        if any(k in root for k in ("/OpenAction", "/AA")):
            return True
        names = _get(root, "/Names")
        if isinstance(names, DictionaryObject) and "/JavaScript" in names:
            return True
        for page, _ in pages:
            if "/AA" in page:
                return True
            annots = _get(page, "/Annots")
            if isinstance(annots, ArrayObject):
                for annot in annots[:512]:
                    action = _get(_resolve(annot), "/A")
                    if _name(_get(action, "/S")) in ("JavaScript", "Launch", "SubmitForm", "ImportData",
                                                     "GoToR", "GoToE", "Rendition"):
                        return True
        return False


def _inflate(raw: bytes, limit: int, what: str) -> bytes:
    d = zlib.decompressobj()
    try:
        out = d.decompress(raw, limit + 1)
    except zlib.error:
        # a damaged stream: keep what inflated (viewers do the same)
        d = zlib.decompressobj()
        out = b""
        with contextlib.suppress(zlib.error):
            out = d.decompress(raw[:1_000_000], limit + 1)
    if len(out) > limit:
        raise too_large(f"{what} inflates to more than {limit} bytes (compression bomb?)")
    return out


# -- XMP ---------------------------------------------------------------------------------

_XMP_PREFIXES: Final[Mapping[str, str]] = {
    "http://purl.org/dc/elements/1.1/": "dc",
    "http://ns.adobe.com/xap/1.0/": "xmp",
    "http://ns.adobe.com/pdf/1.3/": "pdf",
    "https://certledger.example/ns/licence/1.0/": "cl",
}
_RDF: Final = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
_XML_LANG: Final = "{http://www.w3.org/XML/1998/namespace}lang"


def parse_xmp(data: bytes, max_chars: int = 65536) -> dict[str, str]:
    """Simple properties of an XMP packet as ``prefix:name`` -> text.

    Only the Dublin Core, XMP basic, PDF and certledger licence namespaces are
    read. Alternatives give their ``x-default`` (else first) item, bags and
    sequences their items joined by ``", "``. A packet that is not well-formed
    XML, or declares entities or a DTD, gives an empty result.
    """
    from defusedxml import ElementTree as DET

    start = data.find(b"<x:xmpmeta")
    if start < 0:
        start = data.find(b"<rdf:RDF")
    if start < 0:
        return {}
    end_tag = b"</x:xmpmeta>" if data.startswith(b"<x:xmpmeta", start) else b"</rdf:RDF>"
    end = data.find(end_tag, start)
    if end < 0:
        return {}
    try:
        root = DET.fromstring(data[start:end + len(end_tag)], forbid_dtd=True)
    except Exception:  # malformed or hostile XML: no metadata rather than no conversion
        return {}
    out: dict[str, str] = {}
    for desc in root.iter(f"{_RDF}Description"):
        for attr, value in desc.attrib.items():
            key = _xmp_key(attr)
            if key is not None:
                out.setdefault(key, _clip(value, max_chars))
        for prop in desc:
            key = _xmp_key(prop.tag)
            if key is None:
                continue
            value = _xmp_value(prop)
            if value is not None:
                out.setdefault(key, _clip(value, max_chars))
    return out


def _clip(text: str, max_chars: int) -> str:
    return _BAD_CHAR_RE.sub("", " ".join(text.split()))[:max_chars]


def _xmp_key(tag: str) -> str | None:
    if not tag.startswith("{"):
        return None
    ns, _, local = tag[1:].partition("}")
    prefix = _XMP_PREFIXES.get(ns)
    return f"{prefix}:{local}" if prefix else None


def _xmp_value(prop: Any) -> str | None:
    container = next(iter(prop), None)
    if container is None:
        return prop.text or ""
    items = list(container.iter(f"{_RDF}li"))
    if container.tag == f"{_RDF}Alt":
        chosen = next((li for li in items if li.get(_XML_LANG) == "x-default"), items[0] if items else None)
        return None if chosen is None else (chosen.text or "")
    if container.tag in (f"{_RDF}Seq", f"{_RDF}Bag"):
        return ", ".join(li.text or "" for li in items)
    return None


# -- fonts ----------------------------------------------------------------------------


def _glyph_name_to_unicode(name: str) -> str:
    from pypdf._codecs import adobe_glyphs

    hit = adobe_glyphs.get("/" + name)
    if hit:
        return str(hit)
    m = _GLYPH_UNI_RE.match(name.split(".", 1)[0])
    if m:
        value = int(m.group(1) or m.group(2), 16)
        if value <= 0x10FFFF:
            return chr(value)
    return ""


_UCS2_CMAP_RE: Final = re.compile(r"^Uni\w+-(?:UCS2|UTF16)-[HV]$")
_GBK_CMAP_RE: Final = re.compile(r"^(?:GB-EUC|GBK-EUC|GBKp-EUC|GBK2K|GBpc-EUC)-[HV]$")


class _FontLoader:
    def __init__(self, doc: _Document, obj: DictionaryObject, key: int) -> None:
        self.doc = doc
        self.obj = obj
        self.key = key

    def load(self) -> PdfFont:
        obj = self.obj
        subtype = _name(obj.get("/Subtype")) or "Type1"
        base = _name(obj.get("/BaseFont")) or ""
        to_unicode = self._to_unicode(_get(obj, "/ToUnicode"))
        if subtype == "Type0":
            return self._composite(base, to_unicode)
        return self._simple(subtype, base, to_unicode)

    def _descriptor_file(self, descriptor: Any) -> tuple[bytes | None, str | None]:
        for key, kind in (("/FontFile2", "truetype"), ("/FontFile3", "cff"), ("/FontFile", "type1")):
            stream = _get(descriptor, key)
            if isinstance(stream, StreamObject):
                data = self.doc.stream_data(stream, self.doc.limits.max_font_bytes, "a font file")
                opentype = kind == "cff" and _name(stream.get("/Subtype")) == "OpenType"
                return data, "opentype" if opentype else kind
        return None, None

    def _simple(self, subtype: str, base: str, to_unicode: dict[int, str]) -> PdfFont:
        from pypdf._codecs import charset_encoding

        obj = self.obj
        descriptor = _get(obj, "/FontDescriptor")
        flags = int(_number(_get(descriptor, "/Flags"), 0))
        symbolic = bool(flags & 4) and not flags & 32
        widths: dict[int, float] = {}
        first = int(_number(obj.get("/FirstChar"), 0))
        raw_widths = _get(obj, "/Widths")
        if isinstance(raw_widths, ArrayObject) and 0 <= first <= 255:
            for i, w in enumerate(raw_widths[:256 - first]):
                widths[first + i] = _number(w, 0.0)
        missing = _number(_get(descriptor, "/MissingWidth"), 0.0)
        # encoding: base table, then /Differences
        names: dict[int, str] = {}
        encoding = _resolve(obj.get("/Encoding"))
        base_name = _name(encoding) if not isinstance(encoding, DictionaryObject) else \
            _name(encoding.get("/BaseEncoding"))
        table = charset_encoding.get("/" + base_name) if base_name else None
        if table is None and subtype in ("Type1", "MMType1") and not symbolic:
            table = charset_encoding["/StandardEncoding"]
        if table is not None:
            from pypdf._codecs import adobe_glyphs

            reverse = {v: k[1:] for k, v in adobe_glyphs.items()}
            for code, ch in enumerate(table):
                glyph = reverse.get(ch)
                if glyph and ch != "\u0000":
                    names[code] = glyph
        if isinstance(encoding, DictionaryObject):
            diffs = _get(encoding, "/Differences")
            code = 0
            if isinstance(diffs, ArrayObject):
                for entry in diffs[:1024]:
                    item = _resolve(entry)
                    if isinstance(item, NameObject):
                        if 0 <= code <= 255:
                            names[code] = str(item)[1:]
                        code += 1
                    else:
                        code = int(_number(item, 0))
        scale = 1.0
        if subtype == "Type3":
            matrix = _get(obj, "/FontMatrix")
            if isinstance(matrix, ArrayObject) and len(matrix) == 6:
                scale = abs(_number(matrix[0], 0.001)) * 1000.0
        if not widths and subtype != "Type3":
            widths = self._core_widths(base, names, to_unicode)
            missing = missing or 500.0
        file_bytes, file_kind = (None, None) if subtype == "Type3" else self._descriptor_file(descriptor)
        return PdfFont(key=self.key, base_font=base, subtype=subtype, scheme="simple", widths=widths,
                       default_width=missing, to_unicode=to_unicode, glyph_names=names,
                       file_bytes=file_bytes, file_kind=file_kind, cid_to_gid=None, code_to_cid=None,
                       codespace=(), symbolic=symbolic, vertical=False, font_matrix_scale=scale)

    @staticmethod
    def _core_widths(base: str, names: Mapping[int, str], to_unicode: Mapping[int, str]) -> dict[int, float]:
        from pypdf._codecs.core_font_metrics import CORE_FONT_METRICS

        metrics = CORE_FONT_METRICS.get(_SUBSET_TAG_RE.sub("", base))
        if metrics is None:
            return {}
        out: dict[int, float] = {}
        for code in range(256):
            ch = to_unicode.get(code) or (_glyph_name_to_unicode(names[code]) if code in names else chr(code))
            width = metrics.character_widths.get(ch)
            if width is not None:
                out[code] = float(width)
        return out

    def _composite(self, base: str, to_unicode: dict[int, str]) -> PdfFont:
        obj = self.obj
        descendants = _get(obj, "/DescendantFonts")
        desc = _resolve(descendants[0]) if isinstance(descendants, ArrayObject) and descendants else None
        if not isinstance(desc, DictionaryObject):
            raise malformed_pdf("a Type0 font has no descendant font")
        encoding = _resolve(obj.get("/Encoding"))
        scheme = "identity"
        vertical = False
        codespace: tuple[tuple[bytes, bytes], ...] = ()
        code_to_cid: dict[int, int] | None = None
        enc_name = _name(encoding)
        if enc_name is not None:
            vertical = enc_name.endswith("-V")
            if enc_name.startswith("Identity-"):
                scheme = "identity"
            elif _UCS2_CMAP_RE.match(enc_name):
                scheme = "ucs2"
            elif _GBK_CMAP_RE.match(enc_name):
                scheme = "gbk"
            else:
                self.doc.note(f"predefined CMap {enc_name} read as two-byte identity")
        elif isinstance(encoding, StreamObject):
            vertical = int(_number(encoding.get("/WMode"), 0)) == 1
            data = self.doc.stream_data(encoding, self.doc.limits.max_cmap_bytes, "an encoding CMap")
            codespace, code_to_cid = _parse_cid_cmap(data, self.doc.budget)
            scheme = "codespace" if codespace else "identity"
        widths: dict[int, float] = {}
        raw_w = _get(desc, "/W")
        if isinstance(raw_w, ArrayObject):
            _parse_cid_widths(raw_w, widths)
        default_width = _number(_get(desc, "/DW"), 1000.0)
        cid_to_gid: dict[int, int] | None = None
        gid_map = _get(desc, "/CIDToGIDMap")
        if isinstance(gid_map, StreamObject):
            raw = self.doc.stream_data(gid_map, 2 * 65536, "a CIDToGIDMap")
            cid_to_gid = {i // 2: (raw[i] << 8) | raw[i + 1] for i in range(0, len(raw) - 1, 2)}
        descriptor = _get(desc, "/FontDescriptor")
        file_bytes, file_kind = self._descriptor_file(descriptor)
        return PdfFont(key=self.key, base_font=base or (_name(desc.get("/BaseFont")) or ""),
                       subtype="Type0", scheme=scheme, widths=widths, default_width=default_width,
                       to_unicode=to_unicode, glyph_names={}, file_bytes=file_bytes, file_kind=file_kind,
                       cid_to_gid=cid_to_gid, code_to_cid=code_to_cid, codespace=codespace,
                       symbolic=True, vertical=vertical, font_matrix_scale=1.0)

    def _to_unicode(self, stream: Any) -> dict[int, str]:
        if not isinstance(stream, StreamObject):
            return {}
        data = self.doc.stream_data(stream, self.doc.limits.max_cmap_bytes, "a ToUnicode CMap")
        return parse_to_unicode(data, self.doc.budget)


def _parse_cid_widths(raw: ArrayObject, widths: dict[int, float]) -> None:
    items = [_resolve(v) for v in raw[:200_000]]
    i = 0
    while i < len(items) - 1:
        first = _number(items[i], -1)
        nxt = items[i + 1]
        if first < 0:
            break
        if isinstance(nxt, ArrayObject):
            for k, w in enumerate(nxt[:65536]):
                widths[int(first) + k] = _number(w, 0.0)
            i += 2
        elif i + 2 < len(items):
            last = int(_number(nxt, -1))
            w = _number(items[i + 2], 0.0)
            for cid in range(int(first), min(last, int(first) + 65536) + 1):
                widths[cid] = w
            i += 3
        else:
            break
        if len(widths) > _MAX_CMAP_ENTRIES:
            raise too_large("a font's width table is too large")


# -- colours --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Space:
    kind: str  # gray, rgb, cmyk, indexed, pattern, lab, other
    components: int
    base: _Space | None = None
    lookup: bytes = b""
    hival: int = 0


_GRAY: Final = _Space("gray", 1)
_RGB_SPACE: Final = _Space("rgb", 3)
_CMYK: Final = _Space("cmyk", 4)
_DEVICE_SPACES: Final[Mapping[str, _Space]] = {
    "DeviceGray": _GRAY, "G": _GRAY, "CalGray": _GRAY,
    "DeviceRGB": _RGB_SPACE, "RGB": _RGB_SPACE, "CalRGB": _RGB_SPACE,
    "DeviceCMYK": _CMYK, "CMYK": _CMYK,
    "Pattern": _Space("pattern", 0),
}


def _unit(v: Any) -> float:
    value = v if isinstance(v, float) else 0.0
    return 0.0 if math.isnan(value) else min(1.0, max(0.0, value))


def _to_rgb(space: _Space, comps: list[Any]) -> RGB:
    vals = [_unit(c) for c in comps]
    if space.kind == "gray" and vals:
        return (vals[0], vals[0], vals[0])
    if space.kind == "rgb" and len(vals) >= 3:
        return (vals[0], vals[1], vals[2])
    if space.kind == "cmyk" and len(vals) >= 4:
        c, m, y, k = vals[:4]
        return ((1 - c) * (1 - k), (1 - m) * (1 - k), (1 - y) * (1 - k))
    if space.kind == "lab" and vals:
        light = min(1.0, max(0.0, (comps[0] if isinstance(comps[0], float) else 0.0) / 100.0))
        return (light, light, light)
    if space.kind == "indexed" and space.base is not None and comps:
        index = int(min(max(comps[0] if isinstance(comps[0], float) and not math.isnan(comps[0]) else 0, 0),
                        space.hival))
        n = space.base.components
        entry = space.lookup[index * n:(index + 1) * n]
        if len(entry) == n:
            return _to_rgb(space.base, [b / 255.0 for b in entry])
        return BLACK_RGB
    if space.kind == "other" and vals:
        # a Separation / DeviceN tint: ink coverage, shown as grey
        tint = max(vals)
        return (1 - tint, 1 - tint, 1 - tint)
    if space.kind == "pattern":
        return (0.5, 0.5, 0.5)
    return BLACK_RGB


def _initial_colour(space: _Space) -> RGB:
    # every space starts at black: gray 0, RGB 0 0 0, CMYK 0 0 0 1, tint 1, index 0 (approximated)
    return BLACK_RGB if space.kind != "pattern" else (0.5, 0.5, 0.5)


# -- the interpreter -------------------------------------------------------------------


@dataclass
class _State:
    ctm: Matrix
    fill: RGB = BLACK_RGB
    stroke: RGB = BLACK_RGB
    fill_space: _Space = _GRAY
    stroke_space: _Space = _GRAY
    line_width: float = 1.0
    fill_alpha: float = 1.0
    stroke_alpha: float = 1.0
    char_space: float = 0.0
    word_space: float = 0.0
    hscale: float = 1.0
    leading: float = 0.0
    font: PdfFont | None = None
    font_size: float = 0.0
    render: int = 0
    rise: float = 0.0


def _translate(tx: float, ty: float) -> Matrix:
    return (1.0, 0.0, 0.0, 1.0, tx, ty)


class _Painter:
    """Runs content streams of one page into page items."""

    def __init__(self, doc: _Document, base: Matrix) -> None:
        self.doc = doc
        self.base = base
        self.items: list[PageItem] = []
        self.form_stack: list[int] = []

    def run(self, content: bytes, resources: DictionaryObject | None, depth: int,
            state: _State | None = None) -> None:
        """Interpret ``content`` with ``resources``; ``state`` is the caller's (forms)."""
        doc = self.doc
        budget = doc.budget
        limits = doc.limits
        gs = state or _State(ctm=IDENTITY)
        saved: list[_State] = []
        path: list[PathCommand] = []
        current: tuple[float, float] | None = None
        start: tuple[float, float] | None = None
        tm = tlm = IDENTITY
        dev = mat_mul(gs.ctm, self.base)

        def point(x: Any, y: Any) -> tuple[float, float]:
            return mat_apply(dev, x, y)

        for op, raw_operands in _Lexer(content, budget).operations():
            operands = raw_operands
            arity = _ARITY.get(op)
            if arity is None:
                continue
            budget.operators += 1
            if budget.operators > limits.max_operators:
                raise too_large(f"more than {limits.max_operators} content operators")
            if arity > 0:
                if len(operands) < arity:
                    continue  # a malformed operator: ignored, as viewers do
                operands = operands[-arity:]
                if op not in ("Tf", "gs", "cs", "CS", "Do", "sh", "Tj", "TJ", "'", '"', "BI") and not all(
                        isinstance(v, float) and math.isfinite(v) and abs(v) < _MAX_COORD for v in operands):
                    continue  # NaN, huge or non-numeric operands: the operator is ignored
            # graphics state
            if op == "q":
                if len(saved) >= limits.max_state_depth:
                    raise too_large(f"graphics states nested deeper than {limits.max_state_depth}")
                saved.append(replace(gs))
            elif op == "Q":
                if saved:
                    gs = saved.pop()
                    dev = mat_mul(gs.ctm, self.base)
            elif op == "cm":
                m = mat_mul((operands[0], operands[1], operands[2], operands[3], operands[4], operands[5]), gs.ctm)
                if _finite_matrix(m):
                    gs.ctm = m
                    dev = mat_mul(gs.ctm, self.base)
            elif op == "w":
                gs.line_width = abs(operands[0])
            elif op == "gs":
                self._ext_gstate(gs, resources, operands[0])
            # colours
            elif op in ("g", "G", "rg", "RG", "k", "K"):
                space = {"g": _GRAY, "rg": _RGB_SPACE, "k": _CMYK}[op.lower()]
                if op.islower():
                    gs.fill_space, gs.fill = space, _to_rgb(space, operands)
                else:
                    gs.stroke_space, gs.stroke = space, _to_rgb(space, operands)
            elif op in ("cs", "CS"):
                space = self._colour_space(resources, operands[0], 0)
                if op == "cs":
                    gs.fill_space, gs.fill = space, _initial_colour(space)
                else:
                    gs.stroke_space, gs.stroke = space, _initial_colour(space)
            elif op in ("sc", "scn"):
                gs.fill = _to_rgb(gs.fill_space, [v for v in operands if isinstance(v, float)])
            elif op in ("SC", "SCN"):
                gs.stroke = _to_rgb(gs.stroke_space, [v for v in operands if isinstance(v, float)])
            # paths
            elif op == "m":
                current = start = point(*operands)
                path.append(("M", current))
                self._count_points(1)
            elif op == "l":
                if current is None:
                    continue
                current = point(*operands)
                path.append(("L", current))
                self._count_points(1)
            elif op in ("c", "v", "y"):
                if current is None:
                    continue
                if op == "c":
                    p1, p2, p3 = point(*operands[0:2]), point(*operands[2:4]), point(*operands[4:6])
                elif op == "v":
                    p1, p2, p3 = current, point(*operands[0:2]), point(*operands[2:4])
                else:
                    p1, p2, p3 = point(*operands[0:2]), point(*operands[2:4]), point(*operands[2:4])
                path.append(("C", (*p1, *p2, *p3)))
                current = p3
                self._count_points(3)
            elif op == "h":
                if current is not None and start is not None:
                    path.append(("Z", ()))
                    current = start
            elif op == "re":
                x, y, w, h = operands
                corners = [point(x, y), point(x + w, y), point(x + w, y + h), point(x, y + h)]
                path.extend([("M", corners[0]), ("L", corners[1]), ("L", corners[2]), ("L", corners[3]),
                             ("Z", ())])
                current = start = corners[0]
                self._count_points(4)
            elif op in ("S", "s", "f", "F", "f*", "B", "B*", "b", "b*", "n"):
                if op in ("s", "b", "b*") and path and path[-1][0] != "Z":
                    path.append(("Z", ()))
                if op != "n":
                    self._paint(path, gs, stroke=op in ("S", "s", "B", "B*", "b", "b*"),
                                fill=op not in ("S", "s"), even_odd=op.endswith("*"))
                path = []
                current = start = None
            elif op in ("W", "W*"):
                doc.note("clipping paths were ignored")
            elif op == "sh":
                doc.note("shadings (sh) were not converted")
            # text
            elif op == "BT":
                tm = tlm = IDENTITY
            elif op == "ET":
                pass
            elif op == "Tc":
                gs.char_space = operands[0]
            elif op == "Tw":
                gs.word_space = operands[0]
            elif op == "Tz":
                gs.hscale = operands[0] / 100.0
            elif op == "TL":
                gs.leading = operands[0]
            elif op == "Ts":
                gs.rise = operands[0]
            elif op == "Tr":
                gs.render = int(operands[0]) if 0 <= operands[0] <= 7 else 0
            elif op == "Tf":
                name, size = operands
                if isinstance(name, _Name) and isinstance(size, float) and math.isfinite(size) \
                        and abs(size) < _MAX_COORD:
                    gs.font = doc.font(_get(_get(resources, "/Font"), "/" + name))
                    gs.font_size = size
            elif op in ("Td", "TD"):
                tx, ty = operands
                if op == "TD":
                    gs.leading = -ty
                tlm = mat_mul(_translate(tx, ty), tlm)
                tm = tlm
            elif op == "Tm":
                m = (operands[0], operands[1], operands[2], operands[3], operands[4], operands[5])
                if _finite_matrix(m):
                    tm = tlm = m
            elif op == "T*":
                tlm = mat_mul(_translate(0.0, -gs.leading), tlm)
                tm = tlm
            elif op in ("Tj", "'", '"', "TJ"):
                if op in ("'", '"'):
                    if op == '"':
                        aw, ac = operands[0], operands[1]
                        if isinstance(aw, float) and isinstance(ac, float) and math.isfinite(aw + ac):
                            gs.word_space, gs.char_space = aw, ac
                    tlm = mat_mul(_translate(0.0, -gs.leading), tlm)
                    tm = tlm
                tm = self._show(gs, tm, operands[-1], op == "TJ")
            # XObjects, inline images
            elif op == "Do":
                if isinstance(operands[0], _Name):
                    self._do(gs, resources, operands[0], depth)
            elif op == "BI":
                self._inline_image(gs, resources, operands[0], operands[1])

    # -- helpers ------------------------------------------------------------------------

    def _count_points(self, n: int) -> None:
        budget = self.doc.budget
        budget.path_points += n
        if budget.path_points > self.doc.limits.max_path_points:
            raise too_large(f"more than {self.doc.limits.max_path_points} path points")

    def _paint(self, path: list[PathCommand], gs: _State, *, stroke: bool, fill: bool, even_odd: bool) -> None:
        if not any(c[0] != "M" for c in path):
            return
        if not all(math.isfinite(v) and abs(v) < _MAX_COORD for c in path for v in c[1]):
            self.doc.note("a path with absurd coordinates was dropped")
            return
        a, b, c, d = gs.ctm[:4]
        scale = math.sqrt(abs(a * d - b * c))
        self.items.append(PathItem(
            commands=tuple(path), stroke=gs.stroke if stroke else None, fill=gs.fill if fill else None,
            line_width=gs.line_width * scale, even_odd=even_odd,
            stroke_alpha=gs.stroke_alpha, fill_alpha=gs.fill_alpha))

    def _ext_gstate(self, gs: _State, resources: Any, name: Any) -> None:
        if not isinstance(name, _Name):
            return
        ext = _get(_get(resources, "/ExtGState"), "/" + name)
        if not isinstance(ext, DictionaryObject):
            return
        if "/CA" in ext:
            gs.stroke_alpha = _unit(_number(ext.get("/CA"), 1.0))
        if "/ca" in ext:
            gs.fill_alpha = _unit(_number(ext.get("/ca"), 1.0))
        if "/LW" in ext:
            gs.line_width = abs(_number(ext.get("/LW"), gs.line_width))
        font = _get(ext, "/Font")
        if isinstance(font, ArrayObject) and len(font) == 2:
            gs.font = self.doc.font(font[0])
            gs.font_size = _number(font[1], gs.font_size)
        if any(k in ext for k in ("/SMask", "/BM")):
            self.doc.note("soft masks and blend modes were ignored")

    def _colour_space(self, resources: Any, spec: Any, depth: int) -> _Space:
        if depth > 4:
            return _GRAY
        if isinstance(spec, _Name):
            device = _DEVICE_SPACES.get(spec)
            if device is not None:
                return device
            spec = _get(_get(resources, "/ColorSpace"), "/" + spec)
        spec = _resolve(spec)
        if isinstance(spec, NameObject):
            return _DEVICE_SPACES.get(str(spec)[1:], _GRAY)
        if not isinstance(spec, ArrayObject) or not spec:
            return _GRAY
        family = _name(spec[0]) or ""
        if family in _DEVICE_SPACES:
            return _DEVICE_SPACES[family]
        if family == "ICCBased" and len(spec) > 1:
            n = int(_number(_get(_resolve(spec[1]), "/N"), 3))
            return {1: _GRAY, 3: _RGB_SPACE, 4: _CMYK}.get(n, _RGB_SPACE)
        if family == "Lab":
            return _Space("lab", 3)
        if family in ("Indexed", "I") and len(spec) >= 4:
            base = self._colour_space(resources, _Name(_name(spec[1]) or "") if _name(spec[1]) else spec[1],
                                      depth + 1)
            lookup = _resolve(spec[3])
            if isinstance(lookup, StreamObject):
                lookup_bytes = self.doc.stream_data(lookup, 4 * 256, "an indexed colour table")
            elif isinstance(lookup, bytes | str):
                lookup_bytes = lookup.encode("latin-1") if isinstance(lookup, str) else bytes(lookup)
            else:
                lookup_bytes = b""
            return _Space("indexed", 1, base=base, lookup=lookup_bytes,
                          hival=int(min(max(_number(spec[2], 0), 0), 255)))
        if family == "Separation":
            return _Space("other", 1)
        if family == "DeviceN" and len(spec) > 1:
            names = _resolve(spec[1])
            return _Space("other", len(names) if isinstance(names, ArrayObject) else 1)
        if family == "Pattern":
            return _Space("pattern", 0)
        return _GRAY

    def _show(self, gs: _State, tm: Matrix, operand: Any, is_array: bool) -> Matrix:
        font = gs.font
        items = operand if is_array and isinstance(operand, list) else [operand]
        if font is None:
            if any(isinstance(i, bytes) and i for i in items):
                self.doc.note("text shown without a usable font was dropped")
            return tm
        size = gs.font_size
        hs = gs.hscale
        codes: list[int] = []
        chars: list[str] = []
        origins: list[tuple[float, float]] = []
        budget = self.doc.budget
        first_trm: Matrix | None = None
        dev = mat_mul(gs.ctm, self.base)
        for item in items[:65536]:
            if isinstance(item, float):
                if math.isfinite(item) and abs(item) < _MAX_COORD:
                    shift = -item / 1000.0 * size
                    tm = mat_mul(_translate(0.0, shift) if font.vertical else _translate(shift * hs, 0.0), tm)
                continue
            if not isinstance(item, bytes):
                continue
            for code in font.split(item):
                trm = mat_mul(mat_mul((size * hs, 0.0, 0.0, size, 0.0, gs.rise), tm), dev)
                if first_trm is None:
                    first_trm = trm
                codes.append(code)
                chars.append(font.unicode(code))
                origins.append((trm[4], trm[5]))
                if font.vertical:
                    ty = -(1.0 * size + gs.char_space)  # vertical writing: one em down per glyph
                    tm = mat_mul(_translate(0.0, ty), tm)
                else:
                    tx = (font.width(code) / 1000.0 * size + gs.char_space
                          + (gs.word_space if font.is_single_byte_space(code) else 0.0)) * hs
                    tm = mat_mul(_translate(tx, 0.0), tm)
        if not codes or first_trm is None:
            return tm
        budget.text_chars += len(codes)
        if budget.text_chars > self.doc.limits.max_text_chars:
            raise too_large(f"more than {self.doc.limits.max_text_chars} characters of text")
        a, b, c, d = first_trm[:4]
        em = math.hypot(c, d)
        end_trm = mat_mul(mat_mul((size * hs, 0.0, 0.0, size, 0.0, gs.rise), tm), dev)
        coords = [v for o in origins for v in o] + [end_trm[4], end_trm[5], em]
        if em <= 1e-6 or not all(math.isfinite(v) and abs(v) < _MAX_COORD for v in coords):
            self.doc.note("text with a zero or absurd size or position was dropped")
            return tm
        angle = math.degrees(math.atan2(b, a)) if (a or b) else 0.0
        if font.vertical:
            angle = math.degrees(math.atan2(-c, -d)) - 90.0 if (c or d) else 0.0
        scale = math.sqrt(abs(gs.ctm[0] * gs.ctm[3] - gs.ctm[1] * gs.ctm[2]))
        self.items.append(TextRun(
            font=font, codes=tuple(codes), chars=tuple(chars), origins=tuple(origins),
            end=(end_trm[4], end_trm[5]), size=em, angle=angle, mirrored=(a * d - b * c) > 0,
            fill=gs.fill, stroke=gs.stroke, render_mode=gs.render, line_width=gs.line_width * scale,
            fill_alpha=gs.fill_alpha, stroke_alpha=gs.stroke_alpha))
        return tm

    def _do(self, gs: _State, resources: Any, name: str, depth: int) -> None:
        doc = self.doc
        xobj = _get(_get(resources, "/XObject"), "/" + name)
        if not isinstance(xobj, StreamObject):
            return
        subtype = _name(xobj.get("/Subtype"))
        if subtype == "Image":
            self._image(gs, xobj)
        elif subtype == "Form":
            key = _ident(xobj, xobj)
            if key in self.form_stack:
                doc.note("a form XObject that draws itself was skipped")
                return
            if depth + 1 > doc.limits.max_form_depth:
                doc.note("form XObjects nested too deeply were skipped")
                return
            doc.budget.forms += 1
            if doc.budget.forms > doc.limits.max_form_invocations:
                raise too_large(f"more than {doc.limits.max_form_invocations} form XObjects drawn")
            matrix = _get(xobj, "/Matrix")
            m: Matrix = IDENTITY
            if isinstance(matrix, ArrayObject) and len(matrix) == 6:
                m = tuple(_number(v, math.nan) for v in matrix)  # type: ignore[assignment]
            ctm = mat_mul(m, gs.ctm)
            if not _finite_matrix(ctm):
                return
            form_res = _get(xobj, "/Resources")
            content = doc.stream_data(xobj, doc.limits.max_content_bytes, "a form XObject")
            self.form_stack.append(key)
            try:
                self.run(content, form_res if isinstance(form_res, DictionaryObject) else resources,
                         depth + 1, replace(gs, ctm=ctm))
            finally:
                self.form_stack.pop()

    def _image_budget(self, width: Any, height: Any) -> tuple[int, int] | None:
        doc = self.doc
        w, h = _number(width, 0), _number(height, 0)
        if not (1 <= w <= 100_000 and 1 <= h <= 100_000):
            doc.note("an image with an invalid size was skipped")
            return None
        if w * h > doc.limits.max_image_pixels:
            raise too_large(f"an image of {w:.0f} x {h:.0f} pixels is over the limit "
                            f"of {doc.limits.max_image_pixels}")
        doc.budget.images += 1
        if doc.budget.images > doc.limits.max_images:
            raise too_large(f"more than {doc.limits.max_images} images")
        doc.deadline.check()
        return int(w), int(h)

    def _image(self, gs: _State, xobj: StreamObject) -> None:
        dims = self._image_budget(_get(xobj, "/Width"), _get(xobj, "/Height"))
        if dims is None:
            return
        smask = _get(xobj, "/SMask")
        if isinstance(smask, StreamObject) and self._image_budget(_get(smask, "/Width"), _get(smask, "/Height")) \
                is None:
            return
        encoded = _encode_image(self.doc, xobj, dims, gs.fill)
        if encoded is not None:
            self._place(gs, encoded, dims)

    def _inline_image(self, gs: _State, resources: Any, info: Any, data: Any) -> None:
        if not isinstance(info, dict) or not isinstance(data, bytes):
            return
        dims = self._image_budget(info.get("W", info.get("Width")), info.get("H", info.get("Height")))
        if dims is None:
            return
        stream = _inline_stream(info, data, resources, self)
        if stream is None:
            self.doc.note("an inline image that could not be decoded was skipped")
            return
        encoded = _encode_image(self.doc, stream, dims, gs.fill)
        if encoded is not None:
            self._place(gs, encoded, dims)

    def _place(self, gs: _State, encoded: tuple[bytes, str, Any], dims: tuple[int, int]) -> None:
        data, fmt, image = encoded
        a, b, c, d, e, f = mat_mul(gs.ctm, self.base)
        corners = [(e, f), (a + e, b + f), (c + e, d + f), (a + c + e, b + d + f)]
        xs = [p[0] for p in corners]
        ys = [p[1] for p in corners]
        if not all(math.isfinite(v) and abs(v) < _MAX_COORD for v in xs + ys):
            self.doc.note("an image with absurd placement was dropped")
            return
        width, height = max(xs) - min(xs), max(ys) - min(ys)
        if width <= 1e-6 or height <= 1e-6:
            return
        eps = 1e-6 * max(abs(a), abs(b), abs(c), abs(d))
        ops: list[Any] = []
        if abs(b) <= eps and abs(c) <= eps:
            if a < 0:
                ops.append("FLIP_LEFT_RIGHT")
            if d > 0:
                ops.append("FLIP_TOP_BOTTOM")
        elif abs(a) <= eps and abs(d) <= eps:
            ops.append("TRANSPOSE")
            if c > 0:
                ops.append("FLIP_LEFT_RIGHT")
            if b < 0:
                ops.append("FLIP_TOP_BOTTOM")
        else:
            self.doc.note("a rotated or skewed image was placed upright in its bounding box")
        if ops:
            from PIL import Image

            for name in ops:
                image = image.transpose(getattr(Image.Transpose, name))
            data, fmt = _png(image), "PNG"
        self.items.append(ImageItem(data=data, format=fmt, x=min(xs), y=min(ys), width=width, height=height,
                                    pixel_width=image.width, pixel_height=image.height))


_INLINE_KEYS: Final[Mapping[str, str]] = {
    "BPC": "/BitsPerComponent", "CS": "/ColorSpace", "D": "/Decode", "DP": "/DecodeParms",
    "F": "/Filter", "H": "/Height", "IM": "/ImageMask", "I": "/Interpolate", "W": "/Width",
}
_INLINE_NAMES: Final[Mapping[str, str]] = {
    "G": "DeviceGray", "RGB": "DeviceRGB", "CMYK": "DeviceCMYK", "I": "Indexed",
    "AHx": "ASCIIHexDecode", "A85": "ASCII85Decode", "LZW": "LZWDecode", "Fl": "FlateDecode",
    "RL": "RunLengthDecode", "CCF": "CCITTFaxDecode", "DCT": "DCTDecode",
}


def _inline_stream(info: Mapping[str, Any], data: bytes, resources: Any, painter: _Painter) -> StreamObject | None:
    from pypdf.generic import BooleanObject, EncodedStreamObject, FloatObject, NumberObject

    def convert(value: Any) -> Any:
        if isinstance(value, _Name):
            return NameObject("/" + _INLINE_NAMES.get(value, value))
        if isinstance(value, bool):
            return BooleanObject(value)
        if isinstance(value, float):
            return NumberObject(int(value)) if value.is_integer() else FloatObject(value)
        if isinstance(value, list):
            return ArrayObject(convert(v) for v in value)
        if isinstance(value, bytes):
            from pypdf.generic import ByteStringObject

            return ByteStringObject(value)
        return None

    stream = EncodedStreamObject()
    for key, value in info.items():
        full = _INLINE_KEYS.get(key, "/" + key)
        if full == "/ColorSpace" and isinstance(value, _Name) and value not in _INLINE_NAMES \
                and value not in _DEVICE_SPACES:
            named = _get(_get(resources, "/ColorSpace"), "/" + value)
            if named is None:
                return None
            stream[NameObject(full)] = named
            continue
        converted = convert(value)
        if converted is not None:
            stream[NameObject(full)] = converted
    stream[NameObject("/Subtype")] = NameObject("/Image")
    stream._data = data
    return stream


def _png(image: Any) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def _encode_image(doc: _Document, xobj: StreamObject, dims: tuple[int, int],
                  fill: RGB) -> tuple[bytes, str, Any] | None:
    """``(bytes, format, PIL image)`` of an image XObject; JPEG passes through unchanged."""
    from PIL import Image

    filters = _resolve(xobj.get("/Filter"))
    chain = [_name(f) for f in filters] if isinstance(filters, ArrayObject) else [_name(filters)]
    space = _resolve(xobj.get("/ColorSpace"))
    plain_space = _name(space) in ("DeviceRGB", "DeviceGray")
    # a JPEG (possibly wrapped in ASCII85/hex, as reportlab writes them) passes through unchanged
    if (chain and chain[-1] == "DCTDecode" and all(f in ("ASCII85Decode", "ASCIIHexDecode", "A85", "AHx")
                                                   for f in chain[:-1])
            and plain_space and "/SMask" not in xobj and "/Mask" not in xobj and "/Decode" not in xobj):
        if len(chain) == 1:
            raw = bytes(xobj._data)
        else:
            raw = bytes(doc.stream_data(xobj, doc.limits.max_image_pixels * 4, "a JPEG image"))
        try:
            with Image.open(io.BytesIO(raw)) as probe:
                if probe.format == "JPEG" and probe.size == dims:
                    probe.load()
                    return raw, "JPEG", probe.copy()
        except Exception:  # not a JPEG after all: pypdf's decoder below decides
            raw = b""
    try:
        image = xobj.decode_as_image()
    except (LimitReachedError, InvalidInputError):
        raise
    except Exception:
        doc.note("an image that could not be decoded was skipped")
        return None
    if image is None:
        return None
    if image.width * image.height > doc.limits.max_image_pixels:
        raise too_large("a decoded image is over the pixel limit")
    if bool(_resolve(xobj.get("/ImageMask"))):
        # a stencil: painted in the fill colour where the sample is 0
        mask = image.convert("L")
        colour = tuple(round(v * 255) for v in fill)
        solid = Image.new("RGBA", mask.size, (*colour, 255))
        solid.putalpha(mask.point(lambda v: 255 - v))
        image = solid
    elif image.mode not in ("RGB", "RGBA", "L", "LA"):
        image = image.convert("RGBA" if "A" in image.mode or image.mode == "P" else "RGB")
    return _png(image), "PNG", image

"""The OFD document model: pages of text, paths and images, metadata, attachments.

No I/O and no XML here: :mod:`.writer` turns a model into a package and
:mod:`.reader` turns an untrusted package back into one. Objects validate
themselves when built and are immutable, so a model that exists is one the
writer can serialise.

Units and axes follow GB/T 33190: millimetres, origin at the top-left corner of
the page, x to the right, y downwards. All coordinates in this model are page
coordinates; the writer derives each object's ``Boundary`` and writes positions
relative to it, and the reader maps them back.
"""

from __future__ import annotations

import math
import re
import unicodedata
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Final, TypeAlias

from signing.errors import InvalidInputError

#: the ``xmlns:ofd`` namespace of GB/T 33190-2016
OFD_NAMESPACE: Final = "http://www.ofdspec.org/2016"

#: the model's own reason code; the reader adds its own in front where it knows more
REASON_MODEL: Final = "ofd.invalid_model"

#: the DocID form GB/T 33190 describes and the writer requires
DOC_ID_RE: Final = re.compile(r"^[0-9A-Za-z]{32}$")
# XML 1.0 Char minus CR (a parser folds it into LF, so it could never round-trip)
_BAD_TEXT_RE: Final = re.compile("[\x00-\x08\x0b\x0c\x0d\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_IMAGE_MAGIC: Final = {"PNG": (b"\x89PNG\r\n\x1a\n",), "JPEG": (b"\xff\xd8\xff",)}


def _bad(message: str) -> InvalidInputError:
    return InvalidInputError(message, reason=REASON_MODEL)


def _finite(name: str, value: float) -> float:
    if type(value) is float and value - value == 0.0:  # fast path: finite float (NaN/inf fail)
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(f"{name} must be a number")
    if not math.isfinite(value):
        raise _bad(f"{name} must be finite, got {value!r}")
    return float(value)


def _positive(name: str, value: float) -> float:
    value = _finite(name, value)
    if value <= 0:
        raise _bad(f"{name} must be positive, got {value!r}")
    return value


def _text(name: str, value: str, *, allow_empty: bool = True, max_chars: int = 100_000) -> str:
    if not isinstance(value, str):
        raise _bad(f"{name} must be a string")
    if not allow_empty and not value:
        raise _bad(f"{name} must not be empty")
    if len(value) > max_chars:
        raise _bad(f"{name} is longer than {max_chars} characters")
    bad = _BAD_TEXT_RE.search(value)
    if bad:
        raise _bad(f"{name} contains a character XML cannot carry (U+{ord(bad.group()):04X})")
    return value


def em_advance(char: str, size: float) -> float:
    """The assumed advance of one character: a full em if East Asian wide, else half."""
    return size if unicodedata.east_asian_width(char) in ("W", "F") else size / 2


def default_advances(text: str, size: float) -> tuple[float, ...]:
    """Advances from each character to the next when the font's metrics are not given."""
    return tuple(em_advance(ch, size) for ch in text[:-1])


def new_doc_id() -> str:
    """A fresh 32-character DocID (a UUID without dashes, as GB/T 33190 describes)."""
    return uuid.uuid4().hex


@dataclass(frozen=True)
class Color:
    """An RGB colour, 0-255 per channel (the default DeviceRGB colour space)."""

    r: int
    g: int
    b: int

    def __post_init__(self) -> None:
        for name in ("r", "g", "b"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 255:
                raise _bad(f"Color.{name} must be an integer in 0..255, got {value!r}")


BLACK: Final = Color(0, 0, 0)


@dataclass(frozen=True)
class Font:
    """A font resource: a family name and, for embedding, the font file's bytes.

    ``data`` is the font file; the writer embeds it as ``FontFile`` and accepts
    only TrueType/OpenType (not a ``.ttc`` collection). ``None`` means "not
    embedded": the reader returns that for fonts a package names without shipping;
    the writer refuses it, because a licence must look the same on every machine.
    """

    family: str
    data: bytes | None = field(default=None, repr=False)
    #: ``FontName``; defaults to ``family``
    font_name: str | None = None
    bold: bool = False
    italic: bool = False
    serif: bool = False
    fixed_width: bool = False

    def __post_init__(self) -> None:
        _text("Font.family", self.family, allow_empty=False, max_chars=256)
        if self.font_name is not None:
            _text("Font.font_name", self.font_name, allow_empty=False, max_chars=256)
        if self.data is not None and (not isinstance(self.data, bytes) or not self.data):
            raise _bad("Font.data must be non-empty bytes or None")

    @property
    def name(self) -> str:
        """The ``FontName`` attribute."""
        return self.font_name or self.family

    @property
    def file_extension(self) -> str:
        """``otf`` for CFF-flavoured OpenType, ``ttf`` otherwise."""
        return "otf" if self.data is not None and self.data[:4] == b"OTTO" else "ttf"


@dataclass(frozen=True)
class TextObject:
    """One run of text on one baseline.

    ``(x, y)`` is the start of the baseline in page millimetres; ``size`` is the
    em size in millimetres. ``delta_x`` holds the advance from each character to
    the next (``len(text) - 1`` values, millimetres) — pass the font's real
    advances where layout matters; when omitted the constructor fills in
    :func:`default_advances` (a full em for wide/CJK characters, half an em for
    the rest), so a built object always has explicit advances.
    """

    text: str
    x: float
    y: float
    font: Font
    size: float
    fill: Color = BLACK
    delta_x: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        _text("TextObject.text", self.text, allow_empty=False)
        _finite("TextObject.x", self.x)
        _finite("TextObject.y", self.y)
        _positive("TextObject.size", self.size)
        if not isinstance(self.font, Font):
            raise _bad("TextObject.font must be a Font")
        if not isinstance(self.fill, Color):
            raise _bad("TextObject.fill must be a Color")
        if self.delta_x is None:
            object.__setattr__(self, "delta_x", default_advances(self.text, self.size))
            return
        deltas = tuple(_finite("TextObject.delta_x", d) for d in self.delta_x)
        if len(deltas) != len(self.text) - 1:
            raise _bad(f"TextObject.delta_x needs {len(self.text) - 1} values, "
                       f"got {len(deltas)}")
        object.__setattr__(self, "delta_x", deltas)

    @property
    def advances(self) -> tuple[float, ...]:
        """``delta_x`` as filled in by the constructor (never ``None`` once built)."""
        assert self.delta_x is not None
        return self.delta_x

    @property
    def width(self) -> float:
        """Width of the run: the advances plus the last character's default advance."""
        return sum(self.advances) + em_advance(self.text[-1], self.size)


@dataclass(frozen=True)
class MoveTo:
    """Start a new subpath at (x, y)."""

    x: float
    y: float

    def __post_init__(self) -> None:
        _finite("MoveTo.x", self.x)
        _finite("MoveTo.y", self.y)


@dataclass(frozen=True)
class LineTo:
    """A straight line to (x, y)."""

    x: float
    y: float

    def __post_init__(self) -> None:
        _finite("LineTo.x", self.x)
        _finite("LineTo.y", self.y)


@dataclass(frozen=True)
class QuadTo:
    """A quadratic Bézier curve through control point (x1, y1) to (x, y)."""

    x1: float
    y1: float
    x: float
    y: float

    def __post_init__(self) -> None:
        for name in ("x1", "y1", "x", "y"):
            _finite(f"QuadTo.{name}", getattr(self, name))


@dataclass(frozen=True)
class CubicTo:
    """A cubic Bézier curve through (x1, y1) and (x2, y2) to (x, y)."""

    x1: float
    y1: float
    x2: float
    y2: float
    x: float
    y: float

    def __post_init__(self) -> None:
        for name in ("x1", "y1", "x2", "y2", "x", "y"):
            _finite(f"CubicTo.{name}", getattr(self, name))


@dataclass(frozen=True)
class ArcTo:
    """An elliptical arc to (x, y), with SVG/OFD ``A`` semantics.

    ``rotation`` is the ellipse's x-axis rotation in degrees; ``large_arc`` and
    ``sweep`` pick one of the four candidate arcs (sweep = clockwise on the page).
    """

    rx: float
    ry: float
    rotation: float
    large_arc: bool
    sweep: bool
    x: float
    y: float

    def __post_init__(self) -> None:
        _positive("ArcTo.rx", self.rx)
        _positive("ArcTo.ry", self.ry)
        for name in ("rotation", "x", "y"):
            _finite(f"ArcTo.{name}", getattr(self, name))
        if not isinstance(self.large_arc, bool) or not isinstance(self.sweep, bool):
            raise _bad("ArcTo.large_arc and ArcTo.sweep must be booleans")


@dataclass(frozen=True)
class ClosePath:
    """Close the current subpath."""


PathCommand: TypeAlias = MoveTo | LineTo | QuadTo | CubicTo | ArcTo | ClosePath
_COMMAND_TYPES: Final = frozenset({MoveTo, LineTo, QuadTo, CubicTo, ArcTo, ClosePath})


@dataclass(frozen=True)
class PathObject:
    """A vector path, stroked and/or filled.

    ``stroke`` / ``fill`` are the colours, ``None`` meaning "not stroked" / "not
    filled"; at least one must be set. ``line_width`` is in millimetres.
    """

    commands: tuple[PathCommand, ...]
    stroke: Color | None = BLACK
    fill: Color | None = None
    line_width: float = 0.353

    def __post_init__(self) -> None:
        commands = tuple(self.commands)
        if not commands:
            raise _bad("PathObject needs at least one command")
        if not isinstance(commands[0], MoveTo):
            raise _bad("PathObject must start with MoveTo")
        # fast path: a set of exact types (ornament paths hold thousands of commands);
        # only a subclass needs the isinstance test
        if not {type(command) for command in commands} <= _COMMAND_TYPES:
            for command in commands:
                if not isinstance(command, MoveTo | LineTo | QuadTo | CubicTo | ArcTo | ClosePath):
                    raise _bad(f"PathObject has an unknown command {command!r}")
        object.__setattr__(self, "commands", commands)
        if self.stroke is None and self.fill is None:
            raise _bad("PathObject must be stroked, filled or both")
        for name in ("stroke", "fill"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Color):
                raise _bad(f"PathObject.{name} must be a Color or None")
        _positive("PathObject.line_width", self.line_width)

    @classmethod
    def line(cls, x1: float, y1: float, x2: float, y2: float, *, stroke: Color = BLACK,
             line_width: float = 0.353) -> PathObject:
        """A straight line segment."""
        return cls((MoveTo(x1, y1), LineTo(x2, y2)), stroke=stroke, line_width=line_width)

    @classmethod
    def rect(cls, x: float, y: float, width: float, height: float, *,
             stroke: Color | None = BLACK, fill: Color | None = None,
             line_width: float = 0.353) -> PathObject:
        """An axis-aligned rectangle with its top-left corner at (x, y)."""
        _positive("rect width", width)
        _positive("rect height", height)
        return cls((MoveTo(x, y), LineTo(x + width, y), LineTo(x + width, y + height),
                    LineTo(x, y + height), ClosePath()),
                   stroke=stroke, fill=fill, line_width=line_width)

    @classmethod
    def circle(cls, cx: float, cy: float, r: float, *, stroke: Color | None = BLACK,
               fill: Color | None = None, line_width: float = 0.353) -> PathObject:
        """A circle drawn as two half arcs (one arc cannot start and end at one point)."""
        _positive("circle radius", r)
        return cls((MoveTo(cx + r, cy), ArcTo(r, r, 0.0, False, True, cx - r, cy),
                    ArcTo(r, r, 0.0, False, True, cx + r, cy), ClosePath()),
                   stroke=stroke, fill=fill, line_width=line_width)

    @classmethod
    def arc(cls, cx: float, cy: float, r: float, start_deg: float, end_deg: float, *,
            stroke: Color = BLACK, line_width: float = 0.353) -> PathObject:
        """An open circular arc, clockwise on the page from ``start_deg`` to ``end_deg``.

        Angles are measured from the +x axis, clockwise (y points down).
        """
        _positive("arc radius", r)
        sweep_deg = (_finite("end_deg", end_deg) - _finite("start_deg", start_deg)) % 360.0
        if sweep_deg == 0.0:
            raise _bad("an arc needs distinct start and end angles; use circle()")
        a0, a1 = math.radians(start_deg), math.radians(start_deg + sweep_deg)
        start = MoveTo(cx + r * math.cos(a0), cy + r * math.sin(a0))
        end = ArcTo(r, r, 0.0, sweep_deg > 180.0, True, cx + r * math.cos(a1),
                    cy + r * math.sin(a1))
        return cls((start, end), stroke=stroke, fill=None, line_width=line_width)


@dataclass(frozen=True)
class ImageObject:
    """A raster image placed in the rectangle (x, y, width, height), in millimetres.

    ``format`` is the OFD ``Format`` name. The writer accepts ``PNG`` and ``JPEG``
    and checks the bytes match; the reader may also return other formats a
    package carries (``BMP``, ``GIF``, ``TIFF``, ``JB2``...), undecoded.
    """

    data: bytes = field(repr=False)
    format: str
    x: float
    y: float
    width: float
    height: float

    def __post_init__(self) -> None:
        if not isinstance(self.data, bytes) or not self.data:
            raise _bad("ImageObject.data must be non-empty bytes")
        _text("ImageObject.format", self.format, allow_empty=False, max_chars=16)
        object.__setattr__(self, "format", self.format.upper())
        magic = _IMAGE_MAGIC.get(self.format)
        if magic is not None and not self.data.startswith(magic):
            raise _bad(f"ImageObject.data is not a {self.format} image")
        _finite("ImageObject.x", self.x)
        _finite("ImageObject.y", self.y)
        _positive("ImageObject.width", self.width)
        _positive("ImageObject.height", self.height)


PageObject: TypeAlias = TextObject | PathObject | ImageObject

#: A4 portrait in millimetres
A4: Final = (210.0, 297.0)


@dataclass(frozen=True)
class Page:
    """One page: its size in millimetres and its objects in painting order."""

    objects: tuple[PageObject, ...] = ()
    width: float = A4[0]
    height: float = A4[1]

    def __post_init__(self) -> None:
        objects = tuple(self.objects)
        for obj in objects:
            if not isinstance(obj, TextObject | PathObject | ImageObject):
                raise _bad(f"Page has an unknown object {type(obj).__name__}")
        object.__setattr__(self, "objects", objects)
        _positive("Page.width", self.width)
        _positive("Page.height", self.height)

    @property
    def texts(self) -> tuple[TextObject, ...]:
        """The page's text objects, in painting order."""
        return tuple(o for o in self.objects if isinstance(o, TextObject))

    @property
    def text(self) -> str:
        """All text on the page, one run per line, in painting order."""
        return "\n".join(t.text for t in self.texts)


@dataclass(frozen=True)
class Attachment:
    """A file carried inside the package (``Attachments.xml``).

    ``format`` is free text such as ``json`` or ``application/json``; ``name`` is
    the attachment's name as shown to a person, unique within the document.
    """

    name: str
    data: bytes = field(repr=False)
    format: str = ""
    creation_date: date | None = None

    def __post_init__(self) -> None:
        _text("Attachment.name", self.name, allow_empty=False, max_chars=256)
        _text("Attachment.format", self.format, max_chars=128)
        if not isinstance(self.data, bytes):
            raise _bad("Attachment.data must be bytes")
        if self.creation_date is not None and not isinstance(self.creation_date, date):
            raise _bad("Attachment.creation_date must be a date")


@dataclass(frozen=True)
class DocumentInfo:
    """``DocInfo`` metadata, including the ``CustomDatas`` name/value pairs.

    ``custom_data`` keeps insertion order (it is written in that order, so the
    bytes are stable); names must be unique and non-empty.
    """

    #: 32 letters/digits for documents we write (:func:`new_doc_id`); ``None`` if absent
    doc_id: str | None
    title: str | None = None
    author: str | None = None
    subject: str | None = None
    creation_date: date | None = None
    mod_date: date | None = None
    creator: str | None = "certledger"
    creator_version: str | None = None
    keywords: tuple[str, ...] = ()
    custom_data: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.doc_id is not None:
            _text("DocumentInfo.doc_id", self.doc_id, allow_empty=False, max_chars=128)
        for name in ("title", "author", "subject", "creator", "creator_version"):
            value = getattr(self, name)
            if value is not None:
                _text(f"DocumentInfo.{name}", value, max_chars=4096)
        for name in ("creation_date", "mod_date"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, date):
                raise _bad(f"DocumentInfo.{name} must be a date")
        keywords = tuple(self.keywords)
        for kw in keywords:
            _text("DocumentInfo.keywords", kw, allow_empty=False, max_chars=1024)
        object.__setattr__(self, "keywords", keywords)
        pairs = _pairs(self.custom_data)
        object.__setattr__(self, "custom_data", pairs)

    @property
    def custom(self) -> dict[str, str]:
        """``custom_data`` as a dict (names are unique)."""
        return dict(self.custom_data)


def _pairs(source: Iterable[tuple[str, str]] | Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    items = list(source.items()) if isinstance(source, Mapping) else list(source)
    seen: set[str] = set()
    out: list[tuple[str, str]] = []
    for item in items:
        if not isinstance(item, tuple) or len(item) != 2:
            raise _bad("DocumentInfo.custom_data holds (name, value) pairs")
        name, value = item
        _text("custom data name", name, allow_empty=False, max_chars=256)
        _text("custom data value", value, max_chars=64 * 1024)
        if name in seen:
            raise _bad(f"custom data name {name!r} appears twice")
        seen.add(name)
        out.append((name, value))
    return tuple(out)


@dataclass(frozen=True)
class OFDDocument:
    """A whole single-document OFD package: metadata, pages and attachments."""

    info: DocumentInfo
    pages: tuple[Page, ...]
    attachments: tuple[Attachment, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.info, DocumentInfo):
            raise _bad("OFDDocument.info must be a DocumentInfo")
        pages = tuple(self.pages)
        if not pages:
            raise _bad("OFDDocument needs at least one page")
        for page in pages:
            if not isinstance(page, Page):
                raise _bad("OFDDocument.pages holds Page objects")
        attachments = tuple(self.attachments)
        names: set[str] = set()
        for att in attachments:
            if not isinstance(att, Attachment):
                raise _bad("OFDDocument.attachments holds Attachment objects")
            if att.name in names:
                raise _bad(f"attachment name {att.name!r} appears twice")
            names.add(att.name)
        object.__setattr__(self, "pages", pages)
        object.__setattr__(self, "attachments", attachments)

    @property
    def text(self) -> str:
        """All text of all pages (pages separated by a form feed)."""
        return "\f".join(p.text for p in self.pages)

    def attachment(self, name: str) -> Attachment:
        """The attachment called ``name``; raises ``InvalidInputError`` if absent."""
        for att in self.attachments:
            if att.name == name:
                return att
        raise InvalidInputError(f"the document has no attachment {name!r}",
                                reason="ofd.missing_attachment")

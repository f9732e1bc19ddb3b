"""OFD -> PDF: each OFD page drawn with reportlab at its own size.

Steps (labelled again below):

1. read the OFD with :func:`cert_formats.ofd.read_ofd` (zip, XML and object
   limits, time budget); its ``ofd.*`` reasons become ``convert.*`` reasons;
2. fonts: each embedded OFD font is handed to reportlab as it is (reportlab
   subsets it into the PDF); a font reportlab cannot use (CFF outlines, a
   collection, broken or missing glyphs) is replaced by the system CJK font;
3. pages: text at its baseline origin, size and colour, each glyph advanced by
   the OFD ``DeltaX`` (one ``Tc`` when the advances differ from the font's by a
   constant, per-glyph ``TJ`` adjustments otherwise); bold fonts as fill+stroke
   (synthetic bold); paths (quadratic curves and arcs as cubic Béziers);
   images (PNG/JPEG as they are, other formats re-encoded as PNG);
4. metadata: Info + XMP, every ``CustomData`` as an Info key (see
   :mod:`.metadata`), the copy marks; the proof bundle as an embedded file.
"""

from __future__ import annotations

import io
import math
import struct
from collections.abc import Iterable
from typing import Any, Final

from pypdf import PdfReader, PdfWriter
from pypdf.generic import NameObject, TextStringObject
from reportlab.lib.utils import ImageReader
from reportlab.pdfbase.pdfdoc import XMP
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import FILL_NON_ZERO, Canvas

from cert_formats.ofd import (
    ArcTo,
    ClosePath,
    CubicTo,
    Font,
    ImageObject,
    LineTo,
    MoveTo,
    OFDDocument,
    Page,
    PathObject,
    QuadTo,
    TextObject,
    read_ofd,
)
from signing.errors import InvalidInputError
from signing.sm3 import sm3_hex

from .limits import (
    REASON_FONT,
    REASON_MALFORMED_OFD,
    REASON_TIMEOUT,
    REASON_TOO_LARGE,
    ConvertLimits,
    Deadline,
    too_large,
)
from .metadata import (
    META_LANGUAGE,
    PROOF_BUNDLE_NAME,
    Metadata,
    from_ofd,
    mark_copy,
    pdf_date,
    to_pdf_custom,
    xmp_packet,
)
from .pdfparse import quiet_library_logs
from .result import ConversionResult

PT_PER_MM: Final = 72.0 / 25.4
PRODUCER: Final = "certledger convert (ReportLab, pypdf)"
#: stroke width of synthetic bold, in ems (the licence face draws bold the same way)
SYNTHETIC_BOLD_EM: Final = 0.035
#: advances that differ from the font's by the same amount (within this, points) use one Tc
_UNIFORM_EPS_PT: Final = 0.002
_LIMIT_REASONS: Final = frozenset(
    {
        "ofd.too_large",
        "ofd.too_many_entries",
        "ofd.zip_bomb",
        "ofd.xml_too_large",
        "ofd.xml_too_deep",
        "ofd.xml_too_many_elements",
        "ofd.xml_attribute_too_large",
        "ofd.too_many_pages",
        "ofd.too_many_objects",
        "ofd.text_too_long",
        "ofd.path_too_complex",
        "ofd.too_many_attachments",
    }
)


def _num(value: float) -> str:
    text = f"{value:.4f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _read(data: bytes, limits: ConvertLimits) -> tuple[OFDDocument, bool]:
    try:
        result = read_ofd(data, limits=limits.ofd)
    except InvalidInputError as exc:
        cause = exc.reason
        if cause == "ofd.timeout":
            reason = REASON_TIMEOUT
        elif cause in _LIMIT_REASONS:
            reason = REASON_TOO_LARGE
        else:
            reason = REASON_MALFORMED_OFD
        raise InvalidInputError(
            f"the OFD cannot be converted: {exc.message} [{cause}]",
            reason=reason,
            details={**exc.details, "cause": cause},
        ) from None
    return result.document, result.signatures_loc is not None


class _Fonts:
    """reportlab fonts for OFD fonts; the system CJK font where one is unusable."""

    def __init__(self, document: OFDDocument) -> None:
        self._faces: dict[Font, Any] = {}
        self._fallback: Any = None
        self._fallback_error: InvalidInputError | None = None
        self.embedded: set[Font] = set()
        self.replaced: set[Font] = set()
        fonts: dict[Font, None] = {}  # in order of first use, so output bytes are stable
        for page in document.pages:
            for obj in page.objects:
                if isinstance(obj, TextObject):
                    fonts.setdefault(obj.font)
        names: set[bytes] = set()
        for index, font in enumerate(fonts):
            face = self._load(font, index)
            if face is not None:
                # two subsets of one family share a PostScript name, which reportlab uses
                # for its PDF object names: number the later ones
                name = face.face.name
                suffix = 1
                while face.face.name in names:
                    suffix += 1
                    face.face.name = name + b"_%d" % suffix
                names.add(face.face.name)
            self._faces[font] = face

    @staticmethod
    def _load(font: Font, index: int) -> Any:
        if font.data is None or font.data[:4] not in (b"\x00\x01\x00\x00", b"true"):
            return None
        if not _bounded_cmap(font.data):
            return None  # drawn with the fallback font instead (the text stays)
        try:
            # not registered with pdfmetrics: the face lives as long as this conversion
            return TTFont(f"CLOFD{index}", io.BytesIO(font.data))
        except Exception:  # CFF outlines, broken tables, no embedding permission
            return None

    def fallback(self) -> Any:
        if self._fallback is None and self._fallback_error is None:
            from reportlab.pdfbase import pdfmetrics

            from cert_formats.fonts import find_cjk_font

            try:
                self._fallback = pdfmetrics.getFont(find_cjk_font().name)
            except InvalidInputError as exc:
                self._fallback_error = InvalidInputError(f"no font to draw the text with: {exc}", reason=REASON_FONT)
        if self._fallback_error is not None:
            raise self._fallback_error
        return self._fallback

    def face_for(self, obj: TextObject) -> Any:
        face = self._faces.get(obj.font)
        if face is not None and all(ord(ch) in face.face.charToGlyph for ch in obj.text):
            self.embedded.add(obj.font)
            return face
        self.replaced.add(obj.font)
        if face is not None:
            try:
                return self.fallback()
            except InvalidInputError:
                return face  # some glyphs missing beats no text at all
        return self.fallback()


def _initial_font_name() -> str | None:
    """A registered font for reportlab's page preamble (else it names Helvetica, unembedded)."""
    from cert_formats.fonts import find_cjk_font

    try:
        return find_cjk_font().name
    except InvalidInputError:
        return None


class _PagePainter:
    def __init__(self, canvas: Canvas, page: Page, fonts: _Fonts, limits: ConvertLimits, deadline: Deadline) -> None:
        self.c = canvas
        self.page = page
        self.fonts = fonts
        self.limits = limits
        self.deadline = deadline
        self.notes: list[str] = []

    def x(self, x_mm: float) -> float:
        return x_mm * PT_PER_MM

    def y(self, y_mm: float) -> float:
        return (self.page.height - y_mm) * PT_PER_MM

    def paint(self) -> None:
        for index, obj in enumerate(self.page.objects):
            if index % 64 == 0:
                self.deadline.check()
            if isinstance(obj, TextObject):
                self.text(obj)
            elif isinstance(obj, PathObject):
                self.path(obj)
            else:
                self.image(obj)

    # text ---------------------------------------------------------------------------

    def text(self, obj: TextObject) -> None:
        c = self.c
        face = self.fonts.face_for(obj)
        size = obj.size * PT_PER_MM
        text = obj.text
        natural = [face.stringWidth(ch, size) for ch in text[:-1]]
        extras = [d * PT_PER_MM - n for d, n in zip(obj.advances, natural, strict=True)]
        uniform = not extras or max(extras) - min(extras) <= _UNIFORM_EPS_PT
        r, g, b = (v / 255 for v in (obj.fill.r, obj.fill.g, obj.fill.b))
        colour = f"{_num(r)} {_num(g)} {_num(b)}"
        ops = ["q", "BT", f"{colour} rg"]
        if obj.font.bold:
            ops += [f"{colour} RG", f"{_num(size * SYNTHETIC_BOLD_EM)} w", "2 Tr"]
        ops.append(f"1 0 0 1 {_num(self.x(obj.x))} {_num(self.y(obj.y))} Tm")
        if uniform and extras:
            ops.append(f"{_num(extras[0])} Tc")
        pos = 0
        for subset, raw in face.splitString(text, c._doc):
            ops.append(f"{face.getSubsetInternalName(subset, c._doc)} {_num(size)} Tf")
            if uniform:
                ops.append(f"({c._escape(raw)}) Tj")
            else:
                parts: list[str] = []
                for k in range(len(raw)):
                    parts.append(f"({c._escape(raw[k : k + 1])})")
                    i = pos + k
                    if i < len(extras) and abs(extras[i]) > 1e-6:
                        parts.append(_num(-extras[i] * 1000.0 / size))
                ops.append(f"[{' '.join(parts)}] TJ")
            pos += len(raw)
        ops += ["ET", "Q"]
        c.addLiteral("\n".join(ops))

    # paths --------------------------------------------------------------------------

    def path(self, obj: PathObject) -> None:
        c = self.c
        p = c.beginPath()
        cur = (0.0, 0.0)
        start = cur
        for cmd in obj.commands:
            if isinstance(cmd, MoveTo):
                cur = start = (cmd.x, cmd.y)
                p.moveTo(self.x(cmd.x), self.y(cmd.y))
            elif isinstance(cmd, LineTo):
                cur = (cmd.x, cmd.y)
                p.lineTo(self.x(cmd.x), self.y(cmd.y))
            elif isinstance(cmd, CubicTo):
                p.curveTo(self.x(cmd.x1), self.y(cmd.y1), self.x(cmd.x2), self.y(cmd.y2), self.x(cmd.x), self.y(cmd.y))
                cur = (cmd.x, cmd.y)
            elif isinstance(cmd, QuadTo):
                # degree elevation: the cubic through 2/3 of the way to the control point
                c1 = (cur[0] + 2 / 3 * (cmd.x1 - cur[0]), cur[1] + 2 / 3 * (cmd.y1 - cur[1]))
                c2 = (cmd.x + 2 / 3 * (cmd.x1 - cmd.x), cmd.y + 2 / 3 * (cmd.y1 - cmd.y))
                p.curveTo(self.x(c1[0]), self.y(c1[1]), self.x(c2[0]), self.y(c2[1]), self.x(cmd.x), self.y(cmd.y))
                cur = (cmd.x, cmd.y)
            elif isinstance(cmd, ArcTo):
                for x1, y1, x2, y2, x3, y3 in arc_to_cubics(cur[0], cur[1], cmd):
                    p.curveTo(self.x(x1), self.y(y1), self.x(x2), self.y(y2), self.x(x3), self.y(y3))
                cur = (cmd.x, cmd.y)
            elif isinstance(cmd, ClosePath):
                p.close()
                cur = start
        c.saveState()
        if obj.stroke is not None:
            c.setStrokeColorRGB(obj.stroke.r / 255, obj.stroke.g / 255, obj.stroke.b / 255)
            c.setLineWidth(obj.line_width * PT_PER_MM)
        if obj.fill is not None:
            c.setFillColorRGB(obj.fill.r / 255, obj.fill.g / 255, obj.fill.b / 255)
        c.drawPath(
            p, stroke=1 if obj.stroke is not None else 0, fill=1 if obj.fill is not None else 0, fillMode=FILL_NON_ZERO
        )
        c.restoreState()

    # images -------------------------------------------------------------------------

    def image(self, obj: ImageObject) -> None:
        from PIL import Image

        try:
            with Image.open(io.BytesIO(obj.data)) as probe:
                width, height = probe.size
                if width * height > self.limits.max_image_pixels:
                    raise too_large(f"an OFD image of {width} x {height} pixels is over the limit")
                if obj.format in ("PNG", "JPEG") and probe.format == obj.format:
                    data = obj.data
                else:
                    probe.load()
                    converted = probe.convert("RGBA" if "A" in probe.getbands() or probe.mode == "P" else "RGB")
                    buf = io.BytesIO()
                    converted.save(buf, format="PNG")
                    data = buf.getvalue()
        except InvalidInputError:
            raise
        except Exception:  # an image nobody can decode paints nothing; say so
            self.notes.append("an OFD image that could not be decoded was skipped")
            return
        self.c.drawImage(
            ImageReader(io.BytesIO(data)),
            self.x(obj.x),
            self.y(obj.y + obj.height),
            obj.width * PT_PER_MM,
            obj.height * PT_PER_MM,
            mask="auto",
        )


def arc_to_cubics(x0: float, y0: float, arc: ArcTo) -> list[tuple[float, float, float, float, float, float]]:
    """An SVG/OFD elliptical arc from (x0, y0) as cubic Béziers (at most 90° each).

    The endpoint-to-centre conversion of SVG 1.1 F.6.5 with the radius correction
    of F.6.6; a zero-length arc gives nothing.
    """
    if x0 == arc.x and y0 == arc.y:
        return []
    phi = math.radians(arc.rotation)
    cos_p, sin_p = math.cos(phi), math.sin(phi)
    dx, dy = (x0 - arc.x) / 2, (y0 - arc.y) / 2
    x1p, y1p = cos_p * dx + sin_p * dy, -sin_p * dx + cos_p * dy
    rx, ry = abs(arc.rx), abs(arc.ry)
    lam = (x1p / rx) ** 2 + (y1p / ry) ** 2
    if lam > 1:
        rx, ry = rx * math.sqrt(lam), ry * math.sqrt(lam)
    num = (rx * ry) ** 2 - (rx * y1p) ** 2 - (ry * x1p) ** 2
    den = (rx * y1p) ** 2 + (ry * x1p) ** 2
    coef = math.sqrt(max(0.0, num / den)) if den else 0.0
    if arc.large_arc == arc.sweep:
        coef = -coef
    cxp, cyp = coef * rx * y1p / ry, -coef * ry * x1p / rx
    cx = cos_p * cxp - sin_p * cyp + (x0 + arc.x) / 2
    cy = sin_p * cxp + cos_p * cyp + (y0 + arc.y) / 2
    ux, uy = (x1p - cxp) / rx, (y1p - cyp) / ry
    vx, vy = (-x1p - cxp) / rx, (-y1p - cyp) / ry
    theta1 = math.atan2(uy, ux)
    dtheta = math.atan2(ux * vy - uy * vx, ux * vx + uy * vy)
    if arc.sweep and dtheta < 0:
        dtheta += 2 * math.pi
    elif not arc.sweep and dtheta > 0:
        dtheta -= 2 * math.pi
    segments = max(1, math.ceil(abs(dtheta) / (math.pi / 2) - 1e-9))
    step = dtheta / segments
    k = 4 / 3 * math.tan(step / 4)

    def point(t: float) -> tuple[float, float]:
        return (
            cx + rx * math.cos(t) * cos_p - ry * math.sin(t) * sin_p,
            cy + rx * math.cos(t) * sin_p + ry * math.sin(t) * cos_p,
        )

    def tangent(t: float) -> tuple[float, float]:
        return (
            -rx * math.sin(t) * cos_p - ry * math.cos(t) * sin_p,
            -rx * math.sin(t) * sin_p + ry * math.cos(t) * cos_p,
        )

    out: list[tuple[float, float, float, float, float, float]] = []
    t = theta1
    for _ in range(segments):
        t2 = t + step
        p1, d1 = point(t), tangent(t)
        p2, d2 = point(t2), tangent(t2)
        out.append((p1[0] + k * d1[0], p1[1] + k * d1[1], p2[0] - k * d2[0], p2[1] - k * d2[1], p2[0], p2[1]))
        t = t2
    # land exactly on the endpoint the file names, whatever the rounding
    last = out[-1]
    out[-1] = (last[0], last[1], last[2], last[3], arc.x, arc.y)
    return out


def _metadata_pairs(meta: Metadata) -> dict[str, str]:
    info: dict[str, str] = {"Producer": PRODUCER, "Creator": meta.creator or "certledger"}
    for key, value in (("Title", meta.title), ("Author", meta.author), ("Subject", meta.subject)):
        if value is not None:
            info[key] = value
    if meta.keywords:
        info["Keywords"] = ", ".join(meta.keywords)
    if meta.creation_date is not None:
        info["CreationDate"] = pdf_date(meta.creation_date)
    if meta.mod_date is not None:
        info["ModDate"] = pdf_date(meta.mod_date)
    for key, value in to_pdf_custom(meta).items():
        info.setdefault(key, value)
    return info


def _finish(pdf: bytes, meta: Metadata, bundle: bytes | None) -> bytes:
    """Set the Info dictionary exactly and embed the proof bundle (pypdf)."""
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf)))
    info = _metadata_pairs(meta)
    # replace reportlab's Info wholesale: it always writes dates, even unknown ones
    writer.metadata = {NameObject("/" + key): TextStringObject(value) for key, value in info.items()}
    if bundle is not None:
        writer.add_attachment(PROOF_BUNDLE_NAME, bundle)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def ofd_to_pdf(data: bytes, *, limits: ConvertLimits | None = None) -> ConversionResult:
    """Convert an untrusted OFD file into a PDF: an unsealed copy (see the module docstring).

    Raises ``InvalidInputError`` with ``convert.malformed_ofd`` (``details["cause"]``
    holds the reader's ``ofd.*`` reason), ``convert.too_large``, ``convert.timeout``
    or ``convert.font_unavailable``.
    """
    limits = limits or ConvertLimits()
    deadline = Deadline(limits.max_seconds)
    if not isinstance(data, bytes | bytearray | memoryview):
        raise InvalidInputError("ofd_to_pdf needs the file's bytes", reason=REASON_MALFORMED_OFD)
    data = bytes(data)
    source_sm3 = sm3_hex(data)
    # 1. read
    document, sealed = _read(data, limits)
    deadline.check()
    meta = mark_copy(from_ofd(document.info), source_sm3, "ofd")
    with quiet_library_logs():
        # 2. fonts
        fonts = _Fonts(document)
        # 3. pages
        buf = io.BytesIO()
        first = document.pages[0]
        canvas_args: dict[str, Any] = {
            "pagesize": (first.width * PT_PER_MM, first.height * PT_PER_MM),
            "invariant": 1,
            "pageCompression": 1,
        }
        language = meta.get(META_LANGUAGE)
        if language:
            canvas_args["lang"] = language
        if any(isinstance(o, TextObject) for p in document.pages for o in p.objects):
            initial = _initial_font_name()
            if initial is not None:
                canvas_args["initialFontName"] = initial
        c = Canvas(buf, **canvas_args)
        c.setCatalogEntry("Metadata", XMP(creator=lambda _doc: xmp_packet(meta, PRODUCER).encode("utf-8")))
        notes: list[str] = []
        counts = {"texts": 0, "paths": 0, "images": 0}
        for page in document.pages:
            c.setPageSize((page.width * PT_PER_MM, page.height * PT_PER_MM))
            painter = _PagePainter(c, page, fonts, limits, deadline)
            painter.paint()
            notes += painter.notes
            _count(page.objects, counts)
            c.showPage()
        try:
            c.save()
        except (IndexError, KeyError, ValueError, struct.error) as exc:
            # reportlab subsets the embedded fonts here: a font whose tables lie (glyph IDs past
            # its glyph count) fails only now
            raise InvalidInputError(
                f"an embedded font of the OFD is broken: {type(exc).__name__}", reason=REASON_FONT
            ) from None
        deadline.check()
        # 4. metadata and the proof bundle
        bundle = next((a.data for a in document.attachments if a.name == PROOF_BUNDLE_NAME), None)
        out = _finish(buf.getvalue(), meta, bundle)
    if deadline.remaining <= 0:
        raise InvalidInputError("conversion exceeded its time budget", reason=REASON_TIMEOUT)
    if fonts.replaced:
        notes.append("fonts the PDF could not embed were replaced by the system CJK font")
    return ConversionResult(
        data=out,
        source_format="ofd",
        target_format="pdf",
        source_sm3=source_sm3,
        pages=len(document.pages),
        texts=counts["texts"],
        paths=counts["paths"],
        images=counts["images"],
        embedded_fonts=len(fonts.embedded),
        fallback_fonts=len(fonts.replaced),
        proof_bundle=bundle is not None,
        source_sealed=sealed,
        active_content_dropped=False,
        notes=tuple(dict.fromkeys(notes)),
    )


def _count(objects: Iterable[object], counts: dict[str, int]) -> None:
    for obj in objects:
        key = "texts" if isinstance(obj, TextObject) else "paths" if isinstance(obj, PathObject) else "images"
        counts[key] += 1


__all__ = ["PRODUCER", "SYNTHETIC_BOLD_EM", "arc_to_cubics", "ofd_to_pdf"]


#: code points a font's cmap may map in all (Unicode has 0x110000; CJK fonts map tens of
#: thousands): reportlab expands every range into a dict, so one group 0..2^32-1 is gigabytes
_MAX_MAPPED_CODES: Final = 200_000
_MAX_TABLES: Final = 64


def _bounded_cmap(data: bytes) -> bool:
    """The TrueType font's cmap maps at most :data:`_MAX_MAPPED_CODES` code points to real glyphs.

    Read with ``struct`` before reportlab sees the font: segmented coverage (formats 12 and
    13) holds 32-bit ranges, and reportlab expands each into a dict entry per code point
    without a bound. A range past U+10FFFF, or onto glyph IDs the font does not have, is a
    lie too (reportlab fails on it only when it subsets the font).
    """
    try:
        (num_tables,) = struct.unpack_from(">H", data, 4)
        if num_tables > _MAX_TABLES:
            return False
        tables = {}
        for i in range(num_tables):
            tag, _checksum, offset, _length = struct.unpack_from(">4sIII", data, 12 + 16 * i)
            tables[tag] = offset
        if b"cmap" not in tables or b"maxp" not in tables:
            return False
        (num_glyphs,) = struct.unpack_from(">H", data, tables[b"maxp"] + 4)
        base = tables[b"cmap"]
        (subtables,) = struct.unpack_from(">H", data, base + 2)
        if subtables > _MAX_TABLES:
            return False
        mapped = 0
        for j in range(subtables):
            (sub_offset,) = struct.unpack_from(">I", data, base + 4 + 8 * j + 4)
            at = base + sub_offset
            (fmt,) = struct.unpack_from(">H", data, at)
            if fmt not in (12, 13):
                continue  # the others are 16-bit: bounded by design
            (groups,) = struct.unpack_from(">I", data, at + 12)
            if groups > _MAX_MAPPED_CODES:
                return False
            for g in range(groups):
                start, end, glyph = struct.unpack_from(">III", data, at + 16 + 12 * g)
                if start > end or end > 0x10FFFF:
                    return False
                last_glyph = glyph + (end - start) if fmt == 12 else glyph
                if last_glyph >= num_glyphs:
                    return False
                mapped += end - start + 1
                if mapped > _MAX_MAPPED_CODES:
                    return False
    except struct.error:
        return False
    return True

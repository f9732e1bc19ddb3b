"""The licence face: laid out once, drawn as PDF with reportlab.

Two steps, so that the OFD writer draws exactly the same face:

1. :func:`build_face` turns a licence and its template into a :class:`FaceLayout`:
   a page size and a list of drawing operations (text runs, polylines, circles,
   rectangles, a QR matrix) in millimetres from the top-left corner, y down —
   the coordinate system of OFD (GB/T 33190). Text is measured and wrapped here,
   with the metrics of the embedded font.
2. :func:`render_pdf` draws a layout with reportlab: Chinese text in an embedded
   *subset* TrueType font, document info and XMP metadata, invariant mode so the
   same layout always gives the same bytes (no clock, no random document ID).

:func:`render_licence_pdf` does both. The seal drawn here is the *picture* of the
agency's seal; the cryptographic seal (PAdES / GB/T 38540) is applied later to
these bytes and is not this module's business.
"""

from __future__ import annotations

import datetime as _dt
import functools
import io
import math
import re
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final
from xml.sax.saxutils import escape as _xml_escape

import qrcode
import qrcode.constants
from reportlab.lib.colors import HexColor
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfdoc, pdfmetrics
from reportlab.pdfbase.pdfdoc import XMP
from reportlab.pdfgen.canvas import Canvas
from reportlab.pdfgen.pathobject import PDFPathObject

from cert_formats.fonts import CjkFont, find_cjk_font
from cert_formats.licence import Licence, format_date_cn
from cert_formats.template import Column, FieldRow, LicenceTemplate, template_for_type
from signing.errors import InvalidInputError

REASON_FIELD_OVERFLOW: Final = "pdf.field_overflow"
REASON_BAD_HOST: Final = "pdf.bad_verify_host"

PRODUCER: Final = "certledger cert_formats (ReportLab)"
_PT_PER_MM: Final = 72.0 / 25.4
_LABEL_GAP_MM: Final = 4.0
_HOST_RE: Final = re.compile(
    r"^(?=.{1,253}(?::\d{1,5})?$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*(?::\d{1,5})?$"
)
#: characters that must not start a line (simple 禁则 / kinsoku rule)
_NO_LINE_START: Final = frozenset("，。、；：？！）》」』】,.;:?!)%")
#: a Latin word / number (kept whole when it fits) or any single other character
_TOKEN_RE: Final = re.compile(r"[A-Za-z0-9@._%+-]+|.", re.DOTALL)


# -- the layout: what to draw ------------------------------------------------------


@dataclass(frozen=True)
class TextOp:
    """A run of text. (x_mm, y_mm) is the start of its baseline."""

    x_mm: float
    y_mm: float
    text: str
    size_pt: float
    colour: str
    bold: bool = False
    char_space_pt: float = 0.0
    #: visual clockwise rotation about the baseline start, in degrees
    rotation_deg: float = 0.0
    opacity: float = 1.0


@dataclass(frozen=True)
class PathOp:
    """A polyline or polygon through ``points`` (mm)."""

    points: tuple[tuple[float, float], ...]
    stroke: str | None
    width_mm: float = 0.2
    fill: str | None = None
    closed: bool = False
    opacity: float = 1.0


@dataclass(frozen=True)
class CircleOp:
    cx_mm: float
    cy_mm: float
    r_mm: float
    stroke: str | None
    width_mm: float = 0.2
    fill: str | None = None
    opacity: float = 1.0


@dataclass(frozen=True)
class RectOp:
    x_mm: float
    y_mm: float
    w_mm: float
    h_mm: float
    stroke: str | None
    width_mm: float = 0.2
    fill: str | None = None


@dataclass(frozen=True)
class QrOp:
    """A QR symbol: ``rows`` of '1' (dark) / '0' modules, top row first."""

    x_mm: float
    y_mm: float
    module_mm: float
    rows: tuple[str, ...]
    colour: str
    payload: str


DrawOp = TextOp | PathOp | CircleOp | RectOp | QrOp


@dataclass(frozen=True)
class FaceInfo:
    """Document metadata carried into PDF info / XMP (and the OFD DocInfo)."""

    title: str
    author: str
    subject: str
    keywords: tuple[str, ...]
    created: _dt.date
    identifier: str
    type_code: str
    verify_url: str
    language: str = "zh-CN"


@dataclass(frozen=True)
class FaceLayout:
    width_mm: float
    height_mm: float
    ops: tuple[DrawOp, ...]
    info: FaceInfo
    font: CjkFont


# -- public API ------------------------------------------------------------------------


def verification_url(verify_host: str, identifier: str) -> str:
    """``https://<verify host>/v/<identifier>``, the address the QR code carries."""
    if not isinstance(verify_host, str) or not _HOST_RE.match(verify_host):
        raise InvalidInputError(
            f"verify host must be a bare host name[:port], got {verify_host!r:.60}",
            reason=REASON_BAD_HOST,
        )
    return f"https://{verify_host}/v/{identifier}"


def build_face(
    licence: Licence,
    template: LicenceTemplate | None = None,
    *,
    verify_host: str,
    font: CjkFont | None = None,
) -> FaceLayout:
    """Lay out the face of ``licence``; raises if the licence does not fit its template.

    ``template`` defaults to the built-in one for the licence's type code; ``font``
    to :func:`cert_formats.fonts.find_cjk_font`.
    """
    template = template or template_for_type(licence.type_code)
    template.validate(licence)
    font = font or find_cjk_font()
    url = verification_url(verify_host, licence.identifier)
    return _FaceBuilder(licence, template, font, url).build()


#: DEFLATE level of every reportlab stream. A licence page is ~400 KB of content (the
#: guilloche ornaments); at zlib's default level 6 compressing it took ~17 ms, a fifth of
#: issuing a licence. Level 4: about a third of the time for ~8 % more bytes (measured).
FLATE_LEVEL: Final = 4


class _Flate(pdfdoc.PDFStreamFilterZCompress):  # type: ignore[misc]
    """reportlab's FlateDecode filter at :data:`FLATE_LEVEL` (decoding is unchanged)."""

    def encode(self, text: str | bytes) -> bytes:
        data = text.encode("utf8") if isinstance(text, str) else text
        return zlib.compress(data, FLATE_LEVEL)


# reportlab looks the filter up as a module global when it builds each stream
pdfdoc.PDFZCompress = _Flate()


def render_pdf(layout: FaceLayout) -> bytes:
    """Draw a layout as a one-page PDF; the same layout always gives the same bytes."""
    buf = io.BytesIO()
    page = (layout.width_mm * mm, layout.height_mm * mm)
    # invariant: fixed document ID seed and no wall-clock time in the file
    c = Canvas(
        buf,
        pagesize=page,
        invariant=1,
        pageCompression=1,
        lang=layout.info.language,
        # else reportlab opens every page with Helvetica, a font nothing embeds
        initialFontName=layout.font.name,
    )
    info = layout.info
    c.setTitle(info.title)
    c.setAuthor(info.author)
    c.setSubject(info.subject)
    c.setKeywords(", ".join(info.keywords))
    c.setCreator("certledger")
    c.setProducer(PRODUCER)
    stamp = _pdf_date(info.created)
    c.setDateFormatter(lambda *_: stamp)
    # UTF-8 bytes, unfiltered: XMP readers scan for the packet without decompressing
    c.setCatalogEntry("Metadata", XMP(creator=lambda _doc: _xmp_packet(info).encode("utf-8")))
    _PdfPainter(c, layout).paint()
    c.showPage()
    c.save()
    return buf.getvalue()


def render_licence_pdf(
    licence: Licence,
    template: LicenceTemplate | None = None,
    *,
    verify_host: str,
    font: CjkFont | None = None,
) -> bytes:
    """:func:`build_face` then :func:`render_pdf`: the unsigned licence PDF."""
    return render_pdf(build_face(licence, template, verify_host=verify_host, font=font))


# -- layout ----------------------------------------------------------------------------


@functools.lru_cache(maxsize=16)
def _ornaments(template: LicenceTemplate) -> tuple[DrawOp, ...]:
    """The background, border and title rosette: the same for every licence of a
    template, ~19,000 points of trigonometry, so computed once per template.
    The ops are frozen, so every layout may share them."""
    drawer = _OrnamentDrawer(template)
    drawer.draw()
    return tuple(drawer.ops)


class _OrnamentDrawer:
    """The parts of the face that depend on the template only."""

    def __init__(self, template: LicenceTemplate) -> None:
        self.t = template
        self.ops: list[DrawOp] = []
        self.c = template.colours

    def draw(self) -> None:
        t = self.t
        self.ops.append(RectOp(0, 0, t.page.width_mm, t.page.height_mm, None, fill=self.c.background))
        if t.border.background_pattern:
            self._background_pattern()
        self._border()
        if t.title.rosette:
            self._rosette()

    # decorations ------------------------------------------------------------------

    def _frame(self) -> tuple[float, float, float, float]:
        """Outer frame rectangle (x0, y0, x1, y1)."""
        m = self.t.border.margin_mm
        return m, m, self.t.page.width_mm - m, self.t.page.height_mm - m

    def _inner(self) -> tuple[float, float, float, float]:
        x0, y0, x1, y1 = self._frame()
        b = self.t.border.band_mm
        return x0 + b, y0 + b, x1 - b, y1 - b

    def _border(self) -> None:
        b = self.t.border
        x0, y0, x1, y1 = self._frame()
        i0, j0, i1, j1 = self._inner()
        # heavy outer rule with a hairline just inside it: the classic certificate frame
        self.ops.append(RectOp(x0, y0, x1 - x0, y1 - y0, self.c.border_outer, width_mm=0.9))
        self.ops.append(RectOp(x0 + 1.2, y0 + 1.2, x1 - x0 - 2.4, y1 - y0 - 2.4, self.c.border_outer, width_mm=0.25))
        self.ops.append(RectOp(i0, j0, i1 - i0, j1 - j0, self.c.border_inner, width_mm=0.45))
        self.ops.append(RectOp(i0 + 1.0, j0 + 1.0, i1 - i0 - 2.0, j1 - j0 - 2.0, self.c.border_inner, width_mm=0.15))
        if b.style == "ornate":
            mid = b.band_mm / 2 + 0.6  # centre of the band between the two outer rules
            amp = max(b.band_mm / 2 - 1.4, 0.6)
            for phase in (0.0, 2 * math.pi / 3, 4 * math.pi / 3):
                # one braid strand per side; the corner blocks hide the joins
                self._wave((x0 + b.band_mm, y0 + mid), (x1 - b.band_mm, y0 + mid), amp, phase)
                self._wave((x0 + b.band_mm, y1 - mid), (x1 - b.band_mm, y1 - mid), amp, phase)
                self._wave((x0 + mid, y0 + b.band_mm), (x0 + mid, y1 - b.band_mm), amp, phase)
                self._wave((x1 - mid, y0 + b.band_mm), (x1 - mid, y1 - b.band_mm), amp, phase)
        if b.corner_ornaments:
            s = b.band_mm
            for cx, cy in ((x0, y0), (x1 - s, y0), (x0, y1 - s), (x1 - s, y1 - s)):
                self._corner(cx, cy, s)

    def _wave(self, a: tuple[float, float], z: tuple[float, float], amp: float, phase: float) -> None:
        (ax, ay), (zx, zy) = a, z
        length = math.hypot(zx - ax, zy - ay)
        wavelength = 4.5
        steps = max(int(length / wavelength * 12), 2)
        ux, uy = (zx - ax) / length, (zy - ay) / length
        nx, ny = -uy, ux
        pts = []
        for k in range(steps + 1):
            s = length * k / steps
            off = amp * math.sin(2 * math.pi * s / wavelength + phase)
            pts.append((_r(ax + ux * s + nx * off), _r(ay + uy * s + ny * off)))
        self.ops.append(PathOp(tuple(pts), self.c.ornament, width_mm=0.2))

    def _corner(self, x: float, y: float, s: float) -> None:
        self.ops.append(RectOp(x, y, s, s, self.c.border_outer, width_mm=0.3, fill=self.c.background))
        cx, cy, r = x + s / 2, y + s / 2, s * 0.36
        diamond = ((cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy))
        points = tuple((_r(px), _r(py)) for px, py in diamond)
        self.ops.append(PathOp(points, self.c.border_inner, 0.25, self.c.ornament, closed=True))
        self.ops.append(CircleOp(cx, cy, s * 0.09, None, fill=self.c.border_inner))

    def _background_pattern(self) -> None:
        i0, j0, i1, j1 = self._inner()
        pad = 2.0
        x0, x1 = i0 + pad, i1 - pad
        wavelength, amp, spacing = 14.0, 1.1, 3.6
        steps = max(int((x1 - x0) / wavelength * 10), 2)
        y = j0 + pad + amp
        row = 0
        while y < j1 - pad - amp:
            phase = (row % 2) * math.pi
            pts = tuple(
                (_r(x0 + (x1 - x0) * k / steps),
                 _r(y + amp * math.sin(2 * math.pi * (x1 - x0) * k / steps / wavelength + phase)))
                for k in range(steps + 1)
            )  # fmt: skip
            self.ops.append(PathOp(pts, self.c.pattern, width_mm=0.15))
            y += spacing
            row += 1
        # a large, faint rosette in the middle, like the guilloche of security paper
        cx, cy = (i0 + i1) / 2, (j0 + j1) / 2 + 6
        radius = min(i1 - i0, j1 - j0) * 0.30
        self._spirograph(cx, cy, radius, self.c.pattern, 0.2, lobes=24)

    def _rosette(self) -> None:
        cx = self.t.page.width_mm / 2
        cy = self.t.title.y_mm - self.t.title.size_pt / _PT_PER_MM - 10.0
        self._spirograph(cx, cy, 9.0, self.c.ornament, 0.22, lobes=18)
        self._spirograph(cx, cy, 6.0, self.c.title, 0.18, lobes=12)
        self.ops.append(CircleOp(cx, cy, 9.6, self.c.title, width_mm=0.35))
        self._star(cx, cy, 2.4, self.c.title)

    def _spirograph(self, cx: float, cy: float, radius: float, colour: str, width: float, *, lobes: int) -> None:
        # epitrochoid-like rose: r(t) = R * (0.78 + 0.22 cos(lobes t)), twice, phase-shifted
        for phase in (0.0, math.pi / lobes):
            n = lobes * 24
            pts = tuple(
                (_r(cx + radius * (0.78 + 0.22 * math.cos(lobes * a + phase)) * math.cos(a)),
                 _r(cy + radius * (0.78 + 0.22 * math.cos(lobes * a + phase)) * math.sin(a)))
                for a in (2 * math.pi * k / n for k in range(n))
            )  # fmt: skip
            self.ops.append(PathOp(pts, colour, width_mm=width, closed=True))

    def _star(self, cx: float, cy: float, r_outer: float, colour: str, opacity: float = 1.0) -> None:
        r_inner = r_outer * 0.382
        pts = []
        for k in range(10):
            r = r_outer if k % 2 == 0 else r_inner
            a = -math.pi / 2 + k * math.pi / 5  # first point straight up (y grows down)
            pts.append((_r(cx + r * math.cos(a)), _r(cy + r * math.sin(a))))
        self.ops.append(PathOp(tuple(pts), None, fill=colour, closed=True, opacity=opacity))


class _FaceBuilder(_OrnamentDrawer):
    def __init__(self, licence: Licence, template: LicenceTemplate, font: CjkFont, url: str) -> None:
        super().__init__(template)
        self.lic = licence
        self.font = font
        self.url = url

    def width_mm(self, text: str, size_pt: float, char_space_pt: float = 0.0) -> float:
        width_pt = float(pdfmetrics.stringWidth(text, self.font.name, size_pt))
        return (width_pt + char_space_pt * max(len(text) - 1, 0)) / _PT_PER_MM

    def build(self) -> FaceLayout:
        t = self.t
        self.ops.extend(_ornaments(t))
        self._title()
        self._rows()
        self._issuer()
        self._qr()
        self._footer()
        # the seal goes last: like ink, it lies over the issuer line and the date
        self._seal()
        lic = self.lic
        info = FaceInfo(
            title=f"{lic.name}（{lic.holder}）",
            author=lic.issuer_name,
            subject=lic.identifier,
            keywords=("电子证照", lic.name, lic.number, lic.identifier, lic.type_code, lic.region_code),
            created=lic.issue_date,
            identifier=lic.identifier,
            type_code=lic.type_code,
            verify_url=self.url,
        )
        return FaceLayout(t.page.width_mm, t.page.height_mm, tuple(self.ops), info, self.font)

    # text -------------------------------------------------------------------------

    def _title(self) -> None:
        tt = self.t.title
        spacing = tt.size_pt * tt.letter_spacing_em
        width = self.width_mm(tt.text, tt.size_pt, spacing)
        x = (self.t.page.width_mm - width) / 2
        self.ops.append(TextOp(x, tt.y_mm, tt.text, tt.size_pt, self.c.title, bold=True, char_space_pt=spacing))
        if tt.subtitle:
            sub_space = tt.subtitle_size_pt * 0.15
            w = self.width_mm(tt.subtitle, tt.subtitle_size_pt, sub_space)
            y = tt.y_mm + tt.subtitle_size_pt / _PT_PER_MM + 3.0
            x = (self.t.page.width_mm - w) / 2
            self.ops.append(TextOp(x, y, tt.subtitle, tt.subtitle_size_pt, self.c.title, char_space_pt=sub_space))

    def _rows(self) -> None:
        cursors = [col.y_mm for col in self.t.columns]
        for row in self.t.rows:
            value = self.t.value_of(self.lic, row.source)
            if row.x_mm is not None and row.y_mm is not None:
                self._placed_row(row, row.x_mm, row.y_mm, value)
            else:
                # the loader guarantees a valid column for every row it does not place
                index = row.column or 0
                cursors[index] = self._column_row(self.t.columns[index], row, value, cursors[index])

    def _placed_row(self, row: FieldRow, x: float, y: float, value: str) -> None:
        size = row.size_pt or 12.0
        label = row.label + row.separator
        self.ops.append(TextOp(x, y, label, size, self.c.label, bold=True))
        if row.stacked:
            self.ops.append(TextOp(x, y + size / _PT_PER_MM * 1.45, value, size, self.c.text))
        else:
            x_value = x + self.width_mm(label, size) + 1.5
            self.ops.append(TextOp(x_value, y, value, size, self.c.text))

    def _column_row(self, col: Column, row: FieldRow, value: str, y: float) -> float:
        size = row.size_pt or col.size_pt
        y_base = y + size / _PT_PER_MM  # the cursor is the top of the row
        self._label(col.x_mm, y_base, col.label_width_mm, row, size)
        lines = self._wrap(value, col.width_mm - col.label_width_mm - _LABEL_GAP_MM, size)
        if len(lines) > row.max_lines:
            raise InvalidInputError(
                f"{row.label} needs {len(lines)} lines; the {self.t.name} face has room for {row.max_lines}",
                reason=REASON_FIELD_OVERFLOW,
                details={"source": row.source, "lines": len(lines), "max_lines": row.max_lines},
            )
        x_value = col.x_mm + col.label_width_mm + _LABEL_GAP_MM
        for k, line in enumerate(lines or [""]):
            if line:
                self.ops.append(TextOp(x_value, y_base + k * col.line_height_mm, line, size, self.c.text))
        return y + max(len(lines), 1) * col.line_height_mm + col.row_gap_mm

    def _label(self, x: float, y: float, width: float, row: FieldRow, size: float) -> None:
        text = row.label
        natural = self.width_mm(text, size)
        if row.justify_label and len(text) > 1 and natural < width:
            # spread the characters over the label width: 名    称 aligns with 法定代表人
            space_pt = (width - natural) * _PT_PER_MM / (len(text) - 1)
            space_pt = min(space_pt, size * 2.0)
            self.ops.append(TextOp(x, y, text, size, self.c.label, bold=True, char_space_pt=_r(space_pt)))
        else:
            self.ops.append(TextOp(x, y, text, size, self.c.label, bold=True))

    def _wrap(self, text: str, width_mm: float, size: float) -> list[str]:
        """Greedy line breaking: between any two CJK characters, never inside a
        Latin word or number that fits on a line, never before closing punctuation,
        and no single-character last line."""
        lines: list[str] = []
        for paragraph in text.split("\n"):
            tokens = [t for t in _TOKEN_RE.findall(paragraph) for t in self._split_long(t, width_mm, size)]
            current: list[str] = []
            para_lines: list[list[str]] = []
            for tok in tokens:
                fits = self.width_mm("".join(current) + tok, size) <= width_mm
                if current and not fits and tok[0] not in _NO_LINE_START:
                    para_lines.append(current)
                    current = [tok]
                else:
                    current.append(tok)
            para_lines.append(current)
            if len(para_lines) > 1 and len("".join(para_lines[-1])) == 1 and len(para_lines[-2]) > 2:
                para_lines[-1].insert(0, para_lines[-2].pop())
            lines.extend("".join(line) for line in para_lines)
        # drop trailing empty lines, keep inner blank lines (paragraph breaks)
        while lines and not lines[-1]:
            lines.pop()
        return lines

    def _split_long(self, token: str, width_mm: float, size: float) -> list[str]:
        # a "word" wider than the whole line is broken by character after all
        if len(token) > 1 and self.width_mm(token, size) > width_mm:
            return list(token)
        return [token]

    def _issuer(self) -> None:
        block = self.t.issuer
        size = block.size_pt
        lines = []
        if block.show_name:
            lines.append((f"{block.label}：{self.lic.issuer_name}" if block.label else self.lic.issuer_name, True))
        elif block.label:
            lines.append((block.label, True))
        lines.append((format_date_cn(self.lic.issue_date), False))
        i0, _, i1, _ = self._inner()
        y = block.y_mm
        for text, bold in lines:
            w = self.width_mm(text, size)
            # centred on the block, but never across the frame (long agency names)
            x = min(max(block.x_mm - w / 2, i0 + 3.0), i1 - 3.0 - w)
            self.ops.append(TextOp(x, y, text, size, self.c.text, bold=bold))
            y += size / _PT_PER_MM * 1.9

    def _qr(self) -> None:
        spec = self.t.qr
        qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=0, box_size=1)
        qr.add_data(self.url)
        qr.make(fit=True)
        matrix = qr.get_matrix()
        rows = tuple("".join("1" if cell else "0" for cell in r) for r in matrix)
        n = len(rows)
        quiet = 4  # the quiet zone is drawn as background so the symbol scans on any paper
        module = spec.size_mm / (n + 2 * quiet)
        self.ops.append(RectOp(spec.x_mm, spec.y_mm, spec.size_mm, spec.size_mm, None, fill="#FFFFFF"))
        self.ops.append(
            QrOp(spec.x_mm + quiet * module, spec.y_mm + quiet * module, _r(module, 4), rows, "#000000", self.url)
        )
        if spec.caption:
            size = 8.0
            w = self.width_mm(spec.caption, size)
            x, y = spec.x_mm + (spec.size_mm - w) / 2, spec.y_mm + spec.size_mm + 4.0
            self.ops.append(TextOp(x, y, spec.caption, size, self.c.text))

    def _footer(self) -> None:
        f = self.t.footer
        texts = [f"证照标识：{self.lic.identifier}", *f.lines]
        y = f.y_mm
        for text in texts:
            w = self.width_mm(text, f.size_pt)
            self.ops.append(TextOp((self.t.page.width_mm - w) / 2, y, text, f.size_pt, self.c.text))
            y -= f.size_pt / _PT_PER_MM * 1.6  # extra lines stack upwards from the identifier

    def _seal(self) -> None:
        spec = self.t.seal
        colour, opacity = self.c.seal, 0.88
        cx, cy = spec.x_mm, spec.y_mm
        radius = spec.diameter_mm / 2
        ring = spec.diameter_mm * 0.032
        self.ops.append(CircleOp(cx, cy, radius - ring / 2, colour, width_mm=ring, opacity=opacity))
        self._star(cx, cy, spec.diameter_mm * 0.17, colour, opacity)
        # agency name clockwise along the upper arc, tops of the characters outward;
        # the span grows with the name, the character size follows from the span
        name = self.lic.issuer_name
        n = len(name)
        inner = radius - ring
        span = min(250.0, 90.0 + 12.0 * n) if n > 1 else 0.0
        size_mm = spec.diameter_mm * 0.16
        r_text = inner - spec.diameter_mm * 0.035 - 0.45 * size_mm
        for _ in range(3):  # r_text and size depend on each other; this settles in 2-3 rounds
            r_text = inner - spec.diameter_mm * 0.035 - 0.45 * size_mm
            pitch = r_text * math.radians(span / (n - 1)) if n > 1 else size_mm
            size_mm = min(0.86 * pitch, spec.diameter_mm * 0.16)
        size = size_mm * _PT_PER_MM
        for k, ch in enumerate(name):
            theta = 90.0 + span / 2 - (span * k / (n - 1) if n > 1 else 0.0)
            self._arc_char(ch, cx, cy, r_text, theta, size, colour, opacity)
        if spec.caption:
            csize = spec.diameter_mm * 0.075 * _PT_PER_MM
            w = self.width_mm(spec.caption, csize)
            y = cy + spec.diameter_mm * 0.30
            self.ops.append(TextOp(cx - w / 2, y, spec.caption, csize, colour, bold=True, opacity=opacity))

    def _arc_char(
        self, ch: str, cx: float, cy: float, r: float, theta_deg: float, size: float, colour: str, opacity: float
    ) -> None:
        # work in y-up maths, then flip: the point at angle theta on the circle is the
        # glyph's visual centre; its baseline runs clockwise (tangent), its top outward
        th = math.radians(theta_deg)
        ux, uy = math.cos(th), math.sin(th)
        bx, by = math.sin(th), -math.cos(th)
        w = self.width_mm(ch, size)
        lift = size / _PT_PER_MM * 0.36  # baseline sits ~0.36 em below a CJK glyph's centre
        ox = cx + ux * r - bx * w / 2 - ux * lift
        oy_up = -cy + uy * r - by * w / 2 - uy * lift  # y-up copy of cy is -cy
        rotation = _r(90.0 - theta_deg, 2)
        self.ops.append(
            TextOp(_r(ox), _r(-oy_up), ch, _r(size, 2), colour, bold=True, rotation_deg=rotation, opacity=opacity)
        )


# -- PDF drawing --------------------------------------------------------------------


class _PdfPainter:
    def __init__(self, canvas: Canvas, layout: FaceLayout) -> None:
        self.c = canvas
        self.h = layout.height_mm
        self.layout = layout
        self.font = layout.font.name

    def y(self, y_mm: float) -> float:
        return float((self.h - y_mm) * mm)

    def paint(self) -> None:
        handlers: dict[type, Callable[[DrawOp], None]] = {
            TextOp: self._text,  # type: ignore[dict-item]
            PathOp: self._path,  # type: ignore[dict-item]
            CircleOp: self._circle,  # type: ignore[dict-item]
            RectOp: self._rect,  # type: ignore[dict-item]
            QrOp: self._qr,  # type: ignore[dict-item]
        }
        for op in self.layout.ops:
            handlers[type(op)](op)

    def _colours(self, stroke: str | None, fill: str | None, width_mm: float, opacity: float = 1.0) -> None:
        if stroke:
            self.c.setStrokeColor(HexColor(stroke))
            self.c.setLineWidth(width_mm * mm)
        if fill:
            self.c.setFillColor(HexColor(fill))
        self.c.setStrokeAlpha(opacity)
        self.c.setFillAlpha(opacity)

    def _text(self, op: TextOp) -> None:
        c = self.c
        c.saveState()
        colour = HexColor(op.colour)
        c.setFillColor(colour)
        c.setFillAlpha(op.opacity)
        c.setStrokeAlpha(op.opacity)
        c.translate(op.x_mm * mm, self.y(op.y_mm))
        if op.rotation_deg:
            c.rotate(-op.rotation_deg)  # PDF rotates counter-clockwise; the layout means clockwise
        t = c.beginText(0, 0)
        t.setFont(self.font, op.size_pt)
        if op.char_space_pt:
            t.setCharSpace(op.char_space_pt)
        if op.bold:
            # uming has no bold face: fill + stroke the outlines (render mode 2), as Song-bold
            c.setStrokeColor(colour)
            c.setLineWidth(op.size_pt * 0.035)
            t.setTextRenderMode(2)
        t.textOut(op.text)
        c.drawText(t)
        c.restoreState()

    def _path(self, op: PathOp) -> None:
        if len(op.points) < 2:
            return
        c = self.c
        c.saveState()
        self._colours(op.stroke, op.fill, op.width_mm, op.opacity)
        p = PDFPathObject(code=[_path_code(op.points, op.closed, self.h)])
        c.setLineJoin(1)
        c.drawPath(p, stroke=1 if op.stroke else 0, fill=1 if op.fill else 0)
        c.restoreState()

    def _circle(self, op: CircleOp) -> None:
        c = self.c
        c.saveState()
        self._colours(op.stroke, op.fill, op.width_mm, op.opacity)
        c.circle(op.cx_mm * mm, self.y(op.cy_mm), op.r_mm * mm, stroke=1 if op.stroke else 0, fill=1 if op.fill else 0)
        c.restoreState()

    def _rect(self, op: RectOp) -> None:
        c = self.c
        c.saveState()
        self._colours(op.stroke, op.fill, op.width_mm)
        c.rect(op.x_mm * mm, self.y(op.y_mm + op.h_mm), op.w_mm * mm, op.h_mm * mm,
               stroke=1 if op.stroke else 0, fill=1 if op.fill else 0)  # fmt: skip
        c.restoreState()

    def _qr(self, op: QrOp) -> None:
        c = self.c
        c.saveState()
        c.setFillColor(HexColor(op.colour))
        m = op.module_mm
        p = c.beginPath()
        for j, row in enumerate(op.rows):
            # one rectangle per horizontal run of dark modules keeps the page stream small
            for start, length in _runs(row):
                p.rect((op.x_mm + start * m) * mm, self.y(op.y_mm + (j + 1) * m), length * m * mm, m * mm)
        c.drawPath(p, stroke=0, fill=1)
        c.restoreState()


# -- helpers --------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def _path_code(points: tuple[tuple[float, float], ...], closed: bool, page_height_mm: float) -> str:
    """The PDF operators of a polyline, as reportlab writes them.

    The ornaments repeat on every face of a template and formatting their
    ~19,000 coordinates was most of the drawing time, so the code of each path
    is kept; the same points always give the same string.
    """
    p = PDFPathObject()
    x, y = points[0]
    p.moveTo(x * mm, float((page_height_mm - y) * mm))
    for x, y in points[1:]:
        p.lineTo(x * mm, float((page_height_mm - y) * mm))
    if closed:
        p.close()
    return str(p.getCode())


def _runs(row: str) -> list[tuple[int, int]]:
    out = []
    start = -1
    for i, cell in enumerate(row + "0"):
        if cell == "1" and start < 0:
            start = i
        elif cell != "1" and start >= 0:
            out.append((start, i - start))
            start = -1
    return out


def _r(value: float, digits: int = 3) -> float:
    """Round coordinates so float noise never changes the bytes of the file."""
    return round(value, digits)


def _pdf_date(day: _dt.date) -> str:
    # the issue date at 00:00 Beijing time: the file's date is the licence's, not the clock's
    return f"D:{day.year:04d}{day.month:02d}{day.day:02d}000000+08'00'"


def _xmp_packet(info: FaceInfo) -> str:
    e = _xml_escape
    created = f"{info.created.isoformat()}T00:00:00+08:00"
    keywords = e(", ".join(info.keywords))
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
        '<rdf:Description rdf:about=""\n'
        ' xmlns:dc="http://purl.org/dc/elements/1.1/"\n'
        ' xmlns:xmp="http://ns.adobe.com/xap/1.0/"\n'
        ' xmlns:pdf="http://ns.adobe.com/pdf/1.3/"\n'
        ' xmlns:cl="https://certledger.example/ns/licence/1.0/">\n'
        f'<dc:title><rdf:Alt><rdf:li xml:lang="x-default">{e(info.title)}</rdf:li></rdf:Alt></dc:title>\n'
        f"<dc:creator><rdf:Seq><rdf:li>{e(info.author)}</rdf:li></rdf:Seq></dc:creator>\n"
        f'<dc:description><rdf:Alt><rdf:li xml:lang="x-default">{e(info.subject)}</rdf:li></rdf:Alt></dc:description>\n'
        f"<dc:identifier>{e(info.identifier)}</dc:identifier>\n"
        f"<dc:language><rdf:Bag><rdf:li>{e(info.language)}</rdf:li></rdf:Bag></dc:language>\n"
        f"<xmp:CreateDate>{created}</xmp:CreateDate>\n"
        f"<xmp:ModifyDate>{created}</xmp:ModifyDate>\n"
        "<xmp:CreatorTool>certledger</xmp:CreatorTool>\n"
        f"<pdf:Keywords>{keywords}</pdf:Keywords>\n"
        f"<pdf:Producer>{e(PRODUCER)}</pdf:Producer>\n"
        f"<cl:identifier>{e(info.identifier)}</cl:identifier>\n"
        f"<cl:typeCode>{e(info.type_code)}</cl:typeCode>\n"
        f"<cl:verifyUrl>{e(info.verify_url)}</cl:verifyUrl>\n"
        "</rdf:Description>\n"
        "</rdf:RDF>\n"
        "</x:xmpmeta>\n"
        '<?xpacket end="w"?>'
    )


__all__: Sequence[str] = (
    "CircleOp",
    "DrawOp",
    "FaceInfo",
    "FaceLayout",
    "PathOp",
    "QrOp",
    "RectOp",
    "TextOp",
    "build_face",
    "render_licence_pdf",
    "render_pdf",
    "verification_url",
)

"""PDF -> OFD: each PDF page becomes an OFD page of the same size and content.

Steps (labelled again below):

1. read the PDF with :func:`.pdfparse.read_pdf` (bounded, hostile-input safe);
2. fonts: re-target each PDF font's embedded TrueType subset to Unicode
   (:mod:`.fontfile`) so the OFD shows the same glyphs; text a re-targeted font
   cannot show uses a subset of the system CJK font instead;
3. pages: text runs -> ``TextObject`` (baseline origin, size, fill colour and
   per-glyph ``DeltaX`` taken from the PDF's own glyph positions), paths ->
   ``PathObject``, images -> ``ImageObject``; points become millimetres and the
   PDF's bottom-up y becomes OFD's top-down y (done by the reader's page space);
4. metadata -> ``DocInfo`` + ``CustomDatas``, marked as an unsealed copy with the
   source's SM3; the proof bundle, if any, becomes an attachment;
5. write the package (:func:`cert_formats.ofd.write_ofd`).

Not representable in the OFD model, and so approximated (recorded in the
result's notes): transparency (painted opaque), rotated text (each glyph keeps
its origin, upright), stroke-only text (filled in the stroke colour), fill rules
and line joins/caps (defaults).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from cert_formats.ofd import (
    Attachment,
    ClosePath,
    Color,
    CubicTo,
    Font,
    ImageObject,
    LineTo,
    MoveTo,
    OFDDocument,
    Page,
    PageObject,
    PathCommand,
    PathObject,
    TextObject,
    write_ofd,
)
from signing.errors import InvalidInputError
from signing.sm3 import sm3_hex

from .fontfile import RetargetedFont, retarget_truetype, system_font_subset
from .limits import REASON_TIMEOUT, ConvertLimits, Deadline
from .metadata import PROOF_BUNDLE_NAME, from_pdf, mark_copy, to_ofd_info
from .pdfparse import ImageItem, PathItem, PdfContent, PdfFont, TextRun, quiet_library_logs, read_pdf
from .result import ConversionResult

MM_PER_PT: Final = 25.4 / 72.0
#: a run whose baseline turns by less than this is drawn as one upright text object
_UPRIGHT_DEG: Final = 0.5
#: characters per OFD text object (the OFD reader's default limit is 10 000)
_MAX_RUN_CHARS: Final = 4000
#: the thinnest line the model allows stands in for PDF's "thinnest possible" width 0
_MIN_LINE_MM: Final = 0.01


def _colour(rgb: tuple[float, float, float]) -> Color:
    return Color(*(min(255, max(0, round(v * 255))) for v in rgb))


def _mm(value: float) -> float:
    return value * MM_PER_PT


class _FontTable:
    """OFD fonts for PDF fonts: re-targeted when possible, the system font otherwise."""

    def __init__(self, content: PdfContent, deadline: Deadline) -> None:
        codes: dict[int, set[int]] = {}
        fonts: dict[int, PdfFont] = {}
        for page in content.pages:
            for run in page.texts:
                if run.visible:
                    codes.setdefault(run.font.key, set()).update(run.codes)
                    fonts[run.font.key] = run.font
        self.retargeted: dict[int, RetargetedFont | None] = {}
        for key, font in fonts.items():
            deadline.check()
            self.retargeted[key] = retarget_truetype(font, codes[key])
        self.fonts = fonts
        self._ofd: dict[tuple[int, bool], Font] = {}
        self._fallback_chars: set[str] = set()
        self._fallback: tuple[str, bytes] | None = None
        self.fallback_used: set[int] = set()

    def embedded(self, run: TextRun, text: str) -> RetargetedFont | None:
        found = self.retargeted.get(run.font.key)
        if found is not None and all(ch in found.covered for ch in text):
            return found
        return None

    def need_fallback(self, text: str) -> None:
        self._fallback_chars.update(text)

    def prepare_fallback(self) -> None:
        if self._fallback_chars:
            self._fallback = system_font_subset(self._fallback_chars)

    def font_for(self, run: TextRun, text: str, bold: bool) -> Font:
        embedded = self.embedded(run, text)
        if embedded is not None:
            key = (run.font.key, bold)
            font = self._ofd.get(key)
            if font is None:
                font = Font(family=run.font.family, data=embedded.data, font_name=run.font.base_font or None,
                            bold=bold)
                self._ofd[key] = font
            return font
        assert self._fallback is not None  # prepare_fallback ran after need_fallback
        self.fallback_used.add(run.font.key)
        key = (-1, bold)
        font = self._ofd.get(key)
        if font is None:
            font = Font(family=self._fallback[0], data=self._fallback[1], bold=bold)
            self._ofd[key] = font
        return font

    @property
    def embedded_count(self) -> int:
        return sum(1 for key, value in self.retargeted.items() if value is not None and key in self._used_keys())

    def _used_keys(self) -> set[int]:
        return {key for key, _ in self._ofd if key >= 0}


def _glyph_texts(run: TextRun) -> list[tuple[str, float, float]]:
    """``(text, x, y)`` in page points for each code of ``run`` (mm later)."""
    return [(chars, x, y) for chars, (x, y) in zip(run.chars, run.origins, strict=True)]


def _text_pieces(run: TextRun) -> list[tuple[str, float, float, tuple[float, ...]]]:
    """``(text, x_mm, y_mm, delta_x_mm)`` objects for one run.

    Upright horizontal runs become one object (split only when very long) with
    one advance per character from the PDF's own glyph origins; anything else
    becomes one object per glyph, at that glyph's origin.
    """
    upright = abs(run.angle) < _UPRIGHT_DEG and not run.mirrored and not run.font.vertical
    glyphs = _glyph_texts(run)
    if not upright:
        return [(text, _mm(x), _mm(y), (0.0,) * (len(text) - 1)) for text, x, y in glyphs if text]
    chars: list[tuple[str, float]] = []
    for text, x, _y in glyphs:
        chars.extend((ch, x) for ch in text)
    y_mm = _mm(run.origins[0][1])
    pieces: list[tuple[str, float, float, tuple[float, ...]]] = []
    for start in range(0, len(chars), _MAX_RUN_CHARS):
        part = chars[start:start + _MAX_RUN_CHARS]
        deltas = tuple(_mm(part[i + 1][1] - part[i][1]) for i in range(len(part) - 1))
        pieces.append(("".join(ch for ch, _ in part), _mm(part[0][1]), y_mm, deltas))
    return pieces


def _path(item: PathItem) -> PathObject | None:
    commands: list[PathCommand] = []
    for op, pts in item.commands:
        if op == "M":
            commands.append(MoveTo(_mm(pts[0]), _mm(pts[1])))
        elif op == "L":
            commands.append(LineTo(_mm(pts[0]), _mm(pts[1])))
        elif op == "C":
            commands.append(CubicTo(*(_mm(v) for v in pts)))
        elif op == "Z":
            commands.append(ClosePath())
    if not commands or not isinstance(commands[0], MoveTo):
        return None
    return PathObject(commands=tuple(commands),
                      stroke=_colour(item.stroke) if item.stroke is not None else None,
                      fill=_colour(item.fill) if item.fill is not None else None,
                      line_width=max(_mm(item.line_width), _MIN_LINE_MM))


def _image(item: ImageItem) -> ImageObject:
    return ImageObject(data=item.data, format=item.format, x=_mm(item.x), y=_mm(item.y),
                       width=_mm(item.width), height=_mm(item.height))


def _bold(run: TextRun) -> bool:
    # fill + stroke in the fill colour is how PDFs (and our faces) make synthetic bold
    return run.render_mode in (2, 6)


def _text_colour(run: TextRun) -> Color:
    return _colour(run.stroke if run.render_mode in (1, 5) else run.fill)


def pdf_to_ofd(data: bytes, *, limits: ConvertLimits | None = None) -> ConversionResult:
    """Convert an untrusted PDF into an OFD file: an unsealed copy (see the module docstring).

    Raises ``InvalidInputError`` with a ``convert.*`` reason for malformed,
    encrypted, oversized or too slow input, and ``convert.font_unavailable``
    when text needs the system CJK font and none is installed.
    """
    limits = limits or ConvertLimits()
    deadline = Deadline(limits.max_seconds)
    source_sm3 = sm3_hex(bytes(data)) if isinstance(data, bytes | bytearray | memoryview) else ""
    # 1. read
    content = read_pdf(data, limits=limits.pdf, deadline=deadline, embedded_files=(PROOF_BUNDLE_NAME,))
    notes = list(content.notes)
    with quiet_library_logs():
        # 2. fonts
        fonts = _FontTable(content, deadline)
        runs = [run for page in content.pages for run in page.texts if run.visible]
        for run in runs:
            for text, *_ in _text_pieces(run):
                if fonts.embedded(run, text) is None:
                    fonts.need_fallback(text)
        fonts.prepare_fallback()
        # 3. pages
        pages: list[Page] = []
        counts = {"texts": 0, "paths": 0, "images": 0}
        for page in content.pages:
            deadline.check()
            objects: list[PageObject] = []
            for item in page.items:
                objects.extend(_objects(item, fonts, notes, counts))
            pages.append(Page(objects=tuple(objects), width=_mm(page.width), height=_mm(page.height)))
        # 4. metadata and the proof bundle
        meta = mark_copy(from_pdf(content.info, content.xmp, content.lang), source_sm3, "pdf")
        attachments: list[Attachment] = []
        bundle = content.embedded_files.get(PROOF_BUNDLE_NAME)
        if bundle is not None:
            attachments.append(Attachment(PROOF_BUNDLE_NAME, bundle, "application/json"))
        document = OFDDocument(info=to_ofd_info(meta, source_sm3[:32]), pages=tuple(pages),
                               attachments=tuple(attachments))
        # 5. write
        deadline.check()
        out = write_ofd(document)
    if deadline.remaining <= 0:
        raise InvalidInputError("conversion exceeded its time budget", reason=REASON_TIMEOUT)
    return ConversionResult(
        data=out, source_format="pdf", target_format="ofd", source_sm3=source_sm3, pages=len(pages),
        texts=counts["texts"], paths=counts["paths"], images=counts["images"],
        embedded_fonts=fonts.embedded_count, fallback_fonts=len(fonts.fallback_used),
        proof_bundle=bundle is not None, source_sealed=content.signed,
        active_content_dropped=content.active_content, notes=tuple(dict.fromkeys(notes)))


def _objects(item: TextRun | PathItem | ImageItem, fonts: _FontTable, notes: list[str],
             counts: dict[str, int]) -> Iterable[PageObject]:
    if isinstance(item, TextRun):
        if not item.visible:
            notes.append("invisible text (render mode 3) was not converted")
            return
        if item.fill_alpha < 1.0 or item.stroke_alpha < 1.0:
            notes.append("transparency was painted opaque")
        if abs(item.angle) >= _UPRIGHT_DEG or item.mirrored:
            notes.append("rotated text keeps each glyph's position but is drawn upright")
        bold = _bold(item)
        colour = _text_colour(item)
        size = _mm(item.size)
        for text, x, y, deltas in _text_pieces(item):
            counts["texts"] += 1
            yield TextObject(text=text, x=x, y=y, font=fonts.font_for(item, text, bold), size=size,
                             fill=colour, delta_x=deltas)
    elif isinstance(item, PathItem):
        if (item.fill_alpha < 1.0 and item.fill is not None) or (item.stroke_alpha < 1.0 and item.stroke is not None):
            notes.append("transparency was painted opaque")
        path = _path(item)
        if path is not None:
            counts["paths"] += 1
            yield path
    else:
        counts["images"] += 1
        yield _image(item)

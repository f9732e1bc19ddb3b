"""The licence face as OFD (GB/T 33190), drawn from the same layout as the PDF face.

:func:`cert_formats.pdf_face.build_face` produces one list of drawing
operations in millimetres from the top-left corner — OFD's own coordinate
system — so the OFD face is the same face, not a conversion of the PDF.

Two differences, both deliberate:

* the font is embedded as a TrueType subset of the CJK font the PDF uses (OFD
  readers need a plain TrueType file, not a .ttc collection), cut by
  :mod:`cert_formats.font_subset` from a GB 2312 base parsed once per process,
  with glyph advances carried as DeltaX so every glyph sits where it sits in
  the PDF;
* the red seal drawn on the PDF face is left out: on the OFD the seal is the
  real GB/T 38540 electronic seal (:mod:`cert_formats.seal`), whose picture
  is stamped at the same place.
"""

from __future__ import annotations

import functools
import io
import math
import os
from collections.abc import Iterable
from pathlib import Path

from fontTools import subset
from fontTools.ttLib import TTFont
from reportlab.pdfbase import pdfmetrics

from cert_formats.font_subset import GlyphSubsetter, UnsupportedBaseFont
from cert_formats.licence import Licence
from cert_formats.ofd import (
    ClosePath,
    Color,
    DocumentInfo,
    Font,
    LineTo,
    MoveTo,
    OFDDocument,
    Page,
    PathObject,
    TextObject,
)
from cert_formats.ofd.model import Attachment
from cert_formats.pdf_face import CircleOp, FaceLayout, PathOp, QrOp, RectOp, TextOp, _runs
from cert_formats.template import LicenceTemplate
from signing.errors import InvalidInputError
from signing.sm3 import sm3

_PT_TO_MM = 25.4 / 72.0


def _colour(hex_colour: str, opacity: float = 1.0) -> Color:
    value = hex_colour.lstrip("#")
    if len(value) != 6:
        raise InvalidInputError(f"colour {hex_colour!r} is not #RRGGBB", reason="ofd.invalid_model")
    rgb = [int(value[i : i + 2], 16) for i in (0, 2, 4)]
    if opacity < 1.0:
        # OFD text here has no alpha: blend with the white paper instead
        rgb = [round(c * opacity + 255 * (1 - opacity)) for c in rgb]
    return Color(*rgb)


def _gb2312_text() -> str:
    """Every character of GB 2312 (6,763 hanzi plus symbols), ASCII and CJK punctuation."""
    chars = [chr(c) for c in range(0x20, 0x7F)]
    for hi in range(0xA1, 0xF8):
        for lo in range(0xA1, 0xFF):
            try:
                chars.append(bytes([hi, lo]).decode("gb2312"))
            except UnicodeDecodeError:
                continue
    chars += [chr(c) for c in range(0x3000, 0x3040)] + [chr(c) for c in range(0xFF00, 0xFF66)]
    return "".join(chars)


def _subset(source: bytes | str, font_number: int, text: str) -> bytes:
    # lazy: decompile only the glyphs the subset keeps
    # no recalcTimestamp: the same text must give the same bytes, whatever the clock says
    source_file = io.BytesIO(source) if isinstance(source, bytes) else source
    font = TTFont(source_file, fontNumber=font_number, lazy=True, recalcTimestamp=False)
    options = subset.Options()
    options.name_IDs = ["*"]
    options.notdef_outline = True
    options.drop_tables += ["BDF", "FFTM", "EBDT", "EBLC", "EBSC"]
    subsetter = subset.Subsetter(options)
    subsetter.populate(text=text)
    subsetter.subset(font)
    out = io.BytesIO()
    font.save(out)
    return out.getvalue()


@functools.lru_cache(maxsize=4)
def _base_font(path: str, font_number: int) -> tuple[bytes, frozenset[str]]:
    """A GB 2312 subset of the CJK font, cut once per process.

    A CJK font holds ~20,000 glyphs; subsetting from it for every licence
    costs about a second. Licence text is almost all GB 2312, so each licence
    is cut from this ~7,000-glyph base instead; rarer characters fall back to
    the full font.
    """
    text = _gb2312_text()
    cache = _cache_path(path, font_number)
    if cache is not None and cache.exists():
        return cache.read_bytes(), frozenset(text)
    data = _subset(path, font_number, text)
    if cache is not None:
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(f".tmp{os.getpid()}")
            tmp.write_bytes(data)
            os.replace(tmp, cache)
        except OSError:
            pass  # a read-only home only costs time
    return data, frozenset(text)


def _cache_path(path: str, font_number: int) -> Path | None:
    """Where the base subset of this exact font file is kept between processes."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "certledger" / "fonts"
    key = sm3(f"{path}|{st.st_size}|{st.st_mtime_ns}|{font_number}|gb2312-v1".encode()).hex()[:32]
    return root / f"{key}.ttf"


@functools.lru_cache(maxsize=4)
def _base_subsetter(path: str, font_number: int) -> GlyphSubsetter | None:
    """The base subset, parsed once per process, to cut each licence's font from."""
    try:
        return GlyphSubsetter(_base_font(path, font_number)[0])
    except UnsupportedBaseFont:
        return None


def subset_font(layout: FaceLayout, text: str) -> bytes:
    """A TrueType subset of the layout's font holding the glyphs of ``text``."""
    path, index = str(layout.font.path), layout.font.subfont_index
    base, covered = _base_font(path, index)
    if set(text) <= covered:
        subsetter = _base_subsetter(path, index)
        if subsetter is not None:
            return subsetter.subset(text)
        return _subset(base, 0, text)
    return _subset(path, index, text)


def _in_seal(x: float, y: float, seal: tuple[float, float, float] | None) -> bool:
    if seal is None:
        return False
    cx, cy, r = seal
    return math.hypot(x - cx, y - cy) <= r


def _advances(op: TextOp, font_name: str) -> tuple[float, ...]:
    return tuple((pdfmetrics.stringWidth(ch, font_name, op.size_pt) + op.char_space_pt) * _PT_TO_MM for ch in op.text)


@functools.lru_cache(maxsize=4096)
def _path_object(op: PathOp, seal: tuple[float, float, float]) -> PathObject | None:
    """The OFD path of a polyline, or None where the seal's picture replaces it.

    The template's ornaments are the same ~19,000 points on every face; the model
    objects are frozen, so each is built (and validated) once and shared, and the
    writer, seeing the same object again, reuses its XML text as well.
    """
    if len(op.points) < 2 or all(_in_seal(x, y, seal) for x, y in op.points):
        return None
    commands: list[MoveTo | LineTo | ClosePath] = [MoveTo(*op.points[0])]
    commands += [LineTo(x, y) for x, y in op.points[1:]]
    if op.closed:
        commands.append(ClosePath())
    return PathObject(
        tuple(commands),
        stroke=_colour(op.stroke, op.opacity) if op.stroke else None,
        fill=_colour(op.fill, op.opacity) if op.fill else None,
        line_width=op.width_mm,
    )


def face_to_ofd(
    layout: FaceLayout,
    licence: Licence,
    template: LicenceTemplate,
    *,
    attachments: Iterable[Attachment] = (),
) -> OFDDocument:
    """The OFD document of a licence face (without seal: sealing is the next step)."""
    seal = (template.seal.x_mm, template.seal.y_mm, template.seal.diameter_mm / 2 + 1.0)
    texts = [op for op in layout.ops if isinstance(op, TextOp) and not _in_seal(op.x_mm, op.y_mm, seal)]
    chars = "".join(sorted({ch for op in texts for ch in op.text}))
    font = Font(
        family=layout.font.postscript_name, data=subset_font(layout, chars), font_name=layout.font.postscript_name
    )
    objects: list[TextObject | PathObject] = []
    for op in layout.ops:
        if isinstance(op, TextOp):
            if _in_seal(op.x_mm, op.y_mm, seal) or not op.text.strip():
                continue
            objects.append(
                TextObject(
                    text=op.text,
                    x=op.x_mm,
                    y=op.y_mm,
                    font=font,
                    size=op.size_pt * _PT_TO_MM,
                    fill=_colour(op.colour, op.opacity),
                    delta_x=_advances(op, layout.font.name)[:-1] or None,
                )
            )
        elif isinstance(op, PathOp):
            path = _path_object(op, seal)
            if path is not None:
                objects.append(path)
        elif isinstance(op, CircleOp):
            if _in_seal(op.cx_mm, op.cy_mm, seal):
                continue
            objects.append(
                PathObject.circle(
                    op.cx_mm,
                    op.cy_mm,
                    op.r_mm,
                    stroke=_colour(op.stroke, op.opacity) if op.stroke else None,
                    fill=_colour(op.fill, op.opacity) if op.fill else None,
                    line_width=op.width_mm,
                )
            )
        elif isinstance(op, RectOp):
            objects.append(
                PathObject.rect(
                    op.x_mm,
                    op.y_mm,
                    op.w_mm,
                    op.h_mm,
                    stroke=_colour(op.stroke) if op.stroke else None,
                    fill=_colour(op.fill) if op.fill else None,
                    line_width=op.width_mm,
                )
            )
        elif isinstance(op, QrOp):
            m = op.module_mm
            qr: list[MoveTo | LineTo | ClosePath] = []
            for j, row in enumerate(op.rows):
                for start, length in _runs(row):
                    x0, y0 = op.x_mm + start * m, op.y_mm + j * m
                    x1, y1 = x0 + length * m, y0 + m
                    qr += [MoveTo(x0, y0), LineTo(x1, y0), LineTo(x1, y1), LineTo(x0, y1), ClosePath()]
            objects.append(PathObject(tuple(qr), stroke=None, fill=_colour(op.colour)))
    info = layout.info
    custom = [
        ("certledger.identifier", info.identifier),
        ("certledger.type_code", info.type_code),
        ("certledger.verify_url", info.verify_url),
    ]
    custom += [(f"licence.{k}", _text(v)) for k, v in licence.to_dict().items() if _text(v)]
    return OFDDocument(
        info=DocumentInfo(
            doc_id=sm3(info.identifier.encode()).hex()[:32],
            title=info.title,
            author=info.author,
            subject=info.subject,
            creation_date=info.created,
            keywords=tuple(info.keywords),
            custom_data=tuple(custom),
        ),
        pages=(Page(objects=tuple(objects), width=layout.width_mm, height=layout.height_mm),),
        attachments=tuple(attachments),
    )


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list | tuple):
        import json

        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)

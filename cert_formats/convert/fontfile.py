"""Font files across the PDF/OFD boundary (fontTools).

A PDF shows *codes* through a font; an OFD shows *Unicode text* through a font's
``cmap``. A TrueType subset taken out of a PDF (``FontFile2``) usually maps codes
(reportlab writes a Macintosh ``(1, 0)`` subtable over its own subset codes;
CIDFontType2 subsets have no usable cmap at all), so it cannot be embedded in an
OFD as it is. :func:`retarget_truetype` rebuilds its ``cmap`` so that each
character the PDF showed maps to the glyph the PDF drew for it, and adds the
tables an OFD viewer and reportlab need (``name``, ``OS/2``, ``post``) when the
subset lacks them. The glyph outlines are the PDF's own: the OFD shows exactly
the same letterforms.

When a PDF font cannot be re-targeted (CFF or Type 1 outlines, Type 3 glyph
procedures, a broken file), :func:`system_font_subset` subsets the system CJK
font (:func:`cert_formats.fonts.find_cjk_font`) to the characters needed.

Font files come from untrusted input: every fontTools call is guarded and any
failure means "not usable", never a crash; sizes are bounded by the caller.
"""

from __future__ import annotations

import functools
import io
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from signing.errors import InvalidInputError

from .limits import REASON_FONT
from .pdfparse import PdfFont

_TRUETYPE_MAGIC: Final = (b"\x00\x01\x00\x00", b"true")
_REQUIRED_TABLES: Final = ("head", "hhea", "hmtx", "maxp", "loca", "glyf")
#: glyphs in one font file we are willing to rebuild (a subset has a few hundred)
MAX_GLYPHS: Final = 65_535

_LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetargetedFont:
    """A TrueType file whose cmap maps text to the glyphs a PDF font showed."""

    data: bytes
    #: characters the rebuilt cmap maps (what text in this font can show)
    covered: frozenset[str]


def retarget_truetype(font: PdfFont, codes: Iterable[int]) -> RetargetedFont | None:
    """Re-target ``font``'s embedded TrueType file to Unicode, or ``None`` if unusable.

    ``codes`` are the character codes the document shows with this font; each
    single-character text among them is mapped to the glyph its code selects.
    """
    data = font.file_bytes
    if data is None or font.file_kind not in ("truetype", "opentype") or data[:4] not in _TRUETYPE_MAGIC:
        return None
    try:
        return _retarget(font, data, sorted(set(codes)))
    except Exception as exc:  # a hostile or broken font file is "not usable", never a crash
        _LOG.debug("font %s not re-targetable: %s", font.base_font, exc)
        return None


def _retarget(font: PdfFont, data: bytes, codes: list[int]) -> RetargetedFont | None:
    from fontTools.ttLib import TTFont, newTable
    from fontTools.ttLib.tables._c_m_a_p import CmapSubtable

    tt = TTFont(io.BytesIO(data), lazy=False, recalcBBoxes=False, recalcTimestamp=False)
    if any(tag not in tt for tag in _REQUIRED_TABLES):
        return None
    order = tt.getGlyphOrder()
    if not 1 < len(order) <= MAX_GLYPHS:
        return None
    gid_of = _glyph_lookup(font, tt)
    mapping: dict[int, str] = {}
    for code in codes:
        text = font.unicode(code)
        if len(text) != 1:
            continue
        gid = gid_of(code)
        if gid is None or not 0 < gid < len(order):
            continue
        mapping.setdefault(ord(text), order[gid])
    if not mapping:
        return None
    cmap = newTable("cmap")
    cmap.tableVersion = 0
    bmp = {cp: name for cp, name in mapping.items() if cp <= 0xFFFF}
    subtables: list[Any] = []
    if bmp:
        st4 = CmapSubtable.newSubtable(4)
        st4.platformID, st4.platEncID, st4.language, st4.cmap = 3, 1, 0, bmp
        subtables.append(st4)
    if len(bmp) != len(mapping):
        st12 = CmapSubtable.newSubtable(12)
        st12.platformID, st12.platEncID, st12.language, st12.cmap = 3, 10, 0, dict(mapping)
        subtables.append(st12)
    cmap.tables = subtables
    tt["cmap"] = cmap
    _complete_tables(tt, font.family)
    out = io.BytesIO()
    tt.save(out)
    result = out.getvalue()
    covered = frozenset(chr(cp) for cp in mapping)
    if not _reportlab_accepts(result, covered):
        return None
    return RetargetedFont(result, covered)


def _glyph_lookup(font: PdfFont, tt: Any) -> Any:
    """``code -> glyph id`` following the PDF rules for this kind of font."""
    if font.is_cid:
        gid_map = font.cid_to_gid

        def cid_gid(code: int) -> int | None:
            cid = font.cid(code)
            return gid_map.get(cid) if gid_map is not None else cid

        return cid_gid
    subtables: Mapping[tuple[int, int], Mapping[int, str]] = {}
    if "cmap" in tt:
        subtables = {(t.platformID, t.platEncID): t.cmap for t in tt["cmap"].tables}
    order_index = {name: i for i, name in enumerate(tt.getGlyphOrder())}

    def simple_gid(code: int) -> int | None:
        # PDF 32000-1 9.6.6.4: a symbolic font uses (3,0) at F0xx or (1,0) by code;
        # a non-symbolic one goes through the glyph name's Unicode and (3,1)
        candidates: list[str | None] = []
        ms_symbol = subtables.get((3, 0))
        mac = subtables.get((1, 0))
        uni = subtables.get((3, 1)) or subtables.get((0, 3)) or subtables.get((0, 4))
        if font.symbolic or uni is None:
            if ms_symbol is not None:
                candidates += [ms_symbol.get(0xF000 + code), ms_symbol.get(code)]
            if mac is not None:
                candidates.append(mac.get(code))
        if uni is not None:
            text = font.unicode(code)
            if len(text) == 1:
                candidates.append(uni.get(ord(text)))
        name = font.glyph_names.get(code)
        if name is not None:
            candidates.append(name if name in order_index else None)
        if not font.symbolic and mac is not None:
            candidates.append(mac.get(code))
        for glyph in candidates:
            if glyph is not None and glyph in order_index:
                return order_index[glyph]
        return None

    return simple_gid


def _complete_tables(tt: Any, family: str) -> None:
    """Add ``name``/``OS/2``/``post`` when a subset dropped them (viewers need them)."""
    from fontTools.fontBuilder import FontBuilder

    missing = [tag for tag in ("name", "OS/2", "post") if tag not in tt]
    if not missing:
        return
    builder = FontBuilder(font=tt)
    safe = "".join(ch for ch in family if ch.isascii() and ch.isalnum())[:48] or "Embedded"
    if "name" in missing:
        builder.setupNameTable({"familyName": safe, "styleName": "Regular", "psName": f"{safe}-Regular"})
    if "OS/2" in missing:
        hhea = tt["hhea"]
        builder.setupOS2(sTypoAscender=hhea.ascent, sTypoDescender=hhea.descent, usWinAscent=max(hhea.ascent, 0),
                         usWinDescent=max(-hhea.descent, 0))
    if "post" in missing:
        builder.setupPost(keepGlyphNames=False)


def _reportlab_accepts(data: bytes, covered: frozenset[str]) -> bool:
    """The OFD->PDF direction embeds through reportlab: make sure it can."""
    from reportlab.pdfbase.ttfonts import TTFontFile

    try:
        face = TTFontFile(io.BytesIO(data))
    except Exception:
        return False
    return all(ord(ch) in face.charToGlyph for ch in covered)


def system_font_subset(chars: Iterable[str]) -> tuple[str, bytes]:
    """``(family, TrueType bytes)``: the system CJK font subset to ``chars``.

    Raises ``InvalidInputError`` (``convert.font_unavailable``) when no CJK font
    is installed.
    """
    wanted = "".join(sorted({ch for ch in chars if len(ch) == 1}))
    return _subset_cached(wanted)


@functools.lru_cache(maxsize=16)
def _subset_cached(chars: str) -> tuple[str, bytes]:
    from fontTools import subset
    from fontTools.ttLib import TTFont

    from cert_formats.fonts import find_cjk_font

    try:
        cjk = find_cjk_font()
    except InvalidInputError as exc:
        raise InvalidInputError(f"no font to draw the text with: {exc}", reason=REASON_FONT) from None
    tt = TTFont(str(cjk.path), fontNumber=cjk.subfont_index, lazy=True, recalcTimestamp=False)
    options = subset.Options()
    options.layout_features = []
    options.name_IDs = ["*"]
    options.name_languages = ["*"]
    options.notdef_outline = True
    options.glyph_names = False
    options.drop_tables += ["DSIG", "EBDT", "EBLC", "EBSC"]
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=[ord(ch) for ch in chars] or [0x20])
    subsetter.subset(tt)
    out = io.BytesIO()
    tt.save(out)
    return cjk.postscript_name, out.getvalue()


def font_covers(data: bytes, text: str) -> bool:
    """Whether the TrueType file ``data`` maps every character of ``text`` (reportlab's view)."""
    from reportlab.pdfbase.ttfonts import TTFontFile

    try:
        face = TTFontFile(io.BytesIO(data))
    except Exception:
        return False
    return all(ord(ch) in face.charToGlyph for ch in text)

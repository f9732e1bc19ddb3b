"""GlyphSubsetter (the OFD face's fast font subsets) against fontTools.subset.

The reference is the general fontTools subsetter that the OFD face used before,
cut from the same GB 2312 base: every character must map to the same outline
(points, contours, on/off-curve flags) and the same advances in both.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import pytest
from fontTools.ttLib import TTFont, newTable
from reportlab.pdfbase.ttfonts import TTFontFile

from cert_formats import ofd_face
from cert_formats.font_subset import GlyphSubsetter, UnsupportedBaseFont
from cert_formats.fonts import find_cjk_font

# CJK, full-width punctuation, a space, Latin with composite glyphs (i, j, à, é), digits
TEXT = "营业执照食品经营许可证，。（）：统一社会信用代码颁发机关年月日长期至杭州云岫明德 ijàé0123456789ABCabc-./"


@pytest.fixture(scope="module")
def base() -> bytes:
    font = find_cjk_font()
    return ofd_face._base_font(str(font.path), font.subfont_index)[0]


def _outline(font: TTFont, name: str) -> tuple[list[tuple[float, float]], list[int], list[int]]:
    coords, ends, flags = font["glyf"][name].getCoordinates(font["glyf"])
    return list(coords), list(ends), list(flags)


def test_same_glyphs_and_metrics_as_fonttools(base: bytes) -> None:
    ours = TTFont(io.BytesIO(GlyphSubsetter(base).subset(TEXT)))
    ref = TTFont(io.BytesIO(ofd_face._subset(base, 0, TEXT)))
    ours_cmap, ref_cmap = ours.getBestCmap(), ref.getBestCmap()
    assert ours_cmap.keys() == ref_cmap.keys() == {ord(ch) for ch in TEXT}
    for cp in ours_cmap:
        a, b = ours_cmap[cp], ref_cmap[cp]
        assert _outline(ours, a) == _outline(ref, b), chr(cp)
        assert ours["hmtx"][a] == ref["hmtx"][b], chr(cp)
        assert ours["vmtx"][a] == ref["vmtx"][b], chr(cp)
    assert _outline(ours, ".notdef") == _outline(ref, ".notdef")
    # the head box is the kept glyphs' box, as fontTools recalculates it
    assert [getattr(ours["head"], k) for k in ("xMin", "yMin", "xMax", "yMax")] == [
        getattr(ref["head"], k) for k in ("xMin", "yMin", "xMax", "yMax")
    ]
    assert ours["OS/2"].usFirstCharIndex == ref["OS/2"].usFirstCharIndex
    assert ours["OS/2"].usLastCharIndex == ref["OS/2"].usLastCharIndex


def test_composites_bring_their_components(base: bytes) -> None:
    font = TTFont(io.BytesIO(GlyphSubsetter(base).subset("i")))
    glyph = font["glyf"][font.getBestCmap()[ord("i")]]
    assert glyph.isComposite()
    assert all(c.glyphName in font.getGlyphOrder() for c in glyph.components)


def test_deterministic_and_readable_by_reportlab(base: bytes) -> None:
    subsetter = GlyphSubsetter(base)
    data = subsetter.subset(TEXT)
    assert data == subsetter.subset("".join(reversed(TEXT)))
    # the OFD->PDF direction embeds OFD fonts through reportlab
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "subset.ttf"
        path.write_bytes(data)
        assert {ord(ch) for ch in TEXT} <= set(TTFontFile(str(path)).charToGlyph)


def test_missing_characters_are_left_out(base: bytes) -> None:
    font = TTFont(io.BytesIO(GlyphSubsetter(base).subset("营\U00020000")))
    assert set(font.getBestCmap()) == {ord("营")}


def test_other_fonts_are_refused(base: bytes) -> None:
    font = TTFont(io.BytesIO(base))
    extra = newTable("ZZZZ")  # a table this subsetter does not know how to cut
    extra.data = b"\0\0\0\0"
    font["ZZZZ"] = extra
    buf = io.BytesIO()
    font.save(buf)
    with pytest.raises(UnsupportedBaseFont):
        GlyphSubsetter(buf.getvalue())

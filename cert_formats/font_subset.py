"""Cutting small TrueType subsets out of one parsed base font, many times over.

Every OFD licence face embeds a subset of the CJK font holding the ~230 glyphs
its text uses. ``fontTools.subset`` re-reads the whole ~7,000-glyph base font
(cmap, loca, hmtx, glyph names) and decodes and re-encodes every outline it
keeps, for every licence: about 150 ms of CPU each time. A face needs much less
than a general subsetter does, so :class:`GlyphSubsetter` parses the base once
and builds each subset from it directly:

* glyph outlines are copied byte for byte (composites get their component glyph
  IDs renumbered); nothing is decoded and re-encoded;
* ``cmap`` (format 4, the base's BMP subtables), ``hmtx``/``vmtx`` and ``VORG``
  are cut to the kept glyphs; ``head`` gets the kept glyphs' bounding box and
  ``OS/2`` its first/last character and pruned Unicode/code-page ranges;
* ``maxp``/``hhea``/``vhea`` maxima stay the base's (upper bounds, which is
  valid, and what ``pyftsubset`` does by default);
* layout tables (``GSUB``/``GPOS``/``GDEF``) are left out: OFD text is placed
  glyph by glyph (``DeltaX``), horizontally, so no reader applies them.

Only base fonts with TrueType outlines, a BMP cmap and post format 3 (no glyph
names) are accepted — the GB 2312 base that :mod:`cert_formats.ofd_face` cuts
with fontTools; anything else keeps going through ``fontTools.subset``.
The same text always gives the same bytes (no timestamps are written).
"""

from __future__ import annotations

import copy
import io
import struct
from collections.abc import Iterable
from typing import Any, Final

from fontTools.ttLib import TTFont, newTable
from fontTools.ttLib.tables._c_m_a_p import CmapSubtable
from fontTools.ttLib.tables._g_l_y_f import Glyph

#: tables copied as they are (their content does not depend on the glyph set)
_COPIED: Final = ("name", "post", "gasp", "maxp", "hhea", "vhea")
#: tables this module knows how to cut or rebuild
_HANDLED: Final = frozenset(("glyf", "loca", "cmap", "hmtx", "vmtx", "VORG", "head", "OS/2", *_COPIED))
#: tables that may be dropped (see the module docstring)
_DROPPED: Final = frozenset(("GSUB", "GPOS", "GDEF", "GlyphOrder"))
_BMP_SUBTABLES: Final = ((0, 3), (3, 1))


class UnsupportedBaseFont(ValueError):
    """The base font is not one :class:`GlyphSubsetter` can cut (use fontTools.subset)."""


class GlyphSubsetter:
    """A parsed base font, from which subsets for given text are cut cheaply."""

    def __init__(self, data: bytes) -> None:
        # lazy=None: tables decoded on first use, glyph records left undecoded
        font = TTFont(io.BytesIO(data), recalcBBoxes=False, recalcTimestamp=False)
        tags = set(font.keys())
        if "glyf" not in tags or not tags <= _HANDLED | _DROPPED:
            raise UnsupportedBaseFont(f"tables {sorted(tags - _HANDLED - _DROPPED)} cannot be subset here")
        if font["post"].formatType != 3.0:
            raise UnsupportedBaseFont("the base font carries glyph names (post format != 3)")
        subtables = {(t.platformID, t.platEncID): t for t in font["cmap"].tables}
        if not set(subtables) <= set(_BMP_SUBTABLES) or any(t.format != 4 for t in subtables.values()):
            raise UnsupportedBaseFont("the base cmap is not BMP format 4 only")
        self._font = font
        self._order: list[str] = font.getGlyphOrder()
        self._gid = {name: i for i, name in enumerate(self._order)}
        self._cmap: dict[int, str] = font.getBestCmap() or {}
        self._cmap_ids = sorted(subtables)
        glyf = font["glyf"]
        # the raw glyph records: reading glyf.glyphs (not glyf[name]) never decodes them
        self._glyphs: dict[str, Glyph] = glyf.glyphs
        self._glyf = glyf
        # every table decoded here, once: subsets only read them (and so may run in threads)
        self._tables: dict[str, Any] = {tag: font[tag] for tag in sorted(tags - _DROPPED - {"glyf", "loca"})}

    def covers(self, text: Iterable[str]) -> bool:
        """Whether every character of ``text`` has a glyph in the base font."""
        return all(ord(ch) in self._cmap for ch in text)

    def subset(self, text: str) -> bytes:
        """A TrueType font with the glyphs of ``text`` (plus ``.notdef``); characters
        the base font has no glyph for are left out, as ``fontTools.subset`` does."""
        codepoints = sorted({ord(ch) for ch in text if ord(ch) in self._cmap})
        wanted = {".notdef", *(self._cmap[cp] for cp in codepoints)}
        wanted |= self._components(wanted)
        order = sorted(wanted, key=self._gid.__getitem__)
        return self._build(order, {cp: self._cmap[cp] for cp in codepoints})

    # -- internals ---------------------------------------------------------------

    def _components(self, names: set[str]) -> set[str]:
        """Glyphs that the composites among ``names`` are built of, transitively."""
        found: set[str] = set()
        todo = list(names)
        while todo:
            glyph = self._glyphs[todo.pop()]
            if glyph.isComposite():
                for comp in glyph.getComponentNames(self._glyf):
                    if comp not in names and comp not in found:
                        found.add(comp)
                        todo.append(comp)
        return found

    def _glyph(self, name: str) -> Glyph:
        base = self._glyphs[name]
        if not base.isComposite():
            # compiled with recalcBBoxes off, a raw record is written as it is
            return base
        # a composite names its parts by glyph ID: decode it against the base glyph
        # order, and let the new table number the parts by name
        glyph = Glyph(base.data) if hasattr(base, "data") else copy.deepcopy(base)
        glyph.expand(self._glyf)
        return glyph

    def _build(self, order: list[str], cmap: dict[int, str]) -> bytes:
        src = self._tables
        out = TTFont(recalcBBoxes=False, recalcTimestamp=False)
        out.setGlyphOrder(order)
        for tag in _COPIED:
            if tag in src:
                out[tag] = copy.copy(src[tag])
        glyf = newTable("glyf")
        glyf.glyphOrder = order
        glyf.glyphs = {name: self._glyph(name) for name in order}
        out["glyf"] = glyf
        out["loca"] = newTable("loca")
        for tag in ("hmtx", "vmtx"):
            if tag in src:
                table = newTable(tag)
                metrics = src[tag].metrics
                table.metrics = {name: metrics[name] for name in order}
                out[tag] = table
        if "VORG" in src:
            vorg = copy.copy(src["VORG"])
            records = src["VORG"].VOriginRecords
            vorg.VOriginRecords = {name: records[name] for name in order if name in records}
            out["VORG"] = vorg
        cmap_table = newTable("cmap")
        cmap_table.tableVersion = 0
        cmap_table.tables = []
        for platform_id, encoding_id in self._cmap_ids:
            sub = CmapSubtable.newSubtable(4)
            sub.platformID, sub.platEncID, sub.language = platform_id, encoding_id, 0
            sub.cmap = dict(cmap)
            cmap_table.tables.append(sub)
        out["cmap"] = cmap_table
        head = copy.copy(src["head"])
        head.xMin, head.yMin, head.xMax, head.yMax = _bounds(glyf.glyphs.values())
        out["head"] = head
        if "OS/2" in src:
            os2: Any = copy.copy(src["OS/2"])
            out["OS/2"] = os2
            os2.recalcUnicodeRanges(out, pruneOnly=True)
            if os2.version >= 1:
                os2.recalcCodePageRanges(out, pruneOnly=True)
            # usFirstCharIndex / usLastCharIndex are updated when OS/2 is compiled
        buf = io.BytesIO()
        out.save(buf, reorderTables=True)
        return buf.getvalue()


_GLYPH_HEADER: Final = struct.Struct(">hhhhh")


def _bounds(glyphs: Iterable[Glyph]) -> tuple[int, int, int, int]:
    """The union of the glyphs' boxes, read from each record's header."""
    boxes = []
    for glyph in glyphs:
        if hasattr(glyph, "data"):
            if len(glyph.data) < _GLYPH_HEADER.size:
                continue  # an empty glyph (a space) has no box
            contours, *box = _GLYPH_HEADER.unpack_from(glyph.data)
        else:
            contours = glyph.numberOfContours
            box = [getattr(glyph, attr, 0) for attr in ("xMin", "yMin", "xMax", "yMax")]
        if contours:
            boxes.append(box)
    if not boxes:
        return 0, 0, 0, 0
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))

"""The visible appearance of a signature field: a small reportlab-drawn PDF page.

pyHanko's text stamps use simple Type 1 fonts, which cannot show the Chinese
names agencies sign with. The appearance is therefore drawn with reportlab
(with the project's embedded CJK font when the text needs it) into a one-page
PDF exactly the size of the field, and pyHanko places that page as the
field's appearance stream. A caller may supply its own one-page PDF instead
(e.g. the agency's seal artwork).
"""

from __future__ import annotations

import binascii
import io
import uuid
from typing import Any

from pyhanko.pdf_utils import content, layout
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.stamp import StaticStampStyle
from reportlab.lib.colors import Color
from reportlab.pdfgen import canvas

_INK = Color(0.72, 0.05, 0.05)  # seal red
_MARGIN_PT = 4.0


class PdfPageContent(content.PdfContent):
    """The first page of an in-memory PDF, drawn as a form XObject.

    pyHanko's own ``ImportedPdfPage`` reads from a file name; licence PDFs are
    rendered in memory and should not touch the disk.
    """

    def __init__(self, pdf: bytes) -> None:
        super().__init__()
        self._pdf = pdf

    def render(self) -> bytes:
        writer = self._ensure_writer
        reader = PdfFileReader(io.BytesIO(self._pdf))
        xobj = writer.import_page_as_xobject(reader, page_ix=0)
        name = "/Appearance" + binascii.hexlify(uuid.uuid4().bytes).decode("ascii")
        self.resources.xobject[name] = xobj
        x1, y1, x2, y2 = xobj.get_object()["/BBox"]
        self.box = layout.BoxConstraints(width=abs(x1 - x2), height=abs(y1 - y2))
        return name.encode("ascii") + b" Do"


def stamp_style(appearance_pdf: bytes) -> Any:
    """A pyHanko stamp style that shows ``appearance_pdf``'s first page, unscaled and opaque."""
    return StaticStampStyle(
        background=PdfPageContent(appearance_pdf),
        background_opacity=1.0,
        border_width=0,
        background_layout=layout.SimpleBoxLayoutRule(
            x_align=layout.AxisAlignment.ALIGN_MID,
            y_align=layout.AxisAlignment.ALIGN_MID,
            margins=layout.Margins.uniform(0),  # type: ignore[no-untyped-call]
        ),
    )


def _needs_cjk(lines: list[str]) -> bool:
    return any(ord(ch) > 0xFF for line in lines for ch in line)


def render_text_appearance(width: float, height: float, lines: list[str]) -> bytes:
    """A one-page PDF of ``width`` x ``height`` points with ``lines`` inside a thin frame.

    Lines that need CJK glyphs use the embedded font of :mod:`cert_formats.fonts`
    (which raises ``pdf.font_unavailable`` if the host has none); Latin-only
    text uses Helvetica, which every reader has. The font size shrinks until
    the longest line and all lines fit.
    """
    buf = io.BytesIO()
    pdf = canvas.Canvas(buf, pagesize=(width, height), pageCompression=1)
    if _needs_cjk(lines):
        from cert_formats.fonts import find_cjk_font  # reportlab font registration on demand

        font = find_cjk_font().name
    else:
        font = "Helvetica"
    pdf.setStrokeColor(_INK)
    pdf.setFillColor(_INK)
    pdf.setLineWidth(0.8)
    pdf.rect(0.5, 0.5, width - 1, height - 1, stroke=1, fill=0)
    inner_w = width - 2 * _MARGIN_PT
    inner_h = height - 2 * _MARGIN_PT
    size = 10.0
    if lines:
        widest = max(pdf.stringWidth(line, font, 1.0) for line in lines) or 1.0
        size = min(size, inner_w / widest, inner_h / (1.25 * len(lines)))
    size = max(size, 2.0)
    y = height - _MARGIN_PT - size
    for line in lines:
        pdf.setFont(font, size)
        pdf.drawString(_MARGIN_PT, y, line)
        y -= 1.25 * size
    pdf.showPage()
    pdf.save()
    return buf.getvalue()

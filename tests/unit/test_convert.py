"""PDF <-> OFD conversion: round trips of the licence faces, fonts, paths, images, metadata,
the unsealed-copy rule, the hostile PDF corpus and the OFD corpus through the converter.

Positions are checked twice: with pypdf's text extraction (an independent reader of the
PDFs) and glyph by glyph with our own content reader; pictures are compared by rendering
both PDFs with pdftoppm (poppler) and measuring the mean absolute pixel difference.
"""

from __future__ import annotations

import functools
import importlib.util
import io
import json
import math
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import numpy as np
import pypdf
import pytest
from PIL import Image
from reportlab.lib.utils import ImageReader
from reportlab.pdfgen.canvas import Canvas

from cert_formats.convert import (
    META_COPY,
    META_ORIGINAL_FORMAT,
    META_ORIGINAL_SM3,
    META_SOURCE_FORMAT,
    META_SOURCE_SM3,
    PROOF_BUNDLE_NAME,
    ConvertLimits,
    PdfLimits,
    convert,
    detect_format,
    ofd_to_pdf,
    pdf_to_ofd,
    read_pdf,
)
from cert_formats.convert.fontfile import system_font_subset
from cert_formats.convert.metadata import from_pdf, pdf_info_key
from cert_formats.convert.ofd_to_pdf import arc_to_cubics
from cert_formats.convert.pdflex import parse_to_unicode
from cert_formats.convert.pdfparse import PdfContent, TextRun, parse_xmp
from cert_formats.ofd import (
    ArcTo,
    Attachment,
    ClosePath,
    Color,
    CubicTo,
    DocumentInfo,
    Font,
    ImageObject,
    LineTo,
    MoveTo,
    OFDDocument,
    Page,
    PathObject,
    QuadTo,
    TextObject,
    build_parts,
    pack_parts,
    read_ofd,
    write_ofd,
)
from cert_formats.pdf_face import render_licence_pdf
from cert_formats.template import builtin_templates
from signing.errors import InvalidInputError
from signing.sm3 import sm3_hex

ROOT = Path(__file__).resolve().parents[2]
PDF_CORPUS = ROOT / "tests" / "corpus" / "pdf"
OFD_CORPUS = ROOT / "tests" / "corpus" / "ofd"
HOST = "verify.example.cn"
MM_PER_PT = 25.4 / 72
TEMPLATES = sorted(builtin_templates())
POSITION_MM = 0.5
SIZE_PT = 0.1


# --------------------------------------------------------------------------- helpers


@functools.cache
def face_pdf(key: str) -> bytes:
    template = builtin_templates()[key]
    return render_licence_pdf(template.sample_licence(), template, verify_host=HOST)


@functools.cache
def face_round_trip(key: str) -> tuple[bytes, bytes, Any, Any]:
    """(ofd bytes, pdf bytes, pdf->ofd result, ofd->pdf result) for one face."""
    to_ofd = pdf_to_ofd(face_pdf(key))
    back = ofd_to_pdf(to_ofd.data)
    return to_ofd.data, back.data, to_ofd, back


@functools.cache
def face_content(key: str, converted: bool = False) -> PdfContent:
    """Our reader's view of the original face PDF, or of its PDF->OFD->PDF copy."""
    return read_pdf(face_round_trip(key)[1] if converted else face_pdf(key))


def pypdf_runs(data: bytes) -> list[tuple[str, float, float, float]]:
    """(text, x_mm, y_mm from the top, size_pt) of every text-showing operation, per pypdf."""
    reader = pypdf.PdfReader(io.BytesIO(data))
    page = reader.pages[0]
    height = float(page.mediabox.height)
    out: list[tuple[str, float, float, float]] = []

    def visit(text: str, cm: list[float], tm: list[float], _font: Any, size: float) -> None:
        if not text.strip():
            return
        x = tm[4] * cm[0] + tm[5] * cm[2] + cm[4]
        y = tm[4] * cm[1] + tm[5] * cm[3] + cm[5]
        scale = math.hypot(tm[2] * cm[0] + tm[3] * cm[2], tm[2] * cm[1] + tm[3] * cm[3])
        out.append((text, x * MM_PER_PT, (height - y) * MM_PER_PT, size * scale))

    page.extract_text(visitor_text=visit)
    return out


def render_gray(data: bytes, tmp_path: Path, name: str, dpi: int = 40) -> np.ndarray:
    """The first page rendered by pdftoppm (poppler) as a grey-level array."""
    if shutil.which("pdftoppm") is None:
        pytest.fail("pdftoppm is missing: apt-get install poppler-utils (scripts/setup.sh --test)")
    src = tmp_path / f"{name}.pdf"
    src.write_bytes(data)
    subprocess.run(["pdftoppm", "-r", str(dpi), "-gray", "-singlefile", str(src), str(tmp_path / name)],
                   check=True, timeout=60)
    return np.asarray(Image.open(tmp_path / f"{name}.pgm"), dtype=float)


def glyphs(content: PdfContent) -> list[tuple[str, float, float, float]]:
    """(char text, x_mm, y_mm, size_pt) of every visible glyph, in painting order."""
    out = []
    for run in content.pages[0].texts:
        if run.visible:
            for chars, (x, y) in zip(run.chars, run.origins, strict=True):
                out.append((chars, x * MM_PER_PT, y * MM_PER_PT, run.size))
    return out


def font_file(text: str) -> Font:
    family, data = system_font_subset(text)
    return Font(family, data=data)


def png(size: tuple[int, int], mode: str = "RGBA") -> bytes:
    image = Image.new(mode, size)
    for x in range(size[0]):
        for y in range(size[1]):
            value = (x * 37 + y * 11) % 256
            image.putpixel((x, y), (value, 255 - value, (x * y) % 256, 128 + y % 128)[: len(mode)])
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def jpeg(size: tuple[int, int]) -> bytes:
    image = Image.new("RGB", size, (200, 30, 40))
    for x in range(0, size[0], 4):
        for y in range(size[1]):
            image.putpixel((x, y), (20, 120, 220))
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


# --------------------------------------------------------------------------- licence faces


def pypdf_lines(data: bytes, sizes: list[int] | None = None) -> list[tuple[str, float, float, float]]:
    """pypdf's runs joined into the strings a producer wrote in one ``BT`` block.

    pypdf reports every chunk of one text block (reportlab switches subset fonts
    inside a string) at the block's start; ``sizes`` groups another file's chunks
    the same way.
    """
    runs = pypdf_runs(data)
    if sizes is None:
        sizes = []
        for i, run in enumerate(runs):
            if i and run[1:3] == runs[i - 1][1:3] and sizes:
                sizes[-1] += 1
            else:
                sizes.append(1)
    out, i = [], 0
    for n in sizes:
        group = runs[i:i + n]
        out.append(("".join(g[0] for g in group), group[0][1], group[0][2], group[0][3]))
        i += n
    assert i == len(runs)
    return out


@pytest.mark.parametrize("key", TEMPLATES)
def test_face_text_survives_pdf_ofd_pdf(key: str) -> None:
    _ofd, back, to_ofd, to_pdf = face_round_trip(key)
    before = pypdf_lines(face_pdf(key))
    runs = pypdf_runs(face_pdf(key))
    sizes: list[int] = []
    for i, run in enumerate(runs):
        if i and sizes and run[1:3] == runs[i - 1][1:3]:
            sizes[-1] += 1
        else:
            sizes.append(1)
    after = pypdf_lines(back, sizes)
    assert len(before) == len(after) > 20
    for (t0, x0, y0, s0), (t1, x1, y1, s1) in zip(before, after, strict=True):
        assert t1 == t0
        assert abs(x1 - x0) <= POSITION_MM and abs(y1 - y0) <= POSITION_MM, (t0, x0, y0, x1, y1)
        assert abs(s1 - s0) <= SIZE_PT, (t0, s0, s1)
    # the fonts the PDF embedded were carried over, not replaced
    assert to_ofd.embedded_fonts >= 1 and to_ofd.fallback_fonts == 0
    assert to_pdf.embedded_fonts >= 1 and to_pdf.fallback_fonts == 0


@pytest.mark.parametrize("key", TEMPLATES)
def test_face_glyph_positions_survive(key: str) -> None:
    """Every glyph (not only every run's start) lands where it was: DeltaX is honoured."""
    before, after = glyphs(face_content(key)), glyphs(face_content(key, True))
    assert len(before) == len(after) > 100
    worst = 0.0
    for (c0, x0, y0, s0), (c1, x1, y1, s1) in zip(before, after, strict=True):
        assert c1 == c0
        assert abs(s1 - s0) <= SIZE_PT
        worst = max(worst, abs(x1 - x0), abs(y1 - y0))
    assert worst <= POSITION_MM


@pytest.mark.parametrize("key", TEMPLATES)
def test_face_ofd_has_the_pdf_text_at_the_same_place(key: str) -> None:
    ofd, _back, _a, _b = face_round_trip(key)
    document = read_ofd(ofd).document
    page = document.pages[0]
    source = face_content(key).pages[0]
    assert page.width == pytest.approx(source.width * MM_PER_PT, abs=0.001)
    assert page.height == pytest.approx(source.height * MM_PER_PT, abs=0.001)
    runs = [r for r in source.texts if r.visible and abs(r.angle) < 0.5]
    for run in runs:
        x, y = run.origins[0][0] * MM_PER_PT, run.origins[0][1] * MM_PER_PT
        assert any(t.text == run.text and abs(t.x - x) <= 0.01 and abs(t.y - y) <= 0.01 for t in page.texts), run.text
    # every font in the OFD is an embedded TrueType file our reader and reportlab accept
    fonts = {t.font for t in page.texts}
    assert fonts and all(f.data is not None and f.data[:4] == b"\x00\x01\x00\x00" for f in fonts)


@pytest.mark.parametrize("key", TEMPLATES)
def test_face_paths_survive(key: str) -> None:
    before, after = face_content(key).pages[0].paths, face_content(key, True).pages[0].paths
    assert len(before) == len(after) > 20
    for p0, p1 in zip(before, after, strict=True):
        for v0, v1 in zip(p0.bounds(), p1.bounds(), strict=True):
            assert abs(v1 - v0) * MM_PER_PT <= 0.05
        assert (p0.stroke is None) == (p1.stroke is None) and (p0.fill is None) == (p1.fill is None)
        for c0, c1 in ((p0.stroke, p1.stroke), (p0.fill, p1.fill)):
            if c0 is not None and c1 is not None:
                assert all(abs(a - b) <= 1 / 255 + 1e-9 for a, b in zip(c0, c1, strict=True))
        if p0.stroke is not None:
            assert abs(p1.line_width - p0.line_width) <= 0.01


@pytest.mark.parametrize("key", TEMPLATES)
def test_face_renders_the_same(key: str, tmp_path: Path) -> None:
    _ofd, back, _a, _b = face_round_trip(key)
    original = render_gray(face_pdf(key), tmp_path, "original")
    converted = render_gray(back, tmp_path, "converted")
    assert original.shape == converted.shape
    difference = float(np.abs(original - converted).mean())
    # the scale of the metric: the same page moved by one pixel (0.6 mm at 40 dpi)
    shifted = float(np.abs(original - np.roll(original, 1, axis=1)).mean())
    assert shifted > 5.0
    assert difference < 2.0, difference
    assert difference < 0.15 * shifted, (difference, shifted)


@pytest.mark.parametrize("key", TEMPLATES)
def test_face_metadata_survives_and_marks_the_copy(key: str) -> None:
    ofd, back, to_ofd, to_pdf = face_round_trip(key)
    source = face_pdf(key)
    original = pypdf.PdfReader(io.BytesIO(source)).metadata
    assert original is not None
    # PDF -> OFD: DocInfo and CustomDatas
    info = read_ofd(ofd).document.info
    assert info.title == original["/Title"]
    assert info.author == original["/Author"]
    assert info.subject == original["/Subject"]  # the licence identifier
    assert ", ".join(info.keywords) == original["/Keywords"]
    custom = info.custom
    assert custom["certledger.identifier"] == original["/Subject"]
    assert custom["certledger.type_code"] == builtin_templates()[key].type_code
    assert custom["certledger.verify_url"].endswith("/v/" + original["/Subject"])
    assert custom[META_COPY] == "unsealed"
    assert custom[META_SOURCE_SM3] == sm3_hex(source) == to_ofd.source_sm3
    assert custom[META_SOURCE_FORMAT] == "pdf"
    assert info.creation_date == date.fromisoformat(builtin_templates()[key].sample_licence().issue_date.isoformat())
    # OFD -> PDF: Info, custom keys, XMP
    meta = pypdf.PdfReader(io.BytesIO(back)).metadata
    assert meta is not None
    for key_ in ("/Title", "/Author", "/Subject", "/Keywords"):
        assert meta[key_] == original[key_]
    assert meta["/certledger.identifier"] == original["/Subject"]
    assert meta["/certledger.copy"] == "unsealed"
    assert meta["/certledger.source_sm3"] == sm3_hex(ofd) == to_pdf.source_sm3
    assert meta["/certledger.source_format"] == "ofd"
    assert meta["/certledger.original_sm3"] == sm3_hex(source)
    assert meta["/certledger.original_format"] == "pdf"
    assert meta["/CreationDate"].startswith(original["/CreationDate"][:10])
    xmp = face_content(key, True).xmp
    assert xmp["cl:identifier"] == original["/Subject"]
    assert xmp["dc:title"] == original["/Title"]
    assert not to_ofd.sealed and not to_pdf.sealed


def test_conversion_is_deterministic() -> None:
    key = TEMPLATES[0]
    ofd, back, _a, _b = face_round_trip(key)
    assert pdf_to_ofd(face_pdf(key)).data == ofd
    assert ofd_to_pdf(ofd).data == back


# --------------------------------------------------------------------------- OFD first


@functools.cache
def sample_ofd() -> tuple[OFDDocument, bytes]:
    text = "证照编号ABC营业执照"
    font = font_file(text + "粗体")
    bold = Font(font.family, data=font.data, bold=True)
    deltas = (3.1, 2.9, 4.0, 3.5, 1.2, 1.8, 2.0, 5.0, 4.4, 4.0)
    objects = (
        TextObject(text, 20.0, 30.0, font, 5.0, fill=Color(180, 20, 30), delta_x=deltas),
        TextObject("粗体", 20.0, 45.0, bold, 7.0),
        PathObject.rect(10, 10, 190, 120, stroke=Color(40, 40, 160), fill=Color(250, 248, 240), line_width=0.8),
        PathObject.circle(150, 80, 20, stroke=Color(200, 0, 0), line_width=1.2),
        PathObject.arc(60, 90, 15, 200, 340, stroke=Color(0, 120, 0), line_width=0.5),
        PathObject((MoveTo(30, 100), QuadTo(50, 70, 70, 100), CubicTo(80, 110, 90, 90, 100, 100),
                    ArcTo(10, 5, 30.0, False, True, 115, 110), LineTo(30, 110), ClosePath()),
                   stroke=None, fill=Color(10, 80, 200)),
        ImageObject(png((24, 16)), "PNG", 120.0, 20.0, 30.0, 20.0),
        ImageObject(jpeg((32, 32)), "JPEG", 160.0, 20.0, 25.0, 25.0),
    )
    info = DocumentInfo(doc_id="0123456789abcdef0123456789abcdef", title="食品经营许可证", author="某市市场监督管理局",
                        subject="1.2.156.3005.2.X", creation_date=date(2024, 5, 17), mod_date=date(2024, 5, 18),
                        keywords=("电子证照", "许可证"), custom_data=(("证照编号", "JY123"), ("licence", "L-1")))
    document = OFDDocument(info=info, pages=(Page(objects, 210.0, 140.0),), attachments=(
        Attachment(PROOF_BUNDLE_NAME, b'{"record": "r", "proof": [1, 2]}', "application/json"),
        Attachment("other.txt", b"not carried", "text/plain")))
    return document, write_ofd(document)


def sampled_points(commands: tuple[Any, ...]) -> list[tuple[float, float]]:
    """Points along a path (curves sampled), for comparing geometry across forms."""
    pts: list[tuple[float, float]] = []
    cur = start = (0.0, 0.0)
    for cmd in commands:
        if isinstance(cmd, MoveTo):
            cur = start = (cmd.x, cmd.y)
            pts.append(cur)
        elif isinstance(cmd, LineTo):
            cur = (cmd.x, cmd.y)
            pts.append(cur)
        elif isinstance(cmd, QuadTo):
            for i in range(1, 17):
                t = i / 16
                pts.append(((1 - t) ** 2 * cur[0] + 2 * (1 - t) * t * cmd.x1 + t * t * cmd.x,
                            (1 - t) ** 2 * cur[1] + 2 * (1 - t) * t * cmd.y1 + t * t * cmd.y))
            cur = (cmd.x, cmd.y)
        elif isinstance(cmd, CubicTo | ArcTo):
            segments = ([(cmd.x1, cmd.y1, cmd.x2, cmd.y2, cmd.x, cmd.y)] if isinstance(cmd, CubicTo)
                        else arc_to_cubics(cur[0], cur[1], cmd))
            for x1, y1, x2, y2, x3, y3 in segments:
                for i in range(1, 17):
                    t = i / 16
                    a, b, c, d = (1 - t) ** 3, 3 * (1 - t) ** 2 * t, 3 * (1 - t) * t * t, t ** 3
                    pts.append((a * cur[0] + b * x1 + c * x2 + d * x3, a * cur[1] + b * y1 + c * y2 + d * y3))
                cur = (x3, y3)
        elif isinstance(cmd, ClosePath):
            cur = start
    return pts


def extent(points: list[tuple[float, float]]) -> tuple[float, float, float, float]:
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return min(xs), min(ys), max(xs), max(ys)


def test_ofd_pdf_ofd_round_trip_keeps_everything() -> None:
    document, data = sample_ofd()
    to_pdf = ofd_to_pdf(data)
    assert to_pdf.proof_bundle and not to_pdf.source_sealed and to_pdf.fallback_fonts == 0
    again = pdf_to_ofd(to_pdf.data)
    result = read_ofd(again.data).document
    page0, page1 = document.pages[0], result.pages[0]
    assert (page1.width, page1.height) == pytest.approx((page0.width, page0.height), abs=0.001)
    # text: same strings, origins, sizes, colours, advances; bold kept as the font's flag
    assert [t.text for t in page1.texts] == [t.text for t in page0.texts]
    for t0, t1 in zip(page0.texts, page1.texts, strict=True):
        assert (t1.x, t1.y) == pytest.approx((t0.x, t0.y), abs=0.01)
        assert t1.size == pytest.approx(t0.size, abs=SIZE_PT * MM_PER_PT)
        assert t1.fill == t0.fill
        assert t1.advances == pytest.approx(t0.advances, abs=0.01)
        assert t1.font.bold == t0.font.bold
    # paths: same count, same geometry (curves compared along their length), same paint
    paths0 = [o for o in page0.objects if isinstance(o, PathObject)]
    paths1 = [o for o in page1.objects if isinstance(o, PathObject)]
    assert len(paths0) == len(paths1)
    for p0, p1 in zip(paths0, paths1, strict=True):
        assert extent(sampled_points(p1.commands)) == pytest.approx(extent(sampled_points(p0.commands)), abs=0.05)
        assert (p1.stroke, p1.fill) == (p0.stroke, p0.fill)
        if p0.stroke is not None:
            assert p1.line_width == pytest.approx(p0.line_width, abs=0.005)
    # images: same boxes; PNG pixels identical, JPEG bytes passed through unchanged
    images0 = [o for o in page0.objects if isinstance(o, ImageObject)]
    images1 = [o for o in page1.objects if isinstance(o, ImageObject)]
    assert len(images0) == len(images1) == 2
    for i0, i1 in zip(images0, images1, strict=True):
        assert (i1.x, i1.y, i1.width, i1.height) == pytest.approx((i0.x, i0.y, i0.width, i0.height), abs=0.01)
    assert images1[1].format == "JPEG" and images1[1].data == images0[1].data
    a0 = np.asarray(Image.open(io.BytesIO(images0[0].data)).convert("RGBA"))
    a1 = np.asarray(Image.open(io.BytesIO(images1[0].data)).convert("RGBA"))
    assert a0.shape == a1.shape and np.array_equal(a0, a1)
    # metadata, custom data (non-ASCII names too) and the proof bundle; other attachments are not carried
    info = result.info
    assert (info.title, info.author, info.subject) == (document.info.title, document.info.author,
                                                       document.info.subject)
    assert info.keywords == document.info.keywords
    assert (info.creation_date, info.mod_date) == (date(2024, 5, 17), date(2024, 5, 18))
    assert info.custom["证照编号"] == "JY123" and info.custom["licence"] == "L-1"
    assert info.custom[META_SOURCE_SM3] == sm3_hex(to_pdf.data)
    assert info.custom[META_ORIGINAL_SM3] == sm3_hex(data)
    assert info.custom[META_ORIGINAL_FORMAT] == "ofd"
    assert [a.name for a in result.attachments] == [PROOF_BUNDLE_NAME]
    assert result.attachment(PROOF_BUNDLE_NAME).data == document.attachment(PROOF_BUNDLE_NAME).data


def test_ofd_to_pdf_honours_uneven_deltax_glyph_by_glyph() -> None:
    document, data = sample_ofd()
    text = document.pages[0].texts[0]
    run = read_pdf(ofd_to_pdf(data).data).pages[0].texts[0]
    assert run.text == text.text
    xs = [x * MM_PER_PT for x, _ in run.origins]
    expected = [text.x + sum(text.advances[:i]) for i in range(len(text.text))]
    assert xs == pytest.approx(expected, abs=0.01)
    assert all(y * MM_PER_PT == pytest.approx(text.y, abs=0.01) for _, y in run.origins)


def test_proof_bundle_is_copied_unchanged_both_ways() -> None:
    bundle = json.dumps({"record": {"licence": "x"}, "inclusion": ["ab", "cd"]}).encode()
    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(face_pdf(TEMPLATES[-1]))))
    writer.add_attachment(PROOF_BUNDLE_NAME, bundle)
    buf = io.BytesIO()
    writer.write(buf)
    with_bundle = buf.getvalue()
    to_ofd = pdf_to_ofd(with_bundle)
    assert to_ofd.proof_bundle
    assert read_ofd(to_ofd.data).document.attachment(PROOF_BUNDLE_NAME).data == bundle
    back = ofd_to_pdf(to_ofd.data)
    assert back.proof_bundle
    assert pypdf.PdfReader(io.BytesIO(back.data)).attachments[PROOF_BUNDLE_NAME] == [bundle]
    # without a bundle nothing is invented
    assert not pdf_to_ofd(face_pdf(TEMPLATES[-1])).proof_bundle


def test_signed_sources_are_reported_and_their_signatures_not_carried() -> None:
    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(face_pdf(TEMPLATES[-1]))))
    writer._root_object[pypdf.generic.NameObject("/AcroForm")] = pypdf.generic.DictionaryObject(
        {pypdf.generic.NameObject("/SigFlags"): pypdf.generic.NumberObject(3),
         pypdf.generic.NameObject("/Fields"): pypdf.generic.ArrayObject()})
    buf = io.BytesIO()
    writer.write(buf)
    result = pdf_to_ofd(buf.getvalue())
    assert result.source_sealed and not result.sealed
    assert read_ofd(result.data).signatures_loc is None
    document, _ = sample_ofd()
    parts = build_parts(document, signatures_loc="Doc_0/Signs/Signatures.xml")
    sealed_ofd = pack_parts(parts)
    assert read_ofd(sealed_ofd).signatures_loc is not None
    back = ofd_to_pdf(sealed_ofd)
    assert back.source_sealed and not back.sealed
    reader = pypdf.PdfReader(io.BytesIO(back.data))
    assert "/AcroForm" not in reader.trailer["/Root"]


# --------------------------------------------------------------------------- images from PDFs


def test_pdf_images_keep_their_boxes_and_orientation() -> None:
    rgba = png((20, 10))
    photo = jpeg((16, 16))
    buf = io.BytesIO()
    c = Canvas(buf, pagesize=(400, 300), invariant=1)
    c.drawImage(ImageReader(io.BytesIO(rgba)), 50, 200, 80, 40, mask="auto")
    c.drawImage(ImageReader(io.BytesIO(photo)), 200, 200, 48, 48)
    c.saveState()  # the same PNG upside down: the OFD must show it upside down too
    c.translate(50, 150)
    c.scale(1, -1)
    c.drawImage(ImageReader(io.BytesIO(rgba)), 0, 0, 80, 40, mask="auto")
    c.restoreState()
    c.showPage()
    c.save()
    result = pdf_to_ofd(buf.getvalue())
    images = [o for o in read_ofd(result.data).document.pages[0].objects if isinstance(o, ImageObject)]
    assert result.images == len(images) == 3
    boxes = [(round(i.x / MM_PER_PT, 1), round(i.y / MM_PER_PT, 1), round(i.width / MM_PER_PT, 1),
              round(i.height / MM_PER_PT, 1)) for i in images]
    assert boxes == [(50.0, 60.0, 80.0, 40.0), (200.0, 52.0, 48.0, 48.0), (50.0, 150.0, 80.0, 40.0)]
    assert images[1].format == "JPEG" and images[1].data == photo
    upright = np.asarray(Image.open(io.BytesIO(images[0].data)).convert("RGBA"))
    flipped = np.asarray(Image.open(io.BytesIO(images[2].data)).convert("RGBA"))
    source = np.asarray(Image.open(io.BytesIO(rgba)).convert("RGBA"))
    assert np.array_equal(upright, source)
    assert np.array_equal(flipped, source[::-1])
    back = read_pdf(ofd_to_pdf(result.data).data).pages[0].images
    assert [(round(i.x, 1), round(i.y, 1), round(i.width, 1), round(i.height, 1)) for i in back] == boxes


# --------------------------------------------------------------------------- units


def test_arc_to_cubics_stays_on_the_circle() -> None:
    for large, sweep in ((False, True), (True, True), (False, False), (True, False)):
        arc = ArcTo(10.0, 10.0, 0.0, large, sweep, 20.0, 10.0)
        segments = arc_to_cubics(0.0, 10.0, arc)
        assert segments[-1][4:] == (20.0, 10.0)
        cur = (0.0, 10.0)
        for x1, y1, x2, y2, x3, y3 in segments:
            for i in range(1, 9):
                t = i / 8
                a, b, c, d = (1 - t) ** 3, 3 * (1 - t) ** 2 * t, 3 * (1 - t) * t * t, t ** 3
                px, py = a * cur[0] + b * x1 + c * x2 + d * x3, a * cur[1] + b * y1 + c * y2 + d * y3
                assert math.hypot(px - 10.0, py - 10.0) == pytest.approx(10.0, abs=0.01)
            cur = (x3, y3)
    # sweep=True goes clockwise on the page (y down): through the top, y < 10
    top = arc_to_cubics(0.0, 10.0, ArcTo(10.0, 10.0, 0.0, False, True, 20.0, 10.0))
    assert top[0][5] < 10.0


def test_to_unicode_cmap_parsing_is_bounded_and_correct() -> None:
    cmap = (b"/CIDInit /ProcSet findresource begin 2 begincodespacerange <0000> <FFFF> endcodespacerange "
            b"2 beginbfchar <0001> <4E2D> <0002> <D835DC00> endbfchar "
            b"2 beginbfrange <0010> <0012> <0041> <0020> <0021> [<6587> <0066 0069>] endbfrange endcmap")
    table = parse_to_unicode(cmap)
    assert table[1] == "中" and table[2] == "\U0001d400"
    assert [table[c] for c in (0x10, 0x11, 0x12)] == ["A", "B", "C"]
    assert table[0x20] == "文" and table[0x21] == "fi"
    with pytest.raises(InvalidInputError) as exc:
        parse_to_unicode(b"begincmap " + b"1 beginbfrange <0000> <FFFF> <0041> endbfrange " * 8)
    assert exc.value.reason == "convert.too_large"


def test_xmp_parsing_refuses_entities() -> None:
    good = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
            b'<rdf:Description xmlns:cl="https://certledger.example/ns/licence/1.0/" cl:typeCode="T1">'
            b"<cl:identifier>ID-1</cl:identifier></rdf:Description></rdf:RDF></x:xmpmeta>")
    assert parse_xmp(good) == {"cl:typeCode": "T1", "cl:identifier": "ID-1"}
    laughs = (b'<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]>'
              + good.replace(b"ID-1", b"&b;"))
    assert parse_xmp(laughs) == {}


def test_metadata_key_mapping_round_trips() -> None:
    for name in ("certledger.source_sm3", "证照编号", "pdf.SourceModified", "pdf.Producer", "x.y"):
        key = pdf_info_key(name)
        assert from_pdf({key: "v"}, {}).get(name) == "v", (name, key)


def test_detect_format_and_convert_errors() -> None:
    assert detect_format(face_pdf(TEMPLATES[0])) == "pdf"
    assert detect_format(sample_ofd()[1]) == "ofd"
    with pytest.raises(InvalidInputError) as exc:
        detect_format(b"GIF89a")
    assert exc.value.reason == "convert.unknown_format"
    with pytest.raises(InvalidInputError) as exc:
        convert(face_pdf(TEMPLATES[0]), "pdf")
    assert exc.value.reason == "convert.unsupported"
    with pytest.raises(InvalidInputError) as exc:
        convert(face_pdf(TEMPLATES[0]), "docx")
    assert exc.value.reason == "convert.unknown_format"
    assert convert(sample_ofd()[1], "pdf").target_format == "pdf"


def test_limits_and_deadline_apply() -> None:
    with pytest.raises(InvalidInputError) as exc:
        pdf_to_ofd(face_pdf(TEMPLATES[0]), limits=ConvertLimits(pdf=PdfLimits(max_operators=50)))
    assert exc.value.reason == "convert.too_large"
    with pytest.raises(InvalidInputError) as exc:
        pdf_to_ofd(face_pdf(TEMPLATES[0]), limits=ConvertLimits(max_seconds=0.001))
    assert exc.value.reason == "convert.timeout"
    with pytest.raises(InvalidInputError) as exc:
        pdf_to_ofd(face_pdf(TEMPLATES[0]), limits=ConvertLimits(pdf=PdfLimits(max_file_bytes=1000)))
    assert exc.value.reason == "convert.too_large"


def test_rotated_text_keeps_every_glyph_origin() -> None:
    """Seal characters are rotated in the PDF; each keeps its own origin in the OFD."""
    key = TEMPLATES[0]
    source = face_content(key).pages[0]
    rotated: list[TextRun] = [r for r in source.texts if abs(r.angle) >= 0.5]
    assert rotated
    texts = read_ofd(face_round_trip(key)[0]).document.pages[0].texts
    for run in rotated:
        for chars, (x, y) in zip(run.chars, run.origins, strict=True):
            assert any(t.text == chars and abs(t.x - x * MM_PER_PT) <= 0.01 and abs(t.y - y * MM_PER_PT) <= 0.01
                       for t in texts), chars


# --------------------------------------------------------------------------- hostile input


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("pdf_corpus_generate", PDF_CORPUS / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


EXPECTED: dict[str, str | None] = json.loads((PDF_CORPUS / "expected.json").read_text("utf-8"))
OFD_EXPECTED: dict[str, str | None] = json.loads((OFD_CORPUS / "expected.json").read_text("utf-8"))


class _Watch:
    active = False
    writes: ClassVar[list[tuple[str, object]]] = []


def _audit(event: str, args: tuple[object, ...]) -> None:
    if not _Watch.active:
        return
    if event == "open":
        mode = args[1] if len(args) > 1 else "r"
        flags = args[2] if len(args) > 2 else 0
        if (isinstance(mode, str) and any(c in mode for c in "wax+")) or (isinstance(flags, int) and flags & 0o3):
            _Watch.writes.append((event, args[0]))
    elif event in ("os.mkdir", "os.remove", "os.rename", "os.rmdir", "os.symlink", "os.link",
                   "shutil.rmtree", "os.truncate", "subprocess.Popen", "os.system", "os.exec", "os.posix_spawn"):
        _Watch.writes.append((event, args[0] if args else None))


sys.addaudithook(_audit)


@pytest.fixture
def no_side_effects(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fail if the code under test writes a file or starts a process (a launch action, say)."""
    monkeypatch.chdir(tmp_path)
    system_font_subset("corpus no font")  # warm the font cache outside the watch (it only reads)
    _Watch.writes.clear()
    _Watch.active = True
    try:
        yield
    finally:
        _Watch.active = False
    assert _Watch.writes == []
    assert list(tmp_path.iterdir()) == []


def test_pdf_corpus_is_large_and_fresh(tmp_path: Path) -> None:
    hostile = [name for name, reason in EXPECTED.items() if reason is not None]
    assert len(hostile) >= 15 and len(EXPECTED) >= 25
    assert _load_generator().generate(tmp_path) == EXPECTED
    for name in EXPECTED:
        assert (tmp_path / name).read_bytes() == (PDF_CORPUS / name).read_bytes(), name
        assert (PDF_CORPUS / name).stat().st_size < 200 * 1024


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_pdf_corpus_file_gives_a_clear_error_or_a_safe_copy(name: str, no_side_effects: None) -> None:
    data = (PDF_CORPUS / name).read_bytes()
    reason = EXPECTED[name]
    started = time.monotonic()
    if reason is None:
        result = pdf_to_ofd(data)
        document = read_ofd(result.data).document  # the copy is a well-formed OFD
        assert "corpus" in document.text or name in ("text_without_font.pdf",)
        assert document.info.custom[META_SOURCE_SM3] == sm3_hex(data)
        if name == "javascript_and_launch_actions.pdf":
            assert result.active_content_dropped
            assert "app.alert" not in json.dumps(document.info.custom, ensure_ascii=False)
    else:
        with pytest.raises(InvalidInputError) as exc:
            pdf_to_ofd(data)
        assert exc.value.reason == reason, str(exc.value)
        assert str(exc.value) and "\n" not in str(exc.value)
    assert time.monotonic() - started < 30


@pytest.mark.timeout(60)
def test_ofd_corpus_through_the_converter(no_side_effects: None) -> None:
    """Every hostile OFD is refused with a convert.* reason that names the reader's cause."""
    limit_causes = 0
    for name, cause in sorted(OFD_EXPECTED.items()):
        data = (OFD_CORPUS / name).read_bytes()
        if cause is None:
            result = ofd_to_pdf(data)
            assert "corpus" in (pypdf.PdfReader(io.BytesIO(result.data)).pages[0].extract_text() or "")
            continue
        with pytest.raises(InvalidInputError) as exc:
            ofd_to_pdf(data)
        assert exc.value.details["cause"] == cause, name
        assert exc.value.reason in ("convert.malformed_ofd", "convert.too_large", "convert.timeout"), name
        limit_causes += exc.value.reason == "convert.too_large"
    assert limit_causes >= 3


def test_pdf_parse_of_non_bytes_is_refused() -> None:
    with pytest.raises(InvalidInputError) as exc:
        read_pdf("licence.pdf")  # type: ignore[arg-type]
    assert exc.value.reason == "convert.malformed_pdf"


# --------------------------------------------------------------------------- composite fonts


def _cid_pdf(text: str) -> tuple[bytes, bytes]:
    """A PDF showing ``text`` through a Type0 / CIDFontType2 / Identity-H font; and the font."""
    from fontTools.ttLib import TTFont

    _family, font_data = system_font_subset(text)
    tt = TTFont(io.BytesIO(font_data))
    cmap = tt.getBestCmap()
    gids = [tt.getGlyphID(cmap[ord(ch)]) for ch in text]
    upem = tt["head"].unitsPerEm
    widths = " ".join(f"{g} [{tt['hmtx'][cmap[ord(ch)]][0] * 1000 // upem}]" for g, ch in zip(gids, text, strict=True))
    tounicode = ("/CIDInit /ProcSet findresource begin 12 dict begin begincmap "
                 "1 begincodespacerange <0000> <FFFF> endcodespacerange "
                 f"{len(text)} beginbfchar "
                 + " ".join(f"<{g:04X}> <{ord(ch):04X}>" for g, ch in zip(gids, text, strict=True))
                 + " endbfchar endcmap end end").encode()
    shown = "".join(f"{g:04X}" for g in gids)
    content = f"BT /F1 20 Tf 50 700 Td 2 Tc <{shown}> Tj ET".encode()
    generator = _load_generator()
    objects = generator.base_objects(content)
    objects[4] = (b"<< /Type /Font /Subtype /Type0 /BaseFont /ABCDEF+CJK /Encoding /Identity-H "
                  b"/DescendantFonts [6 0 R] /ToUnicode 7 0 R >>")
    objects[6] = (b"<< /Type /Font /Subtype /CIDFontType2 /BaseFont /ABCDEF+CJK /CIDToGIDMap /Identity "
                  b"/CIDSystemInfo << /Registry (Adobe) /Ordering (Identity) /Supplement 0 >> "
                  b"/DW 1000 /W [" + widths.encode() + b"] /FontDescriptor 8 0 R >>")
    objects[7] = generator.stream(tounicode)
    objects[8] = (b"<< /Type /FontDescriptor /FontName /ABCDEF+CJK /Flags 4 /FontBBox [0 -200 1000 900] "
                  b"/ItalicAngle 0 /Ascent 880 /Descent -120 /CapHeight 880 /StemV 80 /FontFile2 9 0 R >>")
    objects[9] = generator.stream(font_data, b"/Length1 %d " % len(font_data))
    return generator.build(objects), font_data


def test_identity_h_cid_font_is_retargeted_with_the_same_glyphs() -> None:
    from fontTools.pens.recordingPen import RecordingPen
    from fontTools.ttLib import TTFont

    text = "统一社会信用代码Ab1"
    pdf, font_data = _cid_pdf(text)
    content = read_pdf(pdf)
    run = content.pages[0].texts[0]
    assert run.text == text and run.font.is_cid
    result = pdf_to_ofd(pdf)
    assert result.embedded_fonts == 1 and result.fallback_fonts == 0
    obj = read_ofd(result.data).document.pages[0].texts[0]
    assert obj.text == text
    assert obj.x == pytest.approx(50 * MM_PER_PT, abs=0.01)
    assert obj.y == pytest.approx((842 - 700) * MM_PER_PT, abs=0.01)
    source, embedded = TTFont(io.BytesIO(font_data)), TTFont(io.BytesIO(obj.font.data or b""))
    for ch in set(text):
        outlines = []
        for tt in (source, embedded):
            pen = RecordingPen()
            tt.getGlyphSet()[tt.getBestCmap()[ord(ch)]].draw(pen)
            outlines.append(pen.value)
        assert outlines[0] == outlines[1] and outlines[0], ch
    # advances: the font's widths plus Tc = 2 pt
    widths = [source["hmtx"][source.getBestCmap()[ord(ch)]][0] * 1000 // source["head"].unitsPerEm for ch in text]
    expected = [(w / 1000 * 20 + 2) * MM_PER_PT for w in widths[:-1]]
    assert obj.advances == pytest.approx(expected, abs=0.002)
    # and back: the PDF shows the same text at the same place
    back = read_pdf(ofd_to_pdf(result.data).data).pages[0].texts[0]
    assert back.text == text
    assert [o[0] for o in back.origins] == pytest.approx([o[0] for o in run.origins], abs=0.01)


def test_page_rotation_defines_page_space() -> None:
    buf = io.BytesIO()
    c = Canvas(buf, pagesize=(595, 842), invariant=1)
    c.setPageRotation(90)
    c.setFont("Helvetica", 12)
    c.drawString(100, 500, "corpus")  # reportlab also swaps the MediaBox to 842 x 595
    c.setStrokeColorRGB(1, 0, 0)
    c.line(100, 100, 300, 100)
    c.showPage()
    c.save()
    page = read_ofd(pdf_to_ofd(buf.getvalue()).data).document.pages[0]
    # a landscape MediaBox displayed clockwise by 90 degrees: portrait, user (x, y) -> page (y, x)
    assert (page.width, page.height) == pytest.approx((595 * MM_PER_PT, 842 * MM_PER_PT), abs=0.001)
    first = page.texts[0]
    assert first.text == "c" and (first.x, first.y) == pytest.approx((500 * MM_PER_PT, 100 * MM_PER_PT), abs=0.01)
    assert "".join(t.text for t in page.texts) == "corpus"
    (line,) = [o for o in page.objects if isinstance(o, PathObject)]
    start, end = line.commands[0], line.commands[1]
    assert isinstance(start, MoveTo) and isinstance(end, LineTo)
    assert (start.x, start.y, end.x, end.y) == pytest.approx(
        (100 * MM_PER_PT, 100 * MM_PER_PT, 100 * MM_PER_PT, 300 * MM_PER_PT), abs=0.01)


# -- a font's cmap is bounded before reportlab expands it ------------------------------------


def _font_with_cmap12(groups: list[tuple[int, int, int]], num_glyphs: int = 100) -> bytes:
    """A minimal sfnt: a table directory with maxp and a cmap holding one format-12 subtable."""
    import struct

    sub = struct.pack(">HHIII", 12, 0, 16 + 12 * len(groups), 0, len(groups))
    sub += b"".join(struct.pack(">III", *g) for g in groups)
    cmap = struct.pack(">HH", 0, 1) + struct.pack(">HHI", 3, 10, 12) + sub
    maxp = struct.pack(">IH", 0x00005000, num_glyphs)
    header_len = 12 + 16 * 2
    out = struct.pack(">IHHHH", 0x00010000, 2, 32, 1, 0)
    out += struct.pack(">4sIII", b"cmap", 0, header_len, len(cmap))
    out += struct.pack(">4sIII", b"maxp", 0, header_len + len(cmap), len(maxp))
    return out + cmap + maxp


def test_a_cmap_that_maps_billions_of_codes_or_missing_glyphs_is_not_loaded() -> None:
    from cert_formats.convert.ofd_to_pdf import _bounded_cmap

    assert _bounded_cmap(_font_with_cmap12([(0x4E00, 0x4E10, 1)]))
    assert not _bounded_cmap(_font_with_cmap12([(0, 0xFFFFFFFF, 1)]))  # 4 GiB of dict in reportlab
    # 4 x 60 000 real glyphs: each range is honest, together past the bound
    four = [(0x10000 + i * 60_000, 0x10000 + i * 60_000 + 59_999, 1) for i in range(4)]
    assert _bounded_cmap(_font_with_cmap12(four[:3], num_glyphs=65_535))
    assert not _bounded_cmap(_font_with_cmap12(four, num_glyphs=65_535))
    assert not _bounded_cmap(_font_with_cmap12([(0x4E00, 0x4E10, 95)]))  # glyphs 95..111 of 100
    assert not _bounded_cmap(_font_with_cmap12([(0x4E10, 0x4E00, 1)]))  # start after end
    assert not _bounded_cmap(b"\x00\x01\x00\x00" + b"\xff" * 8)  # tables past the end
    # the subset the OFD writer embeds from the system CJK font passes
    subset = font_file("电子营业执照 杭州")
    assert subset.data is not None and _bounded_cmap(subset.data)

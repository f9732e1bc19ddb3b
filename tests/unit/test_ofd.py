"""OFD writer, reader and model: round trips, determinism, structure, limits, hostile corpus."""

from __future__ import annotations

import importlib.util
import io
import json
import math
import re
import sys
import zipfile
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from types import ModuleType
from typing import ClassVar

import pytest
from fontTools import subset as ft_subset
from fontTools.ttLib import TTFont
from PIL import Image
from reportlab.pdfbase.ttfonts import TTFontFile

from cert_formats.ofd import (
    OFD_NAMESPACE,
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
    ReadLimits,
    TextObject,
    XmlLimits,
    build_parts,
    new_doc_id,
    pack_parts,
    parse_xml,
    read_ofd,
    read_ofd_metadata,
    read_zip,
    replace_part,
    resolve_loc,
    write_ofd,
)
from cert_formats.ofd.geometry import Box, arc_center, path_bounds
from cert_formats.ofd.writer import ZIP_TIMESTAMP
from signing.errors import InvalidInputError

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "corpus" / "ofd"
NS = "{" + OFD_NAMESPACE + "}"
FONT_FILES = ("/usr/share/fonts/truetype/arphic/uming.ttc",
              "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc")
CHARS = "营业执照统一社会信用代码名称类型住所法定代表人注册资本成立日期有效期至登记机关年月日"


# --------------------------------------------------------------------------- fixtures

def subset_cjk_font(text: str) -> tuple[str, bytes]:
    """(family, TrueType bytes) of a system CJK font subset to ``text``."""
    path = next((p for p in FONT_FILES if Path(p).exists()), None)
    if path is None:
        pytest.fail("no CJK TrueType font: apt-get install fonts-wqy-zenhei (scripts/setup.sh)")
    font = TTFont(path, fontNumber=0, lazy=True)
    family = font["name"].getDebugName(1) or "CJK"
    options = ft_subset.Options()
    options.name_IDs = ["*"]
    options.notdef_outline = True
    options.drop_tables += ["BDF", "FFTM", "EBDT", "EBLC", "EBSC"]
    subsetter = ft_subset.Subsetter(options)
    subsetter.populate(text=text)
    subsetter.subset(font)
    out = io.BytesIO()
    font.save(out)
    return family, out.getvalue()


@pytest.fixture(scope="module")
def cjk_font() -> Font:
    family, data = subset_cjk_font(CHARS + "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 :-.")
    return Font(family, data=data)


def png_bytes(color: tuple[int, int, int] = (200, 30, 30), size: tuple[int, int] = (40, 20)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


def jpeg_bytes() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (10, 120, 240)).save(buf, "JPEG", quality=80)
    return buf.getvalue()


def sample_document(font: Font, *, doc_id: str = "0123456789abcdef0123456789ABCDEF") -> OFDDocument:
    info = DocumentInfo(
        doc_id=doc_id, title=" 营业执照 ", author="某市市场监督管理局", subject="电子证照\t",
        creation_date=date(2024, 5, 17), mod_date=date(2024, 5, 18), creator="certledger",
        creator_version="0.1.0", keywords=("营业执照", "licence"),
        custom_data=(("licence_id", "1.2.156.3005.2.11100000000013338W.001.1.K"),
                     ("holder", "某某科技有限公司"), ("empty", "")),
    )
    page1 = Page((
        PathObject.rect(10, 10, 190, 277, stroke=Color(180, 20, 20), line_width=1.5),
        TextObject("营业执照", 75, 45, font, 12, fill=Color(180, 20, 20)),
        TextObject("统一社会信用代码 ABC123", 20, 70, font, 4.5),
        TextObject("名称:", 20, 80, font, 4.5, delta_x=(4.5, 4.5)),
        PathObject.line(20, 85, 190, 85, line_width=0.25),
        PathObject.circle(160, 240, 20, stroke=Color(255, 0, 0), fill=Color(255, 240, 240)),
        PathObject.arc(100, 150, 10, 0, 90),
        PathObject((MoveTo(30, 200), QuadTo(40, 190, 50, 200), CubicTo(55, 205, 60, 195, 65, 200),
                    LineTo(65, 210), ClosePath()), stroke=None, fill=Color(0, 128, 0)),
        ImageObject(png_bytes(), "PNG", 20, 230, 40, 20),
    ))
    page2 = Page((TextObject("登记机关", 130, 250, font, 5),
                  ImageObject(jpeg_bytes(), "jpeg", 140, 200, 16, 16)), width=297, height=210)
    return OFDDocument(info=info, pages=(page1, page2), attachments=(
        Attachment("proof.json", b'{"entry": 1}', "application/json", date(2024, 5, 17)),
        Attachment("校验说明.txt", "离线校验".encode(), "text/plain"),
    ))


def assert_same_document(got: OFDDocument, want: OFDDocument) -> None:
    """Equality with floats compared to the writer's 1 µm precision."""
    assert got.info == want.info
    assert got.attachments == want.attachments
    assert len(got.pages) == len(want.pages)
    for gp, wp in zip(got.pages, want.pages, strict=True):
        assert (gp.width, gp.height) == pytest.approx((wp.width, wp.height))
        assert len(gp.objects) == len(wp.objects)
        for g, w in zip(gp.objects, wp.objects, strict=True):
            assert type(g) is type(w)
            _assert_close(g, w)


def _assert_close(got: object, want: object) -> None:
    if isinstance(want, float | int) and not isinstance(want, bool):
        assert isinstance(got, float | int)
        assert got == pytest.approx(want, abs=1.5e-3)
    elif isinstance(want, tuple):
        assert isinstance(got, tuple) and len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            _assert_close(g, w)
    elif hasattr(want, "__dataclass_fields__"):
        for name in want.__dataclass_fields__:
            _assert_close(getattr(got, name), getattr(want, name))
    else:
        assert got == want


# --------------------------------------------------------------------------- round trip

def test_round_trip_keeps_every_object(cjk_font: Font) -> None:
    doc = sample_document(cjk_font)
    result = read_ofd(write_ofd(doc))
    assert_same_document(result.document, doc)
    assert result.doc_root == "Doc_0/Document.xml"
    assert result.version == "1.0" and result.doc_type == "OFD"
    assert result.signatures_loc is None
    assert result.document.info.custom["licence_id"].startswith("1.2.156.3005")
    assert result.document.attachment("proof.json").data == b'{"entry": 1}'
    assert "统一社会信用代码 ABC123" in result.document.text


def test_reader_returns_embedded_font_file(cjk_font: Font) -> None:
    result = read_ofd(write_ofd(sample_document(cjk_font)))
    fonts = {t.font for p in result.document.pages for t in p.texts}
    assert fonts == {cjk_font}
    # the embedded bytes are a TrueType file an independent parser accepts
    assert cjk_font.data is not None
    parsed = TTFontFile(io.BytesIO(cjk_font.data), validate=1)
    assert parsed.name


def test_output_is_deterministic(cjk_font: Font) -> None:
    first = write_ofd(sample_document(cjk_font))
    assert write_ofd(sample_document(cjk_font)) == first
    other = write_ofd(sample_document(cjk_font, doc_id="f" * 32))
    assert other != first
    with zipfile.ZipFile(io.BytesIO(first)) as zf:
        infos = zf.infolist()
    names = [i.filename for i in infos]
    assert names[0] == "OFD.xml" and names[1:] == sorted(names[1:])
    assert {i.date_time for i in infos} == {ZIP_TIMESTAMP}
    assert {i.compress_type for i in infos} == {zipfile.ZIP_DEFLATED}
    assert {i.external_attr >> 16 for i in infos} == {0o100644}


def test_package_structure_follows_gbt_33190(cjk_font: Font) -> None:
    doc = sample_document(cjk_font)
    parts = build_parts(doc)
    assert set(parts) >= {"OFD.xml", "Doc_0/Document.xml", "Doc_0/PublicRes.xml",
                          "Doc_0/DocumentRes.xml", "Doc_0/Pages/Page_0/Content.xml",
                          "Doc_0/Pages/Page_1/Content.xml", "Doc_0/Attachs/Attachments.xml"}
    xml = {name: parse_xml(data, part=name) for name, data in parts.items() if name.endswith(".xml")}
    for name, root in xml.items():
        assert root.tag.startswith(NS), name
        assert parts[name].startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    # DocInfo children in the schema's order
    info = xml["OFD.xml"].find(f"{NS}DocBody/{NS}DocInfo")
    assert info is not None
    order = [c.tag.removeprefix(NS) for c in info]
    assert order == ["DocID", "Title", "Author", "Subject", "CreationDate", "ModDate",
                     "Keywords", "Creator", "CreatorVersion", "CustomDatas"]
    customs = {c.get("Name"): c.text or "" for c in info.iter(f"{NS}CustomData")}
    assert customs == dict(doc.info.custom_data)
    # every ID is unique and MaxUnitID covers them
    ids = [int(el.get("ID") or 0) for root in xml.values() for el in root.iter() if el.get("ID")]
    assert len(ids) == len(set(ids))
    max_unit = xml["Doc_0/Document.xml"].findtext(f"{NS}CommonData/{NS}MaxUnitID")
    assert max_unit is not None and int(max_unit) == max(ids)
    # the font is embedded under Res/ and named by FontFile
    font_el = xml["Doc_0/PublicRes.xml"].find(f"{NS}Fonts/{NS}Font")
    assert font_el is not None and font_el.get("FamilyName") == cjk_font.family
    font_file = font_el.findtext(f"{NS}FontFile")
    assert parts[f"Doc_0/Res/{font_file}"] == cjk_font.data
    # text: one DeltaX value per gap, baseline inside the Boundary
    page = xml["Doc_0/Pages/Page_0/Content.xml"]
    for text_el in page.iter(f"{NS}TextObject"):
        code = text_el.find(f"{NS}TextCode")
        assert code is not None and code.text
        assert len((code.get("DeltaX") or "").split()) == len(code.text) - 1
        _x, _y, w, h = (float(v) for v in (text_el.get("Boundary") or "").split())
        assert 0 < float(code.get("Y") or 0) < h and w > 0
    image = next(page.iter(f"{NS}ImageObject"))
    assert image.get("CTM") == "40 0 0 20 0 0" and image.get("Boundary") == "20 230 40 20"
    # attachment sizes in kilobytes, files next to Attachments.xml
    attachment = next(xml["Doc_0/Attachs/Attachments.xml"].iter(f"{NS}Attachment"))
    assert float(attachment.get("Size") or 0) == pytest.approx(len(b'{"entry": 1}') / 1024, abs=1e-3)
    assert f"Doc_0/Attachs/{attachment.findtext(f'{NS}FileLoc')}" in parts


def test_signatures_pointer_for_a_seal_layer(cjk_font: Font) -> None:
    parts = build_parts(sample_document(cjk_font), signatures_loc="Doc_0/Signs/Signatures.xml")
    parts["Doc_0/Signs/Signatures.xml"] = b"<placeholder/>"
    result = read_ofd(pack_parts(parts))
    assert result.signatures_loc == "Doc_0/Signs/Signatures.xml"
    assert result.parts["Doc_0/Signs/Signatures.xml"] == b"<placeholder/>"
    with pytest.raises(TypeError):
        result.parts["OFD.xml"] = b""  # type: ignore[index]


def test_text_advances_default_and_explicit(cjk_font: Font) -> None:
    text = TextObject("营业A1", 0, 10, cjk_font, 4)
    assert text.advances == (4.0, 4.0, 2.0)
    assert text.width == pytest.approx(12)
    explicit = TextObject("AB", 0, 10, cjk_font, 4, delta_x=(3.3,))
    assert read_ofd(write_ofd(OFDDocument(DocumentInfo(new_doc_id()), (Page((explicit,)),)))
                    ).document.pages[0].texts[0].advances == pytest.approx((3.3,))


# --------------------------------------------------------------------------- model and writer validation

@pytest.mark.parametrize("build", [
    lambda f: TextObject("x", math.nan, 0, f, 5),
    lambda f: TextObject("x", 0, math.inf, f, 5),
    lambda f: TextObject("x", 0, 0, f, 0),
    lambda f: TextObject("", 0, 0, f, 5),
    lambda f: TextObject("a\x00b", 0, 0, f, 5),
    lambda f: TextObject("a\rb", 0, 0, f, 5),
    lambda f: TextObject("abc", 0, 0, f, 5, delta_x=(1.0,)),
    lambda f: TextObject("x", True, 0, f, 5),
    lambda f: Color(256, 0, 0),
    lambda f: Color(1.5, 0, 0),  # type: ignore[arg-type]
    lambda f: PathObject(()),
    lambda f: PathObject((LineTo(1, 1),)),
    lambda f: PathObject((MoveTo(0, 0), LineTo(1, 1)), stroke=None, fill=None),
    lambda f: PathObject((MoveTo(0, 0),), line_width=0),
    lambda f: ArcTo(0, 1, 0, False, True, 1, 1),
    lambda f: PathObject.rect(0, 0, -1, 5),
    lambda f: PathObject.arc(0, 0, 5, 30, 30),
    lambda f: ImageObject(b"not a png", "PNG", 0, 0, 1, 1),
    lambda f: ImageObject(png_bytes(), "PNG", 0, 0, 0, 1),
    lambda f: Page((), width=-1),
    lambda f: Font(""),
    lambda f: Font("x", data=b""),
    lambda f: DocumentInfo(doc_id="", title="t"),
    lambda f: DocumentInfo(doc_id="a" * 32, custom_data=(("k", "1"), ("k", "2"))),
    lambda f: DocumentInfo(doc_id="a" * 32, custom_data=(("", "1"),)),
    lambda f: OFDDocument(DocumentInfo("a" * 32), ()),
    lambda f: OFDDocument(DocumentInfo("a" * 32), (Page(),),
                          (Attachment("a", b"1"), Attachment("a", b"2"))),
    lambda f: Attachment("", b"x"),
])
def test_model_refuses_invalid_values(cjk_font: Font, build: object) -> None:
    with pytest.raises(InvalidInputError) as exc:
        build(cjk_font)  # type: ignore[operator]
    assert exc.value.reason == "ofd.invalid_model"


def test_writer_refuses_what_it_cannot_write(cjk_font: Font) -> None:
    def doc(*objects: object, doc_id: str | None = "a" * 32) -> OFDDocument:
        return OFDDocument(DocumentInfo(doc_id), (Page(tuple(objects)),))  # type: ignore[arg-type]

    ttc = Path(next(p for p in FONT_FILES if Path(p).exists())).read_bytes()[:4096]
    cases = [
        doc(TextObject("x", 0, 5, Font("NoFile"), 5)),
        doc(TextObject("x", 0, 5, Font("Collection", data=ttc), 5)),
        doc(TextObject("x", 0, 5, Font("Garbage", data=b"GIF89a..."), 5)),
        doc(ImageObject(b"GIF89a....", "GIF", 0, 0, 1, 1)),
        doc(TextObject("x", 0, 5, cjk_font, 5), doc_id=None),
        doc(TextObject("x", 0, 5, cjk_font, 5), doc_id="not-a-32-char-doc-id"),
    ]
    for case in cases:
        with pytest.raises(InvalidInputError) as exc:
            write_ofd(case)
        assert exc.value.reason == "ofd.unwritable"
    for bad_name in ("/abs.xml", "a/../b.xml", "a\\b.xml", ""):
        with pytest.raises(InvalidInputError):
            pack_parts({bad_name: b"x"})


def test_shared_resources_are_written_once(cjk_font: Font) -> None:
    image = png_bytes()
    doc = OFDDocument(DocumentInfo("a" * 32), (
        Page((ImageObject(image, "PNG", 0, 0, 10, 10), ImageObject(image, "PNG", 20, 0, 10, 10),
              TextObject("营业", 0, 30, cjk_font, 5))),
        Page((TextObject("执照", 0, 30, Font(cjk_font.family, data=cjk_font.data), 5),)),
    ))
    parts = build_parts(doc)
    assert len([p for p in parts if p.startswith("Doc_0/Res/image_")]) == 1
    assert len([p for p in parts if p.startswith("Doc_0/Res/font_")]) == 1


# --------------------------------------------------------------------------- geometry

def test_path_bounds_are_tight_for_lines_and_circles() -> None:
    assert path_bounds(PathObject.rect(10, 20, 30, 40).commands) == Box(10, 20, 30, 40)
    box = path_bounds(PathObject.circle(50, 60, 5).commands)
    assert (box.x, box.y, box.width, box.height) == pytest.approx((45, 55, 10, 10))
    quarter = path_bounds(PathObject.arc(0, 0, 10, 0, 90).commands)
    assert quarter.x <= 0 and quarter.y <= 0 and quarter.width >= 10 and quarter.height >= 10


def test_arc_center_matches_the_svg_construction() -> None:
    centre = arc_center(10, 0, ArcTo(10, 10, 0, False, True, -10, 0))
    assert centre is not None
    assert centre[:2] == pytest.approx((0, 0), abs=1e-9)
    # radii too small to reach are scaled up (SVG F.6.6)
    grown = arc_center(0, 0, ArcTo(1, 1, 0, False, True, 10, 0))
    assert grown is not None and grown[2] == pytest.approx(5)
    assert arc_center(3, 3, ArcTo(1, 1, 0, False, True, 3, 3)) is None


# --------------------------------------------------------------------------- reader behaviour on hand-made packages

def _parts(cjk_font: Font) -> dict[str, bytes]:
    doc = OFDDocument(DocumentInfo("a" * 32), (Page((TextObject("营业执照", 10, 20, cjk_font, 5),)),))
    return build_parts(doc)


def _with_content(cjk_font: Font, layer_xml: str) -> bytes:
    parts = _parts(cjk_font)
    content = parts["Doc_0/Pages/Page_0/Content.xml"].decode()
    start = content.index('<ofd:Layer ID="3" Type="Body">') + len('<ofd:Layer ID="3" Type="Body">')
    end = content.index("</ofd:Layer>")
    parts["Doc_0/Pages/Page_0/Content.xml"] = (content[:start] + layer_xml + content[end:]).encode()
    return pack_parts(parts)


def test_reader_maps_ctm_blocks_visibility_and_continuations(cjk_font: Font) -> None:
    data = _with_content(cjk_font, (
        '<ofd:PageBlock><ofd:PageBlock>'
        '<ofd:TextObject ID="10" Boundary="100 100 50 20" Font="1" Size="5" CTM="2 0 0 2 3 4">'
        '<ofd:TextCode X="1" Y="5" DeltaX="g 3 5">营业执照</ofd:TextCode>'
        '<ofd:TextCode DeltaX="5">统一</ofd:TextCode></ofd:TextObject>'
        '</ofd:PageBlock></ofd:PageBlock>'
        '<ofd:TextObject ID="11" Boundary="0 0 50 20" Font="1" Size="5" Visible="false">'
        '<ofd:TextCode X="0" Y="5">hidden</ofd:TextCode></ofd:TextObject>'
        '<ofd:PathObject ID="12" Boundary="10 10 20 20" LineWidth="0" Fill="true">'
        '<ofd:FillColor Value="128"/><ofd:StrokeColor Value="0 255 255 0"/>'
        '<ofd:AbbreviatedData>S 0 0 L 10 0 A 0 0 0 0 1 10 10 C</ofd:AbbreviatedData></ofd:PathObject>'
        '<ofd:PathObject ID="13" Boundary="0 0 1 1" Stroke="false">'
        '<ofd:AbbreviatedData>M 0 0 L 1 1</ofd:AbbreviatedData></ofd:PathObject>'
    ))
    page = read_ofd(data).document.pages[0]
    texts = page.texts
    assert [t.text for t in texts] == ["营业执照", "统一"]
    first, second = texts
    # page point = Boundary origin + CTM(X, Y); sizes and advances scale with the CTM
    assert (first.x, first.y) == pytest.approx((100 + 2 * 1 + 3, 100 + 2 * 5 + 4))
    assert first.size == pytest.approx(10) and first.advances == pytest.approx((10, 10, 10))
    # a TextCode without X continues after the previous run (3 gaps + its last em)
    assert second.x == pytest.approx(100 + 2 * (1 + 5 * 3 + 5) + 3)
    paths = [o for o in page.objects if isinstance(o, PathObject)]
    assert len(paths) == 1  # the unstroked, unfilled path paints nothing and is dropped
    path = paths[0]
    assert path.fill == Color(128, 128, 128) and path.stroke == Color(255, 0, 0)
    assert path.line_width == pytest.approx(0.001)
    assert path.commands == (MoveTo(10, 10), LineTo(20, 10), LineTo(20, 20), ClosePath())


def test_reader_accepts_absolute_locations_and_page_res(cjk_font: Font) -> None:
    parts = _parts(cjk_font)
    # ofdrw style: absolute ST_Loc from the package root, page-level resources
    doc_xml = parts["Doc_0/Document.xml"].decode().replace(
        "<ofd:PublicRes>PublicRes.xml</ofd:PublicRes>", "")
    doc_xml = doc_xml.replace('BaseLoc="Pages/Page_0/Content.xml"',
                              'BaseLoc="/Doc_0/Pages/Page_0/Content.xml"')
    parts["Doc_0/Document.xml"] = doc_xml.encode()
    res = parts.pop("Doc_0/PublicRes.xml").decode().replace('BaseLoc="Res"', "")
    res = res.replace("<ofd:FontFile>font_1.ttf", "<ofd:FontFile>/Doc_0/Res/font_1.ttf")
    parts["Doc_0/Pages/Page_0/PageRes.xml"] = res.encode()
    content = parts["Doc_0/Pages/Page_0/Content.xml"].decode().replace(
        "<ofd:Area>", "<ofd:PageRes>PageRes.xml</ofd:PageRes><ofd:Area>")
    parts["Doc_0/Pages/Page_0/Content.xml"] = content.encode()
    page = read_ofd(pack_parts(parts)).document.pages[0]
    assert page.text == "营业执照" and page.texts[0].font.data == cjk_font.data


def test_huge_repeat_count_in_delta_x_is_not_trusted(cjk_font: Font) -> None:
    data = _with_content(cjk_font, (
        '<ofd:TextObject ID="10" Boundary="0 0 50 20" Font="1" Size="5">'
        '<ofd:TextCode X="0" Y="5" DeltaX="g 999999999 5 g 99999999999999 3">营业执照</ofd:TextCode>'
        '</ofd:TextObject>'))
    text = read_ofd(data).document.pages[0].texts[0]
    assert text.advances == (5, 5, 5)


def test_a_repeat_count_of_non_ascii_digits_is_malformed(cjk_font: Font) -> None:
    # "²".isdigit() is True and int("²") raises: that was an internal error
    data = _with_content(cjk_font, (
        '<ofd:TextObject ID="10" Boundary="0 0 50 20" Font="1" Size="5">'
        '<ofd:TextCode X="0" Y="5" DeltaX="g \u00b2 5">营业执照</ofd:TextCode>'
        '</ofd:TextObject>'))
    with pytest.raises(InvalidInputError) as err:
        read_ofd(data)
    assert err.value.reason == "ofd.bad_value"


@pytest.mark.parametrize(("limits", "reason"), [
    (ReadLimits(max_objects=2), "ofd.too_many_objects"),
    (ReadLimits(max_pages=1), "ofd.too_many_pages"),
    (ReadLimits(max_attachments=1), "ofd.too_many_attachments"),
    (ReadLimits(max_text_chars=3), "ofd.text_too_long"),
    (ReadLimits(max_path_commands=3), "ofd.path_too_complex"),
    (ReadLimits(xml=XmlLimits(max_elements=20)), "ofd.xml_too_many_elements"),
    (ReadLimits(xml=XmlLimits(max_bytes=500)), "ofd.xml_too_large"),
    (ReadLimits(xml=XmlLimits(max_depth=4)), "ofd.xml_too_deep"),
    (ReadLimits(xml=XmlLimits(max_attributes=2)), "ofd.xml_attribute_too_large"),
    (ReadLimits(max_seconds=1e-9), "ofd.timeout"),
])
def test_read_limits_are_enforced(cjk_font: Font, limits: ReadLimits, reason: str) -> None:
    data = write_ofd(sample_document(cjk_font))
    with pytest.raises(InvalidInputError) as exc:
        read_ofd(data, limits=limits)
    assert exc.value.reason == reason


@pytest.mark.parametrize(("loc", "base", "confine", "want"), [
    ("Pages/Page_0/Content.xml", "Doc_0", "Doc_0", "Doc_0/Pages/Page_0/Content.xml"),
    ("/Doc_0/Res/a.png", "Doc_0/Pages", "Doc_0", "Doc_0/Res/a.png"),
    ("./a/../b.xml", "Doc_0", "Doc_0", "Doc_0/b.xml"),
    ("../Res/x.ttf", "Doc_0/Pages", "Doc_0", "Doc_0/Res/x.ttf"),
    (" Doc_0/Document.xml ", "", "", "Doc_0/Document.xml"),
    ("../x", "Doc_0", "Doc_0", "ofd.path_traversal"),
    ("../../x", "Doc_0", "", "ofd.path_traversal"),
    ("/OFD.xml", "Doc_0", "Doc_0", "ofd.path_traversal"),
    ("/Doc_01/x", "Doc_0", "Doc_0", "ofd.path_traversal"),
    ("C:/x", "Doc_0", "Doc_0", "ofd.absolute_path"),
    ("\\\\host\\share", "Doc_0", "Doc_0", "ofd.absolute_path"),
    ("https://example.org/x", "Doc_0", "Doc_0", "ofd.external_reference"),
    ("file:///etc/passwd", "Doc_0", "Doc_0", "ofd.external_reference"),
    ("a\\b", "Doc_0", "Doc_0", "ofd.bad_reference"),
    ("", "Doc_0", "Doc_0", "ofd.bad_reference"),
    ("/", "Doc_0", "", "ofd.bad_reference"),
])
def test_resolve_loc(loc: str, base: str, confine: str, want: str) -> None:
    if want.startswith("ofd."):
        with pytest.raises(InvalidInputError) as exc:
            resolve_loc(loc, base, confine, part="test")
        assert exc.value.reason == want
    else:
        assert resolve_loc(loc, base, confine, part="test") == want


def test_read_refuses_non_bytes() -> None:
    with pytest.raises(InvalidInputError):
        read_ofd("OFD.xml")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- hostile corpus

def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ofd_corpus_generate", CORPUS / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


EXPECTED: dict[str, str | None] = json.loads((CORPUS / "expected.json").read_text("utf-8"))

class _Watch:
    """What the audit hook records while ``active`` (audit hooks cannot be removed)."""

    active = False
    writes: ClassVar[list[tuple[str, object]]] = []


_WRITES = _Watch.writes


def _audit(event: str, args: tuple[object, ...]) -> None:
    """Record any file write, directory creation or deletion while a read is watched."""
    if not _Watch.active:
        return
    if event == "open":
        mode = args[1] if len(args) > 1 else "r"
        flags = args[2] if len(args) > 2 else 0
        writing = isinstance(mode, str) and any(c in mode for c in "wax+")
        if isinstance(flags, int) and flags & 0o3:  # O_WRONLY / O_RDWR
            writing = True
        if writing:
            _WRITES.append((event, args[0]))
    elif event in ("os.mkdir", "os.remove", "os.rename", "os.rmdir", "os.symlink",
                   "os.link", "shutil.rmtree", "os.truncate"):
        _WRITES.append((event, args[0] if args else None))


sys.addaudithook(_audit)


@pytest.fixture
def no_file_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fail the test if the code under test writes, creates or deletes any file."""
    monkeypatch.chdir(tmp_path)
    _WRITES.clear()
    _Watch.active = True
    try:
        yield
    finally:
        _Watch.active = False
    assert _WRITES == []
    assert list(tmp_path.iterdir()) == []


def test_corpus_is_large_and_fresh(tmp_path: Path) -> None:
    hostile = [name for name, reason in EXPECTED.items() if reason is not None]
    assert len(hostile) >= 30
    expected = _load_generator().generate(tmp_path)
    assert expected == EXPECTED
    for name in EXPECTED:
        assert (tmp_path / name).read_bytes() == (CORPUS / name).read_bytes(), name
        assert (CORPUS / name).stat().st_size < 200 * 1024


@pytest.mark.timeout(20)
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_file_is_refused_with_its_reason(name: str, no_file_writes: None) -> None:
    data = (CORPUS / name).read_bytes()
    reason = EXPECTED[name]
    if reason is None:
        document = read_ofd(data).document
        assert document.pages[0].text == "corpus"
        assert document.info.custom == {"licence": "L-1"}
        assert document.attachment("proof.json").data == b'{"proof": "bundle"}'
        return
    with pytest.raises(InvalidInputError) as exc:
        read_ofd(data)
    assert exc.value.reason == reason, str(exc.value)
    assert str(exc.value)  # a message a person can read


#: corpus files whose hostile part is a page, a page reference or a resource: the metadata
#: read never opens or follows those (a verifier's seal check protects them byte for byte)
_PAGE_LEVEL: frozenset[str] = frozenset({
    "boundary_infinite.ofd",
    "colour_out_of_range.ofd",
    "ctm_nan.ofd",
    "deep_nesting.ofd",
    "deltax_nan.ofd",
    "duplicate_ids.ofd",
    "font_file_traversal.ofd",
    "huge_attribute.ofd",
    "media_file_url.ofd",
    "missing_image_file.ofd",
    "missing_page.ofd",
    "no_pages.ofd",
    "page_escapes_doc_folder.ofd",
    "page_escapes_root.ofd",
    "page_loc_drive_letter.ofd",
    "page_size_absurd.ofd",
    "path_unknown_operator.ofd",
    "res_baseloc_traversal.ofd",
    "text_too_long.ofd",
    "too_many_pages.ofd",
    "unknown_font.ofd",
    "unknown_image.ofd",
})


@pytest.mark.timeout(20)
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_file_through_the_metadata_read(name: str, no_file_writes: None) -> None:
    """read_ofd_metadata (the verifier's read) refuses with read_ofd's reason, or reads
    exactly read_ofd's info and attachments; a refusal only read_ofd makes must lie in a
    part the metadata read does not open (a page or a resource)."""
    data = (CORPUS / name).read_bytes()
    try:
        full = read_ofd(data)
    except InvalidInputError as exc:
        full_reason: str | None = exc.reason
    else:
        full_reason = None
    try:
        meta = read_ofd_metadata(read_zip(data))
    except InvalidInputError as exc:
        assert exc.reason == full_reason, str(exc)
        assert str(exc)
        return
    if full_reason is None:
        assert meta.info == full.document.info
        assert meta.attachments == full.document.attachments
        assert (meta.doc_root, meta.signatures_loc) == (full.doc_root, full.signatures_loc)
    else:
        assert name in _PAGE_LEVEL, (name, full_reason)
    assert (full_reason is not None and full_reason == EXPECTED[name]) == (name in _PAGE_LEVEL)


def test_watcher_catches_a_write(tmp_path: Path) -> None:
    """The no-write guard is real: it sees a write when one happens."""
    _WRITES.clear()
    _Watch.active = True
    try:
        (tmp_path / "x").write_bytes(b"1")
    finally:
        _Watch.active = False
    assert _WRITES and _WRITES[0][0] == "open"
    _WRITES.clear()


def test_kept_path_parses_still_charge_the_budget(cjk_font: Font) -> None:
    # the second read finds every path parse kept from the first, and must still
    # count its commands against this file's limit
    data = write_ofd(sample_document(cjk_font))
    first = read_ofd(data)
    again = read_ofd(data)
    assert again.document == first.document
    commands = sum(len(o.commands) for p in first.document.pages for o in p.objects
                   if isinstance(o, PathObject))
    read_ofd(data, limits=ReadLimits(max_path_commands=commands))
    for _ in range(2):
        with pytest.raises(InvalidInputError) as exc:
            read_ofd(data, limits=ReadLimits(max_path_commands=commands - 1))
        assert exc.value.reason == "ofd.path_too_complex"


def test_kept_path_parses_are_keyed_by_the_exact_text(cjk_font: Font) -> None:
    doc = OFDDocument(info=DocumentInfo(doc_id=new_doc_id()), pages=(Page(objects=(
        PathObject((MoveTo(10, 10), LineTo(20, 20))),)),))
    parts = build_parts(doc)
    page = "Doc_0/Pages/Page_0/Content.xml"
    read_ofd(pack_parts(parts))  # keeps the parse
    # the same AbbreviatedData under another Boundary, then with a bad operand
    moved = re.sub(rb'Boundary="([\d.]+) ', rb'Boundary="1\1 ', parts[page], count=1)
    assert moved != parts[page]
    path = read_ofd(pack_parts({**parts, page: moved})).document.pages[0].objects[0]
    assert isinstance(path, PathObject)
    start = path.commands[0]
    assert isinstance(start, MoveTo)
    assert math.isclose(start.x, 20) and math.isclose(start.y, 10)
    broken = parts[page].replace(b"L 10", b"L x10")
    assert broken != parts[page]
    with pytest.raises(InvalidInputError):
        read_ofd(pack_parts({**parts, page: broken}))


def test_replace_part_equals_packing_again() -> None:
    parts = {
        "OFD.xml": b"<ofd/>",
        "Doc_0/Document.xml": b"<doc/>" * 50,
        "Doc_0/Attachs/bundle.json": b'{"pending":true}',
        "Doc_0/Res/font.ttf": bytes(range(256)) * 400,
    }
    package = pack_parts(parts)
    for path in parts:
        for data in (b"", b"x", b'{"kind":"certledger.proof/v1"}' * 300):
            changed = dict(parts, **{path: data})
            assert replace_part(package, path, data) == pack_parts(changed), path
    # the result reads back with the reader's own rules
    again = read_zip(replace_part(package, "Doc_0/Attachs/bundle.json", b"{}"))
    assert again["Doc_0/Attachs/bundle.json"] == b"{}" and again["Doc_0/Res/font.ttf"] == parts["Doc_0/Res/font.ttf"]


def test_replace_part_of_a_foreign_zip_packs_again() -> None:
    """A package another writer made (here: a comment and stored entries) is rebuilt whole."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.comment = b"made elsewhere"
        zf.writestr("OFD.xml", b"<ofd/>")
        zf.writestr("Doc_0/a.json", b"{}")
    out = replace_part(buf.getvalue(), "Doc_0/a.json", b'{"a":1}')
    assert out == pack_parts({"OFD.xml": b"<ofd/>", "Doc_0/a.json": b'{"a":1}'})

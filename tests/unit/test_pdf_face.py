"""The licence face as PDF: text, embedded subset fonts, metadata, QR code, determinism.

Every built-in template is rendered from its own sample licence, so a new template
file is covered here without a new test.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader

from cert_formats.fonts import ENV_VAR, find_cjk_font, load_font
from cert_formats.pdf_face import (
    CircleOp,
    PathOp,
    QrOp,
    RectOp,
    TextOp,
    build_face,
    render_licence_pdf,
    render_pdf,
    verification_url,
)
from cert_formats.template import builtin_templates, get_template
from signing.errors import InvalidInputError

HOST = "verify.zj.example.gov.cn"
TEMPLATE_KEYS = sorted(builtin_templates())
_PDF_CACHE: dict[str, bytes] = {}


def _pdf(key: str) -> bytes:
    if key not in _PDF_CACHE:
        t = get_template(key)
        _PDF_CACHE[key] = render_licence_pdf(t.sample_licence(), t, verify_host=HOST)
    return _PDF_CACHE[key]


def _squash(text: str) -> str:
    # titles are letter-spaced on purpose; compare without the spaces an extractor may add
    return re.sub(r"\s+", "", text)


@pytest.mark.parametrize("key", TEMPLATE_KEYS)
def test_text_is_extractable(key: str) -> None:
    t = get_template(key)
    lic = t.sample_licence()
    text = PdfReader(io.BytesIO(_pdf(key))).pages[0].extract_text()
    flat = _squash(text)
    assert t.title.text in flat
    assert lic.holder in flat
    assert lic.holder_code in flat
    assert lic.identifier in flat
    assert lic.issuer_name in flat


@pytest.mark.parametrize("key", TEMPLATE_KEYS)
def test_fonts_are_embedded_subsets(key: str) -> None:
    reader = PdfReader(io.BytesIO(_pdf(key)))
    resources: Any = reader.pages[0]["/Resources"]
    fonts = resources["/Font"]
    assert len(fonts) >= 1
    for ref in fonts.values():
        font = ref.get_object()
        base = str(font["/BaseFont"])
        # a subset font's name carries a six-capital-letter tag (PDF 32000-1 9.6.4)
        assert re.fullmatch(r"/[A-Z]{6}\+.+", base), base
        assert font["/Subtype"] == "/TrueType"
        descriptor = font["/FontDescriptor"].get_object()
        assert "/FontFile2" in descriptor, base
        assert len(descriptor["/FontFile2"].get_object().get_data()) > 1000
        assert "/ToUnicode" in font  # what makes the Chinese text extractable


@pytest.mark.skipif(shutil.which("pdffonts") is None, reason="poppler-utils (pdffonts) is not installed")
def test_poppler_sees_only_embedded_subset_fonts(tmp_path: Path) -> None:
    path = tmp_path / "face.pdf"
    path.write_bytes(_pdf("business_licence"))
    out = subprocess.run(["pdffonts", str(path)], capture_output=True, text=True, check=True).stdout
    rows = out.splitlines()[2:]
    assert rows
    for row in rows:
        cols = row.split()
        # name type encoding emb sub uni object-id gen: emb, sub and uni are all "yes"
        assert cols[-5:-2] == ["yes", "yes", "yes"], row


@pytest.mark.parametrize("key", TEMPLATE_KEYS)
def test_document_info_and_xmp(key: str) -> None:
    t = get_template(key)
    lic = t.sample_licence()
    reader = PdfReader(io.BytesIO(_pdf(key)))
    meta = reader.metadata
    assert meta is not None
    assert meta.title == f"{lic.name}（{lic.holder}）"
    assert meta.author == lic.issuer_name
    assert meta.subject == lic.identifier
    keywords = str(meta["/Keywords"])
    assert lic.number in keywords and lic.type_code in keywords
    # the file's date is the licence's issue date (Beijing time), never the wall clock
    day = lic.issue_date.strftime("%Y%m%d")
    assert str(meta["/CreationDate"]) == f"D:{day}000000+08'00'"
    xmp = reader.xmp_metadata
    assert xmp is not None
    assert xmp.dc_title == {"x-default": meta.title}
    assert xmp.dc_creator == [lic.issuer_name]
    assert xmp.dc_identifier == lic.identifier
    root: Any = reader.trailer["/Root"]
    raw = root["/Metadata"].get_object().get_data().decode("utf-8")
    assert f"<cl:verifyUrl>https://{HOST}/v/{lic.identifier}</cl:verifyUrl>" in raw
    assert str(root["/Lang"]) == "zh-CN"


@pytest.mark.parametrize("key", TEMPLATE_KEYS)
def test_page_size_comes_from_the_template(key: str) -> None:
    t = get_template(key)
    box = PdfReader(io.BytesIO(_pdf(key))).pages[0].mediabox
    assert float(box.width) == pytest.approx(t.page.width_mm * 72 / 25.4, abs=0.01)
    assert float(box.height) == pytest.approx(t.page.height_mm * 72 / 25.4, abs=0.01)


def test_output_is_deterministic_within_and_across_processes() -> None:
    t = get_template("business_licence")
    lic = t.sample_licence()
    first = render_licence_pdf(lic, t, verify_host=HOST)
    assert render_licence_pdf(lic, t, verify_host=HOST) == first
    # a fresh interpreter (new hash seed, new font registry) gives the same bytes
    code = (
        "import hashlib,sys;"
        "from cert_formats.template import get_template;"
        "from cert_formats.pdf_face import render_licence_pdf;"
        "t=get_template('business_licence');"
        f"sys.stdout.write(hashlib.sha256(render_licence_pdf(t.sample_licence(),t,verify_host={HOST!r})).hexdigest())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout == hashlib.sha256(first).hexdigest()


def test_concurrent_rendering_gives_the_same_bytes() -> None:
    # the API renders in worker threads; reportlab keeps per-document font state
    from concurrent.futures import ThreadPoolExecutor

    def render(key: str) -> bytes:
        t = get_template(key)
        return render_licence_pdf(t.sample_licence(), t, verify_host=HOST)

    keys = TEMPLATE_KEYS * 3
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(render, keys))
    assert results == [_pdf(k) for k in keys]


def test_different_licences_give_different_files() -> None:
    t = get_template("business_licence")
    lic = t.sample_licence()
    other = dataclasses.replace(lic, holder="杭州云岫信息技术有限公司")
    assert render_licence_pdf(other, t, verify_host=HOST) != render_licence_pdf(lic, t, verify_host=HOST)


def test_layout_ops_stay_on_the_page_and_qr_carries_the_url() -> None:
    for key in TEMPLATE_KEYS:
        t = get_template(key)
        lic = t.sample_licence()
        layout = build_face(lic, t, verify_host=HOST)
        w, h = layout.width_mm, layout.height_mm
        qr_ops = [op for op in layout.ops if isinstance(op, QrOp)]
        assert len(qr_ops) == 1
        assert qr_ops[0].payload == f"https://{HOST}/v/{lic.identifier}"
        assert layout.info.verify_url == qr_ops[0].payload
        for op in layout.ops:
            if isinstance(op, TextOp):
                assert 0 <= op.x_mm <= w and 0 <= op.y_mm <= h, op
                # simple line-breaking rule: no line starts with closing punctuation
                assert op.text[:1] not in "，。、；：）", op.text
            elif isinstance(op, PathOp):
                assert all(-0.01 <= x <= w + 0.01 and -0.01 <= y <= h + 0.01 for x, y in op.points)
            elif isinstance(op, CircleOp):
                assert op.r_mm <= op.cx_mm <= w - op.r_mm and op.r_mm <= op.cy_mm <= h - op.r_mm
            elif isinstance(op, RectOp):
                assert op.x_mm + op.w_mm <= w + 0.01 and op.y_mm + op.h_mm <= h + 0.01
        # the seal is drawn last, over the text (like ink)
        assert isinstance(layout.ops[-1], TextOp) and layout.ops[-1].colour == t.colours.seal


@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="poppler-utils (pdftoppm) is not installed")
@pytest.mark.parametrize("key", TEMPLATE_KEYS)
def test_poppler_renders_the_page_and_the_qr_code_scans(key: str, tmp_path: Path) -> None:
    pdf = tmp_path / f"{key}.pdf"
    pdf.write_bytes(_pdf(key))
    subprocess.run(
        ["pdftoppm", "-png", "-r", "150", "-singlefile", str(pdf), str(tmp_path / key)], check=True, timeout=60
    )
    png = tmp_path / f"{key}.png"
    assert png.stat().st_size > 50_000  # a blank page compresses to almost nothing
    if shutil.which("zbarimg") is None:
        pytest.skip("zbar-tools (zbarimg) is not installed: the QR code was rendered but not scanned")
    lic = get_template(key).sample_licence()
    scanned = subprocess.run(
        ["zbarimg", "--raw", "-q", str(png)], capture_output=True, text=True, timeout=60, check=False
    )
    assert scanned.stdout.strip() == verification_url(HOST, lic.identifier)


def test_overflowing_field_is_refused() -> None:
    t = get_template("business_licence")
    lic = t.sample_licence()
    scope = "技术服务、技术开发、技术咨询、技术交流、" * 18  # fits the 800-character rule, not the face
    extensions = tuple((k, scope if k == "business_scope" else v) for k, v in lic.extensions)
    with pytest.raises(InvalidInputError) as info:
        build_face(dataclasses.replace(lic, extensions=extensions), t, verify_host=HOST)
    assert info.value.reason == "pdf.field_overflow"
    assert info.value.details["source"] == "ext:business_scope"


def test_invalid_licence_for_the_template_is_not_rendered() -> None:
    t = get_template("business_licence")
    lic = dataclasses.replace(t.sample_licence(), extensions=())
    with pytest.raises(InvalidInputError) as info:
        render_licence_pdf(lic, t, verify_host=HOST)
    assert info.value.reason == "licence.field_missing"


def test_template_defaults_to_the_licence_type() -> None:
    t = get_template("vocational_qualification")
    lic = t.sample_licence()
    assert render_licence_pdf(lic, verify_host=HOST) == render_licence_pdf(lic, t, verify_host=HOST)


@pytest.mark.parametrize(
    "host",
    ["", "https://v.example", "v.example/path", "v.example?x=1", "v example", "-v.example", "v.example:", "例子.cn"],
)
def test_verify_host_must_be_a_bare_host(host: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        verification_url(host, "x")
    assert info.value.reason == "pdf.bad_verify_host"


def test_verify_host_with_port() -> None:
    assert verification_url("127.0.0.1:8443", "ID") == "https://127.0.0.1:8443/v/ID"


def test_render_pdf_accepts_a_prebuilt_layout() -> None:
    t = get_template("food_business_permit")
    layout = build_face(t.sample_licence(), t, verify_host=HOST)
    assert render_pdf(layout) == _pdf("food_business_permit")


# -- fonts ----------------------------------------------------------------------------


def test_found_font_is_truetype_cjk() -> None:
    font = find_cjk_font()
    assert font.path.is_file()
    assert font.name.startswith("CL-")


def test_font_without_chinese_is_refused() -> None:
    latin = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
    if not latin.is_file():
        pytest.skip("DejaVuSans not installed")
    with pytest.raises(InvalidInputError) as info:
        load_font(latin)
    assert info.value.reason == "pdf.font_unavailable"


def test_configured_font_must_work(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "nope.ttc"))
    with pytest.raises(InvalidInputError) as info:
        find_cjk_font()
    assert info.value.reason == "pdf.font_unavailable"
    junk = tmp_path / "junk.ttf"
    junk.write_bytes(b"\x00\x01\x00\x00" + b"\x00" * 200)
    monkeypatch.setenv(ENV_VAR, f"{junk}:0")
    with pytest.raises(InvalidInputError):
        find_cjk_font()


def test_configured_font_with_index(monkeypatch: pytest.MonkeyPatch) -> None:
    font = find_cjk_font()
    monkeypatch.setenv(ENV_VAR, f"{font.path}:{font.subfont_index}")
    assert find_cjk_font() == font

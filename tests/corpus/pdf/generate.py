#!/usr/bin/env python3
"""Generate the hostile PDF corpus for the converter, with each file's expected outcome.

Run from anywhere: ``python tests/corpus/pdf/generate.py [OUT_DIR]`` (default: this
folder). It writes one ``<case>.pdf`` per case plus ``expected.json`` mapping each
file to the ``InvalidInputError.reason`` that reading / converting it must raise,
or ``null`` where the file must convert to a safe result (hostile parts ignored).
Output is deterministic (no clocks, no randomness, fixed zlib level), and
``tests/unit/test_convert.py`` checks the committed files equal a fresh run.

PDFs are written byte by byte with a tiny object writer, because most cases are
files no PDF library would write: loops, lies, bombs, impossible numbers.
Every file stays under 200 KB; the bombs are small on disk by design.
"""

from __future__ import annotations

import json
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

MAX_FILE_BYTES = 200 * 1024
HEADER = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"
CONTENT = (b"BT /F1 24 Tf 72 720 Td (corpus) Tj ET\n"
           b"0 0 1 RG 2 w 72 700 m 300 700 l S\n")


def stream(data: bytes, extra: bytes = b"") -> bytes:
    """A stream object body with a correct /Length."""
    return b"<< /Length %d %s>>\nstream\n" % (len(data), extra) + data + b"\nendstream"


def flate(data: bytes) -> bytes:
    return zlib.compress(data, 9)


def build(objects: dict[int, bytes], *, trailer: bytes = b"", root: int = 1, header: bytes = HEADER,
          xref: bool = True) -> bytes:
    """A PDF with ``objects`` (number -> body), a classic xref table and a trailer."""
    out = bytearray(header)
    offsets: dict[int, int] = {}
    for num in sorted(objects):
        offsets[num] = len(out)
        out += b"%d 0 obj\n" % num + objects[num] + b"\nendobj\n"
    size = max(objects) + 1
    xref_at = len(out)
    if xref:
        out += b"xref\n0 %d\n0000000000 65535 f \n" % size
        for num in range(1, size):
            out += (b"%010d 00000 n \n" % offsets[num]) if num in offsets else b"0000000000 65535 f \n"
    out += b"trailer\n<< /Size %d /Root %d 0 R %s>>\nstartxref\n%d\n%%%%EOF\n" % (size, root, trailer, xref_at)
    return bytes(out)


def base_objects(content: bytes = CONTENT, *, page_extra: bytes = b"", resources: bytes = b"",
                 catalog_extra: bytes = b"", pages_extra: bytes = b"") -> dict[int, bytes]:
    """The one-page baseline: catalog, pages, page, Helvetica, content."""
    return {
        1: b"<< /Type /Catalog /Pages 2 0 R %s>>" % catalog_extra,
        2: b"<< /Type /Pages /Kids [3 0 R] /Count 1 %s>>" % pages_extra,
        3: b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
           b"/Resources << /Font << /F1 4 0 R >> %s>> /Contents 5 0 R %s>>" % (resources, page_extra),
        4: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        5: stream(content),
    }


# --------------------------------------------------------------------------- cases

def baseline_valid() -> bytes:
    return build(base_objects())


def not_a_pdf() -> bytes:
    return b"This is a plain text file pretending to be a licence.\n" * 20


def empty_file() -> bytes:
    return b""


def truncated() -> bytes:
    data = build(base_objects())
    return data[: len(data) // 2]


def garbage_after_header() -> bytes:
    return HEADER + bytes((i * 73 + 41) % 256 for i in range(4096))


def xref_loop() -> bytes:
    # the trailer's /Prev points back at the same xref section, forever
    data = build(base_objects())
    xref_at = int(data.rsplit(b"startxref\n", 1)[1].split(b"\n", 1)[0])
    return data.replace(b"/Root 1 0 R ", b"/Root 1 0 R /Prev %d " % xref_at)


def xref_huge_size() -> bytes:
    # the trailer claims ten million objects and the xref section lies about its length
    data = build(base_objects())
    return data.replace(b"/Size 6 ", b"/Size 10000000 ").replace(b"xref\n0 6\n", b"xref\n0 10000000\n")


def deeply_nested_objects() -> bytes:
    nested = b"[" * 20000 + b"]" * 20000
    return build(base_objects(page_extra=b"/Junk " + nested + b" "))


def deeply_nested_content_arrays() -> bytes:
    content = CONTENT + b"[" * 5000 + b"1" + b"]" * 5000 + b" TJ\n"
    return build(base_objects(content))


def huge_page_count() -> bytes:
    return build(base_objects()).replace(b"/Count 1 ", b"/Count 1000000000 ")


def page_tree_loop() -> bytes:
    objects = base_objects()
    objects[2] = b"<< /Type /Pages /Kids [2 0 R 3 0 R] /Count 1 >>"
    return build(objects)


def deep_page_tree() -> bytes:
    objects = base_objects()
    depth = 200
    # 10 -> 11 -> ... -> page 3; the catalog points at 10
    objects[1] = b"<< /Type /Catalog /Pages 10 0 R >>"
    for level in range(depth):
        num = 10 + level
        kid = b"%d 0 R" % (num + 1) if level < depth - 1 else b"3 0 R"
        objects[num] = b"<< /Type /Pages /Kids [%s] /Count 1 >>" % kid
    return build(objects)


def no_pages() -> bytes:
    objects = base_objects()
    objects[1] = b"<< /Type /Catalog >>"
    return build(objects)


def content_stream_bomb() -> bytes:
    bomb = flate(b"0 0 m " * 10 + b" " * (64 * 1024 * 1024))
    return build(base_objects() | {5: stream(bomb, b"/Filter /FlateDecode ")})


def operator_flood() -> bytes:
    flood = flate(b"q " * 300_000 + CONTENT)
    return build(base_objects() | {5: stream(flood, b"/Filter /FlateDecode ")})


def token_flood() -> bytes:
    flood = flate(b"1 " * 4_000_000 + CONTENT)
    return build(base_objects() | {5: stream(flood, b"/Filter /FlateDecode ")})


def javascript_and_launch_actions() -> bytes:
    # every active-content hook a viewer might run; none may be executed, the text converts
    js = b"app.alert('pwned'); this.exportDataObject({cName: 'x', nLaunch: 2});"
    objects = base_objects(
        catalog_extra=b"/OpenAction 6 0 R /AA << /WC 6 0 R >> /Names << /JavaScript 7 0 R >> ",
        page_extra=b"/AA << /O 6 0 R >> /Annots [8 0 R] ")
    objects[6] = b"<< /Type /Action /S /JavaScript /JS " + stream_literal(js) + b" >>"
    objects[7] = b"<< /Names [(boot) 6 0 R] >>"
    objects[8] = (b"<< /Type /Annot /Subtype /Link /Rect [0 0 595 842] "
                  b"/A << /S /Launch /F (/bin/sh) /Win << /F (cmd.exe) /P (/c calc) >> >> >>")
    return build(objects)


def stream_literal(data: bytes) -> bytes:
    return b"(" + data.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") + b")"


def recursive_form_xobject() -> bytes:
    # Fm1 draws itself; Fm2 and Fm3 draw each other
    objects = base_objects(CONTENT + b"/Fm1 Do /Fm2 Do\n", resources=b"/XObject << /Fm1 6 0 R /Fm2 7 0 R >> ")
    objects[6] = stream(b"0 0 1 rg 10 10 50 50 re f /Fm1 Do",
                        b"/Type /XObject /Subtype /Form /BBox [0 0 595 842] "
                        b"/Resources << /XObject << /Fm1 6 0 R >> >> ")
    objects[7] = stream(b"/Fm3 Do", b"/Type /XObject /Subtype /Form /BBox [0 0 595 842] "
                                    b"/Resources << /XObject << /Fm3 8 0 R >> >> ")
    objects[8] = stream(b"/Fm2 Do", b"/Type /XObject /Subtype /Form /BBox [0 0 595 842] "
                                    b"/Resources << /XObject << /Fm2 7 0 R >> >> ")
    return build(objects)


def form_xobject_fork_bomb() -> bytes:
    # each level draws the next ten times: 10^9 form executions if nothing stops it
    objects = base_objects(CONTENT + b"/L0 Do\n", resources=b"/XObject << /L0 10 0 R >> ")
    levels = 9
    for level in range(levels):
        num = 10 + level
        if level < levels - 1:
            body = b"/N Do " * 10
            res = b"/Resources << /XObject << /N %d 0 R >> >> " % (num + 1)
        else:
            body, res = b"0 0 1 1 re f", b""
        objects[num] = stream(body, b"/Type /XObject /Subtype /Form /BBox [0 0 1 1] " + res)
    return build(objects)


def invalid_font_file() -> bytes:
    objects = base_objects()
    objects[4] = (b"<< /Type /Font /Subtype /TrueType /BaseFont /ABCDEF+Broken /FirstChar 0 /LastChar 255 "
                  b"/Widths [" + b"-1e308 " * 10 + b"] /FontDescriptor 6 0 R /ToUnicode 7 0 R >>")
    objects[6] = (b"<< /Type /FontDescriptor /FontName /ABCDEF+Broken /Flags 4 /FontBBox [0 0 1 1] "
                  b"/ItalicAngle 0 /Ascent 1 /Descent 0 /CapHeight 1 /StemV 1 /FontFile2 8 0 R >>")
    # a ToUnicode CMap whose ranges claim far more than they are and reach past Unicode
    objects[7] = stream(b"/CIDInit /ProcSet findresource begin 12 dict begin begincmap "
                        b"1 begincodespacerange <00> <FF> endcodespacerange "
                        b"2 beginbfrange <00> <FF> <FFFFFFFF> <0000> <FFFF> [<0041>] endbfrange "
                        b"1 beginbfchar <63> <D800> endbfchar endcmap")
    objects[8] = stream(b"\x00\x01\x00\x00" + b"\xff" * 2000, b"/Length1 2004 ")
    return build(objects)


def nan_and_huge_numbers() -> bytes:
    content = (CONTENT
               + b"nan inf 0 m 1e999 0 l S\n"
               + b"99999999999999999999999999999999999999999 0 0 1 0 0 cm 0 0 m 10 10 l S\n"
               + b"1 0 0 1 " + b"9" * 5000 + b" 0 cm\n"
               + b"BT /F1 1e400 Tf 0 0 Td (x) Tj /F1 0 Tf (y) Tj ET\n"
               + b"BT /F1 12 Tf 1e38 1e38 Td (far) Tj ET\n"
               + b"-.5.5.5 0 m --3 4 l ++2 0 re S\n")
    return build(base_objects(content))


def encrypted() -> bytes:
    objects = base_objects()
    objects[6] = (b"<< /Filter /Standard /V 1 /R 2 /Length 40 /P -4 "
                  b"/O <" + b"11" * 32 + b"> /U <" + b"22" * 32 + b"> >>")
    return build(objects, trailer=b"/Encrypt 6 0 R /ID [<" + b"33" * 16 + b"> <" + b"33" * 16 + b">] ")


def huge_image_claim() -> bytes:
    objects = base_objects(CONTENT + b"q 100 0 0 100 72 500 cm /Im1 Do Q\n",
                           resources=b"/XObject << /Im1 6 0 R >> ")
    objects[6] = stream(flate(b"\x00" * 1024), b"/Type /XObject /Subtype /Image /Width 100000 /Height 100000 "
                                              b"/ColorSpace /DeviceRGB /BitsPerComponent 8 /Filter /FlateDecode ")
    return build(objects)


def graphics_state_overflow() -> bytes:
    return build(base_objects(CONTENT + b"q " * 5000 + b"\n"))


def zero_size_page() -> bytes:
    return build(base_objects()).replace(b"/MediaBox [0 0 595 842]", b"/MediaBox [0 0 0 0]")


def absurd_page_size() -> bytes:
    huge = b"1" + b"0" * 20
    return build(base_objects()).replace(b"/MediaBox [0 0 595 842]", b"/MediaBox [0 0 %s %s]" % (huge, huge))


def inline_image_without_end() -> bytes:
    content = CONTENT + b"q 50 0 0 50 72 600 cm BI /W 4 /H 4 /CS /RGB /BPC 8 /F /AHx ID " + b"zz" * 500
    return build(base_objects(content))


def text_without_font() -> bytes:
    return build(base_objects(b"BT 72 720 Td (no font) Tj ET\n" + CONTENT))


def unbalanced_strings_and_arrays() -> bytes:
    content = CONTENT + b"BT /F1 12 Tf 72 600 Td [(open (nested \\) [ ] TJ ] ] >> << ET\n" + b"(" * 3000
    return build(base_objects(content))


def type3_font_recursion() -> bytes:
    # a Type 3 glyph procedure that draws its own font: glyph procedures are never run
    objects = base_objects()
    objects[4] = (b"<< /Type /Font /Subtype /Type3 /FontBBox [0 0 1000 1000] /FontMatrix [0.001 0 0 0.001 0 0] "
                  b"/CharProcs << /c 6 0 R /o 6 0 R /r 6 0 R /p 6 0 R /u 6 0 R /s 6 0 R >> "
                  b"/Encoding << /Type /Encoding /Differences [99 /c 111 /o 112 /p 114 /r /s 117 /u] >> "
                  b"/FirstChar 99 /LastChar 117 "
                  b"/Widths [" + b"600 " * 19 + b"] /Resources << /Font << /F1 4 0 R >> >> >>")
    objects[6] = stream(b"600 0 d0 BT /F1 12 Tf (corpus) Tj ET")
    return build(objects)


def stream_length_claims_a_gigabyte() -> bytes:
    objects = base_objects()
    objects[5] = b"<< /Length 999999999 >>\nstream\n" + CONTENT + b"\nendstream"
    return build(objects)


def embedded_file_bomb() -> bytes:
    # a proof bundle that inflates past the embedded-file limit
    names = b"/Names << /EmbeddedFiles << /Names [(certledger-proof.json) 6 0 R] >> >> "
    objects = base_objects(catalog_extra=names)
    objects[6] = b"<< /Type /Filespec /F (certledger-proof.json) /UF (certledger-proof.json) /EF << /F 7 0 R >> >>"
    objects[7] = stream(flate(b"{" + b" " * (32 * 1024 * 1024) + b"}"),
                        b"/Type /EmbeddedFile /Filter /FlateDecode ")
    return build(objects)


CASES: dict[str, tuple[Callable[[], bytes], str | None]] = {
    "baseline_valid": (baseline_valid, None),
    "not_a_pdf": (not_a_pdf, "convert.malformed_pdf"),
    "empty_file": (empty_file, "convert.malformed_pdf"),
    "truncated": (truncated, "convert.malformed_pdf"),
    "garbage_after_header": (garbage_after_header, "convert.malformed_pdf"),
    "xref_loop": (xref_loop, None),
    "xref_huge_size": (xref_huge_size, "convert.too_large"),
    "deeply_nested_objects": (deeply_nested_objects, "convert.malformed_pdf"),
    "deeply_nested_content_arrays": (deeply_nested_content_arrays, "convert.too_large"),
    "huge_page_count": (huge_page_count, "convert.too_large"),
    "page_tree_loop": (page_tree_loop, "convert.malformed_pdf"),
    "deep_page_tree": (deep_page_tree, "convert.too_large"),
    "no_pages": (no_pages, "convert.malformed_pdf"),
    "content_stream_bomb": (content_stream_bomb, "convert.too_large"),
    "operator_flood": (operator_flood, "convert.too_large"),
    "token_flood": (token_flood, "convert.too_large"),
    "javascript_and_launch_actions": (javascript_and_launch_actions, None),
    "recursive_form_xobject": (recursive_form_xobject, None),
    "form_xobject_fork_bomb": (form_xobject_fork_bomb, "convert.too_large"),
    "invalid_font_file": (invalid_font_file, None),
    "nan_and_huge_numbers": (nan_and_huge_numbers, None),
    "encrypted": (encrypted, "convert.encrypted"),
    "huge_image_claim": (huge_image_claim, "convert.too_large"),
    "graphics_state_overflow": (graphics_state_overflow, "convert.too_large"),
    "zero_size_page": (zero_size_page, "convert.malformed_pdf"),
    "absurd_page_size": (absurd_page_size, "convert.malformed_pdf"),
    "inline_image_without_end": (inline_image_without_end, None),
    "text_without_font": (text_without_font, None),
    "unbalanced_strings_and_arrays": (unbalanced_strings_and_arrays, None),
    "type3_font_recursion": (type3_font_recursion, None),
    "stream_length_claims_a_gigabyte": (stream_length_claims_a_gigabyte, "convert.too_large"),
    "embedded_file_bomb": (embedded_file_bomb, "convert.too_large"),
}


def generate(out_dir: Path) -> dict[str, str | None]:
    """Write every case into ``out_dir``; return ``{file name: expected reason or None}``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    expected: dict[str, str | None] = {}
    for name, (make, reason) in CASES.items():
        data = make()
        if len(data) >= MAX_FILE_BYTES:
            raise SystemExit(f"{name}: {len(data)} bytes is over the corpus limit")
        (out_dir / f"{name}.pdf").write_bytes(data)
        expected[f"{name}.pdf"] = reason
    (out_dir / "expected.json").write_text(json.dumps(expected, indent=2, sort_keys=True) + "\n", "utf-8")
    return expected


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent)

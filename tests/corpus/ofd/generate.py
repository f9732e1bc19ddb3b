#!/usr/bin/env python3
"""Generate the hostile OFD corpus: malformed and malicious files with their expected reason.

Run from anywhere: ``python tests/corpus/ofd/generate.py [OUT_DIR]`` (default: this
folder). It writes one ``<case>.ofd`` per case plus ``expected.json`` mapping each
file to the ``InvalidInputError.reason`` the reader must raise (``null`` for the
one valid baseline every mutation starts from). Output is deterministic: fixed
seed, no clocks, a hand-rolled zip writer (so headers can lie), and the same
zlib settings every time. ``tests/unit/test_ofd.py`` checks the committed files
equal a fresh run, then reads each one.

Zips are built byte by byte rather than with ``zipfile`` because half the cases
are archives ``zipfile`` refuses to write: lying sizes, symlinks, encryption
flags, duplicate and absolute names, overlapping entries.

Every file stays under 200 KB: bombs are small on disk by design.
"""

from __future__ import annotations

import json
import random
import struct
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

NS = "http://www.ofdspec.org/2016"
MAX_FILE_BYTES = 200 * 1024

# --------------------------------------------------------------------------- zip writer


@dataclass
class Entry:
    """One zip entry; every header field can be forced to lie."""

    name: str
    data: bytes
    method: int = 8  # 0 stored, 8 deflate
    flags: int = 0x800  # UTF-8 names
    external_attr: int = 0o100644 << 16
    create_system: int = 3
    declared_size: int | None = None  # uncompressed size written in the headers
    crc: int | None = None
    raw: bytes | None = None  # compressed bytes, if not derived from data
    share_data_with: int | None = None  # index of an earlier entry whose local header to reuse
    local_name: str | None = None
    name_bytes: bytes | None = None  # raw name bytes (overrides name)


def _deflate(data: bytes) -> bytes:
    comp = zlib.compressobj(9, zlib.DEFLATED, -15, 9)
    return comp.compress(data) + comp.flush()


@dataclass
class Zip:
    entries: list[Entry] = field(default_factory=list)
    prefix: bytes = b""
    suffix: bytes = b""
    eocd_count: int | None = None
    eocd_cd_size: int | None = None

    def build(self) -> bytes:
        out = bytearray(self.prefix)
        offsets: list[int] = []
        sizes: list[tuple[int, int, int]] = []
        for index, e in enumerate(self.entries):
            name = e.name_bytes if e.name_bytes is not None else e.name.encode("utf-8")
            comp = e.raw if e.raw is not None else (_deflate(e.data) if e.method == 8 else e.data)
            crc = e.crc if e.crc is not None else zlib.crc32(e.data)
            usize = e.declared_size if e.declared_size is not None else len(e.data)
            if e.share_data_with is not None:
                offsets.append(offsets[e.share_data_with])
                sizes.append(sizes[e.share_data_with])
                continue
            local = (e.local_name.encode("utf-8") if e.local_name is not None else name)
            offsets.append(len(out))
            sizes.append((crc, len(comp), usize))
            out += struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, e.flags, e.method, 0, 0x21,
                               crc, len(comp), usize, len(local), 0)
            out += local + comp
        cd_start = len(out)
        for index, e in enumerate(self.entries):
            name = e.name_bytes if e.name_bytes is not None else e.name.encode("utf-8")
            crc, csize, usize = sizes[index]
            out += struct.pack("<4s6H3L5H2L", b"PK\x01\x02", (e.create_system << 8) | 20, 20,
                               e.flags, e.method, 0, 0x21, crc, csize, usize, len(name), 0, 0,
                               0, 0, e.external_attr, offsets[index])
            out += name
        cd_size = len(out) - cd_start
        count = self.eocd_count if self.eocd_count is not None else len(self.entries)
        out += struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, count, count,
                           self.eocd_cd_size if self.eocd_cd_size is not None else cd_size,
                           cd_start - len(self.prefix) if self.prefix else cd_start, 0)
        return bytes(out) + self.suffix


# --------------------------------------------------------------------------- baseline parts

OFD_XML = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    f'<ofd:OFD xmlns:ofd="{NS}" Version="1.0" DocType="OFD"><ofd:DocBody><ofd:DocInfo>'
    "<ofd:DocID>0123456789abcdef0123456789abcdef</ofd:DocID><ofd:Title>corpus</ofd:Title>"
    '<ofd:CustomDatas><ofd:CustomData Name="licence">L-1</ofd:CustomData></ofd:CustomDatas>'
    "</ofd:DocInfo><ofd:DocRoot>Doc_0/Document.xml</ofd:DocRoot></ofd:DocBody></ofd:OFD>"
)
DOCUMENT_XML = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    f'<ofd:Document xmlns:ofd="{NS}"><ofd:CommonData><ofd:MaxUnitID>9</ofd:MaxUnitID>'
    "<ofd:PageArea><ofd:PhysicalBox>0 0 210 297</ofd:PhysicalBox></ofd:PageArea>"
    "<ofd:PublicRes>PublicRes.xml</ofd:PublicRes>"
    "<ofd:DocumentRes>DocumentRes.xml</ofd:DocumentRes></ofd:CommonData>"
    '<ofd:Pages><ofd:Page ID="3" BaseLoc="Pages/Page_0/Content.xml"/></ofd:Pages>'
    "<ofd:Attachments>Attachs/Attachments.xml</ofd:Attachments></ofd:Document>"
)
PUBLIC_RES_XML = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    f'<ofd:Res xmlns:ofd="{NS}" BaseLoc="Res"><ofd:Fonts>'
    '<ofd:Font ID="1" FontName="SimSun" FamilyName="SimSun"/></ofd:Fonts></ofd:Res>'
)
DOCUMENT_RES_XML = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    f'<ofd:Res xmlns:ofd="{NS}" BaseLoc="Res"><ofd:MultiMedias>'
    '<ofd:MultiMedia ID="2" Type="Image" Format="PNG"><ofd:MediaFile>image_2.png</ofd:MediaFile>'
    "</ofd:MultiMedia></ofd:MultiMedias></ofd:Res>"
)
CONTENT_XML = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    f'<ofd:Page xmlns:ofd="{NS}"><ofd:Area><ofd:PhysicalBox>0 0 210 297</ofd:PhysicalBox>'
    '</ofd:Area><ofd:Content><ofd:Layer ID="4" Type="Body">'
    '<ofd:TextObject ID="5" Boundary="10 10 100 10" Font="1" Size="5">'
    '<ofd:FillColor Value="0 0 0"/><ofd:TextCode X="0" Y="5" DeltaX="g 5 2.5">corpus</ofd:TextCode>'
    "</ofd:TextObject>"
    '<ofd:PathObject ID="6" Boundary="10 30 50 1" LineWidth="0.5">'
    "<ofd:AbbreviatedData>M 0 0.5 L 50 0.5</ofd:AbbreviatedData></ofd:PathObject>"
    '<ofd:ImageObject ID="7" Boundary="10 40 20 10" CTM="20 0 0 10 0 0" ResourceID="2"/>'
    "</ofd:Layer></ofd:Content></ofd:Page>"
)
ATTACHMENTS_XML = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    f'<ofd:Attachments xmlns:ofd="{NS}">'
    '<ofd:Attachment ID="8" Name="proof.json" Format="json">'
    "<ofd:FileLoc>proof.json</ofd:FileLoc></ofd:Attachment></ofd:Attachments>"
)
# a 1x1 PNG (valid, hand-assembled so the corpus needs no imaging library)
_PNG_BODY = zlib.compress(b"\x00\x00\x00\x00")


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">L", len(data)) + kind + data + struct.pack(">L", zlib.crc32(kind + data))


PNG = (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">2L5B", 1, 1, 8, 2, 0, 0, 0))
       + _png_chunk(b"IDAT", _PNG_BODY) + _png_chunk(b"IEND", b""))


def base_parts() -> dict[str, bytes]:
    """The valid baseline package every case mutates."""
    return {
        "OFD.xml": OFD_XML.encode(),
        "Doc_0/Document.xml": DOCUMENT_XML.encode(),
        "Doc_0/PublicRes.xml": PUBLIC_RES_XML.encode(),
        "Doc_0/DocumentRes.xml": DOCUMENT_RES_XML.encode(),
        "Doc_0/Pages/Page_0/Content.xml": CONTENT_XML.encode(),
        "Doc_0/Res/image_2.png": PNG,
        "Doc_0/Attachs/Attachments.xml": ATTACHMENTS_XML.encode(),
        "Doc_0/Attachs/proof.json": b'{"proof": "bundle"}',
    }


def package(parts: dict[str, bytes] | None = None, *, extra: list[Entry] | None = None,
            **zip_options: object) -> bytes:
    """Zip ``parts`` (default: the baseline), then any extra raw entries."""
    parts = base_parts() if parts is None else parts
    entries = [Entry(name, data) for name, data in parts.items()] + list(extra or [])
    return Zip(entries, **zip_options).build()  # type: ignore[arg-type]


def with_part(name: str, data: bytes | str) -> bytes:
    """The baseline with one part replaced (or added)."""
    parts = base_parts()
    parts[name] = data.encode() if isinstance(data, str) else data
    return package(parts)


def replace(name: str, old: str, new: str) -> bytes:
    """The baseline with one substring of one part replaced (which must occur)."""
    parts = base_parts()
    text = parts[name].decode()
    if old not in text:
        raise AssertionError(f"{old!r} not in {name}")
    parts[name] = text.replace(old, new).encode()
    return package(parts)


def without(name: str) -> bytes:
    parts = base_parts()
    del parts[name]
    return package(parts)


# --------------------------------------------------------------------------- cases

XML_HEAD = '<?xml version="1.0" encoding="UTF-8"?>'
ROOT = f'<ofd:OFD xmlns:ofd="{NS}" Version="1.0" DocType="OFD">'


def _billion_laughs() -> bytes:
    ents = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10}">' for i in range(1, 10)]
    return with_part("OFD.xml", f'{XML_HEAD}<!DOCTYPE ofd:OFD [{"".join(ents)}]>'
                     f"{ROOT}<ofd:DocBody><ofd:DocInfo><ofd:Title>&lol9;</ofd:Title>"
                     "</ofd:DocInfo><ofd:DocRoot>Doc_0/Document.xml</ofd:DocRoot>"
                     "</ofd:DocBody></ofd:OFD>")


def _xxe(decl: str, use: str) -> bytes:
    return with_part("OFD.xml", f"{XML_HEAD}<!DOCTYPE ofd:OFD [{decl}]>{ROOT}<ofd:DocBody>"
                     f"<ofd:DocInfo><ofd:Title>{use}</ofd:Title></ofd:DocInfo>"
                     "<ofd:DocRoot>Doc_0/Document.xml</ofd:DocRoot></ofd:DocBody></ofd:OFD>")


def _zeros_entry(name: str, size: int, **kw: object) -> Entry:
    return Entry(name, b"\x00" * size, **kw)  # type: ignore[arg-type]


def _many_entries() -> bytes:
    entries = [Entry(format(i, "x"), b"", method=0) for i in range(2100)]
    return Zip(entries).build()


def _deep_nesting() -> bytes:
    depth = 200
    inner = "<ofd:PageBlock>" * depth + "</ofd:PageBlock>" * depth
    return replace("Doc_0/Pages/Page_0/Content.xml", '<ofd:Layer ID="4" Type="Body">',
                   f'<ofd:Layer ID="4" Type="Body">{inner}')


def _huge_attribute() -> bytes:
    rng = random.Random(33190)
    digits = "".join(rng.choice("0123456789") for _ in range(270_000))
    return replace("Doc_0/Pages/Page_0/Content.xml", 'DeltaX="g 5 2.5"', f'DeltaX="{digits}"')


def _overlapping() -> bytes:
    parts = base_parts()
    entries = [Entry(name, data) for name, data in parts.items()]
    # a second directory entry pointing at the first entry's bytes: the trick that lets
    # non-recursive bombs reuse one compressed kernel many times
    entries.append(Entry("Doc_0/Res/again.png", PNG, share_data_with=0))
    return Zip(entries).build()


def _truncated() -> bytes:
    whole = package()
    return whole[: len(whole) // 2]


def _encrypted() -> bytes:
    return package(extra=[Entry("Doc_0/Res/secret.bin", b"x" * 64, flags=0x801)])


def _symlink() -> bytes:
    return package(extra=[Entry("Doc_0/Res/link", b"/etc/passwd", method=0,
                                external_attr=(0o120777 << 16))])


def _too_many_pages() -> bytes:
    pages = "".join(f'<ofd:Page ID="{100 + i}" BaseLoc="Pages/Page_{i}/Content.xml"/>'
                    for i in range(201))
    return replace("Doc_0/Document.xml",
                   '<ofd:Page ID="3" BaseLoc="Pages/Page_0/Content.xml"/>', pages)


def _multiple_docbody() -> bytes:
    body = "<ofd:DocBody><ofd:DocInfo/><ofd:DocRoot>Doc_0/Document.xml</ofd:DocRoot></ofd:DocBody>"
    return replace("OFD.xml", "</ofd:DocBody></ofd:OFD>", f"</ofd:DocBody>{body}</ofd:OFD>")


def _text_too_long() -> bytes:
    return replace("Doc_0/Pages/Page_0/Content.xml", ">corpus<", ">" + "长" * 20_000 + "<")


CASES: dict[str, tuple[Callable[[], bytes], str | None]] = {
    # the valid control: every other case is this file with one thing wrong
    "baseline_valid": (package, None),
    # --- container: not a zip, broken zips
    "not_a_zip": (lambda: b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n", "ofd.not_zip"),
    "zero_bytes": (lambda: b"", "ofd.not_zip"),
    "truncated_zip": (_truncated, "ofd.malformed_zip"),
    "empty_zip": (lambda: Zip([]).build(), "ofd.empty_package"),
    "trailing_garbage": (lambda: package(suffix=b"GARBAGE" * 8), "ofd.malformed_zip"),
    "prepended_polyglot": (lambda: package(prefix=b"%PDF-1.7\n" + b"x" * 64),
                           "ofd.malformed_zip"),
    "zip64_marker": (lambda: package(eocd_count=0xFFFF), "ofd.malformed_zip"),
    "crc_mismatch": (lambda: package(extra=[Entry("Doc_0/Res/x.bin", b"abc" * 10, crc=1)]),
                     "ofd.malformed_zip"),
    "local_central_name_mismatch": (
        lambda: package(extra=[Entry("Doc_0/Res/a.bin", b"a", local_name="Doc_0/Res/b.bin")]),
        "ofd.malformed_zip"),
    "unsupported_method_bzip2": (
        lambda: package(extra=[Entry("Doc_0/Res/x.bz2", b"BZh9", method=12, raw=b"BZh9")]),
        "ofd.unsupported_compression"),
    "encrypted_entry": (_encrypted, "ofd.encrypted_entry"),
    "symlink_entry": (_symlink, "ofd.symlink"),
    "fifo_entry": (lambda: package(extra=[Entry("Doc_0/fifo", b"", method=0,
                                               external_attr=(0o010644 << 16))]),
                   "ofd.special_entry"),
    # --- bombs and counts
    "zip_bomb_ratio": (lambda: package(extra=[_zeros_entry("Doc_0/Res/bomb.bin", 20 * 2**20)]),
                       "ofd.zip_bomb"),
    "zip_bomb_declared_huge": (
        lambda: package(extra=[Entry("Doc_0/Res/huge.bin", b"x" * 100, declared_size=2**32 - 2)]),
        "ofd.zip_bomb"),
    "zip_bomb_total": (lambda: package(extra=[_zeros_entry(f"Doc_0/Res/b{i}.bin", 25 * 2**20)
                                              for i in range(4)]), "ofd.zip_bomb"),
    "zip_bomb_lying_small_size": (
        lambda: package(extra=[_zeros_entry("Doc_0/Res/liar.bin", 4 * 2**20, declared_size=100)]),
        "ofd.malformed_zip"),
    "zip_bomb_overlapping_entries": (_overlapping, "ofd.zip_bomb"),
    "too_many_entries": (_many_entries, "ofd.too_many_entries"),
    "too_many_entries_claimed": (lambda: package(eocd_count=60_000), "ofd.too_many_entries"),
    # --- names
    "traversal_dotdot": (lambda: package(extra=[Entry("../../evil.txt", b"pwn")]),
                         "ofd.path_traversal"),
    "traversal_nested": (lambda: package(extra=[Entry("Doc_0/../../evil.txt", b"pwn")]),
                         "ofd.path_traversal"),
    "traversal_backslash": (lambda: package(extra=[Entry("..\\..\\evil.txt", b"pwn")]),
                            "ofd.path_traversal"),
    "absolute_path": (lambda: package(extra=[Entry("/etc/cron.d/evil", b"pwn")]),
                      "ofd.absolute_path"),
    "drive_letter": (lambda: package(extra=[Entry("C:/Windows/evil.dll", b"pwn")]),
                     "ofd.absolute_path"),
    "backslash_name": (lambda: package(extra=[Entry("Doc_0\\Res\\x.bin", b"x")]),
                       "ofd.bad_entry_name"),
    "nul_in_name": (lambda: package(extra=[Entry("Doc_0/Res/a.png\x00.exe", b"x")]),
                    "ofd.bad_entry_name"),
    "empty_segment_name": (lambda: package(extra=[Entry("Doc_0//Res/x.bin", b"x")]),
                           "ofd.bad_entry_name"),
    "duplicate_entry": (lambda: package(extra=[Entry("OFD.xml", OFD_XML.encode())]),
                        "ofd.duplicate_entry"),
    "duplicate_entry_case": (lambda: package(extra=[Entry("ofd.xml", OFD_XML.encode())]),
                             "ofd.duplicate_entry"),
    # --- XML hazards
    "billion_laughs": (_billion_laughs, "ofd.xml_entity"),
    "xxe_etc_passwd": (lambda: _xxe('<!ENTITY xxe SYSTEM "file:///etc/passwd">', "&xxe;"),
                       "ofd.xml_external"),
    "xxe_parameter_entity": (
        lambda: _xxe('<!ENTITY % ext SYSTEM "http://127.0.0.1:9/evil.dtd"> %ext;', "x"),
        "ofd.xml_external"),
    "dtd_external": (lambda: with_part("OFD.xml", OFD_XML.replace(
        XML_HEAD, XML_HEAD + '<!DOCTYPE ofd:OFD SYSTEM "http://127.0.0.1:9/ofd.dtd">')),
        "ofd.xml_external"),
    "dtd_internal": (lambda: with_part("OFD.xml", OFD_XML.replace(
        XML_HEAD, XML_HEAD + "<!DOCTYPE ofd:OFD [<!ELEMENT ofd:OFD ANY>]>")), "ofd.xml_dtd"),
    "malformed_xml": (lambda: with_part("Doc_0/Document.xml", DOCUMENT_XML[:-20]),
                      "ofd.malformed_xml"),
    "bad_utf8": (lambda: with_part("OFD.xml", OFD_XML.encode().replace(b"corpus", b"corp\xff\xfeus")),
                 "ofd.bad_encoding"),
    "utf16_part": (lambda: with_part("OFD.xml", OFD_XML.replace('encoding="UTF-8"',
                                                                'encoding="UTF-16"')
                                     .encode("utf-16")), "ofd.bad_encoding"),
    "huge_attribute": (_huge_attribute, "ofd.xml_attribute_too_large"),
    "deep_nesting": (_deep_nesting, "ofd.xml_too_deep"),
    # --- structure
    "missing_ofd_xml": (lambda: without("OFD.xml"), "ofd.missing_part"),
    "missing_document_xml": (lambda: without("Doc_0/Document.xml"), "ofd.missing_part"),
    "missing_page": (lambda: without("Doc_0/Pages/Page_0/Content.xml"), "ofd.missing_part"),
    "missing_image_file": (lambda: without("Doc_0/Res/image_2.png"), "ofd.missing_part"),
    "wrong_namespace": (lambda: with_part("OFD.xml", OFD_XML.replace(NS, "http://blog.example/ofd")),
                        "ofd.wrong_namespace"),
    "no_namespace": (lambda: with_part("OFD.xml", OFD_XML.replace(f' xmlns:ofd="{NS}"', "")
                                       .replace("ofd:", "")), "ofd.wrong_namespace"),
    "wrong_root": (lambda: with_part("OFD.xml", OFD_XML.replace("<ofd:OFD ", "<ofd:Document ")
                                     .replace("</ofd:OFD>", "</ofd:Document>")),
                   "ofd.unexpected_root"),
    "multiple_docbody": (_multiple_docbody, "ofd.multiple_documents"),
    "no_pages": (lambda: replace("Doc_0/Document.xml",
                                 '<ofd:Page ID="3" BaseLoc="Pages/Page_0/Content.xml"/>', ""),
                 "ofd.no_pages"),
    "too_many_pages": (_too_many_pages, "ofd.too_many_pages"),
    # --- references leaving the document
    "page_escapes_root": (lambda: replace("Doc_0/Document.xml", 'BaseLoc="Pages/Page_0/Content.xml"',
                                          'BaseLoc="../../../etc/passwd"'), "ofd.path_traversal"),
    "page_escapes_doc_folder": (lambda: replace("Doc_0/Document.xml",
                                                'BaseLoc="Pages/Page_0/Content.xml"',
                                                'BaseLoc="/OFD.xml"'), "ofd.path_traversal"),
    "docroot_url": (lambda: replace("OFD.xml", "<ofd:DocRoot>Doc_0/Document.xml",
                                    "<ofd:DocRoot>http://127.0.0.1:9/Document.xml"),
                    "ofd.external_reference"),
    "media_file_url": (lambda: replace("Doc_0/DocumentRes.xml", "<ofd:MediaFile>image_2.png",
                                       "<ofd:MediaFile>file:///etc/passwd"),
                       "ofd.external_reference"),
    "font_file_traversal": (lambda: replace("Doc_0/PublicRes.xml", 'FamilyName="SimSun"/>',
                                            'FamilyName="SimSun"><ofd:FontFile>../../../../etc/'
                                            "passwd</ofd:FontFile></ofd:Font>"),
                            "ofd.path_traversal"),
    "res_baseloc_traversal": (lambda: replace("Doc_0/DocumentRes.xml", 'BaseLoc="Res"',
                                              'BaseLoc="../../.."'), "ofd.path_traversal"),
    "attachment_traversal": (lambda: replace("Doc_0/Attachs/Attachments.xml",
                                             "<ofd:FileLoc>proof.json",
                                             "<ofd:FileLoc>../../../root/.ssh/id_rsa"),
                             "ofd.path_traversal"),
    "page_loc_drive_letter": (lambda: replace("Doc_0/Document.xml",
                                              'BaseLoc="Pages/Page_0/Content.xml"',
                                              'BaseLoc="C:\\Windows\\win.ini"'), "ofd.absolute_path"),
    # --- values and references inside the content
    "ctm_nan": (lambda: replace("Doc_0/Pages/Page_0/Content.xml", 'CTM="20 0 0 10 0 0"',
                                'CTM="NaN 0 0 10 0 0"'), "ofd.bad_value"),
    "boundary_infinite": (lambda: replace("Doc_0/Pages/Page_0/Content.xml",
                                          'Boundary="10 10 100 10"', 'Boundary="10 10 1e999 10"'),
                          "ofd.bad_value"),
    "page_size_absurd": (lambda: replace("Doc_0/Pages/Page_0/Content.xml",
                                         "<ofd:PhysicalBox>0 0 210 297",
                                         "<ofd:PhysicalBox>0 0 999999 297"), "ofd.bad_value"),
    "colour_out_of_range": (lambda: replace("Doc_0/Pages/Page_0/Content.xml", 'Value="0 0 0"',
                                            'Value="300 0 0"'), "ofd.bad_value"),
    "path_unknown_operator": (lambda: replace("Doc_0/Pages/Page_0/Content.xml", "L 50 0.5",
                                              "Z 50 0.5"), "ofd.bad_value"),
    "deltax_nan": (lambda: replace("Doc_0/Pages/Page_0/Content.xml", 'DeltaX="g 5 2.5"',
                                   'DeltaX="g 99999999999 nan"'), "ofd.bad_value"),
    "unknown_font": (lambda: replace("Doc_0/Pages/Page_0/Content.xml", 'Font="1"', 'Font="99"'),
                     "ofd.bad_reference"),
    "unknown_image": (lambda: replace("Doc_0/Pages/Page_0/Content.xml", 'ResourceID="2"',
                                      'ResourceID="98"'), "ofd.bad_reference"),
    "duplicate_ids": (lambda: replace("Doc_0/DocumentRes.xml", 'MultiMedia ID="2"',
                                      'MultiMedia ID="1"'), "ofd.duplicate_id"),
    "duplicate_custom_data": (lambda: replace(
        "OFD.xml", "</ofd:CustomDatas>",
        '<ofd:CustomData Name="licence">L-2</ofd:CustomData></ofd:CustomDatas>'),
        "ofd.duplicate_custom_data"),
    "duplicate_attachment": (lambda: replace(
        "Doc_0/Attachs/Attachments.xml", "</ofd:Attachments>",
        '<ofd:Attachment ID="9" Name="proof.json"><ofd:FileLoc>proof.json</ofd:FileLoc>'
        "</ofd:Attachment></ofd:Attachments>"), "ofd.duplicate_attachment"),
    "text_too_long": (_text_too_long, "ofd.text_too_long"),
}


def generate(out_dir: Path) -> dict[str, str | None]:
    """Write every case into ``out_dir``; return ``{file name: expected reason}``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    expected: dict[str, str | None] = {}
    for case, (make, reason) in CASES.items():
        data = make()
        if len(data) > MAX_FILE_BYTES:
            raise AssertionError(f"{case} is {len(data)} bytes, over the corpus limit")
        (out_dir / f"{case}.ofd").write_bytes(data)
        expected[f"{case}.ofd"] = reason
    (out_dir / "expected.json").write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n",
                                           encoding="utf-8")
    return expected


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent
    written = generate(target)
    print(f"wrote {len(written)} files to {target}")

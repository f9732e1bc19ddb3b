"""OFD electronic seals checked by independent implementations.

* the ``openssl`` CLI parses SignedValue.dat and the seal (``asn1parse``); the TBS_Sign
  bytes, the signature and the signer certificate are cut out at the offsets *openssl*
  reports, and ``pkeyutl -verify -rawin -digest sm3 -pkeyopt distid:1234567812345678``
  verifies the signer's and the seal maker's SM2 signatures; ``openssl verify`` builds the
  signer certificate's chain; ``openssl dgst -sm3`` recomputes every CheckValue;
* the npm package sm-crypto (tests/js/sm_crypto_driver.js) verifies the same signatures
  and recomputes SM3(Signature.xml) = dataHash;
* easyofd (PyPI) opens the sealed OFD, maps the StampAnnot to its page, finds our seal
  picture inside SignedValue.dat, and draws it where the stamp is when it converts the
  OFD to PDF (checked by rendering that PDF with PyMuPDF).

Each check also makes the other side fail once (a changed byte), so a tool that said
"valid" to everything would be caught.
"""

from __future__ import annotations

import base64
import io
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from cert_formats.ofd import (
    OFD_NAMESPACE,
    Color,
    DocumentInfo,
    Font,
    OFDDocument,
    Page,
    PathObject,
    TextObject,
    read_zip,
)
from cert_formats.seal import (
    ElectronicSeal,
    StampPlacement,
    make_seal,
    render_seal_picture,
    seal_document,
    verify_ofd_seals,
)
from signing.sm2 import SM2PrivateKey
from signing.x509 import (
    Certificate,
    DistinguishedName,
    Role,
    Validity,
    issue_certificate,
    issue_root_certificate,
)

pytestmark = pytest.mark.interop

DISTID = "distid:1234567812345678"
VERIFIED = b"Signature Verified Successfully"
SIGNATURE = "Doc_0/Signs/Sign_0/Signature.xml"
SIGNED_VALUE = "Doc_0/Signs/Sign_0/SignedValue.dat"
STAMP = (140.0, 215.0, 42.0, 42.0)
TEXTS = ("营业执照", "名称 某某科技有限公司", "登记机关 某某市市场监督管理局")
FONT_FILES = ("/usr/share/fonts/truetype/arphic/uming.ttc", "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc")
NOW = datetime.now(UTC).replace(microsecond=0)


@dataclass(frozen=True)
class Sealed:
    data: bytes
    parts: dict[str, bytes]
    seal: ElectronicSeal
    root: Certificate
    agency: Certificate
    agency_key: SM2PrivateKey
    maker: Certificate

    def seal_again(self, document: OFDDocument) -> bytes:
        """Another document sealed with the same seal and stamp."""
        return seal_document(document, seal=self.seal, signer_key=self.agency_key, signer_cert=self.agency,
                             stamps=[StampPlacement(page=0, x=STAMP[0], y=STAMP[1], width=STAMP[2],
                                                    height=STAMP[3])])


def _cjk_font() -> Font:
    from fontTools import subset as ft_subset
    from fontTools.ttLib import TTFont

    path = next((p for p in FONT_FILES if Path(p).exists()), None)
    if path is None:
        pytest.fail("no CJK TrueType font: apt-get install fonts-arphic-uming (scripts/setup.sh)")
    tt = TTFont(path, fontNumber=0, lazy=True)
    options = ft_subset.Options()
    options.name_IDs = ["*"]
    options.drop_tables += ["BDF", "FFTM", "EBDT", "EBLC", "EBSC"]
    subsetter = ft_subset.Subsetter(options)
    subsetter.populate(text="".join(TEXTS))
    subsetter.subset(tt)
    buf = io.BytesIO()
    tt.save(buf)
    return Font(tt["name"].getDebugName(1) or "CJK", data=buf.getvalue())


@pytest.fixture(scope="module")
def sealed() -> Sealed:
    start = NOW - timedelta(days=30)
    root_key = SM2PrivateKey.generate()
    root_dn = DistinguishedName(country="CN", organization="某省数字证书认证中心", common_name="某省根CA")
    root = issue_root_certificate(root_dn, root_key, Validity.for_days(3650, start=start))

    def issue(name: str) -> tuple[SM2PrivateKey, Certificate]:
        key = SM2PrivateKey.generate()
        cert = issue_certificate(role=Role.AGENCY, subject=DistinguishedName(
            country="CN", organization=name, common_name=name, credit_code="11100000000013127D"),
            public_key=key.public_key, validity=Validity.for_days(700, start=start), issuer=root, issuer_key=root_key)
        return key, cert

    agency_key, agency = issue("某某市市场监督管理局")
    maker_key, maker = issue("某某市公安局")
    seal = make_seal(name="某某市市场监督管理局证照专用章", signers=[agency], maker_key=maker_key, maker_cert=maker,
                     valid_start=start, valid_end=NOW + timedelta(days=365),
                     picture=render_seal_picture("某某市市场监督管理局", caption="证照专用章", diameter_mm=42))
    font = _cjk_font()
    page = Page((
        PathObject.rect(10, 10, 190, 277, stroke=Color(190, 20, 20), line_width=1),
        TextObject(TEXTS[0], 81, 45, font, 12, fill=Color(190, 20, 20)),
        TextObject(TEXTS[1], 20, 80, font, 4.5),
        TextObject(TEXTS[2], 100, 250, font, 4.5),
    ))
    document = OFDDocument(info=DocumentInfo(doc_id="5f0c1e9a2b3d4c5e6f708192a3b4c5d6", title="营业执照"),
                           pages=(page,))
    data = seal_document(document, seal=seal, signer_key=agency_key, signer_cert=agency,
                         stamps=[StampPlacement(page=0, x=STAMP[0], y=STAMP[1], width=STAMP[2], height=STAMP[3])])
    verify_ofd_seals(data, [root])  # our own verdict first: the tools below must agree with it
    return Sealed(data, read_zip(data), seal, root, agency, agency_key, maker)


# -- openssl asn1parse as the independent DER parser -------------------------------------------------


@dataclass(frozen=True)
class Node:
    offset: int
    depth: int
    header: int
    length: int
    kind: str

    @property
    def end(self) -> int:
        return self.offset + self.header + self.length

    def raw(self, data: bytes) -> bytes:
        return data[self.offset:self.end]

    def content(self, data: bytes) -> bytes:
        return data[self.offset + self.header:self.end]


_LINE = re.compile(r"^\s*(\d+):d=(\d+)\s+hl=(\d+)\s+l=\s*(\d+)\s+(?:cons|prim):\s*([^:]*?)\s*(?::.*)?$")


def asn1parse(openssl: Any, path: Path) -> list[Node]:
    proc = openssl("asn1parse", "-inform", "DER", "-in", path)
    assert proc.returncode == 0, proc.stderr
    nodes = []
    for line in proc.stdout.decode("utf-8", "replace").splitlines():
        m = _LINE.match(line)
        assert m, line
        kind = m[5].removesuffix("[HEX DUMP]").strip()
        nodes.append(Node(int(m[1]), int(m[2]), int(m[3]), int(m[4]), kind))
    return nodes


def children(nodes: list[Node], parent: Node) -> list[Node]:
    return [n for n in nodes if n.depth == parent.depth + 1 and parent.offset < n.offset < parent.end]


def _openssl_verify_sm2(openssl: Any, tmp: Path, cert_der: bytes, message: bytes, signature: bytes) -> Any:
    (tmp / "cert.der").write_bytes(cert_der)
    pub = openssl("x509", "-inform", "DER", "-in", tmp / "cert.der", "-noout", "-pubkey")
    assert pub.returncode == 0, pub.stderr
    (tmp / "pub.pem").write_bytes(pub.stdout)
    (tmp / "msg.der").write_bytes(message)
    (tmp / "sig.der").write_bytes(signature)
    return openssl("pkeyutl", "-verify", "-rawin", "-digest", "sm3", "-pkeyopt", DISTID, "-pubin",
                   "-inkey", tmp / "pub.pem", "-in", tmp / "msg.der", "-sigfile", tmp / "sig.der")


@dataclass(frozen=True)
class Cut:
    """SignedValue.dat cut at openssl's offsets."""

    tbs: bytes
    signer_cert: bytes
    algorithm: str
    signature: bytes
    seal: bytes
    seal_info: bytes
    maker_cert: bytes
    seal_signature: bytes
    data_hash: bytes
    property_info: str


def cut(openssl: Any, tmp: Path, signed_value: bytes) -> Cut:
    path = tmp / "SignedValue.dat"
    path.write_bytes(signed_value)
    nodes = asn1parse(openssl, path)
    top = nodes[0]
    assert top.kind == "SEQUENCE" and top.end == len(signed_value)
    tbs, cert, alg, sig = children(nodes, top)
    assert [n.kind for n in (tbs, cert, alg, sig)] == ["SEQUENCE", "OCTET STRING", "OBJECT", "BIT STRING"]
    version, eseal, time_info, data_hash, prop = children(nodes, tbs)
    assert (version.kind, time_info.kind, data_hash.kind, prop.kind) == (
        "INTEGER", "GENERALIZEDTIME", "BIT STRING", "IA5STRING")
    assert version.content(signed_value) == b"\x04"
    info, maker_cert, seal_alg, seal_sig = children(nodes, eseal)
    header = children(nodes, children(nodes, info)[0])
    assert [h.content(signed_value) for h in header] == [b"ES", b"\x04", b"certledger"]
    alg_line = openssl("asn1parse", "-inform", "DER", "-in", path, "-offset", str(alg.offset), "-length",
                       str(alg.header + alg.length)).stdout.decode()
    assert "SM2-with-SM3" in alg_line
    assert "SM2-with-SM3" in openssl("asn1parse", "-inform", "DER", "-in", path, "-offset", str(seal_alg.offset),
                                     "-length", str(seal_alg.header + seal_alg.length)).stdout.decode()
    bits = sig.content(signed_value)
    seal_bits = seal_sig.content(signed_value)
    hash_bits = data_hash.content(signed_value)
    assert bits[0] == seal_bits[0] == hash_bits[0] == 0  # no unused bits
    return Cut(tbs=tbs.raw(signed_value), signer_cert=cert.content(signed_value), algorithm=alg.kind,
               signature=bits[1:], seal=eseal.raw(signed_value), seal_info=info.raw(signed_value),
               maker_cert=maker_cert.content(signed_value), seal_signature=seal_bits[1:],
               data_hash=hash_bits[1:], property_info=prop.content(signed_value).decode("ascii"))


@pytest.fixture(scope="module")
def pieces(openssl: Any, sealed: Sealed, tmp_path_factory: pytest.TempPathFactory) -> Cut:
    return cut(openssl, tmp_path_factory.mktemp("cut"), sealed.parts[SIGNED_VALUE])


def test_openssl_parses_signed_value_and_seal(openssl: Any, sealed: Sealed, pieces: Cut, tmp_path: Path) -> None:
    assert pieces.signer_cert == sealed.agency.der
    assert pieces.maker_cert == sealed.maker.der
    assert pieces.seal == sealed.seal.der
    assert pieces.property_info == "/" + SIGNATURE
    # the seal on its own (a .esl file) parses too, with the picture as an OCTET STRING
    (tmp_path / "seal.esl").write_bytes(sealed.seal.der)
    nodes = asn1parse(openssl, tmp_path / "seal.esl")
    assert nodes[0].end == len(sealed.seal.der)
    pngs = [n for n in nodes if n.kind == "OCTET STRING" and n.content(sealed.seal.der).startswith(b"\x89PNG")]
    assert len(pngs) == 1
    assert pngs[0].content(sealed.seal.der) == sealed.seal.info.picture.data


def test_openssl_verifies_the_signers_signature(openssl: Any, pieces: Cut, tmp_path: Path) -> None:
    proc = _openssl_verify_sm2(openssl, tmp_path, pieces.signer_cert, pieces.tbs, pieces.signature)
    assert proc.returncode == 0 and VERIFIED in proc.stdout, proc.stderr
    flipped = bytearray(pieces.tbs)
    flipped[-3] ^= 0x01
    bad = _openssl_verify_sm2(openssl, tmp_path, pieces.signer_cert, bytes(flipped), pieces.signature)
    assert bad.returncode != 0


def test_openssl_verifies_the_seal_makers_signature(openssl: Any, pieces: Cut, tmp_path: Path) -> None:
    proc = _openssl_verify_sm2(openssl, tmp_path, pieces.maker_cert, pieces.seal_info, pieces.seal_signature)
    assert proc.returncode == 0 and VERIFIED in proc.stdout, proc.stderr
    # it is the maker's key, not the signer's, that signed the seal
    wrong = _openssl_verify_sm2(openssl, tmp_path, pieces.signer_cert, pieces.seal_info, pieces.seal_signature)
    assert wrong.returncode != 0


def test_openssl_builds_the_signer_chain(openssl: Any, sealed: Sealed, pieces: Cut, tmp_path: Path) -> None:
    (tmp_path / "root.pem").write_bytes(sealed.root.to_pem())
    (tmp_path / "signer.der").write_bytes(pieces.signer_cert)
    pem = openssl("x509", "-inform", "DER", "-in", tmp_path / "signer.der", "-out", tmp_path / "signer.pem")
    assert pem.returncode == 0, pem.stderr
    proc = openssl("verify", "-CAfile", tmp_path / "root.pem", "-vfyopt", DISTID, tmp_path / "signer.pem")
    assert proc.returncode == 0 and b": OK" in proc.stdout, proc.stdout + proc.stderr


def test_openssl_sm3_matches_every_check_value(openssl: Any, sealed: Sealed, pieces: Cut, tmp_path: Path) -> None:
    root = ET.fromstring(sealed.parts[SIGNATURE])
    ns = {"ofd": OFD_NAMESPACE}
    refs = root.findall("ofd:SignedInfo/ofd:References/ofd:Reference", ns)
    references = root.find("ofd:SignedInfo/ofd:References", ns)
    assert references is not None and references.get("CheckMethod") == "1.2.156.10197.1.401"
    assert {r.get("FileRef") for r in refs} == {"/" + p for p in sealed.parts
                                                if p not in (SIGNATURE, SIGNED_VALUE, "Doc_0/Signs/Signatures.xml")}

    def sm3_of(data: bytes) -> bytes:
        (tmp_path / "file").write_bytes(data)
        proc = openssl("dgst", "-sm3", "-binary", tmp_path / "file")
        assert proc.returncode == 0, proc.stderr
        return bytes(proc.stdout)

    for ref in refs:
        path = (ref.get("FileRef") or "").lstrip("/")
        check_value = ref.findtext("ofd:CheckValue", namespaces=ns) or ""
        assert sm3_of(sealed.parts[path]) == base64.b64decode(check_value), path
    assert sm3_of(sealed.parts[SIGNATURE]) == pieces.data_hash


def test_sm_crypto_verifies_both_signatures(sm_crypto: Any, sealed: Sealed, pieces: Cut) -> None:
    agency_pub = sealed.agency.public_key.to_bytes().hex()
    maker_pub = sealed.maker.public_key.to_bytes().hex()
    tampered = bytearray(pieces.seal_info)
    tampered[40] ^= 0x20
    results = sm_crypto.run([
        {"op": "verify", "msg_hex": pieces.tbs.hex(), "sig_hex": pieces.signature.hex(), "pub_hex": agency_pub},
        {"op": "verify", "msg_hex": pieces.seal_info.hex(), "sig_hex": pieces.seal_signature.hex(),
         "pub_hex": maker_pub},
        {"op": "verify", "msg_hex": bytes(tampered).hex(), "sig_hex": pieces.seal_signature.hex(),
         "pub_hex": maker_pub},
        {"op": "sm3", "msg_hex": sealed.parts[SIGNATURE].hex()},
    ])
    assert [r.get("valid") for r in results[:3]] == [True, True, False]
    assert results[3]["digest_hex"] == pieces.data_hash.hex()


# -- easyofd ---------------------------------------------------------------------------------------


def test_easyofd_reads_the_sealed_file(sealed: Sealed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # easyofd unzips into the working directory
    from easyofd.parser_ofd import OFDParser
    from easyofd.parser_ofd.find_seal_img import SealExtract

    (doc,) = OFDParser(base64.b64encode(sealed.data).decode())()
    assert sorted(t["text"] for t in doc["page_info"][0]["text_list"]) == sorted(TEXTS)
    (stamp,) = doc["signatures_page_id"][0]  # page 0, found through our PageRef
    assert [float(v) for v in stamp["Boundary"].split()] == list(STAMP)
    assert base64.b64decode(stamp["SignedValue"]) == sealed.parts[SIGNED_VALUE]
    # easyofd's own ASN.1 walk (pyasn1) finds our seal picture inside SignedValue.dat
    (tmp_path / "SignedValue.dat").write_bytes(sealed.parts[SIGNED_VALUE])
    images = SealExtract()(str(tmp_path / "SignedValue.dat"))
    picture = Image.open(io.BytesIO(sealed.seal.info.picture.data))
    assert [im.size for im in images] == [picture.size]


def test_easyofd_draws_the_seal_where_the_stamp_is(sealed: Sealed, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    import fitz  # PyMuPDF, to look at what easyofd drew
    from easyofd.ofd import OFD

    # a page without text: easyofd's PDF writer searches every system font for each text
    # face it does not know, which takes a minute and tests nothing about the seal
    page = Page((PathObject.rect(10, 10, 190, 277, stroke=Color(0, 0, 0), line_width=1),))
    data = sealed.seal_again(OFDDocument(info=DocumentInfo(doc_id="0123456789abcdef0123456789abcdef"),
                                         pages=(page,)))
    verify_ofd_seals(data, [sealed.root])
    ofd = OFD()
    ofd.read(data, fmt="binary")
    pdf = fitz.open(stream=ofd.to_pdf(), filetype="pdf")[0]
    pix = pdf.get_pixmap(dpi=36)
    mm = pix.width / 210  # easyofd's page is A4 at its own scale
    assert abs(pix.height / mm - 297) < 1

    def red_share(x: float, y: float, w: float, h: float) -> float:
        red = total = 0
        for py in range(int(y * mm), int((y + h) * mm)):
            for px in range(int(x * mm), int((x + w) * mm)):
                r, g, b = pix.pixel(px, py)[:3]
                total += 1
                red += r > 150 and g < 110 and b < 110
        return red / total

    x, y, w, h = STAMP
    assert red_share(x, y, w, h) > 0.08  # ring, star and name in seal red
    assert red_share(20, 120, w, h) < 0.01  # an empty area of the page elsewhere

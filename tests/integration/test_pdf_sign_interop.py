"""Signed licence PDFs checked by independent implementations.

* poppler ``pdfsig`` (NSS) validates the ECDSA P-256 signature, reports the
  SM2 signature's byte ranges, trusts the ECDSA chain from an NSS database,
  and notices tampering;
* pypdf opens and reads every signed file;
* the ``openssl`` CLI verifies the SM2 signature over the signed attributes
  (``pkeyutl -rawin -digest sm3 -pkeyopt distid:1234567812345678``), the SM3
  messageDigest over the byte ranges, and the agency certificate chain
  embedded in the CMS; ``openssl cms`` parses the CMS and — once the signature
  is replaced by one made with OpenSSL's own (empty) SM2 ID, which is the only
  ID OpenSSL 3.0's CMS code can use — verifies it, which shows every other part
  of the CMS (digest, attributes, signer lookup) is what OpenSSL expects.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from asn1crypto import cms
from cryptography.hazmat.primitives import serialization
from pypdf import PdfReader
from reportlab.pdfgen import canvas

from cert_formats.pdfsig import (
    EcdsaAuthority,
    SignatureBox,
    SignatureDetails,
    sign_pdf_ecdsa,
    sign_pdf_sm2,
    verify_pdf_signatures,
)
from signing.sm2 import DEFAULT_SIGNER_ID, SM2PrivateKey
from signing.x509 import Certificate, DistinguishedName, Role, Validity, issue_certificate, issue_root_certificate

pytestmark = pytest.mark.interop

OPENSSL = shutil.which("openssl")
PDFSIG = shutil.which("pdfsig")
CERTUTIL = shutil.which("certutil")
DISTID = "distid:" + DEFAULT_SIGNER_ID.decode()
MARKER = "ABC-123"


@dataclasses.dataclass(frozen=True)
class Signed:
    dir: Path
    root: Certificate
    agency: Certificate
    agency_key: SM2PrivateKey
    ecdsa_ca: EcdsaAuthority
    sm2_only: Path
    both: Path
    ecdsa_only: Path


def run(*args: str, cwd: Path, check: bool = False) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, timeout=120, check=check)


def make_pdf() -> bytes:
    buf = io.BytesIO()
    pdf = canvas.Canvas(buf, pageCompression=0)
    for n in range(2):
        pdf.drawString(72, 720, f"Licence {MARKER} page {n + 1}")
        pdf.showPage()
    pdf.save()
    return buf.getvalue()


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> Signed:
    out = tmp_path_factory.mktemp("pdfsig")
    root_key = SM2PrivateKey.generate()
    root = issue_root_certificate(
        DistinguishedName(common_name="Fujian Province Root", organization="Fujian", country="CN"),
        root_key,
        Validity.for_days(3650),
    )
    agency_key = SM2PrivateKey.generate()
    agency = issue_certificate(
        role=Role.AGENCY,
        subject=DistinguishedName(
            common_name="Fuzhou Market Regulation",
            organization="Fuzhou Market Regulation",
            country="CN",
            credit_code="91350100M000100Y43",
        ),
        public_key=agency_key.public_key,
        validity=Validity.for_days(365),
        issuer=root,
        issuer_key=root_key,
    )
    ca = EcdsaAuthority.create("certledger interop ECDSA CA", organization="certledger tests")
    identity = ca.issue_signing_identity("Fuzhou Market Regulation ECDSA", organization="Fuzhou")
    base = make_pdf()
    sm2 = sign_pdf_sm2(
        base,
        key=agency_key,
        certificate=agency,
        chain=[root],
        details=SignatureDetails(
            "AgencySeal", box=SignatureBox(0, 360, 60, 560, 140), reason="licence issued", location="Fuzhou"
        ),
    )
    both = sign_pdf_ecdsa(sm2, identity=identity, details=SignatureDetails("ReaderSignature"))
    ecdsa = sign_pdf_ecdsa(base, identity=identity, details=SignatureDetails("ReaderSignature"))
    paths = {name: out / f"{name}.pdf" for name in ("sm2_only", "both", "ecdsa_only")}
    for name, data in (("sm2_only", sm2), ("both", both), ("ecdsa_only", ecdsa)):
        paths[name].write_bytes(data)
    (out / "root.pem").write_bytes(root.to_pem())
    (out / "ecdsa_ca.pem").write_bytes(ca.certificate.public_bytes(serialization.Encoding.PEM))
    # the file under test verifies with this package before anyone else looks at it
    assert verify_pdf_signatures(both, [root], ca.certificates()).ok
    return Signed(out, root, agency, agency_key, ca, paths["sm2_only"], paths["both"], paths["ecdsa_only"])


def signature_blocks(pdfsig_output: str) -> dict[str, str]:
    """pdfsig's report split per signature, keyed by field name."""
    blocks: dict[str, str] = {}
    for block in re.split(r"^Signature #\d+:\s*$", pdfsig_output, flags=re.MULTILINE)[1:]:
        name = re.search(r"Signature Field Name: (\S+)", block)
        assert name is not None, block
        blocks[name.group(1)] = block
    return blocks


def cms_parts(pdf: Path, field: str) -> tuple[bytes, bytes, cms.ContentInfo]:
    """(signed bytes of the byte range, the CMS DER, its parse) of ``field``, read with pypdf."""
    data = pdf.read_bytes()
    fields = PdfReader(io.BytesIO(data)).get_fields()
    assert fields is not None
    value = fields[field]["/V"].get_object()
    a, b, c, d = (int(v) for v in value["/ByteRange"])
    contents = bytes(value["/Contents"])
    info = cms.ContentInfo.load(contents)  # asn1crypto stops at the end of the DER value
    return data[a : a + b] + data[c : c + d], info.dump(), info


# -- poppler pdfsig ------------------------------------------------------------------------


@pytest.mark.skipif(PDFSIG is None, reason="poppler-utils (pdfsig) is not installed")
def test_pdfsig_validates_the_ecdsa_signature(signed: Signed) -> None:
    for pdf in (signed.both, signed.ecdsa_only):
        proc = run("pdfsig", "-nocert", str(pdf), cwd=signed.dir)
        assert proc.returncode == 0, proc.stderr
        blocks = signature_blocks(proc.stdout)
        ecdsa = blocks["ReaderSignature"]
        assert "Signature Validation: Signature is Valid." in ecdsa
        assert "Total document signed" in ecdsa
        assert "Signature Type: ETSI.CAdES.detached" in ecdsa
        assert "Signing Hash Algorithm: SHA-256" in ecdsa
    # the SM2 signature is listed with the byte ranges it covers (its own revision)
    sm2_block = signature_blocks(run("pdfsig", "-nocert", str(signed.both), cwd=signed.dir).stdout)["AgencySeal"]
    fields = PdfReader(signed.both).get_fields()
    assert fields is not None
    a, b, c, d = (int(v) for v in fields["AgencySeal"]["/V"].get_object()["/ByteRange"])
    assert f"[{a} - {a + b}], [{c} - {c + d}]" in sm2_block
    assert "Not total document signed" in sm2_block
    assert "Signature Type: ETSI.CAdES.detached" in sm2_block


@pytest.mark.skipif(PDFSIG is None or CERTUTIL is None, reason="pdfsig and certutil (libnss3-tools) needed")
def test_pdfsig_trusts_the_ecdsa_chain_from_an_nss_database(signed: Signed) -> None:
    nss = signed.dir / "nssdb"
    nss.mkdir(exist_ok=True)
    run("certutil", "-N", "-d", f"sql:{nss}", "--empty-password", cwd=signed.dir, check=True)
    # no -no-ocsp: poppler 22.12 then reports a generic certificate error; our certificates
    # have no AIA, so no OCSP request is made either way
    untrusted = run("pdfsig", "-nssdir", f"sql:{nss}", str(signed.ecdsa_only), cwd=signed.dir)
    assert "Certificate is Trusted." not in untrusted.stdout
    run(
        "certutil", "-A", "-d", f"sql:{nss}", "-n", "certledger-test-ca", "-t", "CT,C,C",
        "-i", str(signed.dir / "ecdsa_ca.pem"), cwd=signed.dir, check=True,
    )  # fmt: skip
    trusted = run("pdfsig", "-nssdir", f"sql:{nss}", str(signed.ecdsa_only), cwd=signed.dir)
    block = signature_blocks(trusted.stdout)["ReaderSignature"]
    assert "Signature Validation: Signature is Valid." in block
    assert "Certificate Validation: Certificate is Trusted." in block


@pytest.mark.skipif(PDFSIG is None, reason="poppler-utils (pdfsig) is not installed")
def test_pdfsig_notices_a_changed_byte(signed: Signed) -> None:
    data = signed.ecdsa_only.read_bytes()
    assert data.count(f"{MARKER} page 2".encode()) == 1
    tampered = signed.dir / "tampered.pdf"
    tampered.write_bytes(data.replace(f"{MARKER} page 2".encode(), b"ABC-124 page 2"))
    block = signature_blocks(run("pdfsig", "-nocert", str(tampered), cwd=signed.dir).stdout)["ReaderSignature"]
    assert "Signature Validation: Digest Mismatch." in block


# -- pypdf ----------------------------------------------------------------------------------


def test_pypdf_reads_the_signed_files(signed: Signed) -> None:
    for pdf in (signed.sm2_only, signed.both, signed.ecdsa_only):
        reader = PdfReader(pdf, strict=True)
        assert len(reader.pages) == 2
        assert MARKER in reader.pages[0].extract_text()
        fields = reader.get_fields()
        assert fields is not None
        for name in fields:
            assert fields[name]["/FT"] == "/Sig"
    both_fields = PdfReader(signed.both).get_fields()
    assert both_fields is not None and set(both_fields) == {"AgencySeal", "ReaderSignature"}


# -- openssl ------------------------------------------------------------------------------


@pytest.mark.skipif(OPENSSL is None, reason="openssl CLI not installed")
def test_openssl_verifies_the_sm2_signature(signed: Signed) -> None:
    _, _, info = cms_parts(signed.both, "AgencySeal")
    si = info["content"]["signer_infos"][0]
    signed_attrs = b"\x31" + si["signed_attrs"].dump()[1:]  # [0] IMPLICIT -> SET OF, RFC 5652 §5.4
    (signed.dir / "agency.pub").write_bytes(signed.agency.public_key.to_pem())
    (signed.dir / "signed_attrs.der").write_bytes(signed_attrs)
    (signed.dir / "sig.der").write_bytes(si["signature"].native)
    args = ["-pubin", "-inkey", "agency.pub", "-sigfile", "sig.der"]
    ok = run(
        "openssl", "pkeyutl", "-verify", "-rawin", "-digest", "sm3", "-pkeyopt", DISTID,
        "-in", "signed_attrs.der", *args, cwd=signed.dir,
    )  # fmt: skip
    assert ok.returncode == 0 and "Signature Verified Successfully" in ok.stdout, ok.stderr
    # one flipped bit in the signed attributes and OpenSSL refuses
    flipped = bytearray(signed_attrs)
    flipped[-1] ^= 0x01
    (signed.dir / "flipped.der").write_bytes(bytes(flipped))
    bad = run(
        "openssl", "pkeyutl", "-verify", "-rawin", "-digest", "sm3", "-pkeyopt", DISTID,
        "-in", "flipped.der", *args, cwd=signed.dir,
    )  # fmt: skip
    assert bad.returncode != 0


@pytest.mark.skipif(OPENSSL is None, reason="openssl CLI not installed")
def test_openssl_sm3_of_the_byte_range_is_the_message_digest(signed: Signed) -> None:
    content, _, info = cms_parts(signed.both, "AgencySeal")
    (signed.dir / "content.bin").write_bytes(content)
    proc = run("openssl", "dgst", "-sm3", "-r", "content.bin", cwd=signed.dir, check=True)
    digest = bytes.fromhex(proc.stdout.split()[0])
    attrs = {a["type"].native: a["values"][0].native for a in info["content"]["signer_infos"][0]["signed_attrs"]}
    assert attrs["message_digest"] == digest
    assert digest == hashlib.new("sm3", content).digest()


@pytest.mark.skipif(OPENSSL is None, reason="openssl CLI not installed")
def test_openssl_verifies_the_embedded_certificate_chain(signed: Signed) -> None:
    _, _, info = cms_parts(signed.both, "AgencySeal")
    ders = [c.chosen.dump() for c in info["content"]["certificates"]]
    assert signed.agency.der in ders and signed.root.der in ders
    (signed.dir / "agency.crt").write_bytes(signed.agency.to_pem())
    proc = run(
        "openssl", "verify", "-CAfile", "root.pem", "-vfyopt", DISTID, "-purpose", "any", "agency.crt",
        cwd=signed.dir,
    )  # fmt: skip
    assert proc.returncode == 0 and "agency.crt: OK" in proc.stdout, proc.stdout + proc.stderr


@pytest.mark.skipif(OPENSSL is None, reason="openssl CLI not installed")
def test_openssl_cms_reads_and_checks_the_sm2_cms(signed: Signed) -> None:
    content, cms_der, info = cms_parts(signed.sm2_only, "AgencySeal")
    (signed.dir / "cms_content.bin").write_bytes(content)
    (signed.dir / "sm2.p7s").write_bytes(cms_der)
    printed = run("openssl", "cms", "-cmsout", "-print", "-inform", "DER", "-in", "sm2.p7s", cwd=signed.dir)
    assert printed.returncode == 0, printed.stderr
    assert "sm3 (1.2.156.10197.1.401)" in printed.stdout
    assert "SM2-with-SM3 (1.2.156.10197.1.501)" in printed.stdout

    verify = ["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-noverify", "-out", "/dev/null"]
    # our CMS, signed with the GM/T 0009 default signer ID: OpenSSL 3.0's CMS code has no
    # way to pass an SM2 ID and uses the empty one, so it can get no further than the
    # signature step itself (everything before it — parsing, signer lookup — succeeded)
    ours = run(*verify, "-in", "sm2.p7s", "-content", "cms_content.bin", cwd=signed.dir)
    if ours.returncode != 0:
        assert "CMS_SignerInfo_verify:verification failure" in ours.stderr, ours.stderr

    # the same CMS with the signature remade by OpenSSL over the same signed attributes
    # with its own (empty) ID: OpenSSL now verifies messageDigest (SM3 over the PDF byte
    # ranges), the attributes and the signature end to end
    si = info["content"]["signer_infos"][0]
    (signed.dir / "attrs.der").write_bytes(b"\x31" + si["signed_attrs"].dump()[1:])
    (signed.dir / "agency.key").write_bytes(signed.agency_key.to_pem(None))
    run(
        "openssl", "pkeyutl", "-sign", "-rawin", "-digest", "sm3", "-inkey", "agency.key",
        "-in", "attrs.der", "-out", "empty_id.sig", cwd=signed.dir, check=True,
    )  # fmt: skip
    si["signature"] = (signed.dir / "empty_id.sig").read_bytes()
    (signed.dir / "empty_id.p7s").write_bytes(info.dump())
    spliced = run(*verify, "-in", "empty_id.p7s", "-content", "cms_content.bin", cwd=signed.dir)
    assert spliced.returncode == 0 and "Verification successful" in spliced.stderr, spliced.stderr
    # ... and it notices a changed byte in the signed content through the SM3 messageDigest
    bad_content = content.replace(f"{MARKER} page 1".encode(), b"ABC-124 page 1")
    assert bad_content != content
    (signed.dir / "cms_content_bad.bin").write_bytes(bad_content)
    broken = run(*verify, "-in", "empty_id.p7s", "-content", "cms_content_bad.bin", cwd=signed.dir)
    assert broken.returncode != 0, broken.stderr
    assert "CMS_SignerInfo_verify_content" in broken.stderr  # the messageDigest step, not the signature

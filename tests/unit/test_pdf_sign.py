"""PAdES signing and verification of licence PDFs (cert_formats.pdfsig): SM2/SM3 and ECDSA P-256.

Signed files are made once per module (SM2 key generation and CJK font loading
are the slow parts) and tampered with in memory; every negative test starts
from a file that verifies.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import random
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from asn1crypto import cms
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.writer import PdfFileWriter
from pypdf import PdfReader
from reportlab.pdfgen import canvas

from cert_formats.pdfsig import (
    ALGORITHM_SM2,
    SM2_1,
    SM2_WITH_SM3,
    SM3,
    CheckName,
    Coverage,
    EcdsaAuthority,
    EcdsaSigningIdentity,
    PdfLimits,
    PdfSignatureResult,
    SignatureBox,
    SignatureCheck,
    SignatureDetails,
    cms_sm2,
    sign_pdf_ecdsa,
    sign_pdf_sm2,
    verify_pdf_signatures,
)
from cert_formats.pdfsig.sign import MAX_SM2_SIGNATURE_DER
from signing.errors import InvalidInputError, VerificationError
from signing.sm2 import SM2PrivateKey
from signing.x509 import Certificate, DistinguishedName, Role, Validity, issue_certificate, issue_root_certificate

AGENCY_CODE = "91350100M000100Y43"
MARKER = b"ABC-123"


# -- fixtures ---------------------------------------------------------------------------


def make_pdf(pages: int = 2) -> bytes:
    """A small uncompressed PDF whose page 1 carries MARKER in clear text (to tamper with)."""
    buf = io.BytesIO()
    pdf = canvas.Canvas(buf, pageCompression=0)
    for n in range(pages):
        pdf.setFont("Helvetica", 14)
        pdf.drawString(72, 720, f"Licence {MARKER.decode()} page {n + 1}")
        pdf.showPage()
    pdf.save()
    return buf.getvalue()


@dataclasses.dataclass(frozen=True)
class Sm2Pki:
    root_key: SM2PrivateKey
    root: Certificate
    agency_key: SM2PrivateKey
    agency: Certificate


def make_sm2_pki(name: str = "Fujian Province Root") -> Sm2Pki:
    root_key = SM2PrivateKey.generate()
    root = issue_root_certificate(
        DistinguishedName(common_name=name, organization="Fujian", country="CN"),
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
            credit_code=AGENCY_CODE,
        ),
        public_key=agency_key.public_key,
        validity=Validity.for_days(365),
        issuer=root,
        issuer_key=root_key,
    )
    return Sm2Pki(root_key, root, agency_key, agency)


@pytest.fixture(scope="module")
def pki() -> Sm2Pki:
    return make_sm2_pki()


@pytest.fixture(scope="module")
def ecdsa_ca() -> EcdsaAuthority:
    return EcdsaAuthority.create("certledger test ECDSA CA", organization="certledger tests")


@pytest.fixture(scope="module")
def ecdsa_identity(ecdsa_ca: EcdsaAuthority) -> EcdsaSigningIdentity:
    return ecdsa_ca.issue_signing_identity("Fuzhou Market Regulation (ECDSA)", organization="Fuzhou")


@pytest.fixture(scope="module")
def base_pdf() -> bytes:
    return make_pdf()


def sm2_sign(
    pdf: bytes,
    pki: Sm2Pki,
    *,
    details: SignatureDetails | None = None,
    signature_algorithm: str = SM2_WITH_SM3,
) -> bytes:
    details = details or SignatureDetails(
        "AgencySeal", reason="licence issued", location="Fuzhou", contact_info="+86 591 0000000"
    )
    return sign_pdf_sm2(
        pdf,
        key=pki.agency_key,
        certificate=pki.agency,
        chain=[pki.root],
        details=details,
        signature_algorithm=signature_algorithm,
    )


@pytest.fixture(scope="module")
def sm2_pdf(base_pdf: bytes, pki: Sm2Pki) -> bytes:
    return sm2_sign(base_pdf, pki)


@pytest.fixture(scope="module")
def both_pdf(sm2_pdf: bytes, ecdsa_identity: EcdsaSigningIdentity) -> bytes:
    return sign_pdf_ecdsa(sm2_pdf, identity=ecdsa_identity, details=SignatureDetails("ReaderSignature"))


@pytest.fixture(scope="module")
def ecdsa_pdf(base_pdf: bytes, ecdsa_identity: EcdsaSigningIdentity) -> bytes:
    return sign_pdf_ecdsa(base_pdf, identity=ecdsa_identity, details=SignatureDetails("ReaderSignature"))


# -- helpers to look inside and to tamper ---------------------------------------------------


def sig_dict(pdf: bytes, field: str) -> Any:
    """The signature dictionary of ``field``, read with pypdf (not the code under test)."""
    fields = PdfReader(io.BytesIO(pdf)).get_fields()
    assert fields is not None
    return fields[field]["/V"].get_object()


def cms_of(pdf: bytes, field: str) -> tuple[cms.ContentInfo, bytes]:
    contents = bytes(sig_dict(pdf, field)["/Contents"])
    body = cms_sm2.cms_envelope(contents, max_bytes=1 << 20)
    return cms.ContentInfo.load(body), contents


def gap(pdf: bytes, field: str) -> tuple[int, int]:
    _, len1, start2, _ = (int(v) for v in sig_dict(pdf, field)["/ByteRange"])
    return len1, start2


def replace_once(data: bytes, old: bytes, new: bytes) -> bytes:
    assert len(old) == len(new) and data.count(old) == 1
    return data.replace(old, new)


def with_contents(pdf: bytes, field: str, new_contents: bytes) -> bytes:
    """``pdf`` with the /Contents hex string of ``field`` replaced (same length, in place)."""
    start, end = gap(pdf, field)
    hex_len = end - start - 2
    hexed = new_contents.hex().upper().encode().ljust(hex_len, b"0")
    assert len(hexed) == hex_len
    return pdf[: start + 1] + hexed + pdf[end - 1 :]


def check(sig: PdfSignatureResult, name: CheckName) -> SignatureCheck:
    found = sig.check(name)
    assert found is not None
    return found


# -- signing: the CMS and the PDF profile --------------------------------------------------


def test_sm2_signature_verifies(sm2_pdf: bytes, pki: Sm2Pki) -> None:
    result = verify_pdf_signatures(sm2_pdf, [pki.root])
    assert result.ok and result.reason is None
    (sig,) = result.signatures
    assert sig.field_name == "AgencySeal"
    assert sig.algorithm == ALGORITHM_SM2
    assert sig.coverage is Coverage.ENTIRE_FILE
    assert sig.modification_level == "none"
    assert "Fuzhou Market Regulation" in (sig.signer_subject or "")
    assert [c.name for c in sig.checks] == list(CheckName)
    assert sig.signing_time is not None and abs(sig.signing_time - datetime.now(UTC)) < timedelta(minutes=10)
    result.require_valid()
    result.require_valid(algorithm=None)


def test_sm2_cms_profile(sm2_pdf: bytes, pki: Sm2Pki) -> None:
    info, contents = cms_of(sm2_pdf, "AgencySeal")
    assert info["content_type"].dotted == "1.2.840.113549.1.7.2"
    signed = info["content"]
    assert [a["algorithm"].dotted for a in signed["digest_algorithms"]] == [SM3]
    assert signed["encap_content_info"]["content"].native is None  # detached
    (si,) = signed["signer_infos"]
    assert si["digest_algorithm"]["algorithm"].dotted == SM3
    assert si["signature_algorithm"]["algorithm"].dotted == SM2_WITH_SM3
    assert len(si["signature"].native) <= MAX_SM2_SIGNATURE_DER
    attrs = {a["type"].dotted: a["values"] for a in si["signed_attrs"]}
    # PAdES B-B: content-type, message-digest, signing-certificate-v2, and no signing-time
    assert set(attrs) == {
        "1.2.840.113549.1.9.3",
        "1.2.840.113549.1.9.4",
        "1.2.840.113549.1.9.16.2.47",
    }
    ess = attrs["1.2.840.113549.1.9.16.2.47"][0]["certs"][0]
    assert ess["hash_algorithm"]["algorithm"].dotted == SM3
    assert ess["cert_hash"].native == hashlib.new("sm3", pki.agency.der).digest()
    embedded = {c.chosen.dump() for c in signed["certificates"]}
    assert embedded == {pki.agency.der, pki.root.der}
    # messageDigest is SM3 over the two byte ranges, recomputed here with hashlib
    br = [int(v) for v in sig_dict(sm2_pdf, "AgencySeal")["/ByteRange"]]
    signed_bytes = sm2_pdf[br[0] : br[0] + br[1]] + sm2_pdf[br[2] : br[2] + br[3]]
    assert attrs["1.2.840.113549.1.9.4"][0].native == hashlib.new("sm3", signed_bytes).digest()
    # the SM2 signature over the DER SET OF signed attributes, with the default signer ID
    signed_attrs = b"\x31" + si["signed_attrs"].dump()[1:]
    pki.agency.public_key.verify(si["signature"].native, signed_attrs)
    # dry-run sizing: the CMS fits its /Contents slot and only zero padding follows
    body = cms_sm2.cms_envelope(contents, max_bytes=1 << 20)
    assert len(body) <= len(contents) and not contents[len(body) :].strip(b"\x00")


def test_signature_dictionary_fields(sm2_pdf: bytes) -> None:
    sig = sig_dict(sm2_pdf, "AgencySeal")
    assert sig["/SubFilter"] == "/ETSI.CAdES.detached"
    assert sig["/Filter"] == "/Adobe.PPKLite"
    assert sig["/Name"] == "Fuzhou Market Regulation"
    assert sig["/Reason"] == "licence issued"
    assert sig["/Location"] == "Fuzhou"
    assert sig["/ContactInfo"] == "+86 591 0000000"
    assert str(sig["/M"]).startswith("D:")


def test_sm2_1_signature_algorithm_is_accepted(base_pdf: bytes, pki: Sm2Pki) -> None:
    signed = sm2_sign(base_pdf, pki, signature_algorithm=SM2_1)
    info, _ = cms_of(signed, "AgencySeal")
    assert info["content"]["signer_infos"][0]["signature_algorithm"]["algorithm"].dotted == SM2_1
    assert verify_pdf_signatures(signed, [pki.root]).ok
    with pytest.raises(InvalidInputError) as exc:
        sm2_sign(base_pdf, pki, signature_algorithm="1.2.840.10045.4.3.2")
    assert exc.value.reason == "pdf.algorithm"


def test_sm2_then_ecdsa_incremental(both_pdf: bytes, sm2_pdf: bytes, pki: Sm2Pki, ecdsa_ca: EcdsaAuthority) -> None:
    assert both_pdf.startswith(sm2_pdf)  # an incremental update: the SM2 revision is untouched
    result = verify_pdf_signatures(both_pdf, [pki.root], ecdsa_ca.certificates())
    assert result.ok, result.as_dict()
    first, second = result.signatures
    assert (first.field_name, first.algorithm) == ("AgencySeal", ALGORITHM_SM2)
    assert (second.field_name, second.algorithm) == ("ReaderSignature", "ecdsa-sha256")
    assert first.coverage is Coverage.ENTIRE_REVISION
    assert first.modification_level == "form_filling"
    assert second.coverage is Coverage.ENTIRE_FILE
    assert first.revision is not None and second.revision is not None and first.revision < second.revision
    # the first signature covers exactly its own revision, i.e. the file it was made on
    br = [int(v) for v in sig_dict(both_pdf, "AgencySeal")["/ByteRange"]]
    assert br[2] + br[3] == len(sm2_pdf)
    assert "Fuzhou Market Regulation (ECDSA)" in (second.signer_subject or "")


def test_ecdsa_signature_alone(ecdsa_pdf: bytes, ecdsa_ca: EcdsaAuthority, pki: Sm2Pki) -> None:
    result = verify_pdf_signatures(ecdsa_pdf, [pki.root], ecdsa_ca.certificates())
    assert result.ok
    info, _ = cms_of(ecdsa_pdf, "ReaderSignature")
    si = info["content"]["signer_infos"][0]
    assert si["digest_algorithm"]["algorithm"].native == "sha256"
    assert si["signature_algorithm"]["algorithm"].native in ("sha256_ecdsa", "ecdsa")
    # no SM2 signature: the default hard stop (SM2 required) refuses, the generic one accepts
    with pytest.raises(VerificationError) as exc:
        result.require_valid()
    assert exc.value.reason == "pdf.no_signature"
    result.require_valid(algorithm="ecdsa-sha256")


def test_certify_then_second_signature(
    base_pdf: bytes, pki: Sm2Pki, ecdsa_identity: EcdsaSigningIdentity, ecdsa_ca: EcdsaAuthority
) -> None:
    certified = sm2_sign(base_pdf, pki, details=SignatureDetails("AgencySeal", certify=True))
    assert b"/DocMDP" in certified
    both = sign_pdf_ecdsa(certified, identity=ecdsa_identity, details=SignatureDetails("ReaderSignature"))
    assert verify_pdf_signatures(both, [pki.root], ecdsa_ca.certificates()).ok


# -- field placement --------------------------------------------------------------------


def widget(pdf: bytes, field: str) -> tuple[Any, int]:
    reader = PdfReader(io.BytesIO(pdf))
    for index, page in enumerate(reader.pages):
        for ref in page.get("/Annots") or []:
            annot = ref.get_object()
            if annot.get("/T") == field:
                return annot, index
    raise AssertionError(f"no widget for {field}")


def test_invisible_field(sm2_pdf: bytes) -> None:
    annot, page = widget(sm2_pdf, "AgencySeal")
    assert page == 0
    assert [float(v) for v in annot["/Rect"]] == [0, 0, 0, 0]


def test_visible_field_with_text_appearance(base_pdf: bytes, pki: Sm2Pki) -> None:
    box = SignatureBox(page=1, x1=360, y1=60, x2=560.4, y2=140)
    signed = sm2_sign(base_pdf, pki, details=SignatureDetails("AgencySeal", box=box, reason="issued"))
    annot, page = widget(signed, "AgencySeal")
    assert page == 1
    assert [float(v) for v in annot["/Rect"]] == [360, 60, 560, 140]
    assert "/N" in annot["/AP"]
    assert verify_pdf_signatures(signed, [pki.root]).ok


def test_visible_field_with_caller_appearance(base_pdf: bytes, pki: Sm2Pki) -> None:
    buf = io.BytesIO()
    art = canvas.Canvas(buf, pagesize=(120, 120), pageCompression=0)
    art.drawString(10, 60, "SEAL-ART-7f3a")
    art.save()
    box = SignatureBox(page=0, x1=400, y1=600, x2=520, y2=720, appearance_pdf=buf.getvalue())
    signed = sm2_sign(base_pdf, pki, details=SignatureDetails("AgencySeal", box=box))
    assert b"SEAL-ART-7f3a" in signed
    assert verify_pdf_signatures(signed, [pki.root]).ok


def test_visible_field_with_chinese_text(base_pdf: bytes, pki: Sm2Pki) -> None:
    from cert_formats.fonts import find_cjk_font

    try:
        find_cjk_font()
    except InvalidInputError:
        pytest.skip("no CJK TrueType font on this host (fonts-arphic-uming)")
    box = SignatureBox(page=0, x1=360, y1=60, x2=560, y2=140)
    details = SignatureDetails("AgencySeal", box=box, signer_name="福州市市场监督管理局", reason="颁发营业执照")
    signed = sm2_sign(base_pdf, pki, details=details)
    assert sig_dict(signed, "AgencySeal")["/Name"] == "福州市市场监督管理局"
    assert verify_pdf_signatures(signed, [pki.root]).ok


@pytest.mark.parametrize(
    ("kwargs", "what"),
    [
        ({"field_name": "a.b"}, "period"),
        ({"field_name": ""}, "empty"),
        ({"field_name": "x" * 65}, "long"),
        ({"field_name": "ok", "reason": "line\nbreak"}, "control"),
    ],
)
def test_signature_details_are_validated(kwargs: dict[str, str], what: str) -> None:
    with pytest.raises(InvalidInputError) as exc:
        SignatureDetails(**kwargs)  # type: ignore[arg-type]
    assert exc.value.reason == "pdf.field", what


def test_signature_box_is_validated() -> None:
    for args in ((-1, 0, 0, 100, 100), (0, 100, 0, 50, 100), (0, 0, 0, 5, 5), (0, 0, 0, float("inf"), 10)):
        with pytest.raises(InvalidInputError):
            SignatureBox(*args)


def test_signing_errors(base_pdf: bytes, sm2_pdf: bytes, pki: Sm2Pki) -> None:
    other = SM2PrivateKey.generate()
    with pytest.raises(InvalidInputError) as exc:
        sign_pdf_sm2(base_pdf, key=other, certificate=pki.agency, details=SignatureDetails("S"))
    assert exc.value.reason == "pdf.key_mismatch"
    with pytest.raises(InvalidInputError) as exc:
        sm2_sign(sm2_pdf, pki)  # the same field again
    assert exc.value.reason == "pdf.field"
    with pytest.raises(InvalidInputError) as exc:
        sm2_sign(base_pdf, pki, details=SignatureDetails("S", box=SignatureBox(5, 0, 0, 100, 100)))
    assert exc.value.reason == "pdf.field"
    for junk in (b"", b"hello", base_pdf[: len(base_pdf) // 2]):
        with pytest.raises(InvalidInputError) as exc:
            sm2_sign(junk, pki)
        assert exc.value.reason == "pdf.malformed"


def test_ecdsa_identity_checks(ecdsa_identity: EcdsaSigningIdentity) -> None:
    with pytest.raises(InvalidInputError) as exc:
        EcdsaSigningIdentity(key=ec.generate_private_key(ec.SECP256R1()), certificate=ecdsa_identity.certificate)
    assert exc.value.reason == "pdf.key_mismatch"
    with pytest.raises(InvalidInputError) as exc:
        EcdsaSigningIdentity(key=ec.generate_private_key(ec.SECP384R1()), certificate=ecdsa_identity.certificate)
    assert exc.value.reason == "pdf.key_type"
    key_pem = ecdsa_identity.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"pw")
    )
    cert_pem = ecdsa_identity.certificate.public_bytes(serialization.Encoding.PEM)
    chain_pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in ecdsa_identity.chain)
    loaded = EcdsaSigningIdentity.from_pem(key_pem, cert_pem, chain_pem, passphrase=b"pw")
    assert loaded.certificate == ecdsa_identity.certificate and loaded.chain == ecdsa_identity.chain
    with pytest.raises(InvalidInputError):
        EcdsaSigningIdentity.from_pem(key_pem, cert_pem, passphrase=b"wrong")


# -- verification: negative cases -----------------------------------------------------------


def test_changed_byte_in_signed_range_is_a_digest_mismatch(sm2_pdf: bytes, pki: Sm2Pki) -> None:
    tampered = replace_once(sm2_pdf, b"ABC-123 page 1", b"ABC-124 page 1")
    result = verify_pdf_signatures(tampered, [pki.root])
    (sig,) = result.signatures
    assert not result.ok and result.reason == "pdf.digest_mismatch"
    assert check(sig, CheckName.DIGEST).reason == "pdf.digest_mismatch"
    assert check(sig, CheckName.SIGNATURE).ok  # the attributes are untouched
    with pytest.raises(VerificationError) as exc:
        result.require_valid()
    assert exc.value.reason == "pdf.digest_mismatch"


def test_changed_byte_under_ecdsa_is_a_digest_mismatch(ecdsa_pdf: bytes, ecdsa_ca: EcdsaAuthority) -> None:
    tampered = replace_once(ecdsa_pdf, b"ABC-123 page 2", b"ABC-129 page 2")
    result = verify_pdf_signatures(tampered, [], ecdsa_ca.certificates())
    assert result.reason == "pdf.digest_mismatch"


def test_wrong_trust_anchor_is_a_chain_failure(both_pdf: bytes, pki: Sm2Pki, ecdsa_ca: EcdsaAuthority) -> None:
    stranger = make_sm2_pki("Another Province Root")
    other_ca = EcdsaAuthority.create("another ECDSA CA")
    result = verify_pdf_signatures(both_pdf, [stranger.root], other_ca.certificates())
    assert [s.reason for s in result.signatures] == ["pdf.chain", "pdf.chain"]
    assert all(s.intact for s in result.signatures)
    sm2 = result.by_algorithm(ALGORITHM_SM2)[0]
    assert "cert.untrusted" in check(sm2, CheckName.CHAIN).detail
    with pytest.raises(VerificationError) as exc:
        result.require_valid()
    assert exc.value.reason == "pdf.chain"


def test_no_ecdsa_anchor_fails_only_that_chain(both_pdf: bytes, pki: Sm2Pki) -> None:
    result = verify_pdf_signatures(both_pdf, [pki.root])
    sm2, ecdsa = result.signatures
    assert sm2.ok and not ecdsa.ok and ecdsa.reason == "pdf.chain" and ecdsa.intact
    result.require_valid()  # the SM2 seal is what the default hard stop requires
    with pytest.raises(VerificationError) as exc:
        result.require_valid(algorithm=None)
    assert exc.value.reason == "pdf.chain"


def test_expired_agency_certificate(sm2_pdf: bytes, pki: Sm2Pki) -> None:
    later = datetime.now(UTC) + timedelta(days=400)
    result = verify_pdf_signatures(sm2_pdf, [pki.root], at=later)
    assert result.reason == "pdf.chain"
    assert "cert.expired" in check(result.signatures[0], CheckName.CHAIN).detail


def test_truncated_file(sm2_pdf: bytes, pki: Sm2Pki) -> None:
    for cut in (len(sm2_pdf) // 2, len(sm2_pdf) - 40, 100):
        with pytest.raises(InvalidInputError) as exc:
            verify_pdf_signatures(sm2_pdf[:cut], [pki.root])
        assert exc.value.reason == "pdf.malformed"


def test_garbage_contents_is_malformed(both_pdf: bytes, pki: Sm2Pki, ecdsa_ca: EcdsaAuthority) -> None:
    for garbage in (b"\x30\x82\x01\x00" + b"\xaa" * 300, b"\x02\x01\x05", b"\x30\x03\x02\x01\x05\x07"):
        tampered = with_contents(both_pdf, "AgencySeal", garbage)
        result = verify_pdf_signatures(tampered, [pki.root], ecdsa_ca.certificates())
        sm2, ecdsa = result.signatures
        assert sm2.reason == "pdf.malformed" and sm2.checks[0].name is CheckName.STRUCTURE
        # the later ECDSA signature covers the earlier revision, /Contents included
        assert ecdsa.reason == "pdf.digest_mismatch"


def test_forged_sm2_signature_value(sm2_pdf: bytes, pki: Sm2Pki) -> None:
    info, _ = cms_of(sm2_pdf, "AgencySeal")
    si = info["content"]["signer_infos"][0]
    sig = bytearray(si["signature"].native)
    sig[-1] ^= 0x01  # last byte of s
    si["signature"] = bytes(sig)
    tampered = with_contents(sm2_pdf, "AgencySeal", info.dump(force=True))
    result = verify_pdf_signatures(tampered, [pki.root])
    (only,) = result.signatures
    assert only.reason == "pdf.signature_invalid"
    assert check(only, CheckName.DIGEST).ok


def test_signature_by_another_key_is_invalid(sm2_pdf: bytes, pki: Sm2Pki) -> None:
    # an impostor key signs the genuine signed attributes (same messageDigest, same
    # certificate reference): the SM2 check uses the agency certificate's key and fails
    info, contents = cms_of(sm2_pdf, "AgencySeal")
    si = info["content"]["signer_infos"][0]
    signed_attrs = b"\x31" + si["signed_attrs"].dump()[1:]
    impostor = SM2PrivateKey.generate()
    forged_sig = impostor.sign(signed_attrs)
    while len(forged_sig) > len(si["signature"].native):  # DER length varies by a byte or two
        forged_sig = impostor.sign(signed_attrs)
    si["signature"] = forged_sig
    tampered = with_contents(sm2_pdf, "AgencySeal", info.dump(force=True))
    (sig,) = verify_pdf_signatures(tampered, [pki.root]).signatures
    assert sig.reason == "pdf.signature_invalid"
    assert check(sig, CheckName.DIGEST).ok
    assert check(sig, CheckName.CHAIN).ok  # the certificate itself is genuine
    assert len(contents) > 0


def test_signing_certificate_attribute_must_match(sm2_pdf: bytes) -> None:
    info, _ = cms_of(sm2_pdf, "AgencySeal")
    parsed = cms_sm2.parse_sm2_signed_data(info.dump(), max_certificates=8)
    parsed.check_certificate_binding()
    wrong = dataclasses.replace(parsed, ess_cert_id=cms_sm2.EssCertId("sm3", bytes(32), None))
    with pytest.raises(VerificationError) as exc:
        wrong.check_certificate_binding()
    assert exc.value.reason == "pdf.signature_invalid"


def test_byte_range_manipulation(sm2_pdf: bytes, pki: Sm2Pki) -> None:
    match = re.search(rb"/ByteRange \[(\d+) (\d+) (\d+) (\d+)\]\s*", sm2_pdf)
    assert match is not None
    a, b, c, d = (int(x) for x in match.groups())
    old = match.group(0)
    # ranges whose gap is not exactly this /Contents, or that leave the file
    for new_range in ((a, b - 2, c + 2, d - 2), (a, b + 1, c, d), (a, b, c, d + 1), (1, b - 1, c, d)):
        text = b"/ByteRange [%d %d %d %d]" % new_range
        tampered = sm2_pdf.replace(old, text.ljust(len(old)))
        result = verify_pdf_signatures(tampered, [pki.root])
        assert result.signatures[0].reason == "pdf.byte_range", new_range
    # a range that leaves out the final newline still changes the signed bytes
    text = b"/ByteRange [%d %d %d %d]" % (a, b, c, d - 1)
    result = verify_pdf_signatures(sm2_pdf.replace(old, text.ljust(len(old))), [pki.root])
    assert not result.ok


def test_shadow_update_after_signing_is_detected(sm2_pdf: bytes, pki: Sm2Pki) -> None:
    writer = IncrementalPdfFileWriter(io.BytesIO(sm2_pdf))
    page_ref = writer.root["/Pages"].raw_get("/Kids")[0]
    page = page_ref.get_object()
    page["/Contents"] = writer.add_object(generic.StreamObject(stream_data=b"BT /F1 14 Tf 72 720 Td (FORGED) Tj ET"))
    writer.update_container(page)
    out = io.BytesIO()
    writer.write(out)  # type: ignore[no-untyped-call]
    result = verify_pdf_signatures(out.getvalue(), [pki.root])
    (sig,) = result.signatures
    assert sig.coverage is Coverage.ENTIRE_REVISION
    assert sig.reason == "pdf.modified"
    assert check(sig, CheckName.DIGEST).ok  # the signed revision itself is intact


def test_unsigned_pdf(base_pdf: bytes, pki: Sm2Pki) -> None:
    result = verify_pdf_signatures(base_pdf, [pki.root])
    assert not result.ok and not result and result.signatures == ()
    assert result.reason == "pdf.no_signature"
    with pytest.raises(VerificationError) as exc:
        result.require_valid(algorithm=None)
    assert exc.value.reason == "pdf.no_signature"


def test_hostile_input_limits(both_pdf: bytes, pki: Sm2Pki) -> None:
    cases = [
        (b"not a pdf at all", PdfLimits()),
        (both_pdf, PdfLimits(max_bytes=len(both_pdf) - 1)),
        (both_pdf, PdfLimits(max_signatures=1)),
        (both_pdf, PdfLimits(max_revisions=2)),
        (both_pdf, PdfLimits(max_objects=5)),
    ]
    for data, limits in cases:
        with pytest.raises(InvalidInputError) as exc:
            verify_pdf_signatures(data, [pki.root], limits=limits)
        assert exc.value.reason == "pdf.malformed", limits
    with pytest.raises(InvalidInputError) as exc:
        verify_pdf_signatures(both_pdf, [pki.root], limits=PdfLimits(max_seconds=1e-9))
    assert exc.value.reason == "pdf.timeout"
    small = verify_pdf_signatures(both_pdf, [pki.root], limits=PdfLimits(max_contents_bytes=64))
    assert {s.reason for s in small.signatures} == {"pdf.malformed"}
    with pytest.raises(InvalidInputError):
        verify_pdf_signatures(both_pdf, [pki.root], at=datetime(2030, 1, 1))  # naive time


def test_result_is_serialisable(both_pdf: bytes, pki: Sm2Pki) -> None:
    data = verify_pdf_signatures(both_pdf, [pki.root]).as_dict()
    assert data["ok"] is False and data["reason"] == "pdf.chain"
    assert [s["field_name"] for s in data["signatures"]] == ["AgencySeal", "ReaderSignature"]
    assert data["signatures"][0]["checks"][0] == {
        "check": "structure",
        "ok": True,
        "reason": None,
        "detail": "CMS signedData, sm2-sm3",
    }


def test_mutated_files_never_crash_the_verifier(both_pdf: bytes, pki: Sm2Pki, ecdsa_ca: EcdsaAuthority) -> None:
    # random byte edits, deletions and insertions: every outcome is a result or a pdf.* error
    rng = random.Random(20240601)
    outcomes: set[str] = set()
    for _ in range(150):
        data = bytearray(both_pdf)
        for _ in range(rng.choice((1, 2, 5))):
            pos = rng.randrange(len(data))
            op = rng.random()
            if op < 0.6:
                data[pos] = rng.randrange(256)
            elif op < 0.8:
                del data[pos : pos + rng.randrange(1, 50)]
            else:
                data[pos:pos] = rng.randbytes(rng.randrange(1, 20))
        try:
            result = verify_pdf_signatures(bytes(data), [pki.root], ecdsa_ca.certificates())
        except InvalidInputError as exc:
            assert exc.reason in ("pdf.malformed", "pdf.timeout")
            outcomes.add("raised")
        else:
            assert result.signatures or result.reason == "pdf.no_signature"
            outcomes.add(result.reason or "ok")
    assert "raised" in outcomes and len(outcomes) > 2


def test_decompression_bomb_is_refused() -> None:
    # 8 MiB of zeros in a compressed object stream that /AcroForm lives in: ~17 KB on disk
    writer = PdfFileWriter(stream_xrefs=True)  # type: ignore[no-untyped-call]
    objstm = writer.prepare_object_stream()  # type: ignore[no-untyped-call]
    blob = writer.add_object(generic.ByteStringObject(bytes(8 * 1024 * 1024)), obj_stream=objstm)
    acro_form = generic.DictionaryObject(  # type: ignore[no-untyped-call]
        {generic.NameObject("/Fields"): generic.ArrayObject(), generic.NameObject("/Blob"): blob}
    )
    writer.root["/AcroForm"] = writer.add_object(acro_form, obj_stream=objstm)
    out = io.BytesIO()
    writer.write(out)  # type: ignore[no-untyped-call]
    assert len(out.getvalue()) < 100_000
    for limits in (PdfLimits(), PdfLimits(max_stream_bytes=1024 * 1024, max_decoded_bytes=2 * 1024 * 1024)):
        with pytest.raises(InvalidInputError) as exc:
            verify_pdf_signatures(out.getvalue(), [], limits=limits)
        assert exc.value.reason == "pdf.malformed"
        assert "exceeds the limit" in exc.value.message


# -- the CMS written directly equals pyHanko's own assembly ------------------------------------


def _embedded_cms(pdf: bytes) -> tuple[bytes, int]:
    """The last signature's CMS (without the zero padding) and its reserved size in bytes."""
    m = list(re.finditer(rb"/ByteRange \[0 (\d+) (\d+) (\d+)\]", pdf))[-1]
    gap = bytes.fromhex(pdf[int(m.group(1)) + 1 : int(m.group(2)) - 1].decode())
    return gap[: len(cms.ContentInfo.load(gap, strict=False).dump())], len(gap)


@pytest.mark.parametrize("algorithm", [SM2_WITH_SM3, SM2_1])
def test_direct_cms_is_the_cms_pyhanko_assembles(base_pdf: bytes, pki: Sm2Pki, algorithm: str) -> None:
    from cert_formats.pdfsig import cms_build
    from cert_formats.pdfsig.sign import SM2CmsSigner, _sign

    details = SignatureDetails("AgencySeal", reason="licence issued")
    # pyHanko's own path: its dry run sizes the placeholder, asn1crypto builds the CMS
    theirs_pdf = _sign(base_pdf, SM2CmsSigner(pki.agency_key, pki.agency, [pki.root], signature_algorithm=algorithm),
                       details, md_algorithm="sm3", default_name="x", tight=True)
    ours_pdf = sm2_sign(base_pdf, pki, details=details, signature_algorithm=algorithm)
    theirs, theirs_reserved = _embedded_cms(theirs_pdf)
    ours, ours_reserved = _embedded_cms(ours_pdf)
    assert ours_reserved == theirs_reserved  # the same placeholder: the same file layout
    info = cms.ContentInfo.load(theirs)["content"]["signer_infos"][0]
    attrs = b"\x31" + info["signed_attrs"].dump()[1:]
    rebuilt = cms_build.assemble(attrs, info["signature"].native, certificate=pki.agency, chain=[pki.root],
                                 signature_algorithm=algorithm)
    assert rebuilt == theirs
    # and ours has pyHanko's structure with its own digest and signature
    ours_info = cms.ContentInfo.load(ours)["content"]["signer_infos"][0]
    ours_attrs = b"\x31" + ours_info["signed_attrs"].dump()[1:]
    assert cms_build.assemble(ours_attrs, ours_info["signature"].native, certificate=pki.agency,
                              chain=[pki.root], signature_algorithm=algorithm) == ours
    assert verify_pdf_signatures(ours_pdf, [pki.root]).ok


# -- bounds on the work a hostile PDF can cause (uninterruptible pyHanko calls) ---------------


def _classic_pdf(objects: list[bytes]) -> bytes:
    """A PDF of ``objects`` (object 1 is the catalog), with a classic xref table."""
    out = bytearray(b"%PDF-1.7\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def _form(fields: list[bytes], extra: list[bytes]) -> bytes:
    """Catalog (1), pages (2), page (3), then ``extra`` objects from 4 on; ``fields`` is the /Fields array."""
    catalog = b"<< /Type /Catalog /Pages 2 0 R /AcroForm << /Fields [" + b" ".join(fields) + b"] >> >>"
    pages = b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>"
    page = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>"
    return _classic_pdf([catalog, pages, page, *extra])


def test_a_field_graph_is_refused_before_pyhanko_walks_it() -> None:
    """Each level lists the next twice: 40 levels are 2^40 fields to a naive walk, in 3 KiB."""
    levels = 40
    extra = [b"<< /T (f%d) /Kids [%d 0 R %d 0 R] >>" % (i, i + 5, i + 5) for i in range(levels)]
    extra.append(b"<< /T (leaf) /FT /Sig >>")
    data = _form([b"4 0 R"], extra)
    assert len(data) < 4096
    started = time.monotonic()
    with pytest.raises(InvalidInputError) as err:
        verify_pdf_signatures(data, [])
    assert err.value.reason == "pdf.malformed"
    assert "twice" in err.value.message or "deeper" in err.value.message
    assert time.monotonic() - started < 10


def test_a_shared_field_is_refused_and_too_many_fields_too() -> None:
    shared = _form([b"4 0 R", b"4 0 R"], [b"<< /T (twice) /FT /Tx >>"])
    with pytest.raises(InvalidInputError) as err:
        verify_pdf_signatures(shared, [])
    assert "twice" in err.value.message
    many = PdfLimits().max_fields + 1
    crowded = _form([b"%d 0 R" % (4 + i) for i in range(many)], [b"<< /T (f%d) /FT /Tx >>" % i for i in range(many)])
    with pytest.raises(InvalidInputError) as err:
        verify_pdf_signatures(crowded, [])
    assert f"more than {PdfLimits().max_fields} form fields" in err.value.message
    # within the bound, a form without signatures is read as such
    few = _form([b"4 0 R"], [b"<< /T (one) /FT /Tx >>"])
    assert verify_pdf_signatures(few, []).signatures == ()


def test_an_ecdsa_cms_with_many_certificates_is_not_path_searched(
    base_pdf: bytes, pki: Sm2Pki, ecdsa_ca: EcdsaAuthority, ecdsa_identity: EcdsaSigningIdentity
) -> None:
    """pyHanko's path builder tries every order of the certificates: beyond the bound it is not run."""
    decoys = tuple(
        EcdsaAuthority.create("certledger test ECDSA CA", organization="certledger tests").certificate
        for _ in range(PdfLimits().max_path_certificates)
    )
    crowded = dataclasses.replace(ecdsa_identity, chain=(*ecdsa_identity.chain, *decoys))
    pdf = sign_pdf_ecdsa(base_pdf, identity=crowded, details=SignatureDetails("ReaderSignature"))
    started = time.monotonic()
    result = verify_pdf_signatures(pdf, [pki.root], ecdsa_ca.certificates())
    assert time.monotonic() - started < 10
    (sig,) = result.signatures
    chain = next(c for c in sig.checks if c.name == "chain")
    assert not chain.ok and "path-checked" in chain.detail
    # the same identity with its real chain still verifies
    plain = sign_pdf_ecdsa(base_pdf, identity=ecdsa_identity, details=SignatureDetails("ReaderSignature"))
    verify_pdf_signatures(plain, [pki.root], ecdsa_ca.certificates()).require_valid(algorithm="ecdsa-sha256")

"""GB/T 38540 electronic seals on OFD: the ASN.1, making seals, sealing, verifying, hostile input.

Every negative case changes one thing in a correctly sealed file and checks that the
verifier names the right check, the right reason code and (for digests) the right file,
while the checks the change does not touch still pass.
"""

from __future__ import annotations

import base64
import io
import random
import zipfile
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from PIL import Image

from cert_formats.ofd import (
    Color,
    DocumentInfo,
    ImageObject,
    OFDDocument,
    Page,
    PathObject,
    pack_parts,
    read_ofd,
    read_zip,
    write_ofd,
)
from cert_formats.seal import (
    CertListType,
    CheckName,
    ElectronicSeal,
    OFDSealVerification,
    SealCheck,
    SealExtension,
    SealPicture,
    SealVerifyLimits,
    SesLimits,
    StampPlacement,
    inspect_ofd_seals,
    load_seal,
    make_seal,
    ofdsig,
    parse_seal,
    parse_seal_signature,
    render_seal_picture,
    seal_document,
    seal_ofd,
    verify_ofd_seals,
)
from cert_formats.seal.ses import (
    SM2_WITH_SM3,
    SM3,
    encode_seal,
    encode_seal_info,
    encode_seal_signature,
    encode_sealing_info,
)
from signing import der
from signing.errors import InvalidInputError, VerificationError
from signing.sm2 import DEFAULT_SIGNER_ID, SM2PrivateKey
from signing.sm3 import sm3
from signing.x509 import (
    Certificate,
    DistinguishedName,
    Role,
    Validity,
    issue_certificate,
    issue_root_certificate,
)

NOW = datetime.now(UTC).replace(microsecond=0)
START = NOW - timedelta(days=200)
SIGNATURES = "Doc_0/Signs/Signatures.xml"
SIGNATURE = "Doc_0/Signs/Sign_0/Signature.xml"
SIGNED_VALUE = "Doc_0/Signs/Sign_0/SignedValue.dat"
PAGE_0 = "Doc_0/Pages/Page_0/Content.xml"
SEAL_RED = Color(190, 20, 20)


# -- fixtures -------------------------------------------------------------------------------------


class PKI:
    """A province root; an agency (the signer), a seal maker, a second agency and a node; a stranger root."""

    def __init__(self) -> None:
        self.root_key = SM2PrivateKey.generate()
        self.root = issue_root_certificate(
            DistinguishedName(country="CN", organization="某省数字证书认证中心", common_name="某省根CA"),
            self.root_key, Validity.for_days(3650, start=START - timedelta(days=30)))
        self.agency_key, self.agency = self.issue(Role.AGENCY, "某某市市场监督管理局", "11100000000013127D")
        self.maker_key, self.maker = self.issue(Role.AGENCY, "某某市公安局", "11100000000013127D")
        self.other_key, self.other = self.issue(Role.AGENCY, "某某市卫生健康委员会", "11100000000013127D")
        self.node_key, self.node = self.issue(Role.NODE, "node-1", None)
        self.stranger_key = SM2PrivateKey.generate()
        self.stranger_root = issue_root_certificate(
            DistinguishedName(country="CN", organization="另一省", common_name="另一省根CA"),
            self.stranger_key, Validity.for_days(3650, start=START))

    def issue(self, role: Role, name: str, credit_code: str | None) -> tuple[SM2PrivateKey, Certificate]:
        key = SM2PrivateKey.generate()
        cert = issue_certificate(
            role=role,
            subject=DistinguishedName(country="CN", organization=name, common_name=name, credit_code=credit_code),
            public_key=key.public_key, validity=Validity.for_days(900, start=START),
            issuer=self.root, issuer_key=self.root_key)
        return key, cert


@pytest.fixture(scope="module")
def pki() -> PKI:
    return PKI()


def small_png(width: int = 24, height: int = 24) -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", (width, height), (220, 24, 24, 255)).save(out, "PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def picture() -> SealPicture:
    return SealPicture(image_type="PNG", data=small_png(), width_mm=40, height_mm=40)


def new_seal(pki: PKI, picture: SealPicture, **overrides: object) -> ElectronicSeal:
    args: dict[str, object] = {
        "name": "某某市市场监督管理局证照专用章",
        "signers": [pki.agency],
        "maker_key": pki.maker_key,
        "maker_cert": pki.maker,
        "valid_start": START,
        "valid_end": NOW + timedelta(days=365),
        "picture": picture,
        "created": START,
    }
    args.update(overrides)
    return make_seal(**args)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def seal(pki: PKI, picture: SealPicture) -> ElectronicSeal:
    return new_seal(pki, picture)


@pytest.fixture(scope="module")
def document() -> OFDDocument:
    page0 = Page((PathObject.rect(10, 10, 190, 277, stroke=SEAL_RED, line_width=1),
                  PathObject.line(20, 95, 190, 95, line_width=0.2),
                  ImageObject(small_png(30, 30), "PNG", 20, 230, 25, 25)))
    page1 = Page((PathObject.circle(105, 148, 30, stroke=SEAL_RED),))
    return OFDDocument(info=DocumentInfo(doc_id="5f0c1e9a2b3d4c5e6f708192a3b4c5d6", title="营业执照"),
                       pages=(page0, page1))


@pytest.fixture(scope="module")
def sealed(pki: PKI, seal: ElectronicSeal, document: OFDDocument) -> bytes:
    return seal_document(document, seal=seal, signer_key=pki.agency_key, signer_cert=pki.agency,
                         stamps=[StampPlacement(page=0, x=140, y=220)], signed_at=NOW - timedelta(hours=1))


def parts_of(data: bytes) -> dict[str, bytes]:
    return read_zip(data)


def repack(data: bytes, change: Callable[[dict[str, bytes]], object]) -> bytes:
    parts = parts_of(data)
    change(parts)
    return pack_parts(parts)


def failed(result: OFDSealVerification) -> list[tuple[str, str | None, str | None]]:
    """(check, reason, target) of every failed check, package level first."""
    out = [(c.name.value, c.reason, c.target) for c in result.checks if not c.ok]
    for sig in result.signatures:
        out += [(c.name.value, c.reason, c.target) for c in sig.checks if not c.ok]
    return out


def resign_signed_value(parts: dict[str, bytes], key: SM2PrivateKey, cert: Certificate, *,
                        seal_der: bytes | None = None, property_info: str | None = None,
                        signed_at: datetime | None = None) -> None:
    """Replace SignedValue.dat with one made from parts of the original (crafts what seal_* refuses to)."""
    original = parse_seal_signature(parts[SIGNED_VALUE])
    tbs = encode_sealing_info(
        seal_der if seal_der is not None else original.to_sign.seal.der,
        signed_at if signed_at is not None else original.to_sign.signed_at,
        sm3(parts[SIGNATURE]),
        property_info if property_info is not None else original.to_sign.property_info,
    )
    parts[SIGNED_VALUE] = encode_seal_signature(tbs, cert.der, key.sign(tbs, signer_id=DEFAULT_SIGNER_ID))


# -- the sealed file --------------------------------------------------------------------------------


def test_sealed_file_verifies(pki: PKI, sealed: bytes, document: OFDDocument) -> None:
    result = verify_ofd_seals(sealed, [pki.root])
    assert result.ok and result.intact and bool(result) and result.reason is None
    assert result.unprotected_files == ()
    (sig,) = result.signatures
    assert sig.sign_id == "1" and sig.signature_path == SIGNATURE
    assert sig.seal_name == "某某市市场监督管理局证照专用章"
    assert sig.signer_subject == pki.agency.subject.rfc4514()
    assert sig.maker_subject == pki.maker.subject.rfc4514()
    assert sig.signed_at == NOW - timedelta(hours=1)
    assert not sig.timestamp_present
    assert [(s.page_index, s.boundary) for s in sig.stamps] == [(0, (140.0, 220.0, 40.0, 40.0))]
    names = [c.name for c in sig.checks]
    for name in CheckName:
        if name not in (CheckName.SIGNATURE_LIST, CheckName.COVERAGE, CheckName.SEAL_FILE):
            assert name in names, name
    # every part except the signature list and the seal's own files is a reference
    parts = parts_of(sealed)
    assert set(sig.protected_files) == set(parts) - {SIGNATURES, SIGNATURE, SIGNED_VALUE}
    assert len(sig.checks_named(CheckName.REFERENCE)) == len(sig.protected_files)
    # the format layer still reads the document the seal was put on
    again = read_ofd(sealed)
    assert again.document == document
    assert again.signatures_loc == SIGNATURES
    assert result.as_dict()["signatures"][0]["ok"] is True


def test_signature_parts_follow_gbt_33190(sealed: bytes) -> None:
    parts = parts_of(sealed)
    signatures = ofdsig.read_signature_list(parts[SIGNATURES], SIGNATURES, max_signatures=4)
    assert signatures.max_sign_id == 2  # the signature took 1, its stamp 2
    assert signatures.entries == (ofdsig.SignatureListEntry("1", "Seal", SIGNATURE),)
    sigfile = ofdsig.read_signature_file(parts[SIGNATURE], SIGNATURE, max_references=100)
    assert sigfile.signature_method == SM2_WITH_SM3
    assert sigfile.check_method == SM3
    assert sigfile.signature_date_time == (NOW - timedelta(hours=1)).strftime("%Y%m%d%H%M%SZ")
    assert sigfile.signed_value_path == SIGNED_VALUE
    assert sigfile.provider.name == "certledger"
    for ref in sigfile.references:
        assert ref.check_value == sm3(parts[ref.path])
    assert b'FileRef="/OFD.xml"' in parts[SIGNATURE]
    assert b"<ofd:Signatures>Doc_0/Signs/Signatures.xml</ofd:Signatures>" in parts["OFD.xml"]
    page_ids = ofdsig.page_ids(parts, "Doc_0/Document.xml")
    assert sigfile.stamps[0].page_ref == page_ids[0]


def test_signed_value_is_a_v4_ses_signature(pki: PKI, sealed: bytes, seal: ElectronicSeal) -> None:
    parts = parts_of(sealed)
    signed = parse_seal_signature(parts[SIGNED_VALUE])
    assert signed.algorithm == SM2_WITH_SM3
    assert signed.signer_certificate == pki.agency.der
    assert signed.to_sign.version == 4
    assert signed.to_sign.seal == seal
    assert signed.to_sign.data_hash == sm3(parts[SIGNATURE])
    assert signed.to_sign.property_info == "/" + SIGNATURE
    assert signed.to_sign.extensions == ()
    assert signed.timestamp is None
    # the TBS bytes are cut from the file: they verify exactly as they stand
    assert parts[SIGNED_VALUE].index(signed.to_sign.der) < 8
    pki.agency.public_key.verify(signed.signature, signed.to_sign.der, signer_id=DEFAULT_SIGNER_ID)


def test_sealing_is_refused_for_a_wrong_signer(pki: PKI, seal: ElectronicSeal, document: OFDDocument) -> None:
    with pytest.raises(InvalidInputError) as err:  # not listed in the seal
        seal_document(document, seal=seal, signer_key=pki.other_key, signer_cert=pki.other)
    assert err.value.reason == "seal.signer_mismatch"
    with pytest.raises(InvalidInputError) as err:  # key of another certificate
        seal_document(document, seal=seal, signer_key=pki.other_key, signer_cert=pki.agency)
    assert err.value.reason == "seal.signer_mismatch"


def test_sealing_is_refused_outside_the_validity(pki: PKI, seal: ElectronicSeal, document: OFDDocument) -> None:
    for when in (START - timedelta(days=1), NOW + timedelta(days=366)):
        with pytest.raises(InvalidInputError) as err:
            seal_document(document, seal=seal, signer_key=pki.agency_key, signer_cert=pki.agency, signed_at=when)
        assert err.value.reason == "seal.expired"


def test_sealing_is_refused_with_a_broken_seal(pki: PKI, seal: ElectronicSeal, document: OFDDocument) -> None:
    forged_der = encode_seal(seal.info_der, pki.maker.der, pki.other_key.sign(seal.info_der))
    forged = parse_seal(forged_der)
    with pytest.raises(InvalidInputError) as err:
        seal_document(document, seal=forged, signer_key=pki.agency_key, signer_cert=pki.agency)
    assert err.value.reason == "seal.signature_invalid"


def test_sealing_refuses_a_stamp_off_the_document(pki: PKI, seal: ElectronicSeal, document: OFDDocument) -> None:
    with pytest.raises(InvalidInputError) as err:
        seal_document(document, seal=seal, signer_key=pki.agency_key, signer_cert=pki.agency,
                      stamps=[StampPlacement(page=2, x=0, y=0)])
    assert err.value.reason == "seal.profile"
    with pytest.raises(InvalidInputError):
        StampPlacement(page=-1, x=0, y=0)
    with pytest.raises(InvalidInputError):
        StampPlacement(page=0, x=0, y=0, width=0)


def test_seal_an_existing_package_and_add_a_second_seal(pki: PKI, picture: SealPicture,
                                                        document: OFDDocument, sealed: bytes) -> None:
    # a package written without a signature pointer gets one
    first = seal_ofd(write_ofd(document), seal=new_seal(pki, picture), signer_key=pki.agency_key,
                     signer_cert=pki.agency)
    assert verify_ofd_seals(first, [pki.root]).ok
    assert read_ofd(first).signatures_loc == SIGNATURES
    # a second seal by another agency protects the first seal's files and leaves it valid
    other_seal = new_seal(pki, picture, name="某某市卫生健康委员会证照专用章", signers=[pki.other])
    second = seal_ofd(sealed, seal=other_seal, signer_key=pki.other_key, signer_cert=pki.other,
                      stamps=[StampPlacement(page=1, x=20, y=20, width=30, height=30)])
    result = verify_ofd_seals(second, [pki.root])
    assert [s.sign_id for s in result.signatures] == ["1", "3"]
    assert SIGNATURE in result.signatures[1].protected_files
    assert SIGNED_VALUE in result.signatures[1].protected_files
    assert result.signatures[1].stamps[0].page_index == 1
    listing = ofdsig.read_signature_list(parts_of(second)[SIGNATURES], SIGNATURES, max_signatures=4)
    assert listing.max_sign_id == 4
    # the first seal's bytes are untouched
    for name in (SIGNATURE, SIGNED_VALUE):
        assert parts_of(second)[name] == parts_of(sealed)[name]


def test_a_locked_signature_list_refuses_more_seals(pki: PKI, seal: ElectronicSeal, sealed: bytes) -> None:
    def lock(parts: dict[str, bytes]) -> None:
        # an earlier signer (another product) protected Signatures.xml itself
        extra = (b'<ofd:Reference FileRef="/Doc_0/Signs/Signatures.xml"><ofd:CheckValue>'
                 + base64.b64encode(sm3(parts[SIGNATURES])) + b"</ofd:CheckValue></ofd:Reference>")
        parts[SIGNATURE] = parts[SIGNATURE].replace(b"</ofd:References>", extra + b"</ofd:References>")

    with pytest.raises(InvalidInputError) as err:
        seal_ofd(repack(sealed, lock), seal=seal, signer_key=pki.agency_key, signer_cert=pki.agency)
    assert err.value.reason == "seal.locked"


def test_seal_listing_signers_by_digest(pki: PKI, picture: SealPicture, document: OFDDocument) -> None:
    seal = new_seal(pki, picture, list_signers_by=CertListType.DIGESTS)
    assert seal.info.signer_certificates == ()
    assert seal.info.signer_cert_digests[0].value == sm3(pki.agency.der)
    assert seal.info.cert_list_type is CertListType.DIGESTS
    sealed = seal_document(document, seal=seal, signer_key=pki.agency_key, signer_cert=pki.agency)
    assert verify_ofd_seals(sealed, [pki.root]).ok
    with pytest.raises(InvalidInputError) as err:
        seal_document(document, seal=seal, signer_key=pki.other_key, signer_cert=pki.other)
    assert err.value.reason == "seal.signer_mismatch"


# -- negative verification -------------------------------------------------------------------------


def test_one_changed_byte_in_a_page_names_the_page(pki: PKI, sealed: bytes) -> None:
    def change(parts: dict[str, bytes]) -> None:
        assert b"190 20 20" in parts[PAGE_0]
        parts[PAGE_0] = parts[PAGE_0].replace(b"190 20 20", b"191 20 20", 1)

    result = inspect_ofd_seals(repack(sealed, change), [pki.root])
    assert not result.ok and not result.intact
    assert result.reason == "seal.digest_mismatch"
    assert failed(result) == [("reference", "seal.digest_mismatch", PAGE_0)]
    with pytest.raises(VerificationError) as err:
        verify_ofd_seals(repack(sealed, change), [pki.root])
    assert err.value.reason == "seal.digest_mismatch"
    assert err.value.details["file"] == PAGE_0
    assert err.value.details["signature"] == SIGNATURE


def test_a_page_that_is_no_longer_xml_is_still_a_digest_mismatch(pki: PKI, sealed: bytes) -> None:
    def change(parts: dict[str, bytes]) -> None:
        parts[PAGE_0] = parts[PAGE_0][:-7]

    result = inspect_ofd_seals(repack(sealed, change), [pki.root])
    assert failed(result) == [("reference", "seal.digest_mismatch", PAGE_0)]


def test_a_removed_protected_file_is_a_digest_mismatch(pki: PKI, sealed: bytes) -> None:
    result = inspect_ofd_seals(repack(sealed, lambda p: p.pop("Doc_0/PublicRes.xml")), [pki.root])
    assert failed(result) == [("reference", "seal.digest_mismatch", "Doc_0/PublicRes.xml")]


def test_tampered_signature_xml_breaks_the_data_hash(pki: PKI, sealed: bytes) -> None:
    def change(parts: dict[str, bytes]) -> None:
        parts[SIGNATURE] = parts[SIGNATURE].replace(b'Boundary="140 220 40 40"', b'Boundary="10 10 40 40"')

    result = inspect_ofd_seals(repack(sealed, change), [pki.root])
    assert failed(result) == [("data_hash", "seal.digest_mismatch", SIGNATURE)]


def test_a_dropped_reference_breaks_the_data_hash_and_the_coverage(pki: PKI, sealed: bytes) -> None:
    def change(parts: dict[str, bytes]) -> None:
        start = parts[SIGNATURE].index(b'<ofd:Reference FileRef="/Doc_0/Pages/Page_0/Content.xml">')
        end = parts[SIGNATURE].index(b"</ofd:Reference>", start) + len(b"</ofd:Reference>")
        parts[SIGNATURE] = parts[SIGNATURE][:start] + parts[SIGNATURE][end:]
        parts[PAGE_0] = parts[PAGE_0].replace(b"190 20 20", b"0 0 0")

    result = inspect_ofd_seals(repack(sealed, change), [pki.root])
    assert failed(result) == [("coverage", "seal.unprotected_file", PAGE_0),
                              ("data_hash", "seal.digest_mismatch", SIGNATURE)]
    assert result.unprotected_files == (PAGE_0,)


def test_an_added_file_is_reported_unprotected(pki: PKI, sealed: bytes) -> None:
    def change(parts: dict[str, bytes]) -> None:
        parts["Doc_0/Res/extra.png"] = small_png()
        parts["notes.txt"] = b"added after sealing"

    result = inspect_ofd_seals(repack(sealed, change), [pki.root])
    assert result.reason == "seal.unprotected_file"
    assert result.unprotected_files == ("Doc_0/Res/extra.png", "notes.txt")
    assert failed(result) == [("coverage", "seal.unprotected_file", "Doc_0/Res/extra.png")]
    assert result.signatures[0].ok  # the seal itself is intact


def test_wrong_trust_anchor_is_a_chain_failure(pki: PKI, sealed: bytes) -> None:
    result = inspect_ofd_seals(sealed, [pki.stranger_root])
    assert result.reason == "seal.chain"
    assert failed(result) == [("signer_chain", "seal.chain", None), ("maker_chain", "seal.chain", None)]
    assert result.intact and not result.ok
    assert "cert.untrusted" in result.signatures[0].failures[0].detail
    # the seal maker may be trusted through its own anchors
    split = inspect_ofd_seals(sealed, [pki.root], maker_trust_anchors=[pki.stranger_root])
    assert failed(split) == [("maker_chain", "seal.chain", None)]
    nothing = inspect_ofd_seals(sealed, [])
    assert [c for c, _r, _t in failed(nothing)] == ["signer_chain", "maker_chain"]


def test_expired_seal(pki: PKI, picture: SealPicture, document: OFDDocument) -> None:
    seal = new_seal(pki, picture, valid_start=START, valid_end=NOW - timedelta(days=1))
    signed_at = NOW - timedelta(days=5)
    sealed = seal_document(document, seal=seal, signer_key=pki.agency_key, signer_cert=pki.agency,
                           signed_at=signed_at)
    result = inspect_ofd_seals(sealed, [pki.root])
    assert result.reason == "seal.expired"
    assert failed(result) == [("seal_validity", "seal.expired", None)]
    assert "not valid at the verification time" in result.signatures[0].failures[0].detail
    # judged at a trusted time when the seal was valid (e.g. the ledger entry's), it verifies
    assert verify_ofd_seals(sealed, [pki.root], at=signed_at + timedelta(hours=1)).ok


def test_signing_time_outside_the_signer_certificate(pki: PKI, sealed: bytes) -> None:
    def change(parts: dict[str, bytes]) -> None:
        resign_signed_value(parts, pki.agency_key, pki.agency, signed_at=START - timedelta(days=1))

    result = inspect_ofd_seals(repack(sealed, change), [pki.root])
    assert failed(result) == [("signing_time", "seal.expired", None), ("seal_validity", "seal.expired", None)]


def test_signing_time_in_the_future(pki: PKI, sealed: bytes) -> None:
    def change(parts: dict[str, bytes]) -> None:
        resign_signed_value(parts, pki.agency_key, pki.agency, signed_at=NOW + timedelta(days=2))

    result = inspect_ofd_seals(repack(sealed, change), [pki.root], at=NOW)
    assert failed(result) == [("signing_time", "seal.expired", None)]


def test_truncated_signed_value_is_malformed(pki: PKI, sealed: bytes) -> None:
    def change(parts: dict[str, bytes]) -> None:
        parts[SIGNED_VALUE] = parts[SIGNED_VALUE][:-40]

    result = inspect_ofd_seals(repack(sealed, change), [pki.root])
    assert failed(result) == [("signed_value", "seal.malformed", SIGNED_VALUE)]
    # the references were still checked, and passed
    assert all(c.ok for c in result.signatures[0].checks_named(CheckName.REFERENCE))


def test_missing_parts_are_reported_missing(pki: PKI, sealed: bytes, document: OFDDocument) -> None:
    gone = inspect_ofd_seals(repack(sealed, lambda p: p.pop(SIGNED_VALUE)), [pki.root])
    assert failed(gone) == [("signed_value", "seal.missing", SIGNED_VALUE)]
    no_list = inspect_ofd_seals(repack(sealed, lambda p: p.pop(SIGNATURES)), [pki.root])
    assert no_list.reason == "seal.missing" and no_list.signatures == ()
    no_sig = inspect_ofd_seals(repack(sealed, lambda p: p.pop(SIGNATURE)), [pki.root])
    assert ("signature_file", "seal.missing", SIGNATURE) in failed(no_sig)
    unsealed = inspect_ofd_seals(write_ofd(document), [pki.root])
    assert not unsealed.ok and unsealed.reason == "seal.missing"
    assert unsealed.signatures == () and unsealed.unprotected_files
    with pytest.raises(VerificationError) as err:
        unsealed.require_valid()
    assert err.value.reason == "seal.missing"


def test_signature_by_another_key_is_invalid(pki: PKI, sealed: bytes) -> None:
    def change(parts: dict[str, bytes]) -> None:
        signed = parse_seal_signature(parts[SIGNED_VALUE])
        tbs = signed.to_sign.der
        parts[SIGNED_VALUE] = encode_seal_signature(tbs, pki.agency.der, pki.other_key.sign(tbs))

    result = inspect_ofd_seals(repack(sealed, change), [pki.root])
    assert failed(result) == [("signature", "seal.signature_invalid", None)]


def test_signer_not_listed_in_the_seal(pki: PKI, sealed: bytes) -> None:
    def change(parts: dict[str, bytes]) -> None:
        resign_signed_value(parts, pki.other_key, pki.other)

    result = inspect_ofd_seals(repack(sealed, change), [pki.root])
    assert failed(result) == [("signer_in_seal", "seal.signer_mismatch", None)]


def test_forged_seal_maker_signature(pki: PKI, seal: ElectronicSeal, sealed: bytes) -> None:
    forged = encode_seal(seal.info_der, pki.maker.der, pki.other_key.sign(seal.info_der))

    def change(parts: dict[str, bytes]) -> None:
        resign_signed_value(parts, pki.agency_key, pki.agency, seal_der=forged)

    result = inspect_ofd_seals(repack(sealed, change), [pki.root])
    assert failed(result) == [("seal_signature", "seal.signature_invalid", None)]


def test_property_info_must_name_this_signature_file(pki: PKI, sealed: bytes) -> None:
    def change(parts: dict[str, bytes]) -> None:
        resign_signed_value(parts, pki.agency_key, pki.agency, property_info="/Doc_0/Signs/Sign_9/Signature.xml")

    result = inspect_ofd_seals(repack(sealed, change), [pki.root])
    assert failed(result) == [("data_hash", "seal.digest_mismatch", SIGNATURE)]
    assert "propertyInfo" in result.signatures[0].failures[0].detail


def test_signer_role(pki: PKI, picture: SealPicture, document: OFDDocument) -> None:
    seal = new_seal(pki, picture, signers=[pki.node])
    sealed = seal_document(document, seal=seal, signer_key=pki.node_key, signer_cert=pki.node)
    result = inspect_ofd_seals(sealed, [pki.root])
    assert failed(result) == [("signer_chain", "seal.chain", None)]
    assert "cert.role" in result.signatures[0].failures[0].detail
    assert inspect_ofd_seals(sealed, [pki.root], signer_role=None).ok


def test_critical_extensions_are_unsupported(pki: PKI, picture: SealPicture, document: OFDDocument) -> None:
    kept = new_seal(pki, picture, extensions=[SealExtension("1.2.3.4", b"note")])
    assert kept.info.extensions == (SealExtension("1.2.3.4", b"note"),)
    ok = seal_document(document, seal=kept, signer_key=pki.agency_key, signer_cert=pki.agency)
    assert verify_ofd_seals(ok, [pki.root]).ok
    critical = new_seal(pki, picture, extensions=[SealExtension("1.2.3.5", b"\x01", critical=True)])
    bad = seal_document(document, seal=critical, signer_key=pki.agency_key, signer_cert=pki.agency)
    result = inspect_ofd_seals(bad, [pki.root])
    assert failed(result) == [("signed_value", "seal.unsupported", SIGNED_VALUE)]


def test_a_bare_signature_type_is_unsupported(pki: PKI, sealed: bytes) -> None:
    def change(parts: dict[str, bytes]) -> None:
        parts[SIGNATURES] = parts[SIGNATURES].replace(b'Type="Seal"', b'Type="Sign"')

    result = inspect_ofd_seals(repack(sealed, change), [pki.root])
    assert result.reason == "seal.unprotected_file"  # nothing verified protects the files now
    assert failed(result)[1:] == [("signature_file", "seal.unsupported", SIGNATURE)]


def test_an_extra_listed_signature_must_verify_too(pki: PKI, sealed: bytes) -> None:
    # Signatures.xml is not protected (so that seals can be added): an entry someone adds
    # is verified like any other and fails the file if it does not hold up
    def change(parts: dict[str, bytes]) -> None:
        parts[SIGNATURES] = parts[SIGNATURES].replace(
            b"</ofd:Signatures>", b'<ofd:Signature ID="7" BaseLoc="/Doc_0/Signs/Sign_5/Signature.xml"/>'
                                  b"</ofd:Signatures>")

    result = inspect_ofd_seals(repack(sealed, change), [pki.root])
    assert result.signatures[0].ok
    assert failed(result) == [("signature_file", "seal.missing", "Doc_0/Signs/Sign_5/Signature.xml")]


def test_hostile_signature_xml(pki: PKI, sealed: bytes) -> None:
    bomb = (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
            b'<ofd:Signature xmlns:ofd="http://www.ofdspec.org/2016">&b;</ofd:Signature>')
    traversal = parts_of(sealed)[SIGNATURE].replace(b'FileRef="/OFD.xml"', b'FileRef="../../../../etc/passwd"')
    for hostile in (bomb, traversal, b"not xml", b""):

        def put(parts: dict[str, bytes], data: bytes = hostile) -> None:
            parts[SIGNATURE] = data

        result = inspect_ofd_seals(repack(sealed, put), [pki.root])
        assert ("signature_file", "seal.malformed", SIGNATURE) in failed(result), hostile[:40]


def test_limits_on_signatures_and_references(pki: PKI, seal: ElectronicSeal, sealed: bytes) -> None:
    two = seal_ofd(sealed, seal=seal, signer_key=pki.agency_key, signer_cert=pki.agency)
    result = inspect_ofd_seals(two, [pki.root], limits=SealVerifyLimits(max_signatures=1))
    assert failed(result) == [("signature_list", "seal.malformed", SIGNATURES)]
    few = inspect_ofd_seals(sealed, [pki.root], limits=SealVerifyLimits(max_references=2))
    assert ("signature_file", "seal.malformed", SIGNATURE) in failed(few)
    tight = inspect_ofd_seals(sealed, [pki.root], limits=SealVerifyLimits(ses=SesLimits(max_bytes=1000)))
    assert ("signed_value", "seal.malformed", SIGNED_VALUE) in failed(tight)


def test_not_an_ofd_raises(pki: PKI) -> None:
    with pytest.raises(InvalidInputError) as err:
        inspect_ofd_seals(b"PK\x05\x06" + bytes(18), [pki.root])
    assert err.value.reason.startswith("ofd.")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("other.xml", b"<x/>")
    with pytest.raises(InvalidInputError) as err:
        inspect_ofd_seals(buf.getvalue(), [pki.root])
    assert err.value.reason == "ofd.missing_part"
    with pytest.raises(InvalidInputError):
        inspect_ofd_seals(b"x", [pki.root], at=datetime(2024, 1, 1))  # naive time


# -- the ASN.1 ------------------------------------------------------------------------------------


def test_seal_round_trip(seal: ElectronicSeal, pki: PKI) -> None:
    again = load_seal(seal.der)
    assert again == seal
    assert encode_seal_info(again.info) == seal.info_der
    assert seal.info.version == 4 and seal.info.vid == "certledger" and len(seal.info.es_id) == 32
    assert seal.info.signer_certificates == (pki.agency.der,)
    assert seal.maker_certificate == pki.maker.der
    pki.maker.public_key.verify(seal.signature, seal.info_der, signer_id=DEFAULT_SIGNER_ID)


def test_strict_der(sealed: bytes) -> None:
    raw = parts_of(sealed)[SIGNED_VALUE]
    top_len = raw[1] & 0x7F
    body = raw[2 + top_len:]
    cases = {
        "trailing byte": raw + b"\x00",
        "indefinite length": b"\x30\x80" + body + b"\x00\x00",
        "non-minimal length": b"\x30\x84" + len(body).to_bytes(4, "big") + body,
        "not a sequence": b"\x31" + raw[1:],
        "empty": b"",
        "v1 shape": der.sequence(der.sequence(der.integer(1)), der.bit_string(b"\x01")),
    }
    for what, data in cases.items():
        with pytest.raises(InvalidInputError) as err:
            parse_seal_signature(data)
        expected = "seal.unsupported" if what == "v1 shape" else "seal.malformed"
        assert err.value.reason == expected, what
    for cut in (1, 2, 5, 100, len(raw) // 2, len(raw) - 1):
        with pytest.raises(InvalidInputError) as err:
            parse_seal_signature(raw[:cut])
        assert err.value.reason == "seal.malformed"
    with pytest.raises(InvalidInputError) as err:
        parse_seal_signature(raw, limits=SesLimits(max_bytes=len(raw) - 1))
    assert err.value.reason == "seal.too_large"
    with pytest.raises(InvalidInputError) as err:
        parse_seal_signature(raw, limits=SesLimits(max_depth=3))
    assert err.value.reason == "seal.malformed"
    with pytest.raises(InvalidInputError) as err:
        parse_seal_signature(raw, limits=SesLimits(max_picture_bytes=10))
    assert err.value.reason == "seal.too_large"


def test_structure_errors_become_malformed(pki: PKI, seal: ElectronicSeal) -> None:
    info = seal.info
    # a BIT STRING with unused bits cannot carry a signature
    odd_bits = seal.der.replace(der.bit_string(seal.signature), b"\x03" + bytes([len(seal.signature) + 1, 1])
                                + seal.signature)
    # a header that says "XX"
    bad_id = seal.der.replace(b"\x16\x02ES", b"\x16\x02XX", 1)
    # version 5 in the header
    v5_info = encode_seal_info(replace(info, version=5))
    v5 = encode_seal(v5_info, pki.maker.der, pki.maker_key.sign(v5_info))
    # an OCTET STRING where the certListType INTEGER belongs
    wrong_type = seal.der.replace(b"\x02\x01\x01\x30", b"\x04\x01\x01\x30", 1)
    for what, data, reason in (("unused bits", odd_bits, "seal.malformed"), ("id", bad_id, "seal.malformed"),
                               ("v5", v5, "seal.unsupported"), ("type", wrong_type, "seal.malformed")):
        assert data != seal.der, what
        with pytest.raises(InvalidInputError) as err:
            parse_seal(data)
        assert err.value.reason == reason, what


def test_random_corruption_never_crashes(sealed: bytes) -> None:
    raw = parts_of(sealed)[SIGNED_VALUE]
    rng = random.Random(38540)
    outcomes = {"parsed": 0, "refused": 0}
    for _ in range(300):
        data = bytearray(raw)
        for _ in range(rng.randint(1, 3)):
            # most of the file is the PNG; aim at the structure around it as often as at it
            pos = rng.randrange(0, 800) if rng.random() < 0.6 else rng.randrange(len(data))
            data[pos] = rng.randrange(256)
        try:
            parse_seal_signature(bytes(data))
            outcomes["parsed"] += 1
        except InvalidInputError as exc:
            assert exc.reason.startswith("seal."), exc.reason
            outcomes["refused"] += 1
    assert outcomes["refused"] > 50


def test_seal_model_validation(pki: PKI, picture: SealPicture) -> None:
    with pytest.raises(InvalidInputError) as err:
        new_seal(pki, picture, maker_key=pki.other_key)
    assert err.value.reason == "seal.maker"
    with pytest.raises(InvalidInputError) as err:  # a root CA certificate cannot sign seals
        new_seal(pki, picture, maker_key=pki.root_key, maker_cert=pki.root)
    assert err.value.reason == "seal.maker"
    with pytest.raises(InvalidInputError) as err:
        new_seal(pki, picture, created=NOW + timedelta(days=2000))
    assert err.value.reason == "seal.maker"
    bad_fields: list[dict[str, object]] = [{"valid_end": START - timedelta(days=1)}, {"signers": []},
                                           {"es_id": "印章"}, {"name": ""}, {"seal_type": -1}]
    for bad in bad_fields:
        with pytest.raises(InvalidInputError) as err:
            new_seal(pki, picture, **bad)
        assert err.value.reason == "seal.profile", bad
    with pytest.raises(InvalidInputError):
        new_seal(pki, picture, valid_start=datetime(2024, 1, 1))
    with pytest.raises(InvalidInputError):
        SealPicture("PNG", b"", 40, 40)
    with pytest.raises(InvalidInputError):
        SealPicture("PNG", b"x", 0, 40)
    with pytest.raises(InvalidInputError):
        SealExtension("not an oid", b"")


def test_check_invariants() -> None:
    with pytest.raises(ValueError, match="reason"):
        SealCheck(CheckName.REFERENCE, True, "seal.digest_mismatch", "x")
    with pytest.raises(ValueError, match="reason"):
        SealCheck(CheckName.REFERENCE, False, None, "x")


def test_render_seal_picture() -> None:
    picture = render_seal_picture("某某市市场监督管理局", caption="证照专用章", diameter_mm=42, dpi=150)
    assert picture.image_type == "PNG" and picture.width_mm == picture.height_mm == 42
    img = Image.open(io.BytesIO(picture.data)).convert("RGBA")
    side = round(42 / 25.4 * 150)
    assert img.size == (side, side)
    corner = img.getpixel((0, 0))
    centre = img.getpixel((side // 2, side // 2))  # the star's centre
    assert isinstance(corner, tuple) and isinstance(centre, tuple)
    assert corner[3] == 0  # transparent
    r, g, b, a = centre
    assert a > 200 and r > 180 and g < 80 and b < 80
    inked = sum(img.getchannel("A").histogram()[129:])
    assert 0.1 < inked / (side * side) < 0.6
    with pytest.raises(InvalidInputError):
        render_seal_picture("")


def test_a_timestamp_is_carried_not_trusted(pki: PKI, sealed: bytes) -> None:
    def change(parts: dict[str, bytes]) -> None:
        signed = parse_seal_signature(parts[SIGNED_VALUE])
        parts[SIGNED_VALUE] = encode_seal_signature(signed.to_sign.der, pki.agency.der, signed.signature,
                                                    timestamp=b"\x30\x03\x02\x01\x01")

    stamped = repack(sealed, change)
    signed = parse_seal_signature(parts_of(stamped)[SIGNED_VALUE])
    assert signed.timestamp == b"\x30\x03\x02\x01\x01"
    assert b"\xa0\x08\x03\x06\x00\x30\x03\x02\x01\x01" in signed.der  # [0] EXPLICIT BIT STRING
    result = verify_ofd_seals(stamped, [pki.root])
    assert result.signatures[0].timestamp_present


def test_a_separate_seal_file_must_be_the_signing_seal(pki: PKI, picture: SealPicture, sealed: bytes) -> None:
    """ofdrw also writes the seal as Sign_0/Seal.esl and names it in SignedInfo/Seal."""
    esl = "Doc_0/Signs/Sign_0/Seal.esl"

    def with_seal_file(content: bytes) -> bytes:
        def change(parts: dict[str, bytes]) -> None:
            sigfile = ofdsig.read_signature_file(parts[SIGNATURE], SIGNATURE, max_references=100)
            parts[esl] = content
            refs = (*sigfile.references, ofdsig.Reference(esl, sm3(content)))
            parts[SIGNATURE] = ofdsig.write_signature_file(replace(sigfile, seal_path=esl, references=refs))
            resign_signed_value(parts, pki.agency_key, pki.agency)

        return repack(sealed, change)

    signing_seal = parse_seal_signature(parts_of(sealed)[SIGNED_VALUE]).to_sign.seal
    good = inspect_ofd_seals(with_seal_file(signing_seal.der), [pki.root])
    assert good.ok
    check = good.signatures[0].check(CheckName.SEAL_FILE)
    assert check is not None and check.ok
    other = new_seal(pki, picture, name="另一枚印章")
    bad = inspect_ofd_seals(with_seal_file(other.der), [pki.root])
    assert failed(bad) == [("seal_file", "seal.malformed", esl)]


def test_relative_locations_are_resolved(pki: PKI, sealed: bytes) -> None:
    def change(parts: dict[str, bytes]) -> None:
        # Signatures.xml is not protected; a BaseLoc relative to its folder is as good
        parts[SIGNATURES] = parts[SIGNATURES].replace(b'BaseLoc="/Doc_0/Signs/Sign_0/Signature.xml"',
                                                      b'BaseLoc="Sign_0/Signature.xml"')

    assert verify_ofd_seals(repack(sealed, change), [pki.root]).ok


def test_a_v1_seal_is_unsupported(seal: ElectronicSeal) -> None:
    # GM/T 0031-2014: SESeal ::= SEQUENCE { eSealInfo, signInfo SEQUENCE { cert, alg, signData } }
    sign_info = der.sequence(der.octet_string(b"cert"), der.oid(SM2_WITH_SM3), der.bit_string(b"sig"))
    v1 = der.sequence(seal.info_der, sign_info)
    with pytest.raises(InvalidInputError) as err:
        parse_seal(v1)
    assert err.value.reason == "seal.unsupported"


def test_stamp_centred_on_a_template_position() -> None:
    stamp = StampPlacement.centred(0, 160.0, 235.0, 40.0)
    assert (stamp.x, stamp.y, stamp.width, stamp.height) == (140.0, 215.0, 40.0, 40.0)
    assert StampPlacement.centred(1, 50, 50, 30, 20).y == 40

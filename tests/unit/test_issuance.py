"""Issuing licence files and judging them: digests, proof bundles, verdicts.

One real PKI (root CA, agency, seal maker, GB/T 38540 seal), one real ledger,
real PDF and OFD files; every verdict is computed by verify_licence_file.
"""

from __future__ import annotations

import dataclasses
import io
import subprocess
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader, PdfWriter

from cert_formats.binding import (
    BUNDLE_NAME,
    BUNDLE_PLACEHOLDER,
    attach_pdf_bundle,
    extract_pdf_bundle,
    make_bundle,
    ofd_bundle_path,
    ofd_digest,
    parse_bundle,
    pdf_digest,
)
from cert_formats.identifier import LicenceIdentifier
from cert_formats.issuance import AgencyCredentials, IssuedFiles, attach_bundles, issue_payload, render_and_sign
from cert_formats.ofd import pack_parts, read_zip
from cert_formats.pdf_update import read_own_bundle
from cert_formats.seal import make_seal, render_seal_picture
from cert_formats.template import builtin_templates
from cert_formats.verify_file import verify_licence_file
from ledger.anchors import TrustAnchors
from ledger.records import Record, RecordType, new_nonce, now_utc, sign_record
from nodes.config import NodeConfig
from nodes.local import LocalNode, agency_key_json, init_node
from signing.errors import InvalidInputError, StorageError
from signing.sm2 import SM2PrivateKey
from signing.x509 import Certificate, DistinguishedName, Role, Validity, issue_certificate, issue_root_certificate

TEMPLATE = builtin_templates()["business_licence"]
SAMPLE = TEMPLATE.sample_licence()


@dataclasses.dataclass
class World:
    node: LocalNode
    root: Certificate
    creds: AgencyCredentials
    anchors: TrustAnchors
    files: dict[str, tuple[IssuedFiles, bytes, bytes]]

    def live(self, licence_id: str) -> dict[str, Any] | None:
        try:
            return self.node.ledger.status_document(licence_id)
        except InvalidInputError:
            return None

    def verdict(self, data: bytes, *, online: bool = True) -> Any:
        return verify_licence_file(data, roots=[self.root], anchors=[self.anchors], live=self.live if online else None)


def _append(w: World, rtype: RecordType, payload: dict[str, Any]) -> None:
    rec = Record(
        rtype, w.node.origin, now_utc(), new_nonce(), SAMPLE.issuer_code, w.creds.key.public_key.key_id, payload
    )
    w.node.ledger.submit([sign_record(rec, [w.creds.key])]).raise_first()


def _issue(
    w: World, name: str, number: str, holder: str, version: int = 1, rtype: RecordType = RecordType.ISSUE
) -> None:
    serial = "2024031800017" + number
    lic = dataclasses.replace(
        SAMPLE,
        number=SAMPLE.number[:-2] + number + str(version),
        holder=holder,
        version=version,
        identifier=str(LicenceIdentifier.build(TEMPLATE.type_code, SAMPLE.issuer_code, serial, version)),
    )
    files = render_and_sign(lic, TEMPLATE, w.creds, verify_host="v.example")
    _append(w, rtype, issue_payload(files))
    pdf, ofd = attach_bundles(files, w.node.ledger.status_document(files.licence_id))
    w.files[name] = (files, pdf, ofd)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root_key, key, maker_key = SM2PrivateKey.generate(), SM2PrivateKey.generate(), SM2PrivateKey.generate()
    root = issue_root_certificate(
        DistinguishedName(common_name="root", organization="浙江省", country="CN"), root_key, Validity.for_days(365)
    )
    agency = issue_certificate(
        role=Role.AGENCY,
        public_key=key.public_key,
        validity=Validity.for_days(300),
        issuer=root,
        issuer_key=root_key,
        subject=DistinguishedName(
            common_name=SAMPLE.issuer_name,
            organization=SAMPLE.issuer_name,
            credit_code=SAMPLE.issuer_code,
            country="CN",
        ),
    )
    maker = issue_certificate(
        role=Role.AGENCY,
        public_key=maker_key.public_key,
        validity=Validity.for_days(300),
        issuer=root,
        issuer_key=root_key,
        subject=DistinguishedName(
            common_name="印章制作中心", organization="印章制作中心", credit_code="11330000MB2C920491", country="CN"
        ),
    )
    now = datetime.now(UTC)
    seal = make_seal(
        name="证照专用章",
        signers=[agency],
        maker_key=maker_key,
        maker_cert=maker,
        valid_start=now - timedelta(minutes=5),
        valid_end=now + timedelta(days=200),
        picture=render_seal_picture(SAMPLE.issuer_name),
    )
    home = tmp_path_factory.mktemp("issuance")
    cfg = NodeConfig(home=home / "node", node_id="n1")
    cfg.database = cfg.default_database()
    node = init_node(
        cfg, b"test passphrase", origin="zj.test/licences", node_name="n1", authority_id="gov", authority_name="gov"
    )
    node.governance(
        RecordType.AGENCY_ADMIT,
        {
            "agency": {
                "id": SAMPLE.issuer_code,
                "name": SAMPLE.issuer_name,
                "regions": ["33"],
                "types": [TEMPLATE.type_code],
                "authority": False,
                "keys": [agency_key_json(key.public_key)],
            }
        },
    )
    with node.ledger.store.read() as conn:
        genesis = node.ledger.store.entry(conn, 0)
    assert genesis is not None
    w = World(node, root, AgencyCredentials(key, agency, (root,), seal), TrustAnchors.from_genesis(genesis.data), {})
    _issue(w, "active", "01", "杭州云岫数字科技有限公司")
    _issue(w, "amended_v1", "02", "杭州旧名称有限公司")
    _issue(w, "amended_v2", "02", "杭州新名称有限公司", version=2, rtype=RecordType.AMEND)
    _issue(w, "revoked", "03", "杭州撤销有限公司")
    _append(
        w,
        RecordType.REVOKE,
        {"licence_id": w.files["revoked"][0].licence_id, "reason_code": "fraud", "reason_text": "以欺骗手段取得登记"},
    )
    _issue(w, "suspended", "04", "杭州暂停有限公司")
    _append(
        w,
        RecordType.SUSPEND,
        {"licence_id": w.files["suspended"][0].licence_id, "reason_code": "inspection", "reason_text": "核查"},
    )
    yield w
    node.close()


@pytest.mark.parametrize(("name", "expected"), [
    ("active", "valid"), ("amended_v2", "valid"), ("amended_v1", "superseded"), ("revoked", "revoked"),
    ("suspended", "suspended"),
])  # fmt: skip
@pytest.mark.parametrize("fmt", ["pdf", "ofd"])
def test_verdicts_online(world: World, name: str, expected: str, fmt: str) -> None:
    _, pdf, ofd = world.files[name]
    result = world.verdict(pdf if fmt == "pdf" else ofd)
    assert result.verdict == expected, result.to_json()
    assert result.status_source == "ledger"


@pytest.mark.parametrize("fmt", ["pdf", "ofd"])
def test_offline_verdict_from_proof_bundle(world: World, fmt: str) -> None:
    _, pdf, ofd = world.files["active"]
    result = world.verdict(pdf if fmt == "pdf" else ofd, online=False)
    assert result.verdict == "valid"
    assert result.status_source.startswith("proof bundle")
    assert any(c.name == "proof bundle" and c.ok for c in result.checks)


def _unanswered(licence_id: str) -> dict[str, Any] | None:
    raise StorageError("connection refused", reason="remote.unreachable")


@pytest.mark.parametrize("live", ["unreachable", "not found", "not final"])
def test_a_revoked_licence_is_never_valid_when_its_ledger_gives_no_status(world: World, live: str) -> None:
    """The file's bundle says ACTIVE (at issue time); its own ledger, asked, did not answer: no verdict."""
    _, pdf, _ = world.files["revoked"]

    def source(licence_id: str) -> dict[str, Any] | None:
        if live == "not found":
            return None
        if live == "not final":
            raise StorageError("not final yet", reason="ledger.not_final")
        return _unanswered(licence_id)

    for origin in (world.anchors.origin, None):
        result = verify_licence_file(pdf, roots=[world.root], anchors=[world.anchors], live=source, live_origin=origin)
        assert result.verdict == "unknown", result.to_json()
        assert any(c.reason == "bundle.not_current" for c in result.checks)
        assert any(c.name == "proof bundle" and c.ok for c in result.checks)  # still checked, and shown
    # a bundle of another ledger than the one asked is judged by the bundle (the issue-time status)
    result = verify_licence_file(
        pdf, roots=[world.root], anchors=[world.anchors], live=source, live_origin="another.example/licences"
    )
    assert result.verdict == "valid" and result.status_source.startswith("proof bundle")


def test_digests_survive_bundle_attachment(world: World) -> None:
    files, pdf, ofd = world.files["active"]
    assert pdf_digest(files.pdf) == pdf_digest(pdf) == files.digests["pdf"]
    parts = read_zip(ofd)
    bundle = parse_bundle(next(d for p, d in parts.items() if "/Attachs/" in p and p.endswith(".json")))
    assert bundle is not None and bundle["licence_id"] == files.licence_id
    path = next(p for p in parts if "/Attachs/" in p and p.endswith(".json"))
    assert ofd_digest(parts, path) == files.digests["ofd"]


def test_tampered_pdf_byte_is_forged(world: World) -> None:
    _, pdf, _ = world.files["active"]
    bad = bytearray(pdf)
    bad[bad.index(b"/Author") + 9] ^= 1
    result = world.verdict(bytes(bad))
    assert result.verdict == "forged"


def _bundle(pdf: bytes) -> bytes:
    found = extract_pdf_bundle(pdf)
    assert found is not None
    return found


def _pypdf_update(pdf: bytes, name: str, data: bytes) -> bytes:
    writer = PdfWriter(io.BytesIO(pdf), incremental=True)
    writer.add_attachment(name, data)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_bundle_update_is_readable_by_pypdf_and_poppler(world: World, tmp_path: Path) -> None:
    """Independent readers see certledger's hand-written update as a normal embedded file."""
    files, pdf, _ = world.files["active"]
    bundle = extract_pdf_bundle(pdf)  # pypdf's reader
    assert bundle is not None and parse_bundle(bundle) is not None
    assert read_own_bundle(pdf, len(files.pdf)) == bundle
    reader = PdfReader(io.BytesIO(pdf), strict=True)
    assert len(reader.pages) == 1 and reader.metadata is not None
    assert str(reader.metadata["/Subject"]) == files.licence.identifier
    path = tmp_path / "licence.pdf"
    path.write_bytes(pdf)
    listed = subprocess.run(["pdfdetach", "-list", str(path)], capture_output=True, text=True, check=True).stdout
    assert BUNDLE_NAME in listed
    out = tmp_path / "bundle.json"
    subprocess.run(["pdfdetach", "-save", "1", "-o", str(out), str(path)], check=True, capture_output=True)
    assert out.read_bytes() == bundle
    # deterministic: the same inputs give the same bytes
    assert attach_pdf_bundle(files.pdf, bundle) == pdf


def test_pdf_update_other_than_bundle_is_forged(world: World) -> None:
    files, pdf, _ = world.files["active"]
    # a second incremental update after certledger's, by another tool (pypdf)
    other = attach_pdf_bundle(files.pdf, make_bundle({"forged": True}))
    extra = _pypdf_update(pdf, "note.txt", b"not a bundle")
    result = world.verdict(extra)
    assert result.verdict == "forged", result.to_json()
    assert result.reason == "pdf.modified"
    # the bundle itself attached by another tool: the same attachment, other bytes: refused
    foreign = _pypdf_update(files.pdf, BUNDLE_NAME, _bundle(pdf))
    assert extract_pdf_bundle(foreign) == _bundle(pdf)
    assert world.verdict(foreign).reason == "pdf.modified"
    # certledger's update cut short, or with one byte changed after it
    assert world.verdict(pdf[:-8]).reason == "pdf.modified"
    assert world.verdict(pdf + b"\n").reason == "pdf.modified"
    # a well-formed bundle update with a junk status: the signature holds, the bundle proves nothing
    offline = world.verdict(other, online=False)
    assert offline.verdict == "unknown"
    assert any(c.name == "proof bundle" and not c.ok for c in offline.checks)
    assert world.verdict(other).verdict == "valid"  # the live ledger still answers for the genuine file


def test_ofd_extra_unprotected_file_is_forged(world: World) -> None:
    _, _, ofd = world.files["active"]
    parts = dict(read_zip(ofd))
    parts["Doc_0/Res/extra.txt"] = b"injected"
    result = world.verdict(pack_parts(parts))
    assert result.verdict == "forged"
    assert result.reason == "seal.unprotected_file"


def test_ofd_changed_page_is_forged(world: World) -> None:
    _, _, ofd = world.files["active"]
    parts = dict(read_zip(ofd))
    page = next(p for p in parts if p.endswith("Content.xml"))
    parts[page] = parts[page].replace("杭州".encode(), "广州".encode(), 1)
    result = world.verdict(pack_parts(parts))
    assert result.verdict == "forged"
    assert result.reason == "seal.digest_mismatch"


def test_tampered_bundle_gives_unknown_offline(world: World) -> None:
    _, _, ofd = world.files["active"]
    parts = dict(read_zip(ofd))
    path = next(p for p in parts if "/Attachs/" in p and p.endswith(".json"))
    doc = parse_bundle(parts[path])
    assert doc is not None
    doc["status"] = "ACTIVE" if doc["status"] != "ACTIVE" else "REVOKED"
    parts[path] = make_bundle(doc)
    result = world.verdict(pack_parts(parts), online=False)
    assert result.verdict == "unknown"
    assert any(c.name == "proof bundle" and not c.ok for c in result.checks)


def test_a_replaced_bundle_is_reported_even_when_the_ledger_answers(world: World) -> None:
    """The attachment is outside the seal: the live status decides, and the broken bundle is shown as a failed check."""
    _, _, ofd = world.files["active"]
    parts = dict(read_zip(ofd))
    path = next(p for p in parts if "/Attachs/" in p and p.endswith(".json"))
    parts[path] = b"<html>not a proof</html>"
    result = world.verdict(pack_parts(parts))
    assert result.verdict == "valid" and result.status_source == "ledger"
    failed = [c for c in result.checks if c.name == "proof bundle" and not c.ok]
    assert failed, result.to_json()
    # a genuine bundle next to the live answer is checked and passes
    genuine = world.verdict(ofd)
    assert any(c.name == "proof bundle" and c.ok for c in genuine.checks)


def test_not_a_licence_file_is_refused(world: World) -> None:
    with pytest.raises(InvalidInputError) as exc:
        world.verdict(b"hello")
    assert exc.value.reason == "file.unsupported"


def test_placeholder_is_exactly_what_the_seal_leaves_out(world: World) -> None:
    files, _, _ = world.files["active"]
    parts = read_zip(files.ofd)
    assert ofd_bundle_path(parts, BUNDLE_PLACEHOLDER) is not None
    with zipfile.ZipFile(io.BytesIO(files.ofd)) as z:
        assert any(n.endswith("SignedValue.dat") for n in z.namelist())


def test_cli_issue_and_verify(world: World, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from nodes.cli import cli

    runner = CliRunner()
    ofd = world.files["revoked"][2]
    (tmp_path / "r.ofd").write_bytes(ofd)
    (tmp_path / "root.pem").write_bytes(world.root.to_pem())
    result = runner.invoke(
        cli,
        [
            "verify",
            "--home",
            str(world.node.config.home),
            "--roots",
            str(tmp_path / "root.pem"),
            str(tmp_path / "r.ofd"),
            "--json",
        ],
    )
    assert result.exit_code == 1, result.output
    assert '"verdict": "revoked"' in result.output

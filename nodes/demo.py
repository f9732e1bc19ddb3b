"""``certledger demo``: one province, two agencies, one node, on the embedded default (SQLite).

Everything the demo prints is computed by the code it exercises: keys and
certificates are generated and their chains verified, seals made, licences
rendered as PDF and OFD, signed and sealed, their records appended, proofs
checked, files verified (genuine, superseded, revoked, tampered, forged), and
the whole ledger audited.
"""

from __future__ import annotations

import dataclasses
import secrets
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cert_formats.identifier import LicenceIdentifier
from cert_formats.issuance import AgencyCredentials, IssuedFiles, attach_bundles, issue_payload, render_and_sign
from cert_formats.licence import Licence
from cert_formats.seal import make_seal, render_seal_picture
from cert_formats.template import LicenceTemplate, builtin_templates
from cert_formats.verify_file import verify_licence_file
from ledger.anchors import TrustAnchors
from ledger.audit import audit
from ledger.merkle.verify import verify_consistency, verify_inclusion
from ledger.records import Record, RecordType, new_nonce, now_utc, sign_record
from nodes.config import NodeConfig
from nodes.local import LocalNode, agency_key_json, init_node, write_secret
from signing.errors import CertLedgerError, InvalidInputError
from signing.sm2 import SM2PrivateKey
from signing.x509 import (
    Certificate,
    DistinguishedName,
    KeyUsage,
    Role,
    Validity,
    check_character,
    issue_certificate,
    issue_root_certificate,
    verify_chain,
)

MARKER = ".certledger-demo"
ORIGIN = "zj.certledger.example/licences"
PROVINCE = "浙江省"
ROOT_CREDIT_CODE = "11330000MB2C920390"
SEAL_MAKER_CREDIT_CODE = "11330000MB2C920491"
VERIFY_HOST = "verify.zj.certledger.example"


@dataclass(frozen=True)
class DemoAgency:
    id: str
    name: str
    regions: tuple[str, ...]
    templates: tuple[str, ...]


AGENCIES = (
    DemoAgency("11330106000000003H", "杭州市西湖区市场监督管理局", ("330106",),
               ("business_licence", "food_business_permit")),
    DemoAgency("11330000000000004Q", "浙江省人力资源和社会保障厅", ("33",), ("vocational_qualification",)),
)  # fmt: skip


@dataclass
class DemoState:
    workdir: Path
    say: Callable[[str], None]
    root: Certificate | None = None
    creds: dict[str, AgencyCredentials] = field(default_factory=dict)
    templates: dict[str, LicenceTemplate] = field(default_factory=dict)
    issued: dict[str, list[tuple[IssuedFiles, bytes, bytes]]] = field(default_factory=dict)


def prepare_workdir(workdir: Path) -> None:
    """A fresh demo directory; an old one is only removed if the demo made it."""
    if workdir.exists():
        if not (workdir / MARKER).exists():
            raise InvalidInputError(
                f"{workdir} exists and was not made by the demo; choose another --workdir", reason="demo.workdir"
            )
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    (workdir / MARKER).write_text("made by certledger demo\n")


def _credit_code(first17: str) -> str:
    return first17 + check_character(first17)


# -- 1. PKI --------------------------------------------------------------------------------


def _pki(st: DemoState, node: LocalNode) -> None:
    st.say("== 1. Keys, certificates and seals (SM2, signed SM2-with-SM3) ==")
    root_key = SM2PrivateKey.generate()
    root = issue_root_certificate(
        DistinguishedName(common_name=f"{PROVINCE}电子证照根CA", organization=f"{PROVINCE}大数据发展管理局",
                          credit_code=ROOT_CREDIT_CODE, state=PROVINCE, country="CN"),
        root_key, Validity.for_days(3650),
    )  # fmt: skip
    st.root = root
    (st.workdir / "trust").mkdir()
    (st.workdir / "trust" / "province-root.pem").write_bytes(root.to_pem())
    (node.config.home / "trust").mkdir(exist_ok=True)
    (node.config.home / "trust" / "province-root.pem").write_bytes(root.to_pem())
    st.say(f"province root CA      {root.subject.rfc4514()}")
    maker_key = SM2PrivateKey.generate()
    maker = issue_certificate(
        role=Role.AGENCY,
        subject=DistinguishedName(common_name=f"{PROVINCE}电子印章制作中心", organization=f"{PROVINCE}电子印章制作中心",
                                  credit_code=SEAL_MAKER_CREDIT_CODE, country="CN"),
        public_key=maker_key.public_key, validity=Validity.for_days(1825), issuer=root, issuer_key=root_key,
    )  # fmt: skip
    st.say(f"seal maker            {maker.subject.organization}  (certificate chain verified)")
    now = datetime.now(UTC).replace(microsecond=0)
    for ag in AGENCIES:
        key = SM2PrivateKey.generate()
        cert = issue_certificate(
            role=Role.AGENCY,
            subject=DistinguishedName(common_name=ag.name, organization=ag.name, credit_code=ag.id,
                                      state=PROVINCE, country="CN"),
            public_key=key.public_key, validity=Validity.for_days(730), issuer=root, issuer_key=root_key,
        )  # fmt: skip
        verify_chain(cert, [], [root], required_usage=KeyUsage.DIGITAL_SIGNATURE, required_role=Role.AGENCY)
        seal = make_seal(
            name=f"{ag.name}证照专用章", signers=[cert], maker_key=maker_key, maker_cert=maker,
            valid_start=now - timedelta(minutes=5), valid_end=now + timedelta(days=730),
            picture=render_seal_picture(ag.name, caption="证照专用章"),
        )  # fmt: skip
        st.creds[ag.id] = AgencyCredentials(key=key, certificate=cert, chain=(root,), seal=seal)
        write_secret(st.workdir / f"agency-{ag.id}.pem", key.to_pem(node.passphrase))
        (st.workdir / f"agency-{ag.id}.crt").write_bytes(cert.to_pem())
        (st.workdir / f"agency-{ag.id}.esl").write_bytes(seal.der)
        st.say(f"agency                {ag.name} ({ag.id}): certificate + GB/T 38540 seal")

    message = "电子证照核验 demo".encode()
    first = st.creds[AGENCIES[0].id]
    sig = first.key.sign(message)
    first.certificate.public_key.verify(sig, message)
    st.say(f"SM2 signature         {len(sig)}-byte DER by {AGENCIES[0].name}: verified with its certificate key")
    try:
        first.certificate.public_key.verify(sig, message + b"!")
        raise AssertionError("a tampered message verified")  # the demo must never print a false claim
    except CertLedgerError as exc:
        st.say(f"tampered message      rejected [{exc.reason}]")


# -- 2. licences ---------------------------------------------------------------------------


def _licence(
    tpl: LicenceTemplate, ag: DemoAgency, n: int, holder: str, version: int = 1, serial: str | None = None
) -> Licence:
    sample = tpl.sample_licence()
    number = sample.number[: -len(str(n)) - 1] + f"{n}{version}"
    holder_code = sample.holder_code
    if sample.holder_code_type.value == "001":
        holder_code = _credit_code(f"91330106MA2B0{n:04d}")
    serial = serial or number
    ident = LicenceIdentifier.build(tpl.type_code, ag.id, serial, version)
    return dataclasses.replace(
        sample, number=number, identifier=str(ident), holder=holder, holder_code=holder_code, version=version,
        issuer_name=ag.name, issuer_code=ag.id,
        region_code=sample.region_code if sample.region_code.startswith(ag.regions[0]) else ag.regions[0],
    )  # fmt: skip


def _append(
    node: LocalNode, creds: AgencyCredentials, agency_id: str, rtype: RecordType, payload: dict[str, Any]
) -> int:
    rec = Record(rtype, node.origin, now_utc(), new_nonce(), agency_id, creds.key.public_key.key_id, payload)
    result = node.ledger.submit([sign_record(rec, [creds.key])])
    result.raise_first()
    return result.accepted[0].index


def _issue(
    st: DemoState,
    node: LocalNode,
    ag: DemoAgency,
    licence: Licence,
    tpl: LicenceTemplate,
    rtype: RecordType = RecordType.ISSUE,
) -> IssuedFiles:
    creds = st.creds[ag.id]
    files = render_and_sign(licence, tpl, creds, verify_host=VERIFY_HOST)
    payload = issue_payload(files)
    if rtype is RecordType.AMEND:
        payload["reason_text"] = "变更登记"
    index = _append(node, creds, ag.id, rtype, payload)
    pdf, ofd = attach_bundles(files, node.ledger.status_document(files.licence_id))
    out = st.workdir / "licences"
    out.mkdir(exist_ok=True)
    stem = f"{tpl.key}-{licence.number}-v{licence.version}"
    (out / f"{stem}.pdf").write_bytes(pdf)
    (out / f"{stem}.ofd").write_bytes(ofd)
    st.issued.setdefault(files.licence_id, []).append((files, pdf, ofd))
    st.say(
        f"{rtype!s:<8} {tpl.name} v{licence.version} for {licence.holder} -> entry {index}; "
        f"licences/{stem}.pdf + .ofd (PAdES SM2 signed, GB/T 38540 sealed, proof embedded)"
    )
    return files


def _lifecycle(st: DemoState, node: LocalNode) -> dict[str, str]:
    st.say("\n== 2. Ledger: genesis, agencies, licence files and their lifecycle ==")
    st.say(f"genesis  origin {node.origin}, block 0 signed by {node.config.node_id}")
    st.templates = builtin_templates()
    for ag in AGENCIES:
        types = [st.templates[t].type_code for t in ag.templates]
        node.governance(
            RecordType.AGENCY_ADMIT,
            {
                "agency": {
                    "id": ag.id,
                    "name": ag.name,
                    "regions": list(ag.regions),
                    "types": types,
                    "authority": False,
                    "keys": [agency_key_json(st.creds[ag.id].key.public_key)],
                }
            },
        )
        st.say(f"AGENCY_ADMIT {ag.name} (regions {','.join(ag.regions)}; {len(types)} licence type(s))")
    xihu, hrss = AGENCIES
    biz, food, voc = (st.templates[k] for k in ("business_licence", "food_business_permit", "vocational_qualification"))
    amended = _issue(st, node, xihu, _licence(biz, xihu, 1, "杭州云岫数字科技有限公司"), biz)
    revoked = _issue(st, node, xihu, _licence(biz, xihu, 2, "杭州西溪云帆贸易有限公司"), biz)
    suspended = _issue(st, node, xihu, _licence(food, xihu, 3, "杭州湖畔明德餐饮管理有限公司"), food)
    valid = _issue(st, node, hrss, _licence(voc, hrss, 4, "张晓雯"), voc)
    serial = LicenceIdentifier.parse(amended.licence.identifier).serial
    _issue(
        st,
        node,
        xihu,
        _licence(biz, xihu, 1, "杭州云岫智能科技有限公司", version=2, serial=serial),
        biz,
        RecordType.AMEND,
    )
    creds = st.creds[xihu.id]
    index = _append(
        node,
        creds,
        xihu.id,
        RecordType.SUSPEND,
        {"licence_id": suspended.licence_id, "reason_code": "inspection", "reason_text": "经营异常，暂停待核查"},
    )
    st.say(f"SUSPEND  {suspended.licence.name} of {suspended.licence.holder} -> entry {index}")
    index = _append(
        node, creds, xihu.id, RecordType.RESUME, {"licence_id": suspended.licence_id, "reason_text": "核查完毕"}
    )
    st.say(f"RESUME   {suspended.licence.name} of {suspended.licence.holder} -> entry {index}")
    index = _append(
        node,
        creds,
        xihu.id,
        RecordType.SUSPEND,
        {"licence_id": suspended.licence_id, "reason_code": "inspection", "reason_text": "再次经营异常"},
    )
    st.say(f"SUSPEND  {suspended.licence.name} of {suspended.licence.holder} -> entry {index}")
    index = _append(
        node,
        creds,
        xihu.id,
        RecordType.REVOKE,
        {"licence_id": revoked.licence_id, "reason_code": "fraud", "reason_text": "以欺骗手段取得登记"},
    )
    st.say(f"REVOKE   {revoked.licence.name} of {revoked.licence.holder} -> entry {index}")

    st.say("\nrefused, changing nothing:")
    attempts: list[tuple[str, str, RecordType, dict[str, Any]]] = [
        ("HRSS revokes a Xihu SAMR licence", hrss.id, RecordType.REVOKE,
         {"licence_id": amended.licence_id, "reason_code": "fraud", "reason_text": "x"}),
        ("Xihu SAMR resumes its revoked licence", xihu.id, RecordType.RESUME, {"licence_id": revoked.licence_id}),
        ("Xihu SAMR issues a licence id twice", xihu.id, RecordType.ISSUE, issue_payload(amended)),
    ]  # fmt: skip
    before = node.ledger.tree_size()
    for label, agency_id, rtype, payload in attempts:
        try:
            _append(node, st.creds[agency_id], agency_id, rtype, payload)
            raise AssertionError(f"{label} was accepted")
        except CertLedgerError as exc:
            st.say(f"  {label:<40} [{exc.reason}] {exc}")
    if node.ledger.tree_size() != before:
        raise AssertionError("a refused record changed the ledger")
    return {
        "amended": amended.licence_id,
        "revoked": revoked.licence_id,
        "suspended": suspended.licence_id,
        "valid": valid.licence_id,
    }


# -- 3. files --------------------------------------------------------------------------------


def _verify_files(st: DemoState, node: LocalNode, ids: dict[str, str]) -> None:
    st.say("\n== 3. Verifying licence files (what another province does) ==")
    assert st.root is not None
    with node.ledger.store.read() as conn:
        genesis = node.ledger.store.entry(conn, 0)
    assert genesis is not None
    anchors = [TrustAnchors.from_genesis(genesis.data)]
    (st.workdir / "genesis.json").write_bytes(genesis.data + b"\n")

    def live(licence_id: str) -> dict[str, Any] | None:
        try:
            status: dict[str, Any] = node.ledger.status_document(licence_id)
        except CertLedgerError:
            return None
        return status

    def check(label: str, data: bytes, expected: str, *, online: bool = True) -> None:
        result = verify_licence_file(
            data, roots=[st.root] if st.root else [], anchors=anchors, live=live if online else None
        )
        failed = [c for c in result.checks if not c.ok]
        why = f" [{failed[0].reason}]" if failed else ""
        st.say(f"  {label:<54} {result.verdict.upper():<10}{why}")
        if result.verdict != expected:
            raise AssertionError(f"{label}: expected {expected}, got {result.verdict}")

    amended_v1, amended_v2 = st.issued[ids["amended"]]
    check("business licence v2 (PDF), current", amended_v2[1], "valid")
    check("business licence v2 (OFD), current", amended_v2[2], "valid")
    check("business licence v2 (OFD), offline: proof bundle only", amended_v2[2], "valid", online=False)
    check("business licence v1 (PDF), replaced by v2", amended_v1[1], "superseded")
    check("revoked business licence (OFD)", st.issued[ids["revoked"]][0][2], "revoked")
    check("suspended food business permit (PDF)", st.issued[ids["suspended"]][0][1], "suspended")
    check("qualification certificate (OFD)", st.issued[ids["valid"]][0][2], "valid")
    tampered = bytearray(amended_v2[1])
    at = tampered.index(b"/Author")
    tampered[at + 9] ^= 0x01
    (st.workdir / "licences" / "tampered.pdf").write_bytes(bytes(tampered))
    check("the same PDF with one byte changed", bytes(tampered), "forged")
    # a forger with a genuine-looking licence face but his own key and a self-made root
    forger_key = SM2PrivateKey.generate()
    fake_root = issue_root_certificate(
        DistinguishedName(
            common_name=f"{PROVINCE}电子证照根CA", organization=f"{PROVINCE}大数据发展管理局", country="CN"
        ),
        forger_key,
        Validity.for_days(30),
    )
    fake = issue_certificate(
        role=Role.AGENCY,
        subject=DistinguishedName(common_name=AGENCIES[0].name, organization=AGENCIES[0].name,
                                  credit_code=AGENCIES[0].id, country="CN"),
        public_key=forger_key.public_key, validity=Validity.for_days(30), issuer=fake_root, issuer_key=forger_key,
    )  # fmt: skip
    now = datetime.now(UTC).replace(microsecond=0)
    fake_seal = make_seal(
        name="伪造章",
        signers=[fake],
        maker_key=forger_key,
        maker_cert=fake,
        valid_start=now - timedelta(minutes=5),
        valid_end=now + timedelta(days=30),
        picture=render_seal_picture(AGENCIES[0].name),
    )
    forged = render_and_sign(
        amended_v2[0].licence,
        st.templates["business_licence"],
        AgencyCredentials(forger_key, fake, (fake_root,), fake_seal),
        verify_host=VERIFY_HOST,
    )
    (st.workdir / "licences" / "forged.ofd").write_bytes(forged.ofd)
    check("a look-alike OFD sealed with a forger's key", forged.ofd, "forged")


# -- 4. proofs and audit -----------------------------------------------------------------------


def _proofs(st: DemoState, node: LocalNode, ids: dict[str, str]) -> None:
    st.say("\n== 4. Status, history and proofs (each verified here) ==")
    ledger = node.ledger
    size, note = ledger.latest_checkpoint()
    root = ledger.root(size)
    for label, lid in ids.items():
        lic = ledger.licence(lid)
        assert lic is not None
        items = ledger.history(lid, size)
        for it in items:
            verify_inclusion(ledger.hasher, it.index, size, it.proof.leaf_hash, list(it.proof.path), root)
        kinds = " -> ".join(str(it.record.record.type) for it in items)
        face = st.issued[lid][-1][0].licence
        proofs = f"{len(items)} inclusion proof{'s' if len(items) != 1 else ''} verified"
        st.say(f"{face.name} of {face.holder}  [{label}]")
        st.say(f"  {lic.status:<9} v{lic.version}  {kinds}  ({proofs} against tree size {size})")
    old = 3
    path = ledger.consistency_proof(old, size)
    verify_consistency(ledger.hasher, old, size, ledger.root(old), root, path)
    st.say(f"consistency  tree {old} -> {size}: {len(path)}-hash proof verified")
    (st.workdir / "checkpoint.txt").write_text(note)
    st.say(f"latest checkpoint (C2SP signed note, Ed25519 + SM2 signatures):\n{note}")


def _audit(st: DemoState, node: LocalNode) -> None:
    st.say("== 5. Audit: replay from genesis ==")
    report = audit(node.ledger.store)
    report_path = st.workdir / "audit-report.pdf"
    from nodes.audit_report import write_audit_pdf

    write_audit_pdf(report, report_path)
    verdict = "PASSED" if report.ok else f"FAILED at {report.first}"
    st.say(
        f"audit {verdict}: {report.entries} entries, {report.blocks} blocks, {report.signatures} signatures, "
        f"{report.checkpoints} checkpoints re-verified in {report.seconds:.2f}s; report {report_path}"
    )
    if not report.ok:
        raise AssertionError("the demo ledger failed its own audit")


def _cli_name() -> str:
    """``certledger`` when it is on PATH, else the console script that runs (``.venv/bin/certledger``)."""
    if shutil.which("certledger") is None and Path(sys.argv[0]).name == "certledger":
        return sys.argv[0]
    return "certledger"


def run_demo(workdir: Path, say: Callable[[str], None]) -> tuple[DemoState, NodeConfig]:
    prepare_workdir(workdir)
    st = DemoState(workdir=workdir, say=say)
    passphrase = secrets.token_urlsafe(24).encode()
    write_secret(workdir / "passphrase", passphrase + b"\n")
    cfg = NodeConfig(home=workdir / "node", node_id="zj-node-1")
    cfg.database = cfg.default_database()
    node = init_node(
        cfg,
        passphrase,
        origin=ORIGIN,
        node_name=f"{PROVINCE}大数据发展管理局节点",
        authority_id="zj-gov",
        authority_name=f"{PROVINCE}大数据发展管理局",
    )
    try:
        _pki(st, node)
        ids = _lifecycle(st, node)
        _verify_files(st, node, ids)
        _proofs(st, node, ids)
        _audit(st, node)
    finally:
        node.close()
    say(f"\nall demo files are in {workdir} (node home: {cfg.home}; key passphrase in {workdir / 'passphrase'})")
    say(f"try: {_cli_name()} verify --home {cfg.home} {workdir}/licences/forged.ofd")
    return st, cfg

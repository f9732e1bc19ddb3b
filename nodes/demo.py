"""``certledger demo``: one province, two agencies, one node, on the embedded default (SQLite).

Everything the demo prints is computed by the code it exercises: keys and
certificates are generated, chains verified with the project's validator,
records signed and appended, proofs checked, and the ledger audited.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ledger.audit import audit
from ledger.merkle.verify import verify_consistency, verify_inclusion
from ledger.records import Record, RecordType, new_nonce, now_utc, sign_record
from nodes.config import NodeConfig
from nodes.local import LocalNode, agency_key_json, init_node, write_secret
from signing.errors import CertLedgerError, InvalidInputError
from signing.sm2 import SM2PrivateKey
from signing.sm3 import sm3
from signing.x509 import (
    Certificate,
    DistinguishedName,
    KeyUsage,
    Role,
    Validity,
    issue_certificate,
    issue_root_certificate,
    verify_chain,
)

MARKER = ".certledger-demo"
ORIGIN = "gd.certledger.example/licences"
PROVINCE = "广东省"
ROOT_CREDIT_CODE = "11440000MB2C92039T"


@dataclass(frozen=True)
class DemoAgency:
    id: str
    name: str
    city: str
    regions: tuple[str, ...]
    types: tuple[str, ...]


AGENCIES = (
    DemoAgency("11440300MB2C54301Y", "深圳市市场监督管理局", "深圳市", ("4403",), ("1001", "1002")),
    DemoAgency("11440100MB2C194577", "广州市市场监督管理局", "广州市", ("4401",), ("1001", "1002")),
)


@dataclass
class DemoState:
    workdir: Path
    say: Callable[[str], None]
    agency_keys: dict[str, SM2PrivateKey] = field(default_factory=dict)
    certificates: dict[str, Certificate] = field(default_factory=dict)
    licences: list[str] = field(default_factory=list)


def prepare_workdir(workdir: Path) -> None:
    """A fresh demo directory; an old one is only removed if the demo made it."""
    if workdir.exists():
        if not (workdir / MARKER).exists():
            raise InvalidInputError(
                f"{workdir} exists and was not made by the demo; choose another --workdir",
                reason="demo.workdir",
            )
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    (workdir / MARKER).write_text("made by certledger demo\n")


def _certificates(st: DemoState, node: LocalNode) -> None:
    st.say("== 1. Keys and certificates (SM2, signed SM2-with-SM3) ==")
    root_key = SM2PrivateKey.generate()
    root = issue_root_certificate(
        DistinguishedName(
            common_name=f"{PROVINCE}电子证照根CA",
            organization=f"{PROVINCE}政务服务数据管理局",
            credit_code=ROOT_CREDIT_CODE,
            state=PROVINCE,
            country="CN",
        ),
        root_key,
        Validity.for_days(3650),
    )
    (st.workdir / "province-root.pem").write_bytes(root.to_pem())
    st.say(f"province root CA      {root.subject.rfc4514()}")
    for ag in AGENCIES:
        key = SM2PrivateKey.generate()
        cert = issue_certificate(
            role=Role.AGENCY,
            subject=DistinguishedName(
                common_name=ag.name,
                organization=ag.name,
                credit_code=ag.id,
                locality=ag.city,
                state=PROVINCE,
                country="CN",
            ),
            public_key=key.public_key,
            validity=Validity.for_days(730),
            issuer=root,
            issuer_key=root_key,
        )
        verify_chain(cert, [], [root], required_usage=KeyUsage.DIGITAL_SIGNATURE, required_role=Role.AGENCY)
        st.agency_keys[ag.id] = key
        st.certificates[ag.id] = cert
        write_secret(st.workdir / f"agency-{ag.id}.pem", key.to_pem(node.passphrase))
        (st.workdir / f"agency-{ag.id}.crt").write_bytes(cert.to_pem())
        st.say(f"agency certificate    {ag.name} ({ag.id}) key {key.public_key.key_id[:16]}…  chain verified")
    assert node.keys is not None
    node_cert = issue_certificate(
        role=Role.NODE,
        subject=DistinguishedName(
            common_name=node.keys.node_id,
            organization=f"{PROVINCE}政务服务数据管理局",
            credit_code=ROOT_CREDIT_CODE,
            country="CN",
        ),
        public_key=node.keys.sm2.public_key,
        validity=Validity.for_days(730),
        issuer=root,
        issuer_key=root_key,
    )
    verify_chain(node_cert, [], [root], required_usage=KeyUsage.DIGITAL_SIGNATURE, required_role=Role.NODE)
    (st.workdir / "node.crt").write_bytes(node_cert.to_pem())
    st.say(f"node certificate      {node.keys.node_id}  chain verified")

    message = "营业执照核验 demo".encode()
    first = AGENCIES[0].id
    sig = st.agency_keys[first].sign(message)
    st.certificates[first].public_key.verify(sig, message)
    st.say(f"SM2 signature         {len(sig)}-byte DER by {AGENCIES[0].name}: verified with its certificate key")
    try:
        st.certificates[first].public_key.verify(sig, message + b"!")
        raise AssertionError("a tampered message verified")  # the demo must never print a false claim
    except CertLedgerError as exc:
        st.say(f"tampered message      rejected: {exc} [{exc.reason}]")


def _licence_file(st: DemoState, licence_id: str, data: dict[str, Any]) -> str:
    """Write the licence's data file and return its SM3 digest (files are bound by digest)."""
    path = st.workdir / "licences" / f"{licence_id}.json"
    path.parent.mkdir(exist_ok=True)
    body = json.dumps({"licence_id": licence_id, **data}, ensure_ascii=False, indent=2).encode()
    path.write_bytes(body)
    return sm3(body).hex()


def _record(node: LocalNode, st: DemoState, agency_id: str, rtype: RecordType, payload: dict[str, Any]) -> int:
    key = st.agency_keys[agency_id]
    rec = Record(rtype, node.origin, now_utc(), new_nonce(), agency_id, key.public_key.key_id, payload)
    result = node.ledger.submit([sign_record(rec, [key])])
    result.raise_first()
    return result.accepted[0].index


def _lifecycle(st: DemoState, node: LocalNode) -> None:
    st.say("\n== 2. Ledger: genesis, agencies, licence lifecycle ==")
    st.say(f"genesis               origin {node.origin}, block 0 signed by {node.config.node_id}")
    for ag in AGENCIES:
        node.governance(
            RecordType.AGENCY_ADMIT,
            {
                "agency": {
                    "id": ag.id,
                    "name": ag.name,
                    "regions": list(ag.regions),
                    "types": list(ag.types),
                    "authority": False,
                    "keys": [agency_key_json(st.agency_keys[ag.id].public_key)],
                }
            },
        )
        st.say(f"AGENCY_ADMIT          {ag.name} (regions {','.join(ag.regions)}, types {','.join(ag.types)})")
    sz, gz = AGENCIES
    holders = [
        ("深圳前海星河科技有限公司", sz, "440305"),
        ("深圳南山云帆贸易有限公司", sz, "440305"),
        ("广州天河明德餐饮管理有限公司", gz, "440106"),
    ]
    for serial, (holder, ag, region) in enumerate(holders, start=1):
        lid = f"LIC-{ag.regions[0]}-1001-{serial:06d}-{secrets.token_hex(2)}"
        meta = {"holder": holder, "title": "营业执照", "issuer_name": ag.name}
        digest = _licence_file(st, lid, {"version": 1, **meta})
        idx = _record(
            node,
            st,
            ag.id,
            RecordType.ISSUE,
            {
                "licence_id": lid,
                "type_code": "1001",
                "region": region,
                "version": 1,
                "files": {"pdf": digest},
                "metadata": meta,
            },
        )
        st.licences.append(lid)
        st.say(f"ISSUE                 {lid} to {holder} -> entry {idx}")
    amended, suspended, revoked = st.licences
    meta2 = {"holder": "深圳前海星河智能科技有限公司", "title": "营业执照", "issuer_name": sz.name}
    digest2 = _licence_file(st, amended + "-v2", {"version": 2, **meta2})
    idx = _record(
        node,
        st,
        sz.id,
        RecordType.AMEND,
        {
            "licence_id": amended,
            "type_code": "1001",
            "region": "440305",
            "version": 2,
            "files": {"pdf": digest2},
            "metadata": meta2,
            "reason_text": "名称变更",
        },
    )
    st.say(f"AMEND                 {amended} -> version 2 (name change) -> entry {idx}")
    idx = _record(
        node,
        st,
        sz.id,
        RecordType.SUSPEND,
        {"licence_id": suspended, "reason_code": "inspection", "reason_text": "经营异常，暂停待核查"},
    )
    st.say(f"SUSPEND               {suspended} -> entry {idx}")
    idx = _record(node, st, sz.id, RecordType.RESUME, {"licence_id": suspended, "reason_text": "核查完毕"})
    st.say(f"RESUME                {suspended} -> entry {idx}")
    idx = _record(
        node,
        st,
        gz.id,
        RecordType.REVOKE,
        {"licence_id": revoked, "reason_code": "fraud", "reason_text": "以欺骗手段取得登记"},
    )
    st.say(f"REVOKE                {revoked} -> entry {idx}")

    st.say("\nrefused, changing nothing:")
    attempts: list[tuple[str, str, RecordType, dict[str, Any]]] = [
        (
            "Guangzhou revokes a Shenzhen licence",
            gz.id,
            RecordType.REVOKE,
            {"licence_id": amended, "reason_code": "fraud", "reason_text": "x"},
        ),
        ("Guangzhou resumes its revoked licence", gz.id, RecordType.RESUME, {"licence_id": revoked}),
        (
            "Shenzhen issues in Guangzhou",
            sz.id,
            RecordType.ISSUE,
            {
                "licence_id": "LIC-X-1",
                "type_code": "1001",
                "region": "440106",
                "version": 1,
                "files": {"pdf": "0" * 64},
                "metadata": {},
            },
        ),
        (
            "Shenzhen issues a licence id twice",
            sz.id,
            RecordType.ISSUE,
            {
                "licence_id": amended,
                "type_code": "1001",
                "region": "440305",
                "version": 1,
                "files": {"pdf": "0" * 64},
                "metadata": {},
            },
        ),
    ]
    before = node.ledger.tree_size()
    for label, agency_id, rtype, payload in attempts:
        try:
            _record(node, st, agency_id, rtype, payload)
            raise AssertionError(f"{label} was accepted")
        except CertLedgerError as exc:
            st.say(f"  {label:<40} [{exc.reason}] {exc}")
    if node.ledger.tree_size() != before:
        raise AssertionError("a refused record changed the ledger")


def _proofs(st: DemoState, node: LocalNode) -> None:
    st.say("\n== 3. Status, history and proofs (each verified here) ==")
    ledger = node.ledger
    size, note = ledger.latest_checkpoint()
    root = ledger.root(size)
    for lid in st.licences:
        lic = ledger.licence(lid)
        assert lic is not None
        items = ledger.history(lid, size)
        for it in items:
            verify_inclusion(ledger.hasher, it.index, size, it.proof.leaf_hash, list(it.proof.path), root)
        kinds = " -> ".join(str(it.record.record.type) for it in items)
        st.say(f"{lid}: {lic.status:<9} v{lic.version}  history {kinds}  ({len(items)} inclusion proofs verified)")
    old = 3
    path = ledger.consistency_proof(old, size)
    verify_consistency(ledger.hasher, old, size, ledger.root(old), root, path)
    st.say(f"consistency           tree {old} -> {size}: {len(path)}-hash proof verified")
    (st.workdir / "checkpoint.txt").write_text(note)
    st.say(f"latest checkpoint     (C2SP signed note, Ed25519 + SM2 signatures)\n{note}")


def _audit(st: DemoState, node: LocalNode) -> None:
    st.say("== 4. Audit: replay from genesis ==")
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


def run_demo(workdir: Path, say: Callable[[str], None]) -> DemoState:
    prepare_workdir(workdir)
    st = DemoState(workdir=workdir, say=say)
    passphrase = secrets.token_urlsafe(24).encode()
    write_secret(workdir / "passphrase", passphrase + b"\n")
    cfg = NodeConfig(home=workdir / "node", node_id="gd-node-1")
    cfg.database = cfg.default_database()
    os.makedirs(cfg.home, exist_ok=True)
    node = init_node(
        cfg,
        passphrase,
        origin=ORIGIN,
        node_name="广东省政务服务数据管理局节点",
        authority_id="gd-gov",
        authority_name="广东省政务服务数据管理局",
    )
    try:
        _certificates(st, node)
        _lifecycle(st, node)
        _proofs(st, node)
        _audit(st, node)
    finally:
        node.close()
    say(f"\nall demo files are in {workdir} (node home: {cfg.home}; key passphrase in {workdir / 'passphrase'})")
    say(f"try: CERTLEDGER_HOME={cfg.home} certledger history {st.licences[0]}")
    return st

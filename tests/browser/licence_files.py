"""A node home holding real, sealed licence files and their ledger records, for the verification tests.

Everything is made the way a province makes it: an SM2 root CA, agency
certificates and GB/T 38540 seals made by the seal maker, licences rendered as
PDF and OFD, PAdES-signed and sealed (:mod:`cert_formats.issuance`), their
ISSUE / AMEND / SUSPEND / REVOKE records signed by the agency keys and appended
to the node's ledger, and the proof bundle embedded once the record is final.
The province root goes to ``<home>/trust/root.pem``, where ``certledger serve``
finds it.

The files (``LicenceHome.files``):

``genuine.pdf`` / ``genuine.ofd``   current version of an active business licence   -> valid
``revoked.pdf`` / ``revoked.ofd``   a food business permit revoked after issue        -> revoked
``amended-v1.pdf``                  version 1 of a qualification amended to version 2 -> superseded
``amended-v2.ofd``                  its version 2                                      -> valid
``suspended.pdf``                   a qualification certificate, suspended            -> suspended
``tampered.pdf``                    ``genuine.pdf`` with one signed metadata byte changed -> forged
``forged.ofd``                      a look-alike of ``amended-v2.ofd`` sealed with a forger's
                                    own key under a self-made root of the same name    -> forged

Rendering a licence costs seconds (font subsetting), so a test session builds
the home once (:func:`shared_licence_home`) and serves it read-only.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

from api_server import PASSPHRASE, AgencySpec, make_node

from cert_formats.identifier import LicenceIdentifier
from cert_formats.issuance import (
    AgencyCredentials,
    IssuedFiles,
    attach_bundles,
    issue_payload,
    render_and_sign,
)
from cert_formats.licence import Licence
from cert_formats.seal import make_seal, render_seal_picture
from cert_formats.template import LicenceTemplate, builtin_templates
from ledger.records import Record, RecordType, new_nonce, now_utc, sign_record
from nodes.config import load_config
from nodes.local import LocalNode, open_node
from signing.sm2 import SM2PrivateKey
from signing.x509 import (
    Certificate,
    DistinguishedName,
    Role,
    Validity,
    check_character,
    issue_certificate,
    issue_root_certificate,
)

ORIGIN = "zj.certledger.example/licences"
VERIFY_HOST = "verify.zj.certledger.example"
REVOKE_REASON = "以欺骗手段取得许可"
SUSPEND_REASON = "证书持有人涉嫌违规，暂停待核查"
AMEND_REASON = "职业等级晋升，换发新版本"


@dataclass(frozen=True)
class Agency:
    id: str
    name: str
    regions: tuple[str, ...]
    templates: tuple[str, ...]


XIHU = Agency(
    "11330106000000003H", "杭州市西湖区市场监督管理局", ("330106",), ("business_licence", "food_business_permit")
)
HRSS = Agency("11330000000000004Q", "浙江省人力资源和社会保障厅", ("33",), ("vocational_qualification",))


@dataclass
class LicenceHome:
    """The node home, its trust root and the licence files (see the module docstring)."""

    home: Path
    root: Certificate
    files: dict[str, bytes] = field(default_factory=dict)
    #: file name -> the issued licence (fields, identifier) behind the file
    licences: dict[str, Licence] = field(default_factory=dict)

    def write_files(self, directory: Path) -> dict[str, Path]:
        directory.mkdir(parents=True, exist_ok=True)
        paths = {}
        for name, data in self.files.items():
            path = directory / name
            path.write_bytes(data)
            paths[name] = path
        return paths

    def licence_id(self, name: str) -> str:
        return LicenceIdentifier.parse(self.licences[name].identifier).lineage


def _licence(
    tpl: LicenceTemplate, agency: Agency, n: int, holder: str, version: int = 1, serial: str | None = None
) -> Licence:
    sample = tpl.sample_licence()
    number = f"{sample.number[:-3]}{n:02d}{version}"
    holder_code = sample.holder_code
    if sample.holder_code_type.value == "001":
        holder_code = (first := f"91330106MA2B{n:05d}") + check_character(first)
    ident = LicenceIdentifier.build(tpl.type_code, agency.id, serial or number, version)
    return dataclasses.replace(
        sample,
        number=number,
        identifier=str(ident),
        holder=holder,
        holder_code=holder_code,
        version=version,
        issuer_name=agency.name,
        issuer_code=agency.id,
    )


def _root(name: str) -> tuple[SM2PrivateKey, Certificate]:
    key = SM2PrivateKey.generate()
    dn = DistinguishedName(common_name=name, organization="浙江省大数据发展管理局", country="CN")
    return key, issue_root_certificate(dn, key, Validity.for_days(3650))


def _agency_cert(agency: Agency, key: SM2PrivateKey, issuer: Certificate, issuer_key: SM2PrivateKey) -> Certificate:
    return issue_certificate(
        role=Role.AGENCY,
        subject=DistinguishedName(
            common_name=agency.name, organization=agency.name, credit_code=agency.id, country="CN"
        ),
        public_key=key.public_key,
        validity=Validity.for_days(730),
        issuer=issuer,
        issuer_key=issuer_key,
    )


def _seal(agency: Agency, cert: Certificate, maker_key: SM2PrivateKey, maker: Certificate) -> Any:
    now = datetime.now(UTC).replace(microsecond=0)
    return make_seal(
        name=f"{agency.name}证照专用章",
        signers=[cert],
        maker_key=maker_key,
        maker_cert=maker,
        valid_start=now - timedelta(minutes=5),
        valid_end=now + timedelta(days=730),
        picture=render_seal_picture(agency.name, caption="证照专用章"),
    )


def _pki() -> tuple[Certificate, dict[str, AgencyCredentials]]:
    root_key, root = _root("浙江省电子证照根CA")
    maker_key = SM2PrivateKey.generate()
    maker_agency = Agency("11330000MB2C920491", "浙江省电子印章制作中心", ("33",), ())
    maker = _agency_cert(maker_agency, maker_key, root, root_key)
    creds = {}
    for agency in (XIHU, HRSS):
        key = SM2PrivateKey.generate()
        cert = _agency_cert(agency, key, root, root_key)
        creds[agency.id] = AgencyCredentials(key, cert, (root,), _seal(agency, cert, maker_key, maker))
    return root, creds


def _forged_ofd(licence: Licence, tpl: LicenceTemplate, agency: Agency) -> bytes:
    """The same face, sealed with a forger's key under a self-made root that copies the real root's name."""
    forger, fake_root = _root("浙江省电子证照根CA")
    fake = _agency_cert(agency, forger, fake_root, forger)
    creds = AgencyCredentials(forger, fake, (fake_root,), _seal(agency, fake, forger, fake))
    return render_and_sign(licence, tpl, creds, verify_host=VERIFY_HOST).ofd


class _Issuer:
    def __init__(self, node: LocalNode, creds: dict[str, AgencyCredentials]) -> None:
        self.node = node
        self.creds = creds

    def append(self, agency: Agency, rtype: RecordType, payload: dict[str, Any]) -> None:
        key = self.creds[agency.id].key
        record = Record(rtype, self.node.origin, now_utc(), new_nonce(), agency.id, key.public_key.key_id, payload)
        self.node.ledger.submit([sign_record(record, [key])]).raise_first()

    def issue(
        self, agency: Agency, licence: Licence, tpl: LicenceTemplate, rtype: RecordType = RecordType.ISSUE
    ) -> tuple[IssuedFiles, bytes, bytes]:
        files = render_and_sign(licence, tpl, self.creds[agency.id], verify_host=VERIFY_HOST)
        payload = issue_payload(files)
        if rtype is RecordType.AMEND:
            payload["reason_text"] = AMEND_REASON
        self.append(agency, rtype, payload)
        pdf, ofd = attach_bundles(files, self.node.ledger.status_document(files.licence_id))
        return files, pdf, ofd


def build_licence_home(home: Path) -> LicenceHome:
    """A fresh node home at ``home`` with the ledger and files described in the module docstring."""
    root, creds = _pki()
    tpl = builtin_templates()
    biz, food, voc = tpl["business_licence"], tpl["food_business_permit"], tpl["vocational_qualification"]
    make_node(
        home,
        ORIGIN,
        [
            AgencySpec(a.id, a.name, a.regions, tuple(tpl[t].type_code for t in a.templates), key=creds[a.id].key)
            for a in (XIHU, HRSS)
        ],
    )
    (home / "trust").mkdir()
    (home / "trust" / "root.pem").write_bytes(root.to_pem())
    out = LicenceHome(home, root)
    lic = out.licences
    node = open_node(load_config(home), PASSPHRASE.encode())
    try:
        issuer = _Issuer(node, creds)
        lic["genuine.pdf"] = lic["genuine.ofd"] = _licence(biz, XIHU, 1, "杭州云岫数字科技有限公司")
        _, out.files["genuine.pdf"], out.files["genuine.ofd"] = issuer.issue(XIHU, lic["genuine.pdf"], biz)

        lic["revoked.pdf"] = lic["revoked.ofd"] = _licence(food, XIHU, 2, "杭州西溪云帆餐饮管理有限公司")
        files, out.files["revoked.pdf"], out.files["revoked.ofd"] = issuer.issue(XIHU, lic["revoked.pdf"], food)
        payload = {"licence_id": files.licence_id, "reason_code": "fraud", "reason_text": REVOKE_REASON}
        issuer.append(XIHU, RecordType.REVOKE, payload)

        lic["amended-v1.pdf"] = v1 = _licence(voc, HRSS, 3, "张晓雯")
        _, out.files["amended-v1.pdf"], _ = issuer.issue(HRSS, v1, voc)
        serial = LicenceIdentifier.parse(v1.identifier).serial
        lic["amended-v2.ofd"] = v2 = dataclasses.replace(
            _licence(voc, HRSS, 3, "张晓雯", version=2, serial=serial),
            extensions=(("gender", "女"), ("occupation", "网络与信息安全管理员"), ("level", "二级/技师")),
        )
        _, _, out.files["amended-v2.ofd"] = issuer.issue(HRSS, v2, voc, RecordType.AMEND)

        lic["suspended.pdf"] = _licence(voc, HRSS, 4, "李明远")
        files, out.files["suspended.pdf"], _ = issuer.issue(HRSS, lic["suspended.pdf"], voc)
        payload = {"licence_id": files.licence_id, "reason_code": "inspection", "reason_text": SUSPEND_REASON}
        issuer.append(HRSS, RecordType.SUSPEND, payload)
    finally:
        node.close()
    tampered = bytearray(out.files["genuine.pdf"])
    at = tampered.index(b"/Author")
    tampered[at + 9] ^= 0x01  # one byte of the signed document information
    out.files["tampered.pdf"] = bytes(tampered)
    lic["tampered.pdf"] = lic["genuine.pdf"]
    out.files["forged.ofd"] = _forged_ofd(v2, voc, HRSS)
    lic["forged.ofd"] = v2
    return out


_shared: dict[str, LicenceHome] = {}


def shared_licence_home(base: Path) -> LicenceHome:
    """One :class:`LicenceHome` per test process (under ``base`` the first time), for read-only use."""
    if "home" not in _shared:
        _shared["home"] = build_licence_home(base / "node")
    return _shared["home"]

"""signing.x509: profile, builder, hostile-input parser, chain validation, OpenSSL interop."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import x509 as asn1_x509
from hypothesis import given, settings
from hypothesis import strategies as st

from signing import der
from signing.errors import InvalidInputError, VerificationError
from signing.sm2 import DEFAULT_SIGNER_ID, SM2PrivateKey
from signing.x509 import (
    PROFILES,
    Certificate,
    DistinguishedName,
    KeyUsage,
    Role,
    Validity,
    check_character,
    issue_certificate,
    issue_root_certificate,
    key_identifier,
    load_certificate,
    load_certificates,
    oids,
    parse_der,
    validate_credit_code,
    verify_chain,
    verify_issued_by,
)
from signing.x509.parse import MAX_CERTIFICATE_SIZE, SM2_WITH_SM3_ALGORITHM_ID

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "x509"
DS = KeyUsage.DIGITAL_SIGNATURE
T0 = datetime(2030, 1, 1, tzinfo=UTC)
NOW = T0 + timedelta(days=100)

ROOT_DN = DistinguishedName(
    country="CN",
    state="广东省",
    organization="广东省政务服务数据管理局",
    credit_code="914403001922038216",
    common_name="广东省电子证照根CA",
)
AGENCY_DN = DistinguishedName(
    country="CN",
    locality="深圳市",
    organization="深圳市市场监督管理局",
    credit_code="91350100M000100Y43",
    common_name="深圳市市场监督管理局 电子证照签章",
)
NODE_DN = DistinguishedName(country="CN", organization="广东省政务服务数据管理局", common_name="node-1.gd")


# -- fixtures and helpers -----------------------------------------------------------------


class PKI:
    """A root with an agency, a node, a subordinate CA and a node under it, all at T0."""

    def __init__(self) -> None:
        self.root_key = SM2PrivateKey.generate()
        self.agency_key = SM2PrivateKey.generate()
        self.node_key = SM2PrivateKey.generate()
        self.ca_key = SM2PrivateKey.generate()
        self.root = issue_root_certificate(ROOT_DN, self.root_key, Validity.for_days(3650, start=T0))
        self.agency = self.issue(Role.AGENCY, AGENCY_DN, self.agency_key, days=730)
        self.node = self.issue(Role.NODE, NODE_DN, self.node_key, days=730)
        self.ca = self.issue(
            Role.CA,
            DistinguishedName(country="CN", organization="深圳市政务服务数据管理局", common_name="深圳市子CA"),
            self.ca_key,
            days=1825,
        )
        self.sub_node_key = SM2PrivateKey.generate()
        self.sub_node = self.issue(
            Role.NODE,
            DistinguishedName(country="CN", organization="深圳市", common_name="node-sz-1"),
            self.sub_node_key,
            days=365,
            issuer=self.ca,
            issuer_key=self.ca_key,
        )

    def issue(
        self,
        role: Role,
        subject: DistinguishedName,
        key: SM2PrivateKey,
        *,
        days: int = 365,
        start: datetime = T0,
        issuer: Certificate | None = None,
        issuer_key: SM2PrivateKey | None = None,
        **kwargs: Any,
    ) -> Certificate:
        return issue_certificate(
            role=role,
            subject=subject,
            public_key=key.public_key,
            validity=Validity.for_days(days, start=start),
            issuer=issuer or self.root,
            issuer_key=issuer_key or self.root_key,
            **kwargs,
        )


@pytest.fixture(scope="module")
def pki() -> PKI:
    return PKI()


def resign(
    cert: Certificate,
    key: SM2PrivateKey,
    mutate: Callable[[Any], None],
    *,
    algorithm: bytes = SM2_WITH_SM3_ALGORITHM_ID,
) -> bytes:
    """Re-sign a modified copy of ``cert``'s TBS: crafts certificates the builder refuses to make."""
    tbs = asn1_x509.Certificate.load(cert.der)["tbs_certificate"].copy()
    mutate(tbs)
    tbs_der = tbs.dump(force=True)
    return der.sequence(tbs_der, algorithm, der.bit_string(key.sign(tbs_der, signer_id=DEFAULT_SIGNER_ID)))


def without_extension(oid: str) -> Callable[[Any], None]:
    def mutate(tbs: Any) -> None:
        tbs["extensions"] = [e for e in tbs["extensions"] if e["extn_id"].dotted != oid]

    return mutate


def reasons(exc_info: pytest.ExceptionInfo[Any]) -> str:
    return str(exc_info.value.reason)


# -- 统一社会信用代码 --------------------------------------------------------------------------


def test_credit_code_vectors() -> None:
    data = json.loads((VECTORS / "credit_codes.json").read_text(encoding="utf-8"))
    for case in data["weighted_sums"]:
        assert check_character(case["first17"]) == case["check"]
    for case in data["valid"]:
        assert validate_credit_code(case["code"]) == case["code"]
    for case in data["invalid"]:
        with pytest.raises(InvalidInputError) as exc:
            validate_credit_code(case["code"])
        assert reasons(exc) == "cert.credit_code"


def test_credit_code_against_the_licence_vectors() -> None:
    # the licence model's vector file (government agency codes from published licences)
    path = VECTORS.parent / "credit-code" / "uscc.json"
    if not path.exists():
        pytest.skip("tests/vectors/credit-code/uscc.json not present")
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["valid"]
    for case in data["valid"]:
        assert validate_credit_code(case["code"]) == case["code"]
    for case in data["invalid"]:
        with pytest.raises(InvalidInputError):
            validate_credit_code(case["code"])


@pytest.mark.parametrize(
    "code",
    [
        "91350100M000100Y4",  # 17 characters
        "91350100M000100Y433",  # 19
        "91350100m000100Y43",  # lower case
        "9135010OM000100Y43",  # O is not in the set
        "91A50100M000100Y43",  # division code must be digits
        "91350100M000100Y44",  # wrong check character (valid charset)
        "",
    ],
)
def test_credit_code_rejects(code: str) -> None:
    with pytest.raises(InvalidInputError) as exc:
        validate_credit_code(code)
    assert reasons(exc) == "cert.credit_code"


def test_credit_code_check_character_covers_the_set() -> None:
    # every 17-character body has exactly one check character, and flipping it is caught
    body = "91440300192203821"
    good = body + check_character(body)
    for ch in "0123456789ABCDEFGHJKLMNPQRTUWXY":
        if ch != good[-1]:
            with pytest.raises(InvalidInputError):
                validate_credit_code(body + ch)


# -- model --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"country": "cn"},
        {"country": "CHN"},
        {"common_name": "a\nb"},
        {"common_name": "x" * 65},
        {"organization": ""},
        {"organization": " padded"},
        {"credit_code": "91350100M000100Y44"},
    ],
)
def test_name_validation(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError):
        DistinguishedName(**kwargs)


def test_name_rfc4514_escapes() -> None:
    dn = DistinguishedName(country="CN", organization="A, B+C", common_name="#x;y")
    assert dn.rfc4514() == "CN=\\#x\\;y,O=A\\, B\\+C,C=CN"


def test_validity_rules() -> None:
    with pytest.raises(InvalidInputError):
        Validity(datetime(2030, 1, 1), datetime(2031, 1, 1))
    with pytest.raises(InvalidInputError):
        Validity(T0, T0 - timedelta(seconds=1))
    with pytest.raises(InvalidInputError):
        Validity.for_days(0)
    cst = timezone(timedelta(hours=8))
    v = Validity(datetime(2030, 1, 1, 8, 0, 0, 999, tzinfo=cst), datetime(2031, 1, 1, tzinfo=UTC))
    assert v.not_before == T0 and v.not_before.tzinfo == UTC
    assert v.contains(T0) and v.contains(v.not_after) and not v.contains(v.not_after + timedelta(seconds=1))
    fresh = Validity.for_days(1)
    assert fresh.not_before < datetime.now(UTC) - timedelta(minutes=4)


def test_key_usage_names() -> None:
    ku = KeyUsage.from_names(["digitalSignature", "non_repudiation", "contentCommitment"])
    assert ku == KeyUsage.DIGITAL_SIGNATURE | KeyUsage.NON_REPUDIATION
    assert ku.names == ("digitalSignature", "nonRepudiation")
    assert KeyUsage.from_names(["keyCertSign", "cRLSign"]).names == ("keyCertSign", "cRLSign")
    with pytest.raises(InvalidInputError):
        KeyUsage.from_names(["signEverything"])


# -- builder and parser round trip --------------------------------------------------------


def test_each_role_round_trips_with_its_profile(pki: PKI) -> None:
    for cert, role, key in [
        (pki.root, Role.ROOT, pki.root_key),
        (pki.ca, Role.CA, pki.ca_key),
        (pki.agency, Role.AGENCY, pki.agency_key),
        (pki.node, Role.NODE, pki.node_key),
    ]:
        again = load_certificate(cert.to_pem())
        assert again == cert and again.der == cert.der
        assert again.role is role
        profile = PROFILES[role]
        assert again.key_usage == profile.key_usage
        assert again.is_ca is profile.is_ca
        assert again.public_key == key.public_key
        assert again.subject_key_id == key_identifier(key.public_key)
        assert again.version == 3
        assert 0 < again.serial_number < 1 << 159
        assert again.signature_algorithm == oids.SM2_WITH_SM3
        assert again.unhandled_critical_extensions == ()
        assert load_certificate(cert.der) == cert  # DER input too
    assert pki.agency.subject == AGENCY_DN
    assert pki.agency.subject.credit_code == "91350100M000100Y43"
    assert pki.agency.issuer == ROOT_DN
    assert pki.node.subject.common_name == "node-1.gd"
    assert pki.agency.authority_key_id == pki.root.subject_key_id
    assert pki.root.authority_key_id == pki.root.subject_key_id
    assert pki.root.path_length is None and pki.ca.path_length == 0
    assert pki.agency.not_before == T0 and pki.agency.not_after == T0 + timedelta(days=730)


def test_encoding_details(pki: PKI) -> None:
    cert = asn1_x509.Certificate.load(pki.agency.der)
    tbs = cert["tbs_certificate"]
    # signatureAlgorithm: the OID alone, no parameters, as OpenSSL writes it
    assert cert["signature_algorithm"].dump() == bytes.fromhex("300a06082a811ccf55018375")
    assert tbs["signature"].dump() == cert["signature_algorithm"].dump()
    # SPKI: id-ecPublicKey with the SM2 curve
    assert tbs["subject_public_key_info"].dump() == pki.agency_key.public_key.to_der()
    assert tbs["validity"]["not_before"].name == "utc_time"
    exts = {e["extn_id"].dotted: e for e in tbs["extensions"]}
    assert exts[oids.BASIC_CONSTRAINTS]["critical"].native is True
    assert exts[oids.KEY_USAGE]["critical"].native is True
    # O and CN are UTF8String (Chinese), C is PrintableString, credit code in organizationIdentifier
    kinds = {
        ava["type"].dotted: (ava["value"].name, ava["value"].native) for rdn in tbs["subject"].chosen for ava in rdn
    }
    assert kinds[oids.COUNTRY] == ("printable_string", "CN")
    assert kinds[oids.ORGANIZATION] == ("utf8_string", "深圳市市场监督管理局")
    assert kinds[oids.ORGANIZATION_IDENTIFIER] == ("utf8_string", "NTRCN-91350100M000100Y43")
    # the signature is over the TBS bytes with the default signer ID
    pki.root_key.public_key.verify(pki.agency.signature, pki.agency.tbs_der, signer_id=DEFAULT_SIGNER_ID)


def test_generalized_time_from_2050(pki: PKI) -> None:
    key = SM2PrivateKey.generate()
    root = issue_root_certificate(
        ROOT_DN, key, Validity(datetime(2049, 6, 1, tzinfo=UTC), datetime(2051, 1, 1, tzinfo=UTC))
    )
    validity = asn1_x509.Certificate.load(root.der)["tbs_certificate"]["validity"]
    assert validity["not_before"].name == "utc_time"
    assert validity["not_after"].name == "general_time"
    assert root.not_after == datetime(2051, 1, 1, tzinfo=UTC)


def test_serials_are_random(pki: PKI) -> None:
    serials = {pki.issue(Role.NODE, NODE_DN, pki.node_key).serial_number for _ in range(8)}
    assert len(serials) == 8
    assert max(s.bit_length() for s in serials) > 150  # 159 random bits, not a counter


def test_extended_key_usage(pki: PKI) -> None:
    cert = pki.issue(Role.AGENCY, AGENCY_DN, pki.agency_key, extended_key_usage=["documentSigning", "1.2.3.4"])
    assert cert.extended_key_usage == ("1.3.6.1.5.5.7.3.36", "1.2.3.4")
    with pytest.raises(InvalidInputError) as exc:
        pki.issue(Role.AGENCY, AGENCY_DN, pki.agency_key, extended_key_usage=["anything"])
    assert reasons(exc) == "cert.extended_key_usage"


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("agency_without_credit_code", "cert.profile"),
        ("node_without_org", "cert.profile"),
        ("leaf_without_issuer", "cert.profile"),
        ("wrong_ca_key", "cert.issuer_key_mismatch"),
        ("node_as_issuer", "cert.not_ca"),
        ("outlives_issuer", "cert.validity"),
        ("too_long", "cert.validity"),
        ("path_length_on_leaf", "cert.profile"),
        ("ca_under_path_length_0", "cert.path_length"),
        ("root_signed_by_other_key", "cert.issuer_key_mismatch"),
        ("bad_serial", "cert.serial"),
    ],
)
def test_builder_refuses(pki: PKI, case: str, reason: str) -> None:
    key = SM2PrivateKey.generate()
    actions: dict[str, Callable[[], object]] = {
        "agency_without_credit_code": lambda: pki.issue(
            Role.AGENCY, DistinguishedName(country="CN", organization="x", common_name="y"), key
        ),
        "node_without_org": lambda: pki.issue(Role.NODE, DistinguishedName(country="CN", common_name="n"), key),
        "leaf_without_issuer": lambda: issue_certificate(
            role=Role.NODE,
            subject=NODE_DN,
            public_key=key.public_key,
            validity=Validity.for_days(1, start=T0),
            issuer=None,
            issuer_key=key,
        ),
        "wrong_ca_key": lambda: pki.issue(Role.NODE, NODE_DN, key, issuer_key=pki.agency_key),
        "node_as_issuer": lambda: pki.issue(Role.NODE, NODE_DN, key, issuer=pki.node, issuer_key=pki.node_key),
        "outlives_issuer": lambda: pki.issue(Role.NODE, NODE_DN, key, days=3651),
        "too_long": lambda: pki.issue(Role.NODE, NODE_DN, key, days=20 * 366),
        "path_length_on_leaf": lambda: pki.issue(Role.NODE, NODE_DN, key, path_length=1),
        "ca_under_path_length_0": lambda: pki.issue(
            Role.CA,
            DistinguishedName(country="CN", organization="o", common_name="c"),
            key,
            issuer=pki.ca,
            issuer_key=pki.ca_key,
        ),
        "root_signed_by_other_key": lambda: issue_certificate(
            role=Role.ROOT,
            subject=ROOT_DN,
            public_key=key.public_key,
            validity=Validity.for_days(1, start=T0),
            issuer=None,
            issuer_key=pki.root_key,
        ),
        "bad_serial": lambda: pki.issue(Role.NODE, NODE_DN, key, serial_number=1 << 159),
    }
    with pytest.raises(InvalidInputError) as exc:
        actions[case]()
    assert reasons(exc) == reason


# -- chain validation ---------------------------------------------------------------------


def test_chain_ok(pki: PKI) -> None:
    result = verify_chain(
        pki.agency,
        [],
        [pki.root],
        at=NOW,
        required_usage=DS | KeyUsage.NON_REPUDIATION,
        required_role=Role.AGENCY,
    )
    assert result.path == (pki.agency, pki.root)
    assert result.trust_anchor == pki.root and result.leaf == pki.agency
    assert result.role is Role.AGENCY and result.at == NOW
    assert "signatures" in result.checks and "role" in result.checks
    node = verify_chain(pki.node, [], [pki.root], at=NOW, required_usage=DS, required_role=Role.NODE)
    assert node.path == (pki.node, pki.root)
    # three levels, with the intermediate from the untrusted pool and decoys around it
    deep = verify_chain(pki.sub_node, [pki.agency, pki.ca, pki.node], [pki.root], at=NOW, required_usage=DS)
    assert deep.path == (pki.sub_node, pki.ca, pki.root)
    # a root verified as itself
    assert verify_chain(pki.root, [], [pki.root], at=NOW, required_usage=KeyUsage.KEY_CERT_SIGN).path == (pki.root,)


def test_chain_time_boundaries(pki: PKI) -> None:
    verify_chain(pki.agency, [], [pki.root], at=pki.agency.not_before, required_usage=DS)
    verify_chain(pki.agency, [], [pki.root], at=pki.agency.not_after, required_usage=DS)
    with pytest.raises(VerificationError) as exc:
        verify_chain(pki.agency, [], [pki.root], at=pki.agency.not_after + timedelta(seconds=1), required_usage=DS)
    assert reasons(exc) == "cert.expired"
    with pytest.raises(VerificationError) as exc:
        verify_chain(pki.agency, [], [pki.root], at=pki.agency.not_before - timedelta(seconds=1), required_usage=DS)
    assert reasons(exc) == "cert.not_yet_valid"


def test_chain_expired_intermediate(pki: PKI) -> None:
    ca = pki.issue(
        Role.CA, DistinguishedName(country="CN", organization="o", common_name="brief CA"), pki.ca_key, days=10
    )
    leaf = pki.issue(Role.NODE, NODE_DN, pki.node_key, days=10, issuer=ca, issuer_key=pki.ca_key)
    verify_chain(leaf, [ca], [pki.root], at=T0 + timedelta(days=5), required_usage=DS)
    # give the leaf a longer life than its CA by re-signing it: the CA's expiry must still bite
    longer = parse_der(
        resign(
            leaf,
            pki.ca_key,
            lambda tbs: tbs["validity"].__setitem__(
                "not_after", asn1_x509.Time(name="utc_time", value=T0 + timedelta(days=40))
            ),
        )
    )
    with pytest.raises(VerificationError) as exc:
        verify_chain(longer, [ca], [pki.root], at=T0 + timedelta(days=20), required_usage=DS)
    assert reasons(exc) == "cert.expired"
    assert exc.value.details["subject"].startswith("CN=brief CA")


def test_chain_wrong_issuer(pki: PKI) -> None:
    other_key = SM2PrivateKey.generate()
    other_root = issue_root_certificate(
        DistinguishedName(country="CN", organization="湖北省", common_name="湖北省根CA"),
        other_key,
        Validity.for_days(3650, start=T0),
    )
    with pytest.raises(VerificationError) as exc:
        verify_chain(pki.agency, [], [other_root], at=NOW, required_usage=DS)
    assert reasons(exc) == "cert.untrusted"
    # same name, different key: the authority key identifier gives it away
    impostor = issue_root_certificate(ROOT_DN, other_key, Validity.for_days(3650, start=T0))
    with pytest.raises(VerificationError) as exc:
        verify_chain(pki.agency, [], [impostor], at=NOW, required_usage=DS)
    assert reasons(exc) == "cert.issuer_mismatch"
    # ... and without an AKI to compare, the signature does
    no_aki = parse_der(resign(pki.agency, pki.root_key, without_extension(oids.AUTHORITY_KEY_IDENTIFIER)))
    verify_chain(no_aki, [], [pki.root], at=NOW, required_usage=DS)
    with pytest.raises(VerificationError) as exc:
        verify_chain(no_aki, [], [impostor], at=NOW, required_usage=DS)
    assert reasons(exc) == "cert.signature"
    # the real root is still found next to the impostor
    assert verify_chain(pki.agency, [], [impostor, pki.root], at=NOW, required_usage=DS).trust_anchor == pki.root
    # an intermediate that is not supplied
    with pytest.raises(VerificationError) as exc:
        verify_chain(pki.sub_node, [], [pki.root], at=NOW, required_usage=DS)
    assert reasons(exc) == "cert.untrusted"
    with pytest.raises(VerificationError) as exc:
        verify_issued_by(pki.agency, other_root)
    assert reasons(exc) == "cert.issuer_mismatch"


def test_chain_tampered_tbs_byte(pki: PKI) -> None:
    data = bytearray(pki.agency.der)
    pos = data.index("电子证照签章".encode())
    data[pos] ^= 0x01  # still valid UTF-8 (a different CJK character), still parses
    tampered = parse_der(bytes(data))
    assert tampered.subject != pki.agency.subject
    with pytest.raises(VerificationError) as exc:
        verify_chain(tampered, [], [pki.root], at=NOW, required_usage=DS)
    assert reasons(exc) == "cert.signature"
    # a flipped bit in the signature itself
    sig = bytearray(pki.agency.der)
    sig[-5] ^= 0x40
    with pytest.raises(VerificationError) as exc:
        verify_chain(parse_der(bytes(sig)), [], [pki.root], at=NOW, required_usage=DS)
    assert reasons(exc) == "cert.signature"


def test_chain_leaf_used_as_ca(pki: PKI) -> None:
    def issued_by_node(tbs: Any) -> None:
        tbs["issuer"] = asn1_x509.Name.load(pki.node.subject_der)
        tbs["extensions"] = [
            e
            if e["extn_id"].dotted != oids.AUTHORITY_KEY_IDENTIFIER
            else asn1_x509.Extension(
                {
                    "extn_id": "authority_key_identifier",
                    "critical": False,
                    "extn_value": {"key_identifier": pki.node.subject_key_id},
                }
            )
            for e in tbs["extensions"]
        ]

    forged = parse_der(resign(pki.agency, pki.node_key, issued_by_node))
    verify_issued_by(forged, pki.node)  # the signature itself is fine ...
    with pytest.raises(VerificationError) as exc:  # ... but a node may not issue certificates
        verify_chain(forged, [pki.node], [pki.root], at=NOW, required_usage=DS)
    assert reasons(exc) == "cert.not_ca"
    # nor may an end-entity certificate serve as a trust anchor
    with pytest.raises(VerificationError) as exc:
        verify_chain(pki.node, [], [pki.node], at=NOW, required_usage=DS)
    assert reasons(exc) == "cert.not_ca"


def test_chain_key_usage(pki: PKI) -> None:
    bare = parse_der(resign(pki.node, pki.root_key, without_extension(oids.KEY_USAGE)))
    assert bare.key_usage is None and bare.role is None
    with pytest.raises(VerificationError) as exc:
        verify_chain(bare, [], [pki.root], at=NOW, required_usage=DS)
    assert reasons(exc) == "cert.key_usage"
    with pytest.raises(VerificationError) as exc:
        verify_chain(pki.node, [], [pki.root], at=NOW, required_usage=KeyUsage.NON_REPUDIATION)
    assert reasons(exc) == "cert.key_usage"
    with pytest.raises(VerificationError) as exc:
        verify_chain(pki.node, [], [pki.root], at=NOW, required_usage=DS, required_role=Role.AGENCY)
    assert reasons(exc) == "cert.role"
    with pytest.raises(VerificationError) as exc:
        verify_chain(
            pki.node,
            [],
            [pki.root],
            at=NOW,
            required_usage=DS,
            required_extended_usage=oids.EXTENDED_KEY_USAGES["documentSigning"],
        )
    assert reasons(exc) == "cert.extended_key_usage"
    # a CA certificate without keyCertSign may not sign the leaf
    ca_no_ku = parse_der(resign(pki.ca, pki.root_key, without_extension(oids.KEY_USAGE)))
    with pytest.raises(VerificationError) as exc:
        verify_chain(pki.sub_node, [ca_no_ku], [pki.root], at=NOW, required_usage=DS)
    assert reasons(exc) == "cert.key_usage"


def test_chain_path_length(pki: PKI) -> None:
    strict_root = issue_root_certificate(ROOT_DN, pki.root_key, Validity.for_days(3650, start=T0), path_length=0)
    verify_chain(pki.node, [], [strict_root], at=NOW, required_usage=DS)
    with pytest.raises(VerificationError) as exc:
        verify_chain(pki.sub_node, [pki.ca], [strict_root], at=NOW, required_usage=DS)
    assert reasons(exc) == "cert.path_length"


def test_chain_unknown_critical_extension(pki: PKI) -> None:
    def add_critical(tbs: Any) -> None:
        tbs["extensions"] = [
            *tbs["extensions"],
            asn1_x509.Extension({"extn_id": "1.2.3.4.5", "critical": True, "extn_value": b"\x05\x00"}),
        ]

    cert = parse_der(resign(pki.node, pki.root_key, add_critical))
    assert cert.unhandled_critical_extensions == ("1.2.3.4.5",)
    with pytest.raises(VerificationError) as exc:
        verify_chain(cert, [], [pki.root], at=NOW, required_usage=DS)
    assert reasons(exc) == "cert.critical_extension"


def test_chain_bad_anchor_self_signature(pki: PKI) -> None:
    data = bytearray(pki.root.der)
    data[-3] ^= 0x01
    broken_root = parse_der(bytes(data))
    with pytest.raises(VerificationError) as exc:
        verify_chain(pki.agency, [], [broken_root], at=NOW, required_usage=DS)
    assert reasons(exc) == "cert.signature"


def test_chain_inputs(pki: PKI) -> None:
    with pytest.raises(InvalidInputError):
        verify_chain(pki.agency, [], [], at=NOW, required_usage=DS)
    with pytest.raises(InvalidInputError):
        verify_chain(pki.agency, [], [pki.root], at=datetime(2030, 5, 1), required_usage=DS)
    # other time zones mean the same instant
    cst = NOW.astimezone(timezone(timedelta(hours=8)))
    assert verify_chain(pki.agency, [], [pki.root], at=cst, required_usage=DS).at == NOW


# -- hostile input ------------------------------------------------------------------------


def test_garbage_and_truncation(pki: PKI) -> None:
    for bad in [b"", b"\x00", b"hello world", b"\x30", b"\x30\x80\x00\x00", b"\xff" * 100]:
        with pytest.raises(InvalidInputError):
            load_certificate(bad)
    data = pki.agency.der
    for cut in range(1, len(data)):
        with pytest.raises(InvalidInputError):
            load_certificate(data[:cut])
    with pytest.raises(InvalidInputError) as exc:
        load_certificate(data + b"\x00")
    assert reasons(exc) == "cert.malformed"
    with pytest.raises(InvalidInputError) as exc:
        load_certificate(b"\x30\x83" + (MAX_CERTIFICATE_SIZE + 1).to_bytes(3, "big") + bytes(MAX_CERTIFICATE_SIZE + 1))
    assert reasons(exc) == "cert.too_large"


def test_ber_is_refused(pki: PKI) -> None:
    # the same certificate with an indefinite-length outer SEQUENCE (valid BER, not DER)
    inner = der.parse_one(pki.agency.der).value
    with pytest.raises(InvalidInputError) as exc:
        load_certificate(b"\x30\x80" + inner + b"\x00\x00")
    assert reasons(exc) == "cert.malformed"
    # a non-minimal length
    with pytest.raises(InvalidInputError):
        load_certificate(b"\x30\x82\x00\x05" + b"\x02\x01\x01\x05\x00")


def test_pem_handling(pki: PKI) -> None:
    bundle = b"leading text\n" + pki.agency.to_pem() + pki.node_key.public_key.to_pem() + pki.root.to_pem()
    assert load_certificates(bundle) == [pki.agency, pki.root]
    with pytest.raises(InvalidInputError) as exc:
        load_certificate(bundle)
    assert reasons(exc) == "cert.count"
    with pytest.raises(InvalidInputError):
        load_certificate(pki.node_key.public_key.to_pem())
    with pytest.raises(InvalidInputError):
        load_certificate(b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n")
    with pytest.raises(InvalidInputError) as exc:
        load_certificates(pki.node.to_pem() * 65)
    assert reasons(exc) == "cert.too_large"


def test_p256_certificate_is_refused(tmp_path: Path) -> None:
    from cryptography import x509 as cx509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = cx509.Name([cx509.NameAttribute(NameOID.COMMON_NAME, "p256")])
    cert = (
        cx509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(T0)
        .not_valid_after(T0 + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    with pytest.raises(InvalidInputError) as exc:
        load_certificate(cert.public_bytes(serialization.Encoding.PEM))
    assert reasons(exc) == "cert.algorithm_not_sm2"
    assert "ecdsa-with-SHA256" in str(exc.value)


def test_p256_key_signed_sm2_is_refused(pki: PKI) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    spki = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )

    def swap_key(tbs: Any) -> None:
        tbs["subject_public_key_info"] = asn1_x509.PublicKeyInfo.load(spki)

    with pytest.raises(InvalidInputError) as exc:
        parse_der(resign(pki.node, pki.root_key, swap_key))
    assert reasons(exc) == "cert.key_not_sm2"
    assert "P-256" in str(exc.value)


def test_profile_violations_in_input(pki: PKI) -> None:
    # inner and outer algorithm differ
    with_null = der.sequence(der.oid(oids.SM2_WITH_SM3), der.tlv(der.TAG_NULL, b""))
    with pytest.raises(InvalidInputError) as exc:
        parse_der(resign(pki.node, pki.root_key, lambda tbs: None, algorithm=with_null))
    assert reasons(exc) == "cert.algorithm_mismatch"

    # NULL parameters in both places are accepted and verify
    def null_params(tbs: Any) -> None:
        tbs["signature"] = asn1_x509.SignedDigestAlgorithm.load(with_null)

    tolerant = parse_der(resign(pki.node, pki.root_key, null_params, algorithm=with_null))
    verify_chain(tolerant, [], [pki.root], at=NOW, required_usage=DS)

    # X.509 v1
    with pytest.raises(InvalidInputError) as exc:
        parse_der(resign(pki.node, pki.root_key, lambda tbs: tbs.__setitem__("version", "v1")))
    assert reasons(exc) == "cert.version"

    # the same extension twice
    def twice(tbs: Any) -> None:
        tbs["extensions"] = [*tbs["extensions"], tbs["extensions"][0]]

    with pytest.raises(InvalidInputError) as exc:
        parse_der(resign(pki.node, pki.root_key, twice))
    assert reasons(exc) == "cert.extension_duplicate"

    # negative serial number
    with pytest.raises(InvalidInputError) as exc:
        parse_der(resign(pki.node, pki.root_key, lambda tbs: tbs.__setitem__("serial_number", -5)))
    assert reasons(exc) == "cert.serial"

    # a credit code whose check character is wrong
    def bad_code(tbs: Any) -> None:
        tbs["subject"] = asn1_x509.Name.build(
            {"common_name": "x", "organization_identifier": "NTRCN-91350100M000100Y44"}
        )

    with pytest.raises(InvalidInputError) as exc:
        parse_der(resign(pki.agency, pki.root_key, bad_code))
    assert reasons(exc) == "cert.credit_code"

    # names outside the profile are kept, not dropped
    def foreign(tbs: Any) -> None:
        tbs["subject"] = asn1_x509.Name.build(
            {"common_name": "x", "organization_identifier": "VATDE-123", "email_address": "a@b.c"}
        )

    odd = parse_der(resign(pki.node, pki.root_key, foreign))
    assert odd.subject.common_name == "x" and odd.subject.credit_code is None
    assert ("2.5.4.97", "VATDE-123") in odd.subject.other
    assert ("1.2.840.113549.1.9.1", "a@b.c") in odd.subject.other


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_mutations_never_crash(pki: PKI, data: st.DataObject) -> None:
    blob = bytearray(pki.agency.der)
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(blob) - 1))
        blob[pos] = data.draw(st.integers(0, 255))
    try:
        cert = load_certificate(bytes(blob))
    except InvalidInputError:
        return
    try:
        verify_chain(cert, [], [pki.root], at=NOW, required_usage=DS)
    except VerificationError:
        return
    assert cert.tbs_der == pki.agency.tbs_der  # only a change outside what is signed may still verify


# -- OpenSSL interop ----------------------------------------------------------------------

OPENSSL = shutil.which("openssl")
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="openssl CLI not installed")
DISTID = "distid:" + DEFAULT_SIGNER_ID.decode()


def openssl(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    assert OPENSSL is not None
    return subprocess.run([OPENSSL, *args], cwd=cwd, capture_output=True, text=True, check=check, timeout=60)


def openssl_version() -> tuple[int, int]:
    out = openssl("version", cwd=Path.cwd()).stdout
    m = re.match(r"OpenSSL (\d+)\.(\d+)", out)
    assert m
    return int(m.group(1)), int(m.group(2))


@pytest.mark.interop
@needs_openssl
def test_openssl_parses_each_type(pki: PKI, tmp_path: Path) -> None:
    expect = {
        "root": ["CA:TRUE", "Certificate Sign, CRL Sign"],
        "ca": ["CA:TRUE, pathlen:0", "Certificate Sign, CRL Sign"],
        "agency": ["CA:FALSE", "Digital Signature, Non Repudiation", "NTRCN-91350100M000100Y43"],
        "node": ["CA:FALSE", "Digital Signature", "CN=node-1.gd"],
    }
    for name, cert in [("root", pki.root), ("ca", pki.ca), ("agency", pki.agency), ("node", pki.node)]:
        path = tmp_path / f"{name}.pem"
        path.write_bytes(cert.to_pem())
        text = openssl(
            "x509", "-in", path.name, "-text", "-noout", "-nameopt", "utf8,sep_comma_plus_space", cwd=tmp_path
        ).stdout
        assert text.count("Signature Algorithm: SM2-with-SM3") == 2
        assert "ASN1 OID: SM2" in text
        assert "X509v3 Subject Key Identifier" in text and "X509v3 Authority Key Identifier" in text
        for needle in expect[name]:
            assert needle in text, (name, needle)
        assert f"{cert.serial_number:x}" in text.replace(":", "").replace("\n", "").replace(" ", "")
    agency_text = openssl("x509", "-in", "agency.pem", "-noout", "-subject", "-nameopt", "utf8", cwd=tmp_path).stdout
    assert "深圳市市场监督管理局" in agency_text


@pytest.mark.interop
@needs_openssl
def test_openssl_verify_accepts_chain(pki: PKI, tmp_path: Path) -> None:
    for name, cert in [
        ("root", pki.root),
        ("agency", pki.agency),
        ("node", pki.node),
        ("ca", pki.ca),
        ("sub_node", pki.sub_node),
    ]:
        (tmp_path / f"{name}.pem").write_bytes(cert.to_pem())
    for leaf in ("agency.pem", "node.pem", "ca.pem"):
        out = openssl(
            "verify", "-CAfile", "root.pem", "-vfyopt", DISTID, "-attime", str(int(NOW.timestamp())), leaf, cwd=tmp_path
        )
        assert out.stdout.strip() == f"{leaf}: OK"
    # the CA below the root, then the leaf below the CA: OpenSSL 3.0 applies -vfyopt only to
    # the certificate on the command line, so a three-level chain is checked one link at a time
    out = openssl(
        "verify",
        "-CAfile",
        "ca.pem",
        "-partial_chain",
        "-vfyopt",
        DISTID,
        "-attime",
        str(int(NOW.timestamp())),
        "sub_node.pem",
        cwd=tmp_path,
    )
    assert out.stdout.strip() == "sub_node.pem: OK"
    if openssl_version() == (3, 0):
        # ADR 0003 findings: without the distinguishing ID OpenSSL 3.0 uses an empty ID and fails,
        # and with an intermediate the intermediate's own signature is checked with the empty ID
        plain = openssl(
            "verify",
            "-CAfile",
            "root.pem",
            "-attime",
            str(int(NOW.timestamp())),
            "agency.pem",
            cwd=tmp_path,
            check=False,
        )
        assert plain.returncode != 0 and "certificate signature failure" in plain.stdout + plain.stderr
        three = openssl(
            "verify",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "ca.pem",
            "-vfyopt",
            DISTID,
            "-attime",
            str(int(NOW.timestamp())),
            "sub_node.pem",
            cwd=tmp_path,
            check=False,
        )
        assert three.returncode != 0


@pytest.mark.interop
@needs_openssl
def test_openssl_made_certificates_verify_here(tmp_path: Path) -> None:
    subj = "/C=CN/O=OpenSSL CA/CN=openssl root"
    openssl(
        "req",
        "-x509",
        "-newkey",
        "sm2",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-sm3",
        "-sigopt",
        DISTID,
        "-subj",
        subj,
        "-days",
        "30",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        cwd=tmp_path,
    )
    root = load_certificate((tmp_path / "ca.pem").read_bytes())
    assert root.role is Role.ROOT and root.subject.organization == "OpenSSL CA"
    assert asn1_x509.Certificate.load(root.der)["signature_algorithm"].dump() == SM2_WITH_SM3_ALGORITHM_ID
    verify_issued_by(root, root)

    # a leaf OpenSSL signs with its CA, validated by our chain code
    openssl(
        "req",
        "-new",
        "-newkey",
        "sm2",
        "-nodes",
        "-keyout",
        "leaf.key",
        "-out",
        "leaf.csr",
        "-sm3",
        "-sigopt",
        DISTID,
        "-subj",
        "/C=CN/O=Leaf Org/CN=leaf",
        cwd=tmp_path,
    )
    (tmp_path / "ext.cnf").write_text(
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
    )
    openssl(
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "leaf.pem",
        "-sm3",
        "-sigopt",
        DISTID,
        "-vfyopt",
        DISTID,
        "-days",
        "10",
        "-extfile",
        "ext.cnf",
        cwd=tmp_path,
    )
    leaf = load_certificate((tmp_path / "leaf.pem").read_bytes())
    result = verify_chain(leaf, [], [root], required_usage=DS, required_role=Role.NODE)
    assert result.path == (leaf, root)

    # signed without the GM/T 0009 ID (OpenSSL 3's silent empty-ID default): refused here
    openssl(
        "req",
        "-x509",
        "-newkey",
        "sm2",
        "-nodes",
        "-keyout",
        "noid.key",
        "-out",
        "noid.pem",
        "-sm3",
        "-subj",
        "/C=CN/O=x/CN=no id",
        "-days",
        "30",
        cwd=tmp_path,
    )
    noid = load_certificate((tmp_path / "noid.pem").read_bytes())
    with pytest.raises(VerificationError) as exc:
        verify_issued_by(noid, noid)
    assert reasons(exc) == "cert.signature"


@pytest.mark.interop
@needs_openssl
def test_openssl_signs_with_our_ca(pki: PKI, tmp_path: Path) -> None:
    # our encrypted PKCS#8 root key and root certificate, used by OpenSSL to issue a leaf
    # (a root valid now: OpenSSL starts the leaf's validity at the current time)
    root = issue_root_certificate(ROOT_DN, pki.root_key, Validity.for_days(30))
    (tmp_path / "root.pem").write_bytes(root.to_pem())
    (tmp_path / "root.key").write_bytes(pki.root_key.to_pem(b"pass phrase"))
    (tmp_path / "pw").write_text("pass phrase\n")
    openssl(
        "req",
        "-new",
        "-newkey",
        "sm2",
        "-nodes",
        "-keyout",
        "leaf.key",
        "-out",
        "leaf.csr",
        "-sm3",
        "-sigopt",
        DISTID,
        "-subj",
        "/C=CN/O=Leaf Org/CN=node-9",
        cwd=tmp_path,
    )
    (tmp_path / "ext.cnf").write_text(
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nauthorityKeyIdentifier=keyid\n"
    )
    openssl(
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "root.pem",
        "-CAkey",
        "root.key",
        "-passin",
        "file:pw",
        "-set_serial",
        "7",
        "-out",
        "leaf.pem",
        "-sm3",
        "-sigopt",
        DISTID,
        "-vfyopt",
        DISTID,
        "-days",
        "10",
        "-extfile",
        "ext.cnf",
        cwd=tmp_path,
    )
    leaf = load_certificate((tmp_path / "leaf.pem").read_bytes())
    assert leaf.authority_key_id == root.subject_key_id
    assert verify_chain(leaf, [], [root], required_usage=DS).trust_anchor == root

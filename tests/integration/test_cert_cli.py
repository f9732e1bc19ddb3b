"""``certledger cert issue|verify|show`` as a process: files in, files and exit codes out."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from nodes.cli import cli
from signing.sm2 import SM2PrivateKey
from signing.x509 import KeyUsage, Role, load_certificate, verify_chain

CERTLEDGER = Path(sys.executable).parent / "certledger"
OPENSSL = shutil.which("openssl")
DISTID = "distid:1234567812345678"

ROOT_CODE = "914403001922038216"
AGENCY_CODE = "91350100M000100Y43"


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The real ``certledger`` root command, in process (a fresh interpreter per call costs ~2 s)."""
    runner = CliRunner()
    previous = Path.cwd()
    os.chdir(cwd)
    try:
        result = runner.invoke(
            cli,
            list(args),
            prog_name="certledger",
            env={"CERTLEDGER_PASSPHRASE": None, "CERTLEDGER_DEBUG": None},
        )
    finally:
        os.chdir(previous)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return subprocess.CompletedProcess(list(args), result.exit_code, result.stdout, result.stderr)


def run_process(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The installed ``certledger`` executable as a separate process."""
    env = {k: v for k, v in os.environ.items() if k not in ("CERTLEDGER_PASSPHRASE", "CERTLEDGER_DEBUG")}
    return subprocess.run(
        [str(CERTLEDGER), *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=120, check=False
    )


def ok(cwd: Path, *args: str) -> str:
    proc = run(cwd, *args)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def fails(cwd: Path, code: int, reason: str, *args: str) -> str:
    proc = run(cwd, *args)
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("certledger: error:"), proc.stderr
    assert f"[{reason}]" in lines[0]
    assert "Traceback" not in proc.stderr
    return lines[0]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Keys made by ``certledger keygen``, and a root, an agency, a node, a sub-CA and its node."""
    d = tmp_path_factory.mktemp("pki")
    (d / "pw").write_text("correct horse\n")
    for name in ("root", "agency", "node", "subca", "subnode"):
        ok(d, "keygen", "--out", f"{name}.key", "--passphrase-file", "pw")
    ok(
        d,
        "cert",
        "issue",
        "--role",
        "root",
        "--self-signed",
        "--key",
        "root.key",
        "--passphrase-file",
        "pw",
        "--org",
        "广东省政务服务数据管理局",
        "--credit-code",
        ROOT_CODE,
        "--cn",
        "广东省电子证照根CA",
        "--province",
        "广东省",
        "--days",
        "3650",
        "--out",
        "root.pem",
    )
    ok(
        d,
        "cert",
        "issue",
        "--role",
        "agency",
        "--ca-cert",
        "root.pem",
        "--ca-key",
        "root.key",
        "--passphrase-file",
        "pw",
        "--key",
        "agency.key.pub.pem",
        "--org",
        "深圳市市场监督管理局",
        "--credit-code",
        AGENCY_CODE,
        "--cn",
        "深圳市市场监督管理局 签章",
        "--locality",
        "深圳市",
        "--eku",
        "documentSigning",
        "--days",
        "730",
        "--out",
        "agency.pem",
    )
    # the subject key given as its (encrypted) private key this time
    ok(
        d,
        "cert",
        "issue",
        "--role",
        "node",
        "--ca-cert",
        "root.pem",
        "--ca-key",
        "root.key",
        "--passphrase-file",
        "pw",
        "--key",
        "node.key",
        "--key-passphrase-file",
        "pw",
        "--org",
        "广东省政务服务数据管理局",
        "--cn",
        "node-1.gd",
        "--out",
        "node.pem",
    )
    ok(
        d,
        "cert",
        "issue",
        "--role",
        "ca",
        "--ca-cert",
        "root.pem",
        "--ca-key",
        "root.key",
        "--passphrase-file",
        "pw",
        "--key",
        "subca.key.pub.pem",
        "--org",
        "深圳市政务服务数据管理局",
        "--cn",
        "深圳市子CA",
        "--days",
        "1825",
        "--out",
        "subca.pem",
    )
    ok(
        d,
        "cert",
        "issue",
        "--role",
        "node",
        "--ca-cert",
        "subca.pem",
        "--ca-key",
        "subca.key",
        "--passphrase-file",
        "pw",
        "--key",
        "subnode.key.pub.pem",
        "--org",
        "深圳市",
        "--cn",
        "node-sz-1",
        "--out",
        "subnode.pem",
    )
    return d


def test_issue_writes_the_profile(pki: Path) -> None:
    root = load_certificate((pki / "root.pem").read_bytes())
    agency = load_certificate((pki / "agency.pem").read_bytes())
    node = load_certificate((pki / "node.pem").read_bytes())
    assert (root.role, agency.role, node.role) == (Role.ROOT, Role.AGENCY, Role.NODE)
    assert agency.subject.credit_code == AGENCY_CODE
    assert agency.subject.locality == "深圳市"
    assert agency.extended_key_usage == ("1.3.6.1.5.5.7.3.36",)
    assert node.subject.common_name == "node-1.gd"
    node_key = SM2PrivateKey.load(pki / "node.key", b"correct horse")
    assert node.public_key == node_key.public_key
    verify_chain(agency, [], [root], required_usage=KeyUsage.NON_REPUDIATION, required_role=Role.AGENCY)


def test_show(pki: Path) -> None:
    data = json.loads(ok(pki, "cert", "show", "agency.pem", "--json"))
    assert data["role"] == "agency"
    assert data["subject"]["credit_code"] == AGENCY_CODE
    assert data["subject"]["organization"] == "深圳市市场监督管理局"
    assert data["key_usage"] == ["digitalSignature", "nonRepudiation"]
    assert data["issuer"]["credit_code"] == ROOT_CODE
    root = json.loads(ok(pki, "cert", "show", "root.pem", "--json"))
    assert data["authority_key_id"] == root["subject_key_id"]
    assert root["is_ca"] is True and root["role"] == "root"
    text = ok(pki, "cert", "show", "node.pem")
    assert "role:               node" in text and "CN=node-1.gd" in text


def test_verify(pki: Path) -> None:
    out = ok(
        pki,
        "cert",
        "verify",
        "agency.pem",
        "--ca",
        "root.pem",
        "--usage",
        "nonRepudiation",
        "--role",
        "agency",
        "--eku",
        "documentSigning",
    )
    assert out.startswith("OK: ") and "(agency)" in out
    data = json.loads(ok(pki, "cert", "verify", "node.pem", "--ca", "root.pem", "--json"))
    assert data["valid"] is True and data["role"] == "node" and len(data["chain"]) == 2
    deep = json.loads(
        ok(pki, "cert", "verify", "subnode.pem", "--ca", "root.pem", "--untrusted", "subca.pem", "--json")
    )
    assert len(deep["chain"]) == 3
    # intermediates may also travel in the same file as the leaf
    (pki / "bundle.pem").write_bytes((pki / "subnode.pem").read_bytes() + (pki / "subca.pem").read_bytes())
    ok(pki, "cert", "verify", "bundle.pem", "--ca", "root.pem")


def test_verify_failures(pki: Path, tmp_path: Path) -> None:
    line = fails(
        pki, 3, "cert.expired", "cert", "verify", "agency.pem", "--ca", "root.pem", "--at", "2040-01-01T00:00:00+08:00"
    )
    assert "expired" in line
    fails(pki, 3, "cert.not_yet_valid", "cert", "verify", "agency.pem", "--ca", "root.pem", "--at", "2001-01-01")
    fails(pki, 3, "cert.untrusted", "cert", "verify", "subnode.pem", "--ca", "root.pem")
    fails(pki, 3, "cert.untrusted", "cert", "verify", "agency.pem", "--ca", "subca.pem")
    fails(pki, 3, "cert.key_usage", "cert", "verify", "node.pem", "--ca", "root.pem", "--usage", "nonRepudiation")
    fails(pki, 3, "cert.role", "cert", "verify", "node.pem", "--ca", "root.pem", "--role", "agency")
    fails(pki, 3, "cert.not_ca", "cert", "verify", "node.pem", "--ca", "node.pem")
    # a flipped byte inside the signed part
    data = bytearray(load_certificate((pki / "agency.pem").read_bytes()).der)
    pos = data.index("签章".encode())
    data[pos] ^= 0x01
    (tmp_path / "tampered.der").write_bytes(bytes(data))
    fails(pki, 3, "cert.signature", "cert", "verify", str(tmp_path / "tampered.der"), "--ca", "root.pem")
    # --json turns a failed verification into a JSON verdict, with the same exit code
    proc = run(pki, "cert", "verify", "agency.pem", "--ca", "root.pem", "--at", "2040-01-01", "--json")
    assert proc.returncode == 3
    verdict = json.loads(proc.stdout)
    assert verdict["valid"] is False and verdict["reason"] == "cert.expired"


def test_input_errors(pki: Path, tmp_path: Path) -> None:
    (tmp_path / "garbage.pem").write_bytes(b"\x30\x82\x01\x00garbage")
    fails(pki, 2, "cert.malformed", "cert", "show", str(tmp_path / "garbage.pem"))
    fails(pki, 2, "cert.malformed", "cert", "show", "pw")
    (tmp_path / "truncated.pem").write_bytes((pki / "agency.pem").read_bytes()[:300])
    fails(pki, 2, "cert.malformed", "cert", "show", str(tmp_path / "truncated.pem"))
    fails(
        pki,
        2,
        "cert.credit_code",
        "cert",
        "issue",
        "--role",
        "agency",
        "--ca-cert",
        "root.pem",
        "--ca-key",
        "root.key",
        "--passphrase-file",
        "pw",
        "--key",
        "agency.key.pub.pem",
        "--org",
        "x",
        "--credit-code",
        "91350100M000100Y44",
        "--cn",
        "y",
        "--out",
        str(tmp_path / "x.pem"),
    )
    fails(
        pki,
        2,
        "cert.profile",
        "cert",
        "issue",
        "--role",
        "agency",
        "--ca-cert",
        "root.pem",
        "--ca-key",
        "root.key",
        "--passphrase-file",
        "pw",
        "--key",
        "agency.key.pub.pem",
        "--org",
        "x",
        "--cn",
        "y",
        "--out",
        str(tmp_path / "x.pem"),
    )
    fails(
        pki,
        2,
        "cert.not_ca",
        "cert",
        "issue",
        "--role",
        "node",
        "--ca-cert",
        "node.pem",
        "--ca-key",
        "node.key",
        "--passphrase-file",
        "pw",
        "--key",
        "agency.key.pub.pem",
        "--org",
        "x",
        "--cn",
        "y",
        "--out",
        str(tmp_path / "x.pem"),
    )
    fails(
        pki,
        2,
        "cert.issuer_key_mismatch",
        "cert",
        "issue",
        "--role",
        "node",
        "--ca-cert",
        "root.pem",
        "--ca-key",
        "subca.key",
        "--passphrase-file",
        "pw",
        "--key",
        "agency.key.pub.pem",
        "--org",
        "x",
        "--cn",
        "y",
        "--out",
        str(tmp_path / "x.pem"),
    )
    fails(
        pki,
        2,
        "input.invalid",
        "cert",
        "issue",
        "--role",
        "node",
        "--key",
        "agency.key.pub.pem",
        "--org",
        "x",
        "--cn",
        "y",
        "--out",
        str(tmp_path / "x.pem"),
    )
    fails(
        pki,
        2,
        "input.invalid",
        "cert",
        "issue",
        "--role",
        "node",
        "--ca-cert",
        "root.pem",
        "--ca-key",
        "root.key",
        "--passphrase-file",
        "pw",
        "--key",
        "agency.key.pub.pem",
        "--org",
        "x",
        "--cn",
        "y",
        "--out",
        "root.pem",
    )
    # wrong passphrase for the CA key
    (tmp_path / "wrong").write_text("nope\n")
    fails(
        pki,
        3,
        "key.passphrase",
        "cert",
        "issue",
        "--role",
        "node",
        "--ca-cert",
        "root.pem",
        "--ca-key",
        "root.key",
        "--passphrase-file",
        str(tmp_path / "wrong"),
        "--key",
        "agency.key.pub.pem",
        "--org",
        "x",
        "--cn",
        "y",
        "--out",
        str(tmp_path / "x.pem"),
    )
    assert not (tmp_path / "x.pem").exists()


def test_as_a_process(pki: Path) -> None:
    """Exit codes and the one-line error as a shell sees them."""
    for cmd in (["cert"], ["cert", "issue"], ["cert", "verify"], ["cert", "show"]):
        assert "Usage:" in run(Path.cwd(), *cmd, "--help").stdout
    proc = run_process(pki, "cert", "verify", "agency.pem", "--ca", "root.pem")
    assert proc.returncode == 0 and proc.stdout.startswith("OK: ")
    proc = run_process(pki, "cert", "verify", "agency.pem", "--ca", "root.pem", "--at", "2040-01-01")
    assert proc.returncode == 3
    assert proc.stderr.count("\n") == 1 and proc.stderr.endswith("[cert.expired]\n")


@pytest.mark.interop
@pytest.mark.skipif(OPENSSL is None, reason="openssl CLI not installed")
def test_openssl_accepts_cli_certificates(pki: Path) -> None:
    assert OPENSSL is not None
    for name in ("root", "agency", "node", "subca", "subnode"):
        text = subprocess.run(
            [OPENSSL, "x509", "-in", f"{name}.pem", "-text", "-noout"],
            cwd=pki,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "SM2-with-SM3" in text and "Version: 3 (0x2)" in text
    for name in ("agency", "node", "subca"):
        out = subprocess.run(
            [OPENSSL, "verify", "-CAfile", "root.pem", "-vfyopt", DISTID, f"{name}.pem"],
            cwd=pki,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert out.strip() == f"{name}.pem: OK"
    out = subprocess.run(
        [OPENSSL, "verify", "-CAfile", "subca.pem", "-partial_chain", "-vfyopt", DISTID, "subnode.pem"],
        cwd=pki,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip() == "subnode.pem: OK"
    # the CLI's private keys are ones OpenSSL can use: sign a CSR-less leaf through our root key
    key = subprocess.run(
        [OPENSSL, "pkey", "-in", "root.key", "-passin", "file:pw", "-noout"],
        cwd=pki,
        capture_output=True,
        text=True,
        check=False,
    )
    assert key.returncode == 0, key.stderr

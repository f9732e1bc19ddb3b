"""``certledger keygen | sm3 | sign | verify-sig`` through the installed console script.

Every failure must be ONE line on stderr ending in the error's reason code, with the
exit code of its family (2 invalid input, 3 verification failure) and no traceback.
Independent invocations run concurrently: starting the interpreter dominates each.
"""

from __future__ import annotations

import base64
import json
import os
import stat
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from signing import der
from signing.sm2 import (
    SM2PrivateKey,
    SM2PublicKey,
    curve,
    decode_der,
    encode_der,
    encoding,
    load_public_key,
    raw_to_der,
)

RunCli = Callable[..., Any]
MESSAGE = "营业执照 91110000MA01ABCD1X, issued 2024-05-01\n".encode()
EXIT_INPUT, EXIT_VERIFY = 2, 3


def _parallel(run_cli: RunCli, calls: list[tuple[tuple[Any, ...], dict[str, Any]]]) -> list[Any]:
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda c: run_cli(*c[0], **c[1]), calls))


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory, sm2_key_files: Any) -> Path:
    d = tmp_path_factory.mktemp("cli")
    (d / "msg.txt").write_bytes(MESSAGE)
    (d / "tampered.txt").write_bytes(MESSAGE.replace(b"2024", b"2025"))
    return d


# -- help ---------------------------------------------------------------------------------


def test_help_of_signing_commands(run_cli: RunCli) -> None:
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = [(("--help",), {})]
    calls += [((cmd, "--help"), {}) for cmd in ("keygen", "sm3", "sign", "verify-sig")]
    for (args, _), result in zip(calls, _parallel(run_cli, calls), strict=True):
        assert result.rc == 0, (args, result.stderr)
        assert result.text.startswith("Usage: certledger"), args
        assert result.stderr == ""


def _all_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    # list_commands/get_command, not .commands: the root group loads its modules lazily
    ctx = click.Context(group)
    out = []
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        assert cmd is not None, name
        out.append((*prefix, name))
        if isinstance(cmd, click.Group):
            out += _all_commands(cmd, (*prefix, name))
    return out


def test_help_of_every_registered_command() -> None:
    # in-process for speed: every command of every family answers --help with exit 0
    from nodes.cli import cli

    runner = CliRunner()
    commands = _all_commands(cli)
    assert {("keygen",), ("sm3",), ("sign",), ("verify-sig",)} <= set(commands)
    for path in commands:
        result = runner.invoke(cli, [*path, "--help"], prog_name="certledger")
        assert result.exit_code == 0, (path, result.output)
        assert "Usage:" in result.output, path


# -- keygen -------------------------------------------------------------------------------


def test_keygen(run_cli: RunCli, tmp_path: Path, sm2_key_files: Any) -> None:
    pf = sm2_key_files.passphrase_file
    env_pass = {"CERTLEDGER_PASSPHRASE": "from the environment"}
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
        (("keygen", "--out", tmp_path / "a.pem", "--passphrase-file", pf, "--json"), {}),
        (("keygen", "--out", tmp_path / "b.pem", "--pub", tmp_path / "b-public.pem", "--json"), {"env": env_pass}),
        (("keygen", "--out", tmp_path / "c.pem", "--no-encrypt"), {}),
        (("keygen", "--out", tmp_path / "d.pem"), {}),  # no passphrase anywhere
    ]
    a, b, c, d = _parallel(run_cli, calls)

    assert a.rc == 0, a.stderr
    info = a.json
    assert info["encrypted"] is True
    assert info["private_key"] == str(tmp_path / "a.pem")
    assert info["public_key"] == str(tmp_path / "a.pub.pem")
    pub = load_public_key((tmp_path / "a.pub.pem").read_bytes())
    assert info["key_id"] == pub.key_id
    pem = (tmp_path / "a.pem").read_bytes()
    assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert SM2PrivateKey.from_pem(pem, sm2_key_files.passphrase).public_key == pub
    assert stat.S_IMODE(os.stat(tmp_path / "a.pem").st_mode) == 0o600

    assert b.rc == 0, b.stderr
    assert b.json["public_key"] == str(tmp_path / "b-public.pem")
    key_b = SM2PrivateKey.from_pem((tmp_path / "b.pem").read_bytes(), b"from the environment")
    assert key_b.public_key == load_public_key((tmp_path / "b-public.pem").read_bytes())

    assert c.rc == 0, c.stderr
    assert "encrypted: False" in c.text
    assert (tmp_path / "c.pem").read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")

    d.assert_error("input.invalid", EXIT_INPUT)
    assert "passphrase is required" in d.stderr
    assert not (tmp_path / "d.pem").exists()

    again = run_cli("keygen", "--out", tmp_path / "a.pem", "--no-encrypt")
    again.assert_error("input.invalid", EXIT_INPUT)
    assert "refusing to overwrite" in again.stderr
    assert (tmp_path / "a.pem").read_bytes() == pem  # untouched


def test_keygen_never_overwrites_or_half_writes(run_cli: RunCli, tmp_path: Path) -> None:
    victim = tmp_path / "victim.pem"
    made = run_cli("keygen", "--out", victim, "--no-encrypt")
    assert made.rc == 0, made.stderr
    private = victim.read_bytes()
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
        # the public key aimed at an existing private key
        (("keygen", "--out", tmp_path / "new.pem", "--pub", victim, "--no-encrypt"), {}),
        # both halves into one file: the private key would be lost
        (("keygen", "--out", tmp_path / "same.pem", "--pub", tmp_path / "same.pem", "--no-encrypt"), {}),
        # the public key cannot be written: no private key without its public half
        (("keygen", "--out", tmp_path / "lone.pem", "--pub", tmp_path / "no" / "such" / "dir.pem", "--no-encrypt"), {}),
    ]
    onto, same, lone = _parallel(run_cli, calls)
    onto.assert_error("input.invalid", EXIT_INPUT)
    assert "refusing to overwrite" in onto.stderr
    assert victim.read_bytes() == private and not (tmp_path / "new.pem").exists()
    same.assert_error("input.invalid", EXIT_INPUT)
    assert not (tmp_path / "same.pem").exists()
    assert lone.rc != 0 and "Traceback" not in lone.stderr and len(lone.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "lone.pem").exists()
    # and the retry once the directory exists works (nothing half-made blocks it)
    (tmp_path / "no" / "such").mkdir(parents=True)
    retry = run_cli(
        "keygen", "--out", tmp_path / "lone.pem", "--pub", tmp_path / "no" / "such" / "dir.pem", "--no-encrypt"
    )
    assert retry.rc == 0, retry.stderr


# -- sm3 ----------------------------------------------------------------------------------


def test_sm3(run_cli: RunCli, tmp_path: Path) -> None:
    (tmp_path / "abc").write_bytes(b"abc")
    (tmp_path / "abcd16").write_bytes(b"abcd" * 16)
    big = os.urandom(3 * (1 << 20) + 7)  # spans several 1 MiB read chunks
    (tmp_path / "big").write_bytes(big)
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
        (("sm3", tmp_path / "abc"), {}),
        (("sm3", "--json", tmp_path / "abc", tmp_path / "abcd16", tmp_path / "big"), {}),
        (("sm3",), {"input": b"abc"}),
        (("sm3", tmp_path / "missing"), {}),
    ]
    one, many, stdin, missing = _parallel(run_cli, calls)
    abc = "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
    assert one.rc == 0 and one.text == f"{abc}  {tmp_path / 'abc'}\n"
    assert many.rc == 0
    from signing.sm3 import sm3

    assert many.json == {
        str(tmp_path / "abc"): abc,
        str(tmp_path / "abcd16"): "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732",
        str(tmp_path / "big"): sm3(big).hex(),
    }
    assert stdin.rc == 0 and stdin.text == f"{abc}  -\n"
    missing.assert_error("io", EXIT_INPUT)


# -- sign / verify-sig --------------------------------------------------------------------


def test_sign_and_verify_in_every_format(run_cli: RunCli, work: Path, sm2_key_files: Any) -> None:
    kf = sm2_key_files
    msg = work / "msg.txt"
    key_args = ("--key", kf.private_pem, "--passphrase-file", kf.passphrase_file)
    sign_calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
        (("sign", *key_args, "--format", "der", msg), {}),
        (("sign", *key_args, "--format", "raw", "--id", "agency-110000", msg), {}),
        (("sign", *key_args, "--format", "base64", "--id", "北京市市场监督管理局", "--backend", "reference", msg), {}),
        (("sign", *key_args, "--out", work / "stdin.sig", "-"), {"input": MESSAGE}),
        (("sign", "--key", kf.plain_private_pem, "--format", "der", "--backend", "libcrypto", msg), {}),
        (
            ("sign", "--key", kf.private_pem, "--id", "\udcff\udcfe", msg),  # not UTF-8: raw bytes
            {"env": {"CERTLEDGER_PASSPHRASE": kf.passphrase.decode()}},
        ),
    ]
    der_r, raw_r, b64_r, stdin_r, plain_r, bytes_id_r = _parallel(run_cli, sign_calls)
    for r in (der_r, raw_r, b64_r, stdin_r, plain_r, bytes_id_r):
        assert r.rc == 0 and r.stderr == "", r.stderr

    pub = kf.key.public_key
    # what the CLI wrote, checked with the library
    decode_der(der_r.stdout)
    pub.verify(der_r.stdout, MESSAGE)
    assert len(raw_r.stdout) == 64
    pub.verify_raw(raw_r.stdout, MESSAGE, signer_id=b"agency-110000")
    assert b64_r.stdout.endswith(b"\n")
    b64_sig = base64.b64decode(b64_r.stdout.strip(), validate=True)
    pub.verify(b64_sig, MESSAGE, signer_id="北京市市场监督管理局".encode())
    assert stdin_r.stdout == b""
    pub.verify((work / "stdin.sig").read_bytes(), MESSAGE)
    pub.verify(plain_r.stdout, MESSAGE)
    pub.verify(bytes_id_r.stdout, MESSAGE, signer_id=b"\xff\xfe")

    sigs = {name: work / f"{name}.sig" for name in ("der", "raw", "base64", "bytes-id")}
    sigs["der"].write_bytes(der_r.stdout)
    sigs["raw"].write_bytes(raw_r.stdout)
    sigs["base64"].write_bytes(b64_r.stdout)
    sigs["bytes-id"].write_bytes(bytes_id_r.stdout)
    pub_args = ("--pub", kf.public_pem)
    verify_calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
        (("verify-sig", *pub_args, "--sig", sigs["der"], msg), {}),
        (("verify-sig", *pub_args, "--sig", sigs["der"], "--json", "--backend", "reference", msg), {}),
        (
            ("verify-sig", *pub_args, "--sig", sigs["raw"], "--format", "raw", "--id", "agency-110000", "--json", msg),
            {},
        ),
        (
            (
                "verify-sig",
                *pub_args,
                "--sig",
                sigs["base64"],
                "--format",
                "base64",
                "--id",
                "北京市市场监督管理局",
                msg,
            ),
            {},
        ),
        (("verify-sig", *pub_args, "--sig", work / "stdin.sig", "-"), {"input": MESSAGE}),
        (("verify-sig", *pub_args, "--sig", sigs["bytes-id"], "--id", "\udcff\udcfe", msg), {}),
        # the public key as DER works too
        (("verify-sig", "--pub", _write(work / "pub.der", pub.to_der()), "--sig", sigs["der"], msg), {}),
    ]
    results = _parallel(run_cli, verify_calls)
    for (args, _), r in zip(verify_calls, results, strict=True):
        assert r.rc == 0, (args, r.stderr)
        assert r.stderr == ""
    plain, as_json, raw_json = results[0], results[1], results[2]
    assert plain.text == f"signature valid (key {pub.key_id[:16]}…)\n"
    assert as_json.json == {"valid": True, "key_id": pub.key_id}
    assert raw_json.json == {"valid": True, "key_id": pub.key_id}


def test_sign_json_carries_the_signature(run_cli: RunCli, work: Path, sm2_key_files: Any) -> None:
    kf = sm2_key_files
    msg = work / "msg.txt"
    key_args = ("--key", kf.private_pem, "--passphrase-file", kf.passphrase_file)
    to_stdout, to_file = _parallel(
        run_cli,
        [
            (("sign", *key_args, "--id", "agency-110000", "--json", msg), {}),
            (("sign", *key_args, "--format", "raw", "--out", work / "j.sig", "--json", msg), {}),
        ],
    )
    pub = kf.key.public_key
    got = to_stdout.json
    assert (got["key_id"], got["signer_id"], got["format"], got["out"]) == (pub.key_id, "agency-110000", "der", None)
    pub.verify(base64.b64decode(got["signature_der_base64"], validate=True), MESSAGE, signer_id=b"agency-110000")
    written = to_file.json
    assert written["out"] == str(work / "j.sig") and written["format"] == "raw"
    raw = (work / "j.sig").read_bytes()
    assert len(raw) == 64 and raw_to_der(raw) == base64.b64decode(written["signature_der_base64"])
    pub.verify_raw(raw, MESSAGE)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# -- failures: one line, reason code, family exit code ------------------------------------


@dataclass
class Case:
    args: tuple[Any, ...]
    reason: str
    rc: int
    kwargs: dict[str, Any] = field(default_factory=dict)
    says: str = ""


def _spki(point: bytes) -> bytes:
    alg = der.sequence(der.oid(encoding.OID_EC_PUBLIC_KEY), der.oid(encoding.OID_SM2_CURVE))
    return der.sequence(alg, der.bit_string(point))


def _build_cases(work: Path, kf: Any) -> dict[str, Case]:
    key = kf.key
    good = key.sign(MESSAGE, signer_id=b"agency-a")
    r, s = decode_der(good)
    n = curve.N

    def sig_file(name: str, data: bytes) -> Path:
        return _write(work / f"bad-{name}", data)

    r32, s32 = r.to_bytes(32, "big"), s.to_bytes(32, "big")
    off = (key.public_key.x, (key.public_key.y + 1) % curve.P)
    off_point = b"\x04" + off[0].to_bytes(32, "big") + off[1].to_bytes(32, "big")
    files = {
        "good": sig_file("good", good),
        "r0-raw": sig_file("r0-raw", bytes(32) + s32),
        "sn-raw": sig_file("sn-raw", r32 + n.to_bytes(32, "big")),
        "r0-der": sig_file("r0-der", der.sequence(der.integer(0), der.integer(s))),
        "truncated": sig_file("truncated", good[:-1]),
        # a short SEQUENCE plus one byte: `good + 0x00` would be 73 bytes whenever `good` has the
        # maximum length (72), and the length check would then answer before the trailing-data one
        "padded": sig_file("padded", der.sequence(der.integer(r >> 64), der.integer(s >> 64)) + b"\x00"),
        "non-minimal": sig_file("non-minimal", der.sequence(der.tlv(der.TAG_INTEGER, b"\x00\x01"), der.integer(s))),
        "short-raw": sig_file("short-raw", r32 + s32[:-1]),
        "bad-base64": sig_file("bad-base64", b"MEUCIQ*notbase64*\n"),
        "off-curve.pem": _write(work / "off-curve.pem", encoding.pem_encode("PUBLIC KEY", _spki(off_point))),
        "infinity.pem": _write(work / "infinity.pem", encoding.pem_encode("PUBLIC KEY", _spki(b"\x00"))),
        "garbage.pem": _write(work / "garbage.pem", b"this is not a key\n"),
        "wrong-pass": _write(work / "wrong-pass.txt", b"not the passphrase\n"),
    }
    msg, tampered = work / "msg.txt", work / "tampered.txt"
    pub = ("--pub", kf.public_pem)
    ida = ("--id", "agency-a")

    def verify(sig: str, *extra: Any, pub_args: tuple[Any, ...] = pub, message: Path = msg) -> tuple[Any, ...]:
        return ("verify-sig", *pub_args, "--sig", files[sig], *extra, message)

    sign_with = ("sign", "--key", kf.private_pem)
    return {
        "control: valid signature": Case(verify("good", *ida), "", 0),
        "wrong ID": Case(verify("good", "--id", "agency-b"), "sig.invalid", EXIT_VERIFY, says="does not verify"),
        "default ID instead of the signer's": Case(verify("good"), "sig.invalid", EXIT_VERIFY),
        "empty ID (verify)": Case(verify("good", "--id", ""), "sig.signer_id", EXIT_INPUT, says="must not be empty"),
        "empty ID (sign)": Case(
            (*sign_with, "--passphrase-file", kf.passphrase_file, "--id", "", msg), "sig.signer_id", EXIT_INPUT
        ),
        "tampered message": Case(verify("good", *ida, message=tampered), "sig.invalid", EXIT_VERIFY),
        "r = 0 (raw)": Case(verify("r0-raw", *ida, "--format", "raw"), "sig.range", EXIT_VERIFY, says="[1, n-1]"),
        "s = n (raw)": Case(verify("sn-raw", *ida, "--format", "raw"), "sig.range", EXIT_VERIFY),
        "r = 0 (DER)": Case(verify("r0-der", *ida), "sig.range", EXIT_VERIFY),
        "truncated DER": Case(verify("truncated", *ida), "sig.malformed", EXIT_INPUT, says="truncated"),
        "padded DER": Case(verify("padded", *ida), "sig.malformed", EXIT_INPUT, says="trailing"),
        "non-minimal DER INTEGER": Case(verify("non-minimal", *ida), "sig.malformed", EXIT_INPUT, says="non-minimal"),
        "DER given as raw": Case(verify("good", *ida, "--format", "raw"), "sig.malformed", EXIT_INPUT),
        "short raw": Case(verify("short-raw", *ida, "--format", "raw"), "sig.malformed", EXIT_INPUT),
        "invalid base64": Case(verify("bad-base64", *ida, "--format", "base64"), "input.invalid", EXIT_INPUT),
        "off-curve public key": Case(
            verify("good", *ida, pub_args=("--pub", files["off-curve.pem"])),
            "key.off_curve",
            EXIT_VERIFY,
            says="not on the curve",
        ),
        "point at infinity": Case(
            verify("good", *ida, pub_args=("--pub", files["infinity.pem"])),
            "key.infinity",
            EXIT_VERIFY,
            says="infinity",
        ),
        "not a key at all": Case(
            verify("good", *ida, pub_args=("--pub", files["garbage.pem"])), "der.truncated", EXIT_INPUT
        ),
        "wrong passphrase": Case(
            (*sign_with, "--passphrase-file", files["wrong-pass"], msg),
            "key.passphrase",
            EXIT_VERIFY,
            says="wrong passphrase",
        ),
        "wrong passphrase (env)": Case(
            (*sign_with, msg), "key.passphrase", EXIT_VERIFY, kwargs={"env": {"CERTLEDGER_PASSPHRASE": "nope"}}
        ),
        "missing passphrase": Case((*sign_with, msg), "key.passphrase", EXIT_INPUT, says="passphrase is required"),
        "public key given as private key": Case(("sign", "--key", kf.public_pem, msg), "key.malformed", EXIT_INPUT),
        "missing message file": Case(verify("good", *ida, message=work / "nope.txt"), "io", EXIT_INPUT),
    }


@pytest.fixture(scope="module")
def failure_results(run_cli: RunCli, work: Path, sm2_key_files: Any) -> dict[str, tuple[Case, Any]]:
    cases = _build_cases(work, sm2_key_files)
    results = _parallel(run_cli, [(c.args, c.kwargs) for c in cases.values()])
    return {name: (case, result) for (name, case), result in zip(cases.items(), results, strict=True)}


FAILURE_NAMES = [
    "control: valid signature",
    "wrong ID",
    "default ID instead of the signer's",
    "empty ID (verify)",
    "empty ID (sign)",
    "tampered message",
    "r = 0 (raw)",
    "s = n (raw)",
    "r = 0 (DER)",
    "truncated DER",
    "padded DER",
    "non-minimal DER INTEGER",
    "DER given as raw",
    "short raw",
    "invalid base64",
    "off-curve public key",
    "point at infinity",
    "not a key at all",
    "wrong passphrase",
    "wrong passphrase (env)",
    "missing passphrase",
    "public key given as private key",
    "missing message file",
]


@pytest.mark.parametrize("name", FAILURE_NAMES)
def test_failure_is_one_line_with_reason(name: str, failure_results: dict[str, tuple[Case, Any]]) -> None:
    assert set(failure_results) == set(FAILURE_NAMES)
    case, result = failure_results[name]
    if case.rc == 0:  # the control shows the files themselves are fine
        assert result.rc == 0, result.stderr
        return
    result.assert_error(case.reason, case.rc)
    assert case.says in result.stderr, result.stderr


def test_p256_key_where_sm2_is_expected(run_cli: RunCli, openssl: Any, tmp_path: Path) -> None:
    # made by `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`
    priv, pub = tmp_path / "p256.pem", tmp_path / "p256.pub.pem"
    out = openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", priv)
    assert out.returncode == 0, out.stderr
    out = openssl("pkey", "-in", priv, "-pubout", "-out", pub)
    assert out.returncode == 0, out.stderr
    (tmp_path / "m").write_bytes(b"m")
    (tmp_path / "s").write_bytes(encode_der(1, 1))
    sign_r, verify_r = _parallel(
        run_cli,
        [
            (("sign", "--key", priv, tmp_path / "m"), {}),
            (("verify-sig", "--pub", pub, "--sig", tmp_path / "s", tmp_path / "m"), {}),
        ],
    )
    for result in (sign_r, verify_r):
        result.assert_error("key.not_sm2", EXIT_INPUT)
        assert "P-256" in result.stderr and "not SM2" in result.stderr


def test_cli_keys_and_signatures_work_with_the_library(run_cli: RunCli, tmp_path: Path) -> None:
    # a key made by keygen signs through the library; a library signature verifies in the CLI
    result = run_cli("keygen", "--out", tmp_path / "k.pem", "--no-encrypt", "--json")
    assert result.rc == 0, result.stderr
    key = SM2PrivateKey.from_pem((tmp_path / "k.pem").read_bytes())
    assert SM2PublicKey.from_pem((tmp_path / "k.pub.pem").read_bytes()) == key.public_key
    (tmp_path / "m").write_bytes(b"")  # the empty message
    (tmp_path / "s").write_bytes(key.sign(b"", signer_id=b"x"))
    ok = run_cli(
        "verify-sig", "--pub", tmp_path / "k.pub.pem", "--sig", tmp_path / "s", "--id", "x", "--json", tmp_path / "m"
    )
    assert ok.rc == 0, ok.stderr
    assert json.loads(ok.stdout)["key_id"] == key.public_key.key_id


def test_verify_sig_takes_the_key_from_a_certificate(run_cli: RunCli, tmp_path: Path) -> None:
    # `--pub` accepts a PEM certificate: the signer's key is taken from it
    from signing.x509 import DistinguishedName, Validity, issue_root_certificate

    key = SM2PrivateKey.generate()
    cert = issue_root_certificate(
        DistinguishedName(common_name="测试根 CA", organization="测试省", country="CN"), key, Validity.for_days(30)
    )
    (tmp_path / "cert.pem").write_bytes(cert.to_pem())
    (tmp_path / "m").write_bytes(MESSAGE)
    (tmp_path / "s").write_bytes(key.sign(MESSAGE))
    (tmp_path / "other.s").write_bytes(SM2PrivateKey.generate().sign(MESSAGE))
    ok, bad = _parallel(
        run_cli,
        [
            (("verify-sig", "--pub", tmp_path / "cert.pem", "--sig", tmp_path / "s", "--json", tmp_path / "m"), {}),
            (("verify-sig", "--pub", tmp_path / "cert.pem", "--sig", tmp_path / "other.s", tmp_path / "m"), {}),
        ],
    )
    assert ok.rc == 0, ok.stderr
    assert ok.json == {"valid": True, "key_id": key.public_key.key_id}
    bad.assert_error("sig.invalid", EXIT_VERIFY)

"""``certledger convert IN OUT``: through a real process, as a person or a script runs it."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import pypdf
import pytest

from cert_formats.convert import PROOF_BUNDLE_NAME
from cert_formats.ofd import read_ofd
from cert_formats.pdf_face import render_licence_pdf
from cert_formats.template import builtin_templates
from signing.sm3 import sm3_hex

ROOT = Path(__file__).resolve().parents[2]
CERTLEDGER = ROOT / ".venv" / "bin" / "certledger"


def _registered() -> bool:
    from nodes.cli import COMMANDS

    return "convert" in COMMANDS


def command() -> list[str]:
    """``certledger convert`` once the root group lists it, else the command module itself."""
    if _registered() and CERTLEDGER.exists():
        return [str(CERTLEDGER), "convert"]
    return [sys.executable, "-c", "from nodes.cli.convert_cmd import convert; convert(prog_name='certledger convert')"]


def run(*args: str, cwd: Path, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "CERTLEDGER_DEBUG"}
    return subprocess.run([*command(), *args], cwd=cwd, input=stdin, capture_output=True, timeout=240,
                          env=env, check=False)


@functools.cache
def licence_pdf() -> bytes:
    template = builtin_templates()["vocational_qualification"]
    return render_licence_pdf(template.sample_licence(), template, verify_host="verify.example.cn")


def test_convert_pdf_to_ofd_and_back(tmp_path: Path) -> None:
    (tmp_path / "licence.pdf").write_bytes(licence_pdf())
    first = run("licence.pdf", "licence.ofd", cwd=tmp_path)
    assert first.returncode == 0, first.stderr.decode()
    out = first.stdout.decode()
    assert "UNSEALED COPY" in out and sm3_hex(licence_pdf()) in out
    document = read_ofd((tmp_path / "licence.ofd").read_bytes()).document
    assert "张晓雯" in document.text
    assert document.info.custom["certledger.source_sm3"] == sm3_hex(licence_pdf())

    second = run("licence.ofd", "copy.pdf", "--json", cwd=tmp_path)
    assert second.returncode == 0, second.stderr.decode()
    info = json.loads(second.stdout)
    assert info["source_format"] == "ofd" and info["target_format"] == "pdf"
    assert info["sealed"] is False and info["copy"] == "unsealed"
    assert info["source_sm3"] == sm3_hex((tmp_path / "licence.ofd").read_bytes())
    assert info["pages"] == 1 and info["texts"] > 10 and info["paths"] > 10
    meta = pypdf.PdfReader(tmp_path / "copy.pdf").metadata
    assert meta is not None and meta["/certledger.original_sm3"] == sm3_hex(licence_pdf())
    # nothing else was left behind (no temporary files)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy.pdf", "licence.ofd", "licence.pdf"]


def test_convert_carries_the_proof_bundle(tmp_path: Path) -> None:
    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(__import__("io").BytesIO(licence_pdf())))
    writer.add_attachment(PROOF_BUNDLE_NAME, b'{"proof": "bundle"}')
    with (tmp_path / "in.pdf").open("wb") as fh:
        writer.write(fh)
    result = run("in.pdf", "out.ofd", cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    assert "proof bundle copied: yes" in result.stdout.decode()
    assert read_ofd((tmp_path / "out.ofd").read_bytes()).document.attachment(PROOF_BUNDLE_NAME).data == \
        b'{"proof": "bundle"}'


def test_convert_streams_through_stdin_and_stdout(tmp_path: Path) -> None:
    result = run("-", "-", "--to", "ofd", cwd=tmp_path, stdin=licence_pdf())
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.startswith(b"PK\x03\x04")
    assert "UNSEALED COPY" in result.stderr.decode()
    assert read_ofd(result.stdout).document.pages


@pytest.mark.parametrize(("setup", "args", "reason", "code"), [
    ("text", ("notes.txt", "out.ofd"), "convert.unknown_format", 2),
    ("bad-pdf", ("broken.pdf", "out.ofd"), "convert.malformed_pdf", 2),
    ("bomb", ("bomb.pdf", "out.ofd"), "convert.too_large", 2),
    ("exists", ("licence.pdf", "out.ofd"), "convert.output_exists", 2),
    ("same", ("licence.pdf", "licence.pdf"), "convert.same_file", 2),
    ("pdf", ("licence.pdf", "again.pdf"), "convert.unsupported", 2),
    ("missing", ("nothing.pdf", "out.ofd"), "io", 2),
    # endless input: refused one byte past the limit, never read whole (that was a MemoryError)
    ("endless", ("/dev/zero", "out.ofd"), "convert.too_large", 2),
])
def test_convert_errors_are_one_line(tmp_path: Path, setup: str, args: tuple[str, str], reason: str,
                                     code: int) -> None:
    (tmp_path / "licence.pdf").write_bytes(licence_pdf())
    (tmp_path / "notes.txt").write_text("not a licence\n")
    (tmp_path / "broken.pdf").write_bytes(licence_pdf()[:2000])
    (tmp_path / "bomb.pdf").write_bytes((ROOT / "tests/corpus/pdf/content_stream_bomb.pdf").read_bytes())
    if setup == "exists":
        (tmp_path / "out.ofd").write_bytes(b"keep me")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    result = run(*args, cwd=tmp_path)
    err = result.stderr.decode()
    assert result.returncode == code, err
    assert err.count("\n") == 1 and err.startswith("certledger: error:") and f"[{reason}]" in err, err
    assert "Traceback" not in err
    # a failed conversion writes nothing and changes nothing
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_convert_help_says_it_makes_an_unsealed_copy(tmp_path: Path) -> None:
    result = run("--help", cwd=tmp_path)
    assert result.returncode == 0
    assert "UNSEALED COPY" in result.stdout.decode()


def test_verify_refuses_endless_input_without_reading_it(tmp_path: Path) -> None:
    """`certledger verify /dev/zero` read the whole stream and died of MemoryError (exit 70)."""
    for args in (
        ("keygen", "--out", "root-key.pem", "--no-encrypt"),
        ("cert", "issue", "--role", "root", "--key", "root-key.pem", "--org", "测试", "--cn", "root",
         "--out", "root.pem"),
    ):
        made = subprocess.run([str(CERTLEDGER), *args], cwd=tmp_path, capture_output=True, timeout=120, check=False)
        assert made.returncode == 0, made.stderr
    result = subprocess.run(
        [str(CERTLEDGER), "verify", "/dev/zero", "--roots", "root.pem", "--offline"],
        cwd=tmp_path, capture_output=True, timeout=120, check=False,
    )
    err = result.stderr.decode()
    assert result.returncode == 2, err
    assert err.count("\n") == 1 and "[file.too_large]" in err, err

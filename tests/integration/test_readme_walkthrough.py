"""The README, followed as a new user would: its command blocks run as written.

The ``sh`` blocks of "Using the ledger" and "Licence files (PDF and OFD)" run in one
bash script (``set -euo pipefail``) in an empty directory, with the installed
console script on PATH, exactly as the README has them. Then the "Verification API"
block: ``certledger serve`` in the background on a free loopback port, ``genesis``
and ``remote status`` against it, and the server is stopped. Bad input everywhere
ends in one ``certledger: error: ...`` line, a non-zero exit and no traceback.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import REPO_ROOT, CliResult, RunCli

README = REPO_ROOT / "README.md"
LICENCE_ID = "1.2.156.3005.2.11100000000000001M001.11440300MB2C54301Y.440300000202501150001"
NUMBER = "440300000202501150001"


def _section_blocks(title: str) -> list[str]:
    text = README.read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"README has no section {title!r}"
    blocks = re.findall(r"^```sh\n(.*?)^```", match.group(1), re.M | re.S)
    assert blocks, f"README section {title!r} has no sh block"
    return blocks


def _env(workdir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CERTLEDGER_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["HOME"] = str(workdir)  # nothing the walkthrough writes lands in the real home
    return env


@pytest.fixture(scope="module")
def walked(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """Run the two README sections once, as one shell session."""
    workdir = tmp_path_factory.mktemp("readme")
    script = "set -euo pipefail\nset -x\n" + "\n".join(
        _section_blocks("Using the ledger") + _section_blocks("Licence files (PDF and OFD)")
    )
    proc = subprocess.run(
        ["bash", "-c", script], cwd=workdir, env=_env(workdir), capture_output=True, text=True, timeout=600,
        check=False,
    )
    return workdir, proc


def _node_env(workdir: Path) -> dict[str, str]:
    return {
        "CERTLEDGER_HOME": str(workdir / "mynode"),
        "CERTLEDGER_PASSPHRASE": (workdir / "pass.txt").read_text(),
        "HOME": str(workdir),
    }


def test_readme_ledger_and_licence_blocks_run_as_written(walked: tuple[Path, Any]) -> None:
    workdir, proc = walked
    assert proc.returncode == 0, f"README walkthrough failed:\n{proc.stderr[-4000:]}"
    assert "Traceback" not in proc.stderr
    out = proc.stdout
    assert "accepted issue.rec: entry 2" in out and "accepted revoke.rec: entry 3" in out
    assert "LIC-4403-0001: REVOKED" in out
    assert "audit PASSED" in out
    assert f"ISSUE {LICENCE_ID}.001.O" in out
    assert out.count(f"{NUMBER}.ofd: VALID") == 1 and out.count(f"{NUMBER}.pdf: VALID") == 1
    for name in ("audit.pdf", "genesis.json", "copy.ofd", f"out/{NUMBER}.pdf", f"out/{NUMBER}.ofd", "agency.esl"):
        assert (workdir / name).is_file(), name


def test_readme_converted_copy_is_unsealed(walked: tuple[Path, Any], run_cli: RunCli) -> None:
    workdir, proc = walked
    assert proc.returncode == 0
    result = run_cli("verify", "copy.ofd", "--roots", "province-root.pem", "--json", env=_node_env(workdir),
                     cwd=workdir)  # fmt: skip
    assert result.rc == 1  # as the README says: not "valid", and why
    assert result.json["verdict"] == "forged"
    assert any(c["reason"] == "seal.missing" for c in result.json["checks"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served(walked: tuple[Path, Any]) -> Iterator[tuple[Path, str, subprocess.Popen[bytes]]]:
    workdir, proc = walked
    assert proc.returncode == 0
    port = _free_port()
    script = Path(sys.executable).with_name("certledger")
    env = {**_env(workdir), **_node_env(workdir)}
    server = subprocess.Popen([str(script), "serve", "--port", str(port)], cwd=workdir, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, server.stderr.read().decode() if server.stderr else ""
            try:
                if httpx.get(f"{url}/openapi.json", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "certledger serve did not come up"
            time.sleep(0.2)
        yield workdir, url, server
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def test_readme_api_block(served: tuple[Path, str, subprocess.Popen[bytes]], run_cli: RunCli) -> None:
    workdir, url, server = served
    blocks = _section_blocks("Verification API and other provinces")
    assert "certledger serve --port 8600" in blocks[0]
    assert "certledger remote status --url http://127.0.0.1:8600 --genesis genesis.json LICENCE_ID" in blocks[0]
    env = _node_env(workdir)
    assert run_cli("genesis", "--out", "genesis.json", env=env, cwd=workdir).rc == 0
    for licence_id, status in ((LICENCE_ID, "ACTIVE"), ("LIC-4403-0001", "REVOKED")):
        result = run_cli("remote", "status", "--url", url, "--genesis", "genesis.json", licence_id, "--json",
                         env=env, cwd=workdir)  # fmt: skip
        assert result.rc == 0, result.stderr
        assert result.json["status"] == status and result.json["licence_id"] == licence_id
        assert all(c["ok"] for c in result.json["checks"]), result.json["checks"]
    checked = run_cli("verify", f"out/{NUMBER}.pdf", "--remote", url, "--genesis", "genesis.json",
                      "--roots", "province-root.pem", env=env, cwd=workdir)  # fmt: skip
    assert checked.rc == 0 and f"{NUMBER}.pdf: VALID" in checked.text, checked.stderr
    # a second server on the same port: one line, not uvicorn's log and exit 3
    again = run_cli("serve", "--port", url.rsplit(":", 1)[1], env=env, cwd=workdir)
    again.assert_error("config.invalid", rc=2)
    assert "already in use" in again.stderr
    # it said where it listens, and stops on Ctrl-C
    server.send_signal(signal.SIGINT)
    server.wait(timeout=20)
    assert server.stderr is not None
    assert f"on {url}/" in server.stderr.read().decode()


def test_bad_input_is_one_line(walked: tuple[Path, Any], run_cli: RunCli) -> None:
    workdir, proc = walked
    assert proc.returncode == 0
    env = _node_env(workdir)
    (workdir / "bad.json").write_text("{bad")
    (workdir / "list.json").write_text("[1, 2]")
    (workdir / "wrong.txt").write_text("not the passphrase")
    (workdir / "deep.json").write_text("[" * 60_000)  # under the 64 KiB bound, far deeper than json recurses
    (workdir / "twice.json").write_text('{"licence_id": "A", "licence_id": "B"}')
    rec = ("record", "new", "--type", "ISSUE", "--agency", "11440300MB2C54301Y", "--key", "agency.pem")
    cases: list[tuple[tuple[str, ...], str | None]] = [
        (("submit", "missing.rec"), "io"),
        (("submit", "bad.json"), None),
        (("submit", "list.json"), None),
        ((*rec, "--payload", "bad.json"), "record.malformed"),
        ((*rec, "--payload", "list.json"), "record.malformed"),
        ((*rec, "--payload", "missing.json"), "io"),
        ((*rec, "--payload", "issue.json", "--passphrase-file", "wrong.txt"), "key.passphrase"),
        (("status", "NO-SUCH-LICENCE"), "state.unknown_licence"),
        (("history", "NO-SUCH-LICENCE", "--json"), "state.unknown_licence"),
        (("proof", "inclusion", "999"), None),
        (("checkpoint", "--size", "999"), None),
        (("verify", "missing.pdf"), None),  # a click usage error, also one line now
        (("verify", "bad.json", "--roots", "province-root.pem"), None),
        (("issue", "bad.json", "--agency-key", "agency.pem", "--agency-cert", "agency.crt", "--seal", "agency.esl"),
         "licence.malformed"),
        (("issue", "licence.json", "--agency-key", "agency.pem", "--agency-cert", "agency.crt", "--seal",
          "agency.esl", "--passphrase-file", "wrong.txt"), "key.passphrase"),
        (("issue", "licence.json", "--agency-key", "agency.pem", "--agency-cert", "agency.crt", "--seal",
          "agency.esl", "--out-dir", "again"), "state.already_issued"),
        (("no-such-command",), None),
        (("status",), None),  # missing argument
        (("proof", "inclusion", "-1"), None),
        (("proof", "inclusion", "9" * 30), None),  # beyond a 64-bit index: a usage error, not an internal one
        (("checkpoint", "--size", "9" * 30), None),
        (("submit", "/dev/zero"), "record.too_large"),  # read no further than the entry size bound
        ((*rec, "--payload", "deep.json"), "record.malformed"),
        ((*rec, "--payload", "twice.json"), "record.malformed"),
        (("record", "new", "--type", "BOGUS", "--key", "agency.pem", "--payload", "issue.json"), None),
    ]  # fmt: skip
    results: list[CliResult] = [run_cli(*args, env=env, cwd=workdir) for args, _ in cases]
    for (args, reason), result in zip(cases, results, strict=True):
        try:
            result.assert_error(reason)
        except AssertionError as exc:
            raise AssertionError(f"certledger {' '.join(args)}: {exc}") from None


def test_checkpoint_json_and_record_new_says_what_it_wrote(walked: tuple[Path, Any], run_cli: RunCli) -> None:
    workdir, proc = walked
    assert proc.returncode == 0
    env = _node_env(workdir)
    cp = run_cli("checkpoint", "--json", env=env, cwd=workdir)
    assert cp.rc == 0, cp.stderr
    data = json.loads(cp.stdout)
    plain = run_cli("checkpoint", env=env, cwd=workdir)
    assert data["note"] == plain.text
    assert data["origin"] == "gd.certledger.example/licences" and data["tree_size"] == int(plain.text.split("\n")[1])
    assert len(bytes.fromhex(data["root"])) == 32
    payload = {"licence_id": LICENCE_ID, "reason_code": "inspection", "reason_text": "核查"}
    made = run_cli("record", "new", "--type", "SUSPEND", "--agency", "11440300MB2C54301Y", "--key", "agency.pem",
                   "--payload", "-", "--out", "suspend.rec", env=env, cwd=workdir,
                   input=json.dumps(payload).encode())  # fmt: skip
    assert made.rc == 0, made.stderr
    assert made.stdout == b"" and "wrote suspend.rec: SUSPEND record" in made.stderr
    assert (workdir / "suspend.rec").is_file()


def test_batch_issue_renders_in_parallel_and_appends_one_batch(walked: tuple[Path, Any], run_cli: RunCli) -> None:
    """`certledger issue a.json b.json --workers 2`: both licences issued, their files verify;
    a batch holding one licence that is already on the ledger appends nothing at all."""
    from cert_formats.identifier import LicenceIdentifier

    workdir, proc = walked
    assert proc.returncode == 0
    env = _node_env(workdir)
    base = json.loads((workdir / "licence.json").read_text(encoding="utf-8"))
    names = []
    for serial in ("440300000202501150101", "440300000202501150102"):
        lic = dict(base, number=serial, holder=f"深圳批量测试{serial[-1]}号科技有限公司",
                   identifier=str(LicenceIdentifier.build(base["type_code"], base["issuer_code"], serial)))
        (workdir / f"{serial}.json").write_text(json.dumps(lic, ensure_ascii=False), encoding="utf-8")
        names.append(f"{serial}.json")
    creds = ("--agency-key", "agency.pem", "--agency-cert", "agency.crt", "--seal", "agency.esl",
             "--chain", "province-root.pem")
    size_before = run_cli("checkpoint", "--json", env=env, cwd=workdir).json["tree_size"]
    done = run_cli("issue", *names, *creds, "--workers", "2", "--out-dir", "batch", "--json", env=env, cwd=workdir)
    assert done.rc == 0, done.stderr
    out = done.json
    assert [o["identifier"].split(".")[-3] for o in out] == ["440300000202501150101", "440300000202501150102"]
    assert out[1]["index"] == out[0]["index"] + 1  # one batch, in input order
    for item in out:
        for fmt in ("pdf", "ofd"):
            verdict = run_cli("verify", item[fmt], "--roots", "province-root.pem", "--json", env=env, cwd=workdir)
            assert verdict.rc == 0 and verdict.json["verdict"] == "valid", verdict.stdout[:300]
    size_after = run_cli("checkpoint", "--json", env=env, cwd=workdir).json["tree_size"]
    assert size_after == size_before + 2
    # one of these is on the ledger already: the whole batch is refused, nothing is appended
    (workdir / "new.json").write_text(json.dumps(dict(
        base, number="440300000202501150103",
        identifier=str(LicenceIdentifier.build(base["type_code"], base["issuer_code"], "440300000202501150103")),
    ), ensure_ascii=False), encoding="utf-8")
    refused = run_cli("issue", "new.json", names[0], *creds, "--out-dir", "batch2", env=env, cwd=workdir)
    refused.assert_error("state.already_issued")
    assert run_cli("checkpoint", "--json", env=env, cwd=workdir).json["tree_size"] == size_after
    assert not (workdir / "batch2").exists()


def test_issue_writes_only_inside_out_dir_and_appends_nothing_it_cannot_write(
    walked: tuple[Path, Any], run_cli: RunCli
) -> None:
    """The licence number names the files; it never chooses where they go. A path that cannot be
    written fails the command before anything is appended."""
    from cert_formats.identifier import LicenceIdentifier

    workdir, proc = walked
    assert proc.returncode == 0
    env = _node_env(workdir)
    base = json.loads((workdir / "licence.json").read_text(encoding="utf-8"))
    creds = ("--agency-key", "agency.pem", "--agency-cert", "agency.crt", "--seal", "agency.esl")

    def licence(serial: str, number: str) -> str:
        name = f"hostile-{serial}.json"
        lic = dict(base, number=number,
                   identifier=str(LicenceIdentifier.build(base["type_code"], base["issuer_code"], serial)))
        (workdir / name).write_text(json.dumps(lic, ensure_ascii=False), encoding="utf-8")
        return name

    escape = workdir / "escaped"
    escape.mkdir()
    size_before = run_cli("checkpoint", "--json", env=env, cwd=workdir).json["tree_size"]
    done = run_cli("issue", licence("440300000202501150201", f"{escape}/ABS"), *creds, "--out-dir", "out/a",
                   "--json", env=env, cwd=workdir)  # fmt: skip
    assert done.rc == 0, done.stderr
    assert list(escape.iterdir()) == []
    for fmt in ("pdf", "ofd"):
        written = Path(done.json[fmt]) if Path(done.json[fmt]).is_absolute() else workdir / done.json[fmt]
        assert written.resolve().parent == (workdir / "out" / "a").resolve(), written
    # an output directory that cannot be created (a file is in the way): refused, nothing appended
    (workdir / "blocked").write_text("a file, not a directory")
    blocked = run_cli("issue", licence("440300000202501150202", "440300000202501150202"), *creds,
                      "--out-dir", "blocked/sub", env=env, cwd=workdir)  # fmt: skip
    blocked.assert_error("io")
    assert run_cli("checkpoint", "--json", env=env, cwd=workdir).json["tree_size"] == size_before + 1


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_an_interrupted_batch_issue_leaves_no_traceback_and_no_files(
    walked: tuple[Path, Any], run_cli: RunCli, how: str
) -> None:
    """Ctrl-C (SIGINT to the whole process group) printed ~40 lines of worker tracebacks; SIGTERM left empty files."""
    from cert_formats.identifier import LicenceIdentifier

    workdir, proc = walked
    assert proc.returncode == 0
    env = {**os.environ, **_node_env(workdir)}
    env.pop("CERTLEDGER_DEBUG", None)
    base = json.loads((workdir / "licence.json").read_text(encoding="utf-8"))
    names = []
    for n in range(6):
        serial = f"44030000020250115{how == 'sigterm':d}{n:03d}"
        lic = dict(base, number=serial, holder=f"深圳中断测试{n}号科技有限公司",
                   identifier=str(LicenceIdentifier.build(base["type_code"], base["issuer_code"], serial)))
        (workdir / f"int-{how}-{n}.json").write_text(json.dumps(lic, ensure_ascii=False), encoding="utf-8")
        names.append(f"int-{how}-{n}.json")
    size_before = run_cli("checkpoint", "--json", env=_node_env(workdir), cwd=workdir).json["tree_size"]
    script = str(Path(sys.executable).with_name("certledger"))
    out_dir = f"interrupted-{how}"
    child = subprocess.Popen(
        [script, "issue", *names, "--agency-key", "agency.pem", "--agency-cert", "agency.crt", "--seal", "agency.esl",
         "--chain", "province-root.pem", "--workers", "2", "--out-dir", out_dir, "--json"],
        cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )
    time.sleep(1.0)  # the workers are starting (importing, loading fonts)
    if how == "ctrl-c":
        os.killpg(child.pid, signal.SIGINT)  # as a terminal does: the whole process group
    else:
        os.kill(child.pid, signal.SIGTERM)
    _, err = child.communicate(timeout=120)
    stderr = err.decode("utf-8", "replace")
    assert "Traceback" not in stderr, stderr[-3000:]
    # six licences on two workers take seconds: the signal came first, and was handled
    assert child.returncode != 0, stderr[-3000:]
    # interrupted: nothing appended, nothing left in the output directory
    assert run_cli("checkpoint", "--json", env=_node_env(workdir), cwd=workdir).json["tree_size"] == size_before
    left = list((workdir / out_dir).iterdir()) if (workdir / out_dir).exists() else []
    assert left == [], left

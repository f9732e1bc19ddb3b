"""The ledger through the installed ``certledger`` console script, one process per command.

A single-node ledger is created, agencies are admitted, rotated and removed, records
are built with ``record new`` and appended with ``submit``, and every answer that
carries a proof is checked here with the library's own verifiers (never by trusting
the CLI's "verified"): inclusion proofs, consistency proofs and signed checkpoints.
Then audit (JSON and PDF report), rebuild, ``--help`` everywhere, and the demo.

Commands that do not depend on each other run side by side: each process costs about
two seconds of interpreter start-up.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from pypdf import PdfReader

from ledger.checkpoint import open_checkpoint
from ledger.identity import checkpoint_verifiers
from ledger.merkle import SM3_HASHER, verify_consistency, verify_inclusion
from ledger.service import Ledger
from nodes.cli import cli
from nodes.config import NodeConfig

ORIGIN = "gd.cli-test.example/licences"
PASSPHRASE = "cli test 口令 phrase"
SZ_ID = "11440300MB2C54301Y"
GZ_ID = "11440100MB2C194577"
DIGEST = "ab" * 32


def _parallel(fn: Callable[[Any], Any], items: list[Any]) -> list[Any]:
    with ThreadPoolExecutor(max_workers=max(1, len(items))) as pool:
        return list(pool.map(fn, items))


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """``certledger demo`` started in the background as soon as the module starts (it is slow)."""
    workdir = tmp_path_factory.mktemp("demo") / "run"
    script = Path(sys.executable).with_name("certledger")
    proc = subprocess.Popen([str(script), "demo", "--no-serve", "--workdir", str(workdir)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    yield proc, workdir
    if proc.poll() is None:
        proc.kill()
    proc.wait()


@pytest.fixture(autouse=True)
def _start_demo_early(demo: tuple[subprocess.Popen[bytes], Path]) -> None:
    """Every test of this module requests the demo, so it runs while the others do."""


class Node:
    """A node home and the console script pointed at it."""

    def __init__(self, home: Path, run_cli: Callable[..., Any]) -> None:
        self.home = home
        self.run_cli = run_cli
        self.env = {"CERTLEDGER_HOME": str(home), "CERTLEDGER_PASSPHRASE": PASSPHRASE}

    def run(self, *args: str | Path) -> Any:
        return self.run_cli(*args, env=self.env, cwd=self.home.parent, timeout=300)

    def ok(self, *args: str | Path) -> Any:
        result = self.run(*args)
        assert result.rc == 0, f"certledger {' '.join(map(str, args))}: rc={result.rc} {result.stderr}"
        return result

    def json(self, *args: str | Path) -> Any:
        return self.ok(*args, "--json").json

    def write(self, name: str, obj: Any) -> Path:
        path = self.home.parent / name
        path.write_text(json.dumps(obj, ensure_ascii=False))
        return path

    def record(self, name: str, rtype: str, agency: str, key: str, payload: dict[str, Any]) -> Any:
        payload_file = self.write(f"{name}.payload.json", payload)
        out = self.home.parent / f"{name}.record.json"
        return self.run("record", "new", "--type", rtype, "--agency", agency, "--key",
                        self.home.parent / "keys" / f"{key}.pem", "--payload", payload_file, "--out", out), out

    def verifiers(self) -> list[Any]:
        ledger = Ledger.open(NodeConfig(home=self.home).default_database())
        try:
            with ledger.store.read() as conn:
                nodes = ledger.store.all_nodes(conn)
        finally:
            ledger.close()
        return checkpoint_verifiers(ORIGIN, nodes)


def _issue(lid: str, region: str) -> dict[str, Any]:
    return {"licence_id": lid, "type_code": "1001", "region": region, "version": 1, "files": {"pdf": DIGEST},
            "metadata": {"holder": "深圳前海星河科技有限公司"}}


def test_ledger_lifecycle(tmp_path: Path, run_cli: Callable[..., Any]) -> None:
    node = Node(tmp_path / "home", run_cli)
    (tmp_path / "keys").mkdir()

    # 1. init: genesis block and the first checkpoint
    init = node.json("init", "--origin", ORIGIN, "--node-id", "gd-node-1")
    assert init["origin"] == ORIGIN and init["tree_size"] == 1
    verifiers = node.verifiers()
    assert open_checkpoint(init["checkpoint"], verifiers, origin=ORIGIN).checkpoint.size == 1

    # 2. agency keys, admitted by governance records
    keygens = _parallel(lambda name: node.run("keygen", "--out", tmp_path / "keys" / f"{name}.pem", "--json"),
                        ["sz", "sz2", "gz"])
    assert [k.rc for k in keygens] == [0, 0, 0], [k.stderr for k in keygens]
    for name in ("sz", "sz2", "gz"):
        assert (tmp_path / "keys" / f"{name}.pub.pem").read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    sz = node.json("agency", "add", "--id", SZ_ID, "--name", "深圳市市场监督管理局", "--regions", "4403",
                   "--types", "1001,1002", "--key", tmp_path / "keys" / "sz.pub.pem")
    gz = node.json("agency", "add", "--id", GZ_ID, "--name", "广州市市场监督管理局", "--regions", "4401",
                   "--types", "1001", "--key", tmp_path / "keys" / "gz.pub.pem")
    assert (sz["index"], gz["index"]) == (1, 2)
    agencies = {a["id"]: a for a in node.json("agency", "list")}
    assert set(agencies) == {SZ_ID, GZ_ID}
    assert agencies[SZ_ID]["keys"][0]["key_id"] == sz["key_id"] and agencies[SZ_ID]["regions"] == ["4403"]

    # 3. records built and signed with `record new`, appended with `submit`
    built = _parallel(lambda a: node.record(*a), [
        ("l1", "ISSUE", SZ_ID, "sz", _issue("LIC-1", "440305")),
        ("l2", "ISSUE", SZ_ID, "sz", _issue("LIC-2", "440305")),
        ("g1", "ISSUE", GZ_ID, "gz", _issue("LIC-G", "440106")),
    ])
    assert [r.rc for r, _ in built] == [0, 0, 0], [r.stderr for r, _ in built]
    first = node.json("submit", *(path for _, path in built))
    assert [a["index"] for a in first["accepted"]] == [3, 4, 5] and first["rejected"] == []
    assert open_checkpoint(first["checkpoint"], verifiers, origin=ORIGIN).checkpoint.size == 6
    built = _parallel(lambda a: node.record(*a), [
        ("a1", "AMEND", SZ_ID, "sz", {**_issue("LIC-1", "440305"), "version": 2, "files": {"ofd": DIGEST}}),
        ("s2", "SUSPEND", SZ_ID, "sz", {"licence_id": "LIC-2", "reason_code": "inspection", "reason_text": "核查"}),
        ("rg", "REVOKE", GZ_ID, "gz", {"licence_id": "LIC-G", "reason_code": "fraud", "reason_text": "撤销"}),
    ])
    second = node.json("submit", *(path for _, path in built))
    assert [a["index"] for a in second["accepted"]] == [6, 7, 8]

    # 4. status, history, checkpoint and proofs: read-only, side by side
    status, history, note, inclusion, consistency = _parallel(lambda args: node.ok(*args), [
        ("status", "LIC-1", "--json"), ("history", "LIC-1", "--json"), ("checkpoint",),
        ("proof", "inclusion", "3", "--json"), ("proof", "consistency", "6", "--json"),
    ])
    opened = open_checkpoint(note.stdout, verifiers, origin=ORIGIN)
    size, root = opened.checkpoint.size, opened.checkpoint.root_hash
    assert size == 9
    assert len(opened.signer_names) == 1 and len(opened.note.signatures) == 2  # Ed25519 + SM2, one node
    assert opened.note.unverified == ()

    lic = status.json
    assert (lic["licence"]["status"], lic["licence"]["version"]) == ("ACTIVE", 2)
    p = lic["inclusion_proof"]
    assert (p["index"], p["tree_size"]) == (6, 9)
    verify_inclusion(SM3_HASHER, p["index"], p["tree_size"], bytes.fromhex(p["leaf_hash"]),
                     [bytes.fromhex(h) for h in p["path"]], root)

    hist = history.json
    assert hist["tree_size"] == size and bytes.fromhex(hist["root"]) == root
    assert [r["record"]["record"]["type"] for r in hist["records"]] == ["ISSUE", "AMEND"]
    for item in hist["records"]:
        proof = item["inclusion_proof"]
        # the proof is for this very record: its leaf is SM3(0x00 || canonical envelope)
        envelope = json.dumps(item["record"], sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        assert SM3_HASHER.hash_leaf(envelope).hex() == proof["leaf_hash"]
        verify_inclusion(SM3_HASHER, item["index"], size, bytes.fromhex(proof["leaf_hash"]),
                         [bytes.fromhex(h) for h in proof["path"]], root)

    inc = inclusion.json
    assert bytes.fromhex(inc["root"]) == root
    verify_inclusion(SM3_HASHER, 3, inc["tree_size"], bytes.fromhex(inc["leaf_hash"]),
                     [bytes.fromhex(h) for h in inc["path"]], root)
    con = consistency.json
    assert (con["old_size"], con["new_size"]) == (6, 9) and bytes.fromhex(con["new_root"]) == root
    old = open_checkpoint(first["checkpoint"], verifiers, origin=ORIGIN).checkpoint
    assert bytes.fromhex(con["old_root"]) == old.root_hash
    verify_consistency(SM3_HASHER, 6, 9, old.root_hash, root, [bytes.fromhex(h) for h in con["path"]])

    # 5. key rotation: the retired key is refused, the new one works
    node.json("agency", "rotate", "--id", SZ_ID, "--key", tmp_path / "keys" / "sz2.pub.pem",
              "--retire", sz["key_id"])
    (old_rc, old_rec), (new_rc, new_rec) = _parallel(lambda a: node.record(*a), [
        ("old", "RESUME", SZ_ID, "sz", {"licence_id": "LIC-2"}),
        ("new", "RESUME", SZ_ID, "sz2", {"licence_id": "LIC-2"}),
    ])
    assert old_rc.rc == new_rc.rc == 0
    refused = node.run("submit", old_rec)
    refused.assert_error("agency.key_not_valid", rc=4)
    accepted = node.json("submit", new_rec)
    assert [a["index"] for a in accepted["accepted"]] == [10]

    # 6. removal: the removed agency is refused
    node.json("agency", "remove", "--id", GZ_ID, "--reason", "机构调整")
    gone, gone_rec = node.record("gone", "ISSUE", GZ_ID, "gz", _issue("LIC-G2", "440106"))
    assert gone.rc == 0
    node.run("submit", gone_rec).assert_error("agency.removed", rc=4)
    listed = {a["id"]: a for a in node.json("agency", "list")}
    assert "removed_at" in listed[GZ_ID] and len(listed[SZ_ID]["keys"]) == 2

    # 7. rebuild, then audit (JSON and a PDF report an auditor can file)
    rebuilt = node.json("rebuild")
    assert rebuilt == {"entries": 12, "rebuilt": True}
    report_pdf = tmp_path / "r.pdf"
    audit_json, audit_pdf = _parallel(lambda args: node.ok(*args), [
        ("audit", "--json"), ("audit", "--report", report_pdf),
    ])
    report = audit_json.json
    assert report["ok"] is True and report["finding_count"] == 0
    assert (report["entries"], report["tree_size"], report["origin"]) == (12, 12, ORIGIN)
    assert report["licences"] == {"ACTIVE": 2, "REVOKED": 1}
    final = open_checkpoint(node.ok("checkpoint").stdout, verifiers, origin=ORIGIN).checkpoint
    assert bytes.fromhex(report["root"]) == final.root_hash and final.size == 12
    assert "PASSED" in audit_pdf.text
    text = "".join(page.extract_text() for page in PdfReader(report_pdf).pages)
    assert "PASSED" in text and base64.b64encode(final.root_hash).decode() not in text  # hex, not base64
    assert final.root_hash.hex()[:16] in text.replace("\n", "")

    # 8. `record new --json`: the record's hash (as `submit` will report it) and, without --out, the record itself
    payload = node.write("l3.payload.json", _issue("LIC-3", "440305"))
    summary = node.json("record", "new", "--type", "ISSUE", "--agency", SZ_ID,
                        "--key", tmp_path / "keys" / "sz2.pem", "--payload", payload)
    assert (summary["type"], summary["signed_by"], summary["out"]) == ("ISSUE", SZ_ID, None)
    assert summary["record"]["record"]["payload"]["licence_id"] == "LIC-3"
    written = node.json("record", "new", "--type", "REVOKE", "--agency", SZ_ID, "--key",
                        tmp_path / "keys" / "sz2.pem", "--payload",
                        node.write("r3.payload.json", {"licence_id": "LIC-3", "reason_code": "fraud",
                                                       "reason_text": "撤销"}),
                        "--out", tmp_path / "r3.rec")
    assert written["out"] == str(tmp_path / "r3.rec") and "record" not in written
    l3 = tmp_path / "l3.rec"
    # the record as an object, like `history --json`: its entry bytes are its RFC 8785 form
    l3.write_text(json.dumps(summary["record"], sort_keys=True, separators=(",", ":"), ensure_ascii=False))
    third = node.json("submit", l3, tmp_path / "r3.rec")
    assert [a["record_hash"] for a in third["accepted"]] == [summary["record_hash"], written["record_hash"]]
    assert [a["index"] for a in third["accepted"]] == [12, 13]


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None, name
        yield (*prefix, name)
        if isinstance(command, click.Group):
            yield from _commands(command, (*prefix, name))


def test_help_of_every_command() -> None:
    """``--help`` of the root, every command and every subcommand exits 0 and prints usage."""
    paths = list(_commands(cli))
    assert ("agency", "rotate") in paths and ("proof", "consistency") in paths and ("record", "new") in paths
    runner = CliRunner()
    for path in [(), *paths]:
        result = runner.invoke(cli, [*path, "--help"], prog_name="certledger")
        assert result.exit_code == 0, (path, result.output, result.exception)
        assert result.stdout.startswith(f"Usage: certledger {' '.join(path)}".rstrip()), (path, result.stdout[:80])


def test_every_command_that_prints_data_takes_json() -> None:
    """The README's promise: commands that print data take ``--json`` (servers and `cluster down` print none)."""
    no_data = {("serve",), ("demo",), ("node", "run"), ("cluster", "down")}
    ctx = click.Context(cli)
    missing = []
    for path in _commands(cli):
        command: click.Command | None = cli
        for name in path:
            assert isinstance(command, click.Group)
            command = command.get_command(ctx, name)
        assert command is not None
        if isinstance(command, click.Group) or path in no_data:
            continue
        if not any("--json" in getattr(param, "opts", ()) for param in command.params):
            missing.append(" ".join(path))
    assert not missing, f"commands without --json: {missing}"


def test_help_through_the_console_script(run_cli: Callable[..., Any]) -> None:
    results = _parallel(lambda args: run_cli(*args), [("--help",), ("agency", "--help"), ("submit", "--help")])
    for result in results:
        assert result.rc == 0 and result.text.startswith("Usage: certledger"), result.stderr


def test_demo(demo: tuple[subprocess.Popen[bytes], Path], run_cli: Callable[..., Any]) -> None:
    proc, workdir = demo
    out, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
    assert b"audit PASSED" in out
    # and the ledger it left behind audits clean through the CLI, in a new process
    audited = run_cli("audit", "--json", "--home", workdir / "node", timeout=300)
    assert audited.rc == 0, audited.stderr
    assert audited.json["ok"] is True and audited.json["entries"] >= 5
    # stdout is the JSON alone: the progress bar draws on stderr (it wrote a stray newline here)
    assert audited.stdout.startswith(b"{"), audited.stdout[:40]

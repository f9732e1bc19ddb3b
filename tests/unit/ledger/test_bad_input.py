"""Hostile and broken record files: a clear error with a reason, and no change to the ledger.

Every case is a file's bytes as an agency (or an attacker) might submit them. Through
the library (``SignedRecord.from_bytes`` then ``Ledger.submit``) each ends in one
:class:`CertLedgerError` of the expected family and reason, and the store is exactly
as before. Through the installed console script (``certledger submit FILE``) each ends
with exit code of that family and ONE line on stderr, ``certledger: error: ... [reason]``,
never a traceback.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ledger import reasons
from ledger.canonical import canonical_bytes
from ledger.records import (
    MAX_ENTRY_BYTES,
    MAX_METADATA_BYTES,
    RECORD_SIGNER_ID,
    Record,
    RecordType,
    Signature,
    SignedRecord,
    new_nonce,
    now_utc,
    sign_record,
)
from ledger.service import Ledger
from nodes.cli import cli
from nodes.config import NodeConfig
from nodes.local import init_node
from signing.errors import (
    AuthorizationError,
    CertLedgerError,
    ConflictError,
    InvalidInputError,
    VerificationError,
)

from .builders import AGENCIES, KeyRing, World, agency_json, issue_payload, snapshot, suspend_payload

PASSPHRASE = "bad input 测试 passphrase"


@dataclass(frozen=True)
class Bad:
    data: bytes
    reason: str
    family: type[CertLedgerError]


@dataclass(frozen=True)
class Context:
    """What the cases are built against: a ledger's origin, its clock, and a record it holds."""

    origin: str
    now: datetime
    keys: KeyRing
    accepted: SignedRecord  # an ISSUE of licence "L1" by SZ, already on the ledger


def _signed(ctx: Context, rtype: RecordType, payload: dict[str, Any], *, agency: str = "SZ",
            time: datetime | None = None, nonce: str | None = None, origin: str | None = None) -> SignedRecord:
    key = ctx.keys[agency]
    rec = Record(rtype, origin or ctx.origin, time or ctx.now, nonce or new_nonce(), AGENCIES[agency].id,
                 key.public_key.key_id, payload)
    return sign_record(rec, [key])


def _edited(ctx: Context, edit: Callable[[dict[str, Any]], None]) -> bytes:
    obj = _signed(ctx, RecordType.SUSPEND, suspend_payload("L1")).to_json()
    edit(obj)
    return canonical_bytes(obj)


def _deep(depth: int) -> bytes:
    return b'{"record":' + b"[" * depth + b"]" * depth + b',"signatures":[]}'


def cases(ctx: Context) -> dict[str, Bad]:
    good = _signed(ctx, RecordType.SUSPEND, suspend_payload("L1"))
    data = good.entry_bytes()
    forged_sig = ctx.keys["forger"].sign(good.record.signed_bytes(), signer_id=RECORD_SIGNER_ID)
    forged = replace(good, signatures=(Signature(good.signatures[0].key_id, forged_sig),))
    big_meta = issue_payload("L9", "440305", metadata={"note": "证" * (MAX_METADATA_BYTES // 3 + 10)})
    return {
        # not the canonical form
        "pretty-printed": Bad(json.dumps(good.to_json(), indent=2, ensure_ascii=False).encode(),
                              reasons.RECORD_NOT_CANONICAL, InvalidInputError),
        "keys-out-of-order": Bad(json.dumps({"signatures": good.to_json()["signatures"],
                                             "record": good.to_json()["record"]},
                                            separators=(",", ":"), ensure_ascii=False).encode(),
                                 reasons.RECORD_NOT_CANONICAL, InvalidInputError),
        "duplicate-key": Bad(data.replace(b'"v":1', b'"v":1,"v":1', 1), reasons.RECORD_NOT_CANONICAL,
                             InvalidInputError),
        "truncated": Bad(data[: len(data) // 2], reasons.RECORD_NOT_CANONICAL, InvalidInputError),
        "empty": Bad(b"", reasons.RECORD_NOT_CANONICAL, InvalidInputError),
        "not-utf8": Bad(data.replace("经营".encode(), b"\xc0\xaf\xff", 1), reasons.RECORD_NOT_CANONICAL,
                        InvalidInputError),
        "utf16": Bad(data.decode().encode("utf-16"), reasons.RECORD_NOT_CANONICAL, InvalidInputError),
        "byte-order-mark": Bad(b"\xef\xbb\xbf" + data, reasons.RECORD_NOT_CANONICAL, InvalidInputError),
        "binary-garbage": Bad(bytes(range(256)) * 4, reasons.RECORD_NOT_CANONICAL, InvalidInputError),
        "huge-nesting": Bad(_deep(MAX_ENTRY_BYTES // 2 - 100), reasons.RECORD_NOT_CANONICAL, InvalidInputError),
        "nesting-just-too-deep": Bad(_deep(17), reasons.RECORD_NOT_CANONICAL, InvalidInputError),
        # well-formed JSON, wrong shape
        "json-array": Bad(b"[]", reasons.RECORD_MALFORMED, InvalidInputError),
        "json-string": Bad(b'"record"', reasons.RECORD_MALFORMED, InvalidInputError),
        "unknown-field": Bad(_edited(ctx, lambda o: o["record"]["payload"].update(colour="red")),
                             reasons.RECORD_MALFORMED, InvalidInputError),
        "bad-time": Bad(_edited(ctx, lambda o: o["record"].update(time="yesterday")), reasons.RECORD_MALFORMED,
                        InvalidInputError),
        "unknown-type": Bad(_edited(ctx, lambda o: o["record"].update(type="DELETE")), reasons.RECORD_UNKNOWN_TYPE,
                            InvalidInputError),
        # sizes
        "oversized-file": Bad(b'{"x":"' + b"a" * MAX_ENTRY_BYTES + b'"}', reasons.RECORD_TOO_LARGE,
                              InvalidInputError),
        "oversized-field": Bad(_edited(ctx, lambda o: o["record"]["payload"].update(licence_id="L" * 200)),
                               reasons.RECORD_TOO_LARGE, InvalidInputError),
        "oversized-metadata": Bad(_edited(ctx, lambda o: o["record"].update(type="ISSUE", payload=big_meta)),
                                  reasons.RECORD_TOO_LARGE, InvalidInputError),
        # parses, refused by validation
        "unknown-agency": Bad(_signed(ctx, RecordType.ISSUE, issue_payload("N1", "440402"), agency="NEW")
                              .entry_bytes(), reasons.AGENCY_UNKNOWN, AuthorizationError),
        "forged-signature": Bad(forged.entry_bytes(), reasons.SIGNATURE_INVALID, VerificationError),
        "replayed-nonce": Bad(_signed(ctx, RecordType.SUSPEND, suspend_payload("L1"),
                                      nonce=ctx.accepted.record.nonce).entry_bytes(),
                              reasons.NONCE_REPLAYED, ConflictError),
        "replayed-record": Bad(ctx.accepted.entry_bytes(), reasons.NONCE_REPLAYED, ConflictError),
        "stale-time": Bad(_signed(ctx, RecordType.SUSPEND, suspend_payload("L1"),
                                  time=ctx.now - timedelta(days=1)).entry_bytes(),
                          reasons.TIME_OUT_OF_WINDOW, InvalidInputError),
        "other-ledger": Bad(_signed(ctx, RecordType.SUSPEND, suspend_payload("L1"),
                                    origin="zj.certledger.example/licences").entry_bytes(),
                            reasons.RECORD_ORIGIN, InvalidInputError),
    }


#: the case names, for parametrize (test_case_list_is_complete keeps it equal to cases())
CASE_NAMES = [
    "pretty-printed", "keys-out-of-order", "duplicate-key", "truncated", "empty", "not-utf8", "utf16",
    "byte-order-mark", "binary-garbage", "huge-nesting", "nesting-just-too-deep", "json-array", "json-string",
    "unknown-field", "bad-time", "unknown-type", "oversized-file", "oversized-field", "oversized-metadata",
    "unknown-agency", "forged-signature", "replayed-nonce", "replayed-record", "stale-time", "other-ledger",
]


# -- through the library -------------------------------------------------------------------------


#: cases refused before the store is read (parsing, shape, size): backend-independent
PARSE_CASES = CASE_NAMES[: CASE_NAMES.index("unknown-agency")]
#: cases refused by validation against state read back from the store
STATE_CASES = CASE_NAMES[len(PARSE_CASES):]


@pytest.fixture
def library_cases(world: World) -> dict[str, Bad]:
    accepted = world.issue("SZ", "L1")
    world.accept(accepted)
    return cases(Context(world.ledger.origin, world.now, world.keys, accepted))


def test_case_list_is_complete(keys: KeyRing) -> None:
    now = now_utc()
    accepted = sign_record(Record(RecordType.ISSUE, "x.example/log", now, new_nonce(), AGENCIES["SZ"].id,
                                  keys["SZ"].public_key.key_id, issue_payload("L1", "440305")), [keys["SZ"]])
    assert list(cases(Context("x.example/log", now, keys, accepted))) == CASE_NAMES


def _submit(ledger: Ledger, data: bytes, now: datetime) -> None:
    signed = SignedRecord.from_bytes(data)
    ledger.submit([signed], now=now).raise_first()


def _refused(name: str, world: World, library_cases: dict[str, Bad]) -> None:
    bad = library_cases[name]
    before = snapshot(world.ledger)
    with pytest.raises(CertLedgerError) as info:
        _submit(world.ledger, bad.data, world.now)
    assert type(info.value) is bad.family, info.value
    assert info.value.reason == bad.reason, info.value
    assert info.value.message and "\n" not in str(info.value)
    assert snapshot(world.ledger) == before


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("name", PARSE_CASES)
def test_library_refuses_at_parse(name: str, world: World, library_cases: dict[str, Bad]) -> None:
    _refused(name, world, library_cases)


@pytest.mark.parametrize("name", STATE_CASES)
def test_library_refuses_on_validation(name: str, world: World, library_cases: dict[str, Bad]) -> None:
    _refused(name, world, library_cases)


# -- through the console script -------------------------------------------------------------------


@pytest.fixture(scope="module")
def cli_node(tmp_path_factory: pytest.TempPathFactory, keys: KeyRing) -> tuple[Path, dict[str, Bad]]:
    """A node home with agency SZ admitted and one licence issued; the cases as files."""
    home = tmp_path_factory.mktemp("node")
    cfg = NodeConfig(home=home, node_id="node-1")
    cfg.database = cfg.default_database()
    node = init_node(cfg, PASSPHRASE.encode(), origin="gd.certledger.example/licences", node_name="node",
                     authority_id="gov", authority_name="authority")
    try:
        node.governance(RecordType.AGENCY_ADMIT, {"agency": agency_json(AGENCIES["SZ"], keys["SZ"])})
        ctx_now = now_utc()
        accepted = sign_record(Record(RecordType.ISSUE, node.origin, ctx_now, new_nonce(), AGENCIES["SZ"].id,
                                      keys["SZ"].public_key.key_id, issue_payload("L1", "440305")), [keys["SZ"]])
        node.ledger.submit([accepted]).raise_first()
        bad = cases(Context(node.origin, ctx_now, keys, accepted))
    finally:
        node.close()
    files = home / "cases"
    files.mkdir()
    for name, case in bad.items():
        (files / f"{name}.json").write_bytes(case.data)
    return home, bad


@dataclass(frozen=True)
class Outcome:
    rc: int
    stdout: bytes
    stderr: str


def _cli_errors(results: dict[str, Outcome], bad: dict[str, Bad]) -> list[str]:
    """The CLI error contract: the family's exit code, one stderr line ending in [reason], no stdout."""
    failures = []
    for name, result in results.items():
        case = bad[name]
        lines = result.stderr.splitlines()
        if result.rc != case.family.exit_code:
            failures.append(f"{name}: exit code {result.rc}, expected {case.family.exit_code}: {result.stderr!r}")
        elif len(lines) != 1 or "Traceback" in result.stderr:
            failures.append(f"{name}: expected one stderr line, got {result.stderr!r}")
        elif not (lines[0].startswith("certledger: error: ") and lines[0].endswith(f"[{case.reason}]")):
            failures.append(f"{name}: {lines[0]!r} is not 'certledger: error: ... [{case.reason}]'")
        if result.stdout:
            failures.append(f"{name}: printed to stdout: {result.stdout[:200]!r}")
    return failures


def _node_snapshot(home: Path) -> dict[str, Any]:
    ledger = Ledger.open(NodeConfig(home=home).default_database())
    try:
        return snapshot(ledger)
    finally:
        ledger.close()


def test_cli_submit_refuses(cli_node: tuple[Path, dict[str, Bad]]) -> None:
    """Every case through the real ``certledger`` command object, in this process (fast)."""
    home, bad = cli_node
    before = _node_snapshot(home)
    runner = CliRunner()
    env = {"CERTLEDGER_HOME": str(home), "CERTLEDGER_PASSPHRASE": PASSPHRASE, "CERTLEDGER_DEBUG": None}
    results: dict[str, Outcome] = {}
    for name in bad:
        out = runner.invoke(cli, ["submit", str(home / "cases" / f"{name}.json")], env=env, prog_name="certledger")
        # anything but the SystemExit of handle_errors would be an escaped exception (a traceback)
        assert isinstance(out.exception, SystemExit), f"{name}: {out.exception!r}"
        results[name] = Outcome(out.exit_code, out.stdout_bytes, out.stderr)
    failures = _cli_errors(results, bad)
    assert not failures, "\n".join(failures)
    assert _node_snapshot(home) == before


#: a few cases through the installed console script as separate processes (~2 s each)
PROCESS_CASES = ("huge-nesting", "not-utf8", "forged-signature", "replayed-nonce")


def test_console_script_submit_refuses(cli_node: tuple[Path, dict[str, Bad]], run_cli: Callable[..., Any]) -> None:
    home, bad = cli_node
    before = _node_snapshot(home)
    env = {"CERTLEDGER_HOME": str(home), "CERTLEDGER_PASSPHRASE": PASSPHRASE}
    with ThreadPoolExecutor(max_workers=len(PROCESS_CASES)) as pool:
        runs = pool.map(lambda n: run_cli("submit", home / "cases" / f"{n}.json", env=env, timeout=180),
                        PROCESS_CASES)
        results = {n: Outcome(r.rc, r.stdout, r.stderr) for n, r in zip(PROCESS_CASES, runs, strict=True)}
    failures = _cli_errors(results, bad)
    assert not failures, "\n".join(failures)
    missing = run_cli("submit", home / "no-such-file.json", env=env, timeout=180)
    missing.assert_error()
    assert _node_snapshot(home) == before

"""Schema-driven fuzzing of the live API with schemathesis: no request may cause a 5xx.

Two layers:

1. ``schemathesis run`` (its CLI, in a subprocess) against ``/openapi.json`` of a
   real ``certledger serve``: for every operation the coverage phase (boundary
   values: huge and negative integers, empty and odd strings, wrong types,
   missing parameters) and the fuzzing phase in positive and negative modes.
   Checks: no server error, status codes, content types, headers and bodies as
   the schema declares them (errors are declared as problem+json).
2. POST /v1/records through schemathesis' Python API with the generated bodies
   encoded *canonically* (the CLI sends ``json.dumps`` output, which the parser
   refuses at once as non-canonical), so the fuzzed records reach the record
   model, payload checks, signature checks and the state machine.

Bounded: a few dozen examples per operation, the whole file well under 2 minutes.
Set ``CERTLEDGER_FUZZ_SEED`` to replay a run (the seed is printed on failure).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import xml.etree.ElementTree as ET
from base64 import b64encode
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from api_server import AgencySpec, ApiServer, TestNode, make_node, serving
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from ledger.canonical import canonical_bytes
from ledger.records import RECORD_SIGNER_ID, new_nonce, now_utc
from signing.errors import InvalidInputError

ORIGIN = "gd.certledger.example/licences"
SZ = "91440300MA5SZ00001"
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
]
#: file upload (POST /v1/verify) is fuzzed by its own tests, with real licence files
EXCLUDED_PATHS = ("/v1/verify",)
#: every operation the API must expose; the fuzz run must test each (and any the app adds later)
OPERATIONS = {
    "POST /v1/records",
    "GET /v1/licences/{licence_id}",
    "GET /v1/licences/{licence_id}/history",
    "GET /v1/entries",
    "GET /v1/proofs/inclusion",
    "GET /v1/proofs/consistency",
    "GET /v1/checkpoint",
    "GET /v1/blocks/{height}",
    "GET /v1/federation",
    "GET /v1/federation/licences/{licence_id}",
    "GET /healthz",
    "GET /metrics",
}


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> TestNode:
    node = make_node(
        tmp_path_factory.mktemp("fuzz") / "gd",
        ORIGIN,
        [AgencySpec(SZ, "深圳市市场监督管理局", ("4403",), ("1001",))],
    )
    # real data for the generated requests to find: active, suspended, amended, revoked licences
    ids = [f"FUZZ-{i}" for i in range(6)]
    node.append([node.issue(SZ, lid) for lid in ids])
    node.append([node.suspend(SZ, ids[1]), node.amend(SZ, ids[2], 2), node.revoke(SZ, ids[3])])
    return node


@pytest.fixture(scope="module")
def server(node: TestNode) -> Iterator[ApiServer]:
    srv = ApiServer(node.home, env={"CERTLEDGER_API_RATE": "0"})
    with serving(srv):
        yield srv


def _seed() -> int:
    return int(os.environ.get("CERTLEDGER_FUZZ_SEED") or random.SystemRandom().randrange(2**32))


def _config(path: Path) -> Path:
    """schemathesis.toml: path parameters drawn half the time from what the ledger holds."""
    licences = [f"FUZZ-{i}" for i in range(6)]
    text = f"""
[dictionaries.licences]
values = {json.dumps(licences)}

[dictionaries.origins]
values = ["{ORIGIN}", "zj.certledger.example/licences"]

[parameters]
"path.licence_id" = {{ dictionary = "licences", probability = 0.5 }}
"query.origin" = {{ dictionary = "origins", probability = 0.5 }}
"""
    path.write_text(text, "utf-8")
    return path


def test_fuzz_every_operation_without_server_errors(server: ApiServer, tmp_path: Path) -> None:
    seed = _seed()
    junit = tmp_path / "junit.xml"
    cmd = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(_config(tmp_path / "schemathesis.toml")),
        "--no-color",
        "run",
        f"{server.base_url}/openapi.json",
        "--checks",
        ",".join(CHECKS),
        "--phases",
        "examples,coverage,fuzzing",
        "--mode",
        "all",
        "--max-examples",
        "10",
        # one worker: schemathesis' coverage phase parses lambdas with ast (via hypothesis), and
        # CPython 3.11's AST builder is not thread-safe ("AST constructor recursion depth mismatch")
        "--workers",
        "1",
        "--seed",
        str(seed),
        "--generation-database",
        "none",
        "--request-timeout",
        "30",
        *(arg for path in EXCLUDED_PATHS for arg in ("--exclude-path", path)),
        "--report",
        "junit",
        "--report-junit-path",
        str(junit),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=170, check=False, cwd=tmp_path)
    output = proc.stdout[-6000:] + proc.stderr[-2000:]
    assert proc.returncode == 0, f"schemathesis failed (seed {seed}):\n{output}\n--- server log ---\n{server.log()}"

    # the run really tested every operation, and each one passed
    suite = ET.parse(junit).getroot()
    cases = suite.findall(".//testcase")
    tested = {str(c.get("name")) for c in cases}
    assert tested == _live_operations(server), f"tested {sorted(tested)}"
    assert tested >= OPERATIONS
    for case in cases:
        assert case.find("failure") is None and case.find("error") is None, ET.tostring(case, "unicode")
    summary = output.split("Test cases:")[-1]
    assert " generated" in summary and "failed" not in summary.split("Seed")[0], output
    # and the server never logged an unhandled exception (every 5xx logs one)
    assert "unhandled error" not in server.log() and "Traceback" not in server.log()


def _live_operations(server: ApiServer) -> set[str]:
    schema = schemathesis.openapi.from_url(f"{server.base_url}/openapi.json")
    live = set()
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]  # an Err would raise here, failing the test
        if operation.path not in EXCLUDED_PATHS:
            live.add(f"{operation.method.upper()} {operation.path}")
    return live


def test_schema_lists_the_api(server: ApiServer) -> None:
    assert _live_operations(server) >= OPERATIONS


# -- canonically encoded record bodies --------------------------------------------------------


def _encode(body: Any) -> bytes:
    if isinstance(body, bytes):  # negative mode also generates raw, non-JSON bodies
        return body
    try:
        return canonical_bytes(body)
    except InvalidInputError:
        # not representable canonically (e.g. an integer beyond 2**53): send it as plain JSON
        return json.dumps(body, ensure_ascii=False, default=repr).encode("utf-8", "surrogatepass")


#: any JSON value, for fields that should hold something else
def _containers(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8), _containers, max_leaves=6)


def _field(*valid: Any) -> st.SearchStrategy[Any]:
    """Mostly (9 in 10) a valid value, so the record gets deep; otherwise any JSON value."""
    return st.tuples(st.integers(0, 9), st.sampled_from(valid), _JSON).map(lambda t: t[1] if t[0] < 9 else t[2])


_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "licence_id": _field("FUZZ-0", "FUZZ-1", "FUZZ-2", "FUZZ-3", "FUZZ-NEW-1", "FUZZ-NEW-2"),
    "type_code": _field("1001", "2002"),
    "region": _field("440305", "440106", "4403"),
    "version": _field(1, 2, 3),
    "files": _field({"pdf": "ab" * 32}, {"ofd": "cd" * 32, "pdf": "ef" * 32}, {"doc": "00" * 32}),
    "metadata": _field({}, {"holder": "某某公司"}),
    "reason_code": _field("enforcement.revoked", "Bad Code"),
    "reason_text": _field("原因", ""),
}
_ISSUE_FIELDS = ("licence_id", "type_code", "region", "version", "files", "metadata")
_FIELDS_BY_TYPE = {
    "ISSUE": _ISSUE_FIELDS,
    "AMEND": (*_ISSUE_FIELDS, "reason_text"),
    "SUSPEND": ("licence_id", "reason_code", "reason_text"),
    "REVOKE": ("licence_id", "reason_code", "reason_text"),
    "RESUME": ("licence_id", "reason_text"),
}

#: (type, payload): the type's fields, mostly valid, over existing and new licence IDs, in and out
#: of the agency's scope — so validly signed records reach the state machine and its refusals
_TYPED_PAYLOAD = st.sampled_from(sorted(_FIELDS_BY_TYPE)).flatmap(
    lambda rtype: st.tuples(
        st.just(rtype), st.fixed_dictionaries({name: _FIELDS[name] for name in _FIELDS_BY_TYPE[rtype]})
    )
)


def test_fuzz_record_submission_with_canonical_bodies(node: TestNode, server: ApiServer) -> None:
    schema = schemathesis.openapi.from_url(f"{server.base_url}/openapi.json")
    operation = schema["/v1/records"]["POST"]
    agency_key = node.agencies[SZ].key
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_headers_conformance,
        response_schema_conformance,
    ]
    statuses: set[int] = set()
    reasons: set[str] = set()

    with httpx.Client(base_url=server.base_url, timeout=30) as http:

        @settings(max_examples=50, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(
            case=operation.as_strategy(generation_mode=GenerationMode.POSITIVE)
            | operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
            # half of the records validly signed: those are the ones that reach the state machine
            how=st.sampled_from(["signed", "signed", "on this ledger", "as generated"]),
            typed_payload=_TYPED_PAYLOAD,
        )
        def submit(case: schemathesis.Case[Any], how: str, typed_payload: tuple[str, dict[str, Any]]) -> None:
            rtype, payload = typed_payload
            body: Any = case.body
            if how != "as generated":
                # the generated envelope, pointed at this ledger and its agency: past the envelope
                # checks, into payload and signature validation ...
                record: dict[str, Any] = {
                    "v": 1,
                    "type": rtype,
                    "origin": ORIGIN,
                    "time": now_utc().strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "nonce": new_nonce(),
                    "agency": SZ,
                    "key_id": agency_key.public_key.key_id,
                    "payload": payload,
                }
                body = {"record": record, "signatures": body.get("signatures") if isinstance(body, dict) else []}
                if how == "signed":
                    # ... and, validly signed by the agency, into the state machine
                    try:
                        sig = agency_key.sign(canonical_bytes(record), signer_id=RECORD_SIGNER_ID)
                    except InvalidInputError:
                        sig = b"\x30\x00"
                    body["signatures"] = [{"key_id": agency_key.public_key.key_id, "sig": b64encode(sig).decode()}]
            resp = http.post("/v1/records", content=_encode(body), headers={"content-type": "application/json"})
            statuses.add(resp.status_code)
            assert resp.status_code < 500, resp.text
            if resp.status_code != 201:
                assert resp.headers["content-type"].startswith("application/problem+json"), resp.text
                reasons.add(resp.json()["reason"])
            case.validate_response(resp, checks=checks)

        submit()

    assert statuses <= {201, 403, 409, 413, 422}, statuses
    # the bodies reached past parsing: signature checks, scope checks or the state machine refused some
    deeper = {r for r in reasons if r.split(".")[0] in ("sig", "agency", "state", "nonce")}
    assert deeper, reasons

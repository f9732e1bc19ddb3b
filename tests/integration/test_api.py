"""The /v1 API against a real ``certledger serve`` process, through httpx.

Every answer is checked the way a client in another province would check it:
inclusion proofs against the root of the signed checkpoint returned with them,
checkpoints opened with the node keys named in the pinned genesis record, and
status/history through :class:`verify_api.client.LedgerClient`.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from api_server import AgencySpec, ApiServer, TestNode, make_node, serving
from click.testing import CliRunner

from ledger.audit import audit
from ledger.blocks import Block, BlockHeader
from ledger.canonical import canonical_bytes
from ledger.checkpoint import OpenedCheckpoint, open_checkpoint
from ledger.identity import checkpoint_verifiers
from ledger.merkle.hashing import TreeHasher
from ledger.merkle.verify import verify_consistency, verify_inclusion
from ledger.records import RECORD_SIGNER_ID, Record, RecordType, SignedRecord, new_nonce, now_utc, sign_record
from ledger.service import Ledger
from nodes.cli import cli
from signing.errors import InvalidInputError, VerificationError
from signing.sm2 import SM2PrivateKey
from verify_api.anchors import TrustAnchors
from verify_api.client import LedgerClient

HASHER = TreeHasher()
ORIGIN = "gd.certledger.example/licences"
SZ = "91440300MA5SZ00001"  # 深圳市市场监督管理局 (test)
GZ = "91440100MA5GZ00001"  # 广州市市场监督管理局 (test)
PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> TestNode:
    agencies = [
        AgencySpec(SZ, "深圳市市场监督管理局", ("4403",), ("1001",)),
        AgencySpec(GZ, "广州市市场监督管理局", ("4401",), ("1001",)),
    ]
    return make_node(tmp_path_factory.mktemp("api") / "gd", ORIGIN, agencies)


@pytest.fixture(scope="module")
def servers(node: TestNode) -> Iterator[tuple[ApiServer, ApiServer]]:
    """The node's server (rate limiting off: the tests hammer one client address on purpose) and a
    second, read-only server over the same ledger with a tiny rate budget. Both start together."""
    main = ApiServer(node.home, env={"CERTLEDGER_API_RATE": "0"})
    limited = ApiServer(node.home, read_only=True, env={"CERTLEDGER_API_RATE": "0.5", "CERTLEDGER_API_BURST": "3"})
    with serving(main, limited):
        yield main, limited


@pytest.fixture(scope="module")
def server(servers: tuple[ApiServer, ApiServer]) -> ApiServer:
    return servers[0]


@pytest.fixture
def http(server: ApiServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def anchors(node: TestNode, server: ApiServer) -> TrustAnchors:
    return TrustAnchors.from_genesis(node.genesis_bytes(), expected_hash=node.genesis_sm3())


def post(http: httpx.Client, body: SignedRecord | bytes) -> httpx.Response:
    data = body.entry_bytes() if isinstance(body, SignedRecord) else body
    return http.post("/v1/records", content=data, headers={"content-type": "application/json"})


def assert_problem(resp: httpx.Response, status: int, reason: str | None = None) -> dict[str, Any]:
    """The error contract: the status, problem+json, a reason code, never a traceback."""
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith(PROBLEM), resp.headers
    body: dict[str, Any] = resp.json()
    assert body["status"] == status
    assert isinstance(body["detail"], str) and "Traceback" not in body["detail"]
    assert body["type"].endswith(body["reason"])
    if reason is not None:
        assert body["reason"] == reason, body
    return body


def open_note(anchors: TrustAnchors, note: str) -> OpenedCheckpoint:
    return open_checkpoint(note, checkpoint_verifiers(anchors.origin, anchors.nodes), origin=anchors.origin)


def check_inclusion(anchors: TrustAnchors, proof: dict[str, Any], entry: bytes, note: str) -> None:
    """``entry`` is leaf ``proof.index`` of the tree the signed ``note`` commits to."""
    cp = open_note(anchors, note).checkpoint
    leaf = HASHER.hash_leaf(entry)
    assert proof["leaf_hash"] == leaf.hex()
    assert proof["tree_size"] == cp.size
    verify_inclusion(HASHER, proof["index"], cp.size, leaf, [bytes.fromhex(h) for h in proof["path"]], cp.root_hash)


_serial = iter(range(1, 1_000_000))


def new_id(prefix: str = "LIC") -> str:
    return f"{prefix}-{next(_serial):06d}"


# -- POST /v1/records -----------------------------------------------------------------------


def test_submit_returns_receipt_that_verifies(node: TestNode, http: httpx.Client, anchors: TrustAnchors) -> None:
    signed = node.issue(SZ, new_id())
    resp = post(http, signed)
    assert resp.status_code == 201, resp.text
    receipt = resp.json()
    assert receipt["record_hash"] == signed.record.record_hash()
    assert receipt["leaf_hash"] == HASHER.hash_leaf(signed.entry_bytes()).hex()
    assert receipt["index"] >= 1 and receipt["block_height"] >= 1
    assert receipt["final"] is True  # one node, quorum 1: its own signature is the quorum
    cp = open_note(anchors, receipt["checkpoint"]).checkpoint
    assert cp.size == receipt["tree_size"] > receipt["index"]
    check_inclusion(anchors, receipt["inclusion_proof"], signed.entry_bytes(), receipt["checkpoint"])


def test_submit_accepts_one_trailing_newline(node: TestNode, http: httpx.Client) -> None:
    signed = node.issue(GZ, new_id())
    resp = post(http, signed.entry_bytes() + b"\n")
    assert resp.status_code == 201, resp.text


def test_double_issue_and_replay_are_conflicts(node: TestNode, http: httpx.Client) -> None:
    lid = new_id()
    first = node.issue(SZ, lid)
    assert post(http, first).status_code == 201
    # the very same bytes again: its nonce is spent
    assert_problem(post(http, first), 409, "nonce.replayed")
    # a fresh record issuing the same licence again
    assert_problem(post(http, node.issue(SZ, lid)), 409, "state.already_issued")
    # and nothing after a revocation
    assert post(http, node.revoke(SZ, lid)).status_code == 201
    assert_problem(post(http, node.resume(SZ, lid)), 409, "state.revoked")


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("garbage", "record.not_canonical"),
        ("empty", "record.not_canonical"),
        ("not_utf8", "record.not_canonical"),
        ("pretty_printed", "record.not_canonical"),
        ("keys_out_of_order", "record.not_canonical"),
        ("array", "record.malformed"),
        ("unknown_type", "record.unknown_type"),
        ("extra_field", "record.malformed"),
        ("bad_nonce", "record.malformed"),
        ("forged_signature", "sig.invalid"),
        ("payload_changed_after_signing", "sig.invalid"),
        ("signed_by_another_key_as_agency_key", "sig.invalid"),
        ("other_origin", "record.origin_mismatch"),
        ("stale_time", "time.out_of_window"),
        ("deep_nesting", "record.not_canonical"),
    ],
)
def test_invalid_records_are_422_with_reason(node: TestNode, http: httpx.Client, name: str, reason: str) -> None:
    good = node.issue(SZ, new_id())
    env = good.to_json()
    body: bytes
    if name == "garbage":
        body = b"this is not json {"
    elif name == "empty":
        body = b""
    elif name == "not_utf8":
        body = b'{"record":"\xff\xfe"}'
    elif name == "pretty_printed":
        body = json.dumps(env, indent=2, ensure_ascii=False).encode()
    elif name == "keys_out_of_order":
        body = json.dumps({"signatures": env["signatures"], "record": env["record"]}, separators=(",", ":")).encode()
    elif name == "array":
        body = b"[1,2,3]"
    elif name == "unknown_type":
        env["record"]["type"] = "TRANSFER"
        body = canonical_bytes(env)
    elif name == "extra_field":
        env["record"]["extra"] = 1
        body = canonical_bytes(env)
    elif name == "bad_nonce":
        env["record"]["nonce"] = "XYZ"
        body = canonical_bytes(env)
    elif name == "forged_signature":
        sig = bytearray(good.signatures[0].sig)
        sig[-3] ^= 0x01
        env["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()
        body = canonical_bytes(env)
    elif name == "payload_changed_after_signing":
        env["record"]["payload"]["metadata"]["holder"] = "冒名公司"
        body = canonical_bytes(env)
    elif name == "signed_by_another_key_as_agency_key":
        # a forger signs with its own key but claims the agency's key_id
        forged = SM2PrivateKey.generate().sign(good.record.signed_bytes(), signer_id=RECORD_SIGNER_ID)
        env["signatures"][0]["sig"] = base64.b64encode(forged).decode()
        body = canonical_bytes(env)
    elif name == "other_origin":
        body = node.issue(SZ, new_id(), origin="zj.certledger.example/licences").entry_bytes()
    elif name == "stale_time":
        body = node.issue(SZ, new_id(), time=now_utc() - timedelta(hours=2)).entry_bytes()
    elif name == "deep_nesting":
        body = b'{"record":' + b"[" * 5000 + b"]" * 5000 + b"}"
    else:
        raise AssertionError(name)
    assert_problem(post(http, body), 422, reason)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("unknown_agency", "agency.unknown"),
        ("unknown_key", "agency.key_unknown"),
        ("region_outside_scope", "agency.scope_region"),
        ("type_outside_scope", "agency.scope_type"),
        ("revoke_by_other_agency", "state.not_issuer"),
    ],
)
def test_unauthorised_agency_is_403(node: TestNode, http: httpx.Client, name: str, reason: str) -> None:
    lid = new_id()
    if name == "unknown_agency":
        rogue = SM2PrivateKey.generate()
        rec = Record(
            RecordType.ISSUE,
            ORIGIN,
            now_utc(),
            new_nonce(),
            "91440000MA5ROGUE01",
            rogue.public_key.key_id,
            node.issue(SZ, lid).record.payload,
        )
        signed = sign_record(rec, [rogue])
    elif name == "unknown_key":
        signed = node.issue(SZ, lid, key=SM2PrivateKey.generate())
    elif name == "region_outside_scope":
        signed = node.issue(SZ, lid, region="440106")  # 广州 region, 深圳 agency
    elif name == "type_outside_scope":
        signed = node.issue(SZ, lid, type_code="2002")
    else:
        assert post(http, node.issue(SZ, lid)).status_code == 201
        signed = node.revoke(GZ, lid)
    assert_problem(post(http, signed), 403, reason)


def test_oversized_body_is_413(node: TestNode, http: httpx.Client) -> None:
    # declared Content-Length over the limit: refused before the body is read
    big = b"{" + b" " * (70 * 1024) + b"}"
    assert_problem(post(http, big), 413, "request.too_large")

    # chunked (no Content-Length): counted while streaming and cut off
    def chunks() -> Iterator[bytes]:
        for _ in range(80):
            yield b" " * 1024

    resp = http.post("/v1/records", content=chunks(), headers={"content-type": "application/json"})
    assert_problem(resp, 413, "request.too_large")


def test_concurrent_submissions_are_all_acknowledged_and_durable(
    node: TestNode, http: httpx.Client, server: ApiServer, anchors: TrustAnchors
) -> None:
    threads, per_thread = 16, 8
    records = [[node.issue(SZ if (t + i) % 2 else GZ, new_id("CC")) for i in range(per_thread)] for t in range(threads)]
    receipts: list[dict[str, Any]] = []
    errors: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(threads)

    def work(batch: list[SignedRecord]) -> None:
        with httpx.Client(base_url=server.base_url, timeout=60) as c:
            barrier.wait()
            for signed in batch:
                resp = post(c, signed)
                with lock:
                    if resp.status_code == 201:
                        receipts.append({**resp.json(), "_entry": signed.entry_bytes()})
                    else:
                        errors.append(resp.text)

    pool = [threading.Thread(target=work, args=(b,)) for b in records]
    for t in pool:
        t.start()
    for t in pool:
        t.join(120)
    assert not errors
    assert len(receipts) == threads * per_thread
    indices = [r["index"] for r in receipts]
    assert len(set(indices)) == len(indices)
    # group commit: fewer blocks than records (several submitters share one fsync)
    assert len({r["block_height"] for r in receipts}) < len(receipts)
    for r in receipts:
        check_inclusion(anchors, r["inclusion_proof"], r["_entry"], r["checkpoint"])
    # durable: another process (this one, opening the database) sees every acknowledged entry,
    # and a replay audit of the whole ledger passes
    ledger = Ledger.open(node.config.database)
    try:
        for r in receipts:
            assert ledger.entry(r["index"]).entry_bytes() == r["_entry"]
        report = audit(ledger.store)
        assert report.ok, report.to_json()
    finally:
        ledger.close()


# -- licences -------------------------------------------------------------------------------


def test_an_unknown_licence_is_proven_absent(
    node: TestNode, http: httpx.Client, server: ApiServer, anchors: TrustAnchors
) -> None:
    """404 carries a proof of absence against the quorum's checkpoint; the client checks it."""
    unknown = new_id()
    resp = http.get(f"/v1/licences/{unknown}")
    assert resp.status_code == 404 and resp.headers["content-type"] == PROBLEM
    problem = resp.json()
    assert problem["reason"] == "state.unknown_licence"
    assert {"tree_size", "status_proof", "checkpoint"} <= set(problem["absence"])
    client = LedgerClient(server.base_url, anchors)
    try:
        with pytest.raises(InvalidInputError) as err:
            client.licence_status(unknown)
        assert err.value.reason == "state.unknown_licence" and err.value.details["proven"] is True
        assert "proven absent" in str(err.value)
    finally:
        client.close()


def test_a_client_refuses_a_head_older_than_one_it_saw(
    node: TestNode, http: httpx.Client, server: ApiServer, anchors: TrustAnchors
) -> None:
    """A consistent but older checkpoint may leave out a REVOKE appended since: refused, and not remembered."""
    assert post(http, node.issue(SZ, new_id())).status_code == 201
    client = LedgerClient(server.base_url, anchors)
    try:
        older = client.checkpoint()
        assert post(http, node.issue(SZ, new_id())).status_code == 201
        newer = client.checkpoint()
        assert newer.checkpoint.size > older.checkpoint.size
        with pytest.raises(VerificationError) as err:
            client.verify_checkpoint(older.note, [])
        assert err.value.reason == "client.stale_checkpoint"
        remembered = client.memory.get(anchors.origin)
        assert remembered is not None and int(remembered["size"]) == newer.checkpoint.size
    finally:
        client.close()


def test_licence_status_and_history_verify(
    node: TestNode, http: httpx.Client, server: ApiServer, anchors: TrustAnchors
) -> None:
    lid = new_id()
    lifecycle = [
        node.issue(SZ, lid),
        node.suspend(SZ, lid),
        node.resume(SZ, lid),
        node.amend(SZ, lid, 2),
    ]
    for signed in lifecycle:
        assert post(http, signed).status_code == 201

    resp = http.get(f"/v1/licences/{lid}")
    assert resp.status_code == 200
    data = resp.json()
    assert (data["licence_id"], data["status"], data["version"], data["issuer"]) == (lid, "ACTIVE", 2, SZ)
    assert data["origin"] == ORIGIN
    assert data["files"] == lifecycle[-1].record.payload["files"]
    assert sorted(data["superseded_files"]) == sorted(lifecycle[0].record.payload["files"].values())
    assert data["latest_record"] == lifecycle[-1].to_json()
    check_inclusion(anchors, data["inclusion_proof"], lifecycle[-1].entry_bytes(), data["checkpoint"])
    # the key admission is the genesis record itself here, included at index 0
    assert data["signing_key"]["inclusion_proof"]["index"] == 0

    client = LedgerClient(server.base_url, anchors)
    try:
        verified = client.licence_status(lid)
        assert verified.status == "ACTIVE" and verified.version == 2
        assert [c.name for c in verified.checks] == [
            "checkpoint",
            "consistency",
            "record inclusion",
            "key admission inclusion",
            "key admission",
            "signature",
            "statement",
            "current status",
        ]
        assert all(c.ok for c in verified.checks)

        assert post(http, node.revoke(SZ, lid)).status_code == 201
        revoked = client.licence_status(lid)
        assert revoked.status == "REVOKED" and revoked.revocation_reason
        # the second checkpoint was checked for consistency with the first one seen
        assert "consistent with the checkpoint seen before" in revoked.checks[1].detail

        history = client.history(lid)
        assert [s.record.type for _, s in history.records] == [
            RecordType.ISSUE,
            RecordType.SUSPEND,
            RecordType.RESUME,
            RecordType.AMEND,
            RecordType.REVOKE,
        ]
    finally:
        client.close()

    hist = http.get(f"/v1/licences/{lid}/history").json()
    assert hist["licence_id"] == lid and len(hist["records"]) == 5
    for item in hist["records"]:
        check_inclusion(anchors, item["inclusion_proof"], canonical_bytes(item["record"]), hist["checkpoint"])


def test_unknown_licence_is_404(node: TestNode, http: httpx.Client) -> None:
    assert_problem(http.get("/v1/licences/NO-SUCH-LICENCE"), 404, "state.unknown_licence")
    # a record about a licence the ledger does not hold is invalid (not "not found": it is a write)
    assert_problem(post(http, node.suspend(SZ, "NO-SUCH-LICENCE")), 422, "state.unknown_licence")
    assert_problem(http.get("/v1/licences/NO-SUCH-LICENCE/history"), 404, "state.unknown_licence")
    # hostile identifiers are just unknown
    for lid in ("%00", "..%2F..%2Fetc", "x" * 4000, "证照-一", "'; DROP TABLE entries; --"):
        resp = http.get(f"/v1/licences/{lid}")
        assert 400 <= resp.status_code < 500, (lid, resp.status_code)
        assert resp.headers["content-type"].startswith(PROBLEM)


# -- log: entries, proofs, checkpoints, blocks ---------------------------------------------------


def test_entries_pages_and_leaves(http: httpx.Client, anchors: TrustAnchors) -> None:
    size = http.get("/healthz").json()["tree_size"]
    page = http.get("/v1/entries", params={"start": 0, "end": 3}).json()
    assert (page["start"], page["end"], page["tree_size"]) == (0, 3, page["tree_size"])
    assert page["tree_size"] >= size
    assert [e["index"] for e in page["entries"]] == [0, 1, 2]
    first = page["entries"][0]
    assert first["entry"]["record"]["type"] == "GENESIS"
    assert HASHER.hash_leaf(canonical_bytes(first["entry"])).hex() == first["leaf_hash"]
    assert canonical_bytes(first["entry"]) == _genesis_entry(anchors, first["entry"])
    # default page is 100 entries; end beyond the tree is clipped
    clipped = http.get("/v1/entries", params={"start": 1, "end": 10**12}).json()
    assert clipped["end"] == min(clipped["tree_size"], 1 + 1000)
    assert_problem(http.get("/v1/entries", params={"start": 10**9}), 422, "entry.range")


def _genesis_entry(anchors: TrustAnchors, entry: dict[str, Any]) -> bytes:
    data = canonical_bytes(entry)
    signed = SignedRecord.from_bytes(data)
    assert signed.record.type is RecordType.GENESIS and signed.record.origin == anchors.origin
    return data


def test_inclusion_and_consistency_proofs(node: TestNode, http: httpx.Client, anchors: TrustAnchors) -> None:
    first = post(http, node.issue(SZ, new_id())).json()
    second = post(http, node.issue(GZ, new_id())).json()
    old = open_note(anchors, first["checkpoint"]).checkpoint
    new = open_note(anchors, second["checkpoint"]).checkpoint

    # inclusion of the first record in the later tree
    proof = http.get("/v1/proofs/inclusion", params={"index": first["index"], "tree_size": new.size}).json()
    leaf = bytes.fromhex(first["leaf_hash"])
    verify_inclusion(HASHER, first["index"], new.size, leaf, [bytes.fromhex(h) for h in proof["path"]], new.root_hash)
    # default tree size: the latest checkpoint
    latest = http.get("/v1/checkpoint").text
    default = http.get("/v1/proofs/inclusion", params={"index": 0}).json()
    assert default["tree_size"] == open_note(anchors, latest).checkpoint.size

    cons = http.get("/v1/proofs/consistency", params={"first": old.size, "second": new.size}).json()
    assert (cons["first"], cons["second"]) == (old.size, new.size)
    path = [bytes.fromhex(h) for h in cons["path"]]
    verify_consistency(HASHER, old.size, new.size, old.root_hash, new.root_hash, path)

    assert_problem(http.get("/v1/proofs/inclusion", params={"index": 0, "tree_size": 10**9}), 422, "proof.range")
    assert_problem(http.get("/v1/proofs/inclusion", params={"index": new.size, "tree_size": new.size}), 422)
    backwards = http.get("/v1/proofs/consistency", params={"first": new.size, "second": old.size})
    assert_problem(backwards, 422, "proof.range")
    assert_problem(http.get("/v1/proofs/consistency", params={"first": 1, "second": 10**9}), 422, "proof.range")


def test_checkpoint_is_a_signed_note(node: TestNode, http: httpx.Client, anchors: TrustAnchors) -> None:
    receipt = post(http, node.issue(SZ, new_id())).json()
    resp = http.get("/v1/checkpoint")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    opened = open_note(anchors, resp.text)
    assert opened.checkpoint.origin == ORIGIN
    assert opened.checkpoint.size >= receipt["tree_size"]
    # an earlier tree size gives exactly the checkpoint that receipt carried
    at = http.get("/v1/checkpoint", params={"size": receipt["tree_size"]})
    assert at.status_code == 200 and at.text == receipt["checkpoint"]
    assert_problem(http.get("/v1/checkpoint", params={"size": 10**12}), 404, "checkpoint.unknown")


def test_blocks_are_signed_and_chained(http: httpx.Client, anchors: TrustAnchors) -> None:
    b0 = http.get("/v1/blocks/0").json()
    b1 = http.get("/v1/blocks/1").json()
    blocks = []
    for data in (b0, b1):
        header = BlockHeader.from_json(data["header"])
        block = Block(header, base64.b64decode(data["signature"]))
        assert block.hash().hex() == data["hash"]
        block.verify(anchors.nodes[0].sm2_public_key)  # the proposer's SM2 signature
        blocks.append(block)
    assert blocks[1].header.prev_hash == blocks[0].hash()
    assert blocks[0].header.origin == ORIGIN and blocks[0].header.tree_size == 1
    assert_problem(http.get("/v1/blocks/1000000"), 404, "block.unknown")


# -- operations -----------------------------------------------------------------------------------


def test_healthz_metrics_openapi(http: httpx.Client) -> None:
    health = http.get("/healthz").json()
    assert health["status"] == "ok" and health["origin"] == ORIGIN and health["node_id"] == "node-1"
    assert health["tree_size"] >= 1

    http.get("/v1/licences/NO-SUCH")  # a 404 to count
    metrics = http.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert "# TYPE certledger_http_requests_total counter" in text
    assert 'certledger_http_requests_total{route="/v1/licences/{licence_id}",status="404"}' in text
    assert "certledger_http_request_seconds_bucket" in text
    assert "certledger_tree_size" in text

    spec = http.get("/openapi.json").json()
    assert spec["info"]["title"] == "certledger verification API"
    expected = {
        "/v1/records",
        "/v1/licences/{licence_id}",
        "/v1/licences/{licence_id}/history",
        "/v1/entries",
        "/v1/proofs/inclusion",
        "/v1/proofs/consistency",
        "/v1/checkpoint",
        "/v1/blocks/{height}",
        "/v1/federation",
        "/v1/federation/licences/{licence_id}",
        "/healthz",
        "/metrics",
    }
    assert expected <= set(spec["paths"])
    # error bodies are declared as what they are: problem+json with the reason code
    not_found = spec["paths"]["/v1/licences/{licence_id}"]["get"]["responses"]["404"]
    assert list(not_found["content"]) == [PROBLEM]
    assert "reason" in spec["components"]["schemas"]["Problem"]["required"]
    assert "requestBody" in spec["paths"]["/v1/records"]["post"]
    # the answers of the HTTP protocol and the limits are declared where they can occur
    paths = spec["paths"]
    for item in paths.values():
        for operation in item.values():
            assert {"400", "408", "431", "503"} <= set(operation["responses"]), operation["operationId"]
            # the connection bound's 503, also where a route has a 503 of its own (/healthz)
            assert "request.too_many_connections" in operation["responses"]["503"]["description"]
    submit = paths["/v1/records"]["post"]["responses"]
    assert {"408", "413"} <= set(submit) and "429" not in submit  # authenticated by signatures, not rate limited
    assert list(submit["408"]["content"]) == [PROBLEM]
    for path in ("/v1/entries", "/v1/federation", "/v1/checkpoint", "/v1/licences/{licence_id}"):
        limited = paths[path]["get"]["responses"]
        assert "429" in limited and "Retry-After" in limited["429"]["headers"], path
    assert "429" not in paths["/healthz"]["get"]["responses"]
    assert "413" in paths["/v1/verify"]["post"]["responses"]


def test_submission_metrics_count_outcomes(node: TestNode, http: httpx.Client) -> None:
    assert post(http, node.issue(SZ, new_id())).status_code == 201
    post(http, b"junk")
    text = http.get("/metrics").text
    assert 'certledger_submissions_total{outcome="accepted"}' in text
    assert 'certledger_submissions_total{outcome="malformed"}' in text


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [
        ("GET", "/v1/entries", {"params": {"start": "abc"}}, 422),
        ("GET", "/v1/entries", {"params": {"start": -1}}, 422),
        ("GET", "/v1/entries", {"params": {"start": 0, "end": 0}}, 422),
        ("GET", "/v1/entries", {"params": {"start": 2**64}}, 422),
        ("GET", "/v1/entries", {"params": {"start": "1e3"}}, 422),
        ("GET", "/v1/proofs/inclusion", {}, 422),
        ("GET", "/v1/proofs/inclusion", {"params": {"index": 2**63}}, 422),
        ("GET", "/v1/proofs/inclusion", {"params": {"index": -5}}, 422),
        ("GET", "/v1/proofs/inclusion", {"params": {"index": 10**30, "tree_size": 10**30}}, 422),
        ("GET", "/v1/proofs/consistency", {"params": {"first": "x"}}, 422),
        ("GET", "/v1/proofs/consistency", {"params": {"first": 10**40}}, 422),
        ("GET", "/v1/checkpoint", {"params": {"size": 10**40}}, 422),
        ("GET", "/v1/checkpoint", {"params": {"size": 0}}, 422),
        ("GET", "/v1/blocks/-1", {}, 422),
        ("GET", "/v1/blocks/abc", {}, 422),
        ("GET", "/v1/blocks/99999999999999999999999999", {}, 422),
        ("GET", "/v1/blocks/9223372036854775807", {}, 404),
        ("GET", "/v1/no-such-route", {}, 404),
        ("GET", "/v1/records", {}, 405),
        ("DELETE", "/v1/licences/X", {}, 405),
        ("POST", "/v1/records", {"data": {"a": "b"}}, 422),
        ("POST", "/v1/records", {"files": {"f": ("x.json", b"{}")}}, 422),
        ("POST", "/v1/records", {"content": b"{}", "headers": {"content-type": "text/xml"}}, 422),
        ("GET", "/v1/federation/licences/X", {}, 422),
    ],
)
def test_bad_requests_are_4xx_problems_never_5xx(
    http: httpx.Client, method: str, path: str, kwargs: dict[str, Any], status: int
) -> None:
    resp = http.request(method, path, **kwargs)
    body = assert_problem(resp, status)
    assert body["reason"]


# -- limits on other servers: rate limit, read-only ---------------------------------------------


def test_rate_limit_is_429_with_retry_after(node: TestNode, servers: tuple[ApiServer, ApiServer]) -> None:
    with httpx.Client(base_url=servers[1].base_url, timeout=10) as c:
        statuses = [c.get("/v1/checkpoint").status_code for _ in range(6)]
        assert statuses[:3] == [200, 200, 200]
        assert statuses[3:] == [429, 429, 429]
        resp = c.get("/v1/entries")
        assert_problem(resp, 429, "request.rate_limited")
        assert int(resp.headers["retry-after"]) >= 1
        # operations endpoints are not rate limited
        assert all(c.get("/healthz").status_code == 200 for _ in range(5))
        # a read-only server refuses submissions with a reason
        assert_problem(post(c, node.issue(SZ, new_id())), 422, "ledger.read_only")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CERTLEDGER_API_RATE", "fast"),
        ("CERTLEDGER_API_BURST", "-1"),
        ("CERTLEDGER_API_RATE", "nan"),  # compares false with everything: it turned the limit off
        ("CERTLEDGER_API_RATE", "inf"),
        ("CERTLEDGER_API_BURST", "1e400"),
    ],
)
def test_bad_rate_knob_fails_at_start(node: TestNode, name: str, value: str) -> None:
    # in-process: the knob is read before uvicorn starts, so a bad one ends the command at once
    result = CliRunner().invoke(
        cli, ["serve", "--home", str(node.home), "--read-only", "--port", "1"], env={name: value}
    )
    assert result.exit_code != 0
    assert f"{name} must" in result.stderr and "[config.invalid]" in result.stderr


def test_file_verification_without_province_roots_is_503(http: httpx.Client, node: TestNode) -> None:
    # this node's home has no <home>/trust/*.pem: it cannot judge any file, whatever the upload
    assert not list((node.home / "trust").glob("*.pem"))
    resp = http.post("/v1/verify", content=b"%PDF-1.7\n%%EOF\n", headers={"content-type": "application/pdf"})
    assert resp.status_code == 503, resp.text
    assert resp.headers["content-type"].startswith(PROBLEM) and resp.json()["reason"] == "verify.no_roots"

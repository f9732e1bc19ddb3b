"""Federation between two provinces on loopback: 广东 (A) verifies 浙江 (B) licences without trusting B.

Set-up (module scope):

* B (origin ``zj.certledger.example/licences``) and A (``gd.certledger.example/licences``)
  are real ledgers served by real ``certledger serve`` processes;
* B' is a *fork* of B: a copy of B's home (same genesis, same node keys) taken
  at an early size, after which B and B' append different records — so B' signs
  perfectly valid checkpoints over a tree that contradicts B's;
* A's federation registry lists B with B's genesis (``certledger genesis --out``)
  pinned by SM3, and a single endpoint: a small fake "province B" server
  (:class:`LyingProvince`) that relays B faithfully, or lies on request:
  tampered inclusion proofs, a status that contradicts the record, B''s forked
  checkpoints, or no answer at all.

Each lie must be caught by A (a 4xx problem with the reason, never a 5xx), never
cached (a later outage serves the last *verified* answer, not the lie), and kept
as evidence in ``federation/federation-evidence.json`` — for a fork, both signed
checkpoints.
"""

from __future__ import annotations

import json
import re
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_server import AgencySpec, ApiServer, TestNode, make_node, serving
from click.testing import CliRunner

from cert_formats.identifier import LicenceIdentifier
from ledger.checkpoint import open_checkpoint
from ledger.identity import checkpoint_verifiers
from nodes.cli import cli
from nodes.config import load_config
from verify_api.anchors import TrustAnchors

GD_ORIGIN = "gd.certledger.example/licences"
ZJ_ORIGIN = "zj.certledger.example/licences"
GD_AGENCY = "91440300MA5SZ00001"
ZJ_AGENCY = "91330100MA2ZJ00001"  # 杭州 (region 330100 inside the credit code)
ZJ_TYPE = "113300000024821410001"  # a GB/T 36904 type code: defining agency's credit code + 001
PROBLEM = "application/problem+json"

#: a 浙江 licence named by a GB/T 36904 identifier: A can route it to B from its issuer code alone
ZJ_ACTIVE = str(LicenceIdentifier.build(ZJ_TYPE, ZJ_AGENCY, "ZJ2026000001"))
ZJ_REVOKED = "ZJ-REVOKED-1"
ZJ_HIDDEN = "ZJ-REVOKED-2"  # revoked; the liar will claim it is active
ZJ_OTHER = "ZJ-ACTIVE-2"
ZJ_LATER = "ZJ-LATER-1"  # issued on B after the fork point, never asked about before B goes down


# -- the lying province ------------------------------------------------------------------------


class LyingProvince:
    """A fake "province B" on loopback: relays B's real API, or lies as ``mode`` says.

    Modes: ``honest``; ``tamper_proof`` (one hash of the licence's inclusion path changed);
    ``status_lie`` (the licence's status flipped ACTIVE <-> REVOKED); ``fork`` (relays B',
    whose checkpoints are validly signed by B's node keys over a diverging tree); ``down``
    (every request answered 503); ``drip`` (an answer one byte every 0.2 s, never complete);
    ``deep`` (JSON nested 200,000 deep); ``huge`` (a 12 MiB answer).
    """

    _STATUS_PATH = re.compile(r"^/v1/licences/[^/?]+(\?.*)?$")

    def __init__(self, honest_url: str, fork_url: str) -> None:
        self.honest_url = honest_url
        self.fork_url = fork_url
        self.mode = "honest"
        self.requests: list[str] = []
        province = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                province.requests.append(self.path)
                if province.mode == "drip":
                    self.send_response(200)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", "100000")
                    self.end_headers()
                    for _ in range(150):  # 30 s at most, unless the client goes away first
                        try:
                            self.wfile.write(b" ")
                            self.wfile.flush()
                        except OSError:
                            return
                        time.sleep(0.2)
                    return
                status, ctype, body = province.answer(self.path)
                self.send_response(status)
                self.send_header("content-type", ctype)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def start(self) -> LyingProvince:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def answer(self, path: str) -> tuple[int, str, bytes]:
        mode = self.mode
        if mode == "down":
            return 503, PROBLEM, b'{"reason":"test.down","status":503}'
        if mode == "deep":
            return 200, "application/json", b"[" * 200_000
        if mode == "huge":
            return 200, "application/json", b'{"pad":"' + b"x" * (12 * 1024 * 1024) + b'"}'
        upstream = self.fork_url if mode == "fork" else self.honest_url
        try:
            resp = httpx.get(upstream + path, timeout=10)
        except httpx.HTTPError as exc:
            return 502, PROBLEM, json.dumps({"reason": "test.upstream", "detail": str(exc)}).encode()
        body = resp.content
        if resp.status_code == 200 and self._STATUS_PATH.match(path) and mode in ("tamper_proof", "status_lie"):
            data = resp.json()
            if mode == "tamper_proof":
                path_hashes = data["inclusion_proof"]["path"]
                first = path_hashes[0]
                path_hashes[0] = first[:-1] + ("0" if first[-1] != "0" else "1")
            else:
                data["status"] = "ACTIVE" if data["status"] == "REVOKED" else "REVOKED"
            body = json.dumps(data).encode()
        return resp.status_code, resp.headers.get("content-type", "application/json"), body


# -- the two provinces -------------------------------------------------------------------------


@dataclass
class Federation:
    gd: TestNode
    zj: TestNode
    zj_fork: TestNode
    a: ApiServer
    b: ApiServer
    b_fork: ApiServer
    liar: LyingProvince
    genesis_file: Path
    genesis_sm3: str
    anchors: TrustAnchors

    def ask(self, licence_id: str, origin: str | None = ZJ_ORIGIN) -> httpx.Response:
        params = {"origin": origin} if origin else {}
        return httpx.get(f"{self.a.base_url}/v1/federation/licences/{licence_id}", params=params, timeout=60)

    def evidence(self) -> list[dict[str, Any]]:
        path = self.gd.home / "federation" / "federation-evidence.json"
        return json.loads(path.read_text("utf-8")) if path.exists() else []


def _cli(*args: str) -> Any:
    """The real ``certledger`` command, in-process (a fresh interpreter per call is slow)."""
    result = CliRunner().invoke(cli, list(args), env={"CERTLEDGER_PASSPHRASE": None})
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    root = tmp_path_factory.mktemp("federation")
    gd = make_node(root / "gd", GD_ORIGIN, [AgencySpec(GD_AGENCY, "深圳市市场监督管理局", ("4403",), ("1001",))])
    zj = make_node(root / "zj", ZJ_ORIGIN, [AgencySpec(ZJ_AGENCY, "杭州市市场监督管理局", ("33",), (ZJ_TYPE,))])

    # B's common history (B and its fork share it)
    zj.append([zj.issue(ZJ_AGENCY, lid) for lid in (ZJ_ACTIVE, ZJ_REVOKED, ZJ_HIDDEN, ZJ_OTHER)])
    zj.append([zj.revoke(ZJ_AGENCY, ZJ_REVOKED), zj.revoke(ZJ_AGENCY, ZJ_HIDDEN)])

    # the fork: same genesis, same node keys, its own database from here on
    shutil.copytree(zj.home, root / "zj-fork")
    fork_cfg = load_config(root / "zj-fork")
    fork_cfg.database = fork_cfg.default_database()
    fork_cfg.save()
    zj_fork = TestNode(root / "zj-fork", ZJ_ORIGIN, zj.agencies)

    # ... then they diverge: B grows honestly, B' grows differently (and larger)
    zj.append([zj.issue(ZJ_AGENCY, ZJ_LATER), zj.issue(ZJ_AGENCY, "ZJ-LATER-2")])
    zj_fork.append([zj_fork.issue(ZJ_AGENCY, f"ZJ-FORK-{i}") for i in range(5)])

    # A pins B's genesis, exported with `certledger genesis --out`
    genesis_file = gd.home / "zj-genesis.json"
    exported = _cli("genesis", "--home", str(zj.home), "--out", str(genesis_file), "--json")
    genesis_sm3 = exported["genesis_sm3"]
    assert genesis_sm3 == zj.genesis_sm3()

    b = ApiServer(zj.home, read_only=True)
    b_fork = ApiServer(zj_fork.home, read_only=True)
    liar = LyingProvince(b.base_url, b_fork.base_url).start()
    (gd.home / "federation.toml").write_text(
        f"""
[[province]]
name = "浙江省"
origin = "{ZJ_ORIGIN}"
endpoints = ["{liar.url}"]
regions = ["33"]
genesis_file = "zj-genesis.json"
genesis_sm3 = "{genesis_sm3}"
""",
        "utf-8",
    )
    with (gd.home / "certledger.toml").open("a", encoding="utf-8") as f:
        f.write('\n[federation]\nregistry = "federation.toml"\n')
    a = ApiServer(gd.home, read_only=True, env={"CERTLEDGER_API_RATE": "0"})
    anchors = TrustAnchors.from_genesis(genesis_file.read_bytes(), expected_hash=genesis_sm3)
    try:
        with serving(a, b, b_fork):
            yield Federation(gd, zj, zj_fork, a, b, b_fork, liar, genesis_file, genesis_sm3, anchors)
    finally:
        liar.stop()


@pytest.fixture
def liar(fed: Federation) -> Iterator[LyingProvince]:
    fed.liar.mode = "honest"
    yield fed.liar
    fed.liar.mode = "honest"


def assert_problem(resp: httpx.Response, status: int, reason: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = resp.json()
    assert body["reason"] == reason, body
    return body


EXPECTED_CHECKS = [
    "checkpoint",
    "consistency",
    "record inclusion",
    "key admission inclusion",
    "key admission",
    "signature",
    "statement",
    "current status",
]


# -- genuine answers -------------------------------------------------------------------------


def test_registry_is_listed(fed: Federation) -> None:
    listed = httpx.get(f"{fed.a.base_url}/v1/federation").json()["provinces"]
    assert listed == [
        {
            "name": "浙江省",
            "origin": ZJ_ORIGIN,
            "endpoints": [fed.liar.url],
            "regions": ["33"],
            "genesis_sm3": fed.genesis_sm3,
        }
    ]


def test_genuine_licence_is_verified_with_every_check(fed: Federation, liar: LyingProvince) -> None:
    resp = fed.ask(ZJ_OTHER)
    assert resp.status_code == 200, resp.text
    data = resp.json()
    assert (data["province"], data["origin"], data["licence_id"]) == ("浙江省", ZJ_ORIGIN, ZJ_OTHER)
    assert (data["status"], data["version"], data["issuer"]) == ("ACTIVE", 1, ZJ_AGENCY)
    assert data["stale"] is False and data["error"] == ""
    assert [c["name"] for c in data["checks"]] == EXPECTED_CHECKS
    assert all(c["ok"] for c in data["checks"])
    # the answer carries B's signed checkpoint: anyone holding B's genesis can re-check it
    cp = open_checkpoint(
        data["checkpoint"], checkpoint_verifiers(ZJ_ORIGIN, fed.anchors.nodes), origin=ZJ_ORIGIN
    ).checkpoint
    assert cp.size == data["tree_size"] == httpx.get(f"{fed.b.base_url}/healthz").json()["tree_size"]


def test_gbt36904_identifier_is_routed_by_its_issuer_region(fed: Federation, liar: LyingProvince) -> None:
    resp = fed.ask(ZJ_ACTIVE, origin=None)  # no origin: 1.2.156.3005.2.{type}.9133 0100….  -> region 33 -> B
    assert resp.status_code == 200, resp.text
    assert resp.json()["origin"] == ZJ_ORIGIN and resp.json()["status"] == "ACTIVE"
    # an identifier from a region no registered province covers, and an unknown origin
    gd_id = str(LicenceIdentifier.build(ZJ_TYPE, "91440300MA5SZ00001", "GD2026000001"))
    assert_problem(fed.ask(gd_id, origin=None), 422, "federation.unknown_origin")
    assert_problem(fed.ask("PLAIN-ID", origin=None), 422, "federation.unknown_origin")
    assert_problem(fed.ask(ZJ_OTHER, origin="xx.certledger.example/licences"), 422, "federation.unknown_origin")


def test_revoked_licence_is_reported_revoked(fed: Federation, liar: LyingProvince) -> None:
    resp = fed.ask(ZJ_REVOKED)
    assert resp.status_code == 200, resp.text
    data = resp.json()
    assert data["status"] == "REVOKED" and data["revocation_reason"]
    assert data["record"]["record"]["type"] == "REVOKE"
    assert all(c["ok"] for c in data["checks"])


def test_unknown_licence_on_remote_is_404(fed: Federation, liar: LyingProvince) -> None:
    assert_problem(fed.ask("ZJ-NO-SUCH"), 404, "state.unknown_licence")


# -- lies ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "licence_id", "reason"),
    [
        ("tamper_proof", ZJ_OTHER, "proof.inclusion"),
        ("status_lie", ZJ_HIDDEN, "client.status_mismatch"),  # hides a revocation
        ("status_lie", ZJ_ACTIVE, "client.status_mismatch"),  # invents one
        ("fork", ZJ_ACTIVE, "checkpoint.fork"),
    ],
)
def test_lies_are_detected_never_cached_and_kept_as_evidence(
    fed: Federation, liar: LyingProvince, mode: str, licence_id: str, reason: str
) -> None:
    # 1. an honest answer first: A has verified (and cached) B's real state
    honest = fed.ask(licence_id)
    assert honest.status_code == 200, honest.text
    truth = honest.json()

    # 2. the lie is refused with its reason: a problem, not a 5xx and not an answer
    liar.mode = mode
    before = len(fed.evidence())
    body = assert_problem(fed.ask(licence_id), 422, reason)
    assert "Traceback" not in body["detail"]

    # 3. the evidence is on disk, with the signed statements involved
    evidence = fed.evidence()
    assert len(evidence) == before + 1
    item = evidence[-1]
    assert (item["origin"], item["licence_id"], item["reason"]) == (ZJ_ORIGIN, licence_id, reason)
    assert item["endpoint"] == liar.url
    if mode == "fork":
        seen, received = item["details"]["seen_before"], item["details"]["received"]
        verifiers = checkpoint_verifiers(ZJ_ORIGIN, fed.anchors.nodes)
        # both heads carry valid signatures by B's node keys: together they prove B forked
        old = open_checkpoint(seen, verifiers, origin=ZJ_ORIGIN).checkpoint
        new = open_checkpoint(received, verifiers, origin=ZJ_ORIGIN).checkpoint
        assert old.size == truth["tree_size"] and new.size > old.size
        fork_size = httpx.get(f"{fed.b_fork.base_url}/healthz").json()["tree_size"]
        assert new.size == fork_size

    # 4. never cached: with B unreachable, A serves the last *verified* answer, not the lie
    liar.mode = "down"
    stale = fed.ask(licence_id)
    assert stale.status_code == 200, stale.text
    cached = stale.json()
    assert cached["stale"] is True and cached["error"]
    assert (cached["status"], cached["tree_size"], cached["checkpoint"]) == (
        truth["status"],
        truth["tree_size"],
        truth["checkpoint"],
    )

    # 5. and the lie did not poison A's memory of B: honest answers verify again
    liar.mode = "honest"
    again = fed.ask(licence_id)
    assert again.status_code == 200 and again.json()["stale"] is False


# -- B unreachable -------------------------------------------------------------------------------


def test_unreachable_province_gives_last_verified_state_marked_stale(fed: Federation, liar: LyingProvince) -> None:
    first = fed.ask(ZJ_REVOKED)
    assert first.status_code == 200
    fed.b.stop()
    try:
        time.sleep(1.2)
        resp = fed.ask(ZJ_REVOKED)
        assert resp.status_code == 200, resp.text
        data = resp.json()
        assert data["stale"] is True
        assert data["age_seconds"] >= 1.0
        assert data["error"]  # why it is stale
        assert data["status"] == "REVOKED" and data["fetched_at"] == first.json()["fetched_at"]
        # a licence A never verified cannot be answered at all
        assert_problem(fed.ask(ZJ_LATER), 502, "federation.unreachable")
    finally:
        fed.b.start()
    fresh = fed.ask(ZJ_REVOKED).json()
    assert fresh["stale"] is False and fresh["fetched_at"] > first.json()["fetched_at"]


# -- B hostile on the wire ----------------------------------------------------------------------


def test_a_province_nesting_json_too_deep_is_a_lie_not_a_crash(fed: Federation, liar: LyingProvince) -> None:
    liar.mode = "deep"
    assert_problem(fed.ask(ZJ_LATER), 422, "remote.malformed")


def test_a_province_answering_too_much_is_unreachable(fed: Federation, liar: LyingProvince) -> None:
    liar.mode = "huge"
    body = assert_problem(fed.ask(ZJ_LATER), 502, "federation.unreachable")
    assert "larger than" in body["detail"]


def test_a_dripping_province_times_out_and_never_starves_the_node(fed: Federation, liar: LyingProvince) -> None:
    """An answer one byte at a time holds off every per-read timeout: the whole answer has a deadline
    (5 s), at most 8 lookups wait at once (more get 503 at once), and the node's own routes answer."""
    liar.mode = "drip"
    answers: list[httpx.Response] = []
    started = time.monotonic()
    askers = [threading.Thread(target=lambda: answers.append(fed.ask(ZJ_LATER))) for _ in range(12)]
    for t in askers:
        t.start()
    time.sleep(1.0)
    own = httpx.get(f"{fed.a.base_url}/healthz", timeout=5)
    assert own.status_code == 200  # while 8 lookups wait on B
    for t in askers:
        t.join(timeout=30)
    elapsed = time.monotonic() - started
    assert len(answers) == 12
    statuses = sorted(r.status_code for r in answers)
    assert statuses.count(503) >= 4, statuses  # beyond the 8 in flight: pushed back, Retry-After
    assert all(r.headers.get("retry-after") for r in answers if r.status_code == 503)
    for r in answers:
        if r.status_code != 503:
            body = assert_problem(r, 502, "federation.unreachable")
            assert "no complete answer within" in body["detail"], body
    assert elapsed < 15, elapsed


# -- the CLI against B ---------------------------------------------------------------------------


def test_cli_remote_status_and_checkpoint(fed: Federation, run_cli: Any, tmp_path: Path) -> None:
    state = tmp_path / "client-state.json"
    common = ["--url", fed.b.base_url, "--genesis", str(fed.genesis_file), "--genesis-sm3", fed.genesis_sm3]
    common += ["--state", str(state)]

    # as a separate process, exactly as an operator runs it
    status = run_cli("remote", "status", *common, ZJ_REVOKED, "--json")
    assert status.rc == 0, status.stderr
    data = status.json
    assert (data["licence_id"], data["status"]) == (ZJ_REVOKED, "REVOKED")
    assert [c["name"] for c in data["checks"]] == EXPECTED_CHECKS
    runner = CliRunner()
    human = runner.invoke(cli, ["remote", "status", *common, ZJ_ACTIVE])
    assert human.exit_code == 0 and f"{ZJ_ACTIVE}: ACTIVE" in human.stdout and "✓ signature" in human.stdout
    cp = runner.invoke(cli, ["remote", "checkpoint", *common, "--json"])
    assert cp.exit_code == 0, cp.stderr
    assert json.loads(cp.stdout)["size"] == data["tree_size"]

    # the same state file pointed at the fork: its checkpoint contradicts the one seen
    fork_args = [*common]
    fork_args[1] = fed.b_fork.base_url
    forked = runner.invoke(cli, ["remote", "checkpoint", *fork_args])
    assert forked.exit_code != 0
    assert forked.stderr.strip().endswith("[checkpoint.fork]"), forked.stderr
    # a wrong pin is refused before anything is asked
    wrong_pin = ["--url", fed.b.base_url, "--genesis", str(fed.genesis_file), "--genesis-sm3", "00" * 32]
    pinned = runner.invoke(cli, ["remote", "status", *wrong_pin, "--state", str(state), ZJ_ACTIVE])
    assert pinned.exit_code != 0 and "[anchors.genesis_hash]" in pinned.stderr

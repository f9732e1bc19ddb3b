"""The local cluster working normally: real etcd, 4 real node processes.

Every node accepts submissions and acknowledges them only once final; all
nodes hold the same blocks and the same checkpoints; a client that trusts
only the pinned GENESIS verifies a licence from any node; the CLI reports the
cluster's state.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from ledger.checkpoint import Checkpoint, open_checkpoint, verify_quorum
from ledger.identity import NodeKeys
from ledger.records import SignedRecord
from nodes.cluster import SUBMISSIONS_MEDIA_TYPE, encode_submissions
from nodes.handon_ticket import TICKET_HEADER, issue_ticket
from signing.sm2 import SM2PrivateKey
from signing.sm3 import sm3
from verify_api.anchors import TrustAnchors
from verify_api.client import LedgerClient

from .conftest import Cluster, start_cluster, stop_cluster, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One cluster for the whole module: these tests only add records, they inject no faults."""
    c = start_cluster(tmp_path_factory.mktemp("basics") / "cluster")
    try:
        yield c
    finally:
        stop_cluster(c)


@pytest.fixture(scope="module")
def submitted(running: Cluster) -> list[dict[str, object]]:
    """Acks of records submitted to every node: one at a time, then 40 concurrently."""
    acks = [running.submit_ok(i) for i in range(running.n)]
    records = running.records(40)
    with ThreadPoolExecutor(8) as pool:
        acks += list(pool.map(lambda p: running.submit_ok(p[0] % running.n, p[1]), enumerate(records)))
    return acks


def body(note: str) -> Checkpoint:
    """The checkpoint a signed note states (origin, size, root), without its signature lines."""
    text = note.split("\n\n", 1)[0] + "\n"
    return Checkpoint.parse(text)


def anchors_of(running: Cluster) -> TrustAnchors:
    """What a remote verifier trusts: the GENESIS record, pinned by its SM3 hash."""
    genesis = (running.layout.root / "genesis.json").read_bytes()
    return TrustAnchors.from_genesis(genesis, expected_hash=sm3(genesis.removesuffix(b"\n")).hex())


def test_every_node_accepts_submissions_and_acks_only_final(
    running: Cluster, submitted: list[dict[str, object]]
) -> None:
    anchors = anchors_of(running)
    assert len(submitted) == 44
    assert all(a["final"] is True for a in submitted)
    indices = [int(str(a["index"])) for a in submitted]
    assert len(set(indices)) == len(indices), "two acks name the same leaf index"
    for ack in submitted:
        # the ack's checkpoint covers the record and is signed by a quorum of distinct genesis nodes
        opened = open_checkpoint(str(ack["checkpoint"]), anchors.checkpoint_verifiers, origin=anchors.origin)
        quorum = verify_quorum(opened, anchors.quorum_names, anchors.quorum_threshold)
        assert len(quorum.signers) >= 3
        assert opened.checkpoint.size == ack["tree_size"]
        assert opened.checkpoint.size > int(str(ack["index"]))


def test_nodes_converge_to_identical_blocks_and_checkpoints(
    running: Cluster, submitted: list[dict[str, object]]
) -> None:
    heads = running.wait_converged(list(range(running.n)), timeout=60)
    height = heads[0]["height"]
    assert height >= 2
    # every block at every height is the same block on every node
    for h in range(height + 1):
        hashes = {running.http.get(f"{running.api(i)}/v1/blocks/{h}").json()["hash"] for i in range(running.n)}
        assert len(hashes) == 1, f"nodes disagree on block {h}: {hashes}"
    # and every node's final checkpoint states the same tree head
    bodies = {body(h["note"]) for h in heads}
    assert len(bodies) == 1, bodies
    (cp,) = bodies
    assert cp.size == heads[0]["final"] == running.tree_size(0)
    # the entries are the same bytes everywhere
    entries = [running.entry_hashes(i, 0, cp.size) for i in range(running.n)]
    assert all(e == entries[0] for e in entries)
    for ack in submitted:
        assert entries[0][int(str(ack["index"]))] == ack["record_hash"]


def test_a_client_pinning_genesis_verifies_a_licence_from_every_node(
    running: Cluster, submitted: list[dict[str, object]]
) -> None:
    anchors = anchors_of(running)
    assert anchors.quorum_threshold == 3
    ack = submitted[0]
    entry = running.http.get(
        f"{running.api(0)}/v1/entries", params={"start": ack["index"], "end": int(str(ack["index"])) + 1}
    )
    licence_id = entry.json()["entries"][0]["entry"]["record"]["payload"]["licence_id"]
    for i in range(running.n):
        client = LedgerClient(running.api(i), anchors)
        try:
            verified = client.licence_status(licence_id)
        finally:
            client.close()
        assert verified.status == "ACTIVE"
        assert verified.licence_id == licence_id
        assert len(verified.checkpoint.signers) >= 3
        assert all(c.ok for c in verified.checks), verified.checks


def test_cli_status_json_shows_heights_lag_leader_and_final_size(
    running: Cluster, submitted: list[dict[str, object]], run_cli: object
) -> None:
    heads = running.wait_converged(list(range(running.n)), timeout=60)
    result = run_cli("cluster", "status", "--dir", running.layout.root, "--json")  # type: ignore[operator]
    assert result.rc == 0, result.stderr
    data = json.loads(result.stdout)
    leader = running.leader()
    assert data["leader"] == f"node-{leader + 1}"
    assert data["final_tree_size"] == heads[0]["final"]
    assert [n["node"] for n in data["nodes"]] == [f"node-{i + 1}" for i in range(running.n)]
    for n in data["nodes"]:
        assert n["running"] is True
        assert n["height"] == heads[0]["height"]
        assert n["lag"] == 0
        assert n["final_tree_size"] == heads[0]["final"]
        assert n["api"].startswith("http://127.0.0.1:")
    assert all(m["healthy"] for m in data["etcd"])
    assert len(data["etcd"]) == 3
    assert Path(running.layout.root / "state.json").exists()


def test_resubmitting_a_committed_record_returns_its_acknowledgement(
    running: Cluster, submitted: list[dict[str, object]]
) -> None:
    # a client that got a 5xx (outcome unknown) may submit again: it gets the same leaf, not a second one
    rec = running.record()
    first = running.submit_ok(0, rec)
    for i in range(running.n):
        again = running.submit_ok(i, rec)
        assert again["index"] == first["index"]
        assert again["record_hash"] == first["record_hash"]
        assert again["final"] is True
    heads = running.wait_converged(list(range(running.n)), timeout=60)
    entries = running.entry_hashes(0, 0, heads[0]["final"])
    assert list(entries.values()).count(str(first["record_hash"])) == 1


def test_a_burst_of_large_records_becomes_final_in_bounded_blocks(running: Cluster) -> None:
    """120 records of ~15 KB (incompressible metadata) at once, ~1.8 MB: more than one etcd request may carry.

    Every record becomes final and no block carries more than the 1 MiB of entries a proposal
    takes at most (the bound itself: tests/unit/ledger/test_block_value.py).
    """
    records = [running.record(padding=base64.b64encode(os.urandom(11_000)).decode()) for _ in range(120)]
    size = {r.record.record_hash(): len(r.entry_bytes()) for r in records}
    assert sum(size.values()) > int(1.5 * 1024 * 1024)

    def submit(i: int) -> dict[str, object]:
        # a client per submission: the cluster's shared client pools at most 100 connections
        resp = httpx.post(running.api(i % running.n) + "/v1/records", content=records[i].entry_bytes(), timeout=60)
        assert resp.status_code == 201, resp.text[:300]
        ack: dict[str, object] = resp.json()
        return ack

    with ThreadPoolExecutor(len(records)) as pool:
        acks = list(pool.map(submit, range(len(records))))
    assert all(ack["final"] for ack in acks)
    per_block: dict[int, int] = {}
    for ack in acks:
        height = int(ack["block_height"])  # type: ignore[call-overload]
        per_block[height] = per_block.get(height, 0) + size[str(ack["record_hash"])]
    assert len(per_block) >= 2
    assert max(per_block.values()) <= 1024 * 1024, per_block
    running.wait_converged(list(range(running.n)))


def test_only_cluster_nodes_may_hand_submissions_to_the_leader(running: Cluster) -> None:
    """POST /v1/cluster/submissions needs a ticket signed by another node of the policy (ADR 0017)."""
    leader = running.leader()
    other = (leader + 1) % running.n
    url = running.api(leader) + "/v1/cluster/submissions"
    passphrase = (running.layout.root / "passphrase").read_bytes().strip()
    other_keys = NodeKeys.load(running.layout.node_dir(other) / "keys", passphrase)
    origin = running.record().record.origin

    def hand_on(rec: SignedRecord, ticket: str | None) -> httpx.Response:
        headers = {"content-type": SUBMISSIONS_MEDIA_TYPE, **({TICKET_HEADER: ticket} if ticket else {})}
        return httpx.post(url, content=encode_submissions([rec.entry_bytes()]), headers=headers, timeout=30)

    def ticket(key: SM2PrivateKey, sender: str, to: str) -> str:
        return issue_ticket(key, origin=origin, sender=sender, leader=to, now=time.time())[0]

    refused = running.record()
    for bad in (
        None,  # no ticket at all
        ticket(SM2PrivateKey.generate(), other_keys.node_id, f"node-{leader + 1}"),  # a stranger's key
        ticket(other_keys.sm2, other_keys.node_id, other_keys.node_id),  # for another leader
    ):
        resp = hand_on(refused, bad)
        assert resp.status_code == 403, resp.text
        assert resp.headers["content-type"] == "application/problem+json"
        assert resp.json()["reason"] == "cluster.unauthenticated"

    # a real node's ticket: queued, proposed, final on every node
    accepted = running.record()
    resp = hand_on(accepted, ticket(other_keys.sm2, other_keys.node_id, f"node-{leader + 1}"))
    assert resp.status_code == 202, resp.text
    assert resp.json() == {"queued": 1}

    def in_log(rec: SignedRecord) -> bool:  # final on the leader
        final = running.status(leader)["final_tree_size"]
        return rec.record.record_hash() in running.entry_hashes(leader, 0, final).values()

    wait_for(lambda: in_log(accepted), 60, "the handed-on record in a final block")


def test_every_node_serves_the_verification_page_and_lookup(running: Cluster) -> None:
    """A cluster node's API is a full node API: the page, file verification and lookup by licence."""
    rec = running.record()
    lid = rec.record.payload["licence_id"]
    running.submit_ok(1, rec)
    for i in range(running.n):
        page = httpx.get(running.api(i) + "/", timeout=10)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")

        def looked_up(node: int = i) -> bool:  # final on every node soon after the ack
            answer = httpx.get(f"{running.api(node)}/v1/lookup/{lid}", timeout=10)
            return answer.status_code == 200 and answer.json()["status"] == "ACTIVE"

        wait_for(looked_up, 30, f"node-{i + 1} to find {lid}")
        # a file upload reaches the verifier (not a 404); the local cluster's nodes hold no
        # province roots (<home>/trust/), so the verifier says it cannot judge files yet
        junk = httpx.post(
            f"{running.api(i)}/v1/verify", content=b"not a licence", headers={"content-type": "application/pdf"}
        )
        assert junk.status_code == 503 and junk.json()["reason"] == "verify.no_roots", junk.text


def test_a_node_with_a_federation_registry_answers_cross_province_lookups(running: Cluster) -> None:
    """`[federation] registry` in node.toml: the node verifies another ledger's answers itself.

    The registry lists this very cluster as the province (its genesis, its other nodes as
    endpoints): the lookup takes the federation path, the remote answer and every proof
    are checked against the pinned genesis exactly as for another province's ledger.
    """
    anchors = anchors_of(running)
    leader = running.leader()
    i = next(j for j in range(running.n) if j != leader)
    genesis_sm3 = sm3((running.layout.root / "genesis.json").read_bytes().removesuffix(b"\n")).hex()
    endpoints = ", ".join(f'"{running.api(j)}"' for j in range(running.n) if j != i)
    (running.layout.root / "federation.toml").write_text(
        f'[[province]]\nname = "本省"\norigin = "{anchors.origin}"\nendpoints = [{endpoints}]\n'
        f'genesis_file = "genesis.json"\ngenesis_sm3 = "{genesis_sm3}"\n',
        "utf-8",
    )
    config = running.layout.node_dir(i) / "node.toml"
    original = config.read_text("utf-8")
    config.write_text(original + '\n[federation]\nregistry = "../federation.toml"\n', "utf-8")
    rec = running.record()
    lid = rec.record.payload["licence_id"]
    running.submit_ok(leader, rec)
    try:
        running.kill_node(i)
        running.start_node(i)
        listed = httpx.get(f"{running.api(i)}/v1/federation", timeout=10).json()["provinces"]
        assert [p["origin"] for p in listed] == [anchors.origin]
        resp = httpx.get(
            f"{running.api(i)}/v1/federation/licences/{lid}", params={"origin": anchors.origin}, timeout=60
        )
        assert resp.status_code == 200, resp.text
        data = resp.json()
        assert (data["licence_id"], data["status"], data["stale"]) == (lid, "ACTIVE", False)
        assert data["checks"] and all(c["ok"] for c in data["checks"]), data["checks"]
    finally:
        config.write_text(original, "utf-8")

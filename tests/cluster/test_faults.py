"""Faults injected into a real local cluster (3 etcd members, 4 node processes).

Each test starts a fresh cluster, breaks it the way real clusters break —
``kill -9`` of the leader or of an etcd member, a node stopped while the
others commit 1,000 blocks, a node whose database was tampered with, a node
cut off with a minority of etcd — and checks what ADR 0009 promises: no
acknowledged record is ever lost, commits resume, every node converges on the
same blocks and checkpoints, a node that lies is refused and reported, and
nothing is acknowledged as final without the etcd quorum.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from ledger.audit import audit
from ledger.identity import NodeKeys
from ledger.merkle.compact import merkle_root
from ledger.service import SM3_HASHER
from ledger.store.sql import SqlStore
from nodes.etcd import Etcd
from nodes.localcluster import ORIGIN

from .conftest import Cluster, wait_for

pytestmark = [pytest.mark.cluster]

#: blocks committed while a node is down (CERTLEDGER_CATCHUP_BLOCKS lowers it on a slow machine)
CATCHUP_BLOCKS = int(os.environ.get("CERTLEDGER_CATCHUP_BLOCKS", "1000"))


# -- helpers ------------------------------------------------------------------------------------


@dataclass
class Submitter:
    """Background threads that keep submitting fresh records to ``targets`` and log every answer."""

    cluster: Cluster
    targets: list[int]
    threads: int = 3
    acked: list[tuple[float, float, dict[str, Any]]] = field(default_factory=list)  # (sent, answered, ack)
    failed: list[tuple[float, float, str]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Submitter:
        for w in range(self.threads):
            t = threading.Thread(target=self._run, args=(w,), daemon=True)
            t.start()
            self._workers.append(t)
        return self

    def _run(self, w: int) -> None:
        n = w
        with httpx.Client(timeout=30) as http:
            while not self._stop.is_set():
                target = self.targets[n % len(self.targets)]
                n += 1
                rec = self.cluster.record()
                sent = time.monotonic()
                try:
                    resp = http.post(self.cluster.api(target) + "/v1/records", content=rec.entry_bytes())
                except httpx.HTTPError as exc:
                    with self._lock:
                        self.failed.append((sent, time.monotonic(), type(exc).__name__))
                    time.sleep(0.1)
                    continue
                with self._lock:
                    if resp.status_code == 201:
                        ack = resp.json()
                        assert ack["record_hash"] == rec.record.record_hash()
                        self.acked.append((sent, time.monotonic(), ack))
                    else:
                        self.failed.append((sent, time.monotonic(), f"HTTP {resp.status_code}"))
                if resp.status_code != 201:
                    time.sleep(0.1)

    def stop(self) -> None:
        self._stop.set()
        for t in self._workers:
            t.join(timeout=60)

    def acks_sent_after(self, t: float) -> list[tuple[float, float, dict[str, Any]]]:
        with self._lock:
            return [a for a in self.acked if a[0] > t]


def assert_acked_present(cluster: Cluster, nodes: list[int], acks: list[dict[str, Any]]) -> None:
    """Every acknowledged record is at its acknowledged index, with its hash, on every one of ``nodes``."""
    assert acks
    assert all(a["final"] is True for a in acks)
    top = max(int(a["index"]) for a in acks) + 1
    for i in nodes:
        stored = cluster.entry_hashes(i, 0, top)
        lost = [a for a in acks if stored.get(int(a["index"])) != a["record_hash"]]
        assert not lost, f"node-{i + 1} lost {len(lost)} acknowledged records, first {lost[0]}"


def note_body(note: str) -> str:
    return note.split("\n\n", 1)[0]


def assert_same_heads(heads: list[dict[str, Any]]) -> None:
    assert len({(h["height"], h["block_hash"]) for h in heads}) == 1, heads
    assert len({note_body(h["note"]) for h in heads}) == 1, [h["note"] for h in heads]


def sqlite_path(cluster: Cluster, i: int) -> Path:
    return cluster.layout.node_dir(i) / "ledger.db"


def audit_node(cluster: Cluster, i: int) -> Any:
    store = SqlStore(f"sqlite:///{sqlite_path(cluster, i).resolve()}")
    try:
        return audit(store)
    finally:
        store.close()


def submit_many(cluster: Cluster, targets: list[int], count: int, workers: int) -> list[dict[str, Any]]:
    records = cluster.records(count)

    def one(p: tuple[int, Any]) -> dict[str, Any]:
        n, rec = p
        return cluster.submit_ok(targets[n % len(targets)], rec)

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one, enumerate(records)))


# -- kill -9 the leader -------------------------------------------------------------------------


@pytest.mark.timeout(300)
def test_kill_leader_under_load_loses_no_acked_record_and_fails_over(cluster: Cluster) -> None:
    leader = cluster.leader()
    others = [i for i in range(cluster.n) if i != leader]
    sub = Submitter(cluster, others, threads=4).start()
    try:
        wait_for(lambda: len(sub.acked) >= 20, 60, "20 acknowledged submissions before the kill")
        killed_at = time.monotonic()
        cluster.kill_node(leader, signal.SIGKILL)
        # commits resume: the first final ack of a record submitted after the kill
        wait_for(lambda: bool(sub.acks_sent_after(killed_at)), 30, "a final ack after the leader was killed")
        first_after = min(a[1] for a in sub.acks_sent_after(killed_at))
        failover = first_after - killed_at
        next_ack = min(a[1] for a in sub.acked if a[1] > killed_at)
        print(f"failover: next ack {next_ack - killed_at:.2f}s, first ack of a post-kill submission {failover:.2f}s")
        # keep the load on for a while under the new leader
        wait_for(lambda: len(sub.acks_sent_after(first_after)) >= 20, 60, "20 more acks under the new leader")
    finally:
        sub.stop()
    assert failover <= 5.0, f"commits resumed only {failover:.2f}s after the leader died"
    new_leader = cluster.leader(among=others)
    assert new_leader != leader
    acks = [a[2] for a in sub.acked]
    assert len({a["index"] for a in acks}) == len(acks)
    heads = cluster.wait_converged(others, timeout=60)
    assert_same_heads(heads)
    assert_acked_present(cluster, others, acks)

    # the killed node comes back and catches up to the same head
    cluster.start_node(leader)
    heads = cluster.wait_converged(list(range(cluster.n)), timeout=90)
    assert_same_heads(heads)
    assert_acked_present(cluster, [leader], acks)
    assert cluster.status(leader)["alarms"] == 0


# -- kill -9 an etcd member -----------------------------------------------------------------------


def etcd_leader_member(cluster: Cluster) -> int:
    """Index of the etcd member that is the Raft leader."""
    found: list[int] = []

    def one() -> bool:
        for i in range(cluster.layout.etcd_members):
            st = cluster.http.post(cluster.layout.etcd_client(i) + "/v3/maintenance/status", json={}, timeout=2).json()
            if st.get("leader") and st["leader"] == st["header"]["member_id"]:
                found[:] = [i]
                return True
        return False

    wait_for(one, 15, "an etcd leader")
    return found[0]


@pytest.mark.timeout(300)
def test_kill_etcd_member_keeps_working_and_member_rejoins(cluster: Cluster) -> None:
    before = [cluster.submit_ok(i) for i in range(cluster.n)]
    victim = etcd_leader_member(cluster)  # the hardest one to lose: the Raft leader
    cluster.kill_etcd(victim)
    survivors = [j for j in range(cluster.layout.etcd_members) if j != victim]
    wait_for(lambda: all(cluster.etcd_healthy(j) for j in survivors), 30, "the two surviving members to elect a leader")
    # 2 of 3 members are a quorum: every node still accepts and finalises submissions
    during = submit_many(cluster, list(range(cluster.n)), 24, workers=6)
    assert all(a["final"] for a in during)

    # the member restarts on its data directory and rejoins
    cluster.start_etcd(victim)
    wait_for(lambda: cluster.etcd_healthy(victim), 30, f"etcd e{victim} to be healthy again")

    def caught_up() -> bool:
        st = [
            cluster.http.post(cluster.layout.etcd_client(j) + "/v3/maintenance/status", json={}, timeout=2).json()
            for j in range(cluster.layout.etcd_members)
        ]
        return len({int(s["raftIndex"]) for s in st}) == 1 or (
            max(int(s["raftIndex"]) for s in st) - int(st[victim]["raftIndex"]) < 5
        )

    wait_for(caught_up, 30, f"etcd e{victim} to catch up its Raft log")
    # prove it is a working voter: lose another member; the quorum now needs the rejoined one
    other = survivors[0]
    cluster.kill_etcd(other)
    remaining = [j for j in range(cluster.layout.etcd_members) if j != other]
    wait_for(lambda: all(cluster.etcd_healthy(j) for j in remaining), 30, "the rejoined member and one other to agree")
    after = submit_many(cluster, list(range(cluster.n)), 12, workers=4)
    cluster.start_etcd(other)
    wait_for(lambda: all(cluster.etcd_healthy(j) for j in range(3)), 30, "all three etcd members healthy")
    heads = cluster.wait_converged(list(range(cluster.n)), timeout=60)
    assert_same_heads(heads)
    assert_acked_present(cluster, list(range(cluster.n)), before + during + after)
    assert all(cluster.status(i)["alarms"] == 0 for i in range(cluster.n))


# -- a stopped node catches up 1,000 blocks: from peers, then from etcd's window -------------------


# one record per block (so 1,000 records are 1,000 blocks) and a short etcd window (50 blocks), so
# the stopped node must fetch most of what it missed from its peers
@pytest.mark.parametrize("cluster_settings", [{"max_batch": 1, "window": 50}], ids=["one-record-blocks"])
@pytest.mark.timeout(600)
def test_stopped_node_catches_up_from_peers_and_etcd_and_audits_clean(cluster: Cluster) -> None:
    leader = cluster.leader()
    down = next(i for i in range(cluster.n) if i != leader)
    live = [i for i in range(cluster.n) if i != down]
    cluster.submit_ok(down)
    cluster.wait_converged(list(range(cluster.n)), timeout=30)
    cluster.kill_node(down, signal.SIGTERM)
    stopped_at = cluster.status(live[0])["height"]

    start = time.monotonic()
    acks = submit_many(cluster, live, CATCHUP_BLOCKS, workers=12)
    seconds = time.monotonic() - start
    heads = cluster.wait_converged(live, timeout=60)
    blocks = heads[0]["height"] - stopped_at
    print(f"committed {CATCHUP_BLOCKS} records as {blocks} blocks in {seconds:.1f}s ({blocks / seconds:.1f} blocks/s)")
    assert blocks >= CATCHUP_BLOCKS

    # etcd keeps only the window: the first blocks the stopped node misses are gone from it
    etcd = Etcd([cluster.layout.etcd_client(0)])
    try:
        prefix = f"/certledger/{ORIGIN}/block/".encode()

        def compacted() -> bool:
            first = etcd.prefix(prefix, limit=1)
            return bool(first) and int(first[0].key.rsplit(b"/", 1)[-1]) > stopped_at + 1

        wait_for(compacted, 30, "the leader to delete blocks older than the window from etcd")
        held = len(etcd.range(prefix, prefix + b"\xff", keys_only=True))
    finally:
        etcd.close()
    assert 0 < held < blocks

    restart = time.monotonic()
    cluster.start_node(down)
    heads = cluster.wait_converged(list(range(cluster.n)), timeout=180)
    print(f"node-{down + 1} caught up {blocks} blocks in {time.monotonic() - restart:.1f}s")
    assert_same_heads(heads)
    assert_acked_present(cluster, [down], acks)
    log = (cluster.layout.node_dir(down) / "node.log").read_text()
    assert "catching up from peers" in log
    assert cluster.status(down)["alarms"] == 0

    # it verified everything it received: its own store passes a full audit
    cluster.kill_node(down, signal.SIGTERM)
    report = audit_node(cluster, down)
    assert report.ok, report.first
    assert report.blocks == heads[0]["height"] + 1


# -- a tampered node ------------------------------------------------------------------------------


def tamper(db: Path, keys: NodeKeys) -> tuple[int, str]:
    """Rewrite history in a stopped node's SQLite store, as its operator could.

    One ISSUE entry's bytes are changed (the licence ID), and the node's latest
    checkpoint is replaced by one over the rewritten entries (its status map line
    kept) — validly signed
    with the node's own keys, so it is a signed statement peers can hold
    against it. The append-only triggers are dropped around the writes and put
    back. Returns the checkpoint's size and the new note.
    """
    conn = sqlite3.connect(db)
    try:
        triggers = dict(conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'").fetchall())
        for name in ("entries_no_update", "checkpoints_no_update"):
            conn.execute(f"DROP TRIGGER {name}")
        idx, data = conn.execute("SELECT idx, data FROM entries WHERE rtype = 'ISSUE' ORDER BY idx LIMIT 1").fetchone()
        forged = re.sub(rb"LIC-TEST-(\d)", rb"LIC-FAKE-\1", data, count=1)
        assert forged != data and len(forged) == len(data)
        conn.execute("UPDATE entries SET data = ? WHERE idx = ?", (forged, idx))
        size = conn.execute("SELECT max(tree_size) FROM checkpoints").fetchone()[0]
        leaves = [SM3_HASHER.hash_leaf(bytes(row[0])) for row in conn.execute("SELECT data FROM entries ORDER BY idx")]
        assert len(leaves) == size
        # the status map line is kept as it was: the forger rewrites one entry, not every licence
        old_note = conn.execute("SELECT note FROM checkpoints WHERE tree_size = ?", (size,)).fetchone()[0]
        status_line = next(line for line in old_note.splitlines() if line.startswith("status-map "))
        note = keys.sign_checkpoint(ORIGIN, size, merkle_root(SM3_HASHER, leaves), (status_line,))
        conn.execute("UPDATE checkpoints SET note = ? WHERE tree_size = ?", (note, size))
        for name in ("entries_no_update", "checkpoints_no_update"):
            conn.execute(triggers[name])
        conn.commit()
    finally:
        conn.close()
    return size, note


@pytest.mark.timeout(300)
def test_tampered_node_is_refused_and_reported_by_peers(cluster: Cluster) -> None:
    submit_many(cluster, list(range(cluster.n)), 12, workers=4)
    cluster.wait_converged(list(range(cluster.n)), timeout=60)
    leader = cluster.leader()
    bad = next(i for i in range(cluster.n) if i != leader)
    honest = [i for i in range(cluster.n) if i != bad]
    cluster.kill_node(bad, signal.SIGTERM)

    passphrase = (cluster.layout.root / "passphrase").read_bytes().strip()
    keys = NodeKeys.load(cluster.layout.node_dir(bad) / "keys", passphrase)
    size, forged_note = tamper(sqlite_path(cluster, bad), keys)
    assert not audit_node(cluster, bad).ok  # the store itself no longer adds up

    # restarted, the node announces its (forged) signed checkpoint; every honest peer refuses it
    cluster.start_node(bad)

    def reported(i: int) -> bool:
        return cluster.status(i)["alarms"] >= 1

    for i in honest:
        wait_for(lambda i=i: reported(i), 30, f"node-{i + 1} to raise an alarm")
        rows = cluster.http.get(f"{cluster.api(i)}/v1/cluster/evidence").json()["evidence"]
        forks = [json.loads(r["detail"]) for r in rows if r["kind"] == "checkpoint_fork"]
        assert forks, rows
        fork = forks[0]
        assert fork["size"] == size
        assert fork["signer"] == f"node-{bad + 1}"
        assert fork["theirs"] == forged_note
        ours = cluster.http.get(f"{cluster.api(i)}/v1/checkpoint", params={"size": size}).text
        assert note_body(fork["ours"]) == note_body(ours) != note_body(forged_note)
        # the forged signature lines were not added to the peer's checkpoint
        forged_lines = set(forged_note.split("\n\n", 1)[1].splitlines())
        assert not forged_lines & set(ours.splitlines())

    # the tampered node itself sees the honest nodes' checkpoints disagree with its own
    wait_for(lambda: reported(bad), 30, "the tampered node to raise an alarm")
    rows = cluster.http.get(f"{cluster.api(bad)}/v1/cluster/evidence").json()["evidence"]
    assert any(r["kind"] == "checkpoint_fork" and json.loads(r["detail"])["size"] == size for r in rows), rows

    # the cluster goes on without it being able to fake finality
    cluster.submit_ok(honest[0])
    cluster.kill_node(bad, signal.SIGTERM)
    report = audit_node(cluster, bad)
    assert not report.ok
    reasons = {f.reason for f in report.findings}
    # the rewritten entry no longer matches its leaf, and the forged checkpoint not the tree
    assert {"entry.hash", "checkpoint.root"} <= reasons, report.findings


# -- a node on the minority side of a partition ---------------------------------------------------


@pytest.fixture
def frozen_members(cluster: Cluster) -> Iterator[list[int]]:
    frozen: list[int] = []
    yield frozen
    for j in frozen:
        if j in cluster.frozen:
            cluster.thaw_etcd(j)


@pytest.mark.timeout(300)
def test_minority_partition_never_acknowledges_final(cluster: Cluster, frozen_members: list[int]) -> None:
    leader = cluster.leader()
    cut = next(i for i in range(cluster.n) if i != leader)
    lone = 2  # the one etcd member the cut-off node can reach
    config = cluster.layout.node_dir(cut) / "node.toml"
    cluster.kill_node(cut, signal.SIGTERM)
    config.write_text(
        re.sub(r"(?m)^etcd = \[.*\]$", f'etcd = ["{cluster.layout.etcd_client(lone)}"]', config.read_text())
    )
    cluster.start_node(cut)
    cluster.submit_ok(cut)  # it works while its member is in the majority

    # the other two members stop (SIGSTOP): the node's only member is now a minority of one
    for j in range(cluster.layout.etcd_members):
        if j != lone:
            cluster.freeze_etcd(j)
            frozen_members.append(j)
    records = cluster.records(3)
    answers: list[Any] = []

    def attempt(rec: Any) -> None:
        try:
            resp = cluster.submit(cut, rec, timeout=40)
            answers.append((resp.status_code, resp.text[:200]))
        except httpx.TimeoutException as exc:
            answers.append((None, type(exc).__name__))

    threads = [threading.Thread(target=attempt, args=(r,)) for r in records]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(answers) == 3
    print(f"answers on the minority side: {answers}")
    for code, text in answers:
        assert code is None or code >= 500, f"a submission to the minority side was answered {code}: {text}"
    assert not any(code == 201 for code, _ in answers)

    for j in list(frozen_members):
        cluster.thaw_etcd(j)
    frozen_members.clear()
    # with the quorum back, the node accepts and finalises submissions again
    wait_for(lambda: all(cluster.etcd_healthy(j) for j in range(3)), 30, "etcd healthy after the partition")
    ack = cluster.submit_ok(cut)
    assert ack["final"] is True
    heads = cluster.wait_converged(list(range(cluster.n)), timeout=60)
    assert_same_heads(heads)

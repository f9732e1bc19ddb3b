"""A real local cluster per test: 3 etcd members and 4 certledger nodes as separate processes.

Each test gets a fresh cluster in its ``tmp_path`` (``nodes.localcluster.up``)
on ports nobody else is using, so the tests can run beside a cluster started
with ``certledger cluster up`` on the default ports. Teardown always runs
``down`` (after thawing any etcd member a test froze with SIGSTOP); when a
test failed, the tail of every process log is printed into its report.

etcd (Debian ``etcd-server``) is required: without ``/usr/bin/etcd`` the
tests FAIL, unless CERTLEDGER_ALLOW_SKIP=1 turns that into a skip.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from ledger.records import Record, RecordType, SignedRecord, new_nonce, now_utc, sign_record
from nodes import localcluster as lc
from signing.sm2 import SM2PrivateKey

ETCD_BIN = Path("/usr/bin/etcd")
#: 3 etcd client ports, 3 etcd peer ports, 4 node API ports
PORTS_PER_CLUSTER = 10


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "cluster: starts a real local cluster (3 etcd members + 4 node processes)")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
    # a failed cluster test carries the tail of every process log in its report
    report = yield
    running = getattr(item, "funcargs", {}).get("cluster")
    if report.failed and isinstance(running, Cluster):
        report.sections.append(("cluster logs", running.log_tails()))
    return report


def _ports_free(base: int) -> bool:
    for port in range(base, base + PORTS_PER_CLUSTER):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def free_port_base() -> int:
    """A base port with the next 10 ports free, below Linux's ephemeral range (32768+).

    CERTLEDGER_CLUSTER_TEST_PORT pins it (e.g. to open a firewall hole).
    """
    pinned = os.environ.get("CERTLEDGER_CLUSTER_TEST_PORT")
    if pinned:
        return int(pinned)
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(24000, 32000 - PORTS_PER_CLUSTER, PORTS_PER_CLUSTER)
        if _ports_free(base):
            return base
    pytest.fail("no 10 consecutive free ports found in 24000-32000", pytrace=False)


@dataclass
class Cluster:
    """A running local cluster and the fault-injection and submission helpers the tests use."""

    layout: lc.Layout
    agency: SM2PrivateKey
    http: httpx.Client
    frozen: set[int] = field(default_factory=set)
    _counter: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- addresses and state ------------------------------------------------------------

    @property
    def n(self) -> int:
        return self.layout.nodes

    def api(self, i: int) -> str:
        return self.layout.api(i)

    def pid(self, kind: str, i: int) -> int:
        return int(lc.load_state(self.layout)[kind][str(i)])

    def status(self, i: int, timeout: float = 3.0) -> dict[str, Any]:
        resp = self.http.get(self.api(i) + "/v1/cluster/status", timeout=timeout)
        resp.raise_for_status()
        data: dict[str, Any] = resp.json()
        return data

    def leader(self, among: list[int] | None = None, timeout: float = 15.0) -> int:
        """Index of the node that says it is the leader (waits until one does)."""
        found: list[int] = []

        def one() -> bool:
            found[:] = [i for i in (among or range(self.n)) if self.status(i)["is_leader"]]
            return len(found) == 1

        wait_for(one, timeout, "exactly one leader")
        return found[0]

    def head(self, i: int) -> dict[str, Any]:
        """Node ``i``'s latest block (hash) and its final checkpoint (note)."""
        st = self.status(i)
        block = self.http.get(f"{self.api(i)}/v1/blocks/{st['height']}", timeout=5).json()
        note = self.http.get(f"{self.api(i)}/v1/checkpoint", timeout=5).text
        return {"height": st["height"], "block_hash": block["hash"], "final": st["final_tree_size"], "note": note}

    def wait_converged(self, nodes: list[int], timeout: float = 60.0, min_height: int = 0) -> list[dict[str, Any]]:
        """Wait until ``nodes`` hold the same latest block and the same final tree size; returns their heads."""
        heads: list[dict[str, Any]] = []

        def same() -> bool:
            statuses = [self.status(i) for i in nodes]
            heights = {s["height"] for s in statuses}
            finals = {s["final_tree_size"] for s in statuses}
            if len(heights) != 1 or len(finals) != 1 or min(heights) < min_height:
                return False
            if any(s["lag"] for s in statuses):
                return False
            # the final checkpoint covers the last block only once it is cosigned: wait for that too
            heads[:] = [self.head(i) for i in nodes]
            return len({(h["height"], h["block_hash"]) for h in heads}) == 1 and all(
                h["final"] == self.tree_size(nodes[0]) for h in heads
            )

        wait_for(same, timeout, f"nodes {nodes} to converge", on_timeout=lambda: self.describe(nodes))
        return heads

    def tree_size(self, i: int) -> int:
        size: int = self.http.get(f"{self.api(i)}/v1/entries", params={"start": 0, "end": 1}, timeout=5).json()[
            "tree_size"
        ]
        return size

    def describe(self, nodes: list[int] | None = None) -> str:
        lines = []
        for i in nodes if nodes is not None else range(self.n):
            try:
                lines.append(f"node-{i + 1}: {self.status(i)}")
            except (httpx.HTTPError, ValueError) as exc:
                lines.append(f"node-{i + 1}: unreachable ({type(exc).__name__})")
        return "\n".join(lines)

    # -- faults -------------------------------------------------------------------------

    def send_signal(self, kind: str, i: int, sig: signal.Signals) -> int:
        pid = self.pid(kind, i)
        os.kill(pid, sig)
        return pid

    def kill_node(self, i: int, sig: signal.Signals = signal.SIGKILL, timeout: float = 15.0) -> None:
        """Send ``sig`` to node ``i``'s process and wait until it is gone."""
        pid = self.send_signal("nodes", i, sig)
        wait_for(lambda: not lc.process_running(pid), timeout, f"node-{i + 1} (pid {pid}) to exit")

    def start_node(self, i: int, timeout: float = 60.0) -> None:
        lc.restart_node(self.layout, i)
        wait_for(lambda: self.status(i)["height"] >= 0, timeout, f"node-{i + 1} to answer again")

    def kill_etcd(self, i: int, timeout: float = 15.0) -> None:
        pid = self.send_signal("etcd", i, signal.SIGKILL)
        wait_for(lambda: not lc.process_running(pid), timeout, f"etcd e{i} (pid {pid}) to exit")

    def start_etcd(self, i: int) -> None:
        lc.restart_etcd(self.layout, i)

    def freeze_etcd(self, i: int) -> None:
        self.send_signal("etcd", i, signal.SIGSTOP)
        self.frozen.add(i)

    def thaw_etcd(self, i: int) -> None:
        self.send_signal("etcd", i, signal.SIGCONT)
        self.frozen.discard(i)

    def etcd_healthy(self, i: int) -> bool:
        try:
            return bool(self.http.get(self.layout.etcd_client(i) + "/health", timeout=2).json().get("health") == "true")
        except (httpx.HTTPError, ValueError):
            return False

    # -- records ------------------------------------------------------------------------

    def record(self, *, padding: str = "") -> SignedRecord:
        """A fresh ISSUE record of the demo agency (each call a new licence); ``padding`` goes in its metadata."""
        with self._lock:
            self._counter += 1
            n = self._counter
        metadata = {"holder": f"集群测试企业{n}", **({"note": padding} if padding else {})}
        payload = {
            "licence_id": f"LIC-TEST-{n:07d}",
            "type_code": "1001",
            "region": "440305",
            "version": 1,
            "files": {"pdf": f"{n:064x}"},
            "metadata": metadata,
        }
        rec = Record(
            RecordType.ISSUE, lc.ORIGIN, now_utc(), new_nonce(), lc.AGENCY_ID, self.agency.public_key.key_id, payload
        )
        return sign_record(rec, [self.agency])

    def records(self, count: int) -> list[SignedRecord]:
        with ThreadPoolExecutor(4) as pool:
            return list(pool.map(lambda _: self.record(), range(count)))

    def submit(self, i: int, rec: SignedRecord, timeout: float = 30.0) -> httpx.Response:
        return self.http.post(self.api(i) + "/v1/records", content=rec.entry_bytes(), timeout=timeout)

    def submit_ok(self, i: int, rec: SignedRecord | None = None) -> dict[str, Any]:
        resp = self.submit(i, rec or self.record())
        assert resp.status_code == 201, f"node-{i + 1}: HTTP {resp.status_code} {resp.text[:300]}"
        ack: dict[str, Any] = resp.json()
        return ack

    def entry_hashes(self, i: int, start: int, end: int) -> dict[int, str]:
        """Record hashes of entries [start, end) as node ``i`` serves them."""
        out: dict[int, str] = {}
        while start < end:
            resp = self.http.get(f"{self.api(i)}/v1/entries", params={"start": start, "end": end}, timeout=10)
            resp.raise_for_status()
            rows = resp.json()["entries"]
            for row in rows:
                out[row["index"]] = SignedRecord.from_json(row["entry"]).record.record_hash()
            start = resp.json()["end"]
        return out

    def log_tails(self, lines: int = 40) -> str:
        parts = []
        logs = [self.layout.node_dir(i) / "node.log" for i in range(self.n)]
        logs += [self.layout.root / f"etcd-{i}.log" for i in range(self.layout.etcd_members)]
        for log in logs:
            if log.exists():
                tail = log.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"----- {log.relative_to(self.layout.root)} -----\n" + "\n".join(tail))
        return "\n".join(parts)


def wait_for(
    predicate: Callable[[], bool], timeout: float, what: str, *, on_timeout: Callable[[], str] | None = None
) -> float:
    """Poll ``predicate`` until it holds; returns the seconds it took. Fails the test on timeout."""
    start = time.monotonic()
    deadline = start + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if predicate():
                return time.monotonic() - start
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            last = exc
        time.sleep(0.1)
    extra = on_timeout() if on_timeout is not None else ""
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what} (last error: {last!r})\n{extra}", pytrace=False)


def start_cluster(root: Path, **settings: int) -> Cluster:
    """Start a fresh cluster under ``root`` on free ports; the caller must ``stop_cluster`` it."""
    if not ETCD_BIN.exists():
        message = f"{ETCD_BIN} (Debian etcd-server 3.4) is required for the cluster tests: apt-get install etcd-server"
        if os.environ.get("CERTLEDGER_ALLOW_SKIP") == "1":
            pytest.skip(message)
        pytest.fail(message + " (set CERTLEDGER_ALLOW_SKIP=1 to skip instead)", pytrace=False)
    base = free_port_base()
    layout = lc.Layout(
        root,
        etcd_client_base=base,
        etcd_peer_base=base + 3,
        api_base=base + 6,
        bound_to_parent=True,  # a killed test run leaves no cluster behind
        **settings,
    )
    try:
        lc.up(layout, demo_records=0)
    except BaseException:
        lc.down(layout)
        raise
    passphrase = (root / "passphrase").read_bytes().strip()
    agency = SM2PrivateKey.load(root / "agency.pem", passphrase)
    return Cluster(layout, agency, httpx.Client(timeout=30))


def stop_cluster(cluster: Cluster) -> None:
    for i in list(cluster.frozen):
        with contextlib.suppress(ProcessLookupError, KeyError):
            cluster.thaw_etcd(i)
    cluster.http.close()
    lc.down(cluster.layout)


@pytest.fixture
def cluster_settings() -> dict[str, int]:
    """Layout settings for the ``cluster`` fixture (override in a test module to change them)."""
    return {}


@pytest.fixture
def cluster(tmp_path: Path, cluster_settings: dict[str, int]) -> Iterator[Cluster]:
    """A fresh running cluster in ``tmp_path``; always torn down (logs land in a failed test's report)."""
    running = start_cluster(tmp_path / "cluster", **cluster_settings)
    try:
        yield running
    finally:
        stop_cluster(running)

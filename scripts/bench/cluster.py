"""Cluster benchmark: final records/s across a real 4-node cluster, submit-to-final latency, failover.

    .venv/bin/python scripts/bench/cluster.py [--seconds 20] [--concurrency 64] [--json]

Starts a fresh local cluster (3 etcd members + 4 node processes, as
``certledger cluster up``) on free ports in a temporary directory, then:

1. throughput: ``--concurrency`` async submitters (a lean HTTP/1.1 client on
   asyncio streams: the load generator shares the 2 CPUs) post pre-signed
   ISSUE records round-robin to the 4 nodes for ``--seconds``; a record
   counts once its 201 answer says ``final: true`` (its checkpoint is
   cosigned by the quorum, 3 of 4). Reported: final records/s (acks over the
   time from the first submission to the last ack) and the submit-to-final
   latency p50/p99 of every acknowledged record;
2. failover: a lighter load runs against the three non-leader nodes, the
   leader is killed with SIGKILL, and the time from the kill to the first
   final ack of a record *submitted after the kill* is measured;
3. reference: the single-node append rate (``Ledger.submit`` batches of
   ``--batch`` into a fresh SQLite ledger, as scripts/bench/ledger.py) and
   the SM2 verify rate, measured in the same run on the same machine.

Signing is done ahead of time and not timed (it is the agencies' cost). The
cluster is always stopped at the end (``down``: exactly the PIDs it started).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import random
import signal
import socket
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from ledger.records import Record, RecordType, new_nonce, now_utc, sign_record  # noqa: E402
from nodes import localcluster as lc  # noqa: E402
from signing.sm2 import SM2PrivateKey  # noqa: E402

TARGETS = {"final_records_per_s": 800, "latency_p99_s": 1.0, "failover_s": 5.0}


def _bench_ledger() -> Any:
    """scripts/bench/ledger.py as a module (its file name clashes with the ``ledger`` package)."""
    spec = importlib.util.spec_from_file_location("bench_ledger", Path(__file__).with_name("ledger.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def free_port_base() -> int:
    for _ in range(200):
        base = random.randrange(24000, 32000 - 10, 10)
        ok = True
        for port in range(base, base + 10):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise SystemExit("bench: no 10 consecutive free ports in 24000-32000")


def cluster_cpu_seconds(layout: lc.Layout) -> dict[str, float]:
    """CPU time (user + system) used so far by each etcd member ("etcd-i") and node ("node-i")."""
    state = lc.load_state(layout)
    out = {}
    for kind, prefix in (("etcd", "etcd"), ("nodes", "node")):
        for i, pid in state[kind].items():
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            out[f"{prefix}-{i}"] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def sign_records(agency: SM2PrivateKey, count: int, offset: int) -> list[bytes]:
    def one(n: int) -> bytes:
        payload = {
            "licence_id": f"LIC-BENCH-{n:08d}",
            "type_code": "1001",
            "region": "440305",
            "version": 1,
            "files": {"pdf": f"{n:064x}"},
            "metadata": {"holder": f"深圳压测企业{n}有限公司", "holder_code": "91440300MA5XXXXXX1"},
        }
        rec = Record(
            RecordType.ISSUE, lc.ORIGIN, now_utc(), new_nonce(), lc.AGENCY_ID, agency.public_key.key_id, payload
        )
        return sign_record(rec, [agency]).entry_bytes()

    with ThreadPoolExecutor(os.cpu_count() or 2) as pool:
        return list(pool.map(one, range(offset, offset + count), chunksize=256))


class _Connection:
    """One keep-alive HTTP/1.1 connection: the load generator's own, lean client.

    The load generator shares the machine's 2 CPUs with the cluster it measures: httpx spent
    about 3.8 ms of CPU per submission (measured 2026-12-07), a fifth of the cluster's own, so
    requests are written and answers read directly on asyncio streams (Content-Length bodies,
    as uvicorn sends them).
    """

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("http://").rstrip("/").split(":")
        self.host, self.port = host, int(port)
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes, timeout: float) -> tuple[int, bytes]:
        deadline = time.perf_counter() + timeout
        reused = self.writer is not None
        try:
            return await asyncio.wait_for(self._post(path, body), timeout)
        except ConnectionError:  # closed or reset before an answer began (not a half-read one)
            self.close()
            if not reused:
                raise
            # the server closed an idle kept-alive connection (uvicorn: after 5 s) as we wrote on
            # it: what any HTTP client does, once, on a new connection (resubmitting is safe: a
            # committed record gets its acknowledgement again). The latency counts both tries.
        except BaseException:
            self.close()  # a half-read answer must not be read as the next one's
            raise
        try:
            return await asyncio.wait_for(self._post(path, body), max(0.0, deadline - time.perf_counter()))
        except BaseException:
            self.close()
            raise

    async def _post(self, path: str, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("connection closed")
        status = int(status_line.split()[1])
        length, close = 0, False
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                raise ConnectionError("chunked answers are not expected here")
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        answer = await self.reader.readexactly(length)
        if close:
            self.close()
        return status, answer

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def load(
    urls: list[str], bodies: list[bytes], concurrency: int, seconds: float, *, timeout: float = 30.0
) -> dict[str, Any]:
    """Post ``bodies`` with ``concurrency`` workers for ``seconds``; returns acks, latencies and failures."""
    queue = list(reversed(bodies))
    started = time.perf_counter()
    stop_at = started + seconds
    latencies: list[float] = []
    ack_times: list[float] = []
    failures: dict[str, int] = {}
    not_final = 0

    async def worker(w: int) -> None:
        nonlocal not_final
        n = w
        connections = [_Connection(url) for url in urls]
        try:
            while queue and time.perf_counter() < stop_at:
                body = queue.pop()
                conn = connections[n % len(urls)]
                n += 1
                t0 = time.perf_counter()
                try:
                    status, answer = await conn.post("/v1/records", body, timeout)
                except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
                    failures[type(exc).__name__] = failures.get(type(exc).__name__, 0) + 1
                    continue
                if status != 201:
                    try:
                        reason = str(json.loads(answer).get("reason", ""))
                    except ValueError:
                        reason = ""
                    key = f"HTTP {status} {reason}".strip()
                    failures[key] = failures.get(key, 0) + 1
                    continue
                if not json.loads(answer).get("final"):
                    not_final += 1
                    continue
                now = time.perf_counter()
                latencies.append(now - t0)
                ack_times.append(now)
        finally:
            for conn in connections:
                conn.close()

    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    elapsed = (max(ack_times) if ack_times else time.perf_counter()) - started
    return {
        "acked": len(latencies),
        "seconds": elapsed,
        "final_records_per_s": len(latencies) / elapsed if elapsed > 0 else 0.0,
        "latency_p50_s": statistics.median(latencies) if latencies else float("nan"),
        "latency_p99_s": percentile(latencies, 0.99),
        "not_final": not_final,
        "failures": failures,
        "unsent": len(queue),
    }


def leader_of(layout: lc.Layout) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        leaders = []
        for i in range(layout.nodes):
            try:
                if lc.node_status(layout, i)["is_leader"]:
                    leaders.append(i)
            except (httpx.HTTPError, ValueError, KeyError):
                pass
        if len(leaders) == 1:
            return leaders[0]
        time.sleep(0.2)
    raise SystemExit("bench: no leader")


def failover(layout: lc.Layout, bodies: list[bytes], concurrency: int) -> dict[str, Any]:
    """Kill the leader under load; seconds from the kill to the first final ack of a post-kill submission."""
    leader = leader_of(layout)
    others = [layout.api(i) for i in range(layout.nodes) if i != leader]
    pid = int(lc.load_state(layout)["nodes"][str(leader)])
    killed_at: list[float] = []
    first_after: list[float] = []
    failed_after = 0
    queue = list(reversed(bodies))

    async def worker(w: int, client: httpx.AsyncClient) -> None:
        nonlocal failed_after
        n = w
        while queue and not first_after:
            body = queue.pop()
            t0 = time.perf_counter()
            try:
                resp = await client.post(others[n % len(others)] + "/v1/records", content=body)
            except httpx.HTTPError:
                resp = None
            n += 1
            ok = resp is not None and resp.status_code == 201 and resp.json().get("final")
            if killed_at and t0 > killed_at[0]:
                if ok:
                    first_after.append(time.perf_counter())
                else:
                    failed_after += 1

    async def killer() -> None:
        await asyncio.sleep(2.0)  # let the load settle first
        os.kill(pid, signal.SIGKILL)
        killed_at.append(time.perf_counter())

    async def main() -> None:
        async with httpx.AsyncClient(timeout=30) as client:
            await asyncio.gather(killer(), *(worker(w, client) for w in range(concurrency)))

    asyncio.run(main())
    return {
        "killed": f"node-{leader + 1}",
        "failover_s": first_after[0] - killed_at[0] if first_after and killed_at else float("nan"),
        "failed_submissions_after_kill": failed_after,
        "new_leader": f"node-{leader_of(layout) + 1}",
    }


def single_node_rate(bench: Any, records: int, batch: int, tmp: Path) -> float:
    from ledger.identity import NodeKeys
    from ledger.service import Ledger

    auth, agency, node = SM2PrivateKey.generate(), SM2PrivateKey.generate(), NodeKeys.generate("bench-node")
    ledger = Ledger.open(str(tmp / "single.db"), node.identity())
    ledger.initialise(bench.genesis(auth, agency, node))
    signed = bench.make_records(agency, records, 0)
    start = time.perf_counter()
    for i in range(0, records, batch):
        result = ledger.submit(signed[i : i + batch])
        if result.rejected:
            raise SystemExit(f"bench: record rejected: {result.rejected[0].message}")
    rate = records / (time.perf_counter() - start)
    ledger.close()
    return rate


def _op_seconds(op: Any, seconds: float = 1.0) -> float:
    """Mean wall time of ``op()`` on one thread, over ``seconds``."""
    op()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        op()
        n += 1
    return (time.perf_counter() - start) / n


def signature_floor() -> dict[str, float]:
    """Seconds of the signature operations the cluster's design performs, each timed on this machine.

    Per record: the leader checks its SM2 signature when proposing and each of the three other
    nodes when applying (the leader does not check it again: tests/unit/ledger/test_block_apply.py).
    Per block: the leader signs it; every node checks the block signature, signs its checkpoint
    (SM2 + Ed25519) and opens the three other nodes' checkpoints (SM2 + Ed25519 each).
    The same functions the nodes call, on the same kind of input.
    """
    from ledger.blocks import BlockHeader, sign_block
    from ledger.checkpoint import open_checkpoint
    from ledger.identity import NodeKeys, checkpoint_verifiers
    from ledger.records import SignedRecord
    from ledger.state import node_from_payload
    from ledger.statusmap import extension_line

    agency, node = SM2PrivateKey.generate(), NodeKeys.generate("floor-node")
    record = SignedRecord.from_bytes(sign_records(agency, 1, 30_000_000)[0])
    header = BlockHeader(
        origin=lc.ORIGIN,
        height=7,
        prev_hash=bytes(32),
        first_index=100,
        tree_size=113,
        tree_root=bytes(range(32)),
        status_root=bytes(range(32, 64)),
        time=now_utc(),
        proposer=node.node_id,
    )
    block = sign_block(header, node.sm2)
    note = node.sign_checkpoint(lc.ORIGIN, 113, bytes(range(32)), (extension_line(bytes(range(32, 64))),))
    verifiers = checkpoint_verifiers(lc.ORIGIN, [node_from_payload(node.node_json("floor"))])
    pub = agency.public_key
    return {
        "record_check": _op_seconds(lambda: record.verify_signature_by(pub)),
        "block_sign": _op_seconds(lambda: sign_block(header, node.sm2)),
        "block_check": _op_seconds(lambda: block.verify(node.sm2.public_key)),
        "checkpoint_sign": _op_seconds(lambda: node.sign_checkpoint(lc.ORIGIN, 113, bytes(range(32)))),
        "cosignature_check": _op_seconds(lambda: open_checkpoint(note, verifiers, origin=lc.ORIGIN)),
    }


def floor_ms_per_record(ops: dict[str, float], records_per_block: float, nodes: int = 4) -> float:
    per_record = nodes * ops["record_check"]
    per_block = (
        ops["block_sign"]
        + nodes * (ops["block_check"] + ops["checkpoint_sign"])
        + nodes * (nodes - 1) * ops["cosignature_check"]
    )
    return 1000 * (per_record + per_block / max(1.0, records_per_block))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=20.0, help="duration of the throughput phase")
    ap.add_argument("--concurrency", type=int, default=64, help="concurrent submitters")
    ap.add_argument("--records", type=int, default=0, help="pre-signed records (default: enough for 1500/s)")
    ap.add_argument("--max-batch", type=int, default=500, help="records per block at most (node.toml max_batch)")
    ap.add_argument("--batch", type=int, default=500, help="single-node reference: records per Ledger.submit")
    ap.add_argument("--no-failover", action="store_true", help="skip the failover measurement")
    ap.add_argument("--keep", type=Path, help="run the cluster in this directory and keep it (logs, stores)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    say = (lambda s: print(s, file=sys.stderr, flush=True)) if args.json else (lambda s: print(s, flush=True))
    bench = _bench_ledger()

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        root = args.keep or tmp / "cluster"
        base = free_port_base()
        layout = lc.Layout(
            root,
            etcd_client_base=base,
            etcd_peer_base=base + 3,
            api_base=base + 6,
            max_batch=args.max_batch,
            bound_to_parent=args.keep is None,
        )
        say(f"starting a cluster in {root} (etcd {base}-{base + 5}, APIs {base + 6}-{base + 9}) ...")
        lc.up(layout, demo_records=0)
        try:
            agency = SM2PrivateKey.load(root / "agency.pem", (root / "passphrase").read_bytes().strip())
            count = args.records or int(1500 * args.seconds)
            say(f"signing {count} records (not timed) ...")
            bodies = sign_records(agency, count, 0)
            urls = [layout.api(i) for i in range(layout.nodes)]
            say("warm-up ...")
            asyncio.run(load(urls, sign_records(agency, 200, 10_000_000), 16, 10))
            say(f"throughput: {args.concurrency} submitters for {args.seconds:.0f}s ...")
            leader = leader_of(layout)
            height_before = lc.node_status(layout, leader)["height"]
            cpu_before = cluster_cpu_seconds(layout)
            client_before = time.process_time()
            throughput = asyncio.run(load(urls, bodies, args.concurrency, args.seconds))
            client_cpu = time.process_time() - client_before
            cpu_after = cluster_cpu_seconds(layout)
            throughput["blocks"] = lc.node_status(layout, leader)["height"] - height_before
            per = {k: 1000 * (cpu_after[k] - cpu_before[k]) / max(1, throughput["acked"]) for k in cpu_after}
            throughput["cluster_cpu_ms_per_record"] = sum(per.values())
            throughput["client_cpu_ms_per_record"] = 1000 * client_cpu / max(1, throughput["acked"])
            throughput["cpu_ms_per_record"] = {
                "etcd (3 members)": sum(v for k, v in per.items() if k.startswith("etcd")),
                "leader node": per[f"node-{leader}"],
                "other nodes (each)": sum(v for k, v in per.items() if k.startswith("node") and k != f"node-{leader}")
                / (layout.nodes - 1),
            }
            say(
                f"  {throughput['final_records_per_s']:.0f} final records/s, p50 {throughput['latency_p50_s']:.3f}s, "
                f"p99 {throughput['latency_p99_s']:.3f}s, failures {throughput['failures']}"
            )
            statuses = [lc.node_status(layout, i) for i in range(layout.nodes)]
            fail: dict[str, Any] = {}
            if not args.no_failover:
                say("failover: killing the leader under load ...")
                fail = failover(layout, sign_records(agency, 5000, 20_000_000), 16)
                say(
                    f"  {fail['killed']} killed; first final ack of a new submission after {fail['failover_s']:.2f}s "
                    f"(new leader {fail['new_leader']})"
                )
        finally:
            lc.down(layout)
        say("reference: single-node appends (Ledger.submit batches) and SM2 verify ...")
        single = single_node_rate(bench, 10_000, args.batch, tmp)
        sm2_1, sm2_2 = bench.sm2_verify_rate(1), bench.sm2_verify_rate(2)
        floor_ops = signature_floor()

    out = {
        "cluster": {
            "nodes": layout.nodes,
            "etcd_members": layout.etcd_members,
            "quorum": lc.QUORUM,
            "max_batch": args.max_batch,
            "concurrency": args.concurrency,
        },
        "throughput": throughput,
        "blocks": max(s["height"] for s in statuses),
        "failover": fail,
        "single_node_appends_per_s": single,
        "sm2_verify_1_thread": sm2_1,
        "sm2_verify_2_threads": sm2_2,
        "cpus": os.cpu_count(),
        "targets": TARGETS,
    }
    records_per_block = throughput["acked"] / max(1, throughput["blocks"])
    floor_ms = floor_ms_per_record(floor_ops, records_per_block)
    etcd_ms = throughput["cpu_ms_per_record"]["etcd (3 members)"]
    out["signature_floor"] = {
        "operation_seconds": floor_ops,
        "records_per_block": records_per_block,
        "ms_per_record": floor_ms,
        "ms_per_record_at_max_batch": floor_ms_per_record(floor_ops, args.max_batch),
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return
    t = throughput
    print(f"\ncluster: 4 nodes, 3 etcd members, quorum 3; {args.concurrency} submitters; {os.cpu_count()} CPUs")
    print(
        f"  final records/s        {t['final_records_per_s']:8.0f}   ({t['acked']} acked in {t['seconds']:.1f}s, "
        f"{t['blocks']} blocks)"
    )
    print(f"  submit->final p50      {t['latency_p50_s']:8.3f} s")
    print(f"  submit->final p99      {t['latency_p99_s']:8.3f} s")
    if fail:
        print(f"  failover               {fail['failover_s']:8.2f} s   (kill -9 {fail['killed']} -> first final ack)")
    cpu_ms = t["cluster_cpu_ms_per_record"]
    cores = os.cpu_count() or 1
    print(
        f"  cluster CPU per record {cpu_ms:8.1f} ms (all 7 processes) -> at most {1000 * cores / cpu_ms:.0f} "
        f"final records/s if this machine's {cores} CPUs ran nothing else"
    )
    print("    " + ", ".join(f"{k} {v:.1f} ms" for k, v in t["cpu_ms_per_record"].items()))
    print(f"  load generator CPU     {t['client_cpu_ms_per_record']:8.1f} ms per record (this process, same 2 CPUs)")
    print(f"  single node appends/s  {single:8.0f}   (Ledger.submit, batches of {args.batch})")
    print(f"  SM2 verify/s           {sm2_1:8.0f}   (1 thread; {sm2_2:.0f} on 2 threads)")
    at_max = out["signature_floor"]["ms_per_record_at_max_batch"]
    print(
        f"  signature floor        {floor_ms:8.2f} ms/record at {records_per_block:.1f} records/block "
        f"({at_max:.2f} ms with full blocks of {args.max_batch}): 4 record checks + per block 1 sign, "
        f"4 block checks, 4 checkpoint signs, 12 cosignature checks, timed here"
    )
    print(
        f"    signatures + etcd's measured {etcd_ms:.1f} ms -> at most {1000 * cores / (floor_ms + etcd_ms):.0f} "
        f"final records/s on {cores} CPUs before any HTTP, SQL or Python work; signatures alone with full "
        f"blocks -> at most {1000 * cores / at_max:.0f}/s"
    )
    checks = [
        (
            f">= {TARGETS['final_records_per_s']} final records/s",
            t["final_records_per_s"] >= TARGETS["final_records_per_s"],
        ),
        (f"p99 <= {TARGETS['latency_p99_s']} s", t["latency_p99_s"] <= TARGETS["latency_p99_s"]),
    ]
    if fail:
        checks.append((f"failover <= {TARGETS['failover_s']} s", fail["failover_s"] <= TARGETS["failover_s"]))
    print()
    for label, ok in checks:
        print(f"  target {label}: {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()

"""Ledger benchmark: appends/s, proof latency, audit replay, against the 2-thread SM2 verify rate.

    .venv/bin/python scripts/bench/ledger.py [--sizes 10000,1000000] [--batch 500] [--json]

For each size N it builds a fresh SQLite ledger, appends N signed ISSUE records
through the full validation path (Ledger.submit, batches of --batch records,
one block + checkpoint + fsync per batch), then measures inclusion and
consistency proof latency (p50/p99 over random indices) and the audit replay
rate. The reference — SM2 verifications/s on 2 threads through the project's
API — is measured in the same run, and every rate is printed beside it as a
ratio. Records are signed ahead of time (not timed): signing is the agencies'
cost, not the ledger's.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from ledger.audit import audit
from ledger.identity import NodeKeys
from ledger.records import Record, RecordType, SignedRecord, encode_public_key, new_nonce, now_utc, sign_record
from ledger.service import Ledger
from signing.sm2 import SM2PrivateKey

ORIGIN = "bench.certledger.example/log"
AGENCY = "91440300MA5BENCH01"


def sm2_verify_rate(threads: int, seconds: float = 3.0) -> float:
    key = SM2PrivateKey.generate()
    msg = b"x" * 400  # about the size of a record's canonical bytes
    sig = key.sign(msg)
    pub = key.public_key
    pub.verify(sig, msg)
    deadline = time.perf_counter() + seconds

    def work() -> int:
        n = 0
        while time.perf_counter() < deadline:
            pub.verify(sig, msg)
            n += 1
        return n

    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        total = sum(pool.map(lambda _: work(), range(threads)))
    return total / (time.perf_counter() - start)


def genesis(auth: SM2PrivateKey, agency: SM2PrivateKey, node: NodeKeys) -> SignedRecord:
    key = {"key_id": agency.public_key.key_id, "public_key": encode_public_key(agency.public_key),
           "not_before": "2020-01-01T00:00:00Z"}
    payload = {
        "agencies": [{"id": AGENCY, "name": "bench agency", "regions": ["44"], "types": ["1001"],
                      "authority": False, "keys": [key]}],
        "nodes": [node.node_json("bench node")],
        "governance": {"authorities": [{"id": "gov", "name": "gov",
                                        "public_key": encode_public_key(auth.public_key)}], "threshold": 1},
        "quorum": {"threshold": 1},
        "time_window_seconds": 86400,
    }
    return sign_record(Record(RecordType.GENESIS, ORIGIN, now_utc(), new_nonce(), "", "", payload), [auth])


def make_records(agency: SM2PrivateKey, n: int, offset: int) -> list[SignedRecord]:
    def one(i: int) -> SignedRecord:
        payload = {"licence_id": f"1.2.156.3005.2.1001.{AGENCY}.{i:08d}.001", "type_code": "1001",
                   "region": "440305", "version": 1,
                   "files": {"ofd": f"{i:064x}", "pdf": f"{i + 1:064x}"},
                   "metadata": {"holder": f"深圳测试企业{i}有限公司", "holder_code": "91440300MA5XXXXXX1"}}
        rec = Record(RecordType.ISSUE, ORIGIN, now_utc(), new_nonce(), AGENCY, agency.public_key.key_id, payload)
        return sign_record(rec, [agency])

    with ThreadPoolExecutor(os.cpu_count() or 2) as pool:
        return list(pool.map(one, range(offset, offset + n), chunksize=256))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_size(n: int, batch: int, tmp: Path, say: callable) -> dict[str, float]:  # type: ignore[valid-type]
    auth, agency, node = SM2PrivateKey.generate(), SM2PrivateKey.generate(), NodeKeys.generate("bench-node")
    db = tmp / f"bench-{n}.db"
    ledger = Ledger.open(str(db), node.identity())
    ledger.initialise(genesis(auth, agency, node))
    appended = 0
    append_seconds = 0.0
    chunk = 20_000
    while appended < n:
        count = min(chunk, n - appended)
        records = make_records(agency, count, appended)  # signing is not timed
        start = time.perf_counter()
        for i in range(0, count, batch):
            result = ledger.submit(records[i : i + batch])
            if result.rejected:
                raise SystemExit(f"bench: record rejected: {result.rejected[0].message}")
        append_seconds += time.perf_counter() - start
        appended += count
        say(f"  appended {appended}/{n} ({appended / append_seconds:.0f}/s so far)")
    size = ledger.tree_size()
    rng = random.Random(1)
    incl = []
    for _ in range(2000):
        idx = rng.randrange(size)
        t = time.perf_counter()
        ledger.inclusion_proof(idx, size)
        incl.append((time.perf_counter() - t) * 1000)
    cons = []
    for _ in range(1000):
        old = rng.randrange(1, size)
        t = time.perf_counter()
        ledger.consistency_proof(old, size)
        cons.append((time.perf_counter() - t) * 1000)
    # the machine's speed drifts (shared host): the audit's reference is measured right
    # before and right after it, and the ratio uses their mean
    ref_before = sm2_verify_rate(2)
    start = time.perf_counter()
    report = audit(ledger.store)
    audit_seconds = time.perf_counter() - start
    ref_after = sm2_verify_rate(2)
    say(f"  audit {report.entries / audit_seconds:.0f}/s; SM2 verify 2 threads {ref_before:.0f}/s before, "
        f"{ref_after:.0f}/s after")
    if not report.ok:
        raise SystemExit(f"bench: audit failed: {report.first}")
    ledger.close()
    return {
        "entries": n,
        "appends_per_s": n / append_seconds,
        "inclusion_p50_ms": statistics.median(incl),
        "inclusion_p99_ms": percentile(incl, 0.99),
        "consistency_p50_ms": statistics.median(cons),
        "consistency_p99_ms": percentile(cons, 0.99),
        "audit_entries_per_s": report.entries / audit_seconds,
        "audit_ref_sm2_2t": (ref_before + ref_after) / 2,
        "db_bytes": db.stat().st_size + sum(p.stat().st_size for p in tmp.glob(f"bench-{n}.db-*")),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000", help="comma-separated ledger sizes (e.g. 10000,1000000)")
    ap.add_argument("--batch", type=int, default=500, help="records per submit() (one block each)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--tmp", type=Path, help="directory for the benchmark databases (default: a temp dir)")
    args = ap.parse_args()
    say = (lambda s: print(s, file=sys.stderr)) if args.json else print
    say("reference: SM2 verify through the project's API, 2 threads ...")
    ref1 = sm2_verify_rate(1)
    ref2 = sm2_verify_rate(2)
    say(f"  1 thread {ref1:.0f}/s, 2 threads {ref2:.0f}/s")
    results = []
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        for n in (int(s) for s in args.sizes.split(",")):
            say(f"size {n}:")
            results.append(run_size(n, args.batch, Path(tmp), say))
    out = {"sm2_verify_1_thread": ref1, "sm2_verify_2_threads": ref2, "results": results,
           "targets": {"appends_per_s": 2000, "appends_vs_sm2_2t": 0.3, "inclusion_p99_ms_at_1M": 2.0,
                       "audit_vs_sm2_2t": 0.7}}
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"\nreference: SM2 verify 2 threads = {ref2:.0f}/s (1 thread {ref1:.0f}/s)")
    print(f"{'entries':>9} {'appends/s':>10} {'x SM2-2t':>9} {'incl p50':>9} {'incl p99':>9} "
          f"{'cons p50':>9} {'cons p99':>9} {'audit/s':>9} {'SM2-2t':>7} {'x SM2-2t':>9}")
    for r in results:
        print(f"{r['entries']:>9} {r['appends_per_s']:>10.0f} {r['appends_per_s'] / ref2:>9.2f} "
              f"{r['inclusion_p50_ms']:>7.2f}ms {r['inclusion_p99_ms']:>7.2f}ms {r['consistency_p50_ms']:>7.2f}ms "
              f"{r['consistency_p99_ms']:>7.2f}ms {r['audit_entries_per_s']:>9.0f} {r['audit_ref_sm2_2t']:>7.0f} "
              f"{r['audit_entries_per_s'] / r['audit_ref_sm2_2t']:>9.2f}")
    print("(audit's x SM2-2t uses the SM2-2t column: the reference measured around that audit)")
    for r in results:
        n = r["entries"]
        checks = [
            ("appends >= 2000/s", r["appends_per_s"] >= 2000),
            ("appends >= 0.3x SM2 2-thread verify", r["appends_per_s"] >= 0.3 * ref2),
            ("audit >= 0.7x SM2 2-thread verify", r["audit_entries_per_s"] >= 0.7 * r["audit_ref_sm2_2t"]),
        ]
        if n >= 1_000_000:
            checks.append(("inclusion p99 <= 2 ms at 1M entries", r["inclusion_p99_ms"] <= 2.0))
        print()
        for label, ok in checks:
            print(f"  {n} entries, target {label}: {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()

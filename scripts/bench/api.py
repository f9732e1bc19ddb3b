"""API benchmark: licence status with proof (GET /v1/licences/{id}) requests/s and latency on loopback.

    .venv/bin/python scripts/bench/api.py [--licences 10000] [--concurrency 64] [--duration 15]
                                          [--workers N] [--generator wrk|httpx] [--load-procs 1] [--json]

1. Builds a fresh single-node ledger in a temporary directory and preloads
   --licences signed ISSUE records through the full validation path (batches
   of 500; signing is not timed — it is the agencies' cost).
2. Serves it with ``certledger serve --read-only --workers N`` (uvicorn worker
   processes, default one per core; rate limiting off) on 127.0.0.1.
3. Checks one answer end to end with ``verify_api.client.LedgerClient``
   (checkpoint, inclusion, key admission, signature), so the benchmark measures
   answers a verifier accepts.
4. Load, requesting random licences for --duration seconds after a short
   warm-up, over --concurrency keep-alive connections, from a separate process:
   ``--generator wrk`` (Debian ``wrk``, C, with a Lua script choosing the path;
   the default when installed: it leaves the cores to the server) or
   ``--generator httpx`` (--load-procs processes of asyncio + httpx). Reports
   requests/s, p50/p90/p99 latency and errors, and the server's CPU time per
   request (all its processes, from /proc) — which, unlike requests/s, hardly
   depends on what else the machine runs — with the requests/s it allows on
   idle cores.
5. Reference measured in the same run with the same generator: GET /healthz
   (routing + middleware + JSON, no ledger work), so the ratio shows what the
   proofs cost on this machine.

6. File verification, ``POST /v1/verify``: a second node home holding real
   issued licence files (``tests/browser/licence_files.py``: SM2 PKI, GB/T 38540
   seals, PAdES-signed PDF and OFD, ISSUE / AMEND / SUSPEND / REVOKE records,
   embedded proof bundles) is served the same way; each file's verdict is checked
   once against what it is (valid, revoked, superseded, suspended, forged), then
   every file of one format is uploaded in turn over --verify-concurrency
   connections (asyncio + httpx) for --verify-duration seconds, per format.
   Reports files/s, p50/p99 and server CPU per file.

Targets: >= 1500 requests/s and p99 <= 50 ms for status with proof; >= 100 files/s verified.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

TARGET_RPS = 1500.0
TARGET_P99_MS = 50.0
TARGET_FILES_PER_S = 100.0
#: what each file of tests/browser/licence_files.py is
EXPECTED_VERDICTS = {
    "genuine.pdf": "valid",
    "genuine.ofd": "valid",
    "revoked.pdf": "revoked",
    "revoked.ofd": "revoked",
    "amended-v1.pdf": "superseded",
    "amended-v2.ofd": "valid",
    "suspended.pdf": "suspended",
    "tampered.pdf": "forged",
    "forged.ofd": "forged",
}
ORIGIN = "bench.certledger.example/licences"
AGENCY = "91440300MA5BENCH01"
PASSPHRASE = "bench passphrase"


# -- load generator (runs in its own process) ---------------------------------------------------


async def _load(url: str, paths: list[str], concurrency: int, warmup: float, duration: float) -> dict[str, Any]:
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    latencies: list[float] = []
    errors: dict[str, int] = {}
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        start = time.perf_counter()
        measure_from = start + warmup
        stop = measure_from + duration

        async def worker() -> None:
            rnd = random.Random()
            while True:
                t0 = time.perf_counter()
                if t0 >= stop:
                    return
                try:
                    resp = await client.get(rnd.choice(paths))
                    status = str(resp.status_code)
                except Exception as exc:  # count and go on: a benchmark reports errors, it does not crash
                    status = type(exc).__name__
                t1 = time.perf_counter()
                if t0 >= measure_from:
                    if status == "200":
                        latencies.append(t1 - t0)
                    else:
                        errors[status] = errors.get(status, 0) + 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return {"latencies": latencies, "errors": errors, "seconds": duration}


def load_main(argv: list[str]) -> None:
    """``api.py _load URL PATHS_FILE CONCURRENCY WARMUP DURATION``: prints one JSON result line."""
    url, paths_file, concurrency, warmup, duration = argv
    paths = Path(paths_file).read_text().split()
    result = asyncio.run(_load(url, paths, int(concurrency), float(warmup), float(duration)))
    print(json.dumps(result))


def run_load(
    url: str, paths: list[str], concurrency: int, procs: int, warmup: float, duration: float, workdir: Path
) -> dict[str, Any]:
    paths_file = workdir / "paths.txt"
    paths_file.write_text("\n".join(paths))
    shares = [concurrency // procs + (1 if i < concurrency % procs else 0) for i in range(procs)]
    children = [
        subprocess.Popen(
            [sys.executable, __file__, "_load", url, str(paths_file), str(share), str(warmup), str(duration)],
            stdout=subprocess.PIPE,
        )
        for share in shares
        if share > 0
    ]
    latencies: list[float] = []
    errors: dict[str, int] = {}
    for child in children:
        out, _ = child.communicate(timeout=warmup + duration + 120)
        data = json.loads(out)
        latencies += data["latencies"]
        for k, v in data["errors"].items():
            errors[k] = errors.get(k, 0) + v
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000 if latencies else float("nan")

    return {
        "requests": len(latencies),
        "rps": len(latencies) / duration,
        "p50_ms": pct(0.50),
        "p90_ms": pct(0.90),
        "p99_ms": pct(0.99),
        "mean_ms": statistics.fmean(latencies) * 1000 if latencies else float("nan"),
        "errors": errors,
    }


_WRK_SCRIPT = """
local paths = {}
init = function(args)
  for line in io.lines(args[1]) do paths[#paths + 1] = line end
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
end
request = function()
  return wrk.format("GET", paths[math.random(#paths)])
end
"""
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def _wrk_ms(text: str) -> float:
    number = re.match(r"([0-9.]+)([a-z]+)", text)
    if number is None:
        raise ValueError(f"wrk latency {text!r}")
    return float(number.group(1)) * _UNITS[number.group(2)]


def run_wrk(
    url: str, paths: list[str], concurrency: int, warmup: float, duration: float, workdir: Path
) -> dict[str, Any]:
    """Debian ``wrk`` with a Lua script that picks a random path per request."""
    paths_file = workdir / "paths.txt"
    paths_file.write_text("\n".join(paths) + "\n")
    script = workdir / "paths.lua"
    script.write_text(_WRK_SCRIPT)
    threads = str(min(concurrency, 2))
    base = ["wrk", "-t", threads, "-c", str(concurrency), "-s", str(script)]
    if warmup > 0:  # wrk takes whole seconds
        subprocess.run(
            [*base, "-d", f"{max(1, round(warmup))}s", url, str(paths_file)], capture_output=True, check=True
        )
    out = subprocess.run(
        [*base, "-d", f"{max(1, round(duration))}s", "--latency", "--timeout", "30s", url, str(paths_file)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    pct = {m.group(1): _wrk_ms(m.group(2)) for m in re.finditer(r"^\s+(50|75|90|99)%\s+(\S+)\s*$", out, re.M)}
    if len(pct) != 4:
        raise SystemExit(f"cannot read wrk's output:\n{out}")
    total = int(re.search(r"^\s+(\d+) requests in", out, re.M).group(1))  # type: ignore[union-attr]
    seconds = float(re.search(r"requests in ([0-9.]+)s", out).group(1))  # type: ignore[union-attr]
    errors: dict[str, int] = {}
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        errors["non-2xx"] = int(m.group(1))
    if m := re.search(r"Socket errors: (.*)$", out, re.M):
        errors["socket"] = sum(int(n) for n in re.findall(r"\d+", m.group(1)))
    return {
        "requests": total,
        "rps": (total - errors.get("non-2xx", 0)) / seconds,
        "p50_ms": pct["50"],
        "p90_ms": pct["90"],
        "p99_ms": pct["99"],
        "mean_ms": _wrk_ms(re.search(r"Latency\s+(\S+)", out).group(1)),  # type: ignore[union-attr]
        "errors": errors,
    }


# -- the ledger and the server ---------------------------------------------------------------------


def build_node(home: Path, licences: int) -> tuple[list[str], float]:
    from ledger.records import Record, RecordType, SignedRecord, new_nonce, now_utc, sign_record
    from nodes.config import NodeConfig
    from nodes.local import agency_key_json, init_node
    from signing.sm2 import SM2PrivateKey

    agency_key = SM2PrivateKey.generate()
    cfg = NodeConfig(home=home)
    cfg.database = cfg.default_database()
    agency = {
        "id": AGENCY,
        "name": "bench agency",
        "regions": ["44"],
        "types": ["1001"],
        "authority": False,
        "keys": [agency_key_json(agency_key.public_key, datetime(2020, 1, 1, tzinfo=UTC))],
    }
    node = init_node(
        cfg,
        PASSPHRASE.encode(),
        origin=ORIGIN,
        node_name="bench node",
        authority_id="gov",
        authority_name="gov",
        agencies=[agency],
        time_window=86400,
    )
    ids = [f"1.2.156.3005.2.1001.{AGENCY}.{i:08d}.001" for i in range(licences)]

    def one(lid: str) -> SignedRecord:
        payload = {
            "licence_id": lid,
            "type_code": "1001",
            "region": "440305",
            "version": 1,
            "files": {"ofd": os.urandom(32).hex(), "pdf": os.urandom(32).hex()},
            "metadata": {"holder": "某某科技有限公司", "credit_code": "91440300MA5XXXXXX1"},
        }
        rec = Record(RecordType.ISSUE, ORIGIN, now_utc(), new_nonce(), AGENCY, agency_key.public_key.key_id, payload)
        return sign_record(rec, [agency_key])

    with ThreadPoolExecutor(os.cpu_count() or 2) as pool:
        records = list(pool.map(one, ids))
    start = time.perf_counter()
    try:
        for i in range(0, len(records), 500):
            node.ledger.submit(records[i : i + 500]).raise_first()
    finally:
        node.close()
    return ids, time.perf_counter() - start


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_server(home: Path, port: int, workers: int, log: Path) -> subprocess.Popen[bytes]:
    import httpx

    script = Path(sys.executable).with_name("certledger")
    env = {**os.environ, "CERTLEDGER_API_RATE": "0"}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                str(script),
                "serve",
                "--home",
                str(home),
                "--read-only",
                "--workers",
                str(workers),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {log.read_text()}")
        try:
            # every worker must be up before timing: ask a few times, each over a fresh connection
            if all(
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200 for _ in range(4 * workers)
            ):
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    stop_server(proc)
    raise SystemExit(f"server not ready: {log.read_text()}")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def server_cpu_seconds(pgid: int) -> float:
    """User + system CPU seconds of every process in the server's process group (master and workers)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        # after the command: state ppid pgrp ... utime(12th) stime(13th)
        if int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])
    return total / tick


def verify_one(url: str, home: Path, licence_id: str) -> list[str]:
    from ledger.service import Ledger
    from nodes.config import load_config
    from verify_api.anchors import TrustAnchors
    from verify_api.client import LedgerClient

    ledger = Ledger.open(load_config(home).database)
    try:
        genesis = ledger.entry(0).entry_bytes()
    finally:
        ledger.close()
    client = LedgerClient(url, TrustAnchors.from_genesis(genesis))
    try:
        return [c.name for c in client.licence_status(licence_id).checks]
    finally:
        client.close()


# -- file verification ------------------------------------------------------------------------------


def build_file_home(home: Path) -> dict[str, bytes]:
    """Real issued licence files and the node home whose ledger holds their records."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "browser"))
    from licence_files import build_licence_home

    files: dict[str, bytes] = build_licence_home(home).files
    return files


async def _upload_load(url: str, files: list[bytes], concurrency: int, duration: float) -> dict[str, Any]:
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    latencies: list[float] = []
    errors: dict[str, int] = {}
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        stop = time.perf_counter() + duration

        async def worker(n: int) -> None:
            i = n
            while time.perf_counter() < stop:
                data = files[i % len(files)]
                i += 1
                t0 = time.perf_counter()
                try:
                    resp = await client.post(
                        "/v1/verify", content=data, headers={"content-type": "application/octet-stream"}
                    )
                    status = str(resp.status_code)
                except Exception as exc:  # count and go on
                    status = type(exc).__name__
                if status == "200":
                    latencies.append(time.perf_counter() - t0)
                else:
                    errors[status] = errors.get(status, 0) + 1

        t_start = time.perf_counter()
        await asyncio.gather(*(worker(n) for n in range(concurrency)))
        elapsed = time.perf_counter() - t_start
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000 if latencies else float("nan")

    return {
        "files": len(latencies),
        "files_per_s": len(latencies) / elapsed,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "errors": errors,
    }


def check_verdicts(url: str, files: dict[str, bytes]) -> dict[str, str]:
    """Each file's verdict, once; a wrong one stops the benchmark (it would measure wrong answers)."""
    import httpx

    got = {}
    with httpx.Client(base_url=url, timeout=60) as client:
        for name, data in files.items():
            resp = client.post("/v1/verify", content=data, headers={"content-type": "application/octet-stream"})
            got[name] = str(resp.json().get("verdict", f"HTTP {resp.status_code}"))
    wrong = {n: v for n, v in got.items() if EXPECTED_VERDICTS.get(n) != v}
    if wrong:
        raise SystemExit(f"wrong verdicts: {wrong} (expected {EXPECTED_VERDICTS})")
    return got


def measure_verify(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    home = work / "files-node"
    t0 = time.perf_counter()
    files = build_file_home(home)
    built_s = time.perf_counter() - t0
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(home, port, args.workers, work / "serve-files.log")
    out: dict[str, Any] = {"files_built_seconds": round(built_s, 1), "concurrency": args.verify_concurrency}
    try:
        out["verdicts"] = check_verdicts(url, files)
        for fmt in ("pdf", "ofd"):
            batch = [d for n, d in sorted(files.items()) if n.endswith("." + fmt)]
            asyncio.run(_upload_load(url, batch, args.verify_concurrency, min(2.0, args.verify_duration)))
            cpu0 = server_cpu_seconds(server.pid)
            res = asyncio.run(_upload_load(url, batch, args.verify_concurrency, args.verify_duration))
            res["server_cpu_ms_per_file"] = 1000 * (server_cpu_seconds(server.pid) - cpu0) / max(1, res["files"])
            res["file_count"] = len(batch)
            res["mean_bytes"] = sum(len(d) for d in batch) // len(batch)
            out[fmt] = res
    finally:
        stop_server(server)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--licences", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--duration", type=float, default=15.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="uvicorn worker processes")
    parser.add_argument(
        "--generator",
        choices=["wrk", "httpx"],
        default="wrk" if shutil.which("wrk") else "httpx",
        help="load generator (default: wrk when installed)",
    )
    parser.add_argument("--load-procs", type=int, default=1, help="httpx load generator processes")
    parser.add_argument("--verify-duration", type=float, default=10.0, help="measured seconds per file format")
    parser.add_argument("--verify-concurrency", type=int, default=8, help="connections uploading files")
    parser.add_argument("--no-verify", action="store_true", help="skip the POST /v1/verify workload")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="certledger-bench-api-") as tmp:
        work = Path(tmp)
        home = work / "node"
        ids, preload_s = build_node(home, args.licences)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = start_server(home, port, args.workers, work / "serve.log")
        try:
            checks = verify_one(url, home, ids[len(ids) // 2])
            paths = [f"/v1/licences/{i}" for i in ids]

            def measure(which: list[str], seconds: float) -> dict[str, Any]:
                """A warm-up run, then the measured run with the server's CPU time read around it."""
                if args.generator == "wrk":
                    run_wrk(url, which, args.concurrency, 0, args.warmup, work)
                    cpu0 = server_cpu_seconds(server.pid)
                    out = run_wrk(url, which, args.concurrency, 0, seconds, work)
                else:
                    run_load(url, which, args.concurrency, args.load_procs, 0, args.warmup, work)
                    cpu0 = server_cpu_seconds(server.pid)
                    out = run_load(url, which, args.concurrency, args.load_procs, 0, seconds, work)
                cpu = server_cpu_seconds(server.pid) - cpu0
                # CPU per request hardly depends on what else runs on the machine; req/s does
                out["server_cpu_ms_per_request"] = 1000 * cpu / max(1, out["requests"])
                out["cpu_bound_rps"] = (os.cpu_count() or 1) * 1000 / max(1e-9, out["server_cpu_ms_per_request"])
                return out

            status = measure(paths, args.duration)
            health = measure(["/healthz"], min(args.duration, 5.0))
        finally:
            stop_server(server)
        verify = None if args.no_verify else measure_verify(args, work)

    result = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0], "loadavg_1m": os.getloadavg()[0]},
        "licences": args.licences,
        "preload_seconds": round(preload_s, 2),
        "workers": args.workers,
        "concurrency": args.concurrency,
        "generator": args.generator,
        "load_procs": args.load_procs if args.generator == "httpx" else None,
        "verified_checks": checks,
        "status_with_proof": status,
        "reference_healthz": health,
        "targets": {"rps": TARGET_RPS, "p99_ms": TARGET_P99_MS},
        "file_verification": verify,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    ok_rps = status["rps"] >= TARGET_RPS
    ok_p99 = status["p99_ms"] <= TARGET_P99_MS
    print(
        f"machine: {result['machine']['cpus']} CPUs, Python {result['machine']['python']}, "
        f"load average {result['machine']['loadavg_1m']:.1f} at the end"
    )
    print(
        f"ledger: {args.licences} licences preloaded in {preload_s:.1f} s; server: {args.workers} uvicorn "
        f"workers, read-only; load: {args.generator}"
        f"{f' x {args.load_procs} process(es)' if args.generator == 'httpx' else ''}, {args.concurrency} connections"
    )
    print(f"one answer verified by LedgerClient: {', '.join(checks)}")
    print("GET /v1/licences/{id} (status + inclusion proof + key admission + checkpoint):")
    print(
        f"  {status['rps']:8.0f} req/s   (target >= {TARGET_RPS:.0f}: {'met' if ok_rps else 'NOT met'}, "
        f"{status['rps'] / TARGET_RPS:.2f}x)"
    )
    print(
        f"  p50 {status['p50_ms']:.1f} ms  p90 {status['p90_ms']:.1f} ms  p99 {status['p99_ms']:.1f} ms   "
        f"(target p99 <= {TARGET_P99_MS:.0f} ms: {'met' if ok_p99 else 'NOT met'})"
    )
    print(f"  errors: {status['errors'] or 'none'}")
    print(
        f"  server CPU {status['server_cpu_ms_per_request']:.2f} ms/request -> at most "
        f"{status['cpu_bound_rps']:.0f} req/s on {os.cpu_count()} idle cores"
    )
    print(
        f"reference GET /healthz, same server and generator: {health['rps']:.0f} req/s, "
        f"p99 {health['p99_ms']:.1f} ms, server CPU {health['server_cpu_ms_per_request']:.2f} ms/request; "
        f"status-with-proof runs at {status['rps'] / health['rps']:.2f}x of it"
    )
    if verify is None:
        return
    print(
        f"POST /v1/verify (real issued files, built in {verify['files_built_seconds']} s; "
        f"{verify['concurrency']} connections, raw upload):"
    )
    print(f"  verdicts checked once: {', '.join(f'{n} {v}' for n, v in verify['verdicts'].items())}")
    for fmt in ("pdf", "ofd"):
        r = verify[fmt]
        ok = r["files_per_s"] >= TARGET_FILES_PER_S
        print(
            f"  {fmt.upper()} ({r['file_count']} files, mean {r['mean_bytes'] // 1024} KiB): "
            f"{r['files_per_s']:6.1f} files/s (target >= {TARGET_FILES_PER_S:.0f}: {'met' if ok else 'NOT met'}), "
            f"p50 {r['p50_ms']:.1f} ms  p99 {r['p99_ms']:.1f} ms, "
            f"server CPU {r['server_cpu_ms_per_file']:.1f} ms/file, errors: {r['errors'] or 'none'}"
        )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_load":
        load_main(sys.argv[2:])
    else:
        main()

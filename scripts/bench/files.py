"""Licence-file benchmark: issue licences/s (both formats) and verify files/s per format.

    .venv/bin/python scripts/bench/files.py [--count 40] [--workers N] [--json]

"Issue" is the whole path of `certledger issue`: lay out the face, render the
PDF and sign it (PAdES SM2), render the OFD and seal it (GB/T 38540), compute
both digests, build and sign the ISSUE record, append it, and embed the proof
bundle in both files. It is measured twice: one licence at a time in one process
(one block each, as a single-node ledger does for a lone submission), and as one
batch of --count licences rendered by --workers processes (cert_formats.issuing_pool,
what `certledger issue a.json b.json ...` does) and appended as one block; the
pool is started and warmed before the clock starts. "Verify" is
`verify_licence_file` with the live ledger as the status source (signature/seal,
chain, digest, status), in one process and in --workers processes, each with its
own read-only view of the ledger (as `certledger serve --workers` runs). Each licence has different text
(holder names), so font subsetting is not cached across licences. The reference
printed beside the numbers is the machine's SM2 sign+verify rate, measured in
the same run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from cert_formats.identifier import LicenceIdentifier
from cert_formats.issuance import AgencyCredentials, IssuedFiles, attach_bundles, issue_payload, render_and_sign
from cert_formats.issuing_pool import IssuingPool
from cert_formats.licence import Licence
from cert_formats.seal import make_seal, render_seal_picture
from cert_formats.template import LicenceTemplate, builtin_templates
from cert_formats.verify_file import verify_licence_file
from ledger.records import Record, RecordType, SignedRecord, new_nonce, now_utc, sign_record
from nodes.config import NodeConfig
from nodes.local import LocalNode, agency_key_json, init_node
from signing.sm2 import SM2PrivateKey
from signing.x509 import Certificate, DistinguishedName, Role, Validity, issue_certificate, issue_root_certificate

_SURNAMES = "赵钱孙李周吴郑王冯陈褚卫蒋沈韩杨朱秦尤许何吕施张孔曹严华金魏陶姜"
_WORDS = "云岫明德星河西溪湖畔天和远达恒信安泰华盛嘉禾锦程博雅智联数科"


def holder(i: int) -> str:
    return f"杭州{_WORDS[i % len(_WORDS)]}{_WORDS[(i * 7) % len(_WORDS)]}{_SURNAMES[i % len(_SURNAMES)]}氏科技有限公司"


def sm2_rate(seconds: float = 2.0) -> float:
    key = SM2PrivateKey.generate()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        key.public_key.verify(key.sign(b"x" * 400), b"x" * 400)
        n += 1
    return n / (time.perf_counter() - start)


@dataclasses.dataclass
class Bench:
    """A single-node ledger with one admitted agency and its signing credentials."""

    template: LicenceTemplate
    sample: Licence
    root: Certificate
    agency_key: SM2PrivateKey
    creds: AgencyCredentials
    node: LocalNode


def setup(tmp: Path) -> Bench:
    """The benchmark's ledger and agency in ``tmp`` (also used by profiling scripts)."""
    tpl = builtin_templates()["business_licence"]
    sample = tpl.sample_licence()
    root_key, ag_key, maker_key = SM2PrivateKey.generate(), SM2PrivateKey.generate(), SM2PrivateKey.generate()
    root = issue_root_certificate(
        DistinguishedName(common_name="bench root", organization="bench", country="CN"), root_key, Validity.for_days(30)
    )
    agency = issue_certificate(
        role=Role.AGENCY, validity=Validity.for_days(30), issuer=root, issuer_key=root_key,
        subject=DistinguishedName(common_name=sample.issuer_name, organization=sample.issuer_name,
                                  credit_code=sample.issuer_code, country="CN"),
        public_key=ag_key.public_key,
    )  # fmt: skip
    maker = issue_certificate(
        role=Role.AGENCY, validity=Validity.for_days(30), issuer=root, issuer_key=root_key,
        subject=DistinguishedName(common_name="seal maker", organization="seal maker",
                                  credit_code="11330000MB2C920491", country="CN"),
        public_key=maker_key.public_key,
    )  # fmt: skip
    now = datetime.now(UTC)
    seal = make_seal(
        name="bench seal",
        signers=[agency],
        maker_key=maker_key,
        maker_cert=maker,
        valid_start=now - timedelta(minutes=5),
        valid_end=now + timedelta(days=30),
        picture=render_seal_picture(sample.issuer_name),
    )
    creds = AgencyCredentials(ag_key, agency, (root,), seal)

    cfg = NodeConfig(home=tmp / "node", node_id="bench")
    cfg.database = cfg.default_database()
    node = init_node(
        cfg,
        b"bench passphrase",
        origin="bench.certledger.example/files",
        node_name="bench",
        authority_id="gov",
        authority_name="gov",
    )
    node.governance(
        RecordType.AGENCY_ADMIT,
        {
            "agency": {
                "id": sample.issuer_code,
                "name": sample.issuer_name,
                "regions": ["33"],
                "types": [tpl.type_code],
                "authority": False,
                "keys": [agency_key_json(ag_key.public_key)],
            }
        },
    )
    return Bench(tpl, sample, root, ag_key, creds, node)


def _licences(b: Bench, count: int, offset: int) -> list[Licence]:
    out = []
    for i in range(offset, offset + count):
        number = b.sample.number[:-4] + f"{i:04d}"
        out.append(dataclasses.replace(
            b.sample, number=number, holder=holder(i),
            identifier=str(LicenceIdentifier.build(b.template.type_code, b.sample.issuer_code, number)),
        ))  # fmt: skip
    return out


def _record(b: Bench, files: IssuedFiles) -> SignedRecord:
    rec = Record(RecordType.ISSUE, b.node.origin, now_utc(), new_nonce(), b.sample.issuer_code,
                 b.agency_key.public_key.key_id, issue_payload(files))  # fmt: skip
    return sign_record(rec, [b.agency_key])


def issue_one_by_one(b: Bench, count: int) -> tuple[float, list[tuple[bytes, bytes]]]:
    """`certledger issue` for one licence, ``count`` times: one process, one block each."""
    issued = []
    start = time.perf_counter()
    for lic in _licences(b, count, 0):
        files = render_and_sign(lic, b.template, b.creds, verify_host="v.example")
        b.node.ledger.submit([_record(b, files)]).raise_first()
        issued.append(attach_bundles(files, b.node.ledger.status_document(files.licence_id)))
    return count / (time.perf_counter() - start), issued


def issue_batch(b: Bench, count: int, workers: int) -> tuple[float, list[tuple[bytes, bytes]]]:
    """`certledger issue` for ``count`` licences at once: rendered by ``workers`` processes
    (the pool is started and warmed before the clock starts), appended as one batch."""
    with IssuingPool(b.creds, verify_host="v.example", workers=workers) as pool:
        pool.warm_up()
        list(pool.render([(b.sample, b.template)] * workers))  # each worker loads its fonts
        lics = _licences(b, count, 10_000)
        start = time.perf_counter()
        all_files = list(pool.render((lic, b.template) for lic in lics))
        b.node.ledger.submit([_record(b, f) for f in all_files]).raise_first()
        issued = [attach_bundles(f, b.node.ledger.status_document(f.licence_id)) for f in all_files]
        return count / (time.perf_counter() - start), issued


# -- verification in worker processes (each with its own read-only view of the ledger) --------

_WORKER: dict[str, Any] = {}


def _verify_start(home: str, root_der: bytes) -> None:
    from nodes.config import load_config
    from nodes.local import open_node
    from signing.x509 import load_certificate

    _WORKER["node"] = open_node(load_config(home), None, write=False)
    _WORKER["root"] = load_certificate(root_der)


def _verify(data: bytes) -> str:
    node, root = _WORKER["node"], _WORKER["root"]
    return str(verify_licence_file(data, roots=[root], live=node.ledger.status_document).verdict)


def verify_rates(b: Bench, issued: list[tuple[bytes, bytes]], workers: int) -> dict[str, float]:
    rates = {}
    if workers == 1:
        for fmt, pick in (("pdf", 0), ("ofd", 1)):
            start = time.perf_counter()
            for pair in issued:
                verdict = verify_licence_file(pair[pick], roots=[b.root], live=b.node.ledger.status_document)
                if verdict.verdict != "valid":
                    raise SystemExit(f"bench: a genuine {fmt} did not verify: {verdict.to_json()}")
            rates[fmt] = len(issued) / (time.perf_counter() - start)
        return rates
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_verify_start,
                             initargs=(str(b.node.config.home), b.root.der)) as pool:  # fmt: skip
        list(pool.map(_verify, [issued[0][0], issued[0][1]] * workers))  # warm-up, not timed
        for fmt, pick in (("pdf", 0), ("ofd", 1)):
            files = [pair[pick] for pair in issued]
            start = time.perf_counter()
            verdicts = list(pool.map(_verify, files, chunksize=4))
            rates[fmt] = len(files) / (time.perf_counter() - start)
            if set(verdicts) != {"valid"}:
                raise SystemExit(f"bench: a genuine {fmt} did not verify in a worker: {set(verdicts)}")
    return rates


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=40, help="licences to issue (and files to verify per format)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                    help="processes for the batch issue and the parallel verification (default: CPU count)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    say = (lambda s: print(s, file=sys.stderr)) if args.json else print

    ref = sm2_rate()
    with tempfile.TemporaryDirectory() as tmp:
        b = setup(Path(tmp))
        # warm-up: the font base subset and the libraries load once per process
        render_and_sign(b.sample, b.template, b.creds, verify_host="v.example")
        one_rate, issued = issue_one_by_one(b, args.count)
        say(f"issued {args.count} licences one by one ({one_rate:.2f}/s)")
        batch_rate, batch_issued = issue_batch(b, args.count, args.workers)
        say(f"issued {args.count} licences as one batch on {args.workers} workers ({batch_rate:.2f}/s)")
        single = verify_rates(b, issued, 1)
        parallel = verify_rates(b, issued + batch_issued, args.workers)
        b.node.close()
    out = {
        "sm2_sign_verify_per_s": ref,
        "workers": args.workers,
        "issue_one_by_one_per_s": one_rate,
        "issue_batch_per_s": batch_rate,
        "verify_pdf_per_s_1_process": single["pdf"],
        "verify_ofd_per_s_1_process": single["ofd"],
        "verify_pdf_per_s": parallel["pdf"],
        "verify_ofd_per_s": parallel["ofd"],
        "targets": {"issue_per_s": 20, "verify_per_s": 200},
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return

    def met(value: float, target: float) -> str:
        return "met" if value >= target else "NOT met"

    w = args.workers
    print(f"\nreference: SM2 sign+verify pairs/s on 1 thread = {ref:.0f}")
    print("issue (both formats, signed, sealed, appended, proof embedded):")
    print(f"  one by one, 1 process, one block each: {one_rate:.2f} licences/s")
    print(f"  batch of {args.count}, {w} worker processes, one block: {batch_rate:.2f} licences/s "
          f"(target >= 20: {met(batch_rate, 20)})")
    for fmt in ("pdf", "ofd"):
        rate = out[f"verify_{fmt}_per_s"]
        print(f"verify {fmt.upper()}: 1 process {single[fmt]:.1f} files/s; {w} processes {rate:.1f} files/s "
              f"(target >= 200: {met(rate, 200)})")


if __name__ == "__main__":
    main()

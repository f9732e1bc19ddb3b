"""Licence-file benchmark: issue licences/s (both formats) and verify files/s per format.

    .venv/bin/python scripts/bench/files.py [--count 40] [--json]

"Issue" is the whole path of `certledger issue`: lay out the face, render the
PDF and sign it (PAdES SM2), render the OFD and seal it (GB/T 38540), compute
both digests, build and sign the ISSUE record, append it (one block each, as a
single-node ledger does for a lone submission), and embed the proof bundle in
both files. "Verify" is `verify_licence_file` with the live ledger as the status
source (signature/seal, chain, digest, status). Each licence has different text
(holder names), so font subsetting is not cached across licences. The reference
printed beside the numbers is the machine's SM2 sign+verify rate, measured in
the same run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from cert_formats.identifier import LicenceIdentifier
from cert_formats.issuance import AgencyCredentials, attach_bundles, issue_payload, render_and_sign
from cert_formats.licence import Licence
from cert_formats.seal import make_seal, render_seal_picture
from cert_formats.template import LicenceTemplate, builtin_templates
from cert_formats.verify_file import verify_licence_file
from ledger.records import Record, RecordType, new_nonce, now_utc, sign_record
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=40, help="licences to issue (and files to verify per format)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    say = (lambda s: print(s, file=sys.stderr)) if args.json else print

    ref = sm2_rate()
    with tempfile.TemporaryDirectory() as tmp:
        b = setup(Path(tmp))
        tpl, sample, root, ag_key, creds, node = b.template, b.sample, b.root, b.agency_key, b.creds, b.node
        # warm-up: the font base subset and the libraries load once per process
        render_and_sign(sample, tpl, creds, verify_host="v.example")
        issued: list[tuple[bytes, bytes]] = []
        start = time.perf_counter()
        for i in range(args.count):
            number = sample.number[:-4] + f"{i:04d}"
            lic = dataclasses.replace(
                sample,
                number=number,
                holder=holder(i),
                identifier=str(LicenceIdentifier.build(tpl.type_code, sample.issuer_code, number)),
            )
            files = render_and_sign(lic, tpl, creds, verify_host="v.example")
            rec = Record(
                RecordType.ISSUE,
                node.origin,
                now_utc(),
                new_nonce(),
                sample.issuer_code,
                ag_key.public_key.key_id,
                issue_payload(files),
            )
            node.ledger.submit([sign_record(rec, [ag_key])]).raise_first()
            issued.append(attach_bundles(files, node.ledger.status_document(files.licence_id)))
        issue_s = time.perf_counter() - start
        say(f"issued {args.count} licences in {issue_s:.1f}s")

        def live(licence_id: str) -> dict[str, Any] | None:
            return node.ledger.status_document(licence_id)

        rates = {}
        for fmt, pick in (("pdf", 0), ("ofd", 1)):
            start = time.perf_counter()
            for pair in issued:
                verdict = verify_licence_file(pair[pick], roots=[root], live=live)
                if verdict.verdict != "valid":
                    raise SystemExit(f"bench: a genuine {fmt} did not verify: {verdict.to_json()}")
            rates[fmt] = len(issued) / (time.perf_counter() - start)
        node.close()
    out = {
        "sm2_sign_verify_per_s": ref,
        "issue_per_s": args.count / issue_s,
        "verify_pdf_per_s": rates["pdf"],
        "verify_ofd_per_s": rates["ofd"],
        "targets": {"issue_per_s": 20, "verify_per_s": 200},
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"\nreference: SM2 sign+verify pairs/s on 1 thread = {ref:.0f}")
    print(
        f"issue (both formats, signed, sealed, appended, proof embedded): {out['issue_per_s']:.2f} licences/s "
        f"(target >= 20: {'met' if out['issue_per_s'] >= 20 else 'NOT met'})"
    )
    for fmt in ("pdf", "ofd"):
        rate = out[f"verify_{fmt}_per_s"]
        print(f"verify {fmt.upper()}: {rate:.1f} files/s (target >= 200: {'met' if rate >= 200 else 'NOT met'})")


if __name__ == "__main__":
    main()

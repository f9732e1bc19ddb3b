"""The appending process that ``test_crash_safety.py`` kills, and the test ledger's founders.

Run as a script it is a *zygote*: it imports the ledger once (SQLAlchemy and
Alembic alone take seconds to import on a busy 2-core machine, and the crash
test restarts the appender 50+ times), then serves commands on stdin:

``RUN <seed>``
    fork one appender child; print ``CHILD <pid>``; wait for it to end; print
    ``DEAD <pid> <status>``. Because ``DEAD`` is written only after
    ``waitpid`` returned, every line the child wrote precedes it on the pipe.
``QUIT`` (or end of input)
    exit.

The appender child opens the ledger at URL, prints ``READY <pid> <tree_size>``
and then submits batches of valid records in a loop (new licences, lifecycle
changes of licences it read from the store's derived state, now and then an
agency admission). After each :meth:`Ledger.submit` has *returned* -- i.e.
after the batch's transaction committed -- it prints::

    ACK <pid> <block height> <tree size> <index>:<record hash> ...

with one ``write(2)`` per line on an unbuffered stdout. Before each submit it
prints ``SUBMIT <pid> <record hash> ...`` so the parent knows which batch was in
flight when the kill came: that batch must then be on the ledger whole or not at all. A line is at most a
few KiB, under PIPE_BUF, so a kill can never leave half an ACK line behind.
A rejected record is a test failure (``ERR ...`` line, exit 3): the workload
is built to be valid, so a rejection would mean the derived state lied.
The child stops by itself after ``--max-seconds`` (default 60) if nobody kills it.

Usage: ``python crash_appender.py URL KEYDIR``
"""

from __future__ import annotations

import json
import os
import random
import secrets
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from ledger.identity import NodeKeys
from ledger.records import Record, RecordType, SignedRecord, encode_public_key, new_nonce, now_utc, sign_record
from ledger.service import BatchResult, Ledger
from ledger.store import schema as t
from signing.sm2 import SM2PrivateKey

ORIGIN = "crash.certledger.test/log"
AGENCY_ID = "91440300MA5CRASH01"
AUTHORITY_ID = "gd-gov"
PASSPHRASE = b"crash-test-passphrase"
LICENCE_TYPE = "1001"
#: keys are valid from long before any record a test makes
KEYS_VALID_FROM = "2020-01-01T00:00:00Z"
#: records per batch: an ACK line (~72 bytes per record) must stay under PIPE_BUF (4096)
MAX_BATCH = 4


def key_json(key: SM2PrivateKey) -> dict[str, str]:
    return {"key_id": key.public_key.key_id, "public_key": encode_public_key(key.public_key),
            "not_before": KEYS_VALID_FROM}


def agency_json(agency_id: str, name: str, key: SM2PrivateKey, region: str = "4403") -> dict[str, Any]:
    return {"id": agency_id, "name": name, "regions": [region], "types": [LICENCE_TYPE], "authority": False,
            "keys": [key_json(key)]}


@dataclass
class Founders:
    """The keys behind a test ledger: governance authority, one agency, one node."""

    authority: SM2PrivateKey
    agency: SM2PrivateKey
    node: NodeKeys

    @classmethod
    def generate(cls) -> Founders:
        return cls(SM2PrivateKey.generate(), SM2PrivateKey.generate(), NodeKeys.generate("node-1"))

    def save(self, directory: Path) -> None:
        self.node.save(directory, PASSPHRASE)
        (directory / "authority.pem").write_bytes(self.authority.to_pem(PASSPHRASE))
        (directory / "agency.pem").write_bytes(self.agency.to_pem(PASSPHRASE))

    @classmethod
    def load(cls, directory: Path) -> Founders:
        return cls(
            SM2PrivateKey.load(directory / "authority.pem", PASSPHRASE),
            SM2PrivateKey.load(directory / "agency.pem", PASSPHRASE),
            NodeKeys.load(directory, PASSPHRASE),
        )

    def genesis(self, at: datetime | None = None) -> SignedRecord:
        payload = {
            "agencies": [agency_json(AGENCY_ID, "深圳市市场监督管理局", self.agency)],
            "nodes": [self.node.node_json("广东节点")],
            "governance": {
                "authorities": [{"id": AUTHORITY_ID, "name": "广东省政务服务数据管理局",
                                 "public_key": encode_public_key(self.authority.public_key)}],
                "threshold": 1,
            },
            "quorum": {"threshold": 1},
            "time_window_seconds": 300,
        }
        record = Record(RecordType.GENESIS, ORIGIN, at or now_utc(), new_nonce(), "", "", payload)
        return sign_record(record, [self.authority])

    def governance(self, rtype: RecordType, payload: dict[str, Any], at: datetime | None = None) -> SignedRecord:
        return sign_record(Record(rtype, ORIGIN, at or now_utc(), new_nonce(), "", "", payload), [self.authority])

    def licence(self, rtype: RecordType, payload: dict[str, Any], at: datetime | None = None,
                key: SM2PrivateKey | None = None, agency_id: str = AGENCY_ID) -> SignedRecord:
        key = key or self.agency
        record = Record(rtype, ORIGIN, at or now_utc(), new_nonce(), agency_id, key.public_key.key_id, payload)
        return sign_record(record, [key])


def issue_payload(licence_id: str, *, version: int = 1, holder: str = "某某科技有限公司") -> dict[str, Any]:
    return {"licence_id": licence_id, "type_code": LICENCE_TYPE, "region": "440305", "version": version,
            "files": {"pdf": secrets.token_hex(32)}, "metadata": {"holder": holder}}


@dataclass
class _Licence:
    status: str
    version: int


@dataclass
class Workload:
    """Valid batches for one appender run, tracking licence state from acknowledged batches only."""

    founders: Founders
    rng: random.Random
    tag: str
    licences: dict[str, _Licence] = field(default_factory=dict)
    counter: int = 0

    def load(self, ledger: Ledger, limit: int = 200) -> None:
        """Continue the lifecycle of licences already on the ledger, as the derived state says."""
        with ledger.store.read() as conn:
            rows = conn.execute(
                select(t.st_licences.c.licence_id, t.st_licences.c.data)
                .where(t.st_licences.c.status != "REVOKED")
                .order_by(t.st_licences.c.licence_id)
            ).all()
        for row in self.rng.sample(rows, min(limit, len(rows))):
            data = json.loads(row.data)
            self.licences[str(row.licence_id)] = _Licence(data["status"], int(data["version"]))

    def next_batch(self) -> tuple[list[SignedRecord], list[tuple[str, _Licence | None]]]:
        """Records, and for each one the licence state it leads to once acknowledged."""
        records: list[SignedRecord] = []
        effects: list[tuple[str, _Licence | None]] = []
        used: set[str] = set()
        for _ in range(self.rng.randint(1, MAX_BATCH)):
            live = [lid for lid in self.licences if lid not in used]
            if not live or self.rng.random() < 0.45:
                self.counter += 1
                lid = f"LIC-{self.tag}-{self.counter}"
                records.append(self.founders.licence(RecordType.ISSUE, issue_payload(lid)))
                effects.append((lid, _Licence("ACTIVE", 1)))
                used.add(lid)
                continue
            lid = self.rng.choice(sorted(live))
            used.add(lid)
            lic = self.licences[lid]
            roll = self.rng.random()
            payload: dict[str, Any]
            if roll < 0.1:
                payload = {"licence_id": lid, "reason_code": "crash_test", "reason_text": "撤销"}
                records.append(self.founders.licence(RecordType.REVOKE, payload))
                effects.append((lid, None))
            elif roll < 0.4:
                payload = issue_payload(lid, version=lic.version + 1) | {"reason_text": "变更"}
                records.append(self.founders.licence(RecordType.AMEND, payload))
                effects.append((lid, _Licence(lic.status, lic.version + 1)))
            elif lic.status == "ACTIVE":
                payload = {"licence_id": lid, "reason_code": "crash_test", "reason_text": "暂停"}
                records.append(self.founders.licence(RecordType.SUSPEND, payload))
                effects.append((lid, _Licence("SUSPENDED", lic.version)))
            else:
                records.append(self.founders.licence(RecordType.RESUME, {"licence_id": lid}))
                effects.append((lid, _Licence("ACTIVE", lic.version)))
        if self.rng.random() < 0.05:
            # a governance record now and then: the agency registry changes inside the crash window too
            self.counter += 1
            admit = {"agency": agency_json(f"AG-{self.tag}-{self.counter}", "测试机构", SM2PrivateKey.generate())}
            records.append(self.founders.governance(RecordType.AGENCY_ADMIT, admit))
            effects.append(("", None))
        return records, effects

    def acknowledged(self, effects: list[tuple[str, _Licence | None]]) -> None:
        for lid, state in effects:
            if not lid:
                continue
            if state is None:
                self.licences.pop(lid, None)
            else:
                self.licences[lid] = state


def _emit(line: str) -> None:
    # one write(2) per line, no Python buffering: what the parent reads was really said
    os.write(1, (line + "\n").encode())


def ack_line(pid: int, result: BatchResult) -> str:
    assert result.block is not None
    items = " ".join(f"{a.index}:{a.record_hash}" for a in result.accepted)
    return f"ACK {pid} {result.block.height} {result.block.header.tree_size} {items}"


def append_until_killed(url: str, founders: Founders, seed: int, max_seconds: float) -> int:
    """The child's life: open, announce, append and acknowledge until killed (or the time is up)."""
    pid = os.getpid()
    rng = random.Random(seed)
    ledger = Ledger.open(url, founders.node.identity())
    workload = Workload(founders, rng, tag=f"{seed:x}")
    workload.load(ledger)
    _emit(f"READY {pid} {ledger.tree_size()}")
    deadline = time.monotonic() + max_seconds
    while time.monotonic() < deadline:
        records, effects = workload.next_batch()
        # announce the batch: a kill from here on may or may not commit it, but never half of it
        _emit(f"SUBMIT {pid} " + " ".join(r.record.record_hash() for r in records))
        result = ledger.submit(records)
        if result.rejected:
            first = result.rejected[0]
            _emit(f"ERR {pid} record {first.position} rejected: {first.reason}: {first.message}")
            return 3
        # submit() returned: the batch is committed; only now may it be acknowledged
        _emit(ack_line(pid, result))
        workload.acknowledged(effects)
    ledger.close()
    return 0


def serve(url: str, keydir: Path, max_seconds: float) -> None:
    """The zygote loop (see the module docstring)."""
    founders = Founders.load(keydir)
    for raw in sys.stdin:
        words = raw.split()
        if not words or words[0] == "QUIT":
            return
        if words[0] != "RUN" or len(words) != 2:
            _emit(f"ERR zygote: bad command {raw.strip()!r}")
            continue
        seed = int(words[1])
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = append_until_killed(url, founders, seed, max_seconds)
            except BaseException as exc:
                _emit(f"ERR {os.getpid()} {exc.__class__.__name__}: {exc}")
            finally:
                # never fall back into the zygote's loop (nor run its atexit handlers)
                os._exit(code)
        _emit(f"CHILD {pid}")
        _, status = os.waitpid(pid, 0)
        _emit(f"DEAD {pid} {status}")


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print("usage: crash_appender.py URL KEYDIR [MAX_SECONDS]", file=sys.stderr)
        return 2
    max_seconds = float(argv[2]) if len(argv) == 3 else 60.0
    serve(argv[0], Path(argv[1]), max_seconds)
    return 0


def utc(text: str) -> datetime:
    """A fixed UTC time for deterministic tests ("2026-01-02T03:04:05")."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

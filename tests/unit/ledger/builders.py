"""Builders for the ledger tests: named keys, genesis records, signed records, a test clock.

Everything is built with the ledger's own public API (``Record``, ``sign_record``,
``Ledger``); nothing here bypasses validation. Times are explicit: a :class:`World`
carries its own clock and passes it to ``Ledger.submit(now=...)``, so a test never
depends on the wall clock or on how fast the machine is.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from ledger.identity import NodeKeys
from ledger.records import (
    Record,
    RecordType,
    SignedRecord,
    encode_public_key,
    format_time,
    sign_record,
)
from ledger.service import BatchResult, Ledger
from ledger.store import schema as t
from signing.sm2 import SM2PrivateKey
from signing.sm3 import sm3

ORIGIN = "test.certledger.example/licences"
#: the tests' "now" at genesis; far from the wall clock on purpose
T0 = datetime(2026, 3, 2, 9, 0, 0, tzinfo=UTC)
KEYS_VALID_FROM = datetime(2020, 1, 1, tzinfo=UTC)
TIME_WINDOW = 300


@dataclass(frozen=True)
class AgencySpec:
    """An agency of the test province; ``key`` names its signing key in the :class:`KeyRing`."""

    id: str
    name: str
    regions: tuple[str, ...]
    types: tuple[str, ...]
    authority: bool = False
    #: the region its licences are issued in by default
    home_region: str = ""


AGENCIES: Mapping[str, AgencySpec] = {
    # a city agency: Shenzhen (GB/T 2260 4403), business licences 1001 and 1002
    "SZ": AgencySpec("11440300MB2C54301Y", "深圳市市场监督管理局", ("4403",), ("1001", "1002"),
                     home_region="440305"),
    # another city agency: Guangzhou (4401)
    "GZ": AgencySpec("11440100MB2C194577", "广州市市场监督管理局", ("4401",), ("1001", "1002"),
                     home_region="440106"),
    # the provincial authority: covers every region of Guangdong (44) and every type
    "PROV": AgencySpec("11440000MB2C92039T", "广东省市场监督管理局", ("44",), ("*",), authority=True,
                       home_region="440305"),
    # an authority for Guangzhou only: may not act on Shenzhen licences
    "GZAUTH": AgencySpec("11440100MB2C00000A", "广州市政务服务数据管理局", ("4401",), ("*",), authority=True,
                         home_region="440106"),
    # never admitted by the default genesis; AGENCY_ADMIT tests admit it
    "NEW": AgencySpec("11440400MB2C00000B", "珠海市市场监督管理局", ("4404",), ("1001",),
                      home_region="440402"),
}
DEFAULT_AGENCIES = ("SZ", "GZ", "PROV", "GZAUTH")


class KeyRing:
    """SM2 keys by name, generated once per test session (generation costs ~5 ms each)."""

    def __init__(self) -> None:
        self._keys: dict[str, SM2PrivateKey] = {}
        self.node = NodeKeys.generate("node-1")

    def __getitem__(self, name: str) -> SM2PrivateKey:
        key = self._keys.get(name)
        if key is None:
            key = self._keys[name] = SM2PrivateKey.generate()
        return key


def agency_key_json(key: SM2PrivateKey, not_before: datetime = KEYS_VALID_FROM,
                    not_after: datetime | None = None) -> dict[str, Any]:
    out = {
        "key_id": key.public_key.key_id,
        "public_key": encode_public_key(key.public_key),
        "not_before": format_time(not_before),
    }
    if not_after is not None:
        out["not_after"] = format_time(not_after)
    return out


def agency_json(spec: AgencySpec, key: SM2PrivateKey) -> dict[str, Any]:
    return {
        "id": spec.id,
        "name": spec.name,
        "regions": list(spec.regions),
        "types": list(spec.types),
        "authority": spec.authority,
        "keys": [agency_key_json(key)],
    }


def nonce_for(n: int) -> str:
    """A distinct, recognisable nonce (32 lower-case hex digits)."""
    return f"{n:032x}"


def file_digest(text: str) -> str:
    return sm3(text.encode()).hex()


def build_genesis(
    keys: KeyRing,
    *,
    authorities: Sequence[str] = ("auth1",),
    threshold: int = 1,
    agencies: Sequence[str] = DEFAULT_AGENCIES,
    signers: Sequence[str] | None = None,
    origin: str = ORIGIN,
    time: datetime = T0,
    nonce: str | None = None,
    nodes: Sequence[NodeKeys] = (),
    quorum: int = 1,
) -> SignedRecord:
    """A GENESIS record naming ``authorities`` (``threshold`` of them must sign governance).

    Its nodes are ``keys.node`` and ``nodes``; ``quorum`` of them make a checkpoint final.
    """
    payload = {
        "agencies": [agency_json(AGENCIES[name], keys[name]) for name in agencies],
        "nodes": [keys.node.node_json("test node")] + [n.node_json(f"test node {n.node_id}") for n in nodes],
        "governance": {
            "authorities": [
                {"id": f"gov-{name}", "name": f"authority {name}",
                 "public_key": encode_public_key(keys[name].public_key)}
                for name in authorities
            ],
            "threshold": threshold,
        },
        "quorum": {"threshold": quorum},
        "time_window_seconds": TIME_WINDOW,
    }
    record = Record(RecordType.GENESIS, origin, time, nonce or nonce_for(0xBE6), "", "", payload)
    return sign_record(record, [keys[n] for n in (signers if signers is not None else authorities)])


# -- payloads ------------------------------------------------------------------------------


def issue_payload(licence_id: str, region: str, type_code: str = "1001", **extra: Any) -> dict[str, Any]:
    return {
        "licence_id": licence_id,
        "type_code": type_code,
        "region": region,
        "version": 1,
        "files": {"pdf": file_digest(f"{licence_id} v1")},
        "metadata": {"holder": "深圳前海星河科技有限公司", "title": "营业执照"},
        **extra,
    }


def amend_payload(licence_id: str, version: int, region: str, type_code: str = "1001") -> dict[str, Any]:
    return {
        "licence_id": licence_id,
        "type_code": type_code,
        "region": region,
        "version": version,
        "files": {"pdf": file_digest(f"{licence_id} v{version}"), "ofd": file_digest(f"{licence_id} v{version} ofd")},
        "metadata": {"holder": "深圳前海星河智能科技有限公司", "title": "营业执照"},
        "reason_text": "名称变更",
    }


def suspend_payload(licence_id: str) -> dict[str, Any]:
    return {"licence_id": licence_id, "reason_code": "inspection", "reason_text": "经营异常，暂停待核查"}


def resume_payload(licence_id: str) -> dict[str, Any]:
    return {"licence_id": licence_id, "reason_text": "核查完毕"}


def revoke_payload(licence_id: str) -> dict[str, Any]:
    return {"licence_id": licence_id, "reason_code": "fraud", "reason_text": "以欺骗手段取得登记"}


# -- a ledger with its keys and clock -----------------------------------------------------------


@dataclass
class World:
    """A ledger, the keys of its agencies and authorities, and a clock for record times."""

    ledger: Ledger
    keys: KeyRing
    authorities: tuple[str, ...]
    threshold: int
    genesis: SignedRecord
    now: datetime = T0
    #: the key each agency signs with now (changes after a rotation)
    agency_key: dict[str, str] = field(default_factory=dict)
    _nonce: int = 1

    def tick(self, seconds: int = 1) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now

    def next_nonce(self) -> str:
        self._nonce += 1
        return nonce_for(self._nonce)

    def record(
        self,
        rtype: RecordType,
        agency: str,
        payload: Mapping[str, Any],
        *,
        key: str | None = None,
        time: datetime | None = None,
        nonce: str | None = None,
        origin: str = ORIGIN,
    ) -> SignedRecord:
        """A licence record by ``agency`` (a name in AGENCIES), signed with its current key."""
        signing_key = self.keys[key or self.agency_key.get(agency, agency)]
        rec = Record(rtype, origin, time or self.now, nonce or self.next_nonce(), AGENCIES[agency].id,
                     signing_key.public_key.key_id, dict(payload))
        return sign_record(rec, [signing_key])

    def governance(
        self,
        rtype: RecordType,
        payload: Mapping[str, Any],
        *,
        signers: Sequence[str] | None = None,
        time: datetime | None = None,
        nonce: str | None = None,
        origin: str = ORIGIN,
    ) -> SignedRecord:
        """A governance record signed by ``signers`` (default: the first ``threshold`` authorities)."""
        names = signers if signers is not None else self.authorities[: self.threshold]
        rec = Record(rtype, origin, time or self.now, nonce or self.next_nonce(), "", "", dict(payload))
        return sign_record(rec, [self.keys[n] for n in names])

    def issue(self, agency: str, licence_id: str, **kw: Any) -> SignedRecord:
        return self.record(RecordType.ISSUE, agency, issue_payload(licence_id, AGENCIES[agency].home_region), **kw)

    def submit(self, *records: SignedRecord) -> BatchResult:
        """Submit as one batch at the world's time, then move the clock on by a second."""
        result = self.ledger.submit(list(records), now=self.now)
        self.tick()
        return result

    def accept(self, *records: SignedRecord) -> BatchResult:
        """Submit and require every record to be accepted."""
        result = self.submit(*records)
        assert not result.rejected, [(r.reason, r.message) for r in result.rejected]
        return result


def open_world(
    url: str,
    keys: KeyRing,
    *,
    authorities: Sequence[str] = ("auth1",),
    threshold: int = 1,
    agencies: Sequence[str] = DEFAULT_AGENCIES,
) -> World:
    """A new ledger at ``url`` (an empty database), initialised with a genesis of ``authorities``."""
    genesis = build_genesis(keys, authorities=authorities, threshold=threshold, agencies=agencies)
    ledger = Ledger.open(url, keys.node.identity())
    try:
        ledger.initialise(genesis, now=T0)
    except BaseException:
        ledger.close()
        raise
    world = World(ledger, keys, tuple(authorities), threshold, genesis)
    world.tick()
    return world


# -- observing the store -------------------------------------------------------------------


def snapshot(ledger: Ledger) -> dict[str, Any]:
    """Everything a rejected record must leave alone: sizes, checkpoint and every table's rows."""
    out: dict[str, Any] = {"tree_size": ledger.tree_size(), "checkpoint": ledger.latest_checkpoint()}
    with ledger.store.read() as conn:
        for name in (*t.APPEND_ONLY, *t.DERIVED, "meta"):
            table = t.metadata.tables[name]
            rows = conn.execute(select(table)).all()
            out[name] = sorted(tuple(_plain(v) for v in r) for r in rows)
    return out


def _plain(value: Any) -> Any:
    return bytes(value) if isinstance(value, memoryview) else value


def licence_states(ledger: Ledger) -> dict[str, dict[str, Any]]:
    """The stored (derived) licence table as JSON objects keyed by licence ID."""
    with ledger.store.read() as conn:
        return {str(r.licence_id): json.loads(r.data) for r in conn.execute(select(t.st_licences))}

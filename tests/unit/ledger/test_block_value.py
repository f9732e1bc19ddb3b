"""How a cluster block travels through etcd: binary, zlib-compressed, hostile values refused, bounded in size.

The leader writes ``block/<height>`` with ``nodes.cluster._encode_block``; every node
decodes it before ``apply_block`` re-validates everything. A value from etcd is input
from outside: truncated, padded, inflating past the bound, or not zlib at all, it must
be refused with a VerificationError (``block.header``), never expanded or crash.
"""

from __future__ import annotations

import base64
import json
import struct
import zlib

import pytest

from ledger import reasons
from ledger.records import SignedRecord
from nodes.cluster import (
    _BLOCK_MAX_INFLATED,
    _BLOCK_TAG,
    ClusterNode,
    ClusterSettings,
    _decode_block,
    _decode_header,
    _encode_block,
    _take_pending,
)
from nodes.etcd import KeyValue
from signing.errors import CertLedgerError

from .builders import World


@pytest.fixture
def proposal(world: World) -> tuple[bytes, list[SignedRecord], bytes]:
    records = [world.issue("SZ", f"L-VALUE-{n:03d}") for n in range(30)]
    p = world.ledger.propose(records, now=world.now)
    assert p.block is not None
    return _encode_block(p.block, p.entries), p.entries, p.block.hash()


def test_round_trip(proposal: tuple[bytes, list[SignedRecord], bytes]) -> None:
    value, entries, block_hash = proposal
    block, decoded = _decode_block(value)
    assert block.hash() == block_hash
    assert [e.entry_bytes() for e in decoded] == [e.entry_bytes() for e in entries]
    assert _decode_header(value).hash() == block_hash
    # the records of a block share most of their text: the value is far smaller than the entries
    assert len(value) < sum(len(e.entry_bytes()) for e in entries) / 2


def test_legacy_json_values_still_decode(proposal: tuple[bytes, list[SignedRecord], bytes]) -> None:
    value, entries, block_hash = proposal
    block, _ = _decode_block(value)
    legacy = json.dumps(
        {
            "header": base64.b64encode(block.header.to_bytes()).decode(),
            "signature": base64.b64encode(block.signature).decode(),
            "entries": [base64.b64encode(e.entry_bytes()).decode() for e in entries],
        }
    ).encode()
    again, decoded = _decode_block(legacy)
    assert again.hash() == block_hash and len(decoded) == len(entries)


def _pack(header: bytes, signature: bytes, entries: list[bytes], *, count: int | None = None) -> bytes:
    parts = [struct.pack(">I", len(header)), header, struct.pack(">H", len(signature)), signature]
    parts.append(struct.pack(">I", len(entries) if count is None else count))
    for entry in entries:
        parts += [struct.pack(">I", len(entry)), entry]
    return b"".join(parts)


def _wrap(raw: bytes) -> bytes:
    return _BLOCK_TAG + zlib.compress(raw)


def _hostile(proposal: tuple[bytes, list[SignedRecord], bytes]) -> dict[str, bytes]:
    value, entries, _ = proposal
    block, _ = _decode_block(value)
    header, sig, raw_entries = block.header.to_bytes(), block.signature, [e.entry_bytes() for e in entries]
    raw = _pack(header, sig, raw_entries)
    assert zlib.decompress(value[len(_BLOCK_TAG) :]) == raw  # the layout these cases are built from
    return {
        "empty": b"",
        "unknown tag": b"CLB\x09" + value[len(_BLOCK_TAG) :],
        "not zlib": _BLOCK_TAG + b"\x00garbage",
        "truncated stream": value[:-7],
        "two streams": value + zlib.compress(b"x"),
        "truncated block": _wrap(raw[:-3]),
        "trailing bytes": _wrap(raw + b"\x00"),
        "huge entry count": _wrap(_pack(header, sig, raw_entries, count=2**31)),
        "entry longer than the value": _wrap(raw[: -len(raw_entries[-1]) - 4] + struct.pack(">I", 2**30) + b"x"),
        "zlib bomb": _BLOCK_TAG + zlib.compress(b"\x00" * (_BLOCK_MAX_INFLATED + 1), 9),
        "bad json": b'{"header": 1}',
        "deep json": b"{" + b'"a":[' * 100_000 + b"]" * 100_000 + b"}",
        "bad header": _wrap(_pack(b"{nope", sig, raw_entries)),
    }


@pytest.mark.parametrize(
    "case",
    [
        "empty",
        "unknown tag",
        "not zlib",
        "truncated stream",
        "two streams",
        "truncated block",
        "trailing bytes",
        "huge entry count",
        "entry longer than the value",
        "zlib bomb",
        "bad json",
        "deep json",
        "bad header",
    ],
)
def test_hostile_values_are_refused(proposal: tuple[bytes, list[SignedRecord], bytes], case: str) -> None:
    value = _hostile(proposal)[case]
    with pytest.raises(CertLedgerError) as caught:
        _decode_block(value)
    assert caught.value.reason == reasons.BLOCK_HEADER


def _pending(records: list[SignedRecord]) -> list[tuple[str, SignedRecord]]:
    return [(r.record.record_hash(), r) for r in records]


def test_a_proposal_takes_submissions_up_to_its_byte_bound(world: World) -> None:
    records = [world.issue("SZ", f"L-TAKE-{n:03d}") for n in range(20)]
    sizes = [len(r.entry_bytes()) for r in records]
    bound = sum(sizes[:7]) + sizes[7] // 2  # room for 7 and a half
    taken, hashes, drop = _take_pending(_pending(records), set(), bound)
    assert [r.entry_bytes() for r in taken] == [r.entry_bytes() for r in records[:7]]
    assert hashes == [r.record.record_hash() for r in records[:7]] and not drop
    # a single submission larger than the bound is still taken on its own (blocks hold at least one)
    taken, *_ = _take_pending(_pending(records), set(), 10)
    assert len(taken) == 1


def test_committed_submissions_are_dropped_not_counted(world: World) -> None:
    records = [world.issue("SZ", f"L-DROP-{n:03d}") for n in range(6)]
    committed = {records[0].record.record_hash(), records[3].record.record_hash()}
    taken, hashes, drop = _take_pending(_pending(records), committed, 10**9)
    assert taken == [records[1], records[2], records[4], records[5]]
    assert hashes == [r.record.record_hash() for r in taken]
    assert drop == [records[0].record.record_hash(), records[3].record.record_hash()]


def test_cosignature_keys_that_are_not_decimal_heights_are_skipped(world: World) -> None:
    """Any node can write under cosig/: a key the collector cannot read is skipped, never fatal."""
    node = ClusterNode(world.ledger, ClusterSettings(etcd_endpoints=["http://127.0.0.1:9"]), genesis=world.genesis)
    try:
        cosig = node.prefix + b"cosig/"
        for key in (cosig + "²/node-x".encode(), cosig + b"\xff\xfe/node-x", cosig + b"12", cosig + b"-1/node-x"):
            assert node._cosig_kv(KeyValue(key, b"note", 1, 1, 0)) is None, key
        # a well-formed key of a node of the policy is taken: tests/unit/ledger/test_cluster_hostile.py
    finally:
        node.etcd.close()

"""How a submission reaches the leader: handed on over the leader's API, queued there, handed again.

The node that accepts a submission keeps it (``_inflight``) until it applies a block holding
it, and hands it to the leader (``POST /v1/cluster/submissions``, or straight into the queue
when it leads itself); again when the leader changes. The leader's queue is bounded and
deduplicated, and the hand-on body is input from outside: a malformed one is refused whole.
"""

from __future__ import annotations

import struct
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from ledger.records import MAX_ENTRY_BYTES, SignedRecord
from ledger.sequencer import OverloadedError
from ledger.service import Accepted
from nodes import cluster
from nodes.cluster import ClusterNode, ClusterSettings, _chunks, decode_submissions, encode_submissions
from signing.errors import CertLedgerError, ConflictError, InvalidInputError

from .builders import World


@pytest.fixture
def node(world: World) -> Iterator[ClusterNode]:
    # etcd is never reached in these tests: the port is closed
    n = ClusterNode(
        world.ledger, ClusterSettings(etcd_endpoints=["http://127.0.0.1:9"], max_batch=4), genesis=world.genesis
    )
    yield n
    n.stop()


def _wait(check: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def test_submissions_body_round_trips(world: World) -> None:
    records = [world.issue("SZ", f"L-HAND-{n:03d}") for n in range(5)]
    body = encode_submissions([r.entry_bytes() for r in records])
    assert [r.entry_bytes() for r in decode_submissions(body, MAX_ENTRY_BYTES)] == [r.entry_bytes() for r in records]
    assert decode_submissions(encode_submissions([]), MAX_ENTRY_BYTES) == []


def _hostile(entry: bytes) -> dict[str, bytes]:
    one = struct.pack(">I", len(entry)) + entry
    return {
        "empty": b"",
        "short count": b"\x00\x00\x01",
        "count beyond the body": struct.pack(">I", 2**32 - 1) + one,
        "count one more than given": struct.pack(">I", 2) + one + b"\x00\x00",
        "length beyond the body": struct.pack(">I", 1) + struct.pack(">I", len(entry) + 10) + entry,
        "trailing bytes": struct.pack(">I", 1) + one + b"x",
        "entry too large": struct.pack(">I", 1) + struct.pack(">I", MAX_ENTRY_BYTES + 1) + b"x" * (MAX_ENTRY_BYTES + 1),
        "not a record": struct.pack(">I", 1) + struct.pack(">I", 10) + b'{"record":',
        "record with a trailing byte": struct.pack(">I", 1) + struct.pack(">I", len(entry) + 1) + entry + b" ",
    }


@pytest.mark.parametrize("case", list(_hostile(b"{}")))
def test_malformed_bodies_are_refused_whole(world: World, case: str) -> None:
    body = _hostile(world.issue("SZ", "L-HOSTILE-1").entry_bytes())[case]
    with pytest.raises(CertLedgerError) as caught:
        decode_submissions(body, MAX_ENTRY_BYTES)
    assert isinstance(caught.value, InvalidInputError)


def test_chunks_stay_within_their_byte_bound() -> None:
    items = [(str(n), b"x" * size) for n, size in enumerate([300, 300, 500, 900, 2000, 10, 10])]
    chunks = _chunks(items, 1000)
    assert [i for chunk in chunks for i in chunk] == items  # nothing lost, order kept
    assert [[k for k, _ in c] for c in chunks] == [["0", "1"], ["2"], ["3"], ["4"], ["5", "6"]]
    assert _chunks([], 1000) == []


def test_only_the_leader_queues_and_each_record_once(world: World, node: ClusterNode) -> None:
    records = [world.issue("SZ", f"L-QUEUE-{n:03d}") for n in range(6)]
    with pytest.raises(ConflictError) as caught:
        node.enqueue(records)
    assert caught.value.reason == "cluster.not_leader"
    assert node._queue == {}
    node.is_leader = True
    node.enqueue(records[:4])
    node.enqueue(records[2:])  # two of them again: queued once, in first-arrival order
    hashes = [r.record.record_hash() for r in records]
    assert list(node._queue) == hashes
    assert node._queue_bytes == sum(len(r.entry_bytes()) for r in records)
    # a proposal looks at max_batch of them; they leave the queue only once a block holds them
    assert [h for h, _ in node._peek_queue()] == hashes[:4]
    node._dequeue([*hashes[:3], "not-queued"])
    assert list(node._queue) == hashes[3:]
    assert node._queue_bytes == sum(len(r.entry_bytes()) for r in records[3:])


def test_a_full_queue_answers_overloaded(world: World, node: ClusterNode, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cluster, "_QUEUE_MAX_RECORDS", 2)
    node.is_leader = True
    node.enqueue([world.issue("SZ", f"L-FULL-{n}") for n in range(2)])
    with pytest.raises(OverloadedError):
        node.enqueue([world.issue("SZ", "L-FULL-9")])
    assert len(node._queue) == 2


def _run_submitter(node: ClusterNode) -> threading.Thread:
    thread = threading.Thread(target=node._submitter, daemon=True)
    thread.start()
    node._threads.append(thread)  # joined by node.stop()
    return thread


def test_an_accepted_submission_is_handed_on_until_a_block_holds_it(world: World, node: ClusterNode) -> None:
    signed = world.issue("SZ", "L-INFLIGHT-1")
    record_hash = signed.record.record_hash()
    node.is_leader, node.leader_id = True, node.node_id
    _run_submitter(node)
    future = node.submit(signed)
    _wait(lambda: record_hash in node._queue)
    assert node._inflight[record_hash][1] == node.node_id
    # the leader changes to a node whose API is unknown: the submission stays in flight, not handed
    node.is_leader, node.leader_id = False, "node-elsewhere"
    with node._queue_lock:
        node._queue.clear()
    time.sleep(0.3)
    assert node._inflight[record_hash][1] == node.node_id
    # we lead again: it is handed to us again (the new leader's queue starts empty)
    node.is_leader, node.leader_id = True, node.node_id
    _wait(lambda: record_hash in node._queue)
    # a block we applied holds it: it is no longer handed on, and its submitter is answered by finality
    block = world.ledger.block(0)
    assert block is not None
    node._resolve([Accepted(0, 1, record_hash, b"\x00" * 32)], block, "")
    assert record_hash not in node._inflight
    assert not future.done()  # not final yet: no cosignatures in this test


def test_a_rejected_submission_is_no_longer_handed_on(world: World, node: ClusterNode) -> None:
    signed = world.issue("SZ", "L-INFLIGHT-2")
    record_hash = signed.record.record_hash()
    node.leader_id = "node-elsewhere"  # unreachable: stays in flight
    _run_submitter(node)
    future = node.submit(signed)
    _wait(lambda: record_hash in node._inflight)
    node._rejected(record_hash, b'{"reason": "record.invalid", "message": "no", "family": "InvalidInputError"}')
    assert record_hash not in node._inflight
    with pytest.raises(InvalidInputError):
        future.result(timeout=1)


def test_records_parse_from_what_the_body_carries(world: World) -> None:
    """What the leader queues is exactly what the accepting node held (the same canonical bytes)."""
    signed = world.issue("SZ", "L-SAME-1")
    (got,) = decode_submissions(encode_submissions([signed.entry_bytes()]), MAX_ENTRY_BYTES)
    assert isinstance(got, SignedRecord)
    assert got.record.record_hash() == signed.record.record_hash()


def test_a_parse_is_remembered_only_for_the_exact_bytes_that_passed(world: World) -> None:
    """A node parses a record when it accepts it and again when its block comes back: the second
    parse is the first one's result, for those exact bytes only; refusals are never remembered."""
    from ledger import records as records_module

    signed = world.issue("SZ", "L-MEMO-1")
    data = signed.entry_bytes()
    first = SignedRecord.from_bytes(data)
    assert SignedRecord.from_bytes(bytes(data)) is first  # equal bytes, another object: same parse
    variant = data.replace(b'"v":1', b'"v":true')
    assert variant != data
    for _ in range(2):  # refused each time: the refusal is not remembered as anything
        with pytest.raises(InvalidInputError):
            SignedRecord.from_bytes(variant)
    memo = records_module._ParseMemo(max_bytes=3 * len(data))
    others = [world.issue("SZ", f"L-MEMO-{n}") for n in range(2, 7)]
    for other in others:
        memo.put(other.entry_bytes(), other)
    # bounded in bytes, oldest dropped first
    assert memo.get(others[0].entry_bytes()) is None
    assert memo.get(others[-1].entry_bytes()) is others[-1]
    assert memo._bytes <= memo.max_bytes

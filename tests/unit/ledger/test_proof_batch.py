"""Inclusion proofs read together: :meth:`Ledger.inclusion_proofs` and the API's ProofBatcher.

Each proof read in a batch must be exactly the proof read alone (which tests/unit/test_merkle.py
checks against the RFC 9162 vectors), and must verify against the root of its tree; a request
that cannot be answered gets its own error and leaves the others alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from ledger.merkle.verify import verify_inclusion
from ledger.service import InclusionProof, Ledger
from ledger.store.sql import SqlStore
from signing.errors import CertLedgerError
from verify_api.proof_batch import ProofBatcher

from .builders import World


def _grown(make_world: Callable[..., World]) -> tuple[World, list[int]]:
    """A ledger grown in several blocks; returns it and the tree size after each block."""
    world = make_world()
    sizes = [world.ledger.latest_checkpoint()[0]]
    for block in range(4):
        world.accept(*(world.issue("SZ", f"LIC-PB-{block}-{i}") for i in range(block + 2)))
        sizes.append(world.ledger.latest_checkpoint()[0])
    return world, sizes


def _root(ledger: Ledger, size: int) -> bytes:
    with ledger.store.read() as conn:
        block = ledger.store.block_for_index(conn, size - 1)
    assert block is not None
    found = ledger.block(block)
    assert found is not None and found.header.tree_size == size
    return found.header.tree_root


def test_each_proof_of_a_batch_is_the_proof_read_alone(make_world: Callable[..., World]) -> None:
    world, sizes = _grown(make_world)
    ledger = world.ledger
    requests = [(index, size) for size in sizes for index in range(size)]
    proofs = ledger.inclusion_proofs(requests)
    assert len(proofs) == len(requests)
    for (index, size), proof in zip(requests, proofs, strict=True):
        assert isinstance(proof, InclusionProof)
        assert proof == ledger.inclusion_proof(index, size)
        verify_inclusion(ledger.hasher, index, size, proof.leaf_hash, list(proof.path), _root(ledger, size))


def test_a_request_that_cannot_be_answered_gets_its_own_error(make_world: Callable[..., World]) -> None:
    world, sizes = _grown(make_world)
    ledger = world.ledger
    size = sizes[-1]
    requests = [(0, size), (size, size), (10**6, 10**6 + 1), (1, size), (0, size + 5), (-1, size)]
    results = ledger.inclusion_proofs(requests)
    assert results[0] == ledger.inclusion_proof(0, size)
    assert results[3] == ledger.inclusion_proof(1, size)
    for position in (1, 2, 4, 5):
        result = results[position]
        assert isinstance(result, CertLedgerError), (requests[position], result)
        with pytest.raises(CertLedgerError) as alone:
            ledger.inclusion_proof(*requests[position])
        assert result.reason == alone.value.reason  # the same refusal as a single proof


def test_an_empty_batch_reads_nothing(make_world: Callable[..., World]) -> None:
    assert make_world().ledger.inclusion_proofs([]) == []


class _Counting:
    """The real ledger, with its batch reads counted."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.batches: list[list[tuple[int, int]]] = []
        self.store: SqlStore = ledger.store

    def inclusion_proofs(self, requests: list[tuple[int, int]]) -> list[Any]:
        self.batches.append(list(requests))
        return self.ledger.inclusion_proofs(requests)


def test_concurrent_acknowledgements_share_one_read(make_world: Callable[..., World]) -> None:
    world, sizes = _grown(make_world)
    counting = _Counting(world.ledger)
    batcher = ProofBatcher(counting)  # type: ignore[arg-type]  # duck-typed: only inclusion_proofs is used
    size = sizes[-1]

    async def main() -> list[InclusionProof | BaseException]:
        return await asyncio.gather(*(batcher.proof(i, size) for i in range(size)), batcher.proof(size, size),
                                    return_exceptions=True)

    results = asyncio.run(main())
    assert len(counting.batches) == 1 and len(counting.batches[0]) == size + 1
    for index, proof in enumerate(results[:-1]):
        assert proof == world.ledger.inclusion_proof(index, size)
    assert isinstance(results[-1], CertLedgerError) and results[-1].reason == "proof.range"


def test_a_waiter_that_goes_away_does_not_cancel_the_others(make_world: Callable[..., World]) -> None:
    world, sizes = _grown(make_world)
    batcher = ProofBatcher(world.ledger)
    size = sizes[-1]

    async def main() -> tuple[bool, InclusionProof]:
        leaving = asyncio.ensure_future(batcher.proof(0, size))
        staying = asyncio.ensure_future(batcher.proof(1, size))
        await asyncio.sleep(0)  # both asked: the read is under way
        leaving.cancel()
        return leaving.cancelled() or not leaving.done(), await staying

    cancelled, proof = asyncio.run(main())
    assert cancelled
    assert proof == world.ledger.inclusion_proof(1, size)


def test_later_requests_are_read_in_a_later_batch(make_world: Callable[..., World]) -> None:
    world, sizes = _grown(make_world)
    counting = _Counting(world.ledger)
    batcher = ProofBatcher(counting)  # type: ignore[arg-type]

    async def main() -> None:
        for size in sizes:
            assert await batcher.proof(0, size) == world.ledger.inclusion_proof(0, size)

    asyncio.run(main())
    assert [len(b) for b in counting.batches] == [1] * len(sizes)

"""The read paths kept cheap for the API: the status document's kept checkpoint and proofs, licence records."""

from __future__ import annotations

from collections.abc import Callable

from ledger.records import RecordType

from .builders import AGENCIES, World


def test_status_document_follows_every_commit(make_world: Callable[..., World]) -> None:
    world = make_world()
    world.accept(world.issue("SZ", "LIC-R-1"))
    first = world.ledger.status_document("LIC-R-1")
    assert world.ledger.status_document("LIC-R-1") == first  # kept checkpoint and admission proof: same answer
    world.accept(world.issue("SZ", "LIC-R-2"))
    second = world.ledger.status_document("LIC-R-1")
    size, note = world.ledger.latest_checkpoint()
    assert second["checkpoint"] == note and second["checkpoint"] != first["checkpoint"]
    assert second["inclusion_proof"]["tree_size"] == size
    assert second["signing_key"]["inclusion_proof"] == world.ledger.inclusion_proof(
        second["signing_key"]["inclusion_proof"]["index"], size
    ).to_json()
    assert world.ledger.status_document("LIC-R-2")["inclusion_proof"] == world.ledger.inclusion_proof(
        second["inclusion_proof"]["index"] + 1, size
    ).to_json()


def test_licence_records_are_the_history_without_proofs(make_world: Callable[..., World]) -> None:
    world = make_world()
    world.accept(world.issue("SZ", "LIC-R-3"), world.issue("GZ", "LIC-R-4"))
    suspend = {"licence_id": "LIC-R-3", "reason_code": "x", "reason_text": "y"}
    world.accept(world.record(RecordType.SUSPEND, "SZ", suspend))
    records = world.ledger.licence_records("LIC-R-3")
    assert [(i, s) for i, s in records] == [(h.index, h.record) for h in world.ledger.history("LIC-R-3")]
    assert [s.record.type for _, s in records] == [RecordType.ISSUE, RecordType.SUSPEND]
    assert all(s.record.agency == AGENCIES["SZ"].id for _, s in records)
    assert world.ledger.licence_records("NO-SUCH") == []

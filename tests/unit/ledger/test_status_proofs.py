"""A node cannot lie about a licence's current state (ADR 0018).

Before the status map, a verifier trusted the node's choice of "latest record": a node
could answer with a licence's ISSUE record and a valid inclusion proof to the current
checkpoint while a REVOKE sat later in the log, and every client took the licence for
active. These tests build those lies from a real ledger's own answers and check that
the offline verifier (the core of every client) refuses each one with its reason.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from ledger.anchors import TrustAnchors
from ledger.blocks import sign_block
from ledger.proofcheck import verify_offline
from ledger.records import RecordType
from ledger.service import Ledger
from ledger.statusmap import root_from_extensions
from signing.errors import CertLedgerError, VerificationError

from .builders import (
    AGENCIES,
    KeyRing,
    World,
    file_digest,
    issue_payload,
    resume_payload,
    revoke_payload,
    suspend_payload,
)

LID = "LIC-4403-STATUS-1"


def _anchors(world: World) -> TrustAnchors:
    return TrustAnchors.from_genesis(world.genesis.entry_bytes())


def _refused(world: World, doc: dict[str, Any], *reasons: str) -> None:
    with pytest.raises(CertLedgerError) as err:
        verify_offline(_anchors(world), LID, doc)
    assert err.value.reason in reasons, err.value


def _issue(world: World) -> int:
    return world.accept(world.record(RecordType.ISSUE, "SZ", issue_payload(LID, "440305"))).accepted[0].index


def test_the_genuine_answer_verifies_with_the_current_status_check(make_world: Callable[..., World]) -> None:
    world = make_world()
    _issue(world)
    world.accept(world.record(RecordType.REVOKE, "SZ", revoke_payload(LID)))
    doc = world.ledger.status_document(LID)
    verified = verify_offline(_anchors(world), LID, doc)
    assert verified.status == "REVOKED"
    assert [c.name for c in verified.checks][-1] == "current status"
    cp_text = doc["checkpoint"].split("\n\n", 1)[0]
    assert "\nstatus-map " in cp_text


def test_an_older_record_offered_as_the_latest_is_refused(make_world: Callable[..., World]) -> None:
    """The lie of the review: the ISSUE record, with a valid proof to today's checkpoint, for a revoked licence."""
    world = make_world()
    issue_index = _issue(world)
    active = world.ledger.status_document(LID)
    world.accept(world.record(RecordType.REVOKE, "SZ", revoke_payload(LID)))
    current = world.ledger.status_document(LID)
    size = current["inclusion_proof"]["tree_size"]
    old_record = active["latest_record"]
    old_proof = world.ledger.inclusion_proof(issue_index, size).to_json()

    # 1. the whole old answer (state and its proof) under today's checkpoint: the map says otherwise
    lie = {**active, "checkpoint": current["checkpoint"], "inclusion_proof": old_proof}
    lie["signing_key"] = current["signing_key"]
    _refused(world, lie, "statusmap.proof")
    # 2. today's proven state, but the older record in place of the latest
    lie = {**current, "latest_record": old_record, "inclusion_proof": old_proof}
    for name in ("status", "version", "files"):
        lie[name] = active[name]
    _refused(world, lie, "client.not_latest")
    # 3. today's state edited to ACTIVE (top level and state alike): the REVOKE record says
    # otherwise (step 6), and so does the map
    lie = copy.deepcopy(current)
    lie["state"]["status"] = lie["status"] = "ACTIVE"
    _refused(world, lie, "client.status_mismatch")
    lie["latest_record"], lie["inclusion_proof"] = old_record, old_proof
    lie["state"]["latest_index"], lie["state"]["latest_record_hash"] = (
        issue_index,
        active["state"]["latest_record_hash"],
    )
    _refused(world, lie, "statusmap.proof")
    # 4. only the restated field edited
    lie = copy.deepcopy(current)
    lie["status"] = "ACTIVE"
    _refused(world, lie, "client.status_mismatch")
    # 5. an answer without the state at all
    lie = {k: v for k, v in current.items() if k not in ("state", "status_proof")}
    _refused(world, lie, "proof.malformed")


def test_every_restated_field_is_bound(make_world: Callable[..., World]) -> None:
    """An AMEND of a suspended licence, then a RESUME: status, version, files, issuer all come from the map."""
    world = make_world()
    _issue(world)
    world.accept(world.record(RecordType.SUSPEND, "SZ", suspend_payload(LID)))
    amend = {
        "licence_id": LID,
        "version": 2,
        "region": "440305",
        "type_code": "1001",
        "files": {"pdf": file_digest(f"{LID}-v2")},
        "metadata": {"holder": "深圳前海星河科技有限公司"},
    }
    world.accept(world.record(RecordType.AMEND, "SZ", amend))
    doc = world.ledger.status_document(LID)
    assert verify_offline(_anchors(world), LID, doc).status == "SUSPENDED"
    for name, value in (
        ("status", "ACTIVE"),
        ("version", 99),
        ("issuer", AGENCIES["GZ"].id),
        ("superseded_files", []),
        ("revocation_reason", "fraud"),
        ("metadata", {}),
    ):
        lie = copy.deepcopy(doc)
        lie[name] = lie["state"][name] = value
        _refused(world, lie, "statusmap.proof")
    world.accept(world.record(RecordType.RESUME, "SZ", resume_payload(LID)))
    doc = world.ledger.status_document(LID)
    verified = verify_offline(_anchors(world), LID, doc)
    assert (verified.status, verified.version) == ("ACTIVE", 2)
    # after a RESUME (a record without files) the files were the node's word; now they are the map's
    lie = copy.deepcopy(doc)
    lie["files"] = lie["state"]["files"] = {"pdf": file_digest(f"{LID}-v1")}
    _refused(world, lie, "statusmap.proof")


def test_a_checkpoint_without_a_status_map_root_proves_no_status(
    make_world: Callable[..., World], keys: KeyRing
) -> None:
    world = make_world()
    _issue(world)
    doc = world.ledger.status_document(LID)
    size = doc["inclusion_proof"]["tree_size"]
    # the node's own keys, signing its true tree head without the line: still no current status
    bare = keys.node.sign_checkpoint(world.ledger.origin, size, world.ledger.root(size))
    _refused(world, {**doc, "checkpoint": bare}, "client.no_status_root")


def test_a_block_with_another_status_root_is_refused(make_world: Callable[..., World], keys: KeyRing) -> None:
    world = make_world()
    proposal = world.ledger.propose([world.record(RecordType.ISSUE, "SZ", issue_payload(LID, "440305"))], now=world.now)
    assert proposal.block is not None
    header = proposal.block.header
    forged = sign_block(replace(header, status_root=bytes(32)), keys.node.sm2)
    size = world.ledger.tree_size()
    with pytest.raises(VerificationError) as err:
        world.ledger.apply_block(forged, proposal.entries)
    assert err.value.reason == "block.status_root"
    assert world.ledger.tree_size() == size  # nothing written
    world.ledger.apply_block(proposal.block, proposal.entries)
    note = world.ledger.latest_own_checkpoint()[1]
    from ledger.checkpoint import Checkpoint

    extensions = Checkpoint.parse(note.split("\n\n", 1)[0] + "\n").extensions
    assert root_from_extensions(extensions) == header.status_root


def test_a_reader_process_follows_the_writer(make_world: Callable[..., World], db_url: str) -> None:
    """A ledger opened without keys (a `serve --workers` process) updates its map from the entries appended since."""
    world = make_world()
    _issue(world)
    reader = Ledger.open(db_url, create=False)
    try:
        assert verify_offline(_anchors(world), LID, reader.status_document(LID)).status == "ACTIVE"
        world.accept(world.record(RecordType.SUSPEND, "SZ", suspend_payload(LID)))
        other = "LIC-4403-STATUS-2"
        world.accept(world.record(RecordType.ISSUE, "SZ", issue_payload(other, "440305")))
        assert verify_offline(_anchors(world), LID, reader.status_document(LID)).status == "SUSPENDED"
        assert verify_offline(_anchors(world), other, reader.status_document(other)).status == "ACTIVE"
        assert reader.status_document(LID)["status_proof"] == world.ledger.status_document(LID)["status_proof"]
    finally:
        reader.close()


def test_an_unknown_licence_comes_with_a_proof_of_absence(make_world: Callable[..., World]) -> None:
    from ledger.proofcheck import open_quorum_checkpoint, verify_absence_document

    world = make_world()
    _issue(world)
    with pytest.raises(CertLedgerError) as err:
        world.ledger.status_document("LIC-4403-NEVER-ISSUED")
    assert err.value.reason == "state.unknown_licence"
    absence = err.value.details["absence"]
    anchors = _anchors(world)
    vcp = open_quorum_checkpoint(anchors, absence["checkpoint"], [])
    verify_absence_document(anchors, "LIC-4403-NEVER-ISSUED", absence, vcp, [])
    # the same proof does not make a licence that is on the ledger unknown
    with pytest.raises(VerificationError) as lie:
        verify_absence_document(anchors, LID, absence, vcp, [])
    assert lie.value.reason == "statusmap.proof"
    # nor does an absence proof built for that licence's place from another map
    forged = {**absence, "status_proof": {"siblings": []}}
    with pytest.raises(VerificationError):
        verify_absence_document(anchors, LID, forged, vcp, [])

"""Hand-on tickets (ADR 0017): the leader queues submissions only from the other nodes of its policy.

A ticket names the origin, the sender, the leader and an expiry, signed with the sender's
SM2 node key under a signer ID no block signature uses. Every way a ticket can be wrong is
refused with ``cluster.unauthenticated``; a ticket that verified once is not verified again,
but stops counting when its node leaves the policy or changes its key.
"""

from __future__ import annotations

import base64
from dataclasses import replace
from pathlib import Path

import pytest

from ledger.blocks import BLOCK_SIGNER_ID
from ledger.identity import NodeKeys
from ledger.sequencer import OverloadedError
from ledger.service import Ledger
from ledger.state import Node
from nodes.cluster import ClusterNode, ClusterSettings
from nodes.handon_ticket import (
    CLOCK_SKEW,
    TICKET_LIFETIME,
    TICKET_SIGNER_ID,
    Ticket,
    TicketCheck,
    issue_ticket,
)
from signing.errors import AuthorizationError
from signing.sm2 import SM2PrivateKey, SM2PublicKey

from .builders import ORIGIN, T0, KeyRing, build_genesis

NOW = 1_800_000_000.0
SENDER = NodeKeys.generate("node-2")
LEADER = NodeKeys.generate("node-1")


def _node(keys: NodeKeys) -> Node:
    return Node(keys.node_id, keys.node_id, keys.sm2.public_key, keys.ed25519.public_key.to_bytes())


NODES = [_node(LEADER), _node(SENDER)]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode()


def _ticket(
    *,
    key: SM2PrivateKey = SENDER.sm2,
    origin: str = ORIGIN,
    sender: str = "node-2",
    leader: str = "node-1",
    now: float = NOW,
) -> str:
    return issue_ticket(key, origin=origin, sender=sender, leader=leader, now=now)[0]


def _signed(text: bytes, key: SM2PrivateKey = SENDER.sm2, signer_id: bytes = TICKET_SIGNER_ID) -> str:
    return f"{_b64(text)}.{_b64(key.sign(text, signer_id=signer_id))}"


def _refused(header: str | None, *, nodes: list[Node] = NODES, now: float = NOW) -> str:
    with pytest.raises(AuthorizationError) as info:
        TicketCheck("node-1").sender(header, origin=ORIGIN, nodes=nodes, now=now)
    assert info.value.reason == "cluster.unauthenticated"
    return str(info.value)


def test_a_ticket_of_another_node_for_us_names_its_sender() -> None:
    header, expires = issue_ticket(SENDER.sm2, origin=ORIGIN, sender="node-2", leader="node-1", now=NOW)
    assert expires == int(NOW) + TICKET_LIFETIME
    check = TicketCheck("node-1")
    assert check.sender(header, origin=ORIGIN, nodes=NODES, now=NOW) == "node-2"
    # valid up to (not at) its expiry
    assert check.sender(header, origin=ORIGIN, nodes=NODES, now=expires - 1) == "node-2"
    assert "expired" in _refused(header, now=expires)


def test_the_signed_text_is_one_field_per_line() -> None:
    ticket = Ticket(ORIGIN, "node-2", "node-1", 1_800_000_600)
    assert ticket.text() == f"certledger hand-on ticket v1\n{ORIGIN}\nnode-2\nnode-1\n1800000600\n".encode()
    assert Ticket.parse(ticket.text()) == ticket


def test_a_ticket_is_checked_against_its_sender_key_and_the_ticket_signer_id() -> None:
    assert "needs a node ticket" in _refused(None)
    assert "needs a node ticket" in _refused("")
    # named node-2, signed by someone else
    assert "does not verify" in _refused(_ticket(key=SM2PrivateKey.generate()))
    # node-2's own key, but the signer ID its block signatures use: a block signature is not a ticket
    text = Ticket(ORIGIN, "node-2", "node-1", int(NOW) + 60).text()
    assert BLOCK_SIGNER_ID != TICKET_SIGNER_ID
    assert "does not verify" in _refused(_signed(text, signer_id=BLOCK_SIGNER_ID))
    # a signed ticket whose text was changed afterwards (a later expiry)
    header = _ticket()
    later = Ticket(ORIGIN, "node-2", "node-1", int(NOW) + 500).text()
    assert "does not verify" in _refused(_b64(later) + "." + header.split(".", 1)[1])


def test_a_ticket_for_another_ledger_leader_or_time_is_refused() -> None:
    assert "ledger" in _refused(_ticket(origin="certledger.example/elsewhere"))
    assert "for node 'node-3'" in _refused(_ticket(leader="node-3"))
    assert "expired" in _refused(_ticket(now=NOW - TICKET_LIFETIME))
    # an expiry further out than a ticket lives (clock skew allowed): not a ticket this code made
    assert "further ahead" in _refused(_ticket(now=NOW + CLOCK_SKEW + 1))
    # within the skew: fine
    TicketCheck("node-1").sender(_ticket(now=NOW + CLOCK_SKEW), origin=ORIGIN, nodes=NODES, now=NOW)


def test_only_another_node_of_the_policy_may_hand_on() -> None:
    stranger = NodeKeys.generate("node-9")
    assert "not another node" in _refused(_ticket(key=stranger.sm2, sender="node-9"))
    # the leader's own key naming itself: a node never hands on to itself over HTTP
    assert "not another node" in _refused(_ticket(key=LEADER.sm2, sender="node-1"))
    # a removed node is not in the policy's list of nodes
    assert "not another node" in _refused(_ticket(), nodes=[_node(LEADER)])


@pytest.mark.parametrize(
    "header",
    [
        "garbage",
        "no-dot-at-all" * 10,
        "!!!.!!!",
        "." + _b64(b"x"),
        _b64(b"\xff\xfe not utf-8") + "." + _b64(b"sig"),
        _b64(b"certledger hand-on ticket v1\n") + "." + _b64(b"sig"),
        _b64(Ticket(ORIGIN, "node-2", "node-1", 1).text() + b"extra\n") + "." + _b64(b"sig"),
        _b64(f"certledger hand-on ticket v1\n{ORIGIN}\nnode-2\nnode-1\n01800000600\n".encode()) + "." + _b64(b"s"),
        _b64(f"certledger hand-on ticket v1\n{ORIGIN}\nnode-2\nnode-1\n-5\n".encode()) + "." + _b64(b"s"),
        _b64(f"certledger hand-on ticket v1\n{ORIGIN}\nnode-2\nnode-1\n{'9' * 40}\n".encode()) + "." + _b64(b"s"),
        "a" * 5000,
    ],
)
def test_malformed_tickets_are_refused(header: str) -> None:
    _refused(header)


def test_a_ticket_with_malformed_der_is_refused() -> None:
    text = Ticket(ORIGIN, "node-2", "node-1", int(NOW) + 60).text()
    for sig in (b"", b"\x30\x03\x02\x01", b"\x30" + b"\xff" * 70, b"\x00" * 64):
        assert "does not verify" in _refused(f"{_b64(text)}.{_b64(sig)}")


def test_a_ticket_has_one_header_form() -> None:
    # the base64 decoder would drop characters outside the alphabet: every variant would verify
    # afresh and take a place among the remembered tickets
    header = _ticket()
    text, sig = header.split(".")
    for variant in (header + "=", header + "====", header + "!", "!" + header, f"{text}.{sig}\n", f"{text} .{sig}"):
        assert "malformed" in _refused(variant), variant
    padded = base64.urlsafe_b64encode(Ticket(ORIGIN, "node-2", "node-1", int(NOW) + 60).text()).decode()
    assert "=" not in padded or "malformed" in _refused(padded.rstrip("=") + "." + sig)


def test_a_verified_ticket_is_not_verified_again(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[bytes] = []
    real = SM2PublicKey.verify

    def counting(self: SM2PublicKey, sig: bytes, message: bytes, **kwargs: object) -> None:
        calls.append(message)
        real(self, sig, message, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(SM2PublicKey, "verify", counting)
    check = TicketCheck("node-1")
    header = _ticket()
    for i in range(5):
        assert check.sender(header, origin=ORIGIN, nodes=NODES, now=NOW + i) == "node-2"
    assert len(calls) == 1


def test_new_tickets_are_verified_a_few_at_a_time() -> None:
    check = TicketCheck("node-1")
    remembered = _ticket(now=NOW - 10)
    check.sender(remembered, origin=ORIGIN, nodes=NODES, now=NOW)
    # every verification slot busy (a flood of forged tickets): a new ticket waits its turn
    while check._verifying.acquire(blocking=False):
        pass
    with pytest.raises(OverloadedError):
        check.sender(_ticket(), origin=ORIGIN, nodes=NODES, now=NOW)
    # a remembered one needs no slot
    assert check.sender(remembered, origin=ORIGIN, nodes=NODES, now=NOW) == "node-2"


def test_a_verified_ticket_stops_counting_when_its_node_leaves_or_changes_key() -> None:
    check = TicketCheck("node-1")
    header = _ticket()
    assert check.sender(header, origin=ORIGIN, nodes=NODES, now=NOW) == "node-2"
    assert check.sender(header, origin=ORIGIN, nodes=NODES, now=NOW + 1) == "node-2"  # remembered
    with pytest.raises(AuthorizationError):
        check.sender(header, origin=ORIGIN, nodes=[_node(LEADER)], now=NOW + 2)  # node-2 removed
    rekeyed = [_node(LEADER), replace(_node(SENDER), sm2_public_key=SM2PrivateKey.generate().public_key)]
    with pytest.raises(AuthorizationError):
        check.sender(header, origin=ORIGIN, nodes=rekeyed, now=NOW + 3)


def test_the_cluster_node_makes_one_ticket_per_leader_and_checks_them(tmp_path: Path, keys: KeyRing) -> None:
    """node-1 and node-2 of one genesis: each one's ticket passes the other's check."""
    genesis = build_genesis(keys, nodes=[SENDER], quorum=2)
    ledgers: list[Ledger] = []
    nodes: list[ClusterNode] = []
    try:
        for name, identity in (("one", keys.node.identity()), ("two", SENDER.identity())):
            ledger = Ledger.open(f"sqlite:///{tmp_path / name}.db", identity)
            ledgers.append(ledger)
            if not nodes:
                ledger.initialise(genesis, now=T0)
            else:
                block = ledgers[0].block(0)
                assert block is not None
                ledger.apply_block(block, [genesis])
            nodes.append(ClusterNode(ledger, ClusterSettings(etcd_endpoints=["http://127.0.0.1:9"]), genesis=genesis))
        one, two = nodes
        ticket = two._ticket_for("node-1")
        assert two._ticket_for("node-1") == ticket  # reused while most of its life is left
        assert one.hand_on_sender(ticket) == "node-2"
        assert two.hand_on_sender(one._ticket_for("node-2")) == "node-1"
        with pytest.raises(AuthorizationError):
            one.hand_on_sender(two._ticket_for("node-3"))  # for another leader
        with pytest.raises(AuthorizationError):
            one.hand_on_sender(one._ticket_for("node-1"))  # our own
        # half its life gone: a new ticket
        two._tickets["node-1"] = (ticket, int(two._tickets["node-1"][1] - TICKET_LIFETIME / 2))
        assert two._ticket_for("node-1") != ticket
    finally:
        for node in nodes:
            node.etcd.close()
            node._forward_http.close()
        for ledger in ledgers:
            ledger.close()

"""Hand-on tickets: the leader takes submissions only from the nodes of the policy (ADR 0017).

A node hands the submissions it accepted to the leader (``POST /v1/cluster/submissions``).
Without a check anyone who can reach the leader could queue megabytes of records there,
past the per-client limits of the public API, each costing the leader an SM2 check. So
every hand-on carries a ticket in the ``Certledger-Node-Ticket`` header: a short text
naming the ledger's origin, the sending node, the leader it is for and when it expires,
signed with the sender's SM2 node key under a signer ID of its own (a ticket signature can
never pass as a block signature, which uses the default ID, or the reverse).

A ticket is valid for one leader and at most :data:`TICKET_LIFETIME` seconds; the
sender makes one per leader and reuses it until half its life is gone, and the leader
verifies each distinct ticket once (verified tickets are remembered until they expire),
so authentication costs one SM2 signature per node every few minutes, not one per request.

A ticket is a bearer credential for its lifetime: whoever can read the traffic between two
nodes can reuse it with that leader until it expires. Deployments that cross untrusted
networks put the node APIs behind TLS, as they must anyway for confidentiality.
"""

from __future__ import annotations

import base64
import binascii
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from ledger.sequencer import OverloadedError
from ledger.state import Node
from signing.errors import AuthorizationError, CertLedgerError
from signing.sm2 import SM2PrivateKey

TICKET_HEADER: Final = "certledger-node-ticket"
#: the SM2 signer ID (Z_A input) of ticket signatures: never the default ID blocks are signed with
TICKET_SIGNER_ID: Final = b"certledger/hand-on-ticket"
#: seconds a ticket is valid for
TICKET_LIFETIME: Final = 600
#: how far ahead of the leader's clock a sender's may be (an expiry further out is refused)
CLOCK_SKEW: Final = 60
_TAG: Final = "certledger hand-on ticket v1"
_MAX_HEADER: Final = 2048
_REMEMBERED: Final = 256
#: tickets verified at once (an SM2 verification each)
_VERIFYING: Final = 2
UNAUTHENTICATED: Final = "cluster.unauthenticated"


@dataclass(frozen=True)
class Ticket:
    origin: str
    sender: str
    leader: str
    expires: int  # Unix seconds

    def text(self) -> bytes:
        """The signed bytes: one field per line, so none can run into another."""
        return f"{_TAG}\n{self.origin}\n{self.sender}\n{self.leader}\n{self.expires}\n".encode()

    @classmethod
    def parse(cls, text: bytes) -> Ticket:
        lines = text.decode("utf-8").split("\n")
        if len(lines) != 6 or lines[0] != _TAG or lines[5] != "":
            raise ValueError("not a hand-on ticket")
        origin, sender, leader, expires = lines[1:5]
        if not (expires.isascii() and expires.isdigit()) or len(expires) > 12:
            raise ValueError("the expiry is not a Unix time")
        ticket = cls(origin, sender, leader, int(expires))
        if ticket.text() != text:
            raise ValueError("the ticket is not in its one byte form")
        return ticket


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    """Strict base64url: the decoder drops characters outside the alphabet, so one ticket would
    have many header forms (each verified afresh, each a cache entry); only the canonical one counts."""
    data = base64.b64decode(text.encode("ascii"), altchars=b"-_", validate=True)
    if _b64(data) != text:
        raise ValueError("not in canonical base64url")
    return data


def issue_ticket(key: SM2PrivateKey, *, origin: str, sender: str, leader: str, now: float) -> tuple[str, int]:
    """A ticket header value for handing submissions from ``sender`` to ``leader``; and its expiry."""
    ticket = Ticket(origin, sender, leader, int(now) + TICKET_LIFETIME)
    signature = key.sign(ticket.text(), signer_id=TICKET_SIGNER_ID)
    return f"{_b64(ticket.text())}.{_b64(signature)}", ticket.expires


class TicketCheck:
    """The leader's side: which node a ticket header comes from, or AuthorizationError."""

    def __init__(self, node_id: str) -> None:
        self.node_id = node_id
        #: header value -> (sender, expiry, the sender's SM2 key point) of tickets that verified
        self._verified: OrderedDict[str, tuple[str, int, tuple[int, int]]] = OrderedDict()
        self._lock = threading.Lock()
        self._verifying = threading.BoundedSemaphore(_VERIFYING)

    def sender(self, header: str | None, *, origin: str, nodes: Sequence[Node], now: float) -> str:
        if not header:
            raise AuthorizationError(
                f"a hand-on needs a node ticket ({TICKET_HEADER} header): only cluster nodes hand submissions on",
                reason=UNAUTHENTICATED,
            )
        if len(header) > _MAX_HEADER:
            raise AuthorizationError("the node ticket is too long", reason=UNAUTHENTICATED)
        with self._lock:
            known = self._verified.get(header)
            if known is not None:
                self._verified.move_to_end(header)  # least recently used goes first, not oldest
        if known is not None:
            sender, expires, point = known
            node = next((n for n in nodes if n.id == sender), None)
            # still a node of the policy, with the same key (a removal or a key change ends it)
            if node is not None and (node.sm2_public_key.x, node.sm2_public_key.y) == point and now < expires:
                return sender
            with self._lock:
                self._verified.pop(header, None)
        # a ticket not seen before costs an SM2 verification: a few at a time, so a flood of forged
        # ones cannot occupy every thread the API has (the sender tries again on its next round)
        if not self._verifying.acquire(blocking=False):
            raise OverloadedError("too many node tickets being checked at once; try again")
        try:
            ticket, node = self._check(header, origin=origin, nodes=nodes, now=now)
        finally:
            self._verifying.release()
        with self._lock:
            self._verified[header] = (ticket.sender, ticket.expires, (node.sm2_public_key.x, node.sm2_public_key.y))
            while len(self._verified) > _REMEMBERED:
                self._verified.popitem(last=False)
        return ticket.sender

    def _check(self, header: str, *, origin: str, nodes: Sequence[Node], now: float) -> tuple[Ticket, Node]:
        def refuse(why: str) -> AuthorizationError:
            return AuthorizationError(f"node ticket refused: {why}", reason=UNAUTHENTICATED)

        text_b64, dot, sig_b64 = header.partition(".")
        try:
            if not dot:
                raise ValueError("no signature part")
            text, signature = _unb64(text_b64), _unb64(sig_b64)
            ticket = Ticket.parse(text)
        except (ValueError, UnicodeError, binascii.Error) as exc:
            raise refuse(f"malformed ({exc})") from None
        if ticket.origin != origin:
            raise refuse(f"it is for ledger {ticket.origin!r}, not this one")
        if ticket.leader != self.node_id:
            raise refuse(f"it is for node {ticket.leader!r}, not this one")
        if ticket.expires <= now:
            raise refuse("it has expired")
        if ticket.expires > now + TICKET_LIFETIME + CLOCK_SKEW:
            raise refuse("its expiry is further ahead than a ticket lives")
        node = next((n for n in nodes if n.id == ticket.sender), None)
        if node is None or ticket.sender == self.node_id:
            raise refuse(f"{ticket.sender!r} is not another node of the policy")
        try:
            node.sm2_public_key.verify(signature, text, signer_id=TICKET_SIGNER_ID)
        except CertLedgerError as exc:  # malformed DER, wrong key, not this text
            raise refuse(f"the signature does not verify ({exc.reason})") from None
        return ticket, node

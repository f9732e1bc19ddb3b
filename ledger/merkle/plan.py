"""Which stored full nodes a proof needs, and how to fold them into the proof.

RFC 9162 defines proofs recursively over leaf ranges: every element of an
inclusion path (§2.1.3.1) or a consistency proof (§2.1.4.1) is MTH(D[a:b]) for
some range of the tree. Following those definitions over *ranges* instead of
leaves costs no hashing and yields at most ~2·log2(n) ranges.

A range whose width is a power of two is a full node, read as is. A range that
is not ends at the tree's right edge (only the right edge of an RFC tree is
unbalanced); it is the right fold, HASH(0x01 || P1 || HASH(0x01 || P2 || ...)),
of the perfect subtrees given by the set bits of its width, largest first —
full nodes again. So a proof is one batch read plus at most log2(n) hashes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Final

from signing.errors import InvalidInputError

from .hashing import TreeHasher
from .nodes import MAX_TREE_SIZE, NodeKey

#: a size or index a caller asked for is outside the tree
REASON_OUT_OF_RANGE: Final = "merkle.out_of_range"


def check_tree_size(size: int, what: str = "tree size") -> None:
    """Raise :class:`InvalidInputError` unless ``size`` is a uint64."""
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_TREE_SIZE:
        raise InvalidInputError(
            f"{what} must be an integer in [0, 2**64 - 1], got {size!r:.40}",
            reason=REASON_OUT_OF_RANGE,
        )


def largest_power_of_two_below(n: int) -> int:
    """The k of RFC 9162 §2.1.1: the largest power of two strictly smaller than ``n`` (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def range_keys(begin: int, end: int) -> tuple[NodeKey, ...]:
    """The full nodes whose right fold is MTH(D[begin:end]).

    Valid for the ranges RFC trees are made of: ``begin`` is a multiple of the
    largest power of two not above ``end - begin`` (true of every subtree the
    recursive definition produces), so each piece below is aligned.
    """
    keys: list[NodeKey] = []
    width = end - begin
    while width:
        level = width.bit_length() - 1
        keys.append((level, begin >> level))
        begin += 1 << level
        width -= 1 << level
    return tuple(keys)


def compact_range_keys(size: int) -> tuple[NodeKey, ...]:
    """The full nodes that make up the tree of ``size`` leaves, largest first.

    These are the nodes a :class:`~ledger.merkle.compact.CompactRange` holds,
    and their right fold is the root of the tree at that size.
    """
    check_tree_size(size)
    return range_keys(0, size)


@dataclass(frozen=True, slots=True)
class ProofPlan:
    """A proof described as stored-node reads.

    ``elements[i]`` lists the full nodes whose right fold is proof hash ``i``
    (one key for a full node, several for a right-edge subtree). ``keys`` is
    every key once, in the order a :class:`NodeReader` is asked for them.
    """

    elements: tuple[tuple[NodeKey, ...], ...]

    def __post_init__(self) -> None:
        if any(len(element) == 0 for element in self.elements):
            raise InvalidInputError("a proof element needs at least one node", reason="merkle.plan")

    @property
    def keys(self) -> tuple[NodeKey, ...]:
        """All node keys of the proof, in element order (no key appears twice)."""
        return tuple(chain.from_iterable(self.elements))

    def assemble(self, hasher: TreeHasher, hashes: Sequence[bytes]) -> list[bytes]:
        """Turn the hashes of :attr:`keys` (same order) into the proof hashes."""
        if len(hashes) != sum(len(element) for element in self.elements):
            raise InvalidInputError("number of node hashes does not match the proof plan", reason="merkle.plan")
        proof: list[bytes] = []
        pos = 0
        for element in self.elements:
            parts = hashes[pos : pos + len(element)]
            pos += len(element)
            acc = parts[-1]
            # right fold: the smallest (rightmost) subtree is the innermost right child
            for left in reversed(parts[:-1]):
                acc = hasher.hash_children(left, acc)
            proof.append(acc)
        return proof


def inclusion_proof_keys(index: int, size: int) -> ProofPlan:
    """The nodes of PATH(index, D[0:size]) (RFC 9162 §2.1.3.1).

    PATH(m, D[n]) for n > 1 and k the largest power of two < n is
    PATH(m, D[0:k]) : MTH(D[k:n]) when m < k, else PATH(m - k, D[k:n]) : MTH(D[0:k]).
    The walk below goes down from the root; each step adds the sibling range,
    and the path lists siblings bottom-up, hence the reversal.
    """
    check_tree_size(size)
    check_tree_size(index, "leaf index")
    if index >= size:
        raise InvalidInputError(f"leaf index {index} is not in a tree of size {size}", reason=REASON_OUT_OF_RANGE)
    siblings: list[tuple[NodeKey, ...]] = []
    begin, end = 0, size
    while end - begin > 1:
        k = largest_power_of_two_below(end - begin)
        if index < begin + k:
            siblings.append(range_keys(begin + k, end))
            end = begin + k
        else:
            siblings.append(range_keys(begin, begin + k))
            begin += k
    siblings.reverse()
    return ProofPlan(tuple(siblings))


def consistency_proof_keys(old_size: int, new_size: int) -> ProofPlan:
    """The nodes of PROOF(old_size, D[0:new_size]) (RFC 9162 §2.1.4.1).

    PROOF(m, D[n]) = SUBPROOF(m, D[n], true) for 0 < m < n; the proof is empty when
    m is 0 or m == n. SUBPROOF(m, D[a:a+n], b):
      - m == n: empty if b, else [MTH(D[a:a+n])];
      - m <= k: SUBPROOF(m, D[a:a+k], b) : MTH(D[a+k:a+n]);
      - m > k:  SUBPROOF(m - k, D[a+k:a+n], false) : MTH(D[a:a+k]).
    """
    check_tree_size(old_size, "old tree size")
    check_tree_size(new_size, "new tree size")
    if old_size > new_size:
        raise InvalidInputError(
            f"old tree size {old_size} is larger than new tree size {new_size}",
            reason=REASON_OUT_OF_RANGE,
        )
    if old_size in (0, new_size):
        return ProofPlan(())
    # the recursion yields elements outermost-last; collect them top-down, then reverse
    outer: list[tuple[NodeKey, ...]] = []
    begin, end, m, whole = 0, new_size, old_size, True
    while m != end - begin:
        k = largest_power_of_two_below(end - begin)
        if m <= k:
            outer.append(range_keys(begin + k, end))
            end = begin + k
        else:
            outer.append(range_keys(begin, begin + k))
            begin += k
            m -= k
            whole = False
    if not whole:
        outer.append(range_keys(begin, end))
    outer.reverse()
    return ProofPlan(tuple(outer))

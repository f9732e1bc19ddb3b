"""Addresses of stored tree nodes and the small interface a node store implements.

A *full node* is the root of a perfect subtree that lies wholly inside the
tree: ``(level, index)`` covers leaves ``[index * 2**level, (index + 1) * 2**level)``
and exists once the tree holds ``(index + 1) * 2**level`` leaves. Full nodes never
change after they are written, so a store can keep them in an append-only table;
everything else (the right edge of a tree whose size is not a power of two) is
derived from them on demand.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final, Protocol, TypeAlias

from signing.errors import InvalidInputError, StorageError

from .hashing import TreeHasher

#: ``(level, index)`` of a full node; level 0 holds the leaf hashes
NodeKey: TypeAlias = tuple[int, int]

#: RFC 9162 carries tree sizes and indices as uint64
MAX_TREE_SIZE: Final = 2**64 - 1
#: a full node at level 64 would need 2**64 leaves, one more than MAX_TREE_SIZE
MAX_LEVEL: Final = 63

#: a store returned the wrong number of nodes, a missing node or a hash of the wrong size
REASON_NODE_MISSING: Final = "merkle.node_missing"
#: a write tried to replace a full node with a different hash (full nodes are immutable)
REASON_NODE_CONFLICT: Final = "merkle.node_conflict"
#: a node key outside the addressable tree
REASON_BAD_KEY: Final = "merkle.bad_key"


class NodeReader(Protocol):
    """Batch read of full-node hashes.

    ``get_nodes`` returns one hash per key, in the order of ``keys``, and raises
    :class:`~signing.errors.StorageError` when any key is absent. Proof
    generation asks for all the nodes of one proof in a single call, so a SQL
    store can answer with one ``SELECT ... WHERE (level, idx) IN (...)``.
    """

    def get_nodes(self, keys: Sequence[NodeKey], /) -> list[bytes]: ...


class NodeWriter(Protocol):
    """Append-only write of full nodes, e.g. the output of ``CompactRange.append``."""

    def put_nodes(self, nodes: Iterable[tuple[NodeKey, bytes]], /) -> None: ...


def check_node_key(key: NodeKey) -> None:
    """Raise :class:`InvalidInputError` unless ``key`` addresses a node of some uint64 tree."""
    try:
        level, index = key
    except (TypeError, ValueError):
        raise InvalidInputError(f"not a Merkle node key: {key!r:.40}", reason=REASON_BAD_KEY) from None
    if (
        isinstance(level, bool)
        or isinstance(index, bool)
        or not isinstance(level, int)
        or not isinstance(index, int)
        or not 0 <= level <= MAX_LEVEL
        or index < 0
        or (index + 1) << level > MAX_TREE_SIZE + 1
    ):
        raise InvalidInputError(f"not a Merkle node key: {key!r}", reason=REASON_BAD_KEY)


def read_nodes(nodes: NodeReader, keys: Sequence[NodeKey], hasher: TreeHasher) -> list[bytes]:
    """Fetch ``keys`` in one ``get_nodes`` call and check what came back.

    A store that answers with too few hashes or hashes of the wrong size is
    broken; better a :class:`StorageError` here than a proof that silently fails
    to verify somewhere else.
    """
    if not keys:
        return []
    hashes = nodes.get_nodes(keys)
    if len(hashes) != len(keys):
        raise StorageError(
            f"node store returned {len(hashes)} hashes for {len(keys)} keys",
            reason=REASON_NODE_MISSING,
        )
    for key, value in zip(keys, hashes, strict=True):
        if not isinstance(value, bytes) or len(value) != hasher.digest_size:
            raise StorageError(
                f"node store returned a malformed hash for node {key}",
                reason=REASON_NODE_MISSING,
                details={"level": key[0], "index": key[1]},
            )
    return hashes


class MemoryNodeStore:
    """An in-memory :class:`NodeReader` / :class:`NodeWriter` for tests and small trees."""

    def __init__(self) -> None:
        self._nodes: dict[NodeKey, bytes] = {}

    def __len__(self) -> int:
        return len(self._nodes)

    def __contains__(self, key: object) -> bool:
        return key in self._nodes

    def get_nodes(self, keys: Sequence[NodeKey], /) -> list[bytes]:
        """The hashes of ``keys`` in order; :class:`StorageError` if one is absent."""
        try:
            return [self._nodes[key] for key in keys]
        except KeyError as exc:
            raise StorageError(f"Merkle node {exc.args[0]} is not stored", reason=REASON_NODE_MISSING) from None

    def put_nodes(self, nodes: Iterable[tuple[NodeKey, bytes]], /) -> None:
        """Store full nodes; rewriting a node with the same hash is a no-op.

        Writing a *different* hash under an existing key means two histories
        disagree, which a ledger must never paper over.
        """
        batch: dict[NodeKey, bytes] = {}
        for key, value in nodes:
            check_node_key(key)
            known = self._nodes.get(key, batch.get(key))
            if known is not None and known != value:
                raise StorageError(
                    f"Merkle node {key} already holds a different hash",
                    reason=REASON_NODE_CONFLICT,
                    details={"level": key[0], "index": key[1]},
                )
            batch[key] = bytes(value)
        # all-or-nothing, like the SQL store's transaction
        self._nodes.update(batch)

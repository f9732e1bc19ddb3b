"""Tables of the ledger store.

Two kinds of table:

* **log tables** (entries, tree_nodes, blocks, checkpoints, cosignatures,
  evidence) are append-only: database triggers refuse UPDATE and DELETE, so
  not even the node's own code can rewrite history through SQL.
* **derived tables** (``st_*``) hold state computed from the entries (licence
  status, agency registry, nodes, nonces, policy). They are rebuilt from the
  log tables by ``certledger rebuild`` and re-derived by audit.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

meta = Table(
    "meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

entries = Table(
    "entries",
    metadata,
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("leaf_hash", LargeBinary(32), nullable=False),
    Column("record_hash", String(64), nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("block_height", BigInteger, nullable=False),
    Column("rtype", String(32), nullable=False),
    Column("licence_id", String(128), nullable=True),
    Column("agency_id", String(128), nullable=True),
)
Index("ix_entries_licence", entries.c.licence_id, entries.c.idx)
Index("ix_entries_record_hash", entries.c.record_hash)

tree_nodes = Table(
    "tree_nodes",
    metadata,
    Column("level", Integer, primary_key=True, autoincrement=False),
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", LargeBinary(32), nullable=False),
)

blocks = Table(
    "blocks",
    metadata,
    Column("height", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", LargeBinary(32), nullable=False, unique=True),
    Column("header", LargeBinary, nullable=False),
    Column("signature", LargeBinary, nullable=False),
)

checkpoints = Table(
    "checkpoints",
    metadata,
    Column("tree_size", BigInteger, primary_key=True, autoincrement=False),
    Column("note", Text, nullable=False),
)

cosignatures = Table(
    "cosignatures",
    metadata,
    Column("tree_size", BigInteger, primary_key=True, autoincrement=False),
    Column("signer", String(255), primary_key=True),
    Column("line", Text, nullable=False),
)

evidence = Table(
    "evidence",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(64), nullable=False),
    Column("created_at", String(32), nullable=False),
    Column("detail", Text, nullable=False),
)

# -- derived state --------------------------------------------------------------------------

st_licences = Table(
    "st_licences",
    metadata,
    Column("licence_id", String(128), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("issuer", String(128), nullable=False),
    Column("data", Text, nullable=False),
)

st_agencies = Table(
    "st_agencies",
    metadata,
    Column("agency_id", String(128), primary_key=True),
    Column("data", Text, nullable=False),
)

st_agency_keys = Table(
    "st_agency_keys",
    metadata,
    Column("key_id", String(64), primary_key=True),
    Column("agency_id", String(128), nullable=False),
)

st_nodes = Table(
    "st_nodes",
    metadata,
    Column("node_id", String(128), primary_key=True),
    Column("data", Text, nullable=False),
)

st_nonces = Table(
    "st_nonces",
    metadata,
    Column("signer", String(128), primary_key=True),
    Column("nonce", String(32), primary_key=True),
)

APPEND_ONLY: Final = ("entries", "tree_nodes", "blocks", "checkpoints", "cosignatures", "evidence")
DERIVED: Final = ("st_licences", "st_agencies", "st_agency_keys", "st_nodes", "st_nonces")

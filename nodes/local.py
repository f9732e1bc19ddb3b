"""The embedded single-node set-up: a home directory with config, keys and a SQLite ledger.

``init_node`` creates the node keys, a governance authority key (for a
single-province trial; a production genesis names authority keys held
elsewhere, e.g. in an HSM), the GENESIS record and block 0. ``open_node``
opens it again.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ledger.identity import NodeKeys
from ledger.records import (
    Record,
    RecordType,
    SignedRecord,
    encode_public_key,
    format_time,
    new_nonce,
    now_utc,
    sign_record,
)
from ledger.service import BatchResult, Ledger
from nodes.config import NodeConfig, sqlite_file
from signing.errors import CertLedgerError, InvalidInputError
from signing.sm2 import SM2PrivateKey, SM2PublicKey

AUTHORITY_KEY_FILE = "authority.pem"


def agency_key_json(key: SM2PublicKey, not_before: datetime | None = None) -> dict[str, Any]:
    """An agency key entry; valid from ``not_before`` (default: now)."""
    return {
        "key_id": key.key_id,
        "public_key": encode_public_key(key),
        "not_before": format_time(not_before or now_utc()),
    }


def write_secret(path: Path, data: bytes) -> None:
    """Create ``path`` with mode 0600 (never world-readable, not even briefly)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


@dataclass
class LocalNode:
    config: NodeConfig
    keys: NodeKeys | None  # None when opened read-only
    ledger: Ledger
    passphrase: bytes

    def close(self) -> None:
        self.ledger.close()

    @property
    def origin(self) -> str:
        return self.ledger.origin

    def authority_key(self) -> SM2PrivateKey:
        path = self.config.keys_path / AUTHORITY_KEY_FILE
        if not path.exists():
            raise InvalidInputError(
                f"no governance authority key at {path}: governance records must be signed by the "
                "authorities named in the genesis record",
                reason="governance.key_missing",
            )
        return SM2PrivateKey.load(path, self.passphrase)

    def governance(
        self, rtype: RecordType, payload: Mapping[str, Any], keys: Sequence[SM2PrivateKey] | None = None
    ) -> BatchResult:
        """Build, sign (authority keys) and append one governance record."""
        record = Record(rtype, self.origin, now_utc(), new_nonce(), "", "", dict(payload))
        signed = sign_record(record, list(keys) if keys else [self.authority_key()])
        result = self.ledger.submit([signed])
        result.raise_first()
        return result


def init_node(
    config: NodeConfig,
    passphrase: bytes,
    *,
    origin: str,
    node_name: str,
    authority_id: str,
    authority_name: str,
    agencies: Sequence[Mapping[str, Any]] = (),
    quorum: int = 1,
    time_window: int = 300,
    description: str = "",
) -> LocalNode:
    """Create keys, config and the genesis block of a new single-node ledger.

    All or nothing: if any step fails (an origin the genesis refuses, a database that
    cannot be opened, ...) what this call created is removed again, so the same
    command with a corrected option runs on a clean home. The config file, which
    marks a home as a node, is written last.
    """
    if config.config_path.exists():
        raise InvalidInputError(f"{config.home} already holds a certledger node", reason="config.exists")
    keys = NodeKeys.generate(config.node_id)
    authority = SM2PrivateKey.generate()
    payload: dict[str, Any] = {
        "agencies": [dict(a) for a in agencies],
        "nodes": [keys.node_json(node_name, config.public_url)],
        "governance": {
            "authorities": [
                {"id": authority_id, "name": authority_name, "public_key": encode_public_key(authority.public_key)}
            ],
            "threshold": 1,
        },
        "quorum": {"threshold": quorum},
        "time_window_seconds": time_window,
    }
    if description:
        payload["description"] = description
    # the record is built (and its fields checked) before anything is written
    genesis = sign_record(Record(RecordType.GENESIS, origin, now_utc(), new_nonce(), "", "", payload), [authority])
    created = _Created(config)
    ledger: Ledger | None = None
    try:
        keys.save(config.keys_path, passphrase)
        write_secret(config.keys_path / AUTHORITY_KEY_FILE, authority.to_pem(passphrase))
        ledger = Ledger.open(config.database, keys.identity())
        ledger.initialise(genesis)
        config.origin = origin
        config.save()
    except BaseException:
        if ledger is not None:
            ledger.close()
        created.remove()
        raise
    return LocalNode(config, keys, ledger, passphrase)


class _Created:
    """What ``init_node`` may create, noted before it starts, so that a failed init removes exactly that."""

    def __init__(self, config: NodeConfig) -> None:
        self.home = None if config.home.exists() else config.home
        self.keys = None if config.keys_path.exists() else config.keys_path
        self.config = config.config_path
        self.database: list[Path] = []
        db = sqlite_file(config.database)
        if db is not None and not db.exists():
            self.database = [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")]

    def remove(self) -> None:
        for path in self.database:
            path.unlink(missing_ok=True)
        self.config.unlink(missing_ok=True)
        if self.keys is not None:
            shutil.rmtree(self.keys, ignore_errors=True)
        if self.home is not None:
            shutil.rmtree(self.home, ignore_errors=True)


def open_node(config: NodeConfig, passphrase: bytes | None, *, write: bool = True) -> LocalNode:
    """Open the node at ``config.home``; read-only when ``write`` is false (no keys needed)."""
    keys: NodeKeys | None = None
    if write:
        if passphrase is None:
            raise InvalidInputError(
                "the node keys are encrypted: set CERTLEDGER_PASSPHRASE or pass --passphrase-file",
                reason="key.passphrase",
            )
        keys = NodeKeys.load(config.keys_path, passphrase)
        if keys.node_id != config.node_id:
            # CERTLEDGER_NODE_ID (or [node] id) naming another node than the keys: the node would
            # report one name and sign checkpoints under another
            raise InvalidInputError(
                f"the node keys are node {keys.node_id!r}, the configuration says {config.node_id!r}",
                reason="config.invalid",
            )
    # an existing ledger only: `certledger init` creates one (init_node)
    ledger = Ledger.open(config.database, keys.identity() if keys is not None else None, create=False)
    try:
        actual = ledger.origin
    except CertLedgerError:
        actual = ""  # not initialised: the command that needs an origin says so itself
    if config.origin and actual and actual != config.origin:
        ledger.close()
        raise InvalidInputError(
            f"the ledger's origin is {actual!r}, the configuration says {config.origin!r}", reason="config.invalid"
        )
    return LocalNode(config, keys, ledger, passphrase or b"")


def parse_signed_record(data: bytes) -> SignedRecord:
    return SignedRecord.from_bytes(data.strip() if data.endswith(b"\n") else data)

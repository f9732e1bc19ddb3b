"""A node's keys and the names under which it signs checkpoints.

A node holds two keys: SM2 (signs block headers, and checkpoints as a
certledger 0xff-type note signature) and Ed25519 (signs checkpoints as a
standard C2SP note signature, so transparency-log tooling can check them).
Both sign under the key name ``<origin>/<node id>``: one log, many nodes,
each name distinct. Private keys at rest are encrypted PKCS#8.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ledger.checkpoint import Checkpoint, sign_checkpoint
from ledger.records import encode_public_key
from ledger.service import NodeIdentity
from ledger.state import Node
from signing.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from signing.errors import InvalidInputError
from signing.note import Ed25519NoteSigner, Ed25519NoteVerifier
from signing.note.model import Signer, Verifier
from signing.note.sm2 import SM2NoteSigner, SM2NoteVerifier
from signing.sm2 import SM2PrivateKey

SM2_KEY_FILE = "node-sm2.pem"
ED25519_KEY_FILE = "node-ed25519.pem"


def note_key_name(origin: str, node_id: str) -> str:
    return f"{origin}/{node_id}"


@dataclass
class NodeKeys:
    node_id: str
    sm2: SM2PrivateKey
    ed25519: Ed25519PrivateKey
    _signers: dict[str, list[Signer]] = field(default_factory=dict, repr=False)

    @classmethod
    def generate(cls, node_id: str) -> NodeKeys:
        return cls(node_id, SM2PrivateKey.generate(), Ed25519PrivateKey.generate())

    def signers(self, origin: str) -> list[Signer]:
        signers = self._signers.get(origin)
        if signers is None:
            name = note_key_name(origin, self.node_id)
            signers = [Ed25519NoteSigner(name, self.ed25519), SM2NoteSigner(name, self.sm2)]
            self._signers[origin] = signers
        return signers

    def sign_checkpoint(self, origin: str, size: int, root: bytes, extensions: tuple[str, ...] = ()) -> str:
        cp = Checkpoint(origin=origin, size=size, root_hash=root, extensions=extensions)
        note = sign_checkpoint(cp, self.signers(origin))
        return note.decode("utf-8")

    def identity(self) -> NodeIdentity:
        return NodeIdentity(self.node_id, self.sm2, self.sign_checkpoint)

    def node_json(self, name: str, endpoint: str = "") -> dict[str, Any]:
        """This node as a GENESIS / NODE_ADMIT payload entry."""
        out: dict[str, Any] = {
            "id": self.node_id,
            "name": name,
            "sm2_public_key": encode_public_key(self.sm2.public_key),
            "ed25519_public_key": base64.b64encode(self.ed25519.public_key.to_bytes()).decode(),
        }
        if endpoint:
            out["endpoint"] = endpoint
        return out

    def save(self, directory: Path, passphrase: bytes) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        for fname, data in (
            (SM2_KEY_FILE, self.sm2.to_pem(passphrase)),
            (ED25519_KEY_FILE, self.ed25519.to_pem(passphrase)),
        ):
            path = directory / fname
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        (directory / "node-id").write_text(self.node_id + "\n")

    @classmethod
    def load(cls, directory: Path, passphrase: bytes | None) -> NodeKeys:
        id_file = directory / "node-id"
        if not id_file.exists():
            raise InvalidInputError(f"no node keys in {directory}", reason="node.keys_missing")
        return cls(
            id_file.read_text().strip(),
            SM2PrivateKey.load(directory / SM2_KEY_FILE, passphrase),
            Ed25519PrivateKey.load(directory / ED25519_KEY_FILE, passphrase),
        )


def checkpoint_verifiers(origin: str, nodes: Iterable[Node]) -> list[Verifier]:
    """Verifiers for every admitted node's checkpoint keys (Ed25519 and SM2)."""
    out: list[Verifier] = []
    for node in nodes:
        name = note_key_name(origin, node.id)
        out.append(Ed25519NoteVerifier(name, Ed25519PublicKey.from_bytes(node.ed25519_public_key)))
        out.append(SM2NoteVerifier(name, node.sm2_public_key))
    return out

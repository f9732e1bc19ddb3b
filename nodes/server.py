"""Assembling the API process of a node: ledger, group-commit sequencer, app."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI

from ledger.sequencer import GroupCommitSequencer
from nodes.config import NodeConfig
from nodes.local import open_node
from verify_api.app import ApiSettings, create_app
from verify_api.federation import FederatedVerifier, FederationRegistry


def build_app(
    cfg: NodeConfig, passphrase: bytes | None, *, read_only: bool = False
) -> tuple[FastAPI, Callable[[], None]]:
    """The app for the node at ``cfg`` and a function that shuts it down cleanly."""
    node = open_node(cfg, passphrase, write=not read_only)
    sequencer = None if read_only else GroupCommitSequencer(node.ledger)
    federation = None
    registry_path = os.environ.get("CERTLEDGER_FEDERATION_REGISTRY") or cfg.extra.get("federation", {}).get("registry")
    if registry_path:
        path = Path(registry_path)
        if not path.is_absolute():
            path = cfg.home / path
        federation = FederatedVerifier(FederationRegistry.load(path), state_dir=cfg.home / "federation")
    app = create_app(node.ledger, sequencer=sequencer, settings=ApiSettings(node_id=cfg.node_id), federation=federation)

    def close() -> None:
        if sequencer is not None:
            sequencer.close()
        node.close()

    return app, close

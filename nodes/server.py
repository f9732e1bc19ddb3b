"""Assembling the API process of a node: ledger, group-commit sequencer, app."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI

from ledger.sequencer import GroupCommitSequencer
from nodes.config import NodeConfig
from nodes.local import open_node
from verify_api.app import ApiSettings, create_app


def build_app(
    cfg: NodeConfig, passphrase: bytes | None, *, read_only: bool = False
) -> tuple[FastAPI, Callable[[], None]]:
    """The app for the node at ``cfg`` and a function that shuts it down cleanly."""
    node = open_node(cfg, passphrase, write=not read_only)
    sequencer = None if read_only else GroupCommitSequencer(node.ledger)
    app = create_app(node.ledger, sequencer=sequencer, settings=ApiSettings(node_id=cfg.node_id))

    def close() -> None:
        if sequencer is not None:
            sequencer.close()
        node.close()

    return app, close

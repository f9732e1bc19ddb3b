"""``certledger node run``: a cluster member."""

from __future__ import annotations

from pathlib import Path

import click

from nodes.cli._common import handle_errors, read_passphrase
from signing.errors import InvalidInputError


@click.group()
def node() -> None:
    """Run a department node of a cluster (ordering through etcd)."""


@node.command("run")
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="node.toml (see docs/cluster.md).",
)
@click.option(
    "--passphrase-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="File holding the node key passphrase (default: $CERTLEDGER_PASSPHRASE).",
)
@handle_errors
def node_run(config_path: Path, passphrase_file: Path | None) -> None:
    """Join the cluster: elect/follow a leader, apply and cosign blocks, serve the API."""
    import uvicorn

    from nodes.node_runner import NodeRunConfig, build_node
    from verify_api.http_protocol import PROTOCOL

    cfg = NodeRunConfig.load(config_path)
    passphrase = read_passphrase(passphrase_file)
    if passphrase is None:
        raise InvalidInputError(
            "the node keys are encrypted: set CERTLEDGER_PASSPHRASE or --passphrase-file", reason="key.passphrase"
        )
    app, cluster_node = build_node(cfg, passphrase)
    cluster_node.start()
    try:
        # log_config=None: uvicorn logs through the root handler (nodes.logs), as JSON lines like the rest
        uvicorn.run(
            app,
            host=cfg.api_host,
            port=cfg.api_port,
            log_level="warning",
            access_log=False,
            http=PROTOCOL,
            log_config=None,
        )
    finally:
        cluster_node.stop()

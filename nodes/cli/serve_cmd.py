"""``certledger serve``: the verification API of the local node (uvicorn)."""

from __future__ import annotations

from pathlib import Path

import click

from nodes.cli._common import handle_errors, read_passphrase
from nodes.cli.ledger_cmds import home_option, passphrase_option


@click.command()
@home_option
@passphrase_option
@click.option("--host", help="Address to bind (default: config api.host, 127.0.0.1).")
@click.option("--port", type=int, help="Port (default: config api.port, 8600).")
@click.option("--read-only", is_flag=True, help="Serve queries only; refuse submissions (no keys needed).")
@handle_errors
def serve(home: Path | None, passphrase_file: Path | None, host: str | None, port: int | None, read_only: bool) -> None:
    """Serve the /v1 API (and the verification page) for the local node."""
    import uvicorn

    from nodes.config import load_config
    from nodes.server import build_app

    cfg = load_config(home)
    app, closer = build_app(cfg, None if read_only else read_passphrase(passphrase_file), read_only=read_only)
    try:
        uvicorn.run(app, host=host or cfg.api_host, port=port or cfg.api_port, log_level="warning", access_log=False)
    finally:
        closer()


def register(group: click.Group) -> None:
    group.add_command(serve)

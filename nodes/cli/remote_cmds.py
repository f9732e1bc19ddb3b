"""``certledger remote``: ask another node, verify everything it answers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ledger.anchors import TrustAnchors
from nodes.cli._common import emit, handle_errors, json_option
from verify_api.client import CheckpointMemory, LedgerClient

_STATE = Path.home() / ".certledger-client" / "checkpoints.json"


def _client(url: str, genesis: Path, genesis_sm3: str | None, state: Path) -> LedgerClient:
    anchors = TrustAnchors.from_genesis(genesis.read_bytes(), expected_hash=genesis_sm3)
    return LedgerClient(url, anchors, memory=CheckpointMemory(state))


def _options(fn: Any) -> Any:
    fn = click.option(
        "--state",
        type=click.Path(dir_okay=False, path_type=Path),
        default=_STATE,
        show_default=True,
        help="Where the last verified checkpoint per origin is kept.",
    )(fn)
    fn = click.option("--genesis-sm3", help="Pinned SM3 hash (hex) of the genesis record.")(fn)
    fn = click.option(
        "--genesis",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        required=True,
        help="The ledger's GENESIS record (its trust anchors), obtained out of band.",
    )(fn)
    return click.option("--url", required=True, help="Base URL of the node's API.")(fn)


@click.group()
def remote() -> None:
    """Query another node and verify its proofs locally (trust only the pinned genesis)."""


@remote.command("status")
@_options
@click.argument("licence_id")
@json_option
@handle_errors
def remote_status(
    url: str, genesis: Path, genesis_sm3: str | None, state: Path, licence_id: str, as_json: bool
) -> None:
    """Verified status of LICENCE_ID: checkpoint quorum, consistency, inclusion, key admission, signature."""
    client = _client(url, genesis, genesis_sm3, state)
    try:
        verified = client.licence_status(licence_id)
    finally:
        client.close()

    def human(d: dict[str, Any]) -> str:
        lines = [f"{d['licence_id']}: {d['status']} (version {d['version']}, issuer {d['issuer']}) — verified"]
        lines += [f"  ✓ {c['name']}: {c['detail']}" for c in d["checks"]]
        return "\n".join(lines)

    emit(verified.to_json(), as_json, human)


@remote.command("checkpoint")
@_options
@json_option
@handle_errors
def remote_checkpoint(url: str, genesis: Path, genesis_sm3: str | None, state: Path, as_json: bool) -> None:
    """Fetch the node's checkpoint, verify its quorum and its consistency with the last one seen."""
    client = _client(url, genesis, genesis_sm3, state)
    try:
        vcp = client.checkpoint()
    finally:
        client.close()
    emit(
        {
            "origin": vcp.checkpoint.origin,
            "size": vcp.checkpoint.size,
            "root": vcp.checkpoint.root_hash.hex(),
            "signers": sorted(vcp.signers),
            "note": vcp.note,
        },
        as_json,
        lambda d: f"checkpoint of {d['origin']} at size {d['size']} verified (signers: {', '.join(d['signers'])})",
    )


def register(group: click.Group) -> None:
    group.add_command(remote)

"""Assembling the API process of a node: ledger, group-commit sequencer, app.

Tuning knobs read from the environment (documented in docs/api.md):

* ``CERTLEDGER_API_RATE`` — requests per second per client address on the public
  read endpoints (token bucket; ``0`` turns rate limiting off; default 200);
* ``CERTLEDGER_API_BURST`` — the bucket's size (default 400);
* ``CERTLEDGER_API_BODY_TIMEOUT`` — seconds a request body may take to arrive
  (default 60; ``0`` = no deadline);
* ``CERTLEDGER_API_HEAD_TIMEOUT`` — seconds a request line and headers may take to
  arrive (default 20; ``0`` = no deadline; enforced by ``verify_api.http_protocol``);
* ``CERTLEDGER_API_MAX_CONNECTIONS`` — connections one client address may hold open
  at once, per server process (default 1024; ``0`` = no bound; ``verify_api.http_protocol``);
* ``CERTLEDGER_FEDERATION_REGISTRY`` — the federation registry (TOML), else
  ``[federation] registry`` in the node's config.
"""

from __future__ import annotations

import atexit
import math
import os
from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI

from ledger.sequencer import GroupCommitSequencer
from nodes.config import NodeConfig, load_config
from nodes.local import open_node
from signing.errors import InvalidInputError
from verify_api.app import ApiSettings, create_app
from verify_api.federation import FederatedVerifier, FederationRegistry
from verify_api.http_protocol import head_timeout, max_connections
from verify_api.verify_route import verify_routes
from verify_api.web_routes import install_web_routes


def _env_number(name: str, default: float) -> float:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except ValueError:
        raise InvalidInputError(f"{name} must be a number, not {value!r}", reason="config.invalid") from None
    if not math.isfinite(number) or number < 0:
        # NaN compares false with everything: as a rate it silently turned the limit off
        raise InvalidInputError(f"{name} must be a finite number >= 0, not {value!r}", reason="config.invalid")
    return number


def api_settings(cfg: NodeConfig) -> ApiSettings:
    """API settings of the node at ``cfg``, with the environment's rate-limit knobs applied."""
    return env_api_settings(cfg.node_id)


def env_api_settings(node_id: str) -> ApiSettings:
    """API settings for node ``node_id`` with the knobs of the environment (``serve`` and ``node run``)."""
    defaults = ApiSettings()
    # the HTTP protocol reads these per process; a bad value stops the command here
    head_timeout()
    max_connections()
    return ApiSettings(
        node_id=node_id,
        rate_per_client=_env_number("CERTLEDGER_API_RATE", defaults.rate_per_client),
        burst_per_client=max(1, int(_env_number("CERTLEDGER_API_BURST", defaults.burst_per_client))),
        body_timeout=_env_number("CERTLEDGER_API_BODY_TIMEOUT", defaults.body_timeout),
    )


def federation_verifier(configured: str | None, relative_to: Path, home: Path) -> FederatedVerifier | None:
    """The federation verifier of a node, or None when it has no registry.

    The registry is ``CERTLEDGER_FEDERATION_REGISTRY``, else ``configured`` (the node
    config's ``[federation] registry``), a relative path being ``relative_to``'s. What
    the node learns of other provinces (their last checkpoints) stays in
    ``<home>/federation``.
    """
    registry_path = os.environ.get("CERTLEDGER_FEDERATION_REGISTRY") or configured
    if not registry_path:
        return None
    path = Path(registry_path)
    if not path.is_absolute():
        path = relative_to / path
    return FederatedVerifier(FederationRegistry.load(path), state_dir=home / "federation")


def build_app(
    cfg: NodeConfig, passphrase: bytes | None, *, read_only: bool = False
) -> tuple[FastAPI, Callable[[], None]]:
    """The app for the node at ``cfg`` and a function that shuts it down cleanly."""
    settings = api_settings(cfg)
    # file verification trusts the province roots in <home>/trust/ (as `certledger verify` does);
    # the human verification page is served at / and /v/<identifier> (the licence QR code)
    settings.extra_routes += [verify_routes(cfg.home / "trust"), install_web_routes]
    node = open_node(cfg, passphrase, write=not read_only)
    sequencer = None if read_only else GroupCommitSequencer(node.ledger)
    federation = federation_verifier(cfg.extra.get("federation", {}).get("registry"), cfg.home, cfg.home)
    app = create_app(node.ledger, sequencer=sequencer, settings=settings, federation=federation)

    def close() -> None:
        if sequencer is not None:
            sequencer.close()
        node.close()

    return app, close


def read_only_app() -> FastAPI:
    """App factory for ``uvicorn --factory`` with several worker processes (``certledger serve --workers``).

    Each worker opens the node at ``$CERTLEDGER_HOME`` read-only: only one process
    may own the sequencer (it holds the in-memory tree edge and orders appends),
    so a multi-process server answers queries and refuses submissions.
    """
    from nodes import logs

    logs.configure()  # a fresh interpreter: the same JSON lines as the parent, from the environment
    app, close = build_app(load_config(None), None, read_only=True)
    atexit.register(close)
    return app

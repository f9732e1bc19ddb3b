"""``certledger node run``: one department node of a cluster, with its API.

node.toml (see docs/cluster.md)::

    [node]
    id = "gd-node-1"
    home = "/var/lib/certledger/gd-node-1"     # keys/ and the default SQLite ledger

    [ledger]
    database = "sqlite:////var/lib/certledger/gd-node-1/ledger.db"   # optional
    genesis = "genesis.json"                   # the GENESIS record every node shares

    [cluster]
    etcd = ["http://127.0.0.1:2379", "http://127.0.0.1:22379", "http://127.0.0.1:32379"]
    peers = ["http://127.0.0.1:8602", "http://127.0.0.1:8603"]   # other nodes' APIs, for catch-up
    max_batch = 500
    window = 2000            # blocks kept in etcd behind the last final one
    submit_timeout = 15.0    # seconds a submission may wait to become final (then 502)
    max_unfinal_blocks = 1   # a block that is not full waits while this many are not final yet

    [api]
    host = "127.0.0.1"
    port = 8601
"""

from __future__ import annotations

import asyncio
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request

from ledger.identity import NodeKeys
from ledger.records import MAX_ENTRY_BYTES, SignedRecord
from ledger.service import Ledger
from nodes.cluster import SUBMISSIONS_MEDIA_TYPE, ClusterNode, ClusterSettings, decode_submissions
from nodes.handon_ticket import TICKET_HEADER
from nodes.server import env_api_settings, federation_verifier
from signing.errors import InvalidInputError
from verify_api.app import create_app
from verify_api.models import Problem
from verify_api.verify_route import verify_routes
from verify_api.web_routes import install_web_routes


@dataclass(frozen=True)
class NodeRunConfig:
    node_id: str
    home: Path
    database: str
    genesis_path: Path
    cluster: ClusterSettings
    api_host: str
    api_port: int
    #: ``[federation] registry``, relative to the config file's directory (None: no federation)
    federation_registry: str | None = None
    config_dir: Path = Path(".")

    @classmethod
    def load(cls, path: Path) -> NodeRunConfig:
        try:
            data: dict[str, Any] = tomllib.loads(path.read_text("utf-8"))
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise InvalidInputError(f"{path}: {exc}", reason="config.invalid") from None
        try:
            base = path.parent
            home = base / data["node"]["home"]
            cluster = data["cluster"]
            return cls(
                node_id=str(data["node"]["id"]),
                home=home,
                database=str(data.get("ledger", {}).get("database") or f"sqlite:///{(home / 'ledger.db').resolve()}"),
                genesis_path=base / data["ledger"]["genesis"],
                cluster=ClusterSettings(
                    etcd_endpoints=[str(e) for e in cluster["etcd"]],
                    peers=[str(p) for p in cluster.get("peers", [])],
                    max_batch=int(cluster.get("max_batch", 500)),
                    wait_final=bool(cluster.get("wait_final", True)),
                    window=int(cluster.get("window", 2000)),
                    submit_timeout=float(cluster.get("submit_timeout", 15.0)),
                    max_unfinal_blocks=max(1, int(cluster.get("max_unfinal_blocks", 1))),
                ),
                api_host=str(data.get("api", {}).get("host", "127.0.0.1")),
                api_port=int(data.get("api", {}).get("port", 8601)),
                federation_registry=_optional_text(data.get("federation", {}).get("registry")),
                config_dir=base,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInputError(f"{path}: missing or invalid setting {exc}", reason="config.invalid") from None


def _optional_text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value or None
    raise TypeError(f"expected text, not {value!r}")


def build_node(cfg: NodeRunConfig, passphrase: bytes) -> tuple[FastAPI, ClusterNode]:
    keys = NodeKeys.load(cfg.home / "keys", passphrase)
    if keys.node_id != cfg.node_id:
        raise InvalidInputError(
            f"keys in {cfg.home} belong to node {keys.node_id}, not {cfg.node_id}", reason="config.invalid"
        )
    genesis = SignedRecord.from_bytes(cfg.genesis_path.read_bytes().removesuffix(b"\n"))
    # cross-province lookups (GET /v1/federation/...), as on a single node; a bad registry
    # stops the node before it opens its ledger or joins the cluster
    federation = federation_verifier(cfg.federation_registry, cfg.config_dir, cfg.home)
    ledger = Ledger.open(cfg.database, keys.identity())
    node = ClusterNode(ledger, cfg.cluster, genesis=genesis)

    def cluster_routes(app: FastAPI) -> None:
        @app.get("/v1/cluster/status", tags=["cluster"])
        def cluster_status() -> dict[str, Any]:
            """This node's view: height, lag behind etcd, leader, last final checkpoint, alarms."""
            return node.status()

        @app.post(
            "/v1/cluster/submissions",
            status_code=202,
            tags=["cluster"],
            responses={
                403: {"model": Problem, "description": "no valid node ticket (cluster.unauthenticated, ADR 0017)"},
                409: {"model": Problem, "description": "this node is not the leader (cluster.not_leader)"},
                422: {"model": Problem, "description": "the body is not a valid list of record envelopes"},
                503: {"model": Problem, "description": "queue full, or too many tickets being checked"},
            },
            openapi_extra={
                "requestBody": {
                    "required": True,
                    "description": "u32 count, then each signed record envelope as a u32 length and its bytes",
                    "content": {SUBMISSIONS_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}},
                }
            },
        )
        async def cluster_submissions(request: Request) -> dict[str, int]:
            """Submissions another node accepted, handed to the leader for its next blocks.

            Only queued: the leader checks every record when it proposes it, and the node that
            accepted it acknowledges it once its block is in etcd (and final). Only another node
            of the policy may hand submissions on: its ticket is checked before the body is read.
            """
            ticket = request.headers.get(TICKET_HEADER)
            await asyncio.to_thread(node.hand_on_sender, ticket)  # raises AuthorizationError: 403
            body = await request.body()

            def take() -> int:
                records = decode_submissions(body, MAX_ENTRY_BYTES)
                node.enqueue(records)
                return len(records)

            return {"queued": await asyncio.to_thread(take)}

        @app.get("/v1/cluster/evidence", tags=["cluster"])
        def cluster_evidence() -> dict[str, Any]:
            """Signed statements this node holds as evidence of misbehaviour (forks, invalid blocks)."""
            with ledger.store.read() as conn:
                return {"evidence": ledger.store.evidence(conn)}

    # the knobs of `serve` (CERTLEDGER_API_RATE, _BURST, _BODY_TIMEOUT, _HEAD_TIMEOUT, _MAX_CONNECTIONS),
    # and the same file verification (roots in <home>/trust/) and verification page as a single node's API
    settings = env_api_settings(cfg.node_id)
    settings.extra_routes += [cluster_routes, verify_routes(cfg.home / "trust"), install_web_routes]
    # a hand-on carries up to 1 MiB of entries, the last of them up to one record larger
    settings.body_limits["/v1/cluster/submissions"] = 2 * 1024 * 1024 + 2 * MAX_ENTRY_BYTES
    app = create_app(ledger, sequencer=node, settings=settings, federation=federation)
    return app, node

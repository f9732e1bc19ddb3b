"""``certledger serve``: the verification API of the local node (uvicorn)."""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path

import click

from nodes.cli._common import handle_errors, read_passphrase
from nodes.cli.ledger_cmds import home_option, passphrase_option
from signing.errors import InvalidInputError


@click.command()
@home_option
@passphrase_option
@click.option("--host", help="Address to bind (default: config api.host, 127.0.0.1).")
@click.option("--port", type=click.IntRange(1, 65535), help="Port (default: config api.port, 8600).")
@click.option("--read-only", is_flag=True, help="Serve queries only; refuse submissions (no keys needed).")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Worker processes; more than one needs --read-only (one process owns the sequencer).",
)
@handle_errors
def serve(
    home: Path | None, passphrase_file: Path | None, host: str | None, port: int | None, read_only: bool, workers: int
) -> None:
    """Serve the /v1 API (and the verification page) for the local node.

    Rate limits of the read endpoints: CERTLEDGER_API_RATE (requests/s per client
    address, 0 = off) and CERTLEDGER_API_BURST. A request body must arrive within
    CERTLEDGER_API_BODY_TIMEOUT seconds once reading it begins (default 60, 0 = no limit);
    the request line and headers within CERTLEDGER_API_HEAD_TIMEOUT seconds (default 20).
    One client address may hold CERTLEDGER_API_MAX_CONNECTIONS connections open at once
    (default 1024 per process, 0 = no bound).
    """
    import uvicorn

    from nodes.config import load_config
    from nodes.server import api_settings, build_app
    from verify_api.http_protocol import PROTOCOL

    cfg = load_config(home)
    if host is not None and not host.strip():
        raise InvalidInputError("--host must name an address (0.0.0.0 for every interface)", reason="config.invalid")
    bind_host = cfg.api_host if host is None else host
    bind_port = cfg.api_port if port is None else port
    _check_bindable(bind_host, bind_port)
    if workers > 1:
        if not read_only:
            raise InvalidInputError(
                "--workers > 1 needs --read-only: a single process must own the sequencer", reason="config.invalid"
            )
        # build the app once here and throw it away: a bad knob, a missing database or an unreadable
        # federation registry stops the command with one line, instead of every worker dying at
        # start-up and being respawned for ever
        api_settings(cfg)
        _probe, probe_close = build_app(cfg, None, read_only=True)
        probe_close()
        _announce(cfg.origin, bind_host, bind_port, read_only)
        # the workers are fresh interpreters: they find the node through the environment
        os.environ["CERTLEDGER_HOME"] = str(cfg.home.resolve())
        uvicorn.run(
            "nodes.server:read_only_app",
            factory=True,
            workers=workers,
            host=bind_host,
            port=bind_port,
            log_level="warning",
            access_log=False,
            http=PROTOCOL,
            log_config=None,  # each worker configures the root handler itself (read_only_app)
        )
        return
    app, closer = build_app(cfg, None if read_only else read_passphrase(passphrase_file), read_only=read_only)
    _announce(cfg.origin, bind_host, bind_port, read_only)
    try:
        uvicorn.run(
            app, host=bind_host, port=bind_port, log_level="warning", access_log=False, http=PROTOCOL, log_config=None
        )
    finally:
        closer()


def _check_bindable(host: str, port: int) -> None:
    """Fail with one line now, rather than with uvicorn's log line and exit 3 later."""
    if not 0 < port < 65536:
        raise InvalidInputError(f"--port {port} is not a TCP port (1-65535)", reason="config.invalid")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise InvalidInputError(f"cannot resolve --host {host}: {exc.strerror}", reason="config.invalid") from None
    family, kind, proto, _, addr = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            probe.bind(addr)
        except OSError as exc:
            why = "address already in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
            raise InvalidInputError(
                f"cannot listen on {host}:{port}: {why} (choose another --port)", reason="config.invalid"
            ) from None


def _announce(origin: str, host: str, port: int, read_only: bool) -> None:
    shown = f"[{host}]" if ":" in host else host
    mode = " (read-only)" if read_only else ""
    click.echo(
        f"serving {origin or 'the ledger'}{mode} on http://{shown}:{port}/ "
        "(API /v1, OpenAPI /docs and /openapi.json); Ctrl-C to stop",
        err=True,
    )


def register(group: click.Group) -> None:
    group.add_command(serve)

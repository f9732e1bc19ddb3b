"""``certledger demo``: the whole system on the embedded default, narrated, then served."""

from __future__ import annotations

from pathlib import Path

import click

from nodes.cli._common import handle_errors


@click.command()
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("certledger-demo"),
    show_default=True,
    help="Directory for the demo's keys, certificates, ledger and files.",
)
@click.option("--no-serve", is_flag=True, help="Exit after the demo instead of serving the verification page.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address the page is served on.")
@click.option("--port", default=8600, show_default=True, help="Port the page is served on.")
@handle_errors
def demo(workdir: Path, no_serve: bool, host: str, port: int) -> None:
    """Run the demo: PKI and seals, licence files, ledger lifecycle, file verdicts, proofs, audit.

    It ends by serving the verification page and API over the demo ledger (Ctrl-C to stop);
    upload a file from <workdir>/licences/ there. --no-serve skips this.
    """
    from nodes.demo import run_demo

    if not no_serve:
        from nodes.cli.serve_cmd import _check_bindable

        _check_bindable(host, port)  # before the demo's 20 s of work, not after
    _, cfg = run_demo(workdir, click.echo)
    if no_serve:
        return
    import uvicorn

    from nodes.server import build_app
    from verify_api.http_protocol import PROTOCOL

    passphrase = (workdir / "passphrase").read_bytes().strip()
    cfg.api_host, cfg.api_port = host, port
    app, close = build_app(cfg, passphrase)
    click.echo(f"\nverification page: http://{host}:{port}/   (API: http://{host}:{port}/docs; Ctrl-C to stop)")
    click.echo(f"try uploading {workdir}/licences/forged.ofd or a genuine licence from that folder")
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False, http=PROTOCOL, log_config=None)
    finally:
        close()
